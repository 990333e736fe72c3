//! Launchers of `kernels/cuda/unary.cu`: the CUDA twins of [`crate::cpu::unary`].

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::launch::{as_i64, check_len, elementwise_config};
use super::CudaDevice;
pub use crate::cpu::unary::UnaryOp;
use crate::Result;

const FILE: &str = "unary.cu";

/// The function's index in unary.cu's switch (the order of [`UnaryOp`]).
fn op_code(op: UnaryOp) -> i32 {
    match op {
        UnaryOp::Abs => 0,
        UnaryOp::Sqrt => 1,
        UnaryOp::Square => 2,
        UnaryOp::Exp => 3,
        UnaryOp::Log => 4,
    }
}

/// `out[i] = op(x[i])`.
pub fn unary<T: CudaFloat>(
    dev: &CudaDevice,
    op: UnaryOp,
    x: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda unary";
    let n = x.len();
    check_len(OP, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let name = kernel_name::<T>("unary");
    let f = dev.function(FILE, &name)?;
    let (n_arg, code) = (as_i64(OP, "n", n)?, op_code(op));
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(out).arg(&n_arg).arg(&code);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

/// `dx[i] = dy[i] · op'(x[i])`, given the forward output `y`.
pub fn unary_backward<T: CudaFloat>(
    dev: &CudaDevice,
    op: UnaryOp,
    x: &CudaSlice<T>,
    y: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda unary_backward";
    let n = x.len();
    check_len(OP, "y", y, n)?;
    check_len(OP, "dy", dy, n)?;
    check_len(OP, "dx", dx, n)?;
    if n == 0 {
        return Ok(());
    }
    let name = kernel_name::<T>("unary_backward");
    let f = dev.function(FILE, &name)?;
    let (n_arg, code) = (as_i64(OP, "n", n)?, op_code(op));
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(y).arg(dy).arg(dx).arg(&n_arg).arg(&code);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}
