//! Stage 1 of Follow-Your-Motion: run the frozen model once on the (noised) reference video,
//! score every self-attention head by how its attention map resembles the spatial and temporal
//! pseudo masks, and label it.
//!
//! The attention maps are never formed: the captured post-RoPE q/k of each layer go to the
//! streaming statistics kernel (`attention_map_stats`), so this works at real sequence lengths.

use fym_autograd::Tensor;
use fym_kernels::cpu::attention::{attention_map_stats, AttnDims};

use crate::heads::{ClassificationRule, HeadLabels, HeadScores};
use crate::{Error, ForwardOptions, Result, WanModel};

/// Scores of every head of one self-attention from its post-RoPE `q`, `k` (`[B, S, H·D]`, tokens
/// frame-major with `tokens_per_frame` tokens per frame), with the softmax scale 1/√D of the
/// model's attention.
pub fn score_heads(
    q: &Tensor,
    k: &Tensor,
    heads: usize,
    tokens_per_frame: usize,
) -> Result<Vec<HeadScores>> {
    let op = "score_heads";
    if q.rank() != 3 || q.shape() != k.shape() || heads == 0 || !q.dim(2).is_multiple_of(heads) {
        return Err(Error::shape(
            op,
            format!(
                "q {:?} and k {:?} must be equal [B, S, H·D] shapes with {heads} heads",
                q.shape(),
                k.shape()
            ),
        ));
    }
    if tokens_per_frame == 0 || !q.dim(1).is_multiple_of(tokens_per_frame) {
        return Err(Error::shape(
            op,
            format!(
                "{} tokens do not split into frames of {tokens_per_frame} tokens",
                q.dim(1)
            ),
        ));
    }
    let dims = AttnDims {
        batch: q.dim(0),
        heads,
        seq_q: q.dim(1),
        seq_kv: k.dim(1),
        head_dim: q.dim(2) / heads,
        tokens_per_frame,
    };
    let scale = 1.0 / (dims.head_dim as f32).sqrt();
    let stats = attention_map_stats(dims, scale, &q.data(), &k.data())
        .map_err(fym_autograd::Error::from)?;
    Ok(stats
        .into_iter()
        .map(|s| HeadScores {
            cos_spatial: s.cos_spatial as f32,
            cos_temporal: s.cos_temporal as f32,
            mass_spatial: s.mass_spatial as f32,
            mass_temporal: s.mass_temporal as f32,
        })
        .collect())
}

/// Scores of every head of every layer (`[layer][head]`) for one forward pass of `model` on
/// `hidden_states [B, C, F, H, W]` at `timestep`, conditioned on `text [B, L, text_dim]`. Runs
/// without recording gradients; the attached adapters (if any) are applied as they are.
pub fn head_scores(
    model: &WanModel,
    hidden_states: &Tensor,
    timestep: &[f32],
    text: &Tensor,
    opts: &ForwardOptions,
) -> Result<Vec<Vec<HeadScores>>> {
    let c = &model.config;
    let hs = hidden_states.shape();
    if hs.len() != 5 {
        return Err(Error::shape(
            "head_scores",
            format!("hidden_states has shape {hs:?}; expected [B, C, F, H, W]"),
        ));
    }
    model.start_capture();
    let forward = fym_autograd::no_grad(|| model.forward(hidden_states, timestep, text, opts));
    // Always stop capturing, also when the forward failed.
    let captured = model.take_capture();
    forward?;
    if captured.len() != c.num_layers {
        return Err(Error::shape(
            "head_scores",
            format!(
                "captured {} self-attentions for a model of {} layers",
                captured.len(),
                c.num_layers
            ),
        ));
    }
    captured
        .iter()
        .map(|a| score_heads(&a.q, &a.k, c.num_attention_heads, a.tokens_per_frame))
        .collect()
}

/// Labels every head of every layer spatial or temporal with `rule` (the paper's cosine rule,
/// [`ClassificationRule::paper`], or the released code's mass rule,
/// [`ClassificationRule::released_code`]) from one frozen forward pass.
pub fn classify_heads(
    model: &WanModel,
    hidden_states: &Tensor,
    timestep: &[f32],
    text: &Tensor,
    rule: ClassificationRule,
) -> Result<HeadLabels> {
    let scores = head_scores(
        model,
        hidden_states,
        timestep,
        text,
        &ForwardOptions::default(),
    )?;
    HeadLabels::classify(&scores, rule)
}
