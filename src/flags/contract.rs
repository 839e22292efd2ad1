//! The command line's contract, checked against `tests/fixtures/flags.golden`: for every
//! command and subcommand, each option's long name, short name, aliases, environment
//! variable, defaults, whether it is required, how it takes values, and the config-file key
//! it answers to. Reordering or regrouping flags keeps this file unchanged; renaming one, or
//! changing its variable, default or config key, breaks the test on purpose.
//!
//! After a deliberate change: `REGATTA_UPDATE_GOLDEN=1 cargo nextest run -p regatta contract`
//! rewrites the file; review its diff.

use std::fmt::Write as _;

use clap::{ArgAction, CommandFactory};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/flags.golden");

/// One line per option of `command` and of every subcommand below it, sorted by command
/// path and option name.
fn describe(path: &str, command: &clap::Command, out: &mut Vec<String>) {
    let reads_config = crate::config::takes_config_file(command);
    let mut lines = Vec::new();
    for arg in command.get_arguments() {
        let mut line = String::new();
        let name = match arg.get_long() {
            Some(long) => format!("--{long}"),
            None => format!("<{}>", arg.get_id()),
        };
        let _ = write!(line, "{path} {name}");
        if let Some(short) = arg.get_short() {
            let _ = write!(line, " short=-{short}");
        }
        let aliases = arg.get_all_aliases().unwrap_or_default();
        if !aliases.is_empty() {
            let _ = write!(line, " aliases={}", aliases.join(","));
        }
        match arg.get_env() {
            Some(env) => {
                let _ = write!(line, " env={}", env.to_string_lossy());
            }
            None => line.push_str(" env=-"),
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if defaults.is_empty() {
            line.push_str(" default=-");
        } else {
            let _ = write!(line, " default={:?}", defaults.join(","));
        }
        let key = if reads_config {
            crate::config::config_key(arg)
        } else {
            None
        };
        let _ = write!(line, " config={}", key.unwrap_or("-"));
        let action = match arg.get_action() {
            ArgAction::Set => "set",
            ArgAction::Append => "append",
            ArgAction::SetTrue => "set-true",
            ArgAction::SetFalse => "set-false",
            ArgAction::Count => "count",
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong => "help",
            ArgAction::Version => "version",
            _ => "other",
        };
        let _ = write!(line, " action={action}");
        if let Some(delimiter) = arg.get_value_delimiter() {
            let _ = write!(line, " delimiter={delimiter:?}");
        }
        if arg.is_required_set() {
            line.push_str(" required");
        }
        if arg.is_hide_env_values_set() {
            line.push_str(" hide-env-values");
        }
        if arg.is_global_set() {
            line.push_str(" global");
        }
        lines.push(line);
    }
    lines.sort();
    out.extend(lines);
    for sub in command.get_subcommands() {
        let mut sub_path = format!("{path} {}", sub.get_name());
        let aliases: Vec<&str> = sub.get_all_aliases().collect();
        if !aliases.is_empty() {
            let _ = write!(sub_path, "|{}", aliases.join("|"));
        }
        describe(&sub_path, sub, out);
    }
}

#[test]
fn flags_env_defaults_and_config_keys_match_the_golden_file() {
    let mut lines = Vec::new();
    describe("regatta", &crate::Cli::command(), &mut lines);
    let actual = lines.join("\n") + "\n";
    if std::env::var_os("REGATTA_UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &actual).expect("writing the golden file");
        return;
    }
    let expected = std::fs::read_to_string(GOLDEN).expect("reading the golden file");
    if actual != expected {
        let missing: Vec<&str> = expected
            .lines()
            .filter(|l| !actual.lines().any(|a| a == *l))
            .collect();
        let unexpected: Vec<&str> = actual
            .lines()
            .filter(|l| !expected.lines().any(|e| e == *l))
            .collect();
        panic!(
            "the command line differs from {GOLDEN}\nexpected but missing:\n  {}\nfound but not expected:\n  {}",
            missing.join("\n  "),
            unexpected.join("\n  ")
        );
    }
}
