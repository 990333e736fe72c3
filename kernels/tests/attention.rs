//! Fused attention (forward, backward, map statistics) against naive f64 references that build
//! the whole masked score matrix.

use fym_kernels::cpu::attention::{
    attention_backward, attention_flops, attention_forward, attention_map_stats, AttnDims,
    HeadMapStats, MaskMode,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MODES: [MaskMode; 3] = [MaskMode::Full, MaskMode::Spatial, MaskMode::Temporal];

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

fn dims(
    batch: usize,
    heads: usize,
    seq_q: usize,
    seq_kv: usize,
    head_dim: usize,
    tpf: usize,
) -> AttnDims {
    AttnDims {
        batch,
        heads,
        seq_q,
        seq_kv,
        head_dim,
        tokens_per_frame: tpf,
    }
}

fn allowed(mask: MaskMode, tpf: usize, i: usize, j: usize) -> bool {
    match mask {
        MaskMode::Full => true,
        MaskMode::Spatial => i / tpf == j / tpf,
        MaskMode::Temporal => i % tpf == j % tpf,
    }
}

/// max|a − b| / max|b|.
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max);
    let scale = want.iter().map(|w| w.abs()).fold(0.0, f64::max);
    diff / scale.max(1e-30)
}

struct Inputs {
    d: AttnDims,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    d_out: Vec<f32>,
}

impl Inputs {
    fn new(d: AttnDims, seed: u64) -> Inputs {
        let q_len = d.batch * d.seq_q * d.heads * d.head_dim;
        let kv_len = d.batch * d.seq_kv * d.heads * d.head_dim;
        Inputs {
            d,
            q: random(q_len, seed),
            k: random(kv_len, seed + 1),
            v: random(kv_len, seed + 2),
            d_out: random(q_len, seed + 3),
        }
    }
    fn q_at(&self, b: usize, s: usize, h: usize) -> usize {
        ((b * self.d.seq_q + s) * self.d.heads + h) * self.d.head_dim
    }
    fn kv_at(&self, b: usize, s: usize, h: usize) -> usize {
        ((b * self.d.seq_kv + s) * self.d.heads + h) * self.d.head_dim
    }
}

/// Naive f64 results: (out, lse, dq, dk, dv).
struct Reference {
    out: Vec<f64>,
    lse: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
}

fn reference(x: &Inputs, mask: MaskMode, scale: f64) -> Reference {
    let d = x.d;
    let hd = d.head_dim;
    let mut r = Reference {
        out: vec![0.0; x.q.len()],
        lse: vec![0.0; d.batch * d.heads * d.seq_q],
        dq: vec![0.0; x.q.len()],
        dk: vec![0.0; x.k.len()],
        dv: vec![0.0; x.k.len()],
    };
    for b in 0..d.batch {
        for h in 0..d.heads {
            // Full masked probability matrix of this (b, h).
            let mut p = vec![0.0f64; d.seq_q * d.seq_kv];
            for i in 0..d.seq_q {
                let qi = &x.q[x.q_at(b, i, h)..][..hd];
                let mut max = f64::NEG_INFINITY;
                for j in 0..d.seq_kv {
                    let s = if allowed(mask, d.tokens_per_frame, i, j) {
                        let kj = &x.k[x.kv_at(b, j, h)..][..hd];
                        scale
                            * qi.iter()
                                .zip(kj)
                                .map(|(&a, &c)| a as f64 * c as f64)
                                .sum::<f64>()
                    } else {
                        f64::NEG_INFINITY
                    };
                    p[i * d.seq_kv + j] = s;
                    max = max.max(s);
                }
                let row = &mut p[i * d.seq_kv..(i + 1) * d.seq_kv];
                let sum: f64 = row.iter().map(|&s| (s - max).exp()).sum();
                r.lse[(b * d.heads + h) * d.seq_q + i] = max + sum.ln();
                for s in row.iter_mut() {
                    *s = (*s - max).exp() / sum;
                }
            }
            for i in 0..d.seq_q {
                let (oq, row) = (x.q_at(b, i, h), &p[i * d.seq_kv..(i + 1) * d.seq_kv]);
                for (j, &pij) in row.iter().enumerate() {
                    let vj = &x.v[x.kv_at(b, j, h)..][..hd];
                    for (o, &ve) in r.out[oq..oq + hd].iter_mut().zip(vj) {
                        *o += pij * ve as f64;
                    }
                }
            }
            for i in 0..d.seq_q {
                let oq = x.q_at(b, i, h);
                let d_o = &x.d_out[oq..][..hd];
                let di: f64 = (0..hd).map(|e| d_o[e] as f64 * r.out[oq + e]).sum();
                for j in 0..d.seq_kv {
                    let pij = p[i * d.seq_kv + j];
                    if pij == 0.0 {
                        continue;
                    }
                    let ok = x.kv_at(b, j, h);
                    let dp: f64 = (0..hd).map(|e| d_o[e] as f64 * x.v[ok + e] as f64).sum();
                    let ds = pij * (dp - di);
                    for (e, &g) in d_o.iter().enumerate() {
                        r.dv[ok + e] += pij * g as f64;
                        r.dq[oq + e] += scale * ds * x.k[ok + e] as f64;
                        r.dk[ok + e] += scale * ds * x.q[oq + e] as f64;
                    }
                }
            }
        }
    }
    r
}

