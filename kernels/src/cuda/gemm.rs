//! Launchers of `kernels/cuda/gemm.cu`: the CUDA twins of [`crate::cpu::gemm::sgemm`] and
//! [`crate::cpu::gemm::sgemm_batched`], same argument order and meaning (row-major, `trans_a`: A
//! stored k×m, `trans_b`: B stored n×k, leading dimensions are row strides in elements).
//! bf16 runs on the tensor cores: Hopper's wgmma fed by the tensor memory accelerator
//! (`gemm_sm90a.cu`) for the `nt` layout of a linear layer on a compute capability 9.0 GPU,
//! mma.sync (`gemm.cu`) otherwise; f32 is the SIMT parity kernel.

use std::sync::OnceLock;

use cudarc::driver::{sys, CudaSlice, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};

use super::attention::allow_smem;
use super::device::driver_call;
use super::dtype::CudaFloat;
use super::launch::{as_i32, as_i64};
use super::CudaDevice;
use crate::{Error, Result};

const FILE: &str = "gemm.cu";
const WGMMA_FILE: &str = "gemm_sm90a.cu";
/// Rows of the wgmma kernel's block tile (two warpgroups of 64) and its k step.
const WGMMA_BM: usize = 128;
// gemm_batched_on checks one grid for every bf16 kernel.
const _: () = assert!(WGMMA_BM == BF16_TILE);
const WGMMA_BK: usize = 64;
/// Environment variable that overrides [`GemmPath::Auto`]'s choice, for benchmarks:
/// `mma`, or `wgmma-<bn>x<stages>` (e.g. `wgmma-256x4`).
pub const GEMM_PATH_ENV: &str = "FYM_GEMM_PATH";

/// Which bf16 kernel a GEMM runs on (f32 always runs the SIMT parity kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmPath {
    /// wgmma where it applies (see [`GemmPath::Wgmma`]), else mma.sync; what [`gemm`] uses.
    Auto,
    /// mma.sync on 128×128 tiles (`gemm.cu`): every transpose, any alignment.
    MmaSync,
    /// wgmma (`gemm_sm90a.cu`) on 128×`bn` tiles through a `stages`-deep copy ring: compute
    /// capability 9.0, A stored m×k and B stored n×k (no `trans_a`, with `trans_b`), leading
    /// dimensions and batch strides of A and B multiples of 8. Built: [`WGMMA_VARIANTS`].
    Wgmma { bn: usize, stages: usize },
    /// The same wgmma tiles fed by the tensor memory accelerator (bulk tensor copies) and a
    /// producer warp, with the same requirements. Built: [`TMA_VARIANTS`].
    WgmmaTma { bn: usize, stages: usize },
}

/// The wgmma kernels `gemm_sm90a.cu` exports, as (bn, stages).
pub const WGMMA_VARIANTS: [(usize, usize); 3] = [(128, 4), (256, 4), (256, 3)];
/// The TMA-fed wgmma kernels `gemm_sm90a.cu` exports, as (bn, stages).
pub const TMA_VARIANTS: [(usize, usize); 3] = [(128, 6), (256, 3), (256, 4)];
/// What [`GemmPath::Auto`] picks where wgmma applies.
/// Measured on an H200 at the Wan shapes (BENCHMARKS.md): 514–653 TFLOP/s, against 404–435
/// for the cp.async-fed wgmma kernel and 211–244 for mma.sync.
const WGMMA_DEFAULT: GemmPath = GemmPath::WgmmaTma { bn: 256, stages: 4 };

impl GemmPath {
    /// Parses [`GEMM_PATH_ENV`]'s syntax: `auto`, `mma`, `wgmma-<bn>x<stages>`,
    /// `tma-<bn>x<stages>`; only built variants parse.
    pub fn parse(text: &str) -> Option<GemmPath> {
        let variant = |prefix: &str, built: &[(usize, usize)]| {
            let (bn, stages) = text.strip_prefix(prefix)?.split_once('x')?;
            let v = (bn.parse().ok()?, stages.parse().ok()?);
            built.contains(&v).then_some(v)
        };
        match text {
            "auto" => Some(GemmPath::Auto),
            "mma" => Some(GemmPath::MmaSync),
            _ => {
                if let Some((bn, stages)) = variant("wgmma-", &WGMMA_VARIANTS) {
                    Some(GemmPath::Wgmma { bn, stages })
                } else {
                    let (bn, stages) = variant("tma-", &TMA_VARIANTS)?;
                    Some(GemmPath::WgmmaTma { bn, stages })
                }
            }
        }
    }

