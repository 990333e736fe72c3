//! Rendering a scene to a video with its ground truth.
//!
//! Anti-aliasing is analytic: every shape has an exact signed distance d (in pixels) and covers a
//! pixel by clamp(0.5 − d, 0, 1), which is the exact box-filtered coverage of a straight edge.
//! Layers are composited front to back, so the visible area of each object falls out of the same
//! pass (its coverage times what nearer layers left uncovered), and the background is only evaluated
//! where something still shows through.

use super::background::lerp3;
use super::camera::View;
use super::figure::{Figure, Joint, BONES, HEAD_RADIUS, LIMB_RADIUS, TORSO_RADIUS};
use super::scene::{Object, Scene};
use super::truth::{CameraTruth, FigureTruth, FrameTruth, GroundTruth, ObjectTruth};
use crate::video::Video;

/// Smallest visible area (pixels) for an object to count as visible.
const VISIBLE_AREA: f32 = 0.25;

/// Renders `frames` frames of `height`×`width` pixels. Frame f shows clip time f / (frames − 1).
pub fn render(scene: &Scene, frames: usize, height: usize, width: usize) -> (Video, GroundTruth) {
    let mut video = Video::new(frames, height, width);
    let mut truth = GroundTruth {
        height,
        width,
        frames: Vec::with_capacity(frames),
    };
    let mut canvas = Canvas::new(height, width);
    for f in 0..frames {
        let t = if frames > 1 {
            f as f32 / (frames - 1) as f32
        } else {
            0.0
        };
        let view = scene.camera.view(t, height, width);
        canvas.clear();
        let mut objects = vec![None; scene.objects.len()];
        let mut figure = None;
        for layer in layers_near_to_far(scene) {
            match layer {
                Layer::Object(i) => {
                    objects[i] = Some(draw_object(&mut canvas, &scene.objects[i], &view, t))
                }
                Layer::Figure(fig) => figure = Some(draw_figure(&mut canvas, fig, &view, t)),
            }
        }
        canvas.fill_background(scene, &view, video.frame_mut(f));
        truth.frames.push(FrameTruth {
            camera: CameraTruth {
                center: view.center,
                zoom: view.zoom,
                matrix: view.matrix(),
            },
            objects: objects.into_iter().flatten().collect(),
            figure,
        });
    }
    (video, truth)
}

enum Layer<'a> {
    Object(usize),
    Figure(&'a Figure),
}

/// The scene's layers, nearest first; on equal depth, later in the scene is nearer (painter's order).
fn layers_near_to_far(scene: &Scene) -> Vec<Layer<'_>> {
    let mut keyed: Vec<(f32, usize, Layer)> = scene
        .objects
        .iter()
        .enumerate()
        .map(|(i, o)| (o.depth, i, Layer::Object(i)))
        .collect();
    if let Some(figure) = &scene.figure {
        keyed.push((figure.depth, scene.objects.len(), Layer::Figure(figure)));
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    keyed.into_iter().map(|(_, _, layer)| layer).collect()
}

/// Front-to-back accumulation buffers for one frame.
struct Canvas {
    height: usize,
    width: usize,
    /// Fraction of each pixel not yet covered by nearer layers.
    open: Vec<f32>,
    color: Vec<f32>,
}

impl Canvas {
    fn new(height: usize, width: usize) -> Self {
        Canvas {
            height,
            width,
            open: vec![1.0; height * width],
            color: vec![0.0; height * width * 3],
        }
    }

    fn clear(&mut self) {
        self.open.fill(1.0);
        self.color.fill(0.0);
    }

    /// Composites a layer of one colour behind everything drawn so far. `distance` gives the signed
    /// distance in pixels at a pixel centre; only pixels whose centres lie in `bbox` (grown by a
    /// pixel) are visited. Returns the visible area in pixels.
    fn draw(&mut self, bbox: [f32; 4], rgb: [f32; 3], distance: impl Fn([f32; 2]) -> f32) -> f32 {
        let (x0, x1) = pixel_span(bbox[0], bbox[2], self.width);
        let (y0, y1) = pixel_span(bbox[1], bbox[3], self.height);
        let mut visible = 0.0;
        for y in y0..y1 {
            for x in x0..x1 {
                let i = y * self.width + x;
                if self.open[i] <= 0.0 {
                    continue;
                }
                let coverage = (0.5 - distance([x as f32 + 0.5, y as f32 + 0.5])).clamp(0.0, 1.0);
                if coverage > 0.0 {
                    let weight = coverage * self.open[i];
                    self.open[i] -= weight;
                    for (sum, &value) in self.color[i * 3..i * 3 + 3].iter_mut().zip(&rgb) {
                        *sum += weight * value;
                    }
                    visible += weight;
                }
            }
        }
        visible
    }

    /// Adds the background wherever layers left a pixel open and writes the frame.
    fn fill_background(&self, scene: &Scene, view: &View, out: &mut [f32]) {
        let background = &scene.background;
        let footprint = 1.0 / view.scale();
        let hills_base = background
            .hills
            .as_ref()
            .map(|h| view.to_texture([0.0, h.base])[1]);
        for y in 0..self.height {
            for x in 0..self.width {
                let i = y * self.width + x;
                let mut rgb = [
                    self.color[i * 3],
                    self.color[i * 3 + 1],
                    self.color[i * 3 + 2],
                ];
                let open = self.open[i];
                if open > 0.0 {
                    let pixel = [x as f32 + 0.5, y as f32 + 0.5];
                    let far = view.to_texture(view.to_world_on(pixel, background.parallax));
                    let mut back = background.pattern(far, footprint);
                    if let (Some(hills), Some(base)) = (&background.hills, hills_base) {
                        let near = view.to_texture(view.to_world_on(pixel, hills.parallax));
                        back = lerp3(back, hills.color, hills.coverage(near, base, footprint));
                    }
                    for c in 0..3 {
                        rgb[c] += open * back[c];
                    }
                }
                out[i * 3..i * 3 + 3].copy_from_slice(&rgb);
            }
        }
    }
}

