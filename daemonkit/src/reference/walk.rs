//! The walk over a configuration's JSON schema and its default value, side
//! by side, that yields the [`Section`]s.

use serde_json::{Map, Value as Json};
use serde_norway::Value as Yaml;

use super::{DefaultValue, Key, Origin, ReferenceError, Result, Section};

/// The sections of the configuration whose root schema is `schema` and
/// whose default value is `defaults`.
pub(super) fn walk(schema: &Json, defaults: &Yaml) -> Result<Vec<Section>> {
    let no_defs = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Json::as_object)
        .unwrap_or(&no_defs);
    let mut walker = Walker {
        defs,
        sections: Vec::new(),
    };
    let root = walker.resolve(schema)?;
    let description = one_line(root.get("description"));
    walker.section(
        String::new(),
        &root,
        Some(defaults),
        Origin::KubeEdge,
        description,
    )?;
    Ok(walker.sections)
}

/// The schema and default trees, walked side by side.
struct Walker<'a> {
    defs: &'a Map<String, Json>,
    sections: Vec<Section>,
}

impl Walker<'_> {
    /// `schema` with `$ref`s replaced by their definitions (the keys beside
    /// a `$ref`, such as a field's description, win) and an `Option`'s
    /// null alternative removed.
    fn resolve(&self, schema: &Json) -> Result<Json> {
        let mut schema = schema.clone();
        // Definitions do not nest deeper than this in config types; the
        // bound only stops a self-referencing schema.
        for _ in 0..16 {
            let Some(Json::String(reference)) = schema.get("$ref").cloned() else {
                return Ok(non_null(schema));
            };
            let target = reference
                .strip_prefix("#/$defs/")
                .and_then(|name| self.defs.get(name))
                .ok_or_else(|| ReferenceError::Ref(reference.clone()))?;
            let mut merged = target.clone();
            if let (Json::Object(into), Json::Object(from)) = (&mut merged, &schema) {
                for (k, v) in from.iter().filter(|(k, _)| *k != "$ref") {
                    into.insert(k.clone(), v.clone());
                }
            }
            schema = merged;
        }
        Err(ReferenceError::Ref(
            schema
                .get("$ref")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned(),
        ))
    }

    /// Adds the section of struct `schema` at `path`, then the sections
    /// nested in it.
    fn section(
        &mut self,
        path: String,
        schema: &Json,
        defaults: Option<&Yaml>,
        origin: Origin,
        description: String,
    ) -> Result<()> {
        let no_props = Map::new();
        let props = schema
            .get("properties")
            .and_then(Json::as_object)
            .unwrap_or(&no_props);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Json::as_array)
            .map(|r| r.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let mut keys = Vec::new();
        let mut nested = Vec::new();
        for name in key_order(props, defaults) {
            let Some(prop) = props.get(&name) else {
                continue;
            };
            let prop = self.resolve(prop)?;
            let key_path = join(&path, &name);
            let origin = origin.of(&prop);
            let description = one_line(prop.get("description"));
            if description.is_empty() {
                return Err(ReferenceError::Undocumented(key_path));
            }
            let value = defaults.and_then(|d| d.get(name.as_str()));
            if is_struct(&prop) {
                nested.push((key_path, prop, value.cloned(), origin, description));
                continue;
            }
            let (kind, inner) = self.kind(&prop, &key_path)?;
            if let Some((inner_path, inner_schema)) = inner {
                let inner_description = one_line(inner_schema.get("description"));
                nested.push((inner_path, inner_schema, None, origin, inner_description));
            }
            let default = match value {
                Some(Yaml::Null) | None if required.contains(&name.as_str()) => {
                    DefaultValue::Required
                }
                Some(Yaml::Null) | None => DefaultValue::Unset,
                Some(v) => DefaultValue::Value(v.clone()),
            };
            keys.push(Key {
                path: key_path,
                kind,
                default,
                origin,
                description: with_variants(description, &prop),
            });
        }
        self.sections.push(Section {
            path,
            description,
            origin,
            keys,
        });
        for (path, schema, defaults, origin, description) in nested {
            self.section(path, &schema, defaults.as_ref(), origin, description)?;
        }
        Ok(())
    }

    /// The type of `schema` in words, and the struct inside it (the item
    /// of a list, the value of a map) with the path of its section.
    fn kind(&self, schema: &Json, path: &str) -> Result<(String, Option<(String, Json)>)> {
        if let Some(values) = variants(schema) {
            let names: Vec<String> = values.iter().map(|(v, _)| format!("`{v}`")).collect();
            return Ok((one_of(&names), None));
        }
        let container = match schema.get("type").and_then(Json::as_str) {
            Some("array") => schema
                .get("items")
                .map(|s| ("list of", s, format!("{path}[]"))),
            Some("object") => schema
                .get("additionalProperties")
                .filter(|s| s.is_object())
                .map(|s| ("map of string to", s, format!("{path}.*"))),
            _ => None,
        };
        if let Some((words, inner, inner_path)) = container {
            let inner = self.resolve(inner)?;
            if is_struct(&inner) {
                let text = format!("{words} objects (see `{inner_path}`)");
                return Ok((text, Some((inner_path, inner))));
            }
            let (inner_kind, _) = self.kind(&inner, &inner_path)?;
            return Ok((format!("{words} {inner_kind}"), None));
        }
        Ok((scalar_kind(schema), None))
    }
}

