//! Videos in memory and on disk (Y4M, PNG frame folders, animated GIF), resizing and cropping.

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
        Video { frames, height, width, data: vec![0.0; frames * height * width * 3] }
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
