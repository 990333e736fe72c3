//! Object shapes: signed distance, extent and area in the shape's own unit frame.
//!
//! A shape lives in a local frame where its size is 1 (a circle of radius 1, the other shapes sized to
//! look about as large); y points down, as in images. Every shape is symmetric about its origin under
//! its own rotations, so the origin is also its centroid.

use std::sync::OnceLock;

/// The shapes an object can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
}

/// Half the side of a square of size 1 (smaller than 1 so that a square looks as big as a circle).
const SQUARE_HALF_SIDE: f32 = 0.87;
/// Circumradius of the equilateral triangle (larger than 1 for the same reason).
const TRIANGLE_RADIUS: f32 = 1.2;
const STAR_OUTER: f32 = 1.25;
const STAR_INNER: f32 = 0.52;

impl Shape {
    pub const ALL: [Shape; 4] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Star];

    /// The caption word for this shape.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
        }
    }

    /// The shape with this caption word, if any.
    pub fn from_name(name: &str) -> Option<Shape> {
        Shape::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// Signed distance from the local point `p` to the shape's outline (negative inside).
    pub fn signed_distance(self, p: [f32; 2]) -> f32 {
        match self {
            Shape::Circle => (p[0] * p[0] + p[1] * p[1]).sqrt() - 1.0,
            Shape::Square => {
                let qx = p[0].abs() - SQUARE_HALF_SIDE;
                let qy = p[1].abs() - SQUARE_HALF_SIDE;
                let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
                outside + qx.max(qy).min(0.0)
            }
            Shape::Triangle | Shape::Star => polygon_signed_distance(p, self.vertices()),
        }
    }

    /// Outline vertices of the polygonal shapes (empty for the circle).
    pub fn vertices(self) -> &'static [[f32; 2]] {
        static TRIANGLE: OnceLock<Vec<[f32; 2]>> = OnceLock::new();
        static STAR: OnceLock<Vec<[f32; 2]>> = OnceLock::new();
        static SQUARE: [[f32; 2]; 4] = [
            [-SQUARE_HALF_SIDE, -SQUARE_HALF_SIDE],
            [SQUARE_HALF_SIDE, -SQUARE_HALF_SIDE],
            [SQUARE_HALF_SIDE, SQUARE_HALF_SIDE],
            [-SQUARE_HALF_SIDE, SQUARE_HALF_SIDE],
        ];
        match self {
            Shape::Circle => &[],
            Shape::Square => &SQUARE,
            Shape::Triangle => TRIANGLE.get_or_init(|| regular_polygon(&[TRIANGLE_RADIUS], 3)),
            Shape::Star => STAR.get_or_init(|| regular_polygon(&[STAR_OUTER, STAR_INNER], 10)),
        }
    }

    /// Half-extents (x, y) of the shape's bounding box after rotating it by `angle` radians.
    pub fn half_extent(self, angle: f32) -> [f32; 2] {
        if self == Shape::Circle {
            return [1.0, 1.0];
        }
        let (sin, cos) = angle.sin_cos();
        self.vertices().iter().fold([0.0f32, 0.0], |acc, v| {
            let x = v[0] * cos - v[1] * sin;
            let y = v[0] * sin + v[1] * cos;
            [acc[0].max(x.abs()), acc[1].max(y.abs())]
        })
    }

    /// Area of the shape at size 1.
    pub fn area(self) -> f32 {
        if self == Shape::Circle {
            return std::f32::consts::PI;
        }
        let v = self.vertices();
        let twice: f32 = (0..v.len())
            .map(|i| {
                let (a, b) = (v[i], v[(i + 1) % v.len()]);
                a[0] * b[1] - b[0] * a[1]
            })
            .sum();
        twice.abs() / 2.0
    }
}

/// Vertices of a polygon pointing up whose radii cycle through `radii` (one radius: regular polygon,
/// two: a star with outer and inner points).
fn regular_polygon(radii: &[f32], count: usize) -> Vec<[f32; 2]> {
    (0..count)
        .map(|i| {
            let angle = std::f32::consts::TAU * i as f32 / count as f32;
            let r = radii[i % radii.len()];
            [r * angle.sin(), -r * angle.cos()]
        })
        .collect()
}

/// Exact signed distance to a closed polygon: nearest edge distance, sign from the crossing count.
fn polygon_signed_distance(p: [f32; 2], v: &[[f32; 2]]) -> f32 {
    let mut nearest = f32::INFINITY;
    let mut inside = false;
    let mut j = v.len() - 1;
    for i in 0..v.len() {
        let (a, b) = (v[i], v[j]);
        let e = [b[0] - a[0], b[1] - a[1]];
        let w = [p[0] - a[0], p[1] - a[1]];
        let t = ((w[0] * e[0] + w[1] * e[1]) / (e[0] * e[0] + e[1] * e[1])).clamp(0.0, 1.0);
        let d = [w[0] - e[0] * t, w[1] - e[1] * t];
        nearest = nearest.min(d[0] * d[0] + d[1] * d[1]);
        if (a[1] > p[1]) != (b[1] > p[1]) && p[0] < a[0] + (p[1] - a[1]) * e[0] / e[1] {
            inside = !inside;
        }
        j = i;
    }
    let distance = nearest.sqrt();
    if inside {
        -distance
    } else {
        distance
    }
}
