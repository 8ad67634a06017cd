//! The root and fixed-hardware tables: RSDP (rev 2), XSDT, FADT (rev 6) and FACS.
//!
//! The FADT describes a full (not hardware-reduced) PC: the PM1a event/control blocks, the
//! PM timer and the GPE0 block (PIIX-PM's, whose bit 2 signals CPU hotplug) at the
//! `memory::layout` ports, SCI on IRQ 9, no SMI command port (ACPI is
//! always enabled), the reset register at 0xcf9. Its feature flags are those QEMU 7.2 sets
//! for `-M pc`/`q35` plus RESET_REG_SUP. Which tables the XSDT lists is decided by `build`.

use super::sdt::{checksum, AccessSize, Gas, OemIds, Sdt};
use crate::memory::layout;

/// RSDP length for revision 2 (ACPI 6.x Table 5.3).
pub const RSDP_LEN: usize = 36;
/// FACS length (ACPI 6.x Table 5.37).
pub const FACS_LEN: usize = 64;
/// FADT length for revision 6 (ACPI 6.0 Table 5-34: up to Hypervisor Vendor Identity).
pub const FADT_LEN: usize = 276;

/// RSDP revision 2: the XSDT address and extended checksum are valid (ACPI 2.0+).
const RSDP_REVISION: u8 = 2;
/// Bytes the RSDP's first checksum covers (the ACPI 1.0 part).
const RSDP_V1_LEN: usize = 20;
const XSDT_REVISION: u8 = 1;
/// FADT Major Version 6 (ACPI 6.0), minor version 0.
const FADT_REVISION: u8 = 6;
const FADT_MINOR_REVISION: u8 = 0;
/// FACS version for ACPI 4.0 and later (ACPI 6.x Table 5.37, Version).
const FACS_VERSION: u8 = 2;

/// FADT Flags bits (ACPI 6.x Table 5.35, Fixed ACPI Description Table Fixed Feature Flags).
pub mod flags {
    /// WBINVD is correctly supported.
    pub const WBINVD: u32 = 1 << 0;
    /// C1 is supported on all processors.
    pub const PROC_C1: u32 = 1 << 2;
    /// The sleep button is a control-method button (or absent), not a fixed feature.
    pub const SLP_BUTTON: u32 = 1 << 5;
    /// The RTC can wake the system from S4.
    pub const RTC_S4: u32 = 1 << 7;
    /// The reset register is supported.
    pub const RESET_REG_SUP: u32 = 1 << 10;
    /// OSPM should prefer the platform timer (the PM timer) over the TSC for idle.
    pub const USE_PLATFORM_CLOCK: u32 = 1 << 15;
    /// Local APICs must use the clustered logical model (xAPIC flat logical is limited to 8).
    pub const FORCE_APIC_CLUSTER_MODEL: u32 = 1 << 18;
}

/// IA-PC Boot Architecture Flags (ACPI 6.x Table 5.36).
pub mod boot_arch {
    /// The motherboard has an 8042 (or equivalent) at ports 0x60/0x64.
    pub const I8042: u16 = 1 << 1;
    /// VGA Not Present: OSPM must not blindly probe the VGA hardware.
    pub const VGA_NOT_PRESENT: u16 = 1 << 2;
}

/// QEMU's FADT sets FORCE_APIC_CLUSTER_MODEL above this many possible CPUs.
const FLAT_LOGICAL_MAX_CPUS: usize = 8;
/// P_LVL2_LAT / P_LVL3_LAT above 100 / 1000 µs mean "C2 / C3 not supported" (QEMU: 0xfff).
const C_STATE_NOT_SUPPORTED: u16 = 0xfff;
/// CMOS RAM index of the RTC century register (QEMU's RTC_CENTURY).
const RTC_CENTURY_INDEX: u8 = 0x32;
/// Hypervisor Vendor Identity (FADT offset 268, ACPI 6.0).
const HYPERVISOR_VENDOR: &[u8; 8] = b"RVMM\0\0\0\0";

/// PM1 event block length: PM1_STS and PM1_EN, 2 bytes each.
const PM1_EVT_LEN: u8 = 4;
/// PM1 control block length.
const PM1_CNT_LEN: u8 = 2;
/// PM timer block length (a 24-bit counter in a 32-bit register).
const PM_TMR_LEN: u8 = 4;
/// GPE0 block length: GPE0_STS and GPE0_EN, 2 bytes each (the FADT field is one byte).
const GPE0_LEN: u8 = layout::GPE0_LEN as u8;
const _: () = assert!(layout::GPE0_LEN <= 0xff);

/// Addresses the FADT points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FadtAddresses {
    pub facs: u64,
    pub dsdt: u64,
}

