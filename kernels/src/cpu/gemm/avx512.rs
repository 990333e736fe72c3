//! AVX-512 micro-kernel: a 14×32 tile of C held in 28 zmm accumulators (and a 14×16 one for
//! narrow products).
//!
//! Per k step it loads two 16-wide vectors of the B panel and broadcasts 14 values of the A panel,
//! feeding 28 independent FMAs: enough to cover the 4-cycle FMA latency on both FMA ports, with
//! 28 + 2 B vectors + 1 broadcast = 31 of the 32 zmm registers in use.
//! Blocking: a `kc·32` B panel (32 KiB at kc = 256) stays in the 48 KiB L1 while the A panels
//! (`kc·14`) stream from L2, where the `mc·kc` A block (336 KiB) lives.

use super::micro::MicroKernel;
use super::pack::Operand;
use std::arch::x86_64::*;

const MR: usize = 14;
const NR: usize = 32;

pub(super) static KERNEL: MicroKernel = MicroKernel {
    mr: MR,
    nr: NR,
    mc: MR * 24,
    kc: 256,
    nc: 1024,
    pack: pack_panel,
    tiles: &[
        tile::<1, 2>,
        tile::<2, 2>,
        tile::<3, 2>,
        tile::<4, 2>,
        tile::<5, 2>,
        tile::<6, 2>,
        tile::<7, 2>,
        tile::<8, 2>,
        tile::<9, 2>,
        tile::<10, 2>,
        tile::<11, 2>,
        tile::<12, 2>,
        tile::<13, 2>,
        tile::<14, 2>,
    ],
    direct_tiles: &[
        tile_direct::<1, 2>,
        tile_direct::<2, 2>,
        tile_direct::<3, 2>,
        tile_direct::<4, 2>,
        tile_direct::<5, 2>,
        tile_direct::<6, 2>,
        tile_direct::<7, 2>,
        tile_direct::<8, 2>,
        tile_direct::<9, 2>,
        tile_direct::<10, 2>,
        tile_direct::<11, 2>,
        tile_direct::<12, 2>,
        tile_direct::<13, 2>,
        tile_direct::<14, 2>,
    ],
    narrow: Some(&NARROW),
};

/// The same kernel with a 14×16 tile (one vector per row), for products with at most 16 columns
/// (LoRA factors of rank ≤ 16): the 32-wide tile would spend half or more of its FMAs on padding.
/// 14 accumulators still cover the FMA latency on both ports; the 14 broadcasts per k step then
/// bound it at about one k step per 7 cycles, twice the useful rate of the wide tile at n ≤ 16.
static NARROW: MicroKernel = MicroKernel {
    mr: MR,
    nr: 16,
    mc: MR * 24,
    kc: 256,
    nc: 1024,
    pack: pack_panel,
    tiles: &[
        tile::<1, 1>,
        tile::<2, 1>,
        tile::<3, 1>,
        tile::<4, 1>,
        tile::<5, 1>,
        tile::<6, 1>,
        tile::<7, 1>,
        tile::<8, 1>,
        tile::<9, 1>,
        tile::<10, 1>,
        tile::<11, 1>,
        tile::<12, 1>,
        tile::<13, 1>,
        tile::<14, 1>,
    ],
    direct_tiles: &[
        tile_direct::<1, 1>,
        tile_direct::<2, 1>,
        tile_direct::<3, 1>,
        tile_direct::<4, 1>,
        tile_direct::<5, 1>,
        tile_direct::<6, 1>,
        tile_direct::<7, 1>,
        tile_direct::<8, 1>,
        tile_direct::<9, 1>,
        tile_direct::<10, 1>,
        tile_direct::<11, 1>,
        tile_direct::<12, 1>,
        tile_direct::<13, 1>,
        tile_direct::<14, 1>,
    ],
    narrow: None,
};

