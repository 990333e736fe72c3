//! Fused flash-style attention, forward and backward, with 3D mask modes. Online softmax over key
//! tiles; the per-row logsumexp is saved for backward; no S×S buffer is ever allocated. Masked-out
//! key tiles are skipped, not computed.

//!
//! Layout: `plan` turns a mask mode into independent dense groups (so masked tiles are never
//! visited), `simd` holds the vector primitives and the register-tiled micro-kernel, and
//! `forward`, `backward`, `map_stats` hold the per-task tile loops; `temporal` runs short
//! `Temporal` groups vectorized across positions instead. This file validates inputs,
//! picks the instruction set and spreads tasks over the threads.

mod backward;
mod forward;
mod map_stats;
mod pack;
mod plan;
mod simd;
mod temporal;

use crate::cpu::pool::{num_threads, parallel_for, SharedMut};
use crate::ensure_shape;
use plan::{Plan, TILE_K};
use simd::Isa;

/// Which keys a query may attend to. Tokens are ordered frame-major: token `s` is in frame
/// `s / tokens_per_frame` at spatial position `s % tokens_per_frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaskMode {
    /// Every key.
    Full,
    /// Keys of the same frame.
    Spatial,
    /// Keys at the same spatial position, in every frame.
    Temporal,
}

/// Sizes of one attention call. Layout of q/out: `[batch, seq_q, heads, head_dim]`; of k/v:
/// `[batch, seq_kv, heads, head_dim]` (exactly Wan's `[B, S, H·D]`, no permute needed); of lse:
/// `[batch, heads, seq_q]`. `Spatial`/`Temporal` need `seq_q == seq_kv` divisible by
/// `tokens_per_frame`; `Full` ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnDims {
    pub batch: usize,
    pub heads: usize,
    pub seq_q: usize,
    pub seq_kv: usize,
    pub head_dim: usize,
    pub tokens_per_frame: usize,
}

/// Forward: `out = softmax(q·kᵀ·scale  masked) · v`, `lse` = per-row log-sum-exp of the scaled,
/// masked logits.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) -> crate::Result<()> {
    const OP: &str = "attention_forward";
    let (q_len, kv_len, lse_len) = check_dims(OP, dims, mask, scale)?;
    check_len(OP, "q", q.len(), q_len, dims)?;
    check_len(OP, "k", k.len(), kv_len, dims)?;
    check_len(OP, "v", v.len(), kv_len, dims)?;
    check_len(OP, "out", out.len(), q_len, dims)?;
    check_len(OP, "lse", lse.len(), lse_len, dims)?;
    if mask == MaskMode::Temporal && temporal::applies(&dims) {
        temporal::forward(dims, scale, q, k, v, out, lse);
        return Ok(());
    }
    let plan = Plan::new(dims, mask);
    let keys = pack::KeyTiles::new(&plan, k, Some(v));
    let fwd = forward::Forward {
        plan,
        scale,
        q,
        keys: &keys,
        out: Some(SharedMut::new(out)),
        lse: SharedMut::new(lse),
    };
    let isa = Isa::detect();
    parallel_for(fwd.tasks(), |t| fwd.run_task(isa, t));
    Ok(())
}

/// Backward given the forward's `out` and `lse`: overwrites `dq`, `dk`, `dv`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    d_out: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) -> crate::Result<()> {
    const OP: &str = "attention_backward";
    let (q_len, kv_len, lse_len) = check_dims(OP, dims, mask, scale)?;
    for (name, len, want) in [
        ("q", q.len(), q_len),
        ("k", k.len(), kv_len),
        ("v", v.len(), kv_len),
        ("out", out.len(), q_len),
        ("lse", lse.len(), lse_len),
        ("d_out", d_out.len(), q_len),
        ("dq", dq.len(), q_len),
        ("dk", dk.len(), kv_len),
        ("dv", dv.len(), kv_len),
    ] {
        check_len(OP, name, len, want, dims)?;
    }
    if mask == MaskMode::Temporal && temporal::applies(&dims) {
        let io = temporal::BackwardIo {
            q,
            k,
            v,
            out,
            lse,
            d_out,
            dq: SharedMut::new(dq),
            dk: SharedMut::new(dk),
            dv: SharedMut::new(dv),
        };
        temporal::backward(dims, scale, &io);
        return Ok(());
    }
    let plan = Plan::new(dims, mask);
    let splits = backward_splits(plan.problems(), plan.len_kv.div_ceil(TILE_K), num_threads());
    let mut partial = if splits > 1 {
        vec![0.0f32; plan.problems() * splits * plan.len_q * dims.head_dim]
    } else {
        Vec::new()
    };
    let bw = backward::Backward {
        plan,
        scale,
        q,
        k,
        v,
        out,
        lse,
        d_out,
        splits,
        dq: SharedMut::new(if splits > 1 { &mut partial } else { dq }),
        dk: SharedMut::new(dk),
        dv: SharedMut::new(dv),
    };
    let isa = Isa::detect();
    parallel_for(bw.tasks(), |t| bw.run_task(isa, t));
    if splits > 1 {
        sum_dq_partials(&plan, splits, &partial, dq);
    }
    Ok(())
}

