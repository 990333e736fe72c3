//! Training losses: the motion loss against a naive f64 reference, its invariances (what the
//! absolute frame differences of the released code make it blind to), finite-difference
//! gradients, and the flow-matching MSE, plain and weighted.

use fym_autograd::{gradcheck, Tensor};
use fym_model::heads::HeadKind;
use fym_model::losses::{
    flow_matching_loss, head_role_loss, motion_loss, weighted_flow_matching_loss,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SHAPE: [usize; 5] = [1, 2, 4, 3, 3];

/// `mean over (b, c, h, w) of 1 − cos_t(|Δpred|, |Δtarget|)`, with the same ε as the loss.
fn naive_motion_loss(pred: &[f32], target: &[f32], shape: [usize; 5]) -> f64 {
    let [b, c, f, h, w] = shape;
    let hw = h * w;
    let mut total = 0.0;
    for bc in 0..b * c {
        for p in 0..hw {
            let at = |t: &[f32], fi: usize| t[(bc * f + fi) * hw + p] as f64;
            let (mut dot, mut np, mut nt) = (0.0, 0.0, 0.0);
            for fi in 1..f {
                let dp = (at(pred, fi) - at(pred, fi - 1)).abs();
                let dt = (at(target, fi) - at(target, fi - 1)).abs();
                dot += dp * dt;
                np += dp * dp;
                nt += dt * dt;
            }
            total += 1.0 - dot / ((np + 1e-6).sqrt() * (nt + 1e-6).sqrt());
        }
    }
    total / (b * c * hw) as f64
}

/// A clip whose frame-to-frame steps all have magnitude in [0.2, 1] (random sign), so no
/// difference sits near the kink of |·| where finite differences are meaningless.
fn clip(rng: &mut StdRng) -> Vec<f32> {
    let [b, c, f, h, w] = SHAPE;
    let hw = h * w;
    let mut v = vec![0.0f32; b * c * f * hw];
    for bc in 0..b * c {
        for p in 0..hw {
            let mut x: f32 = rng.gen_range(-1.0..1.0);
            for fi in 0..f {
                if fi > 0 {
                    let step: f32 = rng.gen_range(0.2..1.0);
                    x += if rng.gen_bool(0.5) { step } else { -step };
                }
                v[(bc * f + fi) * hw + p] = x;
            }
        }
    }
    v
}

fn loss_of(pred: &[f32], target: &[f32]) -> f32 {
    let p = Tensor::from_vec(pred.to_vec(), &SHAPE).unwrap();
    let t = Tensor::from_vec(target.to_vec(), &SHAPE).unwrap();
    motion_loss(&p, &t).unwrap().item().unwrap()
}

#[test]
fn motion_loss_matches_the_naive_reference() {
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..3 {
        let (p, t) = (clip(&mut rng), clip(&mut rng));
        let got = loss_of(&p, &t) as f64;
        let want = naive_motion_loss(&p, &t, SHAPE);
        assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
        assert!(want > 0.01, "random clips should not agree ({want})");
    }
}

#[test]
fn motion_loss_sees_only_the_size_of_each_step() {
    let mut rng = StdRng::seed_from_u64(2);
    let pred = clip(&mut rng);
    let near_zero = |l: f32, what: &str| assert!(l.abs() < 1e-5, "{what}: loss {l}");
    near_zero(loss_of(&pred, &pred), "identical");
    // |Δ| discards the sign: the same motion played backwards in value (negated) costs nothing,
    near_zero(
        loss_of(&pred, &pred.iter().map(|v| -v).collect::<Vec<_>>()),
        "negated",
    );
    // and neither do a constant offset (no motion) or a uniform speed-up (cosine is scale-free).
    near_zero(
        loss_of(&pred, &pred.iter().map(|v| v + 3.0).collect::<Vec<_>>()),
        "offset",
    );
    near_zero(
        loss_of(&pred, &pred.iter().map(|v| 2.5 * v).collect::<Vec<_>>()),
        "scaled",
    );
    // Flipping the sign of single steps (a zig-zag instead of a drift) is also invisible, while
    // moving at different *times* is not: step sizes (1, 0, 0) against (0, 0, 1) are orthogonal.
    let [_, _, f, h, w] = SHAPE;
    let hw = h * w;
    let mut drift = vec![0.0f32; pred.len()];
    let mut zigzag = drift.clone();
    let mut late = drift.clone();
    for bc in 0..2 {
        for p in 0..hw {
            for fi in 0..f {
                let i = (bc * f + fi) * hw + p;
                drift[i] = fi as f32;
                zigzag[i] = (fi % 2) as f32;
                late[i] = if fi == f - 1 { 1.0 } else { 0.0 };
            }
        }
    }
    near_zero(loss_of(&drift, &zigzag), "drift vs zig-zag");
    let mut early = vec![0.0f32; pred.len()];
    for (i, v) in early.iter_mut().enumerate() {
        *v = if (i / hw) % f == 0 { 0.0 } else { 1.0 };
    }
    let l = loss_of(&early, &late);
    assert!(
        (l - 1.0).abs() < 1e-6,
        "steps at different times: loss {l}, want 1"
    );
}

#[test]
fn motion_loss_gradients_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(3);
    let pred = Tensor::from_vec(clip(&mut rng), &SHAPE).unwrap();
    let target = Tensor::from_vec(clip(&mut rng), &SHAPE).unwrap();
    let report = gradcheck(
        |ps| {
            motion_loss(&ps[0], &ps[1])
                .map_err(|e| fym_autograd::Error::shape("motion_loss", e.to_string()))
        },
        &[pred, target],
        3e-3,
    )
    .unwrap();
    eprintln!("motion loss gradcheck: {report:?}");
    assert_eq!(report.checked, 2 * 72);
    assert!(report.max_rel_err < 1e-3, "{report:?}");
}

