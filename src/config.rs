//! Options from four places with one precedence: command-line flags, then environment
//! variables (`REGATTA_*`), then a config file, then built-in defaults. A value given in a
//! higher place wins over the same option in a lower one, option by option.
//!
//! Every option is declared once, as a clap argument with a long name such as
//! `raft.node-id` and an environment variable such as `REGATTA_RAFT_NODE_ID`. The config file
//! uses the same names, either dotted (`raft.node-id: 1`) or nested (`raft: {node-id: 1}`).
//! A key the command does not know is an error, so a typo in a config file is never
//! silently ignored.
//!
//! # Which config file
//!
//! `--config PATH` (or `REGATTA_CONFIG`) names it. Without it, the file is looked for as
//! Regatta does: `config.json`, `config.toml`, `config.yaml`, `config.yml`, in that order, in
//! each of `/etc/regatta`, `/config`, `$HOME/.regatta` and the working directory `.`, in that
//! order ([`search_dirs`]); the first file found is the one read, and the others are
//! ignored. With `--config` given no other file is looked for, even one that exists in
//! these directories. A file found but unreadable, or not valid in its format, is an error
//! naming it, as is a directory in the list that cannot be searched (other than missing):
//! the node does not start without the settings it was meant to have. The format follows the
//! extension: `.json` JSON, `.toml` TOML, anything else YAML.
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

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use clap::{ArgMatches, Command, parser::ValueSource};

/// The argument id of `--config` on the commands that take a config file.
pub const CONFIG_FILE_ID: &str = "config_file";

/// Parses `argv` against `command`, filling options the user did not give on the command
/// line or in the environment from the config file: the one named by the leaf subcommand's
/// `--config`, else the first found in the default places ([`search_dirs`] of the process's
/// `$HOME`).
pub fn parse_with_config_file(
    command: Command,
    argv: Vec<OsString>,
) -> Result<ArgMatches, clap::Error> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    parse_with_config_search(command, argv, &search_dirs(home.as_deref()))
}

/// [`parse_with_config_file`], looking in `dirs` when `--config` is not given.
pub fn parse_with_config_search(
    command: Command,
    argv: Vec<OsString>,
    dirs: &[PathBuf],
) -> Result<ArgMatches, clap::Error> {
    let matches = command.clone().try_get_matches_from(&argv)?;
    let (leaf_command, leaf_matches) = leaf(&command, &matches);
    if !takes_config_file(leaf_command) {
        return Ok(matches);
    }
    let given = leaf_matches
        .try_get_one::<String>(CONFIG_FILE_ID)
        .ok()
        .flatten()
        .map(PathBuf::from);
    let path = match given {
        Some(path) => path,
        None => match discover(dirs) {
            Ok(Some(path)) => path,
            Ok(None) => return Ok(matches),
            Err(e) => {
                return Err(command
                    .clone()
                    .error(clap::error::ErrorKind::ValueValidation, format!("{e:#}")));
            }
        },
    };
    let extra = match config_file_args(&path, leaf_command, leaf_matches) {
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

/// The names a config file may have, in the order they are tried within one directory.
pub const CONFIG_FILE_NAMES: &[&str] = &["config.json", "config.toml", "config.yaml", "config.yml"];

/// The directories searched for a config file when `--config` is not given, in order:
/// `/etc/regatta`, `/config`, `<home>/.regatta` (left out without a home directory) and the
/// working directory.
pub fn search_dirs(home: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/etc/regatta"), PathBuf::from("/config")];
    if let Some(home) = home.filter(|h| !h.as_os_str().is_empty()) {
        dirs.push(home.join(".regatta"));
    }
    dirs.push(PathBuf::from("."));
    dirs
}

/// The config file to read: in the first of `dirs` holding one, the first of
/// [`CONFIG_FILE_NAMES`] that is a file (or a link to one). A path that cannot be checked
/// for any reason but its absence is an error naming it.
pub fn discover(dirs: &[PathBuf]) -> Result<Option<PathBuf>> {
    for dir in dirs {
        for name in CONFIG_FILE_NAMES {
            let path = dir.join(name);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => return Ok(Some(path)),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("looking for a config file at {}", path.display())));
                }
            }
        }
    }
    Ok(None)
}

/// The formats a config file may be in, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Toml,
    Yaml,
}

