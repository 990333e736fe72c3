//! GEMM: our own cache-blocked, register-tiled micro-kernel (AVX-512 / AVX2+FMA picked at run
//! time, scalar fallback), multi-threaded.
//!
//! Layout of the implementation: `gemm/micro.rs` describes a micro-kernel, `gemm/{avx512,avx2,
//! scalar}.rs` are the kernels, `gemm/pack.rs` packs A and B into panels, `gemm/blocked.rs` is the
//! single-threaded blocked driver. This file validates arguments, picks the kernel and splits the
//! work over threads.
//!
//! The kernel is chosen once per process: the best the CPU supports, or the one named by the
//! `FYM_GEMM` environment variable (`scalar`, `avx2`, `avx512`). [`sgemm_with`] picks it per call.

mod blocked;
mod micro;
mod pack;
mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// The 16×16 register transpose of the packer, shared with the attention kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::{lane_mask, transpose16};

use super::pool::{num_threads, parallel_for, SharedMut};
use crate::{Error, Result};
use micro::MicroKernel;
use pack::Operand;
use std::sync::OnceLock;

/// Below this many flops (2·m·n·k) a GEMM runs on the calling thread. Waking a parked worker
/// takes ~10 µs; one core does 8 MFLOP in ~50 µs (128×128×128 in ~28 µs), so only above this
/// does splitting clearly pay. The model's small per-head GEMMs (e.g. 64×128×128) stay below.
const PARALLEL_MIN_FLOPS: usize = 8_000_000;

/// A micro-kernel implementation of the GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// Portable 4×8 tile (any CPU).
    Scalar,
    /// 6×16 tile in ymm registers (x86-64 with AVX2 and FMA).
    Avx2,
    /// 14×32 tile in zmm registers (x86-64 with AVX-512F).
    Avx512,
}

impl GemmKernel {
    /// Every kernel, slowest first.
    pub const ALL: [GemmKernel; 3] = [GemmKernel::Scalar, GemmKernel::Avx2, GemmKernel::Avx512];

    /// The name used by `FYM_GEMM` and in benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::Scalar => "scalar",
            GemmKernel::Avx2 => "avx2",
            GemmKernel::Avx512 => "avx512",
        }
    }

    /// The kernel called `name` (as in [`GemmKernel::name`]).
    pub fn from_name(name: &str) -> Option<GemmKernel> {
        GemmKernel::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            GemmKernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            GemmKernel::Avx2 | GemmKernel::Avx512 => false,
        }
    }

    /// The fastest kernel this CPU supports.
    pub fn best() -> GemmKernel {
        *GemmKernel::ALL
            .iter()
            .rev()
            .find(|k| k.is_supported())
            .unwrap_or(&GemmKernel::Scalar)
    }

    /// The kernel [`sgemm`] uses: `FYM_GEMM` if set to a supported kernel, else [`GemmKernel::best`].
    /// An unknown or unsupported `FYM_GEMM` is reported once on stderr and ignored.
    pub fn selected() -> GemmKernel {
        static SELECTED: OnceLock<GemmKernel> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let Ok(requested) = std::env::var("FYM_GEMM") else {
                return GemmKernel::best();
            };
            match GemmKernel::from_name(&requested.trim().to_ascii_lowercase()) {
                Some(kernel) if kernel.is_supported() => kernel,
                _ => {
                    let best = GemmKernel::best();
                    eprintln!(
                        "fym: FYM_GEMM={requested:?} is not a kernel this CPU supports \
                         (scalar, avx2, avx512); using {}",
                        best.name()
                    );
                    best
                }
            }
        })
    }

    fn micro_kernel(self) -> &'static MicroKernel {
        match self {
            GemmKernel::Scalar => &scalar::KERNEL,
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2 => &avx2::KERNEL,
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512 => &avx512::KERNEL,
            #[cfg(not(target_arch = "x86_64"))]
            GemmKernel::Avx2 | GemmKernel::Avx512 => &scalar::KERNEL,
        }
    }
}

