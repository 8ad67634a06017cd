//! Reading a VMM's memory from /proc/PID/status and /proc/PID/smaps: which mappings are guest
//! RAM and how much of them is resident.
//!
//! Guest RAM is told apart by size: it is the anonymous read-write mappings of at least
//! [`GUEST_MAPPING_MIN_KIB`]. rvmm keeps the first 2 MiB of guest RAM out of THP, which
//! splits its one mmap into a `nh` mapping followed without a gap by a `hg` one: those two
//! (the `nh` one exactly 2 MiB) are joined before the size test. Nothing else a VMM maps comes close: glibc's malloc arenas are
//! 64 MiB reservations, thread stacks 8 MiB, QEMU's ROMs and rvmm's code a few MiB. The sizes
//! found must add up to the guest's memory, or the reading is refused.

use thiserror::Error;

/// The smallest mapping taken for guest RAM: above glibc's 64 MiB arena reservations, and
/// below the smallest guest benchmarked (128 MiB; rvmm splits RAM only at 3 GiB and 4 GiB).
pub const GUEST_MAPPING_MIN_KIB: u64 = 96 << 10;

/// The low part of guest RAM rvmm keeps out of THP (crates/vmm/src/memory/backing.rs).
const RVMM_SMALL_PAGES_KIB: u64 = 2 << 10;

/// Why a /proc text could not be read as expected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SmapsError {
    #[error("/proc/PID/status has no {0} line")]
    MissingField(String),
    #[error("/proc/PID/status: {field} is {value:?}, not a number of kB")]
    BadField { field: String, value: String },
    #[error("smaps: the guest RAM mappings (rw anonymous, >= {min} KiB) add up to {found} KiB, not the guest's {expected} KiB")]
    GuestSizeMismatch { found: u64, expected: u64, min: u64 },
}

/// The guest RAM mappings found in smaps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRamUse {
    /// How many mappings (rvmm maps RAM below and above the 32-bit gap separately).
    pub mappings: u32,
    /// Their total size, KiB.
    pub size_kib: u64,
    /// Their resident pages, KiB: what the guest and the VMM's loader touched.
    pub rss_kib: u64,
}

/// A `Name:   123 kB` field of /proc/PID/status, in KiB.
pub fn status_kib(status: &str, name: &str) -> Result<u64, SmapsError> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
        .ok_or_else(|| SmapsError::MissingField(name.into()))?;
    let value = line.trim();
    value
        .strip_suffix("kB")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| SmapsError::BadField {
            field: name.into(),
            value: value.into(),
        })
}

/// One mapping's header fields that matter here.
struct Mapping {
    start: u64,
    end: u64,
    /// `VmFlags` has `nh` (MADV_NOHUGEPAGE) / `hg` (MADV_HUGEPAGE).
    no_huge: bool,
    huge: bool,
    rw_private: bool,
    anonymous: bool,
    size_kib: u64,
    rss_kib: u64,
}

fn parse_header(line: &str) -> Option<Mapping> {
    // `start-end perms offset dev inode [path]`
    let mut f = line.split_whitespace();
    let range = f.next()?;
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let perms = f.next()?;
    let _offset = f.next()?;
    let _dev = f.next()?;
    let inode = f.next()?;
    let path = f.next();
    Some(Mapping {
        start,
        end,
        no_huge: false,
        huge: false,
        rw_private: perms.starts_with("rw") && perms.ends_with('p'),
        anonymous: inode == "0" && path.is_none(),
        size_kib: 0,
        rss_kib: 0,
    })
}

