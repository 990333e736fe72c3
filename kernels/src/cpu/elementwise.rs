//! Elementwise kernels: binary ops with numpy-style broadcasting, scalar ops, activations.
//!
//! Also home of the small building blocks the other CPU kernels share: [`par_chunks_mut`] (split an
//! output into disjoint chunks over the thread pool), [`simd_dispatch!`] (compile a plain loop for
//! AVX-512 / AVX2+FMA / baseline and pick at run time) and [`exp_f32`] (an `exp` that vectorizes).
//!
//! The functions without a `Result` (`add_assign`, `axpy`, `gelu_tanh`, …) are internal: fym's tape
//! allocates their buffers from shapes it has already checked, so a length mismatch is a bug in
//! fym, and they `assert!` it.

use crate::cpu::pool::{num_threads, parallel_for, SharedMut};
use crate::ensure_shape;

/// Below this many elements a kernel runs on the calling thread: spawning threads costs more
/// than the work.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 16;
/// Elements per parallel task of a flat elementwise loop (a multiple of every SIMD width).
const TASK_ELEMS: usize = 1 << 14;

/// Calls `f(offset, chunk)` for consecutive `chunk_len`-sized chunks of `out` (the last one may be
/// shorter), spread over the thread pool when `out` has at least [`PAR_MIN_ELEMS`] elements.
/// `offset` is the chunk's start in `out`.
pub(crate) fn par_chunks_mut<T: Send>(
    out: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    let n_chunks = out.len().div_ceil(chunk_len);
    if out.len() < PAR_MIN_ELEMS || n_chunks < 2 || num_threads() < 2 {
        for (i, chunk) in out.chunks_mut(chunk_len).enumerate() {
            f(i * chunk_len, chunk);
        }
        return;
    }
    let len = out.len();
    let ptr = SharedMut::new(out);
    parallel_for(n_chunks, |i| {
        let start = i * chunk_len;
        let n = chunk_len.min(len - start);
        // SAFETY: chunk `i` covers `start..start + n`, inside `out`; chunks do not overlap.
        f(start, unsafe { ptr.slice(start, n) });
    });
}

/// Defines `fn $name(args)` whose body is compiled three times — for AVX-512, for AVX2+FMA and for
/// the baseline target — and runs the widest version the CPU supports. Plain loops in the body then
/// autovectorize at full width without `std::arch` intrinsics. Helpers the body calls must be
/// `#[inline(always)]` so they are compiled inside each version.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;

/// `e^x` in f32 to ~2 ulp, written so that loops calling it autovectorize (libm's `expf` does not).
/// Cephes' range reduction `x = n·ln2 + r`, a degree-6 polynomial for `e^r`, and `2^n` built from
/// exponent bits. Underflows to 0 below ≈ −87.3, overflows to +∞ above ≈ 88.72; NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to the nearest integer and leaves that integer in the low
    // mantissa bits (valid for |n| < 2^22).
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.5, 88.75);
    let t = xc * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let ni = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // n ∈ [−126, 128]: 2^n as two factors so each stays a normal float.
    let half = ni >> 1;
    let s1 = f32::from_bits(((half + 127) as u32) << 23);
    let s2 = f32::from_bits(((ni - half + 127) as u32) << 23);
    let y = er * s1 * s2;
    if x < -87.336_54 {
        0.0
    } else if x > 88.722_83 {
        f32::INFINITY
    } else {
        y
    }
}

/// A binary elementwise operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// `out = a op b` with broadcasting. `a_shape`, `b_shape` and `out_shape` have the same rank; each
/// dim of `a`/`b` is 1 or equal to `out_shape`'s. Errors name the op and the shapes.
pub fn binary(
    op: BinaryOp,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    out_shape: &[usize],
) -> crate::Result<()> {
    const OP: &str = "binary";
    let shapes = || format!("{op:?} of a {a_shape:?} and b {b_shape:?} into out {out_shape:?}");
    ensure_shape!(
        a_shape.len() == out_shape.len() && b_shape.len() == out_shape.len(),
        OP,
        "{}: ranks differ",
        shapes()
    );
    for (d, &n) in out_shape.iter().enumerate() {
        ensure_shape!(
            (a_shape[d] == n || a_shape[d] == 1) && (b_shape[d] == n || b_shape[d] == 1),
            OP,
            "{}: dim {d} is neither 1 nor {n}",
            shapes()
        );
    }
    let numel = |s: &[usize]| s.iter().product::<usize>();
    ensure_shape!(
        a.len() == numel(a_shape) && b.len() == numel(b_shape) && out.len() == numel(out_shape),
        OP,
        "{}: buffer lengths a {}, b {}, out {} do not match the shapes",
        shapes(),
        a.len(),
        b.len(),
        out.len()
    );
    if out.is_empty() {
        return Ok(());
    }
    let plan = BroadcastPlan::new(a_shape, b_shape, out_shape);
    plan.run(op, a, b, out);
    Ok(())
}

/// `f(x, y)` of `op`, inlined into each vectorized segment loop.
#[inline(always)]
fn apply(op: BinaryOp, x: f32, y: f32) -> f32 {
    match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
    }
}

