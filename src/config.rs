//! Options from five places with one precedence: command-line flags, then environment
//! variables (`REGATTA_*`), then Regatta's own environment variable names (`RAFT.NODE-ID`),
//! then a config file, then built-in defaults. A value given in a higher place wins over the
//! same option in a lower one, option by option.
//!
//! Every option is declared once, as a clap argument with a long name such as
//! `raft.node-id` and an environment variable such as `REGATTA_RAFT_NODE_ID`. The config file
//! uses the same names, either dotted (`raft.node-id: 1`) or nested (`raft: {node-id: 1}`).
//! A key the command does not know is an error, so a typo in a config file is never
//! silently ignored.
//!
//! # Regatta's environment variable names
//!
//! Regatta (viper's `AutomaticEnv`, no prefix, no key replacer) reads an option from the
//! variable named by its upper-cased key, dots and dashes kept: `API.ADDRESS`,
//! `RAFT.NODE-ID`, `REPLICATION.LEADER-ADDRESS`. Kubernetes manifests written for Regatta
//! set such names, so every option with a config key ([`config_key`]) is read from one too
//! ([`regatta_env_name`], [`regatta_env_args`]), below `REGATTA_*` and above the file. The
//! value is taken as the `REGATTA_*` variable of the option would be: a list option splits
//! on its delimiter (`RAFT.INITIAL-MEMBERS=1=h:1,2=h:2`), a switch takes `true` or `false`
//! (or the other spellings of Go's `strconv.ParseBool`, which Regatta reads them with). A
//! variable that is set but empty counts as unset, as in viper; one that is not UTF-8 is an
//! error naming it.
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
//! declaration of every option, and the values of Regatta-style variables and of a config
//! file enter as `--name=value` arguments for options given neither as a flag nor in a
//! `REGATTA_*` variable, so precedence is clap's own `ValueSource`, and parsing (durations,
//! sizes, comma lists), validation, error messages and `--help` (`[env: …]`,
//! `[default: …]`) are the same wherever a value came from. A figment layering would need
//! serde on every flag group, defaults and environment names declared a second time outside
//! clap (its `Env` provider cannot tell the `.` from the `-` in `REGATTA_RAFT_NODE_ID`),
//! serde adapters for every value parser, and unknown keys rejected by hand
//! (`deny_unknown_fields` does not work through flattened groups).

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use clap::{Arg, ArgAction, ArgMatches, Command, parser::ValueSource};

/// The argument id of `--config` on the commands that take a config file.
pub const CONFIG_FILE_ID: &str = "config_file";

/// A process environment: variable names and values, as the OS gives them.
pub type Environment = BTreeMap<OsString, OsString>;

/// Parses `argv` against `command`, filling options the user did not give on the command
/// line or in a `REGATTA_*` variable from Regatta-style variables of the process
/// environment, then from the config file: the one named by the leaf subcommand's
/// `--config`, else the first found in the default places ([`search_dirs`] of the process's
/// `$HOME`).
pub fn parse_with_config_file(
    command: Command,
    argv: Vec<OsString>,
) -> Result<ArgMatches, clap::Error> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let env: Environment = std::env::vars_os().collect();
    parse_with_sources(command, argv, &search_dirs(home.as_deref()), &env)
}

/// [`parse_with_sources`] with an empty environment: flags, `REGATTA_*` variables (clap
/// reads those itself), the config file and defaults.
#[cfg(test)]
fn parse_with_config_search(
    command: Command,
    argv: Vec<OsString>,
    dirs: &[PathBuf],
) -> Result<ArgMatches, clap::Error> {
    parse_with_sources(command, argv, dirs, &Environment::new())
}

