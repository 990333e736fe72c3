//! Temporal consistency: how alike consecutive frames are, and how well optical flow explains
//! each frame from the previous one.

use super::image::Plane;
use super::tracker::{lk_step, video_pyramids, TrackerConfig};
use crate::video::Video;

/// Block size of the thumbnails compared by [`temporal_consistency`].
const THUMB_BLOCK: usize = 4;

/// Frame `f` averaged over `block`×`block` pixel blocks (partial blocks at the edges average the
/// pixels they have): `ceil(H/block)·ceil(W/block)·3` values.
fn thumbnail(video: &Video, f: usize, block: usize) -> Vec<f32> {
    let (th, tw) = (video.height.div_ceil(block), video.width.div_ceil(block));
    let mut sums = vec![0.0f32; th * tw * 3];
    let mut counts = vec![0usize; th * tw];
    for y in 0..video.height {
        for x in 0..video.width {
            let t = (y / block) * tw + x / block;
            let p = video.pixel(f, y, x);
            (0..3).for_each(|c| sums[t * 3 + c] += p[c]);
            counts[t] += 1;
        }
    }
    sums.iter()
        .enumerate()
        .map(|(i, s)| s / counts[i / 3] as f32)
        .collect()
}

/// Temporal consistency in [0, 1]: mean over consecutive frame pairs of
/// `1 − mean |A − B|`, where A and B are the frames averaged over 4×4 blocks (fym's stand-in for
/// the CLIP similarity of consecutive frames: insensitive to sub-block motion, sensitive to
/// flicker and content changes). 1 for a video of fewer than two frames.
pub fn temporal_consistency(video: &Video) -> f32 {
    if video.frames < 2 {
        return 1.0;
    }
    let thumbs: Vec<Vec<f32>> = (0..video.frames)
        .map(|f| thumbnail(video, f, THUMB_BLOCK))
        .collect();
    let total: f32 = thumbs
        .windows(2)
        .map(|p| {
            1.0 - p[0]
                .iter()
                .zip(&p[1])
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / p[0].len() as f32
        })
        .sum();
    total / (video.frames - 1) as f32
}

fn channel(video: &Video, f: usize, c: usize) -> Plane {
    let data = video.frame(f).chunks_exact(3).map(|p| p[c]).collect();
    Plane {
        width: video.width,
        height: video.height,
        data,
    }
}

/// Flow-warp error in intensity units ([0, 1], lower is better): for each consecutive pair, the
/// Lucas–Kanade flow of sampled pixels p of frame t (every `max(1, max(H, W)/64)` pixels) gives
/// q in frame t+1, and the error is the mean over channels of `|I_t(p) − I_{t+1}(q)|` (bilinear).
/// Pixels whose flow fails the forward–backward check (occlusions) are left out; pixels too flat
/// to track use zero flow. Mean over all pairs and pixels; 0 for fewer than two frames.
pub fn flow_warp_error(video: &Video) -> f32 {
    if video.frames < 2 {
        return 0.0;
    }
    let cfg = TrackerConfig::default();
    let pyramids = video_pyramids(video, &cfg);
    let stride = (video.height.max(video.width) / 64).max(1);
    let (mut total, mut count) = (0.0f64, 0usize);
    for t in 0..video.frames - 1 {
        let now: Vec<Plane> = (0..3).map(|c| channel(video, t, c)).collect();
        let next: Vec<Plane> = (0..3).map(|c| channel(video, t + 1, c)).collect();
        for y in (0..video.height).step_by(stride) {
            for x in (0..video.width).step_by(stride) {
                let p = [x as f32, y as f32];
                let q = match lk_step(&pyramids[t], &pyramids[t + 1], p, &cfg) {
                    None => p,
                    Some(q) => match lk_step(&pyramids[t + 1], &pyramids[t], q, &cfg) {
                        Some(b) if (b[0] - p[0]).hypot(b[1] - p[1]) <= cfg.fb_threshold => q,
                        _ => continue,
                    },
                };
                let err: f32 = (0..3)
                    .map(|c| (now[c].sample(p[0], p[1]) - next[c].sample(q[0], q[1])).abs())
                    .sum::<f32>()
                    / 3.0;
                total += err as f64;
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        (total / count as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moving_texture(frames: usize, flicker: bool) -> Video {
        let mut v = Video::new(frames, 32, 32);
        for f in 0..frames {
            let gain = if flicker && f % 2 == 1 { 0.5 } else { 1.0 };
            for y in 0..32 {
                for x in 0..32 {
                    let u = x as f32 - 0.8 * f as f32;
                    let g = 0.5 + 0.3 * (0.5 * u).sin() * (0.4 * y as f32).cos();
                    v.set_pixel(f, y, x, [g * gain, g * gain, 0.5 * gain]);
                }
            }
        }
        v
    }

    #[test]
    fn consistency_is_one_for_a_still_video_and_drops_with_flicker() {
        let mut still = Video::new(3, 8, 8);
        still
            .data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i % 7) as f32 / 7.0);
        let n = 8 * 8 * 3;
        let first = still.frame(0).to_vec();
        still.data[n..2 * n].copy_from_slice(&first);
        still.data[2 * n..].copy_from_slice(&first);
        assert_eq!(temporal_consistency(&still), 1.0);
        let smooth = temporal_consistency(&moving_texture(6, false));
        let flicker = temporal_consistency(&moving_texture(6, true));
        assert!(smooth > 0.95 && flicker < 0.8, "{smooth} {flicker}");
    }

    #[test]
    fn hand_computed_consistency_of_two_flat_frames() {
        let mut v = Video::new(2, 4, 4);
        v.frame_mut(1).iter_mut().for_each(|p| *p = 0.25);
        assert!((temporal_consistency(&v) - 0.75).abs() < 1e-6);
    }

    #[test]
    fn warp_error_is_small_for_smooth_motion_and_large_for_flicker() {
        let smooth = flow_warp_error(&moving_texture(4, false));
        let flicker = flow_warp_error(&moving_texture(4, true));
        assert!(smooth < 0.01, "{smooth}");
        assert!(flicker > 0.1, "{flicker}");
    }
}
