//! Row softmax forward and backward against f64 references and finite differences.

use fym_kernels::cpu::softmax::{softmax, softmax_backward};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn rand_vec(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

fn assert_close(got: &[f32], want: &[f64], rtol: f64, atol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w} (err {err:e})"
        );
    }
}

fn softmax_row(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

const SHAPES: &[(usize, usize)] = &[(1, 1), (3, 1), (2, 5), (4, 17), (3, 128), (130, 513)];

#[test]
fn softmax_matches_reference() {
    let mut rng = StdRng::seed_from_u64(30);
    for &(rows, cols) in SHAPES {
        // Wide logits plus a large offset: stability needs the max subtracted.
        for (lo, hi) in [(-3.0, 3.0), (-40.0, 40.0), (950.0, 1000.0)] {
            let x = rand_vec(&mut rng, rows * cols, lo, hi);
            let mut y = vec![f32::NAN; rows * cols];
            softmax(&x, rows, cols, &mut y);
            let want: Vec<f64> = x
                .chunks(cols)
                .flat_map(|r| softmax_row(&r.iter().map(|&v| v as f64).collect::<Vec<_>>()))
                .collect();
            assert_close(
                &y,
                &want,
                5e-6,
                1e-30,
                &format!("softmax {rows}x{cols} [{lo}, {hi})"),
            );
        }
    }
    let mut y = [0.0; 3];
    softmax(&[f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY], 1, 3, &mut y);
    assert_eq!(y, [0.0, 1.0, 0.0]);
}

#[test]
fn softmax_backward_matches_formula_and_finite_differences() {
    let mut rng = StdRng::seed_from_u64(31);
    for &(rows, cols) in SHAPES {
        let x = rand_vec(&mut rng, rows * cols, -3.0, 3.0);
        let dy = rand_vec(&mut rng, rows * cols, -1.0, 1.0);
        let mut y = vec![0.0; rows * cols];
        softmax(&x, rows, cols, &mut y);
        let mut dx = vec![f32::NAN; rows * cols];
        softmax_backward(&y, &dy, rows, cols, &mut dx);

        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut want = Vec::new();
        for (xr, gr) in x64.chunks(cols).zip(dy.chunks(cols)) {
            let p = softmax_row(xr);
            let dot: f64 = p.iter().zip(gr).map(|(p, &g)| p * g as f64).sum();
            want.extend(p.iter().zip(gr).map(|(p, &g)| p * (g as f64 - dot)));
        }
        let what = format!("softmax_backward {rows}x{cols}");
        assert_close(&dx, &want, 1e-5, 1e-6, &what);

        // Finite differences of L = Σ softmax(x)⊙dy, at up to 64 entries.
        let step = x64.len().div_ceil(64);
        for i in (0..x64.len()).step_by(step) {
            let (r, h) = (i / cols, 1e-6);
            let row = |xr: &[f64]| -> f64 {
                softmax_row(xr)
                    .iter()
                    .zip(&dy[r * cols..])
                    .map(|(p, &g)| p * g as f64)
                    .sum()
            };
            let mut xr = x64[r * cols..(r + 1) * cols].to_vec();
            xr[i % cols] += h;
            let lp = row(&xr);
            xr[i % cols] -= 2.0 * h;
            let lm = row(&xr);
            let fd = (lp - lm) / (2.0 * h);
            assert!(
                (dx[i] as f64 - fd).abs() < 1e-5,
                "{what}[{i}]: {} vs finite differences {fd}",
                dx[i]
            );
        }
    }
}
