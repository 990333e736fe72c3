//! Named parameter collections.

use crate::Tensor;

/// Trainable parameters in a fixed order, each with a stable name (used by the optimizer state and
/// checkpoints).
#[derive(Clone, Default, Debug)]
pub struct ParamSet {
    entries: Vec<(String, Tensor)>,
}

impl ParamSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter; the tensor must be trainable.
    pub fn push(&mut self, name: impl Into<String>, t: Tensor) {
        debug_assert!(t.is_param(), "ParamSet holds trainable leaves only");
        self.entries.push((name.into(), t));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of scalar values.
    pub fn numel(&self) -> usize {
        self.entries.iter().map(|(_, t)| t.numel()).sum()
    }

    pub fn extend(&mut self, other: ParamSet) {
        self.entries.extend(other.entries);
    }
}
