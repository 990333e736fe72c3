//! `Temporal` attention with short groups (at most [`MAX_FRAMES`] frames), vectorized across
//! groups: one task takes 16 neighbouring spatial positions (16 independent groups of `frames`
//! tokens each) and holds them in the 16 lanes of every vector. Every score, softmax and product
//! is then plain lane-wise arithmetic on `frames × head_dim` vectors, with no horizontal reduction,
//! no padding of an 8-token group to a 16-wide tile, and one task per 16 groups instead of one
//! per group. The products run as small register-blocked GEMMs whose elements are lane vectors
//! ([`lane_gemm`]), so each loaded vector feeds several FMAs.
//!
//! Layout in the task scratch: `X[f][e]` (frame `f`, feature `e`) is the vector of lane `l` =
//! position `p0 + l`, at `(f·dp + e)·16`, with frames and features zero-padded to `fp`, `dp`
//! (multiples of [`PAD`]). Lanes past the last position are zero and never written back.

use super::plan::with_scratch;
use super::simd::{Isa, Portable, Simd, LANES};
use super::AttnDims;
use crate::cpu::pool::SharedMut;
use std::f32::consts::{LN_2, LOG2_E};

/// Longest group this path takes; longer ones use the tile path. Measured (one thread, 4 heads ×
/// 32, 64 positions, fwd + bwd): 4 frames even, 8 frames 2.2× faster than the tile path, 12
/// frames 1.7×, 14 frames 1.3×; at 16 frames (one full 16-row tile per group) the tile path is
/// 10% faster, at 32 frames 35% — the lane-major scratch of a 16-position block, 16× a group's
/// data, then no longer fits in L1 or even comfortably in L2.
pub(super) const MAX_FRAMES: usize = 15;

/// Whether `Temporal` attention with these sizes runs here.
pub(super) fn applies(dims: &AttnDims) -> bool {
    let frames = dims.seq_q / dims.tokens_per_frame.max(1);
    frames <= MAX_FRAMES && dims.head_dim > 0
}

/// Tasks of one call: (batch, head, block of 16 positions).
fn tasks(dims: &AttnDims) -> usize {
    dims.batch * dims.heads * dims.tokens_per_frame.div_ceil(LANES)
}

/// The geometry of one task.
struct Block {
    /// Offset of token (frame 0, lane 0) of this (batch, head) in q/k/v/out, in floats.
    base: usize,
    /// Floats between consecutive frames of one position.
    frame_stride: usize,
    /// Floats between neighbouring positions.
    lane_stride: usize,
    /// Offset of (frame 0, lane 0) in lse.
    lse_base: usize,
    frames: usize,
    lanes: usize,
    d: usize,
    tpf: usize,
    /// `frames` and `d` rounded up to a multiple of [`PAD`] (zero rows / columns in the scratch).
    fp: usize,
    dp: usize,
}

/// Frames and features are padded to a multiple of this in the task scratch, so every register
/// block of [`lane_gemm`] (at most 4 × 4) is full.
const PAD: usize = 4;

impl Block {
    fn new(dims: &AttnDims, task: usize) -> Block {
        let blocks = dims.tokens_per_frame.div_ceil(LANES);
        let (bh, blk) = (task / blocks, task % blocks);
        let (b, h) = (bh / dims.heads, bh % dims.heads);
        let p0 = blk * LANES;
        let (d, tpf) = (dims.head_dim, dims.tokens_per_frame);
        let token_stride = dims.heads * d;
        Block {
            base: ((b * dims.seq_q + p0) * dims.heads + h) * d,
            frame_stride: tpf * token_stride,
            lane_stride: token_stride,
            lse_base: (b * dims.heads + h) * dims.seq_q + p0,
            frames: dims.seq_q / tpf,
            lanes: (tpf - p0).min(LANES),
            d,
            tpf,
            fp: (dims.seq_q / tpf).next_multiple_of(PAD),
            dp: d.next_multiple_of(PAD),
        }
    }

    /// Offset of the row of (frame `f`, lane `l`).
    fn row(&self, f: usize, l: usize) -> usize {
        self.base + f * self.frame_stride + l * self.lane_stride
    }

    /// Floats of one padded `frames × d` lane-major block.
    fn len(&self) -> usize {
        self.fp * self.dp * LANES
    }

    /// Scratch floats of the forward: Q, K, V and the `frames × frames` probabilities.
    fn forward_scratch(&self) -> usize {
        3 * self.len() + self.fp * self.fp * LANES
    }

