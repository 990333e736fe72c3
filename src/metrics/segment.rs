//! Main-object segmentation: pixels far in colour from the estimated background, then their
//! 8-connected components; the main object is the largest component per frame (for shape and
//! coherence) or, for its path, the one object of the clip known by its colour.

use crate::video::Video;

/// RGB distance (Euclidean, values in [0, 1]) above which a pixel is foreground.
pub const FOREGROUND_DISTANCE: f32 = 0.2;
/// Radius of the greedy colour clusters that summarise the frame border.
const CLUSTER_RADIUS: f32 = 0.08;
/// A border colour cluster must hold this fraction of the border samples to count as background
/// (so an object that touches the border now and then does not become background).
const MIN_CLUSTER_SHARE: f32 = 0.01;
/// A border colour cluster this large is background however few frames it shows in (a gradient
/// the camera pans across shows each of its tones in only some frames).
const STEADY_CLUSTER_SHARE: f32 = 0.05;
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

/// Greedy colour clusters of the border ring over all frames, keeping the well-supported ones:
/// those with [`MIN_CLUSTER_SHARE`] of the samples seen in at least half the frames, or
/// [`STEADY_CLUSTER_SHARE`] of them. An object passing the border in a few frames (a pan carries
/// it out of view) holds about 1 % of the samples but shows there in few frames; it must not
/// become background, or its pixels would vanish from every frame.
fn border_colors(video: &Video) -> Vec<[f32; 3]> {
    let (h, w) = (video.height, video.width);
    // (colour, samples, frames it showed in, last frame counted)
    let mut clusters: Vec<([f32; 3], usize, usize, usize)> = Vec::new();
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
                    .find(|(c, ..)| dist(*c, p) <= CLUSTER_RADIUS)
                {
                    Some((_, count, frames, last)) => {
                        *count += 1;
                        if *last != f {
                            *frames += 1;
                            *last = f;
                        }
                    }
                    None => clusters.push((p, 1, 1, f)),
                }
            }
        }
    }
    let share = |n: usize| n as f32 / samples.max(1) as f32;
    let strong: Vec<_> = clusters
        .iter()
        .filter(|(_, n, frames, _)| {
            share(*n) >= STEADY_CLUSTER_SHARE
                || (share(*n) >= MIN_CLUSTER_SHARE && 2 * frames >= video.frames)
        })
        .map(|(c, ..)| *c)
        .collect();
    if strong.is_empty() {
        clusters.into_iter().map(|(c, ..)| c).collect()
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

/// The 8-connected components of a mask: a label per pixel (0 where the mask is not set, else
/// 1, 2, … in scan order of the components' first pixels) and the size of each component
/// (`sizes[label − 1]`).
pub fn label_components(mask: &Mask) -> (Vec<u32>, Vec<usize>) {
    let (h, w) = (mask.height, mask.width);
    let mut label = vec![0u32; w * h];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !mask.data[start] || label[start] != 0 {
            continue;
        }
        let next = sizes.len() as u32 + 1;
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
        sizes.push(size);
    }
    (label, sizes)
}

/// One connected foreground component of a frame: where it is, how big, what colour.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// Centroid `[x, y]`.
    pub center: [f32; 2],
    pub area: usize,
    /// Mean RGB.
    pub mean_color: [f32; 3],
}

/// The components of a foreground mask of frame `f` (in scan order) and each pixel's label
/// (0: background; k: `components[k − 1]`).
fn measure_components(video: &Video, f: usize, fg: &Mask) -> (Vec<u32>, Vec<Component>) {
    let (label, sizes) = label_components(fg);
    let mut sums = vec![[0.0f64; 5]; sizes.len()];
    for (i, &l) in label.iter().enumerate() {
        if l == 0 {
            continue;
        }
        let (y, x) = (i / video.width, i % video.width);
        let p = video.pixel(f, y, x);
        let s = &mut sums[l as usize - 1];
        s[0] += x as f64;
        s[1] += y as f64;
        for c in 0..3 {
            s[2 + c] += p[c] as f64;
        }
    }
    let components = sums
        .iter()
        .zip(&sizes)
        .map(|(s, &area)| {
            let n = area as f64;
            Component {
                center: [(s[0] / n) as f32, (s[1] / n) as f32],
                area,
                mean_color: [(s[2] / n) as f32, (s[3] / n) as f32, (s[4] / n) as f32],
            }
        })
        .collect();
    (label, components)
}

/// Every foreground component of frame `f`, in scan order.
pub fn frame_components(video: &Video, f: usize, background: &Background) -> Vec<Component> {
    measure_components(video, f, &foreground_mask(video, f, background)).1
}

/// Radius of the colour clusters that tell objects apart across frames. The world's palette
/// keeps different colours ≥ 0.5 apart (orange from red and from yellow); anti-aliased edges
/// move a small component's mean colour by up to about 0.15.
const IDENTITY_RADIUS: f32 = 0.15;
/// Colour distance over which closeness to a named colour weighs a cluster down by e.
const NAMED_COLOR_SCALE: f32 = 0.25;
/// A component within this colour distance of the tracked object's colour can be the object.
const MATCH_RADIUS: f32 = 0.3;
/// A colour cluster with less than this share of the largest one's pixels is a speck, never the
/// object a caption names.
const MIN_OBJECT_SHARE: f64 = 0.1;

