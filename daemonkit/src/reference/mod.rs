//! The configuration reference (docs/configuration.md), generated from a
//! daemon's config types so that it cannot drift from them: [`page`] joins
//! one [`markdown`] part per daemon, and a test in the `tests` crate fails
//! when the file differs (`APIARY_BLESS=1` rewrites it).
//!
//! Two trees are walked side by side: the JSON schema `schemars` derives
//! from the types (key names as serde spells them, descriptions from the
//! `///` comments, types, required keys) and the default configuration as
//! `--defaultconfig` serialises it (default values, and the order of keys).
//! Every struct becomes a [`Section`], one table; every other key a [`Key`],
//! one row. The items of a list of structs get a section of their own at
//! `path[]`, the values of a map of structs one at `path.*`.
//!
//! Where a key comes from is said by a schema extension on the field,
//! `#[schemars(extend("x-apiary-addition" = true))]` ([`ADDITION`]) for a
//! key Apiary adds to KubeEdge's file and
//! `#[schemars(extend("x-kubeedge-unsupported" = true))]` ([`UNSUPPORTED`])
//! for a KubeEdge section Apiary accepts, ignores and names in a warning.
//! Keys under a marked key inherit its mark; unmarked keys are KubeEdge's.
//! A key without a description is an error ([`ReferenceError::Undocumented`]).
//!
//! # Layout
//!
//! - `mod.rs`: the model ([`Section`], [`Key`], [`Origin`]) and [`sections`].
//! - `walk.rs`: the walk over the schema and the default configuration.
//! - `markdown.rs`: [`markdown`] and [`page`], the Markdown.
//! - `tests.rs`: the walk and the Markdown on demo types.

mod markdown;
#[cfg(test)]
mod tests;
mod walk;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

pub use markdown::{markdown, page};

/// Schema extension marking a key (and everything under it) as Apiary's
/// addition to KubeEdge's configuration file.
pub const ADDITION: &str = "x-apiary-addition";

/// Schema extension marking a KubeEdge key that Apiary accepts with any
/// content, ignores, and names in its start-up warning
/// ([`DaemonConfig::unsupported_keys`](crate::DaemonConfig::unsupported_keys)).
pub const UNSUPPORTED: &str = "x-kubeedge-unsupported";

/// Why the reference could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The default configuration could not be serialised.
    #[error("cannot serialise the default configuration: {0}")]
    Default(#[source] serde_norway::Error),
    /// A `$ref` in the schema names no definition.
    #[error("schema reference {0:?} names no definition")]
    Ref(String),
    /// A key has no description: its field lacks a `///` comment.
    #[error("{0}: no description; give the field a doc comment")]
    Undocumented(String),
}

/// Result alias for building the reference.
pub type Result<T, E = ReferenceError> = std::result::Result<T, E>;

/// Where a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// KubeEdge's key, with its name and meaning.
    KubeEdge,
    /// Apiary's addition ([`ADDITION`]).
    Apiary,
    /// KubeEdge's, accepted and ignored with a warning ([`UNSUPPORTED`]).
    Unsupported,
}

impl Origin {
    /// The Origin column's text.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Origin::KubeEdge => "KubeEdge",
            Origin::Apiary => "Apiary",
            Origin::Unsupported => "KubeEdge, ignored",
        }
    }

    /// The origin of a key under `self` whose schema is `schema`.
    pub(crate) fn of(self, schema: &Json) -> Origin {
        let marked = |name| schema.get(name).and_then(Json::as_bool) == Some(true);
        match self {
            Origin::KubeEdge if marked(UNSUPPORTED) => Origin::Unsupported,
            Origin::KubeEdge if marked(ADDITION) => Origin::Apiary,
            inherited => inherited,
        }
    }
}

/// A key's default value.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    /// What `--defaultconfig` prints for the key.
    Value(Yaml),
    /// Absent by default (an unset option, or a field of a list item).
    Unset,
    /// Must be given (a field of a list item without a default).
    Required,
}

/// One key that is not a struct: a row of the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Dotted path as the YAML nests it, e.g. `modules.cloudHub.websocket.port`.
    pub path: String,
    /// The value's type, in words (`string`, `integer 0–65535`, `list of string`).
    pub kind: String,
    /// The default.
    pub default: DefaultValue,
    /// Where the key comes from.
    pub origin: Origin,
    /// The field's doc comment, on one line, followed by those of the
    /// enum's values where they have one.
    pub description: String,
}

/// One struct of the configuration: a table of the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Dotted path of the struct; empty for the document itself.
    pub path: String,
    /// The field's (or type's) doc comment, on one line.
    pub description: String,
    /// Where the section comes from.
    pub origin: Origin,
    /// Its keys that are not structs, in the order `--defaultconfig` writes them.
    pub keys: Vec<Key>,
}

/// Every section of `T`'s configuration, the document first, each followed
/// by the sections nested in it.
pub fn sections<T: JsonSchema + Serialize + Default>() -> Result<Vec<Section>> {
    let schema = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    let defaults = serde_norway::to_value(T::default()).map_err(ReferenceError::Default)?;
    walk::walk(&schema, &defaults)
}
