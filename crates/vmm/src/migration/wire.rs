//! The migration stream (format `rvmm-migration`, version [`VERSION`]; docs/migration.md):
//! a sequence of frames, each a tag byte, the payload's length (u32, little-endian) and
//! the payload. The source sends HELLO (JSON), the destination answers ACCEPT or REFUSE
//! (the reason as text); then PAGES frames (entries of gpa u64 LE, kind u8: 0 a zero page,
//! 1 a data page followed by its 4096 bytes), one SYNC (empty) that the destination answers
//! with SYNCED once it has written every page sent before it, one STATE (JSON), and the
//! destination answers DONE once the VM runs there.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::MigrationError;
use crate::snapshot::SavedConfig;

/// The format's name in HELLO.
pub const FORMAT: &str = "rvmm-migration";
/// The version this rvmm speaks (2: SYNC and SYNCED).
pub const VERSION: u32 = 2;
/// A guest page.
pub const PAGE: usize = 4096;
/// The largest payload a frame may carry (a PAGES batch is far smaller).
const MAX_PAYLOAD: usize = 64 << 20;

/// The tags.
pub const HELLO: u8 = b'H';
pub const ACCEPT: u8 = b'A';
pub const REFUSE: u8 = b'R';
pub const PAGES: u8 = b'P';
pub const STATE: u8 = b'S';
pub const DONE: u8 = b'D';
pub const SYNC: u8 = b'Y';
pub const SYNCED: u8 = b'y';

/// A page entry's kinds.
pub const ZERO_PAGE: u8 = 0;
pub const DATA_PAGE: u8 = 1;

/// How long a write may wait with the peer taking nothing before the migration fails: a
/// link that went away (no RST, no FIN) would otherwise block the source until TCP gives up
/// (many minutes). Set by the migration thread right after it connects.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection, either transport.
#[derive(Debug)]
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    /// Limits how long a read may wait (`None`: forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) {
        let _ = match self {
            Conn::Tcp(s) => s.set_read_timeout(t),
            Conn::Unix(s) => s.set_read_timeout(t),
        };
    }

    /// Limits how long a write may wait for room in the send buffer (`None`: forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) {
        let _ = match self {
            Conn::Tcp(s) => s.set_write_timeout(t),
            Conn::Unix(s) => s.set_write_timeout(t),
        };
    }

    /// Ends both directions (the peer's reads see the end).
    pub fn shutdown(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }

    /// Writes one frame.
    pub fn send(&mut self, tag: u8, payload: &[u8]) -> Result<(), MigrationError> {
        let mut head = [0u8; 5];
        head[0] = tag;
        head[1..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        self.write_all(&head)
            .and_then(|()| self.write_all(payload))
            .map_err(|e| {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
                    MigrationError::Protocol(format!(
                        "the peer took nothing for {} s (is the link down?)",
                        SEND_TIMEOUT.as_secs()
                    ))
                } else {
                    MigrationError::Protocol(format!("sending to the peer: {e}"))
                }
            })
    }

    /// Reads one frame: its tag and payload. `during` says what was expected, for messages.
    pub fn recv(&mut self, during: &str) -> Result<(u8, Vec<u8>), MigrationError> {
        let lost = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                MigrationError::Protocol(format!("the peer closed the connection {during}"))
            } else if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                MigrationError::Protocol(format!("no answer from the peer {during}"))
            } else {
                MigrationError::Protocol(format!("reading from the peer {during}: {e}"))
            }
        };
        let mut head = [0u8; 5];
        self.read_exact(&mut head).map_err(lost)?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(MigrationError::Protocol(format!(
                "a frame of {len} bytes {during} (at most {MAX_PAYLOAD}): not an rvmm migration stream"
            )));
        }
        let mut payload = vec![0u8; len];
        self.read_exact(&mut payload).map_err(lost)?;
        Ok((head[0], payload))
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One guest RAM range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RamRange {
    pub guest_addr: u64,
    pub size: u64,
}

/// One present vCPU's slot and CPUID table (snapshot's entry layout).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloVcpu {
    pub slot: u32,
    pub cpuid: Vec<[u32; 7]>,
}

