//! adaLN modulation against a naive f64 reference.

use fym_kernels::cpu::modulate::{modulate, modulate_backward};
use rand::{Rng, SeedableRng};

#[test]
fn modulate_forward_and_backward_match_reference() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let (b, t, d) = (3, 7, 13);
    let mut r = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect() };
    let (x, scale, shift, dy) = (r(b * t * d), r(b * d), r(b * d), r(b * t * d));
    let mut out = vec![0.0; x.len()];
    modulate(&x, b, t, d, &scale, &shift, &mut out).unwrap();
    let (mut dx, mut ds, mut dh) = (vec![0.0; x.len()], vec![9.0; b * d], vec![9.0; b * d]);
    modulate_backward(&x, b, t, d, &scale, &dy, &mut dx, &mut ds, &mut dh).unwrap();
    for bi in 0..b {
        for i in 0..d {
            let (mut rs, mut rh) = (0f64, 0f64);
            for s in 0..t {
                let k = (bi * t + s) * d + i;
                let want =
                    x[k] as f64 * (1.0 + scale[bi * d + i] as f64) + shift[bi * d + i] as f64;
                assert!((out[k] as f64 - want).abs() < 1e-6);
                let want_dx = dy[k] as f64 * (1.0 + scale[bi * d + i] as f64);
                assert!((dx[k] as f64 - want_dx).abs() < 1e-6);
                rs += dy[k] as f64 * x[k] as f64;
                rh += dy[k] as f64;
            }
            assert!((ds[bi * d + i] as f64 - rs).abs() < 1e-5, "dscale");
            assert!((dh[bi * d + i] as f64 - rh).abs() < 1e-5, "dshift");
        }
    }
    let err = modulate(&x, b, t, d, &scale[1..], &shift, &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("modulate"), "{err}");
}
