//! The single-threaded BLIS-style driver: loops over NC-wide column blocks, KC-deep slices and
//! MC-tall row blocks, packs A and B blocks, and calls the micro-kernel on every MR×NR tile.

use super::micro::MicroKernel;
use super::pack::{pack_panels, Operand};
use std::cell::RefCell;

/// Cache-line alignment for packed panels, so no kernel load splits a line.
const ALIGN_FLOATS: usize = 16;

thread_local! {
    /// Packing buffers reused across calls on this thread (pool workers live for the process), so
    /// small GEMMs do not pay for an allocation and page faults on every call.
    static PACK_BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `C = alpha · A·B + beta · C (+ bias)` for `A` m×k and `B` k×n views; a non-null `bias` holds
/// `n` values added to every row.
///
/// # Safety
/// `c` must be valid for reads and writes of `m` rows of `n` values with row stride `ldc`, no other
/// thread may access that region during the call, and the CPU must support `kernel`. `a` and `b`
/// must cover m×k and k×n elements (the views index their slices, so a short one panics); `bias`
/// must be null or valid for `n` reads.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(
    kernel: &MicroKernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Operand,
    b: Operand,
    beta: f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale(m, n, beta, c, ldc, bias);
        return;
    }
    let a_len = kernel.mc.min(m).div_ceil(kernel.mr) * kernel.mr * kernel.kc.min(k);
    let b_len = kernel.nc.min(n).div_ceil(kernel.nr) * kernel.nr * kernel.kc.min(k);
    let run = |a_buf: &mut Vec<f32>, b_buf: &mut Vec<f32>| {
        let a_pack = aligned(a_buf, a_len);
        let b_pack = aligned(b_buf, b_len);
        gemm_with_buffers(
            kernel, m, n, k, alpha, a, b, beta, c, ldc, bias, a_pack, b_pack,
        );
    };
    PACK_BUFFERS.with(|buffers| match buffers.try_borrow_mut() {
        Ok(mut buffers) => {
            let (a_buf, b_buf) = &mut *buffers;
            run(a_buf, b_buf)
        }
        // Only reachable if a GEMM ever ran inside another on the same thread.
        Err(_) => run(&mut Vec::new(), &mut Vec::new()),
    });
}

/// A 64-byte aligned slice of `len` floats inside `buf`, growing it if needed.
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + ALIGN_FLOATS {
        buf.resize(len + ALIGN_FLOATS, 0.0);
    }
    let skip = buf
        .as_ptr()
        .align_offset(ALIGN_FLOATS * 4)
        .min(ALIGN_FLOATS);
    &mut buf[skip..skip + len]
}

