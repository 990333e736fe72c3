//! Launchers of `kernels/cuda/attention.cu` and `kernels/cuda/attention_stats.cu`: the CUDA twins
//! of [`crate::cpu::attention`], same sizes ([`AttnDims`]), mask modes and layouts (q/out
//! `[B, Sq, H, D]`, k/v `[B, Skv, H, D]`, lse `[B, H, Sq]`, natural log).
//!
//! bf16 with head_dim 64 or 128 runs on the tensor cores (FlashAttention-2 schedule); f32, and
//! bf16 with other head dims (≤ 256), run the SIMT kernels, which are the parity reference.

use cudarc::driver::sys::CUfunction_attribute_enum;
use cudarc::driver::{CudaFunction, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};

use super::device::driver_call;
use super::dtype::CudaFloat;
use super::launch::{as_i32, as_i64, check_len, elementwise_config};
use super::CudaDevice;
use crate::cpu::attention::{AttnDims, HeadMapStats, MaskMode};
use crate::{Error, Result};

const FILE: &str = "attention.cu";
const STATS_FILE: &str = "attention_stats.cu";
/// Rows (warps) per block of the SIMT and statistics kernels.
const SIMT_ROWS: usize = 4;
const SIMT_MAX_DIM: usize = 256;
/// Queries per block of the tensor-core forward, keys per block of its backward.
const MMA_ROWS: usize = 64;
const MMA_THREADS: u32 = 128;
const MMA_PAD: usize = 8;
const MAX_GRID_Y: usize = 65_535;
/// Dynamic shared memory a block may use without opting in.
const DEFAULT_SMEM: usize = 48 * 1024;

/// Which implementation runs a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKernel {
    /// Tensor cores for bf16 with head_dim 64 or 128, SIMT otherwise.
    Auto,
    /// The SIMT kernels (f32 or bf16, head_dim ≤ 256).
    Simt,
    /// The tensor-core kernels (bf16, head_dim 64 or 128 only), 64 queries per forward block.
    TensorCore,
    /// The same with 128 queries per forward block (4 warps × 32 rows: each K/V fragment feeds
    /// twice the products; keys in tiles of 32 for head_dim 128). The backward is the same.
    TensorCoreWide,
}

/// Environment variable that overrides [`AttentionKernel::Auto`]'s tensor-core forward, for
/// benchmarks: `narrow` (64 queries per block) or `wide` (128).
pub const ATTENTION_KERNEL_ENV: &str = "FYM_ATTENTION_KERNEL";

/// The tensor-core variant [`ATTENTION_KERNEL_ENV`] names, if any (read once); any other value
/// is an error rather than a silent default that would mislabel a benchmark.
fn tensor_core_override() -> Result<Option<AttentionKernel>> {
    static CHOSEN: std::sync::OnceLock<std::result::Result<Option<AttentionKernel>, String>> =
        std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| match std::env::var(ATTENTION_KERNEL_ENV) {
            Err(_) => Ok(None),
            Ok(v) => parse_tensor_core(&v).map(Some).ok_or_else(|| {
                format!("{ATTENTION_KERNEL_ENV}={v:?}: use narrow (64 queries) or wide (128)")
            }),
        })
        .clone()
        .map_err(|msg| Error::Cuda {
            op: "cuda attention".into(),
            msg,
        })
}

fn parse_tensor_core(text: &str) -> Option<AttentionKernel> {
    match text {
        "narrow" => Some(AttentionKernel::TensorCore),
        "wide" => Some(AttentionKernel::TensorCoreWide),
        _ => None,
    }
}

/// Whether [`AttentionKernel::Auto`] runs the forward with 128 queries per block. Measured on an
/// H200 (BENCHMARKS.md): 11–14% faster for Full and Spatial attention at S = 16384 and 32760, but
/// slower when its blocks make fewer than ~4 waves (S = 4096: 384 blocks at two per SM) or when
/// a group has few queries (Temporal: 16 frames would fill an eighth of the tile).
fn wide_forward_pays_off(len_q: usize, problems: usize, multiprocessors: usize) -> bool {
    len_q >= 256 && problems * len_q.div_ceil(2 * MMA_ROWS) >= 8 * multiprocessors
}

