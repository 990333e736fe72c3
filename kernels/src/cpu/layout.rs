//! Data movement: permute, slice, concat, gather/scatter along an axis.
//!
//! The axis ops view a tensor as `[outer, n, inner]` around the axis, so each is a loop of
//! contiguous block copies, parallel over `outer` (every task owns whole output blocks).

use crate::cpu::elementwise::par_chunks_mut;
use crate::ensure_shape;

/// Output elements per parallel task.
const TASK_ELEMS: usize = 1 << 14;

/// `(outer, n, inner)` of `shape` around `axis`.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Calls `f(first_block, blocks)` over `out` cut into blocks of `block` elements, a few blocks per
/// task, in parallel when `out` is large.
fn for_blocks(out: &mut [f32], block: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if block == 0 || out.is_empty() {
        return;
    }
    let per_task = (TASK_ELEMS / block).max(1);
    par_chunks_mut(out, per_task * block, |off, chunk| f(off / block, chunk));
}

/// `out` = `x` (shape `shape`) with axes permuted: out axis `i` is input axis `perm[i]`.
pub fn permute(x: &[f32], shape: &[usize], perm: &[usize], out: &mut [f32]) -> crate::Result<()> {
    const OP: &str = "permute";
    ensure_shape!(
        perm.len() == shape.len(),
        OP,
        "perm {perm:?} has a different rank than shape {shape:?}"
    );
    let mut seen = vec![false; shape.len()];
    for &p in perm {
        ensure_shape!(
            p < shape.len() && !seen[p],
            OP,
            "perm {perm:?} is not a permutation of 0..{}",
            shape.len()
        );
        seen[p] = true;
    }
    let n = numel(shape);
    ensure_shape!(
        x.len() == n && out.len() == n,
        OP,
        "x has {} and out {} elements, shape {shape:?} has {n}",
        x.len(),
        out.len()
    );
    if n == 0 {
        return Ok(());
    }
    let (in_shape, perm) = simplify_permutation(shape, perm);
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        out.copy_from_slice(x);
        return Ok(());
    }
    let rank = in_shape.len();
    let mut in_strides = vec![1; rank];
    for d in (0..rank - 1).rev() {
        in_strides[d] = in_strides[d + 1] * in_shape[d + 1];
    }
    // Out dims (size, stride in x).
    let dims: Vec<(usize, usize)> = perm.iter().map(|&p| (in_shape[p], in_strides[p])).collect();
    let (last, last_stride) = dims[rank - 1];
    let outer = &dims[..rank - 1];
    for_blocks(out, last, |first_row, rows| {
        let mut idx = vec![0; outer.len()];
        let mut rem = first_row;
        for d in (0..outer.len()).rev() {
            idx[d] = rem % outer[d].0;
            rem /= outer[d].0;
        }
        let mut base: usize = idx.iter().zip(outer).map(|(i, d)| i * d.1).sum();
        for row in rows.chunks_exact_mut(last) {
            if last_stride == 1 {
                row.copy_from_slice(&x[base..base + last]);
            } else {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = x[base + j * last_stride];
                }
            }
            // Advance the odometer over the outer out dims.
            for d in (0..outer.len()).rev() {
                idx[d] += 1;
                base += outer[d].1;
                if idx[d] < outer[d].0 {
                    break;
                }
                idx[d] = 0;
                base -= outer[d].0 * outer[d].1;
            }
        }
    });
    Ok(())
}

/// Drops size-1 dims and merges input dims that stay adjacent and in order under `perm`; returns
/// the reduced input shape and permutation (same result, fewer and longer loops).
fn simplify_permutation(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // Renumber the input dims that are not 1.
    let mut new_id = vec![usize::MAX; shape.len()];
    let mut kept = Vec::new();
    for (d, &n) in shape.iter().enumerate() {
        if n != 1 {
            new_id[d] = kept.len();
            kept.push(n);
        }
    }
    let perm: Vec<usize> = perm
        .iter()
        .filter(|&&p| shape[p] != 1)
        .map(|&p| new_id[p])
        .collect();
    if perm.is_empty() {
        return (vec![1], vec![0]);
    }
    // Group runs p, p+1, … in perm into one input dim.
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (first input dim, last input dim)
    for &p in &perm {
        match groups.last_mut() {
            Some(g) if g.1 + 1 == p => g.1 = p,
            _ => groups.push((p, p)),
        }
    }
    let mut by_input: Vec<usize> = (0..groups.len()).collect();
    by_input.sort_by_key(|&g| groups[g].0);
    let mut in_shape = vec![0; groups.len()];
    let mut group_rank = vec![0; groups.len()];
    for (rank, &g) in by_input.iter().enumerate() {
        let (a, b) = groups[g];
        in_shape[rank] = kept[a..=b].iter().product();
        group_rank[g] = rank;
    }
    (in_shape, group_rank)
}

