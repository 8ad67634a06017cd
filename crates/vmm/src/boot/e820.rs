//! The e820 memory map the guest is given (in boot_params for bzImage, as the PVH memmap
//! for ELF kernels): usable RAM around the legacy BIOS hole and the 32-bit MMIO gap.

use crate::memory::layout::{RamRange, ACPI_END, ACPI_START, LOW_RAM_END};

/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// E820 type: ACPI reclaimable (tables).
pub const E820_ACPI: u32 = 3;

/// One e820 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// Builds the map for the given RAM ranges (the first starts at 0). The low range loses
/// the EBDA and BIOS area (640 KiB to 1 MiB); the ACPI tables there are marked reserved
/// (firmware-style: Linux scans that area for the RSDP and maps it itself).
pub fn build(ranges: &[RamRange]) -> Vec<E820Entry> {
    let mut out = Vec::new();
    for r in ranges {
        if r.base == 0 {
            out.push(E820Entry {
                addr: 0,
                size: LOW_RAM_END.min(r.size),
                kind: E820_RAM,
            });
            out.push(E820Entry {
                addr: ACPI_START,
                size: ACPI_END - ACPI_START,
                kind: E820_RESERVED,
            });
            if r.size > ACPI_END {
                out.push(E820Entry {
                    addr: ACPI_END,
                    size: r.size - ACPI_END,
                    kind: E820_RAM,
                });
            }
        } else {
            out.push(E820Entry {
                addr: r.base,
                size: r.size,
                kind: E820_RAM,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::layout::ram_ranges;

    #[test]
    fn map_for_one_gib() {
        assert_eq!(
            build(&ram_ranges(1 << 30)),
            vec![
                E820Entry {
                    addr: 0,
                    size: 0x9fc00,
                    kind: E820_RAM
                },
                E820Entry {
                    addr: 0xe0000,
                    size: 0x20000,
                    kind: E820_RESERVED
                },
                E820Entry {
                    addr: 0x100000,
                    size: (1 << 30) - 0x100000,
                    kind: E820_RAM
                },
            ]
        );
    }

    #[test]
    fn map_above_the_gap() {
        let map = build(&ram_ranges(6 << 30));
        assert_eq!(map.len(), 4);
        assert_eq!(
            map[2],
            E820Entry {
                addr: 0x100000,
                size: 0xc000_0000 - 0x100000,
                kind: E820_RAM
            }
        );
        assert_eq!(
            map[3],
            E820Entry {
                addr: 1 << 32,
                size: 3 << 30,
                kind: E820_RAM
            }
        );
    }
}
