//! Training losses: the motion loss against a naive f64 reference, its invariances (what the
//! absolute frame differences of the released code make it blind to), finite-difference
//! gradients, and the flow-matching MSE, plain and weighted.

use fym_autograd::{gradcheck, Tensor};
use fym_model::losses::{flow_matching_loss, motion_loss, weighted_flow_matching_loss};
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
