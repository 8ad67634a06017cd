//! The DSDT's vCPU hotplug machinery, as QEMU 7.2 `-M pc` builds it (hw/acpi/cpu.c
//! `build_cpus_aml`, with PIIX-PM's register block and GPE): the register block device
//! `\_SB.PRES`, the processor container `\_SB.CPUS` with its helper methods and one
//! processor device per vCPU slot, the GPE0 resources device `\_SB.GPE0`, and the
//! `\_GPE._E02` handler that scans for events.
//!
//! The guest drives the modern register block of QEMU's docs/specs/acpi_cpu_hotplug.rst at
//! `layout::CPU_HOTPLUG_PORT`; its selector is the slot's position in
//! `AcpiPlatform::cpus`, which must be the device model's slot order. As in QEMU, all of it
//! is emitted even when every slot is present at boot, and each slot's `_MAT` is a constant
//! buffer with the MADT entry's Enabled flag set: OSPM only reads `_MAT` of a slot whose
//! `_STA` (the register block's enabled bit) says present. Differences from QEMU's DSDT,
//! all without effect on what the guest can do:
//! - QEMU puts `PRES` and `GPE0` under `\_SB.PCI0`; rvmm has no PCI, so they sit in `\_SB`
//!   (as COM1 and KBD do).
//! - QEMU declares a slot whose APIC ID is below 255 with the ACPI 1.0 `Processor ()`
//!   operator; rvmm declares every slot as a `Device` with `_HID "ACPI0007"` and `_UID`,
//!   the form QEMU uses for the other slots (ACPI 6.x deprecates `Processor ()`).
//! - QEMU writes `Method (\_GPE._E02)` after `\_SB`; rvmm puts `_E02` in the `\_GPE` scope
//!   that carries `_HID`, the same object.
//!
//! The register block's behaviour is the device model's (`devices`); this module only
//! describes it to the guest.

use super::aml::{Aml, AmlError, FieldAccess, FieldEntry, FieldUpdate, RegionSpace, Resource};
use super::madt;
use super::AcpiCpu;
use crate::memory::layout;

/// The last vCPU UID a processor device name `Cxxx` (three hex digits) can carry.
pub const MAX_CPU_UID: u32 = 0xfff;

/// `_STA` values (ACPI 6.x §6.3.7): bit 0 present, 1 enabled, 2 shown in UI, 3 functioning.
const STA_PRESENT_ENABLED_SHOWN_FUNCTIONING: u64 = 0xf;
/// Present, enabled and functioning but hidden from the UI (QEMU's resource devices).
const STA_PRESENT_ENABLED_FUNCTIONING: u64 = 0xb;

/// Notify values (ACPI 6.x §5.6.6, Table 5.166).
const NOTIFY_DEVICE_CHECK: u64 = 1;
const NOTIFY_EJECT_REQUEST: u64 = 3;

/// Register block commands (acpi_cpu_hotplug.rst, "Command field"): 0 selects the next CPU
/// with a pending event, 1 and 2 take the _OST event and status in the command data.
const CMD_GET_NEXT_CPU_WITH_EVENT: u64 = 0;
const CMD_OST_EVENT: u64 = 1;
const CMD_OST_STATUS: u64 = 2;

/// Register block offsets (acpi_cpu_hotplug.rst): selector (DWORD), flags (byte), command
/// (byte), command data (DWORD).
const FLAGS_OFFSET: usize = 4;
const DATA_OFFSET: usize = 8;

/// CSCN notifies at most this many inserted CPUs per pass: its list is an ACPI 1.0
/// `Package`, whose element count is one byte (QEMU's `max_cpus_per_pass`).
const MAX_CPUS_PER_PASS: u8 = 255;
/// `Acquire` timeout meaning "wait forever".
const WAIT_FOREVER: u16 = 0xffff;

