//! Pyramidal Lucas–Kanade point tracker (Bouguet 2001) on grayscale frames.
//!
//! Each point is tracked frame to frame: at every pyramid level, coarse to fine, the window's
//! spatial gradient matrix `G = Σ [Ix² IxIy; IxIy Iy²]` (Scharr gradients of the previous frame,
//! bilinear samples) and the mismatch vector `b = Σ δI·[Ix, Iy]` give the update `η = G⁻¹ b`,
//! iterated until `|η| < epsilon`; the guess doubles into the next finer level. A forward–backward
//! check (track the result back to the previous frame) marks a point lost when it does not return
//! within `fb_threshold` pixels, or when its window no longer looks like the first frame's
//! (normalised cross-correlation below `min_correlation`: occlusion); a lost track stays lost.

use super::image::{Plane, Pyramid};
use crate::video::Video;

/// Settings of the Lucas–Kanade tracker.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Half size of the square window: 4 means 9×9.
    pub window_radius: usize,
    /// Pyramid levels including full resolution.
    pub levels: usize,
    /// Iterations per level.
    pub max_iterations: usize,
    /// Stop iterating when the update is shorter than this (pixels).
    pub epsilon: f32,
    /// Forward–backward distance (pixels) above which a point is marked lost.
    pub fb_threshold: f32,
    /// Smallest normalised cross-correlation between the point's window in the first frame and
    /// its tracked window: a window that changed more is being occluded, or dragged along by an
    /// occluding edge, and the point is marked lost (brightness or contrast changes alone pass).
    pub min_correlation: f32,
    /// Minimum eigenvalue of `G` divided by the window's pixel count: points below it have too
    /// little texture to be tracked (used when choosing grid points and to stop a singular solve).
    pub min_eigenvalue: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            window_radius: 4,
            levels: 3,
            max_iterations: 20,
            epsilon: 0.01,
            fb_threshold: 1.0,
            min_correlation: 0.9,
            min_eigenvalue: 1e-4,
        }
    }
}

/// One point's path: `positions[f] = [x, y]` in pixels (pixel centres at integers). After the
/// point is lost, `valid[f]` is false and the position repeats the last valid one.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    pub positions: Vec<[f32; 2]>,
    pub valid: Vec<bool>,
}

impl Track {
    /// True when the point was followed through every frame.
    pub fn is_complete(&self) -> bool {
        self.valid.iter().all(|&v| v)
    }
}

/// Smallest eigenvalue of a symmetric 2×2 matrix `[a b; b c]`.
fn min_eigenvalue(a: f32, b: f32, c: f32) -> f32 {
    0.5 * (a + c) - (0.25 * (a - c) * (a - c) + b * b).sqrt()
}

/// The window's gradient matrix at a (sub-pixel) point of one level: (Gxx, Gxy, Gyy).
fn gradient_matrix(gx: &Plane, gy: &Plane, x: f32, y: f32, r: isize) -> (f32, f32, f32) {
    let (mut a, mut b, mut c) = (0.0f32, 0.0f32, 0.0f32);
    for dy in -r..=r {
        for dx in -r..=r {
            let ix = gx.sample(x + dx as f32, y + dy as f32);
            let iy = gy.sample(x + dx as f32, y + dy as f32);
            a += ix * ix;
            b += ix * iy;
            c += iy * iy;
        }
    }
    (a, b, c)
}

/// Texture score of a point in a frame: min eigenvalue of `G` per window pixel.
pub fn corner_score(plane: &Plane, x: f32, y: f32, window_radius: usize) -> f32 {
    let (gx, gy) = plane.gradients();
    let r = window_radius as isize;
    let (a, b, c) = gradient_matrix(&gx, &gy, x, y, r);
    min_eigenvalue(a, b, c) / ((2 * r + 1) * (2 * r + 1)) as f32
}

