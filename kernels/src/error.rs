use thiserror::Error;

/// Errors of the kernel layer. Messages name the op and the shapes at fault.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    #[error("CUDA unavailable: {0}")]
    CudaUnavailable(String),
    #[error("CUDA error in {op}: {msg}")]
    Cuda { op: String, msg: String },
    #[error("NVRTC failed to compile {file}: {msg}")]
    Compile { file: String, msg: String },
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

/// Returns a shape error unless `cond` holds.
#[macro_export]
macro_rules! ensure_shape {
    ($cond:expr, $op:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::Error::shape($op, format!($($fmt)+)));
        }
    };
}
