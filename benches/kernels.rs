//! `cargo bench`: the same kernel benchmarks as `fym bench` (FMA peak, GEMM, attention).

fn main() {
    // cargo passes `--bench`; anything else that is not a flag is taken as an op filter.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let plan = fym::perf::BenchPlan {
        threads: 0,
        quick: false,
        filter,
    };
    fym::perf::run_cpu(&plan, |r| println!("{}", r.to_row()));
}
