//! The CUDA twins of the CPU's data-movement and small ops (unary functions, permute, slice,
//! concat, index select/add, embedding, patchify, sums over axes, adaLN modulation) against the
//! CPU kernels on ragged shapes, f32 (relative error ≤ 1e-5) and bf16 (≤ 1e-2; the CPU reference
//! gets the bf16-rounded inputs). Pure copies must match exactly. Without a GPU every test prints
//! why it skipped.

use fym_kernels::cpu;
use fym_kernels::cpu::patchify::{PatchOrder, PatchSize, VideoDims};
use fym_kernels::cpu::unary::UnaryOp;
use fym_kernels::cuda::{self, bf16, CudaDevice, CudaFloat};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;
use common::{download, gpu, quantize, random, upload};

fn close<T: CudaFloat>(what: &str, got: &[f32], want: &[f32]) {
    let want: Vec<f64> = want.iter().map(|&w| w as f64).collect();
    common::assert_close::<T>(what, got, &want);
}

/// Copies move bits: the GPU result must equal the CPU's exactly.
fn exact(what: &str, got: &[f32], want: &[f32]) {
    let mismatch = got
        .iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits());
    let ok = got.len() == want.len() && mismatch.is_none();
    if std::env::var_os("FYM_PRINT_ERRORS").is_some() || !ok {
        eprintln!(
            "{} {what}: exact copy, first mismatch {mismatch:?}",
            if ok { "ok  " } else { "FAIL" }
        );
    }
    assert!(
        ok || std::env::var_os("FYM_KEEP_GOING").is_some(),
        "{what}: first mismatch at {mismatch:?}"
    );
}

fn check_unary<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    for op in [
        UnaryOp::Abs,
        UnaryOp::Sqrt,
        UnaryOp::Square,
        UnaryOp::Exp,
        UnaryOp::Log,
    ] {
        let n = 1000 + rng.gen_range(0..50);
        // Positive inputs for sqrt/log; exp stays in a tame range.
        let (lo, hi) = match op {
            UnaryOp::Sqrt | UnaryOp::Log => (0.05, 4.0),
            _ => (-3.0, 3.0),
        };
        let x = quantize::<T>(&random(rng, n, lo, hi));
        let dy = quantize::<T>(&random(rng, n, -1.0, 1.0));
        let mut want = vec![0.0; n];
        cpu::unary::unary(op, &x, &mut want);
        let (gx, gdy) = (upload::<T>(dev, &x), upload::<T>(dev, &dy));
        let mut gy = dev.zeros::<T>(n).unwrap();
        cuda::unary::unary(dev, op, &gx, &mut gy).unwrap();
        close::<T>(&format!("unary {op:?}"), &download(dev, &gy), &want);
        // Backward from the GPU's own (rounded) forward output, as training would.
        let y = download(dev, &gy);
        let mut want_dx = vec![0.0; n];
        cpu::unary::unary_backward(op, &x, &y, &dy, &mut want_dx);
        let mut gdx = dev.zeros::<T>(n).unwrap();
        cuda::unary::unary_backward(dev, op, &gx, &gy, &gdy, &mut gdx).unwrap();
        close::<T>(
            &format!("unary_backward {op:?}"),
            &download(dev, &gdx),
            &want_dx,
        );
    }
}

#[test]
fn unary_matches_cpu() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(21);
    check_unary::<f32>(&dev, &mut rng);
    check_unary::<bf16>(&dev, &mut rng);
}

