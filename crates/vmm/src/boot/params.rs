//! The structures a kernel reads at entry: Linux's `boot_params` (the zero page) for a
//! bzImage, and `hvm_start_info` with its memory map and module list for PVH. Filled as
//! linux-loader's typed structs (`bootparam::boot_params`, `start_info::*`); `boot` writes
//! them to guest RAM. The e820 map itself is `e820`'s.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};

use super::e820::E820Entry;

/// boot_params holds at most this many e820 entries.
pub const E820_MAX_ENTRIES_ZEROPAGE: usize = 128;
/// type_of_loader: 0xff, "undefined" boot loader.
const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// loadflags: CAN_USE_HEAP.
const LOADFLAGS_CAN_USE_HEAP: u8 = 1 << 7;
/// vid_mode: "normal" (0xffff).
const VID_MODE_NORMAL: u16 = 0xffff;
/// heap_end_ptr: the end of the setup heap, relative to the real-mode code.
const HEAP_END_PTR: u16 = 0xfe00;

/// What goes into the zero page besides the kernel's own setup header.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroPage<'a> {
    pub setup_header: &'a setup_header,
    pub cmdline_addr: u64,
    pub initrd: Option<(u64, u64)>,
    pub e820: &'a [E820Entry],
    pub rsdp_addr: u64,
}

/// The low and high 32 bits of a 64-bit address, as boot_params splits them.
fn split(v: u64) -> (u32, u32) {
    (v as u32, (v >> 32) as u32)
}

impl ZeroPage<'_> {
    /// The 4 KiB zero page (Documentation/arch/x86/zero-page.rst).
    pub fn to_boot_params(&self) -> boot_params {
        let mut p = boot_params {
            hdr: *self.setup_header,
            acpi_rsdp_addr: self.rsdp_addr,
            ..Default::default()
        };
        p.hdr.vid_mode = VID_MODE_NORMAL;
        p.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
        p.hdr.loadflags |= LOADFLAGS_CAN_USE_HEAP;
        p.hdr.heap_end_ptr = HEAP_END_PTR;
        (p.hdr.cmd_line_ptr, p.ext_cmd_line_ptr) = split(self.cmdline_addr);
        if let Some((addr, size)) = self.initrd {
            (p.hdr.ramdisk_image, p.ext_ramdisk_image) = split(addr);
            (p.hdr.ramdisk_size, p.ext_ramdisk_size) = split(size);
        }
        let n = self.e820.len().min(E820_MAX_ENTRIES_ZEROPAGE);
        p.e820_entries = n as u8;
        for (slot, e) in p.e820_table.iter_mut().zip(&self.e820[..n]) {
            *slot = boot_e820_entry {
                addr: e.addr,
                size: e.size,
                r#type: e.kind,
            };
        }
        p
    }
}

/// hvm_start_info magic (xen/include/public/arch-x86/hvm/start_info.h).
pub const PVH_MAGIC: u32 = linux_loader::loader::elf::start_info::XEN_HVM_START_MAGIC_VALUE;
/// We write version 1 (adds the memory map).
const PVH_VERSION: u32 = 1;

/// The PVH start info and its module/memory-map arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvhStartInfo<'a> {
    pub cmdline_addr: u64,
    pub rsdp_addr: u64,
    pub memmap_addr: u64,
    pub e820: &'a [E820Entry],
    /// The initrd as module 0: (module list address, initrd address, size).
    pub initrd_module: Option<(u64, u64, u64)>,
}

