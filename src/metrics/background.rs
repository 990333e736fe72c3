//! Background texture of a frame (plain, gradient, stripes, checker, noise) from neighbour statistics
//! of the pixels outside the objects.
//!
//! Over pairs of neighbouring background pixels in four directions (→, ↓, ↘, ↙) with RGB
//! distance `d`:
//! - `spread` σ = RMS RGB distance of the background pixels to their mean colour;
//! - per direction, mean `m = E[d]` and `q = E[d²]`;
//! - `roughness` = max m / σ; `concentration` = m²/q along that direction (1 when every pair
//!   differs alike, as in a smooth ramp; ≈ 2/π for Gaussian noise; ≈ the fraction of pairs that
//!   cross an edge for a two-colour pattern);
//! - `anisotropy` = min m / max m over the directions (0 when one direction never changes).
//!
//! Rules, in order: σ < 0.03 → plain; concentration ≥ 0.8 and roughness < 0.35 → gradient;
//! concentration ≤ 0.45 → stripes if anisotropy < 0.25, else checker; otherwise noise.

use super::segment::Mask;
use crate::video::Video;
use crate::world::Texture;

/// Neighbour statistics of a frame's background (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackgroundFeatures {
    pub spread: f32,
    pub roughness: f32,
    pub concentration: f32,
    pub anisotropy: f32,
}

const SOLID_SPREAD: f32 = 0.03;
const GRADIENT_CONCENTRATION: f32 = 0.8;
const GRADIENT_ROUGHNESS: f32 = 0.35;
const PATTERN_CONCENTRATION: f32 = 0.45;
const STRIPES_ANISOTROPY: f32 = 0.25;

fn dist(a: [f32; 3], b: [f32; 3]) -> f64 {
    (((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)) as f64).sqrt()
}

/// Features of frame `f` over the pixels not in `objects` (the objects are grown by one pixel so
/// their soft edges do not count); `None` when fewer than 8 background pixels remain.
pub fn background_features(video: &Video, f: usize, objects: &Mask) -> Option<BackgroundFeatures> {
    let (h, w) = (video.height, video.width);
    let mut bg = vec![true; h * w];
    for (y, x) in objects.pixels() {
        for ny in y.saturating_sub(1)..(y + 2).min(h) {
            for nx in x.saturating_sub(1)..(x + 2).min(w) {
                bg[ny * w + nx] = false;
            }
        }
    }
    let count = bg.iter().filter(|&&b| b).count();
    if count < 8 {
        return None;
    }
    let mut mean = [0.0f64; 3];
    for (i, _) in bg.iter().enumerate().filter(|(_, &b)| b) {
        let p = video.pixel(f, i / w, i % w);
        for c in 0..3 {
            mean[c] += p[c] as f64 / count as f64;
        }
    }
    let mean = [mean[0] as f32, mean[1] as f32, mean[2] as f32];
    let spread = (bg
        .iter()
        .enumerate()
        .filter(|(_, &b)| b)
        .map(|(i, _)| dist(video.pixel(f, i / w, i % w), mean).powi(2))
        .sum::<f64>()
        / count as f64)
        .sqrt();
    let mut stats = [(0.0f64, 0.0f64, 0usize); 4];
    let steps: [(isize, isize); 4] = [(1, 0), (0, 1), (1, 1), (-1, 1)];
    for y in 0..h {
        for x in 0..w {
            if !bg[y * w + x] {
                continue;
            }
            for (k, (dx, dy)) in steps.iter().enumerate() {
                let (nx, ny) = (x as isize + dx, y as isize + dy);
                if nx < 0
                    || ny < 0
                    || nx >= w as isize
                    || ny >= h as isize
                    || !bg[ny as usize * w + nx as usize]
                {
                    continue;
                }
                let d = dist(
                    video.pixel(f, y, x),
                    video.pixel(f, ny as usize, nx as usize),
                );
                stats[k].0 += d;
                stats[k].1 += d * d;
                stats[k].2 += 1;
            }
        }
    }
    let means: Vec<(f64, f64)> = stats
        .iter()
        .filter(|s| s.2 > 0)
        .map(|s| (s.0 / s.2 as f64, s.1 / s.2 as f64))
        .collect();
    if means.is_empty() {
        return None;
    }
    let (max_m, max_q) = means
        .iter()
        .copied()
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
    let min_m = means.iter().map(|m| m.0).fold(f64::INFINITY, f64::min);
    Some(BackgroundFeatures {
        spread: spread as f32,
        roughness: if spread > 0.0 {
            (max_m / spread) as f32
        } else {
            0.0
        },
        concentration: if max_q > 0.0 {
            (max_m * max_m / max_q) as f32
        } else {
            1.0
        },
        anisotropy: if max_m > 0.0 {
            (min_m / max_m) as f32
        } else {
            1.0
        },
    })
}

/// The background texture the features point to.
pub fn classify_background(features: &BackgroundFeatures) -> Texture {
    if features.spread < SOLID_SPREAD {
        Texture::Plain
    } else if features.concentration >= GRADIENT_CONCENTRATION
        && features.roughness < GRADIENT_ROUGHNESS
    {
        Texture::Gradient
    } else if features.concentration <= PATTERN_CONCENTRATION {
        if features.anisotropy < STRIPES_ANISOTROPY {
            Texture::Stripes
        } else {
            Texture::Checker
        }
    } else {
        Texture::Noise
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn frame(size: usize, color: impl Fn(usize, usize) -> [f32; 3]) -> Video {
        let mut v = Video::new(1, size, size);
        for y in 0..size {
            for x in 0..size {
                v.set_pixel(0, y, x, color(y, x));
            }
        }
        v
    }

    #[test]
    fn classifies_each_kind_at_two_sizes_with_an_object_cut_out() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for size in [64usize, 24] {
            let mut object = Mask::new(size, size);
            for y in size / 3..size / 2 {
                for x in size / 3..size / 2 {
                    object.data[y * size + x] = true;
                }
            }
            let s = size as f32;
            let noise: Vec<f32> = (0..size * size).map(|_| rng.gen_range(0.2..0.8)).collect();
            let cases: Vec<(Texture, Video)> = vec![
                (Texture::Plain, frame(size, |_, _| [0.2, 0.5, 0.3])),
                (
                    Texture::Gradient,
                    frame(size, |y, _| {
                        [0.1 + 0.8 * y as f32 / s, 0.3, 0.9 - 0.6 * y as f32 / s]
                    }),
                ),
                (
                    Texture::Gradient,
                    frame(size, |y, x| [0.2 + 0.3 * (x + y) as f32 / s, 0.4, 0.5]),
                ),
                (
                    Texture::Stripes,
                    frame(
                        size,
                        |y, _| if (y / 4) % 2 == 0 { [0.9; 3] } else { [0.3; 3] },
                    ),
                ),
                (
                    Texture::Stripes,
                    frame(size, |_, x| {
                        if (x / 3) % 2 == 0 {
                            [0.8, 0.2, 0.2]
                        } else {
                            [0.2, 0.2, 0.8]
                        }
                    }),
                ),
                (
                    Texture::Checker,
                    frame(size, |y, x| {
                        if (y / 4 + x / 4) % 2 == 0 {
                            [0.9; 3]
                        } else {
                            [0.2; 3]
                        }
                    }),
                ),
                (Texture::Noise, frame(size, |y, x| [noise[y * size + x]; 3])),
            ];
            for (want, video) in cases {
                let f = background_features(&video, 0, &object).unwrap();
                assert_eq!(classify_background(&f), want, "size {size}: {f:?}");
            }
        }
    }
}