    /// [`GemmPath::Auto`], unless [`GEMM_PATH_ENV`] names another path (read once). A value that
    /// names no built kernel is an error, not a silent fallback that would mislabel a benchmark.
    fn auto() -> Result<GemmPath> {
        static CHOSEN: OnceLock<std::result::Result<GemmPath, String>> = OnceLock::new();
        CHOSEN
            .get_or_init(|| match std::env::var(GEMM_PATH_ENV) {
                Err(_) => Ok(GemmPath::Auto),
                Ok(v) => GemmPath::parse(&v).ok_or_else(|| {
                    format!(
                        "{GEMM_PATH_ENV}={v:?} names no GEMM kernel: use auto, mma, \
                         wgmma-<bn>x<stages> for (bn, stages) in {WGMMA_VARIANTS:?} or \
                         tma-<bn>x<stages> for {TMA_VARIANTS:?}"
                    )
                }),
            })
            .clone()
            .map_err(|msg| Error::Cuda {
                op: "cuda gemm".into(),
                msg,
            })
    }
}
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
    gemm_batched_on(
        GemmPath::auto()?,
        dev,
        batch,
        trans_a,
        trans_b,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        stride_a,
        b,
        ldb,
        stride_b,
        beta,
        c,
        ldc,
        stride_c,
    )
}