    /// Scratch floats of the backward: Q, K, V, dO, O (then dQ), dK, dV, P and dS.
    fn backward_scratch(&self) -> usize {
        7 * self.len() + 2 * self.fp * self.fp * LANES
    }

    /// Copies the block's rows of `src` into `dst` in lane-major layout, times `factor`.
    ///
    /// # Safety
    /// With `isa == Isa::Avx512` the CPU must support AVX-512F.
    unsafe fn gather(&self, isa: Isa, src: &[f32], factor: f32, dst: &mut [f32]) {
        assert!(self.row(self.frames - 1, self.lanes - 1) + self.d <= src.len());
        assert!(dst.len() >= self.len());
        // Padded frames and features, and lanes past the last position, stay zero.
        if self.fp != self.frames || self.dp != self.d || self.lanes < LANES {
            dst[..self.len()].fill(0.0);
        }
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 {
            return self.gather_avx512(src, factor, dst);
        }
        let _ = isa;
        let d = self.d;
        for f in 0..self.frames {
            for l in 0..self.lanes {
                let row = &src[self.row(f, l)..][..d];
                let out = &mut dst[f * self.dp * LANES + l..];
                for (e, &x) in row.iter().enumerate() {
                    out[e * LANES] = x * factor;
                }
            }
        }
    }

    /// [`Self::gather`] with 16×16 register transposes: 16 rows × 16 features in, 16 lane
    /// vectors out.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `gather` checked the bounds.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn gather_avx512(&self, src: &[f32], factor: f32, dst: &mut [f32]) {
        use crate::cpu::gemm::{lane_mask, transpose16};
        use std::arch::x86_64::*;
        let (d, fv) = (self.d, _mm512_set1_ps(factor));
        for f in 0..self.frames {
            for e0 in (0..d).step_by(LANES) {
                let w = (d - e0).min(LANES);
                let mut rows = [_mm512_setzero_ps(); LANES];
                for (l, row) in rows.iter_mut().enumerate().take(self.lanes) {
                    // SAFETY: row (f, l) has d values from its start (checked in `gather`).
                    let p = src.as_ptr().add(self.row(f, l) + e0);
                    *row = _mm512_maskz_loadu_ps(lane_mask(w), p);
                }
                let cols = transpose16(rows);
                for (e, col) in cols.iter().enumerate().take(w) {
                    let at = (f * self.dp + e0 + e) * LANES;
                    _mm512_storeu_ps(dst.as_mut_ptr().add(at), _mm512_mul_ps(*col, fv));
                }
            }
        }
    }

    /// Writes lane-major `src` back to the block's rows of `dst`, times `factor`.
    ///
    /// # Safety
    /// The block's rows of `dst` must be owned by this task, inside `dst`; with
    /// `isa == Isa::Avx512` the CPU must support AVX-512F.
    unsafe fn scatter(&self, isa: Isa, src: &[f32], factor: f32, dst: SharedMut<f32>) {
        assert!(src.len() >= self.len());
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 {
            return self.scatter_avx512(src, factor, dst);
        }
        let _ = isa;
        let d = self.d;
        for f in 0..self.frames {
            for l in 0..self.lanes {
                let row = dst.slice(self.row(f, l), d);
                let from = &src[f * self.dp * LANES + l..];
                for (e, x) in row.iter_mut().enumerate() {
                    *x = from[e * LANES] * factor;
                }
            }
        }
    }

    /// [`Self::scatter`] with 16×16 register transposes.
    ///
    /// # Safety
    /// As [`Self::scatter`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn scatter_avx512(&self, src: &[f32], factor: f32, dst: SharedMut<f32>) {
        use crate::cpu::gemm::{lane_mask, transpose16};
        use std::arch::x86_64::*;
        let (d, fv) = (self.d, _mm512_set1_ps(factor));
        for f in 0..self.frames {
            for e0 in (0..d).step_by(LANES) {
                let w = (d - e0).min(LANES);
                let mut cols = [_mm512_setzero_ps(); LANES];
                for (e, col) in cols.iter_mut().enumerate().take(w) {
                    let at = (f * self.dp + e0 + e) * LANES;
                    *col = _mm512_mul_ps(_mm512_loadu_ps(src.as_ptr().add(at)), fv);
                }
                let rows = transpose16(cols);
                for (l, row) in rows.iter().enumerate().take(self.lanes) {
                    let p = dst.ptr().add(self.row(f, l) + e0);
                    _mm512_mask_storeu_ps(p, lane_mask(w), *row);
                }
            }
        }
    }
}

