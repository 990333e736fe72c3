//! The ops the tape records: each variant holds its inputs and whatever its backward needs.
//! Forward functions live in `ops/`; the backward rules are one match in `backward.rs`.

use std::sync::Arc;

use fym_kernels::cpu::attention::{AttnDims, MaskMode};
use fym_kernels::cpu::elementwise::BinaryOp;
use fym_kernels::cpu::patchify::{PatchOrder, PatchSize, VideoDims};
use fym_kernels::cpu::rope::RopeTable;
use fym_kernels::cpu::unary::UnaryOp;

use fym_kernels::cuda::CudaRopeTable;

use crate::tensor::{Buf, Storage, Tensor};

pub(crate) enum Op {
    /// `y = x·Wᵀ + b` over the last dim of `x`.
    Linear {
        x: Tensor,
        w: Tensor,
        b: Option<Tensor>,
    },
    /// `y = op(a)·op(b)`, batched over leading dims of `a` (b is 2-D or batched like a).
    MatMul {
        a: Tensor,
        b: Tensor,
        trans_a: bool,
        trans_b: bool,
    },
    /// Broadcasting binary op.
    Binary {
        op: BinaryOp,
        a: Tensor,
        b: Tensor,
    },
    /// `y = x·(1 + scale) + shift`, scale/shift `[B, 1, D]` over `x [B, S, D]`.
    Modulate {
        x: Tensor,
        scale: Tensor,
        shift: Tensor,
    },
    /// `y = alpha·x + beta`.
    Affine {
        x: Tensor,
        alpha: f32,
    },
    Unary {
        op: UnaryOp,
        x: Tensor,
        y: Storage,
    },
    Gelu {
        x: Tensor,
    },
    Silu {
        x: Tensor,
    },
    SumAxis {
        x: Tensor,
        axis: usize,
    },
    SumAll {
        x: Tensor,
    },
    BroadcastTo {
        x: Tensor,
    },
    /// `mean((a − b)²)` over all elements.
    MseLoss {
        a: Tensor,
        b: Tensor,
    },
    Softmax {
        x: Tensor,
        y: Storage,
    },
    LayerNorm {
        x: Tensor,
        w: Option<Tensor>,
        b: Option<Tensor>,
        mean: Buf,
        rstd: Buf,
    },
    RmsNorm {
        x: Tensor,
        w: Option<Tensor>,
        rstd: Buf,
    },
    Rope {
        x: Tensor,
        table: Arc<RopeTable>,
        /// The table on the GPU, for an op that ran there.
        cuda_table: Option<Arc<CudaRopeTable>>,
        batch: usize,
        heads: usize,
    },
    Attention {
        q: Tensor,
        k: Tensor,
        v: Tensor,
        dims: AttnDims,
        mask: MaskMode,
        scale: f32,
        out: Storage,
        lse: Buf,
    },
    Patchify {
        x: Tensor,
        dims: VideoDims,
        patch: PatchSize,
        order: PatchOrder,
    },
    Unpatchify {
        x: Tensor,
        dims: VideoDims,
        patch: PatchSize,
        order: PatchOrder,
    },
    Reshape {
        x: Tensor,
    },
    Permute {
        x: Tensor,
        perm: Vec<usize>,
    },
    Slice {
        x: Tensor,
        axis: usize,
        start: usize,
    },
    Concat {
        xs: Vec<Tensor>,
        axis: usize,
    },
    IndexSelect {
        x: Tensor,
        axis: usize,
        indices: Vec<usize>,
    },
    Embedding {
        table: Tensor,
        ids: Vec<u32>,
    },
}

impl Op {
    /// The op's name (profiles, messages).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Linear { .. } => "linear",
            Op::MatMul { .. } => "matmul",
            Op::Binary { .. } => "binary",
            Op::Modulate { .. } => "modulate",
            Op::Affine { .. } => "affine",
            Op::Unary { .. } => "unary",
            Op::Gelu { .. } => "gelu",
            Op::Silu { .. } => "silu",
            Op::SumAxis { .. } => "sum_axis",
            Op::SumAll { .. } => "sum_all",
            Op::BroadcastTo { .. } => "broadcast_to",
            Op::MseLoss { .. } => "mse_loss",
            Op::Softmax { .. } => "softmax",
            Op::LayerNorm { .. } => "layer_norm",
            Op::RmsNorm { .. } => "rms_norm",
            Op::Rope { .. } => "rope",
            Op::Attention { .. } => "attention",
            Op::Patchify { .. } => "patchify",
            Op::Unpatchify { .. } => "unpatchify",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::IndexSelect { .. } => "index_select",
            Op::Embedding { .. } => "embedding",
        }
    }

    /// The tensors this op read, in a fixed order (the order `backward` returns gradients in).
    pub(crate) fn inputs(&self) -> Vec<&Tensor> {
        match self {
            Op::Linear { x, w, b } => {
                let mut v = vec![x, w];
                v.extend(b.as_ref());
                v
            }
            Op::MatMul { a, b, .. } | Op::Binary { a, b, .. } | Op::MseLoss { a, b } => vec![a, b],
            Op::Affine { x, .. }
            | Op::Unary { x, .. }
            | Op::Gelu { x }
            | Op::Silu { x }
            | Op::SumAxis { x, .. }
            | Op::SumAll { x }
            | Op::BroadcastTo { x }
            | Op::Softmax { x, .. }
            | Op::Rope { x, .. }
            | Op::Patchify { x, .. }
            | Op::Unpatchify { x, .. }
            | Op::Reshape { x }
            | Op::Permute { x, .. }
            | Op::Slice { x, .. }
            | Op::IndexSelect { x, .. } => vec![x],
            Op::LayerNorm { x, w, b, .. } => {
                let mut v = vec![x];
                v.extend(w.as_ref());
                v.extend(b.as_ref());
                v
            }
            Op::RmsNorm { x, w, .. } => {
                let mut v = vec![x];
                v.extend(w.as_ref());
                v
            }
            Op::Attention { q, k, v, .. } => vec![q, k, v],
            Op::Modulate { x, scale, shift } => vec![x, scale, shift],
            Op::Concat { xs, .. } => xs.iter().collect(),
            Op::Embedding { table, .. } => vec![table],
        }
    }
}
