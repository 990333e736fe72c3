//! Motion fidelity between two videos from point tracks, after DMT (Yatim et al. 2024,
//! "Space-Time Diffusion Features for Zero-Shot Text-Driven Motion Transfer").
//!
//! DMT's score: with tracks `T` (reference) and `T̃` (generated) and frame-to-frame displacements
//! `v_k` of a track,
//!
//! ```text
//! corr(τ, τ̃) = 1/(F−1) Σ_k  v_k·ṽ_k / (|v_k| |ṽ_k|)
//! MF = ½ [ 1/|T̃| Σ_τ̃ max_τ corr(τ, τ̃)  +  1/|T| Σ_τ max_τ̃ corr(τ, τ̃) ]
//! ```
//!
//! The per-frame cosine is undefined for a static point, and with a point tracker that is exact on
//! a static background (unlike a learned tracker's jitter) most tracks of a typical clip are
//! static; a static video would then match a moving one wherever the background dominates. fym
//! makes two documented changes:
//!
//! 1. **Per-frame similarity with a static floor**: the cosine of the 3-vectors `(v_k, δ)` and
//!    `(ṽ_k, δ)`, with `δ` = [`STATIC_SPEED`] px/frame:
//!    `s_k = (v_k·ṽ_k + δ²) / (√(|v_k|²+δ²) √(|ṽ_k|²+δ²))`. Two moving points give the plain
//!    cosine (up to `δ²/|v|²`); two static points give 1; a static point against one moving at
//!    speed `u` gives about `δ/u` (→ 0). `corr` is the mean of `s_k` over frame pairs, in [−1, 1].
//! 2. **Only moving tracks are scored**: each track gets a weight
//!    `w = clamp((D − 0.5 px) / 1 px, 0, 1)` where `D` is its largest distance from its start;
//!    every track (static ones too) is a candidate match. The score is the weighted mean of the
//!    best matches over both directions pooled:
//!    `MF = (Σ_τ w_τ max_τ̃ corr + Σ_τ̃ w_τ̃ max_τ corr) / (Σ_τ w_τ + Σ_τ̃ w_τ̃)`,
//!    then clamped to [0, 1] (a best match below 0 means no track moves at all alike; such
//!    values are rare and carry no extra meaning). When neither video has a moving track the
//!    videos agree (no motion) and MF = 1.
//!
//! Only tracks followed through every frame (forward–backward consistent) are used; a video with
//! no such track counts as one static track.

use super::segment::{main_object, Background, BackgroundHint};
use super::tracker::{default_grid_spacing, track_grid, Track, TrackerConfig};
use super::MetricsError;
use crate::video::Video;

/// Speed (px/frame) below which a displacement counts as "static" in the per-frame similarity.
pub const STATIC_SPEED: f64 = 0.1;
/// A track's largest distance from its start below which it gets no weight (tracker noise).
const MOVING_FROM: f64 = 0.5;
/// The distance range over which the weight rises from 0 to 1.
const MOVING_RAMP: f64 = 1.0;

fn displacements(track: &Track) -> Vec<[f64; 2]> {
    track
        .positions
        .windows(2)
        .map(|p| [(p[1][0] - p[0][0]) as f64, (p[1][1] - p[0][1]) as f64])
        .collect()
}

/// DMT `corr` with the static floor: mean over frame pairs of the cosine of `(v_k, δ)` and
/// `(ṽ_k, δ)`. Tracks of different lengths are compared over the common prefix; a one-frame
/// track (no displacement) has similarity 1 with anything of the same length.
pub fn track_similarity(a: &Track, b: &Track) -> f64 {
    similarity_of(&displacements(a), &displacements(b))
}

