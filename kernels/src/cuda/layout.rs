//! Launchers of `kernels/cuda/layout.cu`: the CUDA twins of [`crate::cpu::layout`] (permute,
//! slice, concat, gather/scatter along an axis), and the strided copy that patchify uses too.

use cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};

use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::launch::{as_i64, check_len, elementwise_config};
use super::CudaDevice;
use crate::cpu::layout::{check_concat, check_indices, check_slice};
use crate::{Error, Result};

pub(crate) const FILE: &str = "layout.cu";
/// Dimensions the strided kernels walk (layout.cu's LAYOUT_MAX_RANK).
pub(crate) const MAX_RANK: usize = 8;

/// One strided walk, laid out like layout.cu's `StridedView` (passed by value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct StridedView {
    shape: [i64; MAX_RANK],
    src_stride: [i64; MAX_RANK],
    dst_stride: [i64; MAX_RANK],
    src_offset: i64,
    dst_offset: i64,
    rank: i32,
}

// SAFETY: a repr(C) struct of integers, the layout of the kernel parameter.
unsafe impl DeviceRepr for StridedView {}

/// An axis of a strided walk: its extent and its stride in the source and the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalkDim {
    pub len: usize,
    pub src: usize,
    pub dst: usize,
}

/// Drops length-1 axes and merges neighbours that are contiguous in both operands, so that the
/// kernel's index arithmetic runs over as few dimensions as possible.
fn merge_dims(dims: &[WalkDim]) -> Vec<WalkDim> {
    let mut merged: Vec<WalkDim> = Vec::with_capacity(dims.len());
    for &d in dims.iter().filter(|d| d.len != 1) {
        match merged.last_mut() {
            Some(last) if last.src == d.len * d.src && last.dst == d.len * d.dst => {
                *last = WalkDim {
                    len: last.len * d.len,
                    src: d.src,
                    dst: d.dst,
                };
            }
            _ => merged.push(d),
        }
    }
    merged
}

/// `dst[dst_offset + t·dst_stride] (= or +=) src[src_offset + t·src_stride]` for every index
/// tuple `t` over `dims` (outermost first). The caller guarantees every address is inside its
/// buffer and that no two tuples share a destination.
#[allow(clippy::too_many_arguments)]
pub(crate) fn strided_copy<T: CudaFloat>(
    dev: &CudaDevice,
    op: &'static str,
    src: &CudaSlice<T>,
    src_offset: usize,
    dst: &mut CudaSlice<T>,
    dst_offset: usize,
    dims: &[WalkDim],
    accumulate: bool,
) -> Result<()> {
    let n: usize = dims.iter().map(|d| d.len).product();
    if n == 0 {
        return Ok(());
    }
    let dims = merge_dims(dims);
    if dims.len() > MAX_RANK {
        return Err(Error::shape(
            op,
            format!(
                "{} dimensions after merging; the CUDA kernels walk at most {MAX_RANK}",
                dims.len()
            ),
        ));
    }
    let mut view = StridedView {
        rank: dims.len() as i32,
        src_offset: as_i64(op, "source offset", src_offset)?,
        dst_offset: as_i64(op, "destination offset", dst_offset)?,
        ..Default::default()
    };
    for (i, d) in dims.iter().enumerate() {
        view.shape[i] = as_i64(op, "extent", d.len)?;
        view.src_stride[i] = as_i64(op, "stride", d.src)?;
        view.dst_stride[i] = as_i64(op, "stride", d.dst)?;
    }
    let name = kernel_name::<T>(if accumulate {
        "strided_add"
    } else {
        "strided_copy"
    });
    let f = dev.function(FILE, &name)?;
    let n_arg = as_i64(op, "n", n)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(src).arg(dst).arg(&n_arg).arg(&view);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

/// Row-major strides of `shape`.
pub(crate) fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// `out` = `x` (shape `shape`) with axes permuted: out axis `i` is input axis `perm[i]`.
pub fn permute<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    shape: &[usize],
    perm: &[usize],
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda permute";
    let valid = perm.len() == shape.len() && {
        let mut seen = vec![false; shape.len()];
        perm.iter()
            .all(|&p| p < shape.len() && !std::mem::replace(&mut seen[p], true))
    };
    if !valid {
        return Err(Error::shape(
            OP,
            format!("perm {perm:?} is not a permutation of the axes of shape {shape:?}"),
        ));
    }
    let n: usize = shape.iter().product();
    check_len(OP, "x", x, n)?;
    check_len(OP, "out", out, n)?;
    let in_strides = strides_of(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let out_strides = strides_of(&out_shape);
    let dims: Vec<WalkDim> = perm
        .iter()
        .enumerate()
        .map(|(i, &p)| WalkDim {
            len: shape[p],
            src: in_strides[p],
            dst: out_strides[i],
        })
        .collect();
    strided_copy(dev, OP, x, 0, out, 0, &dims, false)
}

/// `(outer, len, inner)` walk of a slice: strides `(n·inner, inner, 1)` on the full side,
/// contiguous on the sliced side.
fn slice_dims(outer: usize, n: usize, len: usize, inner: usize, full_is_src: bool) -> [WalkDim; 3] {
    let full = [n * inner, inner, 1];
    let part = [len * inner, inner, 1];
    let (src, dst) = if full_is_src {
        (full, part)
    } else {
        (part, full)
    };
    let lens = [outer, len, inner];
    std::array::from_fn(|i| WalkDim {
        len: lens[i],
        src: src[i],
        dst: dst[i],
    })
}

/// Copies `x[.., start..start+len, ..]` along `axis` into `out`.
#[allow(clippy::too_many_arguments)]
pub fn slice_axis<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda slice_axis";
    let (outer, n, inner) = check_slice(OP, shape, axis, start, len, x.len(), out.len())?;
    let dims = slice_dims(outer, n, len, inner, true);
    strided_copy(dev, OP, x, start * inner, out, 0, &dims, false)
}

