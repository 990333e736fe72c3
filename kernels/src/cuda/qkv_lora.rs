//! Launchers of `kernels/cuda/qkv_lora.cu`: a q/k/v projection with ST-LoRA, q/k RMSNorm (over
//! the whole row, across heads, as Wan) and 3D RoPE, forward and backward.
//!
//! Forward: the base projection `x·Wᵀ` and the LoRA down-projections `u = x·Aᵀ` run on the GEMM
//! of [`super::gemm`]; one fused row kernel then adds the bias and each LoRA's up-projection to
//! its own heads' columns only, normalises and rotates. Backward gives the gradients of the LoRA
//! factors and of the input; the base weight, bias and norm weight are frozen.
//!
//! CPU twin: the composition `sgemm` + LoRA GEMMs + [`crate::cpu::norm::rms_norm`] +
//! [`crate::cpu::rope::rope_apply`] (what the model runs on the CPU).

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::attention::allow_smem;
use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::gemm::gemm;
use super::launch::{as_i32, check_len, checked_product};
use super::{CudaDevice, CudaRopeTable};
use crate::{Error, Result};

const FILE: &str = "qkv_lora.cu";
const THREADS: u32 = 256;
/// Passed for an absent optional buffer; the kernels test the pointer against null.
const NULL_POINTER: u64 = 0;

/// Which LoRA (if any) may change a head's output columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HeadKind {
    None = 0,
    Spatial = 1,
    Temporal = 2,
}

/// One LoRA's factors: `a` `[rank, in_features]`, `b` `[out_features, rank]`, and its
/// `alpha / rank` scale.
#[derive(Clone, Copy, Debug)]
pub struct LoraRef<'a, T> {
    pub a: &'a CudaSlice<T>,
    pub b: &'a CudaSlice<T>,
    pub rank: usize,
    pub scale: f32,
}

/// A q/k/v projection: `rows × in_features` input, `rows × heads·head_dim` output, PyTorch
/// `weight [out, in]`. `norm` = (weight `[out]`, eps) for q/k, None for v; `rope` for
/// self-attention q/k (rows must be a whole number of `rope.seq`-token sequences).
#[derive(Clone, Copy, Debug)]
pub struct QkvProjection<'a, T> {
    pub rows: usize,
    pub in_features: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub weight: &'a CudaSlice<T>,
    pub bias: Option<&'a CudaSlice<T>>,
    pub spatial: Option<LoraRef<'a, T>>,
    pub temporal: Option<LoraRef<'a, T>>,
    /// One per head.
    pub head_kinds: &'a [HeadKind],
    pub norm: Option<(&'a CudaSlice<T>, f32)>,
    pub rope: Option<&'a CudaRopeTable>,
}

/// What the forward keeps for the backward: the pre-norm rows, their rstd (when normalised) and
/// the LoRA down-projections `u = x·Aᵀ` `[rows, rank]`.
#[derive(Debug)]
pub struct QkvSaved<T> {
    pub pre: CudaSlice<T>,
    pub rstd: CudaSlice<f32>,
    pub u_spatial: Option<CudaSlice<T>>,
    pub u_temporal: Option<CudaSlice<T>>,
}

/// Gradient buffers the backward overwrites: `dx` `[rows, in]`, and per LoRA (dA `[rank, in]`,
/// dB `[out, rank]`), which must be given exactly for the LoRAs the projection has.
#[derive(Debug)]
pub struct QkvGrads<'a, T> {
    pub dx: &'a mut CudaSlice<T>,
    pub spatial: Option<(&'a mut CudaSlice<T>, &'a mut CudaSlice<T>)>,
    pub temporal: Option<(&'a mut CudaSlice<T>, &'a mut CudaSlice<T>)>,
}

impl<T: CudaFloat> QkvProjection<'_, T> {
    fn out_features(&self) -> usize {
        self.heads * self.head_dim
    }

    fn check(&self, op: &'static str, x: &CudaSlice<T>) -> Result<()> {
        let out_f = checked_product(op, &[self.heads, self.head_dim])?;
        if self.rows == 0 || self.in_features == 0 || out_f == 0 {
            return Err(Error::shape(
                op,
                format!(
                    "rows {}, in_features {}, heads {}, head_dim {} must all be positive",
                    self.rows, self.in_features, self.heads, self.head_dim
                ),
            ));
        }
        check_len(
            op,
            "x",
            x,
            checked_product(op, &[self.rows, self.in_features])?,
        )?;
        check_len(
            op,
            "weight",
            self.weight,
            checked_product(op, &[out_f, self.in_features])?,
        )?;
        if let Some(b) = self.bias {
            check_len(op, "bias", b, out_f)?;
        }
        for (name, lora) in [("spatial", self.spatial), ("temporal", self.temporal)] {
            if let Some(l) = lora {
                if l.rank == 0 || !l.scale.is_finite() {
                    return Err(Error::shape(
                        op,
                        format!(
                            "{name} LoRA: rank {} must be ≥ 1 and scale {} finite",
                            l.rank, l.scale
                        ),
                    ));
                }
                check_len(
                    op,
                    &format!("{name} lora A"),
                    l.a,
                    l.rank * self.in_features,
                )?;
                check_len(op, &format!("{name} lora B"), l.b, out_f * l.rank)?;
            }
        }
        if self.head_kinds.len() != self.heads {
            return Err(Error::shape(
                op,
                format!(
                    "{} head kinds for {} heads",
                    self.head_kinds.len(),
                    self.heads
                ),
            ));
        }
        if let Some((w, eps)) = self.norm {
            check_len(op, "norm weight", w, out_f)?;
            if !(eps.is_finite() && eps > 0.0) {
                return Err(Error::shape(op, format!("norm eps {eps} must be positive")));
            }
        }
        if let Some(table) = self.rope {
            if table.head_dim != self.head_dim
                || table.seq == 0
                || !self.rows.is_multiple_of(table.seq)
                || !self.head_dim.is_multiple_of(2)
            {
                return Err(Error::shape(
                    op,
                    format!(
                        "rope table for seq {}, head_dim {} does not fit {} rows of {} heads × {}",
                        table.seq, table.head_dim, self.rows, self.heads, self.head_dim
                    ),
                ));
            }
        }
        as_i32(op, "out_features", out_f)?;
        as_i32(op, "rows", self.rows)?;
        Ok(())
    }
}

