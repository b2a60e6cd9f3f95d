//! The rules, each allowed and refused, over a table standing in for the
//! reflectors; and the authorizer's debug mode and metric.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proto::{Message, Operation};
use serde_json::{json, Value};

use super::error::Refusal;
use super::rules::check;
use super::view::{PodFacts, View};
use super::NodeAuthorizer;
use crate::cloudhub::Authorizer;

const ME: &str = "edge-b";
const OTHER: &str = "edge-a";

/// Two nodes: pods `ns/pod-a` (edge-a, uses `cm-a`, `secret-a`, account
/// `sa-a`) and `ns/pod-b` (edge-b, uses `cm-b`, `secret-b`, `sa-b`), an
/// unbound pod `ns/pending`, devices `ns/dev-a`, `ns/dev-b`, `default/old`.
struct Table {
    pods: BTreeMap<(String, String), PodFacts>,
    configmaps: BTreeSet<(String, String, String)>,
    secrets: BTreeSet<(String, String, String)>,
    devices: BTreeMap<(String, String), String>,
}

fn key(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

fn used(node: &str, ns: &str, name: &str) -> (String, String, String) {
    (node.to_owned(), ns.to_owned(), name.to_owned())
}

impl Table {
    fn new() -> Self {
        let pod = |node: Option<&str>, uid: &str, sa: &str| PodFacts {
            node: node.map(str::to_owned),
            uid: uid.to_owned(),
            service_account: sa.to_owned(),
        };
        Table {
            pods: BTreeMap::from([
                (key("ns", "pod-a"), pod(Some(OTHER), "uid-a", "sa-a")),
                (key("ns", "pod-b"), pod(Some(ME), "uid-b", "sa-b")),
                (key("ns", "pending"), pod(None, "uid-p", "default")),
            ]),
            configmaps: BTreeSet::from([used(OTHER, "ns", "cm-a"), used(ME, "ns", "cm-b")]),
            secrets: BTreeSet::from([used(OTHER, "ns", "secret-a"), used(ME, "ns", "secret-b")]),
            devices: BTreeMap::from([
                (key("ns", "dev-a"), OTHER.to_owned()),
                (key("ns", "dev-b"), ME.to_owned()),
                (key("default", "old"), ME.to_owned()),
            ]),
        }
    }
}

impl View for Table {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodFacts> {
        self.pods.get(&key(namespace, name)).cloned()
    }

    fn configmap_used(&self, node: &str, namespace: &str, name: &str) -> bool {
        self.configmaps.contains(&used(node, namespace, name))
    }

    fn secret_used(&self, node: &str, namespace: &str, name: &str) -> bool {
        self.secrets.contains(&used(node, namespace, name))
    }

    fn service_account_used(&self, node: &str, namespace: &str, name: &str) -> bool {
        self.pods.iter().any(|((ns, _), pod)| {
            ns == namespace && pod.node.as_deref() == Some(node) && pod.service_account == name
        })
    }

    fn device_node(&self, namespace: &str, name: &str) -> Option<String> {
        self.devices.get(&key(namespace, name)).cloned()
    }
}

fn msg(op: Operation, resource: &str, content: Value) -> Message {
    Message::new("edged", "resource", op, resource).with_content(content)
}

fn run(m: &Message) -> Result<(), Refusal> {
    check(&Table::new(), ME, m)
}

#[track_caller]
fn allowed(op: Operation, resource: &str, content: Value) {
    let m = msg(op, resource, content);
    assert_eq!(run(&m), Ok(()), "{} {resource}", m.operation().as_str());
}

#[track_caller]
fn refused(op: Operation, resource: &str, content: Value) -> Refusal {
    let m = msg(op, resource, content);
    match run(&m) {
        Err(refusal) => refusal,
        Ok(()) => panic!("{} {resource} was allowed", m.operation().as_str()),
    }
}

#[test]
fn own_node_status_and_patch_only() {
    allowed(
        Operation::Insert,
        "default/node/edge-b",
        json!({"metadata": {"name": ME}}),
    );
    allowed(Operation::Query, "null/node/edge-b", Value::Null);
    allowed(
        Operation::Update,
        "default/nodestatus/edge-b",
        json!({"Status": {}}),
    );
    allowed(
        Operation::Patch,
        "default/nodepatch/edge-b",
        json!("{\"status\":{}}"),
    );
    assert!(matches!(
        refused(Operation::Update, "default/nodestatus/edge-a", json!({})),
        Refusal::NotOwn { .. }
    ));
    refused(Operation::Patch, "default/nodepatch/edge-a", json!("{}"));
    refused(Operation::Query, "null/node/edge-a", Value::Null);
    // Registering itself with another node's object in the content.
    assert!(matches!(
        refused(
            Operation::Insert,
            "default/node/edge-b",
            json!({"metadata": {"name": OTHER}})
        ),
        Refusal::Content { .. }
    ));
    assert!(matches!(
        refused(Operation::Delete, "default/node/edge-b", Value::Null),
        Refusal::Operation { .. }
    ));
    assert!(matches!(
        refused(Operation::Query, "null/node", Value::Null),
        Refusal::List { .. }
    ));
}

#[test]
fn own_lease_only() {
    let lease = |name: &str| json!({"metadata": {"name": name, "namespace": "kube-node-lease"}});
    allowed(Operation::Update, "kube-node-lease/lease/edge-b", lease(ME));
    allowed(
        Operation::Query,
        "kube-node-lease/lease/edge-b",
        Value::Null,
    );
    assert!(matches!(
        refused(
            Operation::Update,
            "kube-node-lease/lease/edge-a",
            lease(OTHER)
        ),
        Refusal::NotOwn { .. }
    ));
    refused(Operation::Update, "default/lease/edge-b", lease(ME));
    // EdgeController writes the content's Lease: it must be the node's.
    assert!(matches!(
        refused(
            Operation::Insert,
            "kube-node-lease/lease/edge-b",
            lease(OTHER)
        ),
        Refusal::Content { .. }
    ));
}

#[test]
fn pods_bound_to_the_node() {
    allowed(Operation::Query, "ns/pod/pod-b", Value::Null);
    allowed(Operation::Delete, "ns/pod/pod-b", json!("uid-b"));
    allowed(Operation::Patch, "ns/podpatch/pod-b", json!("{}"));
    for (op, resource) in [
        (Operation::Query, "ns/pod/pod-a"),
        (Operation::Delete, "ns/pod/pod-a"),
        (Operation::Patch, "ns/podpatch/pod-a"),
        (Operation::Query, "ns/pod/pending"),
        (Operation::Query, "ns/pod/missing"),
    ] {
        assert!(matches!(
            refused(op, resource, Value::Null),
            Refusal::PodNotBound { .. }
        ));
    }
    assert!(matches!(
        refused(Operation::Update, "ns/pod/pod-b", json!({})),
        Refusal::Operation { .. }
    ));
    refused(Operation::Query, "ns/pod", Value::Null);
}

#[test]
fn pod_status_checks_the_names_in_the_content() {
    let status = |name: &str| json!({"UID": "u", "Name": name, "Status": {}});
    allowed(Operation::Update, "ns/podstatus/pod-b", status("pod-b"));
    allowed(Operation::Update, "ns/podstatus", json!([status("pod-b")]));
    refused(Operation::Update, "ns/podstatus/pod-a", status("pod-a"));
    // EdgeController updates the pod the content names.
    refused(Operation::Update, "ns/podstatus/pod-b", status("pod-a"));
    refused(
        Operation::Update,
        "ns/podstatus",
        json!([status("pod-b"), status("pod-a")]),
    );
    assert!(matches!(
        refused(Operation::Update, "ns/podstatus", json!([])),
        Refusal::Content { .. }
    ));
    refused(Operation::Insert, "ns/podstatus/pod-b", status("pod-b"));
}

#[test]
fn mirror_pods_only() {
    let mirror = json!({
        "metadata": {"name": "static-web-edge-b", "namespace": "ns",
                     "annotations": {"kubernetes.io/config.mirror": "h"}},
        "spec": {"nodeName": ME, "containers": [{"name": "c", "image": "i"}]}
    });
    allowed(
        Operation::Insert,
        "ns/pod/static-web-edge-b",
        mirror.clone(),
    );
    let mut elsewhere = mirror.clone();
    elsewhere["spec"]["nodeName"] = json!(OTHER);
    assert!(matches!(
        refused(Operation::Insert, "ns/pod/static-web-edge-b", elsewhere),
        Refusal::NotMirrorPod { .. }
    ));
    let mut with_secret = mirror;
    with_secret["spec"]["volumes"] = json!([{"name": "v", "secret": {"secretName": "secret-a"}}]);
    refused(Operation::Insert, "ns/pod/static-web-edge-b", with_secret);
}

#[test]
fn configmaps_and_secrets_its_pods_use() {
    allowed(Operation::Query, "ns/configmap/cm-b", Value::Null);
    allowed(Operation::Query, "ns/secret/secret-b", Value::Null);
    for resource in [
        "ns/configmap/cm-a",
        "ns/secret/secret-a",
        "other/secret/secret-b",
    ] {
        assert!(matches!(
            refused(Operation::Query, resource, Value::Null),
            Refusal::NotReferenced { .. }
        ));
    }
    assert!(matches!(
        refused(Operation::Query, "ns/secret", Value::Null),
        Refusal::List { .. }
    ));
    assert!(matches!(
        refused(Operation::Update, "ns/configmap/cm-b", json!({})),
        Refusal::Operation { .. }
    ));
}

#[test]
fn service_account_tokens_of_its_pods() {
    let bound = |pod: &str, uid: &str| json!({"spec": {"audiences": ["x"], "boundObjectRef": {"kind": "Pod", "name": pod, "uid": uid}}});
    allowed(
        Operation::Query,
        "ns/serviceaccounttoken/sa-b",
        bound("pod-b", "uid-b"),
    );
    allowed(
        Operation::Query,
        "ns/serviceaccounttoken/sa-b",
        json!({"spec": {}}),
    );
    assert!(matches!(
        refused(
            Operation::Query,
            "ns/serviceaccounttoken/sa-a",
            bound("pod-a", "uid-a")
        ),
        Refusal::NotReferenced { .. }
    ));
    // Its own account, but bound to another node's pod or a stale UID.
    refused(
        Operation::Query,
        "ns/serviceaccounttoken/sa-b",
        bound("pod-a", "uid-a"),
    );
    refused(
        Operation::Query,
        "ns/serviceaccounttoken/sa-b",
        bound("pod-b", "old"),
    );
    let secret_bound = json!({"spec": {"boundObjectRef": {"kind": "Secret", "name": "secret-b"}}});
    refused(
        Operation::Query,
        "ns/serviceaccounttoken/sa-b",
        secret_bound,
    );
}

#[test]
fn events_about_itself_or_its_pods() {
    let event = |kind: &str, ns: &str, name: &str| json!({"metadata": {"name": "e"}, "involvedObject": {"kind": kind, "namespace": ns, "name": name}});
    allowed(Operation::Insert, "default/event/e", event("Node", "", ME));
    allowed(Operation::Insert, "ns/event/e", event("Pod", "ns", "pod-b"));
    allowed(
        Operation::Patch,
        "ns/event/e",
        json!({"event": event("Pod", "", "pod-b"), "patchData": "{}"}),
    );
    for content in [
        event("Node", "", OTHER),
        event("Pod", "ns", "pod-a"),
        event("Secret", "ns", "secret-b"),
    ] {
        assert!(matches!(
            refused(Operation::Insert, "ns/event/e", content),
            Refusal::EventNotAbout { .. }
        ));
    }
    assert!(matches!(
        refused(Operation::Insert, "ns/event/e", json!({"reason": "x"})),
        Refusal::Content { .. }
    ));
}

#[test]
fn devices_and_their_reports() {
    let twin = |resource: &str| Message::new("twin", "twin", Operation::Update, resource);
    for resource in [
        "device/ns/dev-b/twin/edge_updated",
        "device/ns/dev-b/state/update",
        "device/old/state/update",
    ] {
        assert_eq!(run(&twin(resource)), Ok(()), "{resource}");
    }
    allowed(Operation::Query, "ns/device/dev-b", Value::Null);
    for resource in [
        "device/ns/dev-a/twin/edge_updated",
        "device/ns/dev-a/state/update",
        "device/ns/gone/state/update",
    ] {
        assert!(
            matches!(run(&twin(resource)), Err(Refusal::DeviceNotBound { .. })),
            "{resource}"
        );
    }
    refused(Operation::Query, "ns/device/dev-a", Value::Null);
    // Only reports go up; the cloud sends cloud_updated.
    assert!(run(&twin("device/ns/dev-b/twin/cloud_updated")).is_err());
    let mut delete = twin("device/ns/dev-b/twin/edge_updated");
    delete.route.operation = Operation::Delete;
    assert!(matches!(run(&delete), Err(Refusal::Operation { .. })));
}

#[test]
fn its_own_membership() {
    let detail = |group: &str| {
        let content = format!(
            r#"{{"event_type":"group_membership_event","operation":"detail","group_id":"{group}"}}"#
        );
        Message::new("twin", "twin", Operation::Get, "membership/detail").with_content(content)
    };
    assert_eq!(run(&detail(ME)), Ok(()));
    assert!(matches!(
        run(&detail(OTHER)),
        Err(Refusal::Membership { .. })
    ));
    let mut update = detail(ME);
    update.route.operation = Operation::Update;
    assert!(matches!(run(&update), Err(Refusal::Operation { .. })));
}

#[test]
fn exempt_messages() {
    allowed(Operation::Query, "k8s/ca.crt", Value::Null);
    allowed(Operation::Query, "default/k8s/ca.crt", Value::Null);
    let upload = Message::new("router_eventbus", "user", Operation::Upload, "a/topic/x");
    assert_eq!(run(&upload), Ok(()));
    let request = Message::new(
        "edgecontroller",
        "resource",
        Operation::Query,
        "ns/secret/secret-a",
    );
    assert_eq!(run(&request.reply(json!({"Object": {}}))), Ok(()));
    assert_eq!(run(&request.error_reply("failed")), Ok(()));
    // A "response" without a parent is no reply.
    refused(Operation::Response, "ns/secret/secret-a", json!({}));
    // Not an upload, so not exempt.
    let other_user = Message::new("eventbus", "user", Operation::Update, "a/topic/x");
    assert!(run(&other_user).is_err());
}

#[test]
fn everything_else_is_refused() {
    for resource in [
        "node/edge-a/ns/configmap/cm-b",
        "node/edge-b/ns/configmap/cm-b",
    ] {
        assert!(matches!(
            refused(Operation::Query, resource, Value::Null),
            Refusal::CloudForm { .. } | Refusal::Malformed { .. }
        ));
    }
    for resource in [
        "ns/rulestatus/r",
        "null/certificatesigningrequest/c",
        "ns/persistentvolumeclaim/p",
        "ns/devicemodel/m",
        "ns/podlist",
        "node/connection",
        "twin",
    ] {
        assert!(
            matches!(
                refused(Operation::Update, resource, Value::Null),
                Refusal::Outside { .. }
            ),
            "{resource}"
        );
    }
    assert!(matches!(
        refused(Operation::Update, "", Value::Null),
        Refusal::Malformed { .. }
    ));
}

#[test]
fn debug_mode_lets_refusals_through_and_both_modes_count() {
    for (debug, mode) in [(false, "enforced"), (true, "logged")] {
        let mut registry = prometheus_client::registry::Registry::default();
        let authz = NodeAuthorizer::with_view(Arc::new(Table::new()), debug, &mut registry);
        let theirs = msg(Operation::Query, "ns/configmap/cm-a", Value::Null);
        let mine = msg(Operation::Query, "ns/configmap/cm-b", Value::Null);
        assert_eq!(authz.authorize(ME, &mine), Ok(()));
        let result = authz.authorize(ME, &theirs);
        if debug {
            assert_eq!(result, Ok(()));
        } else {
            let reason = result.unwrap_err();
            assert!(reason.contains("configmap ns/cm-a"), "{reason}");
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let line = format!("authz_refusals_total{{resource=\"configmap\",mode=\"{mode}\"}} 1");
        assert!(text.contains(&line), "{text}");
    }
}