/// The FADT (signature "FACP").
///
/// FIRMWARE_CTRL holds the FACS address and X_FIRMWARE_CTRL stays 0: ACPI 6.x §5.2.9 allows
/// at most one of the two to be non-zero (Linux warns about a "32/64X FACS address
/// mismatch" otherwise). DSDT and X_DSDT both hold the DSDT address, which is allowed and
/// what ACPICA prefers. The ACPI area is below 4 GiB, so the 32-bit fields always fit.
pub fn build_fadt(addr: &FadtAddresses, possible_cpus: usize, oem: &OemIds) -> Vec<u8> {
    let facs32 = u32::try_from(addr.facs).unwrap_or(0);
    let dsdt32 = u32::try_from(addr.dsdt).unwrap_or(0);
    let mut fadt_flags = flags::WBINVD
        | flags::PROC_C1
        | flags::SLP_BUTTON
        | flags::RTC_S4
        | flags::RESET_REG_SUP
        | flags::USE_PLATFORM_CLOCK;
    if possible_cpus > FLAT_LOGICAL_MAX_CPUS {
        fadt_flags |= flags::FORCE_APIC_CLUSTER_MODEL;
    }
    let pm1a_evt = Gas::system_io(
        layout::PM1A_EVT_PORT,
        PM1_EVT_LEN * 8,
        AccessSize::Undefined,
    );
    let pm1a_cnt = Gas::system_io(
        layout::PM1A_CNT_PORT,
        PM1_CNT_LEN * 8,
        AccessSize::Undefined,
    );
    let pm_tmr = Gas::system_io(layout::PM_TMR_PORT, PM_TMR_LEN * 8, AccessSize::Undefined);
    // X_GPE0_BLK as QEMU fills it in its revision 3 FADT (`-M q35`); its `pc` FADT is
    // revision 1 and has only the 32-bit GPE0_BLK, which matches ours.
    let gpe0 = Gas::system_io(layout::GPE0_PORT, GPE0_LEN * 8, AccessSize::Undefined);
    let reset = Gas::system_io(layout::RESET_PORT, 8, AccessSize::Byte);

    let mut t = Sdt::new(b"FACP", FADT_REVISION, oem);
    t.u32(facs32) // 36 FIRMWARE_CTRL
        .u32(dsdt32) // 40 DSDT
        .u8(0) // 44 reserved (INT_MODEL in ACPI 1.0)
        .u8(0) // 45 Preferred_PM_Profile: unspecified
        .u16(layout::SCI_IRQ as u16) // 46 SCI_INT
        .u32(0) // 48 SMI_CMD: none, ACPI is always enabled
        .u8(0) // 52 ACPI_ENABLE
        .u8(0) // 53 ACPI_DISABLE
        .u8(0) // 54 S4BIOS_REQ
        .u8(0) // 55 PSTATE_CNT
        .u32(u32::from(layout::PM1A_EVT_PORT)) // 56 PM1a_EVT_BLK
        .u32(0) // 60 PM1b_EVT_BLK
        .u32(u32::from(layout::PM1A_CNT_PORT)) // 64 PM1a_CNT_BLK
        .u32(0) // 68 PM1b_CNT_BLK
        .u32(0) // 72 PM2_CNT_BLK
        .u32(u32::from(layout::PM_TMR_PORT)) // 76 PM_TMR_BLK
        .u32(u32::from(layout::GPE0_PORT)) // 80 GPE0_BLK
        .u32(0) // 84 GPE1_BLK
        .u8(PM1_EVT_LEN) // 88 PM1_EVT_LEN
        .u8(PM1_CNT_LEN) // 89 PM1_CNT_LEN
        .u8(0) // 90 PM2_CNT_LEN
        .u8(PM_TMR_LEN) // 91 PM_TMR_LEN
        .u8(GPE0_LEN) // 92 GPE0_BLK_LEN
        .u8(0) // 93 GPE1_BLK_LEN
        .u8(0) // 94 GPE1_BASE
        .u8(0) // 95 CST_CNT
        .u16(C_STATE_NOT_SUPPORTED) // 96 P_LVL2_LAT
        .u16(C_STATE_NOT_SUPPORTED) // 98 P_LVL3_LAT
        .u16(0) // 100 FLUSH_SIZE
        .u16(0) // 102 FLUSH_STRIDE
        .u8(0) // 104 DUTY_OFFSET
        .u8(0) // 105 DUTY_WIDTH
        .u8(0) // 106 DAY_ALRM
        .u8(0) // 107 MON_ALRM
        .u8(RTC_CENTURY_INDEX) // 108 CENTURY
        .u16(boot_arch::I8042 | boot_arch::VGA_NOT_PRESENT) // 109 IAPC_BOOT_ARCH
        .u8(0) // 111 reserved
        .u32(fadt_flags) // 112 Flags
        .gas(&reset) // 116 RESET_REG
        .u8(layout::RESET_VALUE) // 128 RESET_VALUE
        .u16(0) // 129 ARM_BOOT_ARCH
        .u8(FADT_MINOR_REVISION) // 131 FADT Minor Version
        .u64(0) // 132 X_FIRMWARE_CTRL (FIRMWARE_CTRL is used)
        .u64(addr.dsdt) // 140 X_DSDT
        .gas(&pm1a_evt) // 148 X_PM1a_EVT_BLK
        .gas(&Gas::NONE) // 160 X_PM1b_EVT_BLK
        .gas(&pm1a_cnt) // 172 X_PM1a_CNT_BLK
        .gas(&Gas::NONE) // 184 X_PM1b_CNT_BLK
        .gas(&Gas::NONE) // 196 X_PM2_CNT_BLK
        .gas(&pm_tmr) // 208 X_PM_TMR_BLK
        .gas(&gpe0) // 220 X_GPE0_BLK
        .gas(&Gas::NONE) // 232 X_GPE1_BLK
        .gas(&Gas::NONE) // 244 SLEEP_CONTROL_REG (hardware-reduced only)
        .gas(&Gas::NONE) // 256 SLEEP_STATUS_REG (hardware-reduced only)
        .bytes(HYPERVISOR_VENDOR); // 268 Hypervisor Vendor Identity
    debug_assert_eq!(t.len(), FADT_LEN);
    t.finish()
}

