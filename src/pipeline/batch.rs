//! Training batches: frames of the reference clip, noised at random levels, with their velocity
//! targets, and the flow-matching (+ motion) loss of one batch.

use anyhow::Result;
use fym_autograd::Tensor;
use fym_model::flow::{fill_standard_normal, sigma_to_timestep, TrainSigmaSampler};
use fym_model::losses::{flow_matching_loss, motion_loss};
use fym_model::ForwardOptions;
use rand::rngs::StdRng;

use super::model::Model;

/// One clip of a batch: which pixel frames of the reference it holds, in order.
pub type FrameList = Vec<usize>;

/// A noised batch: inputs `[B, 3, Fc, H, W]`, velocity targets of the same shape, model timesteps.
pub struct NoisyBatch {
    pub inputs: Tensor,
    pub targets: Tensor,
    pub timesteps: Vec<f32>,
}

/// Gathers `clips` (all the same length) from the reference `x0` (`[1, 3, F, H, W]` values) and
/// noises each at its own σ with its own noise. Height and width stay flattened into one axis
/// (`plane` pixels) until [`batch_loss`] gives them the model's clip shape.
pub fn noisy_batch(
    x0: &[f32],
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
    let per_clip = 3 * fc * plane;
    let mut inputs = Vec::with_capacity(clips.len() * per_clip);
    let mut targets = Vec::with_capacity(clips.len() * per_clip);
    let mut timesteps = Vec::with_capacity(clips.len());
    let mut noise = vec![0.0f32; per_clip];
    for frames in clips {
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

/// Loss of one batch: flow-matching MSE, plus `motion_weight` × the motion loss when the clips
/// have at least two frames and the weight is positive.
pub fn batch_loss(
    model: &Model,
    batch: &NoisyBatch,
    text: &Tensor,
    positions: Option<Vec<f64>>,
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
    };
    let pred = model.wan.forward(&inputs, &batch.timesteps, text, &opts)?;
    let mut loss = flow_matching_loss(&pred, &targets)?;
    if motion_weight > 0.0 && fc >= 2 {
        loss = loss.add(&motion_loss(&pred, &targets)?.scale(motion_weight)?)?;
    }
    Ok(loss)
}
