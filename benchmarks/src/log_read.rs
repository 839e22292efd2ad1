//! Placeholder: this scenario is being written.

/// Settings of the scenario.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("this scenario is not written yet")
}
