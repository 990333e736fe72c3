//! Where the forward and the map statistics read key tiles from. When a group has several query
//! tiles, its keys (transposed) and values are packed once per call in tile layout, so the query
//! tiles share one copy instead of each re-gathering strided rows. When it has one query tile
//! (small frames, temporal groups), packing would only add a copy and its page faults, so each
//! task gathers its tiles into its own scratch instead.

use super::plan::{gather_rows, gather_transposed, Plan, TILE_K, TILE_Q};
use super::simd::{Portable, Simd};
use crate::cpu::pool::{parallel_for, SharedMut};

pub(super) struct KeyTiles<'a> {
    plan: Plan,
    k: &'a [f32],
    v: Option<&'a [f32]>,
    /// Per (problem, key tile): `dim_padded × tile_k` `Kᵀ`, then (with values) `tile_k ×
    /// dim_padded` value rows; zero-padded. Empty when not packed.
    packed: Vec<f32>,
    /// Floats per packed tile (Kᵀ and V together).
    unit: usize,
    /// Key tiles per problem.
    pub tiles: usize,
}

impl<'a> KeyTiles<'a> {
    pub(super) fn new(plan: &Plan, k: &'a [f32], v: Option<&'a [f32]>) -> KeyTiles<'a> {
        let tiles = plan.len_kv.div_ceil(TILE_K);
        let block = plan.dim_padded * plan.tile_k;
        let unit = if v.is_some() { 2 * block } else { block };
        let mut packed = Vec::new();
        if plan.len_q > TILE_Q {
            let units = plan.problems() * tiles;
            packed = vec![0.0f32; units * unit];
            let out = SharedMut::new(&mut packed);
            parallel_for(units, |u| {
                let (b, h, g) = plan.problem(u / tiles);
                let j0 = (u % tiles) * TILE_K;
                let nk = (plan.len_kv - j0).min(TILE_K);
                // SAFETY: tile `u` of the buffer is written by this task only.
                let dst = unsafe { out.slice(u * unit, unit) };
                let (kt, vt) = dst.split_at_mut(block);
                gather_transposed(plan, k, b, h, g, j0, nk, plan.tile_k, kt);
                if let Some(v) = v {
                    // SAFETY: the portable instruction set runs on any CPU.
                    unsafe {
                        gather_rows::<Portable>(plan, v, Plan::kv_offset, b, h, g, j0, nk, 1.0, vt)
                    };
                }
            });
        }
        KeyTiles {
            plan: *plan,
            k,
            v,
            packed,
            unit,
            tiles,
        }
    }

    /// Floats of task scratch [`Self::tile`] needs (for the unpacked case).
    pub(super) fn scratch_len(plan: &Plan) -> usize {
        2 * plan.dim_padded * plan.tile_k
    }

    /// Key tile `tile` of problem `problem`: `Kᵀ` (`dim_padded × tile_k`, keys along the row) and
    /// value rows (`tile_k × dim_padded`; empty without values). `scratch` (of
    /// [`Self::scratch_len`] floats) holds them when they are not packed.
    ///
    /// # Safety
    /// `S` must be supported by the CPU.
    #[inline(always)]
    pub(super) unsafe fn tile<'s, S: Simd>(
        &'s self,
        problem: usize,
        tile: usize,
        scratch: &'s mut [f32],
    ) -> (&'s [f32], &'s [f32]) {
        let block = self.plan.dim_padded * self.plan.tile_k;
        if !self.packed.is_empty() {
            let u = &self.packed[(problem * self.tiles + tile) * self.unit..][..self.unit];
            return u.split_at(block);
        }
        let plan = &self.plan;
        let (b, h, g) = plan.problem(problem);
        let j0 = tile * TILE_K;
        let nk = (plan.len_kv - j0).min(TILE_K);
        let (kt, vt) = scratch.split_at_mut(block);
        gather_transposed(plan, self.k, b, h, g, j0, nk, plan.tile_k, kt);
        match self.v {
            Some(v) => {
                gather_rows::<S>(plan, v, Plan::kv_offset, b, h, g, j0, nk, 1.0, vt);
                (kt, vt)
            }
            None => (kt, &[]),
        }
    }
}