/// Where `point` of `prev` lies in `next`, or `None` when the solve is singular or leaves the image.
pub fn lk_step(
    prev: &Pyramid,
    next: &Pyramid,
    point: [f32; 2],
    cfg: &TrackerConfig,
) -> Option<[f32; 2]> {
    let r = cfg.window_radius as isize;
    let area = ((2 * r + 1) * (2 * r + 1)) as f32;
    let levels = prev.levels.len().min(next.levels.len());
    let mut guess = [0.0f32; 2];
    for level in (0..levels).rev() {
        let scale = (1u32 << level) as f32;
        let (px, py) = (point[0] / scale, point[1] / scale);
        let lp = &prev.levels[level];
        let ln = &next.levels[level];
        let (a, b, c) = gradient_matrix(&lp.gx, &lp.gy, px, py, r);
        let det = a * c - b * b;
        if min_eigenvalue(a, b, c) / area < cfg.min_eigenvalue * 1e-2 || det <= 0.0 {
            return None;
        }
        // Both windows are compared with their means removed, so a global brightness change
        // between frames (flicker, exposure) does not bias the solve.
        let mut template = Vec::with_capacity(((2 * r + 1) * (2 * r + 1)) as usize);
        for dy in -r..=r {
            for dx in -r..=r {
                let (sx, sy) = (px + dx as f32, py + dy as f32);
                template.push((
                    lp.image.sample(sx, sy),
                    lp.gx.sample(sx, sy),
                    lp.gy.sample(sx, sy),
                ));
            }
        }
        let template_mean = template.iter().map(|t| t.0).sum::<f32>() / area;
        let mut moved = vec![0.0f32; template.len()];
        let mut nu = [0.0f32; 2];
        for _ in 0..cfg.max_iterations {
            let mut k = 0;
            for dy in -r..=r {
                for dx in -r..=r {
                    let (sx, sy) = (
                        px + dx as f32 + guess[0] + nu[0],
                        py + dy as f32 + guess[1] + nu[1],
                    );
                    moved[k] = ln.image.sample(sx, sy);
                    k += 1;
                }
            }
            let moved_mean = moved.iter().sum::<f32>() / area;
            let (mut bx, mut by) = (0.0f32, 0.0f32);
            for (t, m) in template.iter().zip(&moved) {
                let diff = (t.0 - template_mean) - (m - moved_mean);
                bx += diff * t.1;
                by += diff * t.2;
            }
            let eta = [(c * bx - b * by) / det, (a * by - b * bx) / det];
            nu[0] += eta[0];
            nu[1] += eta[1];
            if eta[0] * eta[0] + eta[1] * eta[1] < cfg.epsilon * cfg.epsilon {
                break;
            }
        }
        guess = [guess[0] + nu[0], guess[1] + nu[1]];
        if level > 0 {
            guess = [2.0 * guess[0], 2.0 * guess[1]];
        }
    }
    let out = [point[0] + guess[0], point[1] + guess[1]];
    let inside = |v: f32, n: usize| v.is_finite() && v >= -0.5 && v <= n as f32 - 0.5;
    let base = &next.levels[0].image;
    (inside(out[0], base.width) && inside(out[1], base.height)).then_some(out)
}

