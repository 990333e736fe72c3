//! Stage 1: label every self-attention head spatial or temporal from the frozen model's attention
//! on the noised reference clip (no training).
//!
//! The scores come from `fym_model::classify` (post-RoPE q/k captured per layer, scored by the
//! streaming attention-statistics kernel, so the maps are never formed); this file noises the
//! reference, applies the rule and the per-layer safeguard, and turns labels into head groups.

use anyhow::{Context, Result};
use fym_autograd::Tensor;
use fym_model::heads::{ClassificationRule, HeadEntry, HeadKind, HeadLabels, HeadScores};
use fym_model::lora_io::HeadAssignment;
use fym_model::ForwardOptions;
use rand::SeedableRng;

use super::model::Model;

/// Settings of stage 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassifyOptions {
    pub rule: ClassificationRule,
    /// Noise level of the reference clip the attention is measured on. The released code uses
    /// the noisiest training step; at σ = 1 the input would be pure noise and the labels would not
    /// depend on the reference at all, so fym measures slightly below it.
    pub sigma: f32,
    /// Keep at least one head of each kind in every layer (when it has two or more): the head
    /// with the largest temporal-to-spatial ratio becomes temporal if none is, the one with the
    /// smallest becomes spatial if none is. Without it a layer of near-uniform heads gets no
    /// temporal adapter at all.
    pub both_kinds_per_layer: bool,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions {
            rule: ClassificationRule::paper(),
            sigma: 0.9,
            both_kinds_per_layer: true,
        }
    }
}

/// Scores of every head of every layer from one frozen forward pass on `clip` noised to
/// `sigma` (noise from `seed`), conditioned on `caption`.
pub fn head_scores(
    model: &Model,
    clip: &Tensor,
    caption: &str,
    sigma: f32,
    seed: u64,
) -> Result<Vec<Vec<HeadScores>>> {
    let x0 = clip.to_vec();
    let mut noise = vec![0.0f32; x0.len()];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    fym_model::flow::fill_standard_normal(&mut rng, &mut noise);
    let noised = Tensor::from_vec(
        fym_model::flow::add_noise(&x0, &noise, sigma)?,
        clip.shape(),
    )?
    .to_device(model.device())?;
    let text = model.encode(&[caption])?;
    let t = [fym_model::flow::sigma_to_timestep(sigma)];
    fym_model::classify::head_scores(&model.wan, &noised, &t, &text, &ForwardOptions::default())
        .context("classify: frozen forward pass and attention statistics")
}

/// Labels from scores, with the per-layer safeguard of [`ClassifyOptions::both_kinds_per_layer`].
/// Returns the labels and the (layer, head) pairs the safeguard relabelled.
pub fn label_heads(
    scores: &[Vec<HeadScores>],
    options: &ClassifyOptions,
) -> Result<(HeadLabels, Vec<(usize, usize)>)> {
    let mut labels = HeadLabels::classify(scores, options.rule)?;
    let mut forced = Vec::new();
    if options.both_kinds_per_layer {
        let rule = options.rule;
        let ratio = |e: &HeadEntry| match rule {
            ClassificationRule::Cosine { .. } => {
                e.scores.cos_temporal / e.scores.cos_spatial.max(1e-12)
            }
            ClassificationRule::Mass { .. } => {
                e.scores.mass_temporal / e.scores.mass_spatial.max(1e-12)
            }
        };
        for (l, layer) in labels.layers.iter_mut().enumerate() {
            if layer.len() < 2 {
                continue;
            }
            for kind in [HeadKind::Temporal, HeadKind::Spatial] {
                if layer.iter().any(|e| e.kind == kind) {
                    continue;
                }
                let pick = (0..layer.len()).max_by(|&a, &b| {
                    let (ra, rb) = (ratio(&layer[a]), ratio(&layer[b]));
                    let ord = ra.total_cmp(&rb);
                    if kind == HeadKind::Temporal {
                        ord
                    } else {
                        ord.reverse()
                    }
                });
                if let Some(h) = pick {
                    layer[h].kind = kind;
                    forced.push((l, h));
                }
            }
        }
    }
    Ok((labels, forced))
}

/// Heads of each layer with label `kind` (the ST-LoRA assignment).
pub fn assignment(labels: &HeadLabels, kind: HeadKind) -> Result<HeadAssignment> {
    (0..labels.num_layers())
        .map(|l| Ok((l, labels.heads_of(kind, l)?)))
        .collect()
}

/// The heads whose stored label differs from what the rule alone gives (the safeguard's work).
pub fn relabelled(labels: &HeadLabels) -> Result<Vec<(usize, usize)>> {
    let scores: Vec<Vec<HeadScores>> = labels
        .layers
        .iter()
        .map(|l| l.iter().map(|e| e.scores).collect())
        .collect();
    let plain = HeadLabels::classify(&scores, labels.rule)?;
    let mut out = Vec::new();
    for (l, (a, b)) in labels.layers.iter().zip(&plain.layers).enumerate() {
        for (h, (x, y)) in a.iter().zip(b).enumerate() {
            if x.kind != y.kind {
                out.push((l, h));
            }
        }
    }
    Ok(out)
}