fn check_layout<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    // permute: ranks 2..5 with ragged dims, every kind of permutation.
    let cases: [(&[usize], &[usize]); 5] = [
        (&[7, 13], &[1, 0]),
        (&[3, 5, 4], &[2, 0, 1]),
        (&[2, 3, 5, 7], &[0, 2, 1, 3]),
        (&[2, 3, 1, 4, 5], &[4, 3, 2, 1, 0]),
        (&[6, 1, 9], &[0, 1, 2]),
    ];
    for (shape, perm) in cases {
        let n: usize = shape.iter().product();
        let x = quantize::<T>(&random(rng, n, -1.0, 1.0));
        let mut want = vec![0.0; n];
        cpu::layout::permute(&x, shape, perm, &mut want).unwrap();
        let mut out = dev.zeros::<T>(n).unwrap();
        cuda::layout::permute(dev, &upload::<T>(dev, &x), shape, perm, &mut out).unwrap();
        exact(
            &format!("permute {shape:?} {perm:?} ({})", T::SUFFIX),
            &download(dev, &out),
            &want,
        );
    }
    assert!(cuda::layout::permute(
        dev,
        &dev.zeros::<T>(6).unwrap(),
        &[2, 3],
        &[0, 0],
        &mut dev.zeros::<T>(6).unwrap()
    )
    .is_err());

    // slice and its add-back along each axis of a rank-3 tensor.
    let shape = [4usize, 9, 6];
    let n: usize = shape.iter().product();
    let x = quantize::<T>(&random(rng, n, -1.0, 1.0));
    for axis in 0..3 {
        let (start, len) = (1, shape[axis] - 2);
        let part = n / shape[axis] * len;
        let mut want = vec![0.0; part];
        cpu::layout::slice_axis(&x, &shape, axis, start, len, &mut want).unwrap();
        let mut out = dev.zeros::<T>(part).unwrap();
        cuda::layout::slice_axis(
            dev,
            &upload::<T>(dev, &x),
            &shape,
            axis,
            start,
            len,
            &mut out,
        )
        .unwrap();
        exact(
            &format!("slice_axis {axis} ({})", T::SUFFIX),
            &download(dev, &out),
            &want,
        );

        let src = quantize::<T>(&random(rng, part, -1.0, 1.0));
        let mut want = x.clone();
        cpu::layout::slice_axis_add_back(&src, &shape, axis, start, len, &mut want).unwrap();
        let mut dst = upload::<T>(dev, &x);
        cuda::layout::slice_axis_add_back(
            dev,
            &upload::<T>(dev, &src),
            &shape,
            axis,
            start,
            len,
            &mut dst,
        )
        .unwrap();
        close::<T>(
            &format!("slice_axis_add_back {axis}"),
            &download(dev, &dst),
            &want,
        );
    }
    let mut small = dev.zeros::<T>(1).unwrap();
    assert!(
        cuda::layout::slice_axis(dev, &upload::<T>(dev, &x), &shape, 1, 5, 5, &mut small).is_err()
    );

    // concat of three pieces along each axis.
    for axis in 0..3 {
        let widths = [2usize, 5, 1];
        let pieces: Vec<(Vec<f32>, Vec<usize>)> = widths
            .iter()
            .map(|&w| {
                let mut s = vec![3usize, 4, 5];
                s[axis] = w;
                (
                    quantize::<T>(&random(rng, s.iter().product(), -1.0, 1.0)),
                    s,
                )
            })
            .collect();
        let total: usize = pieces.iter().map(|(d, _)| d.len()).sum();
        let cpu_in: Vec<(&[f32], &[usize])> = pieces
            .iter()
            .map(|(d, s)| (d.as_slice(), s.as_slice()))
            .collect();
        let mut want = vec![0.0; total];
        cpu::layout::concat_axis(&cpu_in, axis, &mut want).unwrap();
        let gpu_bufs: Vec<_> = pieces.iter().map(|(d, _)| upload::<T>(dev, d)).collect();
        let gpu_in: Vec<_> = gpu_bufs
            .iter()
            .zip(&pieces)
            .map(|(b, (_, s))| (b, s.as_slice()))
            .collect();
        let mut out = dev.zeros::<T>(total).unwrap();
        cuda::layout::concat_axis(dev, &gpu_in, axis, &mut out).unwrap();
        exact(
            &format!("concat_axis {axis} ({})", T::SUFFIX),
            &download(dev, &out),
            &want,
        );
    }

    // index_select / index_add with repeated indices.
    let shape = [3usize, 8, 5];
    let n: usize = shape.iter().product();
    let x = quantize::<T>(&random(rng, n, -1.0, 1.0));
    let indices = [6usize, 0, 6, 3, 7, 6];
    let part = 3 * indices.len() * 5;
    let mut want = vec![0.0; part];
    cpu::layout::index_select(&x, &shape, 1, &indices, &mut want).unwrap();
    let mut out = dev.zeros::<T>(part).unwrap();
    cuda::layout::index_select(dev, &upload::<T>(dev, &x), &shape, 1, &indices, &mut out).unwrap();
    exact(
        &format!("index_select ({})", T::SUFFIX),
        &download(dev, &out),
        &want,
    );
    let src = quantize::<T>(&random(rng, part, -1.0, 1.0));
    let mut want = x.clone();
    cpu::layout::index_add(&src, &shape, 1, &indices, &mut want).unwrap();
    let mut dst = upload::<T>(dev, &x);
    cuda::layout::index_add(dev, &upload::<T>(dev, &src), &shape, 1, &indices, &mut dst).unwrap();
    close::<T>("index_add", &download(dev, &dst), &want);
    assert!(
        cuda::layout::index_select(dev, &upload::<T>(dev, &x), &shape, 1, &[8], &mut out).is_err()
    );
}

#[test]
fn layout_ops_match_cpu() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(22);
    check_layout::<f32>(&dev, &mut rng);
    check_layout::<bf16>(&dev, &mut rng);
}

