//! Launchers of `kernels/cuda/softmax.cu`: the CUDA twins of [`crate::cpu::softmax`].

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::launch::{as_i32, check_len, checked_product, row_config};
use super::CudaDevice;
use crate::Result;

const FILE: &str = "softmax.cu";

/// Numerically stable softmax of each row of the `rows × cols` matrix `x`.
pub fn softmax<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    rows: usize,
    cols: usize,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda softmax";
    let n = checked_product(OP, &[rows, cols])?;
    check_len(OP, "x", x, n)?;
    check_len(OP, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let cols_arg = as_i32(OP, "cols", cols)?;
    let cfg = row_config(OP, rows, cols)?;
    let name = kernel_name::<T>("softmax");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(out).arg(&cols_arg);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(())
}

/// `dx = y ⊙ (dy − Σ dy⊙y)` per row, given the forward output `y`.
pub fn softmax_backward<T: CudaFloat>(
    dev: &CudaDevice,
    y: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    rows: usize,
    cols: usize,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda softmax_backward";
    let n = checked_product(OP, &[rows, cols])?;
    check_len(OP, "y", y, n)?;
    check_len(OP, "dy", dy, n)?;
    check_len(OP, "dx", dx, n)?;
    if n == 0 {
        return Ok(());
    }
    let cols_arg = as_i32(OP, "cols", cols)?;
    let cfg = row_config(OP, rows, cols)?;
    let name = kernel_name::<T>("softmax_backward");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(y).arg(dy).arg(dx).arg(&cols_arg);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(())
}
