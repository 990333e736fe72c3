//! CUDA back-end: device context, NVRTC compilation of `kernels/cuda/*.cu` (once per process),
//! launches. Builds and runs on machines without CUDA: every entry point returns an error there.
//!
//! Each launcher module mirrors a CPU kernel file (`cuda::softmax` ↔ `cpu::softmax`) with the same
//! argument order, taking a [`CudaDevice`] first and device buffers ([`CudaSlice`]) of f32 or bf16
//! instead of slices. Launches are asynchronous on the device's stream; downloads wait for it.

pub mod attention;
mod device;
mod dtype;
pub mod elementwise;
pub mod embedding;
pub mod gemm;
mod launch;
pub mod layout;
pub mod modulate;
pub mod norm;
mod nvrtc;
pub mod patchify;
pub mod qkv_lora;
pub mod reduce;
pub mod rope;
pub mod softmax;
mod sources;
pub mod unary;

pub use cudarc::driver::CudaSlice;
pub use device::{device_count, driver_available, CudaDevice};
pub use dtype::CudaFloat;
pub use half::bf16;
pub use nvrtc::{
    compile, compile_cubin, compile_ptx, cuda_include_dir, nvrtc_available, nvrtc_library,
    nvrtc_search_dirs, nvrtc_version, require_nvrtc, Compiled, Target, CUDA_INCLUDE_ENV,
    DEFAULT_PTX_ARCH, NVRTC_DIR_ENV,
};
pub use rope::CudaRopeTable;
pub use sources::{cuda_source, required_arch, ARCH_SPECIFIC_SOURCES, CUDA_HEADERS, CUDA_SOURCES};
