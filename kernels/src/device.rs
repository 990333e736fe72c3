/// Where a tensor lives and where its ops run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal. Open it with [`crate::cuda::CudaDevice::open`] (never panics).
    Cuda(usize),
}

impl Device {
    /// CUDA GPU `ordinal`, after checking that it can be opened: a clear error (never a panic)
    /// when there is no driver or no such GPU.
    pub fn cuda(ordinal: usize) -> crate::Result<Device> {
        crate::cuda::CudaDevice::open(ordinal)?;
        Ok(Device::Cuda(ordinal))
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(i) => Ok(Device::Cuda(i)),
                None => Err(crate::Error::shape(
                    "device",
                    format!("unknown device {s:?}: use cpu, cuda or cuda:N"),
                )),
            },
        }
    }
}
