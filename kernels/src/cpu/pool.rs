//! Work splitting over the CPU cores. Kernels call [`parallel_for`] with a number of independent
//! tasks; tasks are dealt out in contiguous chunks, one chunk per thread.

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Number of worker threads kernels use (default: all available cores).
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

/// Sets the number of threads kernels use (0 = all cores).
pub fn set_num_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// Runs `f(task)` for every task in `0..n_tasks`, spread over up to [`num_threads`] threads.
/// Runs inline when there is one task or one thread.
pub fn parallel_for<F: Fn(usize) + Sync>(n_tasks: usize, f: F) {
    let threads = num_threads().min(n_tasks);
    if threads <= 1 {
        (0..n_tasks).for_each(f);
        return;
    }
    let chunk = n_tasks.div_ceil(threads);
    std::thread::scope(|s| {
        for t in 1..threads {
            let f = &f;
            s.spawn(move || (t * chunk..((t + 1) * chunk).min(n_tasks)).for_each(f));
        }
        (0..chunk.min(n_tasks)).for_each(&f);
    });
}

/// A raw pointer that parallel tasks may share because each task writes a disjoint region.
/// Every use site states why the regions are disjoint.
#[derive(Clone, Copy)]
pub struct SharedMut<T>(pub *mut T);
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub fn new(s: &mut [T]) -> Self {
        SharedMut(s.as_mut_ptr())
    }
    /// # Safety
    /// `offset..offset+len` must lie inside the original slice and no other task may touch it
    /// while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, offset: usize, len: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(offset), len)
    }
}