/// Adds `src` (the slice's shape) into `dst[.., start..start+len, ..]` (shape `dst_shape`).
#[allow(clippy::too_many_arguments)]
pub fn slice_axis_add_back<T: CudaFloat>(
    dev: &CudaDevice,
    src: &CudaSlice<T>,
    dst_shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
    dst: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda slice_axis_add_back";
    let (outer, n, inner) = check_slice(OP, dst_shape, axis, start, len, dst.len(), src.len())?;
    let dims = slice_dims(outer, n, len, inner, false);
    strided_copy(dev, OP, src, 0, dst, start * inner, &dims, true)
}

/// Concatenates tensors (data, shape) along `axis` into `out`; all other dims must agree. One
/// strided copy per input.
pub fn concat_axis<T: CudaFloat>(
    dev: &CudaDevice,
    inputs: &[(&CudaSlice<T>, &[usize])],
    axis: usize,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda concat_axis";
    let shapes: Vec<(&[usize], usize)> = inputs.iter().map(|&(d, s)| (s, d.len())).collect();
    let (outer, total, inner) = check_concat(OP, &shapes, axis, out.len())?;
    let mut at = 0;
    for &(data, shape) in inputs {
        let len = shape[axis];
        let dims = slice_dims(outer, total, len, inner, false);
        strided_copy(dev, OP, data, 0, out, at * inner, &dims, false)?;
        at += len;
    }
    Ok(())
}

/// Uploads an index list as u32 for the index kernels.
fn upload_indices(dev: &CudaDevice, op: &'static str, indices: &[usize]) -> Result<CudaSlice<u32>> {
    let as_u32: Vec<u32> = indices
        .iter()
        .map(|&i| u32::try_from(i))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::shape(op, "an index exceeds the kernels' 32-bit limit"))?;
    dev.upload(&as_u32)
}

