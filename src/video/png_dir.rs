//! PNG frames: single PNG files and folders of PNG frames.
//!
//! Reading a folder takes every `*.png` file in it (case-insensitive extension; other files and
//! sub-folders are ignored) in natural name order, so `f2.png` comes before `f10.png` and
//! zero-padded names sort as usual. Any bit depth and colour type is accepted (palette and
//! low-bit grey are expanded, 16-bit is kept to full precision); alpha is composited over black.
//!
//! Writing a folder produces `frame_00000.png`, `frame_00001.png`, … (8-bit RGB) in a temporary
//! folder beside the target, which is then renamed into place. An existing target folder is
//! replaced, but only when it holds nothing except `.png` files, so a mistyped path cannot delete
//! unrelated data.

use std::cmp::Ordering;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::atomic::{temporary_sibling, write_file_atomically};
use super::color::to_u8;
use super::error::{check_frame_size, check_video_growth, check_writable, VideoError};
use super::Video;

/// Bytes the PNG decoder may allocate for one frame (a 16-bit RGBA 8192×8192 image fits).
const PNG_DECODE_LIMIT: usize = 1 << 29;

/// One decoded PNG image.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<f32>,
}

/// Reads one PNG file as a one-frame video.
pub fn read_png(path: impl AsRef<Path>) -> Result<Video, VideoError> {
    let image = decode_png(path.as_ref())?;
    Ok(Video {
        frames: 1,
        height: image.height,
        width: image.width,
        data: image.rgb,
    })
}

