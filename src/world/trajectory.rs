//! Object trajectories: world position as a function of clip time t in [0, 1].

use std::f32::consts::{PI, TAU};

/// How a linear motion is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Easing {
    Constant,
    /// Starts at rest and accelerates (position ∝ t²).
    SpeedUp,
    /// Starts fast and decelerates to rest.
    SlowDown,
}

/// The four directions a caption can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Left,
    Right,
    Up,
    Down,
}

impl Direction {
    pub const ALL: [Direction; 4] = [
        Direction::Left,
        Direction::Right,
        Direction::Up,
        Direction::Down,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Direction::Left => "left",
            Direction::Right => "right",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// Unit vector in world coordinates (y down).
    pub fn vector(self) -> [f32; 2] {
        match self {
            Direction::Left => [-1.0, 0.0],
            Direction::Right => [1.0, 0.0],
            Direction::Up => [0.0, -1.0],
            Direction::Down => [0.0, 1.0],
        }
    }

    /// The direction a displacement mostly goes in (`None` for no displacement).
    pub fn dominant(delta: [f32; 2]) -> Option<Direction> {
        let [dx, dy] = delta;
        if dx == 0.0 && dy == 0.0 {
            None
        } else if dx.abs() >= dy.abs() {
            Some(if dx > 0.0 {
                Direction::Right
            } else {
                Direction::Left
            })
        } else {
            Some(if dy > 0.0 {
                Direction::Down
            } else {
                Direction::Up
            })
        }
    }
}

/// A path through the world (world units; see [`crate::world::camera`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Trajectory {
    /// Stays at one point.
    Still { at: [f32; 2] },
    /// A straight line, timed by `easing`.
    Linear {
        from: [f32; 2],
        to: [f32; 2],
        easing: Easing,
    },
    /// Around `center` starting at `start_angle` (radians, 0 = +x), `turns` times; clockwise as seen
    /// on screen when `clockwise`.
    Circle {
        center: [f32; 2],
        radius: f32,
        start_angle: f32,
        turns: f32,
        clockwise: bool,
    },
    /// Along the line from `from` to `to`, swinging sideways by ±`amplitude` `zigs` times.
    ZigZag {
        from: [f32; 2],
        to: [f32; 2],
        amplitude: f32,
        zigs: f32,
    },
    /// Horizontally from `from_x` to `to_x` while bouncing `bounces` times on a floor at y = `floor`,
    /// rising `height` between bounces.
    Bounce {
        from_x: f32,
        to_x: f32,
        floor: f32,
        height: f32,
        bounces: f32,
    },
    /// A figure-eight (a lemniscate of Gerono) around `center`, `half_size` its half width and height.
    FigureEight {
        center: [f32; 2],
        half_size: [f32; 2],
    },
}

impl Trajectory {
    /// World position at clip time `t` in [0, 1].
    pub fn position(&self, t: f32) -> [f32; 2] {
        match *self {
            Trajectory::Still { at } => at,
            Trajectory::Linear { from, to, easing } => {
                let s = match easing {
                    Easing::Constant => t,
                    Easing::SpeedUp => t * t,
                    Easing::SlowDown => 1.0 - (1.0 - t) * (1.0 - t),
                };
                lerp2(from, to, s)
            }
            Trajectory::Circle {
                center,
                radius,
                start_angle,
                turns,
                clockwise,
            } => {
                // With y pointing down, a growing angle turns clockwise on screen.
                let sign = if clockwise { 1.0 } else { -1.0 };
                let angle = start_angle + sign * TAU * turns * t;
                [
                    center[0] + radius * angle.cos(),
                    center[1] + radius * angle.sin(),
                ]
            }
            Trajectory::ZigZag {
                from,
                to,
                amplitude,
                zigs,
            } => {
                let base = lerp2(from, to, t);
                let d = [to[0] - from[0], to[1] - from[1]];
                let len = (d[0] * d[0] + d[1] * d[1]).sqrt().max(1e-6);
                let normal = [-d[1] / len, d[0] / len];
                // Triangle wave starting at 0 and heading to +1.
                let phase = (t * zigs + 0.25).rem_euclid(1.0);
                let swing = amplitude * (1.0 - 4.0 * (phase - 0.5).abs());
                [base[0] + normal[0] * swing, base[1] + normal[1] * swing]
            }
            Trajectory::Bounce {
                from_x,
                to_x,
                floor,
                height,
                bounces,
            } => {
                let x = from_x + (to_x - from_x) * t;
                [x, floor - height * (PI * bounces * t).sin().abs()]
            }
            Trajectory::FigureEight { center, half_size } => {
                let a = TAU * t;
                [
                    center[0] + half_size[0] * a.sin(),
                    center[1] + half_size[1] * (2.0 * a).sin(),
                ]
            }
        }
    }

    /// Net direction of travel, for the trajectories whose caption names one.
    pub fn direction(&self) -> Option<Direction> {
        match *self {
            Trajectory::Linear { from, to, .. } | Trajectory::ZigZag { from, to, .. } => {
                Direction::dominant([to[0] - from[0], to[1] - from[1]])
            }
            Trajectory::Bounce { from_x, to_x, .. } => Direction::dominant([to_x - from_x, 0.0]),
            _ => None,
        }
    }
}

fn lerp2(a: [f32; 2], b: [f32; 2], t: f32) -> [f32; 2] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]
}
