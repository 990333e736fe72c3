//! Shape and data movement: reshape, permute, slice, concat, gather, patchify, embedding.

use fym_kernels::cpu::patchify::{self, PatchOrder, PatchSize, VideoDims};
use fym_kernels::cpu::{embedding, layout};

use super::ensure_cpu;
use crate::op::Op;
use crate::tensor::numel;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Same values, new shape (same number of elements).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("{:?} cannot become {shape:?}", self.shape()),
            ));
        }
        Ok(Tensor::from_op(
            self.to_vec(),
            shape.to_vec(),
            Op::Reshape { x: self.clone() },
        ))
    }

    /// Output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        ensure_cpu(&[self])?;
        let mut seen = vec![false; self.rank()];
        if perm.len() != self.rank()
            || perm
                .iter()
                .any(|&p| p >= self.rank() || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::shape(
                "permute",
                format!(
                    "{perm:?} is not a permutation of the axes of {:?}",
                    self.shape()
                ),
            ));
        }
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape()[p]).collect();
        let mut out = vec![0.0; self.numel()];
        layout::permute(&self.data(), self.shape(), perm, &mut out)?;
        Ok(Tensor::from_op(
            out,
            shape,
            Op::Permute {
                x: self.clone(),
                perm: perm.to_vec(),
            },
        ))
    }

    /// `self[.., start..start+len, ..]` along `axis`.
    pub fn slice(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        ensure_cpu(&[self])?;
        if axis >= self.rank() || start + len > self.shape()[axis] {
            return Err(Error::shape(
                "slice",
                format!(
                    "{start}..{} along axis {axis} of {:?}",
                    start + len,
                    self.shape()
                ),
            ));
        }
        let mut shape = self.shape().to_vec();
        shape[axis] = len;
        let mut out = vec![0.0; numel(&shape)];
        layout::slice_axis(&self.data(), self.shape(), axis, start, len, &mut out)?;
        Ok(Tensor::from_op(
            out,
            shape,
            Op::Slice {
                x: self.clone(),
                axis,
                start,
            },
        ))
    }

    /// Concatenation along `axis`.
    pub fn concat(xs: &[Tensor], axis: usize) -> Result<Tensor> {
        let first = xs
            .first()
            .ok_or_else(|| Error::shape("concat", "no tensors given"))?;
        ensure_cpu(&xs.iter().collect::<Vec<_>>())?;
        let mut shape = first.shape().to_vec();
        if axis >= shape.len() {
            return Err(Error::shape(
                "concat",
                format!("axis {axis} out of range for {shape:?}"),
            ));
        }
        shape[axis] = xs
            .iter()
            .map(|t| t.shape().get(axis).copied().unwrap_or(0))
            .sum();
        let guards: Vec<_> = xs.iter().map(|t| t.data()).collect();
        let inputs: Vec<(&[f32], &[usize])> = guards
            .iter()
            .zip(xs)
            .map(|(g, t)| (g.as_slice(), t.shape()))
            .collect();
        let mut out = vec![0.0; numel(&shape)];
        layout::concat_axis(&inputs, axis, &mut out)?;
        drop(inputs);
        drop(guards);
        Ok(Tensor::from_op(
            out,
            shape,
            Op::Concat {
                xs: xs.to_vec(),
                axis,
            },
        ))
    }

    /// Gathers `indices` along `axis` (e.g. a sparse subset of frames).
    pub fn index_select(&self, axis: usize, indices: &[usize]) -> Result<Tensor> {
        ensure_cpu(&[self])?;
        if axis >= self.rank() || indices.iter().any(|&i| i >= self.shape()[axis]) {
            return Err(Error::shape(
                "index_select",
                format!(
                    "indices {indices:?} along axis {axis} of {:?}",
                    self.shape()
                ),
            ));
        }
        let mut shape = self.shape().to_vec();
        shape[axis] = indices.len();
        let mut out = vec![0.0; numel(&shape)];
        layout::index_select(&self.data(), self.shape(), axis, indices, &mut out)?;
        Ok(Tensor::from_op(
            out,
            shape,
            Op::IndexSelect {
                x: self.clone(),
                axis,
                indices: indices.to_vec(),
            },
        ))
    }

    /// Video `[B, C, F, H, W]` → tokens `[B, S, P·C]`.
    pub fn patchify(&self, patch: PatchSize, order: PatchOrder) -> Result<Tensor> {
        ensure_cpu(&[self])?;
        let s = self.shape();
        if s.len() != 5 {
            return Err(Error::shape(
                "patchify",
                format!("expected [B, C, F, H, W], got {s:?}"),
            ));
        }
        let dims = VideoDims {
            batch: s[0],
            channels: s[1],
            frames: s[2],
            height: s[3],
            width: s[4],
        };
        let tokens = (s[2] / patch.t.max(1)) * (s[3] / patch.h.max(1)) * (s[4] / patch.w.max(1));
        let shape = vec![s[0], tokens, s[1] * patch.t * patch.h * patch.w];
        let mut out = vec![0.0; numel(&shape)];
        patchify::patchify(&self.data(), dims, patch, order, &mut out)?;
        Ok(Tensor::from_op(
            out,
            shape,
            Op::Patchify {
                x: self.clone(),
                dims,
                patch,
                order,
            },
        ))
    }

    /// Tokens `[B, S, P·C]` → video of `dims`.
    pub fn unpatchify(
        &self,
        dims: VideoDims,
        patch: PatchSize,
        order: PatchOrder,
    ) -> Result<Tensor> {
        ensure_cpu(&[self])?;
        let shape = vec![
            dims.batch,
            dims.channels,
            dims.frames,
            dims.height,
            dims.width,
        ];
        if self.numel() != numel(&shape) {
            return Err(Error::shape(
                "unpatchify",
                format!("tokens {:?} do not fill a video {shape:?}", self.shape()),
            ));
        }
        let mut out = vec![0.0; numel(&shape)];
        patchify::unpatchify(&self.data(), dims, patch, order, &mut out)?;
        Ok(Tensor::from_op(
            out,
            shape,
            Op::Unpatchify {
                x: self.clone(),
                dims,
                patch,
                order,
            },
        ))
    }

    /// Rows of the `[vocab, dim]` table for each id → `[ids.len(), dim]`.
    pub fn embedding(&self, ids: &[u32]) -> Result<Tensor> {
        ensure_cpu(&[self])?;
        if self.rank() != 2 {
            return Err(Error::shape(
                "embedding",
                format!("table must be [vocab, dim], got {:?}", self.shape()),
            ));
        }
        let (vocab, dim) = (self.dim(0), self.dim(1));
        let mut out = vec![0.0; ids.len() * dim];
        embedding::embedding(&self.data(), vocab, dim, ids, &mut out)?;
        Ok(Tensor::from_op(
            out,
            vec![ids.len(), dim],
            Op::Embedding {
                table: self.clone(),
                ids: ids.to_vec(),
            },
        ))
    }
}
