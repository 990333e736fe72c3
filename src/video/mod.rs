//! Videos in memory and on disk (Y4M, PNG frame folders, animated GIF), resizing and cropping.
//!
//! - Files: [`read_video`] / [`write_video`] pick the format from the path (a folder is PNG
//!   frames); each format also has its own reader and writer (`y4m`, `gif_file`, `png_dir`).
//! - Every writer is atomic: it writes a temporary file (or, for PNG frames, a temporary folder)
//!   beside the target and renames it into place, so readers never see half a video.
//! - Every reader returns a [`VideoError`] naming the file and the fault on bad input, never panics,
//!   and refuses sizes beyond [`MAX_FRAME_PIXELS`] / [`MAX_VIDEO_VALUES`] before allocating them.
//! - Geometry: [`resize`], [`center_crop`], [`select_frames`] and [`fit`] (to a model's shape);
//!   [`write_side_by_side_gif`] for visual comparisons.

/// An RGB video with values in [0, 1], stored frame-major: `data[((f·height + y)·width + x)·3 + c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Video {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Video {
    /// A black video.
    pub fn new(frames: usize, height: usize, width: usize) -> Self {
        Video {
            frames,
            height,
            width,
            data: vec![0.0; frames * height * width * 3],
        }
    }

    fn index(&self, f: usize, y: usize, x: usize) -> usize {
        ((f * self.height + y) * self.width + x) * 3
    }

    /// RGB of one pixel.
    pub fn pixel(&self, f: usize, y: usize, x: usize) -> [f32; 3] {
        let i = self.index(f, y, x);
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the RGB of one pixel.
    pub fn set_pixel(&mut self, f: usize, y: usize, x: usize, rgb: [f32; 3]) {
        let i = self.index(f, y, x);
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// One frame as `height·width·3` values.
    pub fn frame(&self, f: usize) -> &[f32] {
        let n = self.height * self.width * 3;
        &self.data[f * n..(f + 1) * n]
    }

    /// One frame, mutable.
    pub fn frame_mut(&mut self, f: usize) -> &mut [f32] {
        let n = self.height * self.width * 3;
        &mut self.data[f * n..(f + 1) * n]
    }
}

mod atomic;
mod color;
mod dispatch;
mod error;
mod font;
mod gif_file;
mod png_dir;
mod quantize;
mod resize;
mod side_by_side;
mod y4m;

pub use color::ColorRange;
pub use dispatch::{
    read_video, read_video_with_fps, write_video, write_video_with_fps, DEFAULT_FPS,
};
pub use error::{VideoError, MAX_FRAME_PIXELS, MAX_VIDEO_VALUES};
pub use gif_file::{read_gif, write_gif};
pub use png_dir::{read_png, read_png_dir, write_png, write_png_dir};
pub use resize::{center_crop, evenly_spaced_frames, fit, resize, select_frames, Filter};
pub use side_by_side::{write_side_by_side_gif, SEPARATOR_WIDTH};
pub use y4m::{read_y4m, read_y4m_with_range, write_y4m, Chroma};
