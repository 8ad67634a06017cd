//! Parses the ACPI tables the probe dumped (MADT, SRAT, SLIT) into plain structs, with the
//! field layouts of ACPI 6.5 (5.2.12 MADT, 5.2.16 SRAT, 5.2.17 SLIT).
//!
//! Only what a guest's CPU and NUMA view needs is kept; unknown entry types are counted, not
//! decoded. A truncated table or entry is an error naming the table, the byte offset and the
//! rule; the checksum was already checked by `decode`.

use serde::Serialize;
use thiserror::Error;

use super::decode::ACPI_HEADER_LEN;

/// A table whose layout is broken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AcpiParseError {
    #[error("ACPI {table}: {len} bytes is shorter than its fixed part ({need} bytes)")]
    Short {
        table: &'static str,
        len: usize,
        need: usize,
    },
    #[error("ACPI {table}: entry type {kind} at offset {offset} has length {entry_len}, {rule}")]
    BadEntry {
        table: &'static str,
        kind: u8,
        offset: usize,
        entry_len: usize,
        rule: String,
    },
    #[error("ACPI SLIT: {localities} localities need {need} bytes but the table has {len}")]
    SlitSize {
        localities: u64,
        need: u64,
        len: usize,
    },
}

/// MADT flag: the processor is usable at boot (ACPI 6.5 table 5.23, bit 0).
const MADT_ENABLED: u32 = 1 << 0;
/// MADT flag: the processor can be brought online later (table 5.23, bit 1, MADT rev >= 5).
const MADT_ONLINE_CAPABLE: u32 = 1 << 1;
/// MADT: Local Interrupt Controller Address and Flags follow the header.
const MADT_FIXED_LEN: usize = ACPI_HEADER_LEN + 8;
const MADT_LAPIC: u8 = 0;
const MADT_IOAPIC: u8 = 1;
const MADT_ISO: u8 = 2;
const MADT_NMI_SOURCE: u8 = 3;
const MADT_LAPIC_NMI: u8 = 4;
const MADT_X2APIC: u8 = 9;
const MADT_X2APIC_NMI: u8 = 0xa;
/// SRAT: Reserved (4, must be 1) and Reserved (8) follow the header.
const SRAT_FIXED_LEN: usize = ACPI_HEADER_LEN + 12;
const SRAT_LAPIC: u8 = 0;
const SRAT_MEMORY: u8 = 1;
const SRAT_X2APIC: u8 = 2;
/// SRAT flags: bit 0 enabled; memory: bit 1 hot-pluggable, bit 2 non-volatile.
const SRAT_ENABLED: u32 = 1 << 0;
const SRAT_HOTPLUGGABLE: u32 = 1 << 1;
const SRAT_NON_VOLATILE: u32 = 1 << 2;
/// SLIT: Number of System Localities (8 bytes) follows the header.
const SLIT_FIXED_LEN: usize = ACPI_HEADER_LEN + 8;

/// A processor slot (MADT type 0 Local APIC or type 9 Local x2APIC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MadtProcessor {
    /// "lapic" or "x2apic".
    pub kind: &'static str,
    /// ACPI Processor UID.
    pub uid: u32,
    pub apic_id: u32,
    pub enabled: bool,
    pub online_capable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MadtIoApic {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

/// Interrupt Source Override: bus IRQ `source` is delivered on `gsi`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MadtOverride {
    pub bus: u8,
    pub source: u8,
    pub gsi: u32,
    /// MPS INTI flags (polarity bits 1:0, trigger mode bits 3:2).
    pub flags: u16,
}

