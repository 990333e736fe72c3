//! Row softmax over the last dim of a `rows × cols` matrix.
//!
//! Buffer sizes are asserted, not `Result`-checked: the tape sizes these buffers itself, so a
//! mismatch is a bug in fym. A row that is all −∞ gives NaN, as in PyTorch.

use crate::cpu::elementwise::{exp_f32, par_chunks_mut, simd_dispatch};
use crate::cpu::reduce::{dot_f32, sum_f32};

/// Rows per parallel task: ~16k elements.
fn rows_per_task(cols: usize) -> usize {
    ((1 << 14) / cols.max(1)).max(1)
}

#[inline(always)]
fn max_f32(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let mut m = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for i in 0..16 {
            acc[i] = acc[i].max(c[i]);
        }
    }
    for a in acc {
        m = m.max(a);
    }
    m
}

simd_dispatch! {
    fn softmax_rows(x: &[f32], cols: usize, out: &mut [f32]) {
        for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
            let m = max_f32(xr);
            for (o, &v) in or.iter_mut().zip(xr) {
                *o = exp_f32(v - m);
            }
            let inv = 1.0 / sum_f32(or);
            for o in or.iter_mut() {
                *o *= inv;
            }
        }
    }
}

simd_dispatch! {
    fn softmax_backward_rows(y: &[f32], dy: &[f32], cols: usize, dx: &mut [f32]) {
        let rows = y.chunks_exact(cols).zip(dy.chunks_exact(cols));
        for ((yr, gr), dr) in rows.zip(dx.chunks_exact_mut(cols)) {
            let dot = dot_f32(yr, gr);
            for ((d, &y), &g) in dr.iter_mut().zip(yr).zip(gr) {
                *d = y * (g - dot);
            }
        }
    }
}

fn check_len(op: &str, name: &str, got: usize, want: usize) {
    assert_eq!(
        got, want,
        "{op}: {name} has {got} elements, expected {want}"
    );
}

/// Numerically stable softmax of each row.
pub fn softmax(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    check_len("softmax", "x", x.len(), rows * cols);
    check_len("softmax", "out", out.len(), rows * cols);
    if cols == 0 {
        return;
    }
    par_chunks_mut(out, rows_per_task(cols) * cols, |off, o| {
        softmax_rows(&x[off..off + o.len()], cols, o)
    });
}

/// `dx = y ⊙ (dy − Σ dy⊙y)` per row, given the forward output `y`.
pub fn softmax_backward(y: &[f32], dy: &[f32], rows: usize, cols: usize, dx: &mut [f32]) {
    const OP: &str = "softmax_backward";
    check_len(OP, "y", y.len(), rows * cols);
    check_len(OP, "dy", dy.len(), rows * cols);
    check_len(OP, "dx", dx.len(), rows * cols);
    if cols == 0 {
        return;
    }
    par_chunks_mut(dx, rows_per_task(cols) * cols, |off, d| {
        let r = off..off + d.len();
        softmax_backward_rows(&y[r.clone()], &dy[r], cols, d)
    });
}
