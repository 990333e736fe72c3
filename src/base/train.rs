//! Pretraining of the base model by flow matching on rendered, captioned clips.
//!
//! Recipe (chosen by experiment, see docs/base_model.md): σ drawn uniformly then shifted towards
//! high noise (shift 4 puts about a third of the samples at σ > 0.9, where a small clip's layout
//! is decided), velocity loss, AdamW with linear warmup and cosine decay, EMA of the weights for
//! sampling, 10 % of captions dropped (the empty caption is classifier-free guidance's
//! unconditional input), a few still clips.
//!
//! Resuming is bit-for-bit: every random draw of step `s` comes from an RNG seeded with
//! `(seed, s)`, and the checkpoint holds the weights, their EMA, the optimizer moments and the step.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use fym_autograd::{AdamW, AdamWConfig, ParamSet, Tensor};
use fym_kernels::cpu::pool::{parallel_for, SharedMut};
use fym_model::flow::{fill_standard_normal, SigmaDistribution, TrainSigmaSampler};
use fym_model::heads::HeadKind;
use fym_model::losses::head_role_loss;
use fym_model::{CapturedAttention, ForwardOptions, WanConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde_json::{json, Value};

use super::data::{
    faint_noise_background, fine_noise_background, textured_background, Attributes, World,
};
use super::ema::Ema;
use super::{write_clip, BaseModel, ClipSpec};
use crate::world::scene::SceneOptions;
use crate::world::{caption, render, vocabulary, Scene, Trajectory};

/// Everything that defines a training run (saved in every checkpoint, so `--resume` needs no flags).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub seed: u64,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub patch_size: [usize; 3],
    pub heads: usize,
    pub head_dim: usize,
    pub layers: usize,
    pub ffn_dim: usize,
    pub text_dim: usize,
    pub freq_dim: usize,
    pub batch: usize,
    pub lr: f32,
    pub lr_min: f32,
    pub warmup_steps: u64,
    /// Steps of the cosine decay from `lr` to `lr_min` (after the warmup); `lr_min` after that.
    pub decay_steps: u64,
    pub weight_decay: f32,
    pub max_grad_norm: f32,
    pub ema_decay: f32,
    /// Shift applied to σ ~ U(0, 1) (`shift·σ / (1 + (shift−1)·σ)`).
    pub sigma_shift: f32,
    pub caption_dropout: f32,
    /// Fraction of clips whose object stands still (caption without motion words).
    pub still_fraction: f32,
    /// Fraction of clips drawn on a static textured background (gradient, stripes, checker or
    /// noise in grey tones, named in the caption) instead of black: content that stays put while
    /// the object moves, which attending to the same position in other frames reproduces.
    pub textured_fraction: f32,
    /// Fraction of the clips not put on a textured background that go on a static noise
    /// background of pixel-sized cells (`fine_noise_background`): content only the same position
    /// in the other frames predicts.
    pub fine_noise_fraction: f32,
    /// Fraction of the clips left on black after the two above that go on a *faint* static
    /// pixel-noise background instead (`faint_noise_background`: black and a dark grey a few
    /// percent above it). Its detail is too faint for attention to find by content at the noise
    /// levels where averaging the same position over frames pays, so it rewards heads that find
    /// that position by RoPE alone — which then look there on black clips too.
    pub faint_noise_fraction: f32,
    /// Fraction of clips drawn from the whole synthetic world (`World::rich_scene`: textured
    /// backgrounds, camera motion, several objects, figures — the MotionBench categories, never
    /// a benchmark scene) instead of one object on black.
    pub rich_fraction: f32,
    /// Fraction of clips drawn from the whole world's subjects on the black background, seen by a
    /// still camera (`World::subjects_on_black`: up to `subjects_on_black_max_objects` small shapes
    /// on any path, a person in place of one; never a benchmark scene): what the transfer's matted tuning shows the model (the reference's
    /// subjects kept, everything else black), which one object on black alone never taught it.
    pub subjects_on_black_fraction: f32,
    /// Most shapes in one such scene (a person takes the place of one): 1 keeps every scene to
    /// one subject, a shape on any path or a person.
    pub subjects_on_black_max_objects: usize,
    /// Probability that such a scene has a person (in place of one shape); by default the
    /// world's own share (`SceneOptions::default().figure_probability`, a quarter).
    pub subjects_on_black_person_probability: f32,
    /// Fraction of the one-object clips whose object follows a curved path instead of a straight
    /// line: a circle, a zigzag, bounces or a figure-eight (`World::curved_scene`, captioned "circles",
    /// "zigzags right", …), the paths MotionBench's single-object cases add to straight lines.
    pub curved_fraction: f32,
    /// Weight of an extra MSE on the frame-to-frame differences of the velocity (0 = plain
    /// flow matching): makes errors in the motion cost more than errors in the still content.
    pub motion_loss_weight: f32,
    /// Extra weight of the squared error on the object's outline (the pixels on either side of
    /// the boundary between object and black background, see [`outline_weights`]), 0 = plain
    /// flow matching: the outline is where a circle and a square differ.
    pub edge_loss_weight: f32,
    /// Weight of the head-role loss (`fym_model::losses::head_role_loss`, 0 = off): in every
    /// layer, head `spatial_role_head` is asked to attend evenly over its query's own frame and
    /// head `temporal_role_head` over its query's position in the other frames. Without it no head
    /// of the small model became clearly spatial or temporal on one object on black (see
    /// docs/base_model.md), which head classification and the two adapters rely on.
    pub head_role_weight: f32,
    pub spatial_role_head: usize,
    pub temporal_role_head: usize,
    pub checkpoint_minutes: f32,
    /// A learned embedding per latent frame (see `WanConfig::frame_embed_len`), so the model
    /// can tell where in the clip a frame is even from pure noise.
    pub frame_embed: bool,
    /// Transformer layers in the text encoder after its word and position embeddings (0: the
    /// embeddings alone), so a word's encoding can take in the words around it — a shape its
    /// colour, when a caption names several objects.
    pub text_layers: usize,
    /// Step at which the current learning-rate schedule (warmup, then cosine decay) began: 0 for a
    /// fresh run, the resume step for a run continued with a new schedule (`--resume --config`).
    pub schedule_start: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 1,
            frames: 8,
            height: 24,
            width: 24,
            patch_size: [2, 4, 4],
            heads: 4,
            head_dim: 32,
            layers: 6,
            ffn_dim: 512,
            text_dim: 64,
            freq_dim: 64,
            batch: 16,
            lr: 1e-3,
            lr_min: 1e-4,
            warmup_steps: 150,
            decay_steps: 2600,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            ema_decay: 0.999,
            sigma_shift: 4.0,
            caption_dropout: 0.1,
            still_fraction: 0.1,
            textured_fraction: 0.0,
            rich_fraction: 0.0,
            subjects_on_black_fraction: 0.0,
            subjects_on_black_max_objects: 3,
            subjects_on_black_person_probability: SceneOptions::default().figure_probability,
            curved_fraction: 0.0,
            fine_noise_fraction: 0.0,
            faint_noise_fraction: 0.0,
            motion_loss_weight: 0.0,
            edge_loss_weight: 0.0,
            head_role_weight: 0.0,
            spatial_role_head: 0,
            temporal_role_head: 1,
            checkpoint_minutes: 5.0,
            frame_embed: true,
            text_layers: 0,
            schedule_start: 0,
        }
    }
}

