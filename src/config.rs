//! Options from three places with one precedence: command-line flags, then `REGATTA_*`
//! environment variables, then a YAML config file (`--config`), then built-in defaults.
//!
//! Every option is declared once, as a clap argument with a long name such as
//! `raft.node-id` and an environment variable such as `REGATTA_RAFT_NODE_ID`. The config file
//! uses the same names, either dotted (`raft.node-id: 1`) or nested (`raft: {node-id: 1}`).
//! A key the command does not know is an error, so a typo in a config file is never
//! silently ignored.
//!
//! Why not a layered-configuration crate such as `figment`: here clap stays the one
//! declaration of every option, and a config file's values enter as `--name=value`
//! arguments for options given neither as a flag nor in the environment, so precedence is
//! clap's own `ValueSource`, and parsing (durations, sizes, comma lists), validation, error
//! messages and `--help` (`[env: …]`, `[default: …]`) are the same wherever a value came
//! from. A figment layering would need serde on every flag group, defaults and environment
//! names declared a second time outside clap (its `Env` provider cannot tell the `.` from
//! the `-` in `REGATTA_RAFT_NODE_ID`), serde adapters for every value parser, and unknown
//! keys rejected by hand (`deny_unknown_fields` does not work through flattened groups).
//! Looking for a config file in default places (`/config`, `/etc/regatta`) is a few lines
//! in front of [`parse_with_config_file`] either way: figment would not make it simpler.

use std::{ffi::OsString, path::Path};

use anyhow::{Context, Result, bail};
use clap::{ArgMatches, Command, parser::ValueSource};

/// The argument id of `--config` on the commands that take a config file.
pub const CONFIG_FILE_ID: &str = "config_file";

/// Parses `argv` against `command`, filling options the user did not give on the command
/// line or in the environment from the config file named by the leaf subcommand's
/// `--config`, if any.
pub fn parse_with_config_file(
    command: Command,
    argv: Vec<OsString>,
) -> Result<ArgMatches, clap::Error> {
    let matches = command.clone().try_get_matches_from(&argv)?;
    let (leaf_command, leaf_matches) = leaf(&command, &matches);
    if !takes_config_file(leaf_command) {
        return Ok(matches);
    }
    let Some(path) = leaf_matches
        .try_get_one::<String>(CONFIG_FILE_ID)
        .ok()
        .flatten()
    else {
        return Ok(matches);
    };
    let extra = match config_file_args(Path::new(path), leaf_command, leaf_matches) {
        Ok(extra) => extra,
        Err(e) => {
            return Err(command
                .clone()
                .error(clap::error::ErrorKind::ValueValidation, format!("{e:#}")));
        }
    };
    let mut argv = argv;
    argv.extend(extra);
    command.try_get_matches_from(argv)
}

/// The config-file key that sets `arg` on a command that takes `--config`: its long name
/// (dotted, or nested one map per dot). `--config` itself is never read from a file.
pub fn config_key(arg: &clap::Arg) -> Option<&str> {
    arg.get_long().filter(|long| *long != "config")
}

/// Whether `command` reads a config file (`--config`).
pub fn takes_config_file(command: &Command) -> bool {
    command
        .get_arguments()
        .any(|a| a.get_id().as_str() == CONFIG_FILE_ID)
}

/// The innermost subcommand that was invoked, with its matches.
fn leaf<'a>(command: &'a Command, matches: &'a ArgMatches) -> (&'a Command, &'a ArgMatches) {
    match matches.subcommand() {
        Some((name, sub_matches)) => match command.find_subcommand(name) {
            Some(sub) => leaf(sub, sub_matches),
            None => (command, matches),
        },
        None => (command, matches),
    }
}