/// An `R × 16·NV` tile from packed panels (A panel width [`MR`], B panel width `16·NV`).
///
/// # Safety
/// See [`super::micro::TileFn`]; the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const NV: usize>(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias: *const f32,
) {
    prefetch_c::<R, NV>(c, ldc);
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    for _ in 0..kc {
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, b_v) in bv.iter_mut().enumerate() {
            *b_v = _mm512_loadu_ps(b.add(16 * v));
        }
        for (i, acc_row) in acc.iter_mut().enumerate() {
            let a_i = _mm512_set1_ps(*a.add(i));
            for (acc_v, &b_v) in acc_row.iter_mut().zip(&bv) {
                *acc_v = _mm512_fmadd_ps(a_i, b_v, *acc_v);
            }
        }
        a = a.add(MR);
        b = b.add(16 * NV);
    }
    store_tile(&acc, c, ldc, alpha, beta, bias);
}

/// [`super::micro::DirectTileFn`]: as [`tile`], with row `i` of A read in place at `a + i·lda`.
/// The row addresses are a chain of adds per k step (14 rows need more registers than there are
/// to hold them apart); the integer ports have room for it beside the FMAs.
///
/// # Safety
/// See [`super::micro::DirectTileFn`]; the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_direct<const R: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    mut b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias: *const f32,
) {
    prefetch_c::<R, NV>(c, ldc);
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    for p in 0..kc {
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, b_v) in bv.iter_mut().enumerate() {
            *b_v = _mm512_loadu_ps(b.add(16 * v));
        }
        let mut row = a.add(p);
        for acc_row in acc.iter_mut() {
            let a_i = _mm512_set1_ps(*row);
            row = row.wrapping_add(lda);
            for (acc_v, &b_v) in acc_row.iter_mut().zip(&bv) {
                *acc_v = _mm512_fmadd_ps(a_i, b_v, *acc_v);
            }
        }
        b = b.add(16 * NV);
    }
    store_tile(&acc, c, ldc, alpha, beta, bias);
}

/// Warms the C rows so their misses overlap the k loop instead of stalling the stores.
#[inline(always)]
unsafe fn prefetch_c<const R: usize, const NV: usize>(c: *mut f32, ldc: usize) {
    for i in 0..R {
        _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 16 * NV - 1) as *const i8);
    }
}

/// `C = alpha · acc + beta · C + bias` for an `R × 16·NV` tile (C not read when `beta == 0`,
/// no bias when `bias` is null).
#[inline(always)]
unsafe fn store_tile<const R: usize, const NV: usize>(
    acc: &[[__m512; NV]; R],
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias: *const f32,
) {
    let alpha = _mm512_set1_ps(alpha);
    let beta_v = _mm512_set1_ps(beta);
    let mut bias_v = [_mm512_setzero_ps(); NV];
    if !bias.is_null() {
        for (j, b_j) in bias_v.iter_mut().enumerate() {
            *b_j = _mm512_loadu_ps(bias.add(16 * j));
        }
    }
    for (i, acc_row) in acc.iter().enumerate() {
        let c_row = c.add(i * ldc);
        for (j, &v) in acc_row.iter().enumerate() {
            let c_ij = c_row.add(16 * j);
            let scaled = _mm512_fmadd_ps(alpha, v, bias_v[j]);
            let out = if beta == 0.0 {
                scaled
            } else {
                _mm512_fmadd_ps(beta_v, _mm512_loadu_ps(c_ij), scaled)
            };
            _mm512_storeu_ps(c_ij, out);
        }
    }
}