/// Forward over every task; writes every row of `out` and `lse`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    dims: AttnDims,
    scale: f32,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) {
    let (out, lse) = (SharedMut::new(out), SharedMut::new(lse));
    let isa = Isa::detect();
    crate::cpu::pool::parallel_for(tasks(&dims), |task| {
        let blk = Block::new(&dims, task);
        let io = Io { q, k, v, out, lse };
        with_scratch(blk.forward_scratch(), |buf| {
            // SAFETY: the feature-gated variants only run where `Isa::detect` found the feature;
            // the task owns the rows of its block in out and lse.
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => fwd_avx512(&blk, scale, &io, buf),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => fwd_avx2(&blk, scale, &io, buf),
                    _ => fwd_body::<Portable, 2, 2>(isa, &blk, scale, &io, buf),
                }
            }
        })
    });
}

/// The forward's inputs and outputs.
struct Io<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    out: SharedMut<f32>,
    lse: SharedMut<f32>,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fwd_avx512(blk: &Block, scale: f32, io: &Io, buf: &mut [f32]) {
    fwd_body::<super::simd::Avx512, 4, 4>(Isa::Avx512, blk, scale, io, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fwd_avx2(blk: &Block, scale: f32, io: &Io, buf: &mut [f32]) {
    fwd_body::<super::simd::Avx2, 2, 2>(Isa::Avx2, blk, scale, io, buf)
}

/// A matrix of lane vectors inside a scratch buffer, addressed by strides (in vectors), so a
/// transposed view is the same buffer with the strides swapped.
#[derive(Clone, Copy)]
struct LaneMatrix {
    ptr: *const f32,
    /// Lane vectors between neighbouring rows.
    row: usize,
    /// Lane vectors between neighbouring columns.
    col: usize,
}

impl LaneMatrix {
    /// The row-major matrix of `cols` vectors per row at the start of `buf`.
    fn rows(buf: &[f32], cols: usize) -> LaneMatrix {
        LaneMatrix {
            ptr: buf.as_ptr(),
            row: cols,
            col: 1,
        }
    }

    fn t(self) -> LaneMatrix {
        LaneMatrix {
            row: self.col,
            col: self.row,
            ..self
        }
    }

    #[inline(always)]
    unsafe fn at(&self, r: usize, c: usize) -> *const f32 {
        self.ptr.add((r * self.row + c * self.col) * LANES)
    }
}

/// `C[x][y] = Σ_t A(x, t)·B(t, y)` for `rows × cols` lane vectors, depth `depth`, in `XB × YB`
/// register blocks (`rows`, `cols` multiples of them); `c` is row-major with `cols` vectors per
/// row. The strided operands let one loop serve `Q·Kᵀ`, `P·V`, `Pᵀ·dO`, `dSᵀ·Q` and `dS·K`: per
/// depth step a block loads `XB + YB` vectors for `XB·YB` FMAs, where a lane-wise dot product
/// loads two per FMA.
///
/// # Safety
/// Every addressed vector of `a` (`rows × depth`), `b` (`depth × cols`) and `c` must be inside
/// its buffer, and `c` must not overlap `a` or `b`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn lane_gemm<S: Simd, const XB: usize, const YB: usize>(
    rows: usize,
    cols: usize,
    depth: usize,
    a: LaneMatrix,
    b: LaneMatrix,
    c: *mut f32,
) {
    debug_assert!(rows.is_multiple_of(XB) && cols.is_multiple_of(YB));
    for x0 in (0..rows).step_by(XB) {
        for y0 in (0..cols).step_by(YB) {
            let mut acc = [[S::zero(); YB]; XB];
            let (mut pa, mut pb) = (a.at(x0, 0), b.at(0, y0));
            let (a_step, b_step) = (a.col * LANES, b.row * LANES);
            for _ in 0..depth {
                let mut av = [S::zero(); XB];
                for xi in 0..XB {
                    av[xi] = S::load(pa.add(xi * a.row * LANES));
                }
                for yi in 0..YB {
                    let bv = S::load(pb.add(yi * b.col * LANES));
                    for xi in 0..XB {
                        acc[xi][yi] = S::fmadd(av[xi], bv, acc[xi][yi]);
                    }
                }
                pa = pa.add(a_step);
                pb = pb.add(b_step);
            }
            for xi in 0..XB {
                for yi in 0..YB {
                    S::store(c.add(((x0 + xi) * cols + y0 + yi) * LANES), acc[xi][yi]);
                }
            }
        }
    }
}

/// Forward of one block: `P = softmax(Q·Kᵀ)` (in log2 units, `Q` pre-scaled by `scale·log2 e`),
/// `O = P·V`, all lane-wise.
#[inline(always)]
unsafe fn fwd_body<S: Simd, const XB: usize, const YB: usize>(
    isa: Isa,
    blk: &Block,
    scale: f32,
    io: &Io,
    buf: &mut [f32],
) {
    let (frames, fp, dp, n) = (blk.frames, blk.fp, blk.dp, blk.len());
    let [qt, kt, vt, pt] = super::plan::carve(buf, [n, n, n, fp * fp * LANES]);
    blk.gather(isa, io.q, scale * LOG2_E, qt);
    blk.gather(isa, io.k, 1.0, kt);
    blk.gather(isa, io.v, 1.0, vt);
    let (q, k) = (LaneMatrix::rows(qt, dp), LaneMatrix::rows(kt, dp));
    lane_gemm::<S, XB, YB>(fp, fp, dp, q, k.t(), pt.as_mut_ptr());
    for i in 0..frames {
        let row = pt.as_mut_ptr().add(i * fp * LANES);
        let mut m = S::load(row);
        for j in 1..frames {
            m = S::max(m, S::load(row.add(j * LANES)));
        }
        let mut l = S::zero();
        for j in 0..frames {
            let p = S::exp2(S::sub(S::load(row.add(j * LANES)), m));
            S::store(row.add(j * LANES), p);
            l = S::add(l, p);
        }
        let mut l_lanes = [0.0f32; LANES];
        S::store(l_lanes.as_mut_ptr(), l);
        let inv: [f32; LANES] = std::array::from_fn(|x| 1.0 / l_lanes[x]);
        let inv = S::load(inv.as_ptr());
        for j in 0..frames {
            S::store(row.add(j * LANES), S::mul(S::load(row.add(j * LANES)), inv));
        }
        // Padded key frames get no weight.
        pt[(i * fp + frames) * LANES..(i + 1) * fp * LANES].fill(0.0);
        let mut m_lanes = [0.0f32; LANES];
        S::store(m_lanes.as_mut_ptr(), m);
        // SAFETY: the lse entries of this block's tokens in frame i belong to this task.
        let lse = io.lse.slice(blk.lse_base + i * blk.tpf, blk.lanes);
        for (x, out) in lse.iter_mut().enumerate() {
            *out = (m_lanes[x] + l_lanes[x].log2()) * LN_2;
        }
    }
    // Padded query frames: rows of zeros (never written back).
    pt[frames * fp * LANES..].fill(0.0);
    // O = P·V into Q's slot: Q is not read again.
    let (p, v) = (LaneMatrix::rows(pt, fp), LaneMatrix::rows(vt, dp));
    lane_gemm::<S, XB, YB>(fp, dp, fp, p, v, qt.as_mut_ptr());
    // SAFETY: the out rows of this block belong to this task.
    blk.scatter(isa, qt, 1.0, io.out);
}

/// The backward's inputs and outputs.
pub(super) struct BackwardIo<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub out: &'a [f32],
    pub lse: &'a [f32],
    pub d_out: &'a [f32],
    pub dq: SharedMut<f32>,
    pub dk: SharedMut<f32>,
    pub dv: SharedMut<f32>,
}

