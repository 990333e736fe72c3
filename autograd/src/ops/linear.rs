//! Linear layers and matrix products.

use fym_kernels::cpu::buffer::{output_vec, try_output_vec};
use fym_kernels::cpu::gemm::{sgemm, sgemm_batched, sgemm_bias};

use fym_kernels::cpu::elementwise::BinaryOp;
use fym_kernels::cuda;

use super::{gpu_of, gpu_zeros};
use crate::op::Op;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// `y = x·Wᵀ + b` over the last dim: `x [.., in]`, `w [out, in]`, `b [out]` → `[.., out]`.
    pub fn linear(&self, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let mut inputs = vec![self, w];
        inputs.extend(b);
        let gpu = gpu_of("linear", &inputs)?;
        let (in_f, out_f) = (self.dim(-1), w.dim(0));
        if w.rank() != 2 || w.dim(1) != in_f {
            return Err(Error::shape(
                "linear",
                format!(
                    "input {:?} does not fit weight {:?} (expected [out, {in_f}])",
                    self.shape(),
                    w.shape()
                ),
            ));
        }
        if let Some(b) = b {
            if b.shape() != [out_f] {
                return Err(Error::shape(
                    "linear",
                    format!("bias {:?} for weight {:?}", b.shape(), w.shape()),
                ));
            }
        }
        let rows = self.numel() / in_f.max(1);
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("rank ≥ 1 checked by dim(-1)") = out_f;
        let op = Op::Linear {
            x: self.clone(),
            w: w.clone(),
            b: b.cloned(),
        };
        if let Some(dev) = gpu {
            let mut y = gpu_zeros(&dev, rows * out_f)?;
            cuda::gemm::gemm(
                &dev,
                false,
                true,
                rows,
                out_f,
                in_f,
                1.0,
                self.storage().cuda(),
                in_f,
                w.storage().cuda(),
                in_f,
                0.0,
                &mut y,
                out_f,
            )?;
            if let Some(b) = b {
                let mut with_bias = gpu_zeros(&dev, rows * out_f)?;
                cuda::elementwise::binary(
                    &dev,
                    BinaryOp::Add,
                    &y,
                    &[rows, out_f],
                    b.storage().cuda(),
                    &[1, out_f],
                    &mut with_bias,
                    &[rows, out_f],
                )?;
                y = with_bias;
            }
            return Ok(Tensor::from_cuda_op(&dev, y, shape, op));
        }
        let (x_data, w_data) = (self.data(), w.data());
        // SAFETY: both GEMMs write every element of `y` without reading it (beta = 0; the bias
        // is added in the GEMM's epilogue), or fail before writing.
        let y = unsafe {
            try_output_vec(rows * out_f, |y| match b {
                Some(b) => sgemm_bias(
                    false,
                    true,
                    rows,
                    out_f,
                    in_f,
                    1.0,
                    &x_data,
                    in_f,
                    &w_data,
                    in_f,
                    &b.data(),
                    y,
                    out_f,
                ),
                None => {
                    sgemm(
                        false, true, rows, out_f, in_f, 1.0, &x_data, in_f, &w_data, in_f, 0.0, y,
                        out_f,
                    );
                    Ok(())
                }
            })?
        };
        drop((x_data, w_data));
        Ok(Tensor::from_op(y, shape, op))
    }

    /// Matrix product over the last two dims: `op(a) [.., m, k] · op(b) [k, n]` (b shared) or
    /// `[.., k, n]` (batched, same leading dims). `op` transposes when the flag is set.
    pub fn matmul_t(&self, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        let gpu = gpu_of("matmul", &[self, b])?;
        let a = self;
        if a.rank() < 2 || b.rank() < 2 {
            return Err(Error::shape(
                "matmul",
                format!("needs rank ≥ 2, got {:?} and {:?}", a.shape(), b.shape()),
            ));
        }
        let (ar, ac) = (a.dim(-2), a.dim(-1));
        let (br, bc) = (b.dim(-2), b.dim(-1));
        let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if trans_b { (bc, br) } else { (br, bc) };
        let batch = a.numel() / (ar * ac).max(1);
        let b_shared = b.rank() == 2;
        if k != kb || (!b_shared && (b.shape()[..b.rank() - 2] != a.shape()[..a.rank() - 2])) {
            return Err(Error::shape(
                "matmul",
                format!("shapes {:?} and {:?} do not multiply", a.shape(), b.shape()),
            ));
        }
        let stride_b = if b_shared { 0 } else { br * bc };
        let mut shape = a.shape()[..a.rank() - 2].to_vec();
        shape.extend([m, n]);
        let op = Op::MatMul {
            a: a.clone(),
            b: b.clone(),
            trans_a,
            trans_b,
        };
        if let Some(dev) = gpu {
            let mut y = gpu_zeros(&dev, batch * m * n)?;
            cuda::gemm::gemm_batched(
                &dev,
                batch,
                trans_a,
                trans_b,
                m,
                n,
                k,
                1.0,
                a.storage().cuda(),
                ac,
                ar * ac,
                b.storage().cuda(),
                bc,
                stride_b,
                0.0,
                &mut y,
                n,
                m * n,
            )?;
            return Ok(Tensor::from_cuda_op(&dev, y, shape, op));
        }
        // SAFETY: with beta = 0 every entry's GEMM writes its m×n block of `y` (the blocks tile
        // `y`) without reading it.
        let y = unsafe {
            output_vec(batch * m * n, |y| {
                sgemm_batched(
                    batch,
                    trans_a,
                    trans_b,
                    m,
                    n,
                    k,
                    1.0,
                    &a.data(),
                    ac,
                    ar * ac,
                    &b.data(),
                    bc,
                    stride_b,
                    0.0,
                    y,
                    n,
                    m * n,
                )
            })
        };
        Ok(Tensor::from_op(y, shape, op))
    }

    /// `a · b` (see [`Tensor::matmul_t`]).
    pub fn matmul(&self, b: &Tensor) -> Result<Tensor> {
        self.matmul_t(b, false, false)
    }
}
