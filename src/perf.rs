//! Kernel benchmarks: the machine's FMA peak measured in the same run, then GEMM and attention
//! shapes, each as a median over repetitions with GFLOP/s and the fraction of that peak.
//! Used by `fym bench` and `cargo bench`.

use std::time::Instant;

use fym_kernels::cpu::attention::{
    attention_backward, attention_flops, attention_forward, AttnDims, MaskMode,
};
use fym_kernels::cpu::{gemm, peak, pool};
use serde_json::json;

/// Tokens per frame of the attention benchmarks (an 8 × 8 latent grid).
pub const BENCH_TOKENS_PER_FRAME: usize = 64;

/// One measured case.
#[derive(Clone, Debug)]
pub struct BenchResult {
    pub op: &'static str,
    pub shape: Vec<usize>,
    pub mode: Option<&'static str>,
    pub device: &'static str,
    pub threads: usize,
    pub ms: f64,
    pub gflops: f64,
    pub peak_frac: f64,
}

impl BenchResult {
    /// The one-line JSON form printed by `fym bench --json`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "op": self.op, "shape": self.shape, "mode": self.mode, "device": self.device,
            "threads": self.threads, "ms": self.ms, "gflops": self.gflops, "peak_frac": self.peak_frac,
        })
    }

    /// A human-readable table row.
    pub fn to_row(&self) -> String {
        let shape = self
            .shape
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("×");
        format!(
            "{:<18} {:<16} {:<9} {:>10.3} ms {:>9.1} GFLOP/s {:>6.1}% of peak",
            self.op,
            shape,
            self.mode.unwrap_or("-"),
            self.ms,
            self.gflops,
            100.0 * self.peak_frac
        )
    }
}

/// How much cheaper each masked attention is than `Full` at the same shape, next to what the
/// skipped tiles imply: one line per (op, shape, mask) with both times measured, e.g.
/// `attention_fwd_bwd 1×4×2048×32: temporal 21.4× cheaper than full (skipped tiles imply 64×)`.
/// The bench's clips have 64 tokens per frame, so `Spatial` skips all but 1 of `frames` frames
/// and `Temporal` all but 1 of 64 positions.
pub fn mask_speedups(results: &[BenchResult], tokens_per_frame: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for full in results.iter().filter(|r| r.mode == Some("full")) {
        let seq = full.shape[2];
        for masked in results.iter().filter(|r| {
            r.op == full.op
                && r.shape == full.shape
                && matches!(r.mode, Some("spatial" | "temporal"))
        }) {
            let ideal = match masked.mode {
                Some("spatial") => seq / tokens_per_frame,
                _ => tokens_per_frame,
            };
            let shape: Vec<String> = full.shape.iter().map(|s| s.to_string()).collect();
            lines.push(format!(
                "{} {}: {} {:.1}× cheaper than full (skipped tiles imply {ideal}×)",
                full.op,
                shape.join("×"),
                masked.mode.unwrap_or("-"),
                full.ms / masked.ms
            ));
        }
    }
    lines
}

/// Median wall time in milliseconds of `f` over `reps` runs after one warm-up; stops early once
/// `budget_s` seconds were spent (at least 3 runs).
pub fn median_ms(reps: usize, budget_s: f64, f: impl FnMut()) -> f64 {
    median_wall_cpu_ms(reps, budget_s, f).0
}

/// Like [`median_ms`], and also the median CPU time of the whole process per run (all threads,
/// pool workers' polling included). On a shared machine the CPU time of a one-thread run is the
/// steadier number: time spent descheduled counts in wall time but not in CPU time.
pub fn median_wall_cpu_ms(reps: usize, budget_s: f64, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let start = Instant::now();
    let mut wall = Vec::with_capacity(reps);
    let mut cpu = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (t, c) = (Instant::now(), process_cpu_ms());
        f();
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push(process_cpu_ms() - c);
        if wall.len() >= 3 && start.elapsed().as_secs_f64() > budget_s {
            break;
        }
    }
    (median(&mut wall), median(&mut cpu))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// CPU time used by this process so far, in milliseconds (NaN where the OS does not say).
pub fn process_cpu_ms() -> f64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `ts` is a valid timespec (two 64-bit fields on every 64-bit Linux target) that
        // the call fills in.
        if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return ts.sec as f64 * 1e3 + ts.nsec as f64 * 1e-6;
        }
    }
    f64::NAN
}

fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    // A cheap deterministic generator: benchmark inputs need no statistical quality.
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

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub threads: usize,
    /// Shorter runs (fewer repetitions) for smoke tests.
    pub quick: bool,
    /// Only cases whose op name contains this.
    pub filter: Option<String>,
}

