//! Scene descriptions (what a clip shows) and the seeded random sampler of training scenes.

use rand::seq::SliceRandom;
use rand::Rng;
use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, TAU};

use super::background::{Background, Hills, Texture};
use super::camera::Camera;
use super::figure::{Action, Figure};
use super::palette::Color;
use super::shape::Shape;
use super::trajectory::{Direction, Easing, Trajectory};

/// A moving shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub shape: Shape,
    pub color: Color,
    /// Size in texture units (1 = the shorter side of the frame); a circle's radius.
    pub size: f32,
    /// Rotation at t = 0, radians.
    pub angle: f32,
    /// Turns of rotation over the clip.
    pub spin: f32,
    pub trajectory: Trajectory,
    /// Smaller is nearer: a nearer object hides a farther one.
    pub depth: f32,
}

impl Object {
    /// An unrotated object.
    pub fn new(shape: Shape, color: Color, size: f32, trajectory: Trajectory, depth: f32) -> Self {
        Object {
            shape,
            color,
            size,
            angle: 0.0,
            spin: 0.0,
            trajectory,
            depth,
        }
    }

    /// Rotation at clip time `t`.
    pub fn angle_at(&self, t: f32) -> f32 {
        self.angle + TAU * self.spin * t
    }
}

/// Everything a clip shows: background, camera motion, shapes and an optional figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    pub background: Background,
    pub camera: Camera,
    pub objects: Vec<Object>,
    pub figure: Option<Figure>,
}

/// What the random sampler may produce.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneOptions {
    /// Number of shapes when there is no figure (a figure takes the place of one shape).
    pub min_objects: usize,
    pub max_objects: usize,
    pub figure_probability: f32,
    pub camera_probability: f32,
    /// Probability of hills in front of a farther, slower background (parallax).
    pub hills_probability: f32,
}

impl Default for SceneOptions {
    fn default() -> Self {
        SceneOptions {
            min_objects: 1,
            max_objects: 3,
            figure_probability: 0.25,
            camera_probability: 0.3,
            hills_probability: 0.15,
        }
    }
}

/// Background tones (gray levels) the sampler mixes; all darker than the object colours' lightness
/// spread, so shapes stand out.
const TONES: [f32; 6] = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55];

impl Scene {
    /// A random scene: deterministic for a given rng state.
    pub fn random<R: Rng + ?Sized>(rng: &mut R, options: &SceneOptions) -> Scene {
        let background = random_background(rng, options.hills_probability);
        let camera = if rng.gen::<f32>() < options.camera_probability {
            random_camera(rng)
        } else {
            Camera::still()
        };
        let mut colors = Color::OBJECT.to_vec();
        colors.shuffle(rng);
        let mut figure = None;
        let max = options.max_objects.max(options.min_objects);
        let mut count = rng.gen_range(options.min_objects..=max);
        if rng.gen::<f32>() < options.figure_probability {
            figure = Some(random_figure(rng, colors.pop().unwrap_or(Color::White)));
            count = count.saturating_sub(1);
        }
        let mut depths: Vec<f32> = (0..count + 1).map(|i| i as f32).collect();
        depths.shuffle(rng);
        if let Some(figure) = figure.as_mut() {
            figure.depth = depths[count];
        }
        let objects = (0..count)
            .map(|i| {
                let shape = *Shape::ALL.choose(rng).unwrap_or(&Shape::Circle);
                let color = colors.get(i).copied().unwrap_or(Color::White);
                let mut object = Object::new(
                    shape,
                    color,
                    rng.gen_range(0.08..0.14),
                    random_trajectory(rng),
                    depths[i],
                );
                if shape != Shape::Circle && rng.gen::<f32>() < 0.3 {
                    object.angle = rng.gen_range(0.0..TAU);
                }
                if shape != Shape::Circle && rng.gen::<f32>() < 0.2 {
                    object.spin = rng.gen_range(-0.6..0.6);
                }
                object
            })
            .collect();
        Scene {
            background,
            camera,
            objects,
            figure,
        }
    }

    /// A random scene for which `exclude` is false (e.g. to keep benchmark scenes out of training).
    /// Gives up after 1000 draws and returns the last one.
    pub fn random_excluding<R: Rng + ?Sized>(
        rng: &mut R,
        options: &SceneOptions,
        exclude: impl Fn(&Scene) -> bool,
    ) -> Scene {
        let mut scene = Scene::random(rng, options);
        for _ in 0..1000 {
            if !exclude(&scene) {
                break;
            }
            scene = Scene::random(rng, options);
        }
        scene
    }
}

pub(crate) fn random_background<R: Rng + ?Sized>(
    rng: &mut R,
    hills_probability: f32,
) -> Background {
    let texture = *Texture::ALL.choose(rng).unwrap_or(&Texture::Plain);
    let first = rng.gen_range(0..TONES.len());
    let far: Vec<usize> = (0..TONES.len())
        .filter(|&i| i.abs_diff(first) >= 2)
        .collect();
    let second = *far.choose(rng).unwrap_or(&0);
    let gray = |v: f32| [v, v, v];
    let mut background = Background::new(texture, [gray(TONES[first]), gray(TONES[second])], 0.2);
    background.period = match texture {
        Texture::Gradient => rng.gen_range(0.8..1.5),
        Texture::Noise => rng.gen_range(0.15..0.35),
        _ => rng.gen_range(0.12..0.3),
    };
    background.angle = match texture {
        Texture::Stripes => [0.0, FRAC_PI_2, FRAC_PI_4, 3.0 * FRAC_PI_4][rng.gen_range(0..4)],
        Texture::Gradient => rng.gen_range(0.0..TAU),
        _ => 0.0,
    };
    background.seed = rng.gen();
    if rng.gen::<f32>() < hills_probability {
        // The hills take a tone far from both pattern tones, and the pattern recedes.
        let mean = (TONES[first] + TONES[second]) / 2.0;
        let tone = if mean > 0.3 { 0.08 } else { 0.62 };
        background.parallax = 0.4;
        background.hills = Some(Hills {
            color: gray(tone),
            base: rng.gen_range(0.7..0.8),
            amplitude: rng.gen_range(0.04..0.08),
            period: rng.gen_range(0.35..0.6),
            phase: rng.gen_range(0.0..TAU),
            parallax: 1.0,
        });
    }
    background
}

