//! fym's own small text-to-video base model: a Wan DiT (the same code as real Wan, at a tiny
//! config) on RGB clips directly (no VAE), conditioned by a word-level text encoder over the
//! synthetic world's vocabulary, trained by flow matching on procedurally rendered clips.
//!
//! - [`BaseModel`]: the network, its text encoder, the clip size it works at, and its model card;
//!   loaded from / saved to a model folder ([`files`]), or the built-in one ([`BaseModel::builtin`]).
//! - [`BaseModel::sample`]: text → clip, with classifier-free guidance and either the Euler or the
//!   stochastic re-noising sampler ([`sample`]).
//! - [`data`]: the training clips (random world scenes, benchmark scenes and the evaluation
//!   captions held out); [`train`]: the training loop with EMA and bit-for-bit resumable
//!   checkpoints; [`eval`]: the quality gate.

use fym_autograd::Tensor;
use fym_model::text::TextEncoder;
use fym_model::{WanConfig, WanModel};

use crate::video::Video;

pub mod data;
pub mod ema;
pub mod eval;

pub mod files;
pub mod sample;
pub mod train;

/// The clip size a base model works at: RGB frames, pixel values in [0, 1] mapped to [−1, 1].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipSpec {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl ClipSpec {
    /// Values in one clip tensor `[3, F, H, W]`.
    pub fn numel(&self) -> usize {
        3 * self.frames * self.height * self.width
    }
}

/// How to integrate from noise to a clip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// Deterministic Euler steps of the probability-flow ODE.
    Euler,
    /// Re-noising sampler: each step re-draws the fraction `eta` of the noise (η = 0 is Euler).
    /// Small models draw one coherent object far more often with η = 1.
    Stochastic { eta: f32 },
}

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleOptions {
    pub seed: u64,
    pub steps: usize,
    /// Classifier-free guidance scale (1 = conditional prediction only).
    pub cfg: f32,
    /// Shift of the inference σ schedule (see `fym_model::flow::inference_schedule`).
    pub shift: f32,
    pub sampler: Sampler,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            seed: 0,
            steps: 25,
            cfg: 3.0,
            shift: 3.0,
            sampler: Sampler::Stochastic { eta: 1.0 },
        }
    }
}

/// A text-to-video base model: Wan DiT + word-level text encoder + the clip size + model card.
pub struct BaseModel {
    pub wan: WanModel,
    pub text: TextEncoder,
    pub spec: ClipSpec,
    /// What the model is (config, data, training, evaluation); free-form JSON saved in `fym.json`.
    pub card: serde_json::Value,
}

impl BaseModel {
    /// Moves the transformer (with its adapters) and the text encoder to `device`; sampling and
    /// the gate's head statistics then run every op there.
    pub fn to_device(&mut self, device: fym_autograd::Device) -> anyhow::Result<()> {
        self.wan.to_device(device)?;
        self.text.to_device(device)?;
        Ok(())
    }

    /// Where the model's tensors live.
    pub fn device(&self) -> fym_autograd::Device {
        self.wan.device()
    }

    /// A freshly initialised model. `vocab` are the caption words (the padding token is added);
    /// `max_len` the longest caption in words. The Wan config must map 3 channels to 3 and divide
    /// the clip by its patch.
    pub fn new_random(
        config: WanConfig,
        spec: ClipSpec,
        vocab: &[&str],
        max_len: usize,
        rng: &mut impl rand::Rng,
        trainable: bool,
    ) -> anyhow::Result<Self> {
        check_spec(&config, &spec)?;
        let text_dim = config.text_dim;
        let wan = WanModel::new_random(config, rng, trainable)?;
        let text = TextEncoder::new_random(vocab, max_len, text_dim, rng, trainable)?;
        Ok(BaseModel {
            wan,
            text,
            spec,
            card: serde_json::json!({}),
        })
    }

    /// `[1, 3, F, H, W]` in [−1, 1] from a video of exactly the model's clip size.
    pub fn video_to_tensor(&self, v: &Video) -> anyhow::Result<Tensor> {
        let s = self.spec;
        if (v.frames, v.height, v.width) != (s.frames, s.height, s.width) {
            anyhow::bail!(
                "video is {} frames × {}×{}, the base model works at {} frames × {}×{} \
                 (resize it with fym::video::fit)",
                v.frames,
                v.height,
                v.width,
                s.frames,
                s.height,
                s.width
            );
        }
        let mut out = vec![0.0f32; s.numel()];
        write_clip(v, &mut out);
        Ok(Tensor::from_vec(out, &[1, 3, s.frames, s.height, s.width])?)
    }

    /// The video of a `[1, 3, F, H, W]` (or `[3, F, H, W]`) tensor in [−1, 1], clamped to [0, 1].
    pub fn tensor_to_video(&self, t: &Tensor) -> anyhow::Result<Video> {
        let shape = t.shape();
        let dims = match shape {
            [1, 3, f, h, w] | [3, f, h, w] => (*f, *h, *w),
            _ => anyhow::bail!(
                "tensor_to_video: expected [1, 3, F, H, W] or [3, F, H, W], got {shape:?}"
            ),
        };
        Ok(read_clip(&t.data(), dims.0, dims.1, dims.2))
    }
}

/// Checks that a Wan config fits RGB clips of `spec`.
pub fn check_spec(config: &WanConfig, spec: &ClipSpec) -> anyhow::Result<()> {
    let [pt, ph, pw] = config.patch_size;
    if config.in_channels != 3 || config.out_channels != 3 {
        anyhow::bail!(
            "the base model works on RGB: in_channels and out_channels must be 3, got {} and {}",
            config.in_channels,
            config.out_channels
        );
    }
    if spec.frames == 0
        || spec.height == 0
        || spec.width == 0
        || !spec.frames.is_multiple_of(pt)
        || !spec.height.is_multiple_of(ph)
        || !spec.width.is_multiple_of(pw)
    {
        anyhow::bail!(
            "clip {} frames × {}×{} is not a positive multiple of the patch {:?}",
            spec.frames,
            spec.height,
            spec.width,
            config.patch_size
        );
    }
    Ok(())
}

/// Writes a video as channel-first `[3, F, H, W]` values in [−1, 1] into `out`.
pub fn write_clip(v: &Video, out: &mut [f32]) {
    let plane = v.frames * v.height * v.width;
    for (i, px) in v.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px[c] * 2.0 - 1.0;
        }
    }
}

/// Reads channel-first `[3, F, H, W]` values in [−1, 1] into a video, clamped to [0, 1].
pub fn read_clip(data: &[f32], frames: usize, height: usize, width: usize) -> Video {
    let mut v = Video::new(frames, height, width);
    let plane = frames * height * width;
    for (i, px) in v.data.chunks_exact_mut(3).enumerate() {
        for c in 0..3 {
            px[c] = ((data[c * plane + i] + 1.0) * 0.5).clamp(0.0, 1.0);
        }
    }
    v
}
