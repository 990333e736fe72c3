//! The camera: a pan/tilt of its centre and a zoom, both over the whole clip, and the per-frame
//! mapping between world and pixel coordinates.
//!
//! World coordinates are normalised per axis: the first frame (with a still camera) shows x in [0, 1]
//! across the width and y in [0, 1] down the height. Texture coordinates are world coordinates
//! rescaled so that 1 unit is the shorter side of the frame, which keeps patterns and shapes square
//! on any aspect ratio.

/// Camera motion over a clip. Pan is the displacement of the view centre (world units, +x right,
/// +y down: a pan left is negative x, a tilt up is negative y); zoom is the scale at the last frame
/// (> 1 zooms in), reached geometrically so that the zoom speed looks constant.
#[derive(Clone, Debug, PartialEq)]
pub struct Camera {
    pub pan: [f32; 2],
    pub zoom: f32,
}

impl Default for Camera {
    fn default() -> Self {
        Camera::still()
    }
}

impl Camera {
    pub fn still() -> Self {
        Camera {
            pan: [0.0, 0.0],
            zoom: 1.0,
        }
    }

    /// Whether the camera moves at all.
    pub fn is_still(&self) -> bool {
        self.pan == [0.0, 0.0] && self.zoom == 1.0
    }

    /// The view at clip time `t` in [0, 1] for a frame of `height`×`width` pixels.
    pub fn view(&self, t: f32, height: usize, width: usize) -> View {
        View {
            center: [0.5 + self.pan[0] * t, 0.5 + self.pan[1] * t],
            zoom: self.zoom.max(1e-3).powf(t),
            width: width as f32,
            height: height as f32,
        }
    }
}

/// The camera at one frame: maps world points to pixel coordinates (pixel (x, y) covers
/// [x, x+1]×[y, y+1], so its centre is at x + 0.5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    /// World point at the centre of the frame.
    pub center: [f32; 2],
    pub zoom: f32,
    pub width: f32,
    pub height: f32,
}

impl View {
    /// Pixels per texture unit (the shorter side of the frame, scaled by the zoom).
    pub fn scale(&self) -> f32 {
        self.width.min(self.height) * self.zoom
    }

    /// View centre of a plane that follows the camera by `parallax` (1: the objects' plane).
    fn plane_center(&self, parallax: f32) -> [f32; 2] {
        [
            0.5 + (self.center[0] - 0.5) * parallax,
            0.5 + (self.center[1] - 0.5) * parallax,
        ]
    }

    /// Pixel coordinates of a world point on a plane with the given parallax.
    pub fn to_pixel_on(&self, world: [f32; 2], parallax: f32) -> [f32; 2] {
        let c = self.plane_center(parallax);
        [
            ((world[0] - c[0]) * self.zoom + 0.5) * self.width,
            ((world[1] - c[1]) * self.zoom + 0.5) * self.height,
        ]
    }

    /// Pixel coordinates of a world point on the objects' plane.
    pub fn to_pixel(&self, world: [f32; 2]) -> [f32; 2] {
        self.to_pixel_on(world, 1.0)
    }

    /// World point on a plane with the given parallax seen at pixel coordinates `pixel`.
    pub fn to_world_on(&self, pixel: [f32; 2], parallax: f32) -> [f32; 2] {
        let c = self.plane_center(parallax);
        [
            (pixel[0] / self.width - 0.5) / self.zoom + c[0],
            (pixel[1] / self.height - 0.5) / self.zoom + c[1],
        ]
    }

    /// Texture coordinates of a world point.
    pub fn to_texture(&self, world: [f32; 2]) -> [f32; 2] {
        let short = self.width.min(self.height);
        [
            world[0] * self.width / short,
            world[1] * self.height / short,
        ]
    }

    /// The affine world→pixel map of the objects' plane as a 2×3 matrix
    /// (`pixel = M · [x, y, 1]`).
    pub fn matrix(&self) -> [[f32; 3]; 2] {
        let (sx, sy) = (self.zoom * self.width, self.zoom * self.height);
        [
            [sx, 0.0, (0.5 - self.center[0] * self.zoom) * self.width],
            [0.0, sy, (0.5 - self.center[1] * self.zoom) * self.height],
        ]
    }
}
