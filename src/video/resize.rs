//! Spatial resizing, centre cropping and frame selection, and `fit` which combines them to bring
//! any clip to a model's frame count and resolution.

use super::error::VideoError;
use super::Video;

/// Resampling filter for [`resize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Each output pixel is the area-weighted mean of the source pixels its footprint covers
    /// (fractional overlaps weighted by their length, like OpenCV's INTER_AREA). Best for
    /// shrinking; when enlarging it reproduces pixels with blended seams.
    Area,
    /// Bilinear interpolation at pixel centres (`src = (dst + 0.5)·scale − 0.5`, clamped to the
    /// edge), as PyTorch `interpolate(mode="bilinear", align_corners=False)` without antialiasing.
    Bilinear,
}

/// For each output index along one axis, the source indices and weights it blends.
fn axis_weights(src: usize, dst: usize, filter: Filter) -> Vec<Vec<(usize, f32)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| match filter {
            Filter::Area => {
                let (lo, hi) = (o as f64 * scale, (o + 1) as f64 * scale);
                let last = (hi.ceil() as usize).min(src);
                (lo.floor() as usize..last)
                    .map(|i| {
                        let overlap = hi.min((i + 1) as f64) - lo.max(i as f64);
                        (i, (overlap / scale) as f32)
                    })
                    .filter(|&(_, w)| w > 0.0)
                    .collect()
            }
            Filter::Bilinear => {
                let pos = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f64);
                let i0 = pos.floor() as usize;
                let i1 = (i0 + 1).min(src - 1);
                let t = (pos - i0 as f64) as f32;
                vec![(i0, 1.0 - t), (i1, t)]
            }
        })
        .collect()
}

/// Resizes every frame to `height`×`width`. A zero target size gives an empty video; an empty
/// source gives a black one. The video must be consistent (`data.len() == frames·height·width·3`).
pub fn resize(video: &Video, height: usize, width: usize, filter: Filter) -> Video {
    let (src_h, src_w) = (video.height, video.width);
    if (src_h, src_w) == (height, width) {
        return video.clone();
    }
    let mut out = Video::new(video.frames, height, width);
    if height == 0 || width == 0 || src_h == 0 || src_w == 0 {
        return out;
    }
    let wx = axis_weights(src_w, width, filter);
    let wy = axis_weights(src_h, height, filter);
    // Separable: rows first into `rows` (src_h × width), then columns into the output frame.
    let mut rows = vec![0.0f32; src_h * width * 3];
    for f in 0..video.frames {
        let src = video.frame(f);
        for y in 0..src_h {
            for (x, taps) in wx.iter().enumerate() {
                let mut acc = [0.0f32; 3];
                for &(i, w) in taps {
                    let p = &src[(y * src_w + i) * 3..][..3];
                    acc.iter_mut().zip(p).for_each(|(a, v)| *a += w * v);
                }
                rows[(y * width + x) * 3..][..3].copy_from_slice(&acc);
            }
        }
        let dst = out.frame_mut(f);
        for (y, taps) in wy.iter().enumerate() {
            for x in 0..width {
                let mut acc = [0.0f32; 3];
                for &(i, w) in taps {
                    let p = &rows[(i * width + x) * 3..][..3];
                    acc.iter_mut().zip(p).for_each(|(a, v)| *a += w * v);
                }
                dst[(y * width + x) * 3..][..3].copy_from_slice(&acc);
            }
        }
    }
    out
}

/// The centred `height`×`width` window of every frame (offsets rounded down). A size larger than
/// the video is clamped to the video's size.
pub fn center_crop(video: &Video, height: usize, width: usize) -> Video {
    let (h, w) = (height.min(video.height), width.min(video.width));
    let (top, left) = ((video.height - h) / 2, (video.width - w) / 2);
    let mut out = Video::new(video.frames, h, w);
    for f in 0..video.frames {
        let src = video.frame(f);
        let dst = out.frame_mut(f);
        for y in 0..h {
            let from = ((top + y) * video.width + left) * 3;
            dst[y * w * 3..(y + 1) * w * 3].copy_from_slice(&src[from..from + w * 3]);
        }
    }
    out
}

/// A video made of the given frames of `video`, in the given order (repeats allowed).
pub fn select_frames(video: &Video, indices: &[usize]) -> Result<Video, VideoError> {
    let mut out = Video::new(indices.len(), video.height, video.width);
    for (dst, &src) in indices.iter().enumerate() {
        if src >= video.frames {
            return Err(VideoError::FrameOutOfRange {
                index: src,
                frames: video.frames,
            });
        }
        out.frame_mut(dst).copy_from_slice(video.frame(src));
    }
    Ok(out)
}

/// `count` frame indices spread evenly over `source_frames` frames: `round(i·(S−1)/(count−1))`,
/// so the first and last frames are always kept; a single frame is the middle one. When
/// `count > source_frames` frames repeat (nearest-frame resampling). Empty when either is 0.
pub fn evenly_spaced_frames(source_frames: usize, count: usize) -> Vec<usize> {
    match (source_frames, count) {
        (0, _) | (_, 0) => Vec::new(),
        (s, 1) => vec![(s - 1) / 2],
        (s, n) => (0..n)
            .map(|i| (2 * i * (s - 1) + (n - 1)) / (2 * (n - 1)))
            .collect(),
    }
}

/// Brings a clip to `frames`×`height`×`width`: keeps `frames` evenly spaced frames
/// ([`evenly_spaced_frames`]), centre-crops to the target aspect ratio (the cropped side rounded
/// to the nearest pixel), then resizes with [`Filter::Area`] when shrinking both sides and
/// [`Filter::Bilinear`] otherwise. An empty source gives a black video of the requested shape.
pub fn fit(video: &Video, frames: usize, height: usize, width: usize) -> Video {
    let (src_h, src_w) = (video.height, video.width);
    if video.frames == 0 || src_h == 0 || src_w == 0 || frames == 0 || height == 0 || width == 0 {
        return Video::new(frames, height, width);
    }
    let indices = evenly_spaced_frames(video.frames, frames);
    let mut selected = Video::new(frames, src_h, src_w);
    for (dst, &src) in indices.iter().enumerate() {
        selected.frame_mut(dst).copy_from_slice(video.frame(src));
    }
    // Compare aspect ratios exactly in integers: src_w/src_h vs width/height.
    let (crop_h, crop_w) = if src_w * height > width * src_h {
        let w = ((src_h * width) as f64 / height as f64).round() as usize;
        (src_h, w.clamp(1, src_w))
    } else {
        let h = ((src_w * height) as f64 / width as f64).round() as usize;
        (h.clamp(1, src_h), src_w)
    };
    let cropped = center_crop(&selected, crop_h, crop_w);
    let filter = if crop_h >= height && crop_w >= width {
        Filter::Area
    } else {
        Filter::Bilinear
    };
    resize(&cropped, height, width, filter)
}
