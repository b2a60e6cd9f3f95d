//! Label selectors: the API server's lexer and parser
//! (`k8s.io/apimachinery/pkg/labels/selector.go`) producing a
//! [`kube::core::Selector`], with label keys and values validated as
//! Kubernetes validates them.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use kube::core::{Expression, Selector, SelectorExt};
use serde_json::Value;

use super::{Result, SelectorError};
use crate::store::labels_of;

/// A label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Selector);

impl LabelSelector {
    /// Parses the query-string form; the empty string selects everything.
    pub fn parse(text: &str) -> Result<LabelSelector> {
        let tokens = lex(text);
        Parser { tokens, at: 0 }
            .parse()
            .map(|exprs| LabelSelector(exprs.into_iter().collect()))
    }

    /// True if it selects every object.
    pub fn is_empty(&self) -> bool {
        self.0.selects_all()
    }

    /// The selector as kube-rs models it.
    pub fn as_kube(&self) -> &Selector {
        &self.0
    }

    /// True if `labels` meet every requirement.
    pub fn matches_labels(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.0.matches(labels)
    }

    /// True if the `metadata.labels` of `value` meet every requirement.
    pub fn matches(&self, value: &Value) -> bool {
        self.is_empty() || self.matches_labels(&labels_of(value))
    }
}

impl From<Selector> for LabelSelector {
    fn from(selector: Selector) -> Self {
        LabelSelector(selector)
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self> {
        LabelSelector::parse(s)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A label selector token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    /// `!`
    Bang,
    /// `!=`
    NotEquals,
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `>` or `<`
    Compare(char),
    Open,
    Close,
    Comma,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::Bang => "!".to_owned(),
            Token::NotEquals => "!=".to_owned(),
            Token::Equals => "=".to_owned(),
            Token::DoubleEquals => "==".to_owned(),
            Token::Compare(c) => c.to_string(),
            Token::Open => "(".to_owned(),
            Token::Close => ")".to_owned(),
            Token::Comma => ",".to_owned(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '!' if chars.next_if_eq(&'=').is_some() => Token::NotEquals,
            '!' => Token::Bang,
            '=' if chars.next_if_eq(&'=').is_some() => Token::DoubleEquals,
            '=' => Token::Equals,
            '>' | '<' => Token::Compare(c),
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            c => {
                let mut ident = c.to_string();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !is_special(*c)) {
                    ident.push(c);
                }
                Token::Ident(ident)
            }
        };
        tokens.push(token);
    }
    tokens
}

