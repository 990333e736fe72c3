//! The FMA peak micro-benchmark returns a plausible throughput.

use fym_kernels::cpu::peak::{best_isa, measure_fma_peak_gflops};

#[test]
fn peak_is_positive_and_finite() {
    let isa = best_isa();
    assert!(
        ["avx512", "avx2", "scalar"].contains(&isa),
        "unknown ISA {isa}"
    );
    for threads in [1, 2] {
        let gflops = measure_fma_peak_gflops(threads);
        // Even a scalar loop on a slow core manages well over 0.1 GFLOP/s; nothing reaches 1e5 per thread.
        assert!(
            gflops.is_finite() && gflops > 0.1 && gflops < 1e5 * threads as f64,
            "{threads} threads: {gflops}"
        );
    }
}
