//! `--metrics tcp:HOST:PORT | unix:PATH`: where the Prometheus endpoint listens.
//!
//! Only the text is checked here (an IP literal or `localhost`, a port from 1 to 65535, a
//! non-empty path that fits a socket address); whether the address can be bound is known
//! when the server starts (`control::metrics`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use thiserror::Error;

/// The longest socket path: `sun_path` holds 108 bytes with the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// Where the metrics endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for MetricsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsAddress::Tcp(a) => write!(f, "tcp:{a}"),
            MetricsAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Why a `--metrics` value is not an address.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MetricsAddressError {
    #[error("--metrics: '{0}' is not an address (expected tcp:HOST:PORT or unix:PATH)")]
    Scheme(String),
    #[error("--metrics: '{0}': expected tcp:HOST:PORT (an IPv6 host in brackets: tcp:[::1]:9100)")]
    TcpForm(String),
    #[error(
        "--metrics: '{host}' is not an IP address (expected e.g. 127.0.0.1, [::1] or localhost)"
    )]
    Host { host: String },
    #[error("--metrics: port '{0}' is not a number from 1 to 65535")]
    Port(String),
    #[error("--metrics: port 0 is not allowed: a scraper needs a known port (1 to 65535)")]
    PortZero,
    #[error("--metrics: unix: needs a socket path (unix:PATH)")]
    EmptyPath,
    #[error(
        "--metrics: unix:{path}: the path is {len} bytes, longer than a socket path may be \
         ({MAX_UNIX_PATH})"
    )]
    PathTooLong { path: String, len: usize },
    #[error("--metrics: unix:{0}: a socket path may not contain a NUL byte")]
    PathNul(String),
}

impl MetricsAddress {
    /// Parses `tcp:HOST:PORT` or `unix:PATH`.
    pub fn parse(text: &str) -> Result<MetricsAddress, MetricsAddressError> {
        if let Some(rest) = text.strip_prefix("tcp:") {
            return parse_tcp(text, rest).map(MetricsAddress::Tcp);
        }
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(MetricsAddressError::EmptyPath);
            }
            if path.contains('\0') {
                return Err(MetricsAddressError::PathNul(
                    path.escape_debug().to_string(),
                ));
            }
            if path.len() > MAX_UNIX_PATH {
                return Err(MetricsAddressError::PathTooLong {
                    path: path.to_string(),
                    len: path.len(),
                });
            }
            return Ok(MetricsAddress::Unix(PathBuf::from(path)));
        }
        Err(MetricsAddressError::Scheme(text.to_string()))
    }
}

fn parse_tcp(text: &str, rest: &str) -> Result<SocketAddr, MetricsAddressError> {
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, tail) = v6
            .split_once(']')
            .ok_or_else(|| MetricsAddressError::TcpForm(text.to_string()))?;
        let port = tail
            .strip_prefix(':')
            .ok_or_else(|| MetricsAddressError::TcpForm(text.to_string()))?;
        (host, port)
    } else {
        rest.rsplit_once(':')
            .ok_or_else(|| MetricsAddressError::TcpForm(text.to_string()))?
    };
    let ip: IpAddr = match host {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        // A bare IPv6 address must be bracketed (its colons would be ambiguous).
        h if h.contains(':') && !rest.starts_with('[') => {
            return Err(MetricsAddressError::TcpForm(text.to_string()))
        }
        h => h.parse().map_err(|_| MetricsAddressError::Host {
            host: h.to_string(),
        })?,
    };
    if rest.starts_with('[') && !ip.is_ipv6() {
        return Err(MetricsAddressError::Host {
            host: format!("[{host}]"),
        });
    }
    let port: u16 = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse()
            .map_err(|_| MetricsAddressError::Port(port.to_string()))?
    } else {
        return Err(MetricsAddressError::Port(port.to_string()));
    };
    if port == 0 {
        return Err(MetricsAddressError::PortZero);
    }
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        MetricsAddress::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn good_addresses() {
        let tcp = MetricsAddress::parse("tcp:127.0.0.1:9100").unwrap();
        assert_eq!(tcp, MetricsAddress::Tcp("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(tcp.to_string(), "tcp:127.0.0.1:9100");
        assert_eq!(
            MetricsAddress::parse("tcp:[::1]:65535").unwrap(),
            MetricsAddress::Tcp("[::1]:65535".parse().unwrap())
        );
        assert_eq!(
            MetricsAddress::parse("tcp:localhost:1").unwrap(),
            MetricsAddress::Tcp("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(
            MetricsAddress::parse("unix:/run/m.sock").unwrap(),
            MetricsAddress::Unix("/run/m.sock".into())
        );
    }

    #[test]
    fn bad_addresses_name_the_option_the_value_and_the_rule() {
        assert_eq!(
            err("127.0.0.1:9100"),
            "--metrics: '127.0.0.1:9100' is not an address (expected tcp:HOST:PORT or unix:PATH)"
        );
        assert_eq!(
            err("tcp:127.0.0.1:0"),
            "--metrics: port 0 is not allowed: a scraper needs a known port (1 to 65535)"
        );
        assert_eq!(
            err("tcp:127.0.0.1:65536"),
            "--metrics: port '65536' is not a number from 1 to 65535"
        );
        assert_eq!(
            err("tcp:127.0.0.1:-1"),
            "--metrics: port '-1' is not a number from 1 to 65535"
        );
        assert_eq!(
            err("tcp:127.0.0.1:"),
            "--metrics: port '' is not a number from 1 to 65535"
        );
        assert_eq!(
            err("tcp:example.com:80"),
            "--metrics: 'example.com' is not an IP address (expected e.g. 127.0.0.1, [::1] or localhost)"
        );
        assert!(err("tcp:9100").contains("expected tcp:HOST:PORT"));
        assert!(err("tcp:::1:80").contains("expected tcp:HOST:PORT"));
        assert!(err("tcp:[::1]80").contains("expected tcp:HOST:PORT"));
        assert!(err("tcp:[1.2.3.4]:80").contains("'[1.2.3.4]' is not an IP address"));
        assert_eq!(
            err("unix:"),
            "--metrics: unix: needs a socket path (unix:PATH)"
        );
        let long = format!("unix:/{}", "a".repeat(120));
        assert!(
            err(&long).contains("the path is 121 bytes, longer than a socket path may be (107)")
        );
    }
}
