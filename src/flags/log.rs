//! The server commands' logs: `--log.level`, `--log.format` (installed by
//! [`crate::telemetry`]).

use clap::{Args, ValueEnum};

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter, e.g. `info` or `info,openraft=warn` (RUST_LOG syntax; RUST_LOG also works).
    #[arg(
        long = "log.level",
        env = "REGATTA_LOG_LEVEL",
        default_value = "info,openraft=warn"
    )]
    pub level: String,
    /// Log line format.
    #[arg(long = "log.format", env = "REGATTA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}