/// Runs forward and backward and asserts every output within `tol` of the reference.
fn check(d: AttnDims, mask: MaskMode, seed: u64, tol: f64) {
    let x = Inputs::new(d, seed);
    let scale = 1.0 / (d.head_dim as f32).sqrt();
    let want = reference(&x, mask, scale as f64);
    let mut out = vec![0.0; x.q.len()];
    let mut lse = vec![0.0; want.lse.len()];
    attention_forward(d, mask, scale, &x.q, &x.k, &x.v, &mut out, &mut lse).unwrap();
    let (mut dq, mut dk, mut dv) = (
        vec![f32::NAN; x.q.len()],
        vec![f32::NAN; x.k.len()],
        vec![f32::NAN; x.k.len()],
    );
    attention_backward(
        d, mask, scale, &x.q, &x.k, &x.v, &out, &lse, &x.d_out, &mut dq, &mut dk, &mut dv,
    )
    .unwrap();
    for (name, got, want) in [
        ("out", &out, &want.out),
        ("lse", &lse, &want.lse),
        ("dq", &dq, &want.dq),
        ("dk", &dk, &want.dk),
        ("dv", &dv, &want.dv),
    ] {
        let err = rel_err(got, want);
        assert!(
            err <= tol,
            "{name} rel err {err:e} > {tol:e} for {mask:?} {d:?}"
        );
    }
}

#[test]
fn full_attention_matches_reference() {
    for (i, d) in [
        dims(1, 1, 7, 7, 8, 7),
        dims(1, 2, 130, 130, 16, 1),
        dims(2, 3, 105, 105, 12, 35),
        dims(1, 2, 96, 96, 32, 32),
        dims(1, 1, 70, 70, 64, 10),
        dims(1, 1, 40, 40, 5, 1),
    ]
    .into_iter()
    .enumerate()
    {
        check(d, MaskMode::Full, 10 + i as u64, 1e-5);
    }
}

#[test]
fn cross_attention_matches_reference() {
    check(dims(1, 2, 512, 16, 32, 0), MaskMode::Full, 20, 1e-5);
    check(dims(2, 1, 67, 129, 12, 0), MaskMode::Full, 21, 1e-5);
    check(dims(1, 1, 3, 200, 8, 0), MaskMode::Full, 22, 1e-5);
}

#[test]
fn spatial_attention_matches_reference() {
    for (i, d) in [
        dims(1, 1, 105, 105, 8, 35),   // 3 frames × 7·5, ragged tiles
        dims(2, 3, 105, 105, 12, 35),  // B > 1, H > 1, odd head_dim
        dims(1, 2, 260, 260, 16, 130), // frames larger than a tile
        dims(1, 2, 512, 512, 32, 64),
        dims(1, 1, 60, 60, 64, 4),
    ]
    .into_iter()
    .enumerate()
    {
        check(d, MaskMode::Spatial, 30 + i as u64, 1e-5);
    }
}

