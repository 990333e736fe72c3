//! Generation: the base model with whichever adapters are attached, a prompt, classifier-free
//! guidance and a flow-matching sampler (Euler, or the stochastic re-noising sampler).

use anyhow::{Context, Result};
use fym_autograd::Tensor;
use fym_model::flow::{
    cfg_combine, euler_sample, fill_standard_normal, inference_schedule, sigma_to_timestep,
    stochastic_sample,
};
use fym_model::ForwardOptions;
use rand::SeedableRng;

use super::model::Model;
use crate::video::Video;

/// Which sampler integrates the flow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// Deterministic Euler steps of the probability-flow ODE.
    Euler,
    /// Re-noise with fresh noise at every step (η = 1: fully fresh; η = 0 is Euler). Small models
    /// draw one coherent object far more often with it.
    Stochastic { eta: f32 },
}

impl Sampler {
    /// "euler" or "stochastic" (η = 1).
    pub fn parse(s: &str) -> Option<Sampler> {
        match s {
            "euler" => Some(Sampler::Euler),
            "stochastic" => Some(Sampler::Stochastic { eta: 1.0 }),
            _ => None,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Sampler::Euler => "euler".into(),
            Sampler::Stochastic { eta } => format!("stochastic(eta={eta})"),
        }
    }
}

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerateOptions {
    pub steps: usize,
    pub cfg: f32,
    pub shift: f32,
    pub sampler: Sampler,
    pub seed: u64,
    /// The attached adapters take part only in steps at noise levels σ ≥ this (0: every step);
    /// below it the base model alone finishes the clip.
    pub adapter_min_sigma: f32,
    /// Share of the guidance direction taken from the base model while adapters are active (0:
    /// all from the adapted model, `v = v_c + (w − 1)·(v_c − v_u)`; 1: all from the base model,
    /// `v = v_c + (w − 1)·(v_c^base − v_u^base)`, with `v_c` always the adapted prediction for the
    /// prompt). The base model learnt the prompt's words; the adapters learnt one caption.
    pub base_guidance: f32,
    /// Share of the initial noise's variance common to every frame ([`initial_noise`]; 0: each
    /// frame its own noise). 0 by default: on MotionBench-synth (seeds 0–3, the same adapters)
    /// 0.8 held still subjects still more often (0.63 against 0.53 on the five such cases) and
    /// cost the moving ones as much (0.790 against 0.790 over all; README).
    pub frame_noise_share: f32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            steps: 30,
            // Guidance 2, not the base model's 3: with the tuned adapters the guidance direction
            // carries the learnt motion as well as the prompt's look, and 3 exaggerated it (a
            // dancer swaying 0.37 px RMS came back at 0.6–0.8). Same tuned adapters,
            // MotionBench-synth (480 pairs): track correlation 0.809 against 0.778 (+0.03 [+0.01,
            // +0.05], no category lower), leakage 0.065 against 0.081, text alignment equal,
            // coherent 0.76 against 0.78; the bundled example's reproduction check ≥ 0.9 in 12 of
            // 12 seeds against 10 (README).
            cfg: 2.0,
            shift: 4.0,
            // Euler: on the built-in model the tuned adapters turn the stochastic sampler's fresh
            // noise into speckle and smear (MotionBench-synth track correlation 0.43 vs 0.39, the
            // bundled example 0.89 vs 0.72 over 12 seeds; README).
            sampler: Sampler::Euler,
            seed: 0,
            // The last steps (σ < 0.3, 3 of 30) by the base model alone: the path is decided by
            // then, and the base model draws a clean object where the adapters leave it frayed.
            // Same tuned adapters, MotionBench-synth (96 pairs): track correlation +0.03
            // [−0.01, +0.08], coherent subjects 65 % against 53 %, leakage 0.19 against 0.27;
            // the bundled example (12 seeds): coherent 11 against 6, path 0.82 against 0.84.
            adapter_min_sigma: 0.3,
            // A quarter of the guidance direction from the base model, which learnt the prompt's
            // words. Same tuned adapters, MotionBench-synth (288 pairs): track correlation 0.55
            // against 0.48 (+0.07 [+0.03, +0.10]), better or equal in every category, coherent
            // subjects 80 % against 69 %; the bundled circling (12 seeds) 0.80 against 0.82.
            // Half of it: 0.58 on the benchmark but 0.78 on the circling; all of it: 0.54 and 0.48.
            base_guidance: 0.25,
            frame_noise_share: 0.0,
        }
    }
}