/// Keys in the order the default configuration has them, then any the
/// default leaves out (unset options) in schema order.
fn key_order(props: &Map<String, Json>, defaults: Option<&Yaml>) -> Vec<String> {
    let mut order: Vec<String> = match defaults {
        Some(Yaml::Mapping(map)) => map
            .keys()
            .filter_map(Yaml::as_str)
            .filter(|k| props.contains_key(*k))
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let rest: Vec<String> = props
        .keys()
        .filter(|k| !order.contains(k))
        .cloned()
        .collect();
    order.extend(rest);
    order
}

/// An `Option`'s schema without its null alternative.
fn non_null(schema: Json) -> Json {
    let Json::Object(mut map) = schema else {
        return schema;
    };
    let is_null = |s: &Json| s.get("type").and_then(Json::as_str) == Some("null");
    if let Some(Json::Array(alternatives)) = map.get("anyOf") {
        if let [a, b] = alternatives.as_slice() {
            let kept = match (is_null(a), is_null(b)) {
                (true, false) => Some(b.clone()),
                (false, true) => Some(a.clone()),
                _ => None,
            };
            if let Some(Json::Object(kept)) = kept {
                map.remove("anyOf");
                for (k, v) in kept {
                    map.entry(k).or_insert(v);
                }
            }
        }
    }
    if let Some(Json::Array(types)) = map.get("type") {
        let types: Vec<&Json> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .collect();
        if let [only] = types.as_slice() {
            let only = (*only).clone();
            map.insert("type".to_owned(), only);
        }
    }
    Json::Object(map)
}

fn is_struct(schema: &Json) -> bool {
    schema.get("properties").is_some_and(Json::is_object)
}

/// The values of a string enum with their descriptions: `enum` for plain
/// variants, `oneOf` of `const`s for documented ones.
fn variants(schema: &Json) -> Option<Vec<(String, String)>> {
    if let Some(Json::Array(values)) = schema.get("enum") {
        return Some(values.iter().map(|v| (plain(v), String::new())).collect());
    }
    let Some(Json::Array(alternatives)) = schema.get("oneOf") else {
        return None;
    };
    alternatives
        .iter()
        .map(|alt| {
            let value = alt
                .get("const")
                .or_else(|| alt.get("enum").and_then(|e| e.get(0)))?;
            Some((plain(value), one_line(alt.get("description"))))
        })
        .collect()
}

fn with_variants(description: String, schema: &Json) -> String {
    let documented: Vec<String> = variants(schema)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, doc)| !doc.is_empty())
        .map(|(value, doc)| format!("`{value}`: {doc}"))
        .collect();
    if documented.is_empty() {
        description
    } else {
        format!("{description} {}", documented.join(" "))
    }
}

/// `a`, `a or b`, `a, b or c`.
fn one_of(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn scalar_kind(schema: &Json) -> String {
    if schema.as_bool() == Some(true) || schema.as_object().is_some_and(|m| !m.contains_key("type"))
    {
        return "any".to_owned();
    }
    match schema.get("type").and_then(Json::as_str) {
        Some("integer") => {
            let min = schema.get("minimum").and_then(Json::as_i64);
            // u32 and wider carry only a minimum; a maximum that large says
            // nothing a reader needs.
            let max = schema
                .get("maximum")
                .and_then(Json::as_i64)
                .filter(|m| *m < i64::from(u32::MAX));
            match (min, max) {
                (Some(min), Some(max)) => format!("integer {min}–{max}"),
                (Some(min), None) => format!("integer ≥ {min}"),
                _ => "integer".to_owned(),
            }
        }
        Some(other) => other.to_owned(),
        None => "any".to_owned(),
    }
}

fn plain(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// A doc comment on one line.
fn one_line(description: Option<&Json>) -> String {
    description
        .and_then(Json::as_str)
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
