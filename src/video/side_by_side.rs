//! Comparison GIFs: several videos side by side (reference | method 1 | method 2 …), each
//! optionally labelled, upscaled by an integer factor so small clips stay visible.

use std::path::Path;

use super::color::to_u8;
use super::error::{unwritable_because, VideoError};
use super::font::{draw_text, TextStyle, GLYPH_HEIGHT};
use super::gif_file::write_gif_rgb8;
use super::Video;

/// Width of the grey bar between panels, in output pixels.
pub const SEPARATOR_WIDTH: usize = 2;
const SEPARATOR_COLOR: [u8; 3] = [128, 128, 128];
const LABEL_COLOR: [u8; 3] = [255, 255, 255];

/// Writes one looping GIF with `columns` side by side, left to right, each upscaled `scale`×
/// (nearest neighbour) and separated by a grey bar. `labels` is empty (no labels) or holds one
/// label per column, drawn in a black strip above the videos with a 3×5 pixel font at
/// `max(1, scale / 2)` pixels per font pixel, clipped to the panel's width. Columns may differ in
/// size (panels are top-aligned on black) and in length (a shorter video holds its last frame).
pub fn write_side_by_side_gif(
    path: impl AsRef<Path>,
    columns: &[&Video],
    labels: &[&str],
    fps: f32,
    scale: usize,
) -> Result<(), VideoError> {
    let path = path.as_ref();
    if columns.is_empty() {
        return Err(VideoError::invalid(path, "no videos to put side by side"));
    }
    if !labels.is_empty() && labels.len() != columns.len() {
        return Err(VideoError::invalid(
            path,
            format!(
                "{} labels given for {} videos (give one per video, or none)",
                labels.len(),
                columns.len()
            ),
        ));
    }
    if scale == 0 {
        return Err(VideoError::invalid(path, "scale must be at least 1"));
    }
    for (i, video) in columns.iter().enumerate() {
        if let Some(problem) = unwritable_because(video) {
            return Err(VideoError::invalid(path, format!("video {i}: {problem}")));
        }
    }
    let text = TextStyle {
        scale: (scale / 2).max(1),
        color: LABEL_COLOR,
    };
    let strip = if labels.is_empty() {
        0
    } else {
        (GLYPH_HEIGHT + 2) * text.scale
    };
    let panel_height = columns
        .iter()
        .map(|v| v.height)
        .max()
        .unwrap_or(0)
        .saturating_mul(scale);
    let lefts: Vec<usize> = columns
        .iter()
        .scan(0usize, |x, v| {
            let left = *x;
            *x = x
                .saturating_add(v.width.saturating_mul(scale))
                .saturating_add(SEPARATOR_WIDTH);
            Some(left)
        })
        .collect();
    let width = columns
        .iter()
        .map(|v| v.width.saturating_mul(scale))
        .fold(0usize, usize::saturating_add)
        + SEPARATOR_WIDTH * (columns.len() - 1);
    let height = strip.saturating_add(panel_height);
    if width > usize::from(u16::MAX) || height > usize::from(u16::MAX) {
        return Err(VideoError::invalid(
            path,
            format!(
                "the comparison would be {width}×{height}, beyond the GIF limit of 65535×65535"
            ),
        ));
    }
    let frames = columns.iter().map(|v| v.frames).max().unwrap_or(0);

    let mut background = vec![0u8; width * height * 3];
    for &left in lefts.iter().skip(1) {
        for y in 0..height {
            for x in left - SEPARATOR_WIDTH..left {
                background[(y * width + x) * 3..][..3].copy_from_slice(&SEPARATOR_COLOR);
            }
        }
    }
    for ((label, video), &left) in labels.iter().zip(columns).zip(&lefts) {
        let right = left + video.width * scale;
        draw_text(
            &mut background,
            width,
            (left + text.scale, text.scale),
            right,
            label,
            &text,
        );
    }

    let mut images = Vec::with_capacity(frames);
    for t in 0..frames {
        let mut image = background.clone();
        for (video, &left) in columns.iter().zip(&lefts) {
            let frame = video.frame(t.min(video.frames - 1));
            for y in 0..video.height * scale {
                for x in 0..video.width * scale {
                    let src = &frame[((y / scale) * video.width + x / scale) * 3..][..3];
                    let dst = &mut image[((strip + y) * width + left + x) * 3..][..3];
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = to_u8(s));
                }
            }
        }
        images.push(image);
    }
    let refs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    write_gif_rgb8(path, width, height, &refs, fps)
}
