//! CUDA kernels against naive f64 references written here, on ragged sizes, in f32 (relative
//! error ≤ 1e-5) and bf16 (≤ 1e-2, reference computed from the bf16-rounded inputs). The error is
//! measured relative to the largest magnitude of the reference tensor. Without a GPU every test
//! prints why it skipped; opening the device must then be a clear error, never a panic.

use std::sync::Arc;

use fym_kernels::cpu::elementwise::BinaryOp;
use fym_kernels::cpu::rope::RopeTable;
use fym_kernels::cuda::{
    self, bf16, elementwise, norm, rope, softmax, CudaDevice, CudaFloat, CudaRopeTable,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;
use common::{assert_close, assert_close_to_scale, download, gpu, quantize, random, upload};

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn opening_a_device_never_panics_and_says_what_to_do() {
    match CudaDevice::open(0) {
        Ok(dev) => {
            let again = CudaDevice::open(0).unwrap();
            assert!(Arc::ptr_eq(&dev, &again), "one CudaDevice per ordinal");
            let err = CudaDevice::open(10_000).unwrap_err().to_string();
            assert!(err.contains("10000"), "{err}");
            // Buffers come from the stream-ordered pool, which keeps freed memory for reuse.
            assert!(
                dev.caches_freed_memory().unwrap(),
                "the pool releases freed memory"
            );
            for n in [1usize << 20, 1 << 22, 1 << 20] {
                let buf = dev.zeros::<f32>(n).unwrap();
                assert_eq!(dev.download(&buf).unwrap().len(), n);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            eprintln!("no GPU here: {msg}");
            assert!(
                msg.contains("--device cpu"),
                "error should tell what to do: {msg}"
            );
            // Asking again is still an error, not a panic.
            assert!(CudaDevice::open(0).is_err());
            assert!(cuda::device_count().is_err() || cuda::device_count().unwrap() == 0);
        }
    }
}

// ---------------------------------------------------------------- elementwise

fn binary_reference(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
    }
}

fn check_binary<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    let out_shape = [3usize, 5, 67];
    let n: usize = out_shape.iter().product();
    let a = quantize::<T>(&random(rng, n, -2.0, 2.0));
    for b_shape in [[3usize, 5, 67], [1, 1, 67], [1, 5, 67], [1, 1, 1]] {
        let b_len: usize = b_shape.iter().product();
        // |b| in [0.5, 2] keeps division well conditioned.
        let b: Vec<f32> = random(rng, b_len, 0.5, 2.0)
            .into_iter()
            .map(|v| if rng.gen::<bool>() { v } else { -v })
            .collect();
        let b = quantize::<T>(&b);
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            let want: Vec<f64> = (0..n)
                .map(|i| binary_reference(op, a[i] as f64, b[i % b_len] as f64))
                .collect();
            let mut out = dev.zeros::<T>(n).unwrap();
            elementwise::binary(
                dev,
                op,
                &upload::<T>(dev, &a),
                &out_shape,
                &upload::<T>(dev, &b),
                &b_shape,
                &mut out,
                &out_shape,
            )
            .unwrap();
            assert_close::<T>(&format!("{op:?} b{b_shape:?}"), &download(dev, &out), &want);
        }
        // Commutative ops also accept the broadcast operand first.
        let want: Vec<f64> = (0..n).map(|i| a[i] as f64 * b[i % b_len] as f64).collect();
        let mut out = dev.zeros::<T>(n).unwrap();
        elementwise::binary(
            dev,
            BinaryOp::Mul,
            &upload::<T>(dev, &b),
            &b_shape,
            &upload::<T>(dev, &a),
            &out_shape,
            &mut out,
            &out_shape,
        )
        .unwrap();
        assert_close::<T>("Mul broadcast first", &download(dev, &out), &want);
    }
    // Any other broadcast (inner dims of either operand, or both at once) expands the operands
    // first; a shape that does not broadcast is an error, not a wrong answer.
    let index = |i: usize, shape: &[usize]| {
        let (i0, i1, i2) = (i / (5 * 67), (i / 67) % 5, i % 67);
        let c = |v: usize, d: usize| if shape[d] == 1 { 0 } else { v };
        (c(i0, 0) * shape[1] + c(i1, 1)) * shape[2] + c(i2, 2)
    };
    for (a_shape, b_shape) in [([3usize, 1, 67], [3usize, 5, 67]), ([3, 5, 1], [1, 5, 67])] {
        let a = quantize::<T>(&random(rng, a_shape.iter().product(), -2.0, 2.0));
        let b = quantize::<T>(&random(rng, b_shape.iter().product(), 0.5, 2.0));
        let want: Vec<f64> = (0..n)
            .map(|i| a[index(i, &a_shape)] as f64 / b[index(i, &b_shape)] as f64)
            .collect();
        let mut out = dev.zeros::<T>(n).unwrap();
        elementwise::binary(
            dev,
            BinaryOp::Div,
            &upload::<T>(dev, &a),
            &a_shape,
            &upload::<T>(dev, &b),
            &b_shape,
            &mut out,
            &out_shape,
        )
        .unwrap();
        let what = format!("Div a{a_shape:?} b{b_shape:?}");
        assert_close::<T>(&what, &download(dev, &out), &want);
    }
    let mut out = dev.zeros::<T>(n).unwrap();
    let err = elementwise::binary(
        dev,
        BinaryOp::Sub,
        &upload::<T>(dev, &a[..3 * 2 * 67]),
        &[3, 2, 67],
        &upload::<T>(dev, &a),
        &out_shape,
        &mut out,
        &out_shape,
    );
    assert!(err.unwrap_err().to_string().contains("do not broadcast"));
}

