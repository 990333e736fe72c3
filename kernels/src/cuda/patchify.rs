//! The CUDA twins of [`crate::cpu::patchify`]: a video [B, C, F, H, W] and its tokens
//! [B, F'·H'·W', P·C] are two orders of the same eight indices (b, f', h', w', c, i, j, k), so
//! each direction is one strided copy (layout.cu) over that 8-d index space.

use cudarc::driver::CudaSlice;

use super::dtype::CudaFloat;
use super::layout::{strided_copy, WalkDim};
use super::CudaDevice;
use crate::cpu::patchify::patch_grid;
pub use crate::cpu::patchify::{PatchOrder, PatchSize, VideoDims};
use crate::Result;

/// The eight axes in token order, each with its (video stride, token stride).
fn walk(
    d: VideoDims,
    p: PatchSize,
    order: PatchOrder,
    grid: (usize, usize, usize),
) -> Vec<WalkDim> {
    let (fp, hp, wp) = grid;
    let (hw, fhw) = (d.height * d.width, d.frames * d.height * d.width);
    let feat = p.t * p.h * p.w * d.channels;
    // Token-major axes: (b, f', h', w') then the feature axes in the order's layout.
    let mut axes = vec![
        (d.batch, d.channels * fhw),
        (fp, p.t * hw),
        (hp, p.h * d.width),
        (wp, p.w),
    ];
    let (c, i, j, k) = ((d.channels, fhw), (p.t, hw), (p.h, d.width), (p.w, 1));
    match order {
        PatchOrder::ChannelFirst => axes.extend([c, i, j, k]),
        PatchOrder::ChannelLast => axes.extend([i, j, k, c]),
    }
    // Token strides: row-major over the axes above (the features of a token are contiguous).
    let mut token_stride = vec![0; axes.len()];
    let mut s = 1;
    for a in (0..axes.len()).rev() {
        token_stride[a] = s;
        s *= axes[a].0;
    }
    debug_assert_eq!(token_stride[3], feat);
    axes.iter()
        .zip(token_stride)
        .map(|(&(len, video), token)| WalkDim {
            len,
            src: video,
            dst: token,
        })
        .collect()
}

/// Video [B, C, F, H, W] → tokens [B, F'·H'·W', P·C] in `order`.
pub fn patchify<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    dims: VideoDims,
    patch: PatchSize,
    order: PatchOrder,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda patchify";
    let grid = patch_grid(OP, dims, patch, order, x.len(), out.len())?;
    strided_copy(
        dev,
        OP,
        x,
        0,
        out,
        0,
        &walk(dims, patch, order, grid),
        false,
    )
}

/// Tokens → video, the exact inverse of [`patchify`] with the same order.
pub fn unpatchify<T: CudaFloat>(
    dev: &CudaDevice,
    tokens: &CudaSlice<T>,
    dims: VideoDims,
    patch: PatchSize,
    order: PatchOrder,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda unpatchify";
    let grid = patch_grid(OP, dims, patch, order, out.len(), tokens.len())?;
    let swapped: Vec<WalkDim> = walk(dims, patch, order, grid)
        .into_iter()
        .map(|d| WalkDim {
            len: d.len,
            src: d.dst,
            dst: d.src,
        })
        .collect();
    strided_copy(dev, OP, tokens, 0, out, 0, &swapped, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::layout::simulate_walk;

    #[test]
    fn the_eight_axis_walk_is_the_cpu_patchify_and_its_inverse() {
        let d = VideoDims {
            batch: 2,
            channels: 3,
            frames: 4,
            height: 6,
            width: 10,
        };
        let n = 2 * 3 * 4 * 6 * 10;
        let x: Vec<f32> = (0..n).map(|v| v as f32).collect();
        for (p, order) in [
            (PatchSize { t: 1, h: 2, w: 2 }, PatchOrder::ChannelFirst),
            (PatchSize { t: 2, h: 3, w: 5 }, PatchOrder::ChannelLast),
        ] {
            let mut want = vec![0.0; n];
            crate::cpu::patchify::patchify(&x, d, p, order, &mut want).unwrap();
            let grid = patch_grid("test", d, p, order, n, n).unwrap();
            let mut got = vec![0.0; n];
            simulate_walk(&x, 0, &mut got, 0, &walk(d, p, order, grid));
            assert_eq!(got, want, "{p:?} {order:?}");
        }
    }
}
