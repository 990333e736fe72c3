//! Target scenes of a case: the reference scene with new colours, shapes or background, and the
//! same motion (trajectories, camera and actions are left untouched).

use crate::world::{Color, Scene, Shape, Texture};

/// Every subject takes the object colour `offset` places further in the palette. One offset for all
/// subjects keeps their colours distinct; a nonzero offset changes each one.
pub fn recolored(scene: &Scene, offset: usize) -> Scene {
    let shift = |c: Color| {
        let i = Color::OBJECT.iter().position(|&o| o == c).unwrap_or(0);
        Color::OBJECT[(i + offset) % Color::OBJECT.len()]
    };
    let mut out = scene.clone();
    for object in &mut out.objects {
        object.color = shift(object.color);
    }
    if let Some(figure) = out.figure.as_mut() {
        figure.color = shift(figure.color);
    }
    out
}

/// Every shape becomes the one `offset` places further in [`Shape::ALL`].
pub fn reshaped(scene: &Scene, offset: usize) -> Scene {
    let mut out = scene.clone();
    for object in &mut out.objects {
        let i = Shape::ALL
            .iter()
            .position(|&s| s == object.shape)
            .unwrap_or(0);
        object.shape = Shape::ALL[(i + offset) % Shape::ALL.len()];
    }
    out
}

/// The background pattern becomes another one that still shows camera motion (never plain or
/// gradient when the camera moves); period and tones stay.
pub fn retextured(scene: &Scene) -> Scene {
    let order: &[Texture] = if scene.camera.is_still() {
        &[
            Texture::Checker,
            Texture::Noise,
            Texture::Stripes,
            Texture::Gradient,
        ]
    } else {
        &[Texture::Checker, Texture::Noise, Texture::Stripes]
    };
    let mut out = scene.clone();
    let current = order.iter().position(|&t| t == scene.background.texture);
    out.background.texture = match current {
        Some(i) => order[(i + 1) % order.len()],
        None => order[0],
    };
    if out.background.texture != Texture::Gradient && out.background.period > 0.4 {
        // A gradient's long period would make one checker square or stripe fill the frame.
        out.background.period = 0.2;
    }
    out
}

/// The three targets: new colours; new shapes and colours; new background and colours.
pub fn targets(scene: &Scene) -> Vec<Scene> {
    vec![
        recolored(scene, 3),
        reshaped(&recolored(scene, 5), 1),
        retextured(&recolored(scene, 7)),
    ]
}
