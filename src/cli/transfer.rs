//! `fym transfer`: motion transfer from a reference video to a new prompt (Follow-Your-Motion:
//! classify heads, tune the spatial and temporal adapters, generate).
//!
//! With no arguments it uses the bundled reference clip (assets/reference.gif: a red circle
//! circling on black, the base model's background) and its prompt (a blue square, same motion). A user video needs `--caption`: the adapters are tuned with a
//! description of the reference in the model's words, and fym does not guess one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use fym_autograd::Device;

use crate::pipeline::batch::EmphasisMask;
use crate::pipeline::matte::Matte;
use crate::pipeline::train::LrSchedule;
use crate::pipeline::{
    progress::format_secs, run_transfer, Method, Model, RunOptions, Sampler, Targets,
    TransferConfig,
};
use crate::video::{fit, read_video, Video};

/// The bundled reference clip and its caption/prompt (see assets/reference.json).
pub const BUNDLED_VIDEO: &[u8] = include_bytes!("../../assets/reference.gif");
pub const BUNDLED_INFO: &str = include_str!("../../assets/reference.json");

#[derive(Args, Debug, Clone)]
pub struct TransferArgs {
    /// Reference video (GIF, Y4M or a folder of PNG frames); default: the bundled clip.
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// What the reference shows, in the model's words (required with --video).
    #[arg(long)]
    pub caption: Option<String>,
    /// The video to make; default: the bundled prompt.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Output folder; rerunning into the same folder resumes or reuses finished stages.
    #[arg(long, default_value = "fym-transfer")]
    pub out: PathBuf,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Seed of tuning (adapter init, frames, noise) and of generation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// fym, naive-two-stage, single-lora, fym-no-sparse, fym-no-adaptive-rope or no-tuning.
    #[arg(long, default_value = "fym")]
    pub method: String,
    /// Model: "builtin", a model folder, or random:SEED (a tiny untrained model for smoke tests).
    #[arg(long, default_value = "builtin")]
    pub model: String,
    #[command(flatten)]
    pub tuning: TuningArgs,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
    /// Print metrics.json on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Tuning and sampling settings shared by `fym transfer` and `fym motionbench run`.
#[derive(Args, Debug, Clone, Default)]
pub struct TuningArgs {
    /// Steps of the spatial (appearance) stage (default 150).
    #[arg(long)]
    pub spatial_steps: Option<usize>,
    /// Steps of the temporal (motion) stage (default 600: twice 300 followed the reference a
    /// little better, human motion most, for twice the stage's time).
    #[arg(long)]
    pub temporal_steps: Option<usize>,
    /// Sampling steps.
    #[arg(long)]
    pub sample_steps: Option<usize>,
    /// Classifier-free guidance scale (default 2: with the tuned adapters, 3 exaggerated the
    /// learnt motion and followed the reference less well)
    #[arg(long)]
    pub cfg: Option<f32>,
    /// euler (default) or stochastic.
    #[arg(long)]
    pub sampler: Option<String>,
    /// Strength of the spatial (appearance) adapter at generation (default 1: as trained, which
    /// with the matted tuning followed the reference better on the whole benchmark; 0: the
    /// temporal adapter alone).
    #[arg(long)]
    pub spatial_scale: Option<f32>,
    /// Strength of the temporal (motion) adapter at generation (default 1: as trained).
    #[arg(long)]
    pub temporal_scale: Option<f32>,
    /// The adapters take part only in sampling steps at noise levels σ ≥ this (default 0.3; 0:
    /// every step); below it the base model alone finishes the clip, which keeps the subject
    /// from fraying.
    #[arg(long)]
    pub adapter_min_sigma: Option<f32>,
    /// Share of the guidance direction taken from the base model instead of the adapted one
    /// while the adapters are active (default 0.25; 0: all from the adapted model; 1: the adapted
    /// prediction for the prompt plus the base model's guidance, which follows the prompt's motion
    /// words).
    #[arg(long)]
    pub base_guidance: Option<f32>,
    /// Share of the initial noise's variance common to every frame (0: each frame its own
    /// noise; 1: one noise for all frames), so what the sampler draws from it holds from frame
    /// to frame.
    #[arg(long)]
    pub frame_noise_share: Option<f32>,
    /// Latent frames per sparse training clip.
    #[arg(long)]
    pub sparse_frames: Option<usize>,
    /// Learning rate of both stages.
    #[arg(long)]
    pub lr: Option<f32>,
    /// How the learning rate moves over each adapter stage: constant (default) or cosine (from
    /// --lr at the first step down to 0 at the last).
    #[arg(long)]
    pub lr_schedule: Option<String>,
    /// LoRA rank (alpha = rank).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Clips per training step.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Shift of the training noise levels (1: uniform σ; larger: more weight near pure noise).
    #[arg(long)]
    pub train_shift: Option<f32>,
    /// Weight of the motion loss in the temporal stage (0: flow-matching loss alone).
    #[arg(long)]
    pub motion_weight: Option<f32>,
    /// Fraction of training clips given the empty caption (both adapter stages), so guidance
    /// starts from an unconditional prediction that learnt the reference too.
    #[arg(long)]
    pub caption_dropout: Option<f32>,
    /// Probability that a clip of the temporal stage shows the matted reference's subjects in
    /// other colours, named so in its caption (0: never), so the motion adapter learns the
    /// motion apart from the subject's colour words.
    #[arg(long)]
    pub recolour: Option<f32>,
    /// Strength of the temporal stage's emphasis on the pixels where the reference changes, for
    /// references whose background holds still (default 4: a pixel that moves weighs 5× a still
    /// one; 0: every pixel alike).
    #[arg(long)]
    pub motion_emphasis: Option<f32>,
    /// Which pixels the emphasis favours: motion (where the reference changes, only when its
    /// background holds still; default), motion-else-subject (the subject, as the border-colour
    /// segmentation finds it, where the background moves) or subject (always the subject).
    #[arg(long)]
    pub emphasis_mask: Option<String>,
    /// What the tuning sees of the reference: subject (default: its subject, as the border-colour
    /// segmentation finds it, on black, and the caption's background made plain; the built-in
    /// model learnt its objects on black) or none (the reference as it is).
    #[arg(long)]
    pub matte: Option<String>,
    /// Projections the temporal (motion) adapter adapts: a comma-separated list of q, k, v, out
    /// (default all four).
    #[arg(long)]
    pub temporal_targets: Option<String>,
    /// Projections the spatial (appearance) adapter adapts (default q,k,v,out).
    #[arg(long)]
    pub spatial_targets: Option<String>,
    /// AdamW weight decay of the spatial (appearance) adapter.
    #[arg(long)]
    pub spatial_weight_decay: Option<f32>,
    /// AdamW weight decay of the temporal (motion) adapter.
    #[arg(long)]
    pub temporal_weight_decay: Option<f32>,
    /// Bind each of the prompt's subjects to where the reference's subject of the same place in
    /// the caption is (on, the default, or off): the video tokens there read that subject's words
    /// and not the other subjects', the tokens where the reference shows no subject read no
    /// subject's words. Only when the caption and prompt name the same number (two or more).
    #[arg(long)]
    pub bind_subjects: Option<String>,
    /// Seed of the generation noise (default: --seed).
    #[arg(long)]
    pub sample_seed: Option<u64>,
}

impl TuningArgs {
    /// The pipeline config for `method` and `seed` with these overrides.
    pub fn config(&self, method: Method, seed: u64) -> Result<TransferConfig> {
        let mut c = TransferConfig {
            method,
            seed,
            ..TransferConfig::default()
        };
        c.generate.seed = self.sample_seed.unwrap_or(seed);
        if let Some(v) = self.spatial_steps {
            c.spatial_steps = v;
        }
        if let Some(v) = self.temporal_steps {
            c.temporal_steps = v;
        }
        if let Some(v) = self.sample_steps {
            c.generate.steps = v;
        }
        if let Some(v) = self.cfg {
            c.generate.cfg = v;
        }
        if let Some(s) = &self.sampler {
            c.generate.sampler = Sampler::parse(s)
                .with_context(|| format!("--sampler {s:?}: choose euler or stochastic"))?;
        }
        if let Some(v) = self.spatial_scale {
            c.spatial_scale = v;
        }
        if let Some(v) = self.temporal_scale {
            c.temporal_scale = v;
        }
        if let Some(v) = &self.bind_subjects {
            c.bind_subjects = match v.as_str() {
                "on" => true,
                "off" => false,
                _ => anyhow::bail!("--bind-subjects {v:?}: choose on or off"),
            };
        }
        if let Some(v) = self.adapter_min_sigma {
            c.generate.adapter_min_sigma = v;
        }
        if let Some(v) = self.base_guidance {
            c.generate.base_guidance = v;
        }
        if let Some(v) = self.frame_noise_share {
            c.generate.frame_noise_share = v;
        }
        c.sparse_frames = self.sparse_frames.or(c.sparse_frames);
        if let Some(v) = self.lr {
            c.lr = v;
        }
        if let Some(v) = &self.lr_schedule {
            c.lr_schedule = LrSchedule::parse(v)
                .with_context(|| format!("--lr-schedule {v:?}: choose constant or cosine"))?;
        }
        if let Some(v) = self.rank {
            c.lora.rank = v;
            c.lora.alpha = v as f32;
        }
        if let Some(v) = self.batch {
            c.batch = v;
        }
        if let Some(v) = self.train_shift {
            c.train_shift = v;
        }
        if let Some(v) = self.motion_weight {
            c.motion_weight = v;
        }
        if let Some(v) = self.caption_dropout {
            c.caption_dropout = v;
        }
        if let Some(v) = self.recolour {
            c.recolour = v;
        }
        if let Some(v) = self.motion_emphasis {
            c.motion_emphasis = v;
        }
        if let Some(v) = &self.emphasis_mask {
            c.emphasis_mask = EmphasisMask::parse(v).with_context(|| {
                format!("--emphasis-mask {v:?}: choose motion, motion-else-subject or subject")
            })?;
        }
        if let Some(v) = &self.matte {
            c.matte = Matte::parse(v)
                .with_context(|| format!("--matte {v:?}: choose none or subject"))?;
        }
        if let Some(v) = &self.temporal_targets {
            c.lora.temporal_targets = Targets::parse(v).context("--temporal-targets")?;
        }
        if let Some(v) = &self.spatial_targets {
            c.lora.spatial_targets = Targets::parse(v).context("--spatial-targets")?;
        }
        if let Some(v) = self.spatial_weight_decay {
            c.spatial_weight_decay = v;
        }
        if let Some(v) = self.temporal_weight_decay {
            c.temporal_weight_decay = v;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Loads the model named by `--model` onto `device`.
pub fn load_model(spec: &str, device: Device) -> Result<Model> {
    let mut model = Model::load(spec).with_context(|| format!("--model {spec}"))?;
    model.to_device(device)?;
    Ok(model)
}

/// Reads the reference video and brings it to the model's clip shape.
pub fn read_reference(path: &Path, model: &Model) -> Result<Video> {
    let video = read_video(path).with_context(|| format!("reference video {}", path.display()))?;
    check_reference(&video, &path.display().to_string())?;
    let c = model.clip;
    Ok(fit(&video, c.frames, c.height, c.width))
}

/// A reference must have frames to show motion.
pub fn check_reference(video: &Video, name: &str) -> Result<()> {
    if video.frames < 2 || video.height == 0 || video.width == 0 {
        bail!(
            "reference video {name} is {}x{}x{} (frames x height x width); motion transfer needs \
             at least 2 frames",
            video.frames,
            video.height,
            video.width
        );
    }
    Ok(())
}

/// (video, caption, prompt) of the bundled example.
fn bundled(out: &Path) -> Result<(PathBuf, String, String)> {
    let info: serde_json::Value =
        serde_json::from_str(BUNDLED_INFO).context("bundled assets/reference.json")?;
    let field = |k: &str| -> Result<String> {
        info.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .with_context(|| format!("bundled assets/reference.json lacks {k:?}"))
    };
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))?;
    let path = out.join("reference.gif");
    fym_autograd::write_atomic(&path, BUNDLED_VIDEO)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((path, field("caption")?, field("prompt")?))
}

pub fn run(args: TransferArgs) -> Result<()> {
    let start = Instant::now();
    let device = super::check_device(&args.device)?;
    let method = Method::parse(&args.method)?;
    let config = args.tuning.config(method, args.seed)?;
    // Load the model first: a missing model must not leave files behind.
    let mut model = load_model(&args.model, device)?;
    let (video_path, caption, default_prompt) = match &args.video {
        None => bundled(&args.out)?,
        Some(path) => {
            if !path.exists() {
                bail!("reference video {} does not exist", path.display());
            }
            let caption = args.caption.clone().with_context(|| {
                format!(
                    "--caption is required with --video {}: describe the reference in the model's words \
                     (e.g. \"a red circle moves right on a checkered background\")",
                    path.display()
                )
            })?;
            (path.clone(), caption, String::new())
        }
    };
    let caption = match (&args.video, &args.caption) {
        (None, Some(c)) => c.clone(),
        _ => caption,
    };
    let prompt = match &args.prompt {
        Some(p) => p.clone(),
        None if args.video.is_none() => default_prompt,
        None => bail!("--prompt is required with --video: say what the new video should show"),
    };
    if prompt.trim().is_empty() {
        bail!("--prompt is empty: say what the new video should show");
    }
    if caption.trim().is_empty() {
        bail!("--caption is empty: describe the reference video");
    }
    model.check_prompt("--caption", &caption)?;
    model.check_prompt("--prompt", &prompt)?;
    let reference = read_reference(&video_path, &model)?;
    if !args.quiet {
        eprintln!(
            "fym transfer: {} method, model {}, reference {} ({caption:?}) -> {prompt:?}",
            method.name(),
            model.source,
            video_path.display()
        );
    }
    let run = RunOptions {
        out: args.out.clone(),
        quiet: args.quiet,
        stop_after: None,
    };
    let outcome = run_transfer(&mut model, &reference, &caption, &prompt, &config, &run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.metrics)?);
    }
    if !args.quiet {
        let m = &outcome.metrics["metrics"];
        let number =
            |v: &serde_json::Value| v.as_f64().map_or("n/a".to_string(), |v| format!("{v:.3}"));
        eprintln!(
            "done in {}: motion fidelity {}, track correlation {}, coherent {}; \
             with the reference caption (reproduction): track correlation {}; outputs in {}",
            format_secs(start.elapsed().as_secs_f64()),
            number(&m["motion_fidelity"]),
            number(&m["trajectory_correlation"]),
            number(&outcome.metrics["coherent_fraction"]),
            number(&outcome.metrics["reproduction"]["trajectory_correlation"]),
            args.out.display()
        );
        if outcome.metrics["reproduction"]["passed"] != true {
            eprintln!(
                "warning: the reproduction check failed (track correlation below {}): the tuned \
                 adapters do not give back the reference's motion even with its own caption, so \
                 the result's motion is not the reference's either",
                crate::pipeline::REPRODUCTION_THRESHOLD
            );
        }
    }
    Ok(())
}
