//! The twin rules of reference §5, pure: key and value checks, what an
//! update from the edge (a mapper over MQTT) or from the cloud does to a
//! device's twins, the versions, and the cloud-sync conflict rule.
//!
//! - An edge update bumps the `edge` version of each value it changes.
//!   Unlike KubeEdge, a report that repeats the stored value changes
//!   nothing and is not sent to the cloud (KubeEdge re-sent every report,
//!   one of its known pain points).
//! - A cloud update must carry the version of each value it sets. It is
//!   refused for a value whose stored version is ahead on either side
//!   (`cloud` or `edge`); the edge's value is then sent back to the cloud,
//!   so the edge wins. Otherwise the request's version is taken.
//! - A twin is removed by `null` or `"metadata": {"type": "deleted"}`; the
//!   edge cannot remove a twin marked `optional: false`.
//!
//! An update is checked whole before anything is applied: one bad key or
//! value refuses all of it.

use std::collections::BTreeMap;

use proto::twin::{MsgTwin, TwinDoc, TwinValue, TwinVersion, ValueMetadata};

/// Longest twin or attribute key.
pub const MAX_KEY_LEN: usize = 128;
/// Longest twin value.
pub const MAX_VALUE_LEN: usize = 512;
/// The device states a device may report.
pub const STATES: &[&str] = &["online", "offline", "ok", "unknown", "unhealthy"];

/// Who made an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A device or mapper at the edge.
    Edge,
    /// The cloud (`twin/cloud_updated`, membership).
    Cloud,
}

/// Why an update was refused; the code is the one answered on MQTT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Malformed: a bad key, value, type or missing version (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such device (404).
    #[error("device {0} not found")]
    NotFound(String),
}

impl RuleError {
    /// The code answered on MQTT.
    pub fn code(&self) -> u16 {
        match self {
            RuleError::BadRequest(_) => 400,
            RuleError::NotFound(_) => 404,
        }
    }
}

/// What an update changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwinChange {
    /// Twins added or changed, as they are now (versions included).
    pub changed: BTreeMap<String, MsgTwin>,
    /// Twins removed.
    pub deleted: Vec<String>,
    /// Twins whose stored versions moved without a visible change (cloud
    /// syncs repeating a value); to be stored, not announced.
    pub versions_only: BTreeMap<String, MsgTwin>,
    /// Before and after of each change and removal.
    pub document: BTreeMap<String, TwinDoc>,
    /// Cloud side only: twins refused for a version conflict, as the edge
    /// holds them (sent back to the cloud).
    pub conflicts: BTreeMap<String, MsgTwin>,
}

impl TwinChange {
    /// Whether anything visible changed.
    pub fn is_visible(&self) -> bool {
        !self.changed.is_empty() || !self.deleted.is_empty()
    }

    /// Adds `other`'s changes to these (`other` came later).
    pub fn absorb(&mut self, other: TwinChange) {
        for name in other.changed.keys().chain(other.versions_only.keys()) {
            self.deleted.retain(|d| d != name);
        }
        self.changed.extend(other.changed);
        self.versions_only.extend(other.versions_only);
        self.deleted.extend(other.deleted);
        self.document.extend(other.document);
        self.conflicts.extend(other.conflicts);
    }

    /// Every twin to write: changed and version-only ones.
    pub fn to_store(&self) -> impl Iterator<Item = (&String, &MsgTwin)> {
        self.changed.iter().chain(self.versions_only.iter())
    }
}

/// Whether `key` is a valid twin or attribute name.
pub fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.chars().all(allowed_char)
}

/// Checks a value against the charset, the length and its declared type.
pub fn check_value(key: &str, value: &str, kind: Option<&str>) -> Result<(), RuleError> {
    if !(1..=MAX_VALUE_LEN).contains(&value.len()) || !value.chars().all(allowed_char) {
        return Err(RuleError::BadRequest(format!(
            "twin {key}: the value must be 1 to {MAX_VALUE_LEN} characters of a-z A-Z 0-9 - _ . , : / @ #"
        )));
    }
    let ok = match kind.map(str::to_ascii_lowercase).as_deref() {
        Some("int" | "integer") => value.parse::<i64>().is_ok(),
        Some("float" | "double") => value.parse::<f64>().is_ok(),
        Some("boolean" | "bool") => matches!(value, "true" | "false"),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(RuleError::BadRequest(format!(
            "twin {key}: {value:?} is not a valid {}",
            kind.unwrap_or_default()
        )))
    }
}

fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.,:/@#".contains(c)
}

/// Applies `request` to `twins` (a device's twins) as `side` at `now_ms`.
/// On error nothing is changed.
pub fn apply(
    twins: &mut BTreeMap<String, MsgTwin>,
    request: &BTreeMap<String, Option<MsgTwin>>,
    side: Side,
    now_ms: i64,
) -> Result<TwinChange, RuleError> {
    check(twins, request, side)?;
    let mut change = TwinChange::default();
    for (key, wanted) in request {
        match wanted {
            Some(w) if !w.is_delete_request() => {
                merge(twins, key, w, side, now_ms, &mut change);
            }
            _ => {
                if let Some(old) = twins.remove(key) {
                    change.deleted.push(key.clone());
                    change.document.insert(
                        key.clone(),
                        TwinDoc {
                            last: Some(old),
                            current: None,
                        },
                    );
                }
            }
        }
    }
    Ok(change)
}

/// Checks a whole request before any of it is applied.
fn check(
    twins: &BTreeMap<String, MsgTwin>,
    request: &BTreeMap<String, Option<MsgTwin>>,
    side: Side,
) -> Result<(), RuleError> {
    for (key, wanted) in request {
        if !valid_key(key) {
            return Err(RuleError::BadRequest(format!(
                "twin key {key:?} must be 1 to {MAX_KEY_LEN} characters of a-z A-Z 0-9 - _ . , : / @ #"
            )));
        }
        let existing = twins.get(key);
        let Some(w) = wanted.as_ref().filter(|w| !w.is_delete_request()) else {
            if side == Side::Edge && existing.is_some_and(|t| t.optional == Some(false)) {
                return Err(RuleError::BadRequest(format!(
                    "twin {key} is not optional and cannot be deleted from the edge"
                )));
            }
            continue;
        };
        let kind = w
            .metadata
            .as_ref()
            .or(existing.and_then(|t| t.metadata.as_ref()))
            .map(|m| m.kind.as_str());
        for (value, version) in [
            (&w.expected, &w.expected_version),
            (&w.actual, &w.actual_version),
        ] {
            let Some(value) = value else { continue };
            if let Some(v) = &value.value {
                check_value(key, v, kind)?;
            }
            if side == Side::Cloud && version.is_none() {
                return Err(RuleError::BadRequest(format!(
                    "twin {key}: a cloud update must carry the value's version"
                )));
            }
        }
    }
    Ok(())
}

/// One side of a twin: its value and version fields.
struct Part<'a> {
    value: &'a mut Option<TwinValue>,
    version: &'a mut Option<TwinVersion>,
}

/// Merges one requested twin into `twins`.
fn merge(
    twins: &mut BTreeMap<String, MsgTwin>,
    key: &str,
    wanted: &MsgTwin,
    side: Side,
    now_ms: i64,
    change: &mut TwinChange,
) {
    let last = twins.get(key).cloned();
    let mut twin = last.clone().unwrap_or_else(|| MsgTwin {
        optional: Some(wanted.optional.unwrap_or(true)),
        ..MsgTwin::default()
    });
    let mut visible = last.is_none();
    let mut versions_moved = false;
    let mut conflict = false;
    let requested = [
        (&wanted.expected, &wanted.expected_version),
        (&wanted.actual, &wanted.actual_version),
    ];
    let MsgTwin {
        expected,
        actual,
        expected_version,
        actual_version,
        ..
    } = &mut twin;
    let parts = [
        Part {
            value: expected,
            version: expected_version,
        },
        Part {
            value: actual,
            version: actual_version,
        },
    ];
    for (part, (req_value, req_version)) in parts.into_iter().zip(requested) {
        let Some(req_value) = req_value else { continue };
        let stored = part.value.as_ref().and_then(|v| v.value.clone());
        let differs = stored != req_value.value;
        match side {
            Side::Edge => {
                if differs {
                    part.version.get_or_insert_with(TwinVersion::default).edge += 1;
                }
            }
            Side::Cloud => {
                let req = req_version.unwrap_or_default();
                let have = part.version.unwrap_or_default();
                if have.cloud > req.cloud || have.edge > req.edge {
                    conflict = true;
                    continue;
                }
                if *part.version != Some(req) {
                    *part.version = Some(req);
                    versions_moved = true;
                }
            }
        }
        if differs {
            *part.value = req_value.value.as_ref().map(|v| TwinValue {
                value: Some(v.clone()),
                metadata: Some(ValueMetadata { timestamp: now_ms }),
            });
            visible = true;
        }
    }
    if let Some(optional) = wanted.optional.filter(|o| twin.optional != Some(*o)) {
        twin.optional = Some(optional);
        visible = true;
    }
    if let Some(meta) = wanted
        .metadata
        .as_ref()
        .filter(|m| !m.kind.is_empty() && twin.metadata.as_ref() != Some(*m))
    {
        twin.metadata = Some(meta.clone());
        visible = true;
    }
    if conflict {
        if let Some(held) = &last {
            change.conflicts.insert(key.to_owned(), held.clone());
        }
    }
    if visible {
        change.document.insert(
            key.to_owned(),
            TwinDoc {
                last,
                current: Some(twin.clone()),
            },
        );
        change.changed.insert(key.to_owned(), twin.clone());
        twins.insert(key.to_owned(), twin);
    } else if versions_moved {
        change.versions_only.insert(key.to_owned(), twin.clone());
        twins.insert(key.to_owned(), twin);
    }
}