const END: &str = "end of string";

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn unexpected(token: Option<&Token>, expected: &'static str) -> SelectorError {
        SelectorError::Unexpected {
            found: token.map_or_else(|| END.to_owned(), Token::text),
            expected,
        }
    }

    fn parse(mut self) -> Result<Vec<Expression>> {
        let mut exprs = Vec::new();
        loop {
            match self.peek() {
                None => return Ok(exprs),
                Some(Token::Ident(_) | Token::Bang) => {}
                other => return Err(Self::unexpected(other, "!, identifier, or 'end of string'")),
            }
            exprs.push(self.requirement()?);
            match self.next() {
                None => return Ok(exprs),
                Some(Token::Comma) => match self.peek() {
                    Some(Token::Ident(_) | Token::Bang) => {}
                    other => return Err(Self::unexpected(other, "identifier after ','")),
                },
                other => return Err(Self::unexpected(other.as_ref(), "',' or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Expression> {
        let negated = self.peek() == Some(&Token::Bang);
        if negated {
            self.at += 1;
        }
        let key = match self.next() {
            Some(Token::Ident(key)) => key,
            other => return Err(Self::unexpected(other.as_ref(), "identifier")),
        };
        validate_key(&key)?;
        if negated {
            return Ok(Expression::DoesNotExist(key));
        }
        if matches!(self.peek(), None | Some(Token::Comma)) {
            return Ok(Expression::Exists(key));
        }
        match self.next() {
            Some(Token::Equals | Token::DoubleEquals) => Ok(Expression::Equal(key, self.exact()?)),
            Some(Token::NotEquals) => Ok(Expression::NotEqual(key, self.exact()?)),
            Some(Token::Ident(op)) if op == "in" => Ok(Expression::In(key, self.set()?)),
            Some(Token::Ident(op)) if op == "notin" => Ok(Expression::NotIn(key, self.set()?)),
            Some(Token::Compare(c)) => Err(SelectorError::Unsupported(c.to_string())),
            other => Err(Self::unexpected(
                other.as_ref(),
                "in, notin, =, ==, !=, gt, lt",
            )),
        }
    }

    /// The value after `=`, `==` or `!=`; none means "".
    fn exact(&mut self) -> Result<String> {
        let value = match self.peek() {
            None | Some(Token::Comma) => String::new(),
            Some(Token::Ident(value)) => {
                let value = value.clone();
                self.at += 1;
                value
            }
            other => return Err(Self::unexpected(other, "identifier")),
        };
        validate_value(&value)?;
        Ok(value)
    }

    /// `( a, b )`; empty entries (`()`, `(a,)`) are the empty value.
    fn set(&mut self) -> Result<BTreeSet<String>> {
        match self.next() {
            Some(Token::Open) => {}
            other => return Err(Self::unexpected(other.as_ref(), "'('")),
        }
        let mut values = BTreeSet::new();
        let mut want_value = true;
        loop {
            match self.next() {
                Some(Token::Ident(v)) if want_value => {
                    values.insert(v);
                    want_value = false;
                }
                Some(Token::Comma) => {
                    if want_value {
                        values.insert(String::new());
                    }
                    want_value = true;
                }
                Some(Token::Close) => {
                    if want_value {
                        values.insert(String::new());
                    }
                    break;
                }
                other if want_value => {
                    return Err(Self::unexpected(other.as_ref(), "',', ')' or identifier"))
                }
                other => return Err(Self::unexpected(other.as_ref(), "',' or ')'")),
            }
        }
        for v in &values {
            validate_value(v)?;
        }
        Ok(values)
    }
}

const NAME_RULE: &str = "must be 63 characters or less, begin and end with an alphanumeric \
                         character and contain only alphanumerics, '-', '_' and '.'";
const PREFIX_RULE: &str = "the prefix must be a DNS subdomain: at most 253 characters of \
                           lower-case alphanumerics, '-' and '.'";

/// A qualified name: `[prefix/]name` (Kubernetes `IsQualifiedName`).
fn validate_key(key: &str) -> Result<()> {
    let invalid = |reason| SelectorError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if !is_dns_subdomain(prefix) {
                return Err(invalid(PREFIX_RULE));
            }
            name
        }
        None => key,
    };
    if name.is_empty() || !is_label_name(name) {
        return Err(invalid(NAME_RULE));
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<()> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(SelectorError::InvalidValue {
            value: value.to_owned(),
            reason: NAME_RULE,
        })
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn is_label_name(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Lower-case RFC 1123 subdomain, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    let label_ok = |l: &str| {
        let edge =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        edge(l.chars().next())
            && edge(l.chars().last())
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> Vec<Expression> {
        LabelSelector::parse(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .0
            .into_iter()
            .collect()
    }

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn every_operator() {
        use Expression::*;
        assert_eq!(
            parse("a=1, b==2,c!=3 ,d in (x, y),e notin (z),f,!g"),
            vec![
                Equal("a".into(), "1".into()),
                Equal("b".into(), "2".into()),
                NotEqual("c".into(), "3".into()),
                In("d".into(), set(&["x", "y"])),
                NotIn("e".into(), set(&["z"])),
                Exists("f".into()),
                DoesNotExist("g".into()),
            ]
        );
        assert!(parse("").is_empty());
        assert!(parse("  ").is_empty());
        assert_eq!(
            parse("app.kubernetes.io/name=web"),
            vec![Equal("app.kubernetes.io/name".into(), "web".into())]
        );
    }

    #[test]
    fn empty_values_as_kubernetes_reads_them() {
        use Expression::*;
        assert_eq!(parse("a="), vec![Equal("a".into(), String::new())]);
        assert_eq!(
            parse("a!=,b"),
            vec![NotEqual("a".into(), String::new()), Exists("b".into())]
        );
        assert_eq!(parse("a in ()"), vec![In("a".into(), set(&[""]))]);
        assert_eq!(parse("a in (,x)"), vec![In("a".into(), set(&["", "x"]))]);
        assert_eq!(parse("a in (x,)"), vec![In("a".into(), set(&["", "x"]))]);
        // Keywords are plain identifiers where a key or value is expected.
        assert_eq!(parse("in=notin"), vec![Equal("in".into(), "notin".into())]);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |s: &str| LabelSelector::parse(s).unwrap_err();
        assert_eq!(
            err("a=b,"),
            SelectorError::Unexpected {
                found: "end of string".into(),
                expected: "identifier after ','"
            }
        );
        assert!(matches!(err("a b"), SelectorError::Unexpected { found, .. } if found == "b"));
        assert!(matches!(
            err("a in x"),
            SelectorError::Unexpected {
                expected: "'('",
                ..
            }
        ));
        assert!(
            matches!(err("a in (x"), SelectorError::Unexpected { found, .. } if found == "end of string")
        );
        assert!(matches!(
            err("a in (x y)"),
            SelectorError::Unexpected {
                expected: "',' or ')'",
                ..
            }
        ));
        assert!(matches!(err("=a"), SelectorError::Unexpected { .. }));
        assert!(matches!(err("!a=b"), SelectorError::Unexpected { .. }));
        assert!(matches!(err("a=(b)"), SelectorError::Unexpected { .. }));
        assert_eq!(err("a>1"), SelectorError::Unsupported(">".into()));
        assert!(matches!(err("-a=b"), SelectorError::InvalidKey { .. }));
        assert!(matches!(
            err("Example.com/a=b"),
            SelectorError::InvalidKey { .. }
        ));
        assert!(matches!(err("a/b/c"), SelectorError::InvalidKey { .. }));
        assert!(matches!(err("a/"), SelectorError::InvalidKey { .. }));
        assert!(matches!(
            err(&format!("{}=b", "k".repeat(64))),
            SelectorError::InvalidKey { .. }
        ));
        assert!(matches!(err("a=b-"), SelectorError::InvalidValue { .. }));
        assert!(matches!(
            err("a in (ok,no_)"),
            SelectorError::InvalidValue { .. }
        ));
        let message = err("a=b c").to_string();
        assert_eq!(
            message,
            "unable to parse requirement: found 'c', expected: ',' or 'end of string'"
        );
    }

    #[test]
    fn matches_labels_of_an_object() {
        let pod = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let bare = json!({"metadata": {}});
        let yes = |s: &str, v: &Value| LabelSelector::parse(s).unwrap().matches(v);
        assert!(yes("app=web", &pod));
        assert!(yes("app in (db,web),tier", &pod));
        assert!(!yes("app in (db,web),!tier", &pod));
        assert!(yes("app notin (db)", &bare));
        assert!(yes("app!=web", &bare));
        assert!(!yes("app", &bare));
        assert!(yes("", &bare));
    }
}
