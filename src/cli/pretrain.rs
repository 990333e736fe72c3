//! `fym pretrain`: trains the base text-to-video model (flow matching on rendered, captioned
//! clips), with progress on stderr, atomic checkpoints every few minutes and bit-for-bit
//! `--resume`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::base::train::{TrainConfig, Trainer};

#[derive(clap::Args, Debug)]
pub struct PretrainArgs {
    /// Training config (JSON; keys left out keep their defaults). With --resume: a new phase
    /// (learning-rate schedule restarted at the checkpoint's step; only optimisation and loss keys
    /// may change).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run folder: checkpoint.safetensors (resumable) and model/ (EMA weights, loadable with --model).
    #[arg(long, default_value = "runs/base")]
    pub out: PathBuf,
    /// Continue from the run folder's checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// cpu, cuda or cuda:N (every op of the training step runs there; optimizer and EMA on the host).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Stop after this many minutes of training in this run.
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Stop when the run reaches this many optimizer steps in total.
    #[arg(long)]
    pub steps: Option<u64>,
    /// CPU threads for the kernels (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Instead of training: write the run's EMA model (`--out`/model) to this folder with bf16
    /// weights (how the built-in model under models/base is made).
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// With --export: a `fym eval-base --json` result to record in the model card.
    #[arg(long, requires = "export")]
    pub gate: Option<PathBuf>,
    /// Print the default training config as JSON and exit.
    #[arg(long)]
    pub print_config: bool,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

pub fn run(args: PretrainArgs) -> anyhow::Result<()> {
    if args.print_config {
        println!(
            "{}",
            serde_json::to_string_pretty(&TrainConfig::default().to_json())?
        );
        return Ok(());
    }
    if let Some(dir) = &args.export {
        return export(&args.out.join("model"), dir, args.gate.as_deref());
    }
    let device = super::check_device(&args.device)?;
    if args.minutes.is_none() && args.steps.is_none() {
        anyhow::bail!("give --minutes N or --steps N (how long to train)");
    }
    fym_kernels::cpu::set_num_threads(args.threads);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create run folder {}", args.out.display()))?;
    let checkpoint = Trainer::checkpoint_path(&args.out);
    let read_config = |p: &std::path::Path| -> anyhow::Result<serde_json::Value> {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read --config {}", p.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("--config {}: not valid JSON", p.display()))
    };
    let mut trainer = if args.resume {
        let mut t = Trainer::resume(&checkpoint)?;
        if let Some(p) = &args.config {
            t.start_phase(&read_config(p)?, &p.display().to_string())?;
            if !args.quiet {
                eprintln!(
                    "--resume with --config: new phase from step {} (lr {:.1e} → {:.1e} over {} steps)",
                    t.step, t.config.lr, t.config.lr_min, t.config.decay_steps
                );
            }
        }
        t
    } else {
        if checkpoint.exists() {
            anyhow::bail!(
                "{} exists: pass --resume to continue it, or choose another --out",
                checkpoint.display()
            );
        }
        let config = match &args.config {
            Some(p) => TrainConfig::from_json(&read_config(p)?, &p.display().to_string())?,
            None => TrainConfig::default(),
        };
        Trainer::new(config)?
    };
    trainer.to_device(device)?;
    let batch = trainer.config.batch as f64;
    if !args.quiet {
        eprintln!(
            "pretrain: {} parameters, {} clips of {}×{}×{} per step, from step {}, on {device}, {} threads",
            trainer.params().numel(),
            trainer.config.batch,
            trainer.config.frames,
            trainer.config.height,
            trainer.config.width,
            trainer.step,
            fym_kernels::cpu::num_threads()
        );
    }
    let start = Instant::now();
    let start_step = trainer.step;
    let mut last_report = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut recent = Vec::new();
    let checkpoint_every = trainer.config.checkpoint_minutes as f64 * 60.0;
    loop {
        let done_time = args
            .minutes
            .is_some_and(|m| start.elapsed().as_secs_f64() >= m * 60.0);
        let done_steps = args.steps.is_some_and(|s| trainer.step >= s);
        if done_time || done_steps {
            break;
        }
        let t0 = Instant::now();
        let loss = trainer.train_step()?;
        trainer.seconds += t0.elapsed().as_secs_f64();
        recent.push(loss);
        if last_checkpoint.elapsed().as_secs_f64() >= checkpoint_every {
            save(&mut trainer, &args.out)?;
            last_checkpoint = Instant::now();
        }
        if !args.quiet && last_report.elapsed().as_secs_f64() >= 10.0 {
            let elapsed = start.elapsed().as_secs_f64();
            let rate = (trainer.step - start_step) as f64 / elapsed;
            let eta_minutes = args.minutes.map(|m| m * 60.0 - elapsed);
            let eta_steps = args
                .steps
                .map(|s| s.saturating_sub(trainer.step) as f64 / rate.max(1e-9));
            let eta = match (eta_minutes, eta_steps) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => 0.0,
            };
            let mean = recent.iter().sum::<f32>() / recent.len() as f32;
            eprintln!(
                "step {:>6}  loss {mean:.4}  lr {:.2e}  {:.1} clips/s  elapsed {}  ETA {}",
                trainer.step,
                trainer.config.lr_at(trainer.step),
                rate * batch,
                clock(elapsed),
                clock(eta)
            );
            recent.clear();
            last_report = Instant::now();
        }
    }
    let session = start.elapsed().as_secs_f64();
    if let Some(report) = fym_autograd::profile_report() {
        eprintln!(
            "time per op ({}=1; each GPU op waited for):\n{report}",
            fym_autograd::PROFILE_ENV
        );
    }
    save(&mut trainer, &args.out)?;
    if !args.quiet {
        let steps = trainer.step - start_step;
        eprintln!(
            "pretrain: {steps} steps in {session:.1} s ({:.3} s/step, {:.1} clips/s); stopped at step {} \
             ({} of training in all); checkpoint {}",
            session / steps.max(1) as f64,
            steps as f64 * batch / session.max(1e-9),
            trainer.step,
            clock(trainer.seconds),
            checkpoint.display()
        );
    }
    Ok(())
}

/// Checkpoint plus the EMA model folder (both written atomically, file by file).
fn save(trainer: &mut Trainer, out: &std::path::Path) -> anyhow::Result<()> {
    trainer.save_checkpoint(&Trainer::checkpoint_path(out))?;
    trainer.ema_model()?.save(&out.join("model"))
}

/// Copies a model folder with bf16 weights, recording the gate's result in its card.
fn export(
    model: &std::path::Path,
    dir: &std::path::Path,
    gate: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut m = crate::base::BaseModel::load(model)?;
    if let Some(g) = gate {
        let text = std::fs::read_to_string(g)
            .with_context(|| format!("cannot read --gate {}", g.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("--gate {}: not valid JSON", g.display()))?;
        m.card["gate"] = v;
    }
    m.card["stored_as"] = serde_json::json!("bf16");
    m.save_as(dir, crate::base::files::StoreDtype::Bf16)
}
