//! Palettes for GIF: exact when a video has at most 256 colours, otherwise median cut refined by
//! a few k-means passes, shared by all frames so colours do not flicker from frame to frame.

use std::collections::HashMap;

/// Most colours a GIF palette holds.
pub(crate) const MAX_COLORS: usize = 256;
/// k-means passes after median cut; each one lowers the error, most of the gain is in the first.
const REFINE_PASSES: usize = 4;

/// A palette of at most 256 colours and the map from every colour of the video to its entry.
pub(crate) struct Palette {
    /// RGB triples, flattened as GIF stores them.
    pub colors: Vec<u8>,
    /// Every colour seen in the video → its palette index.
    index: HashMap<[u8; 3], u8>,
}

impl Palette {
    /// The palette for these 8-bit RGB frames.
    pub fn for_frames(frames: &[&[u8]]) -> Palette {
        let pixels = || {
            frames
                .iter()
                .flat_map(|f| f.chunks_exact(3))
                .map(|p| [p[0], p[1], p[2]])
        };
        let mut counts: HashMap<[u8; 3], u32> = HashMap::new();
        for c in pixels() {
            *counts.entry(c).or_insert(0) += 1;
        }
        if counts.len() <= MAX_COLORS {
            let mut colors: Vec<[u8; 3]> = counts.into_keys().collect();
            colors.sort_unstable();
            let index = colors
                .iter()
                .enumerate()
                .map(|(i, &c)| (c, i as u8))
                .collect();
            return Palette {
                colors: colors.concat(),
                index,
            };
        }
        let entries: Vec<[u8; 3]> = median_cut_refined(&counts)
            .iter()
            .map(|c| c.map(|v| v.round().clamp(0.0, 255.0) as u8))
            .collect();
        let index = nearest_entries(&entries, counts.keys().copied());
        Palette {
            colors: entries.concat(),
            index,
        }
    }

    /// The palette index of a colour of the video the palette was built for (0 for any other).
    pub fn index_of(&self, rgb: [u8; 3]) -> u8 {
        self.index.get(&rgb).copied().unwrap_or(0)
    }
}

fn to_f32(c: [u8; 3]) -> [f32; 3] {
    c.map(f32::from)
}

/// Side of the colour cubes used to prune the nearest-entry search (8 levels per channel).
const CELL_SHIFT: u32 = 3;

/// Maps each colour to its nearest palette entry. Colours are grouped by the 8×8×8 cube they
/// fall in; for each cube only the entries that can be nearest to some point of it are searched
/// (an entry whose closest approach to the cube is farther than another entry's farthest point
/// cannot win), which is exact and makes the search a few entries per colour instead of 256.
fn nearest_entries(
    entries: &[[u8; 3]],
    colors: impl Iterator<Item = [u8; 3]>,
) -> HashMap<[u8; 3], u8> {
    let centres: Vec<[f32; 3]> = entries.iter().map(|&c| to_f32(c)).collect();
    let mut candidates: HashMap<[u8; 3], Vec<usize>> = HashMap::new();
    colors
        .map(|c| {
            let cell = c.map(|v| v >> CELL_SHIFT);
            let near = candidates
                .entry(cell)
                .or_insert_with(|| cell_candidates(&centres, cell));
            let colour = to_f32(c);
            let best = near
                .iter()
                .copied()
                .min_by(|&a, &b| {
                    distance2(centres[a], colour).total_cmp(&distance2(centres[b], colour))
                })
                .unwrap_or(0);
            (c, best as u8)
        })
        .collect()
}

/// The entries that may be nearest to some colour of the given cube.
fn cell_candidates(centres: &[[f32; 3]], cell: [u8; 3]) -> Vec<usize> {
    let lo = cell.map(|v| f32::from(v << CELL_SHIFT));
    let hi = lo.map(|v| v + ((1 << CELL_SHIFT) - 1) as f32);
    let (mut closest, mut farthest) = (Vec::with_capacity(centres.len()), f32::INFINITY);
    for c in centres {
        let (mut near, mut far) = (0.0, 0.0);
        for i in 0..3 {
            let below = (lo[i] - c[i]).max(0.0) + (c[i] - hi[i]).max(0.0);
            let across = (c[i] - lo[i]).abs().max((c[i] - hi[i]).abs());
            near += below * below;
            far += across * across;
        }
        closest.push(near);
        farthest = farthest.min(far);
    }
    (0..centres.len())
        .filter(|&i| closest[i] <= farthest)
        .collect()
}

fn distance2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (0..3).map(|i| (a[i] - b[i]) * (a[i] - b[i])).sum()
}

