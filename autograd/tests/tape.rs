//! The tape's bookkeeping: what is recorded, who gets gradients, the optimizer and checkpoints.

use std::collections::BTreeMap;

use fym_autograd::{
    load_checkpoint, no_grad, save_checkpoint, AdamW, AdamWConfig, ParamSet, Tensor,
};

#[test]
fn frozen_tensors_never_get_gradients() {
    let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let p = Tensor::param(vec![0.5, -0.5], &[2]).unwrap();
    let x = Tensor::from_vec(vec![1.0, 1.0], &[1, 2]).unwrap();
    let loss = x.linear(&w, Some(&p)).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(grads.len(), 1, "only the trainable bias has a gradient");
    assert_eq!(grads.get(&p).unwrap()[..], [1.0, 1.0]);
    assert!(grads.get(&w).is_none() && grads.get(&x).is_none());
}

#[test]
fn no_grad_records_nothing() {
    let p = Tensor::param(vec![1.0, 2.0], &[2]).unwrap();
    let y = no_grad(|| p.square().unwrap().sum_all().unwrap());
    assert!(!y.requires_grad());
    assert!(y.backward().unwrap().is_empty());
    // Recording is back on afterwards.
    let z = p.square().unwrap().sum_all().unwrap();
    assert!(z.requires_grad());
    assert_eq!(z.backward().unwrap().get(&p).unwrap()[..], [2.0, 4.0]);
}

