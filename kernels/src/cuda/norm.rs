//! Launchers of `kernels/cuda/norm.cu`: the CUDA twins of [`crate::cpu::norm`]. Activations,
//! weights and their gradients have the buffer type `T`; the saved row statistics (`mean`,
//! `rstd`) are always f32.

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::launch::{as_i32, check_len, checked_product, row_config, PARAM_GRAD_BLOCK};
use super::CudaDevice;
use crate::Result;

const FILE: &str = "norm.cu";
/// Passed for an absent optional buffer; the kernels test the pointer against null.
const NULL_POINTER: u64 = 0;

fn check_optional<T>(
    op: &'static str,
    name: &str,
    buf: Option<&CudaSlice<T>>,
    len: usize,
) -> Result<()> {
    buf.map_or(Ok(()), |b| check_len(op, name, b, len))
}

/// Column-sum kernels: one block per 32 columns.
fn param_grad_config(cols: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (cols.div_ceil(PARAM_GRAD_BLOCK.0 as usize) as u32, 1, 1),
        block_dim: PARAM_GRAD_BLOCK,
        shared_mem_bytes: 0,
    }
}

/// `out = (x − μ)·rstd · w + b` per row of the `rows × cols` matrix `x`; saves per-row `mean` and
/// `rstd = 1/√(σ² + eps)` (biased variance) for backward.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    rows: usize,
    cols: usize,
    eps: f32,
    weight: Option<&CudaSlice<T>>,
    bias: Option<&CudaSlice<T>>,
    out: &mut CudaSlice<T>,
    mean: &mut CudaSlice<f32>,
    rstd: &mut CudaSlice<f32>,
) -> Result<()> {
    const OP: &str = "cuda layer_norm";
    let n = checked_product(OP, &[rows, cols])?;
    check_len(OP, "x", x, n)?;
    check_optional(OP, "weight", weight, cols)?;
    check_optional(OP, "bias", bias, cols)?;
    check_len(OP, "out", out, n)?;
    check_len(OP, "mean", mean, rows)?;
    check_len(OP, "rstd", rstd, rows)?;
    if rows == 0 {
        return Ok(());
    }
    let cols_arg = as_i32(OP, "cols", cols)?;
    let cfg = row_config(OP, rows, cols)?;
    let name = kernel_name::<T>("layer_norm");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x);
    match weight {
        Some(w) => launch.arg(w),
        None => launch.arg(&NULL_POINTER),
    };
    match bias {
        Some(b) => launch.arg(b),
        None => launch.arg(&NULL_POINTER),
    };
    launch.arg(out).arg(mean).arg(rstd).arg(&cols_arg).arg(&eps);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(())
}

/// Backward of [`layer_norm`]: overwrites `dx`; overwrites `dweight`/`dbias` when given.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    rows: usize,
    cols: usize,
    weight: Option<&CudaSlice<T>>,
    mean: &CudaSlice<f32>,
    rstd: &CudaSlice<f32>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
    dweight: Option<&mut CudaSlice<T>>,
    dbias: Option<&mut CudaSlice<T>>,
) -> Result<()> {
    const OP: &str = "cuda layer_norm_backward";
    let n = checked_product(OP, &[rows, cols])?;
    check_len(OP, "x", x, n)?;
    check_optional(OP, "weight", weight, cols)?;
    check_len(OP, "mean", mean, rows)?;
    check_len(OP, "rstd", rstd, rows)?;
    check_len(OP, "dy", dy, n)?;
    check_len(OP, "dx", dx, n)?;
    check_optional(OP, "dweight", dweight.as_deref(), cols)?;
    check_optional(OP, "dbias", dbias.as_deref(), cols)?;
    let cols_arg = as_i32(OP, "cols", cols)?;
    let rows_arg = as_i32(OP, "rows", rows)?;

    if rows > 0 && cols > 0 {
        let cfg = row_config(OP, rows, cols)?;
        let name = kernel_name::<T>("layer_norm_backward_dx");
        let f = dev.function(FILE, &name)?;
        let mut launch = dev.stream().launch_builder(&f);
        launch.arg(x);
        match weight {
            Some(w) => launch.arg(w),
            None => launch.arg(&NULL_POINTER),
        };
        launch.arg(mean).arg(rstd).arg(dy).arg(dx).arg(&cols_arg);
        driver_call(&name, || unsafe { launch.launch(cfg) })?;
    }

    if (dweight.is_some() || dbias.is_some()) && cols > 0 {
        // With rows == 0 the kernel still runs and writes zeros, as the sums are empty.
        let name = kernel_name::<T>("layer_norm_param_grad");
        let f = dev.function(FILE, &name)?;
        let mut launch = dev.stream().launch_builder(&f);
        launch.arg(x).arg(mean).arg(rstd).arg(dy);
        match dweight {
            Some(dw) => launch.arg(dw),
            None => launch.arg(&NULL_POINTER),
        };
        match dbias {
            Some(db) => launch.arg(db),
            None => launch.arg(&NULL_POINTER),
        };
        launch.arg(&rows_arg).arg(&cols_arg);
        driver_call(&name, || unsafe { launch.launch(param_grad_config(cols)) })?;
    }
    Ok(())
}

