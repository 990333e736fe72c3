//! Motion-transfer metrics: point tracking, motion fidelity, appearance checks, leakage, consistency.

pub mod image;
pub mod tracker;
