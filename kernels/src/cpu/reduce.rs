//! Reductions. Sums accumulate in f64 (they are memory-bound, so the wider adds are free) and
//! round once at the end, so a sum over a long axis — e.g. a bias gradient over every token —
//! does not drift.
//!
//! Also the lane-split f32 row sums/dots ([`sum_f32`], [`dot_f32`]) the row kernels (norms,
//! softmax) use: 16 independent accumulators vectorize and keep the error of a row of a few
//! thousand elements near f32 rounding.

use crate::cpu::elementwise::PAR_MIN_ELEMS;
use crate::cpu::pool::{num_threads, parallel_for, SharedMut};
use crate::ensure_shape;

const LANES: usize = 16;

#[inline(always)]
fn combine_lanes(acc: [f32; LANES], tail: f32) -> f32 {
    let mut half = [0f32; LANES / 2];
    for i in 0..LANES / 2 {
        half[i] = acc[i] + acc[i + LANES / 2];
    }
    let q = [
        half[0] + half[4],
        half[1] + half[5],
        half[2] + half[6],
        half[3] + half[7],
    ];
    (q[0] + q[2]) + (q[1] + q[3]) + tail
}

/// Σ x, with 16 f32 lanes.
#[inline(always)]
pub(crate) fn sum_f32(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    combine_lanes(acc, tail)
}

/// Σ a⊙b, with 16 f32 lanes.
#[inline(always)]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    combine_lanes(acc, tail)
}

/// Σ x in f64, with 8 lanes.
#[inline(always)]
fn sum_f64(x: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] as f64;
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Sums `x` (shape `shape`) over `axis`; `out` has `shape` with that axis removed.
pub fn sum_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) -> crate::Result<()> {
    const OP: &str = "sum_axis";
    ensure_shape!(
        axis < shape.len(),
        OP,
        "axis {axis} out of range for shape {shape:?}"
    );
    let mut target = shape.to_vec();
    target[axis] = 1;
    // Removing a size-1 dim does not move any element, so `out` is laid out as `target`.
    sum_to_shape_impl(OP, x, shape, &target, out)
}

/// Sums `x` (shape `shape`) down to `target` (same rank, each dim 1 or equal): the backward of
/// broadcasting. Overwrites `out` (len = product of `target`).
pub fn sum_to_shape(
    x: &[f32],
    shape: &[usize],
    target: &[usize],
    out: &mut [f32],
) -> crate::Result<()> {
    sum_to_shape_impl("sum_to_shape", x, shape, target, out)
}

fn sum_to_shape_impl(
    op: &'static str,
    x: &[f32],
    shape: &[usize],
    target: &[usize],
    out: &mut [f32],
) -> crate::Result<()> {
    ensure_shape!(
        shape.len() == target.len(),
        op,
        "shape {shape:?} and target {target:?} have different ranks"
    );
    for (d, (&n, &t)) in shape.iter().zip(target).enumerate() {
        ensure_shape!(
            t == n || t == 1,
            op,
            "target {target:?} dim {d} is neither 1 nor {n} (shape {shape:?})"
        );
    }
    let (numel, out_numel) = (
        shape.iter().product::<usize>(),
        target.iter().product::<usize>(),
    );
    ensure_shape!(
        x.len() == numel && out.len() == out_numel,
        op,
        "buffer lengths x {} and out {} do not match shape {shape:?} and target {target:?}",
        x.len(),
        out.len()
    );
    if numel == 0 {
        out.fill(0.0);
        return Ok(());
    }
    let plan = ReducePlan::new(shape, target);
    if plan.dims.iter().all(|d| d.kept) {
        out.copy_from_slice(x);
        return Ok(());
    }
    plan.run(x, out);
    Ok(())
}

#[derive(Clone, Copy)]
struct ReduceDim {
    size: usize,
    kept: bool,
    /// Stride in `out` (0 for a reduced dim).
    out_stride: usize,
    /// Stride in `x`.
    x_stride: usize,
}

/// Size-1 dims dropped and adjacent dims that are both kept or both reduced merged, so the common
/// cases become [R, K] (bias gradient), [K, R], [K, R, K] ([B,1,D] gradient), ….
struct ReducePlan {
    dims: Vec<ReduceDim>,
}

impl ReducePlan {
    fn new(shape: &[usize], target: &[usize]) -> Self {
        let mut dims: Vec<ReduceDim> = Vec::new();
        for (&n, &t) in shape.iter().zip(target) {
            if n == 1 {
                continue;
            }
            let kept = t == n;
            match dims.last_mut() {
                Some(last) if last.kept == kept => last.size *= n,
                _ => dims.push(ReduceDim {
                    size: n,
                    kept,
                    out_stride: 0,
                    x_stride: 0,
                }),
            }
        }
        let (mut xs, mut os) = (1, 1);
        for d in dims.iter_mut().rev() {
            d.x_stride = xs;
            xs *= d.size;
            if d.kept {
                d.out_stride = os;
                os *= d.size;
            }
        }
        ReducePlan { dims }
    }