fn similarity_of(da: &[[f64; 2]], db: &[[f64; 2]]) -> f64 {
    let n = da.len().min(db.len());
    if n == 0 {
        return 1.0;
    }
    let d2 = STATIC_SPEED * STATIC_SPEED;
    let (mut total, mut weight) = (0.0, 0.0);
    for (u, v) in da.iter().zip(db) {
        let (su, sv) = (u[0].hypot(u[1]), v[0].hypot(v[1]));
        let dot = u[0] * v[0] + u[1] * v[1] + d2;
        let cos = (dot / ((su * su + d2).sqrt() * (sv * sv + d2).sqrt())).clamp(-1.0, 1.0);
        let w = su.max(sv).max(STATIC_SPEED);
        total += w * cos;
        weight += w;
    }
    total / weight
}

/// Weight of a track in the score: how clearly it moves (0 for static, 1 from 1.5 px on).
pub fn motion_weight(track: &Track) -> f64 {
    let start = track.positions.first().copied().unwrap_or([0.0, 0.0]);
    let reach = track
        .positions
        .iter()
        .map(|p| ((p[0] - start[0]) as f64).hypot((p[1] - start[1]) as f64))
        .fold(0.0, f64::max);
    ((reach - MOVING_FROM) / MOVING_RAMP).clamp(0.0, 1.0)
}

/// Motion fidelity of two sets of tracks (see the module documentation for the formula).
/// Incomplete tracks are ignored; an empty set counts as one static track.
pub fn motion_fidelity_tracks(reference: &[Track], generated: &[Track]) -> f64 {
    let ones = |tracks: &[Track]| tracks.iter().map(|t| (t.clone(), 1.0)).collect::<Vec<_>>();
    motion_fidelity_weighted(&ones(reference), &ones(generated))
}

/// [`motion_fidelity_tracks`] where each track stands for `multiplicity` tracks that move alike
/// (its weight in the pooled mean is multiplied by it; as a candidate match it counts once).
pub fn motion_fidelity_weighted(reference: &[(Track, f64)], generated: &[(Track, f64)]) -> f64 {
    let keep = |tracks: &[(Track, f64)]| -> Vec<(Vec<[f64; 2]>, f64)> {
        let kept: Vec<_> = tracks
            .iter()
            .filter(|(t, _)| t.is_complete())
            .map(|(t, m)| (displacements(t), motion_weight(t) * m))
            .collect();
        if kept.is_empty() {
            let frames = tracks.first().map_or(1, |(t, _)| t.positions.len());
            vec![(vec![[0.0, 0.0]; frames.saturating_sub(1)], 0.0)]
        } else {
            kept
        }
    };
    let (da, db) = (keep(reference), keep(generated));
    let mut num = 0.0;
    let mut den = 0.0;
    for (tracks, others) in [(&da, &db), (&db, &da)] {
        for (t, w) in tracks.iter() {
            if *w == 0.0 {
                continue;
            }
            let best = others
                .iter()
                .map(|(o, _)| similarity_of(t, o))
                .fold(f64::NEG_INFINITY, f64::max);
            num += w * best;
            den += w;
        }
    }
    if den == 0.0 {
        1.0
    } else {
        (num / den).clamp(0.0, 1.0)
    }
}

/// Motion fidelity of two videos of the same size and length: grid tracks (spacing from
/// [`default_grid_spacing`]) of each, scored by [`motion_fidelity_tracks`].
pub fn motion_fidelity(reference: &Video, generated: &Video) -> Result<f64, MetricsError> {
    let same = reference.frames == generated.frames
        && reference.height == generated.height
        && reference.width == generated.width;
    if !same {
        return Err(MetricsError::Shape(format!(
            "motion_fidelity needs videos of one size: reference {}x{}x{} (frames x height x width), generated {}x{}x{}",
            reference.frames, reference.height, reference.width, generated.frames, generated.height, generated.width
        )));
    }
    if reference.frames < 2 {
        return Err(MetricsError::Shape(format!(
            "motion_fidelity needs at least 2 frames, got {}",
            reference.frames
        )));
    }
    let cfg = TrackerConfig::default();
    let spacing = default_grid_spacing(reference.height, reference.width);
    let tracks = |video: &Video| {
        let mut all: Vec<(Track, f64)> = track_grid(video, spacing, &cfg)
            .into_iter()
            .map(|t| (t, 1.0))
            .collect();
        all.extend(object_track(video, spacing));
        all
    };
    Ok(motion_fidelity_weighted(
        &tracks(reference),
        &tracks(generated),
    ))
}

