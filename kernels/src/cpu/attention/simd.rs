//! The vector primitives the attention tiles are written in, and the one register-tiled
//! micro-kernel they all use. Every tile product of the forward, the backward and the map
//! statistics is the same shape of GEMM, `C (m×n) (+)= A (m×k) · B (k×n)`, with `A` read one element
//! at a time (broadcast) and `B`, `C` read in 16-float vectors; `n` is always padded to a multiple of
//! [`LANES`] by the callers, so the kernels never need a masked tail. What follows a product
//! elementwise (the forward's online softmax, the backward's `P` and `dS`) is applied to the
//! accumulators in registers before the store ([`scores_online_softmax`], [`gemm_then`]) instead
//! of in a second pass over the stored tile.
//!
//! Three instruction sets, picked once at run time: AVX-512 (intrinsics), AVX2+FMA (portable
//! 16-lane arrays that LLVM lowers to ymm pairs under `target_feature`) and a plain fallback.

/// Floats per vector on every path (AVX2 uses two ymm registers per vector).
pub(super) const LANES: usize = 16;

/// `n` rounded up to a multiple of [`LANES`].
pub(super) fn round_up(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

/// One instruction set. All methods are `unsafe` because they read raw pointers and, for the
/// intrinsic paths, need the CPU feature: callers only use them inside a function compiled with
/// that feature (see the `*_task_*` wrappers), after runtime detection.
pub(super) trait Simd {
    type V: Copy;
    /// Rows of `C` one micro-kernel call keeps in registers.
    const ROWS: usize;
    /// Vectors per row of `C` one micro-kernel call keeps in registers (≤ 4).
    const MAX_NV: usize;
    /// Rows of `C` per micro-kernel call when a row is at most two vectors (≤ 12): `n = 32`
    /// products (head_dim 32: `P·V`, `dV`, `dK`) then keep as many accumulators busy as the
    /// four-vector blocks do, with fewer B loads and loop overhead per FMA.
    const ROWS_NARROW: usize = Self::ROWS;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Loads the first `n` (≤ LANES) floats at `p`; the other lanes are `fill` (nothing past
    /// `p + n` is read). Used for ragged tile edges instead of padding memory, which would make
    /// the next full-vector load stall on store forwarding.
    unsafe fn load_partial(p: *const f32, n: usize, fill: f32) -> Self::V;
    /// Stores the first `n` (< [`LANES`]) lanes of `v` to `p`.
    unsafe fn store_partial(p: *mut f32, n: usize, v: Self::V);
    /// `a·b + c`.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `2^x` to about 2 ulp; exactly 0 for `x ≤ -150` (so `-inf` gives 0), NaN stays NaN.
    unsafe fn exp2(x: Self::V) -> Self::V;
    unsafe fn reduce_sum(v: Self::V) -> f32;
    unsafe fn reduce_max(v: Self::V) -> f32;
    /// [`gemm_generic`] compiled for this instruction set.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    );
}

/// `dst[e] = src[e] · factor` for `e < n`, in whole vectors and one masked tail; then zeros up to
/// `padded` (≥ `n`; past `n` only whole vectors are written). The row copies of the small-group
/// modes (gathers into tiles, write-backs of results) ran as 8-wide loops with scalar tails;
/// this made a 32-frame `Temporal` fwd + bwd 5–10 % faster on one thread (16 % with one head,
/// whose tensors fit in L2; on two threads memory traffic bounds it and nothing changed).
#[inline(always)]
pub(super) unsafe fn copy_scaled_row<S: Simd>(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    padded: usize,
    factor: f32,
) {
    let f = S::splat(factor);
    let mut e = 0;
    while e + LANES <= n {
        S::store(dst.add(e), S::mul(S::load(src.add(e)), f));
        e += LANES;
    }
    if e < n {
        let v = S::mul(S::load_partial(src.add(e), n - e, 0.0), f);
        if e + LANES <= padded {
            S::store(dst.add(e), v);
        } else {
            S::store_partial(dst.add(e), n - e, v);
        }
        e += LANES;
    }
    while e + LANES <= padded {
        S::store(dst.add(e), S::zero());
        e += LANES;
    }
}

/// Cephes' minimax polynomial: `2^f ≈ 1 + f·P(f)` on `[-0.5, 0.5]`.
const EXP2_POLY: [f32; 6] = [
    1.535_336_2e-4,
    1.339_887_4e-3,
    9.618_437e-3,
    5.550_332_5e-2,
    2.402_264_8e-1,
    6.931_472e-1,
];

/// `C (+)= A·B` for an `R × (NV·16)` block of `C` at (`row0`, `col0`), accumulators held in
/// registers across `k`; each result vector passes through `then.map(row, col, v)` before its store.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn gemm_block<S: Simd, const R: usize, const NV: usize, F>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    (row0, col0, then): (usize, usize, &F),
) where
    F: Epilogue<S>,
{
    let mut acc = [[S::zero(); NV]; R];
    if accumulate {
        for r in 0..R {
            for v in 0..NV {
                acc[r][v] = S::load(c.add(r * ldc + v * LANES));
            }
        }
    }
    accumulate_block::<S, R, NV>(k, a, lda, b, ldb, &mut acc);
    for r in 0..R {
        for v in 0..NV {
            let out = then.map(row0 + r, col0 + v * LANES, acc[r][v]);
            S::store(c.add(r * ldc + v * LANES), out);
        }
    }
}

/// `acc += A·B` for an `R × (NV·16)` block: one row of `B` loaded per `k`, each `A` element
/// broadcast against it.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn accumulate_block<S: Simd, const R: usize, const NV: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    acc: &mut [[S::V; NV]; R],
) {
    for p in 0..k {
        let row_b = b.add(p * ldb);
        let mut bv = [S::zero(); NV];
        for v in 0..NV {
            bv[v] = S::load(row_b.add(v * LANES));
        }
        for r in 0..R {
            let av = S::splat(*a.add(r * lda + p));
            for v in 0..NV {
                acc[r][v] = S::fmadd(av, bv[v], acc[r][v]);
            }
        }
    }
}

