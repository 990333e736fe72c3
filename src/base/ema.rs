//! Exponential moving average of the trained weights: the copy the model is sampled with.

use fym_autograd::{ParamSet, Tensor};
use fym_kernels::cpu::pool::{parallel_for, SharedMut};

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

    /// Moves the shadows towards `params` (same order as at construction), element chunks on
    /// the kernel threads (each element's arithmetic is the same as in one loop).
    pub fn update(&self, params: &ParamSet, step: u64) {
        const CHUNK: usize = 16 * 1024;
        let d = self.decay_at(step);
        let values: Vec<_> = params.iter().map(|(_, p)| p.data()).collect();
        let mut shadows: Vec<_> = self.shadow.iter().map(|(_, s)| s.data_mut()).collect();
        let pairs: Vec<(&[f32], SharedMut<f32>, usize)> = values
            .iter()
            .zip(shadows.iter_mut())
            .map(|(p, s)| {
                let n = p.len().min(s.len());
                (&p[..], SharedMut::new(s), n)
            })
            .collect();
        let chunks: Vec<(usize, usize)> = pairs
            .iter()
            .enumerate()
            .flat_map(|(i, &(_, _, n))| (0..n).step_by(CHUNK).map(move |start| (i, start)))
            .collect();
        parallel_for(chunks.len(), |task| {
            let (i, start) = chunks[task];
            let (p, shadow, n) = &pairs[i];
            let len = CHUNK.min(n - start);
            // SAFETY: tasks write disjoint chunks of distinct shadows' first n values.
            let s = unsafe { shadow.slice(start, len) };
            for (si, &pi) in s.iter_mut().zip(&p[start..start + len]) {
                *si = d * *si + (1.0 - d) * pi;
            }
        });
    }
}
