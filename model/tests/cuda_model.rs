//! The whole Wan model on a GPU against the CPU: one training step's loss and the gradient of
//! every base parameter and of ST-LoRA factors, with a per-frame embedding and adaptive
//! (fractional) frame positions. Skips, saying why, where no GPU can be opened.

use std::collections::BTreeMap;

use fym_autograd::{Device, ParamSet, Tensor};
use fym_model::heads::HeadKind;
use fym_model::lora::{Adapter, AdapterKind};
use fym_model::losses::head_role_loss;
use fym_model::{ForwardOptions, WanConfig, WanModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// f32 on both sides; the sums run in another order through a dozen layers of ops.
const TOLERANCE: f64 = 1e-3;

fn config() -> WanConfig {
    WanConfig {
        num_attention_heads: 2,
        attention_head_dim: 16,
        text_dim: 16,
        freq_dim: 16,
        ..WanConfig::dev()
    }
}

/// A trainable model with every parameter random and non-zero (including the zero-initialised
/// output projection and LoRA B), and a spatial ST-LoRA on head 1 of every layer.
fn model(config: &WanConfig) -> (WanModel, ParamSet) {
    let mut rng = StdRng::seed_from_u64(5);
    let mut tensors = BTreeMap::new();
    for (name, shape) in config.expected_parameters() {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape
            .get(1..)
            .map_or(1, |s| s.iter().product::<usize>().max(1));
        let bound = 1.0 / (fan_in as f32).sqrt();
        tensors.insert(
            name,
            (
                shape,
                (0..n).map(|_| rng.gen_range(-bound..bound)).collect(),
            ),
        );
    }
    let mut model = WanModel::from_tensors(config.clone(), tensors, true).unwrap();
    model.add_frame_embedding(4, true).unwrap();
    let heads = (0..config.num_layers).map(|l| (l, vec![1])).collect();
    let adapter =
        Adapter::st_lora(AdapterKind::Spatial, config, heads, 4, 4.0, true, &mut rng).unwrap();
    model.adapters.list.push(adapter);
    let mut params = model.trainable_base_params();
    params.extend(model.adapters.params());
    for (_, t) in params.iter() {
        for v in t.data_mut().iter_mut() {
            if *v == 0.0 {
                *v = rng.gen_range(-0.1..0.1);
            }
        }
    }
    (model, params)
}

/// Loss and gradients (by parameter name) of one step on `device`; with `biased`, a
/// cross-attention bias keeps some video tokens from reading some words; with `roles`, the loss
/// adds the head-role loss of every layer (head 0 spatial, head 1 temporal).
fn step(device: Device, biased: bool, roles: bool) -> (f32, BTreeMap<String, Vec<f32>>) {
    let cfg = config();
    let (mut model, _) = model(&cfg);
    model.to_device(device).unwrap();
    let mut params = model.trainable_base_params();
    params.extend(model.adapters.params());
    let mut rng = StdRng::seed_from_u64(9);
    let shape = [2, cfg.in_channels, 3, 4, 6];
    let on = |t: Tensor| t.to_device(device).unwrap();
    let hidden = on(Tensor::randn(&shape, &mut rng));
    let target = on(Tensor::randn(&shape, &mut rng));
    let text = on(Tensor::randn(&[2, 5, cfg.text_dim], &mut rng));
    let [pt, ph, pw] = cfg.patch_size;
    let tokens = (3 / pt) * (4 / ph) * (6 / pw);
    let cross_attention_bias = biased.then(|| {
        let bias: Vec<f32> = (0..2 * tokens * 5)
            .map(|i| if i % 3 == 1 { -1e9 } else { 0.0 })
            .collect();
        on(Tensor::from_vec(bias, &[2, tokens, 5]).unwrap())
    });
    let opts = ForwardOptions {
        frame_positions: Some(vec![0.0, 1.5, 3.0]),
        cross_attention_bias,
    };
    if roles {
        model.start_capture_on_graph();
    }
    let out = model
        .forward(&hidden, &[900.0, 150.0], &text, &opts)
        .unwrap();
    assert_eq!(out.device(), device);
    let mut loss = out.mse_loss(&target).unwrap();
    for layer in model.take_capture() {
        for (head, role) in [(0, HeadKind::Spatial), (1, HeadKind::Temporal)] {
            let heads = cfg.num_attention_heads;
            let tokens_per_frame = tokens / (3 / pt);
            let l =
                head_role_loss(&layer.q, &layer.k, heads, head, role, tokens_per_frame).unwrap();
            loss = loss.add(&l.scale(0.1).unwrap()).unwrap();
        }
    }
    let grads = loss.backward().unwrap();
    let by_name = params
        .iter()
        .map(|(n, t)| {
            let g = grads
                .get(t)
                .unwrap_or_else(|| panic!("{n} has no gradient"));
            (n.to_string(), g.to_vec())
        })
        .collect();
    (loss.item().unwrap(), by_name)
}

#[test]
fn a_training_step_on_the_gpu_matches_the_cpu() {
    step_on_the_gpu_matches_the_cpu(false, false);
}

#[test]
fn a_training_step_with_a_cross_attention_bias_on_the_gpu_matches_the_cpu() {
    step_on_the_gpu_matches_the_cpu(true, false);
}

#[test]
fn a_training_step_with_the_head_role_loss_on_the_gpu_matches_the_cpu() {
    step_on_the_gpu_matches_the_cpu(false, true);
}

fn step_on_the_gpu_matches_the_cpu(biased: bool, roles: bool) {
    let device = match Device::cuda(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: no usable GPU: {e}");
            return;
        }
    };
    let (want_loss, want) = step(Device::Cpu, biased, roles);
    let (got_loss, got) = step(device, biased, roles);
    let loss_err = ((got_loss - want_loss) / want_loss).abs() as f64;
    println!("loss: cpu {want_loss}, gpu {got_loss}, relative error {loss_err:.1e}");
    let mut worst = (loss_err, "loss".to_string());
    assert_eq!(got.len(), want.len());
    for (name, w) in &want {
        let g = &got[name];
        let scale = w.iter().fold(1e-6f64, |m, v| m.max(v.abs() as f64));
        let err = g
            .iter()
            .zip(w)
            .map(|(a, b)| (*a as f64 - *b as f64).abs() / scale)
            .fold(0.0, f64::max);
        if err > worst.0 || !err.is_finite() {
            worst = (err, name.clone());
        }
    }
    println!(
        "{} gradients, worst relative error {:.1e} ({})",
        want.len(),
        worst.0,
        worst.1
    );
    assert!(worst.0 <= TOLERANCE, "worst: {worst:?}");
}
