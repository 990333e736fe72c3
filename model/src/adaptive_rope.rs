//! Sparse motion sampling and adaptive RoPE (Follow-Your-Motion stage 3): the temporal LoRA
//! trains on a few frames of the reference clip, and those frames keep their place on the full
//! clip's timeline through real-valued temporal RoPE positions.
//!
//! All frame counts are latent frames after patching (Wan's temporal patch is 1, so these are the
//! VAE latent frames). The positions feed the temporal part of the 3-D RoPE (see
//! `fym_kernels::cpu::rope::grid_positions`).

use rand::Rng;

use crate::error::{Error, Result};

fn check_counts(full_frames: usize, sampled: usize) -> Result<()> {
    if sampled == 0 {
        return Err(Error::Rope(
            "number of sampled frames must be at least 1".into(),
        ));
    }
    if sampled > full_frames {
        return Err(Error::Rope(format!(
            "cannot sample {sampled} frames from a clip of {full_frames} frames"
        )));
    }
    Ok(())
}

/// The paper's rule: with `F = full_frames` and `F_s = sampled`, sampled frame `i` gets temporal
/// position `p_i = F/2 + (F/F_s)·(i − F_s/2)`. The positions are evenly spaced `F/F_s` apart,
/// start at 0 and stay below `F`, so a few frames span the whole timeline as the full clip does.
pub fn adaptive_temporal_positions(full_frames: usize, sampled: usize) -> Result<Vec<f64>> {
    check_counts(full_frames, sampled)?;
    let f = full_frames as f64;
    let fs = sampled as f64;
    Ok((0..sampled)
        .map(|i| f / 2.0 + (f / fs) * (i as f64 - fs / 2.0))
        .collect())
}

/// The "no adaptive RoPE" baseline: the sampled frames are numbered 0, 1, …, F_s−1 as if they
/// were a short clip of consecutive frames.
pub fn baseline_temporal_positions(sampled: usize) -> Vec<f64> {
    (0..sampled).map(|i| i as f64).collect()
}

/// Each sampled frame at its own index in the full clip (an alternative that keeps the exact
/// place of irregularly spaced samples).
pub fn frame_index_positions(indices: &[usize]) -> Vec<f64> {
    indices.iter().map(|&i| i as f64).collect()
}

/// Which temporal positions the sampled frames get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemporalPositions {
    /// [`adaptive_temporal_positions`] (the paper).
    Adaptive,
    /// [`baseline_temporal_positions`] (ablation "without adaptive RoPE").
    Consecutive,
    /// [`frame_index_positions`].
    FrameIndex,
}

impl TemporalPositions {
    /// Positions for the frames `indices` (sorted) sampled from a clip of `full_frames`.
    pub fn positions(self, full_frames: usize, indices: &[usize]) -> Result<Vec<f64>> {
        check_counts(full_frames, indices.len())?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= full_frames) {
            return Err(Error::Rope(format!(
                "frame index {bad} is outside a clip of {full_frames} frames"
            )));
        }
        Ok(match self {
            TemporalPositions::Adaptive => adaptive_temporal_positions(full_frames, indices.len())?,
            TemporalPositions::Consecutive => baseline_temporal_positions(indices.len()),
            TemporalPositions::FrameIndex => frame_index_positions(indices),
        })
    }
}

/// How the sparse frames are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseSampling {
    /// Split `0..F` into `F_s` consecutive bins `[⌊i·F/F_s⌋, ⌊(i+1)·F/F_s⌋)` and draw one frame
    /// uniformly from each. Every sample covers the whole clip with roughly even gaps, which is
    /// what the evenly spaced adaptive positions assume, while still varying between steps.
    Stratified,
    /// Any `F_s`-subset of `0..F` with equal probability.
    Uniform,
}

/// Draws `sampled` distinct frame indices from `0..full_frames`, sorted, with the stratified rule
/// ([`SparseSampling::Stratified`]). The released code does not include its frame sampler, so
/// this rule is fym's choice.
pub fn sample_sparse_frames<R: Rng + ?Sized>(
    rng: &mut R,
    full_frames: usize,
    sampled: usize,
) -> Result<Vec<usize>> {
    sample_sparse_frames_with(rng, full_frames, sampled, SparseSampling::Stratified)
}

/// [`sample_sparse_frames`] with an explicit strategy.
pub fn sample_sparse_frames_with<R: Rng + ?Sized>(
    rng: &mut R,
    full_frames: usize,
    sampled: usize,
    strategy: SparseSampling,
) -> Result<Vec<usize>> {
    check_counts(full_frames, sampled)?;
    let out = match strategy {
        SparseSampling::Stratified => (0..sampled)
            .map(|i| {
                let lo = i * full_frames / sampled;
                let hi = (i + 1) * full_frames / sampled; // > lo because sampled ≤ full_frames
                rng.gen_range(lo..hi)
            })
            .collect(),
        SparseSampling::Uniform => {
            let mut v = rand::seq::index::sample(rng, full_frames, sampled).into_vec();
            v.sort_unstable();
            v
        }
    };
    Ok(out)
}
