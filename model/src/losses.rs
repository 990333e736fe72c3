//! Training losses: flow-matching velocity MSE and the motion loss of Follow-Your-Motion.

use fym_autograd::Tensor;

use crate::{Error, Result};

/// Small constant keeping the cosine defined for motionless pixels.
const COS_EPS: f32 = 1e-6;

/// Motion loss: `mean(1 − cos(|Δpred|, |Δtarget|))`, where `Δ` is the frame-to-frame difference
/// along the time axis (axis 2 of `[B, C, F, H, W]`, as in the released code: absolute
/// differences) and the cosine is taken along time for every (batch, channel, row, column).
/// Needs at least 2 frames.
pub fn motion_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    if pred.shape() != target.shape() || pred.rank() != 5 || pred.dim(2) < 2 {
        return Err(Error::shape(
            "motion_loss",
            format!(
                "prediction {:?} and target {:?} must both be [B, C, F ≥ 2, H, W]",
                pred.shape(),
                target.shape()
            ),
        ));
    }
    let frames = pred.dim(2);
    let diff = |t: &Tensor| -> Result<Tensor> {
        Ok(t.slice(2, 1, frames - 1)?
            .sub(&t.slice(2, 0, frames - 1)?)?
            .abs()?)
    };
    let (dp, dt) = (diff(pred)?, diff(target)?);
    let dot = dp.mul(&dt)?.sum_axis(2)?;
    let norm = |d: &Tensor| -> Result<Tensor> {
        Ok(d.square()?.sum_axis(2)?.affine(1.0, COS_EPS)?.sqrt()?)
    };
    let cos = dot.div(&norm(&dp)?.mul(&norm(&dt)?)?)?;
    Ok(cos.affine(-1.0, 1.0)?.mean_all()?)
}

/// Flow-matching loss: `mean((pred − (noise − x0))²)`.
pub fn flow_matching_loss(pred: &Tensor, velocity_target: &Tensor) -> Result<Tensor> {
    Ok(pred.mse_loss(velocity_target)?)
}

/// Flow-matching loss with a weight per value: `mean(weights · (pred − (noise − x0))²)`.
/// `weights` has the prediction's shape and is a constant (no gradient flows into it).
pub fn weighted_flow_matching_loss(
    pred: &Tensor,
    velocity_target: &Tensor,
    weights: &Tensor,
) -> Result<Tensor> {
    if weights.shape() != pred.shape() {
        return Err(Error::shape(
            "weighted_flow_matching_loss",
            format!(
                "weights {:?} must have the prediction's shape {:?}",
                weights.shape(),
                pred.shape()
            ),
        ));
    }
    Ok(pred
        .sub(velocity_target)?
        .square()?
        .mul(weights)?
        .mean_all()?)
}
