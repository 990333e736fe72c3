//! Fused attention over `[B, S, H·D]` tensors, and rotary position embedding.

use std::sync::{Arc, RwLock};

use fym_kernels::cpu::attention::{self as attn, AttnDims, MaskMode};
use fym_kernels::cpu::rope::{self, RopeTable};

use fym_kernels::cpu::buffer::try_output_vec;

use fym_kernels::cuda::{self, CudaRopeTable};

use super::{gpu_of, gpu_zeros, records};
use crate::op::Op;
use crate::tensor::{Buf, Storage};
use crate::{Error, Result, Tensor};

/// A RoPE table shared by every layer of a forward pass.
pub type RopeTableRef = Arc<RopeTable>;

impl Tensor {
    /// Multi-head attention: `q [B, Sq, H·D]`, `k`, `v [B, Skv, H·D]` → `[B, Sq, H·D]`, scale
    /// 1/√D. `tokens_per_frame` defines the frames for the `Spatial`/`Temporal` masks.
    pub fn attention(
        &self,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        mask: MaskMode,
        tokens_per_frame: usize,
    ) -> Result<Tensor> {
        let q = self;
        let gpu = gpu_of("attention", &[q, k, v])?;
        let ok = q.rank() == 3
            && k.rank() == 3
            && k.shape() == v.shape()
            && q.dim(0) == k.dim(0)
            && q.dim(2) == k.dim(2)
            && heads > 0
            && q.dim(2).is_multiple_of(heads);
        if !ok {
            return Err(Error::shape(
                "attention",
                format!(
                    "q {:?}, k {:?}, v {:?} with {heads} heads",
                    q.shape(),
                    k.shape(),
                    v.shape()
                ),
            ));
        }
        let dims = AttnDims {
            batch: q.dim(0),
            heads,
            seq_q: q.dim(1),
            seq_kv: k.dim(1),
            head_dim: q.dim(2) / heads,
            tokens_per_frame,
        };
        let scale = 1.0 / (dims.head_dim as f32).sqrt();
        // What the backward needs: the output and the per-row log-sum-exp.
        let op = |out: Storage, lse: Buf| Op::Attention {
            q: q.clone(),
            k: k.clone(),
            v: v.clone(),
            dims,
            mask,
            scale,
            out,
            lse,
        };
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, q.numel())?;
            let mut lse = gpu_zeros(&dev, dims.batch * heads * dims.seq_q)?;
            let (qs, ks, vs) = (q.storage(), k.storage(), v.storage());
            cuda::attention::attention_forward(
                &dev,
                dims,
                mask,
                scale,
                qs.cuda(),
                ks.cuda(),
                vs.cuda(),
                &mut out,
                &mut lse,
            )?;
            drop((qs, ks, vs));
            // The backward reads the output: the op shares the result's storage.
            let storage = Tensor::cuda_storage(&dev, out);
            let op = op(storage.clone(), Tensor::gpu_buf(&dev, lse));
            return Ok(Tensor::from_op_storage(storage, q.shape().to_vec(), op));
        }
        let mut lse = vec![0.0; dims.batch * heads * dims.seq_q];
        // SAFETY: the forward writes every output row (every query belongs to one group of
        // every mask mode) or returns an error.
        let out = unsafe {
            try_output_vec(q.numel(), |out| {
                attn::attention_forward(
                    dims,
                    mask,
                    scale,
                    &q.data(),
                    &k.data(),
                    &v.data(),
                    out,
                    &mut lse,
                )
            })?
        };
        // The op (and this copy for its backward) is kept only when it is recorded.
        let saved = if records(&[q, k, v]) {
            out.clone()
        } else {
            Vec::new()
        };
        let op = op(Arc::new(RwLock::new(Buf::Cpu(saved))), Buf::Cpu(lse));
        Ok(Tensor::from_op(out, q.shape().to_vec(), op))
    }

    /// Rotates `[B, S, H·D]` (or `[B, S, H, D]`) by the table's angles, same for every head.
    pub fn rope(&self, table: &RopeTableRef, heads: usize) -> Result<Tensor> {
        let gpu = gpu_of("rope", &[self])?;
        let (b, s) = (
            self.shape().first().copied().unwrap_or(0),
            self.shape().get(1).copied().unwrap_or(0),
        );
        if self.rank() < 3 || s != table.seq || self.numel() != b * s * heads * table.head_dim {
            return Err(Error::shape(
                "rope",
                format!(
                    "input {:?} with {heads} heads does not match a table of {} tokens × head_dim {}",
                    self.shape(),
                    table.seq,
                    table.head_dim
                ),
            ));
        }
        if let Some(dev) = gpu {
            let cuda_table = Arc::new(CudaRopeTable::upload(&dev, table)?);
            let mut out = gpu_zeros(&dev, self.numel())?;
            let x = self.storage();
            cuda::rope::rope_apply(&dev, x.cuda(), b, heads, &cuda_table, false, &mut out)?;
            drop(x);
            let op = Op::Rope {
                x: self.clone(),
                table: table.clone(),
                cuda_table: Some(cuda_table),
                batch: b,
                heads,
            };
            return Ok(Tensor::from_cuda_op(&dev, out, self.shape().to_vec(), op));
        }
        // SAFETY: `rope_apply` writes every element of `out` or returns an error.
        let out = unsafe {
            try_output_vec(self.numel(), |out| {
                rope::rope_apply(&self.data(), b, heads, table, false, out)
            })?
        };
        let op = Op::Rope {
            x: self.clone(),
            table: table.clone(),
            cuda_table: None,
            batch: b,
            heads,
        };
        Ok(Tensor::from_op(out, self.shape().to_vec(), op))
    }
}