/// Pixel indices whose centres may get coverage from a shape spanning [lo, hi] (clipped to [0, n)).
fn pixel_span(lo: f32, hi: f32, n: usize) -> (usize, usize) {
    let start = (lo - 1.0).floor().max(0.0);
    let end = (hi + 1.0).ceil().min(n as f32);
    // max/min drop NaN bounds, so both ends are numbers here.
    if start >= end {
        return (0, 0);
    }
    (start as usize, end as usize)
}

fn draw_object(canvas: &mut Canvas, object: &Object, view: &View, t: f32) -> ObjectTruth {
    let center = view.to_pixel(object.trajectory.position(t));
    let radius = (object.size * view.scale()).max(1e-4);
    let angle = object.angle_at(t);
    let (sin, cos) = angle.sin_cos();
    let half = object.shape.half_extent(angle);
    let bbox = [
        center[0] - half[0] * radius,
        center[1] - half[1] * radius,
        center[0] + half[0] * radius,
        center[1] + half[1] * radius,
    ];
    let shape = object.shape;
    let visible_area = canvas.draw(bbox, object.color.rgb(), |p| {
        let (dx, dy) = ((p[0] - center[0]) / radius, (p[1] - center[1]) / radius);
        // Rotate the pixel into the shape's frame (inverse rotation).
        shape.signed_distance([dx * cos + dy * sin, -dx * sin + dy * cos]) * radius
    });
    let area = shape.area() * radius * radius;
    ObjectTruth {
        center,
        bbox,
        visible: visible_area >= VISIBLE_AREA,
        visible_area,
        visible_fraction: (visible_area / area).min(1.0),
    }
}

fn draw_figure(canvas: &mut Canvas, figure: &Figure, view: &View, t: f32) -> FigureTruth {
    let ground = view.to_pixel(figure.ground(t));
    let scale = (figure.height * view.scale()).max(1e-4);
    let joints = figure
        .pose(t)
        .map(|p| [ground[0] + p[0] * scale, ground[1] + p[1] * scale]);
    let at = |j: Joint| joints[j as usize];
    let capsules: Vec<([f32; 2], [f32; 2], f32)> = BONES
        .iter()
        .map(|&(a, b, _)| {
            let radius = if a == Joint::Pelvis && b == Joint::Neck {
                TORSO_RADIUS
            } else {
                LIMB_RADIUS
            };
            (at(a), at(b), radius * scale)
        })
        .collect();
    let head = (at(Joint::Head), HEAD_RADIUS * scale);
    let mut bbox = [
        head.0[0] - head.1,
        head.0[1] - head.1,
        head.0[0] + head.1,
        head.0[1] + head.1,
    ];
    for &(a, b, r) in &capsules {
        bbox = [
            bbox[0].min(a[0].min(b[0]) - r),
            bbox[1].min(a[1].min(b[1]) - r),
            bbox[2].max(a[0].max(b[0]) + r),
            bbox[3].max(a[1].max(b[1]) + r),
        ];
    }
    let distance = |p: [f32; 2]| {
        let head_distance =
            ((p[0] - head.0[0]).powi(2) + (p[1] - head.0[1]).powi(2)).sqrt() - head.1;
        capsules.iter().fold(head_distance, |d, &(a, b, r)| {
            d.min(segment_distance(p, a, b) - r)
        })
    };
    let visible_area = canvas.draw(bbox, figure.color.rgb(), distance);
    // The whole figure's area as rendered, counted on the unclipped pixel grid around it.
    let mut area = 0.0;
    let (x0, y0) = ((bbox[0] - 1.0).floor(), (bbox[1] - 1.0).floor());
    let (nx, ny) = (
        ((bbox[2] + 1.0).ceil() - x0) as usize,
        ((bbox[3] + 1.0).ceil() - y0) as usize,
    );
    for j in 0..ny.min(4096) {
        for i in 0..nx.min(4096) {
            let p = [x0 + i as f32 + 0.5, y0 + j as f32 + 0.5];
            area += (0.5 - distance(p)).clamp(0.0, 1.0);
        }
    }
    FigureTruth {
        body: ObjectTruth {
            center: at(Joint::Pelvis),
            bbox,
            visible: visible_area >= VISIBLE_AREA,
            visible_area,
            visible_fraction: if area > 0.0 {
                (visible_area / area).min(1.0)
            } else {
                0.0
            },
        },
        joints,
    }
}

/// Distance from `p` to the segment from `a` to `b`.
fn segment_distance(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let e = [b[0] - a[0], b[1] - a[1]];
    let w = [p[0] - a[0], p[1] - a[1]];
    let len2 = e[0] * e[0] + e[1] * e[1];
    let s = if len2 > 0.0 {
        ((w[0] * e[0] + w[1] * e[1]) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((w[0] - e[0] * s).powi(2) + (w[1] - e[1] * s).powi(2)).sqrt()
}
