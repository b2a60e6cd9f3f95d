//! The objects the module sends, built purely from [`NodeStatusSettings`],
//! [`HostFacts`] and the time: the Node (registration), the status report
//! (KubeEdge's `NodeStatusRequest`, `{"UID", "Status"}`) and the
//! `coordination.k8s.io/v1` Lease. No I/O, no clock: callers pass `now`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec,
    NodeStatus as K8sNodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use serde_json::{json, Value};

use super::host::HostFacts;
use super::outbound::LEASE_NAMESPACE;
use super::settings::{NodeStatusError, NodeStatusSettings, Result};

/// The kubelet port the Node advertises (KubeEdge edged's).
pub const KUBELET_PORT: i32 = 10350;

/// Pods the Node offers (the kubelet's default `maxPods`).
const MAX_PODS: &str = "110";

/// The Node's `kubeletVersion` and `kubeProxyVersion`.
pub fn kubelet_version() -> String {
    format!("v1.33.0-apiary-{}", env!("CARGO_PKG_VERSION"))
}

/// The Node's labels: `nodeLabels` from the configuration, then Apiary's
/// own (roles, host name, OS, architecture), which win on conflict.
pub fn labels(settings: &NodeStatusSettings, facts: &HostFacts) -> BTreeMap<String, String> {
    let mut labels = settings.node_labels.clone();
    let own = [
        ("node-role.kubernetes.io/edge", ""),
        ("node-role.kubernetes.io/agent", ""),
        ("kubernetes.io/hostname", settings.node_name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", facts.architecture.as_str()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", facts.architecture.as_str()),
    ];
    for (k, v) in own {
        labels.insert(k.to_owned(), v.to_owned());
    }
    labels
}

/// The InternalIP: `nodeIP` if configured, else the host's best address,
/// else `127.0.0.1`.
pub fn internal_ip(settings: &NodeStatusSettings, facts: &HostFacts) -> IpAddr {
    settings
        .node_ip
        .or_else(|| facts.host_ips.first().copied())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The Node as registered: metadata (name, labels) and a full status.
pub fn node(
    settings: &NodeStatusSettings,
    facts: &HostFacts,
    since: Timestamp,
    now: Timestamp,
) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(settings.node_name.clone()),
            labels: Some(labels(settings, facts)),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(node_status(settings, facts, since, now)),
    }
}

/// The Node's status: capacity, addresses, system info, conditions (Ready
/// since `since`, heartbeat `now`) and the kubelet endpoint.
pub fn node_status(
    settings: &NodeStatusSettings,
    facts: &HostFacts,
    since: Timestamp,
    now: Timestamp,
) -> K8sNodeStatus {
    let mut capacity = BTreeMap::from([
        ("cpu".to_owned(), Quantity(facts.cpu_cores.to_string())),
        ("memory".to_owned(), kibibytes(facts.memory_bytes)),
        ("pods".to_owned(), Quantity(MAX_PODS.to_owned())),
    ]);
    if let Some(bytes) = facts.storage_bytes {
        capacity.insert("ephemeral-storage".to_owned(), kibibytes(bytes));
    }
    let address = |type_: &str, address: String| NodeAddress {
        address,
        type_: type_.to_owned(),
    };
    K8sNodeStatus {
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        addresses: Some(vec![
            address("InternalIP", internal_ip(settings, facts).to_string()),
            address("Hostname", settings.node_name.clone()),
        ]),
        conditions: Some(conditions(since, now)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: facts.machine_id.clone(),
            system_uuid: facts.system_uuid.clone(),
            boot_id: facts.boot_id.clone(),
            kernel_version: facts.kernel_version.clone(),
            os_image: facts.os_image.clone(),
            operating_system: "linux".to_owned(),
            architecture: facts.architecture.clone(),
            container_runtime_version: String::new(),
            kubelet_version: kubelet_version(),
            kube_proxy_version: kubelet_version(),
            swap: None,
        }),
        ..K8sNodeStatus::default()
    }
}

