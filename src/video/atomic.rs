//! Atomic writes: build the output under a temporary name in the same folder, then rename it,
//! so a reader never sees a half-written video and a failed write leaves the old one intact.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::VideoError;

/// A name beside `path` that no other writer (thread or process) uses: `.name.tmp-<pid>-<n>`.
pub(crate) fn temporary_sibling(path: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".to_string());
    let parent = parent_dir(path);
    parent.join(format!(".{name}.{tag}-{}-{n}", std::process::id()))
}

/// The folder that holds `path` ("." for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes one file atomically: `fill` writes the content into a buffered temporary file, which is
/// flushed, synced and renamed over `path`. On any error the temporary file is removed.
pub(crate) fn write_file_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<fs::File>) -> Result<(), VideoError>,
) -> Result<(), VideoError> {
    let temp = temporary_sibling(path, "tmp");
    let result = (|| {
        let file = fs::File::create(&temp)
            .map_err(|e| VideoError::io(path, "create a temporary file beside it", e))?;
        let mut writer = BufWriter::new(file);
        fill(&mut writer)?;
        writer
            .flush()
            .map_err(|e| VideoError::io(path, "write", e))?;
        let file = writer
            .into_inner()
            .map_err(|e| VideoError::io(path, "write", e.into_error()))?;
        file.sync_all()
            .map_err(|e| VideoError::io(path, "sync", e))?;
        fs::rename(&temp, path)
            .map_err(|e| VideoError::io(path, "rename the temporary file onto it", e))
    })();
    if result.is_err() {
        // Best effort: the original error is what the caller needs to see.
        let _ = fs::remove_file(&temp);
    }
    result
}
