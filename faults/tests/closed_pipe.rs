//! The tool's output read by a reader that goes away (`regatta-faults scenario | head -1`):
//! the process ends with status 141, as one killed by SIGPIPE, with nothing on stderr —
//! never a panic.

use std::process::{Command, Stdio};

fn faults() -> Command {
    Command::new(env!("CARGO_BIN_EXE_regatta-faults"))
}

#[test]
fn the_scenario_list_reaches_a_reader_and_ends_quietly_when_the_reader_has_gone() {
    let listed = faults()
        .arg("scenario")
        .output()
        .expect("running regatta-faults");
    assert!(listed.status.success(), "{listed:?}");
    let text = String::from_utf8(listed.stdout).expect("the listing is UTF-8");
    assert!(
        text.starts_with("scenarios (regatta-faults scenario NAME):"),
        "{text}"
    );

    let mut child = faults()
        .arg("scenario")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting regatta-faults");
    // The only read end closes before the tool writes its first line.
    drop(child.stdout.take());
    let out = child
        .wait_with_output()
        .expect("waiting for regatta-faults");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "stderr: {stderr}");
    assert!(stderr.is_empty(), "nothing on stderr, got: {stderr}");
}