/// Copies `x[.., start..start+len, ..]` along `axis` into `out`.
pub fn slice_axis(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
    out: &mut [f32],
) -> crate::Result<()> {
    let (_, n, inner) = check_slice("slice_axis", shape, axis, start, len, x.len(), out.len())?;
    for_blocks(out, len * inner, |o0, blocks| {
        for (o, dst) in blocks.chunks_exact_mut(len * inner).enumerate() {
            let src = ((o0 + o) * n + start) * inner;
            dst.copy_from_slice(&x[src..src + len * inner]);
        }
    });
    Ok(())
}

/// Adds `src` (the slice's shape) into `dst[.., start..start+len, ..]` (shape `dst_shape`): the
/// backward of [`slice_axis`].
pub fn slice_axis_add_back(
    src: &[f32],
    dst_shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
    dst: &mut [f32],
) -> crate::Result<()> {
    let (_, n, inner) = check_slice(
        "slice_axis_add_back",
        dst_shape,
        axis,
        start,
        len,
        dst.len(),
        src.len(),
    )?;
    for_blocks(dst, n * inner, |o0, blocks| {
        for (o, block) in blocks.chunks_exact_mut(n * inner).enumerate() {
            let s = &src[(o0 + o) * len * inner..(o0 + o + 1) * len * inner];
            for (d, &v) in block[start * inner..(start + len) * inner]
                .iter_mut()
                .zip(s)
            {
                *d += v;
            }
        }
    });
    Ok(())
}

/// Validates a slice of `full` elements (shape `shape`) into `part` elements; returns
/// `(outer, n, inner)`.
pub(crate) fn check_slice(
    op: &'static str,
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
    full: usize,
    part: usize,
) -> crate::Result<(usize, usize, usize)> {
    ensure_shape!(
        axis < shape.len(),
        op,
        "axis {axis} out of range for shape {shape:?}"
    );
    let (outer, n, inner) = split_at_axis(shape, axis);
    ensure_shape!(
        start.checked_add(len).is_some_and(|end| end <= n),
        op,
        "range {start}..{} exceeds dim {axis} of shape {shape:?}",
        start.saturating_add(len)
    );
    ensure_shape!(
        full == numel(shape) && part == outer * len * inner,
        op,
        "buffers of {full} and {part} elements do not match shape {shape:?} and its slice of \
         {len} along axis {axis} ({} elements)",
        outer * len * inner
    );
    Ok((outer, n, inner))
}

/// Validates a concatenation along `axis` of tensors given as (shape, element count) into `out_len`
/// elements; returns `(outer, total, inner)` with `total` the concatenated axis' length.
pub(crate) fn check_concat(
    op: &'static str,
    inputs: &[(&[usize], usize)],
    axis: usize,
    out_len: usize,
) -> crate::Result<(usize, usize, usize)> {
    let Some(&(first, _)) = inputs.first() else {
        return Err(crate::Error::shape(op, "no inputs"));
    };
    ensure_shape!(
        axis < first.len(),
        op,
        "axis {axis} out of range for shape {first:?}"
    );
    let mut total = 0;
    for (i, &(shape, len)) in inputs.iter().enumerate() {
        let agree = shape.len() == first.len()
            && shape
                .iter()
                .zip(first)
                .enumerate()
                .all(|(d, (a, b))| d == axis || a == b);
        ensure_shape!(
            agree,
            op,
            "input {i} has shape {shape:?}, which differs from input 0's {first:?} off axis {axis}"
        );
        ensure_shape!(
            len == numel(shape),
            op,
            "input {i} has {len} elements, its shape {shape:?} has {}",
            numel(shape)
        );
        total += shape[axis];
    }
    let (outer, _, inner) = split_at_axis(first, axis);
    ensure_shape!(
        out_len == outer * total * inner,
        op,
        "out has {out_len} elements, the concatenation has {}",
        outer * total * inner
    );
    Ok((outer, total, inner))
}

