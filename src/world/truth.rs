//! Ground truth of a rendered clip (pixel coordinates of the rendered size) and its JSON form.

use serde_json::{json, Value};

use super::caption::{caption, motion_phrase};
use super::figure::{Joint, BONES};
use super::scene::Scene;

/// The camera at one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraTruth {
    /// World point at the frame centre.
    pub center: [f32; 2],
    pub zoom: f32,
    /// World→pixel map of the objects' plane: `pixel = M · [x, y, 1]`.
    pub matrix: [[f32; 3]; 2],
}

impl CameraTruth {
    /// Where a pixel position of the objects' plane in `earlier` lands in this frame.
    pub fn carry_from(&self, earlier: &CameraTruth, pixel: [f32; 2]) -> [f32; 2] {
        let m = earlier.matrix;
        let world = [
            (pixel[0] - m[0][2]) / m[0][0],
            (pixel[1] - m[1][2]) / m[1][1],
        ];
        let n = self.matrix;
        [n[0][0] * world[0] + n[0][2], n[1][1] * world[1] + n[1][2]]
    }
}

/// One object (or the figure's body) at one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectTruth {
    /// Pixel position of the centre (a shape's centroid; the figure's pelvis).
    pub center: [f32; 2],
    /// Geometric extent `[x0, y0, x1, y1]` in pixels, not clipped to the frame. Anti-aliasing
    /// touches pixels whose centres lie up to half a pixel outside it.
    pub bbox: [f32; 4],
    /// Whether at least a quarter of a pixel of it shows (inside the frame, not hidden).
    pub visible: bool,
    /// Area that shows, in pixels.
    pub visible_area: f32,
    /// `visible_area` over the whole area it would cover unhidden on an unbounded frame.
    pub visible_fraction: f32,
}

/// The figure at one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FigureTruth {
    pub body: ObjectTruth,
    /// Joint pixel positions in [`Joint::ALL`] order.
    pub joints: [[f32; 2]; Joint::COUNT],
}

/// Everything known about one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameTruth {
    pub camera: CameraTruth,
    /// In the scene's object order.
    pub objects: Vec<ObjectTruth>,
    pub figure: Option<FigureTruth>,
}

/// Ground truth of a clip.
#[derive(Clone, Debug, PartialEq)]
pub struct GroundTruth {
    pub height: usize,
    pub width: usize,
    pub frames: Vec<FrameTruth>,
}

/// A number rounded to 1e-4 (a hundredth of a percent of a pixel is far below what matters), so that
/// JSON shows 12.5 rather than the f32's 12.500000953674316.
pub fn rounded(v: f32) -> f64 {
    (v as f64 * 1e4).round() / 1e4
}

/// Rounded copies of a small array, for JSON.
pub fn rounded_all<const N: usize>(v: [f32; N]) -> [f64; N] {
    v.map(rounded)
}

fn object_json(o: &ObjectTruth) -> Value {
    json!({
        "center": rounded_all(o.center),
        "bbox": rounded_all(o.bbox),
        "visible": o.visible,
        "visible_area": rounded(o.visible_area),
        "visible_fraction": rounded(o.visible_fraction),
    })
}

impl GroundTruth {
    /// The ground truth as JSON, with the scene's caption and a description of its subjects.
    pub fn to_json(&self, scene: &Scene) -> Value {
        let objects: Vec<Value> = scene
            .objects
            .iter()
            .map(|o| {
                json!({
                    "shape": o.shape.name(),
                    "color": o.color.name(),
                    "rgb": rounded_all(o.color.rgb()),
                    "motion": motion_phrase(&o.trajectory).unwrap_or_default(),
                    "depth": rounded(o.depth),
                })
            })
            .collect();
        let figure = scene.figure.as_ref().map(|f| {
            json!({
                "action": f.action.verb(),
                "color": f.color.name(),
                "rgb": rounded_all(f.color.rgb()),
                "depth": rounded(f.depth),
                "joints": Joint::ALL.iter().map(|j| j.name()).collect::<Vec<_>>(),
                "bones": BONES.iter().map(|(a, b, _)| [a.name(), b.name()]).collect::<Vec<_>>(),
            })
        });
        let frames: Vec<Value> = self
            .frames
            .iter()
            .enumerate()
            .map(|(index, frame)| {
                let figure = frame.figure.as_ref().map(|f| {
                    let mut body = object_json(&f.body);
                    let joints: serde_json::Map<String, Value> = Joint::ALL
                        .iter()
                        .zip(f.joints.iter())
                        .map(|(j, p)| (j.name().to_string(), json!(rounded_all(*p))))
                        .collect();
                    body["joints"] = Value::Object(joints);
                    body
                });
                json!({
                    "frame": index,
                    "camera": {
                        "center": rounded_all(frame.camera.center),
                        "zoom": rounded(frame.camera.zoom),
                        "matrix": frame.camera.matrix.map(rounded_all),
                    },
                    "objects": frame.objects.iter().map(object_json).collect::<Vec<_>>(),
                    "figure": figure,
                })
            })
            .collect();
        json!({
            "height": self.height,
            "width": self.width,
            "frame_count": self.frames.len(),
            "caption": caption(scene),
            "coordinates": "pixels of the rendered size; pixel (x, y) covers [x, x+1] x [y, y+1]",
            "objects": objects,
            "figure": figure,
            "frames": frames,
        })
    }
}
