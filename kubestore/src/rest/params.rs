//! What a read request asks for beyond its path: the query parameters of
//! get, list and watch ([`Params`]) and the representation its `Accept`
//! header allows ([`Output`]: the object, a `meta.k8s.io` Table, or
//! PartialObjectMetadata).
//!
//! `limit` and `continue` are accepted and ignored: a server may return a
//! whole list without a continue token, and clients must cope (the API
//! conventions allow it). `resourceVersion` on get and list is ignored too:
//! they always read the latest state, which is never older than asked.

use std::time::Duration;

use serde::Deserialize;

use super::error::{RestError, Result};
use crate::selector::Selectors;

/// The query parameters of a read, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    label_selector: Option<String>,
    field_selector: Option<String>,
    watch: Option<String>,
    resource_version: Option<String>,
    timeout_seconds: Option<String>,
    allow_watch_bookmarks: Option<String>,
    send_initial_events: Option<String>,
    include_object: Option<String>,
}

/// Which object a Table row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum IncludeObject {
    /// No object.
    None,
    /// PartialObjectMetadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// `resourceVersion` absent or `0`: the current state, then changes.
    Start,
    /// Changes after this revision.
    Revision(u64),
}

/// The query parameters of a read, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Params {
    pub selectors: Selectors,
    pub watch: bool,
    pub since: Since,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub include_object: IncludeObject,
}

impl Params {
    /// Reads a query string.
    pub(crate) fn parse(query: &str) -> Result<Params> {
        let raw: Raw = serde_urlencoded_query(query)?;
        let selectors =
            Selectors::parse(raw.label_selector.as_deref(), raw.field_selector.as_deref())?;
        let since = match raw.resource_version.as_deref() {
            None | Some("" | "0") => Since::Start,
            Some(rv) => Since::Revision(rv.parse().map_err(|_| {
                RestError::BadRequest(format!("invalid resource version \"{rv}\""))
            })?),
        };
        let timeout = raw
            .timeout_seconds
            .as_deref()
            .map(|t| {
                t.parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| RestError::BadRequest(format!("invalid timeoutSeconds \"{t}\"")))
            })
            .transpose()?;
        let include_object = match raw.include_object.as_deref() {
            None | Some("") | Some("Metadata") => IncludeObject::Metadata,
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            Some(other) => {
                return Err(RestError::BadRequest(format!(
                    "includeObject \"{other}\" must be one of None, Metadata, Object"
                )))
            }
        };
        Ok(Params {
            selectors,
            watch: flag(raw.watch.as_deref()),
            since,
            timeout,
            bookmarks: flag(raw.allow_watch_bookmarks.as_deref()),
            send_initial_events: raw.send_initial_events.as_deref().map(|v| flag(Some(v))),
            include_object,
        })
    }
}

/// actix's query decoding, with its error as a 400.
fn serde_urlencoded_query<T: for<'de> Deserialize<'de>>(query: &str) -> Result<T> {
    actix_web::web::Query::<T>::from_query(query)
        .map(actix_web::web::Query::into_inner)
        .map_err(|err| RestError::BadRequest(format!("invalid query: {err}")))
}

/// A boolean query parameter as Kubernetes reads it: absent, `0`, `f`,
/// `false`, `n` and `no` are false, anything else (even empty) is true.
fn flag(value: Option<&str>) -> bool {
    match value {
        None => false,
        Some(v) => {
            !(v == "0"
                || ["f", "false", "n", "no"]
                    .iter()
                    .any(|f| v.eq_ignore_ascii_case(f)))
        }
    }
}

/// The `meta.k8s.io` version a Table or PartialObjectMetadata is asked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaVersion {
    V1,
    V1beta1,
}