/// Online-softmax state of a query tile's rows: running max `m` and sum `l` (base 2), and the
/// output accumulator `o` (`m.len()` rows of `ld_o` floats; null when only the sums are wanted).
pub(super) struct SoftmaxRows<'a> {
    pub m: &'a mut [f32],
    pub l: &'a mut [f32],
    pub o: *mut f32,
    pub ld_o: usize,
}

/// One row's step of the online softmax, once the row's new running max and the sum of its
/// `2^(s − new_max)` are known: the running sum rescaled to the new max and grown by `row_sum`,
/// and the output row (when given) rescaled the same way.
#[inline(always)]
pub(super) unsafe fn online_softmax_step<S: Simd>(
    m: &mut f32,
    l: &mut f32,
    new_max: f32,
    row_sum: f32,
    out_row: Option<&mut [f32]>,
) {
    let alpha = exp2_scalar(*m - new_max);
    *l = *l * alpha + row_sum;
    *m = new_max;
    if let Some(out_row) = out_row.filter(|_| alpha != 1.0) {
        scale_row::<S>(out_row, alpha);
    }
}

/// Scores of a query tile against one key tile, `S = Q·Kᵀ` (`Q` rows of stride `ld_q`, `Kᵀ`
/// of stride `ld_k`, `k` deep), folded into the online softmax while they are still in
/// registers: per row the new running max, `s ← 2^(s − max)` written to `s` (stride `ld_s`),
/// the running sum, and the output row rescaled by `2^(old max − new max)`. The same
/// arithmetic as `row_max`, `exp2_shifted_sum` and `scale_row` over a stored score tile, without
/// the two extra passes over it. Every one of the `n` columns must be a real key, and
/// `n ≤ S::MAX_NV · LANES` (one register block spans the whole row): see [`fits_one_block`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores_online_softmax<S: Simd>(
    n: usize,
    k: usize,
    q: *const f32,
    ld_q: usize,
    kt: *const f32,
    ld_k: usize,
    s: *mut f32,
    ld_s: usize,
    rows: SoftmaxRows,
) {
    debug_assert!(fits_one_block::<S>(n, n));
    let nq = rows.m.len();
    let mut row = 0;
    while row < nq {
        let r = (nq - row).min(S::ROWS);
        let (qp, sp) = (q.add(row * ld_q), s.add(row * ld_s));
        let (m, l) = (rows.m[row..].as_mut_ptr(), rows.l[row..].as_mut_ptr());
        let o = if rows.o.is_null() {
            rows.o
        } else {
            rows.o.add(row * rows.ld_o)
        };
        macro_rules! call {
            ($($r:literal),*; $nv:tt) => {
                match r {
                    $($r => softmax_block::<S, $r, $nv>(
                        k, qp, ld_q, kt, ld_k, sp, ld_s, m, l, o, rows.ld_o,
                    ),)*
                    _ => unreachable!("row block larger than Simd::ROWS"),
                }
            };
        }
        match n / LANES {
            1 => call!(1, 2, 3, 4, 5, 6; 1),
            2 => call!(1, 2, 3, 4, 5, 6; 2),
            3 => call!(1, 2, 3, 4, 5, 6; 3),
            _ => call!(1, 2, 3, 4, 5, 6; 4),
        }
        row += r;
    }
}

