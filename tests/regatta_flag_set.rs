//! Every flag of Regatta's `leader` and `follower` commands parses here: Regatta's command
//! lines, flag for flag, reach `--help` (clap's last step before validation) without an
//! unknown-flag or bad-value error. What each flag then does is other tests' business
//! (tests/regatta_flags.rs, tests/regatta_quickstart.rs); this one keeps the set complete.

mod common;

use std::process::{Command, Output};

use common::regatta_flags::REGATTA_FLAGS;

/// Runs `regatta <args…> --help` in `dir` (which holds the `config.yaml` the list names).
fn parse(dir: &std::path::Path, command: &str, args: &[String]) -> Output {
    Command::new(common::binary())
        .current_dir(dir)
        .arg(command)
        .args(args)
        .arg("--help")
        .env_remove("REGATTA_CONFIG")
        .output()
        .expect("running regatta")
}

/// The command-line words of one flag: `--flag=value`, or `--flag` for a boolean.
fn words(flag: &str, sample: Option<&str>) -> String {
    match sample {
        Some(value) => format!("{flag}={value}"),
        None => flag.to_string(),
    }
}

#[test]
fn every_regatta_flag_parses_for_the_commands_that_have_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.yaml"), "{}\n").expect("config file");
    for command in ["leader", "follower"] {
        let flags: Vec<_> = REGATTA_FLAGS
            .iter()
            .filter(|(_, commands, _)| commands.contains(&command))
            .collect();
        assert!(flags.len() > 20, "{command}: only {} flags", flags.len());
        // One at a time, so a failure names its flag.
        let refused: Vec<String> = flags
            .iter()
            .filter_map(|(flag, _, sample)| {
                let out = parse(dir.path(), command, &[words(flag, *sample)]);
                (!out.status.success()).then(|| {
                    format!(
                        "{flag}: {}",
                        String::from_utf8_lossy(&out.stderr)
                            .lines()
                            .next()
                            .unwrap_or("")
                    )
                })
            })
            .collect();
        assert!(
            refused.is_empty(),
            "regatta {command} refuses Regatta flags:\n{}",
            refused.join("\n")
        );
        // And all together, as one long Regatta command line (booleans also as
        // `--flag=false`, pflag's other spelling); the one pair Regatta itself would not
        // combine is left out.
        let all: Vec<String> = flags
            .iter()
            .filter(|(flag, _, _)| *flag != "--replication.insecure-skip-verify")
            .map(|(flag, _, sample)| match sample {
                Some(_) => words(flag, *sample),
                None => format!("{flag}=false"),
            })
            .collect();
        let out = parse(dir.path(), command, &all);
        assert!(
            out.status.success(),
            "regatta {command} with every Regatta flag: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_flag_regatta_dropped_long_ago_is_an_unknown_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = parse(
        dir.path(),
        "leader",
        &["--kafka.brokers=127.0.0.1:9092".into()],
    );
    assert!(!out.status.success(), "--kafka.brokers was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--kafka.brokers"), "{stderr}");
}
