//! Flow matching as Wan2.1 uses it (rectified flow, velocity target), on plain `f32` slices:
//! noising and targets for training, training-σ distributions and loss weights, the inference
//! σ schedule of diffusers' `FlowMatchEulerDiscreteScheduler`, the Euler and stochastic
//! re-noising samplers over a velocity closure, classifier-free guidance, and the sinusoidal
//! timestep embedding.
//!
//! Conventions: σ ∈ [0, 1] is the noise level, `x_σ = (1−σ)·x0 + σ·ε`, the model predicts the
//! velocity `v = ε − x0`, and the model's timestep input is `σ·1000`.

use rand::Rng;

use crate::error::{Error, Result};

/// diffusers' `num_train_timesteps`: the model sees timestep `σ · 1000`.
pub const NUM_TRAIN_TIMESTEPS: usize = 1000;

/// The timestep fed to the model for noise level `sigma`.
pub fn sigma_to_timestep(sigma: f32) -> f32 {
    sigma * NUM_TRAIN_TIMESTEPS as f32
}

/// The resolution shift of SD3/Wan: `σ' = shift·σ / (1 + (shift−1)·σ)`. shift > 1 moves σ towards
/// 1 (more noise), which large token counts need; shift = 1 is the identity.
pub fn shift_sigma(sigma: f64, shift: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

fn same_len(op: &str, a: &[f32], b: &[f32]) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::shape(
            op,
            format!("lengths differ: {} vs {}", a.len(), b.len()),
        ));
    }
    Ok(())
}

fn check_sigma(op: &str, sigma: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&sigma) {
        return Err(Error::Flow(format!(
            "{op}: sigma must be in [0, 1], got {sigma}"
        )));
    }
    Ok(())
}

/// Training input: `x_σ = (1−σ)·x0 + σ·ε`.
pub fn add_noise(x0: &[f32], noise: &[f32], sigma: f32) -> Result<Vec<f32>> {
    same_len("add_noise", x0, noise)?;
    check_sigma("add_noise", sigma)?;
    Ok(x0
        .iter()
        .zip(noise)
        .map(|(&x, &e)| (1.0 - sigma) * x + sigma * e)
        .collect())
}

/// Training target: the velocity `v = ε − x0`.
pub fn velocity_target(x0: &[f32], noise: &[f32]) -> Result<Vec<f32>> {
    same_len("velocity_target", x0, noise)?;
    Ok(x0.iter().zip(noise).map(|(&x, &e)| e - x).collect())
}

/// One standard-normal sample (Box–Muller in f64; no extra crate needed).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    // 1 − u ∈ (0, 1] keeps ln finite.
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Fills `out` with independent standard-normal samples.
pub fn fill_standard_normal<R: Rng + ?Sized>(rng: &mut R, out: &mut [f32]) {
    for pair in out.chunks_mut(2) {
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        pair[0] = (r * a.cos()) as f32;
        if let Some(second) = pair.get_mut(1) {
            *second = (r * a.sin()) as f32;
        }
    }
}

/// Base distribution of training noise levels, before the shift.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SigmaDistribution {
    /// σ ~ U(0, 1).
    Uniform,
    /// σ = sigmoid(mean + std·n), n ~ N(0, 1) (SD3's logit-normal).
    LogitNormal { mean: f32, std: f32 },
    /// σ = 1 − k/steps with k uniform in 0..steps: the grid of DiffSynth-Studio's
    /// `FlowMatchScheduler.set_timesteps(1000, training=True)` (`linspace(1, 0, 1001)[:-1]`),
    /// which the released Follow-Your-Motion code trains with.
    Grid { steps: usize },
}

/// How training draws σ: a base distribution followed by the shift.
///
/// Wan2.1's own training code is not public. Its inference uses shift 5 (T2V); the released
/// Follow-Your-Motion code (built on DiffSynth-Studio's Wan pipeline) draws σ uniformly from the
/// 1000-point grid and applies shift 5, i.e. [`TrainSigmaSampler::released_code`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSigmaSampler {
    pub distribution: SigmaDistribution,
    /// 1 = no shift.
    pub shift: f32,
}