fn check_unary<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    let n = 10_007;
    let x = quantize::<T>(&random(rng, n, -6.0, 6.0));
    let dy = quantize::<T>(&random(rng, n, -1.0, 1.0));
    let x_dev = upload::<T>(dev, &x);
    let dy_dev = upload::<T>(dev, &dy);
    let mut out = dev.zeros::<T>(n).unwrap();

    let c = (2.0f64 / std::f64::consts::PI).sqrt();
    let a = 0.044715f64;
    let gelu = |x: f64| 0.5 * x * (1.0 + (c * (x + a * x * x * x)).tanh());
    let gelu_grad = |x: f64| {
        let t = (c * (x + a * x * x * x)).tanh();
        0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * a * x * x)
    };
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let silu = |x: f64| x * sigmoid(x);
    let silu_grad = |x: f64| sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x)));

    elementwise::gelu_tanh(dev, &x_dev, &mut out).unwrap();
    let want: Vec<f64> = x.iter().map(|&v| gelu(v as f64)).collect();
    assert_close::<T>("gelu_tanh", &download(dev, &out), &want);

    elementwise::gelu_tanh_backward(dev, &x_dev, &dy_dev, &mut out).unwrap();
    let want: Vec<f64> = (0..n)
        .map(|i| dy[i] as f64 * gelu_grad(x[i] as f64))
        .collect();
    assert_close::<T>("gelu_tanh_backward", &download(dev, &out), &want);

    elementwise::silu(dev, &x_dev, &mut out).unwrap();
    let want: Vec<f64> = x.iter().map(|&v| silu(v as f64)).collect();
    assert_close::<T>("silu", &download(dev, &out), &want);

    elementwise::silu_backward(dev, &x_dev, &dy_dev, &mut out).unwrap();
    let want: Vec<f64> = (0..n)
        .map(|i| dy[i] as f64 * silu_grad(x[i] as f64))
        .collect();
    assert_close::<T>("silu_backward", &download(dev, &out), &want);

    elementwise::affine_scalar(dev, &x_dev, -1.5, 0.25, &mut out).unwrap();
    let want: Vec<f64> = x.iter().map(|&v| -1.5 * v as f64 + 0.25).collect();
    assert_close::<T>("affine_scalar", &download(dev, &out), &want);

    let mut acc = upload::<T>(dev, &dy);
    elementwise::axpy(dev, 0.5, &x_dev, &mut acc).unwrap();
    let want: Vec<f64> = (0..n).map(|i| dy[i] as f64 + 0.5 * x[i] as f64).collect();
    assert_close::<T>("axpy", &download(dev, &acc), &want);

    let mut acc = upload::<T>(dev, &dy);
    elementwise::add_assign(dev, &mut acc, &x_dev).unwrap();
    let want: Vec<f64> = (0..n).map(|i| dy[i] as f64 + x[i] as f64).collect();
    assert_close::<T>("add_assign", &download(dev, &acc), &want);

    let mut short = dev.zeros::<T>(n - 1).unwrap();
    assert!(
        elementwise::silu(dev, &x_dev, &mut short).is_err(),
        "length mismatch must be an error"
    );
}

#[test]
fn elementwise_kernels_match_reference() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(1);
    check_binary::<f32>(&dev, &mut rng);
    check_binary::<bf16>(&dev, &mut rng);
    check_unary::<f32>(&dev, &mut rng);
    check_unary::<bf16>(&dev, &mut rng);
}

