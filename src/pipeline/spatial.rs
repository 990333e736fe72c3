//! Stage 2: the spatial (appearance) adapter, trained on single frames of the reference.
//!
//! Each training clip is one randomly drawn frame of the reference, held for one latent frame
//! (the temporal patch's worth of pixel frames, a still clip), with the reference caption and the
//! plain flow-matching loss: with no motion to learn, the adapter soaks up what the scene looks
//! like, so the motion adapter of stage 3 need not.

use anyhow::Result;
use fym_autograd::ParamSet;
use fym_model::flow::TrainSigmaSampler;
use rand::Rng;

use super::batch::{batch_loss, noisy_batch, FrameList, TrainCaptions};
use super::model::Model;
use super::train::{train, TrainPlan, TrainResult};

/// One still clip: pixel frame `f` repeated for one latent frame.
pub fn still_clip(model: &Model, rng: &mut impl Rng) -> FrameList {
    let f = rng.gen_range(0..model.clip.frames);
    vec![f; model.frames_per_token()]
}

/// Trains `params` (the adapter attached to `model` as the only trainable one) on still clips of
/// `x0` (`[1, 3, F, H, W]` values), one clip per caption of `captions`' batch.
pub fn train_spatial(
    model: &Model,
    x0: &[f32],
    captions: &TrainCaptions,
    params: &ParamSet,
    plan: &TrainPlan,
    sigmas: &TrainSigmaSampler,
) -> Result<TrainResult> {
    let batch = captions.batch();
    let plane = model.clip.height * model.clip.width;
    train(plan, params, |rng, _| {
        let clips: Vec<FrameList> = (0..batch).map(|_| still_clip(model, rng)).collect();
        let b = noisy_batch(
            &vec![x0; batch],
            model.clip.frames,
            plane,
            &clips,
            sigmas,
            rng,
        )?;
        let text = captions.draw(model, rng)?;
        batch_loss(model, &b, &text, None, None, 0.0)
    })
}
