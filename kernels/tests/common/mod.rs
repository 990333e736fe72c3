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

/// max |got − want| / max |want| ≤ tolerance of `T`, and everything finite.
///
/// `FYM_PRINT_ERRORS=1` prints every measured error; `FYM_KEEP_GOING=1` prints a failure as a
/// `FAIL` line instead of panicking, so that one run on a GPU machine (`scripts/gpu-check`)
/// reports every failing case rather than the first.
pub fn assert_close<T: CudaFloat>(what: &str, got: &[f32], want: &[f64]) {
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    assert_close_to_scale::<T>(what, got, want, scale);
}

/// [`assert_close`] with the error measured against `scale` instead of max |want|: for results
/// that are differences of much larger terms (a norm's input gradient over a one-element row is
/// analytically ~0), where rounding of those terms is the honest yardstick.
pub fn assert_close_to_scale<T: CudaFloat>(what: &str, got: &[f32], want: &[f64], scale: f64) {
    assert_eq!(got.len(), want.len(), "{what} ({}): length", T::SUFFIX);
    let scale = scale.max(1e-30);
    let (worst, err) = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .enumerate()
        .fold(
            (0, 0.0f64),
            |best, (i, e)| if e > best.1 { (i, e) } else { best },
        );
    let rel = err / scale;
    let non_finite = got.iter().filter(|g| !g.is_finite()).count();
    let ok = rel <= tolerance::<T>() && non_finite == 0;
    let line = format!(
        "{what} ({}): relative error {rel:.3e} at {worst}: got {} want {}, {non_finite} non-finite",
        T::SUFFIX,
        got[worst],
        want[worst]
    );
    let keep_going = std::env::var_os("FYM_KEEP_GOING").is_some();
    if std::env::var_os("FYM_PRINT_ERRORS").is_some() || (keep_going && !ok) {
        eprintln!("{} {line}", if ok { "ok  " } else { "FAIL" });
    }
    assert!(ok || keep_going, "{line}");
}
