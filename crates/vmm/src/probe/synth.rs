//! Test-only builders for synthetic probe dumps: CPUID tables for a sockets x dies x cores x
//! threads topology in the shapes QEMU produces (Intel with leaf 0BH, with leaf 1FH, legacy
//! leaves 1/4 only, AMD with 8000001EH and no leaf 0BH), ACPI MADT/SRAT/SLIT bytes with
//! correct checksums, and the dump text the probe guest would print.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One vCPU's CPUID: (leaf, sub) -> [EAX, EBX, ECX, EDX].
pub type Regs = BTreeMap<(u32, u32), [u32; 4]>;

/// A guest CPU topology.
#[derive(Debug, Clone, Copy)]
pub struct Topo {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
}

/// Which CPUID shape to synthesize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// GenuineIntel, level 0DH, leaf 0BH.
    Intel0b,
    /// GenuineIntel, level 1FH, leaves 0BH and 1FH.
    Intel1f,
    /// GenuineIntel, level 4: leaf 1 EBX and leaf 4 only.
    IntelLegacy,
    /// AuthenticAMD family 17H, TopologyExtensions and 8000001EH, no leaf 0BH.
    Amd,
}

/// ceil(log2(n)).
pub fn bits(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

impl Topo {
    pub const fn new(sockets: u32, dies: u32, cores: u32, threads: u32) -> Self {
        Self {
            sockets,
            dies,
            cores,
            threads,
        }
    }

    /// APIC IDs in QEMU's vCPU order (socket, die, core, thread), with each level's field
    /// padded to a power of two.
    pub fn apic_ids(&self) -> Vec<u32> {
        let (tb, cb, db) = (bits(self.threads), bits(self.cores), bits(self.dies));
        let mut ids = Vec::new();
        for s in 0..self.sockets {
            for d in 0..self.dies {
                for c in 0..self.cores {
                    for t in 0..self.threads {
                        ids.push((s << (tb + cb + db)) | (d << (tb + cb)) | (c << tb) | t);
                    }
                }
            }
        }
        ids
    }

    /// CPUID of every vCPU, in order.
    pub fn cpus(&self, style: Style) -> Vec<Regs> {
        self.apic_ids()
            .into_iter()
            .map(|id| self.cpu(style, id))
            .collect()
    }

    fn cpu(&self, style: Style, apic: u32) -> Regs {
        let (tb, cb, db) = (bits(self.threads), bits(self.cores), bits(self.dies));
        let per_pkg = self.threads * self.cores * self.dies;
        let amd = style == Style::Amd;
        let mut r = Regs::new();
        let level = match style {
            Style::Intel1f => 0x1f,
            Style::IntelLegacy => 4,
            Style::Intel0b | Style::Amd => 0xd,
        };
        let vendor = words(if amd { "AuthenticAMD" } else { "GenuineIntel" }, 3);
        // CPUID.0: EBX, EDX, ECX hold the vendor's 1st, 2nd, 3rd four characters.
        r.insert((0, 0), [level, vendor[0], vendor[2], vendor[1]]);
        let signature = if amd { 0x0080_0f12 } else { 0x0006_0fb1 };
        let htt = if per_pkg > 1 { 1 << 28 } else { 0 };
        // fpu, tsc, cx8, apic, sse, sse2 | HTT;  pni, x2apic, hypervisor.
        let edx1 = 1 | (1 << 4) | (1 << 8) | (1 << 9) | (1 << 25) | (1 << 26) | htt;
        let ecx1 = 1 | (1 << 21) | (1 << 31);
        r.insert(
            (1, 0),
            [
                signature,
                ((apic & 0xff) << 24) | ((per_pkg & 0xff) << 16) | (8 << 8),
                ecx1,
                edx1,
            ],
        );
        if !amd {
            let l1d =
                1 | (1 << 5) | ((self.threads - 1) << 14) | ((self.cores * self.dies - 1) << 26);
            r.insert((4, 0), [l1d, 0, 0, 0]);
            r.insert((4, 1), [0, 0, 0, 0]);
        }
        if level >= 7 {
            r.insert((7, 0), [0, 1 << 5, 0, 0]);
        }
        if matches!(style, Style::Intel0b | Style::Intel1f) {
            r.insert((0xb, 0), [tb, self.threads, 0x100, apic]);
            r.insert((0xb, 1), [tb + cb + db, per_pkg, 0x201, apic]);
            r.insert((0xb, 2), [0, 0, 0x2, apic]);
        }
        if level >= 0xd {
            r.insert((0xd, 0), [7, 0x340, 0x340, 0]);
            r.insert((0xd, 1), [1, 0, 0, 0]);
        }
        if style == Style::Intel1f {
            r.insert((0x1f, 0), [tb, self.threads, 0x100, apic]);
            r.insert((0x1f, 1), [tb + cb, self.threads * self.cores, 0x201, apic]);
            r.insert((0x1f, 2), [tb + cb + db, per_pkg, 0x502, apic]);
            r.insert((0x1f, 3), [0, 0, 0x3, apic]);
        }
        let kvm = words("KVMKVMKVM", 3);
        r.insert((0x4000_0000, 0), [0x4000_0001, kvm[0], kvm[1], kvm[2]]);
        r.insert((0x4000_0001, 0), [0x0100_07fb, 0, 0, 0]);
        let xlevel = if amd { 0x8000_001e } else { 0x8000_0008 };
        r.insert((0x8000_0000, 0), [xlevel, 0, 0, 0]);
        // lahf_lm (| cmp_legacy | topoext on AMD); syscall, nx, lm.
        let mut ecx_x1 = 1;
        if amd {
            ecx_x1 |= 1 << 22;
            if self.threads * self.cores > 1 {
                ecx_x1 |= 1 << 1;
            }
        }
        r.insert(
            (0x8000_0001, 0),
            [0, 0, ecx_x1, (1 << 11) | (1 << 20) | (1 << 29)],
        );
        let brand = words(
            if amd {
                "AMD EPYC Processor"
            } else {
                "QEMU Virtual CPU version 2.5+"
            },
            12,
        );
        for (i, leaf) in (0x8000_0002..=0x8000_0004).enumerate() {
            let w = &brand[4 * i..4 * i + 4];
            r.insert((leaf, 0), [w[0], w[1], w[2], w[3]]);
        }
        let ecx_x8 = if amd && self.threads * self.cores > 1 {
            ((tb + cb) << 12) | (self.threads * self.cores - 1)
        } else {
            0
        };
        r.insert((0x8000_0008, 0), [0x3028, 0, ecx_x8, 0]);
        if amd {
            let core = (apic >> tb) & ((1 << cb) - 1);
            let node = apic >> (tb + cb + db);
            r.insert(
                (0x8000_001e, 0),
                [apic, ((self.threads - 1) << 8) | core, node, 0],
            );
        }
        r
    }
}

/// Little-endian words of `text`, NUL-padded to `n` words.
pub fn words(text: &str, n: usize) -> Vec<u32> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(n * 4, 0);
    bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The dump text the probe prints for these vCPUs and tables, with serial noise around it.
pub fn dump_text(cpus: &[Regs], tables: &[Vec<u8>]) -> String {
    let mut out =
        String::from("SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\nBooting from ROM...\r\n");
    out.push_str("PROBE-BEGIN v1\r\n");
    for (i, regs) in cpus.iter().enumerate() {
        for ((leaf, sub), [a, b, c, d]) in regs {
            writeln!(
                out,
                "CPUID cpu={i} leaf={leaf:08x} sub={sub:08x} eax={a:08x} ebx={b:08x} ecx={c:08x} edx={d:08x}\r"
            )
            .unwrap();
        }
    }
    for t in tables {
        let hex: String = t.iter().map(|b| format!("{b:02x}")).collect();
        let sig = String::from_utf8_lossy(&t[..4]);
        writeln!(out, "ACPI sig={sig} len={} data={hex}\r", t.len()).unwrap();
    }
    writeln!(out, "PROBE-END cpus={}\r", cpus.len()).unwrap();
    out.push_str("PROBE-HALT cpus=0\r\n");
    out
}

/// An ACPI table: 36-byte header (OEM "RVMM  ") + body, with Length and Checksum filled in.
pub fn acpi_table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(signature);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(b"RVMM  ");
    t.extend_from_slice(b"RVMMTBL ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"RVMM");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    t[9] = 0u8.wrapping_sub(sum);
    t
}

/// MADT revision 5 with the local APIC at 0xfee00000, PCAT_COMPAT, and these entries.
pub fn madt(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
    body.extend_from_slice(&1u32.to_le_bytes());
    for e in entries {
        body.extend_from_slice(e);
    }
    acpi_table(b"APIC", 5, &body)
}

/// MADT type 0, Processor Local APIC.
pub fn madt_lapic(uid: u8, apic: u8, flags: u32) -> Vec<u8> {
    let mut e = vec![0, 8, uid, apic];
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

/// MADT type 9, Processor Local x2APIC.
pub fn madt_x2apic(uid: u32, apic: u32, flags: u32) -> Vec<u8> {
    let mut e = vec![9, 16, 0, 0];
    e.extend_from_slice(&apic.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&uid.to_le_bytes());
    e
}

/// MADT type 1, I/O APIC.
pub fn madt_ioapic(id: u8, address: u32, gsi_base: u32) -> Vec<u8> {
    let mut e = vec![1, 12, id, 0];
    e.extend_from_slice(&address.to_le_bytes());
    e.extend_from_slice(&gsi_base.to_le_bytes());
    e
}

/// MADT type 2, Interrupt Source Override.
pub fn madt_iso(source: u8, gsi: u32, flags: u16) -> Vec<u8> {
    let mut e = vec![2, 10, 0, source];
    e.extend_from_slice(&gsi.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

/// MADT type 4, Local APIC NMI.
pub fn madt_lapic_nmi(uid: u8, flags: u16, lint: u8) -> Vec<u8> {
    let mut e = vec![4, 6, uid];
    e.extend_from_slice(&flags.to_le_bytes());
    e.push(lint);
    e
}

/// MADT type 0AH, Local x2APIC NMI.
pub fn madt_x2apic_nmi(uid: u32, flags: u16, lint: u8) -> Vec<u8> {
    let mut e = vec![0xa, 12];
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&uid.to_le_bytes());
    e.extend_from_slice(&[lint, 0, 0, 0]);
    e
}

/// SRAT revision 3 with these entries (reserved field 1 for compatibility).
pub fn srat(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes());
    for e in entries {
        body.extend_from_slice(e);
    }
    acpi_table(b"SRAT", 3, &body)
}

/// SRAT type 0, Processor Local APIC Affinity (enabled when `enabled`).
pub fn srat_lapic(pxm: u32, apic: u8, enabled: bool) -> Vec<u8> {
    let mut e = vec![0, 16, pxm as u8, apic];
    e.extend_from_slice(&u32::from(enabled).to_le_bytes());
    e.push(0); // SAPIC EID
    e.extend_from_slice(&pxm.to_le_bytes()[1..4]);
    e.extend_from_slice(&0u32.to_le_bytes());
    e
}

/// SRAT type 2, Processor Local x2APIC Affinity.
pub fn srat_x2apic(pxm: u32, apic: u32, enabled: bool) -> Vec<u8> {
    let mut e = vec![2, 24, 0, 0];
    e.extend_from_slice(&pxm.to_le_bytes());
    e.extend_from_slice(&apic.to_le_bytes());
    e.extend_from_slice(&u32::from(enabled).to_le_bytes());
    e.extend_from_slice(&[0; 8]);
    e
}

/// SRAT type 1, Memory Affinity; flags bit 0 enabled, 1 hot-pluggable, 2 non-volatile.
pub fn srat_mem(pxm: u32, base: u64, length: u64, flags: u32) -> Vec<u8> {
    let mut e = vec![1, 40];
    e.extend_from_slice(&pxm.to_le_bytes());
    e.extend_from_slice(&[0, 0]);
    e.extend_from_slice(&base.to_le_bytes());
    e.extend_from_slice(&length.to_le_bytes());
    e.extend_from_slice(&[0; 4]);
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&[0; 8]);
    e
}

/// SLIT for a square distance matrix.
pub fn slit(rows: &[&[u8]]) -> Vec<u8> {
    let mut body = (rows.len() as u64).to_le_bytes().to_vec();
    for r in rows {
        body.extend_from_slice(r);
    }
    acpi_table(b"SLIT", 1, &body)
}