macro_rules! config_fields {
    ($m:ident) => {
        $m!(seed, u64);
        $m!(frames, usize);
        $m!(height, usize);
        $m!(width, usize);
        $m!(heads, usize);
        $m!(head_dim, usize);
        $m!(layers, usize);
        $m!(ffn_dim, usize);
        $m!(text_dim, usize);
        $m!(freq_dim, usize);
        $m!(batch, usize);
        $m!(lr, f32);
        $m!(lr_min, f32);
        $m!(warmup_steps, u64);
        $m!(decay_steps, u64);
        $m!(weight_decay, f32);
        $m!(max_grad_norm, f32);
        $m!(ema_decay, f32);
        $m!(sigma_shift, f32);
        $m!(caption_dropout, f32);
        $m!(still_fraction, f32);
        $m!(textured_fraction, f32);
        $m!(rich_fraction, f32);
        $m!(subjects_on_black_fraction, f32);
        $m!(subjects_on_black_max_objects, usize);
        $m!(subjects_on_black_person_probability, f32);
        $m!(curved_fraction, f32);
        $m!(fine_noise_fraction, f32);
        $m!(faint_noise_fraction, f32);
        $m!(motion_loss_weight, f32);
        $m!(edge_loss_weight, f32);
        $m!(head_role_weight, f32);
        $m!(spatial_role_head, usize);
        $m!(temporal_role_head, usize);
        $m!(checkpoint_minutes, f32);
        $m!(frame_embed, bool);
        $m!(text_layers, usize);
        $m!(schedule_start, u64);
    };
}