/// `C = alpha · op(A) · op(B) + beta · C`, all row-major. `op(A)` is m×k: `A` stored m×k with row
/// stride `lda`, or (when `trans_a`) stored k×m with row stride `lda`. Likewise `op(B)` is k×n.
/// `C` is m×n with row stride `ldc`. With `beta == 0`, `C` is overwritten (NaNs in it ignored).
///
/// # Panics
/// If a slice is too short for its shape and leading dimension, or a leading dimension is smaller
/// than its row (callers check shapes first; [`sgemm_with`] returns these as errors).
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
    let result = sgemm_with(
        GemmKernel::selected(),
        trans_a,
        trans_b,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        b,
        ldb,
        beta,
        c,
        ldc,
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// [`sgemm`] with an explicit kernel. Errors if the CPU does not support `kernel` or if a slice or
/// leading dimension does not fit the shapes.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with(
    kernel: GemmKernel,
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
) -> Result<()> {
    let micro = checked_micro_kernel(kernel)?;
    let shape = Shape {
        trans_a,
        trans_b,
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
    };
    shape.check(a.len(), b.len(), c.len(), k > 0 && alpha != 0.0, "sgemm")?;
    let threads = if shape.flops() < PARALLEL_MIN_FLOPS {
        1
    } else {
        num_threads()
    };
    let c_ptr = SharedMut::new(c);
    // SAFETY: `check` verified that `c` covers m×n at stride `ldc`, and we hold it mutably.
    unsafe {
        gemm_threaded(
            micro,
            &shape,
            alpha,
            a,
            b,
            beta,
            c_ptr.0,
            std::ptr::null(),
            threads,
        )
    };
    Ok(())
}

/// `C = alpha · op(A)·op(B) + bias`, with `bias` (`n` values) added to every row of C, which is
/// not read (as [`sgemm`] with `beta = 0`). The bias is added in the micro-kernel's epilogue,
/// while the tile is in registers: a linear layer's output is written once instead of being
/// filled with the repeated bias first and then read back and accumulated onto.
/// Errors as [`sgemm_with`], or if `bias` has fewer than `n` values.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_bias(
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
    bias: &[f32],
    c: &mut [f32],
    ldc: usize,
) -> Result<()> {
    sgemm_bias_with(
        GemmKernel::selected(),
        trans_a,
        trans_b,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        b,
        ldb,
        bias,
        c,
        ldc,
    )
}

/// [`sgemm_bias`] with an explicit kernel.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_bias_with(
    kernel: GemmKernel,
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
    bias: &[f32],
    c: &mut [f32],
    ldc: usize,
) -> Result<()> {
    let micro = checked_micro_kernel(kernel)?;
    let shape = Shape {
        trans_a,
        trans_b,
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
    };
    shape.check(
        a.len(),
        b.len(),
        c.len(),
        k > 0 && alpha != 0.0,
        "sgemm_bias",
    )?;
    if bias.len() < n {
        return Err(Error::shape(
            "sgemm_bias",
            format!("bias has {} values for {n} columns", bias.len()),
        ));
    }
    let threads = if shape.flops() < PARALLEL_MIN_FLOPS {
        1
    } else {
        num_threads()
    };
    let c_ptr = SharedMut::new(c);
    // SAFETY: `check` verified that `c` covers m×n at stride `ldc`, and we hold it mutably;
    // `bias` holds at least n values.
    unsafe {
        gemm_threaded(
            micro,
            &shape,
            alpha,
            a,
            b,
            0.0,
            c_ptr.0,
            bias.as_ptr(),
            threads,
        )
    };
    Ok(())
}