fn field_kib(line: &str, name: &str) -> Option<u64> {
    line.strip_prefix(name)?
        .strip_prefix(':')?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Finds the guest RAM mappings of a `guest_bytes` guest in an smaps text.
pub fn guest_ram(smaps: &str, guest_bytes: u64) -> Result<GuestRamUse, SmapsError> {
    let mut maps: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        if let Some(m) = parse_header(line) {
            maps.push(m);
        } else if let Some(m) = maps.last_mut() {
            if let Some(v) = field_kib(line, "Size") {
                m.size_kib = v;
            } else if let Some(v) = field_kib(line, "Rss") {
                m.rss_kib = v;
            } else if let Some(flags) = line.strip_prefix("VmFlags:") {
                m.no_huge = flags.split_whitespace().any(|f| f == "nh");
                m.huge = flags.split_whitespace().any(|f| f == "hg");
            }
        }
    }
    // One mmap split by advice: rvmm keeps the first 2 MiB of guest RAM out of THP, so a
    // `nh` mapping is followed without a gap by the `hg` rest. Those are joined; nothing else.
    let mut regions: Vec<Mapping> = Vec::new();
    for m in maps.into_iter().filter(|m| m.rw_private && m.anonymous) {
        match regions.last_mut() {
            Some(last)
                if last.end == m.start
                    && last.size_kib == RVMM_SMALL_PAGES_KIB
                    && last.no_huge
                    && !last.huge
                    && m.huge =>
            {
                last.end = m.end;
                last.huge = true;
                last.size_kib += m.size_kib;
                last.rss_kib += m.rss_kib;
            }
            _ => regions.push(m),
        }
    }
    let mut use_ = GuestRamUse::default();
    for m in regions
        .iter()
        .filter(|m| m.size_kib >= GUEST_MAPPING_MIN_KIB)
    {
        use_.mappings += 1;
        use_.size_kib += m.size_kib;
        use_.rss_kib += m.rss_kib;
    }
    let expected = guest_bytes >> 10;
    if use_.size_kib != expected {
        return Err(SmapsError::GuestSizeMismatch {
            found: use_.size_kib,
            expected,
            min: GUEST_MAPPING_MIN_KIB,
        });
    }
    Ok(use_)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\trvmm\nVmPeak:\t 9000 kB\nVmHWM:\t    3316 kB\nVmRSS:\t    3000 kB\nRssAnon:\t  900 kB\nThreads:\t2\n";

    #[test]
    fn status_fields() {
        assert_eq!(status_kib(STATUS, "VmHWM"), Ok(3316));
        assert_eq!(status_kib(STATUS, "VmRSS"), Ok(3000));
        assert_eq!(status_kib(STATUS, "RssAnon"), Ok(900));
        assert_eq!(
            status_kib(STATUS, "RssFile"),
            Err(SmapsError::MissingField("RssFile".into()))
        );
        assert_eq!(
            status_kib(STATUS, "Threads"),
            Err(SmapsError::BadField {
                field: "Threads".into(),
                value: "2".into()
            })
        );
        assert_eq!(
            SmapsError::BadField {
                field: "Threads".into(),
                value: "2".into()
            }
            .to_string(),
            "/proc/PID/status: Threads is \"2\", not a number of kB"
        );
    }

    /// Three mappings: guest RAM below 3 GiB and above 4 GiB (an 8 GiB guest), and a
    /// 64 MiB malloc arena and a file mapping, which are not guest RAM.
    const SMAPS: &str = "\
7f5ba9400000-7f5c69400000 rw-p 00000000 00:00 0 
Size:            3145728 kB
KernelPageSize:        4 kB
Rss:                 412 kB
Pss:                 412 kB
7f5a69400000-7f5ba9400000 rw-p 00000000 00:00 0 
Size:            5242880 kB
Rss:                   8 kB
7f0000000000-7f0004000000 rw-p 00000000 00:00 0 
Size:              65536 kB
Rss:                1000 kB
55d0c0000000-55d0c6400000 rw-p 00000000 08:01 1234                       /big/file
Size:             102400 kB
Rss:                  40 kB
7f5c69400000-7f5c6f800000 r--p 00000000 00:00 0 
Size:             102400 kB
Rss:                  40 kB
";

    #[test]
    fn finds_guest_ram() {
        assert_eq!(
            guest_ram(SMAPS, 8 << 30),
            Ok(GuestRamUse {
                mappings: 2,
                size_kib: 8 << 20,
                rss_kib: 420
            })
        );
    }

    #[test]
    fn refuses_a_size_mismatch() {
        let e = guest_ram(SMAPS, 512 << 20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "smaps: the guest RAM mappings (rw anonymous, >= 98304 KiB) add up to 8388608 KiB, not the guest's 524288 KiB"
        );
    }

    #[test]
    fn adjacent_mappings_split_by_advice_are_one() {
        // rvmm's 512 MiB: the first 2 MiB advised NOHUGEPAGE, the rest HUGEPAGE.
        let smaps = "\
7f0000000000-7f0000200000 rw-p 00000000 00:00 0 
Size:               2048 kB
Rss:                  88 kB
VmFlags: rd wr mr mw me ac sd nh
7f0000200000-7f0020000000 rw-p 00000000 00:00 0 
Size:             522240 kB
Rss:                   0 kB
VmFlags: rd wr mr mw me ac sd hg
";
        assert_eq!(
            guest_ram(smaps, 512 << 20),
            Ok(GuestRamUse {
                mappings: 1,
                size_kib: 512 << 10,
                rss_kib: 88
            })
        );
    }
}