/// Backward over every task; writes every row of dq, dk and dv.
pub(super) fn backward(dims: AttnDims, scale: f32, io: &BackwardIo) {
    let isa = Isa::detect();
    crate::cpu::pool::parallel_for(tasks(&dims), |task| {
        let blk = Block::new(&dims, task);
        with_scratch(blk.backward_scratch(), |buf| {
            // SAFETY: as in `forward`; the task owns the rows of its block in dq, dk, dv.
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => bwd_avx512(&blk, scale, io, buf),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => bwd_avx2(&blk, scale, io, buf),
                    _ => bwd_body::<Portable, 2, 2>(isa, &blk, scale, io, buf),
                }
            }
        })
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn bwd_avx512(blk: &Block, scale: f32, io: &BackwardIo, buf: &mut [f32]) {
    bwd_body::<super::simd::Avx512, 4, 4>(Isa::Avx512, blk, scale, io, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bwd_avx2(blk: &Block, scale: f32, io: &BackwardIo, buf: &mut [f32]) {
    bwd_body::<super::simd::Avx2, 2, 2>(Isa::Avx2, blk, scale, io, buf)
}

/// `P = 2^(S − lse·log2 e)`, `dV = Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P ⊙ (dP − D)` with
/// `D_i = rowsum(dO ⊙ O)`, `dQ = scale·dS·K`, `dK = scale·dSᵀ·Q`, all lane-wise.
#[inline(always)]
unsafe fn bwd_body<S: Simd, const XB: usize, const YB: usize>(
    isa: Isa,
    blk: &Block,
    scale: f32,
    io: &BackwardIo,
    buf: &mut [f32],
) {
    let (frames, fp, dp, n) = (blk.frames, blk.fp, blk.dp, blk.len());
    let sq = fp * fp * LANES;
    let [qt, kt, vt, dot, ot, dkt, dvt, pt, dst] =
        super::plan::carve(buf, [n, n, n, n, n, n, n, sq, sq]);
    // Q pre-scaled to log2 units for the scores; dK uses the unscaled Q, so divide it back out
    // at the end (a zero scale gathers Q unscaled instead: the scores are then all zero).
    let c = scale * LOG2_E;
    let q_factor = if c != 0.0 { c } else { 1.0 };
    blk.gather(isa, io.q, q_factor, qt);
    blk.gather(isa, io.k, 1.0, kt);
    blk.gather(isa, io.v, 1.0, vt);
    blk.gather(isa, io.d_out, 1.0, dot);
    blk.gather(isa, io.out, 1.0, ot);
    let (q, k) = (LaneMatrix::rows(qt, dp), LaneMatrix::rows(kt, dp));
    let (v, g) = (LaneMatrix::rows(vt, dp), LaneMatrix::rows(dot, dp));
    if c != 0.0 {
        lane_gemm::<S, XB, YB>(fp, fp, dp, q, k.t(), pt.as_mut_ptr());
    } else {
        pt.fill(0.0);
    }
    // dP = dO·Vᵀ, turned into dS in place below.
    lane_gemm::<S, XB, YB>(fp, fp, dp, g, v.t(), dst.as_mut_ptr());
    let sv = S::splat(scale);
    for i in 0..fp {
        let (p_row, ds_row) = (
            pt.as_mut_ptr().add(i * fp * LANES),
            dst.as_mut_ptr().add(i * fp * LANES),
        );
        if i >= frames {
            // Padded query frames take no part in any gradient.
            std::slice::from_raw_parts_mut(p_row, fp * LANES).fill(0.0);
            std::slice::from_raw_parts_mut(ds_row, fp * LANES).fill(0.0);
            continue;
        }
        // Row statistics of query frame i, lane-wise: lse in log2 units and D_i.
        let mut lse2 = [0.0f32; LANES];
        for (l, x) in lse2.iter_mut().enumerate().take(blk.lanes) {
            *x = io.lse[blk.lse_base + i * blk.tpf + l] * LOG2_E;
        }
        let lse2 = S::load(lse2.as_ptr());
        let mut dd = S::zero();
        for e in 0..dp {
            let at = (i * dp + e) * LANES;
            dd = S::fmadd(
                S::load(dot.as_ptr().add(at)),
                S::load(ot.as_ptr().add(at)),
                dd,
            );
        }
        for j in 0..fp {
            let at = j * LANES;
            let (p, ds) = if j < frames {
                let p = S::exp2(S::sub(S::load(p_row.add(at)), lse2));
                (
                    p,
                    S::mul(sv, S::mul(p, S::sub(S::load(ds_row.add(at)), dd))),
                )
            } else {
                (S::zero(), S::zero())
            };
            S::store(p_row.add(at), p);
            S::store(ds_row.add(at), ds);
        }
    }
    let (p, ds) = (LaneMatrix::rows(pt, fp), LaneMatrix::rows(dst, fp));
    lane_gemm::<S, XB, YB>(fp, dp, fp, p.t(), g, dvt.as_mut_ptr());
    lane_gemm::<S, XB, YB>(fp, dp, fp, ds.t(), q, dkt.as_mut_ptr());
    // dQ into O's slot: O was only needed for D.
    lane_gemm::<S, XB, YB>(fp, dp, fp, ds, k, ot.as_mut_ptr());
    // SAFETY: the dq/dk/dv rows of this block belong to this task.
    blk.scatter(isa, ot, 1.0, io.dq);
    blk.scatter(isa, dkt, 1.0 / q_factor, io.dk);
    blk.scatter(isa, dvt, 1.0, io.dv);
}
