//! Patchify / unpatchify of a `[B, C, F, H, W]` video into `[B, S, P·C]` tokens, S = F'·H'·W'
//! frame-major, P = pt·ph·pw. Wan's patch embedding flattens each patch channel-first (c, i, j, k);
//! its output head unflattens channel-last (i, j, k, c). Each direction is the other's backward.
//!
//! Both directions write their output contiguously and gather their input: patchify one row of
//! tokens (fixed b, f', h') per step, unpatchify one video row (fixed b, c, f, h) per step.

use crate::cpu::elementwise::par_chunks_mut;
use crate::ensure_shape;

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

/// The derived sizes of one patchify/unpatchify call, after validation.
struct Grid {
    d: VideoDims,
    p: PatchSize,
    order: PatchOrder,
    /// Post-patch grid F', H', W'.
    fp: usize,
    hp: usize,
    wp: usize,
    /// Features per token, P·C.
    feat: usize,
}

impl Grid {
    fn new(
        op: &'static str,
        d: VideoDims,
        p: PatchSize,
        order: PatchOrder,
        video_len: usize,
        tokens_len: usize,
    ) -> crate::Result<Self> {
        ensure_shape!(
            p.t > 0 && p.h > 0 && p.w > 0,
            op,
            "patch {}x{}x{} has a zero size",
            p.t,
            p.h,
            p.w
        );
        ensure_shape!(
            d.frames.is_multiple_of(p.t)
                && d.height.is_multiple_of(p.h)
                && d.width.is_multiple_of(p.w),
            op,
            "video frames x height x width {}x{}x{} is not divisible by the patch {}x{}x{}",
            d.frames,
            d.height,
            d.width,
            p.t,
            p.h,
            p.w
        );
        let g = Grid {
            d,
            p,
            order,
            fp: d.frames / p.t,
            hp: d.height / p.h,
            wp: d.width / p.w,
            feat: p.t * p.h * p.w * d.channels,
        };
        let video = d.batch * d.channels * d.frames * d.height * d.width;
        let tokens = d.batch * g.fp * g.hp * g.wp * g.feat;
        ensure_shape!(
            video_len == video && tokens_len == tokens,
            op,
            "video [B {}, C {}, F {}, H {}, W {}] needs {video} elements (got {video_len}) and \
             its tokens [B {}, S {}, P·C {}] need {tokens} (got {tokens_len})",
            d.batch,
            d.channels,
            d.frames,
            d.height,
            d.width,
            d.batch,
            g.fp * g.hp * g.wp,
            g.feat
        );
        Ok(g)
    }

    /// Index of feature (c, i, j, k) inside a token.
    #[inline(always)]
    fn feature(&self, c: usize, i: usize, j: usize, k: usize) -> usize {
        let (p, ch) = (self.p, self.d.channels);
        match self.order {
            PatchOrder::ChannelFirst => ((c * p.t + i) * p.h + j) * p.w + k,
            PatchOrder::ChannelLast => ((i * p.h + j) * p.w + k) * ch + c,
        }
    }

    /// Start of video row (b, c, frame f, row h).
    #[inline(always)]
    fn video_row(&self, b: usize, c: usize, f: usize, h: usize) -> usize {
        let d = self.d;
        (((b * d.channels + c) * d.frames + f) * d.height + h) * d.width
    }
}

/// Video → tokens. Errors unless F, H, W are divisible by the patch.
pub fn patchify(
    x: &[f32],
    dims: VideoDims,
    patch: PatchSize,
    order: PatchOrder,
    out: &mut [f32],
) -> crate::Result<()> {
    let g = Grid::new("patchify", dims, patch, order, x.len(), out.len())?;
    // One step = the W' tokens of (b, f', h').
    let step = g.wp * g.feat;
    if step == 0 {
        return Ok(());
    }
    let p = g.p;
    let steps_per_task = ((1 << 14) / step).max(1);
    par_chunks_mut(out, steps_per_task * step, |off, o| {
        for (n, tokens) in o.chunks_exact_mut(step).enumerate() {
            let row = off / step + n;
            let (hq, rest) = (row % g.hp, row / g.hp);
            let (fq, b) = (rest % g.fp, rest / g.fp);
            for c in 0..g.d.channels {
                for i in 0..p.t {
                    for j in 0..p.h {
                        let src = g.video_row(b, c, fq * p.t + i, hq * p.h + j);
                        let src = &x[src..src + g.d.width];
                        for (wq, patch) in src.chunks_exact(p.w).enumerate() {
                            let token = &mut tokens[wq * g.feat..(wq + 1) * g.feat];
                            for (k, &v) in patch.iter().enumerate() {
                                token[g.feature(c, i, j, k)] = v;
                            }
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

/// Tokens → video (exact inverse of [`patchify`] with the same order).
pub fn unpatchify(
    tokens: &[f32],
    dims: VideoDims,
    patch: PatchSize,
    order: PatchOrder,
    out: &mut [f32],
) -> crate::Result<()> {
    let g = Grid::new("unpatchify", dims, patch, order, out.len(), tokens.len())?;
    // One step = video row (b, c, f, h).
    let step = g.d.width;
    if step == 0 || out.is_empty() {
        return Ok(());
    }
    let p = g.p;
    let steps_per_task = ((1 << 14) / step).max(1);
    par_chunks_mut(out, steps_per_task * step, |off, o| {
        for (n, dst) in o.chunks_exact_mut(step).enumerate() {
            let row = off / step + n;
            let (h, rest) = (row % g.d.height, row / g.d.height);
            let (f, rest) = (rest % g.d.frames, rest / g.d.frames);
            let (c, b) = (rest % g.d.channels, rest / g.d.channels);
            let (fq, i, hq, j) = (f / p.t, f % p.t, h / p.h, h % p.h);
            let first_token = ((b * g.fp + fq) * g.hp + hq) * g.wp;
            for (wq, patch) in dst.chunks_exact_mut(p.w).enumerate() {
                let token = (first_token + wq) * g.feat;
                let token = &tokens[token..token + g.feat];
                for (k, v) in patch.iter_mut().enumerate() {
                    *v = token[g.feature(c, i, j, k)];
                }
            }
        }
    });
    Ok(())
}

/// Validates a [`patchify`] / [`unpatchify`] call (named `op` in errors) without running it;
/// returns the post-patch grid (F', H', W'). For the CUDA launchers.
pub(crate) fn patch_grid(
    op: &'static str,
    dims: VideoDims,
    patch: PatchSize,
    order: PatchOrder,
    video_len: usize,
    tokens_len: usize,
) -> crate::Result<(usize, usize, usize)> {
    let g = Grid::new(op, dims, patch, order, video_len, tokens_len)?;
    Ok((g.fp, g.hp, g.wp))
}
