//! LayerNorm (biased variance, optional affine) and RMSNorm over the last dim of a `rows × cols`
//! matrix, forward and backward.

/// `out = (x − μ)·rstd · w + b`; saves per-row `mean` and `rstd = 1/√(σ² + eps)` for backward.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    x: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    unimplemented!()
}

/// Backward of [`layer_norm`]: overwrites `dx`; overwrites `dweight`/`dbias` when given.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    x: &[f32],
    rows: usize,
    cols: usize,
    weight: Option<&[f32]>,
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
) {
    unimplemented!()
}

/// `out = x · rstd · w`, `rstd = 1/√(mean(x²) + eps)` saved per row.
pub fn rms_norm(
    x: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
    weight: Option<&[f32]>,
    out: &mut [f32],
    rstd: &mut [f32],
) {
    unimplemented!()
}

/// Backward of [`rms_norm`]: overwrites `dx`; overwrites `dweight` when given.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_backward(
    x: &[f32],
    rows: usize,
    cols: usize,
    weight: Option<&[f32]>,
    rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dweight: Option<&mut [f32]>,
) {
    unimplemented!()
}
