//! Shape and data movement: reshape, permute, slice, concat, gather, patchify, embedding.

use fym_kernels::cpu::patchify::{self, PatchOrder, PatchSize, VideoDims};
use fym_kernels::cpu::{embedding, layout};

use fym_kernels::cuda;

use super::{gpu_of, gpu_zeros};
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
        let op = Op::Reshape { x: self.clone() };
        if let Some(dev) = self.cuda_device() {
            let out = dev.duplicate(self.storage().cuda())?;
            return Ok(Tensor::from_cuda_op(&dev, out, shape.to_vec(), op));
        }
        Ok(Tensor::from_op(self.to_vec(), shape.to_vec(), op))
    }

    /// Output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let gpu = gpu_of("permute", &[self])?;
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
        let op = Op::Permute {
            x: self.clone(),
            perm: perm.to_vec(),
        };
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, self.numel())?;
            cuda::layout::permute(&dev, self.storage().cuda(), self.shape(), perm, &mut out)?;
            return Ok(Tensor::from_cuda_op(&dev, out, shape, op));
        }
        let mut out = vec![0.0; self.numel()];
        layout::permute(&self.data(), self.shape(), perm, &mut out)?;
        Ok(Tensor::from_op(out, shape, op))
    }

    /// `self[.., start..start+len, ..]` along `axis`.
    pub fn slice(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        let gpu = gpu_of("slice", &[self])?;
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
        let op = Op::Slice {
            x: self.clone(),
            axis,
            start,
        };
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, numel(&shape))?;
            let x = self.storage();
            cuda::layout::slice_axis(&dev, x.cuda(), self.shape(), axis, start, len, &mut out)?;
            drop(x);
            return Ok(Tensor::from_cuda_op(&dev, out, shape, op));
        }
        let mut out = vec![0.0; numel(&shape)];
        layout::slice_axis(&self.data(), self.shape(), axis, start, len, &mut out)?;
        Ok(Tensor::from_op(out, shape, op))
    }

    /// Concatenation along `axis`.
    pub fn concat(xs: &[Tensor], axis: usize) -> Result<Tensor> {
        let first = xs
            .first()
            .ok_or_else(|| Error::shape("concat", "no tensors given"))?;
        let gpu = gpu_of("concat", &xs.iter().collect::<Vec<_>>())?;
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
        let op = Op::Concat {
            xs: xs.to_vec(),
            axis,
        };
        if let Some(dev) = gpu {
            let guards: Vec<_> = xs.iter().map(|t| t.storage()).collect();
            let inputs: Vec<_> = guards
                .iter()
                .zip(xs)
                .map(|(g, t)| (g.cuda(), t.shape()))
                .collect();
            let mut out = gpu_zeros(&dev, numel(&shape))?;
            cuda::layout::concat_axis(&dev, &inputs, axis, &mut out)?;
            drop(inputs);
            drop(guards);
            return Ok(Tensor::from_cuda_op(&dev, out, shape, op));
        }
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
        Ok(Tensor::from_op(out, shape, op))
    }

    /// Gathers `indices` along `axis` (e.g. a sparse subset of frames).
    pub fn index_select(&self, axis: usize, indices: &[usize]) -> Result<Tensor> {
        let gpu = gpu_of("index_select", &[self])?;
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
        let op = Op::IndexSelect {
            x: self.clone(),
            axis,
            indices: indices.to_vec(),
        };
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, numel(&shape))?;
            let x = self.storage();
            cuda::layout::index_select(&dev, x.cuda(), self.shape(), axis, indices, &mut out)?;
            drop(x);
            return Ok(Tensor::from_cuda_op(&dev, out, shape, op));
        }
        let mut out = vec![0.0; numel(&shape)];
        layout::index_select(&self.data(), self.shape(), axis, indices, &mut out)?;
        Ok(Tensor::from_op(out, shape, op))
    }

    /// Video `[B, C, F, H, W]` → tokens `[B, S, P·C]`.
    pub fn patchify(&self, patch: PatchSize, order: PatchOrder) -> Result<Tensor> {
        let gpu = gpu_of("patchify", &[self])?;
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
        let op = Op::Patchify {
            x: self.clone(),
            dims,
            patch,
            order,
        };
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, numel(&shape))?;
            cuda::patchify::patchify(&dev, self.storage().cuda(), dims, patch, order, &mut out)?;
            return Ok(Tensor::from_cuda_op(&dev, out, shape, op));
        }
        let mut out = vec![0.0; numel(&shape)];
        patchify::patchify(&self.data(), dims, patch, order, &mut out)?;
        Ok(Tensor::from_op(out, shape, op))
    }

    /// Tokens `[B, S, P·C]` → video of `dims`.
    pub fn unpatchify(
        &self,
        dims: VideoDims,
        patch: PatchSize,
        order: PatchOrder,
    ) -> Result<Tensor> {
        let gpu = gpu_of("unpatchify", &[self])?;
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
        let op = Op::Unpatchify {
            x: self.clone(),
            dims,
            patch,
            order,
        };
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, numel(&shape))?;
            let x = self.storage();
            cuda::patchify::unpatchify(&dev, x.cuda(), dims, patch, order, &mut out)?;
            drop(x);
            return Ok(Tensor::from_cuda_op(&dev, out, shape, op));
        }
        let mut out = vec![0.0; numel(&shape)];
        patchify::unpatchify(&self.data(), dims, patch, order, &mut out)?;
        Ok(Tensor::from_op(out, shape, op))
    }

    /// Rows of the `[vocab, dim]` table for each id → `[ids.len(), dim]`.
    pub fn embedding(&self, ids: &[u32]) -> Result<Tensor> {
        let gpu = gpu_of("embedding", &[self])?;
        if self.rank() != 2 {
            return Err(Error::shape(
                "embedding",
                format!("table must be [vocab, dim], got {:?}", self.shape()),
            ));
        }
        let (vocab, dim) = (self.dim(0), self.dim(1));
        let op = Op::Embedding {
            table: self.clone(),
            ids: ids.to_vec(),
        };
        if let Some(dev) = gpu {
            let mut out = gpu_zeros(&dev, ids.len() * dim)?;
            let table = self.storage();
            cuda::embedding::embedding(&dev, table.cuda(), vocab, dim, ids, &mut out)?;
            drop(table);
            return Ok(Tensor::from_cuda_op(&dev, out, vec![ids.len(), dim], op));
        }
        let mut out = vec![0.0; ids.len() * dim];
        embedding::embedding(&self.data(), vocab, dim, ids, &mut out)?;
        Ok(Tensor::from_op(out, vec![ids.len(), dim], op))
    }
}