/// The problem decomposition the kernels take by value; the same groups as the CPU's plan.rs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct AttnPlan {
    heads: i32,
    seq_q: i32,
    seq_kv: i32,
    head_dim: i32,
    groups: i32,
    len_q: i32,
    len_kv: i32,
    group_step: i32,
    stride: i32,
    scale: f32,
}

// SAFETY: `AttnPlan` is `repr(C)` plain data matching `struct AttnPlan` in attention.cu.
unsafe impl DeviceRepr for AttnPlan {}

impl AttnPlan {
    fn new(
        op: &'static str,
        dims: AttnDims,
        mask: MaskMode,
        scale: f32,
    ) -> Result<(AttnPlan, usize)> {
        let tpf = dims.tokens_per_frame;
        let (groups, len_q, len_kv, group_step, stride) = match mask {
            MaskMode::Full => (1, dims.seq_q, dims.seq_kv, 0, 1),
            MaskMode::Spatial => (dims.seq_q / tpf, tpf, tpf, tpf, 1),
            MaskMode::Temporal => (tpf, dims.seq_q / tpf, dims.seq_q / tpf, 1, tpf),
        };
        let problems = dims
            .batch
            .checked_mul(dims.heads)
            .and_then(|x| x.checked_mul(groups))
            .ok_or_else(|| Error::shape(op, format!("problem count overflows for {dims:?}")))?;
        let plan = AttnPlan {
            heads: as_i32(op, "heads", dims.heads)?,
            seq_q: as_i32(op, "seq_q", dims.seq_q)?,
            seq_kv: as_i32(op, "seq_kv", dims.seq_kv)?,
            head_dim: as_i32(op, "head_dim", dims.head_dim)?,
            groups: as_i32(op, "groups", groups)?,
            len_q: as_i32(op, "group queries", len_q)?,
            len_kv: as_i32(op, "group keys", len_kv)?,
            group_step: as_i32(op, "group step", group_step)?,
            stride: as_i32(op, "stride", stride)?,
            scale,
        };
        as_i32(op, "batch · heads · groups", problems)?;
        Ok((plan, problems))
    }
}

/// Checks sizes as the CPU kernel does; returns the lengths of (q/out, k/v, lse).
fn check_dims(
    op: &'static str,
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
) -> Result<(usize, usize, usize)> {
    let AttnDims {
        batch,
        heads,
        seq_q,
        seq_kv,
        head_dim,
        tokens_per_frame: tpf,
    } = dims;
    if batch == 0 || heads == 0 || seq_q == 0 || seq_kv == 0 || head_dim == 0 {
        return Err(Error::shape(
            op,
            format!("every size must be positive, got {dims:?}"),
        ));
    }
    if !scale.is_finite() {
        return Err(Error::shape(
            op,
            format!("scale must be finite, got {scale}"),
        ));
    }
    if mask != MaskMode::Full {
        if seq_q != seq_kv {
            return Err(Error::shape(
                op,
                format!("{mask:?} mask needs seq_q == seq_kv, got {seq_q} and {seq_kv} ({dims:?})"),
            ));
        }
        if tpf == 0 || !seq_q.is_multiple_of(tpf) {
            return Err(Error::shape(
                op,
                format!(
                    "{mask:?} mask needs tokens_per_frame > 0 dividing seq {seq_q}, got {tpf} ({dims:?})"
                ),
            ));
        }
    }
    let product = |xs: &[usize]| xs.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x));
    match (
        product(&[batch, seq_q, heads, head_dim]),
        product(&[batch, seq_kv, heads, head_dim]),
        product(&[batch, heads, seq_q]),
    ) {
        (Some(q), Some(kv), Some(l)) => Ok((q, kv, l)),
        _ => Err(Error::shape(op, format!("sizes overflow usize: {dims:?}"))),
    }
}

