//! Main-object segmentation: pixels far in colour from the estimated background, then the
//! largest 8-connected component per frame.

use crate::video::Video;

/// RGB distance (Euclidean, values in [0, 1]) above which a pixel is foreground.
pub const FOREGROUND_DISTANCE: f32 = 0.2;
/// Radius of the greedy colour clusters that summarise the frame border.
const CLUSTER_RADIUS: f32 = 0.08;
/// A border colour cluster must hold this fraction of the border samples to count as background
/// (so an object that touches the border now and then does not become background).
const MIN_CLUSTER_SHARE: f32 = 0.01;
/// Width (pixels) of the frame border sampled for background colours.
const BORDER: usize = 2;

/// How to estimate the background.
#[derive(Clone, Debug, PartialEq)]
pub enum BackgroundHint {
    /// Background = the colours seen on the frame border (2 px ring) over the whole video:
    /// works for solid, striped, checkered, noisy and linear-gradient backgrounds and moving
    /// cameras, as long as the main object does not cover the border most of the time.
    Border,
    /// Background = per-pixel median over frames: a static camera and an object that moves.
    TemporalMedian,
    /// Background = one known colour.
    Color([f32; 3]),
}

/// The background model built from a hint for one video.
#[derive(Clone, Debug)]
pub enum Background {
    /// Representative background colours.
    Colors(Vec<[f32; 3]>),
    /// One background frame (`height·width·3`).
    Frame(Vec<f32>),
}

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

impl Background {
    /// Builds the model of `video`'s background.
    pub fn estimate(video: &Video, hint: &BackgroundHint) -> Background {
        match hint {
            BackgroundHint::Color(c) => Background::Colors(vec![*c]),
            BackgroundHint::Border => Background::Colors(border_colors(video)),
            BackgroundHint::TemporalMedian => {
                let n = video.height * video.width * 3;
                let mut median = vec![0.0f32; n];
                let mut column = Vec::with_capacity(video.frames);
                for (i, m) in median.iter_mut().enumerate() {
                    column.clear();
                    column.extend((0..video.frames).map(|f| video.data[f * n + i]));
                    column.sort_by(f32::total_cmp);
                    *m = column.get(column.len() / 2).copied().unwrap_or(0.0);
                }
                Background::Frame(median)
            }
        }
    }

    /// Colour distance of a pixel to the background.
    pub fn distance(&self, video: &Video, f: usize, y: usize, x: usize) -> f32 {
        let p = video.pixel(f, y, x);
        match self {
            Background::Colors(colors) => colors
                .iter()
                .map(|&c| dist(p, c))
                .fold(f32::INFINITY, f32::min),
            Background::Frame(frame) => {
                let i = (y * video.width + x) * 3;
                dist(p, [frame[i], frame[i + 1], frame[i + 2]])
            }
        }
    }
}

/// Greedy colour clusters of the border ring over all frames, keeping the well-supported ones.
fn border_colors(video: &Video) -> Vec<[f32; 3]> {
    let (h, w) = (video.height, video.width);
    let mut clusters: Vec<([f32; 3], usize)> = Vec::new();
    let mut samples = 0usize;
    for f in 0..video.frames {
        for y in 0..h {
            for x in 0..w {
                let on_border = y < BORDER || x < BORDER || y + BORDER >= h || x + BORDER >= w;
                if !on_border {
                    continue;
                }
                let p = video.pixel(f, y, x);
                samples += 1;
                match clusters
                    .iter_mut()
                    .find(|(c, _)| dist(*c, p) <= CLUSTER_RADIUS)
                {
                    Some((_, count)) => *count += 1,
                    None => clusters.push((p, 1)),
                }
            }
        }
    }
    let min_count = ((samples as f32 * MIN_CLUSTER_SHARE).ceil() as usize).max(1);
    let strong: Vec<_> = clusters
        .iter()
        .filter(|(_, n)| *n >= min_count)
        .map(|(c, _)| *c)
        .collect();
    if strong.is_empty() {
        clusters.into_iter().map(|(c, _)| c).collect()
    } else {
        strong
    }
}

