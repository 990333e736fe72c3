use thiserror::Error;

/// Errors of the tensor layer: shape mismatches name the op and the shapes.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Kernel(#[from] fym_kernels::Error),
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    #[error("{op}: tensors on {a} and {b}; move them to one device first")]
    DeviceMismatch {
        op: &'static str,
        a: fym_kernels::Device,
        b: fym_kernels::Device,
    },
    #[error("{0}: the tensor engine runs its ops on the CPU; CUDA kernels are reachable through fym_kernels::cuda")]
    UnsupportedDevice(fym_kernels::Device),
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
}
