//! LayerNorm / RMSNorm forward and backward against f64 references and finite differences.

use fym_kernels::cpu::norm::{layer_norm, layer_norm_backward, rms_norm, rms_norm_backward};
use rand::{rngs::StdRng, Rng, SeedableRng};

const EPS: f32 = 1e-6;

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

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// f64 LayerNorm of one row: (y, mean, rstd).
fn ln_row(x: &[f64], w: Option<&[f64]>, b: Option<&[f64]>) -> (Vec<f64>, f64, f64) {
    let n = x.len() as f64;
    let mu = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / n;
    let r = 1.0 / (var + EPS as f64).sqrt();
    let y = (0..x.len())
        .map(|j| (x[j] - mu) * r * w.map_or(1.0, |w| w[j]) + b.map_or(0.0, |b| b[j]))
        .collect();
    (y, mu, r)
}

fn rms_row(x: &[f64], w: Option<&[f64]>) -> (Vec<f64>, f64) {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + EPS as f64).sqrt();
    (
        (0..x.len())
            .map(|j| x[j] * r * w.map_or(1.0, |w| w[j]))
            .collect(),
        r,
    )
}

/// Σ_rows Σ_j f(row)_j · g_j: the scalar whose gradient the backward kernels compute.
fn loss(x: &[f64], cols: usize, g: &[f64], f: &dyn Fn(&[f64]) -> Vec<f64>) -> f64 {
    x.chunks(cols)
        .zip(g.chunks(cols))
        .map(|(xr, gr)| f(xr).iter().zip(gr).map(|(y, g)| y * g).sum::<f64>())
        .sum()
}

/// Central-difference gradient of `loss` w.r.t. `v` at up to `max_checks` evenly spread entries.
fn finite_diff(
    v: &[f64],
    max_checks: usize,
    mut loss_at: impl FnMut(&[f64]) -> f64,
) -> Vec<(usize, f64)> {
    let step = v.len().div_ceil(max_checks).max(1);
    (0..v.len())
        .step_by(step)
        .map(|i| {
            let h = 1e-6 * v[i].abs().max(1.0);
            let mut p = v.to_vec();
            p[i] = v[i] + h;
            let lp = loss_at(&p);
            p[i] = v[i] - h;
            let lm = loss_at(&p);
            (i, (lp - lm) / (2.0 * h))
        })
        .collect()
}

fn assert_fd(got: &[f32], fd: &[(usize, f64)], what: &str) {
    for &(i, want) in fd {
        let err = (got[i] as f64 - want).abs();
        assert!(
            err <= 1e-4 * (1.0 + want.abs()),
            "{what}[{i}]: got {}, finite differences {want}",
            got[i]
        );
    }
}

const SHAPES: &[(usize, usize)] = &[(1, 1), (1, 2), (3, 7), (5, 64), (2, 1000), (70, 1024)];

#[test]
fn layer_norm_forward_matches_reference() {
    let mut rng = StdRng::seed_from_u64(20);
    for &(rows, cols) in SHAPES {
        for offset in [0.0f32, 100.0] {
            let x: Vec<f32> = rand_vec(&mut rng, rows * cols, -2.0, 2.0)
                .iter()
                .map(|v| v + offset)
                .collect();
            let w = rand_vec(&mut rng, cols, 0.5, 1.5);
            let b = rand_vec(&mut rng, cols, -1.0, 1.0);
            let (w64, b64) = (f64s(&w), f64s(&b));
            for (use_w, use_b) in [(false, false), (true, false), (false, true), (true, true)] {
                let (wo, bo) = (use_w.then_some(&w[..]), use_b.then_some(&b[..]));
                let mut out = vec![f32::NAN; rows * cols];
                let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
                layer_norm(&x, rows, cols, EPS, wo, bo, &mut out, &mut mean, &mut rstd);
                let (mut want, mut want_m, mut want_r) = (vec![], vec![], vec![]);
                for xr in x.chunks(cols) {
                    let (y, m, r) = ln_row(
                        &f64s(xr),
                        use_w.then_some(&w64[..]),
                        use_b.then_some(&b64[..]),
                    );
                    want.extend(y);
                    want_m.push(m);
                    want_r.push(r);
                }
                let what = format!("layer_norm {rows}x{cols} offset {offset} w {use_w} b {use_b}");
                // A row of one element normalizes to 0 exactly; atol covers outputs near 0.
                assert_close(&out, &want, 2e-6, 2e-6, &what);
                assert_close(&mean, &want_m, 1e-6, 1e-7, &format!("{what} mean"));
                assert_close(&rstd, &want_r, 2e-6, 0.0, &format!("{what} rstd"));
            }
        }
    }
}

