//! NVRTC: finding libnvrtc and the CUDA headers at run time, and compiling fym's `.cu` files to PTX
//! or CUBIN. Needs no GPU, so CI compiles every kernel on machines without one.
//!
//! cudarc opens libnvrtc by bare name (`dlopen("libnvrtc.so.13")`), which only searches the loader
//! path fixed at process start. So fym first looks in `FYM_NVRTC_DIR`, the `LD_LIBRARY_PATH`
//! directories and `/usr/local/cuda/lib64` itself and preloads the library by absolute path with
//! `RTLD_GLOBAL`; cudarc's later `dlopen` then finds it by its SONAME. The pip wheel's libnvrtc has
//! no RPATH and opens `libnvrtc-builtins.so.13.*` lazily, so that one is preloaded first.

use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::nvrtc::sys;

use super::sources::{required_arch, CUDA_HEADERS};
use crate::{Error, Result};

/// Directory searched first for `libnvrtc.so.13` (e.g. pip's `site-packages/nvidia/cu13/lib`).
pub const NVRTC_DIR_ENV: &str = "FYM_NVRTC_DIR";
/// Directory holding the CUDA headers the kernels include (`cuda_bf16.h`).
pub const CUDA_INCLUDE_ENV: &str = "FYM_CUDA_INCLUDE";
/// Virtual architecture of the PTX that [`compile_ptx`] emits: Hopper (H100/H200).
pub const DEFAULT_PTX_ARCH: &str = "compute_90";

const SYSTEM_CUDA_LIB_DIR: &str = "/usr/local/cuda/lib64";
const SYSTEM_CUDA_INCLUDE_DIR: &str = "/usr/local/cuda/include";
/// The NVRTC major must match cudarc's bindings (feature `cuda-13000`).
const NVRTC_LIB_NAME: &str = "libnvrtc.so.13";
const NVRTC_BUILTINS_PREFIX: &str = "libnvrtc-builtins.so.13";
/// A header every kernel includes; its presence identifies a usable include directory.
const PROBE_HEADER: &str = "cuda_bf16.h";

/// Where libnvrtc is looked for, in order: `FYM_NVRTC_DIR`, each `LD_LIBRARY_PATH` entry,
/// `/usr/local/cuda/lib64`. (The system loader path is tried last, by cudarc itself.)
pub fn nvrtc_search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(NVRTC_DIR_ENV).filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
        dirs.extend(std::env::split_paths(&paths).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs.push(PathBuf::from(SYSTEM_CUDA_LIB_DIR));
    dirs
}

/// Outcome of the one-time NVRTC discovery: the preloaded library (None when only the system
/// loader path had it), or why NVRTC cannot be used.
static NVRTC: OnceLock<std::result::Result<Option<PathBuf>, String>> = OnceLock::new();

fn nvrtc_state() -> &'static std::result::Result<Option<PathBuf>, String> {
    NVRTC.get_or_init(discover_nvrtc)
}

fn discover_nvrtc() -> std::result::Result<Option<PathBuf>, String> {
    let dirs = nvrtc_search_dirs();
    let mut failures = Vec::new();
    let mut preloaded = None;
    for dir in &dirs {
        let lib = dir.join(NVRTC_LIB_NAME);
        if !lib.is_file() {
            continue;
        }
        preload_builtins(dir);
        match preload(&lib) {
            Ok(()) => {
                preloaded = Some(lib);
                break;
            }
            Err(e) => failures.push(format!("{}: {e}", lib.display())),
        }
    }
    // Trying every candidate name does not panic (unlike the first real NVRTC call would).
    let present = catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false);
    if present {
        return Ok(preloaded);
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut msg = format!(
        "NVRTC ({NVRTC_LIB_NAME}) not found in {searched:?} nor on the system loader path; \
         install it (`pip install nvidia-cuda-nvrtc==13.0.88`) and set {NVRTC_DIR_ENV} to its \
         lib folder (<venv>/lib/python3.X/site-packages/nvidia/cu13/lib), or install the CUDA 13 toolkit"
    );
    if !failures.is_empty() {
        msg.push_str(&format!("; could not load: {}", failures.join("; ")));
    }
    Err(msg)
}

fn preload(path: &Path) -> std::result::Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    let lib =
        unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| e.to_string())?;
    // Kept loaded for the whole process: cudarc's own handle refers to this copy.
    std::mem::forget(lib);
    Ok(())
}

fn preload_builtins(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(NVRTC_BUILTINS_PREFIX)
        {
            // A failure here shows up later as a clear NVRTC compile error naming the library.
            let _ = preload(&entry.path());
        }
    }
}

/// Whether NVRTC can be used in this process (found and loadable). Never panics.
pub fn nvrtc_available() -> bool {
    nvrtc_state().is_ok()
}

