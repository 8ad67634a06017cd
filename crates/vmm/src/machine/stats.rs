//! KVM's binary statistics (Documentation/virt/kvm/api.rst, KVM_GET_STATS_FD): the file a VM
//! fd or a vCPU fd hands out, read generically from the descriptors the running kernel
//! publishes, so that a newer kernel's counters appear without a code change.
//!
//! The file is a header (flags, name size, descriptor count, and the offsets of the id
//! string, the descriptors and the data), an id string (`kvm-PID` or `kvm-PID/vcpu-N`),
//! one descriptor per statistic (flags: type, unit and base; an exponent; how many u64
//! values; their offset in the data block; a histogram's bucket size; a NUL-padded name of
//! `name_size` bytes), and the data block of u64 values. Only the data block changes while
//! the VM runs, so [`StatsFd`] reads the header and descriptors once and re-reads the data
//! with one `pread` per sample: that does not take the vCPU mutex, so it never waits for a
//! vCPU inside KVM_RUN (which is why the fd is opened when the vCPU is created).
//!
//! Parsing is pure ([`parse_layout`], [`parse_values`]); only [`StatsFd::open_vm`],
//! [`StatsFd::open_vcpu`] and [`StatsFd::read`] touch the kernel.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// KVM_GET_STATS_FD = _IO(KVMIO, 0xce).
const KVM_GET_STATS_FD: u64 = 0xae_ce;

/// Header size: six u32s.
const HEADER_SIZE: usize = 24;
/// Descriptor size before the name: flags u32, exponent i16, size u16, offset u32,
/// bucket_size u32.
const DESC_FIXED_SIZE: usize = 16;
/// Descriptors beyond this many, or names longer than this, mean a corrupt header.
const MAX_DESCRIPTORS: u32 = 4096;
const MAX_NAME_SIZE: u32 = 4096;
/// A statistic with more values than this is refused (KVM's histograms have 32).
const MAX_VALUES: u16 = 1024;

/// Flag fields (include/uapi/linux/kvm.h KVM_STATS_TYPE_*, _UNIT_*, _BASE_*).
const TYPE_MASK: u32 = 0xf;
const UNIT_SHIFT: u32 = 4;
const UNIT_MASK: u32 = 0xf;
const BASE_SHIFT: u32 = 8;
const BASE_MASK: u32 = 0xf;

/// Why statistics could not be read.
#[derive(Debug, Error)]
pub enum StatsError {
    /// The kernel has no binary statistics (before Linux 5.14) or refused the fd.
    #[error("KVM_GET_STATS_FD on the {target} fd: {source} (this kernel has no KVM binary statistics; they came in Linux 5.14)")]
    Unsupported {
        target: &'static str,
        source: std::io::Error,
    },
    #[error("reading KVM statistics ({what}): {source}")]
    Read {
        what: &'static str,
        source: std::io::Error,
    },
    /// The header or descriptors do not describe a well-formed file.
    #[error("KVM statistics: {0}")]
    Malformed(String),
}

/// How a statistic's value behaves (QEMU's StatsType names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatType {
    /// Only ever grows (a counter).
    Cumulative,
    /// A current value that goes up and down (a gauge).
    Instant,
    /// The highest value seen.
    Peak,
    /// A histogram with buckets of `bucket_size`.
    LinearHistogram,
    /// A histogram whose bucket N counts values in [2^(N-1), 2^N).
    Log2Histogram,
}

/// The unit of a statistic (QEMU's StatsUnit, plus `none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatUnit {
    None,
    Bytes,
    Seconds,
    Cycles,
    Boolean,
}