impl TrainConfig {
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        macro_rules! put {
            ($f:ident, $t:ty) => {
                m.insert(stringify!($f).into(), self.$f.to_json_value());
            };
        }
        config_fields!(put);
        m.insert("patch_size".into(), json!(self.patch_size));
        Value::Object(m)
    }

    /// Reads a config; keys not given keep their defaults, unknown keys are errors.
    pub fn from_json(v: &Value, source: &str) -> anyhow::Result<Self> {
        let obj = v
            .as_object()
            .with_context(|| format!("{source}: a training config is a JSON object"))?;
        let mut c = TrainConfig::default();
        let mut known = vec!["patch_size"];
        macro_rules! get {
            ($f:ident, $t:ty) => {
                known.push(stringify!($f));
                if let Some(x) = obj.get(stringify!($f)) {
                    c.$f = serde_json::from_value::<$t>(x.clone()).with_context(|| {
                        format!(
                            "{source}: `{}` must be a {}, got {x}",
                            stringify!($f),
                            stringify!($t)
                        )
                    })?;
                }
            };
        }
        config_fields!(get);
        if let Some(p) = obj.get("patch_size") {
            let p: Vec<usize> = serde_json::from_value(p.clone())
                .ok()
                .filter(|p: &Vec<usize>| p.len() == 3)
                .with_context(|| format!("{source}: `patch_size` must be 3 integers, got {p}"))?;
            c.patch_size = [p[0], p[1], p[2]];
        }
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            anyhow::bail!("{source}: unknown key `{k}`; known: {}", known.join(", "));
        }
        c.validate().with_context(|| source.to_string())?;
        Ok(c)
    }

    /// The keys a continued run may change (`--resume --config`): the optimisation and the loss,
    /// not the model's shape, the clip size or the data seed.
    pub const PHASE_KEYS: &'static [&'static str] = &[
        "batch",
        "lr",
        "lr_min",
        "warmup_steps",
        "decay_steps",
        "weight_decay",
        "max_grad_norm",
        "ema_decay",
        "sigma_shift",
        "caption_dropout",
        "still_fraction",
        "textured_fraction",
        "rich_fraction",
        "subjects_on_black_fraction",
        "subjects_on_black_max_objects",
        "subjects_on_black_person_probability",
        "curved_fraction",
        "fine_noise_fraction",
        "faint_noise_fraction",
        "motion_loss_weight",
        "edge_loss_weight",
        "head_role_weight",
        "spatial_role_head",
        "temporal_role_head",
        "checkpoint_minutes",
        // Only off → on: the embedding starts at zero, so the model is unchanged until trained.
        "frame_embed",
        // Only 0 → N: the layers start as the identity (see `TextEncoder::add_layers`).
        "text_layers",
    ];

    /// A new training phase for a run at `step`: the keys of `v` (only [`Self::PHASE_KEYS`])
    /// replace this config's, and the learning-rate schedule starts again at `step`.
    pub fn new_phase(&self, v: &Value, step: u64, source: &str) -> anyhow::Result<Self> {
        let obj = v
            .as_object()
            .with_context(|| format!("{source}: a training config is a JSON object"))?;
        if let Some(k) = obj.keys().find(|k| !Self::PHASE_KEYS.contains(&k.as_str())) {
            anyhow::bail!(
                "{source}: `{k}` cannot change when a run continues (it would not be the same model); \
                 keys a continued run may change: {}",
                Self::PHASE_KEYS.join(", ")
            );
        }
        let mut merged = match self.to_json() {
            Value::Object(m) => m,
            _ => unreachable!("to_json returns an object"),
        };
        for (k, x) in obj {
            merged.insert(k.clone(), x.clone());
        }
        merged.insert("schedule_start".into(), json!(step));
        Self::from_json(&Value::Object(merged), source)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.batch == 0 {
            anyhow::bail!("batch must be at least 1");
        }
        if self.subjects_on_black_max_objects == 0 {
            anyhow::bail!("subjects_on_black_max_objects must be at least 1");
        }
        for (name, v) in [
            ("caption_dropout", self.caption_dropout),
            ("still_fraction", self.still_fraction),
            ("textured_fraction", self.textured_fraction),
            ("rich_fraction", self.rich_fraction),
            (
                "subjects_on_black_fraction",
                self.subjects_on_black_fraction,
            ),
            (
                "subjects_on_black_person_probability",
                self.subjects_on_black_person_probability,
            ),
            ("curved_fraction", self.curved_fraction),
            ("fine_noise_fraction", self.fine_noise_fraction),
            ("faint_noise_fraction", self.faint_noise_fraction),
            ("ema_decay", self.ema_decay),
        ] {
            if !(0.0..=1.0).contains(&v) {
                anyhow::bail!("{name} must be in [0, 1], got {v}");
            }
        }
        if !(self.edge_loss_weight >= 0.0
            && self.motion_loss_weight >= 0.0
            && self.head_role_weight >= 0.0)
        {
            anyhow::bail!("edge_loss_weight, motion_loss_weight and head_role_weight must be ≥ 0");
        }
        if self.head_role_weight > 0.0 {
            let (s, t) = (self.spatial_role_head, self.temporal_role_head);
            if s >= self.heads || t >= self.heads || s == t {
                anyhow::bail!(
                    "spatial_role_head ({s}) and temporal_role_head ({t}) must be two different \
                     heads of the {} (0-based)",
                    self.heads
                );
            }
            if self.frames / self.patch_size[0] < 2 {
                anyhow::bail!("head_role_weight needs at least two latent frames");
            }
        }
        if !(self.lr > 0.0 && self.lr_min >= 0.0 && self.sigma_shift > 0.0) {
            anyhow::bail!("lr, lr_min and sigma_shift must be positive");
        }
        super::check_spec(&self.wan_config(), &self.spec())
    }

    pub fn spec(&self) -> ClipSpec {
        ClipSpec {
            frames: self.frames,
            height: self.height,
            width: self.width,
        }
    }

    pub fn wan_config(&self) -> WanConfig {
        WanConfig {
            patch_size: self.patch_size,
            num_attention_heads: self.heads,
            attention_head_dim: self.head_dim,
            in_channels: 3,
            out_channels: 3,
            text_dim: self.text_dim,
            freq_dim: self.freq_dim,
            ffn_dim: self.ffn_dim,
            num_layers: self.layers,
            frame_embed_len: if self.frame_embed {
                self.frames / self.patch_size[0].max(1)
            } else {
                0
            },
            ..WanConfig::dev()
        }
    }

    /// Learning rate at optimizer step `step` (1-based): linear warmup, cosine decay, floor.
    pub fn lr_at(&self, step: u64) -> f32 {
        let step = step.saturating_sub(self.schedule_start);
        if step <= self.warmup_steps {
            return self.lr * step as f32 / self.warmup_steps.max(1) as f32;
        }
        let t = ((step - self.warmup_steps) as f32 / self.decay_steps.max(1) as f32).min(1.0);
        self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + (std::f32::consts::PI * t).cos())
    }
}

