//! AVX2+FMA micro-kernel: a 6×16 tile of C held in 12 ymm accumulators.
//!
//! Per k step it loads two 8-wide vectors of the B panel and broadcasts 6 values of the A panel:
//! 12 independent FMAs cover the FMA latency, and 12 + 2 + 1 = 15 of the 16 ymm registers are used.
//! Blocking: a `kc·16` B panel (16 KiB) stays in L1, the `mc·kc` A block (288 KiB) in L2.

use super::micro::MicroKernel;
use super::pack::pack_panel;
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
    tiles: &[
        tile::<1>, tile::<2>, tile::<3>, tile::<4>, tile::<5>, tile::<6>,
    ],
};

/// # Safety
/// See [`super::micro::TileFn`]; the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize>(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
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
    for (i, acc_row) in acc.iter().enumerate() {
        let c_row = c.add(i * ldc);
        for (j, &v) in acc_row.iter().enumerate() {
            let c_ij = c_row.add(8 * j);
            let scaled = _mm256_mul_ps(alpha, v);
            let out = if beta == 0.0 {
                scaled
            } else {
                _mm256_fmadd_ps(beta_v, _mm256_loadu_ps(c_ij), scaled)
            };
            _mm256_storeu_ps(c_ij, out);
        }
    }
}