#[test]
fn temporal_attention_matches_reference() {
    for (i, d) in [
        dims(1, 1, 105, 105, 8, 35),  // 3 frames × 7·5
        dims(2, 3, 105, 105, 12, 35), // B > 1, H > 1, odd head_dim
        dims(1, 2, 140, 140, 16, 2),  // 70 frames: more than one tile per position
        dims(1, 2, 512, 512, 32, 64),
        dims(1, 1, 60, 60, 64, 4),
    ]
    .into_iter()
    .enumerate()
    {
        check(d, MaskMode::Temporal, 40 + i as u64, 1e-5);
    }
}

#[test]
fn temporal_short_groups_match_reference_on_lane_block_edges() {
    // Groups of at most 15 frames run 16 spatial positions per task, one per vector lane, with
    // frames and features zero-padded to multiples of 4: cover a ragged last block (21 = 16 + 5
    // positions), fewer positions than lanes, 15 frames (the longest), 16 frames (the tile path
    // again), and padding on both axes, with several batches and heads.
    for (i, d) in [
        dims(2, 3, 105, 105, 24, 21), // 5 frames, blocks of 16 + 5 positions
        dims(1, 2, 45, 45, 32, 3),    // 15 frames, 3 positions
        dims(1, 1, 64, 64, 16, 4),    // 16 frames
        dims(1, 2, 512, 512, 40, 32), // 16 frames, two full blocks
        dims(1, 2, 224, 224, 13, 32), // 7 frames, head_dim 13: both padded
        dims(2, 1, 18, 18, 7, 9),     // 2 frames, odd head_dim
    ]
    .into_iter()
    .enumerate()
    {
        check(d, MaskMode::Temporal, 60 + i as u64, 1e-5);
    }
}

#[test]
fn backward_with_split_key_ranges_matches_reference() {
    // One (batch, head) problem on several threads: the backward splits the key tiles and sums
    // private dQ partials.
    fym_kernels::cpu::set_num_threads(3);
    check(dims(1, 1, 300, 300, 16, 1), MaskMode::Full, 50, 1e-5);
    check(dims(1, 1, 40, 300, 12, 1), MaskMode::Full, 51, 1e-5);
    check(dims(1, 1, 130, 130, 8, 65), MaskMode::Spatial, 52, 1e-5);
    fym_kernels::cpu::set_num_threads(0);
}

/// Σ out ⊙ w in f64, the scalar whose gradient the finite-difference check takes.
fn weighted_output(
    d: AttnDims,
    mask: MaskMode,
    scale: f32,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    w: &[f32],
) -> f64 {
    let mut out = vec![0.0; q.len()];
    let mut lse = vec![0.0; d.batch * d.heads * d.seq_q];
    attention_forward(d, mask, scale, q, k, v, &mut out, &mut lse).unwrap();
    out.iter().zip(w).map(|(&o, &w)| o as f64 * w as f64).sum()
}

#[test]
fn backward_matches_finite_differences() {
    let d = dims(1, 2, 6, 6, 4, 3);
    let scale = 0.7;
    for mask in MODES {
        let x = Inputs::new(d, 60);
        let mut out = vec![0.0; x.q.len()];
        let mut lse = vec![0.0; d.heads * d.seq_q];
        attention_forward(d, mask, scale, &x.q, &x.k, &x.v, &mut out, &mut lse).unwrap();
        let (mut dq, mut dk, mut dv) = (
            vec![0.0; x.q.len()],
            vec![0.0; x.k.len()],
            vec![0.0; x.k.len()],
        );
        attention_backward(
            d, mask, scale, &x.q, &x.k, &x.v, &out, &lse, &x.d_out, &mut dq, &mut dk, &mut dv,
        )
        .unwrap();
        let eps = 1e-2f32;
        for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
            for idx in 0..grad.len() {
                let mut ins = [x.q.clone(), x.k.clone(), x.v.clone()];
                ins[which][idx] += eps;
                let plus = weighted_output(d, mask, scale, &ins[0], &ins[1], &ins[2], &x.d_out);
                ins[which][idx] -= 2.0 * eps;
                let minus = weighted_output(d, mask, scale, &ins[0], &ins[1], &ins[2], &x.d_out);
                let numeric = (plus - minus) / (2.0 * eps as f64);
                let err = (numeric - grad[idx] as f64).abs();
                assert!(
                    err < 2e-3 * (1.0 + numeric.abs()),
                    "{mask:?} input {which} [{idx}]: analytic {} numeric {numeric}",
                    grad[idx]
                );
            }
        }
    }
}

