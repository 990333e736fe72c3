//! 3D rotary position embedding over a (frame, row, column) token grid, exactly as Wan: head_dim
//! split t/h/w = D − 4⌊D/6⌋ / 2⌊D/6⌋ / 2⌊D/6⌋, per-axis frequencies θ^(−2i/d_axis), interleaved
//! pairs (2k, 2k+1). Positions are real numbers so a sparse subset of frames can keep its place
//! on the full timeline (adaptive RoPE).

use crate::cpu::elementwise::{par_chunks_mut, simd_dispatch};
use crate::ensure_shape;

/// (t, h, w) widths of the head-dim split.
pub fn rope_split(head_dim: usize) -> (usize, usize, usize) {
    let hw = 2 * (head_dim / 6);
    (head_dim - 2 * hw, hw, hw)
}

/// Per-token, per-pair rotation: `cos`/`sin` are `[seq, head_dim/2]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeTable {
    pub seq: usize,
    pub head_dim: usize,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

/// Builds the table for tokens at `positions` (t, h, w). Angles and cos/sin are computed in f64 and
/// rounded to f32 (as diffusers does). Errors if head_dim is odd or a split part is odd.
pub fn rope_table(positions: &[[f64; 3]], head_dim: usize, theta: f64) -> crate::Result<RopeTable> {
    const OP: &str = "rope_table";
    ensure_shape!(
        head_dim > 0 && head_dim.is_multiple_of(2),
        OP,
        "head_dim {head_dim} must be even and positive"
    );
    let (dt, dh, dw) = rope_split(head_dim);
    ensure_shape!(
        dt.is_multiple_of(2) && dh.is_multiple_of(2) && dw.is_multiple_of(2),
        OP,
        "head_dim {head_dim} splits into t/h/w = {dt}/{dh}/{dw}; every part must be even"
    );
    ensure_shape!(
        theta.is_finite() && theta > 0.0,
        OP,
        "theta {theta} must be finite and > 0"
    );
    if let Some(i) = positions
        .iter()
        .position(|p| p.iter().any(|v| !v.is_finite()))
    {
        return Err(crate::Error::shape(
            OP,
            format!("position {i} {:?} is not finite", positions[i]),
        ));
    }
    // (axis, ω) for every pair, in head-dim order: the t pairs, then h, then w.
    let freqs = |d: usize| (0..d / 2).map(move |i| 1.0 / theta.powf((2 * i) as f64 / d as f64));
    let pairs: Vec<(usize, f64)> = freqs(dt)
        .map(|w| (0, w))
        .chain(freqs(dh).map(|w| (1, w)))
        .chain(freqs(dw).map(|w| (2, w)))
        .collect();
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(positions.len() * half);
    let mut sin = Vec::with_capacity(positions.len() * half);
    for p in positions {
        for &(axis, w) in &pairs {
            let angle = p[axis] * w;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    Ok(RopeTable {
        seq: positions.len(),
        head_dim,
        cos,
        sin,
    })
}

/// Positions of a frame-major `frames × height × width` grid. `frame_positions` (len `frames`)
/// overrides the temporal position of each frame; `None` means 0, 1, 2, ….
///
/// # Panics
/// If `frame_positions` does not have `frames` entries (the caller builds both from one list).
pub fn grid_positions(
    frames: usize,
    height: usize,
    width: usize,
    frame_positions: Option<&[f64]>,
) -> Vec<[f64; 3]> {
    if let Some(fp) = frame_positions {
        assert_eq!(
            fp.len(),
            frames,
            "grid_positions: {} frame positions for {frames} frames",
            fp.len()
        );
    }
    let mut out = Vec::with_capacity(frames * height * width);
    for f in 0..frames {
        let t = frame_positions.map_or(f as f64, |fp| fp[f]);
        for h in 0..height {
            for w in 0..width {
                out.push([t, h as f64, w as f64]);
            }
        }
    }
    out
}

/// Rotates one head: `out[i] = x[i]·c2[i] + x[i ^ 1]·s2[i]` with the per-element tables
/// `c2 = [c0, c0, c1, c1, …]`, `s2 = [−s0, s0, −s1, s1, …]`. Blocks of 16 turn the pair swap
/// into one in-register shuffle, so the loop vectorizes; the pair layout itself does not.
#[inline(always)]
fn rotate_head(x: &[f32], c2: &[f32], s2: &[f32], out: &mut [f32]) {
    const B: usize = 16;
    let blocks = x.len() / B * B;
    let (xb, cb, sb) = (
        x[..blocks].chunks_exact(B),
        c2.chunks_exact(B),
        s2.chunks_exact(B),
    );
    for (((o, x), c), s) in out.chunks_exact_mut(B).zip(xb).zip(cb).zip(sb) {
        let mut swapped = [0f32; B];
        for i in 0..B {
            swapped[i] = x[i ^ 1];
        }
        for i in 0..B {
            o[i] = x[i] * c[i] + swapped[i] * s[i];
        }
    }
    for i in blocks..x.len() {
        out[i] = x[i] * c2[i] + x[i ^ 1] * s2[i];
    }
}

simd_dispatch! {
    /// Rotates whole tokens: `x`/`out` hold rows of `heads × head_dim` for the consecutive tokens
    /// starting at flat token `first` (token `i` uses table row `i % seq`); `sign` = −1 rotates
    /// backwards.
    fn rope_tokens(
        x: &[f32],
        first: usize,
        heads: usize,
        table: &RopeTable,
        sign: f32,
        out: &mut [f32],
    ) {
        let (seq, head_dim) = (table.seq, table.head_dim);
        let half = head_dim / 2;
        let (mut c2, mut s2) = (vec![0f32; head_dim], vec![0f32; head_dim]);
        let tokens = x.chunks_exact(heads * head_dim).zip(out.chunks_exact_mut(heads * head_dim));
        for (t, (xt, ot)) in tokens.enumerate() {
            let row = (first + t) % seq * half;
            let (c, s) = (&table.cos[row..row + half], &table.sin[row..row + half]);
            for k in 0..half {
                c2[2 * k] = c[k];
                c2[2 * k + 1] = c[k];
                s2[2 * k] = -sign * s[k];
                s2[2 * k + 1] = sign * s[k];
            }
            for (xh, oh) in xt.chunks_exact(head_dim).zip(ot.chunks_exact_mut(head_dim)) {
                rotate_head(xh, &c2, &s2, oh);
            }
        }
    }
}

/// Rotates `x` (`[batch, seq, heads, head_dim]`) by the table's angles into `out`; with `inverse`
/// it rotates by the negative angles (the backward pass).
pub fn rope_apply(
    x: &[f32],
    batch: usize,
    heads: usize,
    table: &RopeTable,
    inverse: bool,
    out: &mut [f32],
) -> crate::Result<()> {
    const OP: &str = "rope_apply";
    let (seq, d) = (table.seq, table.head_dim);
    ensure_shape!(
        d.is_multiple_of(2) && table.cos.len() == seq * d / 2 && table.sin.len() == seq * d / 2,
        OP,
        "table for seq {seq}, head_dim {d} has {} cos / {} sin entries, expected {}",
        table.cos.len(),
        table.sin.len(),
        seq * d / 2
    );
    let want = batch * seq * heads * d;
    ensure_shape!(
        x.len() == want && out.len() == want,
        OP,
        "x has {} and out {} elements, expected [batch {batch}, seq {seq}, heads {heads}, \
         head_dim {d}] = {want}",
        x.len(),
        out.len()
    );
    let token = heads * d;
    if token == 0 || seq == 0 {
        return Ok(());
    }
    let sign = if inverse { -1.0 } else { 1.0 };
    let tokens_per_task = ((1 << 14) / token).max(1);
    par_chunks_mut(out, tokens_per_task * token, |off, o| {
        rope_tokens(&x[off..off + o.len()], off / token, heads, table, sign, o)
    });
    Ok(())
}