// ---------------------------------------------------------------- softmax

const ROW_SHAPES: &[(usize, usize)] = &[(1, 1), (7, 33), (5, 1000), (3, 5000), (40, 17)];

fn softmax_reference(x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let mut y = vec![0.0; rows * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        for c in 0..cols {
            y[r * cols + c] = (row[c] as f64 - max).exp() / sum;
        }
    }
    y
}

fn check_softmax<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    for &(rows, cols) in ROW_SHAPES {
        let n = rows * cols;
        let x = quantize::<T>(&random(rng, n, -8.0, 8.0));
        let mut y_dev = dev.zeros::<T>(n).unwrap();
        softmax::softmax(dev, &upload::<T>(dev, &x), rows, cols, &mut y_dev).unwrap();
        let want = softmax_reference(&x, rows, cols);
        assert_close::<T>(
            &format!("softmax {rows}x{cols}"),
            &download(dev, &y_dev),
            &want,
        );

        let y = quantize::<T>(&want.iter().map(|&v| v as f32).collect::<Vec<_>>());
        let dy = quantize::<T>(&random(rng, n, -1.0, 1.0));
        let mut want_dx = vec![0.0; n];
        for r in 0..rows {
            let dot: f64 = (0..cols)
                .map(|c| dy[r * cols + c] as f64 * y[r * cols + c] as f64)
                .sum();
            for c in 0..cols {
                let i = r * cols + c;
                want_dx[i] = y[i] as f64 * (dy[i] as f64 - dot);
            }
        }
        let mut dx = dev.zeros::<T>(n).unwrap();
        softmax::softmax_backward(
            dev,
            &upload::<T>(dev, &y),
            &upload::<T>(dev, &dy),
            rows,
            cols,
            &mut dx,
        )
        .unwrap();
        assert_close::<T>(
            &format!("softmax_backward {rows}x{cols}"),
            &download(dev, &dx),
            &want_dx,
        );
    }
}

#[test]
fn softmax_kernels_match_reference() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(2);
    check_softmax::<f32>(&dev, &mut rng);
    check_softmax::<bf16>(&dev, &mut rng);
}

// ---------------------------------------------------------------- norms

/// Per-row (mean, rstd) in f64.
fn layer_norm_stats(x: &[f32], rows: usize, cols: usize, eps: f64) -> Vec<(f64, f64)> {
    (0..rows)
        .map(|r| {
            let row = f64s(&x[r * cols..(r + 1) * cols]);
            let mean = row.iter().sum::<f64>() / cols as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
            (mean, 1.0 / (var + eps).sqrt())
        })
        .collect()
}

