//! Normalisations over the last dim, and softmax.

use fym_kernels::cpu::{norm, softmax};

use fym_kernels::cpu::buffer::output_vec;

use fym_kernels::cuda;

use super::{gpu_of, gpu_zeros, records};
use crate::op::Op;
use crate::tensor::Buf;
use crate::{Error, Result, Tensor};

fn check_affine(op: &'static str, x: &Tensor, p: Option<&Tensor>) -> Result<()> {
    if x.rank() == 0 {
        return Err(Error::shape(op, "input is a scalar"));
    }
    if let Some(p) = p {
        if p.shape() != [x.dim(-1)] {
            return Err(Error::shape(
                op,
                format!("parameter {:?} for input {:?}", p.shape(), x.shape()),
            ));
        }
    }
    Ok(())
}

impl Tensor {
    /// LayerNorm over the last dim (biased variance), optional affine weight and bias.
    pub fn layer_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let gpu = gpu_of("layer_norm", &inputs)?;
        check_affine("layer_norm", self, weight)?;
        check_affine("layer_norm", self, bias)?;
        let cols = self.dim(-1);
        let rows = self.numel() / cols.max(1);
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, self.numel())?;
            let (mut mean, mut rstd) = (gpu_zeros(&dev, rows)?, gpu_zeros(&dev, rows)?);
            let (x, w, b) = (
                self.storage(),
                weight.map(|w| w.storage()),
                bias.map(|b| b.storage()),
            );
            cuda::norm::layer_norm(
                &dev,
                x.cuda(),
                rows,
                cols,
                eps,
                w.as_ref().map(|w| w.cuda()),
                b.as_ref().map(|b| b.cuda()),
                &mut out,
                &mut mean,
                &mut rstd,
            )?;
            drop((x, w, b));
            let op = Op::LayerNorm {
                x: self.clone(),
                w: weight.cloned(),
                b: bias.cloned(),
                mean: Tensor::gpu_buf(&dev, mean),
                rstd: Tensor::gpu_buf(&dev, rstd),
            };
            return Ok(Tensor::from_cuda_op(&dev, out, self.shape().to_vec(), op));
        }
        let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
        let (w, b) = (weight.map(|w| w.data()), bias.map(|b| b.data()));
        // SAFETY: `layer_norm` writes every element of `out`.
        let out = unsafe {
            output_vec(self.numel(), |out| {
                norm::layer_norm(
                    &self.data(),
                    rows,
                    cols,
                    eps,
                    w.as_deref().map(|v| v.as_slice()),
                    b.as_deref().map(|v| v.as_slice()),
                    out,
                    &mut mean,
                    &mut rstd,
                )
            })
        };
        drop((w, b));
        let op = Op::LayerNorm {
            x: self.clone(),
            w: weight.cloned(),
            b: bias.cloned(),
            mean: Buf::Cpu(mean),
            rstd: Buf::Cpu(rstd),
        };
        Ok(Tensor::from_op(out, self.shape().to_vec(), op))
    }

    /// RMSNorm over the last dim, optional weight.
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        let mut inputs = vec![self];
        inputs.extend(weight);
        let gpu = gpu_of("rms_norm", &inputs)?;
        check_affine("rms_norm", self, weight)?;
        let cols = self.dim(-1);
        let rows = self.numel() / cols.max(1);
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, self.numel())?;
            let mut rstd = gpu_zeros(&dev, rows)?;
            let (x, w) = (self.storage(), weight.map(|w| w.storage()));
            cuda::norm::rms_norm(
                &dev,
                x.cuda(),
                rows,
                cols,
                eps,
                w.as_ref().map(|w| w.cuda()),
                &mut out,
                &mut rstd,
            )?;
            drop((x, w));
            let op = Op::RmsNorm {
                x: self.clone(),
                w: weight.cloned(),
                rstd: Tensor::gpu_buf(&dev, rstd),
            };
            return Ok(Tensor::from_cuda_op(&dev, out, self.shape().to_vec(), op));
        }
        let mut rstd = vec![0.0; rows];
        let w = weight.map(|w| w.data());
        // SAFETY: `rms_norm` writes every element of `out`.
        let out = unsafe {
            output_vec(self.numel(), |out| {
                norm::rms_norm(
                    &self.data(),
                    rows,
                    cols,
                    eps,
                    w.as_deref().map(|v| v.as_slice()),
                    out,
                    &mut rstd,
                )
            })
        };
        drop(w);
        let op = Op::RmsNorm {
            x: self.clone(),
            w: weight.cloned(),
            rstd: Buf::Cpu(rstd),
        };
        Ok(Tensor::from_op(out, self.shape().to_vec(), op))
    }

    /// Softmax over the last dim.
    pub fn softmax(&self) -> Result<Tensor> {
        let gpu = gpu_of("softmax", &[self])?;
        if self.rank() == 0 {
            return Err(Error::shape("softmax", "input is a scalar"));
        }
        let cols = self.dim(-1);
        let rows = self.numel() / cols.max(1);
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, self.numel())?;
            cuda::softmax::softmax(&dev, self.storage().cuda(), rows, cols, &mut out)?;
            // The backward reads the output: the op shares the result's storage.
            let storage = Tensor::cuda_storage(&dev, out);
            let op = Op::Softmax {
                x: self.clone(),
                y: storage.clone(),
            };
            return Ok(Tensor::from_op_storage(storage, self.shape().to_vec(), op));
        }
        // SAFETY: `softmax` writes every element of `out`.
        let out = unsafe {
            output_vec(self.numel(), |out| {
                softmax::softmax(&self.data(), rows, cols, out)
            })
        };
        // The op (and this copy for its backward) is kept only when it is recorded.
        let saved = if records(&[self]) {
            out.clone()
        } else {
            Vec::new()
        };
        let y = std::sync::Arc::new(std::sync::RwLock::new(Buf::Cpu(saved)));
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            Op::Softmax { x: self.clone(), y },
        ))
    }
}
