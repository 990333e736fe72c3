//! Flow matching: the diffusers inference schedule to the last bit, training noising/targets,
//! σ distributions, the Euler and stochastic samplers, CFG, and the timestep embedding.

use fym_model::flow::{
    add_noise, cfg_combine, euler_sample, euler_step, fill_standard_normal, inference_schedule,
    shift_sigma, sigma_to_timestep, stochastic_sample, stochastic_step, timestep_embedding,
    velocity_target, LossWeighting, SigmaDistribution, TrainSigmaSampler,
};
use rand::SeedableRng;

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn normal_vec(seed: u64, n: usize) -> Vec<f32> {
    let mut v = vec![0.0; n];
    fill_standard_normal(&mut rng(seed), &mut v);
    v
}

#[test]
fn schedule_matches_diffusers_for_50_steps_shift_5() {
    // FlowMatchEulerDiscreteScheduler(shift=5).set_timesteps(50), values computed by replaying
    // diffusers' f32/f64 operations (including the shift already applied to sigma_min).
    let s = inference_schedule(50, 5.0).unwrap();
    assert_eq!(s.sigmas.len(), 51);
    assert_eq!(s.timesteps.len(), 50);
    let expected: [(usize, f64, f64); 8] = [
        (0, 1.0, 1000.0),
        (1, 0.995_871_603_488_922_1, 995.871_582_031_25),
        (2, 0.991_604_626_178_741_5, 991.604_614_257_812_5),
        (10, 0.951_509_535_312_652_6, 951.509_521_484_375),
        (25, 0.829_032_063_484_191_9, 829.032_043_457_031_2),
        (40, 0.536_104_023_456_573_5, 536.104_003_906_25),
        (48, 0.114_819_467_067_718_5, 114.819_465_637_207_03),
        (49, 0.024_414_066_225_290_3, 24.414_066_314_697_266),
    ];
    for (i, sigma, t) in expected {
        // The f32 values, written as the exact f64 they widen to.
        assert_eq!(s.sigmas[i] as f64, sigma, "sigma[{i}]");
        assert_eq!(s.timesteps[i] as f64, t, "timestep[{i}]");
    }
    assert_eq!(s.sigmas[50], 0.0);
    assert!(s.sigmas.windows(2).all(|w| w[0] > w[1]));
}

#[test]
fn schedule_without_shift_is_a_linspace_down_to_one_thousandth() {
    let s = inference_schedule(4, 1.0).unwrap();
    let expected = [1.0, 1.0 - 0.999 / 3.0, 1.0 - 2.0 * 0.999 / 3.0, 0.001, 0.0];
    for (a, b) in s.sigmas.iter().zip(expected) {
        assert!((*a as f64 - b).abs() < 1e-7, "{a} vs {b}");
    }
    assert_eq!(inference_schedule(1, 5.0).unwrap().sigmas, vec![1.0, 0.0]);
    assert!(inference_schedule(0, 5.0).is_err());
    assert!(inference_schedule(10, 0.0).is_err());
    assert!(inference_schedule(10, f32::NAN).is_err());
}

#[test]
fn shift_formula_and_timesteps() {
    assert!((shift_sigma(0.5, 3.0) - 0.75).abs() < 1e-15);
    assert_eq!(shift_sigma(1.0, 5.0), 1.0);
    assert_eq!(shift_sigma(0.0, 5.0), 0.0);
    assert_eq!(shift_sigma(0.3, 1.0), 0.3);
    assert_eq!(sigma_to_timestep(0.25), 250.0);
}

#[test]
fn noising_and_velocity_target_are_consistent() {
    let x0 = normal_vec(1, 64);
    let eps = normal_vec(2, 64);
    let sigma = 0.37;
    let xt = add_noise(&x0, &eps, sigma).unwrap();
    let v = velocity_target(&x0, &eps).unwrap();
    for i in 0..64 {
        assert!((xt[i] - ((1.0 - sigma) * x0[i] + sigma * eps[i])).abs() < 1e-6);
        assert_eq!(v[i], eps[i] - x0[i]);
        // x0 = x_t − σ·v and ε = x_t + (1−σ)·v
        assert!((xt[i] - sigma * v[i] - x0[i]).abs() < 1e-5);
        assert!((xt[i] + (1.0 - sigma) * v[i] - eps[i]).abs() < 1e-5);
    }
    assert!(add_noise(&x0, &eps[..10], 0.5).is_err());
    assert!(add_noise(&x0, &eps, 1.5).is_err());
}

#[test]
fn euler_follows_a_straight_path_exactly() {
    // Along the straight path from ε (σ=1) to x0 (σ=0) the true velocity is ε − x0; Euler with
    // that velocity lands on x0 for any schedule.
    let x0 = normal_vec(3, 32);
    let eps = normal_vec(4, 32);
    let sched = inference_schedule(7, 3.0).unwrap();
    let mut calls = Vec::new();
    let out = euler_sample(&eps, &sched.sigmas, |x, s| {
        calls.push(s);
        assert_eq!(x.len(), 32);
        velocity_target(&x0, &eps)
    })
    .unwrap();
    assert_eq!(calls, sched.sigmas[..7].to_vec());
    for i in 0..32 {
        assert!((out[i] - x0[i]).abs() < 1e-5, "{} vs {}", out[i], x0[i]);
    }
}

