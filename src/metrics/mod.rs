//! Motion-transfer metrics: point tracking, motion fidelity, appearance checks, leakage, consistency.

pub mod background;
pub mod image;
pub mod motion_fidelity;
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
