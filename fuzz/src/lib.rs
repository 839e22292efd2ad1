//! Helpers shared by the fuzz targets (`fuzz_targets/`) and the seed generator
//! (`examples/gen_seeds.rs`): the chunked input layout of targets that need several files,
//! a scratch directory per process, and the command line the config-file target parses
//! against; and the allocation guard every target runs under.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The largest single allocation a decoder may make on any input. A length field read
/// from the input and allocated before it is checked (a 4 GiB record, say) is reserved
/// lazily by the system and would pass unnoticed under libFuzzer's RSS limit: this guard
/// aborts on it instead, so libFuzzer reports the input as a crash.
pub const MAX_ALLOCATION: usize = 256 << 20;

/// [`System`], aborting on any allocation over [`MAX_ALLOCATION`].
pub struct GuardedAlloc;

fn too_large(size: usize) -> ! {
    // No allocation here: write the message straight to stderr.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "regatta-fuzz: allocation of {size} bytes (over {MAX_ALLOCATION}): \
         a length from the input is trusted"
    );
    std::process::abort()
}

// SAFETY: every call is forwarded to `System` unchanged, or aborts the process.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            too_large(layout.size());
        }
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            too_large(layout.size());
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            too_large(new_size);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: GuardedAlloc = GuardedAlloc;

/// Inputs that stand for several files are a sequence of chunks:
/// `tag u8 | length u16 LE | bytes`. A short last chunk takes what is left.
pub fn chunks(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => (0, &[][..]),
        };
        let len = len.min(rest.len());
        out.push((tag, &rest[..len]));
        data = &rest[len..];
    }
    out
}

/// The inverse of [`chunks`], for writing seeds.
pub fn encode_chunks(parts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, bytes) in parts {
        let len = u16::try_from(bytes.len()).expect("seed chunk over 64 KiB");
        out.push(*tag);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// A directory for this process's scratch files, emptied by [`fresh_dir`].
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("regatta-fuzz-")
            .tempdir()
            .expect("scratch directory")
    })
    .path()
}

/// An empty directory named `name` inside this process's scratch directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

pub mod seeds;

/// Asserts that two loaded states are the same: revision, Raft metadata, and every table
/// with its id, config and records.
pub fn same_state(a: &regatta_materializer::State, b: &regatta_materializer::State) {
    assert_eq!(a.revision(), b.revision());
    assert_eq!(a.raft_meta(), b.raft_meta());
    let (ta, tb): (Vec<_>, Vec<_>) = (a.tables().collect(), b.tables().collect());
    assert_eq!(ta.len(), tb.len());
    for ((na, ta), (nb, tb)) in ta.into_iter().zip(tb) {
        assert_eq!(na, nb);
        assert_eq!(ta.id(), tb.id());
        assert_eq!(ta.config(), tb.config());
        assert!(ta.iter().eq(tb.iter()), "table {na} differs");
    }
}

/// A command line shaped like the node commands' for the config-file target: `regatta
/// core` with `--config`, a number, a size, a defaulted address, a repeated list, a switch
/// and an environment variable, as the real flag groups declare them.
pub fn config_command() -> clap::Command {
    use clap::{Arg, ArgAction, Command, value_parser};
    Command::new("regatta").subcommand(
        Command::new("core")
            .arg(Arg::new("config_file").long("config"))
            .arg(
                Arg::new("node_id")
                    .long("raft.node-id")
                    .env("REGATTA_FUZZ_RAFT_NODE_ID")
                    .value_parser(value_parser!(u64)),
            )
            .arg(
                Arg::new("segment_size")
                    .long("log.segment-size")
                    .value_parser(value_parser!(u64).range(1024..)),
            )
            .arg(
                Arg::new("api_address")
                    .long("api.address")
                    .default_value("http://127.0.0.1:8443"),
            )
            .arg(
                Arg::new("members")
                    .long("raft.initial-members")
                    .value_delimiter(',')
                    .action(ArgAction::Append),
            )
            .arg(
                Arg::new("client_cert_auth")
                    .long("api.client-cert-auth")
                    .action(ArgAction::SetTrue),
            )
            .arg(
                Arg::new("mode")
                    .long("tables.mode")
                    .value_parser(["strict", "loose"]),
            ),
    )
}

/// Checksums keep random mutations from ever reaching the fields behind them. Targets run
/// each input twice: as it is, and with the checksums recomputed by these helpers, so the
/// fuzzer explores the decoders past them too.
pub mod fixup {
    /// Recomputes the CRC32C of every log frame (`len u32 | crc u32 | body`) from byte
    /// `start` on, as long as the lengths stay inside `bytes`.
    pub fn frames(bytes: &mut [u8], start: usize) {
        let mut at = start;
        while let Some(len) = bytes.get(at..at + 4) {
            let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
            let Some(end) = (at + 8).checked_add(len).filter(|e| *e <= bytes.len()) else {
                break;
            };
            let crc = crc32c::crc32c(&bytes[at + 8..end]);
            bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
            at = end;
        }
    }

    /// Recomputes a segment file's header checksum and every frame's.
    pub fn segment(bytes: &mut [u8]) {
        if bytes.len() >= 32 {
            let crc = crc32c::crc32c(&bytes[..28]);
            bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        }
        frames(bytes, 32);
    }

    /// Recomputes a trailing CRC32C over everything before it.
    pub fn trailing(bytes: &mut [u8]) {
        if let Some(at) = bytes.len().checked_sub(4) {
            let crc = crc32c::crc32c(&bytes[..at]);
            bytes[at..].copy_from_slice(&crc.to_le_bytes());
        }
    }

    /// Recomputes the checksum at `at..at + 4` over the bytes `..at` (a header's own).
    pub fn header(bytes: &mut [u8], at: usize) {
        if bytes.len() >= at + 4 {
            let crc = crc32c::crc32c(&bytes[..at]);
            bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        }
    }
}
