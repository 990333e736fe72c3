//! `fym bench --device cuda`: the bf16 tensor-core GEMM and attention kernels at Wan2.1 shapes,
//! each as a median over repetitions with TFLOP/s and the fraction of the GPU's dense bf16
//! tensor-core peak. Rows are [`BenchResult`]s with device "cuda" (the `threads` field holds the
//! GPU's SM count), so `scripts/bench-pytorch-cuda.py` (device "cuda-torch") lines up with them.
//!
//! Timing: the stream is synchronised, a batch of launches is issued, the stream is synchronised
//! again and the host clock gives the time per launch. Batches are sized to last a few
//! milliseconds, so launch overhead and the synchronisation round trip are amortised. The first
//! launch of each case is a warm-up (it also pays the NVRTC compile of the kernel's `.cu` file).
//!
//! Shapes (Wan2.1 at 480×832, 81 frames: latent 21×60×104, patch 1×2×2 → 21 frames of 30×52 =
//! 1560 tokens, S = 32760; dim 1536 = 12 heads × 128, FFN 8960):
//! - GEMM `[M, K] · [N, K]ᵀ` (a linear layer, `trans_b`): M = 32760, K = 1536, N = 1536 (q/k/v/o
//!   projections), N = 8960 (FFN up), and K = 8960, N = 1536 (FFN down).
//! - attention, 12 heads × 128, S = 4096 (16 frames × 256 tokens), 16384 (16 × 1024), 32760
//!   (21 × 1560), every mask mode, forward and forward + backward. FLOPs come from
//!   [`attention_flops`], which counts only the unmasked keys (Spatial/Temporal skip masked tiles).
//!
//! On a machine without a GPU every entry point returns the "CUDA unavailable" error of
//! [`CudaDevice::open`]; the launch path is only exercised on a GPU (`scripts/gpu-check`).

use std::sync::Arc;
use std::time::Instant;

use fym_kernels::cpu::attention::{attention_flops, AttnDims, MaskMode};
use fym_kernels::cuda::attention::{attention_backward, attention_forward};
use fym_kernels::cuda::gemm::{gemm, gemm_flops};
use fym_kernels::cuda::{bf16, CudaDevice, CudaSlice};

use crate::perf::{BenchPlan, BenchResult};

/// Where a dense bf16 peak figure came from.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuPeak {
    pub tflops: f64,
    /// "NVIDIA spec for H100 SXM", or the formula that produced `tflops`.
    pub source: String,
}

/// NVIDIA's published dense (no sparsity) bf16 tensor-core peaks, matched by a substring of the
/// device name in order (so "PCIe"/"NVL" variants come before the plain name):
///
/// | name contains  | TFLOP/s | part                       |
/// |----------------|---------|----------------------------|
/// | H100 + PCIe    | 756     | H100 PCIe (114 SMs)        |
/// | H100 + NVL     | 835     | H100 NVL                   |
/// | H200 + NVL     | 835     | H200 NVL                   |
/// | H100           | 989     | H100 SXM (132 SMs, 1830 MHz) |
/// | H200           | 989     | H200 SXM, GH200            |
/// | A100           | 312     | A100 SXM and PCIe          |
/// | L40S           | 362     | L40S                       |
pub const PEAK_TABLE: &[(&[&str], f64, &str)] = &[
    (&["H100", "PCIe"], 756.0, "H100 PCIe"),
    (&["H100", "NVL"], 835.0, "H100 NVL"),
    (&["H200", "NVL"], 835.0, "H200 NVL"),
    (&["H100"], 989.0, "H100 SXM"),
    (&["H200"], 989.0, "H200 SXM"),
    (&["A100"], 312.0, "A100"),
    (&["L40S"], 362.0, "L40S"),
];

