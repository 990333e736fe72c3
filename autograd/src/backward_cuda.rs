//! The backward rules of `backward.rs` for ops that ran on a GPU: the same products and
//! reductions, through the CUDA twins of the CPU kernels. Gradients stay on the device.

use std::sync::Arc;

use fym_kernels::cpu::elementwise::BinaryOp;
use fym_kernels::cuda::{self, CudaDevice, CudaSlice};

use crate::backward::norm_grads;
use crate::op::Op;
use crate::ops::pad_shape;
use crate::{Error, Result, Tensor};

type Grad = CudaSlice<f32>;

fn needs(t: &Tensor) -> bool {
    t.requires_grad()
}

fn zeros(dev: &CudaDevice, len: usize) -> Result<Grad> {
    Ok(dev.zeros::<f32>(len)?)
}

/// `alpha · x` in a new buffer.
fn scaled(dev: &CudaDevice, x: &Grad, alpha: f32) -> Result<Grad> {
    let mut out = zeros(dev, x.len())?;
    cuda::elementwise::affine_scalar(dev, x, alpha, 0.0, &mut out)?;
    Ok(out)
}

/// Gradients of `op`'s inputs (aligned with `op.inputs()`; `None` where not needed) given the
/// gradient `g` of its output `out`, all on `dev`.
pub(crate) fn op_backward(
    op: &Op,
    out: &Tensor,
    dev: &Arc<CudaDevice>,
    g_owned: Grad,
) -> Result<Vec<Option<Grad>>> {
    let g = &g_owned;
    Ok(match op {
        Op::Linear { x, w, b } => {
            let (in_f, out_f) = (w.dim(1), w.dim(0));
            let rows = x.numel() / in_f.max(1);
            let dx = if needs(x) {
                let mut dx = zeros(dev, x.numel())?;
                let w = w.storage();
                cuda::gemm::gemm(
                    dev,
                    false,
                    false,
                    rows,
                    in_f,
                    out_f,
                    1.0,
                    g,
                    out_f,
                    w.cuda(),
                    in_f,
                    0.0,
                    &mut dx,
                    in_f,
                )?;
                Some(dx)
            } else {
                None
            };
            let dw = if needs(w) {
                Some(weight_grad(dev, g, x.storage().cuda(), rows, out_f, in_f)?)
            } else {
                None
            };
            let mut grads = vec![dx, dw];
            if let Some(b) = b {
                grads.push(if needs(b) {
                    let mut db = zeros(dev, out_f)?;
                    cuda::reduce::sum_axis(dev, g, &[rows, out_f], 0, &mut db)?;
                    Some(db)
                } else {
                    None
                });
            }
            grads
        }
        Op::MatMul {
            a,
            b,
            trans_a,
            trans_b,
        } => matmul_backward(dev, a, b, *trans_a, *trans_b, g)?,
        Op::Binary { op, a, b } => binary_backward(dev, *op, a, b, out, g_owned)?,
        Op::Modulate { x, scale, shift: _ } => {
            let (b, t, d) = (x.dim(0), x.dim(1), x.dim(2));
            let mut dx = zeros(dev, x.numel())?;
            let (mut dscale, mut dshift) = (zeros(dev, b * d)?, zeros(dev, b * d)?);
            cuda::modulate::modulate_backward(
                dev,
                x.storage().cuda(),
                b,
                t,
                d,
                scale.storage().cuda(),
                g,
                &mut dx,
                &mut dscale,
                &mut dshift,
            )?;
            vec![Some(dx), Some(dscale), Some(dshift)]
        }
        Op::Affine { x: _, alpha } => vec![Some(scaled(dev, g, *alpha)?)],
        Op::Unary { op, x, y } => {
            let mut dx = zeros(dev, g.len())?;
            let y = y.read().unwrap_or_else(|e| e.into_inner());
            cuda::unary::unary_backward(dev, *op, x.storage().cuda(), y.cuda(), g, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Gelu { x } => {
            let mut dx = zeros(dev, g.len())?;
            cuda::elementwise::gelu_tanh_backward(dev, x.storage().cuda(), g, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Silu { x } => {
            let mut dx = zeros(dev, g.len())?;
            cuda::elementwise::silu_backward(dev, x.storage().cuda(), g, &mut dx)?;
            vec![Some(dx)]
        }
        Op::SumAxis { x, axis } => {
            let mut kept = x.shape().to_vec();
            kept[*axis] = 1;
            vec![Some(cuda::elementwise::broadcast_to(
                dev,
                g,
                &kept,
                x.shape(),
            )?)]
        }
        Op::SumAll { x } => {
            let ones = vec![1; x.rank()];
            vec![Some(cuda::elementwise::broadcast_to(
                dev,
                g,
                &ones,
                x.shape(),
            )?)]
        }
        Op::BroadcastTo { x } => {
            let mut dx = zeros(dev, x.numel())?;
            let target = pad_shape(x.shape(), out.rank());
            cuda::reduce::sum_to_shape(dev, g, out.shape(), &target, &mut dx)?;
            vec![Some(dx)]
        }
        Op::MseLoss { a, b } => {
            let n = a.numel();
            let upstream = dev.download(g)?[0];
            let mut diff = zeros(dev, n)?;
            cuda::elementwise::binary(
                dev,
                BinaryOp::Sub,
                a.storage().cuda(),
                &[n],
                b.storage().cuda(),
                &[n],
                &mut diff,
                &[n],
            )?;
            let factor = 2.0 / n as f32 * upstream;
            let db = if needs(b) {
                Some(scaled(dev, &diff, -factor)?)
            } else {
                None
            };
            let da = if needs(a) {
                Some(scaled(dev, &diff, factor)?)
            } else {
                None
            };
            vec![da, db]
        }
        Op::Softmax { x, y } => {
            let cols = x.dim(-1);
            let mut dx = zeros(dev, g.len())?;
            let y = y.read().unwrap_or_else(|e| e.into_inner());
            cuda::softmax::softmax_backward(dev, y.cuda(), g, g.len() / cols, cols, &mut dx)?;
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
            let mut dx = zeros(dev, x.numel())?;
            let mut dw = w.as_ref().map(|_| zeros(dev, cols)).transpose()?;
            let mut db = b.as_ref().map(|_| zeros(dev, cols)).transpose()?;
            let wd = w.as_ref().map(|w| w.storage());
            cuda::norm::layer_norm_backward(
                dev,
                x.storage().cuda(),
                rows,
                cols,
                wd.as_ref().map(|w| w.cuda()),
                mean.cuda(),
                rstd.cuda(),
                g,
                &mut dx,
                dw.as_mut(),
                db.as_mut(),
            )?;
            drop(wd);
            norm_grads(dx, dw, db)
        }
        Op::RmsNorm { x, w, rstd } => {
            let cols = x.dim(-1);
            let rows = x.numel() / cols;
            let mut dx = zeros(dev, x.numel())?;
            let mut dw = w.as_ref().map(|_| zeros(dev, cols)).transpose()?;
            let wd = w.as_ref().map(|w| w.storage());
            cuda::norm::rms_norm_backward(
                dev,
                x.storage().cuda(),
                rows,
                cols,
                wd.as_ref().map(|w| w.cuda()),
                rstd.cuda(),
                g,
                &mut dx,
                dw.as_mut(),
            )?;
            drop(wd);
            norm_grads(dx, dw, None)
        }
        Op::Rope {
            cuda_table,
            batch,
            heads,
            ..
        } => {
            let table = cuda_table
                .as_ref()
                .ok_or_else(|| Error::shape("rope backward", "no GPU table for a GPU op"))?;
            let mut dx = zeros(dev, g.len())?;
            cuda::rope::rope_apply(dev, g, *batch, *heads, table, true, &mut dx)?;
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
            let (mut dq, mut dk, mut dv) = (
                zeros(dev, q.numel())?,
                zeros(dev, k.numel())?,
                zeros(dev, v.numel())?,
            );
            let saved = saved.read().unwrap_or_else(|e| e.into_inner());
            cuda::attention::attention_backward(
                dev,
                *dims,
                *mask,
                *scale,
                q.storage().cuda(),
                k.storage().cuda(),
                v.storage().cuda(),
                saved.cuda(),
                lse.cuda(),
                g,
                &mut dq,
                &mut dk,
                &mut dv,
            )?;
            vec![Some(dq), Some(dk), Some(dv)]
        }
        Op::Patchify {
            x,
            dims,
            patch,
            order,
        } => {
            let mut dx = zeros(dev, x.numel())?;
            cuda::patchify::unpatchify(dev, g, *dims, *patch, *order, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Unpatchify {
            x,
            dims,
            patch,
            order,
        } => {
            let mut dx = zeros(dev, x.numel())?;
            cuda::patchify::patchify(dev, g, *dims, *patch, *order, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Reshape { .. } => vec![Some(g_owned)],
        Op::Permute { x: _, perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            let mut dx = zeros(dev, g.len())?;
            cuda::layout::permute(dev, g, out.shape(), &inverse, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Slice { x, axis, start } => {
            let mut dx = zeros(dev, x.numel())?;
            let len = out.shape()[*axis];
            cuda::layout::slice_axis_add_back(dev, g, x.shape(), *axis, *start, len, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Concat { xs, axis } => {
            let mut offset = 0;
            let mut grads = Vec::with_capacity(xs.len());
            for x in xs {
                let len = x.shape()[*axis];
                grads.push(if needs(x) {
                    let mut dx = zeros(dev, x.numel())?;
                    cuda::layout::slice_axis(dev, g, out.shape(), *axis, offset, len, &mut dx)?;
                    Some(dx)
                } else {
                    None
                });
                offset += len;
            }
            grads
        }
        Op::IndexSelect { x, axis, indices } => {
            let mut dx = zeros(dev, x.numel())?;
            cuda::layout::index_add(dev, g, x.shape(), *axis, indices, &mut dx)?;
            vec![Some(dx)]
        }
        Op::Embedding { table, ids } => {
            let mut dt = zeros(dev, table.numel())?;
            cuda::embedding::embedding_backward(dev, g, table.dim(1), ids, &mut dt)?;
            vec![Some(dt)]
        }
    })
}

/// Rows per slice below which splitting the sum of a weight gradient stops paying.
const MIN_ROWS_PER_SLICE: usize = 256;
/// Square output tile of the f32 GEMM (kernels' `F32_TILE`): one block each.
const GEMM_TILE: usize = 64;

/// Into how many slices to cut the `rows` of `dW = gᵀ·x` (`out_f × in_f`): a weight is a few
/// output tiles, so the plain GEMM runs that few blocks, each summing every row, on a GPU of
/// `multiprocessors`. Aims at two blocks per multiprocessor; a divisor of `rows`, so every slice
/// is one entry of a batched GEMM.
pub(crate) fn weight_grad_slices(
    rows: usize,
    out_f: usize,
    in_f: usize,
    multiprocessors: usize,
) -> usize {
    let tiles = out_f.div_ceil(GEMM_TILE) * in_f.div_ceil(GEMM_TILE);
    let wanted = (2 * multiprocessors / tiles.max(1)).min(rows / MIN_ROWS_PER_SLICE);
    (1..=wanted.max(1))
        .rev()
        .find(|p| rows.is_multiple_of(*p))
        .unwrap_or(1)
}

/// `dW = gᵀ·x` for `g [rows, out_f]` and `x [rows, in_f]`: the rows cut into slices (see
/// [`weight_grad_slices`]) whose products run as one batched GEMM and are then summed.
fn weight_grad(
    dev: &CudaDevice,
    g: &Grad,
    x: &Grad,
    rows: usize,
    out_f: usize,
    in_f: usize,
) -> Result<Grad> {
    let slices = weight_grad_slices(rows, out_f, in_f, dev.multiprocessor_count() as usize);
    let chunk = rows / slices;
    let mut partial = zeros(dev, slices * out_f * in_f)?;
    cuda::gemm::gemm_batched(
        dev,
        slices,
        true,
        false,
        out_f,
        in_f,
        chunk,
        1.0,
        g,
        out_f,
        chunk * out_f,
        x,
        in_f,
        chunk * in_f,
        0.0,
        &mut partial,
        in_f,
        out_f * in_f,
    )?;
    if slices == 1 {
        return Ok(partial);
    }
    let mut dw = zeros(dev, out_f * in_f)?;
    cuda::reduce::sum_axis(dev, &partial, &[slices, out_f * in_f], 0, &mut dw)?;
    Ok(dw)
}

/// `g ⊙ other` (or `g ⊘ other`), `other` broadcast to `shape`.
fn times(
    dev: &CudaDevice,
    g: &Grad,
    shape: &[usize],
    other: &Tensor,
    other_shape: &[usize],
    f: BinaryOp,
) -> Result<Grad> {
    let mut full = zeros(dev, g.len())?;
    cuda::elementwise::binary(
        dev,
        f,
        g,
        shape,
        other.storage().cuda(),
        other_shape,
        &mut full,
        shape,
    )?;
    Ok(full)
}

fn g_ref(g: &Option<Grad>) -> Result<&Grad> {
    g.as_ref()
        .ok_or_else(|| Error::shape("binary backward", "gradient handed over twice"))
}

fn binary_backward(
    dev: &CudaDevice,
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
    g: Grad,
) -> Result<Vec<Option<Grad>>> {
    let shape = out.shape();
    let rank = shape.len();
    let (a_shape, b_shape) = (pad_shape(a.shape(), rank), pad_shape(b.shape(), rank));
    // As on the CPU: (g ⊙ local factor) summed down to the input's shape.
    let reduce_to = |full: Grad, target: &[usize], n: usize| -> Result<Grad> {
        if target == shape {
            return Ok(full);
        }
        let mut r = zeros(dev, n)?;
        cuda::reduce::sum_to_shape(dev, &full, shape, target, &mut r)?;
        Ok(r)
    };
    let mut g = Some(g);
    let db = if needs(b) {
        let full = match op {
            BinaryOp::Add if !needs(a) => g.take().expect("taken only here"),
            BinaryOp::Add => dev.duplicate(g_ref(&g)?)?,
            BinaryOp::Sub => scaled(dev, g_ref(&g)?, -1.0)?,
            BinaryOp::Mul => times(dev, g_ref(&g)?, shape, a, &a_shape, BinaryOp::Mul)?,
            // d(a/b)/db = −(a/b)/b = −out/b
            BinaryOp::Div => {
                let g_out = times(dev, g_ref(&g)?, shape, out, shape, BinaryOp::Mul)?;
                let quotient = times(dev, &g_out, shape, b, &b_shape, BinaryOp::Div)?;
                scaled(dev, &quotient, -1.0)?
            }
        };
        Some(reduce_to(full, &b_shape, b.numel())?)
    } else {
        None
    };
    let da = if needs(a) {
        let full = match op {
            BinaryOp::Add | BinaryOp::Sub => g.take().expect("a's turn comes last"),
            BinaryOp::Mul => times(dev, g_ref(&g)?, shape, b, &b_shape, BinaryOp::Mul)?,
            BinaryOp::Div => times(dev, g_ref(&g)?, shape, b, &b_shape, BinaryOp::Div)?,
        };
        Some(reduce_to(full, &a_shape, a.numel())?)
    } else {
        None
    };
    Ok(vec![da, db])
}

fn matmul_backward(
    dev: &CudaDevice,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    g: &Grad,
) -> Result<Vec<Option<Grad>>> {
    let (ar, ac) = (a.dim(-2), a.dim(-1));
    let (br, bc) = (b.dim(-2), b.dim(-1));
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let n = if trans_b { br } else { bc };
    let batch = a.numel() / (ar * ac).max(1);
    let b_shared = b.rank() == 2;
    let stride_b = if b_shared { 0 } else { br * bc };
    let (ad, bd) = (a.storage(), b.storage());
    let da = if needs(a) {
        let mut da = zeros(dev, a.numel())?;
        if trans_a {
            // dA = op(B)·dCᵀ  (A stored k×m)
            cuda::gemm::gemm_batched(
                dev,
                batch,
                trans_b,
                true,
                k,
                m,
                n,
                1.0,
                bd.cuda(),
                bc,
                stride_b,
                g,
                n,
                m * n,
                0.0,
                &mut da,
                ac,
                ar * ac,
            )?;
        } else {
            // dA = dC·op(B)ᵀ
            cuda::gemm::gemm_batched(
                dev,
                batch,
                false,
                !trans_b,
                m,
                k,
                n,
                1.0,
                g,
                n,
                m * n,
                bd.cuda(),
                bc,
                stride_b,
                0.0,
                &mut da,
                ac,
                ar * ac,
            )?;
        }
        Some(da)
    } else {
        None
    };
    let db = if needs(b) && batch == 0 {
        Some(zeros(dev, b.numel())?)
    } else if needs(b) {
        // Every batch entry's dB into its own block; a shared B sums the blocks afterwards.
        let mut per_entry = zeros(dev, batch * br * bc)?;
        if trans_b {
            // dB = dCᵀ·op(A)  (B stored n×k)
            cuda::gemm::gemm_batched(
                dev,
                batch,
                true,
                trans_a,
                n,
                k,
                m,
                1.0,
                g,
                n,
                m * n,
                ad.cuda(),
                ac,
                ar * ac,
                0.0,
                &mut per_entry,
                bc,
                br * bc,
            )?;
        } else {
            // dB = op(A)ᵀ·dC
            cuda::gemm::gemm_batched(
                dev,
                batch,
                !trans_a,
                false,
                k,
                n,
                m,
                1.0,
                ad.cuda(),
                ac,
                ar * ac,
                g,
                n,
                m * n,
                0.0,
                &mut per_entry,
                bc,
                br * bc,
            )?;
        }
        if b_shared && batch > 1 {
            let mut db = zeros(dev, br * bc)?;
            cuda::reduce::sum_axis(dev, &per_entry, &[batch, br * bc], 0, &mut db)?;
            Some(db)
        } else {
            Some(per_entry)
        }
    } else {
        None
    };
    Ok(vec![da, db])
}

#[cfg(test)]
mod tests {
    use super::weight_grad_slices;

    #[test]
    fn weight_gradients_split_their_rows_into_whole_slices() {
        // 256 clips × 144 tokens into a 128×128 weight on 132 multiprocessors: 4 tiles, so up
        // to 66 slices; 64 is the largest divisor of 36,864 below that.
        assert_eq!(weight_grad_slices(36_864, 128, 128, 132), 64);
        // A wide weight has tiles enough of its own.
        assert_eq!(weight_grad_slices(36_864, 1024, 1024, 132), 1);
        // Few rows: no slice shorter than 256 rows.
        assert_eq!(weight_grad_slices(1000, 16, 16, 132), 2);
        assert_eq!(weight_grad_slices(255, 16, 16, 132), 1);
        // A prime number of rows has no whole slices.
        assert_eq!(weight_grad_slices(10_007, 16, 16, 132), 1);
        for (rows, o, i) in [(4096, 24, 16), (36_864, 384, 128), (2304, 4, 128)] {
            let p = weight_grad_slices(rows, o, i, 132);
            assert!(
                rows % p == 0 && (p == 1 || rows / p >= 256),
                "{rows} {o} {i}: {p}"
            );
        }
    }
}
