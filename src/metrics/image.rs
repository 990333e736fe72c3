//! Grayscale planes for the point tracker: luminance, Gaussian pyramids, Scharr gradients and
//! bilinear sampling with clamp-to-edge borders.

use crate::video::Video;

/// One single-channel image, row-major `data[y·width + x]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Plane {
    /// Rec. 601 luminance of one frame.
    pub fn luminance(video: &Video, frame: usize) -> Plane {
        let data = video
            .frame(frame)
            .chunks_exact(3)
            .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
            .collect();
        Plane {
            width: video.width,
            height: video.height,
            data,
        }
    }

    /// The value at an integer position, with coordinates clamped into the image.
    pub fn at(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.data[y * self.width + x]
    }

    /// Bilinear sample at a real position (pixel centres at integer coordinates), clamped to edge.
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let x0 = x.floor();
        let y0 = y.floor();
        let fx = x - x0;
        let fy = y - y0;
        let (xi, yi) = (x0 as isize, y0 as isize);
        let top = self.at(xi, yi) * (1.0 - fx) + self.at(xi + 1, yi) * fx;
        let bottom = self.at(xi, yi + 1) * (1.0 - fx) + self.at(xi + 1, yi + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// Half-resolution image: 5-tap binomial blur (1 4 6 4 1)/16 in each direction, then every
    /// second pixel, as in Bouguet's pyramid (the blur keeps the coarse level free of aliasing).
    pub fn downsample(&self) -> Plane {
        const TAPS: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
        let (w, h) = (self.width, self.height);
        let mut rows = vec![0.0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                rows[y * w + x] = (0..5)
                    .map(|k| TAPS[k] * self.at(x as isize + k as isize - 2, y as isize))
                    .sum();
            }
        }
        let rows = Plane {
            width: w,
            height: h,
            data: rows,
        };
        let (nw, nh) = (w.div_ceil(2), h.div_ceil(2));
        let mut data = vec![0.0f32; nw * nh];
        for y in 0..nh {
            for x in 0..nw {
                data[y * nw + x] = (0..5)
                    .map(|k| TAPS[k] * rows.at(2 * x as isize, 2 * y as isize + k as isize - 2))
                    .sum();
            }
        }
        Plane {
            width: nw,
            height: nh,
            data,
        }
    }

    /// Scharr derivatives (d/dx, d/dy) normalised to intensity units per pixel (kernel sum 32).
    pub fn gradients(&self) -> (Plane, Plane) {
        let (w, h) = (self.width, self.height);
        let mut gx = vec![0.0f32; w * h];
        let mut gy = vec![0.0f32; w * h];
        for y in 0..h as isize {
            for x in 0..w as isize {
                let p = |dx: isize, dy: isize| self.at(x + dx, y + dy);
                let i = y as usize * w + x as usize;
                gx[i] = (3.0 * (p(1, -1) - p(-1, -1))
                    + 10.0 * (p(1, 0) - p(-1, 0))
                    + 3.0 * (p(1, 1) - p(-1, 1)))
                    / 32.0;
                gy[i] = (3.0 * (p(-1, 1) - p(-1, -1))
                    + 10.0 * (p(0, 1) - p(0, -1))
                    + 3.0 * (p(1, 1) - p(1, -1)))
                    / 32.0;
            }
        }
        (
            Plane {
                width: w,
                height: h,
                data: gx,
            },
            Plane {
                width: w,
                height: h,
                data: gy,
            },
        )
    }
}

/// One pyramid level: the image and its gradients.
#[derive(Clone, Debug)]
pub struct Level {
    pub image: Plane,
    pub gx: Plane,
    pub gy: Plane,
}

/// A Gaussian pyramid of one frame; level 0 is full resolution.
#[derive(Clone, Debug)]
pub struct Pyramid {
    pub levels: Vec<Level>,
}

impl Pyramid {
    /// Builds up to `max_levels` levels, stopping before a level's shorter side drops below `min_side`.
    pub fn new(base: Plane, max_levels: usize, min_side: usize) -> Pyramid {
        let mut levels = Vec::new();
        let mut image = base;
        loop {
            let (gx, gy) = image.gradients();
            let next_ok =
                levels.len() + 1 < max_levels && image.width.min(image.height) / 2 >= min_side;
            let next = next_ok.then(|| image.downsample());
            levels.push(Level { image, gx, gy });
            match next {
                Some(n) => image = n,
                None => break,
            }
        }
        Pyramid { levels }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Plane {
        let data = (0..h)
            .flat_map(|y| (0..w).map(move |x| 0.1 * x as f32 + 0.02 * y as f32))
            .collect();
        Plane {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn bilinear_sampling_is_exact_on_a_linear_ramp() {
        let p = ramp(8, 6);
        let v = p.sample(2.25, 3.5);
        assert!((v - (0.1 * 2.25 + 0.02 * 3.5)).abs() < 1e-6, "{v}");
        // Clamped outside the image.
        assert!((p.sample(-3.0, 0.0) - 0.0).abs() < 1e-6);
    }

    #[test]
    fn scharr_gradient_of_a_ramp_is_its_slope() {
        let (gx, gy) = ramp(8, 6).gradients();
        // Interior pixel (edges are clamped, so their central difference is halved).
        assert!((gx.data[3 * 8 + 4] - 0.1).abs() < 1e-6);
        assert!((gy.data[3 * 8 + 4] - 0.02).abs() < 1e-6);
    }

    #[test]
    fn pyramid_halves_each_level_and_keeps_the_mean() {
        let p = Pyramid::new(ramp(64, 48), 3, 8);
        let sizes: Vec<_> = p
            .levels
            .iter()
            .map(|l| (l.image.width, l.image.height))
            .collect();
        assert_eq!(sizes, vec![(64, 48), (32, 24), (16, 12)]);
        // The binomial filter sums to one: a constant image stays constant at every level.
        let flat = Plane {
            width: 20,
            height: 20,
            data: vec![0.7; 400],
        };
        let top = Pyramid::new(flat, 3, 4)
            .levels
            .pop()
            .map(|l| l.image)
            .into_iter()
            .flat_map(|i| i.data);
        assert!(top.into_iter().all(|v| (v - 0.7).abs() < 1e-6));
    }
}