/// Runs the plan; `emit` receives each result as soon as it is measured.
pub fn run_cpu(plan: &BenchPlan, mut emit: impl FnMut(&BenchResult)) -> Vec<BenchResult> {
    pool::set_num_threads(plan.threads);
    let threads = pool::num_threads();
    let (reps, budget) = if plan.quick { (5, 0.2) } else { (30, 3.0) };
    let wanted = |op: &str| plan.filter.as_deref().is_none_or(|f| op.contains(f));
    let mut results = Vec::new();
    let mut push = |r: BenchResult, results: &mut Vec<BenchResult>| {
        emit(&r);
        results.push(r);
    };

    let peak_gflops = peak::measure_fma_peak_gflops(threads);
    push(
        BenchResult {
            op: "peak",
            shape: vec![],
            mode: None,
            device: "cpu",
            threads,
            ms: 0.0,
            gflops: peak_gflops,
            peak_frac: 1.0,
        },
        &mut results,
    );
    let result = |op, shape, mode, ms: f64, flops: f64| BenchResult {
        op,
        shape,
        mode,
        device: "cpu",
        threads,
        ms,
        gflops: flops / (ms * 1e6),
        peak_frac: flops / (ms * 1e6) / peak_gflops,
    };

    if wanted("gemm") {
        for (m, k, n) in [(512, 512, 512), (2048, 512, 128), (4096, 128, 512)] {
            let (a, b) = (random_vec(m * k, 1), random_vec(k * n, 2));
            let mut c = vec![0.0; m * n];
            let ms = median_ms(reps, budget, || {
                gemm::sgemm(false, false, m, n, k, 1.0, &a, k, &b, n, 0.0, &mut c, n);
            });
            push(
                result("gemm", vec![m, k, n], None, ms, 2.0 * (m * n * k) as f64),
                &mut results,
            );
        }
    }

    for (seq, label) in [(512usize, "S512"), (2048, "S2048")] {
        let _ = label;
        let dims = AttnDims {
            batch: 1,
            heads: 4,
            seq_q: seq,
            seq_kv: seq,
            head_dim: 32,
            tokens_per_frame: BENCH_TOKENS_PER_FRAME,
        };
        let n = dims.batch * dims.seq_q * dims.heads * dims.head_dim;
        let (q, k, v, d_out) = (
            random_vec(n, 3),
            random_vec(n, 4),
            random_vec(n, 5),
            random_vec(n, 6),
        );
        let scale = 1.0 / (dims.head_dim as f32).sqrt();
        for (mask, mode) in [
            (MaskMode::Full, "full"),
            (MaskMode::Spatial, "spatial"),
            (MaskMode::Temporal, "temporal"),
        ] {
            let mut out = vec![0.0; n];
            let mut lse = vec![0.0; dims.batch * dims.heads * dims.seq_q];
            let shape = vec![dims.batch, dims.heads, seq, dims.head_dim];
            if wanted("attention_fwd") {
                let ms = median_ms(reps, budget, || {
                    attention_forward(dims, mask, scale, &q, &k, &v, &mut out, &mut lse)
                        .expect("valid benchmark shapes");
                });
                let flops = attention_flops(dims, mask, false);
                push(
                    result("attention_fwd", shape.clone(), Some(mode), ms, flops),
                    &mut results,
                );
            }
            if wanted("attention_fwd_bwd") {
                let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                let ms = median_ms(reps, budget, || {
                    attention_forward(dims, mask, scale, &q, &k, &v, &mut out, &mut lse)
                        .expect("valid benchmark shapes");
                    attention_backward(
                        dims, mask, scale, &q, &k, &v, &out, &lse, &d_out, &mut dq, &mut dk,
                        &mut dv,
                    )
                    .expect("valid benchmark shapes");
                });
                let flops = attention_flops(dims, mask, false) + attention_flops(dims, mask, true);
                push(
                    result("attention_fwd_bwd", shape, Some(mode), ms, flops),
                    &mut results,
                );
            }
        }
    }
    results
}

/// The model-level benchmark shape: Wan config dim 128 (4 heads × 32), 4 layers, ffn 512,
/// text_dim 128, freq_dim 256, patch (1,2,2), latent 4×8×16×16 (512 tokens), text length 16,
/// LoRA rank 8 on to_q/to_k/to_v/to_out.0 of attn1 and attn2.
pub fn step_bench_config() -> fym_model::WanConfig {
    let mut c = fym_model::WanConfig::dev();
    c.num_attention_heads = 4;
    c.attention_head_dim = 32;
    c.num_layers = 4;
    c.ffn_dim = 512;
    c.text_dim = 128;
    c.freq_dim = 256;
    c.in_channels = 4;
    c.out_channels = 4;
    c.patch_size = [1, 2, 2];
    c
}