#[test]
fn motion_loss_rejects_bad_shapes() {
    let a = Tensor::zeros(&[1, 2, 1, 3, 3]);
    let e = motion_loss(&a, &a).unwrap_err();
    assert!(e.to_string().contains("F ≥ 2"), "{e}");
    let b = Tensor::zeros(&SHAPE);
    let c = Tensor::zeros(&[1, 2, 4, 3, 2]);
    assert!(motion_loss(&b, &c).is_err());
    assert!(motion_loss(&Tensor::zeros(&[2, 4, 3, 3]), &Tensor::zeros(&[2, 4, 3, 3])).is_err());
}

#[test]
fn flow_matching_loss_is_the_velocity_mse() {
    let mut rng = StdRng::seed_from_u64(4);
    let pred = Tensor::randn(&SHAPE, &mut rng);
    let target = Tensor::randn(&SHAPE, &mut rng);
    let got = flow_matching_loss(&pred, &target).unwrap().item().unwrap() as f64;
    let (p, t) = (pred.to_vec(), target.to_vec());
    let want = p
        .iter()
        .zip(&t)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / p.len() as f64;
    assert!((got - want).abs() < 1e-5 * want, "got {got}, want {want}");
}

#[test]
fn weighted_flow_matching_loss_weighs_each_squared_error() {
    let mut rng = StdRng::seed_from_u64(5);
    let pred = Tensor::randn(&SHAPE, &mut rng);
    let target = Tensor::randn(&SHAPE, &mut rng);
    let w: Vec<f32> = (0..pred.numel()).map(|_| rng.gen_range(0.0..3.0)).collect();
    let weights = Tensor::from_vec(w.clone(), &SHAPE).unwrap();
    let got = weighted_flow_matching_loss(&pred, &target, &weights)
        .unwrap()
        .item()
        .unwrap() as f64;
    let (p, t) = (pred.to_vec(), target.to_vec());
    let want = (0..p.len())
        .map(|i| w[i] as f64 * ((p[i] - t[i]) as f64).powi(2))
        .sum::<f64>()
        / p.len() as f64;
    assert!((got - want).abs() < 1e-5 * want.max(1.0), "{got} vs {want}");
    // All-one weights are the plain loss.
    let ones = Tensor::from_vec(vec![1.0; pred.numel()], &SHAPE).unwrap();
    let plain = flow_matching_loss(&pred, &target).unwrap().item().unwrap();
    let unit = weighted_flow_matching_loss(&pred, &target, &ones)
        .unwrap()
        .item()
        .unwrap();
    assert!((plain - unit).abs() < 1e-6 * plain.max(1.0));
    // The prediction's gradient, by finite differences (the weights are a constant).
    let report = gradcheck(
        |ps| {
            weighted_flow_matching_loss(&ps[0], &ps[1], &weights)
                .map_err(|e| fym_autograd::Error::shape("weighted loss", e.to_string()))
        },
        &[pred, target],
        3e-3,
    )
    .unwrap();
    assert!(report.max_rel_err < 1e-3, "{report:?}");
    let wrong = Tensor::zeros(&[1, 2, 4, 3, 2]);
    assert!(weighted_flow_matching_loss(&ones, &ones, &wrong).is_err());
}

