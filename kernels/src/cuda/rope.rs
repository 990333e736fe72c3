//! Launcher of `kernels/cuda/rope.cu`: the CUDA twin of [`crate::cpu::rope::rope_apply`]. The
//! table is built on the CPU ([`crate::cpu::rope::rope_table`]) and uploaded once per sequence.

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::launch::{as_i32, as_i64, check_len, checked_product, elementwise_config};
use super::CudaDevice;
use crate::cpu::rope::RopeTable;
use crate::{Error, Result};

const FILE: &str = "rope.cu";

/// A [`RopeTable`] on the GPU: f32 `cos`/`sin` of shape `[seq, head_dim/2]`.
#[derive(Debug)]
pub struct CudaRopeTable {
    pub seq: usize,
    pub head_dim: usize,
    pub cos: CudaSlice<f32>,
    pub sin: CudaSlice<f32>,
}

impl CudaRopeTable {
    /// Uploads `table`, checking that its cos/sin have `seq · head_dim/2` entries.
    pub fn upload(dev: &CudaDevice, table: &RopeTable) -> Result<Self> {
        const OP: &str = "cuda rope table";
        if !table.head_dim.is_multiple_of(2) {
            return Err(Error::shape(
                OP,
                format!("head_dim {} is odd", table.head_dim),
            ));
        }
        let len = checked_product(OP, &[table.seq, table.head_dim / 2])?;
        if table.cos.len() != len || table.sin.len() != len {
            return Err(Error::shape(
                OP,
                format!(
                    "cos/sin have {}/{} entries, expected seq {} × head_dim/2 {} = {len}",
                    table.cos.len(),
                    table.sin.len(),
                    table.seq,
                    table.head_dim / 2
                ),
            ));
        }
        Ok(CudaRopeTable {
            seq: table.seq,
            head_dim: table.head_dim,
            cos: dev.upload(&table.cos)?,
            sin: dev.upload(&table.sin)?,
        })
    }
}

/// Rotates `x` (`[batch, seq, heads, head_dim]`) by the table's angles into `out`; with `inverse`
/// it rotates by the negative angles (the backward pass).
pub fn rope_apply<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    batch: usize,
    heads: usize,
    table: &CudaRopeTable,
    inverse: bool,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda rope_apply";
    if !table.head_dim.is_multiple_of(2) {
        return Err(Error::shape(
            OP,
            format!("head_dim {} is odd", table.head_dim),
        ));
    }
    let half = table.head_dim / 2;
    let n = checked_product(OP, &[batch, table.seq, heads, table.head_dim])?;
    check_len(OP, "x", x, n)?;
    check_len(OP, "out", out, n)?;
    check_len(OP, "table cos", &table.cos, table.seq * half)?;
    check_len(OP, "table sin", &table.sin, table.seq * half)?;
    if n == 0 {
        return Ok(());
    }
    let pairs = n / 2;
    let pairs_arg = as_i64(OP, "pairs", pairs)?;
    let seq_arg = as_i32(OP, "seq", table.seq)?;
    let heads_arg = as_i32(OP, "heads", heads)?;
    let half_arg = as_i32(OP, "head_dim/2", half)?;
    let inverse_arg = i32::from(inverse);
    let name = kernel_name::<T>("rope_apply");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch
        .arg(x)
        .arg(&table.cos)
        .arg(&table.sin)
        .arg(out)
        .arg(&pairs_arg)
        .arg(&seq_arg)
        .arg(&heads_arg)
        .arg(&half_arg)
        .arg(&inverse_arg);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, pairs))
    })?;
    Ok(())
}
