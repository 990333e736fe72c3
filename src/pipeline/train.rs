//! The LoRA training loop shared by the tuning stages: AdamW on one adapter's factors, a
//! checkpoint every few steps, and exact resumption.
//!
//! Resumption is exact because nothing carries hidden state from one step to the next except the
//! factors and the AdamW moments, which the checkpoint holds: every step draws its frames, noise
//! levels and noise from its own RNG, seeded from (run seed, stage, step).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use fym_autograd::{AdamW, AdamWConfig, ParamSet, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::progress::Progress;
use super::state::StableHash;

/// How the learning rate of an adapter stage moves over its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrSchedule {
    /// The same rate at every step.
    Constant,
    /// Half a cosine from the rate at the first step down to 0 after the last, so the last
    /// steps refine instead of jumping around the fit.
    Cosine,
}

impl LrSchedule {
    pub fn parse(s: &str) -> Option<LrSchedule> {
        match s {
            "constant" => Some(LrSchedule::Constant),
            "cosine" => Some(LrSchedule::Cosine),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        }
    }

    /// The rate of step `step` (0-based) of `steps`, `lr` the peak. A function of the step
    /// alone, so a resumed run follows the same rates.
    pub fn lr_at(self, lr: f32, step: usize, steps: usize) -> f32 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => {
                let progress = step as f64 / steps.max(1) as f64;
                (lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())) as f32
            }
        }
    }
}

/// What one training stage needs besides its step function.
pub struct TrainPlan {
    pub stage: &'static str,
    pub steps: usize,
    pub lr: f32,
    pub lr_schedule: LrSchedule,
    pub weight_decay: f32,
    pub seed: u64,
    /// The stage key (see `state.rs`): a checkpoint made for another key is ignored.
    pub key: String,
    pub checkpoint: PathBuf,
    pub checkpoint_every: usize,
    /// Stop with [`Interrupted`] after this many steps (tests of resumption).
    pub stop_after: Option<usize>,
    pub quiet: bool,
}

/// Returned (as the error) when a run stops at `stop_after`.
#[derive(Debug, thiserror::Error)]
#[error("run interrupted on purpose after step {step} of stage {stage}")]
pub struct Interrupted {
    pub stage: &'static str,
    pub step: usize,
}

/// The RNG of one step: independent of how the run got there.
pub fn step_rng(seed: u64, stage: &str, step: usize) -> StdRng {
    let h = StableHash::default()
        .bytes(&seed.to_le_bytes())
        .str(stage)
        .bytes(&(step as u64).to_le_bytes());
    StdRng::seed_from_u64(u64::from_str_radix(&h.hex(), 16).unwrap_or(seed))
}

/// Mean loss of the last steps, for the report.
pub struct TrainResult {
    pub final_loss: f32,
    pub resumed_from: usize,
}

/// Runs `plan.steps` AdamW steps on `params`; `loss_fn(rng, step)` builds the loss of one step.
pub fn train(
    plan: &TrainPlan,
    params: &ParamSet,
    mut loss_fn: impl FnMut(&mut StdRng, usize) -> Result<Tensor>,
) -> Result<TrainResult> {
    let mut opt = AdamW::new(AdamWConfig {
        lr: plan.lr,
        weight_decay: plan.weight_decay,
        ..AdamWConfig::default()
    });
    let mut start = 0;
    if plan.checkpoint.exists() {
        // Read into scratch first: a checkpoint of other inputs must not touch the factors.
        let mut scratch = AdamW::new(opt.config);
        let shadow = shadow_params(params)?;
        let meta = fym_autograd::load_checkpoint(&plan.checkpoint, &shadow, &mut scratch)
            .with_context(|| format!("stage {}: resume from checkpoint", plan.stage))?;
        if meta.get("fym.key").map(String::as_str) == Some(plan.key.as_str()) {
            for ((_, dst), (_, src)) in params.iter().zip(shadow.iter()) {
                *dst.data_mut() = src.to_vec();
            }
            start = scratch.step as usize;
            opt = scratch;
        }
    }
    let mut progress = Progress::new(plan.quiet, plan.stage, plan.steps, start);
    let mut recent = Vec::new();
    for step in start..plan.steps {
        let mut rng = step_rng(plan.seed, plan.stage, step);
        let loss = loss_fn(&mut rng, step)?;
        let value = loss.item()?;
        if !value.is_finite() {
            anyhow::bail!(
                "stage {}: loss became {value} at step {step} (try a lower learning rate)",
                plan.stage
            );
        }
        let grads = loss.backward()?;
        opt.config.lr = plan.lr_schedule.lr_at(plan.lr, step, plan.steps);
        opt.step(params, &grads);
        recent.push(value);
        if recent.len() > 20 {
            recent.remove(0);
        }
        let done = step + 1;
        progress.step(done, value);
        let stopping = plan.stop_after == Some(done);
        if done < plan.steps && (done % plan.checkpoint_every.max(1) == 0 || stopping) {
            let mut meta = BTreeMap::new();
            meta.insert("fym.key".to_string(), plan.key.clone());
            fym_autograd::save_checkpoint(&plan.checkpoint, params, &opt, &meta)
                .with_context(|| format!("stage {}: write checkpoint", plan.stage))?;
        }
        if stopping && done < plan.steps {
            return Err(Interrupted {
                stage: plan.stage,
                step: done,
            }
            .into());
        }
    }
    let final_loss = if recent.is_empty() {
        f32::NAN
    } else {
        recent.iter().sum::<f32>() / recent.len() as f32
    };
    Ok(TrainResult {
        final_loss,
        resumed_from: start,
    })
}

/// Copies of the parameters (same names and shapes) to load a checkpoint into.
fn shadow_params(params: &ParamSet) -> Result<ParamSet> {
    let mut set = ParamSet::new();
    for (name, t) in params.iter() {
        set.push(name, Tensor::param(t.to_vec(), t.shape())?);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    #[test]
    fn the_cosine_schedule_falls_from_the_rate_to_zero() {
        let lr = 5e-3;
        assert_eq!(LrSchedule::Constant.lr_at(lr, 299, 300), lr);
        assert_eq!(LrSchedule::Cosine.lr_at(lr, 0, 300), lr);
        assert!((LrSchedule::Cosine.lr_at(lr, 150, 300) - lr / 2.0).abs() < 1e-9);
        let last = LrSchedule::Cosine.lr_at(lr, 299, 300);
        assert!(last > 0.0 && last < lr * 1e-4, "{last}");
        let rates: Vec<f32> = (0..300)
            .map(|s| LrSchedule::Cosine.lr_at(lr, s, 300))
            .collect();
        assert!(rates.windows(2).all(|w| w[1] < w[0]), "falls at every step");
        for name in ["constant", "cosine"] {
            assert_eq!(LrSchedule::parse(name).map(LrSchedule::name), Some(name));
        }
        assert_eq!(LrSchedule::parse("linear"), None);
    }
}
