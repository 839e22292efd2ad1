//! Records the git revision the binary is built from, for `regatta version`:
//! `REGATTA_GIT_REVISION` in the build environment wins (builds from a source archive);
//! otherwise the commit `HEAD` names in the source tree's git repository. Without either the
//! revision is left out.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=REGATTA_GIT_REVISION");
    let revision = std::env::var("REGATTA_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision);
    if let Some(revision) = revision {
        println!("cargo:rustc-env=REGATTA_GIT_REVISION={}", revision.trim());
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git_revision() -> Option<String> {
    let revision = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Rebuild when HEAD moves: its file, the branch it names, and the packed refs.
    // Only files that exist: cargo reruns a build script on every build while a file it
    // watches is missing (a repository without packed refs, a branch only in them).
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &branch])
    {
        // A branch only in the packed refs gets its own file at its next commit: its
        // directory's change shows that.
        let dir = std::path::Path::new(&path)
            .parent()
            .map(|d| d.display().to_string());
        watched.extend([Some(path), dir]);
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(revision)
}
