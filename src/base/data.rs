//! Training data of the base model: captioned clips rendered by the synthetic world.
//!
//! The built-in model learns a deliberately simple slice of the world (one object on a plain
//! black background, moving in a straight line), because on two CPU cores a small model learns
//! colour, shape, one coherent object and the direction of motion there in under an hour, and the
//! motion-transfer pipeline needs exactly those. Captions are the world's own
//! ("a red circle moves right and slows down on a plain background"). A training config may put
//! a fraction of the clips on static textured backgrounds ([`textured_background`]) or pixel-fine
//! noise ([`fine_noise_background`]), and draw a fraction from the whole world, as MotionBench
//! does ([`World::rich_scene`]).
//!
//! Held out of training: every MotionBench caption, and the [`EVAL_CAPTIONS`] captions of the
//! quality gate (a fixed, seeded pick of colour × shape × direction × easing combinations).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::motionbench::is_benchmark_scene;
use crate::video::Video;
use crate::world::{
    caption, render, Background, Camera, Color, Direction, Easing, Object, Scene, SceneOptions,
    Shape, Texture, Trajectory,
};

/// Number of captions the quality gate uses (all held out of training).
pub const EVAL_CAPTIONS: usize = 50;
/// Seed of the pick of the held-out captions.
const HOLD_OUT_SEED: u64 = 0x0bad_cafe;

/// The slice of the world the model is trained on.
#[derive(Clone, Debug, PartialEq)]
pub struct World {
    pub colors: Vec<Color>,
    pub shapes: Vec<Shape>,
    pub directions: Vec<Direction>,
    pub easings: Vec<Easing>,
    /// Object size range (texture units: fraction of the frame's shorter side; a circle's radius).
    pub size: (f32, f32),
    /// Length of the straight path, same units.
    pub travel: (f32, f32),
}

impl Default for World {
    fn default() -> Self {
        World {
            colors: vec![
                Color::Red,
                Color::Green,
                Color::Blue,
                Color::Yellow,
                Color::Cyan,
                Color::Magenta,
                Color::Orange,
                Color::White,
            ],
            shapes: Shape::ALL.to_vec(),
            directions: Direction::ALL.to_vec(),
            easings: vec![Easing::Constant, Easing::SpeedUp, Easing::SlowDown],
            size: (0.2, 0.24),
            travel: (0.3, 0.4),
        }
    }
}

/// One combination of caption attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub color: Color,
    pub shape: Shape,
    pub direction: Direction,
    pub easing: Easing,
}

/// The black background every training clip has.
pub fn black_background() -> Background {
    Background::new(Texture::Plain, [[0.0; 3], [0.0; 3]], 0.2)
}

impl World {
    /// Every attribute combination, in a fixed order.
    pub fn combinations(&self) -> Vec<Attributes> {
        let mut out = Vec::new();
        for &color in &self.colors {
            for &shape in &self.shapes {
                for &direction in &self.directions {
                    for &easing in &self.easings {
                        out.push(Attributes {
                            color,
                            shape,
                            direction,
                            easing,
                        });
                    }
                }
            }
        }
        out
    }

    /// The quality gate's combinations: a fixed pick of [`EVAL_CAPTIONS`], never trained on.
    pub fn held_out(&self) -> Vec<Attributes> {
        let mut all = self.combinations();
        let mut rng = rand::rngs::StdRng::seed_from_u64(HOLD_OUT_SEED);
        all.shuffle(&mut rng);
        all.truncate(EVAL_CAPTIONS.min(all.len() / 2));
        all
    }

