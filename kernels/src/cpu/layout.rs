//! Data movement: permute, slice, concat.

/// `out` = `x` (shape `shape`) with axes permuted: out axis `i` is input axis `perm[i]`.
pub fn permute(x: &[f32], shape: &[usize], perm: &[usize], out: &mut [f32]) -> crate::Result<()> {
    unimplemented!()
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
    unimplemented!()
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
    unimplemented!()
}

/// Concatenates tensors (data, shape) along `axis` into `out`. All other dims must agree.
pub fn concat_axis(inputs: &[(&[f32], &[usize])], axis: usize, out: &mut [f32]) -> crate::Result<()> {
    unimplemented!()
}

/// Gathers the given indices along `axis` (e.g. a sparse subset of frames) into `out`.
pub fn index_select(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    indices: &[usize],
    out: &mut [f32],
) -> crate::Result<()> {
    unimplemented!()
}

/// Adds `src` back into `dst` at `indices` along `axis`: the backward of [`index_select`].
pub fn index_add(
    src: &[f32],
    dst_shape: &[usize],
    axis: usize,
    indices: &[usize],
    dst: &mut [f32],
) -> crate::Result<()> {
    unimplemented!()
}
