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