fn check_layer_norm<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng, affine: bool) {
    let eps = 1e-6f32;
    for &(rows, cols) in ROW_SHAPES {
        let n = rows * cols;
        let x = quantize::<T>(&random(rng, n, -3.0, 5.0));
        let w = quantize::<T>(&random(rng, cols, 0.5, 1.5));
        let b = quantize::<T>(&random(rng, cols, -0.5, 0.5));
        let dy = quantize::<T>(&random(rng, n, -1.0, 1.0));
        let (x_dev, w_dev, b_dev, dy_dev) = (
            upload::<T>(dev, &x),
            upload::<T>(dev, &w),
            upload::<T>(dev, &b),
            upload::<T>(dev, &dy),
        );
        let weight = affine.then_some(&w_dev);
        let bias = affine.then_some(&b_dev);

        let mut out = dev.zeros::<T>(n).unwrap();
        let mut mean = dev.zeros::<f32>(rows).unwrap();
        let mut rstd = dev.zeros::<f32>(rows).unwrap();
        norm::layer_norm(
            dev, &x_dev, rows, cols, eps, weight, bias, &mut out, &mut mean, &mut rstd,
        )
        .unwrap();

        let stats = layer_norm_stats(&x, rows, cols, eps as f64);
        let wv = |c: usize| if affine { w[c] as f64 } else { 1.0 };
        let bv = |c: usize| if affine { b[c] as f64 } else { 0.0 };
        let xhat = |i: usize| (x[i] as f64 - stats[i / cols].0) * stats[i / cols].1;
        let want: Vec<f64> = (0..n)
            .map(|i| xhat(i) * wv(i % cols) + bv(i % cols))
            .collect();
        let tag = format!("layer_norm {rows}x{cols} affine={affine}");
        assert_close::<T>(&tag, &download(dev, &out), &want);
        let got_mean = dev.download(&mean).unwrap();
        let got_rstd = dev.download(&rstd).unwrap();
        // Statistics are f32 for every T; for bf16 inputs they are exact up to f32 rounding.
        assert_close::<f32>(
            &format!("{tag} mean"),
            &got_mean,
            &stats.iter().map(|s| s.0).collect::<Vec<_>>(),
        );
        assert_close::<f32>(
            &format!("{tag} rstd"),
            &got_rstd,
            &stats.iter().map(|s| s.1).collect::<Vec<_>>(),
        );

        let mut want_dx = vec![0.0; n];
        // dx is a difference of three terms that cancel almost exactly on short rows (one
        // column: dx = 0); their size is what rounding errors scale with.
        let mut dx_terms = 0.0f64;
        for r in 0..rows {
            let g = |c: usize| dy[r * cols + c] as f64 * wv(c);
            let mean_g = (0..cols).map(g).sum::<f64>() / cols as f64;
            let mean_gx = (0..cols).map(|c| g(c) * xhat(r * cols + c)).sum::<f64>() / cols as f64;
            for c in 0..cols {
                let terms = [g(c), mean_g, xhat(r * cols + c) * mean_gx];
                want_dx[r * cols + c] = stats[r].1 * (terms[0] - terms[1] - terms[2]);
                dx_terms = terms
                    .iter()
                    .fold(dx_terms, |m, t| m.max(stats[r].1 * t.abs()));
            }
        }
        let want_dw: Vec<f64> = (0..cols)
            .map(|c| {
                (0..rows)
                    .map(|r| dy[r * cols + c] as f64 * xhat(r * cols + c))
                    .sum()
            })
            .collect();
        let want_db: Vec<f64> = (0..cols)
            .map(|c| (0..rows).map(|r| dy[r * cols + c] as f64).sum())
            .collect();

        let mut dx = dev.zeros::<T>(n).unwrap();
        let mut dw = dev.zeros::<T>(cols).unwrap();
        let mut db = dev.zeros::<T>(cols).unwrap();
        norm::layer_norm_backward(
            dev,
            &x_dev,
            rows,
            cols,
            weight,
            &mean,
            &rstd,
            &dy_dev,
            &mut dx,
            affine.then_some(&mut dw),
            affine.then_some(&mut db),
        )
        .unwrap();
        assert_close_to_scale::<T>(
            &format!("{tag} dx"),
            &download(dev, &dx),
            &want_dx,
            dx_terms,
        );
        if affine {
            assert_close::<T>(&format!("{tag} dweight"), &download(dev, &dw), &want_dw);
            assert_close::<T>(&format!("{tag} dbias"), &download(dev, &db), &want_db);
        }
    }
}

fn check_rms_norm<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng, affine: bool) {
    let eps = 1e-6f32;
    for &(rows, cols) in ROW_SHAPES {
        let n = rows * cols;
        let x = quantize::<T>(&random(rng, n, -3.0, 5.0));
        let w = quantize::<T>(&random(rng, cols, 0.5, 1.5));
        let dy = quantize::<T>(&random(rng, n, -1.0, 1.0));
        let (x_dev, w_dev, dy_dev) = (
            upload::<T>(dev, &x),
            upload::<T>(dev, &w),
            upload::<T>(dev, &dy),
        );
        let weight = affine.then_some(&w_dev);

        let mut out = dev.zeros::<T>(n).unwrap();
        let mut rstd = dev.zeros::<f32>(rows).unwrap();
        norm::rms_norm(dev, &x_dev, rows, cols, eps, weight, &mut out, &mut rstd).unwrap();

        let want_rstd: Vec<f64> = (0..rows)
            .map(|r| {
                let ms = x[r * cols..(r + 1) * cols]
                    .iter()
                    .map(|&v| (v as f64).powi(2))
                    .sum::<f64>()
                    / cols as f64;
                1.0 / (ms + eps as f64).sqrt()
            })
            .collect();
        let wv = |c: usize| if affine { w[c] as f64 } else { 1.0 };
        let want: Vec<f64> = (0..n)
            .map(|i| x[i] as f64 * want_rstd[i / cols] * wv(i % cols))
            .collect();
        let tag = format!("rms_norm {rows}x{cols} affine={affine}");
        assert_close::<T>(&tag, &download(dev, &out), &want);
        assert_close::<f32>(
            &format!("{tag} rstd"),
            &dev.download(&rstd).unwrap(),
            &want_rstd,
        );

        let mut want_dx = vec![0.0; n];
        // As for LayerNorm: the two terms of dx cancel on one-column rows.
        let mut dx_terms = 0.0f64;
        for r in 0..rows {
            let rs = want_rstd[r];
            let g = |c: usize| dy[r * cols + c] as f64 * wv(c);
            let mean_gx = (0..cols)
                .map(|c| g(c) * x[r * cols + c] as f64)
                .sum::<f64>()
                / cols as f64;
            for c in 0..cols {
                let terms = [rs * g(c), x[r * cols + c] as f64 * rs.powi(3) * mean_gx];
                want_dx[r * cols + c] = terms[0] - terms[1];
                dx_terms = dx_terms.max(terms[0].abs()).max(terms[1].abs());
            }
        }
        let want_dw: Vec<f64> = (0..cols)
            .map(|c| {
                (0..rows)
                    .map(|r| dy[r * cols + c] as f64 * x[r * cols + c] as f64 * want_rstd[r])
                    .sum()
            })
            .collect();

        let mut dx = dev.zeros::<T>(n).unwrap();
        let mut dw = dev.zeros::<T>(cols).unwrap();
        norm::rms_norm_backward(
            dev,
            &x_dev,
            rows,
            cols,
            weight,
            &rstd,
            &dy_dev,
            &mut dx,
            affine.then_some(&mut dw),
        )
        .unwrap();
        assert_close_to_scale::<T>(
            &format!("{tag} dx"),
            &download(dev, &dx),
            &want_dx,
            dx_terms,
        );
        if affine {
            assert_close::<T>(&format!("{tag} dweight"), &download(dev, &dw), &want_dw);
        }
    }
}