/// Components of similar mean colour over a whole clip.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorCluster {
    /// Pixel-weighted mean colour.
    pub color: [f32; 3],
    /// Pixels over all frames.
    pub pixels: f64,
}

/// The colour clusters of a clip's components: components of all frames, largest first, join
/// the first cluster whose mean colour is within [`IDENTITY_RADIUS`] or start a new one.
pub fn color_clusters(frames: &[Vec<Component>]) -> Vec<ColorCluster> {
    let mut all: Vec<&Component> = frames.iter().flatten().collect();
    all.sort_by_key(|c| std::cmp::Reverse(c.area));
    let mut sums: Vec<([f64; 3], f64)> = Vec::new();
    let mean = |(sum, n): &([f64; 3], f64)| sum.map(|v| (v / n) as f32);
    for c in all {
        let area = c.area as f64;
        let weighted = c.mean_color.map(|v| v as f64 * area);
        match sums
            .iter_mut()
            .find(|k| dist(mean(k), c.mean_color) <= IDENTITY_RADIUS)
        {
            Some((sum, n)) => {
                for (s, v) in sum.iter_mut().zip(weighted) {
                    *s += v;
                }
                *n += area;
            }
            None => sums.push((weighted, area)),
        }
    }
    sums.iter()
        .map(|k| ColorCluster {
            color: mean(k),
            pixels: k.1,
        })
        .collect()
}

/// The colour of the object to follow through a clip, and the colours of the clip's other
/// objects. Objects are the colour clusters holding at least [`MIN_OBJECT_SHARE`] of the largest
/// one's pixels (smaller ones are specks). With `named` (the colour a caption names first) the
/// object followed is the largest after weighting by closeness to that colour
/// (`exp(−(d / NAMED_COLOR_SCALE)²)`), so a drawn object of a slightly different colour is still
/// the one followed; without, the largest (the object that is largest over the clip, not in each
/// frame). `None` when no frame has foreground.
pub fn object_colors(
    frames: &[Vec<Component>],
    named: Option<[f32; 3]>,
) -> Option<([f32; 3], Vec<[f32; 3]>)> {
    let clusters = color_clusters(frames);
    let largest = clusters.iter().map(|c| c.pixels).fold(0.0, f64::max);
    let objects: Vec<&ColorCluster> = clusters
        .iter()
        .filter(|c| c.pixels >= MIN_OBJECT_SHARE * largest)
        .collect();
    // Pixels weighted by closeness to the named colour: the anti-aliased edge of a small object
    // dims its mean colour (blue 0.95 → 0.8), and a frame where it sits on the pixel grid can
    // make a small cluster of the pure colour that must not win over the object's other frames.
    let weight = |c: &ColorCluster| match named {
        Some(named) => {
            let d = dist(c.color, named) / NAMED_COLOR_SCALE;
            c.pixels * (-(d * d) as f64).exp()
        }
        None => c.pixels,
    };
    let chosen = objects
        .iter()
        .max_by(|a, b| weight(a).total_cmp(&weight(b)))?;
    let others = objects
        .iter()
        .filter(|c| !std::ptr::eq(**c, *chosen))
        .map(|c| c.color)
        .collect();
    Some((chosen.color, others))
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
    let (label, components) = measure_components(video, f, &foreground_mask(video, f, background));
    let total: usize = components.iter().map(|c| c.area).sum();
    // The largest; the first in scan order among equals (`min_by_key` keeps the first).
    let (index, main) = components
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| std::cmp::Reverse(c.area))?;
    let own = index as u32 + 1;
    Some(ObjectObservation {
        center: main.center,
        area: main.area,
        mean_color: main.mean_color,
        component_fraction: main.area as f32 / total as f32,
        mask: Mask {
            width: video.width,
            height: video.height,
            data: label.iter().map(|&l| l == own).collect(),
        },
    })
}

/// The main object's centroid in every frame; frames where none is found take the centre of the
/// nearest frame that has one (or the frame centre when no frame has one) and are marked in `found`.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectPath {
    pub centers: Vec<[f32; 2]>,
    pub found: Vec<bool>,
}

/// Segments the main object in every frame and returns its centroid path. The main object is
/// one object over the whole clip, known by its colour ([`object_colors`]): in a scene of several
/// objects of similar size, taking the largest component of each frame jumped between them from
/// frame to frame.
pub fn main_object_track(video: &Video, hint: &BackgroundHint) -> ObjectPath {
    object_track(video, hint, None)
}

