//! Permute, slice, concat, index_select/index_add against naive index arithmetic.

use fym_kernels::cpu::layout::{
    concat_axis, index_add, index_select, permute, slice_axis, slice_axis_add_back,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn rand_vec(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

fn all_perms(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in all_perms(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

#[test]
fn permute_matches_reference() {
    let mut rng = StdRng::seed_from_u64(60);
    let shapes: &[&[usize]] = &[
        &[],
        &[5],
        &[3, 4],
        &[2, 3, 4],
        &[2, 1, 3],
        &[1, 1, 4],
        &[2, 3, 4, 5],
        &[3, 1, 2, 1, 4],
        &[64, 40, 33],
    ];
    for &shape in shapes {
        let x = rand_vec(&mut rng, shape.iter().product());
        let perms = if shape.len() <= 4 {
            all_perms(shape.len())
        } else {
            vec![vec![4, 0, 3, 1, 2], vec![0, 2, 1, 4, 3]]
        };
        for perm in perms {
            let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let mut out = vec![f32::NAN; x.len()];
            permute(&x, shape, &perm, &mut out).unwrap();
            for (flat, &v) in out.iter().enumerate() {
                let oi = unravel(flat, &out_shape);
                let mut ii = vec![0; shape.len()];
                for (k, &p) in perm.iter().enumerate() {
                    ii[p] = oi[k];
                }
                assert_eq!(
                    v,
                    x[ravel(&ii, shape)],
                    "shape {shape:?} perm {perm:?} at {oi:?}"
                );
            }
        }
    }
}

#[test]
fn slice_and_add_back_match_reference() {
    let mut rng = StdRng::seed_from_u64(61);
    let shapes: &[&[usize]] = &[&[7], &[3, 5], &[2, 3, 4], &[1, 6, 1], &[30, 50, 60]];
    for &shape in shapes {
        let x = rand_vec(&mut rng, shape.iter().product());
        for axis in 0..shape.len() {
            let n = shape[axis];
            for (start, len) in [(0, n), (0, 1), (n - 1, 1), (n / 3, n - n / 3), (n / 2, 0)] {
                let mut sub_shape = shape.to_vec();
                sub_shape[axis] = len;
                let mut out = vec![f32::NAN; sub_shape.iter().product()];
                slice_axis(&x, shape, axis, start, len, &mut out).unwrap();
                let what = format!("{shape:?} axis {axis} {start}..+{len}");
                for (flat, &v) in out.iter().enumerate() {
                    let mut idx = unravel(flat, &sub_shape);
                    idx[axis] += start;
                    assert_eq!(v, x[ravel(&idx, shape)], "slice_axis {what}");
                }
                // Add back onto a non-zero destination: dst + scatter(src).
                let dst0 = rand_vec(&mut rng, x.len());
                let mut dst = dst0.clone();
                slice_axis_add_back(&out, shape, axis, start, len, &mut dst).unwrap();
                let mut want = dst0.clone();
                for (flat, &v) in out.iter().enumerate() {
                    let mut idx = unravel(flat, &sub_shape);
                    idx[axis] += start;
                    want[ravel(&idx, shape)] += v;
                }
                assert_eq!(dst, want, "slice_axis_add_back {what}");
            }
        }
    }
}

#[test]
fn concat_matches_reference() {
    let mut rng = StdRng::seed_from_u64(62);
    let bases: &[&[usize]] = &[&[4], &[2, 3, 4], &[3, 1, 5], &[20, 40, 50]];
    for &base in bases {
        for axis in 0..base.len() {
            let sizes = [base[axis], 1, 3];
            let shapes: Vec<Vec<usize>> = sizes
                .iter()
                .map(|&n| {
                    let mut s = base.to_vec();
                    s[axis] = n;
                    s
                })
                .collect();
            let data: Vec<Vec<f32>> = shapes
                .iter()
                .map(|s| rand_vec(&mut rng, s.iter().product()))
                .collect();
            let inputs: Vec<(&[f32], &[usize])> = data
                .iter()
                .zip(&shapes)
                .map(|(d, s)| (&d[..], &s[..]))
                .collect();
            let mut out_shape = base.to_vec();
            out_shape[axis] = sizes.iter().sum();
            let mut out = vec![f32::NAN; out_shape.iter().product()];
            concat_axis(&inputs, axis, &mut out).unwrap();
            for (flat, &v) in out.iter().enumerate() {
                let mut idx = unravel(flat, &out_shape);
                let mut which = 0;
                while idx[axis] >= sizes[which] {
                    idx[axis] -= sizes[which];
                    which += 1;
                }
                assert_eq!(
                    v,
                    data[which][ravel(&idx, &shapes[which])],
                    "concat {base:?} axis {axis}"
                );
            }
        }
    }
}

#[test]
fn index_select_and_add_match_reference() {
    let mut rng = StdRng::seed_from_u64(63);
    let shapes: &[&[usize]] = &[&[6], &[5, 4], &[2, 7, 3], &[8, 16, 600]];
    for &shape in shapes {
        let x = rand_vec(&mut rng, shape.iter().product());
        for axis in 0..shape.len() {
            let n = shape[axis];
            // Sparse, unordered, with a repeat (repeats accumulate in index_add).
            let indices = vec![n - 1, 0, n / 2, n - 1];
            let mut sub_shape = shape.to_vec();
            sub_shape[axis] = indices.len();
            let mut out = vec![f32::NAN; sub_shape.iter().product()];
            index_select(&x, shape, axis, &indices, &mut out).unwrap();
            let dst0 = rand_vec(&mut rng, x.len());
            let mut dst: Vec<f64> = dst0.iter().map(|&v| v as f64).collect();
            for (flat, &v) in out.iter().enumerate() {
                let mut idx = unravel(flat, &sub_shape);
                idx[axis] = indices[idx[axis]];
                assert_eq!(
                    v,
                    x[ravel(&idx, shape)],
                    "index_select {shape:?} axis {axis}"
                );
                dst[ravel(&idx, shape)] += v as f64;
            }
            let mut got = dst0.clone();
            index_add(&out, shape, axis, &indices, &mut got).unwrap();
            for (i, (&g, &w)) in got.iter().zip(&dst).enumerate() {
                assert!(
                    (g as f64 - w).abs() < 1e-6,
                    "index_add {shape:?} axis {axis} [{i}]: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn layout_ops_reject_bad_input() {
    let x = vec![0.0; 24];
    let mut out = vec![0.0; 24];
    let s: &[usize] = &[2, 3, 4];
    for perm in [&[0, 1][..], &[0, 1, 1], &[0, 1, 3]] {
        let err = permute(&x, s, perm, &mut out).unwrap_err().to_string();
        assert!(err.starts_with("permute:"), "{err}");
    }
    let err = permute(&x, s, &[2, 1, 0], &mut out[..23])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("permute:") && err.contains("23"), "{err}");

    let err = slice_axis(&x, s, 3, 0, 1, &mut out)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("slice_axis:") && err.contains("axis 3"),
        "{err}"
    );
    let err = slice_axis(&x, s, 1, 2, 2, &mut out[..16])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("slice_axis:") && err.contains("2..4"),
        "{err}"
    );
    let err = slice_axis(&x, s, 1, 0, 2, &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("slice_axis:"), "{err}");
    let err = slice_axis_add_back(&x[..8], s, 1, 3, 1, &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("slice_axis_add_back:"), "{err}");

    let err = concat_axis(&[], 0, &mut out).unwrap_err().to_string();
    assert!(err.starts_with("concat_axis:"), "{err}");
    let err = concat_axis(&[(&x[..], s), (&x[..6], &[2, 3, 1])], 1, &mut out)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("concat_axis:") && err.contains("input 1"),
        "{err}"
    );
    let err = concat_axis(&[(&x[..], s), (&x[..6], &[2, 3, 1])], 2, &mut out)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("concat_axis:") && err.contains("30"),
        "{err}"
    );

    let err = index_select(&x, s, 1, &[0, 3], &mut out[..16])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("index_select:") && err.contains("index 3"),
        "{err}"
    );
    let err = index_add(&x[..16], s, 1, &[1, 2, 0], &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("index_add:"), "{err}");
}