/// Dense bf16 flops per clock per SM and the clock (MHz) NVIDIA's peak figures use, by compute
/// capability. Hopper's SM does 2048 bf16 FMA (4096 flops) per clock: 132 SMs × 1830 MHz × 4096
/// = 989 TFLOP/s; Ampere's A100 half that (108 × 1410 × 2048 = 312).
const ARCH_RATES: &[((i32, i32), f64, f64)] = &[
    ((9, 0), 4096.0, 1830.0),
    ((8, 0), 2048.0, 1410.0),
    ((8, 6), 1024.0, 1740.0),
    ((8, 9), 1024.0, 2520.0),
];

/// The dense bf16 tensor-core peak of a GPU: [`PEAK_TABLE`] by name, else SMs × clock ×
/// flops/clock/SM from [`ARCH_RATES`] (with `clock_mhz` when known, else the architecture's
/// reference clock), else `None` (unknown architecture: fractions of peak are then reported as
/// null).
pub fn gpu_peak(
    name: &str,
    compute_capability: (i32, i32),
    multiprocessors: u32,
    clock_mhz: Option<f64>,
) -> Option<GpuPeak> {
    if let Some((_, tflops, part)) = PEAK_TABLE
        .iter()
        .find(|(keys, _, _)| keys.iter().all(|k| name.contains(k)))
    {
        return Some(GpuPeak {
            tflops: *tflops,
            source: format!("NVIDIA spec for {part}"),
        });
    }
    let (_, per_clock, reference_mhz) = ARCH_RATES
        .iter()
        .find(|(cc, _, _)| *cc == compute_capability)?;
    let mhz = clock_mhz.unwrap_or(*reference_mhz);
    let (major, minor) = compute_capability;
    Some(GpuPeak {
        tflops: multiprocessors as f64 * mhz * 1e6 * per_clock / 1e12,
        source: format!(
            "{multiprocessors} SMs × {mhz:.0} MHz × {per_clock:.0} flops/clock (sm_{major}{minor})"
        ),
    })
}

/// The GEMM shapes `(m, k, n)` of a run.
pub fn gemm_cases(quick: bool) -> Vec<(usize, usize, usize)> {
    if quick {
        vec![(4096, 1536, 1536)]
    } else {
        vec![
            (32760, 1536, 1536),
            (32760, 1536, 8960),
            (32760, 8960, 1536),
        ]
    }
}

/// The attention sizes of a run (batch 1, 12 heads × 128; see the module doc for the frames).
pub fn attention_cases(quick: bool) -> Vec<AttnDims> {
    let sizes: &[(usize, usize)] = if quick {
        &[(4096, 256)]
    } else {
        &[(4096, 256), (16384, 1024), (32760, 1560)]
    };
    sizes
        .iter()
        .map(|&(seq, tokens_per_frame)| AttnDims {
            batch: 1,
            heads: 12,
            seq_q: seq,
            seq_kv: seq,
            head_dim: 128,
            tokens_per_frame,
        })
        .collect()
}

/// A one-line description of GPU `ordinal` and its peak; errors (never panics) without a GPU.
pub fn device_summary(ordinal: usize) -> anyhow::Result<String> {
    let dev = CudaDevice::open(ordinal)?;
    let (major, minor) = dev.compute_capability();
    let peak = match peak_of(&dev) {
        Some(p) => format!("dense bf16 peak {:.0} TFLOP/s ({})", p.tflops, p.source),
        None => "dense bf16 peak unknown for this GPU (fractions of peak are null)".to_string(),
    };
    Ok(format!(
        "cuda:{ordinal} {} (sm_{major}{minor}, {} SMs), {peak}",
        dev.name(),
        dev.multiprocessor_count()
    ))
}

fn peak_of(dev: &CudaDevice) -> Option<GpuPeak> {
    // The device does not report its clock through fym's CudaDevice, so the fallback uses the
    // architecture's reference clock.
    gpu_peak(
        dev.name(),
        dev.compute_capability(),
        dev.multiprocessor_count(),
        None,
    )
}

/// [`run_cuda_on`] GPU 0.
pub fn run_cuda(
    plan: &BenchPlan,
    emit: impl FnMut(&BenchResult),
) -> anyhow::Result<Vec<BenchResult>> {
    run_cuda_on(0, plan, emit)
}