#[test]
fn stochastic_sampler_with_eta_zero_is_euler_bit_for_bit() {
    let x_t = normal_vec(5, 48);
    let sched = inference_schedule(12, 5.0).unwrap();
    // A nonlinear velocity field, so that trajectories depend on every step.
    let field = |x: &[f32], s: f32| -> fym_model::Result<Vec<f32>> {
        Ok(x.iter()
            .enumerate()
            .map(|(i, &v)| (v * 1.3 - (i as f32 * 0.1).sin()) * (0.5 + s) + v * v * 0.05)
            .collect())
    };
    let euler = euler_sample(&x_t, &sched.sigmas, field).unwrap();
    let stoch = stochastic_sample(&x_t, &sched.sigmas, 0.0, &mut rng(9), field).unwrap();
    assert_eq!(euler, stoch);
    // And a single step with η = 0 ignores z entirely.
    let v = normal_vec(6, 48);
    let z = normal_vec(7, 48);
    assert_eq!(
        stochastic_step(&x_t, &v, 0.8, 0.6, 0.0, &z).unwrap(),
        euler_step(&x_t, &v, 0.8, 0.6).unwrap()
    );
}

#[test]
fn stochastic_step_matches_the_renoising_formula() {
    let x = normal_vec(10, 40);
    let v = normal_vec(11, 40);
    let z = normal_vec(12, 40);
    for (s, s2, eta) in [(0.9f32, 0.7f32, 1.0f32), (0.5, 0.45, 0.3), (0.2, 0.0, 1.0)] {
        let got = stochastic_step(&x, &v, s, s2, eta, &z).unwrap();
        for i in 0..40 {
            let (xi, vi, zi) = (x[i] as f64, v[i] as f64, z[i] as f64);
            let (s, s2, eta) = (s as f64, s2 as f64, eta as f64);
            let x0 = xi - s * vi;
            let eps = xi + (1.0 - s) * vi;
            let want = (1.0 - s2) * x0 + s2 * ((1.0 - eta * eta).sqrt() * eps + eta * zi);
            assert!(
                (got[i] as f64 - want).abs() < 1e-5,
                "step {s}->{s2} eta {eta}: {} vs {want}",
                got[i]
            );
        }
    }
    assert!(stochastic_step(&x, &v, 0.5, 0.4, 1.5, &z).is_err());
    assert!(stochastic_step(&x, &v, 0.5, 0.4, 1.0, &z[..3]).is_err());
}

#[test]
fn stochastic_sampler_lands_on_x0_for_the_exact_velocity() {
    // With the exact velocity, every step's x0 estimate is the true x0, and the last step (σ'=0)
    // returns it whatever noise was drawn.
    let x0 = normal_vec(20, 16);
    let eps = normal_vec(21, 16);
    let sched = inference_schedule(6, 5.0).unwrap();
    let out = stochastic_sample(&eps, &sched.sigmas, 1.0, &mut rng(22), |x, s| {
        Ok(x.iter()
            .zip(&x0)
            .map(|(&xi, &x0i)| (xi - x0i) / s)
            .collect())
    })
    .unwrap();
    for i in 0..16 {
        assert!((out[i] - x0[i]).abs() < 1e-4, "{} vs {}", out[i], x0[i]);
    }
}

#[test]
fn samplers_reject_bad_inputs() {
    let x = vec![0.0f32; 8];
    let short = |_: &[f32], _: f32| -> fym_model::Result<Vec<f32>> { Ok(vec![0.0; 3]) };
    assert!(euler_sample(&x, &[1.0, 0.0], short)
        .unwrap_err()
        .to_string()
        .contains("3 values"));
    let ok = |x: &[f32], _: f32| -> fym_model::Result<Vec<f32>> { Ok(x.to_vec()) };
    assert!(euler_sample(&x, &[1.0], ok).is_err());
    assert!(euler_sample(&x, &[1.2, 0.0], ok).is_err());
    let failing = |_: &[f32], _: f32| -> fym_model::Result<Vec<f32>> {
        Err(fym_model::Error::Flow("model failed".into()))
    };
    assert!(
        stochastic_sample(&x, &[1.0, 0.0], 1.0, &mut rng(0), failing)
            .unwrap_err()
            .to_string()
            .contains("model failed")
    );
}

