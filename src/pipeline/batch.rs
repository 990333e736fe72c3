//! Training batches: frames of the reference clip, noised at random levels, with their velocity
//! targets, and the flow-matching (+ motion) loss of one batch.

use anyhow::Result;
use fym_autograd::Tensor;
use fym_model::flow::{fill_standard_normal, sigma_to_timestep, TrainSigmaSampler};
use fym_model::losses::{flow_matching_loss, motion_loss, weighted_flow_matching_loss};
use fym_model::ForwardOptions;
use rand::rngs::StdRng;
use rand::Rng;

use super::matte::subject_mask;
use super::model::Model;
use crate::video::Video;

/// One clip of a batch: which pixel frames of the reference it holds, in order.
pub type FrameList = Vec<usize>;

/// A noised batch: inputs `[B, 3, Fc, H, W]`, velocity targets of the same shape, model timesteps.
pub struct NoisyBatch {
    pub inputs: Tensor,
    pub targets: Tensor,
    pub timesteps: Vec<f32>,
}

/// Gathers `clips` (all the same length), clip i from `sources[i]` (the reference, or a
/// recoloured copy, as `[1, 3, F, H, W]` values), and noises each at its own σ with its own
/// noise. Height and width stay flattened into one axis (`plane` pixels) until [`batch_loss`]
/// gives them the model's clip shape.
pub fn noisy_batch(
    sources: &[&[f32]],
    clip_frames: usize,
    plane: usize,
    clips: &[FrameList],
    sigmas: &TrainSigmaSampler,
    rng: &mut StdRng,
) -> Result<NoisyBatch> {
    let fc = clips.first().map_or(0, Vec::len);
    if fc == 0 || clips.iter().any(|c| c.len() != fc) {
        anyhow::bail!("training batch: clips must be non-empty and of equal length");
    }
    if sources.len() != clips.len() {
        anyhow::bail!(
            "training batch: {} sources for {} clips",
            sources.len(),
            clips.len()
        );
    }
    let per_clip = 3 * fc * plane;
    let mut inputs = Vec::with_capacity(clips.len() * per_clip);
    let mut targets = Vec::with_capacity(clips.len() * per_clip);
    let mut timesteps = Vec::with_capacity(clips.len());
    let mut noise = vec![0.0f32; per_clip];
    for (frames, x0) in clips.iter().zip(sources) {
        let sigma = sigmas.sample(rng);
        fill_standard_normal(rng, &mut noise);
        let mut k = 0;
        for c in 0..3 {
            for &f in frames {
                let src = &x0[(c * clip_frames + f) * plane..][..plane];
                for &x in src {
                    let e = noise[k];
                    inputs.push((1.0 - sigma) * x + sigma * e);
                    targets.push(e - x);
                    k += 1;
                }
            }
        }
        timesteps.push(sigma_to_timestep(sigma));
    }
    Ok(NoisyBatch {
        inputs: Tensor::from_vec(inputs, &[clips.len(), 3, fc, plane])?,
        targets: Tensor::from_vec(targets, &[clips.len(), 3, fc, plane])?,
        timesteps,
    })
}

/// The captions of a stage's training clips: the reference's caption, each clip's replaced by the
/// empty (unconditional) caption with probability `dropout`. Classifier-free guidance
/// extrapolates from the adapted model's unconditional prediction; trained on the caption alone,
/// the adapters leave that prediction wherever they happen to push it, and guidance amplifies
/// the gap into speckle (on a textured reference, guidance 3 drew noise where guidance 1 drew the
/// object).
pub struct TrainCaptions {
    /// The caption once per batch clip (used as is when nothing is dropped).
    caption_text: Tensor,
    caption: String,
    dropout: f32,
}

impl TrainCaptions {
    pub fn new(model: &Model, caption: &str, batch: usize, dropout: f32) -> Result<TrainCaptions> {
        Ok(TrainCaptions {
            caption_text: model.encode(&vec![caption; batch])?,
            caption: caption.to_string(),
            dropout,
        })
    }

    pub fn batch(&self) -> usize {
        self.caption_text.dim(0)
    }

    pub fn caption(&self) -> &str {
        &self.caption
    }

    /// This step's text embeddings; draws from `rng` only when `dropout` > 0, so that runs
    /// without dropout keep their random stream.
    pub fn draw(&self, model: &Model, rng: &mut StdRng) -> Result<Tensor> {
        if self.dropout <= 0.0 {
            return Ok(self.caption_text.clone());
        }
        self.encode_with_dropout(model, rng, &vec![self.caption.as_str(); self.batch()])
    }