/// The implementation `requested` resolves to for element type `T` and `head_dim`, or an error
/// saying why it cannot run.
fn resolve<T: CudaFloat>(
    op: &'static str,
    requested: AttentionKernel,
    head_dim: usize,
) -> Result<AttentionKernel> {
    let is_bf16 = T::SUFFIX == "bf16";
    let mma_dim = head_dim == 64 || head_dim == 128;
    let kernel = match requested {
        AttentionKernel::Auto if is_bf16 && mma_dim => {
            tensor_core_override()?.unwrap_or(AttentionKernel::TensorCore)
        }
        AttentionKernel::Auto => AttentionKernel::Simt,
        other => other,
    };
    match kernel {
        AttentionKernel::TensorCore | AttentionKernel::TensorCoreWide if !(is_bf16 && mma_dim) => {
            Err(Error::shape(
                op,
                format!(
                    "the tensor-core kernels take bf16 with head_dim 64 or 128, got {} with \
                     head_dim {head_dim}",
                    T::SUFFIX
                ),
            ))
        }
        AttentionKernel::Simt if head_dim > SIMT_MAX_DIM => Err(Error::shape(
            op,
            format!("the SIMT kernels take head_dim ≤ {SIMT_MAX_DIM}, got {head_dim}"),
        )),
        k => Ok(k),
    }
}

fn grid_y(op: &'static str, rows: usize, per_block: usize) -> Result<u32> {
    let blocks = rows.div_ceil(per_block);
    if blocks > MAX_GRID_Y {
        return Err(Error::shape(
            op,
            format!("{rows} rows per group need {blocks} blocks, over the grid limit {MAX_GRID_Y}"),
        ));
    }
    Ok(blocks as u32)
}

/// Opts `f` into `bytes` of dynamic shared memory when that is above the default 48 KB.
pub(super) fn allow_smem(f: &CudaFunction, name: &str, bytes: usize) -> Result<()> {
    if bytes > DEFAULT_SMEM {
        let value = bytes as i32;
        driver_call(name, || {
            f.set_attribute(
                CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                value,
            )
        })?;
    }
    Ok(())
}

/// Rows (queries or keys) each warp of the SIMT kernels takes for a group of `len` rows, and the
/// kernel variant built for it: 4 rows share every row of the other side they read; short groups
/// (Temporal) keep 1 so their few rows still spread over all warps.
fn simt_rows_per_warp(len: usize) -> (usize, &'static str) {
    if len >= 64 {
        (4, "simt4")
    } else {
        (1, "simt")
    }
}

