//! The model the pipeline tunes: the Wan DiT, its text encoder and the clip shape it works on, plus
//! the conversions between videos and the model's pixel tensors.
//!
//! The built-in model works on RGB pixels directly (3 input channels, no VAE): a video in [0, 1]
//! becomes a `[1, 3, F, H, W]` tensor in [−1, 1].

use anyhow::{bail, Context, Result};
use fym_autograd::Tensor;
use fym_model::text::TextEncoder;
use fym_model::{WanConfig, WanModel};
use rand::SeedableRng;

use crate::video::Video;

/// Frames, height and width of the clips a model was trained on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipShape {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

/// A pixel-space video model ready for tuning.
pub struct Model {
    pub wan: WanModel,
    pub text: TextEncoder,
    pub clip: ClipShape,
    /// Where it came from (recorded in metrics.json).
    pub source: String,
}

impl Model {
    /// Checks that the model works on RGB pixels and that its patch divides the clip shape.
    pub fn new(wan: WanModel, text: TextEncoder, clip: ClipShape, source: String) -> Result<Self> {
        let c = &wan.config;
        if c.in_channels != 3 || c.out_channels != 3 {
            bail!(
                "model {source}: has {} input / {} output channels; motion transfer here needs a \
                 pixel-space model with 3 (RGB) channels",
                c.in_channels,
                c.out_channels
            );
        }
        let [pt, ph, pw] = c.patch_size;
        if clip.frames == 0
            || !clip.frames.is_multiple_of(pt)
            || !clip.height.is_multiple_of(ph)
            || !clip.width.is_multiple_of(pw)
            || clip.height == 0
            || clip.width == 0
        {
            bail!(
                "model {source}: clip {}x{}x{} (frames x height x width) is not divisible by the patch {:?}",
                clip.frames,
                clip.height,
                clip.width,
                c.patch_size
            );
        }
        if text.text_dim() != c.text_dim {
            bail!(
                "model {source}: text encoder gives {}-d embeddings, the transformer expects {}",
                text.text_dim(),
                c.text_dim
            );
        }
        Ok(Model {
            wan,
            text,
            clip,
            source,
        })
    }

    /// The pipeline's view of a base model; `source` names it in reports.
    pub fn from_base(base: crate::base::BaseModel, source: String) -> Result<Self> {
        let spec = base.spec;
        let clip = ClipShape {
            frames: spec.frames,
            height: spec.height,
            width: spec.width,
        };
        Model::new(base.wan, base.text, clip, source)
    }

    /// The model named by `spec`: "builtin" (the committed base model), random:SEED
    /// ([`Model::tiny_random`]) or a model folder.
    pub fn load(spec: &str) -> Result<Self> {
        if spec == "builtin" {
            let base = crate::base::BaseModel::builtin()?;
            return Model::from_base(base, "builtin".into());
        }
        if let Some(seed) = spec.strip_prefix("random:") {
            let seed: u64 = seed
                .parse()
                .with_context(|| format!("model {spec:?}: random:SEED needs an integer seed"))?;
            return Model::tiny_random(seed);
        }
        let dir = std::path::Path::new(spec);
        if !dir.is_dir() {
            bail!(
                "model {spec:?} is neither \"builtin\", random:SEED nor an existing model folder"
            );
        }
        let base = crate::base::BaseModel::load(dir)
            .with_context(|| format!("load the model folder {}", dir.display()))?;
        Model::from_base(base, dir.display().to_string())
    }

