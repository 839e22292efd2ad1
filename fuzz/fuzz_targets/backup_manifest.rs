//! A backup directory's `manifest.json` and the table files it names
//! (`regatta_materializer::backup`, what `regatta restore --dir` reads): the JSON, file
//! names that must stay inside the directory, the MD5 check, and the table-name encoding of
//! file names (which must round-trip for any name).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use regatta_materializer::backup::{self, Manifest};

/// A backup directory holding one small table file, `t.bak`, and nothing else.
fn backup_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = regatta_fuzz::fresh_dir("backup");
        std::fs::write(dir.join("t.bak"), regatta_fuzz::seeds::backup_stream())
            .expect("write table file");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::from_json(data) {
        let json = manifest.to_json().expect("a parsed manifest serializes");
        assert_eq!(Manifest::from_json(&json).expect("re-parsed"), manifest);
        for table in manifest.tables.iter().take(4) {
            let _ = backup::table_name_of_file(&table.file_name);
            let _ = backup::read_table_backup(backup_dir(), table);
        }
    }
    // Table names are never empty.
    if let Ok(name) = std::str::from_utf8(data)
        && !name.is_empty()
    {
        let file = backup::backup_file_name(name);
        assert!(
            !file.contains(['/', '\\', '\0']) && !file.starts_with('.'),
            "{file:?}"
        );
        if !file.contains('~') {
            assert_eq!(backup::table_name_of_file(&file).as_deref(), Some(name));
        }
        let _ = backup::table_name_of_file(name);
    }
});