/// Names QEMU gives the objects (hw/acpi/cpu.c); the guest's OS only sees the ACPI ones.
mod name {
    pub const RES_DEVICE: &str = "PRES";
    pub const REGION: &str = "PRST";
    pub const LOCK: &str = "\\_SB.PRES.CPLK";
    pub const ENABLED: &str = "\\_SB.PRES.CPEN";
    pub const INSERT_EVENT: &str = "\\_SB.PRES.CINS";
    pub const REMOVE_EVENT: &str = "\\_SB.PRES.CRMV";
    pub const EJECT: &str = "\\_SB.PRES.CEJ0";
    pub const COMMAND: &str = "\\_SB.PRES.CCMD";
    pub const SELECTOR: &str = "\\_SB.PRES.CSEL";
    pub const DATA: &str = "\\_SB.PRES.CDAT";
    pub const CONTAINER: &str = "CPUS";
    pub const NOTIFY_METHOD: &str = "CTFY";
    pub const STATUS_METHOD: &str = "CSTA";
    pub const EJECT_METHOD: &str = "CEJ0";
    pub const SCAN_METHOD: &str = "CSCN";
    pub const SCAN_PATH: &str = "\\_SB.CPUS.CSCN";
    pub const OST_METHOD: &str = "COST";
    pub const NEW_CPUS: &str = "CNEW";
}

/// The processor device name for `uid`: `C` and three uppercase hex digits, as QEMU's
/// `C%03X`.
pub fn cpu_device_name(uid: u32) -> String {
    format!("C{uid:03X}")
}

/// The objects that go into `\_SB`: `GPE0`, `PRES` and `CPUS`.
pub fn system_bus_devices(cpus: &[AcpiCpu]) -> Result<Vec<Aml>, AmlError> {
    Ok(vec![gpe0_resources()?, register_block()?, container(cpus)?])
}

/// `Scope (\_GPE) { Name (_HID, "ACPI0006") Method (_E02) { \_SB.CPUS.CSCN () } }`: the
/// GPE block device and the handler of GPE0 bit `layout::GPE_CPU_HOTPLUG_BIT`.
pub fn gpe_scope() -> Result<Aml, AmlError> {
    let handler = format!("_E{:02X}", layout::GPE_CPU_HOTPLUG_BIT);
    Aml::scope(
        "\\_GPE",
        vec![
            Aml::name("_HID", Aml::string("ACPI0006")?)?,
            Aml::method(
                &handler,
                0,
                false,
                vec![Aml::call(name::SCAN_PATH, vec![])?],
            )?,
        ],
    )
}

/// `Device (GPE0)`: reserves the GPE0 block's ports ("GPE0 resources").
fn gpe0_resources() -> Result<Aml, AmlError> {
    Aml::device(
        "GPE0",
        vec![
            Aml::name("_HID", Aml::string("PNP0A06")?)?,
            Aml::name("_UID", Aml::string("GPE0 resources")?)?,
            Aml::name("_STA", Aml::int(STA_PRESENT_ENABLED_FUNCTIONING))?,
            Aml::name(
                "_CRS",
                Aml::resource_template(&[io_range(layout::GPE0_PORT, layout::GPE0_LEN)])?,
            )?,
        ],
    )
}

// An IO descriptor's length is one byte.
const _: () = assert!(layout::GPE0_LEN <= 0xff && layout::CPU_HOTPLUG_LEN <= 0xff);

/// `IO (Decode16, port, port, 1, len)`.
fn io_range(port: u16, len: u16) -> Resource {
    Resource::Io {
        min: port,
        max: port,
        align: 1,
        len: len as u8,
    }
}

/// `Device (PRES)`: the register block, its lock, its two fields, and the `_INI` that
/// switches the block from the legacy bitmap to the modern interface (a DWORD 0 written to
/// the selector; on a reboot the block is already modern and this selects CPU 0, a no-op).
fn register_block() -> Result<Aml, AmlError> {
    let port = layout::CPU_HOTPLUG_PORT;
    let len = layout::CPU_HOTPLUG_LEN;
    let named = |name, bits| FieldEntry::Named { name, bits };
    let flags_and_command = Aml::field(
        name::REGION,
        FieldAccess::Byte,
        FieldUpdate::WriteAsZeros,
        &[
            FieldEntry::Reserved {
                bits: FLAGS_OFFSET * 8,
            },
            named("CPEN", 1), // bit 0: enabled (read only)
            named("CINS", 1), // bit 1: insert event (write 1 to clear)
            named("CRMV", 1), // bit 2: remove event (write 1 to clear)
            named("CEJ0", 1), // bit 3: eject (write only)
            named("CEJF", 1), // bit 4: firmware eject request
            FieldEntry::Reserved { bits: 3 },
            named("CCMD", 8), // offset 5: command
        ],
    )?;
    let selector_and_data = Aml::field(
        name::REGION,
        FieldAccess::DWord,
        FieldUpdate::Preserve,
        &[
            named("CSEL", 32),
            FieldEntry::Reserved {
                bits: (DATA_OFFSET - 4) * 8,
            },
            named("CDAT", 32),
        ],
    )?;
    Aml::device(
        name::RES_DEVICE,
        vec![
            Aml::name("_HID", Aml::eisa_id("PNP0A06")?)?,
            Aml::name("_UID", Aml::string("CPU Hotplug resources")?)?,
            Aml::mutex("CPLK", 0)?,
            Aml::name("_CRS", Aml::resource_template(&[io_range(port, len)])?)?,
            Aml::operation_region(
                name::REGION,
                RegionSpace::SystemIo,
                u64::from(port),
                u64::from(len),
            )?,
            flags_and_command,
            selector_and_data,
            Aml::method(
                "_INI",
                0,
                true,
                vec![Aml::store(Aml::int(0), Aml::path("CSEL")?)],
            )?,
        ],
    )
}

