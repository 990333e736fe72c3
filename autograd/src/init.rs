//! Random initialisation helpers.

use rand::Rng;

/// One standard-normal sample (Box–Muller; no extra dependency).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// `n` samples of N(0, std²).
pub fn normal_vec<R: Rng + ?Sized>(rng: &mut R, n: usize, std: f32) -> Vec<f32> {
    (0..n).map(|_| standard_normal(rng) * std).collect()
}

/// `n` samples of U(−bound, bound) (PyTorch's default Linear init uses bound = 1/√fan_in).
pub fn uniform_vec<R: Rng + ?Sized>(rng: &mut R, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-bound..=bound)).collect()
}