/// Property → desired value for each twin whose desired value is set and
/// differs from the reported one.
pub fn delta(twins: &BTreeMap<String, MsgTwin>) -> BTreeMap<String, String> {
    twins
        .iter()
        .filter_map(|(k, t)| {
            let want = t.expected_value().filter(|v| !v.is_empty())?;
            (t.actual_value() != Some(want)).then(|| (k.clone(), want.to_owned()))
        })
        .collect()
}

/// Checks a reported device state.
pub fn check_state(state: &str) -> Result<(), RuleError> {
    if STATES.contains(&state) {
        Ok(())
    } else {
        Err(RuleError::BadRequest(format!(
            "state {state:?} must be one of {}",
            STATES.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;
    use proto::twin::TypeMetadata;

    fn value(v: &str) -> Option<TwinValue> {
        Some(TwinValue {
            value: Some(v.into()),
            metadata: None,
        })
    }

    fn actual(v: &str) -> Option<MsgTwin> {
        Some(MsgTwin {
            actual: value(v),
            ..MsgTwin::default()
        })
    }

    fn desired(v: &str, cloud: i64, edge: i64) -> Option<MsgTwin> {
        Some(MsgTwin {
            expected: value(v),
            expected_version: Some(TwinVersion { cloud, edge }),
            ..MsgTwin::default()
        })
    }

    fn req(items: &[(&str, Option<MsgTwin>)]) -> BTreeMap<String, Option<MsgTwin>> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    /// A cloud update of one twin, which must be accepted.
    fn cloud(
        twins: &mut BTreeMap<String, MsgTwin>,
        key: &str,
        twin: Option<MsgTwin>,
        now_ms: i64,
    ) -> TwinChange {
        apply(twins, &req(&[(key, twin)]), Side::Cloud, now_ms).unwrap()
    }

    #[test]
    fn an_edge_report_bumps_the_edge_version_once_per_change() {
        let mut twins = BTreeMap::new();
        let c = apply(&mut twins, &req(&[("temp", actual("20"))]), Side::Edge, 7).unwrap();
        let t = &c.changed["temp"];
        assert_eq!(t.actual_value(), Some("20"));
        assert_eq!(t.actual_version, Some(TwinVersion { cloud: 0, edge: 1 }));
        assert_eq!(t.actual.as_ref().unwrap().metadata.unwrap().timestamp, 7);
        assert_eq!(t.optional, Some(true));
        assert!(c.document["temp"].last.is_none());

        // The same value again changes nothing.
        let c = apply(&mut twins, &req(&[("temp", actual("20"))]), Side::Edge, 8).unwrap();
        assert!(!c.is_visible());
        let c = apply(&mut twins, &req(&[("temp", actual("21"))]), Side::Edge, 9).unwrap();
        assert_eq!(
            c.changed["temp"].actual_version,
            Some(TwinVersion { cloud: 0, edge: 2 })
        );
        assert_eq!(
            c.document["temp"].last.as_ref().unwrap().actual_value(),
            Some("20")
        );
    }

    #[test]
    fn a_cloud_update_takes_its_version_unless_the_edge_is_ahead() {
        let mut twins = BTreeMap::new();
        let c = cloud(&mut twins, "temp", desired("30", 1, 0), 1);
        assert_eq!(c.changed["temp"].expected_value(), Some("30"));
        assert_eq!(delta(&twins)["temp"], "30");

        // An older cloud version is a conflict; the edge's twin goes back.
        let c = cloud(&mut twins, "temp", desired("10", 0, 0), 2);
        assert!(!c.is_visible());
        assert_eq!(c.conflicts["temp"].expected_value(), Some("30"));
        assert_eq!(twins["temp"].expected_value(), Some("30"));

        // An edge change of the desired value puts the edge ahead.
        let edge_set = Some(MsgTwin {
            expected: value("35"),
            ..MsgTwin::default()
        });
        apply(&mut twins, &req(&[("temp", edge_set)]), Side::Edge, 3).unwrap();
        assert_eq!(
            twins["temp"].expected_version,
            Some(TwinVersion { cloud: 1, edge: 1 })
        );
        let c = cloud(&mut twins, "temp", desired("40", 2, 0), 4);
        assert_eq!(c.conflicts["temp"].expected_value(), Some("35"));
        // Once the cloud has seen the edge's version it may set the value.
        let c = cloud(&mut twins, "temp", desired("40", 2, 1), 5);
        assert!(c.conflicts.is_empty());
        assert_eq!(twins["temp"].expected_value(), Some("40"));
        assert_eq!(
            twins["temp"].expected_version,
            Some(TwinVersion { cloud: 2, edge: 1 })
        );

        // The same value with a newer version only moves the version.
        let c = cloud(&mut twins, "temp", desired("40", 3, 1), 6);
        assert!(!c.is_visible());
        assert_eq!(
            c.versions_only["temp"].expected_version,
            Some(TwinVersion { cloud: 3, edge: 1 })
        );
    }

    #[test]
    fn cloud_updates_need_versions_and_bad_requests_change_nothing() {
        let mut twins = BTreeMap::new();
        let unversioned = Some(MsgTwin {
            expected: value("1"),
            ..MsgTwin::default()
        });
        let err = apply(&mut twins, &req(&[("a", unversioned)]), Side::Cloud, 1).unwrap_err();
        assert_eq!(err.code(), 400);

        let err = apply(
            &mut twins,
            &req(&[("ok", actual("1")), ("bad key!", actual("2"))]),
            Side::Edge,
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("bad key!"), "{err}");
        assert!(twins.is_empty(), "nothing applied");

        for bad in ["", "has space", &"x".repeat(513)] {
            assert!(check_value("k", bad, None).is_err(), "{bad:?}");
        }
        let typed = Some(MsgTwin {
            actual: value("warm"),
            metadata: Some(TypeMetadata { kind: "int".into() }),
            ..MsgTwin::default()
        });
        let err = apply(&mut twins, &req(&[("t", typed)]), Side::Edge, 1).unwrap_err();
        assert!(err.to_string().contains("not a valid int"), "{err}");
        assert!(check_value("k", "-3.5", Some("float")).is_ok());
        assert!(check_value("k", "true", Some("boolean")).is_ok());
    }

    #[test]
    fn deletes_follow_the_optional_flag() {
        let mut twins = BTreeMap::new();
        cloud(&mut twins, "a", desired("1", 1, 0), 1);
        twins.get_mut("a").unwrap().optional = Some(false);
        let err = apply(&mut twins, &req(&[("a", None)]), Side::Edge, 2).unwrap_err();
        assert!(err.to_string().contains("not optional"), "{err}");
        let c = apply(&mut twins, &req(&[("a", None)]), Side::Cloud, 3).unwrap();
        assert_eq!(c.deleted, vec!["a".to_owned()]);
        assert!(c.document["a"].current.is_none());

        apply(&mut twins, &req(&[("b", actual("1"))]), Side::Edge, 4).unwrap();
        let marked = Some(MsgTwin {
            metadata: Some(TypeMetadata {
                kind: "deleted".into(),
            }),
            ..MsgTwin::default()
        });
        let c = apply(&mut twins, &req(&[("b", marked)]), Side::Edge, 5).unwrap();
        assert_eq!(c.deleted, vec!["b".to_owned()]);
        assert!(twins.is_empty());
    }

    #[test]
    fn delta_lists_desired_values_not_yet_reported() {
        let mut twins = BTreeMap::new();
        cloud(&mut twins, "a", desired("on", 1, 0), 1);
        apply(&mut twins, &req(&[("b", actual("5"))]), Side::Edge, 1).unwrap();
        assert_eq!(delta(&twins).len(), 1);
        apply(&mut twins, &req(&[("a", actual("on"))]), Side::Edge, 2).unwrap();
        assert!(delta(&twins).is_empty());
        assert!(check_state("online").is_ok());
        assert_eq!(check_state("asleep").unwrap_err().code(), 400);
    }
}