/// Config values as JSON; numbers print as written (`0.1`, not the f64 widening `0.10000000149011612`) and
/// read back to the same value.
trait ToJsonValue {
    fn to_json_value(self) -> Value;
}

impl ToJsonValue for f32 {
    fn to_json_value(self) -> Value {
        // f32's shortest round-trip text, read as f64, reads back as this f32.
        json!(self.to_string().parse::<f64>().unwrap_or(self as f64))
    }
}

impl ToJsonValue for bool {
    fn to_json_value(self) -> Value {
        json!(self)
    }
}

impl ToJsonValue for u64 {
    fn to_json_value(self) -> Value {
        json!(self)
    }
}

impl ToJsonValue for usize {
    fn to_json_value(self) -> Value {
        json!(self)
    }
}

/// The RNG of step `step`: SplitMix64 of (seed, step), so any step can be replayed alone.
/// ChaCha12 seeded as `StdRng::seed_from_u64` seeds it: the same stream as rand's `StdRng`, with
/// the position in it exposed (see [`fill_standard_normal_parallel`]).
pub fn step_rng(seed: u64, step: u64) -> ChaCha12Rng {
    let mut z = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ChaCha12Rng::seed_from_u64(z ^ (z >> 31))
}

/// [`fill_standard_normal`] on `threads` threads, value for value: each pair of values consumes
/// exactly two `f64` draws (four 32-bit words) of the stream, so every chunk starts its own copy
/// of `rng` at its pairs' position. `rng` ends where the one-thread fill would leave it.
pub fn fill_standard_normal_parallel(rng: &mut ChaCha12Rng, out: &mut [f32], threads: usize) {
    const WORDS_PER_PAIR: u128 = 4;
    let start = rng.get_word_pos();
    let pairs = out.len().div_ceil(2);
    let chunk_pairs = pairs.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(2 * chunk_pairs).enumerate() {
            let mut r = rng.clone();
            r.set_word_pos(start + WORDS_PER_PAIR * (i * chunk_pairs) as u128);
            s.spawn(move || fill_standard_normal(&mut r, chunk));
        }
    });
    rng.set_word_pos(start + WORDS_PER_PAIR * pairs as u128);
}

/// Per-value loss weights of `clips` clean clips (`[clips, 3, F, H, W]` in [−1, 1] on black):
/// `1 + weight` on the pixels of the object's outline — a pixel lit in some channel (max > −0.5)
/// next to a dark one, or a dark one next to a lit one (4-neighbours, same frame) — and 1
/// elsewhere, the same for the three channels.
pub fn outline_weights(x0: &[f32], spec: &ClipSpec, clips: usize, weight: f32) -> Vec<f32> {
    let (f, h, w) = (spec.frames, spec.height, spec.width);
    let plane = h * w;
    let n = 3 * f * plane;
    let mut out = vec![1.0f32; clips * n];
    let mut lit = vec![false; plane];
    for clip in 0..clips {
        for frame in 0..f {
            for (p, l) in lit.iter_mut().enumerate() {
                *l = (0..3)
                    .map(|c| x0[clip * n + (c * f + frame) * plane + p])
                    .fold(f32::NEG_INFINITY, f32::max)
                    > -0.5;
            }
            for y in 0..h {
                for x in 0..w {
                    let here = lit[y * w + x];
                    let differs = |yy: usize, xx: usize| lit[yy * w + xx] != here;
                    let edge = (y > 0 && differs(y - 1, x))
                        || (y + 1 < h && differs(y + 1, x))
                        || (x > 0 && differs(y, x - 1))
                        || (x + 1 < w && differs(y, x + 1));
                    if edge {
                        for c in 0..3 {
                            out[clip * n + (c * f + frame) * plane + y * w + x] = 1.0 + weight;
                        }
                    }
                }
            }
        }
    }
    out
}