/// [`parse_with_config_file`], looking in `dirs` when `--config` is not given and for
/// Regatta-style variables in `env`.
pub fn parse_with_sources(
    command: Command,
    argv: Vec<OsString>,
    dirs: &[PathBuf],
    env: &Environment,
) -> Result<ArgMatches, clap::Error> {
    // A required option may come from the environment or the file: the first parse, which
    // finds what the command line and `REGATTA_*` give, does not ask for it yet. Any error
    // there is reported as the command itself reports it (`--help` shows its usage).
    let Ok(matches) = without_requirements(command.clone()).try_get_matches_from(&argv) else {
        return command.try_get_matches_from(argv);
    };
    let (leaf_command, leaf_matches) = leaf(&command, &matches);
    if !takes_config_file(leaf_command) {
        return command.try_get_matches_from(argv);
    }
    let invalid = |e: anyhow::Error| {
        command
            .clone()
            .error(clap::error::ErrorKind::ValueValidation, format!("{e:#}"))
    };
    let from_env = regatta_env_args(leaf_command, leaf_matches, env).map_err(invalid)?;
    let given = leaf_matches
        .try_get_one::<String>(CONFIG_FILE_ID)
        .ok()
        .flatten()
        .map(PathBuf::from);
    let path = match given {
        Some(path) => Some(path),
        None => discover(dirs).map_err(invalid)?,
    };
    let from_file = match path {
        Some(path) => config_file_args(&path, leaf_command, leaf_matches, &from_env.covered)
            .map_err(invalid)?,
        None => Inserted::default(),
    };
    let mut argv = argv;
    let mut origins = Vec::new();
    for inserted in [from_env, from_file] {
        for (arg, origin) in inserted.args {
            argv.push(arg);
            origins.push(origin);
        }
    }
    command
        .clone()
        .try_get_matches_from(argv)
        .map_err(|e| name_origin(&command, e, &origins))
}

/// `command` with no option required, in it and in every subcommand below it.
fn without_requirements(command: Command) -> Command {
    let required: Vec<clap::Id> = command
        .get_arguments()
        .filter(|a| a.is_required_set())
        .map(|a| a.get_id().clone())
        .collect();
    let mut command = required
        .into_iter()
        .fold(command, |c, id| c.mut_arg(id, |a| a.required(false)));
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subcommands {
        command = command.mut_subcommand(name, without_requirements);
    }
    command
}

/// Arguments inserted for options the command line and `REGATTA_*` variables left unset.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    /// `--key=value` (or a bare `--key` for a switch), each with where its value came from
    /// (`environment variable RAFT.NODE-ID`), for error messages.
    pub args: Vec<(OsString, Origin)>,
    /// The ids of the options set, including switches set to false, which insert nothing
    /// but must not be set again from a lower place.
    pub covered: BTreeSet<String>,
}

/// Where an inserted argument came from: the option's key and the place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub key: String,
    pub place: String,
}

/// The environment variable Regatta reads the option with config key `key` from: the key
/// upper-cased, dots and dashes kept (`raft.node-id` → `RAFT.NODE-ID`).
pub fn regatta_env_name(key: &str) -> String {
    key.to_ascii_uppercase()
}

/// The arguments Regatta-style environment variables in `env` contribute to `command` (a
/// leaf command that takes `--config`, parsed into `matches`): one per option with a
/// config key whose variable ([`regatta_env_name`]) is set and not empty, and which was
/// given neither on the command line nor in its `REGATTA_*` variable.
pub fn regatta_env_args(
    command: &Command,
    matches: &ArgMatches,
    env: &Environment,
) -> Result<Inserted> {
    let mut inserted = Inserted::default();
    for arg in command.get_arguments() {
        let Some(key) = config_key(arg) else {
            continue;
        };
        if given(matches, arg) {
            continue;
        }
        let name = regatta_env_name(key);
        let Some(value) = env.get(OsString::from(&name).as_os_str()) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let Some(value) = value.to_str() else {
            bail!(
                "environment variable {name} (for --{key}) is not valid UTF-8: {}",
                value.to_string_lossy()
            );
        };
        let place = format!("environment variable {name}");
        insert(arg, key, &[value.to_string()], &place, &mut inserted)?;
    }
    Ok(inserted)
}