/// What the source says first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub format: String,
    pub version: u32,
    pub rvmm_version: String,
    pub config: SavedConfig,
    pub vcpus: Vec<HelloVcpu>,
    pub ram: Vec<RamRange>,
}

/// Decodes a HELLO, checking the format and version first.
pub fn parse_hello(payload: &[u8]) -> Result<Hello, String> {
    let v: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the source's HELLO is not JSON ({e})"))?;
    let format = v.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT {
        return Err(format!(
            "not an rvmm migration (format {format:?}, expected {FORMAT:?})"
        ));
    }
    let version = v.get("version").cloned().unwrap_or_default();
    if version.as_u64() != Some(u64::from(VERSION)) {
        return Err(format!(
            "migration format v{version} from the source, this rvmm speaks v{VERSION}"
        ));
    }
    serde_json::from_value(v).map_err(|e| format!("the source's HELLO: {e}"))
}

/// A PAGES batch being filled.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub pages: usize,
}

/// Pages per batch.
pub const BATCH_PAGES: usize = 256;

impl Batch {
    pub fn push_zero(&mut self, gpa: u64) {
        self.bytes.extend_from_slice(&gpa.to_le_bytes());
        self.bytes.push(ZERO_PAGE);
        self.pages += 1;
    }

    pub fn push_data(&mut self, gpa: u64, page: &[u8]) {
        self.bytes.extend_from_slice(&gpa.to_le_bytes());
        self.bytes.push(DATA_PAGE);
        self.bytes.extend_from_slice(page);
        self.pages += 1;
    }

    pub fn full(&self) -> bool {
        self.pages >= BATCH_PAGES
    }
}

/// One entry of a received batch.
#[derive(Debug, PartialEq, Eq)]
pub enum PageEntry<'a> {
    Zero(u64),
    Data(u64, &'a [u8]),
}

/// Splits a PAGES payload into its entries.
pub fn parse_batch(payload: &[u8]) -> Result<Vec<PageEntry<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        if rest.len() < 9 {
            return Err("a page entry cut short".into());
        }
        let gpa = u64::from_le_bytes(rest[..8].try_into().unwrap_or_default());
        if gpa % PAGE as u64 != 0 {
            return Err(format!("page address {gpa:#x} is not 4 KiB aligned"));
        }
        match rest[8] {
            ZERO_PAGE => {
                out.push(PageEntry::Zero(gpa));
                rest = &rest[9..];
            }
            DATA_PAGE if rest.len() >= 9 + PAGE => {
                out.push(PageEntry::Data(gpa, &rest[9..9 + PAGE]));
                rest = &rest[9 + PAGE..];
            }
            DATA_PAGE => return Err("a data page cut short".into()),
            k => return Err(format!("page kind {k} (0 zero, 1 data)")),
        }
    }
    Ok(out)
}

/// Whether a page is all zero.
pub fn is_zero(page: &[u8]) -> bool {
    // SAFETY: u8 → u128 reinterpretation of initialized bytes; align_to keeps the edges as u8.
    let (head, body, tail) = unsafe { page.align_to::<u128>() };
    head.iter().all(|&b| b == 0) && body.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_and_damage_is_named() {
        let mut b = Batch::default();
        b.push_zero(0x1000);
        b.push_data(0x2000, &[7u8; PAGE]);
        let e = parse_batch(&b.bytes).unwrap();
        assert_eq!(e[0], PageEntry::Zero(0x1000));
        assert_eq!(e[1], PageEntry::Data(0x2000, &[7u8; PAGE][..]));
        assert!(parse_batch(&b.bytes[..b.bytes.len() - 1])
            .unwrap_err()
            .contains("cut short"));
        let mut odd = Batch::default();
        odd.push_zero(0x1001);
        assert!(parse_batch(&odd.bytes).unwrap_err().contains("aligned"));
    }

    #[test]
    fn hello_checks_format_and_version() {
        assert!(parse_hello(br#"{"format":"x"}"#)
            .unwrap_err()
            .contains("not an rvmm migration"));
        assert_eq!(
            parse_hello(br#"{"format":"rvmm-migration","version":1}"#).unwrap_err(),
            "migration format v1 from the source, this rvmm speaks v2"
        );
    }
}
