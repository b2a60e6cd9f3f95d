//! The vocabulary of resource strings: separators, fixed resources, the
//! `<type>` segment ([`ResourceKind`]), and device events ([`DeviceEvent`]).

use std::fmt;

/// The separator between segments.
pub const SEP: char = '/';
/// The first segment of a cloud-form resource: `node/<id>/...`.
pub const NODE_PREFIX: &str = "node";
/// The namespace cluster-scoped objects use.
pub const NULL_NAMESPACE: &str = "null";
/// The keepalive resource.
pub const NODE: &str = "node";
/// The edge's connect/disconnect broadcast.
pub const NODE_CONNECTION: &str = "node/connection";
/// Device membership updates (cloud → edge).
pub const MEMBERSHIP: &str = "membership";
/// The edge's request for its full device membership.
pub const MEMBERSHIP_DETAIL: &str = "membership/detail";
/// The resource of DeviceController's acks to twin reports.
pub const TWIN: &str = "twin";
/// The Kubernetes CA query.
pub const K8S_CA: &str = "k8s/ca.crt";
/// The first segment of device event resources: `device/<id>/<event>`.
pub const DEVICE_PREFIX: &str = "device";
/// Device event: a twin changed at the edge (edge → cloud).
pub const TWIN_EDGE_UPDATED: &str = "twin/edge_updated";
/// Device event: a twin changed in the cloud (cloud → edge).
pub const TWIN_CLOUD_UPDATED: &str = "twin/cloud_updated";
/// Device event: a device's state changed (edge → cloud).
pub const STATE_UPDATE: &str = "state/update";
/// Device event: a device's attributes changed in the cloud (cloud → edge).
pub const DEVICE_UPDATED: &str = "updated";

macro_rules! kinds {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// The `<type>` segment of a resource string.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ResourceKind {
            $( $(#[$doc])* $variant, )*
            /// Any type this version does not name; kept verbatim.
            Other(String),
        }

        impl ResourceKind {
            /// Every named type, in declaration order.
            pub const KNOWN: &'static [ResourceKind] = &[$( ResourceKind::$variant, )*];

            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( ResourceKind::$variant => $text, )*
                    ResourceKind::Other(s) => s.as_str(),
                }
            }

            /// Parses a wire spelling; unknown strings become [`ResourceKind::Other`].
            pub fn parse(s: &str) -> Self {
                match s {
                    $( $text => ResourceKind::$variant, )*
                    other => ResourceKind::Other(other.to_owned()),
                }
            }
        }
    };
}

kinds! {
    /// A pod.
    Pod => "pod",
    /// A list of pods.
    PodList => "podlist",
    /// Pod status (a list without a name).
    PodStatus => "podstatus",
    /// A pod status patch.
    PodPatch => "podpatch",
    /// A node.
    Node => "node",
    /// Node status.
    NodeStatus => "nodestatus",
    /// A node status patch.
    NodePatch => "nodepatch",
    /// A configmap.
    ConfigMap => "configmap",
    /// A secret.
    Secret => "secret",
    /// A service account token request.
    ServiceAccountToken => "serviceaccounttoken",
    /// A lease.
    Lease => "lease",
    /// An event.
    Event => "event",
    /// A router rule.
    Rule => "rule",
    /// A router rule endpoint.
    RuleEndpoint => "ruleendpoint",
    /// A router rule's status.
    RuleStatus => "rulestatus",
    /// A certificate signing request.
    CertificateSigningRequest => "certificatesigningrequest",
    /// The Kubernetes CA (its spelling contains a `/`).
    K8sCa => "k8s/ca.crt",
    /// A device.
    Device => "device",
    /// A device model.
    DeviceModel => "devicemodel",
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fixed resource string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// [`NODE`]: the keepalive resource.
    Node,
    /// [`NODE_CONNECTION`].
    NodeConnection,
    /// [`MEMBERSHIP`].
    Membership,
    /// [`MEMBERSHIP_DETAIL`].
    MembershipDetail,
    /// [`TWIN`].
    Twin,
    /// [`K8S_CA`].
    K8sCa,
}

impl Special {
    /// Every special resource.
    pub const ALL: [Special; 6] = [
        Special::Node,
        Special::NodeConnection,
        Special::Membership,
        Special::MembershipDetail,
        Special::Twin,
        Special::K8sCa,
    ];

    /// The resource string.
    pub fn as_str(self) -> &'static str {
        match self {
            Special::Node => NODE,
            Special::NodeConnection => NODE_CONNECTION,
            Special::Membership => MEMBERSHIP,
            Special::MembershipDetail => MEMBERSHIP_DETAIL,
            Special::Twin => TWIN,
            Special::K8sCa => K8S_CA,
        }
    }

    pub(super) fn parse(s: &str) -> Option<Special> {
        Special::ALL.into_iter().find(|sp| sp.as_str() == s)
    }
}

/// The event part of a device resource `device/<id>/<event>`: `updated`,
/// or two segments, the first `twin` or `state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceEvent {
    /// [`TWIN_EDGE_UPDATED`].
    TwinEdgeUpdated,
    /// [`TWIN_CLOUD_UPDATED`].
    TwinCloudUpdated,
    /// [`STATE_UPDATE`].
    StateUpdate,
    /// [`DEVICE_UPDATED`].
    Updated,
    /// Another `twin/<x>` or `state/<x>` event; kept verbatim.
    Other(String),
}

impl DeviceEvent {
    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            DeviceEvent::TwinEdgeUpdated => TWIN_EDGE_UPDATED,
            DeviceEvent::TwinCloudUpdated => TWIN_CLOUD_UPDATED,
            DeviceEvent::StateUpdate => STATE_UPDATE,
            DeviceEvent::Updated => DEVICE_UPDATED,
            DeviceEvent::Other(s) => s,
        }
    }

    /// Parses a wire spelling; unknown strings become [`DeviceEvent::Other`].
    pub fn parse(s: &str) -> Self {
        match s {
            TWIN_EDGE_UPDATED => DeviceEvent::TwinEdgeUpdated,
            TWIN_CLOUD_UPDATED => DeviceEvent::TwinCloudUpdated,
            STATE_UPDATE => DeviceEvent::StateUpdate,
            DEVICE_UPDATED => DeviceEvent::Updated,
            other => DeviceEvent::Other(other.to_owned()),
        }
    }
}
