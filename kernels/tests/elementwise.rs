//! Elementwise kernels against naive f64 references.

use fym_kernels::cpu::elementwise::{
    add_assign, affine_scalar, axpy, binary, gelu_tanh, gelu_tanh_backward, silu, silu_backward,
    BinaryOp,
};
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

/// Row-major strides of `shape`, with 0 where the dim is 1 (broadcast) and `out` is larger.
fn bcast_offset(shape: &[usize], idx: &[usize]) -> usize {
    let mut off = 0;
    for (d, &n) in shape.iter().enumerate() {
        off = off * n + if n == 1 { 0 } else { idx[d] };
    }
    off
}

fn reference_binary(
    op: BinaryOp,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out_shape: &[usize],
) -> Vec<f64> {
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0; out_shape.len()];
    for flat in 0..n {
        let mut rem = flat;
        for d in (0..out_shape.len()).rev() {
            idx[d] = rem % out_shape[d];
            rem /= out_shape[d];
        }
        let x = a[bcast_offset(a_shape, &idx)] as f64;
        let y = b[bcast_offset(b_shape, &idx)] as f64;
        out.push(match op {
            BinaryOp::Add => x + y,
            BinaryOp::Sub => x - y,
            BinaryOp::Mul => x * y,
            BinaryOp::Div => x / y,
        });
    }
    out
}

#[test]
fn binary_broadcasting_matches_reference() {
    let mut rng = StdRng::seed_from_u64(1);
    let cases: &[(&[usize], &[usize], &[usize])] = &[
        (&[2, 3, 4], &[2, 3, 4], &[2, 3, 4]),
        (&[2, 3, 4], &[2, 1, 4], &[2, 3, 4]),
        (&[2, 1, 4], &[2, 3, 4], &[2, 3, 4]),
        (&[5, 7], &[1, 7], &[5, 7]),
        (&[5, 7], &[5, 1], &[5, 7]),
        (&[1, 7], &[5, 1], &[5, 7]),
        (&[3, 1, 5], &[1, 4, 1], &[3, 4, 5]),
        (&[1], &[1], &[1]),
        (&[1, 1], &[1, 1], &[3, 2]),
        (&[2, 1, 3, 1], &[1, 5, 3, 2], &[2, 5, 3, 2]),
        (&[4, 1, 1, 6], &[4, 3, 2, 6], &[4, 3, 2, 6]),
        (&[], &[], &[]),
        // Large enough for the threaded path, with segments crossing task boundaries.
        (&[7, 33, 301], &[7, 1, 301], &[7, 33, 301]),
        (&[70_001], &[70_001], &[70_001]),
        (&[1000, 67], &[1000, 1], &[1000, 67]),
    ];
    for &(a_shape, b_shape, out_shape) in cases {
        let a = rand_vec(&mut rng, a_shape.iter().product(), -2.0, 2.0);
        // Divisors away from 0.
        let b: Vec<f32> = rand_vec(&mut rng, b_shape.iter().product(), 0.5, 2.0)
            .into_iter()
            .map(|v| if rng.gen_bool(0.5) { v } else { -v })
            .collect();
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            let mut out = vec![f32::NAN; out_shape.iter().product()];
            binary(op, &a, a_shape, &b, b_shape, &mut out, out_shape).unwrap();
            let want = reference_binary(op, &a, a_shape, &b, b_shape, out_shape);
            let what = format!("{op:?} {a_shape:?} {b_shape:?}");
            assert_close(&out, &want, 1e-6, 1e-7, &what);
        }
    }
}

#[test]
fn binary_rejects_bad_shapes() {
    let (a, b) = (vec![0.0; 6], vec![0.0; 6]);
    let mut out = vec![0.0; 6];
    /// (a shape, b shape, out shape, out buffer length)
    type Case<'a> = (&'a [usize], &'a [usize], &'a [usize], usize);
    let bad: &[Case] = &[
        (&[2, 3], &[6], &[2, 3], 6),    // rank
        (&[2, 3], &[3, 2], &[2, 3], 6), // dim neither 1 nor out
        (&[2, 3], &[2, 3], &[2, 3], 5), // out buffer
        (&[2, 3], &[2, 3], &[3, 3], 9), // a too short for out dims
    ];
    for &(sa, sb, so, n) in bad {
        let mut o = vec![0.0; n];
        let err = binary(BinaryOp::Add, &a, sa, &b, sb, &mut o, so)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("binary:") && err.contains("Add"), "{err}");
    }
    let err = binary(
        BinaryOp::Mul,
        &a[..5],
        &[2, 3],
        &b,
        &[2, 3],
        &mut out,
        &[2, 3],
    )
    .unwrap_err();
    assert!(err.to_string().contains("[2, 3]"), "{err}");
}