/// Whether a key tile of `valid` real keys padded to `n` columns can take
/// [`scores_online_softmax`]: no padded columns, and one register block wide.
#[inline(always)]
pub(super) fn fits_one_block<S: Simd>(valid: usize, n: usize) -> bool {
    valid == n && n > 0 && n.is_multiple_of(LANES) && n <= S::MAX_NV * LANES
}

#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn softmax_block<S: Simd, const R: usize, const NV: usize>(
    k: usize,
    q: *const f32,
    ld_q: usize,
    kt: *const f32,
    ld_k: usize,
    s: *mut f32,
    ld_s: usize,
    m: *mut f32,
    l: *mut f32,
    o: *mut f32,
    ld_o: usize,
) {
    let mut acc = [[S::zero(); NV]; R];
    accumulate_block::<S, R, NV>(k, q, ld_q, kt, ld_k, &mut acc);
    for r in 0..R {
        let mut top = acc[r][0];
        for v in 1..NV {
            top = S::max(top, acc[r][v]);
        }
        let new_max = (*m.add(r)).max(S::reduce_max(top));
        let shift = S::splat(new_max);
        let mut sum = S::zero();
        for v in 0..NV {
            let p = S::exp2(S::sub(acc[r][v], shift));
            S::store(s.add(r * ld_s + v * LANES), p);
            sum = S::add(p, sum);
        }
        let out_row = (!o.is_null()).then(|| std::slice::from_raw_parts_mut(o.add(r * ld_o), ld_o));
        online_softmax_step::<S>(
            &mut *m.add(r),
            &mut *l.add(r),
            new_max,
            S::reduce_sum(sum),
            out_row,
        );
    }
}

/// `C (m×n) = A (m×k) · B (k×n)`, or `C += A·B` when `accumulate`; row-major with leading
/// dimensions `lda`, `ldb`, `ldc`. `n` must be a multiple of [`LANES`]; all pointers must cover
/// the ranges the sizes imply.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_generic<S: Simd>(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    gemm_then::<S, _>(m, n, k, a, lda, b, ldb, c, ldc, accumulate, &Identity)
}

/// What happens to each 16-float vector of a tile product between the last FMA and the store.
/// A trait with `#[inline(always)]` impls rather than a closure: a closure is a function of its
/// own, compiled without the caller's target features, so the vector intrinsics inside it would
/// become calls.
pub(super) trait Epilogue<S: Simd> {
    /// The value to store for the vector at (`row`, first column `col`) of `C`.
    unsafe fn map(&self, row: usize, col: usize, v: S::V) -> S::V;
}

/// Stores the product unchanged.
pub(super) struct Identity;

impl<S: Simd> Epilogue<S> for Identity {
    #[inline(always)]
    unsafe fn map(&self, _row: usize, _col: usize, v: S::V) -> S::V {
        v
    }
}

/// [`gemm_generic`] with an elementwise epilogue: each 16-float vector of the result goes
/// through `then.map(row, col, v)` (its row and first column in `C`) while still in registers,
/// before it is stored. Saves a pass over `C` for the softmax-style maps that follow a tile
/// product.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_then<S: Simd, F>(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    then: &F,
) where
    F: Epilogue<S>,
{
    debug_assert_eq!(n % LANES, 0);
    let mut col = 0;
    while col < n {
        let nv = ((n - col) / LANES).min(S::MAX_NV);
        let rows = if nv <= 2 { S::ROWS_NARROW } else { S::ROWS };
        let mut row = 0;
        while row < m {
            let r = (m - row).min(rows);
            let (ap, bp, cp) = (a.add(row * lda), b.add(col), c.add(row * ldc + col));
            macro_rules! call {
                ($($r:literal),*; $nv:tt) => {
                    match r {
                        $($r => gemm_block::<S, $r, $nv, F>(
                            k, ap, lda, bp, ldb, cp, ldc, accumulate, (row, col, then),
                        ),)*
                        _ => unreachable!("row block larger than Simd::ROWS(_NARROW)"),
                    }
                };
            }
            match nv {
                1 => call!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12; 1),
                2 => call!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12; 2),
                3 => call!(1, 2, 3, 4, 5, 6; 3),
                _ => call!(1, 2, 3, 4, 5, 6; 4),
            }
            row += r;
        }
        col += nv * LANES;
    }
}

