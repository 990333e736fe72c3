//! The `fym` command line: one file per subcommand, each with its clap `Args` and a `run`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use fym_autograd::Device;

pub mod bench;
pub mod classify;
pub mod eval_base;
pub mod forward;
pub mod generate;
pub mod metrics;
pub mod motionbench;
pub mod pretrain;
pub mod transfer;

#[derive(Parser, Debug)]
#[command(
    name = "fym",
    version,
    about = "Follow-Your-Motion video motion transfer on fym's own engine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Benchmark kernels: FMA peak, GEMM, attention (time, GFLOP/s, fraction of peak).
    Bench(bench::BenchArgs),
    /// MotionBench-synth: list or export the benchmark's reference videos and prompts.
    Motionbench(motionbench::MotionbenchArgs),
    /// Score a generated video against a reference (motion fidelity, consistency, alignment, leakage).
    Metrics(metrics::MetricsArgs),
    /// Motion transfer: tune on a reference video, generate a new prompt with its motion.
    Transfer(Box<transfer::TransferArgs>),
    /// Label every attention head spatial or temporal from a reference video (stage 1 alone).
    Classify(classify::ClassifyArgs),
    /// Run the model on tensors from a safetensors file; write the output (and gradients).
    Forward(forward::ForwardArgs),
    /// Train the base text-to-video model (flow matching on rendered, captioned clips).
    Pretrain(pretrain::PretrainArgs),
    /// Sample one clip from the base model (built-in or --model DIR), optionally with LoRA files.
    Generate(generate::GenerateArgs),
    /// The base model's quality gate on held-out captions (--json for one object).
    EvalBase(eval_base::EvalBaseArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Motionbench(args) => motionbench::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Transfer(args) => transfer::run(*args),
        Command::Classify(args) => classify::run(args),
        Command::Forward(args) => forward::run(args),
        Command::Pretrain(args) => pretrain::run(args),
        Command::Generate(args) => generate::run(args),
        Command::EvalBase(args) => eval_base::run(args),
    }
}

/// The device `--device` names (cpu, cuda or cuda:N), after checking that it can be opened: no
/// driver or no such GPU is a clear error that says to use the CPU.
pub fn check_device(device: &str) -> anyhow::Result<Device> {
    let parsed: Device = device
        .parse()
        .map_err(|_| anyhow::anyhow!("--device {device:?}: choose cpu or cuda (or cuda:N)"))?;
    if let Device::Cuda(ordinal) = parsed {
        fym_kernels::cuda::CudaDevice::open(ordinal).context("--device cuda")?;
    }
    Ok(parsed)
}
