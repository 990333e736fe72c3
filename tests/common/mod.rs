//! Helpers shared by the end-to-end test files.

use fym_autograd::Device;

/// The first GPU, or `None` after printing why the calling test skips (no driver, no device).
pub fn gpu_or_skip() -> Option<Device> {
    match Device::cuda(0) {
        Ok(device) => Some(device),
        Err(e) => {
            eprintln!("skipped: no usable GPU: {e}");
            None
        }
    }
}