fn check_embedding<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    let (vocab, dim) = (37usize, 24usize);
    let table = quantize::<T>(&random(rng, vocab * dim, -1.0, 1.0));
    let ids: Vec<u32> = (0..50)
        .map(|_| rng.gen_range(0..vocab as u32))
        .chain([5, 5, 5])
        .collect();
    let mut want = vec![0.0; ids.len() * dim];
    cpu::embedding::embedding(&table, vocab, dim, &ids, &mut want).unwrap();
    let mut out = dev.zeros::<T>(ids.len() * dim).unwrap();
    let gtable = upload::<T>(dev, &table);
    cuda::embedding::embedding(dev, &gtable, vocab, dim, &ids, &mut out).unwrap();
    exact(
        &format!("embedding ({})", T::SUFFIX),
        &download(dev, &out),
        &want,
    );
    let dy = quantize::<T>(&random(rng, ids.len() * dim, -1.0, 1.0));
    let dtable0 = quantize::<T>(&random(rng, vocab * dim, -1.0, 1.0));
    let mut want = dtable0.clone();
    cpu::embedding::embedding_backward(&dy, dim, &ids, &mut want);
    let mut dtable = upload::<T>(dev, &dtable0);
    cuda::embedding::embedding_backward(dev, &upload::<T>(dev, &dy), dim, &ids, &mut dtable)
        .unwrap();
    close::<T>("embedding_backward", &download(dev, &dtable), &want);
    let err = cuda::embedding::embedding(
        dev,
        &gtable,
        vocab,
        dim,
        &[vocab as u32],
        &mut dev.zeros::<T>(dim).unwrap(),
    );
    assert!(err.unwrap_err().to_string().contains("out of range"));
}

#[test]
fn embedding_matches_cpu() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(23);
    check_embedding::<f32>(&dev, &mut rng);
    check_embedding::<bf16>(&dev, &mut rng);
}

fn check_patchify<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    let dims = VideoDims {
        batch: 2,
        channels: 3,
        frames: 4,
        height: 6,
        width: 10,
    };
    for (patch, order) in [
        (PatchSize { t: 1, h: 2, w: 2 }, PatchOrder::ChannelFirst),
        (PatchSize { t: 2, h: 3, w: 5 }, PatchOrder::ChannelLast),
        (PatchSize { t: 4, h: 1, w: 2 }, PatchOrder::ChannelFirst),
    ] {
        let n = dims.batch * dims.channels * dims.frames * dims.height * dims.width;
        let x = quantize::<T>(&random(rng, n, -1.0, 1.0));
        let mut want = vec![0.0; n];
        cpu::patchify::patchify(&x, dims, patch, order, &mut want).unwrap();
        let mut tokens = dev.zeros::<T>(n).unwrap();
        cuda::patchify::patchify(dev, &upload::<T>(dev, &x), dims, patch, order, &mut tokens)
            .unwrap();
        let what = format!("patchify {patch:?} {order:?} ({})", T::SUFFIX);
        exact(&what, &download(dev, &tokens), &want);
        let mut back = dev.zeros::<T>(n).unwrap();
        cuda::patchify::unpatchify(dev, &tokens, dims, patch, order, &mut back).unwrap();
        exact(&format!("un{what}"), &download(dev, &back), &x);
    }
    let bad = PatchSize { t: 3, h: 2, w: 2 };
    let n = 2 * 3 * 4 * 6 * 10;
    let err = cuda::patchify::patchify(
        dev,
        &dev.zeros::<T>(n).unwrap(),
        dims,
        bad,
        PatchOrder::ChannelFirst,
        &mut dev.zeros::<T>(n).unwrap(),
    );
    assert!(err.unwrap_err().to_string().contains("not divisible"));
}

#[test]
fn patchify_matches_cpu() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(24);
    check_patchify::<f32>(&dev, &mut rng);
    check_patchify::<bf16>(&dev, &mut rng);
}

