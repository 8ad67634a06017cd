//! Live migration (docs/migration.md): the addresses QEMU's `migrate` and `-incoming` take
//! (`tcp:HOST:PORT`, `unix:PATH`), the stream between the two rvmm processes and its framing
//! (`wire`), the source's pre-copy thread (`precopy`: every page once, then rounds of the
//! pages KVM's dirty log names) and what `query-migrate` and `migrate-set-parameters` report
//! and take. What needs the VMM itself (pausing the vCPUs and reading their state at the
//! end, restoring it on the destination) is `vmm::migrate`.

pub mod precopy;
pub mod wire;
pub mod worker;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use crate::config::announce::AnnounceParams;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a migration address was refused, or a migration failed.
#[derive(Debug, Error)]
pub enum MigrationError {
    #[error("{uri}: {rule}")]
    BadUri { uri: String, rule: String },
    #[error("{uri}: address in use")]
    InUse { uri: String },
    #[error("{uri}: {what}: {source}")]
    Io {
        uri: String,
        what: &'static str,
        source: std::io::Error,
    },
    /// The stream broke or carried something unexpected.
    #[error("{0}")]
    Protocol(String),
    /// The destination refused the source's VM (its reason).
    #[error("the destination refused the migration: {0}")]
    Refused(String),
    #[error("cancelled by migrate_cancel")]
    Cancelled,
    /// The final phase failed after the source handed its disks over, and it could not
    /// lock them again: it stays paused rather than risk a second writer.
    #[error(
        "{failure}; the source handed its disks over and cannot lock them again ({lock}): \
         it stays paused"
    )]
    DisksNotBack { failure: String, lock: String },
}

/// Where a migration goes (`migrate`) or comes from (`--incoming`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationUri {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl MigrationUri {
    /// Parses `tcp:HOST:PORT` (HOST a name, an IPv4 address or `[IPv6]`) or `unix:PATH`.
    pub fn parse(text: &str) -> Result<MigrationUri, MigrationError> {
        let bad = |rule: &str| MigrationError::BadUri {
            uri: text.to_string(),
            rule: rule.to_string(),
        };
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("unix: needs a socket path (unix:PATH)"));
            }
            return Ok(MigrationUri::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("tcp: needs a host and a port (tcp:HOST:PORT)"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(bad("tcp: needs a host before the port (tcp:HOST:PORT)"));
            }
            let port: u16 = port
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
            return Ok(MigrationUri::Tcp {
                host: host.to_string(),
                port,
            });
        }
        Err(bad(
            "a migration address is tcp:HOST:PORT or unix:PATH (no other transport is supported)",
        ))
    }
}

impl std::fmt::Display for MigrationUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationUri::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp:[{host}]:{port}")
            }
            MigrationUri::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            MigrationUri::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The destination's listening socket, bound before its VM is built.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener, String),
    Unix(UnixListener, PathBuf, String),
}