/// Key-tile ranges per (batch, head, group) problem in the backward. One range (no dQ partials)
/// whenever the problems alone keep every thread busy and balanced; otherwise enough ranges for
/// about four tasks per thread.
fn backward_splits(problems: usize, key_tiles: usize, threads: usize) -> usize {
    let target = 4 * threads;
    if threads <= 1 || problems >= target || problems.is_multiple_of(threads) {
        1
    } else {
        target.div_ceil(problems).min(key_tiles).max(1)
    }
}

/// `dq` rows of every problem = Σ over its splits of the partial rows (layout of the partial
/// buffer: `[problem][split][query][head_dim]`).
fn sum_dq_partials(plan: &Plan, splits: usize, partial: &[f32], dq: &mut [f32]) {
    let (nq, d) = (plan.len_q, plan.dims.head_dim);
    let dq_out = SharedMut::new(dq);
    parallel_for(plan.problems(), |p| {
        let (b, h, g) = plan.problem(p);
        for i in 0..nq {
            // SAFETY: query row i of problem p is written by this task only.
            let row = unsafe { dq_out.slice(plan.q_offset(b, h, g, i), d) };
            row.fill(0.0);
            for s in 0..splits {
                let src = &partial[((p * splits + s) * nq + i) * d..][..d];
                for (r, &x) in row.iter_mut().zip(src) {
                    *r += x;
                }
            }
        }
    });
}

/// Per-head statistics of the attention map `A = softmax(q·kᵀ·scale)` (full, unmasked) against the
/// spatial and temporal pseudo masks, summed over the batch and all query rows, computed streaming.
///
/// Definitions (per head; sums run over every batch `b`, query row `i` and key `j`; `F` frames of
/// `T = tokens_per_frame` tokens, `N = batch · seq` rows):
/// - `M_s = {(i, j) : ⌊i/T⌋ = ⌊j/T⌋}` (same frame, the query itself included), `|M_s| = N·T`;
/// - `M_t = {(i, j) : i ≡ j (mod T), i ≠ j}` (same spatial position, other frame),
///   `|M_t| = N·(F − 1)`;
/// - `cos_x = Σ_{M_x} p_ij / (sqrt(Σ p_ij²) · sqrt(|M_x|))` (the mask is 0/1, so `‖M_x‖ = sqrt|M_x|`;
///   0 when `M_x` is empty);
/// - `mass_x = Σ_{M_x} p_ij / N`, the mean over rows of the row's mass inside `M_x`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HeadMapStats {
    /// cos(A, M_spatial) = ⟨A, M_s⟩ / (‖A‖·‖M_s‖), M_s = same frame.
    pub cos_spatial: f64,
    /// cos(A, M_temporal), M_t = same spatial position, other frame.
    pub cos_temporal: f64,
    /// Mean attention mass per query row inside M_s (the released code's w_s).
    pub mass_spatial: f64,
    /// Mean attention mass per query row inside M_t (w_t).
    pub mass_temporal: f64,
}

