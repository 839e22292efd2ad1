//! The server commands' logs: `--log.level`, `--log.format`, and Regatta's `--log-level`
//! and `--dev-mode` (installed by [`crate::telemetry`]).
//!
//! Which filter wins, first match:
//!
//! | given | filter |
//! |---|---|
//! | `RUST_LOG` (environment) | it |
//! | `--log.level` (flag, `REGATTA_LOG_LEVEL`, config file) | it |
//! | `--log-level` | the level; openraft at `warn` unless `DEBUG` |
//! | `--dev-mode` | [`DEV_FILTER`]: `debug` for this project's crates, openraft at `warn` |
//! | nothing | [`DEFAULT_FILTER`] |
//!
//! `--log.level` and `--log-level` together are refused by clap, naming both.

use clap::{Args, ValueEnum, builder::BoolishValueParser};

/// The filter when no level is given.
pub const DEFAULT_FILTER: &str = "info,openraft=warn";

/// The filter of `--dev-mode` without a level: this project's crates at `debug`, the rest
/// at `info`, openraft at `warn`.
pub const DEV_FILTER: &str = "info,openraft=warn,regatta=debug,regatta_api=debug,\
    regatta_archive=debug,regatta_cli=debug,regatta_core=debug,regatta_log=debug,\
    regatta_materializer=debug,regatta_replication=debug,regatta_tls=debug";

/// The clap id of `--log.level`, whose value source tells a given level from the default.
pub const LOG_LEVEL_ID: &str = "level";

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter, e.g. `info` or `info,openraft=warn` (RUST_LOG syntax; RUST_LOG also works).
    #[arg(
        long = "log.level",
        id = LOG_LEVEL_ID,
        value_name = "LEVEL",
        env = "REGATTA_LOG_LEVEL",
        default_value = DEFAULT_FILTER
    )]
    pub level: String,
    /// Log line format.
    #[arg(long = "log.format", env = "REGATTA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
    /// Regatta's log level, case-insensitive (`WARNING` = `WARN`): sets the level as
    /// --log.level does, openraft at `warn` unless `DEBUG`. Excludes --log.level (whose
    /// environment variable is REGATTA_LOG_LEVEL).
    #[arg(
        long = "log-level",
        value_enum,
        ignore_case = true,
        conflicts_with = LOG_LEVEL_ID
    )]
    pub log_level: Option<LogLevel>,
    /// Regatta's development mode: `debug` logs from this project's crates (openraft stays
    /// at `warn`) unless --log.level or --log-level is given. Lines are text unless
    /// --log.format says otherwise.
    #[arg(
        long = "dev-mode",
        env = "REGATTA_DEV_MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = BoolishValueParser::new()
    )]
    pub dev_mode: bool,
}

/// Regatta's `--log-level` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    #[value(alias = "warning")]
    Warn,
    Error,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogArgs {
    /// The filter these options select (`RUST_LOG` aside); `level_given`: --log.level was
    /// given (flag, environment or config file), not its default. Names the option it came
    /// from, for errors.
    pub fn filter(&self, level_given: bool) -> (String, &'static str) {
        if level_given {
            return (self.level.clone(), "--log.level");
        }
        let filter = match (self.log_level, self.dev_mode) {
            (Some(LogLevel::Debug), _) => "debug",
            (Some(LogLevel::Info), _) => "info,openraft=warn",
            (Some(LogLevel::Warn), _) => "warn",
            (Some(LogLevel::Error), _) => "error",
            (None, true) => DEV_FILTER,
            (None, false) => return (self.level.clone(), "--log.level"),
        };
        let flag = if self.log_level.is_some() {
            "--log-level"
        } else {
            "--dev-mode"
        };
        (filter.to_string(), flag)
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Parser, Debug)]
    struct Command {
        #[command(flatten)]
        log: LogArgs,
    }

    /// The filter of a command line, as the binary computes it.
    fn filter(args: &[&str]) -> Result<String, clap::Error> {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        let matches = Command::command().try_get_matches_from(argv)?;
        let given =
            matches.value_source(LOG_LEVEL_ID) != Some(clap::parser::ValueSource::DefaultValue);
        let log = Command::from_arg_matches(&matches)?.log;
        Ok(log.filter(given).0)
    }

    #[test]
    fn regattas_levels_set_the_filter_case_insensitively() {
        assert_eq!(filter(&[]).expect("default"), DEFAULT_FILTER);
        assert_eq!(filter(&["--log-level=DEBUG"]).expect("debug"), "debug");
        assert_eq!(
            filter(&["--log-level", "info"]).expect("info"),
            "info,openraft=warn"
        );
        assert_eq!(filter(&["--log-level=Warning"]).expect("warning"), "warn");
        assert_eq!(filter(&["--log-level=WARN"]).expect("warn"), "warn");
        assert_eq!(filter(&["--log-level=error"]).expect("error"), "error");
        assert!(filter(&["--log-level=trace"]).is_err());
    }

    #[test]
    fn dev_mode_debugs_this_projects_crates_unless_a_level_is_given() {
        for dev in [
            vec!["--dev-mode"],
            vec!["--dev-mode=true"],
            vec!["--dev-mode=TRUE"],
        ] {
            assert_eq!(filter(&dev).expect("dev mode"), DEV_FILTER);
        }
        assert_eq!(filter(&["--dev-mode=false"]).expect("off"), DEFAULT_FILTER);
        assert_eq!(
            filter(&["--dev-mode", "--log-level=ERROR"]).expect("level wins"),
            "error"
        );
        assert_eq!(
            filter(&["--dev-mode", "--log.level=warn,regatta=trace"]).expect("level wins"),
            "warn,regatta=trace"
        );
        assert!(DEV_FILTER.contains("openraft=warn") && DEV_FILTER.contains("regatta=debug"));
        tracing_subscriber::EnvFilter::try_new(DEV_FILTER).expect("a valid filter");
    }

    #[test]
    fn both_level_flags_are_refused_naming_both() {
        let err = filter(&["--log-level=INFO", "--log.level=debug"])
            .expect_err("both")
            .to_string();
        assert!(
            err.contains("--log-level") && err.contains("--log.level"),
            "{err}"
        );
    }
}