impl Listener {
    /// Binds and listens on `uri` (`--incoming`; `option` names it in messages). A unix
    /// socket path that exists is refused as in use (it is not removed).
    pub fn bind(uri: &MigrationUri, option: &str) -> Result<Listener, MigrationError> {
        let name = format!("{option} {uri}");
        let io = |what, source| MigrationError::Io {
            uri: name.clone(),
            what,
            source,
        };
        match uri {
            MigrationUri::Tcp { host, port } => {
                let addrs: Vec<_> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| io("cannot resolve the host", e))?
                    .collect();
                match TcpListener::bind(&addrs[..]) {
                    Ok(l) => Ok(Listener::Tcp(l, name)),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                        Err(MigrationError::InUse { uri: name })
                    }
                    Err(e) => Err(io("cannot listen", e)),
                }
            }
            MigrationUri::Unix(path) => match UnixListener::bind(path) {
                Ok(l) => Ok(Listener::Unix(l, path.clone(), name)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    Err(MigrationError::InUse { uri: name })
                }
                Err(e) => Err(io("cannot listen", e)),
            },
        }
    }

    /// `--incoming URI` as given, for messages.
    pub fn name(&self) -> &str {
        match self {
            Listener::Tcp(_, n) | Listener::Unix(_, _, n) => n,
        }
    }

    /// Waits for the one connection a migration is.
    pub fn accept(&self) -> Result<wire::Conn, MigrationError> {
        let io = |source| MigrationError::Io {
            uri: self.name().to_string(),
            what: "accept",
            source,
        };
        match self {
            Listener::Tcp(l, _) => {
                let (s, _) = l.accept().map_err(io)?;
                let _ = s.set_nodelay(true);
                Ok(wire::Conn::Tcp(s))
            }
            Listener::Unix(l, _, _) => Ok(wire::Conn::Unix(l.accept().map_err(io)?.0)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path, _) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The addresses of an IP literal or `localhost`, found without the resolver (no file, no
/// DNS query).
fn literal_addrs(host: &str, port: u16) -> Option<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(vec![SocketAddr::new(ip, port)]);
    }
    host.eq_ignore_ascii_case("localhost").then(|| {
        vec![
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
        ]
    })
}

impl MigrationUri {
    /// Under `--sandbox on`, the migration thread's filter (`sandbox::Role::Migration`)
    /// opens no file and no datagram socket, so it cannot resolve a host name (/etc/hosts,
    /// DNS): a `tcp:` host must be an IP address or `localhost`.
    pub fn check_sandboxed(&self) -> Result<(), MigrationError> {
        match self {
            MigrationUri::Tcp { host, port }
                if crate::sandbox::mode() == crate::sandbox::SandboxMode::On
                    && literal_addrs(host, *port).is_none() =>
            {
                Err(MigrationError::BadUri {
                    uri: self.to_string(),
                    rule: format!(
                        "under --sandbox on the migration thread does not resolve host names \
                         (its seccomp filter opens no file and sends no DNS query); give \
                         {host}'s IP address (tcp:192.0.2.1:{port}, tcp:[2001:db8::1]:{port}) \
                         or localhost"
                    ),
                })
            }
            _ => Ok(()),
        }
    }
}

/// Connects to the destination at `uri` (an IP literal or `localhost` without the
/// resolver: see [`MigrationUri::check_sandboxed`]).
pub fn connect(uri: &MigrationUri) -> Result<wire::Conn, MigrationError> {
    let io = |what, source| MigrationError::Io {
        uri: uri.to_string(),
        what,
        source,
    };
    match uri {
        MigrationUri::Tcp { host, port } => {
            uri.check_sandboxed()?;
            let addrs = match literal_addrs(host, *port) {
                Some(a) => a,
                None => (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| io("cannot resolve the host", e))?
                    .collect(),
            };
            let mut last = std::io::Error::from(std::io::ErrorKind::NotFound);
            for a in addrs {
                // A blocking connect (the migration thread's filter has no fcntl/ioctl for
                // a non-blocking one).
                match TcpStream::connect(a) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(wire::Conn::Tcp(s));
                    }
                    Err(e) => last = e,
                }
            }
            Err(io("cannot connect", last))
        }
        MigrationUri::Unix(path) => UnixStream::connect(path)
            .map(wire::Conn::Unix)
            .map_err(|e| io("cannot connect", e)),
    }
}

/// `query-migrate`'s status (QEMU's MigrationStatus, the values rvmm uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationStatus {
    Setup,
    Active,
    Completed,
    Failed,
    Cancelled,
    /// Paused, waiting for `migrate-continue` (capability `pause-before-switchover`).
    #[serde(rename = "pre-switchover")]
    PreSwitchover,
    /// Paused, sending the machine state (after `pre-switchover`).
    Device,
}

impl MigrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Setup => "setup",
            MigrationStatus::Active => "active",
            MigrationStatus::Completed => "completed",
            MigrationStatus::Failed => "failed",
            MigrationStatus::Cancelled => "cancelled",
            MigrationStatus::PreSwitchover => "pre-switchover",
            MigrationStatus::Device => "device",
        }
    }

    /// Whether the migration is over.
    pub fn finished(self) -> bool {
        matches!(
            self,
            MigrationStatus::Completed | MigrationStatus::Failed | MigrationStatus::Cancelled
        )
    }
}

