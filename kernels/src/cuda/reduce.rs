//! Launchers of `kernels/cuda/reduce.cu`: the CUDA twins of [`crate::cpu::reduce`] (sums over
//! axes, f64 accumulation).

use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};

use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::launch::{as_i64, check_len, elementwise_config};
use super::CudaDevice;
use crate::{Error, Result};

const FILE: &str = "reduce.cu";
/// Dimensions of either kind the kernels walk (reduce.cu's REDUCE_MAX_RANK).
const MAX_RANK: usize = 8;
/// Below this many outputs, each output gets a block of threads (few, long sums).
const BLOCK_PER_OUTPUT_BELOW: usize = 4096;
const BLOCK_THREADS: u32 = 256;

/// Laid out like reduce.cu's `ReduceView` (passed by value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ReduceView {
    out_shape: [i64; MAX_RANK],
    out_stride: [i64; MAX_RANK],
    red_shape: [i64; MAX_RANK],
    red_stride: [i64; MAX_RANK],
    out_rank: i32,
    red_rank: i32,
}

// SAFETY: a repr(C) struct of integers, the layout of the kernel parameter.
unsafe impl DeviceRepr for ReduceView {}

/// (extent, input stride) of each dimension a kernel walks.
type Dims = Vec<(usize, usize)>;

/// The kept and the reduced dims, size-1 dims dropped and contiguous neighbours of the same kind
/// merged.
fn split_dims(shape: &[usize], target: &[usize]) -> (Dims, Dims) {
    let mut stride = 1;
    let mut dims: Vec<(usize, usize, bool)> = Vec::new();
    for (&n, &t) in shape.iter().zip(target).rev() {
        if n != 1 {
            dims.push((n, stride, t == n));
        }
        stride *= n;
    }
    dims.reverse();
    let (mut kept, mut reduced): (Dims, Dims) = (vec![], vec![]);
    let mut last_kind = None;
    for (n, s, keep) in dims {
        let list = if keep { &mut kept } else { &mut reduced };
        match list.last_mut() {
            // Merge only with the immediately preceding dim of the same kind.
            Some(last) if last_kind == Some(keep) && last.1 == n * s => *last = (last.0 * n, s),
            _ => list.push((n, s)),
        }
        last_kind = Some(keep);
    }
    (kept, reduced)
}

fn view(
    op: &'static str,
    kept: &[(usize, usize)],
    reduced: &[(usize, usize)],
) -> Result<ReduceView> {
    if kept.len() > MAX_RANK || reduced.len() > MAX_RANK {
        return Err(Error::shape(
            op,
            format!("more than {MAX_RANK} kept or reduced dimensions after merging"),
        ));
    }
    let mut v = ReduceView {
        out_rank: kept.len() as i32,
        red_rank: reduced.len() as i32,
        ..Default::default()
    };
    for (i, &(n, s)) in kept.iter().enumerate() {
        v.out_shape[i] = as_i64(op, "extent", n)?;
        v.out_stride[i] = as_i64(op, "stride", s)?;
    }
    for (i, &(n, s)) in reduced.iter().enumerate() {
        v.red_shape[i] = as_i64(op, "extent", n)?;
        v.red_stride[i] = as_i64(op, "stride", s)?;
    }
    Ok(v)
}

/// Sums `x` (shape `shape`) down to `target` (same rank, each dim 1 or equal): the backward of
/// broadcasting. Overwrites `out`.
pub fn sum_to_shape<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    shape: &[usize],
    target: &[usize],
    out: &mut CudaSlice<T>,
) -> Result<()> {
    sum_to_shape_impl(dev, "cuda sum_to_shape", x, shape, target, out)
}

/// Sums `x` (shape `shape`) over `axis`; `out` has `shape` with that axis removed.
pub fn sum_axis<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    shape: &[usize],
    axis: usize,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda sum_axis";
    if axis >= shape.len() {
        return Err(Error::shape(
            OP,
            format!("axis {axis} out of range for shape {shape:?}"),
        ));
    }
    let mut target = shape.to_vec();
    target[axis] = 1;
    sum_to_shape_impl(dev, OP, x, shape, &target, out)
}

