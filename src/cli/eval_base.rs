//! `fym eval-base`: the base model's quality gate on the held-out captions (fixed seeds):
//! coherent object, colour and shape match, direction of motion, spatial/temporal heads.

use std::path::PathBuf;

use crate::base::data::World;
use crate::base::eval::run_gate;
use crate::base::SampleOptions;
use crate::cli::generate::{load_model, parse_sampler};

#[derive(clap::Args, Debug)]
pub struct EvalBaseArgs {
    /// A model folder instead of the built-in model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Add every clip's measurements and every head's statistics.
    #[arg(long)]
    pub verbose: bool,
    /// Seed of the first caption's sample (caption i uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = SampleOptions::default().steps)]
    pub steps: usize,
    #[arg(long, default_value_t = SampleOptions::default().cfg)]
    pub cfg: f32,
    #[arg(long, default_value_t = SampleOptions::default().shift)]
    pub shift: f32,
    /// euler or stochastic.
    #[arg(long, default_value = "stochastic")]
    pub sampler: String,
    #[arg(long, default_value_t = 1.0)]
    pub eta: f32,
    /// Clips sampled together in one batch.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu or cuda (or cuda:N): where the model runs.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: EvalBaseArgs) -> anyhow::Result<()> {
    fym_kernels::cpu::set_num_threads(args.threads);
    let device = crate::cli::check_device(&args.device)?;
    let mut model = load_model(args.model.as_ref())?;
    model.to_device(device)?;
    let options = SampleOptions {
        seed: args.seed,
        steps: args.steps,
        cfg: args.cfg,
        shift: args.shift,
        sampler: parse_sampler(&args.sampler, args.eta)?,
    };
    let report = run_gate(&model, &World::default(), &options, args.batch)?;
    if args.json {
        println!("{}", report.to_json(args.verbose));
        return Ok(());
    }
    let v = report.to_json(args.verbose);
    println!(
        "base-model gate on {} held-out captions ({:.1} s):",
        report.scores.len(),
        report.seconds
    );
    println!(
        "  coherent object    {:.2}  (≥ {:.2})",
        report.coherent(),
        crate::base::eval::GATE_COHERENT
    );
    println!(
        "  colour and shape   {:.2}  (≥ {:.2}; colour {:.2}, shape {:.2}; shape by the earlier fill measure {:.2})",
        report.caption_match(),
        crate::base::eval::GATE_CAPTION,
        v["color_match"].as_f64().unwrap_or(0.0),
        v["shape_match"].as_f64().unwrap_or(0.0),
        v["shape_match_by_fill"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  direction          {:.2}  (≥ {:.2})",
        report.direction(),
        crate::base::eval::GATE_DIRECTION
    );
    println!(
        "  heads              {} clearly spatial, {} clearly temporal of {} ({} temporal by the paper's rule)",
        report.spatial_heads(),
        report.temporal_heads(),
        v["total_heads"],
        v["paper_rule_temporal_heads"]
    );
    for (i, layer) in report.heads.iter().enumerate() {
        let labels: Vec<&str> = layer.iter().map(|h| h.label()).collect();
        println!("    layer {i}: {}", labels.join(" "));
    }
    println!(
        "  {}",
        if report.passed() {
            "PASSED"
        } else {
            "NOT PASSED"
        }
    );
    Ok(())
}
