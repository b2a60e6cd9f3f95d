//! Table columns per kind, as kube-apiserver prints them
//! (`pkg/printers/internalversion/printers.go`): pods, nodes, configmaps,
//! secrets, services, namespaces and leases; NAME and AGE for everything
//! else. The server sends every column; kubectl hides priority-1 columns
//! unless `-o wide`.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{json, Value};

mod pod;

use super::table::{age, Column, AGE, NAME};
use crate::resource::ResourceInfo;

/// Fills the cells of one row.
pub(crate) type Cells = fn(&Value, Timestamp) -> Vec<Value>;

/// The columns of a kind and how to fill them.
#[derive(Clone, Copy)]
pub(crate) struct Printer {
    pub columns: &'static [Column],
    pub cells: Cells,
}

/// The printer for `info`'s objects.
pub(crate) fn printer(info: &ResourceInfo) -> Printer {
    let (columns, cells): (&'static [Column], Cells) =
        match (info.gvr.group.as_str(), info.kind.as_str()) {
            ("", "Pod") => (&pod::COLUMNS, pod::cells),
            ("", "Node") => (&NODE, node),
            ("", "ConfigMap") => (&CONFIGMAP, configmap),
            ("", "Secret") => (&SECRET, secret),
            ("", "Service") => (&SERVICE, service),
            ("", "Namespace") => (&NAMESPACE, namespace),
            ("coordination.k8s.io", "Lease") => (&LEASE, lease),
            _ => (&DEFAULT, default),
        };
    Printer { columns, cells }
}

const CREATED: &str = "/metadata/creationTimestamp";

/// The string at `pointer`, or "".
fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The array at `pointer`, or none.
fn items<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The number of entries of the map at `pointer`.
fn count(value: &Value, pointer: &str) -> usize {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn or_none(s: &str) -> Value {
    Value::String(if s.is_empty() { "<none>" } else { s }.to_owned())
}

fn name(value: &Value) -> Value {
    Value::String(text(value, "/metadata/name").to_owned())
}

const DEFAULT: [Column; 2] = [NAME, AGE];

fn default(v: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(v), json!(age(v, CREATED, now))]
}

const CONFIGMAP: [Column; 3] = [
    NAME,
    Column::integer("Data", "Number of data entries in this ConfigMap."),
    AGE,
];

fn configmap(v: &Value, now: Timestamp) -> Vec<Value> {
    let data = count(v, "/data") + count(v, "/binaryData");
    vec![name(v), json!(data), json!(age(v, CREATED, now))]
}

const SECRET: [Column; 4] = [
    NAME,
    Column::text("Type", "The type of this secret."),
    Column::integer("Data", "Number of data entries in this secret."),
    AGE,
];

fn secret(v: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(v),
        json!(text(v, "/type")),
        json!(count(v, "/data")),
        json!(age(v, CREATED, now)),
    ]
}

const NAMESPACE: [Column; 3] = [
    NAME,
    Column::text("Status", "The status of the namespace."),
    AGE,
];

fn namespace(v: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(v),
        json!(text(v, "/status/phase")),
        json!(age(v, CREATED, now)),
    ]
}

const LEASE: [Column; 3] = [
    NAME,
    Column::text("Holder", "The holder of the lease."),
    AGE,
];

fn lease(v: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(v),
        json!(text(v, "/spec/holderIdentity")),
        json!(age(v, CREATED, now)),
    ]
}

const SERVICE: [Column; 7] = [
    NAME,
    Column::text("Type", "The type of the service."),
    Column::text("Cluster-IP", "The cluster IP of the service."),
    Column::text("External-IP", "The external IPs of the service."),
    Column::text("Port(s)", "The ports of the service."),
    AGE,
    Column::text("Selector", "The label selector of the service.").wide(),
];

fn service(v: &Value, now: Timestamp) -> Vec<Value> {
    let kind = match text(v, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let strings =
        |pointer| -> Vec<&str> { items(v, pointer).iter().filter_map(Value::as_str).collect() };
    let external = match kind {
        "ExternalName" => text(v, "/spec/externalName").to_owned(),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = items(v, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match text(i, "/ip") {
                    "" => text(i, "/hostname"),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            ips.extend(strings("/spec/externalIPs"));
            if ips.is_empty() {
                "<pending>".to_owned()
            } else {
                ips.join(",")
            }
        }
        _ => strings("/spec/externalIPs").join(","),
    };
    let ports: Vec<String> = items(v, "/spec/ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or_default();
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match p
                .get("nodePort")
                .and_then(Value::as_i64)
                .unwrap_or_default()
            {
                0 => format!("{port}/{protocol}"),
                node_port => format!("{port}:{node_port}/{protocol}"),
            }
        })
        .collect();
    let selector: Vec<String> = v
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    vec![
        name(v),
        json!(kind),
        or_none(text(v, "/spec/clusterIP")),
        or_none(&external),
        or_none(&ports.join(",")),
        json!(age(v, CREATED, now)),
        or_none(&selector.join(",")),
    ]
}

const NODE: [Column; 10] = [
    NAME,
    Column::text("Status", "The status of the node"),
    Column::text("Roles", "The roles of the node"),
    AGE,
    Column::text("Version", "Kubelet Version reported by the node."),
    Column::text("Internal-IP", "List of addresses reachable to the node.").wide(),
    Column::text("External-IP", "List of addresses reachable to the node.").wide(),
    Column::text(
        "OS-Image",
        "OS Image reported by the node from /etc/os-release.",
    )
    .wide(),
    Column::text("Kernel-Version", "Kernel Version reported by the node.").wide(),
    Column::text(
        "Container-Runtime",
        "Container runtime version reported by the node.",
    )
    .wide(),
];

fn node(v: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<&str> = items(v, "/status/conditions")
        .iter()
        .filter(|c| text(c, "/type") == "Ready")
        .map(|c| {
            if text(c, "/status") == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .take(1)
        .collect();
    if status.is_empty() {
        status.push("Unknown");
    }
    if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = v.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                roles.insert(role.to_owned());
            } else if key == "kubernetes.io/role" {
                roles.insert(value.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    roles.remove("");
    let address = |kind: &str| {
        items(v, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == kind)
            .map_or("", |a| text(a, "/address"))
    };
    let unknown = |s: &str| json!(if s.is_empty() { "<unknown>" } else { s });
    vec![
        name(v),
        json!(status.join(",")),
        or_none(&roles.into_iter().collect::<Vec<_>>().join(",")),
        json!(age(v, CREATED, now)),
        json!(text(v, "/status/nodeInfo/kubeletVersion")),
        or_none(address("InternalIP")),
        or_none(address("ExternalIP")),
        unknown(text(v, "/status/nodeInfo/osImage")),
        unknown(text(v, "/status/nodeInfo/kernelVersion")),
        unknown(text(v, "/status/nodeInfo/containerRuntimeVersion")),
    ]
}

#[cfg(test)]
mod tests;