/// Longest caption the text encoder must take: training captions and every benchmark caption.
pub fn caption_capacity(world: &World) -> usize {
    let bench = crate::motionbench::held_out_captions()
        .iter()
        .map(|c| c.split_whitespace().count())
        .max()
        .unwrap_or(0);
    world.max_caption_words().max(bench).max(1)
}

/// The RNG that initialises the text encoder's layers (a fresh run's and a run that switches
/// them on alike).
fn text_layer_rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed ^ 0x7e47_1a7e)
}

/// Everything pretraining updates, in checkpoint order: the transformer's parameters (by name),
/// then the text encoder's.
fn trained_params(model: &BaseModel) -> ParamSet {
    let mut params = model.wan.trainable_base_params();
    params.extend(model.text.params());
    params
}

/// A training run in memory.
pub struct Trainer {
    pub config: TrainConfig,
    pub model: BaseModel,
    pub world: World,
    held_out: Vec<Attributes>,
    /// Their captions, which whole-world scenes must not have either.
    held_out_captions: Vec<String>,
    params: ParamSet,
    opt: AdamW,
    ema: Ema,
    /// Optimizer steps done.
    pub step: u64,
    /// Clips trained on over all runs (phases may differ in batch size).
    pub clips: u64,
    /// Training seconds over all runs (resumed runs add up).
    pub seconds: f64,
    /// (step, mean loss since the previous entry), one entry per checkpoint.
    pub history: Vec<(u64, f32)>,
    loss_sum: f64,
    loss_count: u64,
}

const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

impl Trainer {
    pub fn new(config: TrainConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let world = World::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
        let mut model = BaseModel::new_random(
            config.wan_config(),
            config.spec(),
            &vocabulary(),
            caption_capacity(&world),
            &mut rng,
            true,
        )?;
        if config.text_layers > 0 {
            // From an RNG of their own: everything else starts as in a run without layers.
            model
                .text
                .add_layers(config.text_layers, &mut text_layer_rng(config.seed), true)?;
        }
        let params = trained_params(&model);
        let opt = AdamW::new(AdamWConfig {
            lr: config.lr,
            weight_decay: config.weight_decay,
            max_grad_norm: Some(config.max_grad_norm),
            ..AdamWConfig::default()
        });
        let ema = Ema::new(&params, config.ema_decay)?;
        let held_out = world.held_out();
        let held_out_captions = super::eval::gate_captions(&world)
            .into_iter()
            .map(|(caption, _)| caption)
            .collect();
        Ok(Trainer {
            config,
            model,
            world,
            held_out,
            held_out_captions,
            params,
            opt,
            ema,
            step: 0,
            clips: 0,
            seconds: 0.0,
            history: Vec::new(),
            loss_sum: 0.0,
            loss_count: 0,
        })
    }

    /// Continues with a new phase (see [`TrainConfig::new_phase`]): optimizer and EMA take the
    /// new settings, the learning-rate schedule restarts at the current step.
    pub fn start_phase(&mut self, v: &Value, source: &str) -> anyhow::Result<()> {
        let next = self.config.new_phase(v, self.step, source)?;
        let mut grown = false;
        match (self.config.frame_embed, next.frame_embed) {
            (false, true) => {
                let len = next.wan_config().frame_embed_len;
                self.model.wan.add_frame_embedding(len, true)?;
                grown = true;
            }
            (true, false) => anyhow::bail!(
                "{source}: `frame_embed` cannot be turned off (the model was trained with it)"
            ),
            _ => {}
        }
        match (self.config.text_layers, next.text_layers) {
            (a, b) if a == b => {}
            (0, n) => {
                self.model
                    .text
                    .add_layers(n, &mut text_layer_rng(self.config.seed), true)?;
                grown = true;
            }
            (a, b) => anyhow::bail!(
                "{source}: `text_layers` can only be switched on (0 → N); the run has {a}, asked {b}"
            ),
        }
        if grown {
            // Same parameter order as a run that had the new tensors from the start, so a later
            // `--resume` continues bit for bit; the new tensors' averages start at their values.
            let params = trained_params(&self.model);
            let mut shadow = ParamSet::new();
            for (name, p) in params.iter() {
                let key = super::ema::shadow_name(name);
                let t = match self.ema.shadow.get(&key) {
                    Some(t) => t.clone(),
                    None => Tensor::param(p.to_vec(), p.shape())?,
                };
                shadow.push(key, t);
            }
            self.params = params;
            self.ema.shadow = shadow;
        }
        self.config = next;
        self.opt.config.weight_decay = self.config.weight_decay;
        self.opt.config.max_grad_norm = Some(self.config.max_grad_norm);
        self.ema.decay = self.config.ema_decay;
        Ok(())
    }