/// `Device (CPUS)`: the processor container (ACPI0010), its methods and the vCPU slots.
fn container(cpus: &[AcpiCpu]) -> Result<Aml, AmlError> {
    let mut body = vec![
        Aml::name("_HID", Aml::string("ACPI0010")?)?,
        Aml::name("_CID", Aml::eisa_id("PNP0A05")?)?,
        notify_method(cpus)?,
        status_method()?,
        eject_method()?,
        scan_method(cpus.len())?,
        ost_method()?,
    ];
    for (slot, cpu) in cpus.iter().enumerate() {
        body.push(cpu_device(slot, cpu)?);
    }
    Aml::device(name::CONTAINER, body)
}

/// A method body wrapped in `Acquire (CPLK)` ... `Release (CPLK)`.
fn locked(body: Vec<Aml>) -> Result<Vec<Aml>, AmlError> {
    let mut out = vec![Aml::acquire(name::LOCK, WAIT_FOREVER)?];
    out.extend(body);
    out.push(Aml::release(name::LOCK)?);
    Ok(out)
}

fn local(n: u8) -> Result<Aml, AmlError> {
    Aml::local(n)
}

fn arg(n: u8) -> Result<Aml, AmlError> {
    Aml::arg(n)
}

fn path(p: &str) -> Result<Aml, AmlError> {
    Aml::path(p)
}

/// `CTFY (slot, event)`: `Notify` the slot's processor device.
fn notify_method(cpus: &[AcpiCpu]) -> Result<Aml, AmlError> {
    let mut body = Vec::with_capacity(cpus.len());
    for (slot, cpu) in cpus.iter().enumerate() {
        body.push(Aml::if_(
            Aml::equal(arg(0)?, Aml::int(slot as u64)),
            vec![Aml::notify(path(&cpu_device_name(cpu.uid))?, arg(1)?)],
        )?);
    }
    Aml::method(name::NOTIFY_METHOD, 2, false, body)
}

/// `CSTA (slot)`: 0x0F when the slot's vCPU is enabled, else 0.
fn status_method() -> Result<Aml, AmlError> {
    let body = vec![
        Aml::store(arg(0)?, path(name::SELECTOR)?),
        Aml::store(Aml::int(0), local(0)?),
        Aml::if_(
            Aml::equal(path(name::ENABLED)?, Aml::int(1)),
            vec![Aml::store(
                Aml::int(STA_PRESENT_ENABLED_SHOWN_FUNCTIONING),
                local(0)?,
            )],
        )?,
    ];
    let mut body = locked(body)?;
    body.push(Aml::ret(local(0)?));
    Aml::method(name::STATUS_METHOD, 1, true, body)
}

/// `CEJ0 (slot)`: ejects the slot's vCPU.
fn eject_method() -> Result<Aml, AmlError> {
    let body = vec![
        Aml::store(arg(0)?, path(name::SELECTOR)?),
        Aml::store(Aml::int(1), path(name::EJECT)?),
    ];
    Aml::method(name::EJECT_METHOD, 1, true, locked(body)?)
}

/// `COST (slot, source_event, status_code, status_buffer)`: passes `_OST`'s event and
/// status to the register block (commands 1 and 2).
fn ost_method() -> Result<Aml, AmlError> {
    let command = || path(name::COMMAND);
    let data = || path(name::DATA);
    let body = vec![
        Aml::store(arg(0)?, path(name::SELECTOR)?),
        Aml::store(Aml::int(CMD_OST_EVENT), command()?),
        Aml::store(arg(1)?, data()?),
        Aml::store(Aml::int(CMD_OST_STATUS), command()?),
        Aml::store(arg(2)?, data()?),
    ];
    Aml::method(name::OST_METHOD, 4, true, locked(body)?)
}

