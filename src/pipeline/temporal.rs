//! Stage 3: the temporal (motion) adapter, trained on the reference clip with the appearance
//! adapter frozen, on a sparse subset of frames that keep their place on the full timeline.
//!
//! Sparse motion sampling draws a few latent frames per clip (one from each of `count` equal
//! bins, so every sample spans the clip); adaptive RoPE gives them the stretched temporal
//! positions `p_i = F/2 + (F/F_s)·(i − F_s/2)` of the full clip. The loss is flow-matching MSE
//! plus the motion loss (cosine of frame-to-frame velocity differences).

use anyhow::Result;
use fym_autograd::ParamSet;
use fym_model::adaptive_rope::{sample_sparse_frames, TemporalPositions};
use fym_model::flow::TrainSigmaSampler;
use rand::Rng;

use super::batch::{batch_loss, noisy_batch, FrameList, MotionEmphasis, TrainCaptions};
use super::model::Model;
use super::recolour::Recolouring;
use super::train::{train, TrainPlan, TrainResult};

/// Which frames a motion training clip holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSampling {
    /// Every frame, positions 0, 1, 2, … (dense training).
    Dense,
    /// `count` latent frames per clip, placed by `positions`.
    Sparse {
        count: usize,
        positions: TemporalPositions,
    },
}

impl FrameSampling {
    /// Latent frames per training clip for a model with `latent_frames` per full clip.
    pub fn clip_latent_frames(&self, latent_frames: usize) -> usize {
        match *self {
            FrameSampling::Dense => latent_frames,
            FrameSampling::Sparse { count, .. } => count,
        }
    }
}

/// Pixel frames of the latent frames `latent` (each spans `per_token` pixel frames).
fn pixel_frames(latent: &[usize], per_token: usize) -> FrameList {
    latent
        .iter()
        .flat_map(|&g| g * per_token..(g + 1) * per_token)
        .collect()
}

/// The clips of one batch and the temporal positions they share.
pub fn draw_clips(
    model: &Model,
    sampling: FrameSampling,
    batch: usize,
    rng: &mut impl Rng,
) -> Result<(Vec<FrameList>, Option<Vec<f64>>)> {
    let latent = model.latent_frames();
    let per_token = model.frames_per_token();
    match sampling {
        FrameSampling::Dense => {
            let all: Vec<usize> = (0..latent).collect();
            Ok((vec![pixel_frames(&all, per_token); batch], None))
        }
        FrameSampling::Sparse { count, positions } => {
            let mut clips = Vec::with_capacity(batch);
            let mut first = None;
            for i in 0..batch {
                // Positions by frame index differ per draw; a batch shares one RoPE table, so
                // then the whole batch uses one draw.
                let idx = match (&first, positions) {
                    (Some(idx), TemporalPositions::FrameIndex) => Clone::clone(idx),
                    _ => sample_sparse_frames(rng, latent, count)?,
                };
                if i == 0 {
                    first = Some(idx.clone());
                }
                clips.push(pixel_frames(&idx, per_token));
            }
            let idx = first.unwrap_or_default();
            let pos = positions.positions(latent, &idx)?;
            Ok((clips, Some(pos)))
        }
    }
}

/// What the motion stage trains on and with which loss.
#[derive(Clone, Copy)]
pub struct MotionObjective<'a> {
    pub sigmas: TrainSigmaSampler,
    pub sampling: FrameSampling,
    /// Weight of the motion loss added to the flow-matching loss (0: none).
    pub motion_weight: f32,
    /// Per-pixel weights of the flow-matching loss favouring where the reference changes
    /// (`None`: every pixel alike).
    pub emphasis: Option<&'a MotionEmphasis>,
    /// Shows clips with the subjects in other colours and captions naming them (`None`: never).
    pub recolour: Option<&'a Recolouring>,
}

/// Trains `params` (the only trainable adapter attached to `model`) on clips of `x0` drawn and
/// scored as `objective` says.
pub fn train_temporal(
    model: &Model,
    x0: &[f32],
    captions: &TrainCaptions,
    params: &ParamSet,
    plan: &TrainPlan,
    objective: &MotionObjective<'_>,
) -> Result<TrainResult> {
    let MotionObjective {
        sigmas,
        sampling,
        motion_weight,
        emphasis,
        recolour,
    } = *objective;
    let batch = captions.batch();
    let plane = model.clip.height * model.clip.width;
    train(plan, params, |rng, _| {
        let (clips, positions) = draw_clips(model, sampling, batch, rng)?;
        let recoloured: Vec<Option<(Vec<f32>, String)>> = match recolour {
            Some(r) => clips.iter().map(|_| r.draw(x0, rng)).collect(),
            None => vec![None; clips.len()],
        };
        let sources: Vec<&[f32]> = recoloured
            .iter()
            .map(|d| d.as_ref().map_or(x0, |(x, _)| x.as_slice()))
            .collect();
        let b = noisy_batch(&sources, model.clip.frames, plane, &clips, &sigmas, rng)?;
        let texts: Vec<&str> = recoloured
            .iter()
            .map(|d| d.as_ref().map_or(captions.caption(), |(_, t)| t.as_str()))
            .collect();
        let text = captions.draw_each(model, rng, &texts)?;
        let weights = emphasis.map(|e| e.gather(&clips)).transpose()?;
        batch_loss(model, &b, &text, positions, weights.as_ref(), motion_weight)
    })
}
