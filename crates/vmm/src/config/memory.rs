//! The `-m`/`--memory` front end: guest RAM size and how the host backs it.
//!
//! Grammar: `SIZE[,hugepages=on][,hugepage-size=2M|1G][,prealloc=on][,merge=on|off]
//! [,thp=on|off][,shared=on][,mem-path=DIR]`. The first item may be a bare size (a bare
//! number is MiB, as QEMU's `-m`) or `size=SIZE`; omitted, the size is [`DEFAULT_MEMORY`].
//! Switches take `on|off` (also `yes|no`, `true|false`, as QEMU's boolean options); a
//! repeated key keeps its last value.
//!
//! Defaults follow QEMU: anonymous private memory; KSM merging (`merge`) and transparent
//! huge pages (`thp`) are advised by default (QEMU's `mem-merge=on` and its
//! `QEMU_MADV_HUGEPAGE` on every RAM block) and silently skipped when the host lacks them;
//! asked for explicitly, a missing host feature is reported. This module owns text →
//! [`MemoryConfig`] and the rules that need no host; pools, KSM and THP state are checked
//! when the VM is built (`memory::backing`).

use std::path::PathBuf;

use thiserror::Error;

use super::size::{format_size, parse_size, DefaultUnit, SizeError};

/// Guest RAM when `-m` gives no size (QEMU's default for `pc`).
pub const DEFAULT_MEMORY: u64 = 128 << 20;

/// The huge page sizes x86-64 has: 2 MiB (PDE.PS) and 1 GiB (PDPTE.PS, SDM Vol. 3A §4.5).
pub const X86_HUGE_PAGE_SIZES: [u64; 2] = [2 << 20, 1 << 30];

/// The keys `-m` accepts, for error messages.
const KEYS: &str = "size, hugepages, hugepage-size, prealloc, merge, thp, shared, mem-path";

/// How the host backs guest RAM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryBacking {
    /// Back RAM with hugetlbfs pages (`hugepages=on`).
    pub hugepages: bool,
    /// The huge page size (`hugepage-size=`); `None` is the host's default size (or the
    /// page size of the `mem-path` mount).
    pub hugepage_size: Option<u64>,
    /// A directory to create the backing file in (`mem-path=`), as QEMU's
    /// memory-backend-file: a hugetlbfs mount such as /dev/hugepages, or any other
    /// file system for file-backed RAM.
    pub mem_path: Option<PathBuf>,
    /// Fault in all of guest RAM before the guest runs (`prealloc=on`).
    pub prealloc: bool,
    /// KSM (`merge=`): `None` is QEMU's default (advised, skipped quietly without KSM).
    pub merge: Option<bool>,
    /// Transparent huge pages (`thp=`): `None` is QEMU's default (advised, skipped quietly
    /// without THP).
    pub thp: Option<bool>,
    /// A shared mapping (`shared=on`), as memory another process (vhost-user) can map.
    pub shared: bool,
}

impl MemoryBacking {
    /// Whether KSM is advised: on unless `merge=off`, never for hugetlbfs pages.
    pub fn wants_merge(&self) -> bool {
        self.merge.unwrap_or(true) && !self.hugepages
    }

    /// Whether THP is advised: on unless `thp=off`, never for hugetlbfs pages.
    pub fn wants_thp(&self) -> bool {
        self.thp.unwrap_or(true) && !self.hugepages
    }
}

/// What `-m` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Guest RAM in bytes.
    pub size: u64,
    pub backing: MemoryBacking,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            size: DEFAULT_MEMORY,
            backing: MemoryBacking::default(),
        }
    }
}

/// Why `-m` text is not acceptable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MemoryOptionError {
    #[error(transparent)]
    Size(#[from] SizeError),
    #[error("-m: unknown option '{key}' (expected {KEYS})")]
    UnknownKey { key: String },
    #[error("-m: '{key}' has no value (write {key}=on or {key}=off)")]
    MissingValue { key: String },
    #[error("-m: '{item}' is not key=value (only the first item may be a bare size)")]
    BareValue { item: String },
    #[error("-m: empty item in '{text}'")]
    EmptyItem { text: String },
    #[error("-m: {key}='{value}' is not on or off")]
    NotABool { key: String, value: String },
    #[error("-m: mem-path is empty (give the directory to create the backing file in)")]
    EmptyMemPath,
    #[error("-m: hugepage-size={value} is not a huge page size of x86-64 (2M or 1G)")]
    BadHugePageSize { value: String },
    #[error("-m: hugepage-size={size} needs hugepages=on")]
    HugePageSizeWithoutHugePages { size: String },
    #[error("-m: {key}=on does not apply with hugepages=on ({why})")]
    NotWithHugePages {
        key: &'static str,
        why: &'static str,
    },
    #[error("-m: '{value}' ({bytes} bytes) exceeds {rule}", rule = super::MAX_MEMORY_RULE)]
    TooLarge { value: String, bytes: u64 },
    #[error("-m: the guest memory ({size}) is not a multiple of the {page} huge page size")]
    NotHugePageMultiple { size: String, page: String },
}

