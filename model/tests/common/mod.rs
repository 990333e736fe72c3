//! Helpers shared by the model's integration tests.

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
