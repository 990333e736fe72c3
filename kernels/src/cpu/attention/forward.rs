//! Forward tiles: one task = one tile of `TILE_Q` queries of one (batch, head, group); it streams
//! over the group's key tiles with an online softmax (running max and sum per row, base-2
//! exponent with `scale·log2 e` folded into the gathered queries) and accumulates `P·V` in a
//! padded `TILE_Q × head_dim` tile. Tasks write disjoint rows of `out` and `lse`.

use super::plan::{carve, with_scratch, Plan, TILE_K, TILE_Q};
use super::simd::{exp2_shifted_sum, round_up, row_max, scale_row, Isa, Portable, Simd};
use crate::cpu::pool::SharedMut;
use std::f32::consts::{LN_2, LOG2_E};

/// What a forward task reads and writes. `v`/`out` are `None` when only the lse is wanted (pass 1
/// of the map statistics), which skips the `P·V` half of the work.
pub(super) struct Forward<'a> {
    pub plan: Plan,
    pub scale: f32,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: Option<&'a [f32]>,
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

/// Copies `nk` key rows transposed into `kt` (`dp × ldk`, zero in padded rows and columns).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn gather_transposed(
    plan: &Plan,
    src: &[f32],
    b: usize,
    h: usize,
    g: usize,
    j0: usize,
    nk: usize,
    ldk: usize,
    kt: &mut [f32],
) {
    let d = plan.dims.head_dim;
    kt[..plan.dim_padded * ldk].fill(0.0);
    for j in 0..nk {
        let row = &src[plan.kv_offset(b, h, g, j0 + j)..][..d];
        for (e, &x) in row.iter().enumerate() {
            kt[e * ldk + j] = x;
        }
    }
}

/// Copies `n` rows (tokens `i0..i0+n` of group `g`) into `dst` with row length `dim_padded`,
/// multiplied by `factor`, zero-padded. `offset` maps (b, h, g, i) to the row's offset in `src`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn gather_rows(
    plan: &Plan,
    src: &[f32],
    offset: impl Fn(&Plan, usize, usize, usize, usize) -> usize,
    b: usize,
    h: usize,
    g: usize,
    i0: usize,
    n: usize,
    factor: f32,
    dst: &mut [f32],
) {
    let (d, dp) = (plan.dims.head_dim, plan.dim_padded);
    for i in 0..n {
        let row = &src[offset(plan, b, h, g, i0 + i)..][..d];
        let out = &mut dst[i * dp..(i + 1) * dp];
        for (o, &x) in out.iter_mut().zip(row) {
            *o = x * factor;
        }
        out[d..].fill(0.0);
    }
}

#[inline(always)]
unsafe fn task_body<S: Simd>(f: &Forward, task: usize, buf: &mut [f32]) {
    let plan = &f.plan;
    let (d, dp) = (plan.dims.head_dim, plan.dim_padded);
    let q_tiles = plan.len_q.div_ceil(TILE_Q);
    let (b, h, g) = plan.problem(task / q_tiles);
    let i0 = (task % q_tiles) * TILE_Q;
    let nq = (plan.len_q - i0).min(TILE_Q);
    let [qs, kt, vs, s, o, m, l] = carve(buf, scratch_sizes(plan));
    gather_rows(
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
    for j0 in (0..plan.len_kv).step_by(TILE_K) {
        let nk = (plan.len_kv - j0).min(TILE_K);
        let nkp = round_up(nk);
        gather_transposed(plan, f.k, b, h, g, j0, nk, nkp, kt);
        S::gemm(
            nq,
            nkp,
            dp,
            qs.as_ptr(),
            dp,
            kt.as_ptr(),
            nkp,
            s.as_mut_ptr(),
            nkp,
            false,
        );
        for i in 0..nq {
            let row = &mut s[i * nkp..(i + 1) * nkp];
            row[nk..].fill(f32::NEG_INFINITY);
            let new_max = m[i].max(row_max::<S>(row));
            let row_sum = exp2_shifted_sum::<S>(row, new_max);
            let alpha = (m[i] - new_max).exp2();
            l[i] = l[i] * alpha + row_sum;
            m[i] = new_max;
            if alpha != 1.0 && f.v.is_some() {
                scale_row::<S>(&mut o[i * dp..(i + 1) * dp], alpha);
            }
        }
        if let Some(v) = f.v {
            gather_rows(plan, v, Plan::kv_offset, b, h, g, j0, nk, 1.0, vs);
            S::gemm(
                nq,
                dp,
                nk,
                s.as_ptr(),
                nkp,
                vs.as_ptr(),
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
            let inv = 1.0 / l[i];
            for (r, &x) in row.iter_mut().zip(&o[i * dp..]) {
                *r = x * inv;
            }
        }
    }
}

/// Scratch of one forward task: q tile, Kᵀ tile, V tile, scores, output accumulator, row max,
/// row sum.
fn scratch_sizes(plan: &Plan) -> [usize; 7] {
    let dp = plan.dim_padded;
    [
        TILE_Q * dp,
        dp * TILE_K,
        TILE_K * dp,
        TILE_Q * TILE_K,
        TILE_Q * dp,
        TILE_Q,
        TILE_Q,
    ]
}
