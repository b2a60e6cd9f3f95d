//! The pod columns: READY, STATUS and RESTARTS worked out from the
//! container statuses exactly as kube-apiserver's `printPod` does
//! (init containers, sidecars, waiting and terminated reasons,
//! Terminating), plus IP, NODE, NOMINATED NODE and READINESS GATES for
//! `-o wide`.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::{items, name, or_none, text, CREATED};
use crate::rest::table::{age, human_duration, Column, AGE, NAME};

/// The pod columns.
pub(super) const COLUMNS: [Column; 9] = [
    NAME,
    Column::text("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    Column::text("Status", "The aggregate status of the containers in this pod."),
    Column::text("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    Column::text("IP", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.").wide(),
    Column::text("Node", "NodeName indicates in which node this pod is scheduled.").wide(),
    Column::text("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node.").wide(),
    Column::text("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.").wide(),
];

fn condition_true(pod: &Value, kind: &str) -> bool {
    items(pod, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
}

/// A terminated container's reason, or its signal or exit code.
fn terminated_reason(terminated: &Value, prefix: &str) -> String {
    match text(terminated, "/reason") {
        "" => match terminated
            .get("signal")
            .and_then(Value::as_i64)
            .unwrap_or_default()
        {
            0 => format!(
                "{prefix}ExitCode:{}",
                terminated
                    .get("exitCode")
                    .and_then(Value::as_i64)
                    .unwrap_or_default()
            ),
            signal => format!("{prefix}Signal:{signal}"),
        },
        reason => format!("{prefix}{reason}"),
    }
}

/// Restart counts and the latest restart of some container statuses.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<Timestamp>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += status
            .get("restartCount")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let finished = text(status, "/lastState/terminated/finishedAt")
            .parse::<Timestamp>()
            .ok();
        self.last = self.last.max(finished);
    }
}

/// The cells of a pod.
pub(super) fn cells(p: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = items(p, "/spec/initContainers");
    let sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let total = items(p, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| text(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0;
    let (mut restarts, mut sidecar_restarts) = (Restarts::default(), Restarts::default());
    let phase = text(p, "/status/phase");
    let mut reason = match text(p, "/status/reason") {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    if items(p, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }
    let mut initializing = false;
    for (i, c) in items(p, "/status/initContainerStatuses").iter().enumerate() {
        restarts.add(c);
        let is_sidecar = sidecar(text(c, "/name"));
        if is_sidecar {
            sidecar_restarts.add(c);
        }
        let terminated = c.pointer("/state/terminated");
        let waiting = text(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| t.get("exitCode").and_then(Value::as_i64) == Some(0)) {
            continue;
        }
        if is_sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = match terminated {
            Some(t) => terminated_reason(t, "Init:"),
            None if !waiting.is_empty() && waiting != "PodInitializing" => {
                format!("Init:{waiting}")
            }
            None => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }
    if !initializing || condition_true(p, "Initialized") {
        restarts = sidecar_restarts;
        let mut running = false;
        for c in items(p, "/status/containerStatuses").iter().rev() {
            restarts.add(c);
            let waiting = text(c, "/state/waiting/reason");
            if !waiting.is_empty() {
                reason = waiting.to_owned();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = terminated_reason(t, "");
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            reason = if condition_true(p, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_owned();
        }
    }
    if p.pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        if text(p, "/status/reason") == "NodeLost" {
            reason = "Unknown".to_owned();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_owned();
        }
    }
    let restarts_text = match restarts.last {
        Some(last) if restarts.count != 0 => format!(
            "{} ({} ago)",
            restarts.count,
            human_duration(now.as_second() - last.as_second())
        ),
        _ => restarts.count.to_string(),
    };
    let gates = items(p, "/spec/readinessGates");
    let gates_text = if gates.is_empty() {
        String::new()
    } else {
        let met = gates
            .iter()
            .filter(|g| condition_true(p, text(g, "/conditionType")))
            .count();
        format!("{met}/{}", gates.len())
    };
    let ip = items(p, "/status/podIPs")
        .first()
        .map_or_else(|| text(p, "/status/podIP"), |ip| text(ip, "/ip"));
    vec![
        name(p),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_text),
        json!(age(p, CREATED, now)),
        or_none(ip),
        or_none(text(p, "/spec/nodeName")),
        or_none(text(p, "/status/nominatedNodeName")),
        or_none(&gates_text),
    ]
}
