//! Broadcasting arithmetic, scalar affine maps and pointwise functions.

use fym_kernels::cpu::elementwise::{self as ew, BinaryOp};
use fym_kernels::cpu::unary::{self, UnaryOp};

use super::{broadcast_shapes, ensure_cpu, pad_shape};
use crate::op::Op;
use crate::{Result, Tensor};

impl Tensor {
    fn binary(&self, other: &Tensor, op: BinaryOp, name: &'static str) -> Result<Tensor> {
        ensure_cpu(&[self, other])?;
        let shape = broadcast_shapes(name, self.shape(), other.shape())?;
        let rank = shape.len();
        let mut out = vec![0.0; shape.iter().product()];
        ew::binary(
            op,
            &self.data(),
            &pad_shape(self.shape(), rank),
            &other.data(),
            &pad_shape(other.shape(), rank),
            &mut out,
            &shape,
        )?;
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

    /// `alpha·self + beta`.
    pub fn affine(&self, alpha: f32, beta: f32) -> Result<Tensor> {
        ensure_cpu(&[self])?;
        let mut out = vec![0.0; self.numel()];
        ew::affine_scalar(&self.data(), alpha, beta, &mut out);
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            Op::Affine {
                x: self.clone(),
                alpha,
            },
        ))
    }

    /// `alpha·self`.
    pub fn scale(&self, alpha: f32) -> Result<Tensor> {
        self.affine(alpha, 0.0)
    }

    fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        ensure_cpu(&[self])?;
        let mut out = vec![0.0; self.numel()];
        unary::unary(op, &self.data(), &mut out);
        let y = std::sync::Arc::new(std::sync::RwLock::new(out.clone()));
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
        ensure_cpu(&[self])?;
        let mut out = vec![0.0; self.numel()];
        ew::gelu_tanh(&self.data(), &mut out);
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            Op::Gelu { x: self.clone() },
        ))
    }

    /// SiLU: `x·sigmoid(x)`.
    pub fn silu(&self) -> Result<Tensor> {
        ensure_cpu(&[self])?;
        let mut out = vec![0.0; self.numel()];
        ew::silu(&self.data(), &mut out);
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            Op::Silu { x: self.clone() },
        ))
    }
}
