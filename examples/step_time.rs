//! Times the model-level benchmark (forward, LoRA step) — `cargo run --release --example step_time [threads]`.
fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    fym_kernels::cpu::set_num_threads(threads);
    let (f, s) = fym::perf::wan_step_ms(false).unwrap();
    println!(
        "threads {}: forward {f:.2} ms, lora step {s:.2} ms",
        fym_kernels::cpu::num_threads()
    );
}
