//! Backward tiles (flash-attention-2 style): `P` is recomputed from q, k and the saved lse;
//! `D_i = rowsum(dO ⊙ O)`, `dV += Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P ⊙ (dP − D_i)`,
//! `dK += scale·dSᵀ·Q`, `dQ += scale·dS·K`.
//!
//! Parallel split: one task = one (batch, head, group) and a contiguous range of its key tiles.
//! The task owns the dK/dV rows of its keys outright, so those need no synchronisation; the only
//! sum across key tiles is dQ, which the task accumulates privately. When there are at least as
//! many problems as useful tasks, a task holds all key tiles and writes dQ directly; otherwise
//! the key tiles are split and each task writes its dQ share into its own slot of a partial buffer
//! that is summed afterwards. This keeps the one-pass cost (5 tile products per tile pair) instead
//! of a second pass over all tiles for dQ (7 products), and the partial buffer exists only when
//! there are fewer problems than threads.
//!
//! Everything is computed transposed (keys as rows, queries along the vector lanes), so every
//! product is the `C += A·B` of [`super::simd::gemm_generic`] without transposing `P`:
//! `Sᵀ = K·Qᵀ`, `dV += Pᵀ·dO`, `dPᵀ = V·dOᵀ`, `dK += dSᵀ·Q`, `dQᵀ += Kᵀ·dSᵀ`.

use super::plan::{carve, gather_rows, gather_transposed, with_scratch, Plan, TILE_K, TILE_Q};
use super::simd::{copy_scaled_row, gemm_then, round_up, Epilogue, Isa, Portable, Simd, LANES};
use crate::cpu::pool::SharedMut;
use std::f32::consts::LOG2_E;

pub(super) struct Backward<'a> {
    pub plan: Plan,
    pub scale: f32,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub out: &'a [f32],
    pub lse: &'a [f32],
    pub d_out: &'a [f32],
    /// Key-tile ranges per problem.
    pub splits: usize,
    /// dQ destination: `dq` itself when `splits == 1`, else a `tasks × len_q × head_dim` buffer.
    pub dq: SharedMut<f32>,
    pub dk: SharedMut<f32>,
    pub dv: SharedMut<f32>,
}