/// Whether the option `arg` was given on the command line or in its `REGATTA_*` variable.
fn given(matches: &ArgMatches, arg: &Arg) -> bool {
    matches!(
        matches.value_source(arg.get_id().as_str()),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// Adds the arguments setting `arg` (config key `key`) to `values` from `place`. A value
/// of an option that takes values becomes `--key=value` (so a list splits on the option's
/// delimiter, as its `REGATTA_*` variable would); a switch takes one boolean, Go's
/// `strconv.ParseBool` spellings, and becomes `--key` when that sets it.
fn insert(arg: &Arg, key: &str, values: &[String], place: &str, out: &mut Inserted) -> Result<()> {
    let origin = || Origin {
        key: key.to_string(),
        place: place.to_string(),
    };
    let switch = match arg.get_action() {
        ArgAction::SetTrue => Some(true),
        ArgAction::SetFalse => Some(false),
        _ => None,
    };
    match switch {
        None => {
            for value in values {
                out.args
                    .push((OsString::from(format!("--{key}={value}")), origin()));
            }
        }
        Some(sets) => {
            let [value] = values else {
                bail!("{place}: --{key} is a switch and takes one value, true or false");
            };
            let Some(on) = parse_bool(value) else {
                bail!("{place}: --{key} takes true or false, not {value:?}");
            };
            if on == sets {
                out.args
                    .push((OsString::from(format!("--{key}")), origin()));
            }
        }
    }
    out.covered.insert(arg.get_id().to_string());
    Ok(())
}

/// A boolean as Go's `strconv.ParseBool` reads it (viper, hence Regatta, uses it).
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `error` from parsing with inserted arguments, naming where the value of the option it
/// is about came from when that was an inserted one (clap only knows the option).
fn name_origin(command: &Command, error: clap::Error, origins: &[Origin]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(invalid)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let Some(origin) = origins.iter().find(|o| {
        invalid
            .strip_prefix("--")
            .and_then(|rest| rest.strip_prefix(o.key.as_str()))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '=']))
    }) else {
        return error;
    };
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    command.clone().error(
        error.kind(),
        format!("{first} (the value comes from {})", origin.place),
    )
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

/// A config file holds a handful of options; anything larger than this is a mistake
/// (`--config /dev/zero`, a log file named by accident) and is refused before it is read.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// The text of the config file at `path`, at most [`MAX_CONFIG_BYTES`].
fn read_capped(path: &Path) -> Result<String> {
    use std::io::Read;
    let context = || format!("reading config file {}", path.display());
    let mut text = String::new();
    std::fs::File::open(path)
        .with_context(context)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(context)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        bail!(
            "config file {} is larger than {MAX_CONFIG_BYTES} bytes: not a config file",
            path.display()
        );
    }
    Ok(text)
}

/// The arguments the config file contributes: one per key whose option was given neither
/// on the command line, nor in the environment, nor is in `covered` (set from a
/// Regatta-style variable).
fn config_file_args(
    path: &Path,
    command: &Command,
    matches: &ArgMatches,
    covered: &BTreeSet<String>,
) -> Result<Inserted> {
    let text = read_capped(path)?;
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
    let place = format!("config file {}", path.display());
    let mut inserted = Inserted::default();
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
        if !given(matches, arg) && !covered.contains(arg.get_id().as_str()) {
            insert(arg, &key, &values, &place, &mut inserted)?;
        }
    }
    Ok(inserted)
}

