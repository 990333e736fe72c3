//! Forward tiles: one task = one tile of `TILE_Q` queries of one (batch, head, group); it streams
//! over the group's key tiles with an online softmax (running max and sum per row, base-2
//! exponent with `scale·log2 e` folded into the gathered queries) and accumulates `P·V` in a
//! padded `TILE_Q × head_dim` tile. Key tiles come from [`KeyTiles`]. Tasks write
//! disjoint rows of `out` and `lse`.

use super::pack::KeyTiles;
use super::plan::{carve, gather_rows, with_scratch, Plan, TILE_K, TILE_Q};
use super::simd::{
    copy_scaled_row, exp2_shifted_sum, fits_one_block, online_softmax_step, round_up, row_max,
    scores_online_softmax, Isa, Portable, Simd, SoftmaxRows,
};
use crate::cpu::pool::SharedMut;
use std::f32::consts::{LN_2, LOG2_E};

/// What a forward task reads and writes. `out` is `None` when only the lse is wanted (pass 1 of
/// the map statistics, keys packed without values), which skips the `P·V` half of the work.
pub(super) struct Forward<'a> {
    pub plan: Plan,
    pub scale: f32,
    pub q: &'a [f32],
    pub keys: &'a KeyTiles<'a>,
    pub out: Option<SharedMut<f32>>,
    pub lse: SharedMut<f32>,
}

impl Forward<'_> {
    fn scratch_len(&self) -> usize {
        scratch_sizes(&self.plan).iter().sum()
    }

    pub(super) fn tasks(&self) -> usize {
        self.plan.problems() * self.plan.len_q.div_ceil(TILE_Q)
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
unsafe fn task_avx512(f: &Forward, task: usize, buf: &mut [f32]) {
    task_body::<super::simd::Avx512>(f, task, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn task_avx2(f: &Forward, task: usize, buf: &mut [f32]) {
    task_body::<super::simd::Avx2>(f, task, buf)
}

#[inline(always)]
unsafe fn task_body<S: Simd>(f: &Forward, task: usize, buf: &mut [f32]) {
    let plan = &f.plan;
    let (d, dp) = (plan.dims.head_dim, plan.dim_padded);
    let q_tiles = plan.len_q.div_ceil(TILE_Q);
    let (b, h, g) = plan.problem(task / q_tiles);
    let i0 = (task % q_tiles) * TILE_Q;
    let nq = (plan.len_q - i0).min(TILE_Q);
    let [qs, s, o, m, l, kv_buf] = carve(buf, scratch_sizes(plan));
    let problem = task / q_tiles;
    let with_values = f.out.is_some();
    gather_rows::<S>(
        plan,
        f.q,
        Plan::q_offset,
        b,
        h,
        g,
        i0,
        nq,
        f.scale * LOG2_E,
        qs,
    );
    o.fill(0.0);
    m.fill(f32::NEG_INFINITY);
    l.fill(0.0);
    for tile in 0..f.keys.tiles {
        let j0 = tile * TILE_K;
        let nk = (plan.len_kv - j0).min(TILE_K);
        let nkp = round_up(nk);
        let (kt, vt) = f.keys.tile::<S>(problem, tile, kv_buf);
        if fits_one_block::<S>(nk, nkp) {
            let o_ptr = if with_values {
                o.as_mut_ptr()
            } else {
                std::ptr::null_mut()
            };
            let rows = SoftmaxRows {
                m: &mut m[..nq],
                l: &mut l[..nq],
                o: o_ptr,
                ld_o: dp,
            };
            scores_online_softmax::<S>(
                nkp,
                dp,
                qs.as_ptr(),
                dp,
                kt.as_ptr(),
                plan.tile_k,
                s.as_mut_ptr(),
                nkp,
                rows,
            );
        } else {
            // A ragged last key tile: scores stored, padded columns masked as they are read.
            S::gemm(
                nq,
                nkp,
                dp,
                qs.as_ptr(),
                dp,
                kt.as_ptr(),
                plan.tile_k,
                s.as_mut_ptr(),
                nkp,
                false,
            );
            for i in 0..nq {
                let row = &mut s[i * nkp..(i + 1) * nkp];
                let new_max = m[i].max(row_max::<S>(row, nk));
                let row_sum = exp2_shifted_sum::<S>(row, nk, new_max);
                let out_row = with_values.then(|| &mut o[i * dp..(i + 1) * dp]);
                online_softmax_step::<S>(&mut m[i], &mut l[i], new_max, row_sum, out_row);
            }
        }
        if with_values {
            S::gemm(
                nq,
                dp,
                nk,
                s.as_ptr(),
                nkp,
                vt.as_ptr(),
                dp,
                o.as_mut_ptr(),
                dp,
                true,
            );
        }
    }
    for i in 0..nq {
        // SAFETY: query i of this (b, h, g) tile is owned by this task alone; lse and out
        // offsets of distinct (b, h, token) never overlap.
        *f.lse
            .slice(plan.lse_offset(b, h, g, i0 + i), 1)
            .as_mut_ptr() = (m[i] + l[i].log2()) * LN_2;
        if let Some(out) = f.out {
            let row = out.slice(plan.q_offset(b, h, g, i0 + i), d);
            copy_scaled_row::<S>(o[i * dp..].as_ptr(), row.as_mut_ptr(), d, d, 1.0 / l[i]);
        }
    }
}

/// Scratch of one forward task: q tile, scores, output accumulator, row max, row sum, key tile.
fn scratch_sizes(plan: &Plan) -> [usize; 6] {
    let dp = plan.dim_padded;
    let (tq, tk) = (plan.tile_q, plan.tile_k);
    [
        tq * dp,
        tq * tk,
        tq * dp,
        tq,
        tq,
        KeyTiles::scratch_len(plan),
    ]
}