/// Reads a folder of PNG frames (see the module notes for which files and in which order).
pub fn read_png_dir(dir: impl AsRef<Path>) -> Result<Video, VideoError> {
    let dir = dir.as_ref();
    let files = png_files(dir)?;
    let Some(first_file) = files.first() else {
        return Err(VideoError::format(dir, "contains no .png files"));
    };
    let first = decode_png(first_file)?;
    let (width, height) = (first.width, first.height);
    let mut data = first.rgb;
    for (frame, file) in files.iter().enumerate().skip(1) {
        check_video_growth(dir, frame, width, height)?;
        let image = decode_png(file)?;
        if (image.width, image.height) != (width, height) {
            return Err(VideoError::format(
                dir,
                format!(
                    "{} is {}×{} but the first frame ({}) is {width}×{height}",
                    file_name(file),
                    image.width,
                    image.height,
                    file_name(first_file)
                ),
            ));
        }
        data.extend(image.rgb);
    }
    Ok(Video {
        frames: files.len(),
        height,
        width,
        data,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The `.png` files directly inside `dir`, in natural name order.
fn png_files(dir: &Path) -> Result<Vec<PathBuf>, VideoError> {
    let entries = fs::read_dir(dir).map_err(|e| VideoError::io(dir, "list the folder", e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| VideoError::io(dir, "list the folder", e))?
            .path();
        if is_png_name(&path) && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| natural_order(&file_name(a), &file_name(b)));
    Ok(files)
}

fn is_png_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// Compares names with runs of digits compared as numbers ("f2" < "f10").
pub(crate) fn natural_order(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                // Longer digit strings (without leading zeros) are larger numbers; equal lengths
                // compare digit by digit; ties fall back to the padded form for a total order.
                let order = na.len().cmp(&nb.len()).then(na.cmp(nb)).then(da.cmp(&db));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

fn decode_png(path: &Path) -> Result<Image, VideoError> {
    let file = File::open(path).map_err(|e| VideoError::io(path, "open", e))?;
    let mut decoder = png::Decoder::new_with_limits(
        BufReader::new(file),
        png::Limits {
            bytes: PNG_DECODE_LIMIT,
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND);
    let invalid = |e: png::DecodingError| VideoError::format(path, format!("not a valid PNG: {e}"));
    let mut reader = decoder.read_info().map_err(invalid)?;
    let (width, height) = (reader.info().width as usize, reader.info().height as usize);
    check_frame_size(path, width, height)?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let out = reader.next_frame(&mut buf).map_err(invalid)?;
    let channels = match out.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(VideoError::unsupported(
                path,
                "palette image was not expanded",
            ))
        }
    };
    let sixteen = out.bit_depth == png::BitDepth::Sixteen;
    let bytes_per_sample = if sixteen { 2 } else { 1 };
    let row_len = width * channels * bytes_per_sample;
    if out.line_size < row_len || buf.len() < out.line_size * height {
        return Err(VideoError::format(
            path,
            "decoded rows are shorter than the image width",
        ));
    }
    let mut rgb = Vec::with_capacity(width * height * 3);
    let mut pixel = [0.0f32; 4];
    for row in buf.chunks_exact(out.line_size).take(height) {
        for px in row[..row_len].chunks_exact(channels * bytes_per_sample) {
            for (c, value) in pixel.iter_mut().take(channels).enumerate() {
                *value = if sixteen {
                    f32::from(u16::from_be_bytes([px[2 * c], px[2 * c + 1]])) / 65535.0
                } else {
                    f32::from(px[c]) / 255.0
                };
            }
            let (color, alpha) = match channels {
                1 => ([pixel[0]; 3], 1.0),
                2 => ([pixel[0]; 3], pixel[1]),
                3 => ([pixel[0], pixel[1], pixel[2]], 1.0),
                _ => ([pixel[0], pixel[1], pixel[2]], pixel[3]),
            };
            rgb.extend(color.map(|v| v * alpha));
        }
    }
    Ok(Image { width, height, rgb })
}

/// Encodes frame `f` of `video` as an 8-bit RGB PNG into `out`.
fn encode_png(
    path: &Path,
    video: &Video,
    f: usize,
    out: &mut impl Write,
) -> Result<(), VideoError> {
    let dim = |n: usize| {
        u32::try_from(n)
            .map_err(|_| VideoError::invalid(path, format!("dimension {n} exceeds the PNG limit")))
    };
    let mut encoder = png::Encoder::new(out, dim(video.width)?, dim(video.height)?);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let encode_err =
        |e: png::EncodingError| VideoError::format(path, format!("PNG encoding failed: {e}"));
    let mut writer = encoder.write_header().map_err(encode_err)?;
    let bytes: Vec<u8> = video.frame(f).iter().map(|&v| to_u8(v)).collect();
    writer.write_image_data(&bytes).map_err(encode_err)?;
    writer.finish().map_err(encode_err)
}

/// Writes a one-frame video as a single PNG file, atomically.
pub fn write_png(path: impl AsRef<Path>, video: &Video) -> Result<(), VideoError> {
    let path = path.as_ref();
    check_writable(path, video)?;
    if video.frames != 1 {
        return Err(VideoError::invalid(
            path,
            format!(
                "a .png file holds one frame but the video has {}; write to a folder instead",
                video.frames
            ),
        ));
    }
    write_file_atomically(path, |out| encode_png(path, video, 0, out))
}

/// Writes every frame as `frame_NNNNN.png` into `dir`, replacing the folder atomically.
pub fn write_png_dir(dir: impl AsRef<Path>, video: &Video) -> Result<(), VideoError> {
    let dir = dir.as_ref();
    check_writable(dir, video)?;
    let existing = match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            ensure_only_png_files(dir)?;
            true
        }
        Ok(_) => return Err(VideoError::invalid(dir, "exists and is not a folder")),
        Err(_) => false,
    };
    let temp = temporary_sibling(dir, "tmp");
    let result = fill_frame_dir(dir, &temp, video).and_then(|()| {
        if !existing {
            return fs::rename(&temp, dir)
                .map_err(|e| VideoError::io(dir, "rename the temporary folder onto it", e));
        }
        // A folder cannot be renamed over a non-empty one: move the old one aside first.
        let old = temporary_sibling(dir, "old");
        fs::rename(dir, &old)
            .map_err(|e| VideoError::io(dir, "move the previous frames aside", e))?;
        if let Err(e) = fs::rename(&temp, dir) {
            let _ = fs::rename(&old, dir);
            return Err(VideoError::io(
                dir,
                "rename the temporary folder onto it",
                e,
            ));
        }
        fs::remove_dir_all(&old).map_err(|e| VideoError::io(&old, "remove the previous frames", e))
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&temp);
    }
    result
}

fn ensure_only_png_files(dir: &Path) -> Result<(), VideoError> {
    for entry in fs::read_dir(dir).map_err(|e| VideoError::io(dir, "list the folder", e))? {
        let path = entry
            .map_err(|e| VideoError::io(dir, "list the folder", e))?
            .path();
        if !(is_png_name(&path) && path.is_file()) {
            return Err(VideoError::invalid(
                dir,
                format!(
                    "refusing to replace the folder: it holds {}, which is not a .png frame",
                    file_name(&path)
                ),
            ));
        }
    }
    Ok(())
}

fn fill_frame_dir(dir: &Path, temp: &Path, video: &Video) -> Result<(), VideoError> {
    fs::create_dir(temp)
        .map_err(|e| VideoError::io(dir, "create a temporary folder beside it", e))?;
    let digits = (video.frames - 1).to_string().len().max(5);
    for f in 0..video.frames {
        let name = format!("frame_{f:0digits$}.png");
        // Errors name the frame's final path; the temporary folder means nothing to the user.
        let shown = dir.join(&name);
        let file =
            File::create(temp.join(&name)).map_err(|e| VideoError::io(&shown, "create", e))?;
        let mut out = BufWriter::new(file);
        encode_png(&shown, video, f, &mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| VideoError::io(&shown, "write", e.into_error()))?;
        file.sync_all()
            .map_err(|e| VideoError::io(&shown, "sync", e))?;
    }
    Ok(())
}