/// An NMI entry: a Local APIC / x2APIC NMI (LINT pin of a processor, uid 0xFF or
/// 0xFFFFFFFF meaning all) or an NMI Source (a GSI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MadtNmi {
    /// "lapic", "x2apic" or "source".
    pub kind: &'static str,
    /// Processor UID (lapic/x2apic) or GSI (source).
    pub target: u32,
    pub flags: u16,
    /// LINT pin (0 or 1); 0 for an NMI source.
    pub lint: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Madt {
    pub revision: u8,
    pub local_apic_address: u32,
    /// Bit 0 PCAT_COMPAT (dual 8259s present).
    pub flags: u32,
    pub processors: Vec<MadtProcessor>,
    pub ioapics: Vec<MadtIoApic>,
    pub overrides: Vec<MadtOverride>,
    pub nmis: Vec<MadtNmi>,
    /// Entries of other types, as (type, offset).
    pub other: Vec<(u8, usize)>,
}

/// SRAT processor affinity (type 0 Local APIC or type 2 Local x2APIC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SratCpu {
    pub kind: &'static str,
    pub apic_id: u32,
    pub proximity_domain: u32,
    pub enabled: bool,
}

/// SRAT memory affinity (type 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SratMemory {
    pub proximity_domain: u32,
    pub base: u64,
    pub length: u64,
    pub enabled: bool,
    pub hotpluggable: bool,
    pub non_volatile: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Srat {
    pub cpus: Vec<SratCpu>,
    pub memory: Vec<SratMemory>,
    /// Entries of other types, as (type, offset).
    pub other: Vec<(u8, usize)>,
}

/// SLIT: `distances[i][j]` is the distance from locality (proximity domain) i to j.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slit {
    pub distances: Vec<Vec<u8>>,
}

fn u16_at(d: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([d[at], d[at + 1]])
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn u64_at(d: &[u8], at: usize) -> u64 {
    u64::from(u32_at(d, at)) | (u64::from(u32_at(d, at + 4)) << 32)
}

/// One table entry: (type, offset in the table, its bytes).
type Entry<'a> = (u8, usize, &'a [u8]);

/// Walks the type/length entries after `start`, checking each fits and has at least its
/// type's minimum length.
fn entries<'a>(
    table: &'static str,
    data: &'a [u8],
    start: usize,
    min_len: fn(u8) -> usize,
) -> Result<Vec<Entry<'a>>, AcpiParseError> {
    let mut out = Vec::new();
    let mut at = start;
    while at < data.len() {
        let kind = data[at];
        let bad = |entry_len: usize, rule: String| AcpiParseError::BadEntry {
            table,
            kind,
            offset: at,
            entry_len,
            rule,
        };
        if at + 2 > data.len() {
            return Err(bad(0, "but the table ends inside its header".to_string()));
        }
        let len = data[at + 1] as usize;
        if len < 2 {
            return Err(bad(len, "below the 2-byte entry header".to_string()));
        }
        if at + len > data.len() {
            return Err(bad(
                len,
                format!("past the table's end ({} bytes)", data.len()),
            ));
        }
        let need = min_len(kind);
        if len < need {
            return Err(bad(
                len,
                format!("shorter than the {need} bytes of its type"),
            ));
        }
        out.push((kind, at, &data[at..at + len]));
        at += len;
    }
    Ok(out)
}

fn madt_min_len(kind: u8) -> usize {
    match kind {
        MADT_LAPIC => 8,
        MADT_IOAPIC => 12,
        MADT_ISO => 10,
        MADT_NMI_SOURCE => 8,
        MADT_LAPIC_NMI => 6,
        MADT_X2APIC => 16,
        MADT_X2APIC_NMI => 12,
        _ => 2,
    }
}

