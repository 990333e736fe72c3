//! GEMM: our own cache-blocked, register-tiled micro-kernel (AVX-512 / AVX2+FMA picked at run
//! time, scalar fallback), multi-threaded.

/// `C = alpha · op(A) · op(B) + beta · C`, all row-major. `op(A)` is m×k: `A` stored m×k with row
/// stride `lda`, or (when `trans_a`) stored k×m with row stride `lda`. Likewise `op(B)` is k×n.
/// `C` is m×n with row stride `ldc`. With `beta == 0`, `C` is overwritten (NaNs in it ignored).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    unimplemented!()
}

/// `batch` independent [`sgemm`]s; matrix `i` starts at `i·stride_a` / `i·stride_b` / `i·stride_c`.
/// A stride of 0 reuses one matrix for every batch entry (e.g. shared weights).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_batched(
    batch: usize,
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    stride_a: usize,
    b: &[f32],
    ldb: usize,
    stride_b: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    stride_c: usize,
) {
    unimplemented!()
}
