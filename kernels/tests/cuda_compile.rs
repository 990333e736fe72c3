//! Compiles every `.cu` file of fym with NVRTC (no GPU needed) and checks that each kernel the
//! launchers call is exported under its unmangled `extern "C"` name. Skips, saying why, only when
//! libnvrtc cannot be found (and `FYM_REQUIRE_NVRTC` is not 1); with NVRTC present a compile
//! error fails the test.

use fym_kernels::cuda::{self, CUDA_SOURCES};

/// Kernel families per file; each exists as `<name>_f32` and `<name>_bf16`.
const EXPECTED_KERNELS: &[(&str, &[&str])] = &[
    (
        "elementwise.cu",
        &[
            "add",
            "sub",
            "mul",
            "div",
            "add_row",
            "sub_row",
            "mul_row",
            "div_row",
            "affine",
            "axpy",
            "gelu_tanh",
            "gelu_tanh_backward",
            "silu",
            "silu_backward",
        ],
    ),
    ("softmax.cu", &["softmax", "softmax_backward"]),
    (
        "norm.cu",
        &[
            "layer_norm",
            "layer_norm_backward_dx",
            "layer_norm_param_grad",
            "rms_norm",
            "rms_norm_backward_dx",
            "rms_norm_param_grad",
        ],
    ),
    ("rope.cu", &["rope_apply"]),
    ("gemm.cu", &["gemm_nn", "gemm_nt", "gemm_tn", "gemm_tt"]),
    (
        "attention.cu",
        &[
            "attention_forward_simt",
            "attention_backward_delta",
            "attention_backward_dq_simt",
            "attention_backward_dkdv_simt",
            "attention_forward_simt4",
            "attention_backward_dq_simt4",
            "attention_backward_dkdv_simt4",
        ],
    ),
    ("attention_stats.cu", &["attention_map_stats"]),
    ("qkv_lora.cu", &["qkv_lora_forward", "qkv_lora_backward"]),
    ("gemm_sm90a.cu", &[]),
    ("unary.cu", &["unary", "unary_backward"]),
    (
        "layout.cu",
        &["strided_copy", "strided_add", "index_select", "index_add"],
    ),
    (
        "reduce.cu",
        &["sum_reduce_threads", "sum_reduce_blocks", "sum_all"],
    ),
    (
        "modulate.cu",
        &[
            "modulate",
            "modulate_backward_dx",
            "modulate_backward_params",
        ],
    ),
];

/// Kernels that exist for one element type only (full entry names): the tensor-core attention.
const SINGLE_TYPE_KERNELS: &[(&str, &[&str])] = &[
    (
        "attention.cu",
        &[
            "attention_forward_mma_d64_bf16",
            "attention_forward_mma_d128_bf16",
            "attention_forward_mma2_d64_bf16",
            "attention_forward_mma2_d128_bf16",
            "attention_backward_mma_d64_bf16",
            "attention_backward_mma_d128_bf16",
            "attention_backward_dq_convert_bf16",
        ],
    ),
    (
        "gemm_sm90a.cu",
        &[
            "gemm_nt_wgmma_n128_s4",
            "gemm_nt_wgmma_n256_s4",
            "gemm_nt_wgmma_n256_s3",
        ],
    ),
];

/// Why NVRTC tests cannot run here; `FYM_REQUIRE_NVRTC=1` (set by CI) turns a skip into a failure.
fn skip_reason() -> Option<String> {
    match cuda::require_nvrtc() {
        Ok(()) => None,
        Err(e) if std::env::var_os("FYM_REQUIRE_NVRTC").is_some_and(|v| v == "1") => {
            panic!("FYM_REQUIRE_NVRTC=1 but NVRTC is unusable: {e}")
        }
        Err(e) => Some(format!("skipped: {e}")),
    }
}

#[test]
fn every_cuda_source_compiles_to_ptx_with_its_kernels() {
    if let Some(reason) = skip_reason() {
        eprintln!("{reason}");
        return;
    }
    eprintln!(
        "NVRTC {:?} from {:?}, CUDA headers from {:?}",
        cuda::nvrtc_version().unwrap(),
        cuda::nvrtc_library(),
        cuda::cuda_include_dir()
    );
    let mut failures = Vec::new();
    for (file, src) in CUDA_SOURCES {
        let ptx = match cuda::compile_ptx(file, src) {
            Ok(ptx) => ptx,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let target = match cuda::required_arch(file) {
            Some(arch) => format!(".target sm_{arch}\n"),
            None => ".target sm_90\n".to_string(),
        };
        assert!(
            ptx.contains(&target),
            "{file}: PTX lacks `{}`:\n{}",
            target.trim(),
            &ptx[..ptx.len().min(400)]
        );
        let expected = EXPECTED_KERNELS
            .iter()
            .find(|(name, _)| name == file)
            .unwrap_or_else(|| panic!("{file} has no expected-kernel list in this test"))
            .1;
        let single = SINGLE_TYPE_KERNELS
            .iter()
            .filter(|(name, _)| name == file)
            .flat_map(|(_, kernels)| kernels.iter().map(|k| k.to_string()));
        let both = expected
            .iter()
            .flat_map(|family| ["f32", "bf16"].map(|suffix| format!("{family}_{suffix}")));
        for kernel in both.chain(single) {
            let entry = format!(".visible .entry {kernel}(");
            if !ptx.contains(&entry) {
                failures.push(format!("{file}: PTX lacks `{entry}`"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "CUDA compile failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_file_with_expected_kernels_is_in_the_source_table() {
    for (file, _) in EXPECTED_KERNELS {
        assert!(
            cuda::cuda_source(file).is_ok(),
            "{file} missing from CUDA_SOURCES"
        );
    }
    assert_eq!(CUDA_SOURCES.len(), EXPECTED_KERNELS.len());
}

#[test]
fn cubin_for_hopper_is_an_elf_image() {
    if let Some(reason) = skip_reason() {
        eprintln!("{reason}");
        return;
    }
    let (file, src) = CUDA_SOURCES[0];
    let cubin = cuda::compile_cubin(file, src, "sm_90").unwrap();
    assert_eq!(&cubin[..4], b"\x7fELF", "{file}: CUBIN is not an ELF image");
}

#[test]
fn compile_errors_name_the_file_and_carry_the_log() {
    if let Some(reason) = skip_reason() {
        eprintln!("{reason}");
        return;
    }
    let err = cuda::compile_ptx(
        "broken.cu",
        "extern \"C\" __global__ void k() { undeclared(); }",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("broken.cu"), "{err}");
    assert!(err.contains("undeclared"), "{err}");
}

#[test]
fn a_missing_header_names_the_env_var_to_set() {
    if let Some(reason) = skip_reason() {
        eprintln!("{reason}");
        return;
    }
    let err = cuda::compile_ptx("needs_header.cu", "#include <fym_no_such_header.h>\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains(cuda::CUDA_INCLUDE_ENV), "{err}");
    assert!(err.contains("fym_no_such_header.h"), "{err}");
}
