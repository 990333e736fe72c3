//! Adaptive RoPE through the whole model: explicit integer frame positions are the default
//! forward, RoPE only sees position differences, and a sparse subset of frames runs at the
//! stretched positions of the full clip.

use std::collections::BTreeMap;

use fym_autograd::Tensor;
use fym_model::adaptive_rope::{adaptive_temporal_positions, baseline_temporal_positions};
use fym_model::{ForwardOptions, WanConfig, WanModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn config() -> WanConfig {
    WanConfig {
        num_attention_heads: 2,
        attention_head_dim: 12,
        text_dim: 16,
        freq_dim: 16,
        ..WanConfig::dev()
    }
}

/// Every parameter random and non-zero (new_random zeroes the output projection).
fn random_model(config: WanConfig, seed: u64) -> WanModel {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    for (name, shape) in config.expected_parameters() {
        let n: usize = shape.iter().product();
        let fan_in: usize = if shape.len() >= 2 {
            shape[1..].iter().product()
        } else {
            1
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        tensors.insert(
            name,
            (
                shape,
                (0..n).map(|_| rng.gen_range(-bound..bound)).collect(),
            ),
        );
    }
    WanModel::from_tensors(config, tensors, false).unwrap()
}

fn run(model: &WanModel, hidden: &Tensor, text: &Tensor, positions: Option<Vec<f64>>) -> Tensor {
    let opts = ForwardOptions {
        frame_positions: positions,
    };
    fym_autograd::no_grad(|| model.forward(hidden, &[400.0], text, &opts)).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn integer_positions_equal_the_default_forward() {
    let cfg = config();
    let model = random_model(cfg.clone(), 1);
    let mut rng = StdRng::seed_from_u64(2);
    let frames = 5;
    let hidden = Tensor::randn(&[1, cfg.in_channels, frames, 4, 6], &mut rng);
    let text = Tensor::randn(&[1, 4, cfg.text_dim], &mut rng);
    let default = run(&model, &hidden, &text, None).to_vec();
    let explicit = run(
        &model,
        &hidden,
        &text,
        Some((0..frames).map(|f| f as f64).collect()),
    )
    .to_vec();
    assert_eq!(explicit, default);
    assert_eq!(
        run(
            &model,
            &hidden,
            &text,
            Some(baseline_temporal_positions(frames))
        )
        .to_vec(),
        default
    );

    // Only position differences reach the attention scores: a shift of every frame by the same
    // real amount changes the output by rounding only, a change of spacing changes it for real.
    let shifted = run(
        &model,
        &hidden,
        &text,
        Some((0..frames).map(|f| f as f64 + 2.75).collect()),
    )
    .to_vec();
    let err = max_abs_diff(&shifted, &default);
    assert!(err < 1e-4, "uniform shift changed the output by {err}");
    let stretched = run(
        &model,
        &hidden,
        &text,
        Some((0..frames).map(|f| 2.0 * f as f64).collect()),
    )
    .to_vec();
    assert!(
        max_abs_diff(&stretched, &default) > 1e-3,
        "frame spacing must matter"
    );

    let e = model
        .forward(
            &hidden,
            &[400.0],
            &text,
            &ForwardOptions {
                frame_positions: Some(vec![0.0, 1.0]),
            },
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("2 frame positions for 5 latent frames"),
        "{e}"
    );
}

#[test]
fn sparse_frames_run_at_adaptive_positions() {
    let cfg = config();
    let model = random_model(cfg.clone(), 3);
    let mut rng = StdRng::seed_from_u64(4);
    let full_frames = 9;
    let clip = Tensor::randn(&[1, cfg.in_channels, full_frames, 4, 4], &mut rng);
    let text = Tensor::randn(&[1, 4, cfg.text_dim], &mut rng);
    let picked = [0usize, 3, 5, 8];
    let sparse = clip.index_select(2, &picked).unwrap();
    let positions = adaptive_temporal_positions(full_frames, picked.len()).unwrap();
    assert_eq!(positions, vec![0.0, 2.25, 4.5, 6.75]);
    let out = run(&model, &sparse, &text, Some(positions));
    assert_eq!(out.shape(), [1, cfg.out_channels, picked.len(), 4, 4]);
    assert!(out.to_vec().iter().all(|v| v.is_finite()));
    let consecutive = run(
        &model,
        &sparse,
        &text,
        Some(baseline_temporal_positions(picked.len())),
    );
    assert!(
        max_abs_diff(&out.to_vec(), &consecutive.to_vec()) > 1e-3,
        "adaptive positions must differ from consecutive ones"
    );
}