/// Median wall and CPU times (ms) of the model-level benchmark (see [`wan_step_times`]).
#[derive(Clone, Copy, Debug)]
pub struct StepTimes {
    pub forward_ms: f64,
    pub forward_cpu_ms: f64,
    pub step_ms: f64,
    pub step_cpu_ms: f64,
}

/// Median times (ms) of a forward without gradients and of a LoRA training step (forward, MSE
/// loss, backward to the LoRA factors only) on [`step_bench_config`].
pub fn wan_step_ms(quick: bool) -> anyhow::Result<(f64, f64)> {
    let t = wan_step_times(quick)?;
    Ok((t.forward_ms, t.step_ms))
}

/// [`wan_step_ms`] with the CPU time per run as well.
pub fn wan_step_times(quick: bool) -> anyhow::Result<StepTimes> {
    use fym_autograd::{no_grad, Tensor};
    use fym_model::lora::{Adapter, AdapterKind, Adapters, Attn, LoraSite, LoraTarget};
    use rand::SeedableRng;

    let config = step_bench_config();
    let dim = config.dim();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut model = fym_model::WanModel::new_random(config.clone(), &mut rng, false)?;
    let sites: Vec<(LoraSite, usize, usize)> = (0..config.num_layers)
        .flat_map(|block| {
            [Attn::SelfAttn, Attn::CrossAttn]
                .into_iter()
                .flat_map(move |attn| {
                    LoraTarget::ALL.into_iter().map(move |target| {
                        (
                            LoraSite {
                                block,
                                attn,
                                target,
                            },
                            dim,
                            dim,
                        )
                    })
                })
        })
        .collect();
    let mut adapter = Adapter::new(
        AdapterKind::Plain,
        8,
        8.0,
        &sites,
        None,
        config.attention_head_dim,
        &mut rng,
    )?;
    // Non-zero B so the LoRA path does real work in the forward.
    for f in adapter.factors.values_mut() {
        f.b = Tensor::param(
            fym_autograd::init::normal_vec(&mut rng, f.b.numel(), 0.01),
            f.b.shape(),
        )?;
    }
    model.adapters = Adapters {
        list: vec![adapter],
    };
    let x = Tensor::randn(&[1, 4, 8, 16, 16], &mut rng);
    let target = Tensor::randn(&[1, 4, 8, 16, 16], &mut rng);
    let text = Tensor::randn(&[1, 16, 128], &mut rng);
    let opts = fym_model::ForwardOptions::default();
    let (reps, budget) = if quick { (3, 0.5) } else { (20, 5.0) };
    let (forward_ms, forward_cpu_ms) = median_wall_cpu_ms(reps, budget, || {
        no_grad(|| model.forward(&x, &[500.0], &text, &opts)).expect("benchmark forward");
    });
    let (step_ms, step_cpu_ms) = median_wall_cpu_ms(reps, budget, || {
        let out = model
            .forward(&x, &[500.0], &text, &opts)
            .expect("benchmark forward");
        let loss = out.mse_loss(&target).expect("loss");
        let grads = loss.backward().expect("backward");
        assert_eq!(
            grads.len(),
            64,
            "gradients reach every LoRA factor and nothing else"
        );
    });
    Ok(StepTimes {
        forward_ms,
        forward_cpu_ms,
        step_ms,
        step_cpu_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(op: &'static str, seq: usize, mode: &'static str, ms: f64) -> BenchResult {
        BenchResult {
            op,
            shape: vec![1, 4, seq, 32],
            mode: Some(mode),
            device: "cpu",
            threads: 2,
            ms,
            gflops: 0.0,
            peak_frac: 0.0,
        }
    }

    #[test]
    fn mask_speedups_divide_full_by_each_mask_at_the_same_shape() {
        let results = [
            row("attention_fwd_bwd", 2048, "full", 30.0),
            row("attention_fwd_bwd", 2048, "spatial", 1.5),
            row("attention_fwd_bwd", 2048, "temporal", 1.2),
            row("attention_fwd", 2048, "temporal", 0.1),
            row("attention_fwd_bwd", 512, "temporal", 9.0),
        ];
        assert_eq!(
            mask_speedups(&results, 64),
            [
                "attention_fwd_bwd 1×4×2048×32: spatial 20.0× cheaper than full (skipped tiles imply 32×)",
                "attention_fwd_bwd 1×4×2048×32: temporal 25.0× cheaper than full (skipped tiles imply 64×)",
            ]
        );
    }
}