fn kibibytes(bytes: u64) -> Quantity {
    Quantity(format!("{}Ki", bytes / 1024))
}

/// The kubelet's four conditions, in its order: no pressure, Ready.
fn conditions(since: Timestamp, now: Timestamp) -> Vec<NodeCondition> {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    vec![
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "edgecore has sufficient memory available",
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "edgecore has no disk pressure",
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "edgecore has sufficient PID available",
        ),
        condition(
            "Ready",
            "True",
            "EdgeReady",
            "edgecore is posting ready status",
        ),
    ]
}

/// KubeEdge's `NodeStatusRequest`: `{"UID": <uid or "">, "Status": <NodeStatus>}`.
pub fn status_request(uid: &str, status: &K8sNodeStatus) -> Result<Value> {
    Ok(json!({ "UID": uid, "Status": to_json("NodeStatus", status)? }))
}

/// The node's Lease, renewed `now`; owned by the Node once its UID is known
/// (as the kubelet sets it).
pub fn lease(settings: &NodeStatusSettings, node_uid: &str, now: Timestamp) -> Lease {
    let owner = (!node_uid.is_empty()).then(|| {
        vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Node".to_owned(),
            name: settings.node_name.clone(),
            uid: node_uid.to_owned(),
            ..OwnerReference::default()
        }]
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(settings.node_name.clone()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            owner_references: owner,
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(settings.node_name.clone()),
            lease_duration_seconds: Some(settings.lease_duration_seconds),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// Any of the objects as JSON, with a typed error naming it.
pub fn to_json(what: &'static str, object: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(object).map_err(|source| NodeStatusError::Encode { what, source })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn settings() -> NodeStatusSettings {
        NodeStatusSettings {
            node_name: "edge-1".into(),
            node_ip: None,
            node_labels: BTreeMap::from([
                ("zone".into(), "north".into()),
                ("kubernetes.io/os".into(), "plan9".into()),
            ]),
            register_node: true,
            status_update_frequency: Duration::from_secs(10),
            lease_duration_seconds: 40,
            data_dir: PathBuf::from("/var/lib/kubeedge"),
        }
    }

    fn facts() -> HostFacts {
        HostFacts {
            cpu_cores: 4,
            memory_bytes: 8 * 1024 * 1024 * 1024,
            storage_bytes: Some(64 * 1024 * 1024 * 1024 + 512),
            host_ips: vec![
                "192.168.1.5".parse().unwrap(),
                "2001:db8::5".parse().unwrap(),
            ],
            machine_id: "mid".into(),
            system_uuid: "uuid".into(),
            boot_id: "boot".into(),
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            architecture: "arm64".into(),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn node_json_has_kubernetes_field_names() {
        let node = node(
            &settings(),
            &facts(),
            ts("2025-01-02T03:04:05Z"),
            ts("2025-01-02T03:05:06.789Z"),
        );
        let v = to_json("Node", &node).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Node");
        assert_eq!(v["metadata"]["name"], "edge-1");
        let labels = &v["metadata"]["labels"];
        assert_eq!(labels["node-role.kubernetes.io/edge"], "");
        assert_eq!(labels["node-role.kubernetes.io/agent"], "");
        assert_eq!(labels["kubernetes.io/hostname"], "edge-1");
        assert_eq!(labels["kubernetes.io/os"], "linux", "Apiary's labels win");
        assert_eq!(labels["kubernetes.io/arch"], "arm64");
        assert_eq!(labels["beta.kubernetes.io/arch"], "arm64");
        assert_eq!(labels["beta.kubernetes.io/os"], "linux");
        assert_eq!(labels["zone"], "north");

        let s = &v["status"];
        for key in ["capacity", "allocatable"] {
            assert_eq!(s[key]["cpu"], "4");
            assert_eq!(s[key]["memory"], "8388608Ki");
            assert_eq!(s[key]["pods"], "110");
            assert_eq!(s[key]["ephemeral-storage"], "67108864Ki");
        }
        assert_eq!(
            s["addresses"],
            json!([
                {"type": "InternalIP", "address": "192.168.1.5"},
                {"type": "Hostname", "address": "edge-1"},
            ])
        );
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10350);
        let info = &s["nodeInfo"];
        assert_eq!(info["machineID"], "mid");
        assert_eq!(info["systemUUID"], "uuid");
        assert_eq!(info["bootID"], "boot");
        assert_eq!(info["kernelVersion"], "6.1.0");
        assert_eq!(info["osImage"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(info["operatingSystem"], "linux");
        assert_eq!(info["architecture"], "arm64");
        assert_eq!(info["containerRuntimeVersion"], "");
        assert_eq!(info["kubeletVersion"], kubelet_version());
        assert_eq!(info["kubeProxyVersion"], kubelet_version());
        assert!(kubelet_version().starts_with("v1.33.0-apiary-"));

        let conds = s["conditions"].as_array().unwrap();
        let types: Vec<_> = conds.iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        let ready = &conds[3];
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "EdgeReady");
        assert_eq!(ready["message"], "edgecore is posting ready status");
        assert_eq!(ready["lastHeartbeatTime"], "2025-01-02T03:05:06Z");
        assert_eq!(ready["lastTransitionTime"], "2025-01-02T03:04:05Z");
        assert!(conds[..3].iter().all(|c| c["status"] == "False"));
    }

    #[test]
    fn configured_ip_wins_and_loopback_is_the_last_resort() {
        let mut s = settings();
        let mut f = facts();
        assert_eq!(internal_ip(&s, &f).to_string(), "192.168.1.5");
        s.node_ip = Some("10.1.2.3".parse().unwrap());
        assert_eq!(internal_ip(&s, &f).to_string(), "10.1.2.3");
        s.node_ip = None;
        f.host_ips.clear();
        assert_eq!(internal_ip(&s, &f).to_string(), "127.0.0.1");
    }

    #[test]
    fn unknown_storage_is_left_out() {
        let mut f = facts();
        f.storage_bytes = None;
        let status = node_status(
            &settings(),
            &f,
            Timestamp::UNIX_EPOCH,
            Timestamp::UNIX_EPOCH,
        );
        assert!(!status.capacity.unwrap().contains_key("ephemeral-storage"));
    }

    #[test]
    fn status_request_is_kubeedge_node_status_request() {
        let now = ts("2025-01-02T03:04:05Z");
        let status = node_status(&settings(), &facts(), now, now);
        let v = status_request("", &status).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 2);
        assert_eq!(v["UID"], "");
        assert_eq!(v["Status"]["nodeInfo"]["architecture"], "arm64");
        assert_eq!(
            v["Status"]["conditions"][3]["lastHeartbeatTime"],
            "2025-01-02T03:04:05Z"
        );
        assert_eq!(status_request("abc", &status).unwrap()["UID"], "abc");
    }

    #[test]
    fn lease_renews_with_microseconds() {
        let now = ts("2025-01-02T03:04:05.123456789Z");
        let v = to_json("Lease", &lease(&settings(), "", now)).unwrap();
        assert_eq!(v["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(v["kind"], "Lease");
        assert_eq!(v["metadata"]["name"], "edge-1");
        assert_eq!(v["metadata"]["namespace"], "kube-node-lease");
        assert!(v["metadata"].get("ownerReferences").is_none());
        assert_eq!(v["spec"]["holderIdentity"], "edge-1");
        assert_eq!(v["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(v["spec"]["renewTime"], "2025-01-02T03:04:05.123456Z");

        let v = to_json("Lease", &lease(&settings(), "u-1", now)).unwrap();
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Node", "name": "edge-1", "uid": "u-1"}])
        );
    }
}
