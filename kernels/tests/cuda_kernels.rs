//! The fused CUDA kernels (GEMM, attention forward/backward, attention-map statistics, ST-LoRA
//! projection) against the CPU kernels of `fym_kernels::cpu`, on random shapes including ragged
//! ones, f32 (relative error ≤ 1e-5) and bf16 (≤ 1e-2; the CPU reference then gets the
//! bf16-rounded inputs). Errors are relative to the largest magnitude of the reference tensor.
//! Without a GPU every test prints why it skipped.

use fym_kernels::cpu::attention::{self as cpu_attn, AttnDims, MaskMode};
use fym_kernels::cpu::gemm::sgemm;
use fym_kernels::cpu::norm::{rms_norm, rms_norm_backward};
use fym_kernels::cpu::rope::{grid_positions, rope_apply, rope_table};
use fym_kernels::cuda::attention::{self, AttentionKernel};
use fym_kernels::cuda::gemm::GemmPath;
use fym_kernels::cuda::qkv_lora::{
    qkv_lora_backward, qkv_lora_forward, HeadKind, LoraRef, QkvGrads, QkvProjection,
};
use fym_kernels::cuda::{bf16, gemm, CudaDevice, CudaFloat, CudaRopeTable, CudaSlice};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
use common::{download, gpu, quantize, random, upload};

/// [`common::assert_close`] for an f32 reference.
fn assert_close<T: CudaFloat>(what: &str, got: &[f32], want: &[f32]) {
    let want: Vec<f64> = want.iter().map(|&w| w as f64).collect();
    common::assert_close::<T>(what, got, &want);
}

// ------------------------------------------------------------------------------------- GEMM

fn check_gemm<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    // (m, n, k, row padding): ragged edges against every tile size, an unaligned leading
    // dimension (cp.async off, element loads) and k shorter than one k tile.
    let shapes = [
        (131, 67, 45, 0),
        (200, 130, 72, 8),
        (17, 300, 9, 3),
        (128, 128, 64, 0),
        (5, 7, 1, 0),
    ];
    for (m, n, k, pad) in shapes {
        for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
            let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
            let (br, bc) = if trans_b { (n, k) } else { (k, n) };
            let (lda, ldb, ldc) = (ac + pad, bc + pad, n + pad);
            let a = quantize::<T>(&random(rng, ar * lda, -1.0, 1.0));
            let b = quantize::<T>(&random(rng, br * ldb, -1.0, 1.0));
            let c0 = quantize::<T>(&random(rng, m * ldc, -1.0, 1.0));
            let (alpha, beta) = (0.75, if pad % 2 == 0 { 0.5 } else { 0.0 });
            let mut want = c0.clone();
            sgemm(
                trans_a, trans_b, m, n, k, alpha, &a, lda, &b, ldb, beta, &mut want, ldc,
            );
            let (ga, gb) = (upload::<T>(dev, &a), upload::<T>(dev, &b));
            let mut gc = upload::<T>(dev, &c0);
            // mma.sync explicitly: on Hopper the default path sends aligned `nt` GEMMs to wgmma,
            // which gemm_wgmma_matches_cpu_on_ragged_shapes covers.
            gemm::gemm_batched_on(
                GemmPath::MmaSync,
                dev,
                1,
                trans_a,
                trans_b,
                m,
                n,
                k,
                alpha,
                &ga,
                lda,
                0,
                &gb,
                ldb,
                0,
                beta,
                &mut gc,
                ldc,
                0,
            )
            .unwrap();
            let what = format!(
                "gemm t{}{} {m}x{n}x{k} pad {pad}",
                trans_a as u8, trans_b as u8
            );
            assert_close::<T>(&what, &download(dev, &gc), &want);
        }
    }
    // Batched, with a shared B (stride 0).
    let (batch, m, n, k) = (3, 70, 90, 40);
    let a = quantize::<T>(&random(rng, batch * m * k, -1.0, 1.0));
    let b = quantize::<T>(&random(rng, n * k, -1.0, 1.0));
    let mut want = vec![0.0; batch * m * n];
    for i in 0..batch {
        sgemm(
            false,
            true,
            m,
            n,
            k,
            1.0,
            &a[i * m * k..],
            k,
            &b,
            k,
            0.0,
            &mut want[i * m * n..],
            n,
        );
    }
    let mut gc = dev.zeros::<T>(batch * m * n).unwrap();
    gemm::gemm_batched(
        dev,
        batch,
        false,
        true,
        m,
        n,
        k,
        1.0,
        &upload::<T>(dev, &a),
        k,
        m * k,
        &upload::<T>(dev, &b),
        k,
        0,
        0.0,
        &mut gc,
        n,
        m * n,
    )
    .unwrap();
    assert_close::<T>("gemm batched", &download(dev, &gc), &want);
}