/// Attention probabilities of head `head` (f64): `softmax(q·kᵀ/√d)` per batch entry.
fn naive_head_probs(q: &[f32], k: &[f32], dims: [usize; 4], head: usize) -> Vec<f64> {
    let [batch, seq, heads, d] = dims;
    let width = heads * d;
    let mut p = vec![0.0f64; batch * seq * seq];
    for b in 0..batch {
        for i in 0..seq {
            let row = &mut p[(b * seq + i) * seq..(b * seq + i + 1) * seq];
            for (j, s) in row.iter_mut().enumerate() {
                *s = (0..d)
                    .map(|c| {
                        let at =
                            |t: &[f32], n: usize| t[(b * seq + n) * width + head * d + c] as f64;
                        at(q, i) * at(k, j)
                    })
                    .sum::<f64>()
                    / (d as f64).sqrt();
            }
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = row.iter().map(|s| (s - max).exp()).sum();
            for s in row.iter_mut() {
                *s = (*s - max).exp() / sum;
            }
        }
    }
    p
}

/// `KL(uniform over the row's mask ‖ attention row)`, averaged over rows, from explicit loops.
fn naive_head_role_loss(
    probs: &[f64],
    batch: usize,
    seq: usize,
    tpf: usize,
    temporal: bool,
) -> f64 {
    let mut total = 0.0;
    for b in 0..batch {
        for i in 0..seq {
            let mask: Vec<usize> = (0..seq)
                .filter(|&j| {
                    if temporal {
                        j % tpf == i % tpf && j != i
                    } else {
                        j / tpf == i / tpf
                    }
                })
                .collect();
            let t = 1.0 / mask.len() as f64;
            total += mask
                .iter()
                .map(|&j| t * (t / probs[(b * seq + i) * seq + j]).ln())
                .sum::<f64>();
        }
    }
    total / (batch * seq) as f64
}

/// Random q and k of `[batch, seq, heads · d]`, values uniform in ±`spread`.
fn random_qk(seed: u64, shape: [usize; 3], spread: f32) -> (Tensor, Tensor) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let mut draw = || {
        let v = (0..n).map(|_| rng.gen_range(-spread..spread)).collect();
        Tensor::from_vec(v, &shape).unwrap()
    };
    (draw(), draw())
}

#[test]
fn head_role_loss_matches_the_naive_reference() {
    // 2 clips of 3 frames × 4 tokens, 3 heads of width 4.
    let (batch, frames, tpf, heads, d) = (2, 3, 4, 3, 4);
    let seq = frames * tpf;
    let (q, k) = random_qk(4, [batch, seq, heads * d], 1.5);
    for head in 0..heads {
        let probs = naive_head_probs(&q.to_vec(), &k.to_vec(), [batch, seq, heads, d], head);
        for (role, temporal) in [(HeadKind::Spatial, false), (HeadKind::Temporal, true)] {
            let got = head_role_loss(&q, &k, heads, head, role, tpf)
                .unwrap()
                .item()
                .unwrap() as f64;
            let want = naive_head_role_loss(&probs, batch, seq, tpf, temporal);
            assert!(
                (got - want).abs() < 1e-4 * want.max(1.0),
                "head {head} {role:?}: got {got}, want {want}"
            );
            assert!(
                want > 0.05,
                "random attention is far from any mask ({want})"
            );
        }
    }
}

