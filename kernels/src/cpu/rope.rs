//! 3D rotary position embedding over a (frame, row, column) token grid, exactly as Wan: head_dim
//! split t/h/w = D − 4⌊D/6⌋ / 2⌊D/6⌋ / 2⌊D/6⌋, per-axis frequencies θ^(−2i/d_axis), interleaved
//! pairs (2k, 2k+1). Positions are real numbers so a sparse subset of frames can keep its place
//! on the full timeline (adaptive RoPE).

/// (t, h, w) widths of the head-dim split.
pub fn rope_split(head_dim: usize) -> (usize, usize, usize) {
    unimplemented!()
}

/// Per-token, per-pair rotation: `cos`/`sin` are `[seq, head_dim/2]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeTable {
    pub seq: usize,
    pub head_dim: usize,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

/// Builds the table for tokens at `positions` (t, h, w). Angles and cos/sin are computed in f64 and
/// rounded to f32 (as diffusers does). Errors if head_dim is odd or a split part is odd.
pub fn rope_table(positions: &[[f64; 3]], head_dim: usize, theta: f64) -> crate::Result<RopeTable> {
    unimplemented!()
}

/// Positions of a frame-major `frames × height × width` grid. `frame_positions` (len `frames`)
/// overrides the temporal position of each frame; `None` means 0, 1, 2, ….
pub fn grid_positions(
    frames: usize,
    height: usize,
    width: usize,
    frame_positions: Option<&[f64]>,
) -> Vec<[f64; 3]> {
    unimplemented!()
}

/// Rotates `x` (`[batch, seq, heads, head_dim]`) by the table's angles into `out`; with `inverse`
/// it rotates by the negative angles (the backward pass).
pub fn rope_apply(
    x: &[f32],
    batch: usize,
    heads: usize,
    table: &RopeTable,
    inverse: bool,
    out: &mut [f32],
) -> crate::Result<()> {
    unimplemented!()
}
