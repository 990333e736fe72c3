//! adaLN modulation of DiT blocks: `y = x·(1 + scale) + shift`, with one scale/shift vector per
//! batch entry broadcast over its tokens. One pass instead of three broadcasting ops.

use crate::ensure_shape;

fn check(
    op: &'static str,
    x: usize,
    batch: usize,
    tokens: usize,
    dim: usize,
    per_batch: &[usize],
) -> crate::Result<()> {
    ensure_shape!(
        x == batch * tokens * dim && per_batch.iter().all(|&n| n == batch * dim),
        op,
        "x has {x} values, scale/shift/grads {per_batch:?}, for batch {batch} × tokens {tokens} × dim {dim}"
    );
    Ok(())
}

/// `out[b, s, :] = x[b, s, :]·(1 + scale[b, :]) + shift[b, :]` for `x [batch, tokens, dim]`,
/// `scale`, `shift [batch, dim]`.
#[allow(clippy::too_many_arguments)]
pub fn modulate(
    x: &[f32],
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: &[f32],
    shift: &[f32],
    out: &mut [f32],
) -> crate::Result<()> {
    check(
        "modulate",
        x.len(),
        batch,
        tokens,
        dim,
        &[scale.len(), shift.len()],
    )?;
    ensure_shape!(
        out.len() == x.len(),
        "modulate",
        "output has {} values, x {}",
        out.len(),
        x.len()
    );
    for b in 0..batch {
        let (sc, sh) = (
            &scale[b * dim..(b + 1) * dim],
            &shift[b * dim..(b + 1) * dim],
        );
        let rows = b * tokens * dim..(b + 1) * tokens * dim;
        for (o, xr) in out[rows.clone()]
            .chunks_exact_mut(dim)
            .zip(x[rows].chunks_exact(dim))
        {
            for i in 0..dim {
                o[i] = xr[i] * (1.0 + sc[i]) + sh[i];
            }
        }
    }
    Ok(())
}

/// Backward of [`modulate`]: overwrites `dx = dy·(1 + scale)`, `dscale[b] = Σ_s dy⊙x`,
/// `dshift[b] = Σ_s dy`.
#[allow(clippy::too_many_arguments)]
pub fn modulate_backward(
    x: &[f32],
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dscale: &mut [f32],
    dshift: &mut [f32],
) -> crate::Result<()> {
    check(
        "modulate_backward",
        x.len(),
        batch,
        tokens,
        dim,
        &[scale.len(), dscale.len(), dshift.len()],
    )?;
    ensure_shape!(
        dy.len() == x.len() && dx.len() == x.len(),
        "modulate_backward",
        "dy {} / dx {} values for x {}",
        dy.len(),
        dx.len(),
        x.len()
    );
    dscale.fill(0.0);
    dshift.fill(0.0);
    for b in 0..batch {
        let sc = &scale[b * dim..(b + 1) * dim];
        let (ds, dh) = (
            &mut dscale[b * dim..(b + 1) * dim],
            &mut dshift[b * dim..(b + 1) * dim],
        );
        let rows = b * tokens * dim..(b + 1) * tokens * dim;
        let chunks = dx[rows.clone()]
            .chunks_exact_mut(dim)
            .zip(dy[rows.clone()].chunks_exact(dim))
            .zip(x[rows].chunks_exact(dim));
        for ((dxr, g), xr) in chunks {
            for i in 0..dim {
                dxr[i] = g[i] * (1.0 + sc[i]);
                ds[i] += g[i] * xr[i];
                dh[i] += g[i];
            }
        }
    }
    Ok(())
}
