//! fym-model: the Wan video DiT (diffusers parity), ST-LoRA, adaptive RoPE, head classification,
//! flow matching.

pub mod adaptive_rope;
pub mod classify;
pub mod config;
pub mod error;
pub mod flow;
pub mod heads;
pub mod lora;
pub mod lora_io;
pub mod losses;
pub mod text;
pub mod transformer;
pub mod weights;

pub use config::WanConfig;
pub use error::{Error, Result};
pub use transformer::{CapturedAttention, ForwardOptions, WanModel};
pub use weights::HostTensor;
