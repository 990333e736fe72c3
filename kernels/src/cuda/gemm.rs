//! Launchers of `kernels/cuda/gemm.cu`: the CUDA twins of [`crate::cpu::gemm::sgemm`] and
//! [`crate::cpu::gemm::sgemm_batched`], same argument order and meaning (row-major, `trans_a`: A
//! stored k×m, `trans_b`: B stored n×k, leading dimensions are row strides in elements).
//! bf16 runs on the tensor cores (mma.sync), f32 is the SIMT parity kernel.

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::device::driver_call;
use super::dtype::CudaFloat;
use super::launch::{as_i32, as_i64};
use super::CudaDevice;
use crate::{Error, Result};

const FILE: &str = "gemm.cu";
/// Block tile of the bf16 tensor-core kernel (square).
const BF16_TILE: usize = 128;
/// Block tile of the f32 SIMT kernel (square).
const F32_TILE: usize = 64;
const THREADS: u32 = 256;
/// cp.async copies 16-byte chunks: 8 bf16.
const BF16_PER_CHUNK: usize = 8;
const MAX_GRID_YZ: usize = 65_535;

/// Sizes and strides of one (batched) GEMM, checked against the buffers before a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
}

impl GemmShape {
    /// (rows, cols) of A, B and C as stored.
    fn stored(&self) -> [(usize, usize); 3] {
        let a = if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        };
        let b = if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        };
        [a, b, (self.m, self.n)]
    }

    /// Errors unless each leading dimension covers its row and each buffer covers its matrix
    /// (for `batch` entries `stride` elements apart).
    fn check(
        &self,
        op: &'static str,
        batch: usize,
        lens: [usize; 3],
        strides: [usize; 3],
    ) -> Result<()> {
        let lds = [self.lda, self.ldb, self.ldc];
        for (i, name) in ["A", "B", "C"].into_iter().enumerate() {
            let (rows, cols) = self.stored()[i];
            if rows == 0 || cols == 0 {
                continue;
            }
            if lds[i] < cols {
                return Err(Error::shape(
                    op,
                    format!(
                        "ld{} = {} is smaller than the {cols} columns of {name} ({self:?})",
                        name.to_lowercase(),
                        lds[i]
                    ),
                ));
            }
            let one = (rows - 1)
                .checked_mul(lds[i])
                .and_then(|x| x.checked_add(cols));
            let need = one.and_then(|x| (batch - 1).checked_mul(strides[i])?.checked_add(x));
            match need {
                Some(need) if need <= lens[i] => {}
                _ => {
                    return Err(Error::shape(
                        op,
                        format!(
                            "{name} has {} elements, too few for {batch} matrices of {rows}×{cols} \
                             (ld {}, batch stride {}) ({self:?})",
                            lens[i], lds[i], strides[i]
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// `C = alpha · op(A) · op(B) + beta · C` on the GPU (see [`crate::cpu::gemm::sgemm`]). With
/// `beta == 0`, C is overwritten without being read.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: CudaFloat>(
    dev: &CudaDevice,
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &CudaSlice<T>,
    lda: usize,
    b: &CudaSlice<T>,
    ldb: usize,
    beta: f32,
    c: &mut CudaSlice<T>,
    ldc: usize,
) -> Result<()> {
    gemm_batched(
        dev, 1, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0,
    )
}

/// `batch` independent [`gemm`]s; matrix `i` starts at `i·stride_a` / `i·stride_b` /
/// `i·stride_c` (see [`crate::cpu::gemm::sgemm_batched`]). A zero A or B stride reuses one
/// matrix; C entries must not overlap, since the entries run concurrently.
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched<T: CudaFloat>(
    dev: &CudaDevice,
    batch: usize,
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &CudaSlice<T>,
    lda: usize,
    stride_a: usize,
    b: &CudaSlice<T>,
    ldb: usize,
    stride_b: usize,
    beta: f32,
    c: &mut CudaSlice<T>,
    ldc: usize,
    stride_c: usize,
) -> Result<()> {
    const OP: &str = "cuda gemm";
    let shape = GemmShape {
        trans_a,
        trans_b,
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
    };
    if batch == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    if !alpha.is_finite() || !beta.is_finite() {
        return Err(Error::shape(
            OP,
            format!("alpha {alpha} and beta {beta} must be finite"),
        ));
    }
    if batch > 1 && stride_c < (m - 1) * ldc + n {
        return Err(Error::shape(
            OP,
            format!(
                "C stride {stride_c} makes the {batch} output matrices of {m}×{n} (ldc {ldc}) \
                 overlap; they are written concurrently"
            ),
        ));
    }
    shape.check(
        OP,
        batch,
        [a.len(), b.len(), c.len()],
        [stride_a, stride_b, stride_c],
    )?;
    let is_bf16 = T::SUFFIX == "bf16";
    let tile = if is_bf16 { BF16_TILE } else { F32_TILE };
    let (grid_x, grid_y) = (n.div_ceil(tile), m.div_ceil(tile));
    if grid_y > MAX_GRID_YZ || batch > MAX_GRID_YZ {
        return Err(Error::shape(
            OP,
            format!("m = {m} or batch = {batch} exceeds the grid limit ({MAX_GRID_YZ} blocks)"),
        ));
    }
    let (m_arg, n_arg, k_arg) = (
        as_i32(OP, "m", m)?,
        as_i32(OP, "n", n)?,
        as_i32(OP, "k", k)?,
    );
    let [lda_arg, ldb_arg, ldc_arg, sa_arg, sb_arg, sc_arg] = [
        as_i64(OP, "lda", lda)?,
        as_i64(OP, "ldb", ldb)?,
        as_i64(OP, "ldc", ldc)?,
        as_i64(OP, "stride_a", stride_a)?,
        as_i64(OP, "stride_b", stride_b)?,
        as_i64(OP, "stride_c", stride_c)?,
    ];
    // cp.async needs every 8-element chunk 16-byte aligned: the buffer base is (256-byte), so the
    // row and batch strides must be multiples of 8 elements.
    let aligned = |ld: usize, stride: usize| {
        i32::from(ld.is_multiple_of(BF16_PER_CHUNK) && stride.is_multiple_of(BF16_PER_CHUNK))
    };
    let (vec_a, vec_b) = (aligned(lda, stride_a), aligned(ldb, stride_b));
    let name = format!(
        "gemm_{}{}_{}",
        if trans_a { 't' } else { 'n' },
        if trans_b { 't' } else { 'n' },
        T::SUFFIX
    );
    let f = dev.function(FILE, &name)?;
    let cfg = LaunchConfig {
        grid_dim: (grid_x as u32, grid_y as u32, batch as u32),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = dev.stream().launch_builder(&f);
    launch
        .arg(&m_arg)
        .arg(&n_arg)
        .arg(&k_arg)
        .arg(&alpha)
        .arg(a)
        .arg(&lda_arg)
        .arg(&sa_arg)
        .arg(b)
        .arg(&ldb_arg)
        .arg(&sb_arg)
        .arg(&beta)
        .arg(c)
        .arg(&ldc_arg)
        .arg(&sc_arg);
    if is_bf16 {
        launch.arg(&vec_a).arg(&vec_b);
    }
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(())
}

/// Floating-point operations of one GEMM (`2·m·n·k`), the count every TFLOP/s figure uses.
pub fn gemm_flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}