    /// Moves the model to `device` (the optimizer moments and the EMA stay on the host). Training
    /// then runs every op of the step there; the result matches the CPU's up to f32 rounding.
    pub fn to_device(&mut self, device: fym_autograd::Device) -> anyhow::Result<()> {
        self.model.wan.to_device(device)?;
        self.model.text.to_device(device)?;
        self.params = trained_params(&self.model);
        Ok(())
    }

    /// The checkpoint file inside a run folder.
    pub fn checkpoint_path(dir: &Path) -> std::path::PathBuf {
        dir.join(CHECKPOINT_FILE)
    }

    /// Continues a run from its checkpoint (the config is the checkpoint's).
    pub fn resume(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
        let (_, meta) = super::files::read_safetensors(&bytes, &path.display().to_string())?;
        let config_text = meta.get("fym.train.config").with_context(|| {
            format!(
                "{}: not a base-model checkpoint (no training config)",
                path.display()
            )
        })?;
        let mut config_json: Value = serde_json::from_str(config_text)?;
        if let Some(obj) = config_json.as_object_mut() {
            // Checkpoints from before the per-frame embedding existed were trained without it.
            obj.entry("frame_embed").or_insert(json!(false));
            // Nor had any checkpoint text layers before the key existed.
            obj.entry("text_layers").or_insert(json!(0));
        }
        let config = TrainConfig::from_json(
            &config_json,
            &format!("{} (training config)", path.display()),
        )?;
        let mut t = Trainer::new(config)?;
        let mut all = t.params.clone();
        all.extend(t.ema.shadow.clone());
        let meta = fym_autograd::load_checkpoint(path, &all, &mut t.opt)?;
        let num = |k: &str| -> anyhow::Result<&String> {
            meta.get(k)
                .with_context(|| format!("{}: metadata {k} missing", path.display()))
        };
        t.step = num("fym.train.step")?.parse()?;
        t.seconds = num("fym.train.seconds")?.parse()?;
        // Checkpoints from before the count was kept ran one batch size throughout.
        t.clips = match meta.get("fym.train.clips") {
            Some(c) => c.parse()?,
            None => t.step * t.config.batch as u64,
        };
        t.history = serde_json::from_str(num("fym.train.history")?)?;
        if t.opt.step != t.step {
            anyhow::bail!(
                "{}: optimizer step {} does not match training step {}",
                path.display(),
                t.opt.step,
                t.step
            );
        }
        Ok(t)
    }

    /// Writes the resumable checkpoint (atomically).
    pub fn save_checkpoint(&mut self, path: &Path) -> anyhow::Result<()> {
        if self.loss_count > 0 {
            self.history
                .push((self.step, (self.loss_sum / self.loss_count as f64) as f32));
            self.loss_sum = 0.0;
            self.loss_count = 0;
        }
        let mut all = self.params.clone();
        all.extend(self.ema.shadow.clone());
        let meta = BTreeMap::from([
            (
                "fym.train.config".to_string(),
                self.config.to_json().to_string(),
            ),
            ("fym.train.step".to_string(), self.step.to_string()),
            ("fym.train.clips".to_string(), self.clips.to_string()),
            ("fym.train.seconds".to_string(), self.seconds.to_string()),
            (
                "fym.train.history".to_string(),
                serde_json::to_string(&self.history)?,
            ),
        ]);
        fym_autograd::save_checkpoint(path, &all, &self.opt, &meta)?;
        Ok(())
    }

    /// A still scene (object in place; the caption has no motion words).
    fn still_scene(&self, rng: &mut impl Rng) -> Scene {
        let mut scene = self.world.training_scene(&self.held_out, rng);
        let object = &mut scene.objects[0];
        let p = object.trajectory.position(rng.gen_range(0.0..=1.0));
        object.trajectory = Trajectory::Still { at: p };
        scene
    }

