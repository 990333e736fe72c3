//! Patchify / unpatchify of a `[B, C, F, H, W]` video into `[B, S, P·C]` tokens, S = F'·H'·W'
//! frame-major, P = pt·ph·pw. Wan's patch embedding flattens each patch channel-first (c, i, j, k);
//! its output head unflattens channel-last (i, j, k, c). Each direction is the other's backward.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoDims {
    pub batch: usize,
    pub channels: usize,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

/// Patch size (frames, rows, cols).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchSize {
    pub t: usize,
    pub h: usize,
    pub w: usize,
}

/// Order of the features inside one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchOrder {
    /// (c, i, j, k): the Conv3d patch embedding's order.
    ChannelFirst,
    /// (i, j, k, c): Wan's output unpatchify order.
    ChannelLast,
}

/// Video → tokens. Errors unless F, H, W are divisible by the patch.
pub fn patchify(
    x: &[f32],
    dims: VideoDims,
    patch: PatchSize,
    order: PatchOrder,
    out: &mut [f32],
) -> crate::Result<()> {
    unimplemented!()
}

/// Tokens → video (exact inverse of [`patchify`] with the same order).
pub fn unpatchify(
    tokens: &[f32],
    dims: VideoDims,
    patch: PatchSize,
    order: PatchOrder,
    out: &mut [f32],
) -> crate::Result<()> {
    unimplemented!()
}
