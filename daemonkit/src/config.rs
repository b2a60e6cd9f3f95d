//! Loading a daemon's YAML configuration file.
//!
//! Parsing goes through `serde_norway` with `serde_path_to_error`, so every
//! error names the dotted key it is about (`modules.edgeHub.heartbeat`).
//! After parsing, [`DaemonConfig::validate`] checks ranges and cross-field
//! rules, and [`DaemonConfig::unsupported_keys`] lists the KubeEdge modules the
//! file configures that Apiary does not have, so the caller can name them in
//! one warning. A bad file is a [`ConfigError`]; the binaries turn it into
//! exit status [`EXIT_CONFIG`] before they open any port.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_norway::Value;

/// Exit status for a bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;

/// One key whose value breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The dotted path of the key, e.g. `modules.edgeHub.heartbeat`.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Invalid {
    /// A rule broken by `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML did not fit the schema: wrong type, unknown key, bad syntax.
    #[error("{}: {message}", if key.is_empty() { "config" } else { key.as_str() })]
    Parse {
        /// The dotted path of the offending key (empty for the document root).
        key: String,
        /// The parser's description, with line and column where known.
        message: String,
    },
    /// Values parsed but broke a rule.
    #[error("invalid config: {}", join(.0))]
    Invalid(Vec<Invalid>),
    /// The configuration could not be written out as YAML.
    #[error("cannot render config as YAML: {0}")]
    Render(#[source] serde_norway::Error),
}

fn join(items: &[Invalid]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result alias for configuration handling.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// What a daemon's top-level configuration type provides.
pub trait DaemonConfig: DeserializeOwned + Serialize + Default {
    /// Checks ranges and cross-field rules; every broken rule is listed.
    fn validate(&self) -> Vec<Invalid>;

    /// Dotted keys of KubeEdge modules present in the file that Apiary does
    /// not have; they are accepted, never honoured, and named in one warning.
    fn unsupported_keys(&self) -> Vec<String>;

    /// The dotted keys `--minconfig` prints (with their default values).
    fn minimal_keys() -> &'static [&'static str];
}

/// Parses YAML text into `T`, naming the offending key on error. An empty
/// document yields `T::default()`.
///
/// Keys the file leaves out keep their value in `T::default()` (what
/// `--defaultconfig` prints), also inside a section the file names only in
/// part: `websocket: {port: 20000}` keeps WebSocket enabled on its default
/// address, as KubeEdge reads its files onto its defaults. The file is read
/// twice: alone first, so that type errors and unknown keys are reported
/// with the file's key path, then laid over the defaults for the values.
pub fn parse<T: DaemonConfig>(text: &str) -> Result<T> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    let de = serde_norway::Deserializer::from_str(text);
    let _: T = serde_path_to_error::deserialize(de).map_err(parse_error)?;
    let file: Value = serde_norway::from_str(text).map_err(|err| ConfigError::Parse {
        key: String::new(),
        message: err.to_string(),
    })?;
    let mut merged = serde_norway::to_value(T::default()).map_err(ConfigError::Render)?;
    overlay(&mut merged, file);
    let config: T = serde_path_to_error::deserialize(merged).map_err(parse_error)?;
    let invalid = config.validate();
    if invalid.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(invalid))
    }
}

/// A deserialization error as a [`ConfigError::Parse`] naming the key.
fn parse_error<E: fmt::Display>(err: serde_path_to_error::Error<E>) -> ConfigError {
    let key = err.path().to_string();
    let key = if key == "." { String::new() } else { key };
    // serde_norway sometimes puts the path in its own message too.
    let message = err.into_inner().to_string();
    let message = match message.strip_prefix(&format!("{key}: ")) {
        Some(rest) => rest.to_owned(),
        None => message,
    };
    ConfigError::Parse { key, message }
}

