//! Which services a node serves: `--tables.enabled`, `--maintenance.enabled` and
//! `--replication.enabled` (core and edge), Regatta's switches. Each is on by default and
//! takes pflag's forms: `--x`, `--x=true`, `--x=false`. A service switched off is not
//! registered: a client calling it gets `UNIMPLEMENTED`, and a replication port switched
//! off is not bound at all.

/// The service switches of a node.
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceArgs {
    /// Serve the Tables service (create, delete, list tables) on the API port. false: its
    /// calls answer UNIMPLEMENTED; the tables of --tables.names are still created.
    #[arg(
        long = "tables.enabled",
        env = "REGATTA_TABLES_ENABLED",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub tables: bool,
    /// Serve the Maintenance service (backup and restore of tables) on the API port.
    /// false: its calls answer UNIMPLEMENTED.
    #[arg(
        long = "maintenance.enabled",
        env = "REGATTA_MAINTENANCE_ENABLED",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub maintenance: bool,
    /// Serve the log tail on --replication.address, for the edges that follow this node.
    /// false: the port is not bound, and no edge can follow this node.
    #[arg(
        long = "replication.enabled",
        env = "REGATTA_REPLICATION_ENABLED",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub replication: bool,
    /// The Watch service's history and bounds (`--watch.*`).
    #[command(flatten)]
    pub watch: super::watch::WatchArgs,
}

impl Default for ServiceArgs {
    /// Everything served.
    fn default() -> Self {
        Self {
            tables: true,
            maintenance: true,
            replication: true,
            watch: super::watch::WatchArgs::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        services: ServiceArgs,
    }

    fn parse(args: &[&str]) -> ServiceArgs {
        Cli::try_parse_from([&["t"], args].concat())
            .map(|c| c.services)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn every_service_is_on_unless_switched_off_in_pflag_forms() {
        assert_eq!(parse(&[]), ServiceArgs::default());
        let off = ServiceArgs {
            tables: false,
            maintenance: false,
            replication: false,
            ..ServiceArgs::default()
        };
        assert_eq!(
            parse(&[
                "--tables.enabled=false",
                "--maintenance.enabled=false",
                "--replication.enabled=false"
            ]),
            off
        );
        assert_eq!(
            parse(&[
                "--tables.enabled",
                "--maintenance.enabled=true",
                "--replication.enabled"
            ]),
            ServiceArgs::default()
        );
        assert!(Cli::try_parse_from(["t", "--tables.enabled=maybe"]).is_err());
    }
}
