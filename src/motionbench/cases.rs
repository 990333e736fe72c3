//! The reference scenes of MotionBench-synth, eight per category, written out by hand so that each
//! shows one clear kind of motion.

use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI};

use crate::world::{
    Action, Background, Camera, Color, Easing, Figure, Hills, Object, Scene, Shape, Texture,
    Trajectory,
};

fn gray(v: f32) -> [f32; 3] {
    [v, v, v]
}

/// A background of two gray tones.
fn background(
    texture: Texture,
    dark: f32,
    light: f32,
    period: f32,
    angle: f32,
    seed: u64,
) -> Background {
    let mut b = Background::new(texture, [gray(dark), gray(light)], period);
    b.angle = angle;
    b.seed = seed;
    b
}

fn striped(angle: f32) -> Background {
    background(Texture::Stripes, 0.12, 0.42, 0.18, angle, 0)
}

fn checkered() -> Background {
    background(Texture::Checker, 0.15, 0.4, 0.2, 0.0, 0)
}

fn noisy(seed: u64) -> Background {
    background(Texture::Noise, 0.08, 0.5, 0.22, 0.0, seed)
}

fn gradient() -> Background {
    background(Texture::Gradient, 0.1, 0.45, 1.0, FRAC_PI_4, 0)
}

fn plain() -> Background {
    background(Texture::Plain, 0.25, 0.25, 1.0, 0.0, 0)
}

/// A far background with nearer hills, for parallax.
fn with_hills(mut b: Background) -> Background {
    b.parallax = 0.4;
    b.hills = Some(Hills {
        color: gray(0.65),
        base: 0.75,
        amplitude: 0.06,
        period: 0.45,
        phase: 0.7,
        parallax: 1.0,
    });
    b
}

fn still(shape: Shape, color: Color, size: f32, at: [f32; 2], depth: f32) -> Object {
    Object::new(shape, color, size, Trajectory::Still { at }, depth)
}

fn linear(
    shape: Shape,
    color: Color,
    from: [f32; 2],
    to: [f32; 2],
    easing: Easing,
    depth: f32,
) -> Object {
    Object::new(
        shape,
        color,
        0.11,
        Trajectory::Linear { from, to, easing },
        depth,
    )
}

fn scene(
    background: Background,
    camera: Camera,
    objects: Vec<Object>,
    figure: Option<Figure>,
) -> Scene {
    Scene {
        background,
        camera,
        objects,
        figure,
    }
}

fn pan(dx: f32, dy: f32) -> Camera {
    Camera {
        pan: [dx, dy],
        zoom: 1.0,
    }
}

fn zoom(factor: f32) -> Camera {
    Camera {
        pan: [0.0, 0.0],
        zoom: factor,
    }
}

fn person(action: Action, color: Color, x: f32, travel: f32, cycles: f32) -> Figure {
    Figure {
        action,
        color,
        height: 0.62,
        start: [x, 0.9],
        travel,
        cycles,
        depth: 0.0,
    }
}

/// Creative camera motion over mostly still objects.
pub fn camera_scenes() -> Vec<Scene> {
    vec![
        scene(
            striped(0.0),
            pan(0.3, 0.0),
            vec![
                still(Shape::Circle, Color::Red, 0.1, [0.35, 0.5], 0.0),
                still(Shape::Square, Color::Blue, 0.1, [0.7, 0.4], 1.0),
            ],
            None,
        ),
        scene(
            checkered(),
            pan(-0.3, 0.0),
            vec![still(
                Shape::Triangle,
                Color::Yellow,
                0.13,
                [0.5, 0.45],
                0.0,
            )],
            None,
        ),
        scene(
            striped(FRAC_PI_2),
            pan(0.0, -0.25),
            vec![still(Shape::Star, Color::Green, 0.13, [0.5, 0.55], 0.0)],
            None,
        ),
        scene(
            noisy(11),
            pan(0.0, 0.25),
            vec![still(Shape::Circle, Color::Cyan, 0.12, [0.45, 0.4], 0.0)],
            None,
        ),
        scene(
            checkered(),
            zoom(1.8),
            vec![
                still(Shape::Square, Color::Magenta, 0.09, [0.5, 0.5], 0.0),
                still(Shape::Circle, Color::Orange, 0.07, [0.25, 0.3], 1.0),
            ],
            None,
        ),
        scene(
            striped(FRAC_PI_4),
            zoom(0.55),
            vec![still(Shape::Star, Color::White, 0.16, [0.5, 0.5], 0.0)],
            None,
        ),
        scene(
            with_hills(noisy(23)),
            pan(0.35, 0.0),
            vec![still(
                Shape::Triangle,
                Color::Orange,
                0.11,
                [0.45, 0.35],
                0.0,
            )],
            None,
        ),
        // A tracking shot: the camera follows a moving circle, so only the background slides.
        scene(
            striped(0.0),
            pan(0.4, 0.0),
            vec![linear(
                Shape::Circle,
                Color::Purple,
                [0.3, 0.5],
                [0.7, 0.5],
                Easing::Constant,
                0.0,
            )],
            None,
        ),
    ]
}