#[test]
fn layer_norm_backward_matches_formula_and_finite_differences() {
    let mut rng = StdRng::seed_from_u64(21);
    for &(rows, cols) in SHAPES {
        let x = rand_vec(&mut rng, rows * cols, -2.0, 2.0);
        let g = rand_vec(&mut rng, rows * cols, -1.0, 1.0);
        let w = rand_vec(&mut rng, cols, 0.5, 1.5);
        let b = rand_vec(&mut rng, cols, -1.0, 1.0);
        let (x64, g64, w64, b64) = (f64s(&x), f64s(&g), f64s(&w), f64s(&b));
        for affine in [false, true] {
            let wo = affine.then_some(&w[..]);
            let mut out = vec![0.0; rows * cols];
            let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
            let bo = affine.then_some(&b[..]);
            layer_norm(&x, rows, cols, EPS, wo, bo, &mut out, &mut mean, &mut rstd);
            let mut dx = vec![f32::NAN; rows * cols];
            let (mut dw, mut db) = (vec![f32::NAN; cols], vec![f32::NAN; cols]);
            let (dwo, dbo) = if affine {
                (Some(&mut dw[..]), Some(&mut db[..]))
            } else {
                (None, None)
            };
            layer_norm_backward(&x, rows, cols, wo, &mean, &rstd, &g, &mut dx, dwo, dbo);

            // Analytic reference (WAN_ARCH §9) in f64.
            let (mut want_dx, mut want_dw, mut want_db) =
                (vec![], vec![0f64; cols], vec![0f64; cols]);
            for (xr, gr) in x64.chunks(cols).zip(g64.chunks(cols)) {
                let (_, m, r) = ln_row(xr, None, None);
                let xh: Vec<f64> = xr.iter().map(|v| (v - m) * r).collect();
                let gh: Vec<f64> = (0..cols)
                    .map(|j| gr[j] * if affine { w64[j] } else { 1.0 })
                    .collect();
                let mg = gh.iter().sum::<f64>() / cols as f64;
                let mgx = gh.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
                want_dx.extend((0..cols).map(|j| r * (gh[j] - mg - xh[j] * mgx)));
                for j in 0..cols {
                    want_dw[j] += gr[j] * xh[j];
                    want_db[j] += gr[j];
                }
            }
            let what = format!("layer_norm_backward {rows}x{cols} affine {affine}");
            assert_close(&dx, &want_dx, 1e-5, 1e-5, &what);
            if affine {
                assert_close(&dw, &want_dw, 1e-5, 1e-5, &format!("{what} dweight"));
                assert_close(&db, &want_db, 1e-5, 1e-5, &format!("{what} dbias"));
            }

            // Finite differences of the f64 forward.
            let (wr, br) = (affine.then_some(&w64[..]), affine.then_some(&b64[..]));
            let fd = finite_diff(&x64, 64, |xp| {
                loss(xp, cols, &g64, &|r| ln_row(r, wr, br).0)
            });
            assert_fd(&dx, &fd, &format!("{what} dx"));
            if affine {
                let fd = finite_diff(&w64, 32, |wp| {
                    loss(&x64, cols, &g64, &|r| ln_row(r, Some(wp), Some(&b64)).0)
                });
                assert_fd(&dw, &fd, &format!("{what} dweight"));
                let fd = finite_diff(&b64, 32, |bp| {
                    loss(&x64, cols, &g64, &|r| ln_row(r, Some(&w64), Some(bp)).0)
                });
                assert_fd(&db, &fd, &format!("{what} dbias"));
            }
        }
    }
}

