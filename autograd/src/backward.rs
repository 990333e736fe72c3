//! Reverse-mode differentiation: a topological walk of the recorded ops from the loss back to the
//! parameters, and one match with the backward rule of every op.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use fym_kernels::cpu::elementwise::{self as ew, BinaryOp};
use fym_kernels::cpu::gemm::sgemm;
use fym_kernels::cpu::{
    attention, embedding, layout, modulate, norm, patchify, reduce, rope, softmax, unary,
};

use fym_kernels::cpu::buffer::{output_vec, try_output_vec};

use crate::op::Op;
use crate::ops::broadcast_data;
use crate::ops::pad_shape;
use crate::tensor::{Buf, CudaBuf};
use crate::{Error, Result, Tensor};

/// Gradients of the trainable leaves (parameters) reached from a loss, keyed by tensor id.
/// Gradients live on the device of their tensors.
#[derive(Default)]
pub struct Grads {
    map: HashMap<usize, Buf>,
}

impl Grads {
    /// The gradient of `t` on the host, if `t` is a parameter the loss depends on (a GPU
    /// gradient is downloaded; use [`Grads::get_host`] to receive a failed download as an error).
    pub fn get(&self, t: &Tensor) -> Option<Cow<'_, [f32]>> {
        self.get_host(t)
            .map(|g| g.unwrap_or_else(|e| panic!("reading a gradient from the GPU failed: {e}")))
    }

    /// [`Grads::get`] with a failed download as an error.
    pub fn get_host(&self, t: &Tensor) -> Option<Result<Cow<'_, [f32]>>> {
        self.map.get(&t.id()).map(|g| match g {
            Buf::Cpu(v) => Ok(Cow::Borrowed(v.as_slice())),
            Buf::Cuda(c) => Ok(Cow::Owned(c.dev.download(&c.data)?)),
        })
    }

    /// The gradient of `t` as a (non-trainable) host tensor of `t`'s shape.
    pub fn tensor(&self, t: &Tensor) -> Option<Tensor> {
        self.get(t).map(|g| {
            Tensor::from_vec(g.to_vec(), t.shape()).expect("gradient has its tensor's shape")
        })
    }

    /// Takes the gradient of `t` out, on the host.
    pub fn remove(&mut self, t: &Tensor) -> Option<Vec<f32>> {
        self.map.remove(&t.id()).map(|g| {
            g.to_host()
                .unwrap_or_else(|e| panic!("reading a gradient from the GPU failed: {e}"))
        })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Tensor {
    /// Backpropagates from this scalar loss (seed gradient 1).
    pub fn backward(&self) -> Result<Grads> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "backward",
                format!("loss must be a scalar, got {:?}", self.shape()),
            ));
        }
        self.backward_with(&[1.0])
    }

    /// Backpropagates the upstream gradient `seed` (same shape as `self`).
    pub fn backward_with(&self, seed: &[f32]) -> Result<Grads> {
        if seed.len() != self.numel() {
            return Err(Error::shape(
                "backward",
                format!(
                    "seed of {} values for a tensor of shape {:?}",
                    seed.len(),
                    self.shape()
                ),
            ));
        }
        let mut grads = Grads::default();
        if !self.requires_grad() {
            return Ok(grads);
        }
        let order = topological_order(self);
        let seed = match self.cuda_device() {
            Some(dev) => Buf::Cuda(CudaBuf {
                data: dev.upload(seed)?,
                dev,
            }),
            None => Buf::Cpu(seed.to_vec()),
        };
        grads.map.insert(self.id(), seed);
        for node in order.iter().rev() {
            let Some(op) = node.op() else { continue };
            // An intermediate's gradient is complete once we reach it and is not needed again.
            let Some(g) = grads.map.remove(&node.id()) else {
                continue;
            };
            let inputs = op.inputs();
            let input_grads: Vec<Option<Buf>> = match g {
                Buf::Cpu(g) => op_backward(op, node, g)?
                    .into_iter()
                    .map(|g| g.map(Buf::Cpu))
                    .collect(),
                Buf::Cuda(CudaBuf { dev, data }) => {
                    let grads = crate::backward_cuda::op_backward(op, node, &dev, data)?;
                    crate::profile::mark(&dev, "backward", op.name());
                    grads
                        .into_iter()
                        .map(|g| {
                            g.map(|data| {
                                Buf::Cuda(CudaBuf {
                                    dev: dev.clone(),
                                    data,
                                })
                            })
                        })
                        .collect()
                }
            };
            for (input, grad) in inputs.into_iter().zip(input_grads) {
                if let Some(grad) = grad.filter(|_| input.requires_grad()) {
                    match grads.map.get_mut(&input.id()) {
                        Some(acc) => accumulate(acc, &grad)?,
                        None => {
                            grads.map.insert(input.id(), grad);
                        }
                    }
                }
            }
        }
        Ok(grads)
    }
}