    /// The clips, captions and noise levels of step `step`.
    pub fn batch(&self, step: u64) -> (Vec<f32>, Vec<String>, Vec<f32>, Vec<f32>) {
        let c = &self.config;
        let spec = c.spec();
        let n = spec.numel();
        let mut rng = step_rng(c.seed, step);
        let sigmas_from = TrainSigmaSampler {
            distribution: SigmaDistribution::Uniform,
            shift: c.sigma_shift,
        };
        let mut scenes = Vec::with_capacity(c.batch);
        let mut captions = Vec::with_capacity(c.batch);
        let mut sigmas = Vec::with_capacity(c.batch);
        // Every draw in the order of a one-clip-at-a-time loop (rendering draws nothing), so the
        // clips stay bit for bit what they were; then the renders run in parallel.
        for _ in 0..c.batch {
            // No draw at all when a fraction is 0, so runs without rich scenes or textures stay
            // bit for bit what they were.
            let rich = c.rich_fraction > 0.0 && rng.gen::<f32>() < c.rich_fraction;
            let on_black = !rich
                && c.subjects_on_black_fraction > 0.0
                && rng.gen::<f32>() < c.subjects_on_black_fraction;
            let max_words = self.model.text.max_len;
            let mut scene = if rich {
                self.world
                    .rich_scene(&self.held_out_captions, max_words, &mut rng)
            } else if on_black {
                self.world.subjects_on_black(
                    &self.held_out_captions,
                    max_words,
                    c.subjects_on_black_max_objects,
                    c.subjects_on_black_person_probability,
                    &mut rng,
                )
            } else if rng.gen::<f32>() < c.still_fraction {
                self.still_scene(&mut rng)
            } else if c.curved_fraction > 0.0 && rng.gen::<f32>() < c.curved_fraction {
                self.world.curved_scene(&mut rng)
            } else {
                self.world.training_scene(&self.held_out, &mut rng)
            };
            // A world scene keeps its own background.
            let keeps_background = rich || on_black;
            if !keeps_background
                && c.textured_fraction > 0.0
                && rng.gen::<f32>() < c.textured_fraction
            {
                textured_background(&mut scene, &mut rng);
            } else if !keeps_background
                && c.fine_noise_fraction > 0.0
                && rng.gen::<f32>() < c.fine_noise_fraction
            {
                fine_noise_background(&mut scene, &mut rng);
            } else if !keeps_background
                && c.faint_noise_fraction > 0.0
                && rng.gen::<f32>() < c.faint_noise_fraction
            {
                faint_noise_background(&mut scene, &mut rng);
            }
            captions.push(if rng.gen::<f32>() < c.caption_dropout {
                String::new()
            } else {
                caption(&scene)
            });
            sigmas.push(sigmas_from.sample(&mut rng));
            scenes.push(scene);
        }
        let mut x0 = vec![0.0f32; c.batch * n];
        let per_thread = c
            .batch
            .div_ceil(fym_kernels::cpu::num_threads().max(1))
            .max(1);
        std::thread::scope(|s| {
            for (clips, scenes) in x0.chunks_mut(per_thread * n).zip(scenes.chunks(per_thread)) {
                s.spawn(move || {
                    for (clip, scene) in clips.chunks_exact_mut(n).zip(scenes) {
                        let (video, _) = render(scene, spec.frames, spec.height, spec.width);
                        write_clip(&video, clip);
                    }
                });
            }
        });
        let mut noise = vec![0.0f32; x0.len()];
        fill_standard_normal_parallel(&mut rng, &mut noise, fym_kernels::cpu::num_threads());
        (x0, captions, sigmas, noise)
    }

