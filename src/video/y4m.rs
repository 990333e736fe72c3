//! YUV4MPEG2 (.y4m) reading and writing.
//!
//! Reading accepts 8-bit `C420jpeg` (also plain `C420`, the default when `C` is absent),
//! `C420mpeg2`, `C420paldv`, `C422`, `C444`, `C444alpha` (alpha dropped) and `Cmono`; the
//! interlace (`I`) and aspect (`A`) tags are ignored. Subsampled chroma is upsampled bilinearly at
//! its sited position: centred for 420jpeg, left-co-sited and vertically centred for 420mpeg2,
//! top-left co-sited for 420paldv (as ffmpeg treats it) and co-sited for 422.
//!
//! Colour: BT.601. The range comes from the `XCOLORRANGE=FULL|LIMITED` tag; without it the file is
//! read as full range (what fym writes), unless the caller says otherwise with
//! [`read_y4m_with_range`] — pass [`ColorRange::Limited`] for ffmpeg "tv"-range files that lack the
//! tag. Limited-range codes are expanded (Y 16–235, Cb/Cr 16–240 → 0–255) and results clamped.
//!
//! Writing produces `C444` or `C420jpeg` (2×2 box-averaged chroma), always full range and tagged
//! `XCOLORRANGE=FULL`, with the frame rate as an exact or 1001-based fraction.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use super::atomic::write_file_atomically;
use super::color::{rgb_to_ycbcr, ycbcr_to_rgb, ColorRange};
use super::error::{check_frame_size, check_video_growth, check_writable, VideoError};
use super::Video;

/// Chroma subsampling for writing Y4M.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0 with centred chroma, written as `C420jpeg`: a quarter of the chroma, lossy on edges.
    C420,
    /// 4:4:4: full chroma, lossless up to 8-bit Y'CbCr rounding.
    C444,
}

/// Longest header or FRAME line accepted; real headers are well under 100 bytes.
const MAX_LINE: usize = 4096;

/// How the planes of one frame are laid out and where chroma samples sit.
#[derive(Clone, Copy, Debug)]
struct PlaneLayout {
    /// Chroma subsampling factors (1 or 2); `None` for monochrome.
    subsampling: Option<(usize, usize)>,
    /// Position of chroma sample 0 in chroma-sample units relative to luma sample 0 / factor.
    offset: (f32, f32),
    /// A fourth full-size plane (alpha) follows Cr.
    alpha: bool,
}

struct Header {
    width: usize,
    height: usize,
    fps: Option<f32>,
    layout: PlaneLayout,
    range: Option<ColorRange>,
}

impl Header {
    fn chroma_size(&self) -> (usize, usize) {
        match self.layout.subsampling {
            Some((fx, fy)) => (self.width.div_ceil(fx), self.height.div_ceil(fy)),
            None => (0, 0),
        }
    }

    fn frame_bytes(&self) -> usize {
        let luma = self.width * self.height;
        let (cw, ch) = self.chroma_size();
        luma + 2 * cw * ch + if self.layout.alpha { luma } else { 0 }
    }
}

/// Reads a Y4M file; a header without `XCOLORRANGE` is taken as full range.
pub fn read_y4m(path: impl AsRef<Path>) -> Result<Video, VideoError> {
    read_y4m_with_range(path, ColorRange::Full)
}

/// Reads a Y4M file, taking `untagged_range` when the header has no `XCOLORRANGE` tag.
pub fn read_y4m_with_range(
    path: impl AsRef<Path>,
    untagged_range: ColorRange,
) -> Result<Video, VideoError> {
    read_y4m_and_fps(path.as_ref(), untagged_range).map(|(video, _)| video)
}

