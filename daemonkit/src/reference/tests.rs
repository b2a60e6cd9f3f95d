//! The reference built from demo types: sections, key names, types,
//! defaults, origins, and the Markdown.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_norway::Value as Yaml;

use super::markdown::{cell, code, render_default};
use super::*;
use crate::config::{DaemonConfig, Invalid};

/// The demo document.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
struct Demo {
    /// Settings of the hub.
    hub: Hub,
    /// Extra labels.
    labels: BTreeMap<String, String>,
    /// What a client may do.
    #[schemars(extend("x-apiary-addition" = true))]
    rules: Vec<Rule>,
    /// A KubeEdge module Apiary lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    legacy: Option<Yaml>,
}

/// The hub.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
struct Hub {
    /// Seconds between keepalives.
    heartbeat: u32,
    /// CA file.
    #[serde(rename = "tlsCAFile")]
    tls_ca_file: String,
    /// Port to bind.
    port: u16,
    /// Let clients in without a password; unset: only without users.
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_anonymous: Option<bool>,
    /// Upstream messages per second.
    #[schemars(extend("x-apiary-addition" = true))]
    message_qps: f64,
    /// Names to serve.
    dns_names: Vec<String>,
    /// The mode.
    mode: Mode,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            heartbeat: 15,
            tls_ca_file: "/etc/ca.crt".to_owned(),
            port: 10000,
            allow_anonymous: None,
            message_qps: 30.0,
            dns_names: Vec::new(),
            mode: Mode::Fast,
        }
    }
}

/// How to run.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Go fast.
    Fast,
    /// Go safely.
    Safe,
}

/// One rule.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Rule {
    /// Allow or deny.
    permission: Permission,
    /// Whom it applies to; absent: everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
}

/// Plain variants, no docs.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Permission {
    Allow,
    Deny,
}

impl DaemonConfig for Demo {
    fn validate(&self) -> Vec<Invalid> {
        Vec::new()
    }
    fn unsupported_keys(&self) -> Vec<String> {
        self.legacy.iter().map(|_| "legacy".to_owned()).collect()
    }
    fn minimal_keys() -> &'static [&'static str] {
        &["hub.port"]
    }
}

fn key<'a>(sections: &'a [Section], path: &str) -> &'a Key {
    sections
        .iter()
        .flat_map(|s| &s.keys)
        .find(|k| k.path == path)
        .unwrap_or_else(|| panic!("no key {path}"))
}

#[test]
fn structs_become_sections_in_nesting_order() {
    let sections = sections::<Demo>().unwrap();
    let paths: Vec<&str> = sections.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["", "hub", "rules[]"]);
    assert_eq!(sections[0].description, "The demo document.");
    // A field's doc comment wins over its type's.
    assert_eq!(sections[1].description, "Settings of the hub.");
    // Keys follow the order the default configuration writes them in;
    // unset options come last.
    let hub: Vec<&str> = sections[1].keys.iter().map(|k| k.path.as_str()).collect();
    assert_eq!(
        hub,
        [
            "hub.heartbeat",
            "hub.tlsCAFile",
            "hub.port",
            "hub.messageQps",
            "hub.dnsNames",
            "hub.mode",
            "hub.allowAnonymous"
        ]
    );
}

#[test]
fn keys_follow_serde_renames() {
    let sections = sections::<Demo>().unwrap();
    let ca = key(&sections, "hub.tlsCAFile");
    assert_eq!(ca.description, "CA file.");
    assert_eq!(ca.kind, "string");
}

#[test]
fn defaults_come_from_the_default_value() {
    let sections = sections::<Demo>().unwrap();
    let value = |path| key(&sections, path).default.clone();
    assert_eq!(value("hub.heartbeat"), DefaultValue::Value(Yaml::from(15)));
    assert_eq!(
        value("hub.tlsCAFile"),
        DefaultValue::Value(Yaml::from("/etc/ca.crt"))
    );
    assert_eq!(value("hub.allowAnonymous"), DefaultValue::Unset);
    assert_eq!(value("rules[].permission"), DefaultValue::Required);
    assert_eq!(value("rules[].clientId"), DefaultValue::Unset);
}

