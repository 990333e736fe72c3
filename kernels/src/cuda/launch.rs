//! Launch geometry and argument checks shared by the CUDA launchers.

use cudarc::driver::{CudaSlice, LaunchConfig};

use super::CudaDevice;
use crate::{Error, Result};

/// Threads per block of the elementwise kernels: a multiple of the warp, enough blocks per SM to
/// hide memory latency.
const ELEMENTWISE_THREADS: u32 = 256;
/// Blocks per SM launched for elementwise kernels; their grid-stride loops cover the rest.
const ELEMENTWISE_BLOCKS_PER_SM: u32 = 32;
/// Row kernels (softmax, norms) give each thread about this many elements of the row.
const ROW_ELEMENTS_PER_THREAD: usize = 4;
const MAX_THREADS_PER_BLOCK: usize = 1024;
const WARP: usize = 32;
/// The parameter-gradient kernels of norm.cu use 32 columns x 16 row lanes per block.
pub(crate) const PARAM_GRAD_BLOCK: (u32, u32, u32) = (32, 16, 1);

/// Grid-stride launch over `n` elements.
pub(crate) fn elementwise_config(dev: &CudaDevice, n: usize) -> LaunchConfig {
    let blocks_needed = n.div_ceil(ELEMENTWISE_THREADS as usize).max(1);
    let cap = (dev.multiprocessor_count() * ELEMENTWISE_BLOCKS_PER_SM).max(1) as usize;
    LaunchConfig {
        grid_dim: (blocks_needed.min(cap) as u32, 1, 1),
        block_dim: (ELEMENTWISE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block per row; the block size grows with `cols` (a multiple of 32, at most 1024).
pub(crate) fn row_config(op: &'static str, rows: usize, cols: usize) -> Result<LaunchConfig> {
    // gridDim.x may reach 2^31 - 1.
    if rows > i32::MAX as usize {
        return Err(Error::shape(
            op,
            format!("{rows} rows exceed the CUDA grid limit of 2^31-1"),
        ));
    }
    let threads = cols
        .div_ceil(ROW_ELEMENTS_PER_THREAD)
        .next_multiple_of(WARP)
        .clamp(WARP, MAX_THREADS_PER_BLOCK);
    Ok(LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads as u32, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// `value` as a kernel's `int` argument.
pub(crate) fn as_i32(op: &'static str, what: &str, value: usize) -> Result<i32> {
    i32::try_from(value).map_err(|_| {
        Error::shape(
            op,
            format!("{what} = {value} exceeds the kernel's 32-bit limit"),
        )
    })
}

/// `value` as a kernel's `long long` argument.
pub(crate) fn as_i64(op: &'static str, what: &str, value: usize) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::shape(
            op,
            format!("{what} = {value} exceeds the kernel's 64-bit limit"),
        )
    })
}

/// Errors unless the device buffer `name` has exactly `expected` elements.
pub(crate) fn check_len<T>(
    op: &'static str,
    name: &str,
    buf: &CudaSlice<T>,
    expected: usize,
) -> Result<()> {
    if buf.len() == expected {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("{name} has {} elements, expected {expected}", buf.len()),
        ))
    }
}

/// The product of `dims`, or a shape error on overflow.
pub(crate) fn checked_product(op: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::shape(op, format!("element count of {dims:?} overflows usize")))
}