/// Lays `file` over `base`: mappings merge key by key, anything else (a
/// scalar, a list, a mapping over a non-mapping) replaces.
fn overlay(base: &mut Value, file: Value) {
    match (base, file) {
        (Value::Mapping(base), Value::Mapping(file)) => {
            for (key, value) in file {
                match base.get_mut(&key) {
                    Some(slot) => overlay(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Reads and parses a configuration file (see [`parse`]).
pub fn load<T: DaemonConfig>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text)
}

/// The full default configuration as YAML (`--defaultconfig`).
pub fn default_yaml<T: DaemonConfig>() -> Result<String> {
    serde_norway::to_string(&T::default()).map_err(ConfigError::Render)
}

/// A minimal configuration as YAML (`--minconfig`): only
/// [`DaemonConfig::minimal_keys`], each with its default value.
pub fn minimal_yaml<T: DaemonConfig>() -> Result<String> {
    let full = serde_norway::to_value(T::default()).map_err(ConfigError::Render)?;
    let mut out = Value::Mapping(Default::default());
    for key in T::minimal_keys() {
        let parts: Vec<&str> = key.split('.').collect();
        if let Some(value) = lookup(&full, &parts) {
            insert(&mut out, &parts, value.clone());
        }
    }
    serde_norway::to_string(&out).map_err(ConfigError::Render)
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, part| v.get(*part))
}

fn insert(root: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for part in parents {
        let Value::Mapping(map) = node else { return };
        node = map
            .entry(Value::String((*part).to_owned()))
            .or_insert_with(|| Value::Mapping(Default::default()));
    }
    if let Value::Mapping(map) = node {
        map.insert(Value::String((*last).to_owned()), value);
    }
}

/// Collects the [`Invalid`] entries of a validation pass.
#[derive(Debug, Default)]
pub struct Checks(Vec<Invalid>);

impl Checks {
    /// Records `problem` for `key` unless `ok`.
    pub fn check(&mut self, ok: bool, key: &str, problem: impl Into<String>) {
        if !ok {
            self.0.push(Invalid::new(key, problem));
        }
    }

    /// Records a problem for `key` unless `value` is greater than zero.
    pub fn positive<N: PartialOrd + Default>(&mut self, value: N, key: &str) {
        self.check(value > N::default(), key, "must be greater than 0");
    }

    /// Records a problem for `key` unless `value` parses as `host:port`.
    pub fn socket_addr(&mut self, value: &str, key: &str) {
        self.check(
            value.parse::<std::net::SocketAddr>().is_ok(),
            key,
            format!("{value:?} is not an IP:port address"),
        );
    }

    /// Records a problem for `key` unless `value` is `host:port` (a name or
    /// an address, with a numeric port).
    pub fn host_port(&mut self, value: &str, key: &str) {
        let ok = value
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        self.check(ok, key, format!("{value:?} is not a host:port address"));
    }

    /// Records a problem for `key` unless `value` is a `scheme://host:port` URL
    /// whose scheme is one of `schemes`.
    pub fn url(&mut self, value: &str, key: &str, schemes: &[&str]) {
        let ok = value
            .split_once("://")
            .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
        self.check(
            ok,
            key,
            format!(
                "{value:?} is not a URL with scheme {}",
                schemes.join(" or ")
            ),
        );
    }

    /// The problems found.
    pub fn finish(self) -> Vec<Invalid> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default, rename_all = "camelCase")]
    struct Demo {
        outer: Outer,
        legacy: Option<Value>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default, rename_all = "camelCase")]
    struct Outer {
        heartbeat: u32,
        server: String,
    }

    impl Default for Outer {
        fn default() -> Self {
            Outer {
                heartbeat: 15,
                server: "127.0.0.1:1".into(),
            }
        }
    }

    impl DaemonConfig for Demo {
        fn validate(&self) -> Vec<Invalid> {
            let mut c = Checks::default();
            c.positive(self.outer.heartbeat, "outer.heartbeat");
            c.socket_addr(&self.outer.server, "outer.server");
            c.finish()
        }
        fn unsupported_keys(&self) -> Vec<String> {
            self.legacy.iter().map(|_| "legacy".to_owned()).collect()
        }
        fn minimal_keys() -> &'static [&'static str] {
            &["outer.server"]
        }
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse::<Demo>("outer: {heartbeat: abc}").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("outer.heartbeat: invalid type"), "{text}");
    }

    #[test]
    fn unknown_key_is_refused_and_named() {
        let err = parse::<Demo>("outer: {bogus: 1}").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn range_rules_name_every_key() {
        let err = parse::<Demo>("outer: {heartbeat: 0, server: nope}").unwrap_err();
        let ConfigError::Invalid(items) = err else {
            panic!("expected Invalid, got {err}")
        };
        let keys: Vec<_> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["outer.heartbeat", "outer.server"]);
    }

    /// Its type default (off, port 0) is not what either section wants.
    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Listener {
        enable: bool,
        port: u16,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Hub {
        websocket: Listener,
        quic: Listener,
        names: Vec<String>,
    }

    impl Default for Hub {
        fn default() -> Self {
            Hub {
                websocket: Listener {
                    enable: true,
                    port: 10000,
                },
                quic: Listener {
                    enable: false,
                    port: 10001,
                },
                names: vec!["a".into(), "b".into()],
            }
        }
    }

    impl DaemonConfig for Hub {
        fn validate(&self) -> Vec<Invalid> {
            Vec::new()
        }
        fn unsupported_keys(&self) -> Vec<String> {
            Vec::new()
        }
        fn minimal_keys() -> &'static [&'static str] {
            &[]
        }
    }

    #[test]
    fn a_partly_named_section_keeps_its_other_defaults() {
        let hub: Hub = parse("websocket: {port: 20000}\nquic: {enable: true}\nnames: [c]").unwrap();
        assert_eq!(
            hub.websocket,
            Listener {
                enable: true,
                port: 20000
            }
        );
        assert_eq!(
            hub.quic,
            Listener {
                enable: true,
                port: 10001
            }
        );
        assert_eq!(hub.names, ["c"], "lists replace");
        let err = parse::<Hub>("websocket: {port: -1}").unwrap_err();
        assert!(err.to_string().starts_with("websocket.port: "), "{err}");
    }

    #[test]
    fn empty_file_is_the_default_and_defaults_round_trip() {
        assert_eq!(parse::<Demo>("").unwrap(), Demo::default());
        let text = default_yaml::<Demo>().unwrap();
        assert_eq!(parse::<Demo>(&text).unwrap(), Demo::default());
    }

    #[test]
    fn minimal_config_keeps_only_named_keys_and_parses_back() {
        let text = minimal_yaml::<Demo>().unwrap();
        assert!(text.contains("server"), "{text}");
        assert!(!text.contains("heartbeat"), "{text}");
        assert_eq!(parse::<Demo>(&text).unwrap(), Demo::default());
    }

    #[test]
    fn unsupported_modules_are_accepted() {
        let demo: Demo = parse("legacy: {enable: true, anything: [1, 2]}").unwrap();
        assert_eq!(demo.unsupported_keys(), ["legacy"]);
    }

    #[test]
    fn load_reports_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = load::<Demo>(&dir.path().join("absent.yaml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }
}