/// `acc += grad` on the device both live on.
fn accumulate(acc: &mut Buf, grad: &Buf) -> Result<()> {
    match (acc, grad) {
        (Buf::Cpu(acc), Buf::Cpu(grad)) => ew::add_assign(acc, grad),
        (Buf::Cuda(acc), Buf::Cuda(grad)) => {
            fym_kernels::cuda::elementwise::add_assign(&acc.dev, &mut acc.data, &grad.data)?
        }
        (acc, grad) => {
            return Err(Error::DeviceMismatch {
                op: "backward",
                a: acc.device(),
                b: grad.device(),
            })
        }
    }
    Ok(())
}

/// Nodes that require a gradient, each after all of its inputs.
fn topological_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    // Iterative DFS: (node, children pushed?) avoids recursion depth limits on deep graphs.
    let mut stack = vec![(root.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !visited.insert(node.id()) {
            continue;
        }
        stack.push((node.clone(), true));
        if let Some(op) = node.op() {
            for input in op.inputs() {
                if input.requires_grad() && !visited.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}

fn needs(t: &Tensor) -> bool {
    t.requires_grad()
}

/// Gradients of `op`'s inputs (aligned with `op.inputs()`; `None` where not needed) given the
/// gradient `g` of its output `out`.
///
/// `g` is handed over so that ops whose input gradient is `g` itself (reshape, add, sub) pass the
/// buffer on instead of copying it.
fn op_backward(op: &Op, out: &Tensor, g_owned: Vec<f32>) -> Result<Vec<Option<Vec<f32>>>> {
    let g: &[f32] = &g_owned;
    Ok(match op {
        Op::Linear { x, w, b } => {
            let (in_f, out_f) = (w.dim(1), w.dim(0));
            let rows = x.numel() / in_f.max(1);
            // SAFETY (both): with beta = 0 the GEMM writes every element without reading it.
            let dx = needs(x).then(|| unsafe {
                output_vec(x.numel(), |dx| {
                    sgemm(
                        false,
                        false,
                        rows,
                        in_f,
                        out_f,
                        1.0,
                        g,
                        out_f,
                        &w.data(),
                        in_f,
                        0.0,
                        dx,
                        in_f,
                    )
                })
            });
            let dw = needs(w).then(|| unsafe {
                output_vec(w.numel(), |dw| {
                    sgemm(
                        true,
                        false,
                        out_f,
                        in_f,
                        rows,
                        1.0,
                        g,
                        out_f,
                        &x.data(),
                        in_f,
                        0.0,
                        dw,
                        in_f,
                    )
                })
            });
            let mut grads = vec![dx, dw];
            if let Some(b) = b {
                grads.push(needs(b).then(|| sum_rows(g, rows, out_f)));
            }
            grads
        }
        Op::MatMul {
            a,
            b,
            trans_a,
            trans_b,
        } => matmul_backward(a, b, *trans_a, *trans_b, g),
        Op::Binary { op, a, b } => binary_backward(*op, a, b, out, g_owned)?,
        // SAFETY (the `output_vec`s below): each kernel writes every element of its output.
        Op::Modulate { x, scale, shift: _ } => {
            let (b, t, d) = (x.dim(0), x.dim(1), x.dim(2));
            let (mut dx, mut dscale, mut dshift) =
                (vec![0.0; x.numel()], vec![0.0; b * d], vec![0.0; b * d]);
            modulate::modulate_backward(
                &x.data(),
                b,
                t,
                d,
                &scale.data(),
                g,
                &mut dx,
                &mut dscale,
                &mut dshift,
            )?;
            vec![Some(dx), Some(dscale), Some(dshift)]
        }
        Op::Affine { x: _, alpha } => {
            let dx = unsafe { output_vec(g.len(), |dx| ew::affine_scalar(g, *alpha, 0.0, dx)) };
            vec![Some(dx)]
        }
        Op::Unary { op, x, y } => {
            let y = y.read().unwrap_or_else(|e| e.into_inner());
            let dx = unsafe {
                output_vec(g.len(), |dx| {
                    unary::unary_backward(*op, &x.data(), y.cpu(), g, dx)
                })
            };
            vec![Some(dx)]
        }
        Op::Gelu { x } => {
            let dx = unsafe { output_vec(g.len(), |dx| ew::gelu_tanh_backward(&x.data(), g, dx)) };
            vec![Some(dx)]
        }
        Op::Silu { x } => {
            let dx = unsafe { output_vec(g.len(), |dx| ew::silu_backward(&x.data(), g, dx)) };
            vec![Some(dx)]
        }
        Op::SumAxis { x, axis } => {
            let mut kept = x.shape().to_vec();
            kept[*axis] = 1;
            vec![Some(broadcast_data(g, &kept, x.shape())?)]
        }
        Op::SumAll { x } => vec![Some(vec![g[0]; x.numel()])],
        Op::BroadcastTo { x } => {
            let mut dx = vec![0.0; x.numel()];
            reduce::sum_to_shape(g, out.shape(), &pad_shape(x.shape(), out.rank()), &mut dx)?;
            vec![Some(dx)]
        }
        Op::MseLoss { a, b } => {
            let n = a.numel() as f32;
            let da: Vec<f32> = a
                .data()
                .iter()
                .zip(b.data().iter())
                .map(|(x, y)| 2.0 * (x - y) / n * g[0])
                .collect();
            let db = needs(b).then(|| da.iter().map(|v| -v).collect());
            vec![needs(a).then_some(da), db]
        }
        Op::Softmax { x, y } => {
            let cols = x.dim(-1);
            let y = y.read().unwrap_or_else(|e| e.into_inner());
            let dx = unsafe {
                output_vec(g.len(), |dx| {
                    softmax::softmax_backward(y.cpu(), g, g.len() / cols, cols, dx)
                })
            };
            vec![Some(dx)]
        }
        Op::LayerNorm {
            x,
            w,
            b,
            mean,
            rstd,
        } => {
            let cols = x.dim(-1);
            let rows = x.numel() / cols;
            let mut dw = w.as_ref().map(|_| vec![0.0; cols]);
            let mut db = b.as_ref().map(|_| vec![0.0; cols]);
            let wd = w.as_ref().map(|w| w.data());
            let dx = unsafe {
                output_vec(x.numel(), |dx| {
                    norm::layer_norm_backward(
                        &x.data(),
                        rows,
                        cols,
                        wd.as_deref().map(|v| v.as_slice()),
                        mean.cpu(),
                        rstd.cpu(),
                        g,
                        dx,
                        dw.as_deref_mut(),
                        db.as_deref_mut(),
                    )
                })
            };
            norm_grads(dx, dw, db)
        }
        Op::RmsNorm { x, w, rstd } => {
            let cols = x.dim(-1);
            let rows = x.numel() / cols;
            let mut dw = w.as_ref().map(|_| vec![0.0; cols]);
            let wd = w.as_ref().map(|w| w.data());
            let dx = unsafe {
                output_vec(x.numel(), |dx| {
                    norm::rms_norm_backward(
                        &x.data(),
                        rows,
                        cols,
                        wd.as_deref().map(|v| v.as_slice()),
                        rstd.cpu(),
                        g,
                        dx,
                        dw.as_deref_mut(),
                    )
                })
            };
            norm_grads(dx, dw, None)
        }
        Op::Rope {
            x: _,
            table,
            batch,
            heads,
            ..
        } => {
            let dx = unsafe {
                try_output_vec(g.len(), |dx| {
                    rope::rope_apply(g, *batch, *heads, table, true, dx)
                })?
            };
            vec![Some(dx)]
        }
        Op::Attention {
            q,
            k,
            v,
            dims,
            mask,
            scale,
            out: saved,
            lse,
        } => {
            // Every query and key row belongs to one group of every mask mode, so the backward
            // writes every row of dq, dk and dv (or returns an error before writing any).
            let (mut dk, mut dv) = (Vec::new(), Vec::new());
            let dq = unsafe {
                try_output_vec(q.numel(), |dq| {
                    dk = try_output_vec(k.numel(), |dk| {
                        dv = try_output_vec(v.numel(), |dv| {
                            attention::attention_backward(
                                *dims,
                                *mask,
                                *scale,
                                &q.data(),
                                &k.data(),
                                &v.data(),
                                saved.read().unwrap_or_else(|e| e.into_inner()).cpu(),
                                lse.cpu(),
                                g,
                                dq,
                                dk,
                                dv,
                            )
                        })?;
                        Ok(())
                    })?;
                    Ok::<(), fym_kernels::Error>(())
                })?
            };
            vec![Some(dq), Some(dk), Some(dv)]
        }
        Op::Patchify {
            x,
            dims,
            patch,
            order,
        } => {
            let mut dx = vec![0.0; x.numel()];
            patchify::unpatchify(g, *dims, *patch, *order, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Unpatchify {
            x,
            dims,
            patch,
            order,
        } => {
            let mut dx = vec![0.0; x.numel()];
            patchify::patchify(g, *dims, *patch, *order, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Reshape { .. } => vec![Some(g_owned)],
        Op::Permute { x: _, perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            let mut dx = vec![0.0; g.len()];
            layout::permute(g, out.shape(), &inverse, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Slice { x, axis, start } => {
            let mut dx = vec![0.0; x.numel()];
            layout::slice_axis_add_back(g, x.shape(), *axis, *start, out.shape()[*axis], &mut dx)?;
            vec![Some(dx)]
        }
        Op::Concat { xs, axis } => {
            let mut offset = 0;
            let mut grads = Vec::with_capacity(xs.len());
            for x in xs {
                let len = x.shape()[*axis];
                grads.push(
                    needs(x)
                        .then(|| {
                            let mut dx = vec![0.0; x.numel()];
                            layout::slice_axis(g, out.shape(), *axis, offset, len, &mut dx)
                                .map(|_| dx)
                        })
                        .transpose()?,
                );
                offset += len;
            }
            grads
        }
        Op::IndexSelect { x, axis, indices } => {
            let mut dx = vec![0.0; x.numel()];
            layout::index_add(g, x.shape(), *axis, indices, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Embedding { table, ids } => {
            let mut dt = vec![0.0; table.numel()];
            embedding::embedding_backward(g, table.dim(1), ids, &mut dt);
            vec![Some(dt)]
        }
    })
}

/// Gradients of a normalisation's inputs `[x, weight?, bias?]`: `dw`/`db` exist exactly when the
/// op had that parameter.
pub(crate) fn norm_grads<T>(dx: T, dw: Option<T>, db: Option<T>) -> Vec<Option<T>> {
    std::iter::once(dx).chain(dw).chain(db).map(Some).collect()
}

fn sum_rows(g: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; cols];
    for r in 0..rows {
        ew::add_assign(&mut out, &g[r * cols..(r + 1) * cols]);
    }
    out
}

fn binary_backward(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
    mut g: Vec<f32>,
) -> Result<Vec<Option<Vec<f32>>>> {
    let shape = out.shape();
    let rank = shape.len();
    let (a_shape, b_shape) = (pad_shape(a.shape(), rank), pad_shape(b.shape(), rank));
    // Gradient w.r.t. an input = (g ⊙ local factor) summed down to the input's shape; an input
    // of the output's shape (the common case: residual adds, modulation) takes it as it is.
    let reduce_to = |full: Vec<f32>, target: &[usize], n: usize| -> Result<Vec<f32>> {
        if target == shape {
            return Ok(full);
        }
        let mut r = vec![0.0; n];
        reduce::sum_to_shape(&full, shape, target, &mut r)?;
        Ok(r)
    };
    let times = |g: &[f32], other: &Tensor, other_shape: &[usize], f: BinaryOp| {
        // SAFETY: `binary` writes every element of its output or returns an error.
        unsafe {
            try_output_vec(g.len(), |full| {
                ew::binary(f, g, shape, &other.data(), other_shape, full, shape)
            })
        }
        .map_err(Error::from)
    };
    // For Add and Sub one input's gradient is g itself: the buffer is handed over (to a, or to b
    // when a needs none) rather than copied, so b's is computed first.
    let db = if needs(b) {
        let full = match op {
            BinaryOp::Add if !needs(a) => std::mem::take(&mut g),
            BinaryOp::Add => g.clone(),
            BinaryOp::Sub => g.iter().map(|v| -v).collect(),
            BinaryOp::Mul => times(&g, a, &a_shape, BinaryOp::Mul)?,
            // d(a/b)/db = −(a/b)/b = −out/b
            BinaryOp::Div => {
                let mut full = times(&g, out, shape, BinaryOp::Mul)?;
                let quotient = full.clone();
                ew::binary(
                    BinaryOp::Div,
                    &quotient,
                    shape,
                    &b.data(),
                    &b_shape,
                    &mut full,
                    shape,
                )?;
                full.iter_mut().for_each(|v| *v = -*v);
                full
            }
        };
        Some(reduce_to(full, &b_shape, b.numel())?)
    } else {
        None
    };
    let da = if needs(a) {
        let full = match op {
            BinaryOp::Add | BinaryOp::Sub => g,
            BinaryOp::Mul => times(&g, b, &b_shape, BinaryOp::Mul)?,
            BinaryOp::Div => times(&g, b, &b_shape, BinaryOp::Div)?,
        };
        Some(reduce_to(full, &a_shape, a.numel())?)
    } else {
        None
    };
    Ok(vec![da, db])
}

fn matmul_backward(
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    g: &[f32],
) -> Vec<Option<Vec<f32>>> {
    let (ar, ac) = (a.dim(-2), a.dim(-1));
    let (br, bc) = (b.dim(-2), b.dim(-1));
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let n = if trans_b { br } else { bc };
    let batch = a.numel() / (ar * ac).max(1);
    let b_shared = b.rank() == 2;
    let (ad, bd) = (a.data(), b.data());
    // SAFETY (both): with beta = 0 the first GEMM into each block writes all of it, and the
    // blocks tile the output (shared B: one block, later entries accumulate with beta = 1).
    let da = needs(a).then(|| unsafe {
        output_vec(a.numel(), |da| {
            for i in 0..batch {
                let gi = &g[i * m * n..(i + 1) * m * n];
                let bi = if b_shared {
                    &bd[..]
                } else {
                    &bd[i * br * bc..(i + 1) * br * bc]
                };
                let dai = &mut da[i * ar * ac..(i + 1) * ar * ac];
                if trans_a {
                    // dA = op(B)·dCᵀ  (A stored k×m)
                    sgemm(trans_b, true, k, m, n, 1.0, bi, bc, gi, n, 0.0, dai, ac);
                } else {
                    // dA = dC·op(B)ᵀ
                    sgemm(false, !trans_b, m, k, n, 1.0, gi, n, bi, bc, 0.0, dai, ac);
                }
            }
        })
    });
    // With no batch entries a shared B gets no GEMM at all: its gradient is zero.
    let db = needs(b).then(|| unsafe {
        if batch == 0 {
            return vec![0.0; b.numel()];
        }
        output_vec(b.numel(), |db| {
            for i in 0..batch {
                let gi = &g[i * m * n..(i + 1) * m * n];
                let ai = &ad[i * ar * ac..(i + 1) * ar * ac];
                let (dbi, beta) = if b_shared {
                    (&mut db[..], if i == 0 { 0.0 } else { 1.0 })
                } else {
                    (&mut db[i * br * bc..(i + 1) * br * bc], 0.0)
                };
                if trans_b {
                    // dB = dCᵀ·op(A)  (B stored n×k)
                    sgemm(true, trans_a, n, k, m, 1.0, gi, n, ai, ac, beta, dbi, bc);
                } else {
                    // dB = op(A)ᵀ·dC
                    sgemm(!trans_a, false, k, n, m, 1.0, ai, ac, gi, n, beta, dbi, bc);
                }
            }
        })
    });
    vec![da, db]
}
