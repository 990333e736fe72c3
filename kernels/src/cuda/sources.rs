//! The CUDA sources of fym, embedded in the binary so that NVRTC can compile them at run time
//! wherever the binary goes.

/// Every `.cu` file under `kernels/cuda/`: (file name, source). Each is compiled on its own, once
/// per process, the first time one of its kernels is launched.
pub const CUDA_SOURCES: &[(&str, &str)] = &[
    ("elementwise.cu", include_str!("../../cuda/elementwise.cu")),
    ("softmax.cu", include_str!("../../cuda/softmax.cu")),
    ("norm.cu", include_str!("../../cuda/norm.cu")),
    ("rope.cu", include_str!("../../cuda/rope.cu")),
    ("gemm.cu", include_str!("../../cuda/gemm.cu")),
    ("attention.cu", include_str!("../../cuda/attention.cu")),
    (
        "attention_stats.cu",
        include_str!("../../cuda/attention_stats.cu"),
    ),
    ("qkv_lora.cu", include_str!("../../cuda/qkv_lora.cu")),
    ("gemm_sm90a.cu", include_str!("../../cuda/gemm_sm90a.cu")),
    ("unary.cu", include_str!("../../cuda/unary.cu")),
    ("layout.cu", include_str!("../../cuda/layout.cu")),
    ("reduce.cu", include_str!("../../cuda/reduce.cu")),
    ("modulate.cu", include_str!("../../cuda/modulate.cu")),
];

/// Files that use instructions of one architecture only (Hopper's wgmma) with the architecture
/// they need: NVRTC compiles them for `compute_90a` / `sm_90a`, and they load only on a GPU of
/// compute capability 9.0. Every other file targets `compute_90` and runs on any newer GPU too.
pub const ARCH_SPECIFIC_SOURCES: &[(&str, &str)] = &[("gemm_sm90a.cu", "90a")];

/// The architecture suffix `file` must be compiled for (`"90a"`), if it is arch-specific.
pub fn required_arch(file: &str) -> Option<&'static str> {
    ARCH_SPECIFIC_SOURCES
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, arch)| *arch)
}

/// Headers the `.cu` files include by name; handed to NVRTC in memory with every compile.
pub const CUDA_HEADERS: &[(&str, &str)] =
    &[("fym_common.cuh", include_str!("../../cuda/fym_common.cuh"))];

/// The source of `file` from [`CUDA_SOURCES`].
pub fn cuda_source(file: &str) -> crate::Result<&'static str> {
    CUDA_SOURCES
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, src)| *src)
        .ok_or_else(|| crate::Error::Compile {
            file: file.to_string(),
            msg: format!(
                "no such CUDA source; known files: {:?}",
                CUDA_SOURCES.iter().map(|(n, _)| *n).collect::<Vec<_>>()
            ),
        })
}