/// AVX-512F, 6×64 register tile (24 zmm accumulators).
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    type V = std::arch::x86_64::__m512;
    const ROWS: usize = 6;
    const MAX_NV: usize = 4;
    const ROWS_NARROW: usize = 12;

    #[inline(always)]
    unsafe fn zero() -> Self::V {
        std::arch::x86_64::_mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        std::arch::x86_64::_mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        std::arch::x86_64::_mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        std::arch::x86_64::_mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize, fill: f32) -> Self::V {
        use std::arch::x86_64::*;
        _mm512_mask_loadu_ps(_mm512_set1_ps(fill), ((1u32 << n) - 1) as __mmask16, p)
    }
    #[inline(always)]
    unsafe fn store_partial(p: *mut f32, n: usize, v: Self::V) {
        use std::arch::x86_64::*;
        _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, v)
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::arch::x86_64::_mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        std::arch::x86_64::_mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
        std::arch::x86_64::_mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        std::arch::x86_64::_mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
        std::arch::x86_64::_mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn exp2(x: Self::V) -> Self::V {
        use std::arch::x86_64::*;
        // vmaxps/vminps return their second operand when one is NaN: keep x second.
        let x = _mm512_min_ps(
            _mm512_set1_ps(128.0),
            _mm512_max_ps(_mm512_set1_ps(-150.0), x),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
        let f = _mm512_sub_ps(x, n);
        let mut p = _mm512_set1_ps(EXP2_POLY[0]);
        for &c in &EXP2_POLY[1..] {
            p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
        }
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0));
        _mm512_scalef_ps(p, n)
    }
    #[inline(always)]
    unsafe fn reduce_sum(v: Self::V) -> f32 {
        std::arch::x86_64::_mm512_reduce_add_ps(v)
    }
    #[inline(always)]
    unsafe fn reduce_max(v: Self::V) -> f32 {
        std::arch::x86_64::_mm512_reduce_max_ps(v)
    }
    unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        gemm_avx512(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_avx512(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    gemm_generic::<Avx512>(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
}

/// 16-lane arrays; LLVM vectorizes the lane loops for whatever the enclosing function targets.
type Lanes = [f32; LANES];

/// Scalar `2^x` with the same polynomial as the vector paths (no libm call in the tile loops).
#[inline(always)]
pub(super) fn exp2_scalar(x: f32) -> f32 {
    if x < -126.0 {
        return 0.0; // also -inf; below 2^-126 is denormal, flushed
    }
    if x >= 128.0 {
        return f32::INFINITY;
    }
    let n = x.round_ties_even();
    let f = x - n;
    let mut p = EXP2_POLY[0];
    for &c in &EXP2_POLY[1..] {
        p = p.mul_add(f, c);
    }
    p = p.mul_add(f, 1.0);
    // n ∈ [-126, 128]: 2^n built from the exponent bits (NaN → n as i32 = 0, p stays NaN).
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

macro_rules! lanes_simd {
    ($name:ident, $doc:literal, $gemm:ident) => {
        #[doc = $doc]
        pub(super) struct $name;

        impl Simd for $name {
            type V = Lanes;
            const ROWS: usize = 2;
            const MAX_NV: usize = 2;

            #[inline(always)]
            unsafe fn zero() -> Lanes {
                [0.0; LANES]
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> Lanes {
                [x; LANES]
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Lanes {
                std::ptr::read_unaligned(p as *const Lanes)
            }
            #[inline(always)]
            unsafe fn store(p: *mut f32, v: Lanes) {
                std::ptr::write_unaligned(p as *mut Lanes, v)
            }
            #[inline(always)]
            unsafe fn load_partial(p: *const f32, n: usize, fill: f32) -> Lanes {
                std::array::from_fn(|i| if i < n { *p.add(i) } else { fill })
            }
            #[inline(always)]
            unsafe fn store_partial(p: *mut f32, n: usize, v: Lanes) {
                std::ptr::copy_nonoverlapping(v.as_ptr(), p, n)
            }
            #[inline(always)]
            unsafe fn fmadd(a: Lanes, b: Lanes, c: Lanes) -> Lanes {
                std::array::from_fn(|i| a[i].mul_add(b[i], c[i]))
            }
            #[inline(always)]
            unsafe fn add(a: Lanes, b: Lanes) -> Lanes {
                std::array::from_fn(|i| a[i] + b[i])
            }
            #[inline(always)]
            unsafe fn sub(a: Lanes, b: Lanes) -> Lanes {
                std::array::from_fn(|i| a[i] - b[i])
            }
            #[inline(always)]
            unsafe fn mul(a: Lanes, b: Lanes) -> Lanes {
                std::array::from_fn(|i| a[i] * b[i])
            }
            #[inline(always)]
            unsafe fn max(a: Lanes, b: Lanes) -> Lanes {
                std::array::from_fn(|i| a[i].max(b[i]))
            }
            #[inline(always)]
            unsafe fn exp2(x: Lanes) -> Lanes {
                std::array::from_fn(|i| exp2_scalar(x[i]))
            }
            #[inline(always)]
            unsafe fn reduce_sum(v: Lanes) -> f32 {
                v.iter().sum()
            }
            #[inline(always)]
            unsafe fn reduce_max(v: Lanes) -> f32 {
                v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x))
            }
            unsafe fn gemm(
                m: usize,
                n: usize,
                k: usize,
                a: *const f32,
                lda: usize,
                b: *const f32,
                ldb: usize,
                c: *mut f32,
                ldc: usize,
                accumulate: bool,
            ) {
                $gemm(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
            }
        }
    };
}

lanes_simd!(
    Avx2,
    "AVX2+FMA: 16-lane arrays compiled with `avx2,fma` (2×32 register tile).",
    gemm_avx2
);
lanes_simd!(
    Portable,
    "Any CPU: 16-lane arrays, whatever the baseline target vectorizes.",
    gemm_portable
);

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_avx2(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    gemm_generic::<Avx2>(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_avx2(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    gemm_generic::<Portable>(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
}

#[allow(clippy::too_many_arguments)]
unsafe fn gemm_portable(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    gemm_generic::<Portable>(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
}

/// Which [`Simd`] implementation this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    Avx512,
    Avx2,
    Portable,
}

#[cfg(test)]
thread_local! {
    /// Lets the unit tests run every path this CPU supports, not only the best one.
    pub(super) static FORCED_ISA: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
}

impl Isa {
    pub(super) fn detect() -> Isa {
        #[cfg(test)]
        if let Some(isa) = FORCED_ISA.with(|f| f.get()) {
            return isa;
        }
        Isa::best()
    }

    /// The fastest path this CPU supports.
    pub(super) fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }
}

/// Vector `c` of a score row whose first `valid` entries are real: lanes past `valid` read as
/// `-inf` (probability 0).
#[inline(always)]
pub(super) unsafe fn load_scores<S: Simd>(row: *const f32, c: usize, valid: usize) -> S::V {
    if c + LANES <= valid {
        S::load(row.add(c))
    } else {
        S::load_partial(row.add(c), valid - c, f32::NEG_INFINITY)
    }
}

/// Max of the first `valid` entries of a score row (row length a multiple of [`LANES`]).
#[inline(always)]
pub(super) unsafe fn row_max<S: Simd>(row: &[f32], valid: usize) -> f32 {
    let mut m = S::splat(f32::NEG_INFINITY);
    for c in (0..row.len()).step_by(LANES) {
        m = S::max(m, load_scores::<S>(row.as_ptr(), c, valid));
    }
    S::reduce_max(m)
}

/// `row[j] = 2^(row[j] − shift)` (0 past `valid`); returns the sum of the new values.
#[inline(always)]
pub(super) unsafe fn exp2_shifted_sum<S: Simd>(row: &mut [f32], valid: usize, shift: f32) -> f32 {
    let (mut acc, sv) = (S::zero(), S::splat(shift));
    for c in (0..row.len()).step_by(LANES) {
        let p = S::exp2(S::sub(load_scores::<S>(row.as_ptr(), c, valid), sv));
        S::store(row.as_mut_ptr().add(c), p);
        acc = S::add(p, acc);
    }
    S::reduce_sum(acc)
}

/// `row *= alpha` (length a multiple of [`LANES`]).
#[inline(always)]
pub(super) unsafe fn scale_row<S: Simd>(row: &mut [f32], alpha: f32) {
    let av = S::splat(alpha);
    for c in row.chunks_exact_mut(LANES) {
        S::store(c.as_mut_ptr(), S::mul(S::load(c.as_ptr()), av));
    }
}