/// Reads a Y4M file and its frame rate (`None` when the header has no usable `F` tag).
pub(crate) fn read_y4m_and_fps(
    path: &Path,
    untagged_range: ColorRange,
) -> Result<(Video, Option<f32>), VideoError> {
    let file = File::open(path).map_err(|e| VideoError::io(path, "open", e))?;
    let mut reader = BufReader::new(file);
    let header_line = read_line(path, &mut reader, "the stream header")?
        .ok_or_else(|| VideoError::format(path, "file is empty"))?;
    let header = parse_header(path, &header_line)?;
    let range = header.range.unwrap_or(untagged_range);
    let frame_bytes = header.frame_bytes();

    let mut data = Vec::new();
    let mut frames = 0;
    let mut raw = Vec::new();
    while let Some(line) = read_line(
        path,
        &mut reader,
        &format!("the FRAME header of frame {frames}"),
    )? {
        if line.split(|&b| b == b' ').next() != Some(b"FRAME".as_slice()) {
            return Err(VideoError::format(
                path,
                format!(
                    "frame {frames}: expected a FRAME header, found {:?}",
                    preview(&line)
                ),
            ));
        }
        check_video_growth(path, frames, header.width, header.height)?;
        raw.clear();
        // `take` + `read_to_end` grows the buffer with the data actually present, so a corrupt
        // header cannot force a large allocation ahead of the missing bytes.
        (&mut reader)
            .take(frame_bytes as u64)
            .read_to_end(&mut raw)
            .map_err(|e| VideoError::io(path, "read", e))?;
        if raw.len() < frame_bytes {
            return Err(VideoError::format(
                path,
                format!(
                    "frame {frames} is truncated (expected {frame_bytes} bytes, got {})",
                    raw.len()
                ),
            ));
        }
        decode_frame(&header, range, &raw, &mut data);
        frames += 1;
    }
    if frames == 0 {
        return Err(VideoError::format(path, "contains no frames"));
    }
    Ok((
        Video {
            frames,
            height: header.height,
            width: header.width,
            data,
        },
        header.fps,
    ))
}

/// Reads one '\n'-terminated line; `Ok(None)` at a clean end of file.
fn read_line(
    path: &Path,
    reader: &mut impl BufRead,
    what: &str,
) -> Result<Option<Vec<u8>>, VideoError> {
    let mut line = Vec::new();
    let n = reader
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| VideoError::io(path, "read", e))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        let why = if line.len() > MAX_LINE {
            "is longer than 4096 bytes"
        } else {
            "is truncated"
        };
        return Err(VideoError::format(path, format!("{what} {why}")));
    }
    line.pop();
    Ok(Some(line))
}

/// The start of a byte string, printable, for error messages.
fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(24)]).into_owned()
}

