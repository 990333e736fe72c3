//! The error type of video I/O: every message names the file and what is wrong with it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::Video;

/// A failure to read, write or transform a video. `Display` always starts with the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The operating system refused an operation (open, read, write, rename, …).
    #[error("{}: cannot {action}: {source}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    /// The file's content is not a valid video of its format (corrupt, truncated, inconsistent).
    #[error("{}: {message}", .path.display())]
    Format { path: PathBuf, message: String },
    /// The file is valid but uses a feature fym does not read or write (e.g. 10-bit Y4M).
    #[error("{}: unsupported: {message}", .path.display())]
    Unsupported { path: PathBuf, message: String },
    /// The arguments of a call cannot produce a file (empty video, bad fps, size the format cannot hold).
    #[error("{}: {message}", .path.display())]
    InvalidArgument { path: PathBuf, message: String },
    /// A frame index outside the video, from `select_frames`.
    #[error("frame index {index} is out of range for a video of {frames} frames")]
    FrameOutOfRange { index: usize, frames: usize },
}

impl VideoError {
    /// The file (or folder) the error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            VideoError::Io { path, .. }
            | VideoError::Format { path, .. }
            | VideoError::Unsupported { path, .. }
            | VideoError::InvalidArgument { path, .. } => Some(path),
            VideoError::FrameOutOfRange { .. } => None,
        }
    }

    pub(crate) fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        VideoError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub(crate) fn format(path: &Path, message: impl fmt::Display) -> Self {
        VideoError::Format {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub(crate) fn unsupported(path: &Path, message: impl fmt::Display) -> Self {
        VideoError::Unsupported {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub(crate) fn invalid(path: &Path, message: impl fmt::Display) -> Self {
        VideoError::InvalidArgument {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// Largest frame (in pixels) any reader accepts: 8192×8192. Guards against a corrupt header
/// asking for a multi-gigabyte allocation before the missing data is noticed.
pub const MAX_FRAME_PIXELS: usize = 1 << 26;

/// Largest decoded video (in f32 values, i.e. 4 GiB) any reader builds.
pub const MAX_VIDEO_VALUES: usize = 1 << 30;

/// Checks a frame size read from a file header before anything is allocated for it.
pub(crate) fn check_frame_size(path: &Path, width: usize, height: usize) -> Result<(), VideoError> {
    if width == 0 || height == 0 {
        return Err(VideoError::format(
            path,
            format!("frame size {width}×{height} is empty"),
        ));
    }
    match width.checked_mul(height) {
        Some(pixels) if pixels <= MAX_FRAME_PIXELS => Ok(()),
        _ => Err(VideoError::format(
            path,
            format!("frame size {width}×{height} exceeds the limit of {MAX_FRAME_PIXELS} pixels"),
        )),
    }
}

/// Checks that appending one more frame keeps the decoded video within `MAX_VIDEO_VALUES`.
pub(crate) fn check_video_growth(
    path: &Path,
    frames: usize,
    width: usize,
    height: usize,
) -> Result<(), VideoError> {
    let values = (frames + 1).saturating_mul(width * height * 3);
    if values > MAX_VIDEO_VALUES {
        return Err(VideoError::format(
            path,
            format!("video exceeds the limit of {MAX_VIDEO_VALUES} values at frame {frames} ({width}×{height})"),
        ));
    }
    Ok(())
}

/// Checks that an in-memory video is consistent and non-empty before it is written to `path`.
pub(crate) fn check_writable(path: &Path, video: &Video) -> Result<(), VideoError> {
    match unwritable_because(video) {
        Some(problem) => Err(VideoError::invalid(path, problem)),
        None => Ok(()),
    }
}

/// Why `video` cannot be written (empty, or data length not matching its shape), if it cannot.
pub(crate) fn unwritable_because(video: &Video) -> Option<String> {
    let (f, h, w) = (video.frames, video.height, video.width);
    if f == 0 || h == 0 || w == 0 {
        return Some(format!(
            "cannot write an empty video ({f} frames of {w}×{h})"
        ));
    }
    let expected = f
        .checked_mul(h)
        .and_then(|n| n.checked_mul(w))
        .and_then(|n| n.checked_mul(3));
    if expected == Some(video.data.len()) {
        return None;
    }
    let expected = expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string());
    Some(format!(
        "video data holds {} values but {f} frames of {w}×{h} RGB need {expected}",
        video.data.len()
    ))
}