/// `out = x · rstd · w` per row, `rstd = 1/√(mean(x²) + eps)` saved per row.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    rows: usize,
    cols: usize,
    eps: f32,
    weight: Option<&CudaSlice<T>>,
    out: &mut CudaSlice<T>,
    rstd: &mut CudaSlice<f32>,
) -> Result<()> {
    const OP: &str = "cuda rms_norm";
    let n = checked_product(OP, &[rows, cols])?;
    check_len(OP, "x", x, n)?;
    check_optional(OP, "weight", weight, cols)?;
    check_len(OP, "out", out, n)?;
    check_len(OP, "rstd", rstd, rows)?;
    if rows == 0 {
        return Ok(());
    }
    let cols_arg = as_i32(OP, "cols", cols)?;
    let cfg = row_config(OP, rows, cols)?;
    let name = kernel_name::<T>("rms_norm");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x);
    match weight {
        Some(w) => launch.arg(w),
        None => launch.arg(&NULL_POINTER),
    };
    launch.arg(out).arg(rstd).arg(&cols_arg).arg(&eps);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(())
}

/// Backward of [`rms_norm`]: overwrites `dx`; overwrites `dweight` when given.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    rows: usize,
    cols: usize,
    weight: Option<&CudaSlice<T>>,
    rstd: &CudaSlice<f32>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
    dweight: Option<&mut CudaSlice<T>>,
) -> Result<()> {
    const OP: &str = "cuda rms_norm_backward";
    let n = checked_product(OP, &[rows, cols])?;
    check_len(OP, "x", x, n)?;
    check_optional(OP, "weight", weight, cols)?;
    check_len(OP, "rstd", rstd, rows)?;
    check_len(OP, "dy", dy, n)?;
    check_len(OP, "dx", dx, n)?;
    check_optional(OP, "dweight", dweight.as_deref(), cols)?;
    let cols_arg = as_i32(OP, "cols", cols)?;
    let rows_arg = as_i32(OP, "rows", rows)?;

    if rows > 0 && cols > 0 {
        let cfg = row_config(OP, rows, cols)?;
        let name = kernel_name::<T>("rms_norm_backward_dx");
        let f = dev.function(FILE, &name)?;
        let mut launch = dev.stream().launch_builder(&f);
        launch.arg(x);
        match weight {
            Some(w) => launch.arg(w),
            None => launch.arg(&NULL_POINTER),
        };
        launch.arg(rstd).arg(dy).arg(dx).arg(&cols_arg);
        driver_call(&name, || unsafe { launch.launch(cfg) })?;
    }

    if let (Some(dw), true) = (dweight, cols > 0) {
        let name = kernel_name::<T>("rms_norm_param_grad");
        let f = dev.function(FILE, &name)?;
        let mut launch = dev.stream().launch_builder(&f);
        launch
            .arg(x)
            .arg(rstd)
            .arg(dy)
            .arg(dw)
            .arg(&rows_arg)
            .arg(&cols_arg);
        driver_call(&name, || unsafe { launch.launch(param_grad_config(cols)) })?;
    }
    Ok(())
}
