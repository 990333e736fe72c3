//! `Temporal` attention with short groups (at most [`MAX_FRAMES`] frames), vectorized across
//! groups: one task takes 16 neighbouring spatial positions (16 independent groups of `frames`
//! tokens each) and holds them in the 16 lanes of every vector. Every score, softmax and product
//! is then plain lane-wise arithmetic on `frames × head_dim` vectors, with no horizontal reduction,
//! no padding of an 8-token group to a 16-wide tile, and one task per 16 groups instead of one
//! per group. (The tile path spends most of its time on per-group gathers, fills and tile
//! bookkeeping when a group is a handful of tokens: ~7 GFLOP/s at 8 frames.)
//!
//! Layout in the task scratch: `X[f][e]` (frame `f`, feature `e`) is the vector of lane `l` =
//! position `p0 + l`, at `(f·head_dim + e)·16`. Lanes past the last position are zero and never
//! written back.

use super::plan::with_scratch;
use super::simd::{Isa, Portable, Simd, LANES};
use super::AttnDims;
use crate::cpu::pool::SharedMut;
use std::f32::consts::{LN_2, LOG2_E};

/// Longest group this path takes; longer ones use the tile path, whose tiles they fill. Measured
/// (one thread, 4 heads × 32): at 8 frames this path is 2–3× faster, at 16 even (forward) to 10%
/// faster (backward), at 32 about 25% slower.
pub(super) const MAX_FRAMES: usize = 16;

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
}

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
        }
    }

    /// Offset of the row of (frame `f`, lane `l`).
    fn row(&self, f: usize, l: usize) -> usize {
        self.base + f * self.frame_stride + l * self.lane_stride
    }

    /// Floats of one `frames × d` lane-major block.
    fn len(&self) -> usize {
        self.frames * self.d * LANES
    }

    /// Copies the block's rows of `src` into `dst` in lane-major layout, times `factor`.
    ///
    /// # Safety
    /// With `isa == Isa::Avx512` the CPU must support AVX-512F.
    unsafe fn gather(&self, isa: Isa, src: &[f32], factor: f32, dst: &mut [f32]) {
        assert!(self.row(self.frames - 1, self.lanes - 1) + self.d <= src.len());
        assert!(dst.len() >= self.len());
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 {
            return self.gather_avx512(src, factor, dst);
        }
        let _ = isa;
        let d = self.d;
        if self.lanes < LANES {
            dst[..self.len()].fill(0.0);
        }
        for f in 0..self.frames {
            for l in 0..self.lanes {
                let row = &src[self.row(f, l)..][..d];
                let out = &mut dst[f * d * LANES + l..];
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
                    let at = (f * d + e0 + e) * LANES;
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
                let from = &src[f * d * LANES + l..];
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
                    let at = (f * d + e0 + e) * LANES;
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
        with_scratch(3 * blk.len(), |buf| {
            // SAFETY: the feature-gated variants only run where `Isa::detect` found the feature;
            // the task owns the rows of its block in out and lse.
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => fwd_avx512(&blk, scale, &io, buf),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => fwd_avx2(&blk, scale, &io, buf),
                    _ => fwd_body::<Portable>(isa, &blk, scale, &io, buf),
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
    fwd_body::<super::simd::Avx512>(Isa::Avx512, blk, scale, io, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fwd_avx2(blk: &Block, scale: f32, io: &Io, buf: &mut [f32]) {
    fwd_body::<super::simd::Avx2>(Isa::Avx2, blk, scale, io, buf)
}

/// `Σ_e a[e]·b[e]` over `d` lane vectors at `a` and `b`, with four accumulators so the sum is
/// not one chain of dependent FMAs.
#[inline(always)]
unsafe fn dot_lanes<S: Simd>(a: *const f32, b: *const f32, d: usize) -> S::V {
    let mut acc = [S::zero(); 4];
    let mut e = 0;
    while e + 4 <= d {
        for (u, acc_u) in acc.iter_mut().enumerate() {
            let at = (e + u) * LANES;
            *acc_u = S::fmadd(S::load(a.add(at)), S::load(b.add(at)), *acc_u);
        }
        e += 4;
    }
    while e < d {
        acc[0] = S::fmadd(S::load(a.add(e * LANES)), S::load(b.add(e * LANES)), acc[0]);
        e += 1;
    }
    S::add(S::add(acc[0], acc[1]), S::add(acc[2], acc[3]))
}

/// `y[e] += alpha·x[e]` over `d` lane vectors.
#[inline(always)]
unsafe fn axpy_lanes<S: Simd>(alpha: S::V, x: *const f32, y: *mut f32, d: usize) {
    for e in 0..d {
        let at = e * LANES;
        S::store(
            y.add(at),
            S::fmadd(alpha, S::load(x.add(at)), S::load(y.add(at))),
        );
    }
}

/// Scores of query frame `i` against every key frame, in log2 units (`qt` is pre-scaled by
/// `scale·log2 e`): `s[j] = Σ_e Qt[i][e]·Kt[j][e]`.
#[inline(always)]
unsafe fn scores<S: Simd>(
    qt: &[f32],
    kt: &[f32],
    i: usize,
    frames: usize,
    d: usize,
) -> [S::V; MAX_FRAMES] {
    let mut s = [S::zero(); MAX_FRAMES];
    let q = qt.as_ptr().add(i * d * LANES);
    for (j, s_j) in s.iter_mut().enumerate().take(frames) {
        *s_j = dot_lanes::<S>(q, kt.as_ptr().add(j * d * LANES), d);
    }
    s
}

#[inline(always)]
unsafe fn fwd_body<S: Simd>(isa: Isa, blk: &Block, scale: f32, io: &Io, buf: &mut [f32]) {
    let (frames, d, n) = (blk.frames, blk.d, blk.len());
    let (qt, rest) = buf.split_at_mut(n);
    let (kt, vt) = rest.split_at_mut(n);
    blk.gather(isa, io.q, scale * LOG2_E, qt);
    blk.gather(isa, io.k, 1.0, kt);
    blk.gather(isa, io.v, 1.0, vt);
    let mut lse_lanes = [0.0f32; LANES];
    for i in 0..frames {
        let mut p = scores::<S>(qt, kt, i, frames, d);
        let mut m = p[0];
        for s_j in &p[1..frames] {
            m = S::max(m, *s_j);
        }
        let mut l = S::zero();
        for p_j in p.iter_mut().take(frames) {
            *p_j = S::exp2(S::sub(*p_j, m));
            l = S::add(l, *p_j);
        }
        // O[i] = Σ_j p_j·V[j] / l, written straight into the query's rows. Qt[i] is not read
        // again, so its slot holds the lane-major O[i] on the way.
        let o = qt.as_mut_ptr().add(i * d * LANES);
        let mut l_lanes = [0.0f32; LANES];
        S::store(l_lanes.as_mut_ptr(), l);
        let inv: [f32; LANES] = std::array::from_fn(|x| 1.0 / l_lanes[x]);
        let inv_v = S::load(inv.as_ptr());
        for e in 0..d {
            let mut acc = S::zero();
            for (j, p_j) in p.iter().enumerate().take(frames) {
                acc = S::fmadd(*p_j, S::load(vt.as_ptr().add((j * d + e) * LANES)), acc);
            }
            S::store(o.add(e * LANES), S::mul(acc, inv_v));
        }
        let mut m_lanes = [0.0f32; LANES];
        S::store(m_lanes.as_mut_ptr(), m);
        for x in 0..blk.lanes {
            lse_lanes[x] = (m_lanes[x] + l_lanes[x].log2()) * LN_2;
        }
        // SAFETY: the lse entries of this block's tokens in frame i belong to this task.
        io.lse
            .slice(blk.lse_base + i * blk.tpf, blk.lanes)
            .copy_from_slice(&lse_lanes[..blk.lanes]);
    }
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
        with_scratch(8 * blk.len(), |buf| {
            // SAFETY: as in `forward`; the task owns the rows of its block in dq, dk, dv.
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => bwd_avx512(&blk, scale, io, buf),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => bwd_avx2(&blk, scale, io, buf),
                    _ => bwd_body::<Portable>(isa, &blk, scale, io, buf),
                }
            }
        })
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn bwd_avx512(blk: &Block, scale: f32, io: &BackwardIo, buf: &mut [f32]) {
    bwd_body::<super::simd::Avx512>(Isa::Avx512, blk, scale, io, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bwd_avx2(blk: &Block, scale: f32, io: &BackwardIo, buf: &mut [f32]) {
    bwd_body::<super::simd::Avx2>(Isa::Avx2, blk, scale, io, buf)
}

/// `P = 2^(S − lse·log2 e)`, `dV += Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P ⊙ (dP − D)` with
/// `D_i = rowsum(dO ⊙ O)`, `dQ = scale·dS·K`, `dK += scale·dSᵀ·Q`, all lane-wise.
#[inline(always)]
unsafe fn bwd_body<S: Simd>(isa: Isa, blk: &Block, scale: f32, io: &BackwardIo, buf: &mut [f32]) {
    let (frames, d, n) = (blk.frames, blk.d, blk.len());
    let [qt, kt, vt, dot, ot, dqt, dkt, dvt] = super::plan::carve(buf, [n; 8]);
    // Q pre-scaled to log2 units for the scores; dK uses the unscaled Q, so divide it back out
    // at the end (scale·log2 e ≠ 0 since scale is finite and the scores would be constant
    // otherwise — a zero scale is handled by gathering Q unscaled instead).
    let c = scale * LOG2_E;
    let q_factor = if c != 0.0 { c } else { 1.0 };
    blk.gather(isa, io.q, q_factor, qt);
    blk.gather(isa, io.k, 1.0, kt);
    blk.gather(isa, io.v, 1.0, vt);
    blk.gather(isa, io.d_out, 1.0, dot);
    blk.gather(isa, io.out, 1.0, ot);
    dkt.fill(0.0);
    dvt.fill(0.0);
    for i in 0..frames {
        // Row statistics of query frame i, lane-wise: lse in log2 units and D_i.
        let mut lse2 = [0.0f32; LANES];
        let mut dd = [0.0f32; LANES];
        for l in 0..blk.lanes {
            lse2[l] = io.lse[blk.lse_base + i * blk.tpf + l] * LOG2_E;
            let (o, g) = (
                &io.out[blk.row(i, l)..][..d],
                &io.d_out[blk.row(i, l)..][..d],
            );
            dd[l] = o.iter().zip(g).map(|(x, y)| x * y).sum();
        }
        let (lse2, dd) = (S::load(lse2.as_ptr()), S::load(dd.as_ptr()));
        let mut p = if c != 0.0 {
            scores::<S>(qt, kt, i, frames, d)
        } else {
            [S::zero(); MAX_FRAMES]
        };
        for p_j in p.iter_mut().take(frames) {
            *p_j = S::exp2(S::sub(*p_j, lse2));
        }
        // dP_j = Σ_e dO[i][e]·V[j][e] (frames-many accumulators), and dV[j] += p_j·dO[i].
        let (g, q) = (
            dot.as_ptr().add(i * d * LANES),
            qt.as_ptr().add(i * d * LANES),
        );
        let sv = S::splat(scale);
        let mut ds = [S::zero(); MAX_FRAMES];
        for j in 0..frames {
            let row = j * d * LANES;
            let dp = dot_lanes::<S>(g, vt.as_ptr().add(row), d);
            axpy_lanes::<S>(p[j], g, dvt.as_mut_ptr().add(row), d);
            ds[j] = S::mul(sv, S::mul(p[j], S::sub(dp, dd)));
            axpy_lanes::<S>(ds[j], q, dkt.as_mut_ptr().add(row), d);
        }
        // dQ[i][e] = Σ_j dS_j·K[j][e]: one short chain per e, independent across e.
        for e in 0..d {
            let mut acc = S::zero();
            for (j, ds_j) in ds.iter().enumerate().take(frames) {
                acc = S::fmadd(*ds_j, S::load(kt.as_ptr().add((j * d + e) * LANES)), acc);
            }
            S::store(dqt.as_mut_ptr().add((i * d + e) * LANES), acc);
        }
    }
    // SAFETY: the dq/dk/dv rows of this block belong to this task.
    blk.scatter(isa, dqt, 1.0, io.dq);
    blk.scatter(isa, dkt, 1.0 / q_factor, io.dk);
    blk.scatter(isa, dvt, 1.0, io.dv);
}