#[test]
fn scalar_ops_match_reference() {
    let mut rng = StdRng::seed_from_u64(2);
    for n in [0, 1, 13, 100_003] {
        let x = rand_vec(&mut rng, n, -3.0, 3.0);
        let y0 = rand_vec(&mut rng, n, -3.0, 3.0);

        let mut acc = y0.clone();
        add_assign(&mut acc, &x);
        let want: Vec<f64> = x
            .iter()
            .zip(&y0)
            .map(|(&a, &b)| a as f64 + b as f64)
            .collect();
        assert_close(&acc, &want, 1e-7, 0.0, "add_assign");

        let mut y = y0.clone();
        axpy(-0.75, &x, &mut y);
        let want: Vec<f64> = x
            .iter()
            .zip(&y0)
            .map(|(&a, &b)| b as f64 - 0.75 * a as f64)
            .collect();
        assert_close(&y, &want, 1e-6, 1e-6, "axpy");

        let mut out = vec![0.0; n];
        affine_scalar(&x, 1.5, -0.25, &mut out);
        let want: Vec<f64> = x.iter().map(|&a| 1.5 * a as f64 - 0.25).collect();
        assert_close(&out, &want, 1e-6, 1e-7, "affine_scalar");
    }
}

const C: f64 = 0.797_884_560_802_865_4; // √(2/π)
const A: f64 = 0.044_715;

fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + (C * (x + A * x * x * x)).tanh())
}
fn gelu_grad64(x: f64) -> f64 {
    let t = (C * (x + A * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * C * (1.0 + 3.0 * A * x * x)
}
fn silu64(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}
fn silu_grad64(x: f64) -> f64 {
    let s = 1.0 / (1.0 + (-x).exp());
    s * (1.0 + x * (1.0 - s))
}

/// Inputs covering the interesting ranges: dense near 0, the saturating tails, extreme values.
fn activation_inputs(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let mut x = rand_vec(rng, n, -8.0, 8.0);
    x.extend_from_slice(&[
        0.0, -0.0, 1e-6, -1e-6, 20.0, -20.0, 90.0, -90.0, 1e4, -1e4, 3.0, -3.0,
    ]);
    x
}

#[test]
fn activations_match_reference() {
    let mut rng = StdRng::seed_from_u64(3);
    for n in [5, 1000, 90_000] {
        let x = activation_inputs(&mut rng, n);
        let mut out = vec![0.0; x.len()];
        gelu_tanh(&x, &mut out);
        let want: Vec<f64> = x.iter().map(|&v| gelu64(v as f64)).collect();
        // 1 + tanh(u) cancels in f64 too once tanh(u) ≈ −1, so the reference is only good to
        // ~1e-16·|x| absolute there.
        assert_close(&out, &want, 2e-6, 1e-12, "gelu_tanh");
        silu(&x, &mut out);
        let want: Vec<f64> = x.iter().map(|&v| silu64(v as f64)).collect();
        assert_close(&out, &want, 2e-6, 1e-30, "silu");
    }
}

#[test]
fn activation_backward_matches_formula_and_finite_differences() {
    let mut rng = StdRng::seed_from_u64(4);
    for n in [7, 90_000] {
        let x = activation_inputs(&mut rng, n);
        let dy = rand_vec(&mut rng, x.len(), -2.0, 2.0);
        let mut dx = vec![0.0; x.len()];
        type Backward = fn(&[f32], &[f32], &mut [f32]);
        type Reference = (fn(f64) -> f64, fn(f64) -> f64);
        let kernels: [(&str, Backward, Reference); 2] = [
            (
                "gelu_tanh_backward",
                gelu_tanh_backward,
                (gelu64, gelu_grad64),
            ),
            ("silu_backward", silu_backward, (silu64, silu_grad64)),
        ];
        for (name, kernel, (f, df)) in kernels {
            kernel(&x, &dy, &mut dx);
            let want: Vec<f64> = x
                .iter()
                .zip(&dy)
                .map(|(&v, &g)| g as f64 * df(v as f64))
                .collect();
            assert_close(&dx, &want, 1e-5, 1e-6, name);
            // Central differences of the f64 forward (step relative to |x|).
            let fd: Vec<f64> = x
                .iter()
                .zip(&dy)
                .map(|(&v, &g)| {
                    let v = v as f64;
                    let h = 1e-6 * v.abs().max(1.0);
                    g as f64 * (f(v + h) - f(v - h)) / (2.0 * h)
                })
                .collect();
            assert_close(
                &dx,
                &fd,
                1e-5,
                1e-5,
                &format!("{name} vs finite differences"),
            );
        }
    }
}
