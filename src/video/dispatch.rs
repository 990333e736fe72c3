//! `read_video` / `write_video`: pick the format from the path.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::color::ColorRange;
use super::error::VideoError;
use super::gif_file::{read_gif_and_fps, write_gif};
use super::png_dir::{read_png, read_png_dir, write_png, write_png_dir};
use super::y4m::{read_y4m_and_fps, write_y4m, Chroma};
use super::Video;

/// Frame rate used when a format needs one and the caller gave none (Wan's native rate).
pub const DEFAULT_FPS: f32 = 16.0;

/// Reads a video: a folder is read as PNG frames; a file by its content (Y4M, GIF or a single
/// PNG, whatever its extension).
pub fn read_video(path: impl AsRef<Path>) -> Result<Video, VideoError> {
    read_video_with_fps(path).map(|(video, _)| video)
}

/// Like [`read_video`], also returning the frame rate the file declares (Y4M `F` tag, GIF delay).
pub fn read_video_with_fps(path: impl AsRef<Path>) -> Result<(Video, Option<f32>), VideoError> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| VideoError::io(path, "open", e))?;
    if meta.is_dir() {
        return read_png_dir(path).map(|v| (v, None));
    }
    let mut magic = [0u8; 9];
    let mut file = File::open(path).map_err(|e| VideoError::io(path, "open", e))?;
    let mut n = 0;
    while n < magic.len() {
        match file
            .read(&mut magic[n..])
            .map_err(|e| VideoError::io(path, "read", e))?
        {
            0 => break,
            got => n += got,
        }
    }
    let magic = &magic[..n];
    if magic.starts_with(b"YUV4MPEG2") {
        read_y4m_and_fps(path, ColorRange::Full)
    } else if magic.starts_with(b"GIF87a") || magic.starts_with(b"GIF89a") {
        read_gif_and_fps(path)
    } else if magic.starts_with(b"\x89PNG\r\n\x1a\n") {
        read_png(path).map(|v| (v, None))
    } else if n == 0 {
        Err(VideoError::format(path, "file is empty"))
    } else {
        Err(VideoError::format(
            path,
            format!(
                "not a Y4M, GIF or PNG file (starts with {:?})",
                String::from_utf8_lossy(magic)
            ),
        ))
    }
}

/// Writes a video at [`DEFAULT_FPS`]; see [`write_video_with_fps`].
pub fn write_video(path: impl AsRef<Path>, video: &Video) -> Result<(), VideoError> {
    write_video_with_fps(path, video, DEFAULT_FPS)
}

/// Writes a video in the format its path names: `.y4m` (4:4:4, full range), `.gif`, `.png` (a
/// one-frame video), or a folder of PNG frames for an existing folder, a path ending in `/`, or
/// a path without extension.
pub fn write_video_with_fps(
    path: impl AsRef<Path>,
    video: &Video,
    fps: f32,
) -> Result<(), VideoError> {
    let path = path.as_ref();
    let trailing_slash = path
        .as_os_str()
        .to_string_lossy()
        .ends_with(['/', std::path::MAIN_SEPARATOR]);
    if path.is_dir() || trailing_slash {
        return write_png_dir(path, video);
    }
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match extension.as_deref() {
        Some("y4m") => write_y4m(path, video, Chroma::C444, fps),
        Some("gif") => write_gif(path, video, fps),
        Some("png") => write_png(path, video),
        None => write_png_dir(path, video),
        Some(other) => Err(VideoError::unsupported(
            path,
            format!(
                "cannot write .{other} videos (use .y4m, .gif, .png or a folder of PNG frames)"
            ),
        )),
    }
}
