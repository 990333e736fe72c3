fn main() {
    let (f, s) = fym::perf::wan_step_ms(false).unwrap();
    println!("forward {f:.2} ms, lora step {s:.2} ms");
}