fn row_launch(rows: usize, smem_floats: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: (smem_floats * 4) as u32,
    }
}

/// Forward: writes the projected, normalised, rotated rows to `out` (`[rows, heads·head_dim]`).
pub fn qkv_lora_forward<T: CudaFloat>(
    dev: &CudaDevice,
    p: &QkvProjection<T>,
    x: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<QkvSaved<T>> {
    const OP: &str = "cuda qkv_lora_forward";
    p.check(OP, x)?;
    let (m, k, n) = (p.rows, p.in_features, p.out_features());
    check_len(OP, "out", out, m * n)?;
    let mut pre = dev.zeros::<T>(m * n)?;
    gemm(
        dev, false, true, m, n, k, 1.0, x, k, p.weight, k, 0.0, &mut pre, n,
    )?;
    let down = |lora: Option<LoraRef<T>>| -> Result<Option<CudaSlice<T>>> {
        let Some(l) = lora else { return Ok(None) };
        let mut u = dev.zeros::<T>(m * l.rank)?;
        gemm(
            dev, false, true, m, l.rank, k, 1.0, x, k, l.a, k, 0.0, &mut u, l.rank,
        )?;
        Ok(Some(u))
    };
    let u_spatial = down(p.spatial)?;
    let u_temporal = down(p.temporal)?;
    let mut rstd = dev.zeros::<f32>(m)?;
    let kinds: Vec<u8> = p.head_kinds.iter().map(|&h| h as u8).collect();
    let kinds = dev.upload(&kinds)?;

    let (rank_s, scale_s) = p.spatial.map_or((0, 0.0), |l| (l.rank, l.scale));
    let (rank_t, scale_t) = p.temporal.map_or((0, 0.0), |l| (l.rank, l.scale));
    let (rank_s_arg, rank_t_arg) = (as_i32(OP, "rank", rank_s)?, as_i32(OP, "rank", rank_t)?);
    let eps = p.norm.map_or(0.0, |(_, e)| e);
    let seq = as_i32(OP, "rope seq", p.rope.map_or(1, |t| t.seq))?;
    let (n_arg, d_arg) = (n as i32, as_i32(OP, "head_dim", p.head_dim)?);
    let name = kernel_name::<T>("qkv_lora_forward");
    let f = dev.function(FILE, &name)?;
    let cfg = row_launch(m, n + rank_s + rank_t);
    allow_smem(&f, &name, cfg.shared_mem_bytes as usize)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(&mut pre).arg(out).arg(&mut rstd);
    match p.bias {
        Some(b) => launch.arg(b),
        None => launch.arg(&NULL_POINTER),
    };
    for (u, lora, rank, scale) in [
        (&u_spatial, p.spatial, &rank_s_arg, &scale_s),
        (&u_temporal, p.temporal, &rank_t_arg, &scale_t),
    ] {
        match (u, lora) {
            (Some(u), Some(l)) => launch.arg(u).arg(l.b),
            _ => launch.arg(&NULL_POINTER).arg(&NULL_POINTER),
        };
        launch.arg(rank).arg(scale);
    }
    launch.arg(&kinds);
    match p.norm {
        Some((w, _)) => launch.arg(w),
        None => launch.arg(&NULL_POINTER),
    };
    launch.arg(&eps);
    match p.rope {
        Some(t) => launch.arg(&t.cos).arg(&t.sin),
        None => launch.arg(&NULL_POINTER).arg(&NULL_POINTER),
    };
    launch.arg(&seq).arg(&n_arg).arg(&d_arg);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(QkvSaved {
        pre,
        rstd,
        u_spatial,
        u_temporal,
    })
}

/// Backward of [`qkv_lora_forward`] given `d_out` (`[rows, heads·head_dim]`): overwrites
/// `grads.dx` and each LoRA's (dA, dB).
pub fn qkv_lora_backward<T: CudaFloat>(
    dev: &CudaDevice,
    p: &QkvProjection<T>,
    x: &CudaSlice<T>,
    saved: &QkvSaved<T>,
    d_out: &CudaSlice<T>,
    grads: QkvGrads<T>,
) -> Result<()> {
    const OP: &str = "cuda qkv_lora_backward";
    p.check(OP, x)?;
    let (m, k, n) = (p.rows, p.in_features, p.out_features());
    check_len(OP, "d_out", d_out, m * n)?;
    check_len(OP, "saved pre", &saved.pre, m * n)?;
    check_len(OP, "saved rstd", &saved.rstd, m)?;
    check_len(OP, "dx", grads.dx, m * k)?;
    let QkvGrads {
        dx,
        spatial: grad_s,
        temporal: grad_t,
    } = grads;
    let pairs = [
        ("spatial", p.spatial, saved.u_spatial.as_ref(), grad_s),
        ("temporal", p.temporal, saved.u_temporal.as_ref(), grad_t),
    ];
    for (name, lora, u, grad) in &pairs {
        match (lora, u, grad) {
            (None, None, None) => {}
            (Some(l), Some(u), Some((da, db))) => {
                check_len(OP, &format!("saved {name} u"), u, m * l.rank)?;
                check_len(OP, &format!("{name} dA"), da, l.rank * k)?;
                check_len(OP, &format!("{name} dB"), db, n * l.rank)?;
            }
            _ => {
                return Err(Error::shape(
                    OP,
                    format!(
                        "the {name} LoRA, its saved down-projection and its gradient buffers must \
                         be all present or all absent"
                    ),
                ))
            }
        }
    }

    let mut g_pre = dev.zeros::<T>(m * n)?;
    let mut g_s = match p.spatial {
        Some(_) => Some(dev.zeros::<T>(m * n)?),
        None => None,
    };
    let mut g_t = match p.temporal {
        Some(_) => Some(dev.zeros::<T>(m * n)?),
        None => None,
    };
    let kinds: Vec<u8> = p.head_kinds.iter().map(|&h| h as u8).collect();
    let kinds = dev.upload(&kinds)?;
    let scale_s = p.spatial.map_or(0.0, |l| l.scale);
    let scale_t = p.temporal.map_or(0.0, |l| l.scale);
    let seq = as_i32(OP, "rope seq", p.rope.map_or(1, |t| t.seq))?;
    let (n_arg, d_arg) = (n as i32, as_i32(OP, "head_dim", p.head_dim)?);
    {
        let name = kernel_name::<T>("qkv_lora_backward");
        let f = dev.function(FILE, &name)?;
        let cfg = row_launch(m, n);
        allow_smem(&f, &name, cfg.shared_mem_bytes as usize)?;
        let mut launch = dev.stream().launch_builder(&f);
        launch.arg(d_out).arg(&saved.pre).arg(&saved.rstd);
        match p.norm {
            Some((w, _)) => launch.arg(w),
            None => launch.arg(&NULL_POINTER),
        };
        match p.rope {
            Some(t) => launch.arg(&t.cos).arg(&t.sin),
            None => launch.arg(&NULL_POINTER).arg(&NULL_POINTER),
        };
        launch
            .arg(&seq)
            .arg(&kinds)
            .arg(&scale_s)
            .arg(&scale_t)
            .arg(&mut g_pre);
        match g_s.as_mut() {
            Some(g) => launch.arg(g),
            None => launch.arg(&NULL_POINTER),
        };
        match g_t.as_mut() {
            Some(g) => launch.arg(g),
            None => launch.arg(&NULL_POINTER),
        };
        launch.arg(&n_arg).arg(&d_arg);
        driver_call(&name, || unsafe { launch.launch(cfg) })?;
    }

    // dx = g_pre · W, then per LoRA: dB = g_maskedᵀ·u, du = g_masked·B, dA = duᵀ·x, dx += du·A.
    gemm(
        dev, false, false, m, k, n, 1.0, &g_pre, n, p.weight, k, 0.0, dx, k,
    )?;
    let [(_, lora_s, u_s, grad_s), (_, lora_t, u_t, grad_t)] = pairs;
    for (lora, u, grad, g) in [
        (lora_s, u_s, grad_s, g_s.as_ref()),
        (lora_t, u_t, grad_t, g_t.as_ref()),
    ] {
        let (Some(l), Some(u), Some((da, db)), Some(g)) = (lora, u, grad, g) else {
            continue;
        };
        let r = l.rank;
        gemm(dev, true, false, n, r, m, 1.0, g, n, u, r, 0.0, db, r)?;
        let mut du = dev.zeros::<T>(m * r)?;
        gemm(
            dev, false, false, m, r, n, 1.0, g, n, l.b, r, 0.0, &mut du, r,
        )?;
        gemm(dev, true, false, r, k, m, 1.0, &du, r, x, k, 0.0, da, k)?;
        gemm(dev, false, false, m, k, r, 1.0, &du, r, l.a, k, 1.0, dx, k)?;
    }
    Ok(())
}