/// Computes [`HeadMapStats`] for every head (result index = head). Requires `seq_q == seq_kv`.
pub fn attention_map_stats(
    dims: AttnDims,
    scale: f32,
    q: &[f32],
    k: &[f32],
) -> crate::Result<Vec<HeadMapStats>> {
    const OP: &str = "attention_map_stats";
    ensure_shape!(
        dims.seq_q == dims.seq_kv,
        OP,
        "needs self-attention, got seq_q {} != seq_kv {} ({dims:?})",
        dims.seq_q,
        dims.seq_kv
    );
    // The mask checks of `Spatial` are exactly what the statistics need (tpf > 0 dividing seq).
    let (q_len, _, lse_len) = check_dims(OP, dims, MaskMode::Spatial, scale)?;
    check_len(OP, "q", q.len(), q_len, dims)?;
    check_len(OP, "k", k.len(), q_len, dims)?;
    let plan = Plan::new(dims, MaskMode::Full);
    let isa = Isa::detect();
    let mut lse = vec![0.0f32; lse_len];
    let keys = pack::KeyTiles::new(&plan, k, None);
    let fwd = forward::Forward {
        plan,
        scale,
        q,
        keys: &keys,
        out: None,
        lse: SharedMut::new(&mut lse),
    };
    parallel_for(fwd.tasks(), |t| fwd.run_task(isa, t));

    let stats = map_stats::MapStats {
        plan,
        scale,
        q,
        keys: &keys,
        lse: &lse,
    };
    let mut sums = vec![[0.0f64; 3]; stats.tasks()];
    let sums_out = SharedMut::new(&mut sums);
    parallel_for(stats.tasks(), |t| {
        let s = stats.run_task(isa, t);
        // SAFETY: slot t belongs to task t alone.
        unsafe { sums_out.slice(t, 1)[0] = s };
    });
    let mut per_head = vec![[0.0f64; 3]; dims.heads];
    for (t, s) in sums.iter().enumerate() {
        let acc = &mut per_head[stats.head_of(t)];
        for (a, x) in acc.iter_mut().zip(s) {
            *a += x;
        }
    }
    let rows = (dims.batch * dims.seq_q) as f64;
    let frames = (dims.seq_q / dims.tokens_per_frame) as f64;
    let size_s = rows * dims.tokens_per_frame as f64;
    let size_t = rows * (frames - 1.0);
    let cos = |inside: f64, norm: f64, size: f64| {
        if size > 0.0 && norm > 0.0 {
            inside / (norm * size.sqrt())
        } else {
            0.0
        }
    };
    Ok(per_head
        .iter()
        .map(|&[in_s, in_t, sq]| HeadMapStats {
            cos_spatial: cos(in_s, sq.sqrt(), size_s),
            cos_temporal: cos(in_t, sq.sqrt(), size_t),
            mass_spatial: in_s / rows,
            mass_temporal: in_t / rows,
        })
        .collect())
}

/// Floating-point operations of one call, the count every GFLOP/s figure of fym's attention uses.
/// Forward: `4 · batch · heads · seq_q · keys · head_dim` (two products, `q·kᵀ` and `p·v`, each
/// `2 · keys · head_dim` per query), with `keys` the keys a query actually attends to: `seq_kv`
/// for `Full`, `tokens_per_frame` for `Spatial`, `seq_q / tokens_per_frame` (the frames) for
/// `Temporal`. Backward (`backward = true`, the backward pass alone): 2.5× the forward (five tile
/// products instead of two). Forward + backward is the sum of the two. The softmax exponentials
/// are not counted. Returns 0 for a masked mode with `tokens_per_frame == 0`.
pub fn attention_flops(dims: AttnDims, mask: MaskMode, backward: bool) -> f64 {
    let tpf = dims.tokens_per_frame;
    let keys = match mask {
        MaskMode::Full => dims.seq_kv,
        MaskMode::Spatial => tpf,
        MaskMode::Temporal if tpf > 0 => dims.seq_q / tpf,
        MaskMode::Temporal => 0,
    };
    let forward =
        4.0 * (dims.batch * dims.heads * dims.seq_q) as f64 * keys as f64 * dims.head_dim as f64;
    if backward {
        2.5 * forward
    } else {
        forward
    }
}

/// Checks the sizes and returns the expected lengths of (q/out, k/v, lse).
fn check_dims(
    op: &'static str,
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
) -> crate::Result<(usize, usize, usize)> {
    let AttnDims {
        batch,
        heads,
        seq_q,
        seq_kv,
        head_dim,
        tokens_per_frame: tpf,
    } = dims;
    ensure_shape!(
        batch > 0 && heads > 0 && seq_q > 0 && seq_kv > 0 && head_dim > 0,
        op,
        "every size must be positive, got {dims:?}"
    );
    ensure_shape!(scale.is_finite(), op, "scale must be finite, got {scale}");
    if mask != MaskMode::Full {
        ensure_shape!(
            seq_q == seq_kv,
            op,
            "{mask:?} mask needs seq_q == seq_kv, got {seq_q} and {seq_kv} ({dims:?})"
        );
        ensure_shape!(
            tpf > 0 && seq_q % tpf == 0,
            op,
            "{mask:?} mask needs tokens_per_frame > 0 dividing seq {seq_q}, got {tpf} ({dims:?})"
        );
    }
    let product = |xs: &[usize]| xs.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x));
    let sizes = (
        product(&[batch, seq_q, heads, head_dim]),
        product(&[batch, seq_kv, heads, head_dim]),
        product(&[batch, heads, seq_q]),
    );
    match sizes {
        (Some(q), Some(kv), Some(l)) => Ok((q, kv, l)),
        _ => Err(crate::Error::shape(
            op,
            format!("sizes overflow usize: {dims:?}"),
        )),
    }
}

