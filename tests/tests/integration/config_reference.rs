//! docs/configuration.md, the configuration reference, is generated from
//! both daemons' config types (`daemonkit::reference`); this fails when the
//! file drifts from them, and `APIARY_BLESS=1` rewrites it. It also checks
//! the reference against the parsers: every key `--defaultconfig` prints
//! is in it, and every key it calls ignored is accepted and named in the
//! start-up warning.

use std::path::PathBuf;

use cloudcore::config::CloudCoreConfig;
use daemonkit::config::{default_yaml, parse};
use daemonkit::reference::{self, Origin, Section};
use daemonkit::{ConfigError, DaemonConfig};
use edgecore::config::EdgeCoreConfig;
use serde_norway::Value;

const BLESS: &str = "APIARY_BLESS=1 cargo test -p tests --test integration config_reference";

fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md")
}

fn generated() -> String {
    let parts = [
        reference::markdown::<CloudCoreConfig>("cloudcore", cloudcore::DEFAULT_CONFIG_PATH)
            .unwrap(),
        reference::markdown::<EdgeCoreConfig>("edgecore", edgecore::DEFAULT_CONFIG_PATH).unwrap(),
    ];
    reference::page(&parts)
}

#[test]
fn docs_configuration_md_matches_the_config_types() {
    let want = generated();
    let path = reference_path();
    if std::env::var_os("APIARY_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} differs from the config types; run `{BLESS}` and commit the file",
        path.display()
    );
}

/// The dotted paths of the leaves of `value`: scalars, lists and empty
/// maps.
fn leaf_paths(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            for (key, child) in map {
                let key = key.as_str().unwrap_or_default();
                let child_path = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                leaf_paths(child, &child_path, out);
            }
        }
        _ => out.push(path.to_owned()),
    }
}

fn key_paths(sections: Vec<Section>, origin: Option<Origin>) -> Vec<String> {
    sections
        .into_iter()
        .flat_map(|s| s.keys)
        .filter(|k| origin.is_none_or(|o| k.origin == o))
        .map(|k| k.path)
        .collect()
}

/// Every key `--defaultconfig` prints (`default_yaml`) is a key of the
/// reference.
fn covers_the_default_config(sections: Vec<Section>, default_yaml: &str) {
    let keys = key_paths(sections, None);
    let value: Value = serde_norway::from_str(default_yaml).unwrap();
    let mut leaves = Vec::new();
    leaf_paths(&value, "", &mut leaves);
    assert!(leaves.len() > 20, "{leaves:?}");
    let missing: Vec<&String> = leaves.iter().filter(|l| !keys.contains(l)).collect();
    assert!(
        missing.is_empty(),
        "keys of --defaultconfig missing from the reference: {missing:?}"
    );
}

#[test]
fn the_reference_covers_every_default_key() {
    covers_the_default_config(
        reference::sections::<CloudCoreConfig>().unwrap(),
        &default_yaml::<CloudCoreConfig>().unwrap(),
    );
    covers_the_default_config(
        reference::sections::<EdgeCoreConfig>().unwrap(),
        &default_yaml::<EdgeCoreConfig>().unwrap(),
    );
}

/// Every key the reference marks as ignored parses with content and is
/// the one key `warned` (the daemon's `unsupported_keys` of the parsed
/// file, its start-up warning) names.
fn ignored_keys_are_warned(
    sections: Vec<Section>,
    warned: impl Fn(&str) -> Result<Vec<String>, ConfigError>,
) {
    let ignored = key_paths(sections, Some(Origin::Unsupported));
    assert!(!ignored.is_empty(), "no key is marked as ignored");
    for key in &ignored {
        let mut yaml = String::new();
        let parts: Vec<&str> = key.split('.').collect();
        for (depth, part) in parts.iter().enumerate() {
            yaml.push_str(&format!("{}{part}:\n", "  ".repeat(depth)));
        }
        yaml.push_str(&format!("{}enable: true\n", "  ".repeat(parts.len())));
        let named = warned(&yaml).unwrap_or_else(|e| panic!("{key}: {e}\n{yaml}"));
        assert_eq!(named, std::slice::from_ref(key), "{yaml}");
    }
}

#[test]
fn ignored_keys_are_accepted_and_named_in_the_warning() {
    ignored_keys_are_warned(reference::sections::<CloudCoreConfig>().unwrap(), |yaml| {
        parse::<CloudCoreConfig>(yaml).map(|c| c.unsupported_keys())
    });
    ignored_keys_are_warned(reference::sections::<EdgeCoreConfig>().unwrap(), |yaml| {
        parse::<EdgeCoreConfig>(yaml).map(|c| c.unsupported_keys())
    });
}