#[test]
fn types_are_named() {
    let sections = sections::<Demo>().unwrap();
    let kind = |path| key(&sections, path).kind.clone();
    assert_eq!(kind("hub.heartbeat"), "integer ≥ 0");
    assert_eq!(kind("hub.port"), "integer 0–65535");
    assert_eq!(kind("hub.messageQps"), "number");
    assert_eq!(kind("hub.allowAnonymous"), "boolean");
    assert_eq!(kind("hub.dnsNames"), "list of string");
    assert_eq!(kind("labels"), "map of string to string");
    assert_eq!(kind("rules"), "list of objects (see `rules[]`)");
    assert_eq!(kind("legacy"), "any");
    assert_eq!(kind("hub.mode"), "`fast` or `safe`");
    assert_eq!(kind("rules[].permission"), "`allow` or `deny`");
}

#[test]
fn documented_enum_values_are_described() {
    let sections = sections::<Demo>().unwrap();
    assert_eq!(
        key(&sections, "hub.mode").description,
        "The mode. `fast`: Go fast. `safe`: Go safely."
    );
    assert_eq!(
        key(&sections, "rules[].permission").description,
        "Allow or deny."
    );
}

#[test]
fn origins_are_marked_and_inherited() {
    let sections = sections::<Demo>().unwrap();
    let origin = |path| key(&sections, path).origin;
    assert_eq!(origin("hub.heartbeat"), Origin::KubeEdge);
    assert_eq!(origin("hub.messageQps"), Origin::Apiary);
    assert_eq!(origin("rules"), Origin::Apiary);
    assert_eq!(origin("rules[].clientId"), Origin::Apiary);
    assert_eq!(origin("legacy"), Origin::Unsupported);
}

#[test]
fn markdown_has_a_table_per_section() {
    let text = markdown::<Demo>("demo", "/etc/demo.yaml").unwrap();
    assert!(text.starts_with("## demo\n"), "{text}");
    assert!(text.contains("`/etc/demo.yaml`"), "{text}");
    assert!(text.contains("prints these keys: `hub.port`."), "{text}");
    assert!(text.contains("\n### Top level\n"), "{text}");
    assert!(
        text.contains("\n### `hub`\n\nSettings of the hub.\n"),
        "{text}"
    );
    assert!(
        text.contains("| `hub.port` | integer 0–65535 | `10000` | KubeEdge | Port to bind. |"),
        "{text}"
    );
    assert!(
        text.contains("| `hub.allowAnonymous` | boolean | *unset* | KubeEdge |"),
        "{text}"
    );
    assert!(
        text.contains("| `labels` | map of string to string | `{}` | KubeEdge |"),
        "{text}"
    );
    assert!(
        text.contains("| `legacy` | any | *unset* | KubeEdge, ignored |"),
        "{text}"
    );
    assert!(
        text.contains("| `rules[].permission` | `allow` or `deny` | **required** | Apiary |"),
        "{text}"
    );
}

#[test]
fn page_puts_the_parts_after_the_intro() {
    let text = page(&["## a\n".to_owned(), "## b\n".to_owned()]);
    assert!(text.starts_with("# Configuration reference\n"), "{text}");
    assert!(text.ends_with("\n## a\n\n## b\n"), "{text}");
}

#[test]
fn a_field_without_a_doc_comment_is_an_error() {
    #[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
    struct Bare {
        port: u16,
    }
    let err = sections::<Bare>().unwrap_err();
    assert!(
        matches!(err, ReferenceError::Undocumented(ref k) if k == "port"),
        "{err}"
    );
}

#[test]
fn table_cells_escape_pipes() {
    assert_eq!(cell("a | b"), "a \\| b");
    assert_eq!(code("a`b"), "`` a`b ``");
    assert_eq!(code("a``b"), "``` a``b ```");
    assert_eq!(
        render_default(&DefaultValue::Value(
            serde_norway::to_value(vec!["x", "y"]).unwrap()
        )),
        "`[\"x\",\"y\"]`"
    );
}
