//! Output buffers for kernels that write every element of their output.
//!
//! A zero-filled `vec![0.0; n]` costs a `memset` of the whole buffer, which a kernel that then
//! overwrites every element wastes (for the model-level step this was ~9% of the time, for a
//! 512×128 activation every op result). [`output_vec`] hands the kernel uninitialised memory
//! instead, under the contract that the kernel writes every element before anything reads it —
//! the same contract as a GEMM with `beta == 0`, which does not read `C`.
//!
//! [`tune_allocator`] (run once by the first [`output_vec`]) keeps glibc from returning freed
//! activation-sized blocks to the OS, so that the next op's output is recycled memory rather than
//! a fresh `mmap` that page-faults on first touch.

use std::sync::Once;

/// A vector of `len` floats, every one written by `fill`.
///
/// # Safety
/// `fill` receives `len` floats of uninitialised memory. It must write every element, and must
/// not read an element it has not written (nor hand the slice to code that does). Kernels that
/// accumulate into their output (`+=`) do not qualify; use a zero-filled vector for those. If
/// `fill` panics the memory is freed without being read.
pub unsafe fn output_vec(len: usize, fill: impl FnOnce(&mut [f32])) -> Vec<f32> {
    match try_output_vec(len, |out| {
        fill(out);
        Ok::<(), std::convert::Infallible>(())
    }) {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// [`output_vec`] for a fallible `fill`: on `Err` the memory is freed without being read.
///
/// # Safety
/// As [`output_vec`], for the `Ok` case.
pub unsafe fn try_output_vec<E>(
    len: usize,
    fill: impl FnOnce(&mut [f32]) -> Result<(), E>,
) -> Result<Vec<f32>, E> {
    tune_allocator();
    let mut v = Vec::<f32>::with_capacity(len);
    // SAFETY: the allocation holds `len` floats; the caller guarantees `fill` only writes them
    // (never reads an unwritten one), and the length is set only once `fill` has succeeded.
    fill(std::slice::from_raw_parts_mut(v.as_mut_ptr(), len))?;
    v.set_len(len);
    Ok(v)
}

/// Blocks at least this large are served by `mmap` (glibc's default is 128 KiB, raised
/// dynamically to the largest block freed so far, up to 32 MiB).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap is returned to the OS only above this.
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Tells glibc's malloc to keep freed blocks up to 32 MiB in the heap (and up to 256 MiB of free
/// heap) instead of unmapping them. Op outputs are allocated and freed at a high rate (hundreds
/// per training step, 256 KiB each at 512 tokens × 128 channels); with the defaults a share of
/// them are fresh mappings whose every page faults on first write. Runs once per process; a
/// no-op on other C libraries. Costs nothing but resident memory that the process was using anyway.
pub fn tune_allocator() {
    static TUNED: Once = Once::new();
    TUNED.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: mallopt only adjusts malloc's tuning parameters; both are documented
            // settings with in-range values. A failure (return 0) leaves the defaults in place.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
                mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_vec_holds_what_fill_wrote() {
        // Large enough to come from the allocator's big-block path, and recycled across rounds.
        for round in 0..3 {
            let n = (1 << 16) + round;
            // SAFETY: the closure writes every element and reads none.
            let v = unsafe {
                output_vec(n, |out| {
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = (i * 3 + round) as f32;
                    }
                })
            };
            assert_eq!(v.len(), n);
            assert!(v
                .iter()
                .enumerate()
                .all(|(i, &x)| x == (i * 3 + round) as f32));
        }
    }

    #[test]
    fn try_output_vec_passes_errors_through() {
        // SAFETY: the closure writes nothing and fails, so nothing is read.
        let r: Result<Vec<f32>, &str> = unsafe { try_output_vec(1000, |_| Err("bad shape")) };
        assert_eq!(r, Err("bad shape"));
        // SAFETY: an empty output needs no writes.
        let empty = unsafe { output_vec(0, |out| assert!(out.is_empty())) };
        assert!(empty.is_empty());
    }
}
