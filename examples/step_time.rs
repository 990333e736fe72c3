//! Times the model-level benchmark (forward, LoRA step) — `cargo run --release --example step_time [threads]`.
//! Prints wall-time medians and, in brackets, the process CPU time per run (the steadier number
//! for one thread on a shared machine).
fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    fym_kernels::cpu::set_num_threads(threads);
    let t = fym::perf::wan_step_times(false).unwrap();
    println!(
        "threads {}: forward {:.2} ms (cpu {:.2}), lora step {:.2} ms (cpu {:.2})",
        fym_kernels::cpu::num_threads(),
        t.forward_ms,
        t.forward_cpu_ms,
        t.step_ms,
        t.step_cpu_ms
    );
    if let Some(mib) = fym::pipeline::peak_memory_mib() {
        println!("peak resident memory of the process: {mib:.1} MiB");
    }
}