/// `Ok` when NVRTC is usable, else [`Error::CudaUnavailable`] saying how to install it.
pub fn require_nvrtc() -> Result<()> {
    match nvrtc_state() {
        Ok(_) => Ok(()),
        Err(msg) => Err(Error::CudaUnavailable(msg.clone())),
    }
}

/// The libnvrtc that fym preloaded, if it found one itself (None: the system loader's copy is used).
pub fn nvrtc_library() -> Option<PathBuf> {
    nvrtc_state().as_ref().ok().cloned().flatten()
}

/// NVRTC's (major, minor) version.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    require_nvrtc()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    let status = catch_unwind(AssertUnwindSafe(|| unsafe {
        sys::nvrtcVersion(&mut major, &mut minor).result()
    }));
    match status {
        Ok(Ok(())) => Ok((major, minor)),
        Ok(Err(e)) => Err(Error::CudaUnavailable(format!(
            "nvrtcVersion failed: {e:?}"
        ))),
        Err(panic) => Err(Error::CudaUnavailable(format!(
            "nvrtcVersion failed: {}",
            panic_message(panic)
        ))),
    }
}

/// The directory whose headers (`cuda_bf16.h`, …) the kernels are compiled against:
/// `FYM_CUDA_INCLUDE`, else `/usr/local/cuda/include`, else the `include` folder beside the
/// preloaded libnvrtc's `lib` folder (the pip wheels' layout), else none.
pub fn cuda_include_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CUDA_INCLUDE_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let system = PathBuf::from(SYSTEM_CUDA_INCLUDE_DIR);
    if system.join(PROBE_HEADER).is_file() {
        return Some(system);
    }
    let beside_lib = nvrtc_library()?.parent()?.parent()?.join("include");
    beside_lib
        .join(PROBE_HEADER)
        .is_file()
        .then_some(beside_lib)
}

/// What NVRTC should produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// PTX for a virtual architecture, e.g. `compute_90`; the driver JIT-compiles it at load.
    Ptx(&'a str),
    /// A CUBIN for a real architecture, e.g. `sm_90`; loads without JIT (a virtual arch yields
    /// an empty CUBIN, which is reported as an error).
    Cubin(&'a str),
}

/// Output of one NVRTC compile: PTX text (as bytes) or a CUBIN image, and NVRTC's log.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub image: Vec<u8>,
    pub log: String,
}

/// Compiles `src` (named `file` in messages) with the [`CUDA_HEADERS`] available to `#include`.
/// `extra_options` go to NVRTC as is (e.g. `--ptxas-options=-v`, `--maxrregcount=64`).
pub fn compile(file: &str, src: &str, target: Target, extra_options: &[&str]) -> Result<Compiled> {
    require_nvrtc()?;
    let include_dir = cuda_include_dir();
    let arch = match target {
        Target::Ptx(arch) | Target::Cubin(arch) => arch,
    };
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        // Source-line info for profilers; it does not change the generated code.
        "--generate-line-info".to_string(),
    ];
    if let Some(dir) = &include_dir {
        options.push(format!("--include-path={}", dir.display()));
    }
    options.extend(extra_options.iter().map(|o| o.to_string()));

    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe {
        run_nvrtc(file, src, target, &options)
    }));
    let failure = match outcome {
        Ok(Ok(compiled)) => return Ok(compiled),
        Ok(Err(msg)) => msg,
        Err(panic) => format!("NVRTC panicked: {}", panic_message(panic)),
    };
    Err(Error::Compile {
        file: file.to_string(),
        msg: add_header_hint(failure, include_dir.as_deref()),
    })
}

/// Compiles to PTX for [`DEFAULT_PTX_ARCH`], or for `compute_90a` where `file` needs it
/// ([`super::required_arch`]); usable without a GPU.
pub fn compile_ptx(file: &str, src: &str) -> Result<String> {
    let arch = required_arch(file).map(|a| format!("compute_{a}"));
    let arch = arch.as_deref().unwrap_or(DEFAULT_PTX_ARCH);
    let compiled = compile(file, src, Target::Ptx(arch), &[])?;
    String::from_utf8(compiled.image).map_err(|e| Error::Compile {
        file: file.to_string(),
        msg: format!("NVRTC returned PTX that is not UTF-8: {e}"),
    })
}

/// Compiles to a CUBIN for a real architecture such as `sm_90`; usable without a GPU.
pub fn compile_cubin(file: &str, src: &str, sm_arch: &str) -> Result<Vec<u8>> {
    Ok(compile(file, src, Target::Cubin(sm_arch), &[])?.image)
}