impl std::str::FromStr for MigrationStatus {
    type Err = ();

    /// QEMU's name of a status rvmm has (`migrate-continue`'s `state`).
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            MigrationStatus::Setup,
            MigrationStatus::Active,
            MigrationStatus::Completed,
            MigrationStatus::Failed,
            MigrationStatus::Cancelled,
            MigrationStatus::PreSwitchover,
            MigrationStatus::Device,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or(())
    }
}

/// The migration capabilities rvmm has (`migrate-set-capabilities`,
/// `query-migrate-capabilities`), by QEMU's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationCapabilities {
    /// MIGRATION events at each status change. On by default (QEMU's default is off).
    pub events: bool,
    /// Once the VM is paused, wait in `pre-switchover` for `migrate-continue` before the
    /// machine state goes.
    pub pause_before_switchover: bool,
}

impl Default for MigrationCapabilities {
    fn default() -> Self {
        MigrationCapabilities {
            events: true,
            pause_before_switchover: false,
        }
    }
}

/// One capability and its state, QEMU's MigrationCapabilityStatus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityState {
    pub capability: String,
    pub state: bool,
}

impl MigrationCapabilities {
    /// Every capability rvmm knows, by QEMU's name, in `query-migrate-capabilities` order.
    pub const NAMES: &'static [&'static str] = &["events", "pause-before-switchover"];

    /// The capability named `name`.
    fn slot(&mut self, name: &str) -> Option<&mut bool> {
        match name {
            "events" => Some(&mut self.events),
            "pause-before-switchover" => Some(&mut self.pause_before_switchover),
            _ => None,
        }
    }

    /// Sets capability `name`; an error naming it and the supported ones if rvmm has
    /// no such capability.
    pub fn set(&mut self, name: &str, state: bool) -> Result<(), String> {
        *self.slot(name).ok_or_else(|| {
            format!(
                "migration capability '{name}' is not supported by rvmm (it has: {})",
                Self::NAMES.join(", ")
            )
        })? = state;
        Ok(())
    }

    /// Every capability and its state.
    pub fn list(&self) -> Vec<CapabilityState> {
        let mut c = *self;
        Self::NAMES
            .iter()
            .map(|n| CapabilityState {
                capability: n.to_string(),
                state: c.slot(n).is_some_and(|s| *s),
            })
            .collect()
    }
}

/// QEMU's MigrationStats (`ram`), the members rvmm measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RamStats {
    /// Bytes sent on the stream (page headers and data).
    pub transferred: u64,
    /// Bytes of guest RAM still to send (the last dirty set).
    pub remaining: u64,
    /// Guest RAM.
    pub total: u64,
    /// Zero pages sent as a marker.
    pub duplicate: u64,
    /// Pages sent with their data.
    pub normal: u64,
    /// Pages dirtied per second in the last round.
    pub dirty_pages_rate: u64,
    /// Throughput of the stream so far, in Mbit/s.
    pub mbps: f64,
    /// Dirty-log rounds done.
    pub dirty_sync_count: u64,
}

/// QEMU's MigrationInfo (`query-migrate`); `{}` before any migration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrationInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<MigrationStatus>,
    /// Milliseconds since `migrate` (to the end once it is over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_time: Option<u64>,
    /// Milliseconds from `migrate` to the destination's ACCEPT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_time: Option<u64>,
    /// Milliseconds the VM was paused (once completed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime: Option<u64>,
    /// Milliseconds the final phase is expected to take at the measured bandwidth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_downtime: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ram: Option<RamStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_desc: Option<String>,
}

/// The default downtime limit, QEMU's (ms).
pub const DEFAULT_DOWNTIME_LIMIT: u64 = 300;

/// `migrate-set-parameters` / `query-migrate-parameters` (the members rvmm has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct MigrationParameters {
    /// How long the VM may stay paused for the final phase, in ms.
    pub downtime_limit: u64,
    /// Bytes per second the stream may use; 0 is no limit.
    pub max_bandwidth: u64,
    /// The NICs' self-announcement after a migration (QEMU's announce-* parameters, ms
    /// and a count): the destination's own are used, which `rvmm run --incoming` keeps at
    /// QEMU's defaults.
    pub announce_initial: u64,
    pub announce_max: u64,
    pub announce_rounds: u64,
    pub announce_step: u64,
}