#[allow(clippy::too_many_arguments)]
unsafe fn gemm_with_buffers(
    kernel: &MicroKernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Operand,
    b: Operand,
    beta: f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    a_pack: &mut [f32],
    b_pack: &mut [f32],
) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let direct_a = use_direct_a(kernel, a, n);
    for jc in (0..n).step_by(kernel.nc) {
        let nc = kernel.nc.min(n - jc);
        for pc in (0..k).step_by(kernel.kc) {
            let kc = kernel.kc.min(k - pc);
            // Later k slices accumulate onto what the first one wrote; the last adds the bias.
            let beta = if pc == 0 { beta } else { 1.0 };
            let last_slice = pc + kc == k;
            pack_panels(b.offset(pc, jc).t(), nc, kc, nr, b_pack, kernel.pack);
            for ic in (0..m).step_by(kernel.mc) {
                let mc = kernel.mc.min(m - ic);
                if !direct_a {
                    pack_panels(a.offset(ic, pc), mc, kc, mr, a_pack, kernel.pack);
                }
                for jr in (0..nc).step_by(nr) {
                    let cols = nr.min(nc - jr);
                    let b_panel = b_pack[jr * kc..].as_ptr();
                    for ir in (0..mc).step_by(mr) {
                        let rows = mr.min(mc - ir);
                        let c_tile = c.add((ic + ir) * ldc + jc + jr);
                        // The bias of this tile's columns, added by the last k slice only.
                        let tile_bias = if last_slice && !bias.is_null() {
                            bias.add(jc + jr)
                        } else {
                            std::ptr::null()
                        };
                        let run_tile = |c: *mut f32, ldc: usize, alpha, beta, bias| {
                            if direct_a {
                                // The view checks that row ic + ir, column pc exists; the
                                // caller's shape check covers the `rows × kc` block from there.
                                let a_rows = a.offset(ic + ir, pc).data.as_ptr();
                                let tile = kernel.direct_tiles[rows - 1];
                                tile(kc, a_rows, a.row_stride, b_panel, c, ldc, alpha, beta, bias);
                            } else {
                                let a_panel = a_pack[ir * kc..].as_ptr();
                                let tile = kernel.tiles[rows - 1];
                                tile(kc, a_panel, b_panel, c, ldc, alpha, beta, bias);
                            }
                        };
                        if cols == nr {
                            run_tile(c_tile, ldc, alpha, beta, tile_bias);
                        } else {
                            // Ragged right edge: compute the full-width tile aside, keep `cols`
                            // (the bias has only `cols` values here).
                            let mut scratch = [0.0f32; MAX_TILE];
                            run_tile(scratch.as_mut_ptr(), nr, 1.0, 0.0, std::ptr::null());
                            let bias_cols = (!tile_bias.is_null())
                                .then(|| std::slice::from_raw_parts(tile_bias, cols));
                            for (i, row) in scratch.chunks_exact(nr).take(rows).enumerate() {
                                let c_row =
                                    std::slice::from_raw_parts_mut(c_tile.add(i * ldc), cols);
                                merge(c_row, &row[..cols], alpha, beta, bias_cols);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whether to read A in place instead of packing it: A must be row-major (contiguous along k)
/// and the kernel must have direct tiles. Packing A is a transposing copy of the whole block
/// (~15% of a 512×128×128 product, and most of a 512×8×128 one); reading it in place costs an
/// address add per row and k step and re-reads A's rows (strided) once per B panel. Measured on
/// AVX-512 (one thread, hot caches): in place is 2× faster at n = 8, even at n = 128 (4 panels),
/// and 3–7% slower at n = 512 (16 panels).
fn use_direct_a(kernel: &MicroKernel, a: Operand, n: usize) -> bool {
    !kernel.direct_tiles.is_empty()
        && a.col_stride == 1
        && n.div_ceil(kernel.nr) <= DIRECT_A_MAX_PANELS
}

/// Most B panels (of `nr` columns) for which A is read in place.
const DIRECT_A_MAX_PANELS: usize = 4;

/// Largest `mr·nr` of any micro-kernel.
const MAX_TILE: usize = 14 * 32;

/// `c = alpha · ab + beta · c (+ bias)`, the tile epilogue for a ragged edge.
fn merge(c: &mut [f32], ab: &[f32], alpha: f32, beta: f32, bias: Option<&[f32]>) {
    for (j, (c, &ab)) in c.iter_mut().zip(ab).enumerate() {
        // Plain arithmetic, not `mul_add`: this also runs on CPUs without FMA.
        let scaled = alpha * ab + bias.map_or(0.0, |b| b[j]);
        *c = if beta == 0.0 {
            scaled
        } else {
            scaled + beta * *c
        };
    }
}

/// `C = beta · C (+ bias)`; with `beta == 0` the old values (NaNs included) are overwritten.
unsafe fn scale(m: usize, n: usize, beta: f32, c: *mut f32, ldc: usize, bias: *const f32) {
    let bias = (!bias.is_null()).then(|| std::slice::from_raw_parts(bias, n));
    for i in 0..m {
        let row = std::slice::from_raw_parts_mut(c.add(i * ldc), n);
        if beta == 0.0 {
            row.fill(0.0);
        } else {
            row.iter_mut().for_each(|v| *v *= beta);
        }
        if let Some(bias) = bias {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
    }
}
