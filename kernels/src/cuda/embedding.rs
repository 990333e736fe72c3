//! The CUDA twins of [`crate::cpu::embedding`]: the lookup is layout.cu's `index_select` over the
//! table's rows, the backward its `index_add`.

use cudarc::driver::CudaSlice;

use super::dtype::CudaFloat;
use super::launch::check_len;
use super::layout::launch_index;
use super::CudaDevice;
use crate::cpu::embedding::check_ids;
use crate::{Error, Result};

/// `out[i] = table[ids[i]]`, table `vocab × dim`. Errors on an id ≥ vocab.
pub fn embedding<T: CudaFloat>(
    dev: &CudaDevice,
    table: &CudaSlice<T>,
    vocab: usize,
    dim: usize,
    ids: &[u32],
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda embedding";
    check_len(OP, "table", table, vocab * dim)?;
    check_len(OP, "out", out, ids.len() * dim)?;
    check_ids(OP, ids, vocab)?;
    let idx = dev.upload(ids)?;
    launch_index(
        dev,
        OP,
        "index_select",
        table,
        &idx,
        out,
        (1, vocab, ids.len(), dim),
    )
}

/// `dtable[ids[i]] += dy[i]` (accumulates; repeated ids add up).
pub fn embedding_backward<T: CudaFloat>(
    dev: &CudaDevice,
    dy: &CudaSlice<T>,
    dim: usize,
    ids: &[u32],
    dtable: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda embedding_backward";
    check_len(OP, "dy", dy, ids.len() * dim)?;
    if dim == 0 {
        return Ok(());
    }
    if !dtable.len().is_multiple_of(dim) {
        return Err(Error::shape(
            OP,
            format!(
                "dtable has {} elements, not a multiple of dim {dim}",
                dtable.len()
            ),
        ));
    }
    let vocab = dtable.len() / dim;
    check_ids(OP, ids, vocab)?;
    let idx = dev.upload(ids)?;
    launch_index(
        dev,
        OP,
        "index_add",
        dy,
        &idx,
        dtable,
        (1, vocab, ids.len(), dim),
    )
}
