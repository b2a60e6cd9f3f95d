//! Field selectors: comma-separated `path=value`, `path==value` and
//! `path!=value` terms (`k8s.io/apimachinery/pkg/fields/selector.go`),
//! matched against dotted paths into the object's JSON.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::{Result, SelectorError};

/// A field selector comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One field selector term: `field op value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The dotted path, e.g. `spec.nodeName`.
    pub field: String,
    /// The comparison.
    pub op: FieldOp,
    /// The value, unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// True if `value` meets this term.
    pub fn matches(&self, value: &Value) -> bool {
        let actual = field_value(value, &self.field);
        match self.op {
            FieldOp::Equals => actual == self.value,
            FieldOp::NotEquals => actual != self.value,
        }
    }
}

/// A field selector: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldRequirement>);

impl FieldSelector {
    /// Parses the query-string form; the empty string selects everything.
    pub fn parse(text: &str) -> Result<FieldSelector> {
        let mut terms = Vec::new();
        for term in split_terms(text) {
            if term.is_empty() {
                continue;
            }
            let (field, op, raw) = split_term(term).ok_or_else(|| SelectorError::FieldTerm {
                selector: text.to_owned(),
                term: term.to_owned(),
            })?;
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(SelectorError::FieldPath(field.to_owned()));
            }
            terms.push(FieldRequirement {
                field: field.to_owned(),
                op,
                value: unescape(raw)?,
            });
        }
        Ok(FieldSelector(terms))
    }

    /// True if it selects every object.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Its terms, in the order given.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.0
    }

    /// Adds a term.
    pub fn push(&mut self, requirement: FieldRequirement) {
        self.0.push(requirement);
    }

    /// The name asked for by a `metadata.name=x` term, if any (a watch or
    /// list of one object, as `kubectl get pod x -w` makes).
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == "metadata.name" && r.op == FieldOp::Equals)
            .map(|r| r.value.as_str())
    }

    /// True if `value` meets every term.
    pub fn matches(&self, value: &Value) -> bool {
        self.0.iter().all(|r| r.matches(value))
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self> {
        FieldSelector::parse(s)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}", r.field)?;
            for c in r.value.chars() {
                if matches!(c, '\\' | ',' | '=') {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The text of the field at dotted `path` in `value`: strings as they are,
/// numbers and booleans as JSON, missing or null as "" (Kubernetes'
/// reading of an unset field). A numeric segment indexes an array.
pub fn field_value(value: &Value, path: &str) -> String {
    let mut at = value;
    for segment in path.split('.') {
        let next = match at {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return String::new(),
        }
    }
    match at {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Splits on commas not escaped by a backslash.
fn split_terms(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

/// Splits at the first operator: `!=`, `==`, then `=`.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOp::NotEquals),
            ("==", FieldOp::Equals),
            ("=", FieldOp::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, value));
            }
        }
    }
    None
}

fn unescape(raw: &str) -> Result<String> {
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::Escape(format!("\\{c}")));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(SelectorError::Unescaped(c)),
            c => out.push(c),
        }
    }
    if escaped {
        return Err(SelectorError::Escape("\\".to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(field: &str, op: FieldOp, value: &str) -> FieldRequirement {
        FieldRequirement {
            field: field.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn parses_terms_and_escapes() {
        let s =
            FieldSelector::parse("metadata.name=a,spec.nodeName==n,status.phase!=Running").unwrap();
        assert_eq!(
            s.requirements(),
            [
                req("metadata.name", FieldOp::Equals, "a"),
                req("spec.nodeName", FieldOp::Equals, "n"),
                req("status.phase", FieldOp::NotEquals, "Running"),
            ]
        );
        assert_eq!(s.name(), Some("a"));
        let s = FieldSelector::parse(r"a=x\,y\=z\\,b!=").unwrap();
        assert_eq!(
            s.requirements(),
            [
                req("a", FieldOp::Equals, r"x,y=z\"),
                req("b", FieldOp::NotEquals, "")
            ]
        );
        assert_eq!(s.to_string(), r"a=x\,y\=z\\,b!=");
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",").unwrap().is_empty());
    }

    #[test]
    fn refuses_bad_terms() {
        let err = |s: &str| FieldSelector::parse(s).unwrap_err();
        assert_eq!(
            err("metadata.name"),
            SelectorError::FieldTerm {
                selector: "metadata.name".into(),
                term: "metadata.name".into()
            }
        );
        assert_eq!(err("=x"), SelectorError::FieldPath(String::new()));
        assert_eq!(err("a..b=x"), SelectorError::FieldPath("a..b".into()));
        assert_eq!(err(r"a=\x"), SelectorError::Escape(r"\x".into()));
        assert_eq!(err("a=x\\"), SelectorError::Escape("\\".into()));
        assert_eq!(err("a=b=c"), SelectorError::Unescaped('='));
    }

    #[test]
    fn matches_dotted_paths() {
        let pod = json!({
            "type": "Opaque",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "edge-1", "unschedulable": true, "replicas": 3,
                     "containers": [{"name": "c0"}]},
            "status": {"phase": "Running"},
        });
        let yes = |s: &str| FieldSelector::parse(s).unwrap().matches(&pod);
        assert!(yes("metadata.name=p,metadata.namespace=default"));
        assert!(yes("spec.nodeName=edge-1,status.phase!=Pending"));
        assert!(yes("type=Opaque"));
        assert!(yes("spec.unschedulable=true,spec.replicas=3"));
        assert!(yes("spec.containers.0.name=c0"));
        assert!(yes("spec.missing=,status.reason!=x"));
        assert!(!yes("spec.nodeName="));
        assert!(!yes("metadata.name=q"));
        assert_eq!(field_value(&pod, "spec"), pod["spec"].to_string());
        assert_eq!(field_value(&json!({"a": null}), "a"), "");
    }
}