/// One moving object, each case a different trajectory.
pub fn single_object_scenes() -> Vec<Scene> {
    let one = |background: Background, object: Object| {
        scene(background, Camera::still(), vec![object], None)
    };
    let mut spinning = linear(
        Shape::Square,
        Color::Cyan,
        [0.4, 0.8],
        [0.6, 0.2],
        Easing::Constant,
        0.0,
    );
    spinning.spin = 0.5;
    vec![
        one(
            checkered(),
            linear(
                Shape::Circle,
                Color::Red,
                [0.2, 0.5],
                [0.8, 0.5],
                Easing::Constant,
                0.0,
            ),
        ),
        one(
            striped(FRAC_PI_2),
            linear(
                Shape::Star,
                Color::Yellow,
                [0.5, 0.15],
                [0.5, 0.85],
                Easing::SpeedUp,
                0.0,
            ),
        ),
        one(
            noisy(5),
            linear(
                Shape::Triangle,
                Color::Green,
                [0.8, 0.4],
                [0.2, 0.55],
                Easing::SlowDown,
                0.0,
            ),
        ),
        one(
            gradient(),
            Object::new(
                Shape::Square,
                Color::Blue,
                0.1,
                Trajectory::Circle {
                    center: [0.5, 0.5],
                    radius: 0.25,
                    start_angle: 0.0,
                    turns: 1.0,
                    clockwise: true,
                },
                0.0,
            ),
        ),
        one(
            striped(0.0),
            Object::new(
                Shape::Circle,
                Color::Orange,
                0.1,
                Trajectory::ZigZag {
                    from: [0.15, 0.5],
                    to: [0.85, 0.5],
                    amplitude: 0.15,
                    zigs: 3.0,
                },
                0.0,
            ),
        ),
        one(
            checkered(),
            Object::new(
                Shape::Circle,
                Color::Magenta,
                0.1,
                Trajectory::Bounce {
                    from_x: 0.2,
                    to_x: 0.8,
                    floor: 0.8,
                    height: 0.5,
                    bounces: 3.0,
                },
                0.0,
            ),
        ),
        one(
            noisy(7),
            Object::new(
                Shape::Star,
                Color::White,
                0.11,
                Trajectory::FigureEight {
                    center: [0.5, 0.5],
                    half_size: [0.3, 0.18],
                },
                0.0,
            ),
        ),
        one(plain(), spinning),
    ]
}