fn parse_bool(key: &str, value: &str) -> Result<bool, MemoryOptionError> {
    match value {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(MemoryOptionError::NotABool {
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

/// Parses `-m` text (see the module documentation) and checks the rules that need no host.
pub fn parse_memory(text: &str) -> Result<MemoryConfig, MemoryOptionError> {
    let mut config = MemoryConfig::default();
    let mut hugepages: Option<bool> = None;
    let body = text.strip_suffix(',').unwrap_or(text);
    for (position, item) in body.split(',').enumerate() {
        if item.is_empty() {
            return Err(MemoryOptionError::EmptyItem {
                text: text.to_string(),
            });
        }
        let (key, value) = match item.split_once('=') {
            Some(kv) => kv,
            None if position == 0 => ("size", item),
            None if KEYS.split(", ").any(|k| k == item) => {
                return Err(MemoryOptionError::MissingValue {
                    key: item.to_string(),
                })
            }
            None => {
                return Err(MemoryOptionError::BareValue {
                    item: item.to_string(),
                })
            }
        };
        let b = &mut config.backing;
        match key {
            "size" => {
                config.size = parse_size("-m", value, DefaultUnit::Mebibytes)?;
                if config.size > super::MAX_MEMORY {
                    return Err(MemoryOptionError::TooLarge {
                        value: value.to_string(),
                        bytes: config.size,
                    });
                }
            }
            "hugepages" => hugepages = Some(parse_bool(key, value)?),
            "hugepage-size" => {
                let size = parse_size("-m: hugepage-size", value, DefaultUnit::Bytes)?;
                if !X86_HUGE_PAGE_SIZES.contains(&size) {
                    return Err(MemoryOptionError::BadHugePageSize {
                        value: value.to_string(),
                    });
                }
                b.hugepage_size = Some(size);
            }
            "prealloc" => b.prealloc = parse_bool(key, value)?,
            "merge" => b.merge = Some(parse_bool(key, value)?),
            "thp" => b.thp = Some(parse_bool(key, value)?),
            "shared" => b.shared = parse_bool(key, value)?,
            "mem-path" => {
                if value.is_empty() {
                    return Err(MemoryOptionError::EmptyMemPath);
                }
                b.mem_path = Some(PathBuf::from(value));
            }
            _ => {
                return Err(MemoryOptionError::UnknownKey {
                    key: key.to_string(),
                })
            }
        }
    }
    config.backing.hugepages = hugepages.unwrap_or(false);
    config.validate()?;
    Ok(config)
}

impl MemoryConfig {
    /// The rules between options that need no host knowledge.
    pub fn validate(&self) -> Result<(), MemoryOptionError> {
        let b = &self.backing;
        if let (Some(size), false) = (b.hugepage_size, b.hugepages) {
            return Err(MemoryOptionError::HugePageSizeWithoutHugePages {
                size: format_size(size),
            });
        }
        if b.hugepages {
            if b.thp == Some(true) {
                return Err(MemoryOptionError::NotWithHugePages {
                    key: "thp",
                    why: "hugetlbfs pages are huge already",
                });
            }
            if b.merge == Some(true) {
                return Err(MemoryOptionError::NotWithHugePages {
                    key: "merge",
                    why: "KSM does not merge hugetlbfs pages",
                });
            }
        }
        if let Some(page) = b.hugepage_size {
            check_page_multiple(self.size, page)?;
        }
        Ok(())
    }
}

/// Checks that `size` bytes of guest RAM divide into `page`-byte huge pages.
pub fn check_page_multiple(size: u64, page: u64) -> Result<(), MemoryOptionError> {
    if page == 0 || size % page == 0 {
        return Ok(());
    }
    Err(MemoryOptionError::NotHugePageMultiple {
        size: format_size(size),
        page: format_size(page),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_memory(text).unwrap_err().to_string()
    }

    #[test]
    fn sizes_and_defaults() {
        assert_eq!(
            parse_memory("2G").unwrap(),
            MemoryConfig {
                size: 2 << 30,
                backing: MemoryBacking::default(),
            }
        );
        assert_eq!(parse_memory("512").unwrap().size, 512 << 20);
        assert_eq!(parse_memory("size=1G").unwrap().size, 1 << 30);
        assert_eq!(parse_memory("prealloc=on").unwrap().size, DEFAULT_MEMORY);
        assert_eq!(parse_memory("1G,").unwrap().size, 1 << 30);
        let d = MemoryBacking::default();
        assert!(d.wants_merge() && d.wants_thp());
    }

    #[test]
    fn every_option() {
        let c = parse_memory(
            "2G,hugepages=on,hugepage-size=1G,prealloc=on,merge=off,thp=off,shared=on,\
             mem-path=/dev/hugepages",
        )
        .unwrap();
        assert_eq!(c.size, 2 << 30);
        assert_eq!(
            c.backing,
            MemoryBacking {
                hugepages: true,
                hugepage_size: Some(1 << 30),
                mem_path: Some(PathBuf::from("/dev/hugepages")),
                prealloc: true,
                merge: Some(false),
                thp: Some(false),
                shared: true,
            }
        );
        assert!(!c.backing.wants_merge() && !c.backing.wants_thp());
        let c = parse_memory("1G,merge=yes,thp=true,hugepages=off").unwrap();
        assert_eq!(
            (c.backing.merge, c.backing.thp, c.backing.hugepages),
            (Some(true), Some(true), false)
        );
        // Hugetlbfs pages are never advised for KSM or THP, even by default.
        let c = parse_memory("1G,hugepages=on").unwrap();
        assert!(!c.backing.wants_merge() && !c.backing.wants_thp());
        // The last of a repeated key wins.
        assert!(
            !parse_memory("1G,prealloc=on,prealloc=off")
                .unwrap()
                .backing
                .prealloc
        );
        assert_eq!(
            parse_memory("4G,hugepages=on,hugepage-size=2M")
                .unwrap()
                .backing
                .hugepage_size,
            Some(2 << 20)
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            err("2G,hugepage=on"),
            "-m: unknown option 'hugepage' (expected size, hugepages, hugepage-size, prealloc, \
             merge, thp, shared, mem-path)"
        );
        assert_eq!(
            err("2G,prealloc"),
            "-m: 'prealloc' has no value (write prealloc=on or prealloc=off)"
        );
        assert_eq!(
            err("2G,fast"),
            "-m: 'fast' is not key=value (only the first item may be a bare size)"
        );
        assert_eq!(
            err("2G,,prealloc=on"),
            "-m: empty item in '2G,,prealloc=on'"
        );
        assert_eq!(err("2G,merge=maybe"), "-m: merge='maybe' is not on or off");
        assert_eq!(
            err("2G,mem-path="),
            "-m: mem-path is empty (give the directory to create the backing file in)"
        );
        assert_eq!(
            err("2G,hugepages=on,hugepage-size=4M"),
            "-m: hugepage-size=4M is not a huge page size of x86-64 (2M or 1G)"
        );
        assert_eq!(
            err("2G,hugepages=on,hugepage-size=huge"),
            "-m: hugepage-size: 'huge' is not a size (expected a number with an optional K, M, \
             G or T suffix, e.g. 512M or 2G)"
        );
        assert_eq!(
            err("2G,hugepage-size=2M"),
            "-m: hugepage-size=2M needs hugepages=on"
        );
        assert_eq!(
            err("2G,hugepages=on,thp=on"),
            "-m: thp=on does not apply with hugepages=on (hugetlbfs pages are huge already)"
        );
        assert_eq!(
            err("2G,hugepages=on,merge=on"),
            "-m: merge=on does not apply with hugepages=on (KSM does not merge hugetlbfs pages)"
        );
        assert_eq!(
            err("1025M,hugepages=on,hugepage-size=2M"),
            "-m: the guest memory (1025M) is not a multiple of the 2M huge page size"
        );
        assert_eq!(
            err("3G,hugepages=on,hugepage-size=1G,size=1536M"),
            "-m: the guest memory (1536M) is not a multiple of the 1G huge page size"
        );
        // Near 2^64: parsed without wrapping, then refused by the address-space rule.
        assert_eq!(
            err("16777215T"),
            "-m: '16777215T' (18446742974197923840 bytes) exceeds the maximum of 4 PiB less \
             1 GiB (4503598553628672 bytes): guest RAM and the 1 GiB MMIO hole below 4 GiB \
             must fit in x86-64's 52-bit physical addresses"
        );
        assert_eq!(
            err("size=18446744073709551615,prealloc=on")
                .split(" (")
                .next(),
            Some("-m: '18446744073709551615' is too large")
        );
        assert_eq!(err("16777216T"), "-m: '16777216T' is too large");
        assert_eq!(
            err("4194304G").split(" (").next(),
            Some("-m: '4194304G'"),
            "4 PiB"
        );
        assert_eq!(
            parse_memory("4194303G").unwrap().size,
            super::super::MAX_MEMORY
        );
        assert_eq!(err("lots"), "-m: 'lots' is not a size (expected a number with an optional K, M, G or T suffix, e.g. 512M or 2G)");
    }
}