/// A boolean image, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<bool>,
}

impl Mask {
    pub fn new(height: usize, width: usize) -> Mask {
        Mask {
            width,
            height,
            data: vec![false; width * height],
        }
    }

    pub fn get(&self, y: usize, x: usize) -> bool {
        self.data[y * self.width + x]
    }

    pub fn count(&self) -> usize {
        self.data.iter().filter(|&&v| v).count()
    }

    /// Coordinates `(y, x)` of the set pixels.
    pub fn pixels(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.data
            .iter()
            .enumerate()
            .filter(|(_, &v)| v)
            .map(move |(i, _)| (i / self.width, i % self.width))
    }
}

/// Foreground pixels of one frame: farther than [`FOREGROUND_DISTANCE`] from the background.
pub fn foreground_mask(video: &Video, f: usize, background: &Background) -> Mask {
    let mut mask = Mask::new(video.height, video.width);
    for y in 0..video.height {
        for x in 0..video.width {
            mask.data[y * video.width + x] =
                background.distance(video, f, y, x) > FOREGROUND_DISTANCE;
        }
    }
    mask
}

/// The largest 8-connected component of a mask (empty mask when nothing is set).
pub fn largest_component(mask: &Mask) -> Mask {
    let (h, w) = (mask.height, mask.width);
    let mut label = vec![0u32; w * h];
    let mut best = (0u32, 0usize);
    let mut next = 0u32;
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !mask.data[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let mut size = 0usize;
        while let Some(i) = stack.pop() {
            size += 1;
            let (y, x) = ((i / w) as isize, (i % w) as isize);
            for dy in -1..=1isize {
                for dx in -1..=1isize {
                    let (ny, nx) = (y + dy, x + dx);
                    if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask.data[j] && label[j] == 0 {
                        label[j] = next;
                        stack.push(j);
                    }
                }
            }
        }
        if size > best.1 {
            best = (next, size);
        }
    }
    Mask {
        width: w,
        height: h,
        data: label.iter().map(|&l| l != 0 && l == best.0).collect(),
    }
}

/// The main object seen in one frame.
#[derive(Clone, Debug)]
pub struct ObjectObservation {
    /// Centroid `[x, y]` of the component.
    pub center: [f32; 2],
    /// Pixels in the component.
    pub area: usize,
    /// Mean RGB of the component.
    pub mean_color: [f32; 3],
    /// Component pixels over all foreground pixels of the frame.
    pub component_fraction: f32,
    /// The component itself.
    pub mask: Mask,
}

/// The largest foreground component of frame `f`, or `None` when the frame has no foreground.
pub fn main_object(video: &Video, f: usize, background: &Background) -> Option<ObjectObservation> {
    let fg = foreground_mask(video, f, background);
    let total = fg.count();
    if total == 0 {
        return None;
    }
    let mask = largest_component(&fg);
    let area = mask.count();
    let (mut sx, mut sy) = (0.0f64, 0.0f64);
    let mut color = [0.0f64; 3];
    for (y, x) in mask.pixels() {
        sx += x as f64;
        sy += y as f64;
        let p = video.pixel(f, y, x);
        for c in 0..3 {
            color[c] += p[c] as f64;
        }
    }
    let n = area as f64;
    Some(ObjectObservation {
        center: [(sx / n) as f32, (sy / n) as f32],
        area,
        mean_color: [
            (color[0] / n) as f32,
            (color[1] / n) as f32,
            (color[2] / n) as f32,
        ],
        component_fraction: area as f32 / total as f32,
        mask,
    })
}

/// The main object's centroid in every frame; frames where none is found take the centre of the
/// nearest frame that has one (or the frame centre when no frame has one) and are marked in `found`.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectPath {
    pub centers: Vec<[f32; 2]>,
    pub found: Vec<bool>,
}

