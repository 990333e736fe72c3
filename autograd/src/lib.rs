//! fym-autograd: f32 tensors, a tape of recorded ops, reverse-mode `backward`, trainable vs frozen
//! parameters, AdamW, checkpoints and gradient checking.
//!
//! Every op result made from a trainable tensor (while recording is on) keeps its op — that chain
//! of ops is the tape; `loss.backward()` walks it in reverse. Frozen tensors (inputs, base
//! weights) never get gradient buffers, and inside [`no_grad`] nothing is recorded at all.

mod backward;
mod backward_cuda;
mod checkpoint;
mod error;
mod gradcheck;
pub mod init;
mod op;
mod ops;
mod optim;
mod params;
mod profile;
mod tensor;

pub use backward::Grads;
pub use checkpoint::{load_checkpoint, save_checkpoint, to_safetensors_bytes, write_atomic};
pub use error::{Error, Result};
pub use fym_kernels::cpu::attention::MaskMode;
pub use fym_kernels::cpu::patchify::{PatchOrder, PatchSize, VideoDims};
pub use fym_kernels::cpu::rope::RopeTable;
pub use fym_kernels::Device;
pub use gradcheck::{gradcheck, GradcheckReport};
pub use ops::RopeTableRef;
pub use optim::{AdamW, AdamWConfig};
pub use params::ParamSet;
pub use profile::{charge as profile_charge, profile_report, profiling, PROFILE_ENV};
pub use tensor::{is_grad_enabled, no_grad, HostMut, HostRef, Tensor};
