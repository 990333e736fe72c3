//! The motion-transfer pipeline: `classify` (head labels) → `spatial` (appearance adapter on single
//! frames) → `temporal` (motion adapter on sparse frames with adaptive RoPE) → `generate` (new
//! prompt), plus the baselines that run in the same engine ([`Method`]).
//!
//! Every stage writes its artefacts atomically into the output folder and records itself in
//! `state.json` with a key of everything it depends on (see [`state`]); rerunning in the same
//! folder skips the finished stages and resumes an interrupted training stage from its last
//! checkpoint, giving the same result as an uninterrupted run.

pub mod batch;
pub mod bench;
pub mod binding;
pub mod classify;
pub mod generate;
pub mod lora;
pub mod matte;
pub mod model;
pub mod progress;
pub mod recolour;
pub mod spatial;
pub mod state;
pub mod summary;
pub mod temporal;
pub mod train;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use fym_model::adaptive_rope::TemporalPositions;
use fym_model::flow::{SigmaDistribution, TrainSigmaSampler};
use fym_model::heads::{HeadKind, HeadLabels};
use fym_model::lora::{Adapter, AdapterKind};
use serde_json::{json, Value};

use crate::metrics::{evaluate, largest_component_fraction, BackgroundHint};
use crate::video::{read_y4m, write_gif, write_side_by_side_gif, write_y4m, Chroma, Video};
use classify::ClassifyOptions;
pub use generate::{GenerateOptions, Sampler};
pub use lora::{LoraShape, Targets};
pub use model::{ClipShape, Model};
use state::{RunState, StableHash};
use temporal::FrameSampling;
use train::TrainPlan;

/// A generated clip counts as showing one coherent object when, on average over its frames, the
/// largest connected foreground component holds at least this fraction of the foreground.
pub const COHERENT_THRESHOLD: f32 = 0.9;

/// The reproduction check passes when the tuned adapters, given the reference's own caption,
/// give back its path with at least this track correlation.
pub const REPRODUCTION_THRESHOLD: f32 = 0.9;

/// Output file names.
pub const HEADS_FILE: &str = "heads.json";
pub const SPATIAL_LORA_FILE: &str = "spatial_lora.safetensors";
pub const TEMPORAL_LORA_FILE: &str = "temporal_lora.safetensors";
pub const RESULT_FILE: &str = "result.gif";
/// The result as stored for scoring: 8-bit 4:4:4 Y4M, which (unlike the GIF's palette of at
/// most 256 colours) keeps every pixel; metrics.json scores exactly these frames, so
/// `fym metrics --generated result.y4m` gives the same numbers.
pub const RESULT_Y4M_FILE: &str = "result.y4m";
/// What the reproduction check generated (the tuned adapters, the caption they learnt), stored
/// and scored the same way.
pub const REPRODUCTION_FILE: &str = "reproduction.y4m";
/// What the tuning saw when it was given the reference matted (`--matte subject`).
pub const MATTED_REFERENCE_FILE: &str = "matted_reference.y4m";
pub const SIDE_BY_SIDE_FILE: &str = "side_by_side.gif";
pub const METRICS_FILE: &str = "metrics.json";

/// How to tune: Follow-Your-Motion, its ablations, and the baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Head classification, spatial ST-LoRA on frames, temporal ST-LoRA on sparse frames with
    /// adaptive RoPE and the motion loss.
    Fym,
    /// MotionDirector-style: appearance LoRA on frames, then motion LoRA on the dense clip, both
    /// over all heads, flow-matching loss only.
    NaiveTwoStage,
    /// One LoRA over all heads trained on the dense clip (flow-matching loss).
    SingleLora,
    /// `fym` with dense frames (all frames, integer positions).
    FymNoSparse,
    /// `fym` with sparse frames numbered 0, 1, 2, … (no adaptive RoPE).
    FymNoAdaptiveRope,
    /// The base model with the new prompt, no tuning.
    NoTuning,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Fym,
        Method::NaiveTwoStage,
        Method::SingleLora,
        Method::FymNoSparse,
        Method::FymNoAdaptiveRope,
        Method::NoTuning,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Fym => "fym",
            Method::NaiveTwoStage => "naive-two-stage",
            Method::SingleLora => "single-lora",
            Method::FymNoSparse => "fym-no-sparse",
            Method::FymNoAdaptiveRope => "fym-no-adaptive-rope",
            Method::NoTuning => "no-tuning",
        }
    }

    pub fn parse(s: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                anyhow::anyhow!("unknown method {s:?}; choose one of {}", names.join(", "))
            })
    }

    /// Whether the method splits heads (stage 1 and ST-LoRA).
    fn splits_heads(self) -> bool {
        matches!(
            self,
            Method::Fym | Method::FymNoSparse | Method::FymNoAdaptiveRope
        )
    }

    fn has_spatial_stage(self) -> bool {
        self.splits_heads() || self == Method::NaiveTwoStage
    }

    fn has_temporal_stage(self) -> bool {
        self != Method::NoTuning
    }

    fn motion_loss(self) -> bool {
        self.splits_heads()
    }

    /// Whether the method tunes adapters on the reference (every one but `no-tuning`, the base
    /// model and the prompt alone, which sees nothing of the reference: no matte, no binding).
    fn tunes(self) -> bool {
        self.has_spatial_stage() || self.has_temporal_stage()
    }

    /// Frames of the motion stage's clips.
    fn sampling(self, sparse_frames: usize) -> FrameSampling {
        match self {
            Method::Fym => FrameSampling::Sparse {
                count: sparse_frames,
                positions: TemporalPositions::Adaptive,
            },
            Method::FymNoAdaptiveRope => FrameSampling::Sparse {
                count: sparse_frames,
                positions: TemporalPositions::Consecutive,
            },
            _ => FrameSampling::Dense,
        }
    }
}