impl TrainSigmaSampler {
    /// The released Follow-Your-Motion recipe: 1000-point grid, shift 5.
    pub fn released_code() -> Self {
        TrainSigmaSampler {
            distribution: SigmaDistribution::Grid {
                steps: NUM_TRAIN_TIMESTEPS,
            },
            shift: 5.0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.shift.is_finite() && self.shift > 0.0) {
            return Err(Error::Flow(format!(
                "training shift must be positive, got {}",
                self.shift
            )));
        }
        match self.distribution {
            SigmaDistribution::LogitNormal { mean, std }
                if !(mean.is_finite() && std.is_finite() && std >= 0.0) =>
            {
                Err(Error::Flow(format!(
                    "logit-normal needs finite mean and std ≥ 0, got mean {mean}, std {std}"
                )))
            }
            SigmaDistribution::Grid { steps: 0 } => {
                Err(Error::Flow("sigma grid needs at least one step".into()))
            }
            _ => Ok(()),
        }
    }

    /// Draws one σ ∈ [0, 1].
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        let base: f64 = match self.distribution {
            SigmaDistribution::Uniform => rng.gen::<f64>(),
            SigmaDistribution::LogitNormal { mean, std } => {
                let z = mean as f64 + std as f64 * standard_normal(rng) as f64;
                1.0 / (1.0 + (-z).exp())
            }
            SigmaDistribution::Grid { steps } => {
                1.0 - rng.gen_range(0..steps) as f64 / steps as f64
            }
        };
        shift_sigma(base, self.shift as f64) as f32
    }
}

/// Per-sample weight of the flow-matching loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossWeighting {
    /// Every σ weighs 1 (Wan2.1 and the paper's plain MSE).
    None,
    /// DiffSynth-Studio's bell curve over the shifted 1000-point training grid (used by the
    /// released code): `w(t) ∝ exp(−2·((t − 500)/1000)²) − min`, normalised to mean 1 over the
    /// grid, looked up at the grid point nearest to `t = σ·1000`.
    Bell { shift: f32 },
}

impl LossWeighting {
    pub fn weight(&self, sigma: f32) -> f32 {
        match *self {
            LossWeighting::None => 1.0,
            LossWeighting::Bell { shift } => {
                let n = NUM_TRAIN_TIMESTEPS;
                let grid: Vec<f64> = (0..n)
                    .map(|k| 1000.0 * shift_sigma(1.0 - k as f64 / n as f64, shift as f64))
                    .collect();
                let bell: Vec<f64> = grid
                    .iter()
                    .map(|&t| (-2.0 * ((t - n as f64 / 2.0) / n as f64).powi(2)).exp())
                    .collect();
                let min = bell.iter().cloned().fold(f64::INFINITY, f64::min);
                let total: f64 = bell.iter().map(|b| b - min).sum();
                let t = sigma as f64 * 1000.0;
                let nearest = (0..n)
                    .min_by(|&a, &b| (grid[a] - t).abs().total_cmp(&(grid[b] - t).abs()))
                    .unwrap_or(0);
                ((bell[nearest] - min) * n as f64 / total) as f32
            }
        }
    }
}

/// σ levels and model timesteps of an N-step sampling run.
#[derive(Clone, Debug, PartialEq)]
pub struct InferenceSchedule {
    /// N + 1 values from 1 down to a final 0.
    pub sigmas: Vec<f32>,
    /// N values: `sigmas[i] · 1000` (the model input at step i).
    pub timesteps: Vec<f32>,
}