#[test]
fn gemm_matches_cpu_sgemm_for_every_transpose_on_ragged_shapes() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(1);
    check_gemm::<f32>(&dev, &mut rng);
    check_gemm::<bf16>(&dev, &mut rng);
}

#[test]
fn gemm_wgmma_matches_cpu_on_ragged_shapes() {
    let Some(dev) = gpu() else { return };
    if dev.compute_capability() != (9, 0) {
        eprintln!(
            "skipped: wgmma needs compute capability 9.0; {} is {:?}",
            dev.name(),
            dev.compute_capability()
        );
        return;
    }
    let mut rng = StdRng::seed_from_u64(11);
    // (batch, m, n, k, row padding of A and B, beta): ragged m and n against both tile widths,
    // k shorter than one 64-step, k ragged over many steps, padded rows, batches.
    let shapes = [
        (1, 300, 520, 200, 8, 0.5),
        (1, 128, 256, 64, 0, 0.0),
        (2, 77, 130, 24, 0, 0.5),
        (1, 1030, 300, 1000, 0, 0.0),
        (3, 5, 3, 8, 16, 0.5),
    ];
    let mut paths: Vec<GemmPath> = gemm::WGMMA_VARIANTS
        .iter()
        .map(|&(bn, stages)| GemmPath::Wgmma { bn, stages })
        .chain(
            gemm::TMA_VARIANTS
                .iter()
                .map(|&(bn, stages)| GemmPath::WgmmaTma { bn, stages }),
        )
        .collect();
    paths.push(GemmPath::Auto);
    for path in paths {
        for (batch, m, n, k, pad, beta) in shapes {
            // ldc odd (pad 16) takes the epilogue's one-element stores, even ldc the paired ones.
            let (lda, ldb, ldc) = (k + pad, k + pad, n + pad % 3);
            let (sa, sb, sc) = (m * lda, n * ldb, m * ldc);
            let a = quantize::<bf16>(&random(&mut rng, batch * sa, -1.0, 1.0));
            let b = quantize::<bf16>(&random(&mut rng, batch * sb, -1.0, 1.0));
            let c0 = quantize::<bf16>(&random(&mut rng, batch * sc, -1.0, 1.0));
            let mut want = c0.clone();
            for i in 0..batch {
                sgemm(
                    false,
                    true,
                    m,
                    n,
                    k,
                    0.75,
                    &a[i * sa..],
                    lda,
                    &b[i * sb..],
                    ldb,
                    beta,
                    &mut want[i * sc..],
                    ldc,
                );
            }
            let mut gc = upload::<bf16>(&dev, &c0);
            gemm::gemm_batched_on(
                path,
                &dev,
                batch,
                false,
                true,
                m,
                n,
                k,
                0.75,
                &upload::<bf16>(&dev, &a),
                lda,
                sa,
                &upload::<bf16>(&dev, &b),
                ldb,
                sb,
                beta,
                &mut gc,
                ldc,
                sc,
            )
            .unwrap();
            let what = format!("gemm {path:?} {batch}x{m}x{n}x{k} pad {pad} beta {beta}");
            assert_close::<bf16>(&what, &download(&dev, &gc), &want);
        }
    }
    // wgmma refuses what it cannot run instead of computing something else.
    let x = dev.zeros::<bf16>(64 * 64).unwrap();
    let mut y = dev.zeros::<bf16>(64 * 64).unwrap();
    let wgmma = GemmPath::Wgmma { bn: 128, stages: 4 };
    let tma = GemmPath::WgmmaTma { bn: 256, stages: 4 };
    for (path, trans_a, trans_b, ld) in [
        (wgmma, false, false, 64),
        (wgmma, true, true, 64),
        (wgmma, false, true, 60),
        (tma, false, true, 60),
    ] {
        let err = gemm::gemm_batched_on(
            path, &dev, 1, trans_a, trans_b, 60, 60, 60, 1.0, &x, ld, 0, &x, ld, 0, 0.0, &mut y,
            64, 0,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("multiples of 8"), "{err}");
    }
}

