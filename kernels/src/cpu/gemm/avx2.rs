//! AVX2+FMA micro-kernel: a 6×16 tile of C held in 12 ymm accumulators.
//!
//! Per k step it loads two 8-wide vectors of the B panel and broadcasts 6 values of the A panel:
//! 12 independent FMAs cover the FMA latency, and 12 + 2 + 1 = 15 of the 16 ymm registers are used.
//! Blocking: a `kc·16` B panel (16 KiB) stays in L1, the `mc·kc` A block (288 KiB) in L2.

use super::micro::MicroKernel;
use super::pack::{self, Operand};
use std::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;

pub(super) static KERNEL: MicroKernel = MicroKernel {
    mr: MR,
    nr: NR,
    mc: MR * 48,
    kc: 256,
    nc: 1024,
    pack: pack_panel,
    direct_tiles: &[],
    narrow: None,
    tiles: &[
        tile::<1>, tile::<2>, tile::<3>, tile::<4>, tile::<5>, tile::<6>,
    ],
};

/// # Safety
/// See [`super::micro::TileFn`]; the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias: *const f32,
) {
    for i in 0..R {
        _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + NR - 1) as *const i8);
    }
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for _ in 0..kc {
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        for (i, acc_row) in acc.iter_mut().enumerate() {
            let a_i = _mm256_broadcast_ss(&*a.add(i));
            acc_row[0] = _mm256_fmadd_ps(a_i, b0, acc_row[0]);
            acc_row[1] = _mm256_fmadd_ps(a_i, b1, acc_row[1]);
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    let alpha = _mm256_set1_ps(alpha);
    let beta_v = _mm256_set1_ps(beta);
    let bias_v = [0, 1].map(|j| {
        if bias.is_null() {
            _mm256_setzero_ps()
        } else {
            _mm256_loadu_ps(bias.add(8 * j))
        }
    });
    for (i, acc_row) in acc.iter().enumerate() {
        let c_row = c.add(i * ldc);
        for (j, &v) in acc_row.iter().enumerate() {
            let c_ij = c_row.add(8 * j);
            let scaled = _mm256_fmadd_ps(alpha, v, bias_v[j]);
            let out = if beta == 0.0 {
                scaled
            } else {
                _mm256_fmadd_ps(beta_v, _mm256_loadu_ps(c_ij), scaled)
            };
            _mm256_storeu_ps(c_ij, out);
        }
    }
}

/// [`super::pack::PanelPacker`] with AVX2: 8×8 register transposes when each line is contiguous
/// along k; the portable copy when the panel's lines are adjacent in memory.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn pack_panel(src: Operand, used: usize, depth: usize, width: usize, panel: &mut [f32]) {
    if src.row_stride == 1 {
        pack::pack_panel(src, used, depth, width, panel);
        return;
    }
    debug_assert_eq!(src.col_stride, 1);
    assert!(used <= width && panel.len() >= depth * width && depth > 0);
    if used > 0 {
        assert!(src.data.len() >= (used - 1) * src.row_stride + depth);
    }
    let dst = panel.as_mut_ptr();
    for x0 in (0..width).step_by(8) {
        let lanes = (width - x0).min(8);
        let present = used.saturating_sub(x0).min(8);
        for k0 in (0..depth).step_by(8) {
            let steps = (depth - k0).min(8);
            let mut block = [_mm256_setzero_ps(); 8];
            for (x, row) in block.iter_mut().enumerate().take(present) {
                // SAFETY: line x0 + x < used holds `depth` values from its start (checked above);
                // the mask keeps the load inside them.
                let line = src.data.as_ptr().add((x0 + x) * src.row_stride + k0);
                *row = _mm256_maskload_ps(line, lane_mask(steps));
            }
            let columns = transpose8(block);
            for (j, column) in columns.iter().enumerate().take(steps) {
                // SAFETY: row k0 + j < depth of the panel, lanes x0..x0 + lanes ≤ width.
                _mm256_maskstore_ps(dst.add((k0 + j) * width + x0), lane_mask(lanes), *column);
            }
        }
    }
}

/// Lanes `0..lanes` set (sign bit), for masked loads and stores.
#[target_feature(enable = "avx2")]
unsafe fn lane_mask(lanes: usize) -> __m256i {
    let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), index)
}

/// Transposes an 8×8 block: `out[j]` lane `i` = `rows[i]` lane `j`. Pairs of rows are interleaved,
/// then 64-bit pairs are combined, then 128-bit halves are exchanged.
#[target_feature(enable = "avx2")]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let mut t = [_mm256_setzero_ps(); 8];
    for i in (0..8).step_by(2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    // u[4g + j] holds element j (and j + 4 in the upper half) of rows 4g..4g + 4.
    let mut u = [_mm256_setzero_ps(); 8];
    for g in [0, 4] {
        u[g] = _mm256_shuffle_ps::<0x44>(t[g], t[g + 2]);
        u[g + 1] = _mm256_shuffle_ps::<0xee>(t[g], t[g + 2]);
        u[g + 2] = _mm256_shuffle_ps::<0x44>(t[g + 1], t[g + 3]);
        u[g + 3] = _mm256_shuffle_ps::<0xee>(t[g + 1], t[g + 3]);
    }
    let mut out = [_mm256_setzero_ps(); 8];
    for j in 0..4 {
        out[j] = _mm256_permute2f128_ps::<0x20>(u[j], u[4 + j]);
        out[4 + j] = _mm256_permute2f128_ps::<0x31>(u[j], u[4 + j]);
    }
    out
}