/// The centroid path of the object whose colour is nearest `named` (RGB, e.g. the colour a
/// caption names first; see [`object_colors`]), or of the main object when `None`: in each frame
/// the largest component within [`MATCH_RADIUS`] of that object's colour and nearer to it than to
/// any other object's (purple and magenta are only 0.35 apart). A frame where the object does
/// not show (it left the frame, or its colour drifted) takes the nearest frame's centroid, as a
/// frame without foreground does.
pub fn object_track(video: &Video, hint: &BackgroundHint, named: Option<[f32; 3]>) -> ObjectPath {
    let background = Background::estimate(video, hint);
    let components: Vec<Vec<Component>> = (0..video.frames)
        .map(|f| frame_components(video, f, &background))
        .collect();
    let colors = object_colors(&components, named);
    let is_object = |c: &Component| {
        colors.as_ref().is_some_and(|(own, others)| {
            let d = dist(c.mean_color, *own);
            d <= MATCH_RADIUS && others.iter().all(|&o| d <= dist(c.mean_color, o))
        })
    };
    let seen: Vec<Option<[f32; 2]>> = components
        .iter()
        .map(|frame| {
            frame
                .iter()
                .filter(|c| is_object(c))
                .min_by_key(|c| std::cmp::Reverse(c.area))
                .map(|c| c.center)
        })
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

    /// Paints a `size`×`size` square of `rgb` with its top-left corner at (x, y), clipped.
    fn square(v: &mut Video, f: usize, x: isize, y: isize, size: isize, rgb: [f32; 3]) {
        for yy in y.max(0)..(y + size).min(v.height as isize) {
            for xx in x.max(0)..(x + size).min(v.width as isize) {
                v.set_pixel(f, yy as usize, xx as usize, rgb);
            }
        }
    }

    const RED: [f32; 3] = [0.9, 0.1, 0.1];
    const BLUE: [f32; 3] = [0.15, 0.25, 0.95];

    #[test]
    fn the_path_follows_one_object_when_another_is_as_large() {
        // A red square moving right and a blue one moving down, each one pixel row larger than
        // the other in alternate frames: the largest component of each frame alternates.
        let mut v = Video::new(6, 24, 24);
        for f in 0..6 {
            let (red, blue) = if f % 2 == 0 { (5, 4) } else { (4, 5) };
            square(&mut v, f, 2 + 2 * f as isize, 3, red, RED);
            square(&mut v, f, 16, 2 + 2 * f as isize, blue, BLUE);
        }
        let hint = BackgroundHint::Color([0.0; 3]);
        let xs = |p: &ObjectPath| p.centers.iter().map(|c| c[0]).collect::<Vec<_>>();
        let ys = |p: &ObjectPath| p.centers.iter().map(|c| c[1]).collect::<Vec<_>>();
        let red = object_track(&v, &hint, Some([1.0, 0.0, 0.0]));
        assert!(red.found.iter().all(|&f| f));
        assert!(
            xs(&red).windows(2).all(|w| w[1] > w[0]),
            "{:?}",
            red.centers
        );
        assert!(ys(&red).iter().all(|&y| (4.5..=5.0).contains(&y)));
        let blue = object_track(&v, &hint, Some([0.0, 0.0, 1.0]));
        assert!(
            ys(&blue).windows(2).all(|w| w[1] > w[0]),
            "{:?}",
            blue.centers
        );
        assert!(xs(&blue).iter().all(|&x| (17.5..=18.0).contains(&x)));
        // Unnamed: one of the two over the whole clip, not whichever is larger in a frame.
        let main = main_object_track(&v, &hint);
        assert!(main.centers == red.centers || main.centers == blue.centers);
        // The largest component per frame, as the path was taken before, jumps between them.
        let background = Background::estimate(&v, &hint);
        let largest: Vec<[f32; 2]> = (0..6)
            .map(|f| main_object(&v, f, &background).unwrap().center)
            .collect();
        assert!(largest != red.centers && largest != blue.centers);
    }

    #[test]
    fn an_object_passing_the_border_in_a_few_frames_stays_foreground() {
        // Grey stripes; a red square that leaves through the left edge in the last two of
        // eight frames, and a blue one that stays inside.
        let mut v = Video::new(8, 24, 24);
        for f in 0..8 {
            for y in 0..24 {
                for x in 0..24 {
                    let grey = if (x + f) / 3 % 2 == 0 { 0.3 } else { 0.6 };
                    v.set_pixel(f, y, x, [grey; 3]);
                }
            }
            square(&mut v, f, 10 - 2 * f as isize, 10, 5, RED);
            square(&mut v, f, 16, 4, 5, BLUE);
        }
        let background = Background::estimate(&v, &BackgroundHint::Border);
        let Background::Colors(colors) = &background else {
            panic!("border hint gives colours")
        };
        assert!(colors.iter().all(|&c| dist(c, RED) > 0.3), "{colors:?}");
        let red = object_track(&v, &BackgroundHint::Border, Some([1.0, 0.0, 0.0]));
        assert!(red.found[..6].iter().all(|&f| f));
        let xs: Vec<f32> = red.centers[..6].iter().map(|c| c[0]).collect();
        assert!(xs.windows(2).all(|w| w[1] < w[0]), "{xs:?}");
    }
}
