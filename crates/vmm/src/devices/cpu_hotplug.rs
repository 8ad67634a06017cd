//! QEMU's ACPI CPU hotplug register block (QEMU docs/specs/acpi_cpu_hotplug.rst), at PIIX-PM's
//! port 0xaf00 as in QEMU's `pc` machine, so that the DSDT's CPU methods (and any guest that
//! knows QEMU) drive rvmm's vCPU slots exactly as they drive QEMU's.
//!
//! The block starts in the legacy mode: 32 read-only bytes, one bit per APIC ID of a present
//! vCPU. A write of 0 at its base switches it to the modern mode for good: 12 bytes of
//!
//! | offset | write                         | read                                   |
//! |--------|-------------------------------|----------------------------------------|
//! | 0      | CPU selector (DWORD)          | command data 2 (arch ID high, else 0)  |
//! | 4      | control: 1<<1 clear insert, 1<<2 clear remove, 1<<3 eject, 1<<4 firmware eject | status: 1<<0 enabled, 1<<1 insert event, 1<<2 remove event, 1<<4 firmware eject |
//! | 5      | command: 0 next CPU with event, 1 OST event, 2 OST status, 3 arch ID | — |
//! | 8      | command data (OST values)     | command data (selector or arch ID low) |
//!
//! Behaviour follows QEMU 7.2 where the document is silent: an access is decoded by its
//! offset alone (any size from 1 to 4 bytes, the value truncated), offsets the table does not
//! name read 0 and ignore writes, a selector out of range makes every other access read 0
//! and be ignored (until a valid selector is written), only the lowest control bit written is
//! acted on, and the boot vCPU (slot 0) and absent slots cannot be ejected. The device only
//! keeps the registers: what an eject or an OST report means for the VM is the VMM's
//! business ([`GuestEvent::CpuEject`], [`GuestEvent::CpuOst`]), and raising GPE0 bit 2 is the
//! caller's, after [`CpuHotplug::plug`] or [`CpuHotplug::request_unplug`].

use thiserror::Error;

use super::GuestEvent;
use crate::memory::layout::CPU_HOTPLUG_PORT;

/// The legacy bitmap's length (QEMU's ACPI_GPE_PROC_LEN): APIC IDs 0..=255.
const LEGACY_LEN: u16 = 32;
/// The modern block's length (QEMU's ACPI_CPU_HOTPLUG_REG_LEN).
pub const MODERN_LEN: u16 = 12;

/// Register offsets in the modern block.
const SELECTOR: u16 = 0;
const FLAGS: u16 = 4;
const COMMAND: u16 = 5;
const DATA: u16 = 8;

/// Status (read) and control (write) bits at offset 4.
const ENABLED: u8 = 1 << 0;
const INSERT_EVENT: u8 = 1 << 1;
const REMOVE_EVENT: u8 = 1 << 2;
const EJECT: u8 = 1 << 3;
const FIRMWARE_EJECT: u8 = 1 << 4;

/// Commands (offset 5).
const CMD_NEXT_WITH_EVENT: u8 = 0;
const CMD_OST_EVENT: u8 = 1;
const CMD_OST_STATUS: u8 = 2;
const CMD_ARCH_ID: u8 = 3;

/// Why a plug or unplug request was refused. The VMM turns these into QEMU's texts, which
/// name the CPU type and topology ids this device does not know.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum CpuHotplugError {
    #[error("vCPU slot {slot} does not exist (the machine has {slots} slots)")]
    NoSuchSlot { slot: u32, slots: u32 },
    #[error("vCPU slot {slot} is already plugged")]
    Plugged { slot: u32 },
    #[error("vCPU slot {slot} is not plugged")]
    Unplugged { slot: u32 },
    #[error("vCPU slot 0 is the boot CPU; it cannot be unplugged")]
    BootCpu,
    /// QEMU refuses to unplug while the guest still uses the legacy interface, which has no
    /// remove event.
    #[error("the guest has not switched the CPU hotplug interface to its modern mode")]
    LegacyMode,
}

/// One vCPU slot as the block sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Slot {
    apic_id: u32,
    enabled: bool,
    inserting: bool,
    removing: bool,
    firmware_eject: bool,
    ost_event: u32,
    ost_status: u32,
}

/// The register block and the state of every vCPU slot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuHotplug {
    slots: Vec<Slot>,
    modern: bool,
    selector: u32,
    command: u8,
}