    /// As [`TrainCaptions::draw`] for clips captioned `texts` (one per clip): the cached
    /// embeddings when every text is the caption, the same random draws for the dropout.
    pub fn draw_each(&self, model: &Model, rng: &mut StdRng, texts: &[&str]) -> Result<Tensor> {
        if texts.len() != self.batch() {
            anyhow::bail!("{} captions for a batch of {}", texts.len(), self.batch());
        }
        if texts.iter().all(|&t| t == self.caption) {
            return self.draw(model, rng);
        }
        self.encode_with_dropout(model, rng, texts)
    }

    /// `texts` encoded, each replaced by the empty caption with probability `dropout` (one draw
    /// per text, none at all when `dropout` is 0).
    fn encode_with_dropout(
        &self,
        model: &Model,
        rng: &mut StdRng,
        texts: &[&str],
    ) -> Result<Tensor> {
        let captions: Vec<&str> = texts
            .iter()
            .map(|&t| {
                if self.dropout > 0.0 && rng.gen::<f32>() < self.dropout {
                    ""
                } else {
                    t
                }
            })
            .collect();
        model.encode(&captions)
    }
}

/// How far (in the model's [−1, 1] pixel values, largest over the channels) a pixel must differ
/// from its median over the reference's frames to count as fully moving.
pub const MOVING_DEVIATION: f32 = 0.25;

/// The share of a reference's pixels (over all frames) that must hold still — within a quarter
/// of [`MOVING_DEVIATION`] of their median — for [`MotionEmphasis`] to apply.
pub const STILL_BACKGROUND_SHARE: f32 = 0.5;

/// Which pixels the temporal stage's emphasis favours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmphasisMask {
    /// Where the reference changes against its still background ([`MotionEmphasis::new`]);
    /// none where the background moves.
    Motion,
    /// As `Motion`, and on the subject ([`MotionEmphasis::on_subject`]) where the background
    /// moves (camera motion).
    MotionElseSubject,
    /// On the subject, whatever the background does.
    Subject,
}

impl EmphasisMask {
    pub fn parse(s: &str) -> Option<EmphasisMask> {
        match s {
            "motion" => Some(EmphasisMask::Motion),
            "motion-else-subject" => Some(EmphasisMask::MotionElseSubject),
            "subject" => Some(EmphasisMask::Subject),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            EmphasisMask::Motion => "motion",
            EmphasisMask::MotionElseSubject => "motion-else-subject",
            EmphasisMask::Subject => "subject",
        }
    }
}

/// Per-pixel weights of the flow-matching loss that favour the pixels where the reference
/// changes. A reference's still background (most of a frame) otherwise dominates the loss, and on
/// a background the base model never learnt to draw, the adapters spend themselves on it and lose
/// the small moving subject. It assumes a still background: where the camera moves, most pixels
/// change, the weights would only favour some of the background's texture over the rest, and on
/// MotionBench-synth's camera cases that cost track correlation; so a reference with less than
/// [`STILL_BACKGROUND_SHARE`] of its pixels still gets none.
pub struct MotionEmphasis {
    /// One weight per (frame, pixel) of the reference, mean 1.
    weights: Vec<f32>,
    plane: usize,
}

impl MotionEmphasis {
    /// Weights `1 + strength·m`, scaled to mean 1, where `m` = the pixel's largest channel
    /// deviation from its median over the frames, over [`MOVING_DEVIATION`], capped at 1. `x0`
    /// is the reference as `[3, frames, plane]` values. `None` when `strength` is 0 or the
    /// background does not hold still.
    pub fn new(x0: &[f32], frames: usize, plane: usize, strength: f32) -> Option<MotionEmphasis> {
        if strength <= 0.0 || frames == 0 {
            return None;
        }
        let mut deviation = vec![0.0f32; frames * plane];
        let mut over_time = vec![0.0f32; frames];
        for c in 0..3 {
            for p in 0..plane {
                for (f, v) in over_time.iter_mut().enumerate() {
                    *v = x0[(c * frames + f) * plane + p];
                }
                let mut sorted = over_time.clone();
                sorted.sort_by(f32::total_cmp);
                let median = if frames % 2 == 1 {
                    sorted[frames / 2]
                } else {
                    0.5 * (sorted[frames / 2 - 1] + sorted[frames / 2])
                };
                for (f, v) in over_time.iter().enumerate() {
                    let d = &mut deviation[f * plane + p];
                    *d = d.max((v - median).abs());
                }
            }
        }
        let still = deviation
            .iter()
            .filter(|&&d| d < 0.25 * MOVING_DEVIATION)
            .count();
        if (still as f32) < STILL_BACKGROUND_SHARE * deviation.len() as f32 {
            return None;
        }
        let weights = deviation
            .iter()
            .map(|d| 1.0 + strength * (d / MOVING_DEVIATION).min(1.0))
            .collect();
        Some(MotionEmphasis::scaled_to_mean_one(weights, plane))
    }

