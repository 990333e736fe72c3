//! CPU kernels (f32). Each op family has its own file; the naive references they are tested
//! against live in `kernels/tests/`.

pub mod attention;
pub mod buffer;
pub mod elementwise;
pub mod embedding;
pub mod gemm;
pub mod layout;
pub mod modulate;
pub mod norm;
pub mod patchify;
pub mod peak;
pub mod pool;
pub mod reduce;
pub mod rope;
pub mod softmax;
pub mod unary;

pub use pool::{num_threads, parallel_for, set_num_threads};