fn simt_config(problems: usize, blocks_y: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (problems as u32, blocks_y, 1),
        block_dim: ((SIMT_ROWS * 32) as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Forward: `out = softmax(q·kᵀ·scale masked) · v`, `lse` = per-row log-sum-exp (natural log).
#[allow(clippy::too_many_arguments)]
pub fn attention_forward<T: CudaFloat>(
    dev: &CudaDevice,
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
    lse: &mut CudaSlice<f32>,
) -> Result<()> {
    attention_forward_with(
        dev,
        AttentionKernel::Auto,
        dims,
        mask,
        scale,
        q,
        k,
        v,
        out,
        lse,
    )
}

/// [`attention_forward`] with an explicit implementation.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward_with<T: CudaFloat>(
    dev: &CudaDevice,
    kernel: AttentionKernel,
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
    lse: &mut CudaSlice<f32>,
) -> Result<()> {
    const OP: &str = "cuda attention_forward";
    let (q_len, kv_len, lse_len) = check_dims(OP, dims, mask, scale)?;
    check_len(OP, "q", q, q_len)?;
    check_len(OP, "k", k, kv_len)?;
    check_len(OP, "v", v, kv_len)?;
    check_len(OP, "out", out, q_len)?;
    check_len(OP, "lse", lse, lse_len)?;
    let requested = kernel;
    let kernel = resolve::<T>(OP, kernel, dims.head_dim)?;
    let (plan, problems) = AttnPlan::new(OP, dims, mask, scale)?;
    let sms = dev.multiprocessor_count() as usize;
    let kernel = match kernel {
        AttentionKernel::TensorCore
            if requested == AttentionKernel::Auto
                && tensor_core_override()?.is_none()
                && wide_forward_pays_off(plan.len_q as usize, problems, sms) =>
        {
            AttentionKernel::TensorCoreWide
        }
        k => k,
    };
    let (name, cfg) = if kernel != AttentionKernel::Simt {
        // Queries per block and keys per tile of attention_forward_mma{,2}_d*.
        let wide = kernel == AttentionKernel::TensorCoreWide;
        let (rows, keys) = match (wide, dims.head_dim) {
            (false, _) => (MMA_ROWS, MMA_ROWS),
            (true, 128) => (2 * MMA_ROWS, MMA_ROWS / 2),
            (true, _) => (2 * MMA_ROWS, MMA_ROWS),
        };
        let smem = (rows + 2 * keys) * (dims.head_dim + MMA_PAD) * 2;
        let cfg = LaunchConfig {
            grid_dim: (problems as u32, grid_y(OP, plan.len_q as usize, rows)?, 1),
            block_dim: (MMA_THREADS, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        let variant = if wide { "mma2" } else { "mma" };
        (
            format!("attention_forward_{variant}_d{}_bf16", dims.head_dim),
            cfg,
        )
    } else {
        let (per_warp, variant) = simt_rows_per_warp(plan.len_q as usize);
        let blocks = grid_y(OP, plan.len_q as usize, SIMT_ROWS * per_warp)?;
        let cfg = simt_config(problems, blocks);
        (format!("attention_forward_{variant}_{}", T::SUFFIX), cfg)
    };
    let f = dev.function(FILE, &name)?;
    allow_smem(&f, &name, cfg.shared_mem_bytes as usize)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(&plan).arg(q).arg(k).arg(v).arg(out).arg(lse);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(())
}

/// Backward given the forward's `out` and `lse`: overwrites `dq`, `dk`, `dv`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<T: CudaFloat>(
    dev: &CudaDevice,
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    out: &CudaSlice<T>,
    lse: &CudaSlice<f32>,
    d_out: &CudaSlice<T>,
    dq: &mut CudaSlice<T>,
    dk: &mut CudaSlice<T>,
    dv: &mut CudaSlice<T>,
) -> Result<()> {
    attention_backward_with(
        dev,
        AttentionKernel::Auto,
        dims,
        mask,
        scale,
        q,
        k,
        v,
        out,
        lse,
        d_out,
        dq,
        dk,
        dv,
    )
}

/// [`attention_backward`] with an explicit implementation.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_with<T: CudaFloat>(
    dev: &CudaDevice,
    kernel: AttentionKernel,
    dims: AttnDims,
    mask: MaskMode,
    scale: f32,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    out: &CudaSlice<T>,
    lse: &CudaSlice<f32>,
    d_out: &CudaSlice<T>,
    dq: &mut CudaSlice<T>,
    dk: &mut CudaSlice<T>,
    dv: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda attention_backward";
    let (q_len, kv_len, lse_len) = check_dims(OP, dims, mask, scale)?;
    check_len(OP, "q", q, q_len)?;
    check_len(OP, "k", k, kv_len)?;
    check_len(OP, "v", v, kv_len)?;
    check_len(OP, "out", out, q_len)?;
    check_len(OP, "lse", lse, lse_len)?;
    check_len(OP, "d_out", d_out, q_len)?;
    check_len(OP, "dq", dq, q_len)?;
    check_len(OP, "dk", dk, kv_len)?;
    check_len(OP, "dv", dv, kv_len)?;
    let kernel = resolve::<T>(OP, kernel, dims.head_dim)?;
    let (plan, problems) = AttnPlan::new(OP, dims, mask, scale)?;

    // delta = rowsum(dO ⊙ O), [B, H, Sq] f32, shared by both implementations.
    let mut delta = dev.zeros::<f32>(lse_len)?;
    {
        let rows = dims.batch * dims.seq_q * dims.heads;
        let name = format!("attention_backward_delta_{}", T::SUFFIX);
        let f = dev.function(FILE, &name)?;
        let blocks = rows.div_ceil(SIMT_ROWS);
        let cfg = LaunchConfig {
            grid_dim: (as_i32(OP, "delta blocks", blocks)? as u32, 1, 1),
            block_dim: ((SIMT_ROWS * 32) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (rows_arg, seq_arg, heads_arg, dim_arg) = (
            as_i64(OP, "rows", rows)?,
            plan.seq_q,
            plan.heads,
            plan.head_dim,
        );
        let mut launch = dev.stream().launch_builder(&f);
        launch
            .arg(out)
            .arg(d_out)
            .arg(&mut delta)
            .arg(&rows_arg)
            .arg(&seq_arg)
            .arg(&heads_arg)
            .arg(&dim_arg);
        driver_call(&name, || unsafe { launch.launch(cfg) })?;
    }

    if kernel == AttentionKernel::Simt {
        let (per_warp, variant) = simt_rows_per_warp(plan.len_q as usize);
        let name = format!("attention_backward_dq_{variant}_{}", T::SUFFIX);
        let f = dev.function(FILE, &name)?;
        let blocks = grid_y(OP, plan.len_q as usize, SIMT_ROWS * per_warp)?;
        let cfg = simt_config(problems, blocks);
        let mut launch = dev.stream().launch_builder(&f);
        launch
            .arg(&plan)
            .arg(q)
            .arg(k)
            .arg(v)
            .arg(lse)
            .arg(&delta)
            .arg(d_out)
            .arg(dq);
        driver_call(&name, || unsafe { launch.launch(cfg) })?;

        let (per_warp, variant) = simt_rows_per_warp(plan.len_kv as usize);
        let name = format!("attention_backward_dkdv_{variant}_{}", T::SUFFIX);
        let f = dev.function(FILE, &name)?;
        let blocks = grid_y(OP, plan.len_kv as usize, SIMT_ROWS * per_warp)?;
        let cfg = simt_config(problems, blocks);
        let mut launch = dev.stream().launch_builder(&f);
        launch
            .arg(&plan)
            .arg(q)
            .arg(k)
            .arg(v)
            .arg(lse)
            .arg(&delta)
            .arg(d_out)
            .arg(dk)
            .arg(dv);
        driver_call(&name, || unsafe { launch.launch(cfg) })?;
        return Ok(());
    }

    // Tensor cores: dQ accumulates in f32 through atomics, then is rounded to bf16.
    let mut dq_accum = dev.zeros::<f32>(q_len)?;
    let d = dims.head_dim;
    let query_tile = if d == 64 { 64 } else { 32 };
    let smem = (2 * MMA_ROWS * (d + MMA_PAD)
        + 2 * query_tile * (d + MMA_PAD)
        + MMA_ROWS * (query_tile + MMA_PAD))
        * 2
        + 2 * query_tile * 4;
    let name = format!("attention_backward_mma_d{d}_bf16");
    let f = dev.function(FILE, &name)?;
    allow_smem(&f, &name, smem)?;
    let cfg = LaunchConfig {
        grid_dim: (
            problems as u32,
            grid_y(OP, plan.len_kv as usize, MMA_ROWS)?,
            1,
        ),
        block_dim: (MMA_THREADS, 1, 1),
        shared_mem_bytes: smem as u32,
    };
    let mut launch = dev.stream().launch_builder(&f);
    launch
        .arg(&plan)
        .arg(q)
        .arg(k)
        .arg(v)
        .arg(lse)
        .arg(&delta)
        .arg(d_out)
        .arg(&mut dq_accum)
        .arg(dk)
        .arg(dv);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;

    let name = "attention_backward_dq_convert_bf16";
    let f = dev.function(FILE, name)?;
    let n_arg = as_i64(OP, "dq elements", q_len)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(&dq_accum).arg(dq).arg(&n_arg);
    driver_call(name, || unsafe {
        launch.launch(elementwise_config(dev, q_len))
    })?;
    Ok(())
}

/// Per-head [`HeadMapStats`] of the full self-attention map, computed on the GPU without the
/// S×S map (see [`crate::cpu::attention::attention_map_stats`] for the definitions).
pub fn attention_map_stats<T: CudaFloat>(
    dev: &CudaDevice,
    dims: AttnDims,
    scale: f32,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
) -> Result<Vec<HeadMapStats>> {
    const OP: &str = "cuda attention_map_stats";
    if dims.seq_q != dims.seq_kv {
        return Err(Error::shape(
            OP,
            format!(
                "needs self-attention, got seq_q {} != seq_kv {} ({dims:?})",
                dims.seq_q, dims.seq_kv
            ),
        ));
    }
    // The Spatial checks are exactly what the statistics need (tokens_per_frame dividing seq).
    let (q_len, _, _) = check_dims(OP, dims, MaskMode::Spatial, scale)?;
    check_len(OP, "q", q, q_len)?;
    check_len(OP, "k", k, q_len)?;
    if dims.head_dim > SIMT_MAX_DIM {
        return Err(Error::shape(
            OP,
            format!("head_dim ≤ {SIMT_MAX_DIM} required, got {}", dims.head_dim),
        ));
    }
    let bh = as_i32(OP, "batch · heads", dims.batch * dims.heads)?;
    let mut sums = dev.zeros::<f64>(dims.heads * 3)?;
    let name = format!("attention_map_stats_{}", T::SUFFIX);
    let f = dev.function(STATS_FILE, &name)?;
    let cfg = simt_config(bh as usize, grid_y(OP, dims.seq_q, SIMT_ROWS)?);
    let (heads, seq, dim, tpf) = (
        as_i32(OP, "heads", dims.heads)?,
        as_i32(OP, "seq", dims.seq_q)?,
        as_i32(OP, "head_dim", dims.head_dim)?,
        as_i32(OP, "tokens_per_frame", dims.tokens_per_frame)?,
    );
    let mut launch = dev.stream().launch_builder(&f);
    launch
        .arg(q)
        .arg(k)
        .arg(&mut sums)
        .arg(&heads)
        .arg(&seq)
        .arg(&dim)
        .arg(&tpf)
        .arg(&scale);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    let sums = dev.download(&sums)?;
    Ok(head_stats(dims, &sums))
}

/// The statistics from the per-head sums `[Σ_{M_s} p, Σ_{M_t} p, Σ p²]`, as the CPU computes them.
fn head_stats(dims: AttnDims, sums: &[f64]) -> Vec<HeadMapStats> {
    let rows = (dims.batch * dims.seq_q) as f64;
    let frames = (dims.seq_q / dims.tokens_per_frame) as f64;
    let size_s = rows * dims.tokens_per_frame as f64;
    let size_t = rows * (frames - 1.0);
    let cos = |inside: f64, norm: f64, size: f64| {
        if size > 0.0 && norm > 0.0 {
            inside / (norm * size.sqrt())
        } else {
            0.0
        }
    };
    sums.chunks_exact(3)
        .map(|s| HeadMapStats {
            cos_spatial: cos(s[0], s[2].sqrt(), size_s),
            cos_temporal: cos(s[1], s[2].sqrt(), size_t),
            mass_spatial: s[0] / rows,
            mass_temporal: s[1] / rows,
        })
        .collect()
}

#[cfg(test)]
mod wide_forward_tests {
    use super::{parse_tensor_core, wide_forward_pays_off, AttentionKernel};

    #[test]
    fn attention_override_names_parse() {
        assert_eq!(
            parse_tensor_core("wide"),
            Some(AttentionKernel::TensorCoreWide)
        );
        assert_eq!(
            parse_tensor_core("narrow"),
            Some(AttentionKernel::TensorCore)
        );
        assert_eq!(parse_tensor_core("simt"), None);
    }

    #[test]
    fn wide_forward_only_where_it_was_measured_faster() {
        let h200 = 132;
        // (queries per group, problems = heads · groups): the bench's cases, 12 heads.
        assert!(wide_forward_pays_off(16384, 12, h200)); // Full, S = 16384
        assert!(wide_forward_pays_off(32760, 12, h200)); // Full, S = 32760
        assert!(wide_forward_pays_off(1024, 12 * 16, h200)); // Spatial, 16 frames × 1024
        assert!(!wide_forward_pays_off(4096, 12, h200)); // Full, S = 4096: too few blocks
        assert!(!wide_forward_pays_off(256, 12 * 16, h200)); // Spatial, 16 × 256
        assert!(!wide_forward_pays_off(16, 12 * 1024, h200)); // Temporal: 16 frames per group
    }
}
