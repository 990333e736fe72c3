//! Row softmax over the last dim of a `rows × cols` matrix.

/// Numerically stable softmax of each row.
pub fn softmax(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    unimplemented!()
}

/// `dx = y ⊙ (dy − Σ dy⊙y)` per row, given the forward output `y`.
pub fn softmax_backward(y: &[f32], dy: &[f32], rows: usize, cols: usize, dx: &mut [f32]) {
    unimplemented!()
}
