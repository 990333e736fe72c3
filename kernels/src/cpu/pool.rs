//! Work splitting over the CPU cores. Kernels call [`parallel_for`] with a number of independent
//! tasks; the calling thread and a persistent pool of worker threads claim the tasks in
//! contiguous chunks until none is left. Idle workers poll briefly for the next call, then park
//! on a condition variable.
//!
//! One call runs on the pool at a time. A call made while the pool is busy — a task calling
//! `parallel_for` (nested), or another thread calling at the same time — runs inline on its own
//! thread, so there is no deadlock and no oversubscription of the cores.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// How long an idle worker polls for the next job, and a caller for its workers to finish,
/// before parking (see [`spin_until`]).
const SPIN_TIME: Duration = Duration::from_micros(50);

/// Number of worker threads kernels use (default: all available cores).
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => available_cores(),
        n => n,
    }
}

/// The cores this process may use, asked once: `available_parallelism` reads the CPU affinity
/// and the cgroup quota files on every call (~28 µs on a 2-vCPU VM), and every kernel call asks.
fn available_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Sets the number of threads kernels use (0 = all cores).
pub fn set_num_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// Runs `f(task)` exactly once for every task in `0..n_tasks`, spread over up to
/// [`num_threads`] threads (the caller included). Runs inline when there is one task, one
/// thread, or when the pool is already busy (nested or concurrent calls).
///
/// A panic in a task is re-raised on the caller after every thread has left the call.
pub fn parallel_for<F: Fn(usize) + Sync>(n_tasks: usize, f: F) {
    let threads = num_threads().min(n_tasks);
    if threads <= 1 {
        (0..n_tasks).for_each(f);
        return;
    }
    let pool = pool();
    if pool
        .busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        (0..n_tasks).for_each(f);
        return;
    }
    pool.ensure_workers(threads - 1);
    // A few chunks per thread so that a thread slowed by another process on the machine does not
    // hold everyone up; with one task per thread (the GEMM split) every chunk is one task.
    let job = Job {
        task: &f,
        n_tasks,
        chunk: n_tasks.div_ceil(threads * 4).max(1),
        next: AtomicUsize::new(0),
    };
    // Workers only see the job through a lifetime-erased pointer; `Publication::finish` waits until
    // every worker has let go of it, and runs even if the caller's tasks panic (they are caught),
    // so the pointer never outlives `f` or `job`.
    let job_ptr = JobPtr(std::ptr::from_ref(&job).cast::<Job<'static>>());
    let publication = Publication::new(pool, job_ptr, threads - 1);
    let caller_result = catch_unwind(AssertUnwindSafe(|| job.run()));
    let worker_panicked = publication.finish();
    if let Err(payload) = caller_result {
        resume_unwind(payload);
    }
    if worker_panicked {
        panic!("parallel_for: a task panicked on a worker thread");
    }
}

/// One `parallel_for` call as the threads see it.
struct Job<'a> {
    task: &'a (dyn Fn(usize) + Sync),
    n_tasks: usize,
    chunk: usize,
    next: AtomicUsize,
}

impl Job<'_> {
    /// Claims chunks of tasks until none is left.
    fn run(&self) {
        loop {
            let start = self.next.fetch_add(self.chunk, Ordering::Relaxed);
            if start >= self.n_tasks {
                return;
            }
            (start..(start + self.chunk).min(self.n_tasks)).for_each(self.task);
        }
    }
}

#[derive(Clone, Copy)]
struct JobPtr(*const Job<'static>);
// SAFETY: the pointee is only read (its counter is atomic) and stays alive while any worker holds
// the pointer, see `Publication`.
unsafe impl Send for JobPtr {}

struct Pool {
    state: Mutex<PoolState>,
    work_ready: Condvar,
    work_done: Condvar,
    /// Held by the one `parallel_for` call that owns the workers.
    busy: AtomicBool,
    /// Copy of `PoolState::generation` that spinning workers poll without the lock.
    published: AtomicU64,
    /// Workers inside the current job. Raised under the lock (so a withdrawn job gets no new
    /// workers), lowered without it (so the waiting caller can spin on it).
    active: AtomicUsize,
    worker_panicked: AtomicBool,
}

struct PoolState {
    job: Option<JobPtr>,
    /// Bumped per published job, so a worker joins each job at most once.
    generation: u64,
    /// Workers the current job still accepts.
    open_slots: usize,
    /// Workers blocked on `work_ready` (the others are spinning or working).
    parked: usize,
    workers: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            job: None,
            generation: 0,
            open_slots: 0,
            parked: 0,
            workers: 0,
        }),
        work_ready: Condvar::new(),
        work_done: Condvar::new(),
        busy: AtomicBool::new(false),
        published: AtomicU64::new(0),
        active: AtomicUsize::new(0),
        worker_panicked: AtomicBool::new(false),
    })
}

