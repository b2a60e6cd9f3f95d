//! Schema helpers: protocol and visitor `configData` is mapper-defined, so
//! its schema is a free-form object that the API server keeps as sent.

use schemars::{json_schema, Schema, SchemaGenerator};

/// An object of any shape (`x-kubernetes-preserve-unknown-fields`).
pub(crate) fn free_form(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
