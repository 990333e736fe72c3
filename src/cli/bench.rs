//! `fym bench`: kernel benchmarks with the machine's measured peak.

use crate::perf::{mask_speedups, run_cpu, BenchPlan, BenchResult, BENCH_TOKENS_PER_FRAME};
use crate::perf_cuda::{device_summary, run_cuda_on};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Device to benchmark: cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Worker threads for CPU kernels (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Fewer repetitions (a smoke test, not a measurement).
    #[arg(long)]
    pub quick: bool,
    /// Only ops whose name contains this (e.g. gemm, attention_fwd).
    #[arg(long)]
    pub only: Option<String>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let device: fym_kernels::Device = args.device.parse()?;
    let plan = BenchPlan {
        threads: args.threads,
        quick: args.quick,
        filter: args.only,
    };
    if let fym_kernels::Device::Cuda(ordinal) = device {
        return run_cuda_bench(ordinal, &plan, args.json);
    }
    if !args.json {
        println!(
            "fym bench: device cpu, {} threads",
            if plan.threads == 0 {
                fym_kernels::cpu::num_threads()
            } else {
                plan.threads
            }
        );
    }
    let results = run_cpu(&plan, |r| {
        if args.json {
            println!("{}", r.to_json());
        } else {
            println!("{}", r.to_row());
        }
    });
    if !args.json {
        for line in mask_speedups(&results, BENCH_TOKENS_PER_FRAME) {
            println!("{line}");
        }
    }
    Ok(())
}

/// The GPU benchmarks; without a GPU, the error of opening it (the CLI exits 1).
fn run_cuda_bench(ordinal: usize, plan: &BenchPlan, json: bool) -> anyhow::Result<()> {
    let summary = device_summary(ordinal)?;
    // Keep stdout pure JSON lines with --json; the device still gets named, on stderr.
    if json {
        eprintln!("fym bench: {summary}");
    } else {
        println!("fym bench: {summary}");
    }
    run_cuda_on(ordinal, plan, |r: &BenchResult| {
        if json {
            println!("{}", r.to_json());
        } else {
            println!("{}", r.to_row());
        }
    })?;
    Ok(())
}