impl Format {
    fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Self::Json,
            Some(e) if e.eq_ignore_ascii_case("toml") => Self::Toml,
            _ => Self::Yaml,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Toml => "TOML",
            Self::Yaml => "YAML",
        }
    }

    /// Parses `text` into the one tree every format is read as.
    fn parse(self, text: &str) -> Result<serde_norway::Value> {
        Ok(match self {
            Self::Json => serde_json::from_str(text)?,
            Self::Toml => toml::from_str(text)?,
            Self::Yaml => serde_norway::from_str(text)?,
        })
    }
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
    let format = Format::of(path);
    let value = format.parse(&text).with_context(|| {
        format!(
            "config file {} is not valid {}",
            path.display(),
            format.name()
        )
    })?;
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

    fn core_node(m: &ArgMatches) -> Option<String> {
        core_value(m, "node")
    }

    #[test]
    fn the_search_order_is_regattas() {
        assert_eq!(
            search_dirs(Some(Path::new("/home/op"))),
            [
                PathBuf::from("/etc/regatta"),
                PathBuf::from("/config"),
                PathBuf::from("/home/op/.regatta"),
                PathBuf::from("."),
            ]
        );
        assert_eq!(
            search_dirs(None),
            [
                PathBuf::from("/etc/regatta"),
                PathBuf::from("/config"),
                PathBuf::from(".")
            ]
        );
    }

    #[test]
    fn the_first_directory_holding_a_file_wins_and_within_it_json_toml_yaml_yml() {
        let root = tempfile::tempdir().expect("tempdir");
        let dirs: Vec<PathBuf> = ["etc", "config", "home", "cwd"]
            .iter()
            .map(|d| root.path().join(d))
            .collect();
        // Only some exist: a missing directory is skipped.
        std::fs::create_dir(&dirs[1]).expect("mkdir");
        std::fs::create_dir(&dirs[3]).expect("mkdir");
        assert_eq!(discover(&dirs).expect("searched"), None);
        std::fs::write(dirs[3].join("config.yml"), "").expect("write");
        assert_eq!(
            discover(&dirs).expect("searched"),
            Some(dirs[3].join("config.yml"))
        );
        std::fs::write(dirs[1].join("config.yaml"), "").expect("write");
        assert_eq!(
            discover(&dirs).expect("searched"),
            Some(dirs[1].join("config.yaml")),
            "an earlier directory wins"
        );
        std::fs::write(dirs[1].join("config.toml"), "").expect("write");
        assert_eq!(
            discover(&dirs).expect("searched"),
            Some(dirs[1].join("config.toml"))
        );
        std::fs::write(dirs[1].join("config.json"), "").expect("write");
        assert_eq!(
            discover(&dirs).expect("searched"),
            Some(dirs[1].join("config.json"))
        );
        // A directory named like a config file is not one.
        std::fs::create_dir(dirs[3].join("config.json")).expect("mkdir");
        std::fs::remove_file(dirs[1].join("config.json")).expect("rm");
        assert_eq!(
            discover(&dirs[3..]).expect("searched"),
            Some(dirs[3].join("config.yml"))
        );
        // Something in the way of a directory (a file where it should be) is skipped too.
        std::fs::write(&dirs[0], "").expect("write");
        assert_eq!(
            discover(&dirs[..1]).expect("searched"),
            None,
            "a file where a directory should be holds no config"
        );
    }

    #[test]
    fn a_discovered_file_fills_what_flags_and_environment_do_not_give() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().to_path_buf();
        std::fs::write(
            dir.join("config.json"),
            r#"{"raft": {"node-id": 4}, "api.address": "http://0.0.0.0:2"}"#,
        )
        .expect("write");
        let argv = |args: &[&str]| args.iter().map(OsString::from).collect::<Vec<_>>();
        let m = parse_with_config_search(
            command(),
            argv(&["regatta", "core"]),
            std::slice::from_ref(&dir),
        )
        .expect("parses");
        assert_eq!(core_node(&m).as_deref(), Some("4"));
        assert_eq!(core_value(&m, "api").as_deref(), Some("http://0.0.0.0:2"));
        let m = parse_with_config_search(
            command(),
            argv(&["regatta", "core", "--raft.node-id=9"]),
            std::slice::from_ref(&dir),
        )
        .expect("parses");
        assert_eq!(core_node(&m).as_deref(), Some("9"), "a flag wins");
        // With --config given, the discovered file is not read.
        let given = root.path().join("given.toml");
        std::fs::write(&given, "[raft]\nnode-id = 5\n").expect("write");
        let mut args = argv(&["regatta", "core", "--config"]);
        args.push(given.into_os_string());
        let m =
            parse_with_config_search(command(), args, std::slice::from_ref(&dir)).expect("parses");
        assert_eq!(core_node(&m).as_deref(), Some("5"));
        assert_eq!(
            core_value(&m, "api").as_deref(),
            Some("http://127.0.0.1:8443"),
            "nothing from the discovered file"
        );
        // Found but invalid: an error naming the file.
        std::fs::write(dir.join("config.json"), "{not json").expect("write");
        let err = parse_with_config_search(
            command(),
            argv(&["regatta", "core"]),
            std::slice::from_ref(&dir),
        )
        .expect_err("invalid file");
        let text = err.to_string();
        assert!(
            text.contains("config.json") && text.contains("not valid JSON"),
            "{text}"
        );
    }

    #[test]
    fn toml_and_json_files_read_like_yaml() {
        for (name, text) in [
            (
                "c.toml",
                "\"raft.node-id\" = 3\n[raft]\ninitial-members = [\"1=a\", \"2=b\"]\n",
            ),
            (
                "c.json",
                r#"{"raft.node-id": 3, "raft": {"initial-members": ["1=a", "2=b"]}}"#,
            ),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let argv = vec![
                OsString::from("regatta"),
                "core".into(),
                "--config".into(),
                path.into_os_string(),
            ];
            let m = parse_with_config_file(command(), argv).expect(name);
            assert_eq!(core_node(&m).as_deref(), Some("3"), "{name}");
            let members: Vec<String> = m
                .subcommand_matches("core")
                .and_then(|c| c.get_many::<String>("members"))
                .expect("members")
                .cloned()
                .collect();
            assert_eq!(members, ["1=a", "2=b"], "{name}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_that_cannot_be_searched_is_an_error_naming_it() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let locked = root.path().join("locked");
        std::fs::create_dir(&locked).expect("mkdir");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let probe = std::fs::metadata(locked.join("config.json"));
        let result = discover(std::slice::from_ref(&locked));
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        if probe.is_ok()
            || probe
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            // Running as root: permissions do not stop the search.
            return;
        }
        let err = result.expect_err("unsearchable");
        assert!(format!("{err:#}").contains("locked/config.json"), "{err:#}");
    }
}
