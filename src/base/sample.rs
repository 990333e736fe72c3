//! Text → clip: the model's velocity at a noise level, and sampling with classifier-free guidance
//! (the empty caption is the unconditional input) by the Euler or the stochastic sampler.

use fym_autograd::{no_grad, PatchOrder, PatchSize, Tensor, VideoDims};
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
            let xt = Tensor::from_vec(input, &[rows, 3, s.frames, s.height, s.width])?
                .to_device(self.device())?;
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
        let out = no_grad(|| self.project_to_output_space(out, &shape))?;
        Ok(out
            .chunks_exact(per_clip)
            .map(|c| read_clip(c, s.frames, s.height, s.width))
            .collect())
    }
}

impl BaseModel {
    /// Removes from a sample what the network can never write: when a patch holds more values
    /// than the model is wide, `proj_out` reaches only a `dim`-dimensional affine subspace of each
    /// patch, and the initial noise outside it is never denoised (the velocity has no component
    /// there). Each patch is projected onto `bias + span(proj_out.weight)`; with a full-rank
    /// output (patch values ≤ width) this is the identity and is skipped.
    pub fn project_to_output_space(
        &self,
        x: Vec<f32>,
        shape: &[usize; 5],
    ) -> anyhow::Result<Vec<f32>> {
        let c = &self.wan.config;
        let features = c.patch_out_features();
        let dim = c.dim();
        if features <= dim {
            return Ok(x);
        }
        let w = self.wan.param("proj_out.weight")?.to_vec();
        let b = self.wan.param("proj_out.bias")?.to_vec();
        let basis = orthonormal_columns(&w, features, dim);
        let [pt, ph, pw] = c.patch_size;
        let patch = PatchSize {
            t: pt,
            h: ph,
            w: pw,
        };
        let dims = VideoDims {
            batch: shape[0],
            channels: shape[1],
            frames: shape[2],
            height: shape[3],
            width: shape[4],
        };
        let tokens = Tensor::from_vec(x, shape)?.patchify(patch, PatchOrder::ChannelLast)?;
        let mut t = tokens.to_vec();
        let mut coef = vec![0.0f64; basis.len()];
        for token in t.chunks_exact_mut(features) {
            for (k, q) in basis.iter().enumerate() {
                coef[k] = (0..features).map(|i| q[i] * (token[i] - b[i]) as f64).sum();
            }
            for i in 0..features {
                let v: f64 = basis.iter().zip(&coef).map(|(q, a)| q[i] * a).sum();
                token[i] = b[i] + v as f32;
            }
        }
        let t = Tensor::from_vec(t, tokens.shape())?;
        Ok(t.unpatchify(dims, patch, PatchOrder::ChannelLast)?.to_vec())
    }
}

/// An orthonormal basis (modified Gram–Schmidt, f64) of the column space of the row-major
/// `[rows, cols]` matrix `w`; nearly dependent columns are dropped.
fn orthonormal_columns(w: &[f32], rows: usize, cols: usize) -> Vec<Vec<f64>> {
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(cols);
    for j in 0..cols {
        let mut v: Vec<f64> = (0..rows).map(|i| w[i * cols + j] as f64).collect();
        let norm0 = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        for q in &basis {
            let d: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(q).for_each(|(a, b)| *a -= d * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 * norm0.max(1e-30) {
            basis.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    basis
}