fn sum_to_shape_impl<T: CudaFloat>(
    dev: &CudaDevice,
    op: &'static str,
    x: &CudaSlice<T>,
    shape: &[usize],
    target: &[usize],
    out: &mut CudaSlice<T>,
) -> Result<()> {
    let compatible =
        shape.len() == target.len() && shape.iter().zip(target).all(|(&n, &t)| t == n || t == 1);
    if !compatible {
        return Err(Error::shape(
            op,
            format!("target {target:?} is not shape {shape:?} with some dims set to 1"),
        ));
    }
    let (numel, out_n): (usize, usize) = (shape.iter().product(), target.iter().product());
    check_len(op, "x", x, numel)?;
    check_len(op, "out", out, out_n)?;
    if out_n == 0 {
        return Ok(());
    }
    let red_n = if numel == 0 { 0 } else { numel / out_n };
    let (kept, reduced) = split_dims(shape, target);
    let v = view(op, &kept, &reduced)?;
    let per_block = out_n < BLOCK_PER_OUTPUT_BELOW && red_n >= BLOCK_THREADS as usize;
    let name = kernel_name::<T>(if per_block {
        "sum_reduce_blocks"
    } else {
        "sum_reduce_threads"
    });
    let cfg = if per_block {
        LaunchConfig {
            grid_dim: (out_n as u32, 1, 1),
            block_dim: (BLOCK_THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    } else {
        elementwise_config(dev, out_n)
    };
    let f = dev.function(FILE, &name)?;
    let (out_arg, red_arg) = (as_i64(op, "outputs", out_n)?, as_i64(op, "reduced", red_n)?);
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(out).arg(&out_arg).arg(&red_arg).arg(&v);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(())
}

/// Σ x in f64 (waits for the GPU to read it back).
pub fn sum_all<T: CudaFloat>(dev: &CudaDevice, x: &CudaSlice<T>) -> Result<f64> {
    const OP: &str = "cuda sum_all";
    if x.is_empty() {
        return Ok(0.0);
    }
    let v = view(OP, &[], &[(x.len(), 1)])?;
    let mut total = dev.zeros::<f64>(1)?;
    let name = kernel_name::<T>("sum_all");
    let f = dev.function(FILE, &name)?;
    let n = as_i64(OP, "n", x.len())?;
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (BLOCK_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(&mut total).arg(&n).arg(&v);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(dev.download(&total)?[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// reduce.cu's offset arithmetic on the host.
    fn offset(mut i: usize, dims: &[(usize, usize)]) -> usize {
        let mut off = 0;
        for &(n, s) in dims.iter().rev() {
            off += (i % n) * s;
            i /= n;
        }
        off
    }

    #[test]
    fn split_dims_walk_sums_like_the_cpu() {
        let cases: [(&[usize], &[usize]); 5] = [
            (&[300, 24], &[1, 24]),
            (&[4, 7, 9], &[4, 1, 9]),
            (&[3, 4, 5, 6], &[1, 4, 1, 6]),
            (&[2, 1, 3, 4], &[1, 1, 3, 4]),
            (&[5, 3], &[5, 3]),
        ];
        for (shape, target) in cases {
            let n: usize = shape.iter().product();
            let x: Vec<f32> = (0..n).map(|v| (v % 97) as f32 * 0.25).collect();
            let out_n: usize = target.iter().product();
            let mut want = vec![0.0; out_n];
            crate::cpu::reduce::sum_to_shape(&x, shape, target, &mut want).unwrap();
            let (kept, reduced) = split_dims(shape, target);
            let got: Vec<f32> = (0..out_n)
                .map(|o| {
                    let base = offset(o, &kept);
                    (0..n / out_n)
                        .map(|r| x[base + offset(r, &reduced)] as f64)
                        .sum::<f64>() as f32
                })
                .collect();
            assert_eq!(got, want, "{shape:?} -> {target:?}");
        }
        // [300, 24] -> [1, 24]: one kept and one reduced dim.
        assert_eq!(
            split_dims(&[300, 24], &[1, 24]),
            (vec![(24, 1)], vec![(300, 24)])
        );
    }
}
