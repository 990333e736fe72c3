//! Broadcasting arithmetic, scalar affine maps and pointwise functions.

use fym_kernels::cpu::elementwise::{self as ew, BinaryOp};
use fym_kernels::cpu::unary::{self, UnaryOp};

use fym_kernels::cpu::buffer::{output_vec, try_output_vec};

use fym_kernels::cuda;

use super::{broadcast_shapes, gpu_of, gpu_zeros, pad_shape, records};
use crate::op::Op;
use crate::{Result, Tensor};

impl Tensor {
    fn binary(&self, other: &Tensor, op: BinaryOp, name: &'static str) -> Result<Tensor> {
        let gpu = gpu_of(name, &[self, other])?;
        let shape = broadcast_shapes(name, self.shape(), other.shape())?;
        let rank = shape.len();
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, shape.iter().product())?;
            cuda::elementwise::binary(
                &dev,
                op,
                self.storage().cuda(),
                &pad_shape(self.shape(), rank),
                other.storage().cuda(),
                &pad_shape(other.shape(), rank),
                &mut out,
                &shape,
            )?;
            let op = Op::Binary {
                op,
                a: self.clone(),
                b: other.clone(),
            };
            return Ok(Tensor::from_cuda_op(&dev, out, shape, op));
        }
        // SAFETY: `binary` writes every element of `out` (or returns an error).
        let out = unsafe {
            try_output_vec(shape.iter().product(), |out| {
                ew::binary(
                    op,
                    &self.data(),
                    &pad_shape(self.shape(), rank),
                    &other.data(),
                    &pad_shape(other.shape(), rank),
                    out,
                    &shape,
                )
            })?
        };
        Ok(Tensor::from_op(
            out,
            shape,
            Op::Binary {
                op,
                a: self.clone(),
                b: other.clone(),
            },
        ))
    }

    /// Elementwise `self + other` with broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Add, "add")
    }

    /// Elementwise `self − other` with broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Sub, "sub")
    }

    /// Elementwise `self · other` with broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Mul, "mul")
    }

    /// Elementwise `self / other` with broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Div, "div")
    }

    /// adaLN modulation `self·(1 + scale) + shift`: `self [B, S, D]`, `scale`, `shift [B, 1, D]`
    /// (one vector per batch entry, broadcast over its tokens), in one pass.
    pub fn modulate(&self, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
        let gpu = gpu_of("modulate", &[self, scale, shift])?;
        let ok = self.rank() == 3
            && scale.shape() == [self.dim(0), 1, self.dim(2)]
            && shift.shape() == scale.shape();
        if !ok {
            return Err(crate::Error::shape(
                "modulate",
                format!(
                    "x {:?} needs scale and shift [B, 1, D], got {:?} and {:?}",
                    self.shape(),
                    scale.shape(),
                    shift.shape()
                ),
            ));
        }
        let (b, t, d) = (self.dim(0), self.dim(1), self.dim(2));
        let op = Op::Modulate {
            x: self.clone(),
            scale: scale.clone(),
            shift: shift.clone(),
        };
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, self.numel())?;
            cuda::modulate::modulate(
                &dev,
                self.storage().cuda(),
                b,
                t,
                d,
                scale.storage().cuda(),
                shift.storage().cuda(),
                &mut out,
            )?;
            return Ok(Tensor::from_cuda_op(&dev, out, self.shape().to_vec(), op));
        }
        let mut out = vec![0.0; self.numel()];
        fym_kernels::cpu::modulate::modulate(
            &self.data(),
            b,
            t,
            d,
            &scale.data(),
            &shift.data(),
            &mut out,
        )?;
        Ok(Tensor::from_op(out, self.shape().to_vec(), op))
    }

    /// `alpha·self + beta`.
    pub fn affine(&self, alpha: f32, beta: f32) -> Result<Tensor> {
        let op = Op::Affine {
            x: self.clone(),
            alpha,
        };
        if let Some(dev) = gpu_of("affine", &[self])? {
            let mut out = gpu_zeros(&dev, self.numel())?;
            cuda::elementwise::affine_scalar(&dev, self.storage().cuda(), alpha, beta, &mut out)?;
            return Ok(Tensor::from_cuda_op(&dev, out, self.shape().to_vec(), op));
        }
        // SAFETY: `affine_scalar` writes every element of `out`.
        let out = unsafe {
            output_vec(self.numel(), |out| {
                ew::affine_scalar(&self.data(), alpha, beta, out)
            })
        };
        Ok(Tensor::from_op(out, self.shape().to_vec(), op))
    }

    /// `alpha·self`.
    pub fn scale(&self, alpha: f32) -> Result<Tensor> {
        self.affine(alpha, 0.0)
    }

    fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        if let Some(dev) = gpu_of("unary", &[self])? {
            let mut out = gpu_zeros(&dev, self.numel())?;
            cuda::unary::unary(&dev, op, self.storage().cuda(), &mut out)?;
            // The backward reads the output: the op shares the result's storage.
            let storage = Tensor::cuda_storage(&dev, out);
            let op = Op::Unary {
                op,
                x: self.clone(),
                y: storage.clone(),
            };
            return Ok(Tensor::from_op_storage(storage, self.shape().to_vec(), op));
        }
        // SAFETY: `unary` writes every element of `out`.
        let out = unsafe { output_vec(self.numel(), |out| unary::unary(op, &self.data(), out)) };
        // The op (and this copy for its backward) is kept only when it is recorded.
        let saved = if records(&[self]) {
            out.clone()
        } else {
            Vec::new()
        };
        let y = std::sync::Arc::new(std::sync::RwLock::new(crate::tensor::Buf::Cpu(saved)));
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            Op::Unary {
                op,
                x: self.clone(),
                y,
            },
        ))
    }

    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }

    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }

    pub fn square(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Square)
    }

    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }

    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }

    /// GELU with the tanh approximation.
    pub fn gelu(&self) -> Result<Tensor> {
        if let Some(dev) = gpu_of("gelu", &[self])? {
            let mut out = gpu_zeros(&dev, self.numel())?;
            cuda::elementwise::gelu_tanh(&dev, self.storage().cuda(), &mut out)?;
            let op = Op::Gelu { x: self.clone() };
            return Ok(Tensor::from_cuda_op(&dev, out, self.shape().to_vec(), op));
        }
        // SAFETY: `gelu_tanh` writes every element of `out`.
        let out = unsafe { output_vec(self.numel(), |out| ew::gelu_tanh(&self.data(), out)) };
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            Op::Gelu { x: self.clone() },
        ))
    }

    /// SiLU: `x·sigmoid(x)`.
    pub fn silu(&self) -> Result<Tensor> {
        if let Some(dev) = gpu_of("silu", &[self])? {
            let mut out = gpu_zeros(&dev, self.numel())?;
            cuda::elementwise::silu(&dev, self.storage().cuda(), &mut out)?;
            let op = Op::Silu { x: self.clone() };
            return Ok(Tensor::from_cuda_op(&dev, out, self.shape().to_vec(), op));
        }
        // SAFETY: `silu` writes every element of `out`.
        let out = unsafe { output_vec(self.numel(), |out| ew::silu(&self.data(), out)) };
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            Op::Silu { x: self.clone() },
        ))
    }
}
