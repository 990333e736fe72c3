//! Animated GIF reading (full compositing) and writing (exact or quantized palettes).
//!
//! Reading composes each frame onto a canvas the way a GIF viewer does: frames may be smaller
//! than the canvas and offset (parts outside the canvas are clipped), use the global or their own
//! local palette, leave pixels of their transparent index untouched, and are disposed after
//! display as they request (keep, restore to background, restore to previous). The canvas starts
//! as, and "restore to background" paints, the background colour of the global palette, or black
//! when there is none. Indices beyond the palette read as black. Every composed canvas is one
//! video frame; the frame rate is taken from the first frame's delay.
//!
//! Writing: one global palette, exact when the whole video has at most 256 distinct 8-bit colours
//! (fym's synthetic videos), otherwise median cut refined by k-means (see `quantize`), without
//! dithering so flat regions stay flat. Frames are full-canvas,
//! the delay is `round(100 / fps)` hundredths of a second (at least 2: viewers slow smaller delays
//! down to 10), and the animation loops forever.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::atomic::write_file_atomically;
use super::color::{from_u8, to_u8};
use super::error::{check_frame_size, check_video_growth, check_writable, VideoError};
use super::quantize::Palette;
use super::Video;

/// Reads an animated (or still) GIF.
pub fn read_gif(path: impl AsRef<Path>) -> Result<Video, VideoError> {
    read_gif_and_fps(path.as_ref()).map(|(video, _)| video)
}

/// Reads a GIF and its frame rate (`None` when the first frame has no delay).
pub(crate) fn read_gif_and_fps(path: &Path) -> Result<(Video, Option<f32>), VideoError> {
    let file = File::open(path).map_err(|e| VideoError::io(path, "open", e))?;
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options
        .read_info(BufReader::new(file))
        .map_err(|e| VideoError::format(path, format!("not a valid GIF: {e}")))?;
    let (width, height) = (usize::from(decoder.width()), usize::from(decoder.height()));
    check_frame_size(path, width, height)?;
    let global_palette = decoder.global_palette().map(<[u8]>::to_vec);
    let background = match (&global_palette, decoder.bg_color()) {
        (Some(palette), Some(i)) => palette_color(palette, i),
        _ => [0, 0, 0],
    };

    let mut canvas = vec![background; width * height];
    let mut data = Vec::new();
    let mut frames = 0;
    let mut first_delay = None;
    loop {
        let frame = match decoder.read_next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => return Err(VideoError::format(path, format!("frame {frames}: {e}"))),
        };
        check_video_growth(path, frames, width, height)?;
        let palette = frame
            .palette
            .as_deref()
            .or(global_palette.as_deref())
            .ok_or_else(|| {
                VideoError::format(path, format!("frame {frames} has no colour table"))
            })?;
        let rect = FrameRect::of(frame, width, height);
        let (fw, fh) = (usize::from(frame.width), usize::from(frame.height));
        if frame.buffer.len() < fw * fh {
            return Err(VideoError::format(
                path,
                format!(
                    "frame {frames} is truncated (expected {} pixels, got {})",
                    fw * fh,
                    frame.buffer.len()
                ),
            ));
        }
        let before = (frame.dispose == gif::DisposalMethod::Previous).then(|| canvas.clone());
        for y in rect.top..rect.bottom {
            for x in rect.left..rect.right {
                let index = frame.buffer[(y - rect.top) * fw + (x - rect.left)];
                if frame.transparent != Some(index) {
                    canvas[y * width + x] = palette_color(palette, usize::from(index));
                }
            }
        }
        data.extend(canvas.iter().flat_map(|rgb| rgb.map(from_u8)));
        first_delay.get_or_insert(frame.delay);
        match frame.dispose {
            gif::DisposalMethod::Background => {
                for y in rect.top..rect.bottom {
                    canvas[y * width + rect.left..y * width + rect.right].fill(background);
                }
            }
            gif::DisposalMethod::Previous => {
                if let Some(before) = before {
                    canvas = before;
                }
            }
            gif::DisposalMethod::Any | gif::DisposalMethod::Keep => {}
        }
        frames += 1;
    }
    if frames == 0 {
        return Err(VideoError::format(path, "contains no frames"));
    }
    let fps = first_delay.filter(|&d| d > 0).map(|d| 100.0 / f32::from(d));
    Ok((
        Video {
            frames,
            height,
            width,
            data,
        },
        fps,
    ))
}

