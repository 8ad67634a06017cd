//! The DSDT (ACPI 6.x §5.2.11.1): `\_S5` for poweroff; under `\_SB` the COM1 UART, the
//! i8042 keyboard controller and the vCPU hotplug devices (the processor container
//! `\_SB.CPUS` with one processor device per vCPU slot); the `\_GPE` scope.
//!
//! Device content follows QEMU 7.2's `pc` DSDT (COM1 and KBD are the ISA devices it puts under
//! `\_SB.PCI0.ISA`; we have no PCI, so they sit directly in `\_SB`). The hotplug AML, and
//! how it differs from QEMU's, is in `cpus.rs`.

use super::aml::{Aml, AmlError, InterruptFlags, Resource};
use super::cpus;
use super::sdt::{OemIds, Sdt};
use super::{AcpiPlatform, AcpiVirtioMmio};
use crate::memory::layout;

/// DSDT revision 2: integers are 64-bit (revision 1 would make them 32-bit).
const DSDT_REVISION: u8 = 2;

/// `_STA` bits (ACPI 6.x §6.3.7): present, enabled, shown in UI, functioning.
const STA_PRESENT_ENABLED_SHOWN_FUNCTIONING: u64 = 0xf;

/// COM1 I/O range length (8250 registers).
const COM1_PORT_LEN: u8 = 8;
/// The i8042's IRQ (keyboard).
const I8042_KBD_IRQ: u8 = 1;

/// Builds the DSDT.
pub fn build(platform: &AcpiPlatform, oem: &OemIds) -> Result<Vec<u8>, AmlError> {
    let mut sb = vec![com1()?, keyboard()?];
    sb.extend(cpus::system_bus_devices(&platform.cpus)?);
    for v in &platform.virtio_mmio {
        sb.push(virtio_mmio(v)?);
    }
    let terms = [
        sleep_state_s5()?,
        Aml::scope("\\_SB", sb)?,
        cpus::gpe_scope()?,
    ];
    let mut t = Sdt::new(b"DSDT", DSDT_REVISION, oem);
    for term in terms {
        t.bytes(term.as_bytes());
    }
    Ok(t.finish())
}

/// `Name (\_S5, Package () {SLP_TYPa, SLP_TYPb, 0, 0})` (ACPI 6.x §7.4.2): the values OSPM
/// writes to PM1a_CNT.SLP_TYP to power off.
fn sleep_state_s5() -> Result<Aml, AmlError> {
    let slp_typ = u64::from(layout::S5_SLP_TYP);
    Aml::name(
        "\\_S5",
        Aml::package(vec![
            Aml::int(slp_typ),
            Aml::int(slp_typ),
            Aml::int(0),
            Aml::int(0),
        ])?,
    )
}

/// COM1: a 16550-compatible UART (PNP0501) at 0x3f8, IRQ 4.
fn com1() -> Result<Aml, AmlError> {
    Aml::device(
        "COM1",
        vec![
            Aml::name("_HID", Aml::eisa_id("PNP0501")?)?,
            Aml::name("_UID", Aml::int(1))?,
            Aml::name("_STA", Aml::int(STA_PRESENT_ENABLED_SHOWN_FUNCTIONING))?,
            Aml::name(
                "_CRS",
                Aml::resource_template(&[
                    Resource::Io {
                        min: layout::COM1_PORT,
                        max: layout::COM1_PORT,
                        align: 0,
                        len: COM1_PORT_LEN,
                    },
                    Resource::IrqNoFlags {
                        irq: layout::COM1_IRQ as u8,
                    },
                ])?,
            )?,
        ],
    )
}

/// A virtio-mmio transport as QEMU microvm lists it (`acpi_dsdt_add_virtio`): `VRnn` with
/// `_HID "LNRO0005"`, `_UID n`, `_CCA One` and its register block and level-triggered,
/// active-high interrupt. Linux's virtio_mmio driver binds to LNRO0005.
fn virtio_mmio(v: &AcpiVirtioMmio) -> Result<Aml, AmlError> {
    Aml::device(
        &format!("VR{:02}", v.slot),
        vec![
            Aml::name("_HID", Aml::string("LNRO0005")?)?,
            Aml::name("_UID", Aml::int(u64::from(v.slot)))?,
            Aml::name("_CCA", Aml::int(1))?,
            Aml::name(
                "_CRS",
                Aml::resource_template(&[
                    Resource::Memory32Fixed {
                        base: v.base,
                        len: v.size,
                    },
                    Resource::Interrupt {
                        gsi: v.gsi,
                        flags: InterruptFlags {
                            level: true,
                            active_low: false,
                            shared: false,
                        },
                    },
                ])?,
            )?,
        ],
    )
}