fn nearest(centres: &[[f32; 3]], c: [f32; 3]) -> usize {
    let mut best = (0, f32::INFINITY);
    for (i, &centre) in centres.iter().enumerate() {
        let d = distance2(centre, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best.0
}

/// A colour bin: the summed colour and the number of pixels in it.
#[derive(Clone, Copy)]
struct Bin {
    sum: [f64; 3],
    count: f64,
}

impl Bin {
    fn mean(&self) -> [f32; 3] {
        self.sum.map(|s| (s / self.count) as f32)
    }
}

/// 256 colour centres for a histogram of more than 256 colours.
fn median_cut_refined(counts: &HashMap<[u8; 3], u32>) -> Vec<[f32; 3]> {
    // Work on 5-bit-per-channel bins holding the exact mean of their pixels: at most 32768
    // entries however many distinct colours the video has, which keeps the passes cheap.
    let mut bins: HashMap<[u8; 3], Bin> = HashMap::new();
    for (&c, &n) in counts {
        let bin = bins.entry(c.map(|v| v >> 3)).or_insert(Bin {
            sum: [0.0; 3],
            count: 0.0,
        });
        for (sum, &v) in bin.sum.iter_mut().zip(&c) {
            *sum += f64::from(v) * f64::from(n);
        }
        bin.count += f64::from(n);
    }
    let mut entries: Vec<([f32; 3], f64)> = bins.values().map(|b| (b.mean(), b.count)).collect();
    let mut centres = median_cut(&mut entries);
    for _ in 0..REFINE_PASSES {
        let mut sums = vec![
            Bin {
                sum: [0.0; 3],
                count: 0.0
            };
            centres.len()
        ];
        for &(c, n) in &entries {
            let bin = &mut sums[nearest(&centres, c)];
            for (sum, &v) in bin.sum.iter_mut().zip(&c) {
                *sum += f64::from(v) * n;
            }
            bin.count += n;
        }
        for (centre, bin) in centres.iter_mut().zip(&sums) {
            // A centre that lost all its colours keeps its place rather than vanishing.
            if bin.count > 0.0 {
                *centre = bin.mean();
            }
        }
    }
    centres
}

/// Median cut: repeatedly split the box with the largest (longest side × pixel count) at the
/// pixel-weighted median of its longest side, until there are 256 boxes; each box's mean colour
/// is a centre.
fn median_cut(entries: &mut [([f32; 3], f64)]) -> Vec<[f32; 3]> {
    let mut boxes = Vec::with_capacity(MAX_COLORS);
    boxes.push(0..entries.len());
    while boxes.len() < MAX_COLORS {
        let mut best: Option<(usize, usize, f64)> = None;
        for (b, range) in boxes.iter().enumerate() {
            let slice = &entries[range.clone()];
            if slice.len() < 2 {
                continue;
            }
            let (axis, extent) = longest_axis(slice);
            let score = f64::from(extent) * slice.iter().map(|e| e.1).sum::<f64>();
            if extent > 0.0 && best.is_none_or(|(_, _, s)| score > s) {
                best = Some((b, axis, score));
            }
        }
        let Some((b, axis, _)) = best else { break };
        let range = boxes[b].clone();
        let slice = &mut entries[range.clone()];
        slice.sort_by(|x, y| x.0[axis].total_cmp(&y.0[axis]));
        let half = slice.iter().map(|e| e.1).sum::<f64>() / 2.0;
        let mut cumulative = 0.0;
        let mut split = slice.len() - 1;
        for (i, e) in slice.iter().enumerate() {
            cumulative += e.1;
            if cumulative >= half {
                split = i + 1;
                break;
            }
        }
        let split = range.start + split.clamp(1, slice.len() - 1);
        boxes[b] = range.start..split;
        boxes.push(split..range.end);
    }
    boxes
        .iter()
        .map(|range| {
            let slice = &entries[range.clone()];
            let total: f64 = slice.iter().map(|e| e.1).sum();
            let mut mean = [0.0f64; 3];
            for (c, n) in slice {
                for i in 0..3 {
                    mean[i] += f64::from(c[i]) * n / total;
                }
            }
            mean.map(|v| v as f32)
        })
        .collect()
}

/// The channel along which the colours spread most, and that spread.
fn longest_axis(slice: &[([f32; 3], f64)]) -> (usize, f32) {
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    for (c, _) in slice {
        for i in 0..3 {
            lo[i] = lo[i].min(c[i]);
            hi[i] = hi[i].max(c[i]);
        }
    }
    (0..3)
        .map(|i| (i, hi[i] - lo[i]))
        .fold((0, f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn pruned_nearest_search_matches_brute_force() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let entries: Vec<[u8; 3]> = (0..200).map(|_| rng.gen()).collect();
        let colors: Vec<[u8; 3]> = (0..5000).map(|_| rng.gen()).collect();
        let index = nearest_entries(&entries, colors.iter().copied());
        let centres: Vec<[f32; 3]> = entries.iter().map(|&c| to_f32(c)).collect();
        for c in colors {
            let got = distance2(centres[usize::from(index[&c])], to_f32(c));
            let best = distance2(centres[nearest(&centres, to_f32(c))], to_f32(c));
            assert_eq!(got, best, "colour {c:?}");
        }
    }

    #[test]
    fn many_colours_get_256_entries_and_small_error() {
        // A 64×64 gradient over red and green: 4096 colours.
        let pixels: Vec<u8> = (0..64 * 64)
            .flat_map(|i| [(i % 64 * 4) as u8, (i / 64 * 4) as u8, 90])
            .collect();
        let palette = Palette::for_frames(&[&pixels]);
        assert_eq!(palette.colors.len(), 3 * MAX_COLORS);
        let mean_error: f64 = pixels
            .chunks_exact(3)
            .map(|p| {
                let e = usize::from(palette.index_of([p[0], p[1], p[2]]));
                (0..3)
                    .map(|i| {
                        f64::from((i32::from(p[i]) - i32::from(palette.colors[3 * e + i])).abs())
                    })
                    .sum::<f64>()
            })
            .sum::<f64>()
            / (pixels.len() / 3) as f64;
        // Red and green take 64 levels each in steps of 4; the best 256 entries are a 16×16 grid,
        // each entry centred on 4×4 colours: |error| averages 4 on red and 4 on green.
        assert!(mean_error < 8.5, "mean error {mean_error} levels per pixel");
    }
}