impl PvhStartInfo<'_> {
    /// `hvm_start_info` (56 bytes).
    pub fn start_info(&self) -> hvm_start_info {
        let (nr_modules, modlist_paddr) = match self.initrd_module {
            Some((list, _, _)) => (1, list),
            None => (0, 0),
        };
        hvm_start_info {
            magic: PVH_MAGIC,
            version: PVH_VERSION,
            nr_modules,
            modlist_paddr,
            cmdline_paddr: self.cmdline_addr,
            rsdp_paddr: self.rsdp_addr,
            memmap_paddr: self.memmap_addr,
            memmap_entries: self.e820.len() as u32,
            ..Default::default()
        }
    }

    /// The memory map, one `hvm_memmap_table_entry` per e820 entry (same type numbers).
    pub fn memmap(&self) -> Vec<hvm_memmap_table_entry> {
        self.e820
            .iter()
            .map(|e| hvm_memmap_table_entry {
                addr: e.addr,
                size: e.size,
                type_: e.kind,
                reserved: 0,
            })
            .collect()
    }

    /// The module list: the initrd, if any, with no command line of its own.
    pub fn modlist(&self) -> Vec<hvm_modlist_entry> {
        self.initrd_module
            .iter()
            .map(|&(_, paddr, size)| hvm_modlist_entry {
                paddr,
                size,
                ..Default::default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::e820::E820_RAM;
    use vm_memory::ByteValued;

    const MAP: [E820Entry; 2] = [
        E820Entry {
            addr: 0,
            size: 0x9fc00,
            kind: E820_RAM,
        },
        E820Entry {
            addr: 0x100000,
            size: 0x3ff00000,
            kind: E820_RAM,
        },
    ];

    #[test]
    fn zero_page_fields() {
        let mut hdr = setup_header::default();
        hdr.as_mut_slice()[0x202 - 0x1f1..0x206 - 0x1f1].copy_from_slice(b"HdrS");
        let p = ZeroPage {
            setup_header: &hdr,
            cmdline_addr: 0x20000,
            initrd: Some((0x3f000000, 0x123456)),
            e820: &MAP,
            rsdp_addr: 0xe0000,
        }
        .to_boot_params();
        let p = p.as_slice();
        assert_eq!(p.len(), 4096);
        assert_eq!(&p[0x202..0x206], b"HdrS");
        assert_eq!(p[0x210], 0xff);
        assert_eq!(
            u32::from_le_bytes(p[0x228..0x22c].try_into().unwrap()),
            0x20000
        );
        assert_eq!(
            u32::from_le_bytes(p[0x218..0x21c].try_into().unwrap()),
            0x3f000000
        );
        assert_eq!(
            u32::from_le_bytes(p[0x21c..0x220].try_into().unwrap()),
            0x123456
        );
        assert_eq!(
            u64::from_le_bytes(p[0x70..0x78].try_into().unwrap()),
            0xe0000
        );
        assert_eq!(p[0x1e8], 2);
        assert_eq!(
            u64::from_le_bytes(p[0x2d0 + 20..0x2d0 + 28].try_into().unwrap()),
            0x100000
        );
        assert_eq!(
            u32::from_le_bytes(p[0x2d0 + 36..0x2d0 + 40].try_into().unwrap()),
            1
        );
    }

    #[test]
    fn pvh_start_info_layout() {
        let si = PvhStartInfo {
            cmdline_addr: 0x20000,
            rsdp_addr: 0xe0000,
            memmap_addr: 0x6040,
            e820: &MAP,
            initrd_module: Some((0x6800, 0x1000000, 0x2000)),
        };
        let b = si.start_info();
        let b = b.as_slice();
        assert_eq!(b.len(), 56);
        assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), PVH_MAGIC);
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 0x6800);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 0x20000);
        // The probe guest reads rsdp_paddr at offset 32.
        assert_eq!(u64::from_le_bytes(b[32..40].try_into().unwrap()), 0xe0000);
        assert_eq!(u64::from_le_bytes(b[40..48].try_into().unwrap()), 0x6040);
        assert_eq!(u32::from_le_bytes(b[48..52].try_into().unwrap()), 2);
        let bytes = |n: usize, each: usize| n * each;
        assert_eq!(
            bytes(si.memmap().len(), size_of::<hvm_memmap_table_entry>()),
            48
        );
        assert_eq!(
            bytes(si.modlist().len(), size_of::<hvm_modlist_entry>()),
            32
        );
        let e1 = si.memmap()[1];
        assert_eq!(&e1.as_slice()[..8], &0x100000u64.to_le_bytes());
        assert_eq!(&e1.as_slice()[16..20], &E820_RAM.to_le_bytes());
        let m = si.modlist()[0];
        assert_eq!(
            &m.as_slice()[..16],
            &[0x1000000u64.to_le_bytes(), 0x2000u64.to_le_bytes()].concat()[..]
        );
    }
}
