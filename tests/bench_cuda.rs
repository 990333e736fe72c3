//! `fym bench --device cuda`: without a GPU the built binary fails with a clear error (exit 1, no
//! panic); with one, a quick run prints consistent JSON rows. The peak table, the benchmark shapes
//! and the batch sizing are checked without a GPU.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use fym::perf::BenchResult;
use fym::perf_cuda::{attention_cases, batch_size, gemm_cases, gpu_peak};
use fym_kernels::cpu::attention::{attention_flops, MaskMode};
use fym_kernels::cuda::CudaDevice;

fn fym(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fym"))
        .args(args)
        .output()
        .expect("the fym binary runs")
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn cuda_bench_errors_without_gpu_or_runs_quick_with_one() {
    if CudaDevice::open(0).is_err() {
        for device in ["cuda", "cuda:1"] {
            let out = fym(&["bench", "--device", device, "--quick"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
            assert!(stderr.contains("CUDA unavailable"), "stderr: {stderr}");
            assert!(stderr.contains("--device cpu"), "stderr: {stderr}");
            assert!(!stderr.contains("panicked"), "stderr: {stderr}");
            assert!(
                out.stdout.is_empty(),
                "no rows without a GPU: {:?}",
                out.stdout
            );
        }
        return;
    }

    let out = fym(&["bench", "--device", "cuda", "--quick", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    assert_eq!(rows[0]["op"], "peak");
    let peak = rows[0]["gflops"].as_f64();
    let mut seen = BTreeSet::new();
    for row in &rows[1..] {
        assert_eq!(row["device"], "cuda", "{row}");
        let ms = row["ms"].as_f64().expect("ms");
        let gflops = row["gflops"].as_f64().expect("gflops");
        assert!(ms > 0.0 && gflops > 0.0, "{row}");
        let shape: Vec<usize> = serde_json::from_value(row["shape"].clone()).expect("shape");
        let flops = match row["op"].as_str().expect("op") {
            "gemm" => 2.0 * (shape[0] * shape[1] * shape[2]) as f64,
            op => {
                let dims = attention_cases(true)
                    .into_iter()
                    .find(|d| d.seq_q == shape[2])
                    .expect("a quick attention size");
                let mask = match row["mode"].as_str().expect("mode") {
                    "full" => MaskMode::Full,
                    "spatial" => MaskMode::Spatial,
                    _ => MaskMode::Temporal,
                };
                let fwd = attention_flops(dims, mask, false);
                if op == "attention_fwd" {
                    fwd
                } else {
                    fwd + attention_flops(dims, mask, true)
                }
            }
        };
        assert!(rel(gflops, flops / (ms * 1e6)) < 1e-6, "{row}");
        if let Some(peak) = peak {
            let frac = row["peak_frac"].as_f64().expect("peak_frac");
            assert!(rel(frac, gflops / peak) < 1e-6, "{row}");
            assert!(frac < 1.1, "faster than the GPU's peak: {row}");
        }
        seen.insert(format!("{} {}", row["op"], row["mode"]));
    }
    // gemm + 2 attention ops × 3 modes.
    assert_eq!(seen.len(), 7, "{seen:?}");
}

#[test]
fn peak_table_matches_the_per_sm_formula() {
    let table = |name| gpu_peak(name, (9, 0), 132, None).expect("a Hopper peak");
    let sxm = table("NVIDIA H100 80GB HBM3");
    assert_eq!(sxm.tflops, 989.0);
    assert!(sxm.source.contains("H100 SXM"), "{}", sxm.source);
    assert_eq!(table("NVIDIA H100 PCIe").tflops, 756.0);
    assert_eq!(table("NVIDIA H100 NVL").tflops, 835.0);
    assert_eq!(table("NVIDIA H200").tflops, 989.0);
    assert_eq!(table("NVIDIA H200 NVL").tflops, 835.0);
    assert_eq!(table("NVIDIA GH200 480GB").tflops, 989.0);

    // An unlisted name falls back to SMs × clock × flops/clock/SM, which reproduces NVIDIA's
    // figures for the parts in the table.
    let formula = |cc, sms, mhz| gpu_peak("some future GPU", cc, sms, mhz).expect("known arch");
    let h100_sxm = formula((9, 0), 132, None);
    assert!(rel(h100_sxm.tflops, 989.0) < 2e-3, "{h100_sxm:?}");
    assert!(h100_sxm.source.contains("132 SMs"), "{h100_sxm:?}");
    let h100_pcie = formula((9, 0), 114, Some(1620.0));
    assert!(rel(h100_pcie.tflops, 756.0) < 2e-3, "{h100_pcie:?}");
    let a100 = formula((8, 0), 108, None);
    assert!(rel(a100.tflops, 312.0) < 2e-3, "{a100:?}");
    assert_eq!(
        gpu_peak("NVIDIA A100-SXM4-80GB", (8, 0), 108, None)
            .expect("A100")
            .tflops,
        312.0
    );

    assert!(gpu_peak("some future GPU", (12, 0), 170, None).is_none());
}

#[test]
fn unknown_peak_serialises_as_null() {
    let row = BenchResult {
        op: "gemm",
        shape: vec![1, 2, 3],
        mode: None,
        device: "cuda",
        threads: 132,
        ms: 1.0,
        gflops: 2.0,
        peak_frac: 2.0 / f64::NAN,
    };
    let json = row.to_json();
    assert!(json["peak_frac"].is_null(), "{json}");
    assert_eq!(json["gflops"].as_f64(), Some(2.0));
}

#[test]
fn benchmark_shapes_are_wan_shapes() {
    let full = gemm_cases(false);
    for wan in [(32760, 1536, 1536), (32760, 1536, 8960)] {
        assert!(full.contains(&wan), "{full:?}");
    }
    let seqs: Vec<usize> = attention_cases(false).iter().map(|d| d.seq_q).collect();
    assert_eq!(seqs, [4096, 16384, 32760]);
    for quick in [false, true] {
        for d in attention_cases(quick) {
            assert_eq!((d.batch, d.heads, d.head_dim), (1, 12, 128));
            assert_eq!(d.seq_q, d.seq_kv);
            assert_eq!(d.seq_q % d.tokens_per_frame, 0, "{d:?}");
            assert!(d.seq_q / d.tokens_per_frame > 1, "several frames: {d:?}");
        }
    }
    let wan = attention_cases(false)[2];
    assert_eq!(
        (wan.seq_q / wan.tokens_per_frame, wan.tokens_per_frame),
        (21, 30 * 52)
    );
    let most = |cases: Vec<(usize, usize, usize)>| cases.iter().map(|c| c.0 * c.1 * c.2).max();
    assert!(most(gemm_cases(true)) < most(gemm_cases(false)));
}

#[test]
fn timed_batches_last_a_few_milliseconds() {
    for single_ms in [0.07, 0.3, 1.0, 2.4] {
        let count = batch_size(single_ms);
        let total = count as f64 * single_ms;
        assert!(
            (5.0..5.0 + single_ms).contains(&total),
            "{single_ms}: {count}"
        );
    }
    assert_eq!(batch_size(0.001), 200);
    assert_eq!(batch_size(40.0), 1);
    assert_eq!(batch_size(f64::NAN), 200);
}
