//! Resource strings: the `route.resource` of a message.
//!
//! KubeEdge names what a message is about with a `/`-separated string:
//!
//! - inside the cloud: `node/<nodeID>/<ns>/<type>[/<name>]`;
//! - on the wire and at the edge, without the node prefix (CloudHub strips it
//!   going down and adds it coming up): `<ns>/<type>[/<name>]`. Without a
//!   name it is a list. Cluster-scoped objects use the namespace `null`.
//! - device events: `device/<id>/twin/edge_updated`, `.../state/update`,
//!   where `<id>` is `<ns>/<name>` (or a bare name before v1.17);
//! - fixed strings: `node` (keepalive), `node/connection`, `membership`,
//!   `membership/detail`, `twin`, `k8s/ca.crt`.
//!
//! [`ResourcePath`] parses all of these without loss: formatting a parsed
//! path gives back the exact string, and parsing a formatted path gives back
//! the same path (its constructors refuse paths that would not). Bus
//! messages carry an MQTT topic as their resource; those are not resource
//! paths and should be kept as plain strings.

mod kind;

use std::fmt;
use std::str::FromStr;

use crate::error::ResourceError;

pub use kind::{
    DeviceEvent, ResourceKind, Special, DEVICE_PREFIX, DEVICE_UPDATED, K8S_CA, MEMBERSHIP,
    MEMBERSHIP_DETAIL, NODE, NODE_CONNECTION, NODE_PREFIX, NULL_NAMESPACE, SEP, STATE_UPDATE, TWIN,
    TWIN_CLOUD_UPDATED, TWIN_EDGE_UPDATED,
};

/// What a resource string names, without the cloud's node prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `<ns>/<type>[/<name>]`; no name means a list. The name is the rest of
    /// the string and may itself contain `/`.
    Object {
        /// The namespace, [`NULL_NAMESPACE`] for cluster-scoped objects.
        namespace: String,
        /// The type.
        kind: ResourceKind,
        /// The object's name; `None` for a list.
        name: Option<String>,
    },
    /// `device/<id>/<event>`.
    Device {
        /// `<ns>/<name>`, or a bare name (KubeEdge before v1.17).
        id: String,
        /// What happened.
        event: DeviceEvent,
    },
    /// One of the fixed strings.
    Special(Special),
}

/// A parsed resource string, cloud form (with a node) or edge form.
///
/// Invariant: `ResourcePath::parse(&p.to_string()) == Ok(p)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourcePath {
    node: Option<String>,
    target: Target,
}

static K8S_CA_KIND: ResourceKind = ResourceKind::K8sCa;

impl ResourcePath {
    /// Parses either form. A string of three or more segments starting with
    /// `node/` is always the cloud form.
    pub fn parse(s: &str) -> Result<Self, ResourceError> {
        if s.is_empty() {
            return Err(ResourceError::Empty);
        }
        if let Some(after) = s.strip_prefix("node/") {
            if let Some((id, rest)) = after.split_once(SEP) {
                if id.is_empty() {
                    return Err(empty(s, "node id"));
                }
                if rest.is_empty() {
                    return Err(empty(s, "resource after the node id"));
                }
                let target = parse_target(s, rest)?;
                return Ok(ResourcePath {
                    node: Some(id.to_owned()),
                    target,
                });
            }
        }
        Ok(ResourcePath {
            node: None,
            target: parse_target(s, s)?,
        })
    }

    /// Parses a cloud-form string; fails without a `node/<id>/` prefix.
    pub fn parse_cloud(s: &str) -> Result<Self, ResourceError> {
        let path = Self::parse(s)?;
        if path.node.is_none() {
            return Err(ResourceError::MissingNode {
                resource: s.to_owned(),
            });
        }
        Ok(path)
    }

    /// A path from its parts, checked to read back as itself.
    pub fn new(node: Option<String>, target: Target) -> Result<Self, ResourceError> {
        let path = ResourcePath { node, target };
        let text = path.to_string();
        if let Some(id) = &path.node {
            check_segment(&text, "node id", id)?;
        }
        match &path.target {
            Target::Object {
                namespace,
                kind,
                name,
            } => {
                check_segment(&text, "namespace", namespace)?;
                if *kind != ResourceKind::K8sCa {
                    check_segment(&text, "type", kind.as_str())?;
                }
                if name.as_deref() == Some("") {
                    return Err(empty(&text, "name"));
                }
            }
            Target::Device { id, .. } if id.is_empty() => return Err(empty(&text, "device id")),
            Target::Device { .. } | Target::Special(_) => {}
        }
        match ResourcePath::parse(&text) {
            Ok(back) if back == path => Ok(path),
            _ => Err(ResourceError::Ambiguous { resource: text }),
        }
    }

