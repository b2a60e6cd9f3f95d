//! What the quickstart prints once both daemons are up: where each listens
//! and the exact commands to try next. Every command line starts with
//! [`PROMPT`] and stands alone (no shell state between lines), so that a
//! user can paste any one of them, and the quickstart's test runs them all.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What starts each follow-up command line.
pub const PROMPT: &str = "  $ ";

/// How the summary's last line starts.
pub const CLOSING: &str = "Ctrl-C stops both";

/// The example device the follow-up commands apply and report for.
pub const EXAMPLE_DEVICE: &str = "sensor-1";
/// Its namespace: device topics name a device as `<namespace>/<name>`.
const EXAMPLE_NAMESPACE: &str = "default";

/// The addresses and paths the summary names.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The embedded API's admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The embedded Kubernetes API.
    pub kube_api: Option<SocketAddr>,
    /// CloudHub over WebSocket.
    pub websocket: Option<SocketAddr>,
    /// CloudHub over QUIC.
    pub quic: Option<SocketAddr>,
    /// The certificate server.
    pub https: Option<SocketAddr>,
    /// cloudcore's metrics and health.
    pub cloud_monitor: SocketAddr,
    /// The edge node's name.
    pub node: String,
    /// The edge's MetaServer.
    pub metaserver: Option<SocketAddr>,
    /// The edge's MQTT broker.
    pub mqtt: Option<SocketAddr>,
    /// edgecore's metrics and health.
    pub edge_monitor: SocketAddr,
    /// `deploy/examples/` (absolute when the checkout is known).
    pub examples: PathBuf,
    /// Whether the node reported Ready before the summary was printed.
    pub ready: bool,
}

fn or_off(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".to_owned(), |a| a.to_string())
}

/// `scheme://addr`, or "off".
fn url(scheme: &str, addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".to_owned(), |a| format!("{scheme}://{a}"))
}

/// Quotes `path` for a POSIX shell when it needs it.
fn shell(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@%,".contains(&b));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

impl Summary {
    /// The follow-up commands, without the prompt, in the order to run
    /// them, each with what it shows (empty when it goes with the one
    /// before).
    pub fn commands(&self) -> Vec<(&'static str, String)> {
        let kubectl = format!("kubectl --kubeconfig {}", shell(&self.kubeconfig));
        let mut commands = vec![
            (
                "the edge node, as the cloud sees it",
                format!("{kubectl} get nodes"),
            ),
            (
                "a DeviceModel and a Device bound to the node",
                format!(
                    "{kubectl} apply -f {}",
                    shell(&self.examples.join("devicemodel.yaml"))
                ),
            ),
            (
                "",
                format!(
                    "{kubectl} apply -f {}",
                    shell(&self.examples.join("device.yaml"))
                ),
            ),
        ];
        if let Some(meta) = self.metaserver {
            commands.push((
                "the edge's own copy, from its MetaServer (served offline too)",
                format!(
                    "kubectl --kubeconfig /dev/null --server http://{meta} get devices.devices.kubeedge.io"
                ),
            ));
        }
        if let Some(mqtt) = self.mqtt {
            commands.push((
                "the device reports a temperature over MQTT",
                format!(
                    "mosquitto_pub -h {} -p {} -q 1 -t '$hw/events/device/{EXAMPLE_NAMESPACE}/{EXAMPLE_DEVICE}/twin/update' -m '{}'",
                    mqtt.ip(),
                    mqtt.port(),
                    r#"{"event_id":"quickstart-1","timestamp":0,"twin":{"temperature":{"actual":{"value":"21"},"metadata":{"type":"int"}}}}"#
                ),
            ));
        }
        commands.push((
            "the report in the Device's status, through the cloud",
            format!(
                "{kubectl} get device {EXAMPLE_DEVICE} -o jsonpath='{{.status.twins[*].reported.value}}{{\"\\n\"}}'"
            ),
        ));
        commands
    }

    /// The whole text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let state = if self.ready { "Ready" } else { "not Ready yet" };
        let monitor = |addr: SocketAddr| format!("http://{addr}/metrics /healthz /readyz");
        let kube_api = format!(
            "{}  (kubeconfig {})",
            url("https", self.kube_api),
            self.kubeconfig.display()
        );
        let sections = [
            (
                "cloudcore".to_owned(),
                vec![
                    ("Kubernetes API (embedded)", kube_api),
                    ("CloudHub WebSocket", or_off(self.websocket)),
                    ("CloudHub QUIC", or_off(self.quic)),
                    ("certificate server", url("https", self.https)),
                    ("metrics, health", monitor(self.cloud_monitor)),
                ],
            ),
            (
                format!("edgecore ({})", self.node),
                vec![
                    ("MetaServer", url("http", self.metaserver)),
                    ("MQTT broker", or_off(self.mqtt)),
                    ("metrics, health", monitor(self.edge_monitor)),
                ],
            ),
        ];
        // Writing to a String cannot fail.
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Apiary is up: cloudcore and edgecore ({}, {state}), data in {}",
            self.node,
            self.data_dir.display()
        );
        let _ = writeln!(s);
        for (daemon, rows) in sections {
            let _ = writeln!(s, "  {daemon}");
            for (label, value) in rows {
                let _ = writeln!(s, "    {label:<28}{value}");
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Try (kubectl and mosquitto_pub: apt-get install kubernetes-client mosquitto-clients):"
        );
        for (note, command) in self.commands() {
            if !note.is_empty() {
                let _ = writeln!(s, "  # {note}");
            }
            let _ = writeln!(s, "{PROMPT}{command}");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{CLOSING}; running the same command again reuses {}.",
            self.data_dir.display()
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        let addr = |port| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        Summary {
            data_dir: PathBuf::from("/d"),
            kubeconfig: PathBuf::from("/d/cloud/kubeconfig"),
            kube_api: addr(6443),
            websocket: addr(10000),
            quic: addr(10001),
            https: addr(10002),
            cloud_monitor: SocketAddr::from(([127, 0, 0, 1], 9091)),
            node: "edge-1".to_owned(),
            metaserver: addr(10550),
            mqtt: addr(1884),
            edge_monitor: SocketAddr::from(([127, 0, 0, 1], 9092)),
            examples: PathBuf::from("/src/apiary/deploy/examples"),
            ready: true,
        }
    }

    #[test]
    fn every_command_is_on_a_prompt_line() {
        let s = summary();
        let text = s.render();
        let prompted: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix(PROMPT))
            .collect();
        let commands: Vec<String> = s.commands().into_iter().map(|(_, c)| c).collect();
        assert_eq!(prompted, commands);
        assert!(text.contains("MetaServer                  http://127.0.0.1:10550"));
        assert!(prompted
            .iter()
            .any(|c| c.starts_with("mosquitto_pub -h 127.0.0.1 -p 1884 ")));
        assert!(prompted
            .iter()
            .any(|c| c.ends_with("apply -f /src/apiary/deploy/examples/device.yaml")));
    }

    #[test]
    fn paths_with_spaces_are_quoted() {
        assert_eq!(shell(Path::new("/a b/it's")), r"'/a b/it'\''s'");
        assert_eq!(shell(Path::new("/plain/path.yaml")), "/plain/path.yaml");
    }
}