/// `out[o, j, i] = x[o, idx[j], i]` / `dst[o, idx[j], i] += src[o, j, i]` over
/// `[outer, n, inner]` with `k` indices; the caller validated everything.
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_index<T: CudaFloat>(
    dev: &CudaDevice,
    op: &'static str,
    kernel: &str,
    src: &CudaSlice<T>,
    idx: &CudaSlice<u32>,
    dst: &mut CudaSlice<T>,
    (outer, n, k, inner): (usize, usize, usize, usize),
) -> Result<()> {
    let threads = if kernel == "index_add" {
        outer * n * inner
    } else {
        outer * k * inner
    };
    if threads == 0 || k == 0 {
        return Ok(());
    }
    let name = kernel_name::<T>(kernel);
    let f = dev.function(FILE, &name)?;
    let args = [
        as_i64(op, "outer", outer)?,
        as_i64(op, "n", n)?,
        as_i64(op, "indices", k)?,
        as_i64(op, "inner", inner)?,
    ];
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(src).arg(idx).arg(dst);
    for a in &args {
        launch.arg(a);
    }
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, threads))
    })?;
    Ok(())
}

/// Gathers the given indices along `axis` into `out`.
pub fn index_select<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    shape: &[usize],
    axis: usize,
    indices: &[usize],
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda index_select";
    let (outer, n, inner) = check_indices(OP, shape, axis, indices, x.len(), out.len())?;
    let idx = upload_indices(dev, OP, indices)?;
    let dims = (outer, n, indices.len(), inner);
    launch_index(dev, OP, "index_select", x, &idx, out, dims)
}

/// Adds `src` back into `dst` at `indices` along `axis` (repeated indices accumulate).
pub fn index_add<T: CudaFloat>(
    dev: &CudaDevice,
    src: &CudaSlice<T>,
    dst_shape: &[usize],
    axis: usize,
    indices: &[usize],
    dst: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda index_add";
    let (outer, n, inner) = check_indices(OP, dst_shape, axis, indices, dst.len(), src.len())?;
    let idx = upload_indices(dev, OP, indices)?;
    let dims = (outer, n, indices.len(), inner);
    launch_index(dev, OP, "index_add", src, &idx, dst, dims)
}

/// What `strided_copy` makes the kernel do, on the host: the walk's index arithmetic checked
/// without a GPU.
#[cfg(test)]
pub(crate) fn simulate_walk(
    src: &[f32],
    src_offset: usize,
    dst: &mut [f32],
    dst_offset: usize,
    dims: &[WalkDim],
) {
    let dims = merge_dims(dims);
    let n: usize = dims.iter().map(|d| d.len).product();
    for i in 0..n {
        let (mut rest, mut s, mut d) = (i, src_offset, dst_offset);
        for dim in dims.iter().rev() {
            let idx = rest % dim.len;
            rest /= dim.len;
            s += idx * dim.src;
            d += idx * dim.dst;
        }
        dst[d] = src[s];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::layout::split_at_axis;

    #[test]
    fn merged_walks_permute_and_slice_like_the_cpu() {
        let shape = [3usize, 4, 5, 2];
        let x: Vec<f32> = (0..120).map(|v| v as f32).collect();
        let perm = [2usize, 0, 3, 1];
        let mut want = vec![0.0; 120];
        crate::cpu::layout::permute(&x, &shape, &perm, &mut want).unwrap();
        let (ins, out_shape) = (strides_of(&shape), perm.map(|p| shape[p]));
        let outs = strides_of(&out_shape);
        let dims: Vec<WalkDim> = (0..4)
            .map(|i| WalkDim {
                len: shape[perm[i]],
                src: ins[perm[i]],
                dst: outs[i],
            })
            .collect();
        let mut got = vec![0.0; 120];
        simulate_walk(&x, 0, &mut got, 0, &dims);
        assert_eq!(got, want);

        let (outer, n, inner) = split_at_axis(&shape, 2);
        let mut want = vec![0.0; outer * 3 * inner];
        crate::cpu::layout::slice_axis(&x, &shape, 2, 1, 3, &mut want).unwrap();
        let mut got = vec![0.0; want.len()];
        let dims = slice_dims(outer, n, 3, inner, true);
        simulate_walk(&x, inner, &mut got, 0, &dims);
        assert_eq!(got, want);
        // Slicing the last axis of a row-major tensor merges nothing; a full slice merges all.
        assert_eq!(merge_dims(&slice_dims(6, 5, 5, 1, true)).len(), 1);
    }
}