fn check_reduce<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    // (shape, target): a bias gradient, a last-axis sum (one block per output), a middle axis,
    // two separated axes, everything, nothing.
    let cases: [(&[usize], &[usize]); 6] = [
        (&[300, 24], &[1, 24]),
        (&[6, 5000], &[6, 1]),
        (&[4, 7, 9], &[4, 1, 9]),
        (&[3, 4, 5, 6], &[1, 4, 1, 6]),
        (&[33, 41], &[1, 1]),
        (&[5, 3], &[5, 3]),
    ];
    for (shape, target) in cases {
        let n: usize = shape.iter().product();
        let x = quantize::<T>(&random(rng, n, -1.0, 1.0));
        let out_n: usize = target.iter().product();
        let mut want = vec![0.0; out_n];
        cpu::reduce::sum_to_shape(&x, shape, target, &mut want).unwrap();
        let mut out = dev.zeros::<T>(out_n).unwrap();
        cuda::reduce::sum_to_shape(dev, &upload::<T>(dev, &x), shape, target, &mut out).unwrap();
        close::<T>(
            &format!("sum_to_shape {shape:?} -> {target:?}"),
            &download(dev, &out),
            &want,
        );
    }
    let shape = [5usize, 6, 7];
    let x = quantize::<T>(&random(rng, 210, -1.0, 1.0));
    let gx = upload::<T>(dev, &x);
    for axis in 0..3 {
        let out_n = 210 / shape[axis];
        let mut want = vec![0.0; out_n];
        cpu::reduce::sum_axis(&x, &shape, axis, &mut want).unwrap();
        let mut out = dev.zeros::<T>(out_n).unwrap();
        cuda::reduce::sum_axis(dev, &gx, &shape, axis, &mut out).unwrap();
        close::<T>(&format!("sum_axis {axis}"), &download(dev, &out), &want);
    }
    let big = quantize::<T>(&random(rng, 100_003, -1.0, 1.0));
    let (want, got) = (
        cpu::reduce::sum_all(&big),
        cuda::reduce::sum_all(dev, &upload::<T>(dev, &big)).unwrap(),
    );
    let scale = big.iter().map(|v| v.abs() as f64).sum::<f64>();
    let rel = (got - want).abs() / scale;
    eprintln!(
        "sum_all ({}): {got} vs {want}, error {rel:.2e} of Σ|x|",
        T::SUFFIX
    );
    assert!(rel < 1e-12, "sum_all {got} vs {want}");
    assert!(cuda::reduce::sum_to_shape(
        dev,
        &gx,
        &shape,
        &[5, 2, 7],
        &mut dev.zeros::<T>(70).unwrap()
    )
    .is_err());
}

#[test]
fn sums_match_cpu() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(25);
    check_reduce::<f32>(&dev, &mut rng);
    check_reduce::<bf16>(&dev, &mut rng);
}

fn check_modulate<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    let (batch, tokens, dim) = (3usize, 37usize, 20usize);
    let n = batch * tokens * dim;
    let x = quantize::<T>(&random(rng, n, -2.0, 2.0));
    let scale = quantize::<T>(&random(rng, batch * dim, -0.5, 0.5));
    let shift = quantize::<T>(&random(rng, batch * dim, -0.5, 0.5));
    let dy = quantize::<T>(&random(rng, n, -1.0, 1.0));
    let mut want = vec![0.0; n];
    cpu::modulate::modulate(&x, batch, tokens, dim, &scale, &shift, &mut want).unwrap();
    let (gx, gscale, gshift, gdy) = (
        upload::<T>(dev, &x),
        upload::<T>(dev, &scale),
        upload::<T>(dev, &shift),
        upload::<T>(dev, &dy),
    );
    let mut out = dev.zeros::<T>(n).unwrap();
    cuda::modulate::modulate(dev, &gx, batch, tokens, dim, &gscale, &gshift, &mut out).unwrap();
    close::<T>("modulate", &download(dev, &out), &want);
    let (mut want_dx, mut want_ds, mut want_dh) =
        (vec![0.0; n], vec![0.0; batch * dim], vec![0.0; batch * dim]);
    cpu::modulate::modulate_backward(
        &x,
        batch,
        tokens,
        dim,
        &scale,
        &dy,
        &mut want_dx,
        &mut want_ds,
        &mut want_dh,
    )
    .unwrap();
    let (mut dx, mut ds, mut dh) = (
        dev.zeros::<T>(n).unwrap(),
        upload::<T>(dev, &vec![9.0; batch * dim]),
        upload::<T>(dev, &vec![9.0; batch * dim]),
    );
    cuda::modulate::modulate_backward(
        dev, &gx, batch, tokens, dim, &gscale, &gdy, &mut dx, &mut ds, &mut dh,
    )
    .unwrap();
    close::<T>("modulate dx", &download(dev, &dx), &want_dx);
    close::<T>("modulate dscale", &download(dev, &ds), &want_ds);
    close::<T>("modulate dshift", &download(dev, &dh), &want_dh);
    assert!(
        cuda::modulate::modulate(dev, &gx, batch, tokens + 1, dim, &gscale, &gshift, &mut out)
            .is_err()
    );
}

#[test]
fn modulate_matches_cpu() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(26);
    check_modulate::<f32>(&dev, &mut rng);
    check_modulate::<bf16>(&dev, &mut rng);
}