/// Shortest clip (in latent frames) that `fym` samples sparsely by default.
pub const SPARSE_MIN_LATENT_FRAMES: usize = 8;

/// Every setting of a transfer run.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferConfig {
    pub method: Method,
    pub lora: LoraShape,
    pub lr: f32,
    /// How the rate moves over each adapter stage's steps. Constant by default: a cosine fall to
    /// 0 over 300 temporal steps held more still subjects still (human motion +0.05) but learnt
    /// less of the motion and lost single-object motion (0.80 against 0.87; five seeds, README).
    pub lr_schedule: train::LrSchedule,
    /// Clips per training step.
    pub batch: usize,
    pub spatial_steps: usize,
    /// 600 by default: on MotionBench-synth (seeds 0–4, 480 pairs) twice the 300 steps of before
    /// followed the reference a little better (0.82 against 0.81, human motion 0.71 against
    /// 0.67, camera 0.89 against 0.92) for fewer coherent subjects (73 % against 76 %) and
    /// twice the temporal stage's time (README).
    pub temporal_steps: usize,
    pub spatial_weight_decay: f32,
    pub temporal_weight_decay: f32,
    /// Latent frames per sparse clip; `None`: a quarter of the clip (as the paper's 5 of 21),
    /// at least 2 (the motion loss needs two) — but every frame when the clip has fewer than
    /// [`SPARSE_MIN_LATENT_FRAMES`] latent frames: on the built-in model (4 latent frames),
    /// training on 2 or 3 of them lost most of the motion (track correlation 0.26–0.47 against
    /// 0.87–0.90 with all 4, two seeds each; README, "Motion transfer").
    pub sparse_frames: Option<usize>,
    /// Weight of the motion loss next to the flow-matching loss.
    pub motion_weight: f32,
    /// Fraction of training clips (both adapter stages) given the empty caption instead of the
    /// reference's, so the adapted model's unconditional prediction, which guidance starts
    /// from, learns the reference as well.
    pub caption_dropout: f32,
    /// Probability that a clip of the temporal stage shows the matted reference's subjects in
    /// other colours, its caption naming them ([`recolour`]), so the motion adapter learns the
    /// motion apart from the subject's colour words. Only with the matted reference (on black).
    /// 0 by default: at 0.5, MotionBench-synth (seeds 0 and 2, tuned afresh) was unchanged,
    /// 0.798 against 0.801 (README).
    pub recolour: f32,
    /// Strength of the temporal stage's emphasis on the pixels where the reference changes
    /// (`batch::MotionEmphasis`; 0: plain flow-matching loss). 4 (a pixel that moves weighs 5× a
    /// still one) followed the reference better on MotionBench-synth's cases with a still
    /// background (single-object 0.75 against 0.61, three seeds; README) and kept the bundled
    /// circling; 8 was worse.
    pub motion_emphasis: f32,
    /// Which pixels the emphasis favours: where the reference moves against a still background
    /// (the default), and optionally the subject where the background moves too.
    pub emphasis_mask: batch::EmphasisMask,
    /// What the tuning sees of the reference: its subject on black with the caption's
    /// background made plain (`matte::on_black`, the default), or the reference as it is. On
    /// MotionBench-synth (five seeds) the matted tuning followed the reference better (0.66
    /// against 0.59), with cleaner subjects and half the leakage (README).
    pub matte: matte::Matte,
    /// Training noise levels: uniform σ, then this shift (more weight at high noise, where a
    /// small clip's layout and motion are decided).
    pub train_shift: f32,
    pub classify: ClassifyOptions,
    pub generate: GenerateOptions,
    /// Strength of the spatial (appearance) adapter at generation: 1, the default, adds it as
    /// trained (the paper fuses both branches); 0 generates with the temporal adapter alone.
    /// For the head-split methods only (naive two-stage always drops its appearance adapter).
    /// Tuned on the reference as it is, the spatial adapter carried the reference's textured
    /// look into the result and lost the path (0.42 against 0.50 without it, three seeds);
    /// tuned on the matted reference it keeps the subject's layout on black and follows the
    /// path better (0.71 against 0.66, five seeds; README).
    pub spatial_scale: f32,
    /// Strength of the temporal adapter at generation (1: as trained).
    pub temporal_scale: f32,
    /// Bind each of the prompt's subjects to where the reference's subject of the same place in
    /// the caption is ([`binding`]), when both name the same number (two or more); for the
    /// methods that tune (`no-tuning` sees nothing of the reference). On
    /// MotionBench-synth's cases with two or more subjects (the same tuned adapters, generated
    /// with and without): multi-object track correlation 0.80 against 0.50 over seeds 0–4 (where
    /// the binding's rules were chosen) and 0.76 against 0.59 over seeds 5–8 (README).
    pub bind_subjects: bool,
    /// Seed of the adapters' init and of every training step.
    pub seed: u64,
    pub checkpoint_every: usize,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            method: Method::Fym,
            lora: LoraShape {
                rank: 16,
                alpha: 16.0,
                spatial_targets: Targets::ALL,
                temporal_targets: Targets::ALL,
            },
            lr: 5e-3,
            lr_schedule: train::LrSchedule::Constant,
            batch: 4,
            spatial_steps: 150,
            temporal_steps: 600,
            spatial_weight_decay: 0.01,
            temporal_weight_decay: 0.01,
            sparse_frames: None,
            motion_weight: 1.0,
            caption_dropout: 0.0,
            recolour: 0.0,
            motion_emphasis: 4.0,
            emphasis_mask: batch::EmphasisMask::Motion,
            matte: matte::Matte::Subject,
            train_shift: 4.0,
            classify: ClassifyOptions::default(),
            generate: GenerateOptions::default(),
            spatial_scale: 1.0,
            temporal_scale: 1.0,
            bind_subjects: true,
            seed: 0,
            checkpoint_every: 25,
        }
    }
}