#[test]
fn rms_norm_forward_matches_reference() {
    let mut rng = StdRng::seed_from_u64(22);
    for &(rows, cols) in SHAPES {
        let x = rand_vec(&mut rng, rows * cols, -2.0, 2.0);
        let w = rand_vec(&mut rng, cols, 0.5, 1.5);
        let w64 = f64s(&w);
        for use_w in [false, true] {
            let mut out = vec![f32::NAN; rows * cols];
            let mut rstd = vec![0.0; rows];
            rms_norm(
                &x,
                rows,
                cols,
                EPS,
                use_w.then_some(&w[..]),
                &mut out,
                &mut rstd,
            );
            let (mut want, mut want_r) = (vec![], vec![]);
            for xr in x.chunks(cols) {
                let (y, r) = rms_row(&f64s(xr), use_w.then_some(&w64[..]));
                want.extend(y);
                want_r.push(r);
            }
            let what = format!("rms_norm {rows}x{cols} w {use_w}");
            assert_close(&out, &want, 2e-6, 1e-7, &what);
            assert_close(&rstd, &want_r, 2e-6, 0.0, &format!("{what} rstd"));
        }
    }
}

#[test]
fn rms_norm_backward_matches_formula_and_finite_differences() {
    let mut rng = StdRng::seed_from_u64(23);
    for &(rows, cols) in SHAPES {
        let x = rand_vec(&mut rng, rows * cols, -2.0, 2.0);
        let g = rand_vec(&mut rng, rows * cols, -1.0, 1.0);
        let w = rand_vec(&mut rng, cols, 0.5, 1.5);
        let (x64, g64, w64) = (f64s(&x), f64s(&g), f64s(&w));
        for use_w in [false, true] {
            let wo = use_w.then_some(&w[..]);
            let mut out = vec![0.0; rows * cols];
            let mut rstd = vec![0.0; rows];
            rms_norm(&x, rows, cols, EPS, wo, &mut out, &mut rstd);
            let mut dx = vec![f32::NAN; rows * cols];
            let mut dw = vec![f32::NAN; cols];
            rms_norm_backward(&x, rows, cols, wo, &rstd, &g, &mut dx, Some(&mut dw));

            let (mut want_dx, mut want_dw) = (vec![], vec![0f64; cols]);
            for (xr, gr) in x64.chunks(cols).zip(g64.chunks(cols)) {
                let (_, r) = rms_row(xr, None);
                let gh: Vec<f64> = (0..cols)
                    .map(|j| gr[j] * if use_w { w64[j] } else { 1.0 })
                    .collect();
                let m = gh.iter().zip(xr).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
                want_dx.extend((0..cols).map(|j| r * gh[j] - xr[j] * r * r * r * m));
                for j in 0..cols {
                    want_dw[j] += gr[j] * xr[j] * r;
                }
            }
            let what = format!("rms_norm_backward {rows}x{cols} w {use_w}");
            assert_close(&dx, &want_dx, 1e-5, 1e-5, &what);
            assert_close(&dw, &want_dw, 1e-5, 1e-5, &format!("{what} dweight"));

            let wr = use_w.then_some(&w64[..]);
            let fd = finite_diff(&x64, 64, |xp| loss(xp, cols, &g64, &|r| rms_row(r, wr).0));
            assert_fd(&dx, &fd, &format!("{what} dx"));
            let fd = finite_diff(&w64, 32, |wp| {
                loss(&x64, cols, &g64, &|r| rms_row(r, Some(wp)).0)
            });
            if use_w {
                assert_fd(&dw, &fd, &format!("{what} dweight"));
            }
        }
    }
}