/// Concatenates tensors (data, shape) along `axis` into `out`. All other dims must agree.
pub fn concat_axis(
    inputs: &[(&[f32], &[usize])],
    axis: usize,
    out: &mut [f32],
) -> crate::Result<()> {
    let shapes: Vec<(&[usize], usize)> = inputs.iter().map(|&(d, s)| (s, d.len())).collect();
    let (_, total, inner) = check_concat("concat_axis", &shapes, axis, out.len())?;
    for_blocks(out, total * inner, |o0, blocks| {
        for (o, block) in blocks.chunks_exact_mut(total * inner).enumerate() {
            let mut at = 0;
            for &(data, shape) in inputs {
                let w = shape[axis] * inner;
                block[at..at + w].copy_from_slice(&data[(o0 + o) * w..(o0 + o + 1) * w]);
                at += w;
            }
        }
    });
    Ok(())
}

/// Validates an index list against dim `axis` of `shape`; returns `(outer, n, inner)`.
pub(crate) fn check_indices(
    op: &'static str,
    shape: &[usize],
    axis: usize,
    indices: &[usize],
    full: usize,
    part: usize,
) -> crate::Result<(usize, usize, usize)> {
    ensure_shape!(
        axis < shape.len(),
        op,
        "axis {axis} out of range for shape {shape:?}"
    );
    let (outer, n, inner) = split_at_axis(shape, axis);
    if let Some(bad) = indices.iter().position(|&i| i >= n) {
        return Err(crate::Error::shape(
            op,
            format!(
                "index {} (position {bad}) out of range for dim {axis} of shape {shape:?}",
                indices[bad]
            ),
        ));
    }
    ensure_shape!(
        full == numel(shape) && part == outer * indices.len() * inner,
        op,
        "buffers of {full} and {part} elements do not match shape {shape:?} and {} indices along \
         axis {axis}",
        indices.len()
    );
    Ok((outer, n, inner))
}

/// Gathers the given indices along `axis` (e.g. a sparse subset of frames) into `out`.
pub fn index_select(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    indices: &[usize],
    out: &mut [f32],
) -> crate::Result<()> {
    let (_, n, inner) = check_indices("index_select", shape, axis, indices, x.len(), out.len())?;
    let k = indices.len();
    for_blocks(out, k * inner, |o0, blocks| {
        for (o, block) in blocks.chunks_exact_mut(k * inner).enumerate() {
            let src = &x[(o0 + o) * n * inner..(o0 + o + 1) * n * inner];
            for (dst, &i) in block.chunks_exact_mut(inner).zip(indices) {
                dst.copy_from_slice(&src[i * inner..(i + 1) * inner]);
            }
        }
    });
    Ok(())
}

/// Adds `src` back into `dst` at `indices` along `axis`: the backward of [`index_select`].
pub fn index_add(
    src: &[f32],
    dst_shape: &[usize],
    axis: usize,
    indices: &[usize],
    dst: &mut [f32],
) -> crate::Result<()> {
    let (_, n, inner) = check_indices("index_add", dst_shape, axis, indices, dst.len(), src.len())?;
    let k = indices.len();
    // Repeated indices accumulate: within one outer block the adds run in order, and blocks are
    // disjoint.
    for_blocks(dst, n * inner, |o0, blocks| {
        for (o, block) in blocks.chunks_exact_mut(n * inner).enumerate() {
            let s = &src[(o0 + o) * k * inner..(o0 + o + 1) * k * inner];
            for (row, &i) in s.chunks_exact(inner).zip(indices) {
                for (d, &v) in block[i * inner..(i + 1) * inner].iter_mut().zip(row) {
                    *d += v;
                }
            }
        }
    });
    Ok(())
}
