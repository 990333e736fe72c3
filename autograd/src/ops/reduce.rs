//! Sums, means, broadcasting and the MSE loss.

use fym_kernels::cpu::elementwise::{self as ew, BinaryOp};
use fym_kernels::cpu::reduce;

use fym_kernels::cpu::unary::UnaryOp;
use fym_kernels::cuda;

use super::{broadcast_shapes, gpu_of, gpu_zeros, pad_shape};
use crate::op::Op;
use crate::{Error, Result, Tensor};

/// Broadcasts `x` (shape `from`, padded to the rank of `to`) to shape `to`.
pub(crate) fn broadcast_data(x: &[f32], from: &[usize], to: &[usize]) -> Result<Vec<f32>> {
    let zero = [0.0f32];
    let ones = vec![1; to.len()];
    let mut out = vec![0.0; to.iter().product()];
    ew::binary(
        BinaryOp::Add,
        x,
        &pad_shape(from, to.len()),
        &zero,
        &ones,
        &mut out,
        to,
    )?;
    Ok(out)
}

impl Tensor {
    /// Sum over `axis` (removed from the shape).
    pub fn sum_axis(&self, axis: usize) -> Result<Tensor> {
        let gpu = gpu_of("sum_axis", &[self])?;
        if axis >= self.rank() {
            return Err(Error::shape(
                "sum_axis",
                format!("axis {axis} out of range for {:?}", self.shape()),
            ));
        }
        let mut shape = self.shape().to_vec();
        shape.remove(axis);
        let op = Op::SumAxis {
            x: self.clone(),
            axis,
        };
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, shape.iter().product())?;
            cuda::reduce::sum_axis(&dev, self.storage().cuda(), self.shape(), axis, &mut out)?;
            return Ok(Tensor::from_cuda_op(&dev, out, shape, op));
        }
        let mut out = vec![0.0; shape.iter().product()];
        reduce::sum_axis(&self.data(), self.shape(), axis, &mut out)?;
        Ok(Tensor::from_op(out, shape, op))
    }

    /// Mean over `axis` (removed from the shape).
    pub fn mean_axis(&self, axis: usize) -> Result<Tensor> {
        let n = *self.shape().get(axis).ok_or_else(|| {
            Error::shape(
                "mean_axis",
                format!("axis {axis} out of range for {:?}", self.shape()),
            )
        })?;
        self.sum_axis(axis)?.scale(1.0 / n as f32)
    }

    /// Sum of all elements, as a scalar (shape `[]`).
    pub fn sum_all(&self) -> Result<Tensor> {
        if let Some(dev) = gpu_of("sum_all", &[self])? {
            let s = cuda::reduce::sum_all(&dev, self.storage().cuda())? as f32;
            let out = dev.upload(&[s])?;
            let op = Op::SumAll { x: self.clone() };
            return Ok(Tensor::from_cuda_op(&dev, out, vec![], op));
        }
        let s = reduce::sum_all(&self.data()) as f32;
        Ok(Tensor::from_op(
            vec![s],
            vec![],
            Op::SumAll { x: self.clone() },
        ))
    }

    /// Mean of all elements, as a scalar.
    pub fn mean_all(&self) -> Result<Tensor> {
        if self.numel() == 0 {
            return Err(Error::shape("mean_all", "mean of an empty tensor"));
        }
        self.sum_all()?.scale(1.0 / self.numel() as f32)
    }

    /// Broadcasts to `shape` (numpy rules).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        let gpu = gpu_of("broadcast_to", &[self])?;
        let target = broadcast_shapes("broadcast_to", self.shape(), shape)?;
        if target != shape {
            return Err(Error::shape(
                "broadcast_to",
                format!("{:?} does not broadcast to {shape:?}", self.shape()),
            ));
        }
        if let Some(dev) = gpu {
            let out = cuda::elementwise::broadcast_to(
                &dev,
                self.storage().cuda(),
                &pad_shape(self.shape(), shape.len()),
                shape,
            )?;
            let op = Op::BroadcastTo { x: self.clone() };
            return Ok(Tensor::from_cuda_op(&dev, out, shape.to_vec(), op));
        }
        let out = broadcast_data(&self.data(), self.shape(), shape)?;
        Ok(Tensor::from_op(
            out,
            shape.to_vec(),
            Op::BroadcastTo { x: self.clone() },
        ))
    }

    /// `mean((self − target)²)`, a scalar.
    pub fn mse_loss(&self, target: &Tensor) -> Result<Tensor> {
        let gpu = gpu_of("mse_loss", &[self, target])?;
        if self.shape() != target.shape() || self.numel() == 0 {
            return Err(Error::shape(
                "mse_loss",
                format!(
                    "prediction {:?} and target {:?} must have one non-empty shape",
                    self.shape(),
                    target.shape()
                ),
            ));
        }
        let op = Op::MseLoss {
            a: self.clone(),
            b: target.clone(),
        };
        if let Some(dev) = gpu {
            let n = self.numel();
            let mut diff = gpu_zeros(&dev, n)?;
            let shape = [n];
            cuda::elementwise::binary(
                &dev,
                BinaryOp::Sub,
                self.storage().cuda(),
                &shape,
                target.storage().cuda(),
                &shape,
                &mut diff,
                &shape,
            )?;
            let mut squares = gpu_zeros(&dev, n)?;
            cuda::unary::unary(&dev, UnaryOp::Square, &diff, &mut squares)?;
            let loss = (cuda::reduce::sum_all(&dev, &squares)? / n as f64) as f32;
            let out = dev.upload(&[loss])?;
            return Ok(Tensor::from_cuda_op(&dev, out, vec![], op));
        }
        let (a, b) = (self.data(), target.data());
        let sum: f64 = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum();
        let loss = (sum / a.len() as f64) as f32;
        drop((a, b));
        Ok(Tensor::from_op(vec![loss], vec![], op))
    }
}