/// The `--name=value` arguments the config file contributes: one per key whose option was
/// given neither on the command line nor in the environment.
fn config_file_args(path: &Path, command: &Command, matches: &ArgMatches) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let value: serde_norway::Value = serde_norway::from_str(&text)
        .with_context(|| format!("config file {} is not valid YAML", path.display()))?;
    let mut flat = Vec::new();
    flatten("", &value, &mut flat).with_context(|| format!("in config file {}", path.display()))?;
    let mut args = Vec::new();
    for (key, values) in flat {
        if key == "config" {
            bail!(
                "config file {}: `config` cannot be set from a config file",
                path.display()
            );
        }
        let Some(arg) = command
            .get_arguments()
            .find(|a| config_key(a) == Some(key.as_str()))
        else {
            bail!(
                "config file {}: unknown option `{key}` for `{}`",
                path.display(),
                command.get_name()
            );
        };
        let given = matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !given {
            for value in values {
                args.push(OsString::from(format!("--{key}={value}")));
            }
        }
    }
    Ok(args)
}

/// Turns nested maps into dotted keys; scalars become strings, sequences several values.
fn flatten(
    prefix: &str,
    value: &serde_norway::Value,
    out: &mut Vec<(String, Vec<String>)>,
) -> Result<()> {
    use serde_norway::Value;
    let scalar = |v: &Value| -> Result<String> {
        Ok(match v {
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => bail!("`{prefix}` must be a scalar or a list of scalars"),
        })
    };
    match value {
        Value::Null if prefix.is_empty() => {}
        Value::Mapping(map) => {
            for (k, v) in map {
                let Value::String(k) = k else {
                    bail!("keys must be strings (under `{prefix}`)")
                };
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out)?;
            }
        }
        Value::Sequence(items) => {
            out.push((
                prefix.to_string(),
                items.iter().map(scalar).collect::<Result<_>>()?,
            ));
        }
        other if !prefix.is_empty() => out.push((prefix.to_string(), vec![scalar(other)?])),
        _ => bail!("the config file must be a mapping of option names to values"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn command() -> Command {
        Command::new("regatta").subcommand(
            Command::new("core")
                .arg(Arg::new(CONFIG_FILE_ID).long("config"))
                .arg(
                    Arg::new("node")
                        .long("raft.node-id")
                        .env("REGATTA_TEST_NODE_ID"),
                )
                .arg(
                    Arg::new("api")
                        .long("api.address")
                        .default_value("http://127.0.0.1:8443"),
                )
                .arg(
                    Arg::new("members")
                        .long("raft.initial-members")
                        .action(ArgAction::Append),
                ),
        )
    }

    fn run(args: &[&str], yaml: &str) -> Result<ArgMatches, clap::Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).expect("write config");
        let mut argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        argv.push("--config".into());
        argv.push(path.into_os_string());
        parse_with_config_file(command(), argv)
    }

    fn core_value(m: &ArgMatches, id: &str) -> Option<String> {
        m.subcommand_matches("core")
            .and_then(|c| c.get_one::<String>(id).cloned())
    }

    #[test]
    fn file_fills_what_flags_do_not_give() {
        let m = run(
            &["regatta", "core", "--raft.node-id", "7"],
            "raft:\n  node-id: 3\napi.address: http://0.0.0.0:1\n",
        )
        .expect("parses");
        assert_eq!(core_value(&m, "node").as_deref(), Some("7"));
        assert_eq!(core_value(&m, "api").as_deref(), Some("http://0.0.0.0:1"));
    }

    #[test]
    fn lists_become_repeated_values() {
        let m = run(
            &["regatta", "core"],
            "raft.initial-members: [\"1=a\", \"2=b\"]\n",
        )
        .expect("parses");
        let members: Vec<String> = m
            .subcommand_matches("core")
            .and_then(|c| c.get_many::<String>("members"))
            .expect("members")
            .cloned()
            .collect();
        assert_eq!(members, ["1=a", "2=b"]);
    }

    #[test]
    fn unknown_keys_and_bad_yaml_are_errors() {
        let err = run(&["regatta", "core"], "raft.node-idd: 3\n").expect_err("typo rejected");
        assert!(
            err.to_string().contains("unknown option `raft.node-idd`"),
            "{err}"
        );
        let err = run(&["regatta", "core"], "raft: [1, {a: b}]\n").expect_err("bad shape rejected");
        assert!(err.to_string().contains("scalar"), "{err}");
        let err = run(&["regatta", "core"], ":\n  - :").expect_err("bad yaml rejected");
        assert!(
            err.to_string().contains("YAML") || err.to_string().contains("mapping"),
            "{err}"
        );
    }
}