#[test]
fn head_role_loss_is_near_zero_for_a_head_that_plays_its_role() {
    // One head of width 2·frames: the query's spatial position (one-hot over `tpf`) in the first
    // half, its frame (one-hot) in the second. Keys: a large weight on the same position and a
    // large negative one on the same frame makes the head look at its position in the other
    // frames; a large weight on the frame alone makes it look evenly over its own frame.
    let (frames, tpf) = (3, 4);
    let seq = frames * tpf;
    let d = tpf + frames;
    let (mut q, mut k_temporal, mut k_spatial) = (
        vec![0.0f32; seq * d],
        vec![0.0; seq * d],
        vec![0.0; seq * d],
    );
    for i in 0..seq {
        q[i * d + i % tpf] = 1.0;
        q[i * d + tpf + i / tpf] = 1.0;
        k_temporal[i * d + i % tpf] = 40.0;
        k_temporal[i * d + tpf + i / tpf] = -40.0;
        k_spatial[i * d + tpf + i / tpf] = 40.0;
    }
    let t = |v: Vec<f32>| Tensor::from_vec(v, &[1, seq, d]).unwrap();
    let loss = |k: &Vec<f32>, role| {
        head_role_loss(&t(q.clone()), &t(k.clone()), 1, 0, role, tpf)
            .unwrap()
            .item()
            .unwrap()
    };
    let (temporal_as_temporal, temporal_as_spatial) = (
        loss(&k_temporal, HeadKind::Temporal),
        loss(&k_temporal, HeadKind::Spatial),
    );
    let (spatial_as_spatial, spatial_as_temporal) = (
        loss(&k_spatial, HeadKind::Spatial),
        loss(&k_spatial, HeadKind::Temporal),
    );
    assert!(temporal_as_temporal.abs() < 1e-3, "{temporal_as_temporal}");
    assert!(spatial_as_spatial.abs() < 1e-3, "{spatial_as_spatial}");
    assert!(temporal_as_spatial > 5.0, "{temporal_as_spatial}");
    assert!(spatial_as_temporal > 5.0, "{spatial_as_temporal}");
}

#[test]
fn head_role_loss_gradients_match_finite_differences() {
    let (batch, frames, tpf, heads, d) = (1, 2, 3, 2, 3);
    let seq = frames * tpf;
    let (q, k) = random_qk(5, [batch, seq, heads * d], 1.0);
    for role in [HeadKind::Spatial, HeadKind::Temporal] {
        let report = gradcheck(
            |ps| {
                head_role_loss(&ps[0], &ps[1], heads, 1, role, tpf)
                    .map_err(|e| fym_autograd::Error::shape("head_role_loss", e.to_string()))
            },
            &[q.clone(), k.clone()],
            3e-3,
        )
        .unwrap();
        eprintln!("head role loss ({role:?}) gradcheck: {report:?}");
        assert_eq!(report.checked, 2 * q.numel());
        assert!(report.max_rel_err < 2e-3, "{role:?}: {report:?}");
    }
}

#[test]
fn head_role_loss_rejects_what_it_cannot_measure() {
    let t = |shape: &[usize]| Tensor::zeros(shape);
    let q = t(&[1, 6, 4]);
    assert!(head_role_loss(&q, &t(&[1, 6, 2]), 2, 0, HeadKind::Spatial, 3).is_err());
    assert!(head_role_loss(&q, &q, 2, 2, HeadKind::Spatial, 3).is_err());
    assert!(head_role_loss(&q, &q, 3, 0, HeadKind::Spatial, 3).is_err());
    assert!(head_role_loss(&q, &q, 2, 0, HeadKind::Spatial, 4).is_err());
    assert!(head_role_loss(&q, &q, 2, 0, HeadKind::Temporal, 6).is_err());
    assert!(head_role_loss(&q, &q, 2, 0, HeadKind::Spatial, 6).is_ok());
}