/// Parses a MADT (signature APIC).
pub fn parse_madt(data: &[u8]) -> Result<Madt, AcpiParseError> {
    if data.len() < MADT_FIXED_LEN {
        return Err(AcpiParseError::Short {
            table: "APIC",
            len: data.len(),
            need: MADT_FIXED_LEN,
        });
    }
    let mut madt = Madt {
        revision: data[8],
        local_apic_address: u32_at(data, ACPI_HEADER_LEN),
        flags: u32_at(data, ACPI_HEADER_LEN + 4),
        processors: Vec::new(),
        ioapics: Vec::new(),
        overrides: Vec::new(),
        nmis: Vec::new(),
        other: Vec::new(),
    };
    for (kind, offset, e) in entries("APIC", data, MADT_FIXED_LEN, madt_min_len)? {
        match kind {
            MADT_LAPIC => {
                let flags = u32_at(e, 4);
                madt.processors.push(MadtProcessor {
                    kind: "lapic",
                    uid: u32::from(e[2]),
                    apic_id: u32::from(e[3]),
                    enabled: flags & MADT_ENABLED != 0,
                    online_capable: flags & MADT_ONLINE_CAPABLE != 0,
                });
            }
            MADT_X2APIC => {
                let flags = u32_at(e, 8);
                madt.processors.push(MadtProcessor {
                    kind: "x2apic",
                    uid: u32_at(e, 12),
                    apic_id: u32_at(e, 4),
                    enabled: flags & MADT_ENABLED != 0,
                    online_capable: flags & MADT_ONLINE_CAPABLE != 0,
                });
            }
            MADT_IOAPIC => madt.ioapics.push(MadtIoApic {
                id: e[2],
                address: u32_at(e, 4),
                gsi_base: u32_at(e, 8),
            }),
            MADT_ISO => madt.overrides.push(MadtOverride {
                bus: e[2],
                source: e[3],
                gsi: u32_at(e, 4),
                flags: u16_at(e, 8),
            }),
            MADT_NMI_SOURCE => madt.nmis.push(MadtNmi {
                kind: "source",
                target: u32_at(e, 4),
                flags: u16_at(e, 2),
                lint: 0,
            }),
            MADT_LAPIC_NMI => madt.nmis.push(MadtNmi {
                kind: "lapic",
                target: u32::from(e[2]),
                flags: u16_at(e, 3),
                lint: e[5],
            }),
            MADT_X2APIC_NMI => madt.nmis.push(MadtNmi {
                kind: "x2apic",
                target: u32_at(e, 4),
                flags: u16_at(e, 2),
                lint: e[8],
            }),
            _ => madt.other.push((kind, offset)),
        }
    }
    Ok(madt)
}

fn srat_min_len(kind: u8) -> usize {
    match kind {
        SRAT_LAPIC => 16,
        SRAT_MEMORY => 40,
        SRAT_X2APIC => 24,
        _ => 2,
    }
}

/// Parses a SRAT.
pub fn parse_srat(data: &[u8]) -> Result<Srat, AcpiParseError> {
    if data.len() < SRAT_FIXED_LEN {
        return Err(AcpiParseError::Short {
            table: "SRAT",
            len: data.len(),
            need: SRAT_FIXED_LEN,
        });
    }
    let mut srat = Srat {
        cpus: Vec::new(),
        memory: Vec::new(),
        other: Vec::new(),
    };
    for (kind, offset, e) in entries("SRAT", data, SRAT_FIXED_LEN, srat_min_len)? {
        match kind {
            SRAT_LAPIC => srat.cpus.push(SratCpu {
                kind: "lapic",
                apic_id: u32::from(e[3]),
                // Proximity Domain [7:0] at 2, [31:8] at 9..12.
                proximity_domain: u32::from_le_bytes([e[2], e[9], e[10], e[11]]),
                enabled: u32_at(e, 4) & SRAT_ENABLED != 0,
            }),
            SRAT_X2APIC => srat.cpus.push(SratCpu {
                kind: "x2apic",
                apic_id: u32_at(e, 8),
                proximity_domain: u32_at(e, 4),
                enabled: u32_at(e, 12) & SRAT_ENABLED != 0,
            }),
            SRAT_MEMORY => {
                let flags = u32_at(e, 28);
                srat.memory.push(SratMemory {
                    proximity_domain: u32_at(e, 2),
                    base: u64_at(e, 8),
                    length: u64_at(e, 16),
                    enabled: flags & SRAT_ENABLED != 0,
                    hotpluggable: flags & SRAT_HOTPLUGGABLE != 0,
                    non_volatile: flags & SRAT_NON_VOLATILE != 0,
                });
            }
            _ => srat.other.push((kind, offset)),
        }
    }
    Ok(srat)
}