    /// An edge-form object or list path: `<ns>/<type>[/<name>]`.
    pub fn object(
        namespace: impl Into<String>,
        kind: ResourceKind,
        name: Option<String>,
    ) -> Result<Self, ResourceError> {
        Self::new(
            None,
            Target::Object {
                namespace: namespace.into(),
                kind,
                name,
            },
        )
    }

    /// A cluster-scoped object path: `null/<type>/<name>`.
    pub fn cluster(kind: ResourceKind, name: impl Into<String>) -> Result<Self, ResourceError> {
        Self::object(NULL_NAMESPACE, kind, Some(name.into()))
    }

    /// A device event path: `device/<id>/<event>`.
    pub fn device(id: impl Into<String>, event: DeviceEvent) -> Result<Self, ResourceError> {
        Self::new(
            None,
            Target::Device {
                id: id.into(),
                event,
            },
        )
    }

    /// A fixed resource.
    pub fn special(special: Special) -> Self {
        ResourcePath {
            node: None,
            target: Target::Special(special),
        }
    }

    /// The same target in cloud form for `node`.
    pub fn with_node(self, node: impl Into<String>) -> Result<Self, ResourceError> {
        Self::new(Some(node.into()), self.target)
    }

    /// The same target in edge form (as CloudHub sends it down).
    pub fn without_node(self) -> Result<Self, ResourceError> {
        Self::new(None, self.target)
    }

    /// The node of a cloud-form path.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// What the path names.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The namespace of an object path.
    pub fn namespace(&self) -> Option<&str> {
        match &self.target {
            Target::Object { namespace, .. } => Some(namespace),
            _ => None,
        }
    }

    /// The type of an object path (also [`ResourceKind::K8sCa`] for the
    /// bare `k8s/ca.crt`).
    pub fn kind(&self) -> Option<&ResourceKind> {
        match &self.target {
            Target::Object { kind, .. } => Some(kind),
            Target::Special(Special::K8sCa) => Some(&K8S_CA_KIND),
            _ => None,
        }
    }

    /// The name of an object path.
    pub fn name(&self) -> Option<&str> {
        match &self.target {
            Target::Object { name, .. } => name.as_deref(),
            _ => None,
        }
    }

    /// The device id of a device event path.
    pub fn device_id(&self) -> Option<&str> {
        match &self.target {
            Target::Device { id, .. } => Some(id),
            _ => None,
        }
    }

    /// True for an object path in the `null` namespace.
    pub fn is_cluster_scoped(&self) -> bool {
        self.namespace() == Some(NULL_NAMESPACE)
    }

    /// True for an object path without a name.
    pub fn is_list(&self) -> bool {
        matches!(&self.target, Target::Object { name: None, .. })
    }

    /// The edge form as a string: the target without the node prefix.
    pub fn edge_string(&self) -> String {
        TargetDisplay(&self.target).to_string()
    }
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(node) = &self.node {
            write!(f, "{NODE_PREFIX}{SEP}{node}{SEP}")?;
        }
        TargetDisplay(&self.target).fmt(f)
    }
}

struct TargetDisplay<'a>(&'a Target);

impl fmt::Display for TargetDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Target::Object {
                namespace,
                kind,
                name,
            } => {
                write!(f, "{namespace}{SEP}{kind}")?;
                if let Some(name) = name {
                    write!(f, "{SEP}{name}")?;
                }
                Ok(())
            }
            Target::Device { id, event } => {
                write!(f, "{DEVICE_PREFIX}{SEP}{id}{SEP}{}", event.as_str())
            }
            Target::Special(special) => f.write_str(special.as_str()),
        }
    }
}

impl FromStr for ResourcePath {
    type Err = ResourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourcePath::parse(s)
    }
}

/// Splits a cloud-form string into `(node id, rest)`; `None` when there is
/// no `node/<id>/` prefix followed by something.
pub fn split_node_prefix(resource: &str) -> Option<(&str, &str)> {
    let after = resource.strip_prefix("node/")?;
    let (id, rest) = after.split_once(SEP)?;
    (!id.is_empty() && !rest.is_empty()).then_some((id, rest))
}

/// The resource as CloudHub sends it down: without its `node/<id>/` prefix
/// (unchanged when it has none).
pub fn strip_node_prefix(resource: &str) -> &str {
    split_node_prefix(resource).map_or(resource, |(_, rest)| rest)
}

/// The resource as CloudHub passes it up: `node/<node>/<resource>`.
pub fn add_node_prefix(node: &str, resource: &str) -> String {
    format!("{NODE_PREFIX}{SEP}{node}{SEP}{resource}")
}