impl CpuHotplug {
    /// The registers and every slot, for a snapshot.
    pub fn state(&self) -> CpuHotplug {
        self.clone()
    }

    /// Puts saved registers back; the saved slots must have this VM's APIC IDs.
    pub fn restore(&mut self, state: &CpuHotplug) -> Result<(), String> {
        let ids = |h: &CpuHotplug| h.slots.iter().map(|s| s.apic_id).collect::<Vec<_>>();
        if ids(self) != ids(state) {
            return Err(format!(
                "the saved CPU hotplug block has slots with APIC IDs {:?}, this VM {:?}",
                ids(state),
                ids(self)
            ));
        }
        *self = state.clone();
        Ok(())
    }

    /// The slots whose vCPU is present (enabled), in slot order.
    pub fn present_slots(&self) -> Vec<u32> {
        (0u32..)
            .zip(&self.slots)
            .filter(|(_, s)| s.enabled)
            .map(|(i, _)| i)
            .collect()
    }

    /// One slot per APIC ID (slot index = vCPU index); the first `present` are plugged.
    pub fn new(apic_ids: Vec<u32>, present: u32) -> Self {
        let slots = apic_ids
            .into_iter()
            .zip(0u32..)
            .map(|(apic_id, index)| Slot {
                apic_id,
                enabled: index < present,
                ..Slot::default()
            })
            .collect();
        CpuHotplug {
            slots,
            modern: false,
            selector: 0,
            command: 0,
        }
    }

    /// Whether `port` belongs to the block (the legacy bitmap's range, which covers the
    /// modern block's).
    pub fn owns(port: u16) -> bool {
        (CPU_HOTPLUG_PORT..CPU_HOTPLUG_PORT + LEGACY_LEN).contains(&port)
    }

    /// The number of slots (maxcpus).
    pub fn slots(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    /// Whether the guest switched the block to the modern interface.
    pub fn is_modern(&self) -> bool {
        self.modern
    }

    /// Whether slot `slot` holds a vCPU.
    pub fn is_enabled(&self, slot: u32) -> bool {
        self.slot(slot).is_some_and(|s| s.enabled)
    }

    /// The last OST event and status the guest reported for `slot`.
    pub fn ost(&self, slot: u32) -> Option<(u32, u32)> {
        self.slot(slot).map(|s| (s.ost_event, s.ost_status))
    }

    fn slot(&self, slot: u32) -> Option<&Slot> {
        self.slots.get(usize::try_from(slot).ok()?)
    }

    fn slot_mut(&mut self, slot: u32) -> Result<&mut Slot, CpuHotplugError> {
        let slots = self.slots();
        usize::try_from(slot)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .ok_or(CpuHotplugError::NoSuchSlot { slot, slots })
    }

    /// Plugs a vCPU into `slot`: it is enabled and, in the modern mode, carries an insert
    /// event for the guest's next scan. The caller raises GPE0 bit 2.
    pub fn plug(&mut self, slot: u32) -> Result<(), CpuHotplugError> {
        let modern = self.modern;
        let s = self.slot_mut(slot)?;
        if s.enabled {
            return Err(CpuHotplugError::Plugged { slot });
        }
        s.enabled = true;
        s.inserting = modern;
        s.removing = false;
        Ok(())
    }

    /// Asks the guest to give up the vCPU in `slot` (a remove event); the guest ejects it
    /// when it is done with it. The caller raises GPE0 bit 2.
    pub fn request_unplug(&mut self, slot: u32) -> Result<(), CpuHotplugError> {
        if slot == 0 {
            return Err(CpuHotplugError::BootCpu);
        }
        let modern = self.modern;
        let s = self.slot_mut(slot)?;
        if !s.enabled {
            return Err(CpuHotplugError::Unplugged { slot });
        }
        if !modern {
            return Err(CpuHotplugError::LegacyMode);
        }
        s.removing = true;
        Ok(())
    }

    /// A guest read of `data.len()` bytes at `port`.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let offset = port.wrapping_sub(CPU_HOTPLUG_PORT);
        if !self.modern {
            for (i, d) in data.iter_mut().enumerate() {
                *d = self.legacy_byte(usize::from(offset) + i);
            }
            return;
        }
        if offset >= MODERN_LEN {
            data.fill(0xff);
            return;
        }
        let value = self.modern_read(offset).to_le_bytes();
        for (d, v) in data
            .iter_mut()
            .zip(value.iter().chain(std::iter::repeat(&0)))
        {
            *d = *v;
        }
    }

