//! Helpers shared by the model's integration tests (each test crate uses some of them).
#![allow(dead_code)]

use std::collections::BTreeMap;

use fym_model::{WanConfig, WanModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A frozen model with every parameter random and non-zero (`new_random` zeroes the output
/// projection), uniform in ±1/√fan_in.
pub fn random_model(config: WanConfig, seed: u64) -> WanModel {
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

/// The dev config with 2 heads of width 12 and small text and time embeddings.
pub fn two_head_config() -> WanConfig {
    WanConfig {
        num_attention_heads: 2,
        attention_head_dim: 12,
        text_dim: 16,
        freq_dim: 16,
        ..WanConfig::dev()
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}