/// One statistic as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StatDesc {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: StatType,
    pub unit: StatUnit,
    /// 10 or 2: the value is value × base^exponent of `unit`.
    pub base: u8,
    pub exponent: i16,
    /// How many u64 values (1, or a histogram's bucket count).
    pub size: u16,
    /// Where the values start in the data block, in bytes.
    #[serde(skip)]
    pub offset: u32,
    /// A linear histogram's bucket width (0 otherwise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bucket_size: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl StatDesc {
    /// Whether the value is a histogram (a list of buckets).
    pub fn is_histogram(&self) -> bool {
        matches!(
            self.kind,
            StatType::LinearHistogram | StatType::Log2Histogram
        )
    }
}

/// A statistic's value: one number, or a histogram's buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatValue {
    Scalar(u64),
    Histogram(Vec<u64>),
}

impl StatValue {
    /// The scalar, or the sum of a histogram's buckets (its sample count).
    pub fn total(&self) -> u64 {
        match self {
            StatValue::Scalar(v) => *v,
            StatValue::Histogram(b) => b.iter().fold(0u64, |a, &v| a.wrapping_add(v)),
        }
    }
}

/// The fixed part of a stats file: its id and descriptors, and where the data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsLayout {
    /// `kvm-PID` for a VM, `kvm-PID/vcpu-N` for a vCPU.
    pub id: String,
    pub descriptors: Vec<StatDesc>,
    /// Offset of the data block in the file.
    pub data_offset: u32,
    /// Bytes of data the descriptors cover.
    pub data_size: usize,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, StatsError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| StatsError::Malformed(format!("truncated at byte {at}")))
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, StatsError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| StatsError::Malformed(format!("truncated at byte {at}")))
}

/// The header's six fields: flags, name_size, num_desc, id_offset, desc_offset,
/// data_offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsHeader {
    pub name_size: u32,
    pub num_desc: u32,
    pub id_offset: u32,
    pub desc_offset: u32,
    pub data_offset: u32,
}

/// Parses the header (the first 24 bytes of the file).
pub fn parse_header(bytes: &[u8]) -> Result<StatsHeader, StatsError> {
    if bytes.len() < HEADER_SIZE {
        return Err(StatsError::Malformed(format!(
            "header is {} bytes, needs {HEADER_SIZE}",
            bytes.len()
        )));
    }
    let h = StatsHeader {
        name_size: u32_at(bytes, 4)?,
        num_desc: u32_at(bytes, 8)?,
        id_offset: u32_at(bytes, 12)?,
        desc_offset: u32_at(bytes, 16)?,
        data_offset: u32_at(bytes, 20)?,
    };
    if h.name_size == 0 || h.name_size > MAX_NAME_SIZE {
        return Err(StatsError::Malformed(format!(
            "name size {} is not in 1..={MAX_NAME_SIZE}",
            h.name_size
        )));
    }
    if h.num_desc > MAX_DESCRIPTORS {
        return Err(StatsError::Malformed(format!(
            "{} descriptors (at most {MAX_DESCRIPTORS})",
            h.num_desc
        )));
    }
    Ok(h)
}