#[test]
fn gemm_rejects_bad_shapes_with_errors() {
    let Some(dev) = gpu() else { return };
    let a = dev.zeros::<f32>(10).unwrap();
    let b = dev.zeros::<f32>(10).unwrap();
    let mut c = dev.zeros::<f32>(10).unwrap();
    let err = gemm::gemm(
        &dev, false, false, 4, 4, 4, 1.0, &a, 4, &b, 4, 0.0, &mut c, 4,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cuda gemm"), "{err}");
    let err = gemm::gemm(
        &dev, false, false, 2, 2, 2, 1.0, &a, 1, &b, 2, 0.0, &mut c, 2,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lda"), "{err}");
}

// -------------------------------------------------------------------------------- attention

struct AttnCase {
    dims: AttnDims,
    mask: MaskMode,
}

fn attn_cases(head_dim: usize) -> Vec<AttnCase> {
    let dims = |batch, heads, seq_q, seq_kv, tpf| AttnDims {
        batch,
        heads,
        seq_q,
        seq_kv,
        head_dim,
        tokens_per_frame: tpf,
    };
    vec![
        // Ragged against 64-row tiles, cross-attention lengths, a key count under one tile.
        AttnCase {
            dims: dims(2, 3, 150, 150, 50),
            mask: MaskMode::Full,
        },
        AttnCase {
            dims: dims(1, 2, 70, 9, 0),
            mask: MaskMode::Full,
        },
        // Frames of 37 tokens (ragged tiles per frame); 4 frames of 35 (temporal groups of 4).
        AttnCase {
            dims: dims(2, 2, 111, 111, 37),
            mask: MaskMode::Spatial,
        },
        AttnCase {
            dims: dims(1, 3, 140, 140, 35),
            mask: MaskMode::Temporal,
        },
        AttnCase {
            dims: dims(1, 1, 260, 260, 2),
            mask: MaskMode::Temporal,
        },
    ]
}

fn check_attention<T: CudaFloat>(
    dev: &CudaDevice,
    kernel: AttentionKernel,
    head_dim: usize,
    rng: &mut StdRng,
) {
    for case in attn_cases(head_dim) {
        let AttnCase { dims, mask } = case;
        let nq = dims.batch * dims.seq_q * dims.heads * dims.head_dim;
        let nkv = dims.batch * dims.seq_kv * dims.heads * dims.head_dim;
        let nl = dims.batch * dims.heads * dims.seq_q;
        let scale = 1.0 / (dims.head_dim as f32).sqrt();
        let q = quantize::<T>(&random(rng, nq, -2.0, 2.0));
        let k = quantize::<T>(&random(rng, nkv, -2.0, 2.0));
        let v = quantize::<T>(&random(rng, nkv, -1.0, 1.0));
        let d_out = quantize::<T>(&random(rng, nq, -1.0, 1.0));
        let what = format!("{kernel:?} {mask:?} {dims:?}");

        let (mut out, mut lse) = (vec![0.0; nq], vec![0.0; nl]);
        cpu_attn::attention_forward(dims, mask, scale, &q, &k, &v, &mut out, &mut lse).unwrap();
        let (gq, gk, gv) = (
            upload::<T>(dev, &q),
            upload::<T>(dev, &k),
            upload::<T>(dev, &v),
        );
        let mut g_out = dev.zeros::<T>(nq).unwrap();
        let mut g_lse = dev.zeros::<f32>(nl).unwrap();
        attention::attention_forward_with(
            dev, kernel, dims, mask, scale, &gq, &gk, &gv, &mut g_out, &mut g_lse,
        )
        .unwrap();
        assert_close::<T>(&format!("forward out {what}"), &download(dev, &g_out), &out);
        assert_close::<T>(&format!("forward lse {what}"), &download(dev, &g_lse), &lse);

        // Backward from the reference forward (out rounded to T as the GPU stores it).
        let out_t = quantize::<T>(&out);
        let (mut dq, mut dk, mut dv) = (vec![0.0; nq], vec![0.0; nkv], vec![0.0; nkv]);
        cpu_attn::attention_backward(
            dims, mask, scale, &q, &k, &v, &out_t, &lse, &d_out, &mut dq, &mut dk, &mut dv,
        )
        .unwrap();
        let (g_o, g_l, g_do) = (
            upload::<T>(dev, &out_t),
            dev.upload(&lse).unwrap(),
            upload::<T>(dev, &d_out),
        );
        let mut g_dq = dev.zeros::<T>(nq).unwrap();
        let mut g_dk = dev.zeros::<T>(nkv).unwrap();
        let mut g_dv = dev.zeros::<T>(nkv).unwrap();
        attention::attention_backward_with(
            dev, kernel, dims, mask, scale, &gq, &gk, &gv, &g_o, &g_l, &g_do, &mut g_dq, &mut g_dk,
            &mut g_dv,
        )
        .unwrap();
        assert_close::<T>(&format!("dq {what}"), &download(dev, &g_dq), &dq);
        assert_close::<T>(&format!("dk {what}"), &download(dev, &g_dk), &dk);
        assert_close::<T>(&format!("dv {what}"), &download(dev, &g_dv), &dv);
    }
}

#[test]
fn attention_simt_matches_cpu_in_every_mask_mode() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(2);
    for head_dim in [40, 64, 128] {
        check_attention::<f32>(&dev, AttentionKernel::Simt, head_dim, &mut rng);
    }
    check_attention::<bf16>(&dev, AttentionKernel::Simt, 24, &mut rng);
}

#[test]
fn attention_tensor_cores_match_cpu_in_every_mask_mode() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(3);
    for kernel in [AttentionKernel::TensorCore, AttentionKernel::TensorCoreWide] {
        for head_dim in [64, 128] {
            check_attention::<bf16>(&dev, kernel, head_dim, &mut rng);
        }
    }
}