    /// A scene with these attributes, its path and size drawn from `rng`.
    pub fn scene<R: Rng + ?Sized>(&self, a: Attributes, rng: &mut R) -> Scene {
        let size = rng.gen_range(self.size.0..=self.size.1);
        let length = rng.gen_range(self.travel.0..=self.travel.1);
        // Keep the whole object inside the frame over the whole path.
        let margin = size + 0.02;
        let v = a.direction.vector();
        let span = (1.0 - 2.0 * margin - length).max(0.0);
        let start_along = margin + rng.gen_range(0.0..=span);
        let across = rng.gen_range(margin..=(1.0 - margin).max(margin));
        let along = |s: f32| if v[0] + v[1] > 0.0 { s } else { 1.0 - s };
        let point = |s: f32| {
            if v[0] != 0.0 {
                [along(s), across]
            } else {
                [across, along(s)]
            }
        };
        let trajectory = Trajectory::Linear {
            from: point(start_along),
            to: point(start_along + length),
            easing: a.easing,
        };
        on_black(Object::new(a.shape, a.color, size, trajectory, 0.0))
    }

    /// A random training scene: attributes outside the held-out set and never a benchmark scene.
    pub fn training_scene<R: Rng + ?Sized>(&self, held_out: &[Attributes], rng: &mut R) -> Scene {
        let all = self.combinations();
        let pool: Vec<&Attributes> = all.iter().filter(|a| !held_out.contains(a)).collect();
        loop {
            let a = **pool.choose(rng).unwrap_or(&&all[0]);
            let scene = self.scene(a, rng);
            if !is_benchmark_scene(&scene) {
                return scene;
            }
        }
    }

    /// A scene from the whole synthetic world ([`Scene::random`]: textured backgrounds, camera
    /// motion, up to three objects on any path, articulated figures), never a benchmark scene,
    /// never one with a caption of `excluded` (the quality gate's), and none whose caption has
    /// more than `max_words` words (what the model's text encoder takes).
    pub fn rich_scene<R: Rng + ?Sized>(
        &self,
        excluded: &[String],
        max_words: usize,
        rng: &mut R,
    ) -> Scene {
        trainable_world_scene(excluded, max_words, rng, |rng| {
            Scene::random(rng, &SceneOptions::default())
        })
    }

    /// The subjects of a scene from the whole world (1 to `max_objects` shapes on any path, a
    /// figure taking the place of one with probability `person_probability`) on the black
    /// background, seen by a still camera: what the transfer's matted tuning shows the model.
    /// Never a benchmark scene, never a caption of `excluded` (the quality gate's), none longer
    /// than `max_words` words.
    pub fn subjects_on_black<R: Rng + ?Sized>(
        &self,
        excluded: &[String],
        max_words: usize,
        max_objects: usize,
        person_probability: f32,
        rng: &mut R,
    ) -> Scene {
        let options = SceneOptions {
            max_objects: max_objects.max(1),
            figure_probability: person_probability,
            camera_probability: 0.0,
            hills_probability: 0.0,
            ..SceneOptions::default()
        };
        trainable_world_scene(excluded, max_words, rng, |rng| Scene {
            background: black_background(),
            ..Scene::random(rng, &options)
        })
    }

    /// One object of this world's colours, shapes and sizes on black, following a curved path
    /// (`Trajectory::Circle`, `ZigZag`, `Bounce` or `FigureEight`, drawn as
    /// [`crate::world::scene::random_trajectory`] draws them), never a benchmark scene. Its caption
    /// ("a red star circles on a plain background") is never a held-out one: those move in a
    /// straight line.
    pub fn curved_scene<R: Rng + ?Sized>(&self, rng: &mut R) -> Scene {
        loop {
            let trajectory = crate::world::scene::random_trajectory(rng);
            if matches!(
                trajectory,
                Trajectory::Still { .. } | Trajectory::Linear { .. }
            ) {
                continue;
            }
            let color = *self.colors.choose(rng).unwrap_or(&Color::Red);
            let shape = *self.shapes.choose(rng).unwrap_or(&Shape::Circle);
            let size = rng.gen_range(self.size.0..=self.size.1);
            let scene = on_black(Object::new(shape, color, size, trajectory, 0.0));
            if !is_benchmark_scene(&scene) {
                return scene;
            }
        }
    }

