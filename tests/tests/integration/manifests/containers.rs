//! The container files, checked statically (no engine runs in CI): base
//! images, `COPY` sources that exist, the `cargo build` of a workspace
//! binary, what the runtime stage copies and runs, and `.dockerignore`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{read, repo, str_at};

/// The instructions of a Containerfile (continuation lines joined,
/// comments dropped) as `(INSTRUCTION, arguments)`.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        if pending.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                let joined = std::mem::take(&mut pending);
                let (op, args) = joined
                    .trim()
                    .split_once(char::is_whitespace)
                    .unwrap_or((joined.trim(), ""));
                out.push((
                    op.to_uppercase(),
                    args.split_whitespace().collect::<Vec<_>>().join(" "),
                ));
            }
        }
    }
    out
}

/// Workspace packages and their binaries, from `cargo metadata`.
fn workspace_bins() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repo())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut bins = BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        let names = package["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
            .map(|t| str_at(t, "/name").to_owned())
            .collect();
        bins.insert(str_at(package, "/name").to_owned(), names);
    }
    bins
}

/// What the `install` commands of a build step leave under `/out/`: the
/// directories of `install -d`, and the destination of each file
/// installed, which must be `target/release/<daemon>`.
fn installed_by(run: &str, daemon: &str) -> Vec<String> {
    let release = format!("target/release/{daemon}");
    let mut out = Vec::new();
    for command in run.split("&&").map(str::trim) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let Some((&"install", args)) = words.split_first() else {
            continue;
        };
        // Operands: not options, nor the value of -m.
        let paths: Vec<&str> = args
            .iter()
            .enumerate()
            .filter(|(i, a)| !a.starts_with('-') && (*i == 0 || args[i - 1] != "-m"))
            .map(|(_, a)| *a)
            .collect();
        if args.contains(&"-d") {
            out.extend(paths.iter().map(|p| p.to_string()));
            continue;
        }
        // install [-D] [-m MODE] SOURCE DEST.
        let [.., source, dest] = paths.as_slice() else {
            panic!("install without a source and a destination: {command}");
        };
        assert_eq!(
            *source, release,
            "installs something else than the build: {command}"
        );
        out.push(dest.to_string());
    }
    out
}

/// Checks `deploy/container/<daemon>.Containerfile`: a build stage that
/// builds the workspace binary `daemon` from files that exist, and a
/// nonroot runtime stage running what the build stage made.
fn check_containerfile(daemon: &str, bins: &BTreeMap<String, BTreeSet<String>>) {
    let file = format!("deploy/container/{daemon}.Containerfile");
    let steps = instructions(&read(&repo().join(&file)));
    let froms: Vec<&str> = steps
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    let images = [
        "docker.io/library/rust:1-bookworm AS build",
        "gcr.io/distroless/cc-debian12:nonroot",
    ];
    assert_eq!(froms, images, "{file}");
    let (mut stage, mut builds) = (0, 0);
    let mut installed = Vec::new();
    let mut binary_at = None;
    let (mut user, mut entrypoint) = (false, false);
    for (op, args) in &steps {
        let words: Vec<&str> = args.split_whitespace().collect();
        match op.as_str() {
            "FROM" => stage += 1,
            "COPY" if !args.starts_with("--from") => {
                let sources = words[..words.len() - 1].iter();
                for source in sources.filter(|s| !s.starts_with("--")) {
                    let exists = repo().join(source).exists();
                    assert!(exists, "{file}: COPY {source}: no such file");
                }
            }
            "RUN" if args.contains("cargo build") => {
                builds += 1;
                let p = words.iter().position(|w| *w == "-p").map(|i| words[i + 1]);
                assert_eq!(p, Some(daemon), "{file}: cargo build -p");
                let locked = args.contains("cargo build --release --locked");
                assert!(locked, "{file}: {args}");
                let has_bin = bins.get(daemon).is_some_and(|b| b.contains(daemon));
                assert!(has_bin, "{file}: no binary {daemon} in package {daemon}");
                installed.extend(installed_by(args, daemon));
            }
            "COPY" => {
                assert_eq!(stage, 2, "{file}: copies from build into the runtime");
                let (source, dest) = (words[words.len() - 2], words[words.len() - 1]);
                let made = installed.iter().any(|i| Path::new(i).starts_with(source));
                assert!(
                    made,
                    "{file}: COPY {source}: not made by the build ({installed:?})"
                );
                if source.ends_with(&format!("/{daemon}")) {
                    binary_at = Some(dest.to_owned());
                }
            }
            "USER" => {
                user = true;
                assert_eq!(args, "65532:65532", "{file}: runs as nonroot");
            }
            "ENTRYPOINT" => {
                entrypoint = true;
                let entry: Vec<String> = serde_json::from_str(args).unwrap();
                let runs = entry.first();
                assert_eq!(
                    runs,
                    binary_at.as_ref(),
                    "{file}: ENTRYPOINT runs the copied binary"
                );
            }
            _ => {}
        }
    }
    assert_eq!(builds, 1, "{file}: one cargo build");
    assert!(
        binary_at.is_some(),
        "{file}: the binary is never copied into the runtime"
    );
    assert!(user && entrypoint, "{file}: no USER or no ENTRYPOINT");
}

#[test]
fn the_container_files_build_and_copy_what_exists() {
    let bins = workspace_bins();
    for daemon in ["cloudcore", "edgecore"] {
        check_containerfile(daemon, &bins);
    }
    let ignored: Vec<String> = read(&repo().join(".dockerignore"))
        .lines()
        .map(|l| l.trim().trim_matches('/').to_owned())
        .collect();
    assert!(
        ignored.iter().any(|l| l == "target"),
        ".dockerignore must leave target/ out of the build context"
    );
}