/// [`gemm_batched`] on a chosen bf16 kernel; errors if `path` cannot run this GEMM (wrong
/// layout, alignment or GPU for wgmma). For f32 every path runs the SIMT kernel.
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched_on<T: CudaFloat>(
    path: GemmPath,
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
    let mut cp_async_wgmma = None;
    if is_bf16 {
        let wgmma_fits =
            !trans_a && trans_b && vec_a == 1 && vec_b == 1 && dev.compute_capability() == (9, 0);
        let wgmma = match path {
            GemmPath::Auto => wgmma_fits.then_some(WGMMA_DEFAULT),
            GemmPath::MmaSync => None,
            GemmPath::Wgmma { .. } | GemmPath::WgmmaTma { .. } if wgmma_fits => Some(path),
            GemmPath::Wgmma { .. } | GemmPath::WgmmaTma { .. } => {
                return Err(Error::shape(
                    OP,
                    format!(
                        "{path:?} needs a compute capability 9.0 GPU, A m×k and B n×k (no \
                         trans_a, with trans_b) and leading dimensions and batch strides that \
                         are multiples of 8 ({shape:?}, stride_a {stride_a}, stride_b \
                         {stride_b}, GPU sm_{}{})",
                        dev.compute_capability().0,
                        dev.compute_capability().1
                    ),
                ))
            }
        };
        if let Some(GemmPath::WgmmaTma { bn, stages }) = wgmma {
            let batched = [stride_a > 0 && batch > 1, stride_b > 0 && batch > 1];
            return gemm_tma(
                dev,
                (bn, stages),
                batch,
                (m, n, k),
                alpha,
                (a, lda, stride_a),
                (b, ldb, stride_b),
                beta,
                (c, ldc_arg, sc_arg),
                batched,
            );
        }
        if let Some(GemmPath::Wgmma { bn, stages }) = wgmma {
            if !WGMMA_VARIANTS.contains(&(bn, stages)) {
                return Err(Error::shape(
                    OP,
                    format!("no wgmma kernel for {path:?}; built: {WGMMA_VARIANTS:?} (bn, stages)"),
                ));
            }
            cp_async_wgmma = Some((bn, stages));
        }
    }
    // (file, kernel, blocks along n, shared memory); the block rows (128) are the same for every
    // bf16 kernel, so `grid_y` holds for all.
    let (file, name, grid_x, smem) = match cp_async_wgmma {
        Some((bn, stages)) => (
            WGMMA_FILE,
            format!("gemm_nt_wgmma_n{bn}_s{stages}"),
            n.div_ceil(bn),
            // The ring of A and B tiles, plus 1 KB to align it to the swizzle period.
            stages * (WGMMA_BM + bn) * WGMMA_BK * 2 + 1024,
        ),
        None => (
            FILE,
            format!(
                "gemm_{}{}_{}",
                if trans_a { 't' } else { 'n' },
                if trans_b { 't' } else { 'n' },
                T::SUFFIX
            ),
            grid_x,
            0,
        ),
    };
    let f = dev.function(file, &name)?;
    allow_smem(&f, &name, smem)?;
    let cfg = LaunchConfig {
        grid_dim: (grid_x as u32, grid_y as u32, batch as u32),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: smem as u32,
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
    // The mma.sync kernel also takes whether each operand can be copied in 16-byte chunks.
    if is_bf16 && cp_async_wgmma.is_none() {
        launch.arg(&vec_a).arg(&vec_b);
    }
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(())
}

/// A tensor map as `cuTensorMapEncodeTiled` writes it, passed to the kernel by value.
#[repr(transparent)]
#[derive(Clone, Copy)]
struct TensorMap(sys::CUtensorMap);

// SAFETY: plain bytes, copied into the kernel's parameter space as they are.
unsafe impl DeviceRepr for TensorMap {}

/// Tensor map of `batch` k-contiguous operands of `rows` × `k` (row stride `ld`, batch stride
/// `stride` elements; 0 = one operand shared by every batch entry) for boxes of 64 k × `box_rows`
/// rows in 128-byte swizzle, the layout the wgmma descriptors read. Reads outside the operand
/// come back as zeros.
fn tensor_map(
    base: u64,
    (rows, k, ld, stride): (usize, usize, usize, usize),
    batch: usize,
    box_rows: usize,
) -> Result<TensorMap> {
    let batch_dim = if stride > 0 { batch } else { 1 };
    // Strides are in bytes for dimensions 1 and 2; a batch of one needs only a valid value.
    let batch_stride = if stride > 0 { stride } else { ld * rows.max(1) };
    let dims: [u64; 3] = [k as u64, rows as u64, batch_dim as u64];
    let strides: [u64; 2] = [(ld * 2) as u64, (batch_stride * 2) as u64];
    let boxes: [u32; 3] = [WGMMA_BK as u32, box_rows as u32, 1];
    let element_strides: [u32; 3] = [1, 1, 1];
    let mut map = std::mem::MaybeUninit::<sys::CUtensorMap>::zeroed();
    // SAFETY: every pointer refers to a live local array of the length the rank (3) implies.
    let status = unsafe {
        sys::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            3,
            base as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            element_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    if status != sys::CUresult::CUDA_SUCCESS {
        return Err(Error::Cuda {
            op: "cuda gemm".into(),
            msg: format!(
                "cuTensorMapEncodeTiled failed ({status:?}) for {rows}×{k} rows (ld {ld}, batch \
                 stride {stride}, box {box_rows})"
            ),
        });
    }
    // SAFETY: the driver wrote the whole map.
    Ok(TensorMap(unsafe { map.assume_init() }))
}

/// Launches `gemm_nt_tma_n<bn>_s<stages>`; the caller checked the shapes, the alignment and the GPU.
#[allow(clippy::too_many_arguments)]
fn gemm_tma<T: CudaFloat>(
    dev: &CudaDevice,
    (bn, stages): (usize, usize),
    batch: usize,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    (a, lda, stride_a): (&CudaSlice<T>, usize, usize),
    (b, ldb, stride_b): (&CudaSlice<T>, usize, usize),
    beta: f32,
    (c, ldc, stride_c): (&mut CudaSlice<T>, i64, i64),
    batched: [bool; 2],
) -> Result<()> {
    const OP: &str = "cuda gemm";
    if !TMA_VARIANTS.contains(&(bn, stages)) {
        return Err(Error::shape(
            OP,
            format!("no TMA wgmma kernel for bn {bn}, {stages} stages; built: {TMA_VARIANTS:?}"),
        ));
    }
    // The caller checked the grid: its block rows are those of every bf16 kernel.
    let grid_y = m.div_ceil(WGMMA_BM);
    let stream = dev.stream();
    // The read guards record, when dropped after the launch, that the kernel read A and B.
    let (ptr_a, _read_a) = a.device_ptr(stream);
    let (ptr_b, _read_b) = b.device_ptr(stream);
    let map_a = tensor_map(ptr_a, (m, k, lda, stride_a), batch, WGMMA_BM)?;
    let map_b = tensor_map(ptr_b, (n, k, ldb, stride_b), batch, bn)?;
    let name = format!("gemm_nt_tma_n{bn}_s{stages}");
    let f = dev.function(WGMMA_FILE, &name)?;
    // The ring, a full and an empty mbarrier per stage, 1 KB to align the ring to the swizzle.
    let smem = stages * (WGMMA_BM + bn) * WGMMA_BK * 2 + stages * 16 + 1024;
    allow_smem(&f, &name, smem)?;
    let cfg = LaunchConfig {
        grid_dim: (n.div_ceil(bn) as u32, grid_y as u32, batch as u32),
        // Two consumer warpgroups and one producer warp.
        block_dim: (2 * 128 + 32, 1, 1),
        shared_mem_bytes: smem as u32,
    };
    let (m_arg, n_arg, k_arg) = (
        as_i32(OP, "m", m)?,
        as_i32(OP, "n", n)?,
        as_i32(OP, "k", k)?,
    );
    let (batched_a, batched_b) = (i32::from(batched[0]), i32::from(batched[1]));
    let mut launch = stream.launch_builder(&f);
    launch
        .arg(&map_a)
        .arg(&map_b)
        .arg(&m_arg)
        .arg(&n_arg)
        .arg(&k_arg)
        .arg(&alpha)
        .arg(&beta)
        .arg(c)
        .arg(&ldc)
        .arg(&stride_c)
        .arg(&batched_a)
        .arg(&batched_b);
    driver_call(&name, || unsafe { launch.launch(cfg) })?;
    Ok(())
}

/// Floating-point operations of one GEMM (`2·m·n·k`), the count every TFLOP/s figure uses.
pub fn gemm_flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_paths_parse_only_built_kernels() {
        assert_eq!(GemmPath::parse("auto"), Some(GemmPath::Auto));
        assert_eq!(GemmPath::parse("mma"), Some(GemmPath::MmaSync));
        assert_eq!(
            GemmPath::parse("wgmma-256x4"),
            Some(GemmPath::Wgmma { bn: 256, stages: 4 })
        );
        assert_eq!(
            GemmPath::parse("tma-128x6"),
            Some(GemmPath::WgmmaTma { bn: 128, stages: 6 })
        );
        for bad in ["tma-999x9", "wgmma-128x6", "tma-256", "cublas", ""] {
            assert_eq!(GemmPath::parse(bad), None, "{bad}");
        }
    }
}
