//! A config file (`--config`, `src/config.rs` of the `regatta` binary, compiled in here as
//! it is): parsed, flattened to `--name=value` arguments and handed to clap, against a
//! command shaped like the node commands (`regatta_fuzz::config_command`). The first input
//! byte picks the file's extension, which picks its format where the binary reads several
//! (`.yaml`, `.json`, `.toml`); the rest is the file. Any file is an error or a parse, never
//! a panic.
#![no_main]

#[allow(
    dead_code,
    reason = "the binary's module; this target calls one function of it"
)]
#[path = "../../src/config.rs"]
mod config;

use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let dir = regatta_fuzz::fresh_dir("config");
    let path = dir.join(["config.yaml", "config.json", "config.toml"][usize::from(pick % 3)]);
    std::fs::write(&path, data).expect("write config file");
    for flags in [
        &[][..],
        &["--raft.node-id", "7", "--log.segment-size", "1024"][..],
    ] {
        let mut argv: Vec<OsString> = ["regatta", "core"].iter().map(OsString::from).collect();
        argv.extend(flags.iter().map(OsString::from));
        argv.push("--config".into());
        argv.push(path.clone().into_os_string());
        if let Err(e) = config::parse_with_config_file(regatta_fuzz::config_command(), argv) {
            let _ = e.to_string();
        }
    }
});
