//! `fym bench`: kernel benchmarks with the machine's measured peak.

use crate::perf::{run_cpu, BenchPlan};

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
    if let fym_kernels::Device::Cuda(ordinal) = device {
        fym_kernels::cuda::CudaDevice::open(ordinal)?;
        anyhow::bail!(
            "CUDA benchmarks are not part of this build yet; run `fym bench --device cpu`"
        );
    }
    let plan = BenchPlan {
        threads: args.threads,
        quick: args.quick,
        filter: args.only,
    };
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
    run_cpu(&plan, |r| {
        if args.json {
            println!("{}", r.to_json());
        } else {
            println!("{}", r.to_row());
        }
    });
    Ok(())
}