/// Normalised cross-correlation between the window around `p` in `a` and around `q` in `b`
/// (full resolution, bilinear): 1 for the same pattern under any brightness and contrast change;
/// 0 when either window is flat.
pub fn window_correlation(
    a: &Pyramid,
    b: &Pyramid,
    p: [f32; 2],
    q: [f32; 2],
    window_radius: usize,
) -> f32 {
    let r = window_radius as isize;
    let (ia, ib) = (&a.levels[0].image, &b.levels[0].image);
    let mut pairs = Vec::with_capacity(((2 * r + 1) * (2 * r + 1)) as usize);
    for dy in -r..=r {
        for dx in -r..=r {
            let (dx, dy) = (dx as f32, dy as f32);
            pairs.push((
                ia.sample(p[0] + dx, p[1] + dy) as f64,
                ib.sample(q[0] + dx, q[1] + dy) as f64,
            ));
        }
    }
    let n = pairs.len() as f64;
    let (ma, mb) = (
        pairs.iter().map(|v| v.0).sum::<f64>() / n,
        pairs.iter().map(|v| v.1).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (u, v) in pairs {
        sab += (u - ma) * (v - mb);
        saa += (u - ma) * (u - ma);
        sbb += (v - mb) * (v - mb);
    }
    if saa <= 1e-12 || sbb <= 1e-12 {
        0.0
    } else {
        (sab / (saa * sbb).sqrt()) as f32
    }
}

/// One frame-to-frame step with the forward–backward check; `None` when lost.
pub fn checked_step(
    prev: &Pyramid,
    next: &Pyramid,
    p: [f32; 2],
    cfg: &TrackerConfig,
) -> Option<[f32; 2]> {
    let q = lk_step(prev, next, p, cfg)?;
    let back = lk_step(next, prev, q, cfg)?;
    ((back[0] - p[0]).hypot(back[1] - p[1]) <= cfg.fb_threshold).then_some(q)
}

/// The pyramids of every frame of a video.
pub fn video_pyramids(video: &Video, cfg: &TrackerConfig) -> Vec<Pyramid> {
    let min_side = 2 * cfg.window_radius + 1;
    (0..video.frames)
        .map(|f| Pyramid::new(Plane::luminance(video, f), cfg.levels, min_side))
        .collect()
}

/// Tracks the given points (positions in frame 0) through the whole video.
pub fn track_points(video: &Video, points: &[[f32; 2]], cfg: &TrackerConfig) -> Vec<Track> {
    let pyramids = video_pyramids(video, cfg);
    track_points_in(&pyramids, points, cfg)
}

/// [`track_points`] on pyramids already built.
pub fn track_points_in(
    pyramids: &[Pyramid],
    points: &[[f32; 2]],
    cfg: &TrackerConfig,
) -> Vec<Track> {
    points
        .iter()
        .map(|&start| {
            let mut positions = Vec::with_capacity(pyramids.len());
            let mut valid = Vec::with_capacity(pyramids.len());
            positions.push(start);
            valid.push(!pyramids.is_empty());
            let mut alive = true;
            let mut p = start;
            for pair in pyramids.windows(2) {
                if alive {
                    // The window is compared with the first frame's: an occluding edge drags a
                    // point slowly, each step looking fine, but its window drifts away from the start.
                    match checked_step(&pair[0], &pair[1], p, cfg) {
                        Some(q)
                            if window_correlation(
                                &pyramids[0],
                                &pair[1],
                                start,
                                q,
                                cfg.window_radius,
                            ) >= cfg.min_correlation =>
                        {
                            p = q
                        }
                        _ => alive = false,
                    }
                }
                positions.push(p);
                valid.push(alive);
            }
            Track { positions, valid }
        })
        .collect()
}

/// Points of a regular grid (every `spacing` pixels, offset by half a spacing) of frame 0 that
/// have enough texture to track (see [`TrackerConfig::min_eigenvalue`]).
pub fn grid_points(video: &Video, spacing: usize, cfg: &TrackerConfig) -> Vec<[f32; 2]> {
    if video.frames == 0 || spacing == 0 {
        return Vec::new();
    }
    let plane = Plane::luminance(video, 0);
    let (gx, gy) = plane.gradients();
    let r = cfg.window_radius as isize;
    let area = ((2 * r + 1) * (2 * r + 1)) as f32;
    let mut points = Vec::new();
    let mut y = spacing / 2;
    while y < video.height {
        let mut x = spacing / 2;
        while x < video.width {
            let (a, b, c) = gradient_matrix(&gx, &gy, x as f32, y as f32, r);
            if min_eigenvalue(a, b, c) / area >= cfg.min_eigenvalue {
                points.push([x as f32, y as f32]);
            }
            x += spacing;
        }
        y += spacing;
    }
    points
}

/// Tracks a textured grid of frame-0 points (see [`grid_points`]) through the video.
pub fn track_grid(video: &Video, spacing: usize, cfg: &TrackerConfig) -> Vec<Track> {
    let points = grid_points(video, spacing, cfg);
    track_points(video, &points, cfg)
}

/// Grid spacing used by the metrics for a frame size: 4 px, coarser for large frames so that about
/// 48 points span the longer side.
pub fn default_grid_spacing(height: usize, width: usize) -> usize {
    (height.max(width) / 48).max(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Smooth texture moved by a sub-pixel translation per frame.
    fn translating(frames: usize, v: [f32; 2]) -> Video {
        let (h, w) = (64, 64);
        let mut video = Video::new(frames, h, w);
        for f in 0..frames {
            for y in 0..h {
                for x in 0..w {
                    let (u, t) = (x as f32 - v[0] * f as f32, y as f32 - v[1] * f as f32);
                    let g = 0.5
                        + 0.25 * (0.45 * u).sin() * (0.3 * t).cos()
                        + 0.2 * (0.21 * (u + t)).sin();
                    video.set_pixel(f, y, x, [g, g, g]);
                }
            }
        }
        video
    }

    #[test]
    fn recovers_a_subpixel_translation() {
        let v = [1.3, -0.7];
        let video = translating(5, v);
        let tracks = track_points(
            &video,
            &[[24.0, 24.0], [20.0, 26.0]],
            &TrackerConfig::default(),
        );
        for t in &tracks {
            assert!(t.is_complete());
            for (f, p) in t.positions.iter().enumerate() {
                let want = [
                    t.positions[0][0] + v[0] * f as f32,
                    t.positions[0][1] + v[1] * f as f32,
                ];
                let err = (p[0] - want[0]).hypot(p[1] - want[1]);
                assert!(err < 0.05, "frame {f}: {p:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn recovers_a_large_motion_through_the_pyramid() {
        // 6 px per frame is beyond a 9×9 window at full resolution.
        let v = [6.0, 2.0];
        let video = translating(3, v);
        let tracks = track_points(&video, &[[26.0, 26.0]], &TrackerConfig::default());
        let p = tracks[0].positions[2];
        assert!(tracks[0].is_complete(), "{:?}", tracks[0]);
        assert!(
            (p[0] - 38.0).abs() < 0.1 && (p[1] - 30.0).abs() < 0.1,
            "{p:?}"
        );
    }

    #[test]
    fn flat_regions_yield_no_grid_points_and_lost_tracks() {
        let mut video = Video::new(3, 32, 32);
        video.data.iter_mut().for_each(|v| *v = 0.5);
        let cfg = TrackerConfig::default();
        assert!(grid_points(&video, 4, &cfg).is_empty());
        let t = track_points(&video, &[[10.0, 10.0]], &cfg);
        assert!(!t[0].is_complete());
        assert!(t[0].valid[0] && !t[0].valid[1]);
    }
}
