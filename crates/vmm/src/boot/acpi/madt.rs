//! The MADT (signature "APIC", ACPI 6.x §5.2.12): one local APIC or x2APIC entry per vCPU
//! slot, the IOAPIC, interrupt source overrides and the LINT1 NMI.
//!
//! Content follows QEMU 7.2's `acpi_build_madt`/`pc_madt_cpu_entry`: table revision 1, every
//! possible CPU listed in slot order, slots not present at boot listed with flags 0 (Linux
//! counts them as hotpluggable; with a MADT revision >= 5 it would also want the Online
//! Capable bit), x2APIC entries for APIC IDs above 254, and one NMI entry: the x2APIC form
//! when any x2APIC entry exists, else the xAPIC form. QEMU's `pc` also overrides the PCI
//! link IRQs 5, 10 and 11; we have no PCI, so only IRQ 0 (to GSI 2) and the SCI are listed.

use super::sdt::{OemIds, Sdt};
use super::AcpiCpu;
use crate::memory::layout;

/// MADT revision (QEMU 7.2 writes 1).
const MADT_REVISION: u8 = 1;

/// MADT Flags bit 0: the system also has a PC-AT-compatible dual 8259 setup (Table 5.44).
const PCAT_COMPAT: u32 = 1 << 0;

/// Interrupt controller structure types (ACPI 6.x Table 5.45).
mod entry {
    pub const LOCAL_APIC: u8 = 0;
    pub const IO_APIC: u8 = 1;
    pub const INTERRUPT_SOURCE_OVERRIDE: u8 = 2;
    pub const LOCAL_APIC_NMI: u8 = 4;
    pub const LOCAL_X2APIC: u8 = 9;
    pub const LOCAL_X2APIC_NMI: u8 = 0xa;
}

/// Local APIC / x2APIC flags bit 0: Enabled (Table 5.47).
const LAPIC_ENABLED: u32 = 1 << 0;

/// MPS INTI flags (Table 5.50): Polarity bits [1:0], Trigger Mode bits [3:2].
mod inti {
    /// Both fields 00: conforms to the bus (ISA: edge, active-high).
    pub const CONFORMS: u16 = 0;
    pub const ACTIVE_HIGH: u16 = 0b01;
    pub const LEVEL_TRIGGERED: u16 = 0b11 << 2;
}

/// Largest APIC ID / UID a (one-byte) Processor Local APIC structure carries; 0xff is the
/// "all processors" value of the NMI structure, so QEMU switches to x2APIC entries above 254.
pub const XAPIC_ID_MAX: u32 = 254;
/// The ISA timer IRQ and the IOAPIC input it is wired to.
const ISA_TIMER_IRQ: u8 = 0;
const TIMER_GSI: u32 = 2;
/// The IOAPIC's ID and its first GSI.
const IOAPIC_ID: u8 = 0;
const IOAPIC_GSI_BASE: u32 = 0;
/// The NMI structures' "all processors" UIDs.
const ALL_PROCESSORS_UID: u8 = 0xff;
const ALL_PROCESSORS_X2APIC_UID: u32 = 0xffff_ffff;
/// The local APIC input the NMI is wired to (LINT1).
const NMI_LINT: u8 = 1;

/// Whether `cpu` gets a Processor Local x2APIC structure instead of a Processor Local APIC
/// one: its APIC ID, or its UID (the one-byte ACPI Processor ID), does not fit.
pub fn uses_x2apic_entry(cpu: &AcpiCpu) -> bool {
    cpu.apic_id > XAPIC_ID_MAX || cpu.uid > XAPIC_ID_MAX
}

/// The Processor Local APIC (8 bytes) or Processor Local x2APIC (16 bytes) structure of
/// `cpu`, with the Enabled flag set when `enabled`. The DSDT's `_MAT` returns it with
/// `enabled` set, as QEMU's `pc_madt_cpu_entry` with `force_present`.
pub fn cpu_entry(cpu: &AcpiCpu, enabled: bool) -> Vec<u8> {
    let flags = if enabled { LAPIC_ENABLED } else { 0 };
    let mut e = Vec::with_capacity(16);
    if uses_x2apic_entry(cpu) {
        e.extend_from_slice(&[entry::LOCAL_X2APIC, 16]);
        e.extend_from_slice(&0u16.to_le_bytes()); // Reserved
        e.extend_from_slice(&cpu.apic_id.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&cpu.uid.to_le_bytes());
    } else {
        e.extend_from_slice(&[entry::LOCAL_APIC, 8, cpu.uid as u8, cpu.apic_id as u8]);
        e.extend_from_slice(&flags.to_le_bytes());
    }
    e
}

/// Builds the MADT for the vCPU slots, in order.
pub fn build(cpus: &[AcpiCpu], oem: &OemIds) -> Vec<u8> {
    let mut t = Sdt::new(b"APIC", MADT_REVISION, oem);
    t.u32(layout::LAPIC_ADDR as u32) // Local Interrupt Controller Address
        .u32(PCAT_COMPAT);
    for cpu in cpus {
        t.bytes(&cpu_entry(cpu, cpu.enabled));
    }
    t.u8(entry::IO_APIC)
        .u8(12)
        .u8(IOAPIC_ID)
        .u8(0) // Reserved
        .u32(layout::IOAPIC_ADDR as u32)
        .u32(IOAPIC_GSI_BASE);
    interrupt_source_override(&mut t, ISA_TIMER_IRQ, TIMER_GSI, inti::CONFORMS);
    // The SCI is level-triggered active-high on the IOAPIC, as QEMU wires it.
    interrupt_source_override(
        &mut t,
        layout::SCI_IRQ as u8,
        layout::SCI_IRQ,
        inti::ACTIVE_HIGH | inti::LEVEL_TRIGGERED,
    );
    if cpus.iter().any(uses_x2apic_entry) {
        t.u8(entry::LOCAL_X2APIC_NMI)
            .u8(12)
            .u16(inti::CONFORMS)
            .u32(ALL_PROCESSORS_X2APIC_UID)
            .u8(NMI_LINT)
            .bytes(&[0; 3]); // Reserved
    } else {
        t.u8(entry::LOCAL_APIC_NMI)
            .u8(6)
            .u8(ALL_PROCESSORS_UID)
            .u16(inti::CONFORMS)
            .u8(NMI_LINT);
    }
    t.finish()
}