/// Runs the plan on GPU `ordinal` (`plan.threads` is ignored); `emit` receives each result as
/// soon as it is measured. The first row is the peak the fractions refer to.
pub fn run_cuda_on(
    ordinal: usize,
    plan: &BenchPlan,
    mut emit: impl FnMut(&BenchResult),
) -> anyhow::Result<Vec<BenchResult>> {
    let dev = CudaDevice::open(ordinal)?;
    let sms = dev.multiprocessor_count() as usize;
    // NaN serialises as JSON null: "unknown", never a made-up fraction.
    let peak_gflops = peak_of(&dev).map_or(f64::NAN, |p| p.tflops * 1e3);
    let (reps, budget) = if plan.quick { (5, 0.3) } else { (20, 2.0) };
    let wanted = |op: &str| plan.filter.as_deref().is_none_or(|f| op.contains(f));
    let mut results = Vec::new();
    let mut push = |r: BenchResult| {
        emit(&r);
        results.push(r);
    };
    let result = |op, shape, mode, ms: f64, flops: f64| {
        let gflops = flops / (ms * 1e6);
        BenchResult {
            op,
            shape,
            mode,
            device: "cuda",
            threads: sms,
            ms,
            gflops,
            peak_frac: gflops / peak_gflops,
        }
    };
    push(BenchResult {
        op: "peak",
        shape: vec![],
        mode: None,
        device: "cuda",
        threads: sms,
        ms: 0.0,
        gflops: peak_gflops,
        peak_frac: 1.0,
    });

    if wanted("gemm") {
        for (m, k, n) in gemm_cases(plan.quick) {
            let a = dev.upload_bf16(&random_vec(m * k, 1))?;
            let w = dev.upload_bf16(&random_vec(n * k, 2))?;
            let mut c = dev.zeros::<bf16>(m * n)?;
            // A linear layer: x · Wᵀ with W stored [out, in], as in Wan.
            let ms = time_ms(&dev, reps, budget, || {
                gemm(
                    &dev, false, true, m, n, k, 1.0, &a, k, &w, k, 0.0, &mut c, n,
                )
            })?;
            push(result("gemm", vec![m, k, n], None, ms, gemm_flops(m, n, k)));
        }
    }

    let (want_fwd, want_bwd) = (wanted("attention_fwd"), wanted("attention_fwd_bwd"));
    if !(want_fwd || want_bwd) {
        return Ok(results);
    }
    for dims in attention_cases(plan.quick) {
        let bufs = AttentionBuffers::new(&dev, dims)?;
        let scale = 1.0 / (dims.head_dim as f32).sqrt();
        let shape = vec![dims.batch, dims.heads, dims.seq_q, dims.head_dim];
        for (mask, mode) in [
            (MaskMode::Full, "full"),
            (MaskMode::Spatial, "spatial"),
            (MaskMode::Temporal, "temporal"),
        ] {
            let forward_flops = attention_flops(dims, mask, false);
            let mut b = bufs.fresh_outputs(&dev)?;
            if want_fwd {
                let ms = time_ms(&dev, reps, budget, || b.forward(&dev, &bufs, mask, scale))?;
                push(result(
                    "attention_fwd",
                    shape.clone(),
                    Some(mode),
                    ms,
                    forward_flops,
                ));
            }
            if want_bwd {
                let ms = time_ms(&dev, reps, budget, || {
                    b.forward(&dev, &bufs, mask, scale)?;
                    b.backward(&dev, &bufs, mask, scale)
                })?;
                let flops = forward_flops + attention_flops(dims, mask, true);
                push(result(
                    "attention_fwd_bwd",
                    shape.clone(),
                    Some(mode),
                    ms,
                    flops,
                ));
            }
        }
    }
    Ok(results)
}

/// The inputs of one attention size, shared by its mask modes.
struct AttentionBuffers {
    dims: AttnDims,
    q: CudaSlice<bf16>,
    k: CudaSlice<bf16>,
    v: CudaSlice<bf16>,
    d_out: CudaSlice<bf16>,
}