fn parse_header(path: &Path, line: &[u8]) -> Result<Header, VideoError> {
    let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
    if tokens.next() != Some(b"YUV4MPEG2".as_slice()) {
        return Err(VideoError::format(
            path,
            format!(
                "not a Y4M file (header starts with {:?}, expected \"YUV4MPEG2\")",
                preview(line)
            ),
        ));
    }
    let (mut width, mut height, mut fps, mut range) = (None, None, None, None);
    let mut chroma = "420jpeg".to_string();
    for token in tokens {
        let value = String::from_utf8_lossy(&token[1..]).into_owned();
        let parse_dim = |name: &str| {
            value.parse::<usize>().map_err(|_| {
                VideoError::format(
                    path,
                    format!("header {name} value {value:?} is not a number"),
                )
            })
        };
        match token[0] {
            b'W' => width = Some(parse_dim("width (W)")?),
            b'H' => height = Some(parse_dim("height (H)")?),
            b'F' => fps = parse_rate(&value),
            b'C' => chroma = value,
            b'X' => match value.as_str() {
                "COLORRANGE=FULL" => range = Some(ColorRange::Full),
                "COLORRANGE=LIMITED" => range = Some(ColorRange::Limited),
                _ => {}
            },
            // I (interlacing), A (pixel aspect) and unknown tags do not change how pixels decode.
            _ => {}
        }
    }
    let width = width.ok_or_else(|| VideoError::format(path, "header has no width (W) tag"))?;
    let height = height.ok_or_else(|| VideoError::format(path, "header has no height (H) tag"))?;
    check_frame_size(path, width, height)?;
    // Centred chroma sample i sits at luma 2i + 0.5, so luma x reads chroma at x/2 − 0.25.
    let centred = -0.25;
    let layout = match chroma.as_str() {
        "420jpeg" | "420" => PlaneLayout { subsampling: Some((2, 2)), offset: (centred, centred), alpha: false },
        "420mpeg2" => PlaneLayout { subsampling: Some((2, 2)), offset: (0.0, centred), alpha: false },
        "420paldv" => PlaneLayout { subsampling: Some((2, 2)), offset: (0.0, 0.0), alpha: false },
        "422" => PlaneLayout { subsampling: Some((2, 1)), offset: (0.0, 0.0), alpha: false },
        "444" => PlaneLayout { subsampling: Some((1, 1)), offset: (0.0, 0.0), alpha: false },
        "444alpha" => PlaneLayout { subsampling: Some((1, 1)), offset: (0.0, 0.0), alpha: true },
        "mono" => PlaneLayout { subsampling: None, offset: (0.0, 0.0), alpha: false },
        other => {
            return Err(VideoError::unsupported(
                path,
                format!("chroma format C{other} (fym reads 8-bit 420jpeg, 420, 420mpeg2, 420paldv, 422, 444, 444alpha, mono)"),
            ))
        }
    };
    Ok(Header {
        width,
        height,
        fps,
        layout,
        range,
    })
}

/// Parses an `F` value "num:den"; unknown ("0:0") or malformed rates give `None`.
fn parse_rate(value: &str) -> Option<f32> {
    let (num, den) = value.split_once(':')?;
    let (num, den) = (num.parse::<u32>().ok()?, den.parse::<u32>().ok()?);
    (num > 0 && den > 0).then(|| num as f32 / den as f32)
}

/// Bilinear taps for sampling a plane of `n` samples at `i·scale + offset`, clamped to the edges.
fn taps(count: usize, plane_len: usize, scale: f32, offset: f32) -> Vec<(usize, usize, f32)> {
    (0..count)
        .map(|i| {
            let pos = (i as f32 * scale + offset).clamp(0.0, (plane_len - 1) as f32);
            let i0 = pos.floor() as usize;
            let i1 = (i0 + 1).min(plane_len - 1);
            (i0, i1, pos - i0 as f32)
        })
        .collect()
}

/// Converts one frame of raw planes to RGB, appending to `out`.
fn decode_frame(header: &Header, range: ColorRange, raw: &[u8], out: &mut Vec<f32>) {
    let (w, h) = (header.width, header.height);
    let luma = &raw[..w * h];
    let Some((fx, fy)) = header.layout.subsampling else {
        out.extend(
            luma.iter()
                .flat_map(|&y| ycbcr_to_rgb([range.decode(y, false), 128.0, 128.0])),
        );
        return;
    };
    let (cw, ch) = header.chroma_size();
    let cb = &raw[w * h..w * h + cw * ch];
    let cr = &raw[w * h + cw * ch..w * h + 2 * cw * ch];
    let (ox, oy) = header.layout.offset;
    let xtaps = taps(w, cw, 1.0 / fx as f32, ox);
    let ytaps = taps(h, ch, 1.0 / fy as f32, oy);
    let sample =
        |plane: &[u8], (x0, x1, tx): (usize, usize, f32), (y0, y1, ty): (usize, usize, f32)| {
            let at = |x: usize, y: usize| range.decode(plane[y * cw + x], true);
            let top = at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx;
            let bottom = at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx;
            top * (1.0 - ty) + bottom * ty
        };
    out.reserve(w * h * 3);
    for (y, &yt) in ytaps.iter().enumerate() {
        for (x, &xt) in xtaps.iter().enumerate() {
            let ycc = [
                range.decode(luma[y * w + x], false),
                sample(cb, xt, yt),
                sample(cr, xt, yt),
            ];
            out.extend(ycbcr_to_rgb(ycc));
        }
    }
}

