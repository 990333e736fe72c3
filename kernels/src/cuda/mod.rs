//! CUDA back-end: device context, NVRTC compilation of `kernels/cuda/*.cu` (once per process),
//! launches. Builds and runs on machines without CUDA: every entry point returns an error there.