impl MetaVersion {
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`.
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// The representation of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// The objects, or their list.
    Json,
    /// A `Table` (kubectl get).
    Table(MetaVersion),
    /// `PartialObjectMetadata` or its list (metadata informers).
    Metadata(MetaVersion),
}

impl Output {
    /// The first media range of `accept` this server can answer, in the
    /// client's order; JSON when there is no header.
    pub(crate) fn negotiate(accept: Option<&str>) -> Result<Output> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Ok(Output::Json);
        };
        accept
            .split(',')
            .find_map(media_range)
            .ok_or(RestError::NotAcceptable)
    }
}

/// One media range of an `Accept` header, if this server can answer it.
fn media_range(range: &str) -> Option<Output> {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next()?.to_ascii_lowercase();
    if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
        return None;
    }
    let (mut as_, mut group, mut version) = (None, None, None);
    for param in parts {
        let (key, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        match key.trim() {
            "as" => as_ = Some(value),
            "g" => group = Some(value),
            "v" => version = Some(value),
            "q" if value.parse::<f32>().is_ok_and(|q| q <= 0.0) => return None,
            _ => {}
        }
    }
    let Some(as_) = as_ else {
        return Some(Output::Json);
    };
    if group != Some("meta.k8s.io") {
        return None;
    }
    let version = match version {
        Some("v1") => MetaVersion::V1,
        Some("v1beta1") => MetaVersion::V1beta1,
        _ => return None,
    };
    match as_ {
        "Table" => Some(Output::Table(version)),
        "PartialObjectMetadata" | "PartialObjectMetadataList" => Some(Output::Metadata(version)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_GET: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn negotiates_what_clients_send() {
        assert_eq!(Output::negotiate(None).unwrap(), Output::Json);
        assert_eq!(Output::negotiate(Some("")).unwrap(), Output::Json);
        assert_eq!(Output::negotiate(Some("*/*")).unwrap(), Output::Json);
        assert_eq!(
            Output::negotiate(Some(KUBECTL_GET)).unwrap(),
            Output::Table(MetaVersion::V1)
        );
        assert_eq!(
            Output::negotiate(Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io")).unwrap(),
            Output::Table(MetaVersion::V1beta1)
        );
        assert_eq!(
            Output::negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            ))
            .unwrap(),
            Output::Metadata(MetaVersion::V1)
        );
        assert_eq!(
            Output::negotiate(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            ))
            .unwrap(),
            Output::Json
        );
        assert_eq!(
            Output::negotiate(Some(
                "application/json;as=Table;v=v2;g=meta.k8s.io, application/json;q=0, */*"
            ))
            .unwrap(),
            Output::Json
        );
        assert!(matches!(
            Output::negotiate(Some("application/yaml")),
            Err(RestError::NotAcceptable)
        ));
        assert!(matches!(
            Output::negotiate(Some(
                "application/json;as=APIGroupDiscoveryList;g=apidiscovery.k8s.io;v=v2"
            )),
            Err(RestError::NotAcceptable)
        ));
    }

    #[test]
    fn reads_query_parameters() {
        let p = Params::parse("").unwrap();
        assert!(!p.watch && p.selectors.is_empty() && p.since == Since::Start);
        assert_eq!(p.include_object, IncludeObject::Metadata);
        let p = Params::parse(
            "watch=1&resourceVersion=42&timeoutSeconds=5&allowWatchBookmarks=true\
             &labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn1&limit=500&includeObject=Object",
        )
        .unwrap();
        assert!(p.watch && p.bookmarks);
        assert_eq!(p.since, Since::Revision(42));
        assert_eq!(p.timeout, Some(Duration::from_secs(5)));
        assert_eq!(p.selectors.fields.requirements()[0].value, "n1");
        assert_eq!(p.include_object, IncludeObject::Object);
        assert!(Params::parse("watch=").unwrap().watch);
        assert!(!Params::parse("watch=false").unwrap().watch);
        assert!(!Params::parse("watch=0").unwrap().watch);
        assert_eq!(
            Params::parse("resourceVersion=0").unwrap().since,
            Since::Start
        );
        for bad in [
            "resourceVersion=abc",
            "timeoutSeconds=-1",
            "labelSelector=a%20b",
            "fieldSelector=nope",
            "includeObject=All",
        ] {
            let err = Params::parse(bad).unwrap_err();
            assert_eq!(
                err.code(),
                actix_web::http::StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
