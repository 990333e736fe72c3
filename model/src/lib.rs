//! fym-model: the Wan video DiT (diffusers parity), ST-LoRA, adaptive RoPE, head classification,
//! flow matching.

pub mod lora;
pub mod transformer;