fn name_from(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Parses the id and descriptors from `file`, the stats file's bytes from offset 0 up to
/// (at least) the end of the descriptors. Statistics of a type or unit this code does not
/// know are left out (a newer kernel's new kinds), as are zero-sized ones.
pub fn parse_layout(header: &StatsHeader, file: &[u8]) -> Result<StatsLayout, StatsError> {
    let name_size = header.name_size as usize;
    let id_at = header.id_offset as usize;
    let id = file
        .get(id_at..id_at + name_size)
        .map(name_from)
        .ok_or_else(|| StatsError::Malformed(format!("id at {id_at} is past the end")))?;
    let stride = DESC_FIXED_SIZE + name_size;
    let mut descriptors = Vec::new();
    let mut data_size = 0usize;
    for i in 0..header.num_desc as usize {
        let at = header.desc_offset as usize + i * stride;
        let raw = file
            .get(at..at + stride)
            .ok_or_else(|| StatsError::Malformed(format!("descriptor {i} is past the end")))?;
        let flags = u32_at(raw, 0)?;
        let exponent = u16_at(raw, 4)? as i16;
        let size = u16_at(raw, 6)?;
        let offset = u32_at(raw, 8)?;
        let bucket_size = u32_at(raw, 12)?;
        let name = name_from(&raw[DESC_FIXED_SIZE..]);
        if size > MAX_VALUES {
            return Err(StatsError::Malformed(format!(
                "statistic {name} has {size} values (at most {MAX_VALUES})"
            )));
        }
        if offset % 8 != 0 {
            return Err(StatsError::Malformed(format!(
                "statistic {name} starts at offset {offset}, not a multiple of 8"
            )));
        }
        let kind = match flags & TYPE_MASK {
            0 => StatType::Cumulative,
            1 => StatType::Instant,
            2 => StatType::Peak,
            3 => StatType::LinearHistogram,
            4 => StatType::Log2Histogram,
            _ => continue,
        };
        let unit = match (flags >> UNIT_SHIFT) & UNIT_MASK {
            0 => StatUnit::None,
            1 => StatUnit::Bytes,
            2 => StatUnit::Seconds,
            3 => StatUnit::Cycles,
            4 => StatUnit::Boolean,
            _ => continue,
        };
        let base = match (flags >> BASE_SHIFT) & BASE_MASK {
            0 => 10,
            1 => 2,
            _ => continue,
        };
        if size == 0 || name.is_empty() {
            continue;
        }
        data_size = data_size.max(offset as usize + size as usize * 8);
        descriptors.push(StatDesc {
            name,
            kind,
            unit,
            base,
            exponent,
            size,
            offset,
            bucket_size,
        });
    }
    Ok(StatsLayout {
        id,
        descriptors,
        data_offset: header.data_offset,
        data_size,
    })
}

/// The values of every descriptor in `data` (the data block), in descriptor order.
pub fn parse_values(descriptors: &[StatDesc], data: &[u8]) -> Result<Vec<StatValue>, StatsError> {
    descriptors
        .iter()
        .map(|d| {
            let at = d.offset as usize;
            let end = at + d.size as usize * 8;
            let bytes = data.get(at..end).ok_or_else(|| {
                StatsError::Malformed(format!(
                    "statistic {} at {at}..{end} is past the data block ({} bytes)",
                    d.name,
                    data.len()
                ))
            })?;
            let values: Vec<u64> = bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            Ok(if d.is_histogram() {
                StatValue::Histogram(values)
            } else {
                StatValue::Scalar(values[0])
            })
        })
        .collect()
}

/// An open stats file with its layout read.
#[derive(Debug)]
pub struct StatsFd {
    file: File,
    layout: StatsLayout,
}

impl StatsFd {
    /// The VM's statistics.
    pub fn open_vm(vm: &kvm_ioctls::VmFd) -> Result<StatsFd, StatsError> {
        Self::open(vm.as_raw_fd(), "VM")
    }

    /// A vCPU's statistics. Open it before the vCPU first runs: the ioctl waits for the
    /// vCPU mutex, which KVM_RUN holds.
    pub fn open_vcpu(vcpu: &kvm_ioctls::VcpuFd) -> Result<StatsFd, StatsError> {
        Self::open(vcpu.as_raw_fd(), "vCPU")
    }

    fn open(fd: i32, target: &'static str) -> Result<StatsFd, StatsError> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new fd or -1.
        let r = unsafe { libc::ioctl(fd, KVM_GET_STATS_FD as _) };
        if r < 0 {
            return Err(StatsError::Unsupported {
                target,
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `r` is a new fd the kernel just gave us and nothing else owns.
        let file = unsafe { File::from_raw_fd(r) };
        Self::from_file(file)
    }

    /// Reads the layout of an open stats file.
    pub fn from_file(file: File) -> Result<StatsFd, StatsError> {
        let mut head = [0u8; HEADER_SIZE];
        file.read_exact_at(&mut head, 0)
            .map_err(|source| StatsError::Read {
                what: "header",
                source,
            })?;
        let header = parse_header(&head)?;
        let stride = DESC_FIXED_SIZE + header.name_size as usize;
        let end = (header.desc_offset as usize + header.num_desc as usize * stride)
            .max(header.id_offset as usize + header.name_size as usize);
        let mut bytes = vec![0u8; end];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|source| StatsError::Read {
                what: "descriptors",
                source,
            })?;
        let layout = parse_layout(&header, &bytes)?;
        Ok(StatsFd { file, layout })
    }

    pub fn layout(&self) -> &StatsLayout {
        &self.layout
    }

    /// The current values, in descriptor order (one pread).
    pub fn read(&self) -> Result<Vec<StatValue>, StatsError> {
        let mut data = vec![0u8; self.layout.data_size];
        self.file
            .read_exact_at(&mut data, self.layout.data_offset as u64)
            .map_err(|source| StatsError::Read {
                what: "values",
                source,
            })?;
        parse_values(&self.layout.descriptors, &data)
    }

    /// Descriptors with their current values.
    pub fn sample(&self) -> Result<Vec<KvmStat>, StatsError> {
        let values = self.read()?;
        Ok(self
            .layout
            .descriptors
            .iter()
            .cloned()
            .zip(values)
            .map(|(desc, value)| KvmStat { desc, value })
            .collect())
    }
}

/// One statistic with its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmStat {
    #[serde(flatten)]
    pub desc: StatDesc,
    pub value: StatValue,
}

/// The value of statistic `name` in `stats` (a histogram's sample count).
pub fn value_of(stats: &[KvmStat], name: &str) -> Option<u64> {
    stats
        .iter()
        .find(|s| s.desc.name == name)
        .map(|s| s.value.total())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stats file with the given (flags, exponent, size, bucket, name) descriptors and
    /// data words, laid out as KVM lays it out.
    pub(crate) fn synth(id: &str, descs: &[(u32, i16, u16, u32, &str)], data: &[u64]) -> Vec<u8> {
        let name_size = 48u32;
        let id_offset = HEADER_SIZE as u32;
        let desc_offset = id_offset + name_size;
        let stride = DESC_FIXED_SIZE as u32 + name_size;
        let data_offset = desc_offset + stride * descs.len() as u32;
        let mut f = Vec::new();
        for v in [
            0,
            name_size,
            descs.len() as u32,
            id_offset,
            desc_offset,
            data_offset,
        ] {
            f.extend(v.to_le_bytes());
        }
        let padded = |s: &str, f: &mut Vec<u8>| {
            let mut n = s.as_bytes().to_vec();
            n.resize(name_size as usize, 0);
            f.extend(n);
        };
        padded(id, &mut f);
        let mut offset = 0u32;
        for &(flags, exp, size, bucket, name) in descs {
            f.extend(flags.to_le_bytes());
            f.extend(exp.to_le_bytes());
            f.extend(size.to_le_bytes());
            f.extend(offset.to_le_bytes());
            f.extend(bucket.to_le_bytes());
            padded(name, &mut f);
            offset += size as u32 * 8;
        }
        for v in data {
            f.extend(v.to_le_bytes());
        }
        f
    }

    fn parse(bytes: &[u8]) -> (StatsLayout, Vec<StatValue>) {
        let header = parse_header(bytes).unwrap();
        let layout = parse_layout(&header, bytes).unwrap();
        let data = &bytes[layout.data_offset as usize..];
        let values = parse_values(&layout.descriptors, data).unwrap();
        (layout, values)
    }

    #[test]
    fn descriptors_and_values_are_read_generically() {
        // exits: cumulative, none; halt_wait_ns: cumulative seconds, exponent -9;
        // hist: log2 histogram of 3 buckets; flag: instant boolean; pow2 bytes peak.
        let bytes = synth(
            "kvm-42/vcpu-1",
            &[
                (0x000, 0, 1, 0, "exits"),
                (0x020, -9, 1, 0, "halt_wait_ns"),
                (0x024, -9, 3, 0, "halt_wait_hist"),
                (0x041, 0, 1, 0, "guest_mode"),
                (0x112, 0, 1, 0, "pages_peak"),
                (0x003, 0, 2, 10, "linear"),
            ],
            &[7, 1500, 1, 2, 3, 1, 4096, 5, 6],
        );
        let (layout, values) = parse(&bytes);
        assert_eq!(layout.id, "kvm-42/vcpu-1");
        let d = &layout.descriptors;
        assert_eq!(d.len(), 6);
        assert_eq!(
            (d[1].kind, d[1].unit, d[1].base, d[1].exponent),
            (StatType::Cumulative, StatUnit::Seconds, 10, -9)
        );
        assert_eq!(d[2].kind, StatType::Log2Histogram);
        assert_eq!(
            (d[3].kind, d[3].unit),
            (StatType::Instant, StatUnit::Boolean)
        );
        assert_eq!(
            (d[4].kind, d[4].unit, d[4].base),
            (StatType::Peak, StatUnit::Bytes, 2)
        );
        assert_eq!(
            (d[5].kind, d[5].bucket_size),
            (StatType::LinearHistogram, 10)
        );
        assert_eq!(values[0], StatValue::Scalar(7));
        assert_eq!(values[1], StatValue::Scalar(1500));
        assert_eq!(values[2], StatValue::Histogram(vec![1, 2, 3]));
        assert_eq!(values[2].total(), 6);
        assert_eq!(values[4], StatValue::Scalar(4096));
        assert_eq!(values[5], StatValue::Histogram(vec![5, 6]));
    }

    #[test]
    fn unknown_kinds_are_skipped_and_bad_layouts_refused() {
        // Type 9 and unit 9 are not known: skipped, the rest still read.
        let bytes = synth(
            "kvm-1",
            &[
                (0x009, 0, 1, 0, "new_type"),
                (0x090, 0, 1, 0, "new_unit"),
                (0, 0, 1, 0, "ok"),
            ],
            &[1, 2, 3],
        );
        let (layout, values) = parse(&bytes);
        assert_eq!(layout.descriptors.len(), 1);
        assert_eq!(layout.descriptors[0].name, "ok");
        assert_eq!(values, vec![StatValue::Scalar(3)]);

        // Truncated header, absurd counts, data past the end.
        assert!(parse_header(&bytes[..10]).is_err());
        let mut big = bytes.clone();
        big[8..12].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(parse_header(&big).is_err());
        let mut short = bytes.clone();
        short[8..12].copy_from_slice(&50u32.to_le_bytes());
        let h = parse_header(&short).unwrap();
        assert!(parse_layout(&h, &short).is_err());
        let h = parse_header(&bytes).unwrap();
        let layout = parse_layout(&h, &bytes).unwrap();
        assert!(parse_values(&layout.descriptors, &[0u8; 8]).is_err());
    }

    #[test]
    fn serializes_with_qemu_type_names() {
        let s = KvmStat {
            desc: StatDesc {
                name: "halt_poll_fail_hist".into(),
                kind: StatType::Log2Histogram,
                unit: StatUnit::Seconds,
                base: 10,
                exponent: -9,
                size: 2,
                offset: 0,
                bucket_size: 0,
            },
            value: StatValue::Histogram(vec![1, 2]),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["type"], "log2-histogram");
        assert_eq!(v["unit"], "seconds");
        assert_eq!(v["value"], serde_json::json!([1, 2]));
        let back: KvmStat = serde_json::from_value(v).unwrap();
        assert_eq!(back.desc.name, s.desc.name);
        assert_eq!(back.value, s.value);
    }
}