    fn scaled_to_mean_one(mut weights: Vec<f32>, plane: usize) -> MotionEmphasis {
        let mean = weights.iter().map(|&w| w as f64).sum::<f64>() / weights.len() as f64;
        weights.iter_mut().for_each(|w| *w /= mean as f32);
        MotionEmphasis { weights, plane }
    }

    /// Weights `1 + strength·s`, scaled to mean 1, where `s` is 1 on the reference's subject
    /// ([`subject_mask`]) and 0 elsewhere. For references whose
    /// background moves, where [`MotionEmphasis::new`] has no still background to measure
    /// against. `None` when `strength` is 0 or no frame shows a subject.
    pub fn on_subject(reference: &Video, strength: f32) -> Option<MotionEmphasis> {
        if strength <= 0.0 || reference.frames == 0 {
            return None;
        }
        let subject = subject_mask(reference);
        if !subject.contains(&true) {
            return None;
        }
        let weights = subject
            .iter()
            .map(|&s| if s { 1.0 + strength } else { 1.0 })
            .collect();
        Some(MotionEmphasis::scaled_to_mean_one(
            weights,
            reference.height * reference.width,
        ))
    }

    /// The emphasis `mask` asks for on `reference` (`x0`: the same clip as `[3, frames, plane]`
    /// model values), and whether it is the subject mask.
    pub fn choose(
        mask: EmphasisMask,
        reference: &Video,
        x0: &[f32],
        strength: f32,
    ) -> Option<(MotionEmphasis, EmphasisMask)> {
        let plane = reference.height * reference.width;
        let motion = || MotionEmphasis::new(x0, reference.frames, plane, strength);
        let subject = || MotionEmphasis::on_subject(reference, strength);
        match mask {
            EmphasisMask::Motion => motion().map(|e| (e, EmphasisMask::Motion)),
            EmphasisMask::MotionElseSubject => motion()
                .map(|e| (e, EmphasisMask::Motion))
                .or_else(|| subject().map(|e| (e, EmphasisMask::Subject))),
            EmphasisMask::Subject => subject().map(|e| (e, EmphasisMask::Subject)),
        }
    }

    /// The weight of pixel `p` of frame `f`.
    pub fn at(&self, f: usize, p: usize) -> f32 {
        self.weights[f * self.plane + p]
    }

    /// Weights for a batch of `clips` in [`noisy_batch`]'s layout `[B, 3, Fc, plane]`.
    pub fn gather(&self, clips: &[FrameList]) -> Result<Tensor> {
        let fc = clips.first().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(clips.len() * 3 * fc * self.plane);
        for frames in clips {
            for _ in 0..3 {
                for &f in frames {
                    out.extend_from_slice(&self.weights[f * self.plane..][..self.plane]);
                }
            }
        }
        Ok(Tensor::from_vec(out, &[clips.len(), 3, fc, self.plane])?)
    }
}

/// Loss of one batch: flow-matching MSE (weighted per pixel by `weights`, laid out as the
/// batch, when given), plus `motion_weight` × the motion loss when the clips have at least two
/// frames and the weight is positive.
pub fn batch_loss(
    model: &Model,
    batch: &NoisyBatch,
    text: &Tensor,
    positions: Option<Vec<f64>>,
    weights: Option<&Tensor>,
    motion_weight: f32,
) -> Result<Tensor> {
    let s = batch.inputs.shape();
    let (b, fc) = (s[0], s[2]);
    let shape = [b, 3, fc, model.clip.height, model.clip.width];
    let device = model.device();
    let inputs = batch.inputs.to_device(device)?.reshape(&shape)?;
    let targets = batch.targets.to_device(device)?.reshape(&shape)?;
    let opts = ForwardOptions {
        frame_positions: positions,
        ..Default::default()
    };
    let pred = model.wan.forward(&inputs, &batch.timesteps, text, &opts)?;
    let mut loss = match weights {
        Some(w) => {
            weighted_flow_matching_loss(&pred, &targets, &w.to_device(device)?.reshape(&shape)?)?
        }
        None => flow_matching_loss(&pred, &targets)?,
    };
    if motion_weight > 0.0 && fc >= 2 {
        loss = loss.add(&motion_loss(&pred, &targets)?.scale(motion_weight)?)?;
    }
    Ok(loss)
}