/// Writes `video` as an 8-bit full-range Y4M with the given chroma subsampling and frame rate.
pub fn write_y4m(
    path: impl AsRef<Path>,
    video: &Video,
    chroma: Chroma,
    fps: f32,
) -> Result<(), VideoError> {
    let path = path.as_ref();
    check_writable(path, video)?;
    let (num, den) = rate_fraction(fps).ok_or_else(|| {
        VideoError::invalid(path, format!("frame rate {fps} is not a positive number"))
    })?;
    let tag = match chroma {
        Chroma::C420 => "420jpeg",
        Chroma::C444 => "444",
    };
    let (w, h) = (video.width, video.height);
    let header = format!("YUV4MPEG2 W{w} H{h} F{num}:{den} Ip A1:1 C{tag} XCOLORRANGE=FULL\n");
    write_file_atomically(path, |out| {
        let write_err = |e| VideoError::io(path, "write", e);
        out.write_all(header.as_bytes()).map_err(write_err)?;
        let mut planes = [Vec::new(), Vec::new(), Vec::new()];
        for f in 0..video.frames {
            encode_frame(video, f, chroma, &mut planes);
            out.write_all(b"FRAME\n").map_err(write_err)?;
            for plane in &planes {
                out.write_all(plane).map_err(write_err)?;
            }
        }
        Ok(())
    })
}

/// Fills `planes` with the Y, Cb, Cr codes of frame `f`.
fn encode_frame(video: &Video, f: usize, chroma: Chroma, planes: &mut [Vec<u8>; 3]) {
    let (w, h) = (video.width, video.height);
    let ycc: Vec<[f32; 3]> = video
        .frame(f)
        .chunks_exact(3)
        .map(|p| rgb_to_ycbcr([p[0], p[1], p[2]]))
        .collect();
    let full = ColorRange::Full;
    planes[0].clear();
    planes[0].extend(ycc.iter().map(|p| full.encode(p[0], false)));
    for c in 1..3 {
        let plane = &mut planes[c];
        plane.clear();
        match chroma {
            Chroma::C444 => plane.extend(ycc.iter().map(|p| full.encode(p[c], true))),
            Chroma::C420 => {
                // Box average of each 2×2 block (fewer pixels on an odd last row/column), which
                // is the centred siting 420jpeg declares.
                for cy in 0..h.div_ceil(2) {
                    for cx in 0..w.div_ceil(2) {
                        let (mut sum, mut count) = (0.0, 0.0);
                        for y in 2 * cy..(2 * cy + 2).min(h) {
                            for x in 2 * cx..(2 * cx + 2).min(w) {
                                sum += ycc[y * w + x][c];
                                count += 1.0;
                            }
                        }
                        plane.push(full.encode(sum / count, true));
                    }
                }
            }
        }
    }
}

/// The Y4M `F` fraction for a frame rate: integers exactly, NTSC-style rates over 1001, others
/// to 1/1000. `None` for non-positive or non-finite rates.
pub(crate) fn rate_fraction(fps: f32) -> Option<(u32, u32)> {
    if !fps.is_finite() || fps <= 0.0 || fps > 1.0e6 {
        return None;
    }
    let fps = f64::from(fps);
    if (fps - fps.round()).abs() < 1e-4 && fps.round() >= 1.0 {
        return Some((fps.round() as u32, 1));
    }
    let ntsc = (fps * 1001.0).round();
    if ntsc >= 1.0 && (ntsc / 1001.0 - fps).abs() < 1e-4 * fps {
        return Some((ntsc as u32, 1001));
    }
    let num = (fps * 1000.0).round().max(1.0) as u32;
    let g = gcd(num, 1000);
    Some((num / g, 1000 / g))
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
