use clap::Parser;

fn main() {
    restore_default_sigpipe();
    let cli = fym::cli::Cli::parse();
    if let Err(err) = fym::cli::run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// Rust ignores SIGPIPE, so `println!` panics when stdout is closed early (`fym bench | head`).
/// A command-line tool should end quietly instead, as the C tools it is piped with do.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}
