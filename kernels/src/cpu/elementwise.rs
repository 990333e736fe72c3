//! Elementwise kernels: binary ops with numpy-style broadcasting, scalar ops, activations.

/// A binary elementwise operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// `out = a op b` with broadcasting. `a_shape`, `b_shape` and `out_shape` have the same rank; each
/// dim of `a`/`b` is 1 or equal to `out_shape`'s. Errors name the op and the shapes.
pub fn binary(
    op: BinaryOp,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    out_shape: &[usize],
) -> crate::Result<()> {
    unimplemented!()
}

/// `acc += x` (gradient accumulation).
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    unimplemented!()
}

/// `out = alpha · x + beta`.
pub fn affine_scalar(x: &[f32], alpha: f32, beta: f32, out: &mut [f32]) {
    unimplemented!()
}

/// `y += alpha · x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    unimplemented!()
}

/// GELU, tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh(x: &[f32], out: &mut [f32]) {
    unimplemented!()
}

/// `dx = dy · gelu_tanh'(x)`.
pub fn gelu_tanh_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    unimplemented!()
}

/// SiLU: `x·sigmoid(x)`.
pub fn silu(x: &[f32], out: &mut [f32]) {
    unimplemented!()
}

/// `dx = dy · silu'(x)`.
pub fn silu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    unimplemented!()
}
