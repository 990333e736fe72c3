//! fym-model: the Wan video DiT (diffusers parity), ST-LoRA, adaptive RoPE, head classification,
//! flow matching.

pub mod adaptive_rope;
pub mod config;
pub mod error;
pub mod flow;
pub mod heads;
pub mod lora_io;
pub mod weights;

pub use config::WanConfig;
pub use error::{Error, Result};
pub use weights::HostTensor;