/// `batch` independent [`sgemm`]s; matrix `i` starts at `i·stride_a` / `i·stride_b` / `i·stride_c`.
/// A stride of 0 reuses one matrix for every batch entry (e.g. shared weights).
///
/// # Panics
/// As [`sgemm`]; [`sgemm_batched_with`] returns these as errors.
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
    let result = sgemm_batched_with(
        GemmKernel::selected(),
        batch,
        trans_a,
        trans_b,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        stride_a,
        b,
        ldb,
        stride_b,
        beta,
        c,
        ldc,
        stride_c,
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// [`sgemm_batched`] with an explicit kernel. Batches of at least as many entries as threads are
/// split over the entries (each entry single-threaded); smaller batches run entry after entry,
/// each split over the threads. Entries whose C regions overlap (e.g. `stride_c == 0`) run in order.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_batched_with(
    kernel: GemmKernel,
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
) -> Result<()> {
    let micro = checked_micro_kernel(kernel)?;
    let shape = Shape {
        trans_a,
        trans_b,
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
    };
    if batch == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    // The last entry reaches furthest; checking it (with the offsets removed) covers them all.
    let last = batch - 1;
    let tail = |len: usize, stride: usize, name: &str| {
        len.checked_sub(last.saturating_mul(stride)).ok_or_else(|| {
            Error::shape(
                "sgemm_batched",
                format!("{name} has {len} elements, fewer than the offset {last}·{stride} of entry {last}"),
            )
        })
    };
    let uses_ab = k > 0 && alpha != 0.0;
    let a_tail = if uses_ab {
        tail(a.len(), stride_a, "A")?
    } else {
        0
    };
    let b_tail = if uses_ab {
        tail(b.len(), stride_b, "B")?
    } else {
        0
    };
    let c_tail = tail(c.len(), stride_c, "C")?;
    shape.check(a_tail, b_tail, c_tail, uses_ab, "sgemm_batched")?;

    let c_extent = (m - 1) * ldc + n;
    let disjoint_c = stride_c >= c_extent;
    let threads = num_threads();
    let operands = |i: usize| {
        let a = if uses_ab { &a[i * stride_a..] } else { a };
        let b = if uses_ab { &b[i * stride_b..] } else { b };
        (a, b)
    };
    let c_ptr = SharedMut::new(c);
    if disjoint_c
        && threads > 1
        && batch >= threads
        && batch.saturating_mul(shape.flops()) >= PARALLEL_MIN_FLOPS
    {
        parallel_for(batch, |i| {
            let (a, b) = operands(i);
            // SAFETY: entry `i` owns `c[i·stride_c .. i·stride_c + c_extent]`, disjoint from every
            // other entry's because `stride_c >= c_extent`, and in bounds by the check above.
            unsafe {
                gemm_threaded(
                    micro,
                    &shape,
                    alpha,
                    a,
                    b,
                    beta,
                    c_ptr.ptr().add(i * stride_c),
                    std::ptr::null(),
                    1,
                )
            };
        });
    } else {
        let threads = if shape.flops() < PARALLEL_MIN_FLOPS {
            1
        } else {
            threads
        };
        for i in 0..batch {
            let (a, b) = operands(i);
            // SAFETY: in bounds by the check above; entries run one after another.
            unsafe {
                gemm_threaded(
                    micro,
                    &shape,
                    alpha,
                    a,
                    b,
                    beta,
                    c_ptr.0.add(i * stride_c),
                    std::ptr::null(),
                    threads,
                )
            };
        }
    }
    Ok(())
}

fn checked_micro_kernel(kernel: GemmKernel) -> Result<&'static MicroKernel> {
    if !kernel.is_supported() {
        return Err(Error::shape(
            "sgemm",
            format!("the {} kernel is not supported by this CPU", kernel.name()),
        ));
    }
    Ok(kernel.micro_kernel())
}

/// Sizes and leading dimensions of one GEMM.
struct Shape {
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldb: usize,
    ldc: usize,
}

impl Shape {
    fn flops(&self) -> usize {
        2usize
            .saturating_mul(self.m)
            .saturating_mul(self.n)
            .saturating_mul(self.k)
    }

    /// Checks that slices of these lengths hold the matrices (A and B only if `reads_ab`: like
    /// BLAS, a GEMM with `k == 0` or `alpha == 0` does not read them).
    fn check(
        &self,
        a_len: usize,
        b_len: usize,
        c_len: usize,
        reads_ab: bool,
        op: &'static str,
    ) -> Result<()> {
        let Shape { m, n, k, .. } = *self;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let stored =
            |trans: bool, rows: usize, cols: usize| if trans { (cols, rows) } else { (rows, cols) };
        let (a_rows, a_cols) = stored(self.trans_a, m, k);
        let (b_rows, b_cols) = stored(self.trans_b, k, n);
        if reads_ab {
            check_matrix(op, "A", a_rows, a_cols, self.lda, a_len)?;
            check_matrix(op, "B", b_rows, b_cols, self.ldb, b_len)?;
        }
        check_matrix(op, "C", m, n, self.ldc, c_len)
    }
}