#[test]
fn norm_kernels_match_reference() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(3);
    for affine in [true, false] {
        check_layer_norm::<f32>(&dev, &mut rng, affine);
        check_layer_norm::<bf16>(&dev, &mut rng, affine);
        check_rms_norm::<f32>(&dev, &mut rng, affine);
        check_rms_norm::<bf16>(&dev, &mut rng, affine);
    }
}

// ---------------------------------------------------------------- rope

fn check_rope<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    let (batch, seq, heads, head_dim) = (2usize, 7usize, 3usize, 10usize);
    let half = head_dim / 2;
    let angles: Vec<f64> = (0..seq * half)
        .map(|_| rng.gen_range(-10.0..10.0))
        .collect();
    let table = RopeTable {
        seq,
        head_dim,
        cos: angles.iter().map(|a| a.cos() as f32).collect(),
        sin: angles.iter().map(|a| a.sin() as f32).collect(),
    };
    let table_dev = CudaRopeTable::upload(dev, &table).unwrap();
    let n = batch * seq * heads * head_dim;
    let x = quantize::<T>(&random(rng, n, -2.0, 2.0));
    let x_dev = upload::<T>(dev, &x);
    for inverse in [false, true] {
        let mut want = vec![0.0; n];
        for p in 0..n / 2 {
            let k = p % half;
            let s = (p / (heads * half)) % seq;
            let c = table.cos[s * half + k] as f64;
            let sn = table.sin[s * half + k] as f64 * if inverse { -1.0 } else { 1.0 };
            let (x0, x1) = (x[2 * p] as f64, x[2 * p + 1] as f64);
            want[2 * p] = x0 * c - x1 * sn;
            want[2 * p + 1] = x0 * sn + x1 * c;
        }
        let mut out = dev.zeros::<T>(n).unwrap();
        rope::rope_apply(dev, &x_dev, batch, heads, &table_dev, inverse, &mut out).unwrap();
        assert_close::<T>(
            &format!("rope_apply inverse={inverse}"),
            &download(dev, &out),
            &want,
        );
    }
    let mut wrong = dev.zeros::<T>(n).unwrap();
    assert!(
        rope::rope_apply(dev, &x_dev, batch, heads + 1, &table_dev, false, &mut wrong).is_err()
    );
}

#[test]
fn rope_kernel_matches_reference() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(4);
    check_rope::<f32>(&dev, &mut rng);
    check_rope::<bf16>(&dev, &mut rng);
}

#[test]
fn device_cuda_constructor_never_panics() {
    match fym_kernels::Device::cuda(0) {
        Ok(d) => assert_eq!(d, fym_kernels::Device::Cuda(0)),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("--device cpu"),
                "error should say what to do: {msg}"
            );
            eprintln!("skipping GPU part: {msg}");
        }
    }
    assert!(fym_kernels::Device::cuda(9999).is_err());
}