    fn run(&self, x: &[f32], out: &mut [f32]) {
        let first = self.dims[0];
        let threads = num_threads();
        if x.len() < PAR_MIN_ELEMS || threads < 2 {
            let mut acc = vec![0f64; out.len()];
            self.accumulate(x, &self.dims, &mut acc);
            round_into(&acc, out);
        } else if first.kept && first.size >= threads {
            // Each task owns a range of the outermost (kept) dim, hence a disjoint block of `out`.
            let tasks = threads.min(first.size);
            let per = first.size.div_ceil(tasks);
            par_chunks_mut_exact(out, per * first.out_stride, tasks, |i, out_block| {
                let (i0, i1) = (i * per, ((i + 1) * per).min(first.size));
                let mut acc = vec![0f64; out_block.len()];
                for k in i0..i1 {
                    let xb = &x[k * first.x_stride..(k + 1) * first.x_stride];
                    let ob = (k - i0) * first.out_stride;
                    self.accumulate(xb, &self.dims[1..], &mut acc[ob..ob + first.out_stride]);
                }
                round_into(&acc, out_block);
            });
        } else {
            // Split the outermost dim; every task sums into its own full-size f64 partial.
            let tasks = threads.min(first.size);
            let per = first.size.div_ceil(tasks);
            let mut partials = vec![0f64; tasks * out.len()];
            let n_out = out.len();
            let ptr = SharedMut::new(&mut partials);
            parallel_for(tasks, |i| {
                // SAFETY: task `i` writes only partial `i`, `i·n_out..(i+1)·n_out`.
                let acc = unsafe { ptr.slice(i * n_out, n_out) };
                let (i0, i1) = (i * per, ((i + 1) * per).min(first.size));
                for k in i0..i1 {
                    let xb = &x[k * first.x_stride..(k + 1) * first.x_stride];
                    let ob = k * first.out_stride;
                    let acc = if first.kept {
                        &mut acc[ob..ob + first.out_stride]
                    } else {
                        &mut *acc
                    };
                    self.accumulate(xb, &self.dims[1..], acc);
                }
            });
            let (head, rest) = partials.split_at_mut(n_out);
            for p in rest.chunks_exact(n_out) {
                for (a, &v) in head.iter_mut().zip(p) {
                    *a += v;
                }
            }
            round_into(head, out);
        }
    }

    /// Adds the contribution of `x` (laid out as `dims`) into `acc` (laid out as the kept dims).
    fn accumulate(&self, x: &[f32], dims: &[ReduceDim], acc: &mut [f64]) {
        match dims {
            [] => acc[0] += x[0] as f64,
            [last] if last.kept => {
                for (a, &v) in acc.iter_mut().zip(x) {
                    *a += v as f64;
                }
            }
            [_] => acc[0] += sum_f64(x),
            [d, rest @ ..] => {
                for k in 0..d.size {
                    let xb = &x[k * d.x_stride..(k + 1) * d.x_stride];
                    let o = k * d.out_stride;
                    self.accumulate(xb, rest, &mut acc[o..]);
                }
            }
        }
    }
}

fn round_into(acc: &[f64], out: &mut [f32]) {
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = a as f32;
    }
}

/// Like `elementwise::par_chunks_mut` but always with exactly `tasks` tasks (the caller has decided the split).
fn par_chunks_mut_exact(
    out: &mut [f32],
    chunk_len: usize,
    tasks: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let len = out.len();
    let ptr = SharedMut::new(out);
    parallel_for(tasks, |i| {
        let start = (i * chunk_len).min(len);
        let n = chunk_len.min(len - start);
        // SAFETY: task `i` covers `i·chunk_len..(i+1)·chunk_len` clipped to `out`; no overlap.
        f(i, unsafe { ptr.slice(start, n) });
    });
}

/// Sum of all elements, accumulated in f64.
pub fn sum_all(x: &[f32]) -> f64 {
    const TASK: usize = 1 << 16;
    if x.len() < PAR_MIN_ELEMS || num_threads() < 2 {
        return sum_f64(x);
    }
    let n_tasks = x.len().div_ceil(TASK);
    let mut partials = vec![0f64; n_tasks];
    let ptr = SharedMut::new(&mut partials);
    parallel_for(n_tasks, |i| {
        let s = sum_f64(&x[i * TASK..((i + 1) * TASK).min(x.len())]);
        // SAFETY: task `i` writes only `partials[i]`.
        unsafe { ptr.slice(i, 1)[0] = s };
    });
    partials.iter().sum()
}
