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

use crate::{Error, Result, Tensor};

/// Errors unless every tensor is on the CPU (the engine's tensor ops run there).
pub(crate) fn ensure_cpu(tensors: &[&Tensor]) -> Result<()> {
    for t in tensors {
        if t.device() != fym_kernels::Device::Cpu {
            return Err(Error::UnsupportedDevice(t.device()));
        }
    }
    Ok(())
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
