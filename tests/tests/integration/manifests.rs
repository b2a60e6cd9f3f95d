//! The deployment files in `deploy/` hold up, each checked by the tool or
//! the code that consumes it:
//!
//! - the Helm chart lints and renders (default values and an override),
//!   its objects agree with the plain manifests in `deploy/cloudcore/` and
//!   among themselves (the config file mounted where cloudcore reads it,
//!   ports, probes, service account), and its CRDs are copies of
//!   `deploy/crds/`;
//! - everything is applied with kubectl to a real kube-apiserver 1.20.2
//!   (server-side dry run first, then for real, then read back), and what
//!   cloudcore's embedded API serves is applied to it too;
//! - the example configurations load with the daemons' own loaders, and
//!   the example Device and DeviceModel fit the `crds` types;
//! - the systemd unit verifies (`systemd-analyze verify`) and the edgecore
//!   binary takes its command line;
//! - the container files build crates and copy files that exist.
//!
//! Without helm, kubectl, systemd-analyze or the kube-apiserver the parts
//! that need them print a note and the rest still runs.

mod apply;
mod chart;
mod containers;
mod examples;
mod install;
mod systemd;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::serde::Deserialize as _;
use serde_json::Value;

/// The workspace root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy(rel: &str) -> PathBuf {
    repo().join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The objects of a multi-document YAML text, each checked to have an
/// apiVersion, a kind and a metadata.name.
fn parse_docs(source: &str, text: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_str(text) {
        let doc = Value::deserialize(de).unwrap_or_else(|err| panic!("{source}: {err}"));
        if doc.is_null() {
            continue;
        }
        for field in ["/apiVersion", "/kind", "/metadata/name"] {
            let ok = doc
                .pointer(field)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            assert!(ok, "{source}: an object without {field}: {doc}");
        }
        docs.push(doc);
    }
    assert!(!docs.is_empty(), "{source} holds no objects");
    docs
}

/// The objects of the `.yaml` files in `dir`, in file-name order (as
/// `kubectl apply -f dir` applies them).
fn docs_in(dir: &Path) -> Vec<Value> {
    yaml_files(dir)
        .iter()
        .flat_map(|path| file_docs(path))
        .collect()
}

/// The objects of one file.
fn file_docs(path: &Path) -> Vec<Value> {
    parse_docs(&path.display().to_string(), &read(path))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn str_at<'a>(doc: &'a Value, pointer: &str) -> &'a str {
    doc.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn kind(doc: &Value) -> &str {
    str_at(doc, "/kind")
}

fn name(doc: &Value) -> &str {
    str_at(doc, "/metadata/name")
}

fn of_kind<'a>(docs: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == wanted).collect()
}

fn one<'a>(docs: &'a [Value], wanted: &str, named: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == wanted && name(d) == named)
        .unwrap_or_else(|| panic!("no {wanted} {named}"))
}

/// `(kind, namespace, name)` of every object.
fn identities(docs: &[Value]) -> BTreeSet<(String, String, String)> {
    docs.iter()
        .map(|d| {
            let ns = str_at(d, "/metadata/namespace");
            (kind(d).to_owned(), ns.to_owned(), name(d).to_owned())
        })
        .collect()
}

/// The objects as one multi-document YAML file in `dir`.
fn write_docs(dir: &Path, file: &str, docs: &[&Value]) -> String {
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_norway::to_string(d).unwrap())
        .collect();
    let path = dir.join(file);
    std::fs::write(&path, text.join("---\n")).unwrap();
    path.display().to_string()
}
