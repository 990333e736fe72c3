//! The procedural world: scenes of textured backgrounds, moving shapes, a camera and an articulated
//! figure, rendered deterministically with analytic anti-aliasing, with exact per-frame ground truth
//! and a caption in a small fixed vocabulary.
//!
//! ```
//! use fym::world::{caption, render, Scene, SceneOptions};
//! use rand::SeedableRng;
//! let mut rng = rand::rngs::StdRng::seed_from_u64(7);
//! let scene = Scene::random(&mut rng, &SceneOptions::default());
//! let (video, truth) = render(&scene, 16, 32, 32);
//! assert_eq!((video.frames, truth.frames.len()), (16, 16));
//! assert!(!caption(&scene).is_empty());
//! ```

pub mod background;
pub mod camera;
pub mod caption;
pub mod figure;
pub mod palette;
pub mod render;
pub mod scene;
pub mod shape;
pub mod trajectory;
pub mod truth;

pub use background::{Background, Hills, Texture};
pub use camera::{Camera, View};
pub use caption::{caption, vocabulary};
pub use figure::{Action, Figure, Joint};
pub use palette::{palette, Color};
pub use render::render;
pub use scene::{Object, Scene, SceneOptions};
pub use shape::Shape;
pub use trajectory::{Direction, Easing, Trajectory};
pub use truth::{CameraTruth, FigureTruth, FrameTruth, GroundTruth, ObjectTruth};
