//! `fym metrics` (in progress).

#[derive(clap::Args, Debug)]
pub struct MetricsArgs {}

pub fn run(_args: MetricsArgs) -> anyhow::Result<()> {
    anyhow::bail!("fym metrics is not available yet")
}
