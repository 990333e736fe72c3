//! Reductions.

/// Sums `x` (shape `shape`) over `axis`; `out` has `shape` with that axis removed.
pub fn sum_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) -> crate::Result<()> {
    unimplemented!()
}

/// Sums `x` (shape `shape`) down to `target` (same rank, each dim 1 or equal): the backward of
/// broadcasting. Overwrites `out` (len = product of `target`).
pub fn sum_to_shape(
    x: &[f32],
    shape: &[usize],
    target: &[usize],
    out: &mut [f32],
) -> crate::Result<()> {
    unimplemented!()
}

/// Sum of all elements, accumulated in f64.
pub fn sum_all(x: &[f32]) -> f64 {
    unimplemented!()
}