/// Outputs and gradients written by the timed launches.
struct AttentionOutputs {
    dims: AttnDims,
    out: CudaSlice<bf16>,
    lse: CudaSlice<f32>,
    dq: CudaSlice<bf16>,
    dk: CudaSlice<bf16>,
    dv: CudaSlice<bf16>,
}

impl AttentionBuffers {
    fn new(dev: &Arc<CudaDevice>, dims: AttnDims) -> anyhow::Result<Self> {
        let n = dims.batch * dims.seq_q * dims.heads * dims.head_dim;
        Ok(Self {
            dims,
            q: dev.upload_bf16(&random_vec(n, 3))?,
            k: dev.upload_bf16(&random_vec(n, 4))?,
            v: dev.upload_bf16(&random_vec(n, 5))?,
            d_out: dev.upload_bf16(&random_vec(n, 6))?,
        })
    }

    fn fresh_outputs(&self, dev: &Arc<CudaDevice>) -> anyhow::Result<AttentionOutputs> {
        let d = self.dims;
        let n = d.batch * d.seq_q * d.heads * d.head_dim;
        Ok(AttentionOutputs {
            dims: d,
            out: dev.zeros(n)?,
            lse: dev.zeros(d.batch * d.heads * d.seq_q)?,
            dq: dev.zeros(n)?,
            dk: dev.zeros(n)?,
            dv: dev.zeros(n)?,
        })
    }
}

impl AttentionOutputs {
    fn forward(
        &mut self,
        dev: &CudaDevice,
        inputs: &AttentionBuffers,
        mask: MaskMode,
        scale: f32,
    ) -> fym_kernels::Result<()> {
        attention_forward(
            dev,
            self.dims,
            mask,
            scale,
            &inputs.q,
            &inputs.k,
            &inputs.v,
            &mut self.out,
            &mut self.lse,
        )
    }

    fn backward(
        &mut self,
        dev: &CudaDevice,
        inputs: &AttentionBuffers,
        mask: MaskMode,
        scale: f32,
    ) -> fym_kernels::Result<()> {
        attention_backward(
            dev,
            self.dims,
            mask,
            scale,
            &inputs.q,
            &inputs.k,
            &inputs.v,
            &self.out,
            &self.lse,
            &inputs.d_out,
            &mut self.dq,
            &mut self.dk,
            &mut self.dv,
        )
    }
}

/// Each timed batch of launches lasts about this long, so the per-batch synchronisation and the
/// host clock's resolution stay below 1 % of the measurement.
const TARGET_BATCH_MS: f64 = 5.0;
const MAX_BATCH: usize = 200;

/// Median milliseconds per call of `launch` (which only enqueues work on `dev`'s stream) over
/// `reps` timed batches, after a warm-up call; stops early once `budget_s` seconds were spent
/// (at least 3 batches).
pub fn time_ms(
    dev: &CudaDevice,
    reps: usize,
    budget_s: f64,
    mut launch: impl FnMut() -> fym_kernels::Result<()>,
) -> anyhow::Result<f64> {
    let mut batch_ms = |count: usize| -> anyhow::Result<f64> {
        dev.synchronize()?;
        let t = Instant::now();
        for _ in 0..count {
            launch()?;
        }
        dev.synchronize()?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    batch_ms(1)?;
    let single = batch_ms(1)?;
    let count = batch_size(single);
    let start = Instant::now();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        times.push(batch_ms(count)? / count as f64);
        if times.len() >= 3 && start.elapsed().as_secs_f64() > budget_s {
            break;
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

/// Launches per timed batch for a call that took `single_ms` alone.
pub fn batch_size(single_ms: f64) -> usize {
    if single_ms.is_finite() && single_ms > 0.0 {
        ((TARGET_BATCH_MS / single_ms).ceil() as usize).clamp(1, MAX_BATCH)
    } else {
        MAX_BATCH
    }
}

fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    // A cheap deterministic generator: benchmark inputs need no statistical quality, only
    // non-zero values (zeros would let the tensor cores draw less power than real data).
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}
