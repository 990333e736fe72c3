//! Micro-benchmark of the machine's f32 FMA peak, so every GFLOP/s figure fym prints can be
//! given as a fraction of what this machine can do, measured in the same run.
//!
//! Each thread runs `CHAINS` independent FMA chains in registers (no memory traffic) for a fixed
//! time. With 16 chains there are 2× more independent FMAs in flight than the 2 FMA ports × 4-cycle
//! latency of current x86 cores need, so the ports, not the latency, set the pace.
//!
//! The run is timed in short rounds and each thread reports its median round: on a shared machine
//! the few rounds in which the thread was preempted are outliers that the median ignores, where
//! a plain average over the run would count them.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// How long each thread runs its chains.
const RUN_TIME: Duration = Duration::from_millis(200);
/// Independent accumulators per thread.
const CHAINS: usize = 16;
/// FMA steps per chain in one timed round (~50 µs: long next to the clock's overhead, short next
/// to a scheduler time slice).
const STEPS_PER_ROUND: usize = 16384;

/// The instruction set [`measure_fma_peak_gflops`] uses on this CPU: "avx512", "avx2" or "scalar".
pub fn best_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return "avx2";
        }
    }
    "scalar"
}

/// Measured f32 FMA throughput in GFLOP/s (2 flops per FMA lane) using `threads` threads
/// (at least 1), all running at once for about 0.2 s.
pub fn measure_fma_peak_gflops(threads: usize) -> f64 {
    let threads = threads.max(1);
    let isa = best_isa();
    let start_line = Barrier::new(threads);
    let per_thread: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start_line.wait();
                    run_chains(isa)
                })
            })
            .collect();
        // A thread that failed to run contributes nothing rather than aborting the measurement.
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0.0))
            .collect()
    });
    per_thread.iter().sum::<f64>() / 1e9
}

/// Runs the chains for [`RUN_TIME`] and returns this thread's flop/s in its median round.
fn run_chains(isa: &str) -> f64 {
    let (round, flops_per_round): (fn() -> f32, usize) = match isa {
        #[cfg(target_arch = "x86_64")]
        "avx512" => (avx512_round_entry, CHAINS * STEPS_PER_ROUND * 16 * 2),
        #[cfg(target_arch = "x86_64")]
        "avx2" => (avx2_round_entry, CHAINS * STEPS_PER_ROUND * 8 * 2),
        _ => (scalar_round, CHAINS * STEPS_PER_ROUND * 2),
    };
    round(); // warm up: wake the vector units and lift the clock before timing
    let start = Instant::now();
    let mut round_seconds = Vec::new();
    let mut sink = 0.0f32;
    while start.elapsed() < RUN_TIME {
        let round_start = Instant::now();
        sink += round();
        round_seconds.push(round_start.elapsed().as_secs_f64());
    }
    black_box(sink);
    round_seconds.sort_by(f64::total_cmp);
    flops_per_round as f64 / round_seconds[round_seconds.len() / 2]
}

/// Multiplier and addend keep every chain bounded (x → 0.999·x + 0.001 converges to 1) and away
/// from denormals, which would slow the FMAs.
const MUL: f32 = 0.999;
const ADD: f32 = 0.001;

fn scalar_round() -> f32 {
    let mut acc = black_box([0.5f32; CHAINS]);
    let (mul, add) = (black_box(MUL), black_box(ADD));
    for _ in 0..STEPS_PER_ROUND {
        for x in acc.iter_mut() {
            // Not `mul_add`: without hardware FMA that is a slow library call, not the peak.
            *x = *x * mul + add;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
fn avx512_round_entry() -> f32 {
    // SAFETY: only chosen when `best_isa` detected AVX-512F.
    unsafe { avx512_round() }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_round() -> f32 {
    use std::arch::x86_64::*;
    let mul = _mm512_set1_ps(black_box(MUL));
    let add = _mm512_set1_ps(black_box(ADD));
    let mut acc = [_mm512_set1_ps(black_box(0.5)); CHAINS];
    for _ in 0..STEPS_PER_ROUND {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, mul, add);
        }
    }
    let total = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x));
    _mm512_reduce_add_ps(total)
}

#[cfg(target_arch = "x86_64")]
fn avx2_round_entry() -> f32 {
    // SAFETY: only chosen when `best_isa` detected AVX2 and FMA.
    unsafe { avx2_round() }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_round() -> f32 {
    use std::arch::x86_64::*;
    let mul = _mm256_set1_ps(black_box(MUL));
    let add = _mm256_set1_ps(black_box(ADD));
    let mut acc = [_mm256_set1_ps(black_box(0.5)); CHAINS];
    for _ in 0..STEPS_PER_ROUND {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, mul, add);
        }
    }
    let total = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
    let mut lanes = [0.0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), total);
    lanes.iter().sum()
}