/// Smallest mean largest-component fraction for the segmented object to count as one object.
const COHERENT_OBJECT: f32 = 0.8;

/// The main object's centroid path as one track standing for `area / spacing²` grid tracks, when
/// one coherent foreground object is found in every frame. A flat-coloured object has no
/// texture inside and its outline windows mix its motion with the background's, so the point
/// tracker cannot follow it; its silhouette can be followed instead.
pub fn object_track(video: &Video, spacing: usize) -> Option<(Track, f64)> {
    let background = Background::estimate(video, &BackgroundHint::Border);
    let mut positions = Vec::with_capacity(video.frames);
    let (mut area, mut coherence) = (0.0f64, 0.0f32);
    for f in 0..video.frames {
        let object = main_object(video, f, &background)?;
        positions.push(object.center);
        area += object.area as f64;
        coherence += object.component_fraction;
    }
    let frames = video.frames.max(1);
    if coherence / (frames as f32) < COHERENT_OBJECT {
        return None;
    }
    let multiplicity = (area / frames as f64 / (spacing * spacing) as f64).max(1.0);
    Some((
        Track {
            valid: vec![true; positions.len()],
            positions,
        },
        multiplicity,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(points: &[[f32; 2]]) -> Track {
        Track {
            positions: points.to_vec(),
            valid: vec![true; points.len()],
        }
    }

    fn line(start: [f32; 2], v: [f32; 2], frames: usize) -> Track {
        let p: Vec<_> = (0..frames)
            .map(|f| [start[0] + v[0] * f as f32, start[1] + v[1] * f as f32])
            .collect();
        track(&p)
    }

    #[test]
    fn similarity_matches_the_formula_on_hand_values() {
        let a = track(&[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]);
        let b = track(&[[5.0, 5.0], [7.0, 5.0], [7.0, 5.0]]);
        let d2 = STATIC_SPEED * STATIC_SPEED;
        let s1 = (2.0 + d2) / ((1.0 + d2).sqrt() * (4.0 + d2).sqrt());
        let s2 = d2 / ((1.0 + d2).sqrt() * d2.sqrt());
        // Frame weights: the faster of the two displacements, 2 then 1.
        assert!((track_similarity(&a, &b) - (2.0 * s1 + s2) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn identical_sets_score_one_and_reversed_motion_scores_low() {
        let moving = vec![
            line([10.0, 10.0], [1.0, 0.5], 8),
            line([20.0, 10.0], [1.0, 0.5], 8),
            line([5.0, 5.0], [0.0, 0.0], 8),
        ];
        assert!((motion_fidelity_tracks(&moving, &moving) - 1.0).abs() < 1e-9);
        let reversed = vec![
            line([17.0, 13.5], [-1.0, -0.5], 8),
            line([5.0, 5.0], [0.0, 0.0], 8),
        ];
        let score = motion_fidelity_tracks(&moving, &reversed);
        assert!(score < 0.15, "{score}");
    }

    #[test]
    fn static_against_moving_scores_near_zero_and_static_against_static_one() {
        let moving = vec![
            line([10.0, 10.0], [1.0, 0.0], 8),
            line([5.0, 5.0], [0.0, 0.0], 8),
        ];
        let still = vec![
            line([10.0, 10.0], [0.0, 0.0], 8),
            line([5.0, 5.0], [0.0, 0.0], 8),
        ];
        let s = motion_fidelity_tracks(&moving, &still);
        assert!(s < 0.15, "{s}");
        assert_eq!(motion_fidelity_tracks(&still, &still), 1.0);
    }

    #[test]
    fn mismatched_video_shapes_are_an_error() {
        let a = Video::new(4, 16, 16);
        let b = Video::new(4, 16, 8);
        let err = motion_fidelity(&a, &b).unwrap_err().to_string();
        assert!(err.contains("16x8") || err.contains("4x16x8"), "{err}");
    }
}