impl MigrationParameters {
    /// The announce-* members as announce-self's parameters.
    pub fn announce(&self) -> AnnounceParams {
        AnnounceParams {
            initial: self.announce_initial,
            max: self.announce_max,
            rounds: self.announce_rounds,
            step: self.announce_step,
        }
    }
}

impl Default for MigrationParameters {
    fn default() -> Self {
        let a = AnnounceParams::default();
        MigrationParameters {
            downtime_limit: DEFAULT_DOWNTIME_LIMIT,
            max_bandwidth: 0,
            announce_initial: a.initial,
            announce_max: a.max,
            announce_rounds: a.rounds,
            announce_step: a.step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_bad_ones_name_the_rule() {
        assert_eq!(
            MigrationUri::parse("tcp:127.0.0.1:4444").unwrap(),
            MigrationUri::Tcp {
                host: "127.0.0.1".into(),
                port: 4444
            }
        );
        assert_eq!(
            MigrationUri::parse("tcp:[::1]:5").unwrap().to_string(),
            "tcp:[::1]:5"
        );
        assert_eq!(
            MigrationUri::parse("unix:/tmp/m.sock").unwrap(),
            MigrationUri::Unix("/tmp/m.sock".into())
        );
        let e = |t: &str| MigrationUri::parse(t).unwrap_err().to_string();
        assert_eq!(
            e("exec:cat"),
            "exec:cat: a migration address is tcp:HOST:PORT or unix:PATH (no other transport is supported)"
        );
        assert_eq!(
            e("tcp:host:99999"),
            "tcp:host:99999: the port must be a number from 1 to 65535"
        );
        assert!(e("tcp:4444").contains("tcp:HOST:PORT"));
        assert!(e("unix:").contains("unix:PATH"));
    }

    #[test]
    fn a_port_in_use_is_one_message() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let uri = MigrationUri::parse(&format!("tcp:127.0.0.1:{port}")).unwrap();
        assert_eq!(
            Listener::bind(&uri, "--incoming").unwrap_err().to_string(),
            format!("--incoming tcp:127.0.0.1:{port}: address in use")
        );
    }

    #[test]
    fn capabilities_list_by_qemus_names_and_an_unknown_one_is_named() {
        let mut c = MigrationCapabilities::default();
        assert_eq!(
            serde_json::to_value(c.list()).unwrap(),
            serde_json::json!([
                {"capability": "events", "state": true},
                {"capability": "pause-before-switchover", "state": false},
            ])
        );
        c.set("pause-before-switchover", true).unwrap();
        c.set("events", false).unwrap();
        assert!(c.pause_before_switchover && !c.events);
        assert_eq!(
            c.set("xbzrle", true).unwrap_err(),
            "migration capability 'xbzrle' is not supported by rvmm (it has: events, \
             pause-before-switchover)"
        );
        assert_eq!(
            "pre-switchover".parse::<MigrationStatus>(),
            Ok(MigrationStatus::PreSwitchover)
        );
        assert_eq!(
            serde_json::to_value(MigrationStatus::PreSwitchover).unwrap(),
            "pre-switchover"
        );
        assert_eq!(MigrationStatus::Device.as_str(), "device");
        assert!(!MigrationStatus::PreSwitchover.finished());
        assert_eq!("later".parse::<MigrationStatus>(), Err(()));
    }

    #[test]
    fn query_migrate_has_qemus_member_names() {
        let info = MigrationInfo {
            status: Some(MigrationStatus::Active),
            expected_downtime: Some(3),
            ram: Some(RamStats::default()),
            ..Default::default()
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["status"], "active");
        assert_eq!(v["expected-downtime"], 3);
        assert_eq!(v["ram"]["dirty-pages-rate"], 0);
        assert_eq!(v["ram"]["dirty-sync-count"], 0);
        assert_eq!(
            serde_json::to_value(MigrationInfo::default()).unwrap(),
            serde_json::json!({})
        );
    }
}
