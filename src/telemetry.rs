//! Structured logs for the server commands: text for people, JSON for log pipelines.

use anyhow::{Result, anyhow};

pub use crate::flags::log::{LogArgs, LogFormat};

/// Installs the global subscriber. RUST_LOG, when set, wins over the options (see
/// [`crate::flags::log`] for which option wins among them); `level_given`: --log.level was
/// given, not its default.
pub fn init(args: &LogArgs, level_given: bool) -> Result<()> {
    let (filter, flag) = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => (from_env, "RUST_LOG"),
        _ => args.filter(level_given),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|e| anyhow!("{flag} {filter:?}: {e}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let installed = match args.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow!("installing the log subscriber: {e}"))
}