    /// A tiny randomly initialised model over the synthetic world's vocabulary (8 frames of
    /// 16×16, patch (1, 4, 4), 2 layers of 2 heads). It produces noise; it exists to exercise the
    /// whole pipeline quickly (tests, `--model random:SEED`).
    pub fn tiny_random(seed: u64) -> Result<Self> {
        let config = WanConfig {
            patch_size: [1, 4, 4],
            num_attention_heads: 2,
            attention_head_dim: 16,
            in_channels: 3,
            out_channels: 3,
            text_dim: 32,
            freq_dim: 32,
            ffn_dim: 64,
            num_layers: 2,
            ..WanConfig::dev()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let wan = WanModel::new_random(config.clone(), &mut rng, false)?;
        // The random init zeroes the output projection (right for training from scratch); a model
        // whose output ignores its input would give adapters nothing to learn.
        let proj = wan.param("proj_out.weight")?;
        let bound = 1.0 / (proj.dim(1) as f32).sqrt();
        let values = fym_autograd::init::uniform_vec(&mut rng, proj.numel(), bound);
        *proj.data_mut() = values;
        let words = crate::world::vocabulary();
        let text = TextEncoder::new_random(&words, 24, config.text_dim, &mut rng, false)?;
        let clip = ClipShape {
            frames: 8,
            height: 16,
            width: 16,
        };
        Model::new(wan, text, clip, format!("random:{seed}"))
    }

    /// Moves the transformer (with its adapters) and the text encoder to `device`; the pipeline
    /// then runs every op of tuning and sampling there.
    pub fn to_device(&mut self, device: fym_autograd::Device) -> Result<()> {
        self.wan.to_device(device)?;
        self.text.to_device(device)?;
        Ok(())
    }

    /// Where the model's tensors live.
    pub fn device(&self) -> fym_autograd::Device {
        self.wan.device()
    }

    /// Frames per latent frame (the temporal patch): the unit of frame sampling.
    pub fn frames_per_token(&self) -> usize {
        self.wan.config.patch_size[0]
    }

    /// Latent frames of a full clip.
    pub fn latent_frames(&self) -> usize {
        self.clip.frames / self.frames_per_token()
    }

    /// `[1, 3, F, H, W]` in [−1, 1] from a video of exactly the clip shape.
    pub fn video_to_tensor(&self, video: &Video) -> Result<Tensor> {
        let ClipShape {
            frames,
            height,
            width,
        } = self.clip;
        if (video.frames, video.height, video.width) != (frames, height, width) {
            bail!(
                "video is {}x{}x{} (frames x height x width); the model needs {frames}x{height}x{width} (fit it first)",
                video.frames,
                video.height,
                video.width
            );
        }
        let plane = height * width;
        let mut data = vec![0.0f32; 3 * frames * plane];
        for f in 0..frames {
            for (p, rgb) in video.frame(f).chunks_exact(3).enumerate() {
                for c in 0..3 {
                    data[(c * frames + f) * plane + p] = rgb[c] * 2.0 - 1.0;
                }
            }
        }
        Tensor::from_vec(data, &[1, 3, frames, height, width]).context("video to tensor")
    }

    /// A video in [0, 1] from `[1, 3, F, H, W]` values in [−1, 1] (clamped).
    pub fn values_to_video(&self, values: &[f32], frames: usize) -> Result<Video> {
        let (height, width) = (self.clip.height, self.clip.width);
        let plane = height * width;
        if values.len() != 3 * frames * plane {
            bail!(
                "{} values do not make a [1, 3, {frames}, {height}, {width}] clip",
                values.len()
            );
        }
        let mut video = Video::new(frames, height, width);
        for f in 0..frames {
            for (p, rgb) in video.frame_mut(f).chunks_exact_mut(3).enumerate() {
                for (c, out) in rgb.iter_mut().enumerate() {
                    let v = values[(c * frames + f) * plane + p];
                    *out = ((v + 1.0) * 0.5).clamp(0.0, 1.0);
                }
            }
        }
        Ok(video)
    }

    /// Text embeddings of captions (`[B, L, text_dim]`); unknown words and empty prompts are errors.
    pub fn encode(&self, captions: &[&str]) -> Result<Tensor> {
        Ok(self.text.encode(captions)?)
    }

    /// Errors with a clear message unless `prompt` is non-empty and every word is known.
    pub fn check_prompt(&self, what: &str, prompt: &str) -> Result<()> {
        if prompt.trim().is_empty() {
            bail!("{what} is empty; describe the scene in the model's words");
        }
        self.text
            .tokenize(prompt)
            .map(|_| ())
            .with_context(|| format!("{what} {prompt:?} cannot be encoded"))
    }
}