#[test]
fn gradients_accumulate_over_paths() {
    let p = Tensor::param(vec![3.0], &[1]).unwrap();
    // y = p·p + 2p  → dy/dp = 2p + 2 = 8
    let y = p
        .mul(&p)
        .unwrap()
        .add(&p.scale(2.0).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    assert_eq!(y.backward().unwrap().get(&p).unwrap()[..], [8.0]);
}

#[test]
fn backward_rejects_non_scalar_loss() {
    let p = Tensor::param(vec![1.0, 2.0], &[2]).unwrap();
    let err = p
        .square()
        .unwrap()
        .backward()
        .err()
        .expect("non-scalar loss must fail");
    assert!(err.to_string().contains("backward"), "{err}");
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let a = Tensor::zeros(&[2, 3]);
    let b = Tensor::zeros(&[4, 5]);
    let err = a.linear(&b, None).err().unwrap().to_string();
    assert!(
        err.contains("linear") && err.contains("[2, 3]") && err.contains("[4, 5]"),
        "{err}"
    );
    let err = a.add(&Tensor::zeros(&[4])).err().unwrap().to_string();
    assert!(err.contains("add") && err.contains("[2, 3]"), "{err}");
    assert!(Tensor::from_vec(vec![1.0; 5], &[2, 3]).is_err());
}

/// AdamW against a direct f64 transcription of the algorithm.
#[test]
fn adamw_matches_reference() {
    let cfg = AdamWConfig {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
        max_grad_norm: None,
    };
    let p = Tensor::param(vec![1.0, -2.0], &[2]).unwrap();
    let mut set = ParamSet::new();
    set.push("p", p.clone());
    let mut opt = AdamW::new(cfg);
    let (mut rp, mut m, mut v) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
    for step in 1..=3 {
        // loss = Σ p³ → g = 3p²
        let loss = p.mul(&p).unwrap().mul(&p).unwrap().sum_all().unwrap();
        opt.step(&set, &loss.backward().unwrap());
        for i in 0..2 {
            let g = 3.0 * rp[i] * rp[i];
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.99 * v[i] + 0.01 * g * g;
            let mhat = m[i] / (1.0 - 0.9f64.powi(step));
            let vhat = v[i] / (1.0 - 0.99f64.powi(step));
            rp[i] -= 0.1 * 0.1 * rp[i];
            rp[i] -= 0.1 * mhat / (vhat.sqrt() + 1e-8);
        }
    }
    let got = p.to_vec();
    for i in 0..2 {
        assert!(
            (got[i] as f64 - rp[i]).abs() < 1e-5,
            "param {i}: {} vs {}",
            got[i],
            rp[i]
        );
    }
}

#[test]
fn gradient_clipping_limits_the_global_norm() {
    let cfg = AdamWConfig {
        lr: 1.0,
        weight_decay: 0.0,
        max_grad_norm: Some(1.0),
        ..Default::default()
    };
    let p = Tensor::param(vec![0.0, 0.0], &[2]).unwrap();
    let mut set = ParamSet::new();
    set.push("p", p.clone());
    let mut opt = AdamW::new(cfg);
    let target = Tensor::from_vec(vec![30.0, 40.0], &[2]).unwrap();
    // d/dp Σ (p − t)² = −2t → norm 100
    let loss = p.sub(&target).unwrap().square().unwrap().sum_all().unwrap();
    let norm = opt.step(&set, &loss.backward().unwrap());
    assert!((norm - 100.0).abs() < 1e-3, "reported pre-clip norm {norm}");
}

#[test]
fn checkpoint_resume_continues_identically() {
    let dir = std::env::temp_dir().join(format!("fym-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ckpt.safetensors");
    let run = |p: &Tensor, opt: &mut AdamW, set: &ParamSet, steps: usize| {
        for _ in 0..steps {
            let loss = p
                .sub(&Tensor::full(&[3], 2.0))
                .unwrap()
                .square()
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(set, &loss.backward().unwrap());
        }
    };
    let new = || {
        let p = Tensor::param(vec![0.1, 0.2, 0.3], &[3]).unwrap();
        let mut set = ParamSet::new();
        set.push("w", p.clone());
        (p, set, AdamW::new(AdamWConfig::default()))
    };
    // Uninterrupted: 6 steps.
    let (p1, set1, mut opt1) = new();
    run(&p1, &mut opt1, &set1, 6);
    // Interrupted after 3, restored into fresh objects, 3 more.
    let (p2, set2, mut opt2) = new();
    run(&p2, &mut opt2, &set2, 3);
    let meta = BTreeMap::from([("data_position".to_string(), "3".to_string())]);
    save_checkpoint(&path, &set2, &opt2, &meta).unwrap();
    let (p3, set3, mut opt3) = new();
    let restored = load_checkpoint(&path, &set3, &mut opt3).unwrap();
    assert_eq!(restored.get("data_position").map(String::as_str), Some("3"));
    assert_eq!(opt3.step, 3);
    run(&p3, &mut opt3, &set3, 3);
    assert_eq!(p1.to_vec(), p3.to_vec(), "resume must be bit-for-bit");
    // A corrupt checkpoint is an error naming the file.
    std::fs::write(&path, b"not a checkpoint").unwrap();
    let err = load_checkpoint(&path, &set3, &mut opt3)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("ckpt.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The update runs element chunks of every parameter on the kernel threads; it must equal, bit
/// for bit, the one loop per parameter it replaced (so training resumes identically).
#[test]
fn adamw_parallel_update_is_the_one_loop_update() {
    let cfg = AdamWConfig {
        lr: 1e-2,
        max_grad_norm: Some(0.5),
        ..AdamWConfig::default()
    };
    let sizes = [40_000usize, 3, 16_384, 16_385];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let init: Vec<Vec<f32>> = sizes
        .iter()
        .map(|&n| (0..n).map(|_| next()).collect())
        .collect();
    let scale: Vec<Vec<f32>> = sizes
        .iter()
        .map(|&n| (0..n).map(|_| next()).collect())
        .collect();
    let mut set = ParamSet::new();
    let params: Vec<Tensor> = init
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let t = Tensor::param(v.clone(), &[v.len()]).unwrap();
            set.push(format!("p{i}"), t.clone());
            t
        })
        .collect();
    let mut opt = AdamW::new(cfg);
    // The one-loop reference, with the same f32 arithmetic.
    let mut want = init.clone();
    let (mut m, mut v): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (
        sizes.iter().map(|&n| vec![0.0; n]).collect(),
        sizes.iter().map(|&n| vec![0.0; n]).collect(),
    );
    for step in 1..=3u64 {
        // loss = Σ scale ⊙ p²  → g = 2·scale·p
        let mut loss = Tensor::scalar(0.0);
        for (p, s) in params.iter().zip(&scale) {
            let s = Tensor::from_vec(s.clone(), p.shape()).unwrap();
            loss = loss
                .add(&p.mul(p).unwrap().mul(&s).unwrap().sum_all().unwrap())
                .unwrap();
        }
        let grads = loss.backward().unwrap();
        let gs: Vec<Vec<f32>> = params
            .iter()
            .map(|p| grads.get(p).unwrap().to_vec())
            .collect();
        opt.step(&set, &grads);
        let norm = gs
            .iter()
            .flatten()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt() as f32;
        let clip = if norm > 0.5 { 0.5 / norm } else { 1.0 };
        let c = cfg;
        let bc1 = 1.0 - (c.beta1 as f64).powi(step as i32);
        let bc2 = 1.0 - (c.beta2 as f64).powi(step as i32);
        let step_size = (c.lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for (((p, g), m), v) in want.iter_mut().zip(&gs).zip(&mut m).zip(&mut v) {
            for i in 0..g.len() {
                let gi = g[i] * clip;
                m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * gi;
                v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi;
                p[i] -= c.lr * c.weight_decay * p[i];
                p[i] -= step_size * m[i] / (v[i].sqrt() / bc2_sqrt + c.eps);
            }
        }
    }
    for (i, (p, w)) in params.iter().zip(&want).enumerate() {
        assert!(
            p.to_vec() == *w,
            "parameter {i} differs from the one-loop update"
        );
    }
}
