//! Fused flash-style attention, forward and backward, with 3D mask modes. Online softmax over key
//! tiles; the per-row logsumexp is saved for backward; no S×S buffer is ever allocated. Masked-out
//! key tiles are skipped, not computed.

/// Which keys a query may attend to. Tokens are ordered frame-major: token `s` is in frame
/// `s / tokens_per_frame` at spatial position `s % tokens_per_frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaskMode {
    /// Every key.
    Full,
    /// Keys of the same frame.
    Spatial,
    /// Keys at the same spatial position, in every frame.
    Temporal,
}

/// Sizes of one attention call. Layout of q/out: `[batch, seq_q, heads, head_dim]`; of k/v:
/// `[batch, seq_kv, heads, head_dim]` (exactly Wan's `[B, S, H·D]`, no permute needed); of lse:
/// `[batch, heads, seq_q]`. `Spatial`/`Temporal` need `seq_q == seq_kv` divisible by
/// `tokens_per_frame`; `Full` ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnDims {
    pub batch: usize,
    pub heads: usize,
    pub seq_q: usize,
    pub seq_kv: usize,
    pub head_dim: usize,
    pub tokens_per_frame: usize,
}

/// Forward: `out = softmax(q·kᵀ·scale  masked) · v`, `lse` = per-row log-sum-exp of the scaled,
/// masked logits.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) -> crate::Result<()> {
    unimplemented!()
}

/// Backward given the forward's `out` and `lse`: overwrites `dq`, `dk`, `dv`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    d_out: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) -> crate::Result<()> {
    unimplemented!()
}

/// Per-head statistics of the attention map `A = softmax(q·kᵀ·scale)` (full, unmasked) against the
/// spatial and temporal pseudo masks, summed over the batch and all query rows, computed streaming.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HeadMapStats {
    /// cos(A, M_spatial) = ⟨A, M_s⟩ / (‖A‖·‖M_s‖), M_s = same frame.
    pub cos_spatial: f64,
    /// cos(A, M_temporal), M_t = same spatial position, other frame.
    pub cos_temporal: f64,
    /// Mean attention mass per query row inside M_s (the released code's w_s).
    pub mass_spatial: f64,
    /// Mean attention mass per query row inside M_t (w_t).
    pub mass_temporal: f64,
}

/// Computes [`HeadMapStats`] for every head (result index = head). Requires `seq_q == seq_kv`.
pub fn attention_map_stats(
    dims: AttnDims,
    scale: f32,
    q: &[f32],
    k: &[f32],
) -> crate::Result<Vec<HeadMapStats>> {
    unimplemented!()
}