/// `CSCN ()`: walks the slots with pending events (command 0 returns the next one at or
/// after the selector, or a lower one when there is none), collects inserted vCPUs and
/// sends each an eject request notification for a remove event; then notifies "device
/// check" for each inserted one and clears its insert event. Repeats while a pass filled
/// its 255-entry list.
///
/// Locals: 0 = an event was found, 1 = inserted CPUs this pass, 2 = notify loop index,
/// 3 = selector / slot, 4 = another pass is needed.
fn scan_method(slots: usize) -> Result<Aml, AmlError> {
    let (has_event, added, i, slot, again) = (0, 1, 2, 3, 4);
    let one = || Aml::int(1);
    let new_cpus = || path(name::NEW_CPUS);
    let selector = || path(name::SELECTOR);
    let data = || path(name::DATA);

    let on_insert = vec![
        Aml::store(local(slot)?, Aml::index(new_cpus()?, local(added)?)),
        Aml::increment(local(added)?),
        Aml::store(one(), local(has_event)?),
    ];
    let on_remove = vec![
        Aml::call(
            name::NOTIFY_METHOD,
            vec![local(slot)?, Aml::int(NOTIFY_EJECT_REQUEST)],
        )?,
        Aml::store(one(), path(name::REMOVE_EVENT)?),
        Aml::store(one(), local(has_event)?),
    ];
    let find_events = Aml::while_(
        Aml::and(
            Aml::equal(local(has_event)?, one()),
            Aml::less(local(slot)?, Aml::int(slots as u64)),
        ),
        vec![
            Aml::store(Aml::int(0), local(has_event)?),
            Aml::store(local(slot)?, selector()?),
            Aml::store(Aml::int(CMD_GET_NEXT_CPU_WITH_EVENT), path(name::COMMAND)?),
            // The search wrapped around: no event at or after this slot.
            Aml::if_(Aml::less(data()?, local(slot)?), vec![Aml::break_()])?,
            // The list is full: notify these, then scan again.
            Aml::if_(
                Aml::equal(local(added)?, Aml::int(u64::from(MAX_CPUS_PER_PASS))),
                vec![Aml::store(one(), local(again)?), Aml::break_()],
            )?,
            Aml::store(data()?, local(slot)?),
            Aml::if_(Aml::equal(path(name::INSERT_EVENT)?, one()), on_insert)?,
            Aml::else_(vec![Aml::if_(
                Aml::equal(path(name::REMOVE_EVENT)?, one()),
                on_remove,
            )?])?,
            Aml::increment(local(slot)?),
        ],
    )?;
    let notify_inserted = Aml::while_(
        Aml::less(local(i)?, local(added)?),
        vec![
            Aml::store(
                Aml::deref_of(Aml::index(new_cpus()?, local(i)?)),
                local(slot)?,
            ),
            Aml::call(
                name::NOTIFY_METHOD,
                vec![local(slot)?, Aml::int(NOTIFY_DEVICE_CHECK)],
            )?,
            Aml::store(local(slot)?, Aml::debug()),
            Aml::store(local(slot)?, selector()?),
            Aml::store(one(), path(name::INSERT_EVENT)?),
            Aml::increment(local(i)?),
        ],
    )?;
    let body = vec![
        Aml::name(name::NEW_CPUS, Aml::empty_package(MAX_CPUS_PER_PASS))?,
        Aml::store(Aml::int(0), local(slot)?),
        Aml::store(one(), local(again)?),
        Aml::while_(
            Aml::equal(local(again)?, one()),
            vec![
                Aml::store(Aml::int(0), local(again)?),
                Aml::store(one(), local(has_event)?),
                Aml::store(Aml::int(0), local(added)?),
                find_events,
                Aml::store(Aml::int(0), local(i)?),
                notify_inserted,
            ],
        )?,
    ];
    Aml::method(name::SCAN_METHOD, 0, true, locked(body)?)
}