    /// Every word a training caption uses.
    pub fn max_caption_words(&self) -> usize {
        self.combinations()
            .iter()
            .map(|&a| {
                let scene = self.scene(a, &mut rand::rngs::StdRng::seed_from_u64(0));
                caption(&scene).split_whitespace().count()
            })
            .max()
            .unwrap_or(0)
    }
}

/// The first scene `draw` makes that training may show: not a benchmark scene, its caption not one
/// of `excluded` and at most `max_words` words long. The text encoder takes the benchmark's
/// captions, one to three subjects long, so most draws pass.
fn trainable_world_scene<R: Rng + ?Sized>(
    excluded: &[String],
    max_words: usize,
    rng: &mut R,
    mut draw: impl FnMut(&mut R) -> Scene,
) -> Scene {
    loop {
        let scene = draw(rng);
        let text = caption(&scene);
        if text.split_whitespace().count() <= max_words
            && !is_benchmark_scene(&scene)
            && !excluded.contains(&text)
        {
            return scene;
        }
    }
}

/// A scene of `object` alone on the black background, seen by a still camera: the base model's
/// world.
fn on_black(object: Object) -> Scene {
    Scene {
        background: black_background(),
        camera: Camera::still(),
        objects: vec![object],
        figure: None,
    }
}

/// Puts `scene` on a random static textured background (gradient, stripes, checker or noise, in
/// grey tones as in MotionBench; never plain, which the captions reserve for black), unless that
/// would make it a benchmark scene, which training never shows.
pub fn textured_background<R: Rng + ?Sized>(scene: &mut Scene, rng: &mut R) {
    let background = loop {
        let b = crate::world::scene::random_background(rng, 0.0);
        if b.texture != Texture::Plain {
            break b;
        }
    };
    replace_background_unless_benchmark(scene, background);
}

/// Puts `scene` on `background` unless that would make it a benchmark scene, which training
/// never shows (the background stays as it was then).
fn replace_background_unless_benchmark(scene: &mut Scene, background: Background) {
    let before = std::mem::replace(&mut scene.background, background);
    if is_benchmark_scene(scene) {
        scene.background = before;
    }
}

/// Puts `scene` on a static noise background with cells of about a pixel (period 0.04–0.08 of the
/// frame: 1–2 pixels at 24 × 24) in two grey tones, named "noisy" in the caption. Unlike the
/// coarser textures, such a background cannot be predicted from a pixel's neighbours, only from
/// the same pixel in the other frames, which is what a temporal attention head looks at. Never
/// makes a benchmark scene (the background stays black then).
pub fn fine_noise_background<R: Rng + ?Sized>(scene: &mut Scene, rng: &mut R) {
    let mut background = loop {
        let b = crate::world::scene::random_background(rng, 0.0);
        if b.texture == Texture::Noise {
            break b;
        }
    };
    background.period = rng.gen_range(0.04..0.08);
    replace_background_unless_benchmark(scene, background);
}

/// Puts `scene` on a static noise background of pixel-sized cells (as
/// [`fine_noise_background`]) in black and a dark grey only 0.03–0.10 above it, named "noisy".
/// At the noise levels where averaging a pixel over the frames would recover that detail, a token's
/// content says too little to find its own position in the other frames; RoPE still does. Never
/// makes a benchmark scene (the background stays black then).
pub fn faint_noise_background<R: Rng + ?Sized>(scene: &mut Scene, rng: &mut R) {
    let grey = rng.gen_range(0.03..0.10);
    let mut background = Background::new(Texture::Noise, [[0.0; 3], [grey; 3]], 0.2);
    background.period = rng.gen_range(0.04..0.08);
    background.seed = rng.gen();
    replace_background_unless_benchmark(scene, background);
}

/// A rendered training clip and its caption.
pub struct CaptionedClip {
    pub caption: String,
    pub video: Video,
}

/// Renders a scene at the given size.
pub fn render_clip(scene: &Scene, frames: usize, height: usize, width: usize) -> CaptionedClip {
    let (video, _) = render(scene, frames, height, width);
    CaptionedClip {
        caption: caption(scene),
        video,
    }
}
