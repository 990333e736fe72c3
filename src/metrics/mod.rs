//! Motion-transfer metrics: point tracking, motion fidelity, appearance checks, leakage, consistency.
//!
//! Every metric is a plain number in [0, 1] or in pixels; docs/metrics.md states each definition.
//! - [`motion_fidelity::motion_fidelity`]: DMT score of pyramidal Lucas–Kanade grid tracks;
//! - [`trajectory`]: path correlation, path error (px), motion direction;
//! - [`segment::main_object_track`] and [`segment::largest_component_fraction`];
//! - [`appearance`]: colour, shape, background of the main object; text alignment; leakage;
//! - [`consistency`]: consecutive-frame similarity and flow-warp error;
//! - [`report::evaluate`]: all of them for one (reference, generated) pair.

pub mod appearance;
pub mod background;
pub mod consistency;
pub mod image;
pub mod motion_fidelity;
pub mod report;
pub mod segment;
pub mod shape;
pub mod tracker;
pub mod trajectory;
pub mod vocabulary;

/// Errors of the metrics: inputs that cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{0}")]
    Shape(String),
}

pub use appearance::{leakage, measure_appearance, text_alignment, Appearance, CategoryScores};
pub use consistency::{flow_warp_error, temporal_consistency};
pub use motion_fidelity::{motion_fidelity, motion_fidelity_tracks};
pub use report::{evaluate, Report};
pub use segment::{
    largest_component_fraction, main_object_track, object_track, BackgroundHint, ObjectPath,
};
pub use shape::{classify_shape, Shape};
pub use tracker::{track_grid, track_points, Track, TrackerConfig};
pub use trajectory::{motion_direction, trajectory_correlation, trajectory_error, Direction};
pub use vocabulary::{parse_prompt, PromptAttributes};
