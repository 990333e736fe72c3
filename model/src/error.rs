//! The one error type of fym-model. Every message names the file, tensor, key, shape or flag at
//! fault, so a user can fix the input without reading the source.

use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// A config.json that cannot be used: missing key, wrong type, unsupported variant.
    #[error("config {file}: {msg}")]
    Config { file: String, msg: String },
    /// A weights file (safetensors or shard index) that is unreadable, corrupt, or does not match
    /// the config.
    #[error("weights {file}: {msg}")]
    Weights { file: String, msg: String },
    /// An operating-system error while reading or writing `path`.
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A LoRA file with unknown keys, inconsistent shapes or bad metadata.
    #[error("LoRA {file}: {msg}")]
    Lora { file: String, msg: String },
    /// Head-classification scores or a head-labels file that cannot be used.
    #[error("head labels {file}: {msg}")]
    Heads { file: String, msg: String },
    /// A flow-matching schedule, sampler or embedding called with unusable arguments.
    #[error("flow matching: {0}")]
    Flow(String),
    /// Adaptive-RoPE positions or sparse frame sampling called with unusable arguments.
    #[error("adaptive RoPE: {0}")]
    Rope(String),
    /// An op of the tensor engine failed (shapes, kernels).
    #[error(transparent)]
    Tensor(#[from] fym_autograd::Error),
    /// Two buffers that must agree in size do not.
    #[error("{op}: {msg}")]
    Shape { op: String, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(file: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Config {
            file: file.as_ref().display().to_string(),
            msg: msg.into(),
        }
    }

    pub fn weights(file: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Weights {
            file: file.as_ref().display().to_string(),
            msg: msg.into(),
        }
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub fn lora(file: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Lora {
            file: file.as_ref().display().to_string(),
            msg: msg.into(),
        }
    }

    pub fn heads(file: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Heads {
            file: file.as_ref().display().to_string(),
            msg: msg.into(),
        }
    }

    pub fn shape(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Shape {
            op: op.into(),
            msg: msg.into(),
        }
    }
}
