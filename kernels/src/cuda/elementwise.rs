//! Launchers of `kernels/cuda/elementwise.cu`: the CUDA twins of [`crate::cpu::elementwise`],
//! with the same argument order on device buffers of f32 or bf16.

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::launch::{as_i64, check_len, checked_product, elementwise_config};
use super::CudaDevice;
pub use crate::cpu::elementwise::BinaryOp;
use crate::{Error, Result};

const FILE: &str = "elementwise.cu";

/// How `b` maps onto `out` in [`binary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broadcast {
    /// `b` has `out`'s shape.
    Same,
    /// `b` repeats along the leading dims: `b[i % b_len]` (its shape is 1s then a suffix of `out`'s).
    Row { b_len: usize },
}

fn broadcast_of(b_shape: &[usize], out_shape: &[usize]) -> Option<Broadcast> {
    if b_shape == out_shape {
        return Some(Broadcast::Same);
    }
    let leading_ones = b_shape.iter().take_while(|&&d| d == 1).count();
    if b_shape[leading_ones..] != out_shape[leading_ones..] {
        return None;
    }
    Some(Broadcast::Row {
        b_len: out_shape[leading_ones..].iter().product(),
    })
}

fn op_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
    }
}

/// `out = a op b`. Same rank for all three shapes and `a_shape == out_shape`; `b` either has
/// `out`'s shape or repeats along its leading dims (shape `[1, …, 1, d_k, …, d_n]`, e.g. a bias row).
/// For add and mul the operands may also come the other way round. Any other broadcast is an error.
#[allow(clippy::too_many_arguments)]
pub fn binary<T: CudaFloat>(
    dev: &CudaDevice,
    op: BinaryOp,
    a: &CudaSlice<T>,
    a_shape: &[usize],
    b: &CudaSlice<T>,
    b_shape: &[usize],
    out: &mut CudaSlice<T>,
    out_shape: &[usize],
) -> Result<()> {
    const OP: &str = "cuda binary";
    if a_shape.len() != out_shape.len() || b_shape.len() != out_shape.len() {
        return Err(Error::shape(
            OP,
            format!("{op:?}: ranks differ: a {a_shape:?}, b {b_shape:?}, out {out_shape:?}"),
        ));
    }
    let commutative = matches!(op, BinaryOp::Add | BinaryOp::Mul);
    let (a, a_shape, b, b_shape) = if a_shape != out_shape && commutative && b_shape == out_shape {
        (b, b_shape, a, a_shape)
    } else {
        (a, a_shape, b, b_shape)
    };
    let pattern = (a_shape == out_shape)
        .then(|| broadcast_of(b_shape, out_shape))
        .flatten()
        .ok_or_else(|| {
            Error::shape(
                OP,
                format!(
                    "{op:?}: broadcast a {a_shape:?}, b {b_shape:?} -> out {out_shape:?} is not \
                     supported on CUDA (only same shape or b repeated along leading dims)"
                ),
            )
        })?;
    let n = checked_product(OP, out_shape)?;
    check_len(OP, "a", a, n)?;
    check_len(OP, "b", b, checked_product(OP, b_shape)?)?;
    check_len(OP, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let n_arg = as_i64(OP, "elements", n)?;
    let cfg = elementwise_config(dev, n);
    match pattern {
        Broadcast::Same => {
            let name = kernel_name::<T>(op_name(op));
            let f = dev.function(FILE, &name)?;
            let mut launch = dev.stream().launch_builder(&f);
            launch.arg(a).arg(b).arg(out).arg(&n_arg);
            driver_call(&name, || unsafe { launch.launch(cfg) })?;
        }
        Broadcast::Row { b_len } => {
            let name = kernel_name::<T>(&format!("{}_row", op_name(op)));
            let b_len_arg = as_i64(OP, "b elements", b_len)?;
            let f = dev.function(FILE, &name)?;
            let mut launch = dev.stream().launch_builder(&f);
            launch.arg(a).arg(b).arg(out).arg(&n_arg).arg(&b_len_arg);
            driver_call(&name, || unsafe { launch.launch(cfg) })?;
        }
    }
    Ok(())
}

/// `acc += x` (gradient accumulation).
pub fn add_assign<T: CudaFloat>(
    dev: &CudaDevice,
    acc: &mut CudaSlice<T>,
    x: &CudaSlice<T>,
) -> Result<()> {
    axpy(dev, 1.0, x, acc)
}

/// `y += alpha · x`.
pub fn axpy<T: CudaFloat>(
    dev: &CudaDevice,
    alpha: f32,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda axpy";
    let n = x.len();
    check_len(OP, "y", y, n)?;
    if n == 0 {
        return Ok(());
    }
    let n_arg = as_i64(OP, "elements", n)?;
    let name = kernel_name::<T>("axpy");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(y).arg(&n_arg).arg(&alpha);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

/// `out = alpha · x + beta`.
pub fn affine_scalar<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    alpha: f32,
    beta: f32,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda affine_scalar";
    let n = x.len();
    check_len(OP, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let n_arg = as_i64(OP, "elements", n)?;
    let name = kernel_name::<T>("affine");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(out).arg(&n_arg).arg(&alpha).arg(&beta);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

fn unary<T: CudaFloat>(
    dev: &CudaDevice,
    op: &'static str,
    kernel: &str,
    x: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    let n = x.len();
    check_len(op, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let n_arg = as_i64(op, "elements", n)?;
    let name = kernel_name::<T>(kernel);
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(out).arg(&n_arg);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

fn unary_backward<T: CudaFloat>(
    dev: &CudaDevice,
    op: &'static str,
    kernel: &str,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    let n = x.len();
    check_len(op, "dy", dy, n)?;
    check_len(op, "dx", dx, n)?;
    if n == 0 {
        return Ok(());
    }
    let n_arg = as_i64(op, "elements", n)?;
    let name = kernel_name::<T>(kernel);
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(dy).arg(dx).arg(&n_arg);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

/// GELU, tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    unary(dev, "cuda gelu_tanh", "gelu_tanh", x, out)
}

/// `dx = dy · gelu_tanh'(x)`.
pub fn gelu_tanh_backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    unary_backward(
        dev,
        "cuda gelu_tanh_backward",
        "gelu_tanh_backward",
        x,
        dy,
        dx,
    )
}

/// SiLU: `x·sigmoid(x)`.
pub fn silu<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    unary(dev, "cuda silu", "silu", x, out)
}

/// `dx = dy · silu'(x)`.
pub fn silu_backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    unary_backward(dev, "cuda silu_backward", "silu_backward", x, dy, dx)
}

#[cfg(test)]
mod tests {
    use super::{broadcast_of, Broadcast};

    #[test]
    fn broadcast_patterns() {
        assert_eq!(broadcast_of(&[2, 3, 4], &[2, 3, 4]), Some(Broadcast::Same));
        assert_eq!(
            broadcast_of(&[1, 1, 4], &[2, 3, 4]),
            Some(Broadcast::Row { b_len: 4 })
        );
        assert_eq!(
            broadcast_of(&[1, 3, 4], &[2, 3, 4]),
            Some(Broadcast::Row { b_len: 12 })
        );
        assert_eq!(
            broadcast_of(&[1, 1, 1], &[2, 3, 4]),
            Some(Broadcast::Row { b_len: 1 })
        );
        assert_eq!(broadcast_of(&[2, 1, 4], &[2, 3, 4]), None);
        assert_eq!(broadcast_of(&[1, 3, 1], &[2, 3, 4]), None);
    }
}
