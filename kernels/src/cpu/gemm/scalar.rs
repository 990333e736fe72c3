//! Portable micro-kernel: a 4×8 tile of scalar accumulators that the compiler is free to map onto
//! whatever vector registers the target has. Used on CPUs without AVX2 and on other architectures.

use super::micro::MicroKernel;
use super::pack::pack_panel;

const MR: usize = 4;
const NR: usize = 8;

pub(super) static KERNEL: MicroKernel = MicroKernel {
    mr: MR,
    nr: NR,
    mc: 128,
    kc: 256,
    nc: 1024,
    pack: pack_panel,
    direct_tiles: &[],
    narrow: None,
    tiles: &[tile::<1>, tile::<2>, tile::<3>, tile::<4>],
};

/// # Safety
/// See [`TileFn`].
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias: *const f32,
) {
    // SAFETY: the caller guarantees `kc` panel steps in `a` and `b`.
    let a = std::slice::from_raw_parts(a, kc * MR);
    let b = std::slice::from_raw_parts(b, kc * NR);
    let mut acc = [[0.0f32; NR]; R];
    for (a_k, b_k) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (acc_row, &a_ik) in acc.iter_mut().zip(a_k) {
            for (acc_ij, &b_kj) in acc_row.iter_mut().zip(b_k) {
                // Not `mul_add`: without hardware FMA that is a slow library call.
                *acc_ij += a_ik * b_kj;
            }
        }
    }
    let bias = if bias.is_null() {
        [0.0; NR]
    } else {
        // SAFETY: a non-null bias holds NR values (caller's guarantee).
        std::ptr::read_unaligned(bias as *const [f32; NR])
    };
    for (i, acc_row) in acc.iter().enumerate() {
        // SAFETY: the caller guarantees `R` rows of `NR` values at stride `ldc`.
        let c_row = std::slice::from_raw_parts_mut(c.add(i * ldc), NR);
        for ((c_ij, &v), &b_j) in c_row.iter_mut().zip(acc_row).zip(&bias) {
            *c_ij = if beta == 0.0 {
                alpha * v + b_j
            } else {
                alpha * v + beta * *c_ij + b_j
            };
        }
    }
}
