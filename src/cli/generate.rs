//! `fym generate`: samples one clip from the base model (built-in or `--model DIR`), optionally
//! with LoRA adapters, and writes it as a GIF (or any format `fym::video::write_video` knows).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::base::{BaseModel, SampleOptions, Sampler};

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// The caption, in the model's vocabulary (e.g. "a red circle moves right on a plain background").
    #[arg(long)]
    pub prompt: String,
    /// Seed of the initial noise and of the stochastic sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampling steps.
    #[arg(long, default_value_t = SampleOptions::default().steps)]
    pub steps: usize,
    /// Classifier-free guidance scale (1 = none).
    #[arg(long, default_value_t = SampleOptions::default().cfg)]
    pub cfg: f32,
    /// Shift of the σ schedule.
    #[arg(long, default_value_t = SampleOptions::default().shift)]
    pub shift: f32,
    /// euler or stochastic.
    #[arg(long, default_value = "stochastic")]
    pub sampler: String,
    /// Fraction of noise the stochastic sampler re-draws each step (0 = Euler).
    #[arg(long, default_value_t = 1.0)]
    pub eta: f32,
    /// LoRA files (diffusers/PEFT naming) to apply; their deltas add up.
    #[arg(long, num_args = 1..)]
    pub lora: Vec<PathBuf>,
    /// A model folder instead of the built-in model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output video (.gif, .y4m, or a folder of PNG frames).
    #[arg(long)]
    pub out: PathBuf,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu or cuda (or cuda:N): where the model runs.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No timing line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Parses `--sampler` / `--eta`.
pub fn parse_sampler(name: &str, eta: f32) -> anyhow::Result<Sampler> {
    match name {
        "euler" => Ok(Sampler::Euler),
        "stochastic" if (0.0..=1.0).contains(&eta) => Ok(Sampler::Stochastic { eta }),
        "stochastic" => anyhow::bail!("--eta must be in [0, 1], got {eta}"),
        other => anyhow::bail!("--sampler {other:?}: expected euler or stochastic"),
    }
}

/// The built-in model, or the one in `dir`.
pub fn load_model(dir: Option<&PathBuf>) -> anyhow::Result<BaseModel> {
    match dir {
        Some(d) => BaseModel::load(d),
        None => BaseModel::builtin(),
    }
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    fym_kernels::cpu::set_num_threads(args.threads);
    let opts = SampleOptions {
        seed: args.seed,
        steps: args.steps,
        cfg: args.cfg,
        shift: args.shift,
        sampler: parse_sampler(&args.sampler, args.eta)?,
    };
    let device = crate::cli::check_device(&args.device)?;
    let mut model = load_model(args.model.as_ref())?;
    for path in &args.lora {
        let io = fym_model::lora_io::read_lora(path)?;
        io.check_against_config(&model.wan.config, path)?;
        let adapter =
            fym_model::lora::Adapter::from_io(&io, model.wan.config.attention_head_dim, false)?;
        model.wan.adapters.list.push(adapter);
    }
    model.to_device(device)?;
    // Check the words before any work, so a typo fails at once with the vocabulary listed.
    model.text.tokenize(&args.prompt)?;
    let start = Instant::now();
    let video = model.sample(&args.prompt, &opts)?;
    let seconds = start.elapsed().as_secs_f64();
    crate::video::write_video(&args.out, &video)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if !args.quiet {
        eprintln!(
            "generate: {} frames {}×{} in {seconds:.2} s ({} steps, cfg {}) → {}",
            video.frames,
            video.height,
            video.width,
            opts.steps,
            opts.cfg,
            args.out.display()
        );
    }
    Ok(())
}