#[test]
fn attention_rejects_what_the_kernels_cannot_run() {
    let Some(dev) = gpu() else { return };
    let dims = AttnDims {
        batch: 1,
        heads: 1,
        seq_q: 8,
        seq_kv: 8,
        head_dim: 40,
        tokens_per_frame: 3,
    };
    let n = 8 * 40;
    let (q, k, v) = (
        dev.zeros::<bf16>(n).unwrap(),
        dev.zeros::<bf16>(n).unwrap(),
        dev.zeros::<bf16>(n).unwrap(),
    );
    let mut out = dev.zeros::<bf16>(n).unwrap();
    let mut lse = dev.zeros::<f32>(8).unwrap();
    let run = |kernel, mask, out: &mut CudaSlice<bf16>, lse: &mut CudaSlice<f32>| {
        attention::attention_forward_with(&dev, kernel, dims, mask, 0.1, &q, &k, &v, out, lse)
            .unwrap_err()
            .to_string()
    };
    let err = run(
        AttentionKernel::TensorCore,
        MaskMode::Full,
        &mut out,
        &mut lse,
    );
    assert!(err.contains("head_dim 64 or 128"), "{err}");
    let err = run(AttentionKernel::Auto, MaskMode::Spatial, &mut out, &mut lse);
    assert!(err.contains("tokens_per_frame"), "{err}");
}

// ----------------------------------------------------------------------- map statistics

fn check_map_stats<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    for (batch, heads, seq, head_dim, tpf) in [(2, 3, 105, 24, 35), (1, 2, 130, 64, 13)] {
        let dims = AttnDims {
            batch,
            heads,
            seq_q: seq,
            seq_kv: seq,
            head_dim,
            tokens_per_frame: tpf,
        };
        let n = batch * seq * heads * head_dim;
        let q = quantize::<T>(&random(rng, n, -1.5, 1.5));
        let k = quantize::<T>(&random(rng, n, -1.5, 1.5));
        let scale = 1.0 / (head_dim as f32).sqrt();
        let want = cpu_attn::attention_map_stats(dims, scale, &q, &k).unwrap();
        let got = attention::attention_map_stats(
            dev,
            dims,
            scale,
            &upload::<T>(dev, &q),
            &upload::<T>(dev, &k),
        )
        .unwrap();
        let flat = |s: &[cpu_attn::HeadMapStats]| -> Vec<f32> {
            s.iter()
                .flat_map(|h| {
                    [
                        h.cos_spatial,
                        h.cos_temporal,
                        h.mass_spatial,
                        h.mass_temporal,
                    ]
                })
                .map(|x| x as f32)
                .collect()
        };
        assert_close::<T>(&format!("map stats {dims:?}"), &flat(&got), &flat(&want));
    }
}

#[test]
fn attention_map_stats_match_cpu() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(4);
    check_map_stats::<f32>(&dev, &mut rng);
    check_map_stats::<bf16>(&dev, &mut rng);
}