/// The FACS: signature, length and version; no global lock, no waking vector (rvmm does
/// not implement sleep states). It has no checksum.
pub fn build_facs() -> Vec<u8> {
    let mut f = vec![0u8; FACS_LEN];
    f[0..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&(FACS_LEN as u32).to_le_bytes());
    f[32] = FACS_VERSION;
    f
}

/// The XSDT: the header then one 64-bit address per table.
pub fn build_xsdt(tables: &[u64], oem: &OemIds) -> Vec<u8> {
    let mut t = Sdt::new(b"XSDT", XSDT_REVISION, oem);
    for address in tables {
        t.u64(*address);
    }
    t.finish()
}

/// The RSDP, revision 2: no RSDT (address 0), the XSDT address, and both checksums.
pub fn build_rsdp(xsdt: u64, oem: &OemIds) -> Vec<u8> {
    let mut r = Vec::with_capacity(RSDP_LEN);
    r.extend_from_slice(b"RSD PTR ");
    r.push(0); // 8 Checksum over the first 20 bytes.
    r.extend_from_slice(&oem.oem_id); // 9 OEMID
    r.push(RSDP_REVISION); // 15 Revision
    r.extend_from_slice(&0u32.to_le_bytes()); // 16 RsdtAddress
    r.extend_from_slice(&(RSDP_LEN as u32).to_le_bytes()); // 20 Length
    r.extend_from_slice(&xsdt.to_le_bytes()); // 24 XsdtAddress
    r.push(0); // 32 Extended Checksum over all 36 bytes.
    r.extend_from_slice(&[0; 3]); // 33 Reserved
    r[8] = checksum(&r[..RSDP_V1_LEN]);
    r[32] = checksum(&r);
    debug_assert_eq!(r.len(), RSDP_LEN);
    r
}

#[cfg(test)]
mod tests {
    use super::super::sdt::tests::{byte_sum, le};
    use super::*;

    const OEM: OemIds = OemIds { oem_id: *b"RVMMOE" };

    fn fadt(cpus: usize) -> Vec<u8> {
        build_fadt(
            &FadtAddresses {
                facs: 0xe_0040,
                dsdt: 0xe_0180,
            },
            cpus,
            &OEM,
        )
    }