/// Two to four objects with independent motions and occlusions.
pub fn multiple_object_scenes() -> Vec<Scene> {
    let multi = |background: Background, objects: Vec<Object>| {
        scene(background, Camera::still(), objects, None)
    };
    let orbit = |shape, color, start_angle: f32, depth| {
        Object::new(
            shape,
            color,
            0.09,
            Trajectory::Circle {
                center: [0.5, 0.5],
                radius: 0.27,
                start_angle,
                turns: 1.0,
                clockwise: true,
            },
            depth,
        )
    };
    let bounce = |color, from_x, to_x, depth| {
        Object::new(
            Shape::Circle,
            color,
            0.08,
            Trajectory::Bounce {
                from_x,
                to_x,
                floor: 0.82,
                height: 0.45,
                bounces: 2.0,
            },
            depth,
        )
    };
    vec![
        // Crossing paths: the circle passes in front of the square.
        multi(
            striped(0.0),
            vec![
                linear(
                    Shape::Circle,
                    Color::Red,
                    [0.15, 0.5],
                    [0.85, 0.5],
                    Easing::Constant,
                    0.0,
                ),
                linear(
                    Shape::Square,
                    Color::Blue,
                    [0.85, 0.5],
                    [0.15, 0.5],
                    Easing::Constant,
                    1.0,
                ),
            ],
        ),
        multi(
            checkered(),
            vec![
                Object::new(
                    Shape::Star,
                    Color::Yellow,
                    0.1,
                    Trajectory::Circle {
                        center: [0.5, 0.45],
                        radius: 0.2,
                        start_angle: PI,
                        turns: 1.0,
                        clockwise: false,
                    },
                    0.0,
                ),
                linear(
                    Shape::Triangle,
                    Color::Green,
                    [0.2, 0.15],
                    [0.2, 0.85],
                    Easing::Constant,
                    1.0,
                ),
                linear(
                    Shape::Circle,
                    Color::Cyan,
                    [0.8, 0.85],
                    [0.8, 0.15],
                    Easing::Constant,
                    2.0,
                ),
            ],
        ),
        multi(
            noisy(3),
            vec![
                bounce(Color::Orange, 0.15, 0.6, 0.0),
                bounce(Color::Purple, 0.85, 0.4, 1.0),
            ],
        ),
        multi(
            plain(),
            vec![
                Object::new(
                    Shape::Triangle,
                    Color::Magenta,
                    0.09,
                    Trajectory::ZigZag {
                        from: [0.15, 0.3],
                        to: [0.85, 0.3],
                        amplitude: 0.1,
                        zigs: 3.0,
                    },
                    0.0,
                ),
                Object::new(
                    Shape::Circle,
                    Color::White,
                    0.09,
                    Trajectory::FigureEight {
                        center: [0.5, 0.65],
                        half_size: [0.28, 0.15],
                    },
                    1.0,
                ),
            ],
        ),
        // Four objects leaving the centre towards the four sides.
        multi(
            checkered(),
            vec![
                linear(
                    Shape::Circle,
                    Color::Red,
                    [0.42, 0.42],
                    [0.12, 0.35],
                    Easing::Constant,
                    0.0,
                ),
                linear(
                    Shape::Square,
                    Color::Green,
                    [0.58, 0.42],
                    [0.88, 0.35],
                    Easing::Constant,
                    1.0,
                ),
                linear(
                    Shape::Triangle,
                    Color::Blue,
                    [0.42, 0.6],
                    [0.35, 0.88],
                    Easing::Constant,
                    2.0,
                ),
                linear(
                    Shape::Star,
                    Color::Yellow,
                    [0.58, 0.6],
                    [0.65, 0.12],
                    Easing::Constant,
                    3.0,
                ),
            ],
        ),
        // A small circle passes behind a large still square and is hidden for a while.
        multi(
            striped(FRAC_PI_2),
            vec![
                still(Shape::Square, Color::White, 0.26, [0.5, 0.5], 0.0),
                Object::new(
                    Shape::Circle,
                    Color::Red,
                    0.07,
                    Trajectory::Linear {
                        from: [0.1, 0.5],
                        to: [0.9, 0.5],
                        easing: Easing::Constant,
                    },
                    1.0,
                ),
            ],
        ),
        // A race: one speeds up, the other slows down.
        multi(
            gradient(),
            vec![
                linear(
                    Shape::Circle,
                    Color::Cyan,
                    [0.15, 0.3],
                    [0.85, 0.3],
                    Easing::SpeedUp,
                    0.0,
                ),
                linear(
                    Shape::Star,
                    Color::Orange,
                    [0.15, 0.7],
                    [0.85, 0.7],
                    Easing::SlowDown,
                    1.0,
                ),
            ],
        ),
        multi(
            noisy(17),
            vec![
                orbit(Shape::Circle, Color::Green, 0.0, 0.0),
                orbit(Shape::Square, Color::Magenta, PI, 1.0),
                still(Shape::Star, Color::Yellow, 0.08, [0.5, 0.5], 2.0),
            ],
        ),
    ]
}

/// The articulated figure performing each action, plus a tracking shot and a figure among objects.
pub fn human_scenes() -> Vec<Scene> {
    let solo = |background: Background, figure: Figure| {
        scene(background, Camera::still(), vec![], Some(figure))
    };
    vec![
        solo(
            striped(0.0),
            person(Action::Walk, Color::Red, 0.25, 0.5, 2.0),
        ),
        solo(
            checkered(),
            person(Action::Walk, Color::Blue, 0.75, -0.5, 2.0),
        ),
        solo(noisy(9), person(Action::Wave, Color::Yellow, 0.5, 0.0, 3.0)),
        solo(
            gradient(),
            person(Action::Jump, Color::Green, 0.5, 0.0, 2.0),
        ),
        solo(
            striped(FRAC_PI_2),
            person(Action::Squat, Color::Orange, 0.5, 0.0, 2.0),
        ),
        solo(
            checkered(),
            person(Action::Dance, Color::Magenta, 0.5, 0.0, 2.0),
        ),
        // Tracking shot over parallax layers: the walker stays near the centre of the frame.
        scene(
            with_hills(noisy(29)),
            pan(0.4, 0.0),
            vec![],
            Some(person(Action::Walk, Color::Cyan, 0.3, 0.4, 2.0)),
        ),
        scene(
            striped(0.0),
            Camera::still(),
            vec![Object::new(
                Shape::Star,
                Color::Yellow,
                0.08,
                Trajectory::Circle {
                    center: [0.5, 0.35],
                    radius: 0.22,
                    start_angle: PI,
                    turns: 1.0,
                    clockwise: true,
                },
                0.0,
            )],
            Some(Figure {
                depth: 1.0,
                ..person(Action::Jump, Color::Purple, 0.5, 0.0, 2.0)
            }),
        ),
    ]
}