/// Naive map statistics from the whole softmax matrix, with the definitions of the doc comment.
fn reference_map_stats(d: AttnDims, scale: f64, q: &[f32], k: &[f32]) -> Vec<HeadMapStats> {
    let x = Inputs {
        d,
        q: q.to_vec(),
        k: k.to_vec(),
        v: vec![0.0; k.len()],
        d_out: vec![0.0; q.len()],
    };
    let (s, t) = (d.seq_q, d.tokens_per_frame);
    let frames = s / t;
    (0..d.heads)
        .map(|h| {
            let (mut in_s, mut in_t, mut sq) = (0.0, 0.0, 0.0);
            for b in 0..d.batch {
                for i in 0..s {
                    let qi = &q[x.q_at(b, i, h)..][..d.head_dim];
                    let logits: Vec<f64> = (0..s)
                        .map(|j| {
                            let kj = &k[x.kv_at(b, j, h)..][..d.head_dim];
                            scale
                                * qi.iter()
                                    .zip(kj)
                                    .map(|(&a, &c)| a as f64 * c as f64)
                                    .sum::<f64>()
                        })
                        .collect();
                    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                    for (j, l) in logits.iter().enumerate() {
                        let p = (l - max).exp() / z;
                        sq += p * p;
                        if i / t == j / t {
                            in_s += p;
                        }
                        if i % t == j % t && i != j {
                            in_t += p;
                        }
                    }
                }
            }
            let rows = (d.batch * s) as f64;
            let cos_t = if frames > 1 {
                in_t / (sq.sqrt() * (rows * (frames - 1) as f64).sqrt())
            } else {
                0.0
            };
            HeadMapStats {
                cos_spatial: in_s / (sq.sqrt() * (rows * t as f64).sqrt()),
                cos_temporal: cos_t,
                mass_spatial: in_s / rows,
                mass_temporal: in_t / rows,
            }
        })
        .collect()
}