// ---------------------------------------------------------------------- ST-LoRA projection

/// `c[m×n] = a[m×k] · b[n×k]ᵀ` with the CPU GEMM.
fn matmul_nt(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    sgemm(false, true, m, n, k, 1.0, a, k, b, k, 0.0, &mut c, n);
    c
}

fn check_qkv_lora<T: CudaFloat>(dev: &CudaDevice, rng: &mut StdRng) {
    // 2 sequences of 3 frames × 2 × 3 tokens, 4 heads of 12 (RoPE split 4/4/4), ranks 3 and 5.
    let (batch, frames, height, width) = (2, 3, 2, 3);
    let seq = frames * height * width;
    let (rows, in_f, heads, head_dim) = (batch * seq, 37, 4, 12);
    let out_f = heads * head_dim;
    let kinds = [
        HeadKind::Spatial,
        HeadKind::Temporal,
        HeadKind::None,
        HeadKind::Spatial,
    ];
    let (rank_s, rank_t, scale_s, scale_t, eps) = (3, 5, 0.5, 2.0, 1e-6);
    let x = quantize::<T>(&random(rng, rows * in_f, -1.0, 1.0));
    let w = quantize::<T>(&random(rng, out_f * in_f, -0.3, 0.3));
    let bias = quantize::<T>(&random(rng, out_f, -0.5, 0.5));
    let a_s = quantize::<T>(&random(rng, rank_s * in_f, -0.3, 0.3));
    let b_s = quantize::<T>(&random(rng, out_f * rank_s, -0.3, 0.3));
    let a_t = quantize::<T>(&random(rng, rank_t * in_f, -0.3, 0.3));
    let b_t = quantize::<T>(&random(rng, out_f * rank_t, -0.3, 0.3));
    let norm_w = quantize::<T>(&random(rng, out_f, 0.5, 1.5));
    let d_out = quantize::<T>(&random(rng, rows * out_f, -1.0, 1.0));
    // Fractional frame positions (adaptive RoPE).
    let table = rope_table(
        &grid_positions(frames, height, width, Some(&[0.0, 2.5, 4.75])),
        head_dim,
        10_000.0,
    )
    .unwrap();
    let mask = |kind: HeadKind| -> Vec<f32> {
        (0..out_f)
            .map(|c| f32::from(u8::from(kinds[c / head_dim] == kind)))
            .collect()
    };
    let (mask_s, mask_t) = (mask(HeadKind::Spatial), mask(HeadKind::Temporal));

    // CPU reference forward.
    let u_s = matmul_nt(&x, &a_s, rows, rank_s, in_f);
    let u_t = matmul_nt(&x, &a_t, rows, rank_t, in_f);
    let up_s = matmul_nt(&u_s, &b_s, rows, out_f, rank_s);
    let up_t = matmul_nt(&u_t, &b_t, rows, out_f, rank_t);
    let mut pre = matmul_nt(&x, &w, rows, out_f, in_f);
    for (i, p) in pre.iter_mut().enumerate() {
        let c = i % out_f;
        *p += bias[c] + scale_s * mask_s[c] * up_s[i] + scale_t * mask_t[c] * up_t[i];
    }
    let (mut normed, mut rstd) = (vec![0.0; rows * out_f], vec![0.0; rows]);
    rms_norm(
        &pre,
        rows,
        out_f,
        eps,
        Some(&norm_w),
        &mut normed,
        &mut rstd,
    );
    let mut want = vec![0.0; rows * out_f];
    rope_apply(&normed, batch, heads, &table, false, &mut want).unwrap();

    // CPU reference backward.
    let mut g_norm = vec![0.0; rows * out_f];
    rope_apply(&d_out, batch, heads, &table, true, &mut g_norm).unwrap();
    let mut g_pre = vec![0.0; rows * out_f];
    rms_norm_backward(
        &pre,
        rows,
        out_f,
        Some(&norm_w),
        &rstd,
        &g_norm,
        &mut g_pre,
        None,
    );
    let mut dx = vec![0.0; rows * in_f];
    sgemm(
        false, false, rows, in_f, out_f, 1.0, &g_pre, out_f, &w, in_f, 0.0, &mut dx, in_f,
    );
    let mut lora_grads = Vec::new();
    for (u, a, b, m, scale, r) in [
        (&u_s, &a_s, &b_s, &mask_s, scale_s, rank_s),
        (&u_t, &a_t, &b_t, &mask_t, scale_t, rank_t),
    ] {
        let g: Vec<f32> = g_pre
            .iter()
            .enumerate()
            .map(|(i, &g)| scale * m[i % out_f] * g)
            .collect();
        let mut db = vec![0.0; out_f * r];
        sgemm(
            true, false, out_f, r, rows, 1.0, &g, out_f, u, r, 0.0, &mut db, r,
        );
        let mut du = vec![0.0; rows * r];
        sgemm(
            false, false, rows, r, out_f, 1.0, &g, out_f, b, r, 0.0, &mut du, r,
        );
        let mut da = vec![0.0; r * in_f];
        sgemm(
            true, false, r, in_f, rows, 1.0, &du, r, &x, in_f, 0.0, &mut da, in_f,
        );
        sgemm(
            false, false, rows, in_f, r, 1.0, &du, r, a, in_f, 1.0, &mut dx, in_f,
        );
        lora_grads.push((da, db));
    }

    // GPU.
    let gx = upload::<T>(dev, &x);
    let (gw, gbias, gnorm) = (
        upload::<T>(dev, &w),
        upload::<T>(dev, &bias),
        upload::<T>(dev, &norm_w),
    );
    let (ga_s, gb_s, ga_t, gb_t) = (
        upload::<T>(dev, &a_s),
        upload::<T>(dev, &b_s),
        upload::<T>(dev, &a_t),
        upload::<T>(dev, &b_t),
    );
    let gtable = CudaRopeTable::upload(dev, &table).unwrap();
    let proj = QkvProjection {
        rows,
        in_features: in_f,
        heads,
        head_dim,
        weight: &gw,
        bias: Some(&gbias),
        spatial: Some(LoraRef {
            a: &ga_s,
            b: &gb_s,
            rank: rank_s,
            scale: scale_s,
        }),
        temporal: Some(LoraRef {
            a: &ga_t,
            b: &gb_t,
            rank: rank_t,
            scale: scale_t,
        }),
        head_kinds: &kinds,
        norm: Some((&gnorm, eps)),
        rope: Some(&gtable),
    };
    let mut gout = dev.zeros::<T>(rows * out_f).unwrap();
    let saved = qkv_lora_forward(dev, &proj, &gx, &mut gout).unwrap();
    assert_close::<T>("qkv_lora forward", &download(dev, &gout), &want);

    let gd_out = upload::<T>(dev, &d_out);
    let mut gdx = dev.zeros::<T>(rows * in_f).unwrap();
    let (mut gda_s, mut gdb_s) = (
        dev.zeros::<T>(rank_s * in_f).unwrap(),
        dev.zeros::<T>(out_f * rank_s).unwrap(),
    );
    let (mut gda_t, mut gdb_t) = (
        dev.zeros::<T>(rank_t * in_f).unwrap(),
        dev.zeros::<T>(out_f * rank_t).unwrap(),
    );
    qkv_lora_backward(
        dev,
        &proj,
        &gx,
        &saved,
        &gd_out,
        QkvGrads {
            dx: &mut gdx,
            spatial: Some((&mut gda_s, &mut gdb_s)),
            temporal: Some((&mut gda_t, &mut gdb_t)),
        },
    )
    .unwrap();
    assert_close::<T>("qkv_lora dx", &download(dev, &gdx), &dx);
    assert_close::<T>(
        "qkv_lora dA spatial",
        &download(dev, &gda_s),
        &lora_grads[0].0,
    );
    assert_close::<T>(
        "qkv_lora dB spatial",
        &download(dev, &gdb_s),
        &lora_grads[0].1,
    );
    assert_close::<T>(
        "qkv_lora dA temporal",
        &download(dev, &gda_t),
        &lora_grads[1].0,
    );
    assert_close::<T>(
        "qkv_lora dB temporal",
        &download(dev, &gdb_t),
        &lora_grads[1].1,
    );
    // Columns of non-spatial heads get no spatial dB at all.
    let db_s = download(dev, &gdb_s);
    for (c, m) in mask_s.iter().enumerate() {
        if *m == 0.0 {
            assert!(db_s[c * rank_s..(c + 1) * rank_s].iter().all(|&g| g == 0.0));
        }
    }
}

#[test]
fn qkv_lora_projection_matches_the_cpu_composition() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(5);
    check_qkv_lora::<f32>(&dev, &mut rng);
    check_qkv_lora::<bf16>(&dev, &mut rng);
}
