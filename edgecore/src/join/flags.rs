//! The values `edgecore join` takes on the command line, checked before
//! anything is fetched or written: the cloud's `HOST:PORT`, the node name
//! (a DNS subdomain, as Kubernetes requires of Node names) and
//! `k=v,…` labels (Kubernetes label syntax).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use crate::config::is_dns_subdomain;

/// A malformed flag, named.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The value breaks the flag's syntax.
    #[error("{flag}: {reason}")]
    Invalid {
        /// The flag, e.g. `--cloudcore-ipport`.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> FlagError {
    FlagError::Invalid {
        flag,
        reason: reason.into(),
    }
}

/// A host (IP address or DNS name) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// Parses `HOST:PORT` (`[v6]:PORT` for IPv6 addresses).
    pub(super) fn parse(flag: &'static str, value: &str) -> Result<HostPort, FlagError> {
        if let Ok(addr) = value.parse::<SocketAddr>() {
            return Ok(HostPort {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        let (host, port) = value
            .rsplit_once(':')
            .ok_or_else(|| invalid(flag, format!("{value:?} is not HOST:PORT")))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid(flag, format!("{port:?} is not a port number")))?;
        if !is_dns_subdomain(host) {
            return Err(invalid(
                flag,
                format!("{host:?} is neither an IP address nor a DNS name"),
            ));
        }
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }

    /// The same host with another port, as `HOST:PORT`.
    pub(super) fn with_port(&self, port: u16) -> String {
        HostPort {
            host: self.host.clone(),
            port,
        }
        .to_string()
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Checks a node name (`--edgenode-name`).
pub(super) fn check_node_name(name: &str) -> Result<(), FlagError> {
    if is_dns_subdomain(name) {
        Ok(())
    } else {
        Err(invalid(
            "--edgenode-name",
            format!("{name:?} is not a valid node name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)"),
        ))
    }
}

/// The name part of a label key or a label value: at most 63 characters
/// of letters, digits, `-`, `_` and `.`, starting and ending alphanumeric.
fn is_label_name(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Parses `--labels k=v,k2=v2` (keys may carry a DNS prefix, `prefix/name`;
/// values may be empty).
pub fn parse_labels(value: &str) -> Result<BTreeMap<String, String>, FlagError> {
    let mut labels = BTreeMap::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = pair
            .split_once('=')
            .ok_or_else(|| invalid("--labels", format!("{pair:?} is not key=value")))?;
        let name = match key.split_once('/') {
            Some((prefix, name)) if is_dns_subdomain(prefix) => name,
            Some((prefix, _)) => {
                return Err(invalid(
                    "--labels",
                    format!("{prefix:?} in {key:?} is not a DNS prefix"),
                ))
            }
            None => key,
        };
        if !is_label_name(name) {
            return Err(invalid(
                "--labels",
                format!("{key:?} is not a valid label key"),
            ));
        }
        if !val.is_empty() && !is_label_name(val) {
            return Err(invalid(
                "--labels",
                format!("{val:?} (for {key:?}) is not a valid label value"),
            ));
        }
        if labels.insert(key.to_owned(), val.to_owned()).is_some() {
            return Err(invalid("--labels", format!("{key:?} is given twice")));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        let v4 = HostPort::parse("--x", "10.0.0.1:10000").unwrap();
        assert_eq!(v4.to_string(), "10.0.0.1:10000");
        assert_eq!(v4.with_port(10002), "10.0.0.1:10002");
        let v6 = HostPort::parse("--x", "[::1]:10000").unwrap();
        assert_eq!(v6.with_port(10002), "[::1]:10002");
        let dns = HostPort::parse("--x", "cloud.example.com:443").unwrap();
        assert_eq!(dns.with_port(10001), "cloud.example.com:10001");
        for bad in [
            "10.0.0.1",
            "host:",
            "host:0",
            "host:99999",
            "Bad_Host:1",
            ":80",
        ] {
            let err = HostPort::parse("--cloudcore-ipport", bad).unwrap_err();
            assert!(
                err.to_string().starts_with("--cloudcore-ipport: "),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn node_names() {
        for good in ["edge-1", "a", "rack1.site-2"] {
            check_node_name(good).unwrap();
        }
        for bad in [
            "",
            "Edge",
            "-edge",
            "edge-",
            "a..b",
            "under_score",
            &"x".repeat(254),
        ] {
            assert!(check_node_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        let labels = parse_labels("zone=north, kubeedge.io/role=sensor,empty=").unwrap();
        assert_eq!(labels["zone"], "north");
        assert_eq!(labels["kubeedge.io/role"], "sensor");
        assert_eq!(labels["empty"], "");
        assert!(parse_labels("").unwrap().is_empty());
        for bad in [
            "novalue",
            "a=b,a=c",
            "-a=b",
            "a=b c",
            "Bad_Prefix/a=b",
            "a=-b",
        ] {
            let err = parse_labels(bad).unwrap_err();
            assert!(err.to_string().starts_with("--labels: "), "{bad}: {err}");
        }
    }
}
