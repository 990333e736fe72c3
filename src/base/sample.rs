//! Text → clip: the model's velocity at a noise level, and sampling with classifier-free guidance
//! (the empty caption is the unconditional input) by the Euler or the stochastic sampler.

use fym_autograd::{no_grad, Tensor};
use fym_model::flow::{
    cfg_combine, euler_sample, fill_standard_normal, inference_schedule, sigma_to_timestep,
    stochastic_sample,
};
use fym_model::ForwardOptions;
use rand::SeedableRng;

use super::{read_clip, BaseModel, SampleOptions, Sampler};
use crate::video::Video;

impl BaseModel {
    /// The model's velocity prediction for `x [B, 3, F, H, W]` at noise level `sigma` (the Wan
    /// timestep is σ·1000), conditioned on `text [B, L, text_dim]`. Records on the tape unless
    /// called inside `no_grad`.
    pub fn velocity(
        &self,
        x: &Tensor,
        sigma: f32,
        text: &Tensor,
        opts: &ForwardOptions,
    ) -> anyhow::Result<Tensor> {
        if !(0.0..=1.0).contains(&sigma) {
            anyhow::bail!("velocity: sigma must be in [0, 1], got {sigma}");
        }
        let b = x.shape().first().copied().unwrap_or(0);
        let timesteps = vec![sigma_to_timestep(sigma); b];
        Ok(self.wan.forward(x, &timesteps, text, opts)?)
    }

    /// Samples one clip for `prompt` (words of the model's vocabulary). Uses whatever LoRA
    /// adapters are set on `self.wan`.
    pub fn sample(&self, prompt: &str, opts: &SampleOptions) -> anyhow::Result<Video> {
        let mut clips = self.sample_batch(&[prompt], opts)?;
        Ok(clips.remove(0))
    }

    /// Samples one clip per prompt, all integrated together as one batch (faster per clip than
    /// one at a time). Clip `i` starts from the noise of seed `opts.seed + i`.
    pub fn sample_batch(
        &self,
        prompts: &[&str],
        opts: &SampleOptions,
    ) -> anyhow::Result<Vec<Video>> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        if opts.steps == 0 {
            anyhow::bail!("sampling needs at least 1 step");
        }
        if !opts.cfg.is_finite() {
            anyhow::bail!("cfg scale must be finite, got {}", opts.cfg);
        }
        let s = self.spec;
        let n = prompts.len();
        let per_clip = s.numel();
        let schedule = inference_schedule(opts.steps, opts.shift)?;
        let guided = opts.cfg != 1.0;
        // Conditional rows first, then (with guidance) the unconditional ones, in one forward.
        let mut captions: Vec<&str> = prompts.to_vec();
        if guided {
            captions.extend(std::iter::repeat_n("", n));
        }
        let text = self.text.encode(&captions)?;
        let mut x0 = vec![0.0f32; n * per_clip];
        for (i, chunk) in x0.chunks_exact_mut(per_clip).enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed.wrapping_add(i as u64));
            fill_standard_normal(&mut rng, chunk);
        }
        let shape = [n, 3, s.frames, s.height, s.width];
        let fwd = ForwardOptions::default();
        let velocity = |x: &[f32], sigma: f32| -> fym_model::Result<Vec<f32>> {
            let input = if guided {
                let mut both = x.to_vec();
                both.extend_from_slice(x);
                both
            } else {
                x.to_vec()
            };
            let rows = captions.len();
            let xt = Tensor::from_vec(input, &[rows, 3, s.frames, s.height, s.width])?;
            let v = self
                .velocity(&xt, sigma, &text, &fwd)
                .map_err(|e| fym_model::Error::Flow(format!("model call failed: {e:#}")))?
                .to_vec();
            if guided {
                let (cond, uncond) = v.split_at(n * per_clip);
                cfg_combine(uncond, cond, opts.cfg)
            } else {
                Ok(v)
            }
        };
        let out = no_grad(|| -> anyhow::Result<Vec<f32>> {
            Ok(match opts.sampler {
                Sampler::Euler => euler_sample(&x0, &schedule.sigmas, velocity)?,
                Sampler::Stochastic { eta } => {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed ^ 0x5eed_5a3b_1e00);
                    stochastic_sample(&x0, &schedule.sigmas, eta, &mut rng, velocity)?
                }
            })
        })?;
        debug_assert_eq!(out.len(), shape.iter().product::<usize>());
        Ok(out
            .chunks_exact(per_clip)
            .map(|c| read_clip(c, s.frames, s.height, s.width))
            .collect())
    }
}
