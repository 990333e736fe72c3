//! Captions: every scene described in a small fixed vocabulary, e.g.
//! "a red circle moves right and a blue star circles on a striped background while the camera pans left".

use super::background::Background;
use super::camera::Camera;
use super::figure::Figure;
use super::palette::Color;
use super::scene::{Object, Scene};
use super::shape::Shape;
use super::trajectory::{Easing, Trajectory};

/// Smallest camera pan (world units) or log-zoom a caption mentions.
const CAMERA_THRESHOLD: f32 = 0.02;

/// The caption of a scene: its subjects with their motions, the background, then the camera.
pub fn caption(scene: &Scene) -> String {
    let mut subjects: Vec<String> = scene.objects.iter().map(object_phrase).collect();
    if let Some(figure) = &scene.figure {
        subjects.push(figure_phrase(figure));
    }
    let background = background_phrase(&scene.background);
    let mut text = if subjects.is_empty() {
        background
    } else {
        format!("{} on {}", subjects.join(" and "), background)
    };
    if let Some(camera) = camera_phrase(&scene.camera) {
        text.push_str(" while ");
        text.push_str(&camera);
    }
    text
}

/// "a red circle moves left and speeds up", "a blue star" (a still object has no motion words).
pub fn object_phrase(object: &Object) -> String {
    let subject = format!(
        "{} {} {}",
        article(object.color.name()),
        object.color.name(),
        object.shape.name()
    );
    match motion_phrase(&object.trajectory) {
        Some(motion) => format!("{subject} {motion}"),
        None => subject,
    }
}

/// "a green person walks right".
pub fn figure_phrase(figure: &Figure) -> String {
    let color = figure.color.name();
    let mut text = format!("{} {color} person {}", article(color), figure.action.verb());
    if figure.travel != 0.0 {
        text.push_str(if figure.travel > 0.0 {
            " right"
        } else {
            " left"
        });
    }
    text
}

/// "an" before a vowel, "a" otherwise.
fn article(next_word: &str) -> &'static str {
    if next_word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The motion words of a trajectory (`None` for a still object).
pub fn motion_phrase(trajectory: &Trajectory) -> Option<String> {
    let direction = trajectory.direction().map(|d| d.name()).unwrap_or("right");
    Some(match trajectory {
        Trajectory::Still { .. } => return None,
        Trajectory::Linear { easing, .. } => match easing {
            Easing::Constant => format!("moves {direction}"),
            Easing::SpeedUp => format!("moves {direction} and speeds up"),
            Easing::SlowDown => format!("moves {direction} and slows down"),
        },
        Trajectory::Circle { .. } => "circles".to_string(),
        Trajectory::ZigZag { .. } => format!("zigzags {direction}"),
        Trajectory::Bounce { .. } => format!("bounces {direction}"),
        Trajectory::FigureEight { .. } => "moves in a figure-eight".to_string(),
    })
}

/// "a striped background", "a checkered background with hills".
pub fn background_phrase(background: &Background) -> String {
    let mut text = format!("a {} background", background.texture.name());
    if background.hills.is_some() {
        text.push_str(" with hills");
    }
    text
}

/// "the camera pans left and zooms in" (`None` for a still camera).
pub fn camera_phrase(camera: &Camera) -> Option<String> {
    let mut parts = Vec::new();
    let [dx, dy] = camera.pan;
    if dx.abs() >= CAMERA_THRESHOLD {
        parts.push(if dx > 0.0 { "pans right" } else { "pans left" });
    }
    if dy.abs() >= CAMERA_THRESHOLD {
        parts.push(if dy > 0.0 { "tilts down" } else { "tilts up" });
    }
    let log_zoom = camera.zoom.max(1e-3).ln();
    if log_zoom.abs() >= CAMERA_THRESHOLD {
        parts.push(if log_zoom > 0.0 {
            "zooms in"
        } else {
            "zooms out"
        });
    }
    if parts.is_empty() {
        None
    } else {
        Some(format!("the camera {}", parts.join(" and ")))
    }
}

/// Every word a caption can contain (words are separated by single spaces).
pub fn vocabulary() -> Vec<&'static str> {
    let mut words = vec![
        "a",
        "an",
        "and",
        "on",
        "background",
        "with",
        "hills",
        "while",
        "the",
        "camera",
        "person",
    ];
    words.extend(Color::OBJECT.iter().map(|c| c.name()));
    words.extend(Shape::ALL.iter().map(|s| s.name()));
    words.extend(super::background::Texture::ALL.iter().map(|t| t.name()));
    words.extend([
        "moves",
        "left",
        "right",
        "up",
        "down",
        "speeds",
        "slows",
        "circles",
        "zigzags",
        "bounces",
        "in",
        "figure-eight",
        "pans",
        "tilts",
        "zooms",
        "out",
    ]);
    words.extend(super::figure::Action::ALL.iter().map(|a| a.verb()));
    words
}