fn check_len(
    op: &'static str,
    name: &str,
    got: usize,
    want: usize,
    dims: AttnDims,
) -> crate::Result<()> {
    ensure_shape!(
        got == want,
        op,
        "{name} has {got} elements, expected {want} for {dims:?} (q/out [B, seq_q, H, D], k/v [B, seq_kv, H, D], lse [B, H, seq_q])"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Every instruction-set path this CPU supports must agree with the best one (which the
    //! integration tests check against an f64 reference).
    use super::simd::{Isa, FORCED_ISA};
    use super::*;

    fn outputs(isa: Isa, dims: AttnDims, mask: MaskMode) -> Vec<Vec<f32>> {
        FORCED_ISA.with(|f| f.set(Some(isa)));
        let n_q = dims.batch * dims.seq_q * dims.heads * dims.head_dim;
        let n_kv = dims.batch * dims.seq_kv * dims.heads * dims.head_dim;
        let wave =
            |n: usize, k: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * k).sin()).collect() };
        let (q, k, v, d_out) = (
            wave(n_q, 0.37),
            wave(n_kv, 0.71),
            wave(n_kv, 0.13),
            wave(n_q, 0.53),
        );
        let mut out = vec![0.0; n_q];
        let mut lse = vec![0.0; dims.batch * dims.heads * dims.seq_q];
        attention_forward(dims, mask, 0.4, &q, &k, &v, &mut out, &mut lse).unwrap();
        let (mut dq, mut dk, mut dv) = (vec![0.0; n_q], vec![0.0; n_kv], vec![0.0; n_kv]);
        attention_backward(
            dims, mask, 0.4, &q, &k, &v, &out, &lse, &d_out, &mut dq, &mut dk, &mut dv,
        )
        .unwrap();
        let mut all = vec![out, lse, dq, dk, dv];
        if dims.seq_q == dims.seq_kv && dims.tokens_per_frame > 0 {
            let stats = attention_map_stats(dims, 0.4, &q, &k).unwrap();
            all.push(
                stats
                    .iter()
                    .flat_map(|s| {
                        [
                            s.cos_spatial,
                            s.cos_temporal,
                            s.mass_spatial,
                            s.mass_temporal,
                        ]
                    })
                    .map(|x| x as f32)
                    .collect(),
            );
        }
        FORCED_ISA.with(|f| f.set(None));
        all
    }

    #[test]
    fn every_supported_path_agrees_with_the_best() {
        let best = Isa::best();
        let paths: Vec<Isa> = match best {
            Isa::Avx512 => vec![Isa::Avx2, Isa::Portable],
            Isa::Avx2 => vec![Isa::Portable],
            Isa::Portable => vec![],
        };
        let cases = [
            (
                AttnDims {
                    batch: 2,
                    heads: 2,
                    seq_q: 105,
                    seq_kv: 105,
                    head_dim: 12,
                    tokens_per_frame: 35,
                },
                MaskMode::Full,
            ),
            (
                AttnDims {
                    batch: 1,
                    heads: 2,
                    seq_q: 140,
                    seq_kv: 140,
                    head_dim: 32,
                    tokens_per_frame: 2,
                },
                MaskMode::Temporal,
            ),
            (
                // 5 frames of 21 positions: the lane-vectorized short-group path, with frames,
                // features (13) and the last block's lanes all padded.
                AttnDims {
                    batch: 2,
                    heads: 2,
                    seq_q: 105,
                    seq_kv: 105,
                    head_dim: 13,
                    tokens_per_frame: 21,
                },
                MaskMode::Temporal,
            ),
            (
                AttnDims {
                    batch: 1,
                    heads: 1,
                    seq_q: 150,
                    seq_kv: 150,
                    head_dim: 8,
                    tokens_per_frame: 75,
                },
                MaskMode::Spatial,
            ),
            (
                AttnDims {
                    batch: 1,
                    heads: 1,
                    seq_q: 70,
                    seq_kv: 9,
                    head_dim: 64,
                    tokens_per_frame: 0,
                },
                MaskMode::Full,
            ),
        ];
        for (dims, mask) in cases {
            let want = outputs(best, dims, mask);
            for &isa in &paths {
                for (i, (g, w)) in outputs(isa, dims, mask).iter().zip(&want).enumerate() {
                    let scale = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                    let diff = g
                        .iter()
                        .zip(w)
                        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        diff <= 1e-5 * scale,
                        "{isa:?} vs {best:?}, output {i}, {mask:?} {dims:?}: {diff}"
                    );
                }
            }
        }
    }
}
