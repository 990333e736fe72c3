//! How one attention call splits into independent dense problems, and where their rows live.
//!
//! Every mask mode is a set of *groups*, each a dense (unmasked) attention between a list of query
//! tokens and a list of key tokens: `Full` is one group of all tokens; `Spatial` is one group per
//! frame (contiguous tokens); `Temporal` is one group per spatial position (the frame-many tokens at
//! stride `tokens_per_frame`). Masked-out pairs are therefore never visited at all.

use super::simd::{copy_scaled_row, Simd};
use super::{AttnDims, MaskMode};
use std::cell::RefCell;

/// Query rows per tile.
pub(super) const TILE_Q: usize = 64;
/// Key rows per tile.
pub(super) const TILE_K: usize = 64;

/// The groups of one call and the memory offsets of their rows.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    pub dims: AttnDims,
    /// Independent groups per (batch, head).
    pub groups: usize,
    /// Query tokens per group.
    pub len_q: usize,
    /// Key tokens per group.
    pub len_kv: usize,
    /// Token index of a group's first token is `g · group_step`.
    pub group_step: usize,
    /// Distance in tokens between consecutive tokens of a group.
    pub stride: usize,
    /// `head_dim` padded to a whole number of vectors (the tiles' row length).
    pub dim_padded: usize,
    /// Width of a query tile in the buffers: `TILE_Q`, or the padded group length when shorter
    /// (small temporal groups then cost in proportion to their size).
    pub tile_q: usize,
    /// Width of a key tile in the buffers, likewise.
    pub tile_k: usize,
}

impl Plan {
    /// `dims` must already be validated for `mask`.
    pub(super) fn new(dims: AttnDims, mask: MaskMode) -> Plan {
        let dim_padded = super::simd::round_up(dims.head_dim);
        let tpf = dims.tokens_per_frame;
        let (groups, len_q, len_kv, group_step, stride) = match mask {
            MaskMode::Full => (1, dims.seq_q, dims.seq_kv, 0, 1),
            MaskMode::Spatial => (dims.seq_q / tpf, tpf, tpf, tpf, 1),
            MaskMode::Temporal => (tpf, dims.seq_q / tpf, dims.seq_q / tpf, 1, tpf),
        };
        Plan {
            dims,
            groups,
            len_q,
            len_kv,
            group_step,
            stride,
            dim_padded,
            tile_q: TILE_Q.min(super::simd::round_up(len_q)),
            tile_k: TILE_K.min(super::simd::round_up(len_kv)),
        }
    }

    /// Sequence index of the `i`-th token of group `g`.
    pub(super) fn token(&self, g: usize, i: usize) -> usize {
        g * self.group_step + i * self.stride
    }

    /// Offset in q/out of query `i` of group `g`, batch `b`, head `h`.
    pub(super) fn q_offset(&self, b: usize, h: usize, g: usize, i: usize) -> usize {
        let d = &self.dims;
        ((b * d.seq_q + self.token(g, i)) * d.heads + h) * d.head_dim
    }

    /// Offset in k/v of key `j` of group `g`, batch `b`, head `h`.
    pub(super) fn kv_offset(&self, b: usize, h: usize, g: usize, j: usize) -> usize {
        let d = &self.dims;
        ((b * d.seq_kv + self.token(g, j)) * d.heads + h) * d.head_dim
    }

    /// Offset in lse of query `i` of group `g`.
    pub(super) fn lse_offset(&self, b: usize, h: usize, g: usize, i: usize) -> usize {
        (b * self.dims.heads + h) * self.dims.seq_q + self.token(g, i)
    }

    /// Number of (batch, head, group) problems.
    pub(super) fn problems(&self) -> usize {
        self.dims.batch * self.dims.heads * self.groups
    }

    /// Splits a problem index into (batch, head, group). Heads vary fastest: a token's heads
    /// are adjacent in memory, so consecutive problems (which the pool hands to the same thread
    /// in chunks) share cache lines and the prefetcher's streams instead of each striding alone
    /// through the tensor.
    pub(super) fn problem(&self, p: usize) -> (usize, usize, usize) {
        let h = p % self.dims.heads;
        let bg = p / self.dims.heads;
        (bg / self.groups, h, bg % self.groups)
    }
}