/// Turns nested maps into dotted keys; scalars become strings, sequences several values.
/// Options Regatta declares as maps (pflag's StringToString): in its config files they are
/// mappings (`raft: {initial-members: {1: "h1:5012", 2: "h2:5012"}}`), which become the
/// `id=address` list the flag takes.
const MAP_OPTIONS: &[&str] = &["raft.initial-members"];

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
        Value::Mapping(map) if MAP_OPTIONS.contains(&prefix) => {
            let pairs = map
                .iter()
                .map(|(k, v)| Ok(format!("{}={}", scalar(k)?, scalar(v)?)))
                .collect::<Result<_>>()?;
            out.push((prefix.to_string(), pairs));
        }
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
    fn a_config_file_past_the_cap_is_refused_unread() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).expect("write");
        let err = read_capped(&path).expect_err("too large").to_string();
        assert!(err.contains("larger than"), "{err}");
        std::fs::write(&path, "raft.node-id: 1\n").expect("write");
        assert_eq!(read_capped(&path).expect("small"), "raft.node-id: 1\n");
    }

    #[test]
    fn regattas_member_map_becomes_the_id_address_list() {
        for yaml in [
            "raft:\n  initial-members:\n    1: 127.0.0.1:5012\n    2: 127.0.0.1:5013\n",
            "raft.initial-members: {\"1\": 127.0.0.1:5012, \"2\": 127.0.0.1:5013}\n",
        ] {
            let m = run(&["regatta", "core"], yaml).expect("parses");
            let members: Vec<String> = m
                .subcommand_matches("core")
                .and_then(|c| c.get_many::<String>("members"))
                .expect("members")
                .cloned()
                .collect();
            assert_eq!(members, ["1=127.0.0.1:5012", "2=127.0.0.1:5013"], "{yaml}");
        }
        let err = run(&["regatta", "core"], "raft.initial-members: {1: [a, b]}\n")
            .expect_err("a list as an address");
        assert!(err.to_string().contains("raft.initial-members"), "{err}");
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

    /// A command with one option of each kind the environment fills. `data-dir` reads
    /// `CARGO_MANIFEST_DIR` as its `REGATTA_*` variable: cargo and nextest set it in the
    /// test's process, so a variable clap reads itself is set without touching the
    /// environment.
    fn env_command() -> Command {
        Command::new("regatta").subcommand(
            Command::new("core")
                .arg(Arg::new(CONFIG_FILE_ID).long("config"))
                .arg(
                    Arg::new("node")
                        .long("raft.node-id")
                        .env("REGATTA_TEST_UNSET_NODE_ID")
                        .default_value("0"),
                )
                .arg(Arg::new("data").long("data-dir").env("CARGO_MANIFEST_DIR"))
                .arg(
                    Arg::new("members")
                        .long("raft.initial-members")
                        .action(ArgAction::Append)
                        .value_delimiter(','),
                )
                .arg(
                    Arg::new("cca")
                        .long("api.client-cert-auth")
                        .action(ArgAction::SetTrue),
                )
                .arg(
                    Arg::new("port")
                        .long("api.port")
                        .value_parser(clap::value_parser!(u16)),
                ),
        )
    }

    /// Parses `regatta core` with `flags`, the config file `yaml` (none when `None`) and
    /// the environment `env`.
    fn parse_env(
        flags: &[&str],
        yaml: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<ArgMatches, clap::Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut argv: Vec<OsString> = ["regatta", "core"].iter().map(OsString::from).collect();
        argv.extend(flags.iter().map(OsString::from));
        if let Some(yaml) = yaml {
            let path = dir.path().join("c.yaml");
            std::fs::write(&path, yaml).expect("write config");
            argv.push("--config".into());
            argv.push(path.into_os_string());
        }
        let env: Environment = env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        // No directory is searched: only `--config` names a file.
        parse_with_sources(env_command(), argv, &[], &env)
    }

    fn core_many(m: &ArgMatches, id: &str) -> Vec<String> {
        m.subcommand_matches("core")
            .and_then(|c| c.get_many::<String>(id))
            .map(|v| v.cloned().collect())
            .unwrap_or_default()
    }

    fn core_flag(m: &ArgMatches, id: &str) -> bool {
        m.subcommand_matches("core").is_some_and(|c| c.get_flag(id))
    }

    #[test]
    fn regatta_style_names_are_the_upper_cased_keys() {
        assert_eq!(regatta_env_name("api.address"), "API.ADDRESS");
        assert_eq!(regatta_env_name("raft.node-id"), "RAFT.NODE-ID");
        assert_eq!(
            regatta_env_name("replication.leader-address"),
            "REPLICATION.LEADER-ADDRESS"
        );
        assert_eq!(regatta_env_name("data-dir"), "DATA-DIR");
    }

    #[test]
    fn precedence_is_flag_then_regatta_env_then_regatta_style_env_then_file_then_default() {
        // `raft.node-id` has no `REGATTA_*` variable set: every combination of the other
        // three places, and the default when none gives it.
        for flag in [false, true] {
            for style in [false, true] {
                for file in [false, true] {
                    let flags: &[&str] = if flag { &["--raft.node-id=1"] } else { &[] };
                    let env: &[(&str, &str)] = if style { &[("RAFT.NODE-ID", "2")] } else { &[] };
                    let yaml = file.then_some("raft.node-id: 3\n");
                    let m = parse_env(flags, yaml, env).expect("parses");
                    let expected = if flag {
                        "1"
                    } else if style {
                        "2"
                    } else if file {
                        "3"
                    } else {
                        "0"
                    };
                    assert_eq!(
                        core_value(&m, "node").as_deref(),
                        Some(expected),
                        "flag={flag} style={style} file={file}"
                    );
                }
            }
        }
        // `data-dir` has its `REGATTA_*` variable set: it wins over everything but a flag.
        let regatta_env = std::env::var("CARGO_MANIFEST_DIR")
            .expect("cargo and nextest set CARGO_MANIFEST_DIR for tests");
        for flag in [false, true] {
            for style in [false, true] {
                for file in [false, true] {
                    let flags: &[&str] = if flag { &["--data-dir=flag"] } else { &[] };
                    let env: &[(&str, &str)] = if style { &[("DATA-DIR", "style")] } else { &[] };
                    let yaml = file.then_some("data-dir: file\n");
                    let m = parse_env(flags, yaml, env).expect("parses");
                    let expected = if flag { "flag" } else { regatta_env.as_str() };
                    assert_eq!(
                        core_value(&m, "data").as_deref(),
                        Some(expected),
                        "flag={flag} style={style} file={file}"
                    );
                }
            }
        }
    }

    #[test]
    fn regatta_style_lists_split_on_the_options_delimiter() {
        let m = parse_env(
            &[],
            Some("raft.initial-members: [\"9=file:1\"]\n"),
            &[("RAFT.INITIAL-MEMBERS", "1=h:1,2=h:2")],
        )
        .expect("parses");
        assert_eq!(
            core_many(&m, "members"),
            ["1=h:1", "2=h:2"],
            "the environment replaces the file's list, it does not add to it"
        );
        let m = parse_env(
            &["--raft.initial-members=3=h:3"],
            None,
            &[("RAFT.INITIAL-MEMBERS", "1=h:1,2=h:2")],
        )
        .expect("parses");
        assert_eq!(core_many(&m, "members"), ["3=h:3"], "a flag replaces it");
    }

    #[test]
    fn regatta_style_switches_take_true_or_false_and_false_beats_the_file() {
        let m = parse_env(&[], None, &[("API.CLIENT-CERT-AUTH", "true")]).expect("parses");
        assert!(core_flag(&m, "cca"));
        let m = parse_env(&[], None, &[("API.CLIENT-CERT-AUTH", "false")]).expect("parses");
        assert!(!core_flag(&m, "cca"));
        let m = parse_env(&[], Some("api.client-cert-auth: true\n"), &[]).expect("parses");
        assert!(core_flag(&m, "cca"), "a switch set in the file");
        let m = parse_env(
            &[],
            Some("api.client-cert-auth: true\n"),
            &[("API.CLIENT-CERT-AUTH", "false")],
        )
        .expect("parses");
        assert!(
            !core_flag(&m, "cca"),
            "false in the environment wins over the file"
        );
        let m = parse_env(
            &["--api.client-cert-auth"],
            None,
            &[("API.CLIENT-CERT-AUTH", "false")],
        )
        .expect("parses");
        assert!(core_flag(&m, "cca"), "the flag wins");
        let err = parse_env(&[], None, &[("API.CLIENT-CERT-AUTH", "yes please")])
            .expect_err("not a boolean");
        let text = err.to_string();
        assert!(
            text.contains("API.CLIENT-CERT-AUTH") && text.contains("true or false"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_regatta_style_variable_counts_as_unset() {
        let m = parse_env(&[], Some("raft.node-id: 3\n"), &[("RAFT.NODE-ID", "")]).expect("parses");
        assert_eq!(core_value(&m, "node").as_deref(), Some("3"), "the file's");
        let m = parse_env(
            &[],
            None,
            &[("RAFT.NODE-ID", ""), ("API.CLIENT-CERT-AUTH", "")],
        )
        .expect("parses");
        assert_eq!(core_value(&m, "node").as_deref(), Some("0"), "the default");
        assert!(!core_flag(&m, "cca"));
    }

    #[test]
    fn other_variables_and_other_spellings_are_ignored() {
        let m = parse_env(
            &[],
            None,
            &[
                ("raft.node-id", "5"),
                ("RAFT_NODE_ID", "6"),
                ("CONFIG", "/nonexistent.yaml"),
                ("UNRELATED", "x"),
            ],
        )
        .expect("parses");
        assert_eq!(core_value(&m, "node").as_deref(), Some("0"));
    }

    #[test]
    fn a_bad_value_from_the_environment_or_the_file_names_where_it_came_from() {
        let err = parse_env(&[], None, &[("API.PORT", "http")]).expect_err("not a port");
        let text = err.to_string();
        assert!(
            text.contains("'http'") && text.contains("environment variable API.PORT"),
            "{text}"
        );
        let err = parse_env(&[], Some("api.port: 70000\n"), &[]).expect_err("not a port");
        let text = err.to_string();
        assert!(
            text.contains("70000") && text.contains("config file") && text.contains("c.yaml"),
            "{text}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_regatta_style_variable_that_is_not_utf8_is_an_error_naming_it() {
        use std::os::unix::ffi::OsStringExt;
        let mut env = Environment::new();
        env.insert("RAFT.NODE-ID".into(), OsString::from_vec(vec![b'1', 0xff]));
        let argv = ["regatta", "core"].iter().map(OsString::from).collect();
        let err = parse_with_sources(env_command(), argv, &[], &env).expect_err("not UTF-8");
        let text = err.to_string();
        assert!(
            text.contains("RAFT.NODE-ID") && text.contains("UTF-8"),
            "{text}"
        );
        // A given flag leaves the variable unread.
        let argv = ["regatta", "core", "--raft.node-id=4"]
            .iter()
            .map(OsString::from)
            .collect();
        let m = parse_with_sources(env_command(), argv, &[], &env).expect("parses");
        assert_eq!(core_value(&m, "node").as_deref(), Some("4"));
    }

    #[test]
    fn a_required_option_may_come_from_the_environment_or_the_file() {
        let command = || {
            env_command().mut_subcommand("core", |c| {
                c.arg(
                    Arg::new("leader")
                        .long("replication.leader-address")
                        .action(ArgAction::Append)
                        .value_delimiter(',')
                        .required(true),
                )
            })
        };
        let parse = |yaml: Option<&str>, env: &[(&str, &str)]| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut argv: Vec<OsString> = ["regatta", "core"].iter().map(OsString::from).collect();
            if let Some(yaml) = yaml {
                let path = dir.path().join("c.yaml");
                std::fs::write(&path, yaml).expect("write config");
                argv.push("--config".into());
                argv.push(path.into_os_string());
            }
            let env: Environment = env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect();
            parse_with_sources(command(), argv, &[], &env)
        };
        let err = parse(None, &[]).expect_err("given nowhere");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let m = parse(
            None,
            &[("REPLICATION.LEADER-ADDRESS", "http://a:1,http://b:1")],
        )
        .expect("from the environment");
        assert_eq!(core_many(&m, "leader"), ["http://a:1", "http://b:1"]);
        let m =
            parse(Some("replication.leader-address: http://c:1\n"), &[]).expect("from the file");
        assert_eq!(core_many(&m, "leader"), ["http://c:1"]);
        let argv = ["regatta", "core", "--help"]
            .iter()
            .map(OsString::from)
            .collect();
        let help = parse_with_sources(command(), argv, &[], &Environment::new())
            .expect_err("help is an error to clap")
            .to_string();
        assert!(
            help.contains("Usage: regatta core [OPTIONS] --replication.leader-address"),
            "the usage shows the option as required: {help}"
        );
    }

    #[test]
    fn commands_without_a_config_file_read_no_regatta_style_variables() {
        let command = Command::new("regatta")
            .subcommand(Command::new("kv").arg(Arg::new("address").long("address")));
        let env: Environment = [(OsString::from("ADDRESS"), OsString::from("h:1"))].into();
        let argv = ["regatta", "kv"].iter().map(OsString::from).collect();
        let m = parse_with_sources(command, argv, &[], &env).expect("parses");
        assert_eq!(
            m.subcommand_matches("kv")
                .and_then(|k| k.get_one::<String>("address")),
            None
        );
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
