//! Micro-benchmark of the machine's f32 FMA peak, so every GFLOP/s figure fym prints can be
//! given as a fraction of what this machine can do, measured in the same run.

/// Measured f32 FMA throughput in GFLOP/s (2 flops per FMA lane) using `threads` threads.
pub fn measure_fma_peak_gflops(threads: usize) -> f64 {
    unimplemented!()
}