/// The part of the canvas a frame covers, clipped to the canvas.
struct FrameRect {
    left: usize,
    top: usize,
    right: usize,
    bottom: usize,
}

impl FrameRect {
    fn of(frame: &gif::Frame, width: usize, height: usize) -> Self {
        let left = usize::from(frame.left).min(width);
        let top = usize::from(frame.top).min(height);
        let right = (usize::from(frame.left) + usize::from(frame.width)).min(width);
        let bottom = (usize::from(frame.top) + usize::from(frame.height)).min(height);
        FrameRect {
            left,
            top,
            right,
            bottom,
        }
    }
}

fn palette_color(palette: &[u8], index: usize) -> [u8; 3] {
    match palette.get(3 * index..3 * index + 3) {
        Some(c) => [c[0], c[1], c[2]],
        None => [0, 0, 0],
    }
}

/// Writes `video` as a GIF looping forever at `fps` (see the module notes for the palette).
pub fn write_gif(path: impl AsRef<Path>, video: &Video, fps: f32) -> Result<(), VideoError> {
    let path = path.as_ref();
    check_writable(path, video)?;
    let frame_len = video.height * video.width * 3;
    let rgb: Vec<u8> = video.data.iter().map(|&v| to_u8(v)).collect();
    let frames: Vec<&[u8]> = rgb.chunks_exact(frame_len).collect();
    write_gif_rgb8(path, video.width, video.height, &frames, fps)
}

/// Writes 8-bit RGB frames of `width`×`height` as a looping GIF.
pub(crate) fn write_gif_rgb8(
    path: &Path,
    width: usize,
    height: usize,
    frames: &[&[u8]],
    fps: f32,
) -> Result<(), VideoError> {
    let too_big = |n: usize| {
        u16::try_from(n).map_err(|_| {
            VideoError::invalid(
                path,
                format!("{width}×{height} exceeds the GIF limit of 65535×65535"),
            )
        })
    };
    let (w16, h16) = (too_big(width)?, too_big(height)?);
    let delay = gif_delay(fps).ok_or_else(|| {
        VideoError::invalid(path, format!("frame rate {fps} is not a positive number"))
    })?;
    let palette = Palette::for_frames(frames);
    let encode_err =
        |e: gif::EncodingError| VideoError::format(path, format!("GIF encoding failed: {e}"));
    write_file_atomically(path, |out| {
        let mut encoder =
            gif::Encoder::new(&mut *out, w16, h16, &palette.colors).map_err(encode_err)?;
        encoder
            .set_repeat(gif::Repeat::Infinite)
            .map_err(encode_err)?;
        for rgb in frames {
            let indices: Vec<u8> = rgb
                .chunks_exact(3)
                .map(|p| palette.index_of([p[0], p[1], p[2]]))
                .collect();
            let mut frame = gif::Frame::from_indexed_pixels(w16, h16, indices, None);
            frame.delay = delay;
            encoder.write_frame(&frame).map_err(encode_err)?;
        }
        encoder
            .into_inner()
            .map_err(|e| VideoError::io(path, "write", e))?;
        Ok(())
    })
}

/// GIF frame delay in hundredths of a second for `fps`.
fn gif_delay(fps: f32) -> Option<u16> {
    (fps.is_finite() && fps > 0.0).then(|| (100.0 / fps).round().clamp(2.0, 65535.0) as u16)
}