/// Segments the main object (largest component far from the background) in every frame and
/// returns its centroid path.
pub fn main_object_track(video: &Video, hint: &BackgroundHint) -> ObjectPath {
    let background = Background::estimate(video, hint);
    let seen: Vec<Option<[f32; 2]>> = (0..video.frames)
        .map(|f| main_object(video, f, &background).map(|o| o.center))
        .collect();
    let fallback = [
        (video.width as f32 - 1.0) / 2.0,
        (video.height as f32 - 1.0) / 2.0,
    ];
    let centers = (0..seen.len())
        .map(|f| {
            (0..seen.len())
                .filter_map(|g| seen[g].map(|c| (f.abs_diff(g), c)))
                .min_by_key(|(d, _)| *d)
                .map_or(fallback, |(_, c)| c)
        })
        .collect();
    ObjectPath {
        centers,
        found: seen.iter().map(Option::is_some).collect(),
    }
}

/// One-coherent-object score: mean over frames of (largest component pixels / all foreground
/// pixels); a frame without foreground scores 0. In [0, 1]; 1 when every frame shows one blob.
pub fn largest_component_fraction(video: &Video, hint: &BackgroundHint) -> f32 {
    if video.frames == 0 {
        return 0.0;
    }
    let background = Background::estimate(video, hint);
    let total: f32 = (0..video.frames)
        .map(|f| main_object(video, f, &background).map_or(0.0, |o| o.component_fraction))
        .sum();
    total / video.frames as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stripes background, a blue 6×6 square moving right by `speed` px/frame, a 2-pixel speck.
    fn scene(frames: usize, speed: usize) -> Video {
        let mut v = Video::new(frames, 24, 24);
        for f in 0..frames {
            for y in 0..24 {
                for x in 0..24 {
                    let c = if (y / 3) % 2 == 0 {
                        [0.9, 0.9, 0.9]
                    } else {
                        [0.4, 0.4, 0.4]
                    };
                    v.set_pixel(f, y, x, c);
                }
            }
            let x0 = 4 + speed * f;
            for y in 8..14 {
                for x in x0..x0 + 6 {
                    v.set_pixel(f, y, x, [0.1, 0.2, 0.9]);
                }
            }
            v.set_pixel(f, 20, 20, [0.1, 0.2, 0.9]);
            v.set_pixel(f, 20, 21, [0.1, 0.2, 0.9]);
        }
        v
    }

    #[test]
    fn finds_the_moving_square_and_its_path() {
        let v = scene(4, 2);
        let path = main_object_track(&v, &BackgroundHint::Border);
        assert!(path.found.iter().all(|&f| f));
        for (f, c) in path.centers.iter().enumerate() {
            let want = [4.0 + 2.0 * f as f32 + 2.5, 10.5];
            assert!(
                (c[0] - want[0]).abs() < 1e-4 && (c[1] - want[1]).abs() < 1e-4,
                "{c:?} {want:?}"
            );
        }
        let frac = largest_component_fraction(&v, &BackgroundHint::Border);
        assert!((frac - 36.0 / 38.0).abs() < 1e-5, "{frac}");
        let bg = Background::estimate(&v, &BackgroundHint::Border);
        let o = main_object(&v, 0, &bg).unwrap();
        assert_eq!(o.area, 36);
        assert!(dist(o.mean_color, [0.1, 0.2, 0.9]) < 1e-5);
    }

    #[test]
    fn temporal_median_and_known_colour_hints_agree() {
        // At 3 px/frame no pixel is covered in more than 2 of the 5 frames: the median is clean.
        let v = scene(5, 3);
        let a = main_object_track(&v, &BackgroundHint::Border);
        let c = main_object_track(&v, &BackgroundHint::TemporalMedian);
        assert_eq!(a, c);
        let mut flat = Video::new(2, 8, 8);
        flat.set_pixel(1, 3, 3, [1.0, 0.0, 0.0]);
        let p = main_object_track(&flat, &BackgroundHint::Color([0.0, 0.0, 0.0]));
        assert_eq!(p.found, vec![false, true]);
        assert_eq!(p.centers, vec![[3.0, 3.0], [3.0, 3.0]]);
    }
}
