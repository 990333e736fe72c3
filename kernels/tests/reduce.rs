//! Reductions against naive f64 references.

use fym_kernels::cpu::reduce::{sum_all, sum_axis, sum_to_shape};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn rand_vec(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// Naive sum to `target` in f64: every element added into its broadcast-source slot.
fn reference_sum_to(x: &[f32], shape: &[usize], target: &[usize]) -> Vec<f64> {
    let mut out = vec![0f64; target.iter().product()];
    let mut idx = vec![0; shape.len()];
    for (flat, &v) in x.iter().enumerate() {
        let mut rem = flat;
        for d in (0..shape.len()).rev() {
            idx[d] = rem % shape[d];
            rem /= shape[d];
        }
        let mut o = 0;
        for (d, &t) in target.iter().enumerate() {
            o = o * t + if t == 1 { 0 } else { idx[d] };
        }
        out[o] += v as f64;
    }
    out
}

#[test]
fn sum_to_shape_matches_reference() {
    let mut rng = StdRng::seed_from_u64(10);
    let cases: &[(&[usize], &[usize])] = &[
        (&[2, 3, 4], &[1, 3, 1]),
        (&[2, 3, 4], &[2, 1, 4]),
        (&[2, 3, 4], &[1, 1, 1]),
        (&[2, 3, 4], &[2, 3, 4]),
        (&[2, 3, 4], &[1, 3, 4]),
        (&[2, 3, 4], &[2, 3, 1]),
        (&[4, 5], &[1, 5]),
        (&[4, 5], &[4, 1]),
        (&[1, 5, 1], &[1, 1, 1]),
        (&[3, 1, 2, 5], &[1, 1, 2, 1]),
        (&[7], &[1]),
        (&[], &[]),
        (&[0, 3], &[1, 3]),
        // Threaded paths: outermost dim reduced (per-task partials) and kept (disjoint blocks).
        (&[40, 50, 33], &[1, 1, 33]),
        (&[40, 50, 33], &[40, 1, 33]),
        (&[40, 50, 33], &[40, 50, 1]),
        (&[40, 50, 33], &[1, 50, 1]),
        (&[3, 30_000], &[3, 1]),
        (&[1, 70_000], &[1, 1]),
    ];
    for &(shape, target) in cases {
        let x = rand_vec(&mut rng, shape.iter().product());
        let mut out = vec![f32::NAN; target.iter().product()];
        sum_to_shape(&x, shape, target, &mut out).unwrap();
        let want = reference_sum_to(&x, shape, target);
        assert_close(
            &out,
            &want,
            1e-6,
            &format!("sum_to_shape {shape:?} -> {target:?}"),
        );
    }
}

#[test]
fn sum_axis_matches_reference() {
    let mut rng = StdRng::seed_from_u64(11);
    let shapes: &[&[usize]] = &[&[1], &[7], &[3, 5], &[2, 3, 4], &[1, 5, 1], &[300, 257]];
    for &shape in shapes {
        let x = rand_vec(&mut rng, shape.iter().product());
        for axis in 0..shape.len() {
            let mut target = shape.to_vec();
            target[axis] = 1;
            let mut out = vec![f32::NAN; target.iter().product()];
            sum_axis(&x, shape, axis, &mut out).unwrap();
            let want = reference_sum_to(&x, shape, &target);
            assert_close(
                &out,
                &want,
                1e-6,
                &format!("sum_axis {shape:?} axis {axis}"),
            );
        }
    }
}

#[test]
fn sum_all_accumulates_in_f64() {
    let mut rng = StdRng::seed_from_u64(12);
    for n in [0, 1, 17, 200_001] {
        let x = rand_vec(&mut rng, n);
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        assert!(
            (sum_all(&x) - want).abs() < 1e-9 * (1.0 + want.abs()),
            "n {n}"
        );
    }
    // 1 + 2^24 tiny values: an f32 accumulator would stay at 2^24.
    let mut x = vec![1.0f32; 1 << 24];
    x.push(16_777_216.0);
    assert_eq!(sum_all(&x), 33_554_432.0);
}

#[test]
fn reductions_reject_bad_shapes() {
    let x = vec![0.0; 6];
    let mut out = vec![0.0; 3];
    let err = sum_axis(&x, &[2, 3], 2, &mut out).unwrap_err().to_string();
    assert!(
        err.starts_with("sum_axis:") && err.contains("axis 2"),
        "{err}"
    );
    let err = sum_axis(&x, &[2, 3], 0, &mut out[..2])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("sum_axis:"), "{err}");
    let err = sum_to_shape(&x, &[2, 3], &[2], &mut out)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("sum_to_shape:") && err.contains("ranks"),
        "{err}"
    );
    let err = sum_to_shape(&x, &[2, 3], &[2, 2], &mut out)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("sum_to_shape:") && err.contains("[2, 2]"),
        "{err}"
    );
    let err = sum_to_shape(&x[..5], &[2, 3], &[1, 3], &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("sum_to_shape:"), "{err}");
}