    #[test]
    fn fadt_fields() {
        let f = fadt(4);
        assert_eq!(f.len(), 276);
        assert_eq!(&f[0..4], b"FACP");
        assert_eq!(le(&f, 4, 4), 276);
        assert_eq!(f[8], 6);
        assert_eq!(byte_sum(&f), 0);
        assert_eq!(&f[10..16], b"RVMMOE");
        assert_eq!(&f[16..24], b"RVMMFACP");
        assert_eq!(le(&f, 36, 4), 0xe_0040, "FIRMWARE_CTRL");
        assert_eq!(le(&f, 40, 4), 0xe_0180, "DSDT");
        assert_eq!(le(&f, 46, 2), 9, "SCI_INT");
        assert_eq!(le(&f, 48, 4), 0, "SMI_CMD");
        assert_eq!(le(&f, 56, 4), 0x600, "PM1a_EVT_BLK");
        assert_eq!(le(&f, 64, 4), 0x604, "PM1a_CNT_BLK");
        assert_eq!(le(&f, 76, 4), 0x608, "PM_TMR_BLK");
        assert_eq!(le(&f, 80, 4), 0xafe0, "GPE0_BLK");
        assert_eq!(le(&f, 84, 4), 0, "GPE1_BLK");
        assert_eq!(
            &f[88..95],
            &[4, 2, 0, 4, 4, 0, 0],
            "PM1_EVT/PM1_CNT/PM2_CNT/PM_TMR/GPE0/GPE1 lengths, GPE1_BASE"
        );
        assert_eq!(le(&f, 96, 2), 0xfff);
        assert_eq!(le(&f, 98, 2), 0xfff);
        assert_eq!(f[108], 0x32, "CENTURY");
        assert_eq!(
            le(&f, 109, 2),
            0b110,
            "IAPC_BOOT_ARCH: 8042, VGA not present"
        );
        // WBINVD | PROC_C1 | SLP_BUTTON | RTC_S4 | RESET_REG_SUP | USE_PLATFORM_CLOCK.
        assert_eq!(le(&f, 112, 4), 0x84a5);
        assert_eq!(le(&f, 112, 4) & (1 << 20), 0, "HW_REDUCED_ACPI is clear");
        assert_eq!(
            &f[116..128],
            &[1, 8, 0, 1, 0xf9, 0x0c, 0, 0, 0, 0, 0, 0],
            "RESET_REG"
        );
        assert_eq!(f[128], 6, "RESET_VALUE");
        assert_eq!(f[131], 0, "minor version");
        assert_eq!(le(&f, 132, 8), 0, "X_FIRMWARE_CTRL");
        assert_eq!(le(&f, 140, 8), 0xe_0180, "X_DSDT");
        assert_eq!(&f[148..160], &[1, 32, 0, 0, 0x00, 0x06, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&f[160..172], &[0; 12]);
        assert_eq!(&f[172..184], &[1, 16, 0, 0, 0x04, 0x06, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&f[208..220], &[1, 32, 0, 0, 0x08, 0x06, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            &f[220..232],
            &[1, 32, 0, 0, 0xe0, 0xaf, 0, 0, 0, 0, 0, 0],
            "X_GPE0_BLK"
        );
        assert_eq!(&f[232..268], &[0; 36], "GPE1/SLEEP_CONTROL/SLEEP_STATUS");
        assert_eq!(&f[268..276], b"RVMM\0\0\0\0");
    }

    #[test]
    fn fadt_cluster_model_above_eight_cpus() {
        assert_eq!(
            le(&fadt(8), 112, 4) as u32 & flags::FORCE_APIC_CLUSTER_MODEL,
            0
        );
        assert_eq!(le(&fadt(9), 112, 4), 0x484a5);
    }

    #[test]
    fn facs_fields() {
        let f = build_facs();
        assert_eq!(f.len(), 64);
        assert_eq!(&f[0..4], b"FACS");
        assert_eq!(le(&f, 4, 4), 64);
        assert_eq!(f[32], 2);
        assert!(f[8..32].iter().chain(&f[33..]).all(|b| *b == 0));
    }

    #[test]
    fn rsdp_fields_and_checksums() {
        let r = build_rsdp(0xe_0028, &OEM);
        assert_eq!(r.len(), 36);
        assert_eq!(&r[0..8], b"RSD PTR ");
        assert_eq!(byte_sum(&r[..20]), 0);
        assert_eq!(byte_sum(&r), 0);
        assert_eq!(&r[9..15], b"RVMMOE");
        assert_eq!(r[15], 2);
        assert_eq!(le(&r, 16, 4), 0, "RSDT address");
        assert_eq!(le(&r, 20, 4), 36);
        assert_eq!(le(&r, 24, 8), 0xe_0028);
        assert_eq!(&r[33..36], &[0, 0, 0]);
    }

    #[test]
    fn xsdt_entries() {
        let x = build_xsdt(&[0xe_0100, 0x1_0000_0000], &OEM);
        assert_eq!(&x[0..4], b"XSDT");
        assert_eq!(le(&x, 4, 4), 52);
        assert_eq!(x[8], 1);
        assert_eq!(le(&x, 36, 8), 0xe_0100);
        assert_eq!(le(&x, 44, 8), 0x1_0000_0000);
        assert_eq!(byte_sum(&x), 0);
    }
}
