//! Kubernetes label and field selectors, parsed from their query-string
//! form (`labelSelector=app=x,tier!=db`, `fieldSelector=spec.nodeName=n`)
//! and matched against objects.
//!
//! The label grammar is the API server's (`k8s.io/apimachinery/pkg/labels`):
//! `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`, joined by
//! commas, with label keys and values validated as Kubernetes does. The
//! numeric `k>1`/`k<1` forms are refused ([`SelectorError::Unsupported`]).
//! Matching uses [`kube::core::Selector`].
//!
//! A field selector is `f=v`, `f==v` or `f!=v`, joined by commas, values
//! escaping `\,`, `\=` and `\\`. `f` is any dotted path into the object
//! (`metadata.name`, `spec.nodeName`, `type`); a missing field reads as the
//! empty string, numbers and booleans as their JSON text, as Kubernetes does.
//!
//! # Layout
//!
//! - `label.rs`: [`LabelSelector`]: lexer, parser, key and value rules.
//! - `field.rs`: [`FieldSelector`]: terms, escapes, [`field_value`].

mod field;
mod label;

use serde_json::Value;

pub use field::{field_value, FieldOp, FieldRequirement, FieldSelector};
pub use label::LabelSelector;

use crate::store::Object;

/// A selector string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A token where another was expected.
    #[error("unable to parse requirement: found '{found}', expected: {expected}")]
    Unexpected {
        /// What was found (`end of string` at the end).
        found: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A label key that Kubernetes would refuse.
    #[error("invalid label key \"{key}\": {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// A label value that Kubernetes would refuse.
    #[error("invalid label value \"{value}\": {reason}")]
    InvalidValue {
        /// The value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A label operator this server does not implement (`>`, `<`).
    #[error("unsupported label selector operator '{0}'")]
    Unsupported(String),
    /// A field selector term without `=`, `==` or `!=`.
    #[error("invalid field selector '{selector}': can't understand '{term}'")]
    FieldTerm {
        /// The whole selector.
        selector: String,
        /// The term.
        term: String,
    },
    /// A field selector path that is empty or has an empty segment.
    #[error("invalid field path \"{0}\"")]
    FieldPath(String),
    /// A backslash not followed by `\`, `,` or `=` in a field value.
    #[error("invalid escape sequence \"{0}\" in a field selector value")]
    Escape(String),
    /// An unescaped `,` or `=` in a field value.
    #[error("invalid field selector value: unescaped '{0}'")]
    Unescaped(char),
}

/// `Result` with [`SelectorError`].
pub type Result<T, E = SelectorError> = std::result::Result<T, E>;

/// A label selector and a field selector together, as a list or watch
/// request gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selectors {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Parses both; absent means everything.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Selectors> {
        Ok(Selectors {
            labels: LabelSelector::parse(labels.unwrap_or_default())?,
            fields: FieldSelector::parse(fields.unwrap_or_default())?,
        })
    }

    /// True if it selects every object.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// True if `value` meets both.
    pub fn matches(&self, value: &Value) -> bool {
        self.labels.matches(value) && self.fields.matches(value)
    }

    /// True if `object` meets both.
    pub fn matches_object(&self, object: &Object) -> bool {
        self.matches(&object.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{Expression, Selector};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn both_selectors_must_match() {
        let pod = json!({"metadata": {"name": "a", "labels": {"app": "x"}},
                         "spec": {"nodeName": "n1"}});
        let sel = |l, f| Selectors::parse(l, f).unwrap();
        assert!(sel(None, None).is_empty());
        assert!(sel(None, None).matches(&pod));
        assert!(sel(Some("app=x"), Some("spec.nodeName=n1")).matches(&pod));
        assert!(!sel(Some("app=x"), Some("spec.nodeName=n2")).matches(&pod));
        assert!(!sel(Some("app=y"), Some("spec.nodeName=n1")).matches(&pod));
        assert!(Selectors::parse(Some("a b"), None).is_err());
        assert!(Selectors::parse(None, Some("nope")).is_err());
    }

    fn label_name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,10}[a-zA-Z0-9])?"
    }

    fn label_key() -> impl Strategy<Value = String> {
        (
            proptest::option::of("[a-z0-9]{1,5}(\\.[a-z0-9]{1,5}){0,2}"),
            label_name(),
        )
            .prop_map(|(prefix, name)| match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name,
            })
    }

    fn label_value() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), label_name()]
    }

    fn expression() -> impl Strategy<Value = Expression> {
        let values = || proptest::collection::btree_set(label_value(), 1..4);
        prop_oneof![
            (label_key(), label_value()).prop_map(|(k, v)| Expression::Equal(k, v)),
            (label_key(), label_value()).prop_map(|(k, v)| Expression::NotEqual(k, v)),
            (label_key(), values()).prop_map(|(k, v)| Expression::In(k, v)),
            (label_key(), values()).prop_map(|(k, v)| Expression::NotIn(k, v)),
            label_key().prop_map(Expression::Exists),
            label_key().prop_map(Expression::DoesNotExist),
        ]
    }

    proptest! {
        /// kube-rs prints what we parse back unchanged.
        #[test]
        fn label_selectors_round_trip(exprs in proptest::collection::vec(expression(), 0..5)) {
            let selector: Selector = exprs.into_iter().collect();
            let text = selector.to_string();
            let parsed = LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(parsed.as_kube(), &selector);
        }

        /// Field values survive escaping, whatever they hold.
        #[test]
        fn field_selectors_round_trip(
            terms in proptest::collection::vec(("[a-z]{1,6}(\\.[a-zA-Z]{1,6}){0,2}", any::<bool>(), ".{0,12}"), 0..4)
        ) {
            let mut selector = FieldSelector::default();
            for (field, eq, value) in terms {
                let op = if eq { FieldOp::Equals } else { FieldOp::NotEquals };
                selector.push(FieldRequirement { field, op, value });
            }
            let text = selector.to_string();
            let parsed = FieldSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(parsed, selector);
        }

        /// Any input gives a selector or an error, never a panic.
        #[test]
        fn parsers_never_panic(text in ".{0,40}") {
            let _ = LabelSelector::parse(&text);
            let _ = FieldSelector::parse(&text);
        }
    }
}