fn interrupt_source_override(t: &mut Sdt, irq: u8, gsi: u32, flags: u16) {
    t.u8(entry::INTERRUPT_SOURCE_OVERRIDE)
        .u8(10)
        .u8(0) // Bus: ISA
        .u8(irq)
        .u32(gsi)
        .u16(flags);
}

#[cfg(test)]
mod tests {
    use super::super::sdt::tests::{byte_sum, le};
    use super::super::tests::cpus;
    use super::*;

    const OEM: OemIds = OemIds { oem_id: *b"BOCHS " };

    #[test]
    fn four_xapic_cpus_one_hotpluggable() {
        let mut c = cpus(4);
        c[3].enabled = false;
        let t = build(&c, &OEM);
        assert_eq!(&t[0..4], b"APIC");
        assert_eq!(t[8], 1);
        assert_eq!(byte_sum(&t), 0);
        assert_eq!(le(&t, 36, 4), 0xfee0_0000, "Local APIC Address");
        assert_eq!(le(&t, 40, 4), 1, "PCAT_COMPAT");
        for i in 0..4 {
            let e = 44 + 8 * i;
            let enabled = u8::from(i != 3);
            assert_eq!(&t[e..e + 8], &[0, 8, i as u8, i as u8, enabled, 0, 0, 0]);
        }
        let rest = &t[44 + 32..];
        assert_eq!(
            rest,
            &[
                1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0, // IOAPIC
                2, 10, 0, 0, 2, 0, 0, 0, 0, 0, // IRQ0 -> GSI2
                2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0, // SCI level, active-high
                4, 6, 0xff, 0, 0, 1, // LAPIC NMI, all processors, LINT1
            ]
        );
        assert_eq!(le(&t, 4, 4) as usize, t.len());
        assert_eq!(t.len(), 44 + 32 + 12 + 20 + 6);
    }

    /// 288 slots like `-smp 2,maxcpus=288`: APIC IDs 0-254 as xAPIC, 255-287 as x2APIC.
    #[test]
    fn x2apic_entries_for_288_vcpus() {
        let mut c = cpus(288);
        c.iter_mut().skip(2).for_each(|c| c.enabled = false);
        let t = build(&c, &OEM);
        assert_eq!(t.len(), 44 + 255 * 8 + 33 * 16 + 12 + 20 + 12);
        assert_eq!(le(&t, 4, 4) as usize, t.len());
        assert_eq!(byte_sum(&t), 0);
        // Slot 1 is enabled, slot 2 is not.
        assert_eq!(&t[52..60], &[0, 8, 1, 1, 1, 0, 0, 0]);
        assert_eq!(&t[60..68], &[0, 8, 2, 2, 0, 0, 0, 0]);
        // Slot 254: last xAPIC entry.
        let e = 44 + 254 * 8;
        assert_eq!(&t[e..e + 8], &[0, 8, 254, 254, 0, 0, 0, 0]);
        // Slot 255: first x2APIC entry (type 9, length 16, x2APIC ID, flags, UID).
        let x = 44 + 255 * 8;
        assert_eq!(t[x], 9);
        assert_eq!(t[x + 1], 16);
        assert_eq!(le(&t, x + 2, 2), 0);
        assert_eq!(le(&t, x + 4, 4), 255);
        assert_eq!(le(&t, x + 8, 4), 0);
        assert_eq!(le(&t, x + 12, 4), 255);
        let last = x + 32 * 16;
        assert_eq!(le(&t, last + 4, 4), 287);
        assert_eq!(le(&t, last + 12, 4), 287);
        // Only the x2APIC NMI, as QEMU.
        let nmi = t.len() - 12;
        assert_eq!(
            &t[nmi..],
            &[0xa, 12, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]
        );
    }

    #[test]
    fn large_uid_with_small_apic_id_uses_x2apic() {
        let c = vec![AcpiCpu {
            uid: 300,
            apic_id: 3,
            enabled: true,
            node: None,
        }];
        let t = build(&c, &OEM);
        assert_eq!(&t[44..48], &[9, 16, 0, 0]);
        assert_eq!(le(&t, 48, 4), 3);
        assert_eq!(le(&t, 52, 4), 1);
        assert_eq!(le(&t, 56, 4), 300);
    }

    #[test]
    fn cpu_entries_with_forced_enabled_flag() {
        let mut c = cpus(256);
        c[3].enabled = false;
        assert_eq!(cpu_entry(&c[3], false), [0, 8, 3, 3, 0, 0, 0, 0]);
        assert_eq!(cpu_entry(&c[3], true), [0, 8, 3, 3, 1, 0, 0, 0]);
        assert_eq!(
            cpu_entry(&c[255], true),
            [9, 16, 0, 0, 0xff, 0, 0, 0, 1, 0, 0, 0, 0xff, 0, 0, 0]
        );
    }
}