fn add_header_hint(msg: String, include_dir: Option<&Path>) -> String {
    if !msg.contains("open source file") {
        return msg;
    }
    let hint = match include_dir {
        None => format!(
            "no CUDA include directory found: set {CUDA_INCLUDE_ENV} to a folder holding \
             {PROBE_HEADER} (`pip install nvidia-cuda-runtime==13.0.96` puts one in \
             <venv>/lib/python3.X/site-packages/nvidia/cu13/include) or install the CUDA toolkit \
             in /usr/local/cuda"
        ),
        Some(dir) => format!(
            "the CUDA include directory {} lacks a header; point {CUDA_INCLUDE_ENV} at the \
             CUDA 13 include folder that holds {PROBE_HEADER}",
            dir.display()
        ),
    };
    format!("{hint}\n{msg}")
}

/// Destroys an NVRTC program when dropped, on every exit path.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        unsafe {
            let _ = sys::nvrtcDestroyProgram(&mut self.0);
        }
    }
}

fn c_string(what: &str, s: &str) -> std::result::Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

/// # Safety
/// NVRTC must be loaded ([`require_nvrtc`]).
unsafe fn run_nvrtc(
    file: &str,
    src: &str,
    target: Target,
    options: &[String],
) -> std::result::Result<Compiled, String> {
    let c_src = c_string("source", src)?;
    let c_file = c_string("file name", file)?;
    let header_srcs = CUDA_HEADERS
        .iter()
        .map(|(name, text)| c_string(name, text))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let header_names = CUDA_HEADERS
        .iter()
        .map(|(name, _)| c_string("header name", name))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let header_src_ptrs: Vec<*const c_char> = header_srcs.iter().map(|s| s.as_ptr()).collect();
    let header_name_ptrs: Vec<*const c_char> = header_names.iter().map(|s| s.as_ptr()).collect();

    let mut raw: sys::nvrtcProgram = std::ptr::null_mut();
    sys::nvrtcCreateProgram(
        &mut raw,
        c_src.as_ptr(),
        c_file.as_ptr(),
        header_src_ptrs.len() as c_int,
        header_src_ptrs.as_ptr(),
        header_name_ptrs.as_ptr(),
    )
    .result()
    .map_err(|e| format!("nvrtcCreateProgram failed: {e:?}"))?;
    let program = Program(raw);

    let c_options = options
        .iter()
        .map(|o| c_string("option", o))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let option_ptrs: Vec<*const c_char> = c_options.iter().map(|o| o.as_ptr()).collect();
    let status =
        sys::nvrtcCompileProgram(program.0, option_ptrs.len() as c_int, option_ptrs.as_ptr());
    let log = program_log(&program);
    if let Err(e) = status.result() {
        return Err(format!("{e:?} (options {options:?})\n{log}"));
    }

    let image = match target {
        Target::Ptx(_) => {
            let mut size = 0usize;
            sys::nvrtcGetPTXSize(program.0, &mut size)
                .result()
                .map_err(|e| format!("nvrtcGetPTXSize failed: {e:?}"))?;
            let mut ptx = vec![0u8; size];
            sys::nvrtcGetPTX(program.0, ptx.as_mut_ptr() as *mut c_char)
                .result()
                .map_err(|e| format!("nvrtcGetPTX failed: {e:?}"))?;
            // NVRTC counts the terminating NUL in the size.
            while ptx.last() == Some(&0) {
                ptx.pop();
            }
            ptx
        }
        Target::Cubin(arch) => {
            let mut size = 0usize;
            sys::nvrtcGetCUBINSize(program.0, &mut size)
                .result()
                .map_err(|e| format!("nvrtcGetCUBINSize failed: {e:?}"))?;
            if size == 0 {
                return Err(format!(
                    "NVRTC produced no CUBIN for {arch}: a real architecture (sm_XY) is needed"
                ));
            }
            let mut cubin = vec![0u8; size];
            sys::nvrtcGetCUBIN(program.0, cubin.as_mut_ptr() as *mut c_char)
                .result()
                .map_err(|e| format!("nvrtcGetCUBIN failed: {e:?}"))?;
            cubin
        }
    };
    Ok(Compiled { image, log })
}

unsafe fn program_log(program: &Program) -> String {
    let mut size = 0usize;
    if sys::nvrtcGetProgramLogSize(program.0, &mut size)
        .result()
        .is_err()
        || size == 0
    {
        return String::new();
    }
    let mut log = vec![0u8; size];
    if sys::nvrtcGetProgramLog(program.0, log.as_mut_ptr() as *mut c_char)
        .result()
        .is_err()
    {
        return String::new();
    }
    while log.last() == Some(&0) {
        log.pop();
    }
    String::from_utf8_lossy(&log).into_owned()
}

/// The text of a caught panic (cudarc panics when a library or symbol is missing).
pub(crate) fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}
