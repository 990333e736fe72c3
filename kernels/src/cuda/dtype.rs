//! Element types the CUDA kernels store: f32 (parity with the CPU kernels) and bf16 (bf16 storage,
//! f32 arithmetic inside the kernels).

use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use half::bf16;

/// A storage type of the CUDA kernels. Every kernel exists once per type, named
/// `<kernel>_<SUFFIX>` (e.g. `softmax_f32`, `softmax_bf16`).
pub trait CudaFloat: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {
    const SUFFIX: &'static str;
    fn to_f32(self) -> f32;
    /// Rounds to nearest even, as the kernels do.
    fn from_f32(x: f32) -> Self;
}

impl CudaFloat for f32 {
    const SUFFIX: &'static str = "f32";
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(x: f32) -> Self {
        x
    }
}

impl CudaFloat for bf16 {
    const SUFFIX: &'static str = "bf16";
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
}

/// The name of `kernel`'s variant for `T`.
pub(crate) fn kernel_name<T: CudaFloat>(kernel: &str) -> String {
    format!("{kernel}_{}", T::SUFFIX)
}
