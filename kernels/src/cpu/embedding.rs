//! Embedding lookup (word-level text encoder of the built-in model).

/// `out[i] = table[ids[i]]`, table `vocab × dim`. Errors on an id ≥ vocab.
pub fn embedding(
    table: &[f32],
    vocab: usize,
    dim: usize,
    ids: &[u32],
    out: &mut [f32],
) -> crate::Result<()> {
    unimplemented!()
}

/// `dtable[ids[i]] += dy[i]` (accumulates).
pub fn embedding_backward(dy: &[f32], dim: usize, ids: &[u32], dtable: &mut [f32]) {
    unimplemented!()
}
