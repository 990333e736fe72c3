//! Embedding lookup (word-level text encoder of the built-in model).

use crate::cpu::elementwise::par_chunks_mut;
use crate::ensure_shape;

/// `out[i] = table[ids[i]]`, table `vocab × dim`. Errors on an id ≥ vocab.
pub fn embedding(
    table: &[f32],
    vocab: usize,
    dim: usize,
    ids: &[u32],
    out: &mut [f32],
) -> crate::Result<()> {
    const OP: &str = "embedding";
    ensure_shape!(
        table.len() == vocab * dim,
        OP,
        "table has {} elements, expected vocab {vocab} × dim {dim}",
        table.len()
    );
    ensure_shape!(
        out.len() == ids.len() * dim,
        OP,
        "out has {} elements, expected {} ids × dim {dim}",
        out.len(),
        ids.len()
    );
    check_ids(OP, ids, vocab)?;
    if dim == 0 {
        return Ok(());
    }
    par_chunks_mut(out, ((1 << 14) / dim).max(1) * dim, |off, rows| {
        for (row, &id) in rows.chunks_exact_mut(dim).zip(&ids[off / dim..]) {
            let id = id as usize;
            row.copy_from_slice(&table[id * dim..(id + 1) * dim]);
        }
    });
    Ok(())
}

/// Errors on the first id ≥ `vocab`, naming it and its position (shared with the CUDA twin).
pub(crate) fn check_ids(op: &'static str, ids: &[u32], vocab: usize) -> crate::Result<()> {
    match ids.iter().position(|&id| id as usize >= vocab) {
        Some(i) => Err(crate::Error::shape(
            op,
            format!(
                "id {} at position {i} is out of range for vocab {vocab}",
                ids[i]
            ),
        )),
        None => Ok(()),
    }
}

/// `dtable[ids[i]] += dy[i]` (accumulates).
///
/// # Panics
/// On a length mismatch or an id outside `dtable`: the ids are the ones [`embedding`] already
/// accepted, so either is a bug in fym.
pub fn embedding_backward(dy: &[f32], dim: usize, ids: &[u32], dtable: &mut [f32]) {
    assert_eq!(
        dy.len(),
        ids.len() * dim,
        "embedding_backward: dy has {} elements, expected {} ids × dim {dim}",
        dy.len(),
        ids.len()
    );
    if dim == 0 {
        return;
    }
    let vocab = dtable.len() / dim;
    // Sequential: repeated ids add into the same row, and text batches are small.
    for (g, &id) in dy.chunks_exact(dim).zip(ids) {
        let id = id as usize;
        assert!(
            id < vocab,
            "embedding_backward: id {id} out of range for vocab {vocab}"
        );
        for (d, &v) in dtable[id * dim..(id + 1) * dim].iter_mut().zip(g) {
            *d += v;
        }
    }
}