/// The PS/2 keyboard controller (PNP0303) at 0x60/0x64, IRQ 1: Linux's i8042 driver finds
/// the controller through this device when ACPI PnP is on.
fn keyboard() -> Result<Aml, AmlError> {
    let port = |p: u16| Resource::Io {
        min: p,
        max: p,
        align: 1,
        len: 1,
    };
    Aml::device(
        "KBD",
        vec![
            Aml::name("_HID", Aml::eisa_id("PNP0303")?)?,
            Aml::name("_STA", Aml::int(STA_PRESENT_ENABLED_SHOWN_FUNCTIONING))?,
            Aml::name(
                "_CRS",
                Aml::resource_template(&[
                    port(layout::I8042_DATA_PORT),
                    port(layout::I8042_CMD_PORT),
                    Resource::IrqNoFlags { irq: I8042_KBD_IRQ },
                ])?,
            )?,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::super::sdt::tests::{byte_sum, le};
    use super::super::tests::{cpus, platform};
    use super::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn header_and_s5() {
        let oem = OemIds { oem_id: *b"RVMM  " };
        let t = build(&platform(cpus(1)), &oem).unwrap();
        assert_eq!(&t[0..4], b"DSDT");
        assert_eq!(t[8], 2);
        assert_eq!(le(&t, 4, 4) as usize, t.len());
        assert_eq!(byte_sum(&t), 0);
        // Name (\_S5, Package (4) {5, 5, 0, 0}) right after the header.
        assert_eq!(
            &t[36..51],
            &[
                0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05,
                0x00, 0x00
            ]
        );
        // Scope (\_SB) follows.
        assert_eq!(t[51], 0x10);
    }

    #[test]
    fn com1_and_keyboard_bytes() {
        let com = com1().unwrap();
        let c = com.as_bytes();
        assert_eq!(&c[..2], &[0x5b, 0x82]);
        assert!(contains(c, b"COM1\x08_HID\x0c\x41\xd0\x05\x01"));
        assert!(contains(c, b"\x08_UID\x01\x08_STA\x0a\x0f"));
        assert!(contains(
            c,
            &[0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08, 0x22, 0x10, 0x00, 0x79, 0x00]
        ));
        let kbd = keyboard().unwrap();
        let k = kbd.as_bytes();
        assert!(contains(k, b"KBD_\x08_HID\x0c\x41\xd0\x03\x03"));
        assert!(contains(
            k,
            &[
                0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01, 0x47, 0x01, 0x64, 0x00, 0x64, 0x00,
                0x01, 0x01, 0x22, 0x02, 0x00, 0x79, 0x00
            ]
        ));
    }

    #[test]
    fn virtio_mmio_devices_as_qemu_microvm() {
        let mut p = platform(cpus(1));
        p.virtio_mmio = vec![AcpiVirtioMmio {
            slot: 1,
            base: 0xfeb0_0200,
            size: 0x200,
            gsi: 17,
        }];
        let d = build(&p, &OemIds { oem_id: *b"RVMM  " }).unwrap();
        assert!(contains(&d, b"VR01\x08_HID\x0dLNRO0005\x00"));
        assert!(contains(&d, b"_CCA\x01"));
        // Memory32Fixed (ReadWrite, 0xFEB00200, 0x200).
        assert!(contains(
            &d,
            b"\x86\x09\x00\x01\x00\x02\xb0\xfe\x00\x02\x00\x00"
        ));
        // Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) {17}.
        assert!(contains(&d, b"\x89\x06\x00\x01\x01\x11\x00\x00\x00"));
        let none = build(&platform(cpus(1)), &OemIds { oem_id: *b"RVMM  " }).unwrap();
        assert!(!contains(&none, b"LNRO0005"));
    }

    #[test]
    fn every_slot_has_a_device() {
        let oem = OemIds { oem_id: [b' '; 6] };
        let t = build(&platform(cpus(300)), &oem).unwrap();
        for uid in [0u32, 0xff, 0x12b] {
            let name = cpus::cpu_device_name(uid);
            assert!(contains(&t, name.as_bytes()), "{name}");
        }
        assert!(!contains(&t, b"C12C"));
        // The scope is longer than 4095 bytes, so it takes a 3-byte PkgLength.
        assert_eq!(t[52] >> 6, 2);
    }
}