fn empty(resource: &str, part: &'static str) -> ResourceError {
    ResourceError::EmptySegment {
        resource: resource.to_owned(),
        part,
    }
}

fn check_segment(resource: &str, part: &'static str, value: &str) -> Result<(), ResourceError> {
    if value.is_empty() {
        return Err(empty(resource, part));
    }
    if value.contains(SEP) {
        return Err(ResourceError::SlashInSegment {
            part,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// Parses the part after any node prefix; `whole` is for error messages.
fn parse_target(whole: &str, t: &str) -> Result<Target, ResourceError> {
    if let Some(special) = Special::parse(t) {
        return Ok(Target::Special(special));
    }
    if let Some(device) = parse_device(t) {
        return Ok(device);
    }
    let Some((namespace, rest)) = t.split_once(SEP) else {
        return Err(ResourceError::MissingType {
            resource: whole.to_owned(),
        });
    };
    if namespace.is_empty() {
        return Err(empty(whole, "namespace"));
    }
    let (kind, name) = match rest.strip_prefix(K8S_CA) {
        Some("") => (ResourceKind::K8sCa, None),
        Some(tail) if tail.starts_with(SEP) => (ResourceKind::K8sCa, Some(&tail[1..])),
        _ => match rest.split_once(SEP) {
            Some((kind, name)) => (ResourceKind::parse(kind), Some(name)),
            None => (ResourceKind::parse(rest), None),
        },
    };
    if kind.as_str().is_empty() {
        return Err(empty(whole, "type"));
    }
    if name == Some("") {
        return Err(empty(whole, "name"));
    }
    Ok(Target::Object {
        namespace: namespace.to_owned(),
        kind,
        name: name.map(str::to_owned),
    })
}

/// `device/<id>/<twin|state>/<x>` or `device/<id>/updated`, with an id of
/// one or two segments.
fn parse_device(t: &str) -> Option<Target> {
    let rest = t.strip_prefix("device/")?;
    if let Some(id) = rest.strip_suffix("/updated") {
        let segments: Vec<&str> = id.split(SEP).collect();
        // `device/<type>/updated` is an object named `updated` when <type>
        // is a known type.
        let object_like = matches!(segments.as_slice(), [kind]
            if !matches!(ResourceKind::parse(kind), ResourceKind::Other(_)));
        let well_formed =
            segments.len() <= 2 && segments.iter().all(|s| !s.is_empty()) && !object_like;
        return well_formed.then(|| Target::Device {
            id: id.to_owned(),
            event: DeviceEvent::Updated,
        });
    }
    let (head, last) = rest.rsplit_once(SEP)?;
    let (id, group) = head.rsplit_once(SEP)?;
    let id_segments = id.split(SEP).count();
    let well_formed = matches!(group, "twin" | "state")
        && !last.is_empty()
        && id_segments <= 2
        && id.split(SEP).all(|s| !s.is_empty());
    well_formed.then(|| Target::Device {
        id: id.to_owned(),
        event: DeviceEvent::parse(&rest[id.len() + 1..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ResourcePath {
        ResourcePath::parse(s).unwrap()
    }

    #[test]
    fn cloud_form_object() {
        let r = p("node/edge-1/default/configmap/cm2");
        assert_eq!(r.node(), Some("edge-1"));
        assert_eq!(r.namespace(), Some("default"));
        assert_eq!(r.kind(), Some(&ResourceKind::ConfigMap));
        assert_eq!(r.name(), Some("cm2"));
        assert_eq!(r.edge_string(), "default/configmap/cm2");
        assert_eq!(r.to_string(), "node/edge-1/default/configmap/cm2");
    }

    #[test]
    fn edge_form_list_and_cluster_scoped() {
        let list = p("default/podstatus");
        assert!(list.is_list());
        assert_eq!(list.node(), None);
        let node = p("null/node/edge-1");
        assert!(node.is_cluster_scoped());
        assert_eq!(
            ResourcePath::cluster(ResourceKind::Node, "edge-1"),
            Ok(node)
        );
    }

    #[test]
    fn name_may_contain_slashes() {
        let r = p("default/secret/a/b/c");
        assert_eq!(r.name(), Some("a/b/c"));
        assert_eq!(r.to_string(), "default/secret/a/b/c");
    }

    #[test]
    fn k8s_ca_has_a_slash_in_its_type() {
        let bare = p("k8s/ca.crt");
        assert_eq!(bare.target(), &Target::Special(Special::K8sCa));
        assert_eq!(bare.kind(), Some(&ResourceKind::K8sCa));
        let cloud = p("node/edge-1/k8s/ca.crt");
        assert_eq!(cloud.node(), Some("edge-1"));
        assert_eq!(cloud.kind(), Some(&ResourceKind::K8sCa));
        let namespaced = p("default/k8s/ca.crt");
        assert_eq!(namespaced.kind(), Some(&ResourceKind::K8sCa));
        assert_eq!(namespaced.name(), None);
        assert_eq!(
            p("default/k8s/other").kind(),
            Some(&ResourceKind::Other("k8s".into()))
        );
    }

    #[test]
    fn device_events() {
        let r = p("device/default/dev1/twin/edge_updated");
        assert_eq!(r.device_id(), Some("default/dev1"));
        assert_eq!(
            r.target(),
            &Target::Device {
                id: "default/dev1".into(),
                event: DeviceEvent::TwinEdgeUpdated
            }
        );
        let legacy = p("device/dev1/state/update");
        assert_eq!(legacy.device_id(), Some("dev1"));
        let cloud = p("node/edge-1/device/ns/d/twin/cloud_updated");
        assert_eq!(cloud.node(), Some("edge-1"));
        assert_eq!(cloud.device_id(), Some("ns/d"));
        let other = p("device/ns/d/twin/whatever");
        assert_eq!(
            other.target(),
            &Target::Device {
                id: "ns/d".into(),
                event: DeviceEvent::Other("twin/whatever".into())
            }
        );
        // Not an event tail: an ordinary object in namespace `device`.
        assert_eq!(p("device/pod/x").kind(), Some(&ResourceKind::Pod));
        assert_eq!(p("device/pod/updated").kind(), Some(&ResourceKind::Pod));
        let updated = p("device/ns/d/updated");
        assert_eq!(
            updated.target(),
            &Target::Device {
                id: "ns/d".into(),
                event: DeviceEvent::Updated
            }
        );
        assert_eq!(updated.to_string(), "device/ns/d/updated");
        assert_eq!(p("device/dev1/updated").device_id(), Some("dev1"));
    }

    #[test]
    fn specials() {
        for sp in Special::ALL {
            assert_eq!(p(sp.as_str()).target(), &Target::Special(sp));
        }
        assert_eq!(p("node/edge-1/membership/detail").node(), Some("edge-1"));
    }

    #[test]
    fn typed_errors() {
        assert_eq!(ResourcePath::parse(""), Err(ResourceError::Empty));
        assert!(matches!(
            ResourcePath::parse("default"),
            Err(ResourceError::MissingType { .. })
        ));
        assert!(matches!(
            ResourcePath::parse("default//x"),
            Err(ResourceError::EmptySegment { part: "type", .. })
        ));
        assert!(matches!(
            ResourcePath::parse("default/pod/"),
            Err(ResourceError::EmptySegment { part: "name", .. })
        ));
        assert!(matches!(
            ResourcePath::parse("node//default/pod"),
            Err(ResourceError::EmptySegment {
                part: "node id",
                ..
            })
        ));
        assert!(matches!(
            ResourcePath::parse_cloud("default/pod/a"),
            Err(ResourceError::MissingNode { .. })
        ));
        assert!(matches!(
            ResourcePath::object("a/b", ResourceKind::Pod, None),
            Err(ResourceError::SlashInSegment { .. })
        ));
        // `node/pod/a` would read back as the cloud form of node `pod`.
        assert!(matches!(
            ResourcePath::object("node", ResourceKind::Pod, Some("a".into())),
            Err(ResourceError::Ambiguous { .. })
        ));
        assert!(matches!(
            ResourcePath::object("ns", ResourceKind::Other("pod".into()), None),
            Err(ResourceError::Ambiguous { .. })
        ));
    }

    #[test]
    fn node_prefix_helpers() {
        assert_eq!(
            split_node_prefix("node/edge-1/default/pod/a"),
            Some(("edge-1", "default/pod/a"))
        );
        assert_eq!(strip_node_prefix("node/edge-1/membership"), "membership");
        assert_eq!(strip_node_prefix("node/connection"), "node/connection");
        assert_eq!(strip_node_prefix("default/pod/a"), "default/pod/a");
        assert_eq!(
            add_node_prefix("edge-1", "k8s/ca.crt"),
            "node/edge-1/k8s/ca.crt"
        );
        let edge = p("default/pod/a");
        let cloud = edge.clone().with_node("edge-1").unwrap();
        assert_eq!(cloud.to_string(), "node/edge-1/default/pod/a");
        assert_eq!(cloud.without_node(), Ok(edge));
    }

    #[test]
    fn known_kinds_round_trip() {
        for kind in ResourceKind::KNOWN {
            assert_eq!(&ResourceKind::parse(kind.as_str()), kind);
            let path = ResourcePath::object("ns", kind.clone(), Some("x".into())).unwrap();
            assert_eq!(path.kind(), Some(kind));
        }
    }
}