#[test]
fn classifier_free_guidance() {
    let u = [1.0f32, -2.0, 0.5];
    let c = [3.0f32, 0.0, 0.5];
    assert_eq!(cfg_combine(&u, &c, 1.0).unwrap(), c.to_vec());
    assert_eq!(cfg_combine(&u, &c, 0.0).unwrap(), u.to_vec());
    assert_eq!(cfg_combine(&u, &c, 5.0).unwrap(), vec![11.0, 8.0, 0.5]);
    assert!(cfg_combine(&u, &c[..2], 5.0).is_err());
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

#[test]
fn training_sigma_distributions() {
    let n = 40_000;
    let mut r = rng(30);
    // Uniform + shift 5: mean = ∫ 5u/(1+4u) du (midpoint rule as reference).
    let s = TrainSigmaSampler {
        distribution: SigmaDistribution::Uniform,
        shift: 5.0,
    };
    let draws: Vec<f32> = (0..n).map(|_| s.sample(&mut r)).collect();
    let m = 100_000;
    let analytic: f64 = (0..m)
        .map(|k| shift_sigma((k as f64 + 0.5) / m as f64, 5.0))
        .sum::<f64>()
        / m as f64;
    assert!(
        (mean(&draws) - analytic).abs() < 0.005,
        "{} vs {analytic}",
        mean(&draws)
    );
    assert!(draws.iter().all(|&d| (0.0..=1.0).contains(&d)));

    // Logit-normal(0, 1): median 0.5 and P(σ > 0.9) = P(n > logit 0.9) ≈ 0.0140.
    let s = TrainSigmaSampler {
        distribution: SigmaDistribution::LogitNormal {
            mean: 0.0,
            std: 1.0,
        },
        shift: 1.0,
    };
    let mut draws: Vec<f32> = (0..n).map(|_| s.sample(&mut r)).collect();
    let above = draws.iter().filter(|&&d| d > 0.9).count() as f64 / n as f64;
    assert!((above - 0.0140).abs() < 0.003, "{above}");
    draws.sort_by(f32::total_cmp);
    assert!((draws[n / 2] - 0.5).abs() < 0.01);

    // Released code: the shifted 1000-point grid.
    let s = TrainSigmaSampler::released_code();
    s.validate().unwrap();
    for _ in 0..2000 {
        let d = s.sample(&mut r) as f64;
        // invert the shift and check it lands on k/1000
        let base = d / (5.0 - 4.0 * d);
        let k = base * 1000.0;
        assert!(
            (k - k.round()).abs() < 1e-3 && (1.0..=1000.0).contains(&k.round()),
            "{d} -> {k}"
        );
    }
    assert!(TrainSigmaSampler {
        distribution: SigmaDistribution::Grid { steps: 0 },
        shift: 1.0
    }
    .validate()
    .is_err());
    assert!(TrainSigmaSampler {
        distribution: SigmaDistribution::Uniform,
        shift: -1.0
    }
    .validate()
    .is_err());
}

#[test]
fn loss_weighting() {
    assert_eq!(LossWeighting::None.weight(0.3), 1.0);
    let bell = LossWeighting::Bell { shift: 5.0 };
    // Mean 1 over the training grid, peak at t ≈ 500, zero at the grid's lowest point.
    let grid: Vec<f32> = (0..1000)
        .map(|k| shift_sigma(1.0 - k as f64 / 1000.0, 5.0) as f32)
        .collect();
    let weights: Vec<f32> = grid.iter().map(|&s| bell.weight(s)).collect();
    assert!((mean(&weights) - 1.0).abs() < 1e-3, "{}", mean(&weights));
    assert!(bell.weight(0.5) > bell.weight(0.9) && bell.weight(0.5) > bell.weight(0.1));
    let min = weights.iter().cloned().fold(f32::INFINITY, f32::min);
    assert!(min.abs() < 1e-6);
}

#[test]
fn timestep_embedding_is_cos_then_sin() {
    let t = [0.0f32, 1.0, 500.0, 999.0];
    let dim = 32;
    let e = timestep_embedding(&t, dim).unwrap();
    assert_eq!(e.len(), 4 * dim);
    for (b, &tb) in t.iter().enumerate() {
        for i in 0..16 {
            let freq = (-(10000f64.ln()) * i as f64 / 16.0).exp();
            let arg = tb as f64 * freq;
            // f32 argument rounding: |Δarg| ≲ 1e-7·arg.
            let tol = 2e-6 + 2e-7 * arg;
            assert!(
                (e[b * dim + i] as f64 - arg.cos()).abs() < tol,
                "b{b} cos{i}"
            );
            assert!(
                (e[b * dim + 16 + i] as f64 - arg.sin()).abs() < tol,
                "b{b} sin{i}"
            );
        }
    }
    // t = 0: cos = 1, sin = 0.
    assert!(e[..16].iter().all(|&v| v == 1.0) && e[16..32].iter().all(|&v| v == 0.0));
    // Odd size: a zero column at the end.
    let odd = timestep_embedding(&[3.0], 7).unwrap();
    assert_eq!(odd.len(), 7);
    assert_eq!(odd[6], 0.0);
    assert!((odd[0] - 3.0f32.cos()).abs() < 1e-6 && (odd[3] - 3.0f32.sin()).abs() < 1e-6);
    assert!(timestep_embedding(&[1.0], 1).is_err());
}
