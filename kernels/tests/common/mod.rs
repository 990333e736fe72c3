//! Helpers shared by the GPU test files: open the GPU or say why the test skips, random data,
//! f32/bf16 conversion on upload and download, and the tolerance of each precision.

use std::sync::Arc;

use fym_kernels::cuda::{CudaDevice, CudaFloat, CudaSlice};
use rand::rngs::StdRng;
use rand::Rng;

pub fn gpu() -> Option<Arc<CudaDevice>> {
    match CudaDevice::open(0) {
        Ok(dev) => Some(dev),
        Err(e) => {
            eprintln!("skipped: no usable GPU: {e}");
            None
        }
    }
}

pub fn random(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

/// `v` rounded to `T` and back: the values the GPU really sees.
pub fn quantize<T: CudaFloat>(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| T::from_f32(x).to_f32()).collect()
}

pub fn upload<T: CudaFloat>(dev: &CudaDevice, v: &[f32]) -> CudaSlice<T> {
    let converted: Vec<T> = v.iter().map(|&x| T::from_f32(x)).collect();
    dev.upload(&converted).unwrap()
}

pub fn download<T: CudaFloat>(dev: &CudaDevice, buf: &CudaSlice<T>) -> Vec<f32> {
    dev.download(buf)
        .unwrap()
        .into_iter()
        .map(T::to_f32)
        .collect()
}

pub fn tolerance<T: CudaFloat>() -> f64 {
    if T::SUFFIX == "f32" {
        1e-5
    } else {
        1e-2
    }
}
