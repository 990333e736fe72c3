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

use super::forward::{gather_rows, gather_transposed};
use super::plan::{carve, with_scratch, Plan, TILE_K, TILE_Q};
use super::simd::{round_up, Isa, Portable, Simd, LANES};
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

/// Transposes `n` rows of `rows` (row length `dp`) into `cols` (`dp × ld`), zero past `n`.
fn transpose_into(rows: &[f32], n: usize, dp: usize, ld: usize, cols: &mut [f32]) {
    cols[..dp * ld].fill(0.0);
    for i in 0..n {
        for e in 0..dp {
            cols[e * ld + i] = rows[i * dp + e];
        }
    }
}

#[inline(always)]
unsafe fn task_body<S: Simd>(bw: &Backward, task: usize, buf: &mut [f32]) {
    let plan = &bw.plan;
    let (d, dp) = (plan.dims.head_dim, plan.dim_padded);
    let (b, h, g) = plan.problem(task / bw.splits);
    let split = task % bw.splits;
    let (nq, nqp) = (plan.len_q, round_up(plan.len_q));
    let key_tiles = plan.len_kv.div_ceil(TILE_K);
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
    gather_rows(plan, bw.q, Plan::q_offset, b, h, g, 0, nq, 1.0, qr);
    gather_rows(plan, bw.d_out, Plan::q_offset, b, h, g, 0, nq, 1.0, dor);
    transpose_into(qr, nq, dp, nqp, qt);
    for x in qt[..dp * nqp].iter_mut() {
        *x *= c;
    }
    transpose_into(dor, nq, dp, nqp, dot);
    dqt.fill(0.0);
    lse2.fill(f32::INFINITY);
    dd.fill(0.0);
    for i in 0..nq {
        lse2[i] = bw.lse[plan.lse_offset(b, h, g, i)] * LOG2_E;
        let o = &bw.out[plan.q_offset(b, h, g, i)..][..d];
        dd[i] = o.iter().zip(&dor[i * dp..]).map(|(x, y)| x * y).sum();
    }
    for tile in t0..t1 {
        let j0 = tile * TILE_K;
        let nk = (plan.len_kv - j0).min(TILE_K);
        gather_rows(plan, bw.k, Plan::kv_offset, b, h, g, j0, nk, 1.0, kr);
        gather_transposed(plan, bw.k, b, h, g, j0, nk, TILE_K, kt);
        gather_rows(plan, bw.v, Plan::kv_offset, b, h, g, j0, nk, 1.0, vr);
        dk.fill(0.0);
        dv.fill(0.0);
        for i0 in (0..nq).step_by(TILE_Q) {
            let ni = (nq - i0).min(TILE_Q);
            let nip = round_up(ni);
            // Sᵀ (keys × queries), already in log2 units; then Pᵀ = 2^(Sᵀ − lse2).
            S::gemm(
                nk,
                nip,
                dp,
                kr.as_ptr(),
                dp,
                qt.as_ptr().add(i0),
                nqp,
                pt.as_mut_ptr(),
                TILE_Q,
                false,
            );
            for j in 0..nk {
                let row = pt.as_mut_ptr().add(j * TILE_Q);
                for e in (0..nip).step_by(LANES) {
                    let s = S::sub(S::load(row.add(e)), S::load(lse2.as_ptr().add(i0 + e)));
                    S::store(row.add(e), S::exp2(s));
                }
            }
            S::gemm(
                nk,
                dp,
                ni,
                pt.as_ptr(),
                TILE_Q,
                dor.as_ptr().add(i0 * dp),
                dp,
                dv.as_mut_ptr(),
                dp,
                true,
            );
            // dPᵀ = V·dOᵀ, then dSᵀ = Pᵀ ⊙ (dPᵀ − D).
            S::gemm(
                nk,
                nip,
                dp,
                vr.as_ptr(),
                dp,
                dot.as_ptr().add(i0),
                nqp,
                dst.as_mut_ptr(),
                TILE_Q,
                false,
            );
            for j in 0..nk {
                let (p_row, ds_row) = (
                    pt.as_ptr().add(j * TILE_Q),
                    dst.as_mut_ptr().add(j * TILE_Q),
                );
                for e in (0..nip).step_by(LANES) {
                    let diff = S::sub(S::load(ds_row.add(e)), S::load(dd.as_ptr().add(i0 + e)));
                    S::store(ds_row.add(e), S::mul(S::load(p_row.add(e)), diff));
                }
            }
            S::gemm(
                nk,
                dp,
                ni,
                dst.as_ptr(),
                TILE_Q,
                qr.as_ptr().add(i0 * dp),
                dp,
                dk.as_mut_ptr(),
                dp,
                true,
            );
            S::gemm(
                dp,
                nip,
                nk,
                kt.as_ptr(),
                TILE_K,
                dst.as_ptr(),
                TILE_Q,
                dqt.as_mut_ptr().add(i0),
                nqp,
                true,
            );
        }
        for j in 0..nk {
            let off = plan.kv_offset(b, h, g, j0 + j);
            // SAFETY: key j0+j of this (b, h, g) lies in this task's key-tile range only.
            let (dk_row, dv_row) = (bw.dk.slice(off, d), bw.dv.slice(off, d));
            for e in 0..d {
                dk_row[e] = dk[j * dp + e] * bw.scale;
                dv_row[e] = dv[j * dp + e];
            }
        }
    }
    for i in 0..nq {
        // SAFETY: with one split the query rows of (b, h, g) belong to this task alone; with
        // several, slot `task` of the partial buffer does.
        let dq_row = if bw.splits == 1 {
            bw.dq.slice(plan.q_offset(b, h, g, i), d)
        } else {
            bw.dq.slice((task * nq + i) * d, d)
        };
        for (e, x) in dq_row.iter_mut().enumerate() {
            *x = dqt[e * nqp + i] * bw.scale;
        }
    }
}

/// Scratch of one backward task (the whole group's queries, and one key tile).
fn scratch_sizes(plan: &Plan) -> [usize; 14] {
    let (dp, nq, nqp) = (plan.dim_padded, plan.len_q, round_up(plan.len_q));
    [
        nq * dp,         // q rows
        nq * dp,         // dO rows
        dp * nqp,        // scale·log2(e)·Qᵀ
        dp * nqp,        // dOᵀ
        dp * nqp,        // dQᵀ accumulator
        nqp,             // lse · log2 e (+inf past nq)
        nqp,             // D_i
        TILE_K * dp,     // K rows
        dp * TILE_K,     // Kᵀ
        TILE_K * dp,     // V rows
        TILE_K * dp,     // dK tile
        TILE_K * dp,     // dV tile
        TILE_K * TILE_Q, // Sᵀ → Pᵀ
        TILE_K * TILE_Q, // dPᵀ → dSᵀ
    ]
}
