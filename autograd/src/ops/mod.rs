//! Forward functions of every op, grouped by family. Each checks shapes (errors name the op and
//! the shapes), runs the kernel, and records the op for backward.

mod attention;
mod elementwise;
mod layout;
mod linear;
mod norm;
mod reduce;

pub use attention::RopeTableRef;
pub(crate) use reduce::broadcast_data;

use std::sync::Arc;

use fym_kernels::cuda::{CudaDevice, CudaSlice};

use crate::{Error, Result, Tensor};

/// The GPU that every one of `tensors` lives on, or None when they are all on the CPU: ops run
/// where their inputs are. Inputs on different devices are an error naming the op.
pub(crate) fn gpu_of(op: &'static str, tensors: &[&Tensor]) -> Result<Option<Arc<CudaDevice>>> {
    let Some(first) = tensors.first() else {
        return Ok(None);
    };
    if let Some(other) = tensors.iter().find(|t| t.device() != first.device()) {
        return Err(Error::DeviceMismatch {
            op,
            a: first.device(),
            b: other.device(),
        });
    }
    Ok(first.cuda_device())
}

/// A zero-filled f32 buffer of `len` values on `dev`.
pub(crate) fn gpu_zeros(dev: &CudaDevice, len: usize) -> Result<CudaSlice<f32>> {
    Ok(dev.zeros::<f32>(len)?)
}

/// Whether an op with these inputs is recorded on the tape (the rule of `Tensor::from_op`), so
/// that ops can skip saving values for a backward that will never run.
pub(crate) fn records(inputs: &[&Tensor]) -> bool {
    crate::is_grad_enabled() && inputs.iter().any(|t| t.requires_grad())
}

/// numpy broadcasting of two shapes (right-aligned).
pub(crate) fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut p = vec![1; rank - s.len()];
        p.extend_from_slice(s);
        p
    };
    let (pa, pb) = (pad(a), pad(b));
    pa.iter()
        .zip(&pb)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Ok(x),
            (1, _) => Ok(y),
            (_, 1) => Ok(x),
            _ => Err(Error::shape(
                op,
                format!("shapes {a:?} and {b:?} do not broadcast"),
            )),
        })
        .collect()
}

/// `shape` left-padded with ones to `rank`.
pub(crate) fn pad_shape(shape: &[usize], rank: usize) -> Vec<usize> {
    let mut p = vec![1; rank - shape.len()];
    p.extend_from_slice(shape);
    p
}