/// `Device (Cxxx)`: `_HID`, `_UID`, `_STA` from the register block, `_MAT` (the slot's
/// MADT entry, enabled), `_EJ0` (not on the boot vCPU, slot 0), `_OST`, and `_PXM` with
/// guest NUMA (Linux ignores the SRAT for CPUs absent at boot, so every slot needs it).
fn cpu_device(slot: usize, cpu: &AcpiCpu) -> Result<Aml, AmlError> {
    let slot_arg = || Aml::int(slot as u64);
    let mut body = vec![
        Aml::name("_HID", Aml::string("ACPI0007")?)?,
        Aml::name("_UID", Aml::int(u64::from(cpu.uid)))?,
        Aml::method(
            "_STA",
            0,
            true,
            vec![Aml::ret(Aml::call(name::STATUS_METHOD, vec![slot_arg()])?)],
        )?,
        Aml::name("_MAT", Aml::buffer(&madt::cpu_entry(cpu, true))?)?,
    ];
    if slot != 0 {
        body.push(Aml::method(
            "_EJ0",
            1,
            false,
            vec![Aml::call(name::EJECT_METHOD, vec![slot_arg()])?],
        )?);
    }
    body.push(Aml::method(
        "_OST",
        3,
        true,
        vec![Aml::call(
            name::OST_METHOD,
            vec![slot_arg(), arg(0)?, arg(1)?, arg(2)?],
        )?],
    )?);
    if let Some(node) = cpu.node {
        body.push(Aml::name("_PXM", Aml::int(u64::from(node)))?);
    }
    Aml::device(&cpu_device_name(cpu.uid), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// `\_SB.PRES.<seg>` as a NameString: RootChar, MultiNamePrefix, 3 segments.
    fn pres(seg: &[u8; 4]) -> Vec<u8> {
        [&b"\\\x2f\x03_SB_PRES"[..], seg].concat()
    }

    #[test]
    fn device_names() {
        assert_eq!(cpu_device_name(0), "C000");
        assert_eq!(cpu_device_name(0x11f), "C11F");
        assert_eq!(cpu_device_name(MAX_CPU_UID), "CFFF");
    }

    #[test]
    fn cpu_device_bytes() {
        let cpu = AcpiCpu {
            uid: 0x11f,
            apic_id: 0x11f,
            enabled: false,
            node: Some(1),
        };
        let d = cpu_device(2, &cpu).unwrap();
        let mut body = b"C11F".to_vec();
        body.extend_from_slice(b"\x08_HID\x0dACPI0007\x00");
        body.extend_from_slice(b"\x08_UID\x0b\x1f\x01");
        // Method (_STA, 0, Serialized) { Return (CSTA (2)) }
        body.extend_from_slice(b"\x14\x0d_STA\x08\xa4CSTA\x0a\x02");
        // Name (_MAT, Buffer (16) {x2APIC entry, enabled}): APIC ID 0x11f > 254.
        body.extend_from_slice(b"\x08_MAT\x11\x13\x0a\x10");
        body.extend_from_slice(&[9, 16, 0, 0, 0x1f, 1, 0, 0, 1, 0, 0, 0, 0x1f, 1, 0, 0]);
        // Method (_EJ0, 1, NotSerialized) { CEJ0 (2) }
        body.extend_from_slice(b"\x14\x0c_EJ0\x01CEJ0\x0a\x02");
        // Method (_OST, 3, Serialized) { COST (2, Arg0, Arg1, Arg2) }
        body.extend_from_slice(b"\x14\x0f_OST\x0bCOST\x0a\x02\x68\x69\x6a");
        body.extend_from_slice(b"\x08_PXM\x01");
        let mut expect = vec![0x5b, 0x82, 0x40 | ((body.len() + 2) & 0xf) as u8];
        expect.push(((body.len() + 2) >> 4) as u8);
        expect.extend_from_slice(&body);
        assert_eq!(d.as_bytes(), &expect[..]);
    }

    #[test]
    fn the_boot_slot_has_no_eject_method() {
        let cpu = AcpiCpu {
            uid: 0,
            apic_id: 0,
            enabled: true,
            node: None,
        };
        let boot = cpu_device(0, &cpu).unwrap();
        assert!(!contains(boot.as_bytes(), b"_EJ0"));
        assert!(!contains(boot.as_bytes(), b"_PXM"));
        // xAPIC _MAT entry, enabled.
        assert!(contains(
            boot.as_bytes(),
            b"\x08_MAT\x11\x0b\x0a\x08\x00\x08\x00\x00\x01\x00\x00\x00"
        ));
        let other = cpu_device(1, &AcpiCpu { uid: 1, ..cpu }).unwrap();
        assert!(contains(other.as_bytes(), b"\x14\x0b_EJ0\x01CEJ0\x01"));
    }

    #[test]
    fn status_method_bytes() {
        let m = status_method().unwrap();
        let mut body = b"CSTA\x09".to_vec(); // 1 argument, Serialized
        body.extend_from_slice(&[&b"\x5b\x23"[..], &pres(b"CPLK"), b"\xff\xff"].concat());
        body.extend_from_slice(&[&b"\x70\x68"[..], &pres(b"CSEL")].concat());
        body.extend_from_slice(b"\x70\x00\x60");
        let predicate = [&b"\x93"[..], &pres(b"CPEN"), b"\x01"].concat();
        body.push(0xa0);
        body.push((1 + predicate.len() + 4) as u8);
        body.extend_from_slice(&predicate);
        body.extend_from_slice(b"\x70\x0a\x0f\x60");
        body.extend_from_slice(&[&b"\x5b\x27"[..], &pres(b"CPLK")].concat());
        body.extend_from_slice(b"\xa4\x60");
        let mut expect = vec![0x14, 0x40 | ((body.len() + 2) & 0xf) as u8];
        expect.push(((body.len() + 2) >> 4) as u8);
        expect.extend_from_slice(&body);
        assert_eq!(m.as_bytes(), &expect[..]);
    }

    #[test]
    fn register_block_describes_the_layout_ports() {
        let d = register_block().unwrap();
        let b = d.as_bytes();
        // _CRS IO (Decode16, 0xaf00, 0xaf00, 1, 12) and OperationRegion (PRST, SystemIO,
        // 0xaf00, 12).
        assert!(contains(
            b,
            &[0x47, 0x01, 0x00, 0xaf, 0x00, 0xaf, 0x01, 0x0c]
        ));
        assert!(contains(b, b"\x5b\x80PRST\x01\x0b\x00\xaf\x0a\x0c"));
        assert!(contains(b, b"\x5b\x01CPLK\x00"));
        // Field (PRST, ByteAcc, NoLock, WriteAsZeros): flags at byte 4, command at byte 5.
        assert!(contains(
            b,
            b"PRST\x41\x00\x20CPEN\x01CINS\x01CRMV\x01CEJ0\x01CEJF\x01\x00\x03CCMD\x08"
        ));
        // Field (PRST, DWordAcc, NoLock, Preserve): selector at 0, data at 8.
        assert!(contains(b, b"PRST\x03CSEL\x20\x00\x20CDAT\x20"));
        // Method (_INI, 0, Serialized) { Store (Zero, CSEL) }: the switch to modern mode.
        assert!(contains(b, b"\x14\x0c_INI\x08\x70\x00CSEL"));
    }

    #[test]
    fn gpe_scope_bytes() {
        let s = gpe_scope().unwrap();
        let mut body = b"\\_GPE".to_vec();
        body.extend_from_slice(b"\x08_HID\x0dACPI0006\x00");
        // Method (_E02, 0, NotSerialized) { \_SB.CPUS.CSCN () }
        body.extend_from_slice(b"\x14\x15_E02\x00\\\x2f\x03_SB_CPUSCSCN");
        let mut expect = vec![0x10, (body.len() + 1) as u8];
        expect.extend_from_slice(&body);
        assert_eq!(s.as_bytes(), &expect[..]);
    }

    #[test]
    fn scan_and_notify_cover_every_slot() {
        let slots: Vec<AcpiCpu> = (0..3)
            .map(|i| AcpiCpu {
                uid: 0x10 + i,
                apic_id: i,
                enabled: i == 0,
                node: None,
            })
            .collect();
        let c = container(&slots).unwrap();
        let b = c.as_bytes();
        // CTFY: If (LEqual (Arg0, slot)) { Notify (C<uid>, Arg1) }; the selector is the
        // slot position, the name carries the UID.
        assert!(contains(b, b"\xa0\x0a\x93\x68\x00\x86C010\x69"));
        assert!(contains(b, b"\xa0\x0b\x93\x68\x0a\x02\x86C012\x69"));
        // CSCN's walk stops at the slot count: LLess (Local3, 3).
        assert!(contains(b, b"\x95\x63\x0a\x03"));
        // Name (CNEW, Package (0xFF) {}).
        assert!(contains(b, b"\x08CNEW\x12\x02\xff"));
        // Each slot's device: its name then _HID; slot 2 passes 2 to CSTA.
        for name in ["C010", "C011", "C012"] {
            assert!(contains(b, format!("{name}\x08_HID").as_bytes()), "{name}");
        }
        assert!(contains(
            b,
            b"\x08_UID\x0a\x12\x14\x0d_STA\x08\xa4CSTA\x0a\x02"
        ));
    }
}
