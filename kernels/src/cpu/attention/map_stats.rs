//! Pass 2 of the attention-map statistics: with the row lse known (pass 1 is the forward without
//! `V`), recompute `p_ij` tile by tile and accumulate, per task, `Σ p` inside the spatial mask,
//! `Σ p` inside the temporal mask and `Σ p²`. One task = one query tile of one (batch, head); its
//! three sums go to its own slot and are reduced per head by the caller.

use super::pack::KeyTiles;
use super::plan::{carve, gather_rows, with_scratch, Plan, TILE_K, TILE_Q};
use super::simd::{load_scores, round_up, Isa, Portable, Simd, LANES};
use std::f32::consts::LOG2_E;

/// Per-task sums: `[Σ_{M_s} p, Σ_{M_t} p, Σ p²]`.
pub(super) type Sums = [f64; 3];

pub(super) struct MapStats<'a> {
    /// Plan of the full (unmasked) self-attention.
    pub plan: Plan,
    pub scale: f32,
    pub q: &'a [f32],
    pub keys: &'a KeyTiles<'a>,
    pub lse: &'a [f32],
}

impl MapStats<'_> {
    fn scratch_len(&self) -> usize {
        scratch_sizes(&self.plan).iter().sum()
    }

    pub(super) fn tasks(&self) -> usize {
        self.plan.problems() * self.plan.len_q.div_ceil(TILE_Q)
    }

    /// Head of a task's sums.
    pub(super) fn head_of(&self, task: usize) -> usize {
        self.plan.problem(task / self.plan.len_q.div_ceil(TILE_Q)).1
    }

    pub(super) fn run_task(&self, isa: Isa, task: usize) -> Sums {
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
unsafe fn task_avx512(ms: &MapStats, task: usize, buf: &mut [f32]) -> Sums {
    task_body::<super::simd::Avx512>(ms, task, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn task_avx2(ms: &MapStats, task: usize, buf: &mut [f32]) -> Sums {
    task_body::<super::simd::Avx2>(ms, task, buf)
}

#[inline(always)]
unsafe fn task_body<S: Simd>(ms: &MapStats, task: usize, buf: &mut [f32]) -> Sums {
    let plan = &ms.plan;
    let dp = plan.dim_padded;
    let tpf = plan.dims.tokens_per_frame;
    let q_tiles = plan.len_q.div_ceil(TILE_Q);
    let (b, h, g) = plan.problem(task / q_tiles);
    let i0 = (task % q_tiles) * TILE_Q;
    let nq = (plan.len_q - i0).min(TILE_Q);
    let c = ms.scale * LOG2_E;
    let [qs, s, lse2, kv_buf] = carve(buf, scratch_sizes(plan));
    let problem = task / q_tiles;
    gather_rows::<S>(plan, ms.q, Plan::q_offset, b, h, g, i0, nq, c, qs);
    for (i, l) in lse2[..nq].iter_mut().enumerate() {
        *l = ms.lse[plan.lse_offset(b, h, g, i0 + i)] * LOG2_E;
    }
    let mut sums: Sums = [0.0; 3];
    for tile in 0..ms.keys.tiles {
        let j0 = tile * TILE_K;
        let nk = (plan.len_kv - j0).min(TILE_K);
        let nkp = round_up(nk);
        let (kt, _) = ms.keys.tile::<S>(problem, tile, kv_buf);
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
            let (shift, mut sq) = (S::splat(lse2[i]), S::zero());
            for c in (0..nkp).step_by(LANES) {
                let p = S::exp2(S::sub(load_scores::<S>(row.as_ptr(), c, nk), shift));
                S::store(row.as_mut_ptr().add(c), p);
                sq = S::fmadd(p, p, sq);
            }
            sums[2] += S::reduce_sum(sq) as f64;
            // Same frame: one contiguous key range.
            let query = i0 + i;
            let frame_start = query / tpf * tpf;
            let (lo, hi) = (frame_start.max(j0), (frame_start + tpf).min(j0 + nk));
            if lo < hi {
                sums[0] += row[lo - j0..hi - j0].iter().map(|&p| p as f64).sum::<f64>();
            }
            // Same position, other frame: every tpf-th key from the first congruent one.
            let first = j0 + (query % tpf + tpf - j0 % tpf) % tpf;
            for key in (first..j0 + nk).step_by(tpf) {
                if key != query {
                    sums[1] += row[key - j0] as f64;
                }
            }
        }
    }
    sums
}

/// Scratch of one statistics task: q tile, probabilities, row lse, key tile.
fn scratch_sizes(plan: &Plan) -> [usize; 4] {
    [
        plan.tile_q * plan.dim_padded,
        plan.tile_q * plan.tile_k,
        plan.tile_q,
        KeyTiles::scratch_len(plan),
    ]
}
