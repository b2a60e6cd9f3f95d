//! The protobuf messages `protobuf.rs` reads, as field tables: number,
//! JSON name, type and cardinality, from the `generated.proto` of
//! `k8s.io/api/core/v1` and `k8s.io/apimachinery` (`ObjectMeta`, `Time`,
//! `IntOrString`, `DeleteOptions`). Only the kinds kubectl's typed commands
//! create among the served resources are here; field numbers never change,
//! and fields missing from a table are skipped.

/// A field's value type.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    Str,
    /// Base64 in JSON.
    Bytes,
    Bool,
    Int,
    Msg(&'static [F]),
    /// `metav1.Time`: RFC 3339.
    Time,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `map<string, string>`.
    StrMap,
    /// `map<string, bytes>`.
    BytesMap,
}

/// How many values a field has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    /// A plain Go field: its zero value is dropped.
    One,
    /// A Go pointer: present means set, even to a zero value.
    Opt,
    /// A list.
    Many,
}

/// A field: number, JSON name, type, cardinality.
pub(crate) type F = (u32, &'static str, Ty, Card);

use Card::{Many, One, Opt};
use Ty::{Bool, BytesMap, Int, IntOrString, Msg, Str, StrMap, Time};

const OWNER_REFERENCE: &[F] = &[
    (1, "kind", Str, One),
    (3, "name", Str, One),
    (4, "uid", Str, One),
    (5, "apiVersion", Str, One),
    (6, "controller", Bool, Opt),
    (7, "blockOwnerDeletion", Bool, Opt),
];
const OBJECT_META: &[F] = &[
    (1, "name", Str, One),
    (2, "generateName", Str, One),
    (3, "namespace", Str, One),
    (4, "selfLink", Str, One),
    (5, "uid", Str, One),
    (6, "resourceVersion", Str, One),
    (7, "generation", Int, One),
    (8, "creationTimestamp", Time, One),
    (9, "deletionTimestamp", Time, Opt),
    (10, "deletionGracePeriodSeconds", Int, Opt),
    (11, "labels", StrMap, Many),
    (12, "annotations", StrMap, Many),
    (13, "ownerReferences", Msg(OWNER_REFERENCE), Many),
    (14, "finalizers", Str, Many),
];
const NAMESPACE_CONDITION: &[F] = &[
    (1, "type", Str, One),
    (2, "status", Str, One),
    (4, "lastTransitionTime", Time, One),
    (5, "reason", Str, One),
    (6, "message", Str, One),
];
const NAMESPACE: &[F] = &[
    (1, "metadata", Msg(OBJECT_META), One),
    (2, "spec", Msg(&[(1, "finalizers", Str, Many)]), One),
    (
        3,
        "status",
        Msg(&[
            (1, "phase", Str, One),
            (2, "conditions", Msg(NAMESPACE_CONDITION), Many),
        ]),
        One,
    ),
];
const CONFIG_MAP: &[F] = &[
    (1, "metadata", Msg(OBJECT_META), One),
    (2, "data", StrMap, Many),
    (3, "binaryData", BytesMap, Many),
    (4, "immutable", Bool, Opt),
];
const SECRET: &[F] = &[
    (1, "metadata", Msg(OBJECT_META), One),
    (2, "data", BytesMap, Many),
    (3, "type", Str, One),
    (4, "stringData", StrMap, Many),
    (5, "immutable", Bool, Opt),
];
const OBJECT_REFERENCE: &[F] = &[
    (1, "kind", Str, One),
    (2, "namespace", Str, One),
    (3, "name", Str, One),
    (4, "uid", Str, One),
    (5, "apiVersion", Str, One),
    (6, "resourceVersion", Str, One),
    (7, "fieldPath", Str, One),
];
const SERVICE_ACCOUNT: &[F] = &[
    (1, "metadata", Msg(OBJECT_META), One),
    (2, "secrets", Msg(OBJECT_REFERENCE), Many),
    (3, "imagePullSecrets", Msg(&[(1, "name", Str, One)]), Many),
    (4, "automountServiceAccountToken", Bool, Opt),
];
const SERVICE_PORT: &[F] = &[
    (1, "name", Str, One),
    (2, "protocol", Str, One),
    (3, "port", Int, One),
    (4, "targetPort", IntOrString, One),
    (5, "nodePort", Int, One),
    (6, "appProtocol", Str, Opt),
];
const SERVICE_SPEC: &[F] = &[
    (1, "ports", Msg(SERVICE_PORT), Many),
    (2, "selector", StrMap, Many),
    (3, "clusterIP", Str, One),
    (4, "type", Str, One),
    (5, "externalIPs", Str, Many),
    (7, "sessionAffinity", Str, One),
    (8, "loadBalancerIP", Str, One),
    (9, "loadBalancerSourceRanges", Str, Many),
    (10, "externalName", Str, One),
    (11, "externalTrafficPolicy", Str, One),
    (12, "healthCheckNodePort", Int, One),
    (13, "publishNotReadyAddresses", Bool, One),
    (
        14,
        "sessionAffinityConfig",
        Msg(&[(1, "clientIP", Msg(&[(1, "timeoutSeconds", Int, Opt)]), Opt)]),
        Opt,
    ),
    (17, "ipFamilyPolicy", Str, Opt),
    (18, "clusterIPs", Str, Many),
    (19, "ipFamilies", Str, Many),
    (20, "allocateLoadBalancerNodePorts", Bool, Opt),
    (21, "loadBalancerClass", Str, Opt),
    (22, "internalTrafficPolicy", Str, Opt),
    (23, "trafficDistribution", Str, Opt),
];
const SERVICE: &[F] = &[
    (1, "metadata", Msg(OBJECT_META), One),
    (2, "spec", Msg(SERVICE_SPEC), One),
];
const DELETE_OPTIONS: &[F] = &[
    (1, "gracePeriodSeconds", Int, Opt),
    (
        2,
        "preconditions",
        Msg(&[(1, "uid", Str, Opt), (2, "resourceVersion", Str, Opt)]),
        Opt,
    ),
    (3, "orphanDependents", Bool, Opt),
    (4, "propagationPolicy", Str, Opt),
    (5, "dryRun", Str, Many),
];

/// The kinds read, by `apiVersion` and `kind`.
pub(crate) const KINDS: &[(&str, &str, &[F])] = &[
    ("v1", "Namespace", NAMESPACE),
    ("v1", "ConfigMap", CONFIG_MAP),
    ("v1", "Secret", SECRET),
    ("v1", "ServiceAccount", SERVICE_ACCOUNT),
    ("v1", "Service", SERVICE),
    ("v1", "DeleteOptions", DELETE_OPTIONS),
    ("meta.k8s.io/v1", "DeleteOptions", DELETE_OPTIONS),
];