// One loop per (op, operand layout) with the op matched outside it, so each one vectorizes at the
// CPU's full width (the plain closures compiled for the baseline target ran 4 lanes at a time).
simd_dispatch! {
    fn binary_vv(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
        macro_rules! run {
            ($op:path) => {
                for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                    *o = apply($op, x, y);
                }
            };
        }
        match op {
            BinaryOp::Add => run!(BinaryOp::Add),
            BinaryOp::Sub => run!(BinaryOp::Sub),
            BinaryOp::Mul => run!(BinaryOp::Mul),
            BinaryOp::Div => run!(BinaryOp::Div),
        }
    }
}

simd_dispatch! {
    fn binary_vs(op: BinaryOp, a: &[f32], y: f32, out: &mut [f32]) {
        macro_rules! run {
            ($op:path) => {
                for (o, &x) in out.iter_mut().zip(a) {
                    *o = apply($op, x, y);
                }
            };
        }
        match op {
            BinaryOp::Add => run!(BinaryOp::Add),
            BinaryOp::Sub => run!(BinaryOp::Sub),
            BinaryOp::Mul => run!(BinaryOp::Mul),
            BinaryOp::Div => run!(BinaryOp::Div),
        }
    }
}

simd_dispatch! {
    fn binary_sv(op: BinaryOp, x: f32, b: &[f32], out: &mut [f32]) {
        macro_rules! run {
            ($op:path) => {
                for (o, &y) in out.iter_mut().zip(b) {
                    *o = apply($op, x, y);
                }
            };
        }
        match op {
            BinaryOp::Add => run!(BinaryOp::Add),
            BinaryOp::Sub => run!(BinaryOp::Sub),
            BinaryOp::Mul => run!(BinaryOp::Mul),
            BinaryOp::Div => run!(BinaryOp::Div),
        }
    }
}

/// A broadcast reduced to its essentials: size-1 output dims dropped and adjacent dims that both
/// operands treat alike (both present or both broadcast) merged. The output is then walked in rows
/// of the innermost merged dim, inside which each operand is either contiguous or one repeated value.
struct BroadcastPlan {
    inner: usize,
    a_inner: bool,
    b_inner: bool,
    /// Outer merged dims, outermost first: (size, a stride, b stride); stride 0 = broadcast.
    outer: Vec<(usize, usize, usize)>,
}

impl BroadcastPlan {
    fn new(a_shape: &[usize], b_shape: &[usize], out_shape: &[usize]) -> Self {
        // (size, a present, b present), merged.
        let mut dims: Vec<(usize, bool, bool)> = Vec::new();
        for d in 0..out_shape.len() {
            let n = out_shape[d];
            if n == 1 {
                continue;
            }
            let (ha, hb) = (a_shape[d] != 1, b_shape[d] != 1);
            match dims.last_mut() {
                Some(last) if last.1 == ha && last.2 == hb => last.0 *= n,
                _ => dims.push((n, ha, hb)),
            }
        }
        let Some(&(inner, a_inner, b_inner)) = dims.last() else {
            return BroadcastPlan {
                inner: 1,
                a_inner: true,
                b_inner: true,
                outer: Vec::new(),
            };
        };
        let (mut sa, mut sb) = (
            if a_inner { inner } else { 1 },
            if b_inner { inner } else { 1 },
        );
        let mut outer = Vec::with_capacity(dims.len() - 1);
        for &(n, ha, hb) in dims[..dims.len() - 1].iter().rev() {
            outer.push((n, if ha { sa } else { 0 }, if hb { sb } else { 0 }));
            if ha {
                sa *= n;
            }
            if hb {
                sb *= n;
            }
        }
        outer.reverse();
        BroadcastPlan {
            inner,
            a_inner,
            b_inner,
            outer,
        }
    }

    fn run(&self, op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
        let inner = self.inner;
        par_chunks_mut(out, TASK_ELEMS, |off, o| {
            let mut rows = RowWalker::new(&self.outer, off / inner);
            let mut col = off % inner;
            let mut done = 0;
            while done < o.len() {
                let n = (inner - col).min(o.len() - done);
                let seg = &mut o[done..done + n];
                let (ra, rb) = (rows.a, rows.b);
                match (self.a_inner, self.b_inner) {
                    (true, true) => binary_vv(
                        op,
                        &a[ra + col..ra + col + n],
                        &b[rb + col..rb + col + n],
                        seg,
                    ),
                    (true, false) => binary_vs(op, &a[ra + col..ra + col + n], b[rb], seg),
                    (false, true) => binary_sv(op, a[ra], &b[rb + col..rb + col + n], seg),
                    (false, false) => seg.fill(apply(op, a[ra], b[rb])),
                }
                done += n;
                col = 0;
                rows.advance(&self.outer);
            }
        });
    }
}

/// Odometer over the outer dims of a [`BroadcastPlan`], tracking each operand's row offset.
struct RowWalker {
    idx: Vec<usize>,
    a: usize,
    b: usize,
}