    /// One optimizer step; returns the loss.
    pub fn train_step(&mut self) -> anyhow::Result<f32> {
        let c = self.config.clone();
        let spec = c.spec();
        let n = spec.numel();
        let rendering = std::time::Instant::now();
        let (x0, captions, sigmas, noise) = self.batch(self.step + 1);
        fym_autograd::profile_charge("host", "render clips", Some(rendering.elapsed()));
        let mut xt = vec![0.0f32; x0.len()];
        let mut target = vec![0.0f32; x0.len()];
        let (xt_out, target_out) = (SharedMut::new(&mut xt), SharedMut::new(&mut target));
        parallel_for(sigmas.len(), |i| {
            let s = sigmas[i];
            // SAFETY: clip i writes only its own n values of each output.
            let (xt, target) = unsafe { (xt_out.slice(i * n, n), target_out.slice(i * n, n)) };
            let (x0, noise) = (&x0[i * n..(i + 1) * n], &noise[i * n..(i + 1) * n]);
            for j in 0..n {
                xt[j] = (1.0 - s) * x0[j] + s * noise[j];
                target[j] = noise[j] - x0[j];
            }
        });
        let shape = [c.batch, 3, spec.frames, spec.height, spec.width];
        let device = self.model.wan.device();
        let xt = Tensor::from_vec(xt, &shape)?.to_device(device)?;
        let target = Tensor::from_vec(target, &shape)?.to_device(device)?;
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let text = self.model.text.encode(&refs)?;
        let timesteps: Vec<f32> = sigmas
            .iter()
            .map(|&s| fym_model::flow::sigma_to_timestep(s))
            .collect();
        let roles = c.head_role_weight > 0.0;
        if roles {
            self.model.wan.start_capture_on_graph();
        }
        let pred = self
            .model
            .wan
            .forward(&xt, &timesteps, &text, &ForwardOptions::default());
        let captured = self.model.wan.take_capture();
        let pred = pred?;
        let mut loss = if c.edge_loss_weight > 0.0 {
            let weights = outline_weights(&x0, &spec, c.batch, c.edge_loss_weight);
            let weights = Tensor::from_vec(weights, &shape)?.to_device(device)?;
            fym_model::losses::weighted_flow_matching_loss(&pred, &target, &weights)?
        } else {
            pred.mse_loss(&target)?
        };
        if c.motion_loss_weight > 0.0 && spec.frames > 1 {
            let f = spec.frames;
            let diff = |t: &Tensor| -> anyhow::Result<Tensor> {
                Ok(t.slice(2, 1, f - 1)?.sub(&t.slice(2, 0, f - 1)?)?)
            };
            let motion = diff(&pred)?.mse_loss(&diff(&target)?)?;
            loss = loss.add(&motion.scale(c.motion_loss_weight)?)?;
        }
        if roles {
            let roles = self.head_roles(&captured)?;
            loss = loss.add(&roles.scale(c.head_role_weight)?)?;
        }
        let value = loss.item()?;
        if !value.is_finite() {
            anyhow::bail!("training diverged at step {}: loss {value}", self.step + 1);
        }
        let grads = loss.backward()?;
        self.opt.config.lr = c.lr_at(self.step + 1);
        let updating = std::time::Instant::now();
        self.opt.step(&self.params, &grads);
        fym_autograd::profile_charge("host", "adamw", Some(updating.elapsed()));
        self.step += 1;
        self.clips += c.batch as u64;
        let averaging = std::time::Instant::now();
        self.ema.update(&self.params, self.step);
        fym_autograd::profile_charge("host", "ema", Some(averaging.elapsed()));
        self.loss_sum += value as f64;
        self.loss_count += 1;
        Ok(value)
    }

    /// The head-role loss summed over the layers (both roles), from the captured q and k.
    fn head_roles(&self, captured: &[CapturedAttention]) -> anyhow::Result<Tensor> {
        let c = &self.config;
        let mut total: Option<Tensor> = None;
        for layer in captured {
            for (head, role) in [
                (c.spatial_role_head, HeadKind::Spatial),
                (c.temporal_role_head, HeadKind::Temporal),
            ] {
                let l = head_role_loss(
                    &layer.q,
                    &layer.k,
                    c.heads,
                    head,
                    role,
                    layer.tokens_per_frame,
                )?;
                total = Some(match total {
                    Some(t) => t.add(&l)?,
                    None => l,
                });
            }
        }
        total.context("the model captured no self-attention layer")
    }

    /// A frozen model with the EMA weights and a card describing the run.
    pub fn ema_model(&self) -> anyhow::Result<BaseModel> {
        let mut wan_tensors = BTreeMap::new();
        let mut text_tensors = BTreeMap::new();
        for ((name, p), (_, s)) in self.params.iter().zip(self.ema.shadow.iter()) {
            let value = (p.shape().to_vec(), s.to_vec());
            if name.starts_with("text_encoder.") {
                text_tensors.insert(name.to_string(), value);
            } else {
                wan_tensors.insert(name.to_string(), value);
            }
        }
        let wan = fym_model::WanModel::from_tensors(self.config.wan_config(), wan_tensors, false)?;
        let text = fym_model::text::TextEncoder::from_tensors(
            self.model.text.vocab.clone(),
            text_tensors,
            false,
        )?;
        Ok(BaseModel {
            wan,
            text,
            spec: self.config.spec(),
            card: self.card(),
        })
    }

    /// What the run was: config, data, steps, time, loss.
    pub fn card(&self) -> Value {
        let w = &self.world;
        json!({
            "training": self.config.to_json(),
            "parameters": self.params.numel(),
            "steps": self.step,
            "clips": self.clips,
            "hours": self.seconds / 3600.0,
            "loss_history": self.history,
            "final_loss": self.history.last().map(|h| h.1),
            "data": {
                "world": "one object on a plain black background, straight-line motion",
                "colors": w.colors.iter().map(|c| c.name()).collect::<Vec<_>>(),
                "shapes": w.shapes.iter().map(|s| s.name()).collect::<Vec<_>>(),
                "directions": w.directions.iter().map(|d| d.name()).collect::<Vec<_>>(),
                "held_out_captions": self.held_out.len(),
            },
        })
    }

    pub fn params(&self) -> &ParamSet {
        &self.params
    }

    /// The learning rate the optimizer used last.
    pub fn optimizer_lr(&self) -> f32 {
        self.opt.config.lr
    }

    /// The EMA's decay (before its warm-up).
    pub fn ema_decay(&self) -> f32 {
        self.ema.decay
    }
}