/// Parses a SLIT.
pub fn parse_slit(data: &[u8]) -> Result<Slit, AcpiParseError> {
    if data.len() < SLIT_FIXED_LEN {
        return Err(AcpiParseError::Short {
            table: "SLIT",
            len: data.len(),
            need: SLIT_FIXED_LEN,
        });
    }
    let n = u64_at(data, ACPI_HEADER_LEN);
    let need = n
        .checked_mul(n)
        .and_then(|m| m.checked_add(SLIT_FIXED_LEN as u64));
    match need {
        Some(need) if need <= data.len() as u64 => {}
        _ => {
            return Err(AcpiParseError::SlitSize {
                localities: n,
                need: need.unwrap_or(u64::MAX),
                len: data.len(),
            })
        }
    }
    let n = n as usize;
    let matrix = &data[SLIT_FIXED_LEN..SLIT_FIXED_LEN + n * n];
    Ok(Slit {
        distances: matrix
            .chunks(n.max(1))
            .take(n)
            .map(<[u8]>::to_vec)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::synth::*;

    #[test]
    fn madt_entries() {
        let t = madt(&[
            madt_lapic(0, 0, 1),
            madt_lapic(1, 2, 0),
            madt_x2apic(2, 300, 3),
            madt_ioapic(0, 0xfec0_0000, 0),
            madt_iso(0, 2, 0),
            madt_iso(9, 9, 0xd),
            madt_lapic_nmi(0xff, 0, 1),
            madt_x2apic_nmi(0xffff_ffff, 5, 1),
            vec![0x7f, 4, 0, 0],
        ]);
        let m = parse_madt(&t).unwrap();
        assert_eq!(
            (m.revision, m.local_apic_address, m.flags),
            (5, 0xfee0_0000, 1)
        );
        assert_eq!(
            m.processors,
            [
                MadtProcessor {
                    kind: "lapic",
                    uid: 0,
                    apic_id: 0,
                    enabled: true,
                    online_capable: false
                },
                MadtProcessor {
                    kind: "lapic",
                    uid: 1,
                    apic_id: 2,
                    enabled: false,
                    online_capable: false
                },
                MadtProcessor {
                    kind: "x2apic",
                    uid: 2,
                    apic_id: 300,
                    enabled: true,
                    online_capable: true
                },
            ]
        );
        assert_eq!(
            m.ioapics,
            [MadtIoApic {
                id: 0,
                address: 0xfec0_0000,
                gsi_base: 0
            }]
        );
        assert_eq!(
            m.overrides,
            [
                MadtOverride {
                    bus: 0,
                    source: 0,
                    gsi: 2,
                    flags: 0
                },
                MadtOverride {
                    bus: 0,
                    source: 9,
                    gsi: 9,
                    flags: 0xd
                },
            ]
        );
        assert_eq!(
            m.nmis,
            [
                MadtNmi {
                    kind: "lapic",
                    target: 0xff,
                    flags: 0,
                    lint: 1
                },
                MadtNmi {
                    kind: "x2apic",
                    target: 0xffff_ffff,
                    flags: 5,
                    lint: 1
                },
            ]
        );
        assert_eq!(m.other, [(0x7f, 44 + 8 + 8 + 16 + 12 + 10 + 10 + 6 + 12)]);
    }

    #[test]
    fn madt_errors() {
        let mut t = madt(&[madt_lapic(0, 0, 1)]);
        t.truncate(40);
        assert_eq!(
            parse_madt(&t).unwrap_err().to_string(),
            "ACPI APIC: 40 bytes is shorter than its fixed part (44 bytes)"
        );
        let t = madt(&[vec![0, 6, 0, 0, 1, 0]]);
        assert_eq!(
            parse_madt(&t).unwrap_err().to_string(),
            "ACPI APIC: entry type 0 at offset 44 has length 6, shorter than the 8 bytes of its type"
        );
        let t = madt(&[madt_lapic(0, 0, 1), vec![9, 16, 0, 0]]);
        assert_eq!(
            parse_madt(&t).unwrap_err().to_string(),
            "ACPI APIC: entry type 9 at offset 52 has length 16, past the table's end (56 bytes)"
        );
        let t = madt(&[vec![1, 0]]);
        assert_eq!(
            parse_madt(&t).unwrap_err().to_string(),
            "ACPI APIC: entry type 1 at offset 44 has length 0, below the 2-byte entry header"
        );
        let t = madt(&[vec![1]]);
        assert_eq!(
            parse_madt(&t).unwrap_err().to_string(),
            "ACPI APIC: entry type 1 at offset 44 has length 0, but the table ends inside its header"
        );
    }

    #[test]
    fn srat_entries() {
        let t = srat(&[
            srat_lapic(0, 0, true),
            srat_lapic(0x0102_0304, 1, false),
            srat_x2apic(7, 0x1_0000, true),
            srat_mem(0, 0, 0xa0000, 1),
            srat_mem(1, 0x1_0000_0000, 0x4000_0000, 3),
            srat_mem(2, 0, 0, 4),
        ]);
        let s = parse_srat(&t).unwrap();
        assert_eq!(
            s.cpus,
            [
                SratCpu {
                    kind: "lapic",
                    apic_id: 0,
                    proximity_domain: 0,
                    enabled: true
                },
                SratCpu {
                    kind: "lapic",
                    apic_id: 1,
                    proximity_domain: 0x0102_0304,
                    enabled: false
                },
                SratCpu {
                    kind: "x2apic",
                    apic_id: 0x1_0000,
                    proximity_domain: 7,
                    enabled: true
                },
            ]
        );
        assert_eq!(
            s.memory,
            [
                SratMemory {
                    proximity_domain: 0,
                    base: 0,
                    length: 0xa0000,
                    enabled: true,
                    hotpluggable: false,
                    non_volatile: false
                },
                SratMemory {
                    proximity_domain: 1,
                    base: 0x1_0000_0000,
                    length: 0x4000_0000,
                    enabled: true,
                    hotpluggable: true,
                    non_volatile: false
                },
                SratMemory {
                    proximity_domain: 2,
                    base: 0,
                    length: 0,
                    enabled: false,
                    hotpluggable: false,
                    non_volatile: true
                },
            ]
        );
        assert!(s.other.is_empty());
        let mut t = srat(&[]);
        t.truncate(47);
        assert_eq!(
            parse_srat(&t).unwrap_err().to_string(),
            "ACPI SRAT: 47 bytes is shorter than its fixed part (48 bytes)"
        );
        let t = srat(&[vec![1, 24, 0, 0, 0, 0]]);
        assert_eq!(
            parse_srat(&t).unwrap_err().to_string(),
            "ACPI SRAT: entry type 1 at offset 48 has length 24, past the table's end (54 bytes)"
        );
    }

    #[test]
    fn slit_matrix() {
        let t = slit(&[&[10, 20, 30], &[20, 10, 25], &[30, 25, 10]]);
        assert_eq!(
            parse_slit(&t).unwrap().distances,
            [vec![10, 20, 30], vec![20, 10, 25], vec![30, 25, 10]]
        );
        let mut t = slit(&[&[10, 20], &[20, 10]]);
        t.truncate(47);
        assert_eq!(
            parse_slit(&t).unwrap_err().to_string(),
            "ACPI SLIT: 2 localities need 48 bytes but the table has 47"
        );
        let mut t = slit(&[]);
        t[36..44].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            parse_slit(&t).unwrap_err().to_string(),
            format!(
                "ACPI SLIT: 18446744073709551615 localities need {} bytes but the table has 44",
                u64::MAX
            )
        );
        t.truncate(43);
        assert_eq!(
            parse_slit(&t).unwrap_err().to_string(),
            "ACPI SLIT: 43 bytes is shorter than its fixed part (44 bytes)"
        );
    }
}