impl RowWalker {
    fn new(outer: &[(usize, usize, usize)], mut row: usize) -> Self {
        let mut idx = vec![0; outer.len()];
        let (mut a, mut b) = (0, 0);
        for (d, &(n, sa, sb)) in outer.iter().enumerate().rev() {
            idx[d] = row % n;
            row /= n;
            a += idx[d] * sa;
            b += idx[d] * sb;
        }
        RowWalker { idx, a, b }
    }

    fn advance(&mut self, outer: &[(usize, usize, usize)]) {
        for (d, &(n, sa, sb)) in outer.iter().enumerate().rev() {
            self.idx[d] += 1;
            self.a += sa;
            self.b += sb;
            if self.idx[d] < n {
                return;
            }
            self.idx[d] = 0;
            self.a -= n * sa;
            self.b -= n * sb;
        }
    }
}

fn assert_same_len(op: &str, a: usize, b: usize) {
    assert_eq!(a, b, "{op}: buffer lengths differ ({a} vs {b})");
}

simd_dispatch! {
    fn add_assign_chunk(acc: &mut [f32], x: &[f32]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a += v;
        }
    }
}

simd_dispatch! {
    fn affine_chunk(x: &[f32], alpha: f32, beta: f32, out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = alpha * v + beta;
        }
    }
}

simd_dispatch! {
    fn axpy_chunk(alpha: f32, x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o += alpha * v;
        }
    }
}

/// `acc += x` (gradient accumulation).
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    assert_same_len("add_assign", acc.len(), x.len());
    par_chunks_mut(acc, TASK_ELEMS, |off, acc| {
        add_assign_chunk(acc, &x[off..off + acc.len()])
    });
}

/// `out = alpha · x + beta`.
pub fn affine_scalar(x: &[f32], alpha: f32, beta: f32, out: &mut [f32]) {
    assert_same_len("affine_scalar", x.len(), out.len());
    par_chunks_mut(out, TASK_ELEMS, |off, out| {
        affine_chunk(&x[off..off + out.len()], alpha, beta, out)
    });
}

/// `y += alpha · x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_same_len("axpy", x.len(), y.len());
    par_chunks_mut(y, TASK_ELEMS, |off, y| {
        axpy_chunk(alpha, &x[off..off + y.len()], y)
    });
}

/// √(2/π) and the cubic coefficient of the tanh GELU.
const GELU_C: f32 = 0.797_884_6;
const GELU_A: f32 = 0.044_715;

/// `1 + tanh(u) = 2·sigmoid(2u)`, so `gelu(x) = x·sigmoid(2u)`: no cancellation for negative `x`.
#[inline(always)]
fn gelu_sigmoid(x: f32) -> f32 {
    let u = GELU_C * (x + GELU_A * x * x * x);
    1.0 / (1.0 + exp_f32(-2.0 * u))
}

simd_dispatch! {
    fn gelu_tanh_chunk(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v * gelu_sigmoid(v);
        }
    }
}

simd_dispatch! {
    fn gelu_tanh_backward_chunk(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            // With σ = sigmoid(2u): 0.5(1 + tanh u) = σ and 0.5(1 − tanh²u) = 2σ(1 − σ).
            let s = gelu_sigmoid(v);
            let du = GELU_C * (1.0 + 3.0 * GELU_A * v * v);
            *o = g * (s + 2.0 * v * s * (1.0 - s) * du);
        }
    }
}

simd_dispatch! {
    fn silu_chunk(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v / (1.0 + exp_f32(-v));
        }
    }
}

simd_dispatch! {
    fn silu_backward_chunk(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            let s = 1.0 / (1.0 + exp_f32(-v));
            *o = g * s * (1.0 + v * (1.0 - s));
        }
    }
}

/// GELU, tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh(x: &[f32], out: &mut [f32]) {
    assert_same_len("gelu_tanh", x.len(), out.len());
    par_chunks_mut(out, TASK_ELEMS, |off, out| {
        gelu_tanh_chunk(&x[off..off + out.len()], out)
    });
}

/// `dx = dy · gelu_tanh'(x)`.
pub fn gelu_tanh_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert_same_len("gelu_tanh_backward", x.len(), dx.len());
    assert_same_len("gelu_tanh_backward", dy.len(), dx.len());
    par_chunks_mut(dx, TASK_ELEMS, |off, dx| {
        let r = off..off + dx.len();
        gelu_tanh_backward_chunk(&x[r.clone()], &dy[r], dx)
    });
}

/// SiLU: `x·sigmoid(x)`.
pub fn silu(x: &[f32], out: &mut [f32]) {
    assert_same_len("silu", x.len(), out.len());
    par_chunks_mut(out, TASK_ELEMS, |off, out| {
        silu_chunk(&x[off..off + out.len()], out)
    });
}

/// `dx = dy · silu'(x)`.
pub fn silu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert_same_len("silu_backward", x.len(), dx.len());
    assert_same_len("silu_backward", dy.len(), dx.len());
    par_chunks_mut(dx, TASK_ELEMS, |off, dx| {
        let r = off..off + dx.len();
        silu_backward_chunk(&x[r.clone()], &dy[r], dx)
    });
}
