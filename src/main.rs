use clap::Parser;

fn main() {
    let cli = fym::cli::Cli::parse();
    if let Err(err) = fym::cli::run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
