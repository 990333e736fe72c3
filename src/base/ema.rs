//! Exponential moving average of the trained weights: the copy the model is sampled with.

use fym_autograd::{ParamSet, Tensor};

/// Shadow copies of a parameter set, `shadow = d·shadow + (1−d)·param` after every step.
pub struct Ema {
    pub decay: f32,
    /// Same names and order as the tracked set; trainable leaves only so that checkpoints can
    /// store them beside the parameters (they never receive a gradient).
    pub shadow: ParamSet,
}

/// Name of the shadow of parameter `name` in a checkpoint.
pub fn shadow_name(name: &str) -> String {
    format!("ema.{name}")
}

impl Ema {
    /// Starts from a copy of the current parameters.
    pub fn new(params: &ParamSet, decay: f32) -> anyhow::Result<Self> {
        let mut shadow = ParamSet::new();
        for (name, t) in params.iter() {
            shadow.push(shadow_name(name), Tensor::param(t.to_vec(), t.shape())?);
        }
        Ok(Ema { decay, shadow })
    }

    /// The decay at optimizer step `step` (1-based): warms up as (1 + step)/(10 + step) so the
    /// average is not dominated by the random initialisation.
    pub fn decay_at(&self, step: u64) -> f32 {
        self.decay.min((1.0 + step as f32) / (10.0 + step as f32))
    }

    /// Moves the shadows towards `params` (same order as at construction).
    pub fn update(&self, params: &ParamSet, step: u64) {
        let d = self.decay_at(step);
        for ((_, p), (_, s)) in params.iter().zip(self.shadow.iter()) {
            let p = p.data();
            let mut s = s.data_mut();
            for (si, &pi) in s.iter_mut().zip(p.iter()) {
                *si = d * *si + (1.0 - d) * pi;
            }
        }
    }
}
