//! `--net tap=NAME[,mac=MAC]`, `--net tap[,mac=MAC]` and `--net fd=N[,mac=MAC]`
//! (repeatable): the virtio-net devices, each on a tap — named, created by rvmm, or already
//! open on descriptor N, inherited from the launcher (libvirt, Nomad-style drivers, QEMU's
//! `-netdev tap,fd=N`). Only the text is checked here; opening or taking the tap is
//! `host::tap`'s work when the VM is built. A NIC without `mac=` gets QEMU's default,
//! 52:54:00:12:34:56 for the first and one more in the last byte for each next NIC.

use std::fmt;

use thiserror::Error;

/// The longest interface name (`IFNAMSIZ - 1`).
pub const MAX_TAP_NAME: usize = 15;
/// The most NICs: one virtio-mmio transport each.
pub const MAX_NETS: usize = 8;

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// QEMU's default MAC of NIC `index`: 52:54:00:12:34:56 + index.
    pub fn default_for(index: usize) -> Mac {
        Mac([
            0x52,
            0x54,
            0x00,
            0x12,
            0x34,
            0x56u8.wrapping_add(index as u8),
        ])
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`); refuses multicast and all-zero addresses.
    pub fn parse(text: &str) -> Result<Mac, NetOptionError> {
        let bad = || NetOptionError::BadMac(text.to_string());
        let parts: Vec<&str> = text.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (b, p) in mac.iter_mut().zip(parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if mac[0] & 1 != 0 {
            return Err(NetOptionError::Multicast(text.to_string()));
        }
        if mac == [0; 6] {
            return Err(NetOptionError::ZeroMac);
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// One NIC as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The tap to attach to; `None` (and no `fd`) makes rvmm create one (the kernel names it
    /// tapN).
    pub tap: Option<String>,
    pub mac: Mac,
    /// An inherited, already open tap descriptor (`fd=N`, 3 or above); `tap` is `None` then.
    pub fd: Option<i32>,
}

/// Why a `--net` value is not a NIC.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NetOptionError {
    #[error(
        "--net: '{0}' has no tap (expected tap=NAME[,mac=MAC], tap[,mac=MAC] or fd=N[,mac=MAC])"
    )]
    NoTap(String),
    #[error("--net: tap and fd= are both given; a NIC is on one tap (tap=NAME, tap or fd=N)")]
    TapAndFd,
    #[error("--net fd={0}: expected a file descriptor number (3 or above)")]
    BadFd(String),
    #[error("--net fd={0}: fd=0..2 are stdio; the tap's descriptor is 3 or above")]
    StdioFd(i32),
    #[error("--net fd={fd} is given to NIC {first} and NIC {second}; a tap takes one NIC")]
    DuplicateFd {
        fd: i32,
        first: usize,
        second: usize,
    },
    #[error("--net: tap= is empty (leave out '=' to let rvmm create a tap: --net tap)")]
    EmptyTap,
    #[error("--net: tap={0}: an interface name is at most {MAX_TAP_NAME} bytes, without '/', ':', spaces or commas")]
    BadTap(String),
    #[error("--net: '{0}' is not KEY=VALUE (keys: tap, fd, mac)")]
    NotKeyValue(String),
    #[error("--net: unknown key '{0}' (keys: tap, fd, mac)")]
    UnknownKey(String),
    #[error("--net: '{key}' is given twice")]
    Repeated { key: String },
    #[error("--net: mac={0}: expected six hex bytes like 52:54:00:12:34:56")]
    BadMac(String),
    #[error(
        "--net: mac={0}: a multicast address (the first byte is odd); a NIC needs a unicast one"
    )]
    Multicast(String),
    #[error("--net: mac=00:00:00:00:00:00: the all-zero address is not a NIC's")]
    ZeroMac,
    #[error("--net: mac={mac} is given to NIC {first} and NIC {second}")]
    DuplicateMac {
        mac: String,
        first: usize,
        second: usize,
    },
    #[error("--net: tap={tap} is given to NIC {first} and NIC {second}; a tap takes one NIC")]
    DuplicateTap {
        tap: String,
        first: usize,
        second: usize,
    },
    #[error("--net: {count} NICs given; at most {MAX_NETS} (one virtio-mmio slot each)")]
    TooMany { count: usize },
}

/// Checks an interface name as the kernel's `dev_valid_name` does.
fn valid_ifname(name: &str) -> bool {
    name.len() <= MAX_TAP_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':' && b != b',')
}

impl NetConfig {
    /// Parses the `--net` value of NIC `index` (which picks the default MAC).
    pub fn parse(text: &str, index: usize) -> Result<NetConfig, NetOptionError> {
        let (mut tap, mut mac, mut fd) = (None::<Option<String>>, None, None);
        for item in text.split(',') {
            if item == "tap" {
                if tap.replace(None).is_some() {
                    return Err(NetOptionError::Repeated { key: "tap".into() });
                }
                continue;
            }
            let Some((key, value)) = item.split_once('=') else {
                return Err(NetOptionError::NotKeyValue(item.to_string()));
            };
            let taken = match key {
                "tap" => tap.replace(Some(value.to_string())).is_some(),
                "mac" => mac.replace(value.to_string()).is_some(),
                "fd" => fd.replace(value.to_string()).is_some(),
                _ => return Err(NetOptionError::UnknownKey(key.to_string())),
            };
            if taken {
                return Err(NetOptionError::Repeated {
                    key: key.to_string(),
                });
            }
        }
        let fd = match fd {
            None => None,
            Some(_) if tap.is_some() => return Err(NetOptionError::TapAndFd),
            Some(v) => {
                let n: i32 = v.parse().map_err(|_| NetOptionError::BadFd(v.clone()))?;
                if n < 0 || v.starts_with('+') {
                    return Err(NetOptionError::BadFd(v));
                }
                if n <= 2 {
                    return Err(NetOptionError::StdioFd(n));
                }
                Some(n)
            }
        };
        let tap = match (tap, fd) {
            (Some(t), _) => t,
            (None, Some(_)) => None,
            (None, None) => return Err(NetOptionError::NoTap(text.to_string())),
        };
        if let Some(name) = &tap {
            if name.is_empty() {
                return Err(NetOptionError::EmptyTap);
            }
            if !valid_ifname(name) {
                return Err(NetOptionError::BadTap(name.escape_debug().to_string()));
            }
        }
        let mac = match mac {
            Some(m) => Mac::parse(&m)?,
            None => Mac::default_for(index),
        };
        Ok(NetConfig { tap, mac, fd })
    }

    /// Parses every `--net` value; two NICs may share neither a MAC nor a tap.
    pub fn parse_all(values: &[String]) -> Result<Vec<NetConfig>, NetOptionError> {
        if values.len() > MAX_NETS {
            return Err(NetOptionError::TooMany {
                count: values.len(),
            });
        }
        let nets = values
            .iter()
            .enumerate()
            .map(|(i, v)| NetConfig::parse(v, i))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(&nets)?;
        Ok(nets)
    }

    /// The option text that gives this NIC back.
    pub fn option(&self) -> String {
        match (&self.tap, self.fd) {
            (Some(t), _) => format!("tap={t},mac={}", self.mac),
            (None, Some(fd)) => format!("fd={fd},mac={}", self.mac),
            (None, None) => format!("tap,mac={}", self.mac),
        }
    }
}

/// Two NICs may share neither a MAC nor a named tap nor a descriptor (NICs are numbered
/// from 0).
pub fn check_unique(nets: &[NetConfig]) -> Result<(), NetOptionError> {
    for (second, b) in nets.iter().enumerate() {
        for (first, a) in nets[..second].iter().enumerate() {
            if a.mac == b.mac {
                return Err(NetOptionError::DuplicateMac {
                    mac: a.mac.to_string(),
                    first,
                    second,
                });
            }
            if a.tap.is_some() && a.tap == b.tap {
                return Err(NetOptionError::DuplicateTap {
                    tap: a.tap.clone().unwrap_or_default(),
                    first,
                    second,
                });
            }
            if let (Some(fd), Some(other)) = (a.fd, b.fd) {
                if fd == other {
                    return Err(NetOptionError::DuplicateFd { fd, first, second });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        NetConfig::parse(text, 0).unwrap_err().to_string()
    }

    #[test]
    fn parses_keys_and_default_macs() {
        let n = NetConfig::parse("tap=tap7,mac=02:00:00:AA:bb:01", 0).unwrap();
        assert_eq!(n.tap.as_deref(), Some("tap7"));
        assert_eq!(n.mac, Mac([2, 0, 0, 0xaa, 0xbb, 1]));
        assert_eq!(n.option(), "tap=tap7,mac=02:00:00:aa:bb:01");
        let n = NetConfig::parse("tap", 2).unwrap();
        assert_eq!(n.tap, None);
        assert_eq!(n.mac.to_string(), "52:54:00:12:34:58");
        assert_eq!(n.option(), "tap,mac=52:54:00:12:34:58");
        let all = NetConfig::parse_all(&["tap=a".into(), "tap".into()]).unwrap();
        assert_eq!(all[0].mac.to_string(), "52:54:00:12:34:56");
        assert_eq!(all[1].mac.to_string(), "52:54:00:12:34:57");
        assert_eq!(
            NetConfig::parse("mac=52-54-00-00-00-01,tap=x", 0)
                .unwrap()
                .mac
                .to_string(),
            "52:54:00:00:00:01"
        );
    }

    #[test]
    fn an_inherited_descriptor_is_a_tap() {
        let n = NetConfig::parse("fd=7,mac=02:00:00:00:00:07", 0).unwrap();
        assert_eq!((n.tap.as_deref(), n.fd), (None, Some(7)));
        assert_eq!(n.option(), "fd=7,mac=02:00:00:00:00:07");
        assert_eq!(NetConfig::parse(&n.option(), 0).unwrap(), n);
        assert_eq!(
            NetConfig::parse("fd=3", 1).unwrap().option(),
            "fd=3,mac=52:54:00:12:34:57"
        );
        assert_eq!(
            err("fd=1"),
            "--net fd=1: fd=0..2 are stdio; the tap's descriptor is 3 or above"
        );
        for bad in ["", "-4", "+4", "x", "99999999999"] {
            assert_eq!(
                err(&format!("fd={bad}")),
                format!("--net fd={bad}: expected a file descriptor number (3 or above)")
            );
        }
        let both = "--net: tap and fd= are both given; a NIC is on one tap (tap=NAME, tap or fd=N)";
        assert_eq!(err("tap=a,fd=5"), both);
        assert_eq!(err("fd=5,tap"), both);
        assert_eq!(err("fd=5,fd=6"), "--net: 'fd' is given twice");
        let dup = NetConfig::parse_all(&["fd=5".into(), "tap".into(), "fd=5".into()]);
        assert_eq!(
            dup.unwrap_err().to_string(),
            "--net fd=5 is given to NIC 0 and NIC 2; a tap takes one NIC"
        );
        assert!(NetConfig::parse_all(&["fd=5".into(), "fd=6".into(), "tap".into()]).is_ok());
    }

    #[test]
    fn nics_share_the_virtio_slots_with_disks() {
        let config = crate::config::VmConfig {
            disks: (0..5)
                .map(|i| crate::config::disk::DiskConfig::parse(&format!("path={i}")).unwrap())
                .collect(),
            nets: (0..4)
                .map(|i| NetConfig::parse(&format!("tap=t{i}"), i).unwrap())
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "9 virtio devices (5 --disk, 4 --net); at most 8, one virtio-mmio slot each"
        );
    }

    #[test]
    fn errors_name_the_option_value_and_rule() {
        assert_eq!(
            err("mac=52:54:00:00:00:01"),
            "--net: 'mac=52:54:00:00:00:01' has no tap (expected tap=NAME[,mac=MAC], \
             tap[,mac=MAC] or fd=N[,mac=MAC])"
        );
        assert_eq!(
            err("tap="),
            "--net: tap= is empty (leave out '=' to let rvmm create a tap: --net tap)"
        );
        assert_eq!(
            err("tap=a/b"),
            "--net: tap=a/b: an interface name is at most 15 bytes, without '/', ':', spaces \
             or commas"
        );
        assert!(err("tap=abcdefghijklmnop").starts_with("--net: tap=abcdefghijklmnop: "));
        assert_eq!(
            err("tap=a,model=e1000"),
            "--net: unknown key 'model' (keys: tap, fd, mac)"
        );
        assert_eq!(
            err("tap=a,vhost"),
            "--net: 'vhost' is not KEY=VALUE (keys: tap, fd, mac)"
        );
        assert_eq!(err("tap=a,tap=b"), "--net: 'tap' is given twice");
        assert_eq!(err("tap,tap"), "--net: 'tap' is given twice");
        assert_eq!(
            err("tap=a,mac=52:54:00:12:34"),
            "--net: mac=52:54:00:12:34: expected six hex bytes like 52:54:00:12:34:56"
        );
        assert_eq!(
            err("tap=a,mac=52:54:00:12:34:zz"),
            "--net: mac=52:54:00:12:34:zz: expected six hex bytes like 52:54:00:12:34:56"
        );
        assert_eq!(
            err("tap=a,mac=01:00:5e:00:00:01"),
            "--net: mac=01:00:5e:00:00:01: a multicast address (the first byte is odd); a NIC \
             needs a unicast one"
        );
        assert_eq!(
            err("tap=a,mac=00:00:00:00:00:00"),
            "--net: mac=00:00:00:00:00:00: the all-zero address is not a NIC's"
        );
        let dup = NetConfig::parse_all(&[
            "tap=a,mac=02:00:00:00:00:01".into(),
            "tap=b,mac=02:00:00:00:00:01".into(),
        ]);
        assert_eq!(
            dup.unwrap_err().to_string(),
            "--net: mac=02:00:00:00:00:01 is given to NIC 0 and NIC 1"
        );
        let dup = NetConfig::parse_all(&["tap=a".into(), "tap=a".into()]);
        assert_eq!(
            dup.unwrap_err().to_string(),
            "--net: tap=a is given to NIC 0 and NIC 1; a tap takes one NIC"
        );
        let nine: Vec<String> = (0..9).map(|i| format!("tap=t{i}")).collect();
        assert_eq!(
            NetConfig::parse_all(&nine).unwrap_err().to_string(),
            "--net: 9 NICs given; at most 8 (one virtio-mmio slot each)"
        );
    }
}
