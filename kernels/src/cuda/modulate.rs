//! Launchers of `kernels/cuda/modulate.cu`: the CUDA twins of [`crate::cpu::modulate`].

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::launch::{as_i64, check_len, elementwise_config};
use super::CudaDevice;
use crate::Result;

const FILE: &str = "modulate.cu";

fn dims_args(op: &'static str, batch: usize, tokens: usize, dim: usize) -> Result<[i64; 3]> {
    Ok([
        as_i64(op, "batch", batch)?,
        as_i64(op, "tokens", tokens)?,
        as_i64(op, "dim", dim)?,
    ])
}

/// `out[b, s, :] = x[b, s, :]·(1 + scale[b, :]) + shift[b, :]` for `x [batch, tokens, dim]`.
#[allow(clippy::too_many_arguments)]
pub fn modulate<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: &CudaSlice<T>,
    shift: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda modulate";
    let n = batch * tokens * dim;
    check_len(OP, "x", x, n)?;
    check_len(OP, "scale", scale, batch * dim)?;
    check_len(OP, "shift", shift, batch * dim)?;
    check_len(OP, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let [b, s, d] = dims_args(OP, batch, tokens, dim)?;
    let name = kernel_name::<T>("modulate");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch
        .arg(x)
        .arg(scale)
        .arg(shift)
        .arg(out)
        .arg(&b)
        .arg(&s)
        .arg(&d);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

/// Backward of [`modulate`]: overwrites `dx = dy·(1 + scale)`, `dscale[b] = Σ_s dy⊙x`,
/// `dshift[b] = Σ_s dy`.
#[allow(clippy::too_many_arguments)]
pub fn modulate_backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
    dscale: &mut CudaSlice<T>,
    dshift: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda modulate_backward";
    let n = batch * tokens * dim;
    check_len(OP, "x", x, n)?;
    check_len(OP, "dy", dy, n)?;
    check_len(OP, "dx", dx, n)?;
    for (name, buf) in [("scale", scale), ("dscale", &*dscale), ("dshift", &*dshift)] {
        check_len(OP, name, buf, batch * dim)?;
    }
    if batch * dim == 0 {
        return Ok(());
    }
    let [b, s, d] = dims_args(OP, batch, tokens, dim)?;
    if n > 0 {
        let name = kernel_name::<T>("modulate_backward_dx");
        let f = dev.function(FILE, &name)?;
        let mut launch = dev.stream().launch_builder(&f);
        launch.arg(dy).arg(scale).arg(dx).arg(&b).arg(&s).arg(&d);
        driver_call(&name, || unsafe {
            launch.launch(elementwise_config(dev, n))
        })?;
    }
    let name = kernel_name::<T>("modulate_backward_params");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch
        .arg(x)
        .arg(dy)
        .arg(dscale)
        .arg(dshift)
        .arg(&b)
        .arg(&s)
        .arg(&d);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, batch * dim))
    })?;
    Ok(())
}
