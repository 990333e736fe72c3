//! Training losses: flow-matching velocity MSE and the motion loss of Follow-Your-Motion.

use fym_autograd::Tensor;

use crate::heads::HeadKind;
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

/// Keeps `log p` finite where a softmax underflows.
const LOG_EPS: f32 = 1e-12;

/// How far one self-attention head is from playing `role`: the cross-entropy between each of its
/// attention rows and the uniform distribution over that row's pseudo mask — the query's own
/// frame for [`HeadKind::Spatial`], the query's position in every other frame for
/// [`HeadKind::Temporal`], the masks head classification compares attention with — less that
/// distribution's entropy, averaged over rows: a KL divergence, 0 when the head attends evenly
/// over its mask and nowhere else.
///
/// `q`, `k`: post-RoPE `[B, S, H·D]` (what [`crate::WanModel::start_capture_on_graph`] records),
/// `S = frames · tokens_per_frame`; `head` indexes the `heads` heads. Pretraining adds it for
/// chosen heads so that some heads of a small model are clearly spatial or temporal, which head
/// classification and the two adapters rely on.
pub fn head_role_loss(
    q: &Tensor,
    k: &Tensor,
    heads: usize,
    head: usize,
    role: HeadKind,
    tokens_per_frame: usize,
) -> Result<Tensor> {
    let bad = |why: String| Err(Error::shape("head_role_loss", why));
    if q.rank() != 3 || q.shape() != k.shape() {
        return bad(format!(
            "q {:?} and k {:?} must both be [B, S, H·D]",
            q.shape(),
            k.shape()
        ));
    }
    let (batch, seq, width) = (q.dim(0), q.dim(1), q.dim(2));
    if heads == 0 || width % heads != 0 || head >= heads {
        return bad(format!("head {head} of {heads} heads over width {width}"));
    }
    if tokens_per_frame == 0 || seq % tokens_per_frame != 0 {
        return bad(format!(
            "{seq} tokens are not whole frames of {tokens_per_frame}"
        ));
    }
    let frames = seq / tokens_per_frame;
    let mask_size = match role {
        HeadKind::Spatial => tokens_per_frame,
        HeadKind::Temporal => frames - 1,
    };
    if mask_size == 0 {
        return bad("a temporal head needs at least two frames".into());
    }
    let d = width / heads;
    let probs = q
        .slice(2, head * d, d)?
        .matmul_t(&k.slice(2, head * d, d)?, false, true)?
        .scale(1.0 / (d as f32).sqrt())?
        .softmax()?;
    // Each row's target: 1/|mask| on its mask.
    let mut target = vec![0.0f32; seq * seq];
    for (i, row) in target.chunks_exact_mut(seq).enumerate() {
        for (j, t) in row.iter_mut().enumerate() {
            let inside = match role {
                HeadKind::Spatial => i / tokens_per_frame == j / tokens_per_frame,
                HeadKind::Temporal => i % tokens_per_frame == j % tokens_per_frame && i != j,
            };
            if inside {
                *t = 1.0 / mask_size as f32;
            }
        }
    }
    let target = Tensor::from_vec(target, &[seq, seq])?.to_device(q.device())?;
    let rows = (batch * seq) as f32;
    // KL = −Σ t·log p / rows − log |mask|.
    Ok(probs
        .affine(1.0, LOG_EPS)?
        .log()?
        .mul(&target)?
        .sum_all()?
        .affine(-1.0 / rows, -(mask_size as f32).ln())?)
}