/// Copies `nk` key rows transposed into `kt` (`dp × ldk`, zero in padded rows and columns).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn gather_transposed(
    plan: &Plan,
    src: &[f32],
    b: usize,
    h: usize,
    g: usize,
    j0: usize,
    nk: usize,
    ldk: usize,
    kt: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was detected just above.
        unsafe { gather_transposed_avx512(plan, src, b, h, g, j0, nk, ldk, kt) };
        return;
    }
    let d = plan.dims.head_dim;
    kt[..plan.dim_padded * ldk].fill(0.0);
    for j in 0..nk {
        let row = &src[plan.kv_offset(b, h, g, j0 + j)..][..d];
        for (e, &x) in row.iter().enumerate() {
            kt[e * ldk + j] = x;
        }
    }
}

/// [`gather_transposed`] in 16×16 register transposes: the element-by-element scatter into
/// `kt` was most of the gathering cost of the small-group (spatial, temporal) modes, where every
/// task gathers its own key tile.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn gather_transposed_avx512(
    plan: &Plan,
    src: &[f32],
    b: usize,
    h: usize,
    g: usize,
    j0: usize,
    nk: usize,
    ldk: usize,
    kt: &mut [f32],
) {
    use crate::cpu::gemm::{lane_mask, transpose16};
    use std::arch::x86_64::*;
    let (d, dp) = (plan.dims.head_dim, plan.dim_padded);
    let kt = &mut kt[..dp * ldk];
    // Blocks of 16 keys cover columns up to nk rounded up to 16 (zero past nk); any columns
    // beyond that, and the padded rows d..dp, are zeroed here.
    let covered = nk.div_ceil(16) * 16;
    assert!(covered <= ldk);
    for row in kt.chunks_exact_mut(ldk).take(d) {
        row[covered.min(ldk)..].fill(0.0);
    }
    kt[d * ldk..].fill(0.0);
    for jb in (0..nk).step_by(16) {
        let keys = (nk - jb).min(16);
        for eb in (0..d).step_by(16) {
            let dims = (d - eb).min(16);
            let mut block = [_mm512_setzero_ps(); 16];
            for (x, lanes) in block.iter_mut().enumerate().take(keys) {
                let row = &src[plan.kv_offset(b, h, g, j0 + jb + x)..][..d];
                // SAFETY: the mask keeps the load inside `row[eb..eb + dims]`.
                *lanes = _mm512_maskz_loadu_ps(lane_mask(dims), row.as_ptr().add(eb));
            }
            let cols = transpose16(block);
            for (e, col) in cols.iter().enumerate().take(dims) {
                let dst = &mut kt[(eb + e) * ldk + jb..][..16];
                // SAFETY: `dst` holds 16 floats (bounds checked by the slice).
                _mm512_storeu_ps(dst.as_mut_ptr(), *col);
            }
        }
    }
}

/// Copies `n` rows (tokens `i0..i0+n` of group `g`) into `dst` with row length `dim_padded`,
/// multiplied by `factor`, zero-padded. `offset` maps (b, h, g, i) to the row's offset in `src`.
///
/// # Safety
/// `S` must be supported by the CPU.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gather_rows<S: Simd>(
    plan: &Plan,
    src: &[f32],
    offset: impl Fn(&Plan, usize, usize, usize, usize) -> usize,
    b: usize,
    h: usize,
    g: usize,
    i0: usize,
    n: usize,
    factor: f32,
    dst: &mut [f32],
) {
    let (d, dp) = (plan.dims.head_dim, plan.dim_padded);
    for i in 0..n {
        let row = &src[offset(plan, b, h, g, i0 + i)..][..d];
        let out = &mut dst[i * dp..(i + 1) * dp];
        copy_scaled_row::<S>(row.as_ptr(), out.as_mut_ptr(), d, dp, factor);
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's tile scratch of `len` floats (contents unspecified). Kept per
/// thread so that many small tasks do not each allocate.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// Cuts `buf` into consecutive pieces of the given lengths.
///
/// The tile loops take their scratch this way rather than through a closure because a closure
/// body is not compiled with the enclosing function's `target_feature`, which would leave every
/// intrinsic an out-of-line call.
#[inline(always)]
pub(super) fn carve<const N: usize>(buf: &mut [f32], sizes: [usize; N]) -> [&mut [f32]; N] {
    let mut rest = buf;
    sizes.map(|n| {
        let (piece, tail) = std::mem::take(&mut rest).split_at_mut(n);
        rest = tail;
        piece
    })
}