/// Samples one clip for `prompt` with the adapters currently attached to `model`.
pub fn generate(model: &Model, prompt: &str, opts: &GenerateOptions) -> Result<Video> {
    generate_bound(model, prompt, opts, None)
}

/// [`generate`] with `binding` (`[video tokens, text length]`, see [`super::binding`]) added to
/// the cross-attention scores of every prediction for the prompt (not of the unconditional one).
pub fn generate_bound(
    model: &Model,
    prompt: &str,
    opts: &GenerateOptions,
    binding: Option<&[f32]>,
) -> Result<Video> {
    model.check_prompt("prompt", prompt)?;
    let clip = model.clip;
    let shape = [1, 3, clip.frames, clip.height, clip.width];
    let n: usize = shape.iter().product();
    let schedule = inference_schedule(opts.steps, opts.shift)?;
    let guided = opts.cfg != 1.0;
    let text = if guided {
        model.encode(&[prompt, ""])?
    } else {
        model.encode(&[prompt])?
    };
    // The bias of a batch of `count` rows: row 0 is the prompt; any other row is the empty
    // caption, which binds nothing. Built once per batch size the sampler asks for (1 or 2).
    let text_len = model.text.max_len;
    let bias_rows = |count: usize| -> Result<Option<Tensor>> {
        let Some(bias) = binding else {
            return Ok(None);
        };
        let mut rows = bias.to_vec();
        rows.resize(count * bias.len(), 0.0);
        let shape = [count, bias.len() / text_len, text_len];
        Ok(Some(
            Tensor::from_vec(rows, &shape)?.to_device(model.device())?,
        ))
    };
    let biases = [bias_rows(1)?, bias_rows(2)?];
    let has_adapters = !model.wan.adapters.list.is_empty();
    let alpha = opts.base_guidance;
    let mixed = guided && has_adapters && alpha > 0.0;
    // With the whole direction from the base model the adapted model is asked for the prompt alone.
    let prompt_only = if mixed && alpha >= 1.0 {
        Some(model.encode(&[prompt])?)
    } else {
        None
    };
    // Predictions for `captions` (one clip per caption row) with the adapters on or off.
    let predict =
        |x: &[f32], sigma: f32, captions: &Tensor, adapters: bool| -> fym_model::Result<Vec<f32>> {
            let count = captions.dim(0);
            let mut input = Vec::with_capacity(count * n);
            for _ in 0..count {
                input.extend_from_slice(x);
            }
            let mut bshape = shape;
            bshape[0] = count;
            let input = Tensor::from_vec(input, &bshape)?.to_device(model.device())?;
            let t = vec![sigma_to_timestep(sigma); count];
            let fwd = ForwardOptions {
                cross_attention_bias: biases[count - 1].clone(),
                ..Default::default()
            };
            model.wan.set_adapters_enabled(adapters);
            let v = fym_autograd::no_grad(|| model.wan.forward(&input, &t, captions, &fwd));
            model.wan.set_adapters_enabled(true);
            Ok(v?.to_vec())
        };
    let velocity = |x: &[f32], sigma: f32| -> fym_model::Result<Vec<f32>> {
        let adapters = sigma >= opts.adapter_min_sigma;
        if mixed && adapters {
            let adapted = predict(x, sigma, prompt_only.as_ref().unwrap_or(&text), true)?;
            let base = predict(x, sigma, &text, false)?;
            let (cond, w) = (&adapted[..n], opts.cfg - 1.0);
            let (base_cond, base_uncond) = (&base[..n], &base[n..]);
            Ok((0..n)
                .map(|i| {
                    let from_base = base_cond[i] - base_uncond[i];
                    let from_adapted = if alpha >= 1.0 {
                        0.0
                    } else {
                        cond[i] - adapted[n + i]
                    };
                    cond[i] + w * ((1.0 - alpha) * from_adapted + alpha * from_base)
                })
                .collect())
        } else {
            let v = predict(x, sigma, &text, adapters)?;
            if guided {
                cfg_combine(&v[n..], &v[..n], opts.cfg)
            } else {
                Ok(v)
            }
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let x = initial_noise(
        &mut rng,
        [3, clip.frames, clip.height * clip.width],
        opts.frame_noise_share,
    );
    let out = match opts.sampler {
        Sampler::Euler => euler_sample(&x, &schedule.sigmas, velocity),
        Sampler::Stochastic { eta } => {
            stochastic_sample(&x, &schedule.sigmas, eta, &mut rng, velocity)
        }
    }
    .context("sampling")?;
    model.values_to_video(&out, clip.frames)
}

/// Standard normal noise of `[channels, frames, plane]` whose frames share `share` of each value's
/// variance: `√(1 − share)·own + √share·common`, with one common draw per channel and pixel for
/// every frame (a mixed noise prior, as in PYoCo). Each value stays unit-variance; two frames'
/// values at the same pixel correlate by `share`. At 0 it draws exactly the independent noise.
pub fn initial_noise(
    rng: &mut impl rand::Rng,
    [channels, frames, plane]: [usize; 3],
    share: f32,
) -> Vec<f32> {
    let mut x = vec![0.0f32; channels * frames * plane];
    fill_standard_normal(rng, &mut x);
    if share > 0.0 {
        let mut common = vec![0.0f32; channels * plane];
        fill_standard_normal(rng, &mut common);
        let (own, shared) = ((1.0 - share).sqrt(), share.sqrt());
        for (i, v) in x.iter_mut().enumerate() {
            let (c, p) = (i / (frames * plane), i % plane);
            *v = own * *v + shared * common[c * plane + p];
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn noise(seed: u64, share: f32) -> Vec<f32> {
        initial_noise(
            &mut rand::rngs::StdRng::seed_from_u64(seed),
            [3, 4, 500],
            share,
        )
    }

    /// Pearson correlation of two equally long series.
    fn correlation(a: &[f32], b: &[f32]) -> f64 {
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let (ma, mb) = (mean(a), mean(b));
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (x as f64 - ma, y as f64 - mb);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa * bb).sqrt()
    }

    #[test]
    fn frames_share_the_asked_share_of_the_initial_noise() {
        // No share: exactly the independent draw the sampler always made.
        let mut plain = vec![0.0f32; 3 * 4 * 500];
        fill_standard_normal(&mut rand::rngs::StdRng::seed_from_u64(7), &mut plain);
        assert_eq!(noise(7, 0.0), plain);
        // All of it: every frame the same noise.
        let same = noise(7, 1.0);
        for c in 0..3 {
            for f in 1..4 {
                let frame = |f: usize| &same[(c * 4 + f) * 500..][..500];
                assert_eq!(frame(f), frame(0));
            }
        }
        // 0.6: unit variance, frames correlate by 0.6 at the same pixel, pixels not at all.
        let x = noise(7, 0.6);
        let variance = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64;
        assert!((variance - 1.0).abs() < 0.05, "variance {variance}");
        let frame = |c: usize, f: usize| &x[(c * 4 + f) * 500..][..500];
        for (c, f, g) in [(0, 0, 1), (1, 1, 3), (2, 0, 2)] {
            let r = correlation(frame(c, f), frame(c, g));
            assert!(
                (r - 0.6).abs() < 0.1,
                "channel {c}, frames {f} and {g}: {r}"
            );
        }
        let shifted = correlation(&frame(0, 0)[1..], &frame(0, 1)[..499]);
        assert!(
            shifted.abs() < 0.1,
            "neighbouring pixels correlate: {shifted}"
        );
    }
}
