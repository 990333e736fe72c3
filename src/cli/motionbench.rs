//! `fym motionbench` (in progress).

#[derive(clap::Args, Debug)]
pub struct MotionbenchArgs {}

pub fn run(_args: MotionbenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("fym motionbench is not available yet")
}