/// The schedule of diffusers' `FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000,
/// shift)` after `set_timesteps(N)`, reproduced operation by operation (same float widths):
///
/// 1. `__init__` builds the 1000 training sigmas in f32 and shifts them, so
///    `sigma_max = 1` and `sigma_min = shift·0.001 / (1 + (shift−1)·0.001)` (f32).
/// 2. `set_timesteps`: `t = np.linspace(sigma_max·1000, sigma_min·1000, N)` in f64,
///    `σ = t/1000`, shifted **again** (`shift·σ/(1+(shift−1)·σ)`, f64), rounded to f32;
///    timesteps = σ·1000 in f32; a final σ = 0 is appended.
///
/// (So the last σ before 0 is shift applied twice to 0.001 — diffusers' behaviour, kept for parity.)
pub fn inference_schedule(num_steps: usize, shift: f32) -> Result<InferenceSchedule> {
    if num_steps == 0 {
        return Err(Error::Flow(
            "number of sampling steps must be at least 1".into(),
        ));
    }
    if !(shift.is_finite() && shift > 0.0) {
        return Err(Error::Flow(format!(
            "sampling shift must be positive, got {shift}"
        )));
    }
    // Step 1, in f32 as torch computes it.
    let s_last = 1.0f32 / NUM_TRAIN_TIMESTEPS as f32;
    let sigma_min = (shift * s_last) / (1.0 + ((shift as f64 - 1.0) as f32) * s_last);
    let sigma_max = 1.0f32; // shift·1/(1+(shift−1)) = 1 exactly
                            // Step 2, numpy linspace in f64: y[i] = i·step + start, last element set to stop.
    let start = sigma_max as f64 * NUM_TRAIN_TIMESTEPS as f64;
    let stop = sigma_min as f64 * NUM_TRAIN_TIMESTEPS as f64;
    let mut t: Vec<f64> = if num_steps == 1 {
        vec![start]
    } else {
        let step = (stop - start) / (num_steps - 1) as f64;
        (0..num_steps).map(|i| i as f64 * step + start).collect()
    };
    if num_steps > 1 {
        t[num_steps - 1] = stop;
    }
    let shift = shift as f64;
    let mut sigmas: Vec<f32> = t
        .iter()
        .map(|&ti| {
            let s = ti / NUM_TRAIN_TIMESTEPS as f64;
            (shift * s / (1.0 + (shift - 1.0) * s)) as f32
        })
        .collect();
    let timesteps = sigmas
        .iter()
        .map(|&s| s * NUM_TRAIN_TIMESTEPS as f32)
        .collect();
    sigmas.push(0.0);
    Ok(InferenceSchedule { sigmas, timesteps })
}

fn check_sigmas(op: &str, sigmas: &[f32]) -> Result<()> {
    if sigmas.len() < 2 {
        return Err(Error::Flow(format!(
            "{op}: need at least 2 sigmas (start and end), got {}",
            sigmas.len()
        )));
    }
    for &s in sigmas {
        check_sigma(op, s)?;
    }
    Ok(())
}

/// One Euler step of the probability-flow ODE: `x' = x + (σ' − σ)·v`.
pub fn euler_step(x: &[f32], v: &[f32], sigma: f32, sigma_next: f32) -> Result<Vec<f32>> {
    same_len("euler_step", x, v)?;
    let dt = sigma_next - sigma;
    Ok(x.iter().zip(v).map(|(&xi, &vi)| xi + dt * vi).collect())
}

/// One step of the stochastic re-noising sampler. From the velocity it estimates
/// `x0 = x − σ·v` and `ε = x + (1−σ)·v`, then re-noises to the next level with a partly fresh
/// noise: `x' = (1−σ')·x0 + σ'·(√(1−η²)·ε + η·z)`.
///
/// It is evaluated in the algebraically identical form
/// `x' = x + (σ'−σ)·v + σ'·(√(1−η²) − 1)·ε + σ'·η·z`, whose last two terms are exactly zero
/// at η = 0, so that η = 0 reproduces [`euler_step`] bit for bit.
pub fn stochastic_step(
    x: &[f32],
    v: &[f32],
    sigma: f32,
    sigma_next: f32,
    eta: f32,
    z: &[f32],
) -> Result<Vec<f32>> {
    same_len("stochastic_step (x, v)", x, v)?;
    if !(0.0..=1.0).contains(&eta) {
        return Err(Error::Flow(format!(
            "stochastic_step: eta must be in [0, 1], got {eta}"
        )));
    }
    same_len("stochastic_step (x, z)", x, z)?;
    let dt = sigma_next - sigma;
    let keep = sigma_next * ((1.0 - eta * eta).sqrt() - 1.0);
    let fresh = sigma_next * eta;
    Ok(x.iter()
        .zip(v)
        .zip(z)
        .map(|((&xi, &vi), &zi)| {
            let eps = xi + (1.0 - sigma) * vi;
            xi + dt * vi + keep * eps + fresh * zi
        })
        .collect())
}

