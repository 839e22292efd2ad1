//! docs/migration.md keeps up with Regatta's flags: its flag table (the table headed
//! `| flag | in Regatta | here |`) has one row for every flag of [`REGATTA_FLAGS`], naming
//! the same Regatta commands and saying what the flag does here, and no row for a flag
//! the list does not hold. No node is started.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::regatta_flags::REGATTA_FLAGS;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/migration.md");

/// The header of the flag table.
const HEADER: &str = "| flag | in Regatta | here |";

/// How a row's "here" cell must begin: the flag works the same, is mapped to another
/// option, is accepted with a warning, or is refused.
const DISPOSITIONS: &[&str] = &["same", "mapped", "warns", "error"];

/// Rows of the table that stand for no single flag of the list.
const NOT_IN_LIST: &[&str] = &["--kafka.*"];

/// One row of the flag table.
#[derive(Debug)]
struct Row {
    line: usize,
    commands: BTreeSet<String>,
    here: String,
}

/// The rows of every flag table in `doc`, by flag. Fails on a malformed or repeated row.
fn flag_rows(doc: &str) -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for (index, line) in doc.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line == HEADER {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(
            cells.len(),
            3,
            "docs/migration.md:{line_no}: a flag row has three cells: {line}"
        );
        let flag = cells[0]
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .filter(|f| f.starts_with("--") && !f.contains('`'))
            .unwrap_or_else(|| {
                panic!("docs/migration.md:{line_no}: the first cell is not one `--flag`: {line}")
            });
        let commands = cells[1].split(',').map(|c| c.trim().to_string()).collect();
        let row = Row {
            line: line_no,
            commands,
            here: cells[2].to_string(),
        };
        if let Some(earlier) = rows.insert(flag.to_string(), row) {
            panic!(
                "docs/migration.md:{line_no}: `{flag}` has a row already, at line {}",
                earlier.line
            );
        }
    }
    rows
}

#[test]
fn the_list_is_well_formed() {
    let mut seen = BTreeSet::new();
    for (flag, commands, sample) in REGATTA_FLAGS {
        assert!(seen.insert(*flag), "{flag} is listed twice");
        assert!(
            flag.starts_with("--") && !flag.contains('='),
            "{flag}: a flag name with its dashes"
        );
        assert!(!commands.is_empty(), "{flag}: no command");
        for command in *commands {
            assert!(
                ["leader", "follower"].contains(command),
                "{flag}: {command:?} is not a Regatta server command"
            );
        }
        if let Some(value) = sample {
            assert!(!value.is_empty(), "{flag}: an empty sample value");
        }
    }
}

#[test]
fn every_regatta_flag_has_a_row_in_the_migration_guide() {
    let doc = std::fs::read_to_string(DOC).unwrap_or_else(|e| panic!("reading {DOC}: {e}"));
    let rows = flag_rows(&doc);
    assert!(
        !rows.is_empty(),
        "docs/migration.md has no table headed {HEADER:?}"
    );

    let mut problems = Vec::new();
    for (flag, commands, _) in REGATTA_FLAGS {
        let Some(row) = rows.get(*flag) else {
            problems.push(format!("{flag}: no row"));
            continue;
        };
        let expected: BTreeSet<String> = commands.iter().map(|c| c.to_string()).collect();
        if row.commands != expected {
            problems.push(format!(
                "{flag} (line {}): commands {:?}, the list says {:?}",
                row.line, row.commands, expected
            ));
        }
        if !DISPOSITIONS.iter().any(|d| row.here.starts_with(d)) {
            problems.push(format!(
                "{flag} (line {}): \"here\" must begin with one of {DISPOSITIONS:?}: {:?}",
                row.line, row.here
            ));
        }
    }
    let listed: BTreeSet<&str> = REGATTA_FLAGS.iter().map(|(flag, _, _)| *flag).collect();
    for (flag, row) in &rows {
        if !listed.contains(flag.as_str()) && !NOT_IN_LIST.contains(&flag.as_str()) {
            problems.push(format!(
                "{flag} (line {}): a row for a flag that REGATTA_FLAGS does not hold",
                row.line
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/migration.md's flag table and tests/common/regatta_flags.rs disagree:\n  {}",
        problems.join("\n  ")
    );
}
