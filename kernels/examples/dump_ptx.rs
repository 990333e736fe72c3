//! Writes the PTX of every `.cu` file of fym (NVRTC, compute_90) into a folder, one
//! `<file>.ptx` each, for `scripts/ptxas-report` and for reading the generated code.
//!
//! Usage: `cargo run --release -p fym-kernels --example dump_ptx -- <out_dir>`

use std::path::PathBuf;
use std::process::ExitCode;

use fym_kernels::cuda::{self, CUDA_SOURCES};

fn main() -> ExitCode {
    let Some(out_dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: dump_ptx <out_dir>");
        return ExitCode::from(2);
    };
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("dump_ptx: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    for (file, src) in CUDA_SOURCES {
        let path = out_dir.join(file).with_extension("ptx");
        let written = cuda::compile_ptx(file, src)
            .map_err(|e| e.to_string())
            .and_then(|ptx| {
                std::fs::write(&path, ptx).map_err(|e| format!("{}: {e}", path.display()))
            });
        match written {
            Ok(()) => println!("{}", path.display()),
            Err(e) => {
                eprintln!("dump_ptx: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
