//! The guest-physical address map shared by the loaders, ACPI tables and devices.
//!
//! Low memory holds the boot structures at fixed addresses below 1 MiB; RAM runs from 0 up to
//! the 32-bit MMIO gap and continues above 4 GiB. The gap holds the IOAPIC and the local APICs.

/// End of conventional low RAM (640 KiB minus the 1 KiB EBDA), as PCs report it.
pub const LOW_RAM_END: u64 = 0x9_fc00;
/// Boot GDT (bzImage 64-bit entry).
pub const BOOT_GDT: u64 = 0x500;
/// Boot IDT (empty, loaded so stray interrupts triple-fault visibly).
pub const BOOT_IDT: u64 = 0x520;
/// PVH `hvm_start_info`.
pub const PVH_START_INFO: u64 = 0x6000;
/// PVH memory map (array of `hvm_memmap_table_entry`), after the start info.
pub const PVH_MEMMAP: u64 = 0x6040;
/// Linux `boot_params` (the zero page).
pub const ZERO_PAGE: u64 = 0x7000;
/// Identity-mapping page tables for the 64-bit bzImage entry: PML4, PDPT, then 4 PDs.
pub const PAGE_TABLES: u64 = 0x9000;
/// Kernel command line (up to `CMDLINE_MAX` bytes).
pub const CMDLINE: u64 = 0x2_0000;
/// Longest command line we accept, terminating NUL included.
pub const CMDLINE_MAX: usize = 0x1_0000;
/// Start of the ACPI area (RSDP first, then the other tables); inside the BIOS area that
/// firmware-less kernels scan for "RSD PTR ".
pub const ACPI_START: u64 = 0xe_0000;
/// End (exclusive) of the ACPI area.
pub const ACPI_END: u64 = 0x10_0000;
/// Where the protected-mode kernel of a bzImage is loaded.
pub const KERNEL_LOAD: u64 = 0x10_0000;
/// Start of the 32-bit MMIO gap (RAM above this address moves above 4 GiB).
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End (exclusive) of the 32-bit MMIO gap.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// The IOAPIC's MMIO base.
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
/// The local APICs' MMIO base.
pub const LAPIC_ADDR: u64 = 0xfee0_0000;

/// COM1 base port and its IRQ.
pub const COM1_PORT: u16 = 0x3f8;
pub const COM1_IRQ: u32 = 4;
/// i8042 data and command/status ports.
pub const I8042_DATA_PORT: u16 = 0x60;
pub const I8042_CMD_PORT: u16 = 0x64;
/// ACPI PM1a event block (status + enable, 4 bytes), PM1a control block (2 bytes) and the
/// PM timer; ACPI is always enabled (SCI_EN reads as 1) so SMI_CMD is 0.
pub const PM1A_EVT_PORT: u16 = 0x600;
pub const PM1A_CNT_PORT: u16 = 0x604;
pub const PM_TMR_PORT: u16 = 0x608;
/// The SCI's IRQ.
pub const SCI_IRQ: u32 = 9;
/// The FADT reset register: writing `RESET_VALUE` to this port resets the machine.
pub const RESET_PORT: u16 = 0xcf9;
pub const RESET_VALUE: u8 = 0x06;
/// SLP_TYP value our DSDT's `\_S5` package advertises.
pub const S5_SLP_TYP: u8 = 5;
/// QEMU's isa-debug-exit port; the probe writes here to power off under QEMU, and rvmm
/// treats a write as a guest poweroff too.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// The ACPI CPU hotplug register block (QEMU PIIX-PM's base; docs/specs/acpi_cpu_hotplug.rst):
/// 12 bytes in modern mode, the legacy CPU bitmap 0xaf00-0xaf1f before the guest switches.
pub const CPU_HOTPLUG_PORT: u16 = 0xaf00;
pub const CPU_HOTPLUG_LEN: u16 = 12;
/// The FADT's GPE0 block (QEMU PIIX-PM's): 2 status bytes (write one to clear), then 2
/// enable bytes.
pub const GPE0_PORT: u16 = 0xafe0;
pub const GPE0_LEN: u16 = 4;
/// The GPE0 bit that signals a CPU hotplug event (the DSDT's `\_GPE._E02`).
pub const GPE_CPU_HOTPLUG_BIT: u8 = 2;

/// A range of guest RAM: `[base, base + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamRange {
    pub base: u64,
    pub size: u64,
}

impl RamRange {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// Where `memory` bytes of guest RAM go: from 0 up to the MMIO gap, the rest above 4 GiB.
pub fn ram_ranges(memory: u64) -> Vec<RamRange> {
    let low = memory.min(MMIO_GAP_START);
    let mut out = vec![RamRange { base: 0, size: low }];
    if memory > low {
        out.push(RamRange {
            base: MMIO_GAP_END,
            size: memory - low,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_splits_at_the_gap() {
        assert_eq!(
            ram_ranges(1 << 30),
            vec![RamRange {
                base: 0,
                size: 1 << 30
            }]
        );
        assert_eq!(
            ram_ranges(MMIO_GAP_START),
            vec![RamRange {
                base: 0,
                size: MMIO_GAP_START
            }]
        );
        assert_eq!(
            ram_ranges(4 << 30),
            vec![
                RamRange {
                    base: 0,
                    size: 3 << 30
                },
                RamRange {
                    base: 4 << 30,
                    size: 1 << 30
                }
            ]
        );
    }

    #[test]
    fn fixed_areas_do_not_overlap() {
        let areas = [
            (BOOT_GDT, 0x20),
            (BOOT_IDT, 0x10),
            (PVH_START_INFO, 0x40),
            (PVH_MEMMAP, 0x1000 - 0x40),
            (ZERO_PAGE, 0x1000),
            (PAGE_TABLES, 0x6000),
            (CMDLINE, CMDLINE_MAX as u64),
            (ACPI_START, ACPI_END - ACPI_START),
        ];
        for (i, a) in areas.iter().enumerate() {
            for b in &areas[i + 1..] {
                assert!(
                    a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0,
                    "{a:x?} overlaps {b:x?}"
                );
            }
        }
        const { assert!(PAGE_TABLES + 0x6000 <= LOW_RAM_END) };
    }
}
