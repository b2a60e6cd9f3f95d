//! Printer tests: the cells kube-apiserver would print for typical pods,
//! nodes, services and secrets.

use serde_json::json;

use super::*;
use crate::resource::{edge_resources, Resources};

fn now() -> Timestamp {
    "2025-01-01T01:00:00Z".parse().unwrap()
}

fn cells(resource: &str, value: Value) -> Vec<Value> {
    let info = Resources::new(edge_resources())
        .all()
        .into_iter()
        .find(|r| r.gvr.resource == resource)
        .unwrap();
    let p = printer(&info);
    let cells = (p.cells)(&value, now());
    assert_eq!(
        cells.len(),
        p.columns.len(),
        "{resource}: one cell per column"
    );
    cells
}

fn pod_with(status: Value) -> Value {
    json!({
        "metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"nodeName": "edge-1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": status,
    })
}

#[test]
fn running_pod() {
    let p = pod_with(json!({
        "phase": "Running",
        "podIPs": [{"ip": "10.0.0.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "b", "ready": true, "restartCount": 2, "state": {"running": {}},
             "lastState": {"terminated": {"finishedAt": "2025-01-01T00:55:00Z"}}},
        ],
    }));
    assert_eq!(
        cells("pods", p),
        json!([
            "web",
            "2/2",
            "Running",
            "2 (5m ago)",
            "60m",
            "10.0.0.5",
            "edge-1",
            "<none>",
            "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn pod_states() {
    let waiting = pod_with(json!({
        "phase": "Running",
        "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            {"name": "b", "ready": true, "state": {"running": {}}},
        ],
    }));
    let c = cells("pods", waiting);
    assert_eq!(
        (&c[1], &c[2], &c[3]),
        (&json!("1/2"), &json!("CrashLoopBackOff"), &json!("4"))
    );

    let pending = pod_with(json!({"phase": "Pending"}));
    let c = cells("pods", pending);
    assert_eq!(
        (&c[1], &c[2], &c[5]),
        (&json!("0/2"), &json!("Pending"), &json!("<none>"))
    );

    let mut init = pod_with(json!({
        "phase": "Pending",
        "initContainerStatuses": [
            {"name": "i0", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i1", "state": {"running": {}}},
        ],
    }));
    init["spec"]["initContainers"] = json!([{"name": "i0"}, {"name": "i1"}]);
    assert_eq!(cells("pods", init)[2], "Init:1/2");

    let failed_init = pod_with(json!({
        "phase": "Pending",
        "initContainerStatuses": [{"name": "i0", "state": {"terminated": {"exitCode": 3}}}],
    }));
    assert_eq!(cells("pods", failed_init)[2], "Init:ExitCode:3");

    let mut terminating = pod_with(json!({"phase": "Running"}));
    terminating["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:59:00Z");
    assert_eq!(cells("pods", terminating)[2], "Terminating");

    let completed = pod_with(json!({
        "phase": "Succeeded",
        "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
    }));
    assert_eq!(cells("pods", completed)[2], "Completed");

    let evicted = pod_with(json!({"phase": "Failed", "reason": "Evicted"}));
    assert_eq!(cells("pods", evicted)[2], "Evicted");

    let mut gated = pod_with(json!({"phase": "Running",
        "conditions": [{"type": "example.com/ready", "status": "True"}]}));
    gated["spec"]["readinessGates"] =
        json!([{"conditionType": "example.com/ready"}, {"conditionType": "x"}]);
    assert_eq!(cells("pods", gated)[8], "1/2");
}

#[test]
fn nodes() {
    let n = json!({
        "metadata": {"name": "edge-1", "creationTimestamp": "2024-12-29T01:00:00Z",
                     "labels": {"node-role.kubernetes.io/edge": "", "node-role.kubernetes.io/agent": "",
                                "kubernetes.io/role": "x"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0-kubeedge", "osImage": "Debian"},
        },
    });
    let c = cells("nodes", n);
    assert_eq!(
        c,
        json!([
            "edge-1",
            "Ready,SchedulingDisabled",
            "agent,edge,x",
            "3d",
            "v1.33.0-kubeedge",
            "192.168.1.5",
            "<none>",
            "Debian",
            "<unknown>",
            "<unknown>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let bare = cells("nodes", json!({"metadata": {"name": "n"}}));
    assert_eq!(
        (&bare[1], &bare[2], &bare[3]),
        (&json!("Unknown"), &json!("<none>"), &json!("<unknown>"))
    );
}

#[test]
fn services_secrets_and_the_rest() {
    let svc = json!({
        "metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:59:00Z"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                 "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
                 "selector": {"app": "web"}},
    });
    assert_eq!(
        cells("services", svc),
        json!([
            "web",
            "NodePort",
            "10.96.0.10",
            "<none>",
            "80:30080/TCP,53/UDP",
            "60s",
            "app=web"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
    assert_eq!(cells("services", lb)[3], "<pending>");

    let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "eA=="}});
    assert_eq!(cells("secrets", secret)[1..3], [json!("Opaque"), json!(1)]);

    let dev = json!({"metadata": {"name": "d", "creationTimestamp": "2025-01-01T00:00:00Z"}});
    assert_eq!(cells("devices", dev), vec![json!("d"), json!("60m")]);
    let lease = json!({"metadata": {"name": "edge-1"}, "spec": {"holderIdentity": "edge-1"}});
    assert_eq!(cells("leases", lease)[1], "edge-1");
    let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
    assert_eq!(cells("namespaces", ns)[1], "Active");
}