impl Backward<'_> {
    fn scratch_len(&self) -> usize {
        scratch_sizes(&self.plan).iter().sum()
    }

    pub(super) fn tasks(&self) -> usize {
        self.plan.problems() * self.splits
    }

    pub(super) fn run_task(&self, isa: Isa, task: usize) {
        with_scratch(self.scratch_len(), |buf| {
            // SAFETY: the feature-gated variants only run where `Isa::detect` found the feature.
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => task_avx512(self, task, buf),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => task_avx2(self, task, buf),
                    _ => task_body::<Portable>(self, task, buf),
                }
            }
        })
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn task_avx512(bw: &Backward, task: usize, buf: &mut [f32]) {
    task_body::<super::simd::Avx512>(bw, task, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn task_avx2(bw: &Backward, task: usize, buf: &mut [f32]) {
    task_body::<super::simd::Avx2>(bw, task, buf)
}

/// Transposes `n` rows of `rows` (row length `dp`) into `cols`, blocked by query tile: tile `t`
/// is a `dp × tq` matrix at `t · dp · tq`, zero past `n`. Blocked rather than one `dp × n`
/// matrix because rows `tq` floats apart spread over the L1 sets, where rows a long sequence
/// apart (a multiple of 4 KiB) would all land in the same set and evict each other.
fn transpose_blocked(rows: &[f32], n: usize, dp: usize, tq: usize, factor: f32, cols: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && dp.is_multiple_of(16)
        && tq.is_multiple_of(16)
    {
        // SAFETY: AVX-512F was detected just above; the block sizes are multiples of 16.
        unsafe { transpose_blocked_avx512(rows, n, dp, tq, factor, cols) };
        return;
    }
    for (t, block) in cols.chunks_exact_mut(dp * tq).enumerate() {
        for (e, col) in block.chunks_exact_mut(tq).enumerate() {
            for (ii, x) in col.iter_mut().enumerate() {
                let i = t * tq + ii;
                *x = if i < n {
                    rows[i * dp + e] * factor
                } else {
                    0.0
                };
            }
        }
    }
}

/// [`transpose_blocked`] in 16×16 register transposes (the element-wise version was a tenth of
/// the backward's time in the small-group modes, where every task transposes its own queries).
///
/// # Safety
/// The CPU must support AVX-512F; `dp` and `tq` must be multiples of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_blocked_avx512(
    rows: &[f32],
    n: usize,
    dp: usize,
    tq: usize,
    factor: f32,
    cols: &mut [f32],
) {
    use crate::cpu::gemm::transpose16;
    use std::arch::x86_64::*;
    let factor = _mm512_set1_ps(factor);
    for (t, block) in cols.chunks_exact_mut(dp * tq).enumerate() {
        for ib in (0..tq).step_by(16) {
            for eb in (0..dp).step_by(16) {
                let mut tile = [_mm512_setzero_ps(); 16];
                for (x, lanes) in tile.iter_mut().enumerate() {
                    let i = t * tq + ib + x;
                    if i < n {
                        let src = &rows[i * dp + eb..][..16];
                        *lanes = _mm512_mul_ps(_mm512_loadu_ps(src.as_ptr()), factor);
                    }
                }
                for (e, col) in transpose16(tile).iter().enumerate() {
                    let dst = &mut block[(eb + e) * tq + ib..][..16];
                    _mm512_storeu_ps(dst.as_mut_ptr(), *col);
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn task_body<S: Simd>(bw: &Backward, task: usize, buf: &mut [f32]) {
    let plan = &bw.plan;
    let (d, dp) = (plan.dims.head_dim, plan.dim_padded);
    let (b, h, g) = plan.problem(task / bw.splits);
    let split = task % bw.splits;
    let nq = plan.len_q;
    let key_tiles = plan.len_kv.div_ceil(TILE_K);
    let (tq, tk) = (plan.tile_q, plan.tile_k);
    let (t0, t1) = (
        split * key_tiles / bw.splits,
        (split + 1) * key_tiles / bw.splits,
    );
    if t0 == t1 {
        return;
    }
    let c = bw.scale * LOG2_E;
    let [qr, dor, qt, dot, dqt, lse2, dd, kr, kt, vr, dk, dv, pt, dst] =
        carve(buf, scratch_sizes(plan));
    gather_rows::<S>(plan, bw.q, Plan::q_offset, b, h, g, 0, nq, 1.0, qr);
    gather_rows::<S>(plan, bw.d_out, Plan::q_offset, b, h, g, 0, nq, 1.0, dor);
    transpose_blocked(qr, nq, dp, tq, c, qt);
    transpose_blocked(dor, nq, dp, tq, 1.0, dot);
    lse2.fill(f32::INFINITY);
    dd.fill(0.0);
    for i in 0..nq {
        lse2[i] = bw.lse[plan.lse_offset(b, h, g, i)] * LOG2_E;
        let o = &bw.out[plan.q_offset(b, h, g, i)..][..d];
        dd[i] = dot_padded::<S>(o, &dor[i * dp..]);
    }
    for tile in t0..t1 {
        let j0 = tile * TILE_K;
        let nk = (plan.len_kv - j0).min(TILE_K);
        gather_rows::<S>(plan, bw.k, Plan::kv_offset, b, h, g, j0, nk, 1.0, kr);
        gather_transposed(plan, bw.k, b, h, g, j0, nk, tk, kt);
        gather_rows::<S>(plan, bw.v, Plan::kv_offset, b, h, g, j0, nk, 1.0, vr);
        // The first product into an accumulator overwrites it, so no accumulator is zeroed first.
        let first_key_tile = tile == t0;
        for i0 in (0..nq).step_by(TILE_Q) {
            let ni = (nq - i0).min(TILE_Q);
            let nip = round_up(ni);
            let first_query_tile = i0 == 0;
            // Sᵀ (keys × queries), already in log2 units, turned into Pᵀ = 2^(Sᵀ − lse2) in registers.
            let lse_tile = lse2.as_ptr().add(i0);
            gemm_then::<S, _>(
                nk,
                nip,
                dp,
                kr.as_ptr(),
                dp,
                qt.as_ptr().add(i0 * dp),
                tq,
                pt.as_mut_ptr(),
                tq,
                false,
                &ProbabilitiesT { lse2: lse_tile },
            );
            S::gemm(
                nk,
                dp,
                ni,
                pt.as_ptr(),
                tq,
                dor.as_ptr().add(i0 * dp),
                dp,
                dv.as_mut_ptr(),
                dp,
                !first_query_tile,
            );
            // dPᵀ = V·dOᵀ, turned into dSᵀ = Pᵀ ⊙ (dPᵀ − D) in registers.
            let (p_tile, d_tile) = (pt.as_ptr(), dd.as_ptr().add(i0));
            gemm_then::<S, _>(
                nk,
                nip,
                dp,
                vr.as_ptr(),
                dp,
                dot.as_ptr().add(i0 * dp),
                tq,
                dst.as_mut_ptr(),
                tq,
                false,
                &ScoreGradT {
                    p: p_tile,
                    ld_p: tq,
                    d: d_tile,
                },
            );
            S::gemm(
                nk,
                dp,
                ni,
                dst.as_ptr(),
                tq,
                qr.as_ptr().add(i0 * dp),
                dp,
                dk.as_mut_ptr(),
                dp,
                !first_query_tile,
            );
            S::gemm(
                dp,
                nip,
                nk,
                kt.as_ptr(),
                tk,
                dst.as_ptr(),
                tq,
                dqt.as_mut_ptr().add(i0 * dp),
                tq,
                !first_key_tile,
            );
        }
        for j in 0..nk {
            let off = plan.kv_offset(b, h, g, j0 + j);
            // SAFETY: key j0+j of this (b, h, g) lies in this task's key-tile range only.
            let (dk_row, dv_row) = (bw.dk.slice(off, d), bw.dv.slice(off, d));
            copy_scaled_row::<S>(
                dk[j * dp..][..d].as_ptr(),
                dk_row.as_mut_ptr(),
                d,
                d,
                bw.scale,
            );
            copy_scaled_row::<S>(dv[j * dp..][..d].as_ptr(), dv_row.as_mut_ptr(), d, d, 1.0);
        }
    }
    let dq_rows = |i: usize| {
        // SAFETY: with one split the query rows of (b, h, g) belong to this task alone; with
        // several, slot `task` of the partial buffer does.
        if bw.splits == 1 {
            bw.dq.slice(plan.q_offset(b, h, g, i), d)
        } else {
            bw.dq.slice((task * nq + i) * d, d)
        }
    };
    untranspose_blocked(dqt, nq, d, dp, tq, bw.scale, dq_rows);
}

/// `Σ a[e]·b[e]` over `a` (`b` at least as long, padded to a multiple of [`LANES`] with zeros
/// past `a.len()`).
#[inline(always)]
unsafe fn dot_padded<S: Simd>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = S::zero();
    for e in (0..a.len()).step_by(LANES) {
        let x = if e + LANES <= a.len() {
            S::load(a.as_ptr().add(e))
        } else {
            S::load_partial(a.as_ptr().add(e), a.len() - e, 0.0)
        };
        acc = S::fmadd(x, S::load(b[e..e + LANES].as_ptr()), acc);
    }
    S::reduce_sum(acc)
}

/// The inverse of [`transpose_blocked`]: row `i` (first `d` of `dp` features, times `factor`)
/// of the `n` rows held column-wise in `cols` is written to `row(i)`.
fn untranspose_blocked<'a>(
    cols: &[f32],
    n: usize,
    d: usize,
    dp: usize,
    tq: usize,
    factor: f32,
    row: impl Fn(usize) -> &'a mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && dp.is_multiple_of(16)
        && tq.is_multiple_of(16)
    {
        // SAFETY: AVX-512F was detected just above; the block sizes are multiples of 16.
        unsafe { untranspose_blocked_avx512(cols, n, d, dp, tq, factor, row) };
        return;
    }
    for i in 0..n {
        let block = &cols[i / tq * dp * tq..];
        for (e, x) in row(i).iter_mut().enumerate() {
            *x = block[e * tq + i % tq] * factor;
        }
    }
}

/// [`untranspose_blocked`] in 16×16 register transposes.
///
/// # Safety
/// The CPU must support AVX-512F; `dp` and `tq` must be multiples of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn untranspose_blocked_avx512<'a>(
    cols: &[f32],
    n: usize,
    d: usize,
    dp: usize,
    tq: usize,
    factor: f32,
    row: impl Fn(usize) -> &'a mut [f32],
) {
    use crate::cpu::gemm::{lane_mask, transpose16};
    use std::arch::x86_64::*;
    let factor = _mm512_set1_ps(factor);
    for i0 in (0..n).step_by(16) {
        let (block, ii) = (&cols[i0 / tq * dp * tq..][..dp * tq], i0 % tq);
        let queries = (n - i0).min(16);
        for eb in (0..d).step_by(16) {
            let mut tile = [_mm512_setzero_ps(); 16];
            for (e, lanes) in tile.iter_mut().enumerate() {
                let src = &block[(eb + e) * tq + ii..][..16];
                *lanes = _mm512_mul_ps(_mm512_loadu_ps(src.as_ptr()), factor);
            }
            let dims = (d - eb).min(16);
            for (x, v) in transpose16(tile).iter().enumerate().take(queries) {
                let dst = &mut row(i0 + x)[eb..eb + dims];
                // SAFETY: the mask keeps the store inside `dst`.
                _mm512_mask_storeu_ps(dst.as_mut_ptr(), lane_mask(dims), *v);
            }
        }
    }
}

/// `Pᵀ = 2^(Sᵀ − lse)` on a tile of transposed scores (row: key, column: query; base-2 lse per
/// query column).
struct ProbabilitiesT {
    lse2: *const f32,
}

impl<S: Simd> Epilogue<S> for ProbabilitiesT {
    #[inline(always)]
    unsafe fn map(&self, _key: usize, query: usize, s: S::V) -> S::V {
        S::exp2(S::sub(s, S::load(self.lse2.add(query))))
    }
}

/// `dSᵀ = Pᵀ ⊙ (dPᵀ − D)` on a tile of transposed `dP` (`Pᵀ` rows of stride `ld_p`, `D` per
/// query column).
struct ScoreGradT {
    p: *const f32,
    ld_p: usize,
    d: *const f32,
}

impl<S: Simd> Epilogue<S> for ScoreGradT {
    #[inline(always)]
    unsafe fn map(&self, key: usize, query: usize, dp: S::V) -> S::V {
        let p = S::load(self.p.add(key * self.ld_p + query));
        S::mul(p, S::sub(dp, S::load(self.d.add(query))))
    }
}

/// Scratch of one backward task (the whole group's queries, and one key tile).
fn scratch_sizes(plan: &Plan) -> [usize; 14] {
    let (dp, nq, tq, tk) = (plan.dim_padded, plan.len_q, plan.tile_q, plan.tile_k);
    let nqp = nq.div_ceil(tq) * tq;
    [
        nq * dp,  // q rows
        nq * dp,  // dO rows
        dp * nqp, // scale·log2(e)·Qᵀ, blocked
        dp * nqp, // dOᵀ, blocked
        dp * nqp, // dQᵀ accumulator, blocked
        nqp,      // lse · log2 e (+inf past nq)
        nqp,      // D_i
        tk * dp,  // K rows
        dp * tk,  // Kᵀ
        tk * dp,  // V rows
        tk * dp,  // dK tile
        tk * dp,  // dV tile
        tk * tq,  // Sᵀ → Pᵀ
        tk * tq,  // dPᵀ → dSᵀ
    ]
}
