//! MotionBench-synth: reference clips of the procedural world in the four MotionBench categories
//! (camera motion, single object, multiple objects, complex human motion), each with three target
//! prompts that change subject and/or background but keep the motion.

pub mod cases;
pub mod export;
pub mod targets;

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::world::{caption, Scene};

/// The four MotionBench categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    Camera,
    SingleObject,
    MultipleObjects,
    Human,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Camera,
        Category::SingleObject,
        Category::MultipleObjects,
        Category::Human,
    ];

    /// Name used in case ids and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Category::Camera => "camera",
            Category::SingleObject => "single",
            Category::MultipleObjects => "multi",
            Category::Human => "human",
        }
    }

    /// What the category tests, in words.
    pub fn description(self) -> &'static str {
        match self {
            Category::Camera => "creative camera motion",
            Category::SingleObject => "single-object motion",
            Category::MultipleObjects => "multiple-object motion",
            Category::Human => "complex human motion",
        }
    }

    fn scenes(self) -> Vec<Scene> {
        match self {
            Category::Camera => cases::camera_scenes(),
            Category::SingleObject => cases::single_object_scenes(),
            Category::MultipleObjects => cases::multiple_object_scenes(),
            Category::Human => cases::human_scenes(),
        }
    }
}

/// One benchmark case: a reference scene and three targets that keep its motion.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// e.g. "camera-03".
    pub id: String,
    pub category: Category,
    pub scene: Scene,
    /// Caption of the reference scene.
    pub caption: String,
    /// The target prompts, the captions of `targets`.
    pub prompts: Vec<String>,
    /// What each prompt describes: the reference scene with new colours, shapes or background.
    pub targets: Vec<Scene>,
}

/// Every case, in a fixed order (category by category).
pub fn cases() -> Vec<Case> {
    Category::ALL
        .iter()
        .flat_map(|&category| {
            category
                .scenes()
                .into_iter()
                .enumerate()
                .map(move |(i, scene)| {
                    let targets = targets::targets(&scene);
                    Case {
                        id: format!("{}-{:02}", category.name(), i + 1),
                        category,
                        caption: caption(&scene),
                        prompts: targets.iter().map(caption).collect(),
                        targets,
                        scene,
                    }
                })
        })
        .collect()
}

/// The case with this id.
pub fn case(id: &str) -> Option<Case> {
    cases().into_iter().find(|c| c.id == id)
}

/// Captions held out of training: every reference caption and every target prompt.
pub fn held_out_captions() -> &'static HashSet<String> {
    static HELD_OUT: OnceLock<HashSet<String>> = OnceLock::new();
    HELD_OUT.get_or_init(|| {
        cases()
            .into_iter()
            .flat_map(|case| std::iter::once(case.caption).chain(case.prompts))
            .collect()
    })
}

/// Whether a scene's caption is one of the benchmark's (so the training sampler can skip it).
pub fn is_benchmark_scene(scene: &Scene) -> bool {
    held_out_captions().contains(&caption(scene))
}