fn random_camera<R: Rng + ?Sized>(rng: &mut R) -> Camera {
    let pan = rng.gen_range(0.15..0.3);
    let zoom = rng.gen_range(1.3..1.7);
    match rng.gen_range(0..6) {
        0 => Camera {
            pan: [-pan, 0.0],
            zoom: 1.0,
        },
        1 => Camera {
            pan: [pan, 0.0],
            zoom: 1.0,
        },
        2 => Camera {
            pan: [0.0, -pan * 0.8],
            zoom: 1.0,
        },
        3 => Camera {
            pan: [0.0, pan * 0.8],
            zoom: 1.0,
        },
        4 => Camera {
            pan: [0.0, 0.0],
            zoom,
        },
        _ => Camera {
            pan: [0.0, 0.0],
            zoom: 1.0 / zoom,
        },
    }
}

/// A random path that stays mostly inside the first frame and whose caption words are unambiguous
/// (a straight path goes clearly more along one axis than the other).
pub fn random_trajectory<R: Rng + ?Sized>(rng: &mut R) -> Trajectory {
    let straight = |rng: &mut R, length: f32| {
        let direction = *Direction::ALL.choose(rng).unwrap_or(&Direction::Right);
        let v = direction.vector();
        let along_start =
            0.5 - length / 2.0 + rng.gen_range(-1.0..1.0) * (0.35 - length / 2.0).max(0.0);
        let across = rng.gen_range(0.25..0.75);
        let drift = rng.gen_range(-0.1..0.1);
        // Position along the axis of travel, measured in the direction of travel.
        let along = |s: f32| if v[0] + v[1] > 0.0 { s } else { 1.0 - s };
        let point = |s: f32, c: f32| {
            if v[0] != 0.0 {
                [along(s), c]
            } else {
                [c, along(s)]
            }
        };
        (
            point(along_start, across),
            point(along_start + length, across + drift),
        )
    };
    match rng.gen_range(0..9) {
        0 => Trajectory::Still {
            at: [rng.gen_range(0.2..0.8), rng.gen_range(0.2..0.8)],
        },
        1..=3 => {
            let length = rng.gen_range(0.35..0.6);
            let (from, to) = straight(rng, length);
            let easing = [Easing::Constant, Easing::SpeedUp, Easing::SlowDown][rng.gen_range(0..3)];
            Trajectory::Linear { from, to, easing }
        }
        4 => Trajectory::Circle {
            center: [rng.gen_range(0.35..0.65), rng.gen_range(0.35..0.65)],
            radius: rng.gen_range(0.15..0.25),
            start_angle: rng.gen_range(0.0..TAU),
            turns: rng.gen_range(0.75..1.5),
            clockwise: rng.gen(),
        },
        5 => {
            let length = rng.gen_range(0.45..0.6);
            let (from, to) = straight(rng, length);
            Trajectory::ZigZag {
                from,
                to,
                amplitude: rng.gen_range(0.06..0.12),
                zigs: rng.gen_range(2..=4) as f32,
            }
        }
        6 => {
            let length: f32 = rng.gen_range(0.4..0.6);
            let from_x = rng.gen_range(0.2..(0.8 - length).max(0.21));
            let (from_x, to_x) = if rng.gen() {
                (from_x, from_x + length)
            } else {
                (from_x + length, from_x)
            };
            Trajectory::Bounce {
                from_x,
                to_x,
                floor: rng.gen_range(0.75..0.85),
                height: rng.gen_range(0.3..0.5),
                bounces: rng.gen_range(2..=3) as f32,
            }
        }
        _ => Trajectory::FigureEight {
            center: [rng.gen_range(0.4..0.6), rng.gen_range(0.4..0.6)],
            half_size: [rng.gen_range(0.22..0.3), rng.gen_range(0.12..0.2)],
        },
    }
}

fn random_figure<R: Rng + ?Sized>(rng: &mut R, color: Color) -> Figure {
    let action = *Action::ALL.choose(rng).unwrap_or(&Action::Wave);
    let ground = rng.gen_range(0.85..0.92);
    let (start_x, travel, cycles) = match action {
        Action::Walk => {
            let travel = rng.gen_range(0.35..0.5);
            if rng.gen() {
                (rng.gen_range(0.2..0.3), travel, rng.gen_range(1.5..2.5))
            } else {
                (rng.gen_range(0.7..0.8), -travel, rng.gen_range(1.5..2.5))
            }
        }
        Action::Wave => (rng.gen_range(0.3..0.7), 0.0, rng.gen_range(2.0..3.0)),
        _ => (rng.gen_range(0.3..0.7), 0.0, rng.gen_range(1.0..2.0)),
    };
    Figure {
        action,
        color,
        height: rng.gen_range(0.55..0.7),
        start: [start_x, ground],
        travel,
        cycles,
        depth: 0.0,
    }
}