fn assert_stats_close(got: &[HeadMapStats], want: &[HeadMapStats], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (h, (g, w)) in got.iter().zip(want).enumerate() {
        for (name, a, b) in [
            ("cos_spatial", g.cos_spatial, w.cos_spatial),
            ("cos_temporal", g.cos_temporal, w.cos_temporal),
            ("mass_spatial", g.mass_spatial, w.mass_spatial),
            ("mass_temporal", g.mass_temporal, w.mass_temporal),
        ] {
            assert!(
                (a - b).abs() <= tol * b.abs().max(1e-3),
                "head {h} {name}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn map_stats_match_reference() {
    for (i, d) in [
        dims(2, 3, 24, 24, 8, 6),
        dims(1, 2, 105, 105, 12, 35),
        dims(1, 1, 140, 140, 16, 2),
        dims(1, 2, 20, 20, 8, 20), // one frame: the temporal mask is empty
    ]
    .into_iter()
    .enumerate()
    {
        let len = d.batch * d.seq_q * d.heads * d.head_dim;
        // Larger logits than 1/sqrt(d) so the maps are far from uniform.
        let scale = 2.0;
        let (q, k) = (random(len, 70 + i as u64), random(len, 80 + i as u64));
        let got = attention_map_stats(d, scale, &q, &k).unwrap();
        assert_stats_close(&got, &reference_map_stats(d, scale as f64, &q, &k), 1e-5);
    }
}

/// q_i = strength·e_{key(i)}, k_j = e_{key(j)}: query i attends uniformly to the keys j with
/// key(j) == key(i) and (almost) nothing else.
fn one_hot_qk(d: AttnDims, key: impl Fn(usize) -> usize, strength: f32) -> (Vec<f32>, Vec<f32>) {
    let len = d.batch * d.seq_q * d.heads * d.head_dim;
    let (mut q, mut k) = (vec![0.0; len], vec![0.0; len]);
    for b in 0..d.batch {
        for s in 0..d.seq_q {
            for h in 0..d.heads {
                let at = ((b * d.seq_q + s) * d.heads + h) * d.head_dim + key(s);
                q[at] = strength;
                k[at] = 1.0;
            }
        }
    }
    (q, k)
}

#[test]
fn map_stats_of_a_purely_spatial_head() {
    let (frames, tpf) = (8, 16);
    let d = dims(2, 2, frames * tpf, frames * tpf, frames, tpf);
    let (q, k) = one_hot_qk(d, |s| s / tpf, 40.0);
    for st in attention_map_stats(d, 1.0, &q, &k).unwrap() {
        // p = 1/tpf on the query's frame: the map is M_s / tpf, so cos_s = 1, mass_s = 1.
        assert!((st.cos_spatial - 1.0).abs() < 1e-5, "{st:?}");
        assert!((st.mass_spatial - 1.0).abs() < 1e-5, "{st:?}");
        assert!(st.cos_temporal < 1e-6 && st.mass_temporal < 1e-6, "{st:?}");
    }
}

#[test]
fn map_stats_of_a_purely_temporal_head() {
    let (frames, tpf) = (8, 16);
    let d = dims(1, 3, frames * tpf, frames * tpf, tpf, tpf);
    let (q, k) = one_hot_qk(d, |s| s % tpf, 40.0);
    let f = frames as f64;
    for st in attention_map_stats(d, 1.0, &q, &k).unwrap() {
        // p = 1/F on the query's position in every frame (itself included).
        let want_cos_t = ((f - 1.0) / f).sqrt();
        let want_cos_s = 1.0 / (f * tpf as f64).sqrt();
        assert!(
            (st.cos_temporal - want_cos_t).abs() < 1e-5,
            "{st:?} vs {want_cos_t}"
        );
        assert!((st.mass_temporal - (f - 1.0) / f).abs() < 1e-5, "{st:?}");
        assert!(
            (st.cos_spatial - want_cos_s).abs() < 1e-5,
            "{st:?} vs {want_cos_s}"
        );
        assert!((st.mass_spatial - 1.0 / f).abs() < 1e-5, "{st:?}");
    }
}

#[test]
fn flop_count_follows_the_documented_formula() {
    let d = dims(1, 4, 2048, 2048, 32, 64);
    let full = 4.0 * 4.0 * 2048.0 * 2048.0 * 32.0;
    assert_eq!(attention_flops(d, MaskMode::Full, false), full);
    assert_eq!(attention_flops(d, MaskMode::Full, true), 2.5 * full);
    assert_eq!(
        attention_flops(d, MaskMode::Spatial, false),
        full * 64.0 / 2048.0
    );
    assert_eq!(
        attention_flops(d, MaskMode::Temporal, false),
        full * 32.0 / 2048.0
    );
}

fn expect_shape_error(r: fym_kernels::Result<()>, op: &str, needle: &str) {
    match r {
        Err(e @ fym_kernels::Error::Shape { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(op) && msg.contains(needle),
                "message {msg:?} lacks {op:?} / {needle:?}"
            );
        }
        other => panic!("expected a shape error mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn bad_input_is_a_shape_error() {
    let good = dims(1, 2, 12, 12, 4, 4);
    let n = 12 * 2 * 4;
    let (q, k, v) = (vec![0.1; n], vec![0.2; n], vec![0.3; n]);
    let (mut out, mut lse) = (vec![0.0; n], vec![0.0; 24]);
    let fwd = |d: AttnDims, mask, q: &[f32], out: &mut [f32], lse: &mut [f32]| {
        attention_forward(d, mask, 0.5, q, &k, &v, out, lse)
    };
    assert!(fwd(good, MaskMode::Spatial, &q, &mut out, &mut lse).is_ok());
    expect_shape_error(
        fwd(good, MaskMode::Full, &q[1..], &mut out, &mut lse),
        "attention_forward",
        "q has 95",
    );
    expect_shape_error(
        fwd(good, MaskMode::Full, &q, &mut out[1..], &mut lse),
        "attention_forward",
        "out has",
    );
    expect_shape_error(
        fwd(good, MaskMode::Full, &q, &mut out, &mut lse[1..]),
        "attention_forward",
        "lse has 23",
    );
    let no_tpf = AttnDims {
        tokens_per_frame: 0,
        ..good
    };
    assert!(fwd(no_tpf, MaskMode::Full, &q, &mut out, &mut lse).is_ok());
    expect_shape_error(
        fwd(no_tpf, MaskMode::Spatial, &q, &mut out, &mut lse),
        "attention_forward",
        "tokens_per_frame",
    );
    let ragged = AttnDims {
        tokens_per_frame: 5,
        ..good
    };
    expect_shape_error(
        fwd(ragged, MaskMode::Temporal, &q, &mut out, &mut lse),
        "attention_forward",
        "dividing",
    );
    let cross = AttnDims { seq_kv: 6, ..good };
    let k6 = vec![0.2; 6 * 8];
    let r = attention_forward(
        cross,
        MaskMode::Spatial,
        0.5,
        &q,
        &k6,
        &k6,
        &mut out,
        &mut lse,
    );
    expect_shape_error(r, "attention_forward", "seq_q == seq_kv");
    assert!(
        attention_forward(cross, MaskMode::Full, 0.5, &q, &k6, &k6, &mut out, &mut lse).is_ok()
    );
    let empty = AttnDims { batch: 0, ..good };
    expect_shape_error(
        fwd(empty, MaskMode::Full, &[], &mut [], &mut []),
        "attention_forward",
        "positive",
    );
    expect_shape_error(
        fwd(good, MaskMode::Full, &q, &mut out, &mut lse)
            .and(Ok(()))
            .and_then(|_| {
                attention_forward(
                    good,
                    MaskMode::Full,
                    f32::NAN,
                    &q,
                    &k,
                    &v,
                    &mut out,
                    &mut lse,
                )
            }),
        "attention_forward",
        "scale",
    );

    let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    attention_forward(good, MaskMode::Full, 0.5, &q, &k, &v, &mut out, &mut lse).unwrap();
    let r = attention_backward(
        good,
        MaskMode::Full,
        0.5,
        &q,
        &k,
        &v,
        &out,
        &lse,
        &q,
        &mut dq,
        &mut dk[2..],
        &mut dv,
    );
    expect_shape_error(r, "attention_backward", "dk has 94");
    let r = attention_backward(
        good,
        MaskMode::Full,
        0.5,
        &q,
        &k,
        &v,
        &out,
        &lse[..4],
        &q,
        &mut dq,
        &mut dk,
        &mut dv,
    );
    expect_shape_error(r, "attention_backward", "lse has 4");
    let r = attention_backward(
        ragged,
        MaskMode::Spatial,
        0.5,
        &q,
        &k,
        &v,
        &out,
        &lse,
        &q,
        &mut dq,
        &mut dk,
        &mut dv,
    );
    expect_shape_error(r, "attention_backward", "dividing");

    expect_shape_error(
        attention_map_stats(cross, 0.5, &q, &k6).map(|_| ()),
        "attention_map_stats",
        "seq_q 12 != seq_kv 6",
    );
    expect_shape_error(
        attention_map_stats(no_tpf, 0.5, &q, &k).map(|_| ()),
        "attention_map_stats",
        "tokens_per_frame",
    );
    expect_shape_error(
        attention_map_stats(good, 0.5, &q, &k[1..]).map(|_| ()),
        "attention_map_stats",
        "k has 95",
    );
}