fn check_matrix(
    op: &'static str,
    name: &str,
    rows: usize,
    cols: usize,
    ld: usize,
    len: usize,
) -> Result<()> {
    if rows > 1 && ld < cols {
        return Err(Error::shape(
            op,
            format!("{name} is stored {rows}×{cols} but its leading dimension is {ld} (< {cols})"),
        ));
    }
    // Saturating: a size too large to address is reported as too short, not wrapped around.
    let needed = (rows - 1).saturating_mul(ld).saturating_add(cols);
    if len < needed {
        return Err(Error::shape(
            op,
            format!("{name} is stored {rows}×{cols} with leading dimension {ld}: needs {needed} elements, has {len}"),
        ));
    }
    Ok(())
}

/// Runs the GEMM on up to `threads` threads, each computing a block of C's rows or columns.
///
/// # Safety
/// `c` must be valid for reads and writes of m rows of n values at stride `ldc`, not accessed by
/// anything else during the call; `a` and `b` must have passed [`Shape::check`]; `bias` must be
/// null or valid for n reads.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_threaded(
    micro: &MicroKernel,
    shape: &Shape,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: *mut f32,
    bias: *const f32,
    threads: usize,
) {
    let Shape { m, n, k, ldc, .. } = *shape;
    let micro = match micro.narrow {
        Some(narrow) if n <= narrow.nr => narrow,
        _ => micro,
    };
    let a = operand(a, shape.trans_a, shape.lda);
    let b = operand(b, shape.trans_b, shape.ldb);
    let (m_tiles, n_tiles) = (m.div_ceil(micro.mr), n.div_ceil(micro.nr));
    let split_rows = m_tiles >= n_tiles;
    let parts = threads
        .min(if split_rows { m_tiles } else { n_tiles })
        .max(1);
    if parts == 1 || k == 0 || alpha == 0.0 {
        blocked::gemm(micro, m, n, k, alpha, a, b, beta, c, ldc, bias);
        return;
    }
    // Rows are split evenly (a ragged bottom tile only costs its rows); columns in whole tiles,
    // since a ragged right tile costs a full one.
    let step = if split_rows {
        m.div_ceil(parts)
    } else {
        n_tiles.div_ceil(parts) * micro.nr
    };
    let c = SharedMut(c);
    let bias = SharedConst(bias);
    parallel_for(parts, |part| {
        let (start, len) = if split_rows {
            (part * step, m)
        } else {
            (part * step, n)
        };
        if start >= len {
            return;
        }
        let count = step.min(len - start);
        // SAFETY: each part owns the rows (or columns) `start..start + count` of C, disjoint from
        // every other part's, and inside the m×n region the caller vouched for.
        unsafe {
            if split_rows {
                let c_part = c.ptr().add(start * ldc);
                blocked::gemm(
                    micro,
                    count,
                    n,
                    k,
                    alpha,
                    a.offset(start, 0),
                    b,
                    beta,
                    c_part,
                    ldc,
                    bias.get(),
                );
            } else {
                let c_part = c.ptr().add(start);
                blocked::gemm(
                    micro,
                    m,
                    count,
                    k,
                    alpha,
                    a,
                    b.offset(0, start),
                    beta,
                    c_part,
                    ldc,
                    if bias.get().is_null() {
                        bias.get()
                    } else {
                        bias.get().add(start)
                    },
                );
            }
        }
    });
}

/// The bias pointer, shared read-only by the parallel parts.
#[derive(Clone, Copy)]
struct SharedConst(*const f32);
// SAFETY: only read, and valid for the whole call (the caller's guarantee).
unsafe impl Sync for SharedConst {}

impl SharedConst {
    /// The pointer (closures call this so that they capture the `Sync` wrapper, not the field).
    fn get(&self) -> *const f32 {
        self.0
    }
}

/// The view of op(X) for X stored row-major with leading dimension `ld`.
fn operand(data: &[f32], trans: bool, ld: usize) -> Operand<'_> {
    if trans {
        Operand {
            data,
            row_stride: 1,
            col_stride: ld,
        }
    } else {
        Operand {
            data,
            row_stride: ld,
            col_stride: 1,
        }
    }
}