impl TransferConfig {
    /// Checks the numbers a user can set.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{name} must be a positive number, got {v}"))
            }
        };
        positive("learning rate", self.lr)?;
        positive("LoRA alpha", self.lora.alpha)?;
        positive("training shift", self.train_shift)?;
        positive("sampling shift", self.generate.shift)?;
        if !self.generate.cfg.is_finite() || self.generate.cfg < 0.0 {
            anyhow::bail!("cfg must be ≥ 0, got {}", self.generate.cfg);
        }
        if self.lora.rank == 0 || self.batch == 0 || self.generate.steps == 0 {
            anyhow::bail!("LoRA rank, batch and sampling steps must be at least 1");
        }
        for (name, wd) in [
            ("spatial", self.spatial_weight_decay),
            ("temporal", self.temporal_weight_decay),
        ] {
            if !(wd.is_finite() && wd >= 0.0) {
                anyhow::bail!("{name} weight decay must be ≥ 0, got {wd}");
            }
        }
        if !(self.caption_dropout.is_finite() && (0.0..1.0).contains(&self.caption_dropout)) {
            anyhow::bail!(
                "caption dropout must be in [0, 1), got {}",
                self.caption_dropout
            );
        }
        let share = self.generate.frame_noise_share;
        if !(share.is_finite() && (0.0..=1.0).contains(&share)) {
            anyhow::bail!("frame noise share must be in [0, 1], got {share}");
        }
        if !(self.recolour.is_finite() && (0.0..=1.0).contains(&self.recolour)) {
            anyhow::bail!("recolour must be in [0, 1], got {}", self.recolour);
        }
        if !(self.motion_emphasis.is_finite() && self.motion_emphasis >= 0.0) {
            anyhow::bail!("motion emphasis must be ≥ 0, got {}", self.motion_emphasis);
        }
        if !(self.motion_weight.is_finite() && self.motion_weight >= 0.0) {
            anyhow::bail!("motion weight must be ≥ 0, got {}", self.motion_weight);
        }
        for (name, scale) in [
            ("spatial", self.spatial_scale),
            ("temporal", self.temporal_scale),
        ] {
            if !(scale.is_finite() && scale >= 0.0) {
                anyhow::bail!("{name} adapter scale must be ≥ 0, got {scale}");
            }
        }
        let share = self.generate.base_guidance;
        if !(0.0..=1.0).contains(&share) {
            anyhow::bail!("base guidance must be in [0, 1], got {share}");
        }
        let cutoff = self.generate.adapter_min_sigma;
        if !(0.0..=1.0).contains(&cutoff) {
            anyhow::bail!("adapter minimum sigma must be in [0, 1], got {cutoff}");
        }
        if let Sampler::Stochastic { eta } = self.generate.sampler {
            if !(0.0..=1.0).contains(&eta) {
                anyhow::bail!("sampler eta must be in [0, 1], got {eta}");
            }
        }
        Ok(())
    }

    /// Latent frames per sparse clip for a model with `latent` latent frames.
    pub fn sparse_count(&self, latent: usize) -> Result<usize> {
        let count = self.sparse_frames.unwrap_or_else(|| {
            if latent < SPARSE_MIN_LATENT_FRAMES {
                latent
            } else {
                latent.div_ceil(4).max(2).min(latent)
            }
        });
        if count == 0 || count > latent {
            anyhow::bail!(
                "sparse frames must be in 1..={latent} (the clip's latent frames), got {count}"
            );
        }
        Ok(count)
    }

    fn sigmas(&self) -> TrainSigmaSampler {
        TrainSigmaSampler {
            distribution: SigmaDistribution::Uniform,
            shift: self.train_shift,
        }
    }
}

/// Stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Classify,
    Spatial,
    Temporal,
    Generate,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Classify => "classify",
            Stage::Spatial => "spatial",
            Stage::Temporal => "temporal",
            Stage::Generate => "generate",
        }
    }
}

/// Where and how to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub out: PathBuf,
    pub quiet: bool,
    /// Stop (with [`train::Interrupted`]) after this many steps of this training stage, as a kill
    /// would; used to test resumption.
    pub stop_after: Option<(Stage, usize)>,
}

/// What a run produced.
pub struct TransferOutcome {
    pub result: Video,
    /// The content of metrics.json.
    pub metrics: Value,
    pub labels: Option<HeadLabels>,
}

/// Peak resident memory of this process (VmHWM), in MiB; `None` where /proc is unavailable.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak-memory mark (Linux `clear_refs` 5), so that [`peak_memory_mib`] measures from
/// now on; returns whether it worked.
pub fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A stable identity of the model (config and every weight value).
fn model_key(model: &Model) -> StableHash {
    let mut h = StableHash::default()
        .str(&model.wan.config.to_json())
        .str(&format!("{:?}", model.clip));
    for (name, t) in model.wan.params() {
        h = h.str(name).f32s(&t.data());
    }
    h = h
        .str(&model.text.vocab.join(" "))
        .f32s(&model.text.tokens.data())
        .f32s(&model.text.positions.data());
    // Layers only where there are some, so the keys of models without them stay what they were.
    for (name, t) in model.text.named_tensors() {
        if !name.starts_with("text_encoder.layers.") {
            continue;
        }
        h = h.str(&name).f32s(&t.data());
    }
    h
}

/// The tuned adapters of a run and what it took to make them.
pub struct Tuned {
    pub spatial: Option<Adapter>,
    pub temporal: Option<Adapter>,
    pub labels: Option<HeadLabels>,
    /// Heads relabelled by the both-kinds-per-layer safeguard.
    pub relabelled: Vec<(usize, usize)>,
    pub spatial_loss: Option<f32>,
    pub temporal_loss: Option<f32>,
    /// Seconds of classify, spatial, temporal (as recorded when each stage ran).
    pub seconds: [f64; 3],
    /// Peak memory of the process that ran the stages (MiB, as recorded when each finished).
    pub tuning_peak_memory_mib: Option<f64>,
    /// Latent frames per sparse clip.
    pub sparse_frames: usize,
    /// The caption the adapters learnt: the reference's, with a plain background when the
    /// tuning saw the reference matted.
    pub caption: String,
}

impl Tuned {
    pub fn tuning_seconds(&self) -> f64 {
        self.seconds.iter().sum()
    }

