//! Reading the host: CPU, memory, the disk holding the data directory, the
//! interfaces' addresses (the default route's first), the identity files
//! and the architecture (by Go's names), into [`HostFacts`]. Everything here is best effort: a fact that
//! cannot be read is left empty (or zero) and logged at debug, never an
//! error, since a Node with a missing machine ID is still a Node.
//!
//! The small parsers (`/etc/os-release`, `/proc/net/route`) are pure and
//! tested below; the rest asks `sysinfo` and the file system.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, System};

/// What the Node reports about the host, read once at start (memory is
/// refreshed with each status report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Logical CPUs.
    pub cpu_cores: u64,
    /// Total RAM in bytes.
    pub memory_bytes: u64,
    /// Size in bytes of the file system holding the data directory (or
    /// `/`); `None` when no disk matched.
    pub storage_bytes: Option<u64>,
    /// Candidate node addresses, best first: IPv4 before IPv6, the default
    /// route's interface first, no loopback or link-local addresses.
    pub host_ips: Vec<IpAddr>,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/sys/class/dmi/id/product_uuid`.
    pub system_uuid: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// The kernel release (`uname -r`).
    pub kernel_version: String,
    /// `PRETTY_NAME` from `/etc/os-release`.
    pub os_image: String,
    /// Go's name for the CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
}

/// Keeps what is needed to refresh [`HostFacts`] cheaply.
pub(crate) struct HostProbe {
    system: Option<System>,
}

impl std::fmt::Debug for HostProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostProbe")
            .field("system", &self.system.is_some())
            .finish()
    }
}

impl HostProbe {
    /// Reads every fact. Blocking (file system and `/proc`): call it from
    /// `spawn_blocking`.
    pub(crate) fn read(data_dir: &Path) -> (HostProbe, HostFacts) {
        let mut system = System::new()
            .inspect_err(|e| tracing::debug!(error = %e, "cannot read CPU and memory"))
            .ok();
        let mut cpu_cores = 0;
        let mut memory_bytes = 0;
        if let Some(system) = system.as_mut() {
            system.refresh_cpu_list(CpuRefreshKind::nothing());
            cpu_cores = system.cpus().len() as u64;
            system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            memory_bytes = system.total_memory();
        }
        if cpu_cores == 0 {
            cpu_cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        }
        let facts = HostFacts {
            cpu_cores,
            memory_bytes,
            storage_bytes: storage_bytes(data_dir),
            host_ips: host_ips(),
            machine_id: read_trimmed("/etc/machine-id"),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            kernel_version: System::kernel_version()
                .unwrap_or_else(|_| read_trimmed("/proc/sys/kernel/osrelease")),
            os_image: os_image(),
            architecture: go_arch(std::env::consts::ARCH, cfg!(target_endian = "little"))
                .to_owned(),
        };
        (HostProbe { system }, facts)
    }

    /// Updates the memory figure (cheap: one read of `/proc/meminfo`).
    pub(crate) fn refresh(&mut self, facts: &mut HostFacts) {
        if let Some(system) = self.system.as_mut() {
            system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            let total = system.total_memory();
            if total > 0 {
                facts.memory_bytes = total;
            }
        }
    }
}

/// Go's `GOARCH` for a Rust `std::env::consts::ARCH` (unknown names pass
/// through unchanged).
pub(crate) fn go_arch(rust_arch: &str, little_endian: bool) -> &str {
    match (rust_arch, little_endian) {
        ("x86_64", _) => "amd64",
        ("x86", _) => "386",
        ("aarch64", _) => "arm64",
        ("arm", _) => "arm",
        ("powerpc64", true) => "ppc64le",
        ("powerpc64", false) => "ppc64",
        ("powerpc", _) => "ppc",
        ("mips", true) => "mipsle",
        ("mips64", true) => "mips64le",
        ("loongarch64", _) => "loong64",
        ("wasm32", _) => "wasm",
        (other, _) => other,
    }
}

/// The file's text without surrounding white space; empty if unreadable.
fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .inspect_err(|e| tracing::debug!(path, error = %e, "host fact not readable"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| pretty_name(&text))
        .or_else(|| System::long_os_version().ok())
        .unwrap_or_else(|| "Linux".to_owned())
}

/// `PRETTY_NAME` from os-release text, unquoted.
fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.trim().strip_prefix("PRETTY_NAME=")?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        Some(value.to_owned()).filter(|v| !v.is_empty())
    })
}

/// The size of the file system whose mount point is the longest prefix of
/// `data_dir` (or of its nearest existing ancestor).
fn storage_bytes(data_dir: &Path) -> Option<u64> {
    let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage())
        .inspect_err(|e| tracing::debug!(error = %e, "cannot list disks"))
        .ok()?;
    let dir = existing_ancestor(data_dir);
    disks
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()) && d.total_space() > 0)
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(sysinfo::Disk::total_space)
}

fn existing_ancestor(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find_map(|p| p.canonicalize().ok())
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn host_ips() -> Vec<IpAddr> {
    let networks = match Networks::new_with_refreshed_list() {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list network interfaces");
            return Vec::new();
        }
    };
    let default_iface = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|t| default_route_interface(&t));
    let interfaces = networks.iter().map(|(name, data)| {
        let ips = data.ip_networks().iter().map(|n| n.addr).collect();
        (name.to_string_lossy().into_owned(), ips)
    });
    rank_ips(interfaces, default_iface.as_deref())
}

/// Usable addresses, ranked: IPv4 first, then the default route's
/// interface, then by interface name (for a stable answer).
fn rank_ips(
    interfaces: impl IntoIterator<Item = (String, Vec<IpAddr>)>,
    default_iface: Option<&str>,
) -> Vec<IpAddr> {
    let mut ranked: Vec<(bool, bool, String, IpAddr)> = interfaces
        .into_iter()
        .flat_map(|(name, ips)| {
            let not_default = default_iface != Some(name.as_str());
            ips.into_iter()
                .filter(is_usable)
                .map(move |ip| (ip.is_ipv6(), not_default, name.clone(), ip))
        })
        .collect();
    ranked.sort();
    let mut seen = std::collections::HashSet::new();
    ranked
        .into_iter()
        .map(|r| r.3)
        .filter(|ip| seen.insert(*ip))
        .collect()
}

fn is_usable(ip: &IpAddr) -> bool {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || link_local)
}

/// The interface of the IPv4 default route in `/proc/net/route` text.
fn default_route_interface(route_table: &str) -> Option<String> {
    route_table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [iface, "00000000", _gateway, _flags, _refcnt, _use, _metric, "00000000", ..] => {
                Some((*iface).to_owned())
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_are_go_names() {
        assert_eq!(go_arch("x86_64", true), "amd64");
        assert_eq!(go_arch("aarch64", true), "arm64");
        assert_eq!(go_arch("arm", true), "arm");
        assert_eq!(go_arch("x86", true), "386");
        assert_eq!(go_arch("powerpc64", true), "ppc64le");
        assert_eq!(go_arch("powerpc64", false), "ppc64");
        assert_eq!(go_arch("riscv64", true), "riscv64");
        assert_eq!(go_arch("s390x", false), "s390x");
        assert_eq!(go_arch("loongarch64", true), "loong64");
    }

    #[test]
    fn pretty_name_is_unquoted() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(pretty_name("PRETTY_NAME=Alpine").as_deref(), Some("Alpine"));
        assert_eq!(pretty_name("PRETTY_NAME='Arch'").as_deref(), Some("Arch"));
        assert_eq!(pretty_name("NAME=x\nPRETTY_NAME=\"\""), None);
        assert_eq!(pretty_name(""), None);
    }

    #[test]
    fn default_route_comes_from_the_zero_destination() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_route_interface(table).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
    }

    #[test]
    fn ips_rank_ipv4_and_the_default_route_first() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let interfaces = vec![
            ("lo".to_owned(), vec![ip("127.0.0.1"), ip("::1")]),
            ("docker0".to_owned(), vec![ip("172.17.0.1")]),
            (
                "eth0".to_owned(),
                vec![ip("fe80::1"), ip("2001:db8::5"), ip("192.168.1.5")],
            ),
            ("wlan0".to_owned(), vec![ip("169.254.3.3"), ip("10.0.0.9")]),
        ];
        assert_eq!(
            rank_ips(interfaces.clone(), Some("eth0")),
            vec![
                ip("192.168.1.5"),
                ip("172.17.0.1"),
                ip("10.0.0.9"),
                ip("2001:db8::5")
            ]
        );
        assert_eq!(
            rank_ips(interfaces, None),
            vec![
                ip("172.17.0.1"),
                ip("192.168.1.5"),
                ip("10.0.0.9"),
                ip("2001:db8::5")
            ]
        );
    }

    #[test]
    fn reading_this_host_gives_plausible_facts() {
        let (mut probe, mut facts) = HostProbe::read(Path::new("/nonexistent/apiary/data"));
        assert!(facts.cpu_cores >= 1);
        assert!(!facts.architecture.is_empty());
        assert!(!facts.os_image.is_empty());
        assert!(facts.host_ips.iter().all(is_usable));
        let before = facts.memory_bytes;
        probe.refresh(&mut facts);
        assert!(before == 0 || facts.memory_bytes > 0);
    }
}
