//! The workspace's daemon binaries (`cloudcore`, `edgecore`), for tests
//! that run their command lines. Cargo gives a test only its own package's
//! binaries (`CARGO_BIN_EXE_*`); these two are built by the workspace test
//! build (`scripts/test.sh`, `cargo nextest run --workspace`) into the same
//! target directory as the test itself. Running one test module alone
//! (`-p tests`) needs `cargo build -p cloudcore -p edgecore` first; a
//! missing or stale binary fails the test saying so.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The path of workspace binary `name` (a package of the same name), after
/// checking it exists and is newer than its package's sources.
pub fn path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // <target>/<profile>/deps/<test> → <target>/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let bin = profile_dir.join(name);
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|err| {
            panic!(
                "{}: {err}; build it with `cargo build -p {name}` (the workspace test build does)",
                bin.display()
            )
        });
    let sources = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src");
    if let Some(newest) = newest_mtime(&sources) {
        assert!(
            newest <= built,
            "{} is older than {}: rebuild it with `cargo build -p {name}`",
            bin.display(),
            sources.display()
        );
    }
    bin
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(time);
    }
    newest
}
