//! AdamW (Loshchilov & Hutter): bias-corrected Adam moments, weight decay decoupled from the
//! gradient, optional clipping of the global gradient norm.

use std::collections::BTreeMap;

use fym_kernels::cpu::pool::{parallel_for, SharedMut};

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
        for (name, _, g) in &host {
            for moments in [&mut self.m, &mut self.v] {
                moments
                    .entry(name.to_string())
                    .or_insert_with(|| vec![0.0; g.len()]);
            }
        }
        // Values on the host (GPU ones downloaded here and uploaded when the guards drop, all
        // on this thread), then every element updated independently on the kernel threads:
        // the same arithmetic per element as one loop, so the result does not depend on them.
        let mut values: Vec<_> = host.iter().map(|(_, t, _)| t.data_mut()).collect();
        let mut work = Vec::with_capacity(host.len());
        for ((name, _, g), p) in host.iter().zip(values.iter_mut()) {
            let moment = |moments: &mut BTreeMap<String, Vec<f32>>| {
                let buf = moments.get_mut(*name).expect("created above");
                // The parallel update below writes g.len() values through each pointer.
                assert_eq!(buf.len(), g.len(), "AdamW state of {name} has another size");
                SharedMut::new(buf)
            };
            assert_eq!(p.len(), g.len(), "gradient of {name} has another size");
            work.push(Slices {
                p: SharedMut::new(p),
                m: moment(&mut self.m),
                v: moment(&mut self.v),
                g,
            });
        }
        let chunks: Vec<(usize, usize)> = work
            .iter()
            .enumerate()
            .flat_map(|(i, w)| {
                (0..w.g.len())
                    .step_by(UPDATE_CHUNK)
                    .map(move |start| (i, start))
            })
            .collect();
        parallel_for(chunks.len(), |task| {
            let (i, start) = chunks[task];
            let w = &work[i];
            let len = UPDATE_CHUNK.min(w.g.len() - start);
            // SAFETY: chunks are disjoint ranges of distinct parameters' buffers, each buffer
            // `g.len()` long (moments created at that length, values of the gradient's tensor).
            let (p, m, v) = unsafe {
                (
                    w.p.slice(start, len),
                    w.m.slice(start, len),
                    w.v.slice(start, len),
                )
            };
            for (k, &g) in w.g[start..start + len].iter().enumerate() {
                let gi = g * clip;
                m[k] = c.beta1 * m[k] + (1.0 - c.beta1) * gi;
                v[k] = c.beta2 * v[k] + (1.0 - c.beta2) * gi * gi;
                // Decoupled weight decay: shrink the weight, independent of the gradient.
                p[k] -= c.lr * c.weight_decay * p[k];
                p[k] -= step_size * m[k] / (v[k].sqrt() / bc2_sqrt + c.eps);
            }
        });
        drop(work);
        drop(values);
        norm
    }
}

/// Elements per task of the parallel update.
const UPDATE_CHUNK: usize = 16 * 1024;

/// One parameter's buffers for the parallel update.
struct Slices<'a> {
    p: SharedMut<f32>,
    m: SharedMut<f32>,
    v: SharedMut<f32>,
    g: &'a [f32],
}