/// [`super::pack::PanelPacker`] with AVX-512: masked 16-wide copies when the panel's lines are
/// adjacent in memory, 16×16 register transposes when each line is contiguous along k.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn pack_panel(src: Operand, used: usize, depth: usize, width: usize, panel: &mut [f32]) {
    assert!(used <= width && panel.len() >= depth * width && depth > 0);
    let dst = panel.as_mut_ptr();
    if src.row_stride == 1 {
        assert!(src.data.len() >= (depth - 1) * src.col_stride + used);
        for k in 0..depth {
            let (from, to) = (
                src.data.as_ptr().add(k * src.col_stride),
                dst.add(k * width),
            );
            for x0 in (0..width).step_by(16) {
                let lanes = (width - x0).min(16);
                let present = used.saturating_sub(x0).min(16);
                // SAFETY: the masks keep the load inside line k's `used` values (checked above)
                // and the store inside the panel's row k.
                let v = _mm512_maskz_loadu_ps(lane_mask(present), from.wrapping_add(x0));
                _mm512_mask_storeu_ps(to.add(x0), lane_mask(lanes), v);
            }
        }
        return;
    }
    debug_assert_eq!(src.col_stride, 1);
    if used > 0 {
        assert!(src.data.len() >= (used - 1) * src.row_stride + depth);
    }
    for x0 in (0..width).step_by(16) {
        let lanes = (width - x0).min(16);
        let present = used.saturating_sub(x0).min(16);
        for k0 in (0..depth).step_by(16) {
            let steps = (depth - k0).min(16);
            let mut block = [_mm512_setzero_ps(); 16];
            for (x, row) in block.iter_mut().enumerate().take(present) {
                // SAFETY: line x0 + x < used holds `depth` values from its start (checked above).
                let line = src.data.as_ptr().add((x0 + x) * src.row_stride + k0);
                *row = _mm512_maskz_loadu_ps(lane_mask(steps), line);
                _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(PREFETCH_AHEAD) as *const i8);
            }
            let columns = transpose16(block);
            for (j, column) in columns.iter().enumerate().take(steps) {
                // SAFETY: row k0 + j < depth of the panel, lanes x0.. x0 + lanes ≤ width.
                _mm512_mask_storeu_ps(dst.add((k0 + j) * width + x0), lane_mask(lanes), *column);
            }
        }
    }
}

/// How far ahead along a line (in floats: four cache lines) the transposing packer prefetches.
/// The 14 or 32 lines it reads at once are too many interleaved streams for the hardware
/// prefetchers to follow well when A or B comes from L3 or memory.
const PREFETCH_AHEAD: usize = 64;

pub(crate) fn lane_mask(lanes: usize) -> __mmask16 {
    ((1u32 << lanes) - 1) as __mmask16
}

/// Transposes a 16×16 block: `out[j]` lane `i` = `rows[i]` lane `j`. Pairs of rows are
/// interleaved at 32-bit, then 64-bit granularity, then 128-bit lanes are gathered in two steps.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in (0..16).step_by(2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    // After this step, u[4g + j] holds element j (+4, +8, +12 in the other 128-bit lanes) of rows
    // 4g..4g + 4.
    let mut u = [_mm512_setzero_ps(); 16];
    for g in (0..16).step_by(4) {
        let pd = |v: __m512| _mm512_castps_pd(v);
        u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[g]), pd(t[g + 2])));
        u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[g]), pd(t[g + 2])));
        u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[g + 1]), pd(t[g + 3])));
        u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[g + 1]), pd(t[g + 3])));
    }
    // Lanes 0 and 2 / 1 and 3 of row groups (0, 1) and (2, 3).
    let mut v = [_mm512_setzero_ps(); 16];
    for j in 0..4 {
        v[j] = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
        v[4 + j] = _mm512_shuffle_f32x4::<0xdd>(u[j], u[4 + j]);
        v[8 + j] = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
        v[12 + j] = _mm512_shuffle_f32x4::<0xdd>(u[8 + j], u[12 + j]);
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for j in 0..4 {
        out[j] = _mm512_shuffle_f32x4::<0x88>(v[j], v[8 + j]);
        out[8 + j] = _mm512_shuffle_f32x4::<0xdd>(v[j], v[8 + j]);
        out[4 + j] = _mm512_shuffle_f32x4::<0x88>(v[4 + j], v[12 + j]);
        out[12 + j] = _mm512_shuffle_f32x4::<0xdd>(v[4 + j], v[12 + j]);
    }
    out
}
