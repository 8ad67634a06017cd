//! The structures a kernel reads at entry: Linux's `boot_params` (the zero page) for a
//! bzImage, and `hvm_start_info` with its memory map for PVH. Built as bytes, field by field.

use super::e820::E820Entry;

/// boot_params offsets (Documentation/x86/zero-page.rst).
const BP_ACPI_RSDP_ADDR: usize = 0x070;
const BP_EXT_RAMDISK_IMAGE: usize = 0x0c0;
const BP_EXT_RAMDISK_SIZE: usize = 0x0c4;
const BP_EXT_CMD_LINE_PTR: usize = 0x0c8;
const BP_E820_ENTRIES: usize = 0x1e8;
const BP_HDR: usize = 0x1f1;
const BP_VID_MODE: usize = 0x1fa;
const BP_TYPE_OF_LOADER: usize = 0x210;
const BP_LOADFLAGS: usize = 0x211;
const BP_RAMDISK_IMAGE: usize = 0x218;
const BP_RAMDISK_SIZE: usize = 0x21c;
const BP_HEAP_END_PTR: usize = 0x224;
const BP_CMD_LINE_PTR: usize = 0x228;
const BP_E820_TABLE: usize = 0x2d0;
/// boot_params holds at most this many e820 entries.
pub const E820_MAX_ENTRIES_ZEROPAGE: usize = 128;
/// type_of_loader: 0xff, "undefined" boot loader.
const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// loadflags: CAN_USE_HEAP.
const LOADFLAGS_CAN_USE_HEAP: u8 = 1 << 7;
/// vid_mode: "normal" (0xffff).
const VID_MODE_NORMAL: u16 = 0xffff;

/// What goes into the zero page besides the kernel's own setup header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroPage<'a> {
    pub setup_header: &'a [u8; 0x80],
    pub cmdline_addr: u64,
    pub initrd: Option<(u64, u64)>,
    pub e820: &'a [E820Entry],
    pub rsdp_addr: u64,
}

fn put(page: &mut [u8], off: usize, bytes: &[u8]) {
    page[off..off + bytes.len()].copy_from_slice(bytes);
}

impl ZeroPage<'_> {
    /// The 4 KiB zero page.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        put(&mut p, BP_HDR, self.setup_header);
        put(&mut p, BP_ACPI_RSDP_ADDR, &self.rsdp_addr.to_le_bytes());
        put(&mut p, BP_VID_MODE, &VID_MODE_NORMAL.to_le_bytes());
        p[BP_TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED;
        p[BP_LOADFLAGS] |= LOADFLAGS_CAN_USE_HEAP;
        put(&mut p, BP_HEAP_END_PTR, &0xfe00u16.to_le_bytes());
        put(
            &mut p,
            BP_CMD_LINE_PTR,
            &(self.cmdline_addr as u32).to_le_bytes(),
        );
        put(
            &mut p,
            BP_EXT_CMD_LINE_PTR,
            &((self.cmdline_addr >> 32) as u32).to_le_bytes(),
        );
        if let Some((addr, size)) = self.initrd {
            put(&mut p, BP_RAMDISK_IMAGE, &(addr as u32).to_le_bytes());
            put(&mut p, BP_RAMDISK_SIZE, &(size as u32).to_le_bytes());
            put(
                &mut p,
                BP_EXT_RAMDISK_IMAGE,
                &((addr >> 32) as u32).to_le_bytes(),
            );
            put(
                &mut p,
                BP_EXT_RAMDISK_SIZE,
                &((size >> 32) as u32).to_le_bytes(),
            );
        }
        let n = self.e820.len().min(E820_MAX_ENTRIES_ZEROPAGE);
        p[BP_E820_ENTRIES] = n as u8;
        for (i, e) in self.e820[..n].iter().enumerate() {
            let at = BP_E820_TABLE + i * 20;
            put(&mut p, at, &e.addr.to_le_bytes());
            put(&mut p, at + 8, &e.size.to_le_bytes());
            put(&mut p, at + 16, &e.kind.to_le_bytes());
        }
        p
    }
}

/// hvm_start_info magic (xen/include/public/arch-x86/hvm/start_info.h).
pub const PVH_MAGIC: u32 = 0x336e_c578;
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
    /// `hvm_start_info` (56 bytes): magic, version, flags, nr_modules, modlist_paddr,
    /// cmdline_paddr, rsdp_paddr, memmap_paddr, memmap_entries, reserved.
    pub fn start_info_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(56);
        b.extend(PVH_MAGIC.to_le_bytes());
        b.extend(PVH_VERSION.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        let (nr_modules, modlist) = match self.initrd_module {
            Some((list, _, _)) => (1u32, list),
            None => (0, 0),
        };
        b.extend(nr_modules.to_le_bytes());
        b.extend(modlist.to_le_bytes());
        b.extend(self.cmdline_addr.to_le_bytes());
        b.extend(self.rsdp_addr.to_le_bytes());
        b.extend(self.memmap_addr.to_le_bytes());
        b.extend((self.e820.len() as u32).to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b
    }

    /// `hvm_memmap_table_entry` array: addr, size, type, reserved.
    pub fn memmap_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.e820.len() * 24);
        for e in self.e820 {
            b.extend(e.addr.to_le_bytes());
            b.extend(e.size.to_le_bytes());
            b.extend(e.kind.to_le_bytes());
            b.extend(0u32.to_le_bytes());
        }
        b
    }

    /// `hvm_modlist_entry` for the initrd: paddr, size, cmdline_paddr, reserved.
    pub fn modlist_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        if let Some((_, addr, size)) = self.initrd_module {
            b.extend(addr.to_le_bytes());
            b.extend(size.to_le_bytes());
            b.extend(0u64.to_le_bytes());
            b.extend(0u64.to_le_bytes());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::e820::E820_RAM;

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
        let mut hdr = [0u8; 0x80];
        hdr[0x202 - 0x1f1..0x206 - 0x1f1].copy_from_slice(b"HdrS");
        let p = ZeroPage {
            setup_header: &hdr,
            cmdline_addr: 0x20000,
            initrd: Some((0x3f000000, 0x123456)),
            e820: &MAP,
            rsdp_addr: 0xe0000,
        }
        .to_bytes();
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
        let b = si.start_info_bytes();
        assert_eq!(b.len(), 56);
        assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), PVH_MAGIC);
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 0x6800);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 0x20000);
        // The probe guest reads rsdp_paddr at offset 32.
        assert_eq!(u64::from_le_bytes(b[32..40].try_into().unwrap()), 0xe0000);
        assert_eq!(u64::from_le_bytes(b[40..48].try_into().unwrap()), 0x6040);
        assert_eq!(u32::from_le_bytes(b[48..52].try_into().unwrap()), 2);
        assert_eq!(si.memmap_bytes().len(), 48);
        assert_eq!(si.modlist_bytes().len(), 32);
    }
}
