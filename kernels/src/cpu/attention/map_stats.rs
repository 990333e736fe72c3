//! Pass 2 of the attention-map statistics: with the row lse known (pass 1 is the forward without
//! `V`), recompute `p_ij` tile by tile and accumulate, per task, `Σ p` inside the spatial mask,
//! `Σ p` inside the temporal mask and `Σ p²`. One task = one query tile of one (batch, head); its
//! three sums go to its own slot and are reduced per head by the caller.

use super::forward::{gather_rows, gather_transposed};
use super::plan::{carve, with_scratch, Plan, TILE_K, TILE_Q};
use super::simd::{round_up, Isa, Portable, Simd, LANES};
use std::f32::consts::LOG2_E;

/// Per-task sums: `[Σ_{M_s} p, Σ_{M_t} p, Σ p²]`.
pub(super) type Sums = [f64; 3];

pub(super) struct MapStats<'a> {
    /// Plan of the full (unmasked) self-attention.
    pub plan: Plan,
    pub scale: f32,
    pub q: &'a [f32],
    pub k: &'a [f32],
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
    let [qs, kt, s, lse2] = carve(buf, scratch_sizes(plan));
    gather_rows(plan, ms.q, Plan::q_offset, b, h, g, i0, nq, c, qs);
    for (i, l) in lse2[..nq].iter_mut().enumerate() {
        *l = ms.lse[plan.lse_offset(b, h, g, i0 + i)] * LOG2_E;
    }
    let mut sums: Sums = [0.0; 3];
    for j0 in (0..plan.len_kv).step_by(TILE_K) {
        let nk = (plan.len_kv - j0).min(TILE_K);
        let nkp = round_up(nk);
        gather_transposed(plan, ms.k, b, h, g, j0, nk, nkp, kt);
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
            let (shift, mut sq) = (S::splat(lse2[i]), S::zero());
            for chunk in row.chunks_exact_mut(LANES) {
                let p = S::exp2(S::sub(S::load(chunk.as_ptr()), shift));
                S::store(chunk.as_mut_ptr(), p);
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

/// Scratch of one statistics task: q tile, Kᵀ tile, probabilities, row lse.
fn scratch_sizes(plan: &Plan) -> [usize; 4] {
    let dp = plan.dim_padded;
    [TILE_Q * dp, dp * TILE_K, TILE_Q * TILE_K, TILE_Q]
}