    /// Byte `index` of the legacy bitmap: one bit per APIC ID of an enabled vCPU.
    fn legacy_byte(&self, index: usize) -> u8 {
        if index >= usize::from(LEGACY_LEN) {
            return 0xff;
        }
        self.slots
            .iter()
            .filter(|s| s.enabled && s.apic_id / 8 == index as u32)
            .fold(0, |b, s| b | 1 << (s.apic_id % 8))
    }

    fn modern_read(&self, offset: u16) -> u32 {
        let Some(s) = self.slot(self.selector) else {
            return 0;
        };
        match (offset, self.command) {
            (FLAGS, _) => u32::from(
                if s.enabled { ENABLED } else { 0 }
                    | if s.inserting { INSERT_EVENT } else { 0 }
                    | if s.removing { REMOVE_EVENT } else { 0 }
                    | if s.firmware_eject { FIRMWARE_EJECT } else { 0 },
            ),
            (DATA, CMD_NEXT_WITH_EVENT) => self.selector,
            (DATA, CMD_ARCH_ID) => s.apic_id,
            // Command data 2 (offset 0) is the arch ID's high half, 0 for a 32-bit APIC ID;
            // reserved offsets and commands read 0 too.
            _ => 0,
        }
    }

    /// A guest write of `data` at `port`; an eject or an OST status report is returned for
    /// the VMM.
    pub fn write(&mut self, port: u16, data: &[u8]) -> Option<GuestEvent> {
        let offset = port.wrapping_sub(CPU_HOTPLUG_PORT);
        let mut bytes = [0u8; 4];
        for (b, d) in bytes.iter_mut().zip(data) {
            *b = *d;
        }
        let value = u32::from_le_bytes(bytes);
        if !self.modern {
            // The legacy bitmap is read-only; a 0 stored at its base switches to modern.
            if offset == 0 && value == 0 {
                self.switch_to_modern();
            }
            return None;
        }
        if offset == SELECTOR {
            self.selector = value;
            return None;
        }
        let selector = self.selector;
        let index = usize::try_from(selector)
            .ok()
            .filter(|&i| i < self.slots.len())?;
        match offset {
            FLAGS => self.control(index, value as u8),
            COMMAND => {
                self.command = value as u8;
                if self.command == CMD_NEXT_WITH_EVENT {
                    self.select_next_with_event(index);
                }
                None
            }
            DATA => {
                let slot = &mut self.slots[index];
                match self.command {
                    CMD_OST_EVENT => {
                        slot.ost_event = value;
                        None
                    }
                    CMD_OST_STATUS => {
                        slot.ost_status = value;
                        Some(GuestEvent::CpuOst {
                            slot: selector,
                            event: slot.ost_event,
                            status: value,
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The control bits at offset 4: only the lowest one written is acted on.
    fn control(&mut self, index: usize, bits: u8) -> Option<GuestEvent> {
        let slot = &mut self.slots[index];
        if bits & INSERT_EVENT != 0 {
            slot.inserting = false;
        } else if bits & REMOVE_EVENT != 0 {
            slot.removing = false;
        } else if bits & EJECT != 0 {
            if index == 0 || !slot.enabled {
                return None;
            }
            slot.enabled = false;
            slot.inserting = false;
            slot.removing = false;
            slot.firmware_eject = false;
            return Some(GuestEvent::CpuEject { slot: index as u32 });
        } else if bits & FIRMWARE_EJECT != 0 && index != 0 && slot.enabled {
            slot.firmware_eject = true;
        }
        None
    }

    /// Command 0: selects the first slot with an event at or after `from`, wrapping around;
    /// the selector stays where it was when none has one.
    fn select_next_with_event(&mut self, from: usize) {
        let n = self.slots.len();
        if let Some(i) = (0..n).map(|k| (from + k) % n).find(|&i| {
            let s = &self.slots[i];
            s.inserting || s.removing || s.firmware_eject
        }) {
            self.selector = i as u32;
        }
    }

    /// QEMU rebuilds the modern state from the present vCPUs: no event is pending after it.
    fn switch_to_modern(&mut self) {
        self.modern = true;
        self.selector = 0;
        self.command = 0;
        for s in &mut self.slots {
            s.inserting = false;
            s.removing = false;
            s.firmware_eject = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u16 = 0xaf00;

    fn read(hp: &CpuHotplug, offset: u16, len: usize) -> u32 {
        let mut b = [0u8; 4];
        hp.read(BASE + offset, &mut b[..len]);
        u32::from_le_bytes(b)
    }

    fn write(hp: &mut CpuHotplug, offset: u16, value: u32, len: usize) -> Option<GuestEvent> {
        hp.write(BASE + offset, &value.to_le_bytes()[..len])
    }

    /// `-smp 1,maxcpus=4` with APIC IDs 0, 1, 2, 3... here 0, 2, 4, 6 (two threads per core
    /// with one used) so that slot and APIC ID differ.
    fn block() -> CpuHotplug {
        CpuHotplug::new(vec![0, 2, 4, 6], 1)
    }

    /// The detection sequence of the document's "Typical usecases".
    fn switch(hp: &mut CpuHotplug) -> bool {
        write(hp, 0, 0, 4);
        write(hp, 0, 0, 4);
        write(hp, 5, 0, 1);
        read(hp, 0, 4) == 0
    }

    #[test]
    fn legacy_bitmap_then_the_documented_switch() {
        let mut hp = CpuHotplug::new(vec![0, 1, 9, 255], 3);
        assert!(!hp.is_modern());
        assert_eq!(
            read(&hp, 0, 4),
            0x0203,
            "APIC IDs 0, 1 and 9: not modern yet"
        );
        assert_eq!(read(&hp, 1, 1), 0b10, "APIC ID 9");
        assert_eq!(read(&hp, 31, 1), 0, "APIC ID 255 is not plugged");
        // Writes other than 0 at the base are ignored.
        write(&mut hp, 0, 1, 4);
        write(&mut hp, 4, 0, 1);
        assert!(!hp.is_modern());
        // Plugging in legacy mode sets the bit (no insert event: the legacy mode has none).
        hp.plug(3).unwrap();
        assert_eq!(read(&hp, 31, 1), 0x80);
        assert_eq!(hp.request_unplug(3), Err(CpuHotplugError::LegacyMode));
        assert!(switch(&mut hp));
        assert!(hp.is_modern());
        // Offsets past the modern block are unassigned now.
        assert_eq!(read(&hp, 12, 1), 0xff);
        // After the switch, the plugged slot carries no stale event.
        write(&mut hp, 0, 3, 4);
        assert_eq!(read(&hp, 4, 1), u32::from(ENABLED));
    }

    #[test]
    fn insert_event_is_found_read_and_cleared() {
        let mut hp = block();
        assert!(switch(&mut hp));
        hp.plug(2).unwrap();
        assert_eq!(hp.plug(2), Err(CpuHotplugError::Plugged { slot: 2 }));
        // Get a CPU with a pending event: selector 0, command 0, read flags, read data.
        write(&mut hp, 0, 0, 4);
        write(&mut hp, 5, 0, 1);
        assert_eq!(read(&hp, 4, 1), u32::from(ENABLED | INSERT_EVENT));
        assert_eq!(read(&hp, 8, 4), 2, "slot 2 is selected");
        // Its APIC ID with command 3; command data 2 holds the high half.
        write(&mut hp, 5, 3, 1);
        assert_eq!(read(&hp, 8, 4), 4);
        assert_eq!(read(&hp, 0, 4), 0);
        // Clear the insert event; no event is left, and the selector stays on slot 2.
        write(&mut hp, 4, u32::from(INSERT_EVENT), 1);
        write(&mut hp, 5, 0, 1);
        assert_eq!(read(&hp, 4, 1), u32::from(ENABLED));
        assert_eq!(read(&hp, 8, 4), 2);
    }

    #[test]
    fn remove_eject_and_ost() {
        let mut hp = block();
        assert!(switch(&mut hp));
        assert_eq!(hp.request_unplug(0), Err(CpuHotplugError::BootCpu));
        assert_eq!(
            hp.request_unplug(1),
            Err(CpuHotplugError::Unplugged { slot: 1 })
        );
        assert_eq!(
            hp.request_unplug(9),
            Err(CpuHotplugError::NoSuchSlot { slot: 9, slots: 4 })
        );
        hp.plug(1).unwrap();
        write(&mut hp, 0, 1, 4);
        write(&mut hp, 4, u32::from(INSERT_EVENT), 1);
        hp.request_unplug(1).unwrap();
        write(&mut hp, 0, 0, 4);
        write(&mut hp, 5, 0, 1);
        assert_eq!(read(&hp, 8, 4), 1);
        assert_eq!(read(&hp, 4, 1), u32::from(ENABLED | REMOVE_EVENT));
        write(&mut hp, 4, u32::from(REMOVE_EVENT), 1);
        // _OST: event 3 (eject request), status 0x84 (ejection in progress).
        write(&mut hp, 5, 1, 1);
        assert_eq!(write(&mut hp, 8, 3, 4), None);
        write(&mut hp, 5, 2, 1);
        assert_eq!(
            write(&mut hp, 8, 0x84, 4),
            Some(GuestEvent::CpuOst {
                slot: 1,
                event: 3,
                status: 0x84
            })
        );
        assert_eq!(hp.ost(1), Some((3, 0x84)));
        // _EJ0.
        assert_eq!(
            write(&mut hp, 4, u32::from(EJECT), 1),
            Some(GuestEvent::CpuEject { slot: 1 })
        );
        assert!(!hp.is_enabled(1));
        assert_eq!(read(&hp, 4, 1), 0);
        // A second eject of the now empty slot does nothing; the slot can be plugged again.
        assert_eq!(write(&mut hp, 4, u32::from(EJECT), 1), None);
        hp.plug(1).unwrap();
        assert!(hp.is_enabled(1));
    }

    #[test]
    fn a_hostile_guest_changes_nothing_it_should_not() {
        let mut hp = block();
        assert!(switch(&mut hp));
        // Eject of the boot CPU, and of an absent slot: ignored.
        write(&mut hp, 0, 0, 4);
        assert_eq!(write(&mut hp, 4, u32::from(EJECT), 1), None);
        assert!(hp.is_enabled(0));
        write(&mut hp, 0, 3, 4);
        assert_eq!(write(&mut hp, 4, 0xff, 1), None, "insert clear wins");
        assert_eq!(write(&mut hp, 4, u32::from(EJECT), 1), None);
        // A selector out of range: every other register reads 0 and ignores writes.
        write(&mut hp, 0, 0xffff_ffff, 4);
        assert_eq!(read(&hp, 4, 1), 0);
        assert_eq!(read(&hp, 8, 4), 0);
        assert_eq!(write(&mut hp, 4, u32::from(EJECT), 1), None);
        write(&mut hp, 5, 3, 1);
        assert_eq!(read(&hp, 8, 4), 0);
        // Reserved offsets and commands.
        write(&mut hp, 0, 0, 4);
        for offset in [1, 2, 3, 6, 7, 9, 10, 11] {
            assert_eq!(write(&mut hp, offset, 0xffff_ffff, 1), None);
            assert_eq!(read(&hp, offset, 1), 0, "offset {offset}");
        }
        write(&mut hp, 5, 0x77, 1);
        assert_eq!(read(&hp, 8, 4), 0, "reserved command: data reads 0");
        assert_eq!(write(&mut hp, 8, 5, 4), None);
        // Nothing changed: only the boot CPU is there, with no event.
        let states: Vec<bool> = (0..4).map(|s| hp.is_enabled(s)).collect();
        assert_eq!(states, [true, false, false, false]);
        write(&mut hp, 5, 0, 1);
        assert_eq!(read(&hp, 4, 1), u32::from(ENABLED));
        // Firmware eject marks only a plugged non-boot vCPU.
        hp.plug(2).unwrap();
        write(&mut hp, 0, 2, 4);
        write(&mut hp, 4, u32::from(FIRMWARE_EJECT), 1);
        assert_eq!(
            read(&hp, 4, 1),
            u32::from(ENABLED | INSERT_EVENT | FIRMWARE_EJECT)
        );
    }

    #[test]
    fn next_event_wraps_around_from_the_selector() {
        let mut hp = block();
        assert!(switch(&mut hp));
        hp.plug(1).unwrap();
        hp.plug(3).unwrap();
        write(&mut hp, 0, 2, 4);
        write(&mut hp, 5, 0, 1);
        assert_eq!(read(&hp, 8, 4), 3);
        write(&mut hp, 4, u32::from(INSERT_EVENT), 1);
        write(&mut hp, 5, 0, 1);
        assert_eq!(read(&hp, 8, 4), 1, "wrapped past the last slot");
    }
}
