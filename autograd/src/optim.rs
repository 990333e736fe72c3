//! AdamW (Loshchilov & Hutter): bias-corrected Adam moments, weight decay decoupled from the
//! gradient, optional clipping of the global gradient norm.

use std::collections::BTreeMap;

use crate::{Grads, ParamSet};

/// Optimizer settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Clip the global L2 norm of all gradients to this value (None: no clipping).
    pub max_grad_norm: Option<f32>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
        }
    }
}

/// AdamW state: first and second moments per parameter name, and the step count.
#[derive(Clone, Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    pub step: u64,
    pub(crate) m: BTreeMap<String, Vec<f32>>,
    pub(crate) v: BTreeMap<String, Vec<f32>>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        AdamW {
            config,
            step: 0,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
        }
    }

    /// One update of every parameter in `params` that has a gradient. Returns the global gradient
    /// norm before clipping. Runs on the host: a GPU parameter's gradient and values are
    /// downloaded, and the updated values uploaded.
    pub fn step(&mut self, params: &ParamSet, grads: &Grads) -> f32 {
        let host: Vec<_> = params
            .iter()
            .filter_map(|(name, t)| grads.get(t).map(|g| (name, t, g)))
            .collect();
        let norm = host
            .iter()
            .flat_map(|(_, _, g)| g.iter())
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt() as f32;
        let clip = match self.config.max_grad_norm {
            Some(max) if norm > max && norm.is_finite() => max / norm,
            _ => 1.0,
        };
        self.step += 1;
        let c = self.config;
        let bc1 = 1.0 - (c.beta1 as f64).powi(self.step as i32);
        let bc2 = 1.0 - (c.beta2 as f64).powi(self.step as i32);
        let step_size = (c.lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for (name, t, g) in host {
            let m = self
                .m
                .entry(name.to_string())
                .or_insert_with(|| vec![0.0; g.len()]);
            let v = self
                .v
                .entry(name.to_string())
                .or_insert_with(|| vec![0.0; g.len()]);
            let mut p = t.data_mut();
            for i in 0..g.len() {
                let gi = g[i] * clip;
                m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * gi;
                v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi;
                // Decoupled weight decay: shrink the weight, independent of the gradient.
                p[i] -= c.lr * c.weight_decay * p[i];
                p[i] -= step_size * m[i] / (v[i].sqrt() / bc2_sqrt + c.eps);
            }
        }
        norm
    }
}