fn call_velocity<F>(velocity: &mut F, x: &[f32], sigma: f32) -> Result<Vec<f32>>
where
    F: FnMut(&[f32], f32) -> Result<Vec<f32>>,
{
    let v = velocity(x, sigma)?;
    if v.len() != x.len() {
        return Err(Error::shape(
            "sampler velocity",
            format!(
                "velocity at sigma {sigma} has {} values, sample has {}",
                v.len(),
                x.len()
            ),
        ));
    }
    Ok(v)
}

/// Integrates from `x_t` (at `sigmas[0]`) down the schedule with Euler steps; `velocity(x, σ)`
/// is the (guided) model prediction.
pub fn euler_sample<F>(x_t: &[f32], sigmas: &[f32], mut velocity: F) -> Result<Vec<f32>>
where
    F: FnMut(&[f32], f32) -> Result<Vec<f32>>,
{
    check_sigmas("euler_sample", sigmas)?;
    let mut x = x_t.to_vec();
    for w in sigmas.windows(2) {
        let v = call_velocity(&mut velocity, &x, w[0])?;
        x = euler_step(&x, &v, w[0], w[1])?;
    }
    Ok(x)
}

/// Samples with [`stochastic_step`] at every step, drawing fresh noise `z` from `rng`.
/// η = 1 (full re-noising) is what makes small models draw one coherent object; η = 0 is Euler.
pub fn stochastic_sample<F, R>(
    x_t: &[f32],
    sigmas: &[f32],
    eta: f32,
    rng: &mut R,
    mut velocity: F,
) -> Result<Vec<f32>>
where
    F: FnMut(&[f32], f32) -> Result<Vec<f32>>,
    R: Rng + ?Sized,
{
    check_sigmas("stochastic_sample", sigmas)?;
    let mut x = x_t.to_vec();
    let mut z = vec![0.0f32; x.len()];
    for w in sigmas.windows(2) {
        let v = call_velocity(&mut velocity, &x, w[0])?;
        if eta > 0.0 {
            fill_standard_normal(rng, &mut z);
        }
        x = stochastic_step(&x, &v, w[0], w[1], eta, &z)?;
    }
    Ok(x)
}

/// Classifier-free guidance: `v = v_uncond + scale·(v_cond − v_uncond)`.
pub fn cfg_combine(v_uncond: &[f32], v_cond: &[f32], scale: f32) -> Result<Vec<f32>> {
    same_len("cfg_combine", v_uncond, v_cond)?;
    Ok(v_uncond
        .iter()
        .zip(v_cond)
        .map(|(&u, &c)| u + scale * (c - u))
        .collect())
}

/// Sinusoidal timestep embedding `[B, dim]` of diffusers' `Timesteps(dim, flip_sin_to_cos=True,
/// downscale_freq_shift=0)` (WAN_ARCH.md §4a), in f32 as torch computes it:
/// `freq[i] = exp(−ln(10000)·i/half)`, `e = [cos(t·freq), sin(t·freq)]`, a zero column appended
/// when `dim` is odd.
pub fn timestep_embedding(timesteps: &[f32], dim: usize) -> Result<Vec<f32>> {
    if dim < 2 {
        return Err(Error::Flow(format!(
            "timestep embedding size must be at least 2, got {dim}"
        )));
    }
    let half = dim / 2;
    let neg_log_period = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (neg_log_period * i as f32 / half as f32).exp())
        .collect();
    let mut out = vec![0.0f32; timesteps.len() * dim];
    for (row, &t) in out.chunks_exact_mut(dim).zip(timesteps) {
        for (i, &f) in freqs.iter().enumerate() {
            let arg = t * f;
            row[i] = arg.cos();
            row[half + i] = arg.sin();
        }
    }
    Ok(out)
}
