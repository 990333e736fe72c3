//! fym-kernels: every primitive op of fym, forward and backward, on the CPU (SIMD + threads) and
//! on CUDA (hand-written `.cu` kernels compiled at run time by NVRTC through `cudarc`).
//!
//! The CPU kernels work on plain `f32` slices with explicit sizes; they are the reference that the
//! CUDA kernels are tested against. This crate knows nothing about tapes or models.

pub mod cpu;
pub mod cuda;
mod device;
mod error;

pub use device::Device;
pub use error::{Error, Result};
