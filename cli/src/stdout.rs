//! The tools' standard output.
//!
//! A reader that went away (`regatta log replay | head`) ends the process at once with
//! status 141, the status a tool killed by SIGPIPE leaves (Regatta's own tools and any C
//! tool): no panic and no message about a pipe the user closed on purpose. The signal itself
//! stays ignored, so that a closed network connection is an error the tool reports, not a
//! signal that kills it. Any other failure to write (a full disk under a redirection) is
//! reported on stderr and ends the process with [`FAILED`](crate::error::FAILED).

use std::io::{self, Write};

/// The exit status after a write to a closed pipe: 128 + SIGPIPE.
pub const CLOSED_PIPE: i32 = 128 + 13;

/// Writes one line, as `println!` (see [`outln!`](crate::outln)).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        let e = closed_pipe_ends(e);
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(i32::from(crate::error::FAILED));
    }
}

/// For writes through a handle of the caller's (a buffered one): a closed pipe ends the
/// process as [`line`] does; any other error is returned.
pub fn closed_pipe_ends(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(CLOSED_PIPE);
    }
    e
}