    /// Peak memory of tuning and generating (MiB): this process's peak, or the peak recorded
    /// when the stages ran if that was higher (a resumed run only generated).
    pub fn peak_memory_mib(&self) -> Option<f64> {
        match (self.tuning_peak_memory_mib, peak_memory_mib()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Runs the whole pipeline on `reference` (already of the model's clip shape), with `caption`
/// describing the reference and `prompt` the video to make. Writes every output into
/// `run.out` and returns the result.
pub fn run_transfer(
    model: &mut Model,
    reference: &Video,
    caption: &str,
    prompt: &str,
    config: &TransferConfig,
    run: &RunOptions,
) -> Result<TransferOutcome> {
    let wall = Instant::now();
    model.check_prompt("prompt", prompt)?;
    let tuned = tune(model, reference, caption, config, run)?;
    generate_outputs(
        model, &tuned, reference, caption, prompt, config, &run.out, run.quiet, wall,
    )
}

/// The reference and caption the tuning sees when `mode` asks for the subject on black (stored
/// as [`MATTED_REFERENCE_FILE`]); `None` for the reference as it is, also when no subject stands
/// out from the frame border's colours. `run.out` must exist.
fn matte_for_tuning(
    reference: &Video,
    caption: &str,
    mode: matte::Matte,
    run: &RunOptions,
) -> Result<Option<(Video, String)>> {
    if mode == matte::Matte::None {
        return Ok(None);
    }
    let Some((video, kept)) = matte::on_black(reference) else {
        if !run.quiet {
            eprintln!("[matte] no subject stands out from the frame border's colours: tuning on the reference as it is");
        }
        return Ok(None);
    };
    let matted_caption = matte::plain_background_caption(caption);
    store_frames(&run.out.join(MATTED_REFERENCE_FILE), &video)?;
    if !run.quiet {
        eprintln!(
            "[matte] tuning on the subject on black ({:.0} % of the pixels; {MATTED_REFERENCE_FILE}), caption \"{matted_caption}\"",
            100.0 * kept as f64 / (video.data.len() / 3).max(1) as f64
        );
    }
    Ok(Some((video, matted_caption)))
}

/// Stages 1–3 (those the method has), resuming from what `run.out` already holds.
pub fn tune(
    model: &mut Model,
    reference: &Video,
    caption: &str,
    config: &TransferConfig,
    run: &RunOptions,
) -> Result<Tuned> {
    config.validate()?;
    let method = config.method;
    let tunes = method.tunes();
    if tunes {
        model.check_prompt("reference caption", caption)?;
    }
    std::fs::create_dir_all(&run.out)
        .with_context(|| format!("cannot create output folder {}", run.out.display()))?;
    let matted = if tunes {
        matte_for_tuning(reference, caption, config.matte, run)?
    } else {
        None
    };
    let (reference, caption) = match &matted {
        Some((video, matted_caption)) => (video, matted_caption.as_str()),
        None => (reference, caption),
    };
    let x0_tensor = model.video_to_tensor(reference)?;
    let x0 = x0_tensor.to_vec();
    let sparse = config.sparse_count(model.latent_frames())?;
    let mut state = RunState::open(&run.out)?;
    let path = |name: &str| run.out.join(name);
    let stop = |stage: Stage| run.stop_after.filter(|(s, _)| *s == stage).map(|(_, n)| n);

    let base_key = model_key(model)
        .f32s(&x0)
        .str(caption)
        .str(method.name())
        .bytes(&config.seed.to_le_bytes())
        .str(&format!(
            "{:?} lr={} batch={} shift={}",
            config.lora, config.lr, config.batch, config.train_shift
        ));
    model.wan.adapters.list.clear();

    // Stage 1: head labels.
    let mut labels = None;
    let mut forced = Vec::new();
    let classify_key = base_key.str(&format!("{:?}", config.classify)).hex();
    if method.splits_heads() {
        let file = path(HEADS_FILE);
        if state.is_done("classify", &classify_key) && file.exists() {
            let l = HeadLabels::load(&file)?;
            forced = classify::relabelled(&l)?;
            labels = Some(l);
        } else {
            let t = Instant::now();
            let scores = classify::head_scores(
                model,
                &x0_tensor,
                caption,
                config.classify.sigma,
                config.seed,
            )?;
            let (l, f) = classify::label_heads(&scores, &config.classify)?;
            l.save(&file)?;
            forced = f;
            let (s, tm) = l.counts();
            if !run.quiet {
                eprintln!("[classify] {s} spatial and {tm} temporal heads ({} relabelled so every layer has both)", forced.len());
            }
            state.mark_done("classify", &classify_key, t.elapsed().as_secs_f64())?;
            labels = Some(l);
        }
    }

    let captions = batch::TrainCaptions::new(model, caption, config.batch, config.caption_dropout)?;
    let sigmas = config.sigmas();
    // Absent at 0 so that tunings stored before the setting existed stay valid.
    let mut training_tag = if config.caption_dropout > 0.0 {
        format!(" caption-dropout={}", config.caption_dropout)
    } else {
        String::new()
    };
    // Absent for the constant rate, which keeps the keys of runs tuned before the schedule.
    if config.lr_schedule != train::LrSchedule::Constant {
        training_tag.push_str(&format!(" lr-schedule={}", config.lr_schedule.name()));
    }

    // Stage 2: appearance adapter on single frames.
    let spatial_key = StableHash::default()
        .str(&classify_key)
        .str(&format!(
            "spatial steps={} wd={}{training_tag}",
            config.spatial_steps, config.spatial_weight_decay
        ))
        .hex();
    let mut spatial_adapter: Option<Adapter> = None;
    let mut spatial_loss = None;
    if method.has_spatial_stage() {
        let file = path(SPATIAL_LORA_FILE);
        if state.is_done("spatial", &spatial_key) && file.exists() {
            spatial_adapter = Some(lora::load_adapter(&file, model)?);
        } else {
            state.forget("spatial")?;
            let t = Instant::now();
            let (kind, heads) = match &labels {
                Some(l) => (
                    AdapterKind::Spatial,
                    Some(classify::assignment(l, HeadKind::Spatial)?),
                ),
                None => (AdapterKind::Plain, None),
            };
            let adapter = lora::new_adapter(
                model,
                kind,
                heads,
                &config.lora,
                config.lora.spatial_targets,
                config.seed ^ 0x5,
            )?;
            let params = adapter.params();
            model.wan.adapters.list = vec![adapter];
            let plan = TrainPlan {
                stage: "spatial",
                steps: config.spatial_steps,
                lr: config.lr,
                lr_schedule: config.lr_schedule,
                weight_decay: config.spatial_weight_decay,
                seed: config.seed,
                key: spatial_key.clone(),
                checkpoint: path(".spatial.checkpoint.safetensors"),
                checkpoint_every: config.checkpoint_every,
                stop_after: stop(Stage::Spatial),
                quiet: run.quiet,
            };
            let result = spatial::train_spatial(model, &x0, &captions, &params, &plan, &sigmas)?;
            let mut adapter = model.wan.adapters.list.remove(0);
            adapter.set_trainable(false)?;
            lora::save_adapter(&file, &adapter, "spatial", model)?;
            state.mark_done("spatial", &spatial_key, t.elapsed().as_secs_f64())?;
            let _ = std::fs::remove_file(&plan.checkpoint);
            spatial_loss = Some(result.final_loss);
            spatial_adapter = Some(adapter);
        }
    }

    // Stage 3: motion adapter, appearance adapter frozen.
    let sampling = method.sampling(sparse);
    let motion_weight = if method.motion_loss() {
        config.motion_weight
    } else {
        0.0
    };
    // Absent where the emphasis does not apply, which trains exactly as without it.
    let chosen =
        batch::MotionEmphasis::choose(config.emphasis_mask, reference, &x0, config.motion_emphasis);
    let emphasis_tag = match &chosen {
        None => String::new(),
        Some((_, batch::EmphasisMask::Motion)) => format!(" emphasis={}", config.motion_emphasis),
        Some((_, mask)) => format!(" emphasis={} mask={}", config.motion_emphasis, mask.name()),
    };
    let emphasis = chosen.map(|(e, _)| e);
    let recolouring = match &matted {
        Some((video, _)) if config.recolour > 0.0 && method.has_temporal_stage() => {
            recolour::Recolouring::new(video, caption, config.recolour)
        }
        _ => None,
    };
    // Absent where nothing is recoloured, which trains exactly as without it.
    let recolour_tag = match &recolouring {
        Some(_) => format!(" recolour={}", config.recolour),
        None => String::new(),
    };
    let temporal_key = StableHash::default()
        .str(&spatial_key)
        .str(&format!(
            "temporal steps={} wd={} {:?} motion={}{training_tag}{emphasis_tag}{recolour_tag}",
            config.temporal_steps, config.temporal_weight_decay, sampling, motion_weight
        ))
        .hex();
    let mut temporal_adapter: Option<Adapter> = None;
    let mut temporal_loss = None;
    if method.has_temporal_stage() {
        let file = path(TEMPORAL_LORA_FILE);
        if state.is_done("temporal", &temporal_key) && file.exists() {
            temporal_adapter = Some(lora::load_adapter(&file, model)?);
        } else {
            state.forget("temporal")?;
            let t = Instant::now();
            let (kind, heads) = match &labels {
                Some(l) => (
                    AdapterKind::Temporal,
                    Some(classify::assignment(l, HeadKind::Temporal)?),
                ),
                None => (AdapterKind::Plain, None),
            };
            let adapter = lora::new_adapter(
                model,
                kind,
                heads,
                &config.lora,
                config.lora.temporal_targets,
                config.seed ^ 0x7,
            )?;
            let params = adapter.params();
            model.wan.adapters.list = spatial_adapter.iter().cloned().collect();
            model.wan.adapters.list.push(adapter);
            let plan = TrainPlan {
                stage: "temporal",
                steps: config.temporal_steps,
                lr: config.lr,
                lr_schedule: config.lr_schedule,
                weight_decay: config.temporal_weight_decay,
                seed: config.seed,
                key: temporal_key.clone(),
                checkpoint: path(".temporal.checkpoint.safetensors"),
                checkpoint_every: config.checkpoint_every,
                stop_after: stop(Stage::Temporal),
                quiet: run.quiet,
            };
            let objective = temporal::MotionObjective {
                sigmas,
                sampling,
                motion_weight,
                emphasis: emphasis.as_ref(),
                recolour: recolouring.as_ref(),
            };
            let result =
                temporal::train_temporal(model, &x0, &captions, &params, &plan, &objective)?;
            let mut adapter = model
                .wan
                .adapters
                .list
                .pop()
                .context("temporal adapter missing after training")?;
            adapter.set_trainable(false)?;
            let stage_name = if method == Method::SingleLora {
                "single"
            } else {
                "temporal"
            };
            lora::save_adapter(&file, &adapter, stage_name, model)?;
            state.mark_done("temporal", &temporal_key, t.elapsed().as_secs_f64())?;
            let _ = std::fs::remove_file(&plan.checkpoint);
            temporal_loss = Some(result.final_loss);
            temporal_adapter = Some(adapter);
        }
    }

    let secs = |stage: &str| state.seconds(stage);
    Ok(Tuned {
        spatial: spatial_adapter,
        temporal: temporal_adapter,
        labels,
        relabelled: forced,
        spatial_loss,
        temporal_loss,
        seconds: [secs("classify"), secs("spatial"), secs("temporal")],
        tuning_peak_memory_mib: state.peak_memory_mib(),
        sparse_frames: sparse,
        caption: caption.to_string(),
    })
}

/// Generates `prompt` with the tuned adapters and writes result.gif, result.y4m,
/// reproduction.y4m, side_by_side.gif and metrics.json into `out`. `wall` is when the caller
/// started (for the reported wall time).
#[allow(clippy::too_many_arguments)]
pub fn generate_outputs(
    model: &mut Model,
    tuned: &Tuned,
    reference: &Video,
    caption: &str,
    prompt: &str,
    config: &TransferConfig,
    out: &Path,
    quiet: bool,
    wall: Instant,
) -> Result<TransferOutcome> {
    let method = config.method;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))?;
    let path = |name: &str| out.join(name);
    // The result: base + temporal adapter, + the spatial adapter at `spatial_scale` when asked
    // (MotionDirector-style naive two-stage always generates with its motion adapter alone).
    let scaled = |adapter: &Option<Adapter>, scale: f32| {
        adapter.clone().filter(|_| scale > 0.0).map(|mut adapter| {
            adapter.alpha *= scale;
            adapter
        })
    };
    let spatial = |scale: f32| {
        if method.splits_heads() {
            scaled(&tuned.spatial, scale)
        } else {
            None
        }
    };
    let result_adapters: Vec<Adapter> = [
        spatial(config.spatial_scale),
        scaled(&tuned.temporal, config.temporal_scale),
    ]
    .into_iter()
    .flatten()
    .collect();
    // The sanity check before any transfer claim: the tuned adapters as trained (spatial and
    // temporal at full strength), the caption they learnt and the same seed must give back
    // the reference's motion. It checks the tuning, whatever the result is generated with.
    let check_adapters: Vec<Adapter> = [spatial(1.0), scaled(&tuned.temporal, 1.0)]
        .into_iter()
        .flatten()
        .collect();
    let check_kinds: Vec<String> = check_adapters
        .iter()
        .map(|a| a.kind.as_str().to_string())
        .collect();
    if !quiet {
        eprintln!(
            "[generate] {} steps, cfg {}, {} sampler, {} adapter(s) (spatial ×{}, temporal ×{})",
            config.generate.steps,
            config.generate.cfg,
            config.generate.sampler.name(),
            result_adapters.len(),
            config.spatial_scale,
            config.temporal_scale,
        );
    }
    // The untuned baseline sees nothing of the reference: the reference's subjects would hand it
    // their places in every frame, which is the motion.
    let bind = |text: &str| -> Option<Vec<f32>> {
        if !config.bind_subjects || !method.tunes() {
            return None;
        }
        let bound = binding::bind(
            reference,
            caption,
            text,
            model.wan.config.patch_size,
            model.text.max_len,
            binding::DILATE,
        );
        match bound {
            Ok(bias) => bias,
            Err(why) => {
                if !quiet {
                    eprintln!("[bind] \"{text}\" is not bound: {why}");
                }
                None
            }
        }
    };
    let (result_binding, check_binding) = (bind(prompt), bind(&tuned.caption));
    let t = Instant::now();
    model.wan.adapters.list = result_adapters;
    let generated =
        generate::generate_bound(model, prompt, &config.generate, result_binding.as_deref())
            .and_then(|result| {
                let secs = t.elapsed().as_secs_f64();
                model.wan.adapters.list = check_adapters;
                let as_trained = GenerateOptions {
                    adapter_min_sigma: 0.0,
                    base_guidance: 0.0,
                    ..config.generate
                };
                let reproduced = generate::generate_bound(
                    model,
                    &tuned.caption,
                    &as_trained,
                    check_binding.as_deref(),
                )?;
                Ok((result, secs, reproduced))
            });
    model.wan.adapters.list.clear();
    let (result, generate_secs, reproduced) = generated?;
    // Score the frames as stored, so that anyone can check metrics.json from the files.
    let result = store_frames(&path(RESULT_Y4M_FILE), &result)?;
    let reproduced = store_frames(&path(REPRODUCTION_FILE), &reproduced)?;
    write_gif(path(RESULT_FILE), &result, 8.0)?;
    write_side_by_side_gif(
        path(SIDE_BY_SIDE_FILE),
        &[reference, &result],
        &["reference", "result"],
        8.0,
        4,
    )?;

    let report = evaluate(reference, &result, Some(prompt), Some(caption))
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    let reproduction = evaluate(reference, &reproduced, Some(caption), Some(caption))
        .map_err(|e| anyhow::anyhow!("metrics of the reproduction: {e}"))?;
    let reproduction_track = reproduction
        .synthetic
        .as_ref()
        .map(|s| s.trajectory_correlation);
    let coherent_fraction = largest_component_fraction(&result, &BackgroundHint::Border);
    let [classify_secs, spatial_secs, temporal_secs] = tuned.seconds;
    let head_counts = tuned.labels.as_ref().map(|l| {
        let (s, t) = l.counts();
        let relabelled: Vec<Value> = tuned
            .relabelled
            .iter()
            .map(|(l, h)| json!([l, h]))
            .collect();
        json!({"spatial": s, "temporal": t, "relabelled": relabelled})
    });
    let metrics = json!({
        "method": method.name(),
        "model": model.source,
        "caption": caption,
        "tuning_caption": tuned.caption,
        "prompt": prompt,
        "seed": config.seed,
        "generation_seed": config.generate.seed,
        "metrics": report.to_json(),
        "reproduction": {
            "adapters": check_kinds,
            "passed": reproduction_track.is_some_and(|t| t >= REPRODUCTION_THRESHOLD),
            "trajectory_correlation": reproduction_track,
            "motion_fidelity": reproduction.motion_fidelity,
        },
        "coherent_fraction": coherent_fraction,
        "coherent": coherent_fraction >= COHERENT_THRESHOLD,
        "subjects_bound": result_binding.is_some(),
        "heads": head_counts,
        "final_loss": {"spatial": tuned.spatial_loss, "temporal": tuned.temporal_loss},
        "seconds": {
            "classify": classify_secs,
            "spatial": spatial_secs,
            "temporal": temporal_secs,
            "tuning": tuned.tuning_seconds(),
            "generate": generate_secs,
            "wall_this_process": wall.elapsed().as_secs_f64(),
        },
        "peak_memory_mib": tuned.peak_memory_mib(),
        "config": config_json(config, tuned.sparse_frames),
    });
    let mut text = serde_json::to_string_pretty(&metrics)?;
    text.push('\n');
    fym_autograd::write_atomic(&path(METRICS_FILE), text.as_bytes())
        .with_context(|| format!("cannot write {}", path(METRICS_FILE).display()))?;
    Ok(TransferOutcome {
        result,
        metrics,
        labels: tuned.labels.clone(),
    })
}

/// Writes `video` as an 8-bit 4:4:4 Y4M at `file` and returns the frames as read back from it.
pub fn store_frames(file: &Path, video: &Video) -> Result<Video> {
    write_y4m(file, video, Chroma::C444, 8.0)
        .with_context(|| format!("cannot write {}", file.display()))?;
    read_y4m(file).with_context(|| format!("cannot read back {}", file.display()))
}

/// The settings of a run as JSON (for metrics.json and reports).
pub fn config_json(c: &TransferConfig, sparse: usize) -> Value {
    json!({
        "seed": c.seed,
        "rank": c.lora.rank,
        "alpha": c.lora.alpha,
        "spatial_targets": c.lora.spatial_targets.to_string(),
        "temporal_targets": c.lora.temporal_targets.to_string(),
        "lr": c.lr,
        "lr_schedule": c.lr_schedule.name(),
        "batch": c.batch,
        "spatial_steps": c.spatial_steps,
        "temporal_steps": c.temporal_steps,
        "sparse_frames": sparse,
        "motion_weight": c.motion_weight,
        "caption_dropout": c.caption_dropout,
        "recolour": c.recolour,
        "motion_emphasis": c.motion_emphasis,
        "emphasis_mask": c.emphasis_mask.name(),
        "matte": c.matte.name(),
        "spatial_weight_decay": c.spatial_weight_decay,
        "temporal_weight_decay": c.temporal_weight_decay,
        "train_shift": c.train_shift,
        "classify_sigma": c.classify.sigma,
        "sample_steps": c.generate.steps,
        "cfg": c.generate.cfg,
        "sample_shift": c.generate.shift,
        "sampler": c.generate.sampler.name(),
        "spatial_scale": c.spatial_scale,
        "temporal_scale": c.temporal_scale,
        "adapter_min_sigma": c.generate.adapter_min_sigma,
        "frame_noise_share": c.generate.frame_noise_share,
        "base_guidance": c.generate.base_guidance,
        "bind_subjects": c.bind_subjects,
    })
}

/// Reads the metrics.json of a finished run.
pub fn read_metrics(dir: &Path) -> Result<Value> {
    let file = dir.join(METRICS_FILE);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))
}