/// Polls `done` for up to [`SPIN_TIME`]; returns whether it became true. Kernels often call
/// `parallel_for` back to back and their tasks end at about the same time, so a short poll
/// usually sees the event in well under a microsecond, where parking and being woken costs ~10 µs.
fn spin_until(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < SPIN_TIME {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
    }
    false
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Tasks run outside the lock, so a poisoned lock cannot hold a half-updated state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns workers until there are `n`. If the OS refuses a thread the pool simply stays
    /// smaller: the caller still runs every task that no worker claims.
    fn ensure_workers(&'static self, n: usize) {
        let mut state = self.lock();
        while state.workers < n {
            let spawned = std::thread::Builder::new()
                .name(format!("fym-pool-{}", state.workers))
                .spawn(move || self.worker_loop());
            if spawned.is_err() {
                break;
            }
            state.workers += 1;
        }
    }

    fn worker_loop(&self) {
        let mut seen_generation = 0;
        loop {
            spin_until(|| self.published.load(Ordering::Relaxed) != seen_generation);
            let job = {
                let mut state = self.lock();
                loop {
                    if state.generation != seen_generation {
                        seen_generation = state.generation;
                        if let Some(job) = state.job.filter(|_| state.open_slots > 0) {
                            state.open_slots -= 1;
                            self.active.fetch_add(1, Ordering::Relaxed);
                            break job;
                        }
                    }
                    state.parked += 1;
                    state = self
                        .work_ready
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                    state.parked -= 1;
                }
            };
            // SAFETY: `active` was raised under the lock while the job was published, and the
            // publishing caller waits for `active == 0` before the job goes out of scope.
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0).run() }));
            if result.is_err() {
                self.worker_panicked.store(true, Ordering::Relaxed);
            }
            // Release: the caller that sees `active == 0` also sees this worker's writes.
            if self.active.fetch_sub(1, Ordering::Release) == 1 {
                // Taking the lock orders this notify after any caller's check-then-wait, so the
                // wake-up cannot fall between its check and its wait.
                drop(self.lock());
                self.work_done.notify_all();
            }
        }
    }
}

/// A job visible to the workers until [`Publication::finish`] withdraws it.
struct Publication {
    pool: &'static Pool,
}

impl Publication {
    fn new(pool: &'static Pool, job: JobPtr, slots: usize) -> Self {
        let mut state = pool.lock();
        state.job = Some(job);
        state.generation += 1;
        state.open_slots = slots;
        pool.published.store(state.generation, Ordering::Relaxed);
        let wake = state.parked > 0;
        drop(state);
        if wake {
            pool.work_ready.notify_all();
        }
        Publication { pool }
    }

    /// Withdraws the job, waits until every worker that joined it has left, frees the pool, and
    /// returns whether a task panicked on a worker.
    fn finish(self) -> bool {
        let pool = self.pool;
        {
            let mut state = pool.lock();
            state.job = None;
            state.open_slots = 0;
        }
        // From here no worker joins, so `active` only falls.
        let all_left = || pool.active.load(Ordering::Acquire) == 0;
        if !spin_until(all_left) {
            let mut state = pool.lock();
            while !all_left() {
                state = pool
                    .work_done
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        let panicked = pool.worker_panicked.swap(false, Ordering::Relaxed);
        pool.busy.store(false, Ordering::Release);
        panicked
    }
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
    /// The pointer. Closures should call this rather than read `.0`: capturing the field alone
    /// would capture a bare `*mut T`, which is not `Sync`.
    pub fn ptr(&self) -> *mut T {
        self.0
    }
    /// # Safety
    /// `offset..offset+len` must lie inside the original slice and no other task may touch it
    /// while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, offset: usize, len: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(offset), len)
    }
}
