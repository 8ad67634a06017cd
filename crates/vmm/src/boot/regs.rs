//! The boot vCPU's entry state: the GDT, segment registers, control registers and (for the
//! 64-bit Linux entry) identity page tables. Pure: fills kvm_bindings structs and byte blobs.

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

use crate::memory::layout::{BOOT_GDT, BOOT_IDT, PAGE_TABLES, PVH_START_INFO, ZERO_PAGE};

/// CR0.PE (protection enable), CR0.ET (extension type), CR0.PG (paging): SDM Vol. 3A 2.5.
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: SDM Vol. 3A 2.5.
const CR4_PAE: u64 = 1 << 5;
/// IA32_EFER.LME / LMA: SDM Vol. 3A 2.2.1.
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and always 1.
const RFLAGS_RESERVED: u64 = 1 << 1;
/// Page-table entry bits: present, writable, page size (2 MiB in a PD): SDM Vol. 3A 4.5.
const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_PAGE_SIZE: u64 = 1 << 7;

/// GDT selectors: entry index * 8.
pub const CODE_SELECTOR: u16 = 0x10;
pub const DATA_SELECTOR: u16 = 0x18;
pub const TSS_SELECTOR: u16 = 0x20;

/// How the boot vCPU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// PVH: 32-bit flat protected mode, paging off, EBX = hvm_start_info.
    Pvh,
    /// Linux 64-bit boot protocol: long mode, identity-mapped, RSI = boot_params.
    Linux64,
}

/// A GDT descriptor from flags (bits 15:12 G/DB/L/AVL and 7:0 P/DPL/S/type as the
/// descriptor's bytes 6-5 hold them), base and limit: SDM Vol. 3A 3.4.5.
const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << 32)
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
        | ((limit as u64 & 0x000f_0000) << 32)
        | ((flags as u64 & 0xf0ff) << 40)
}

/// Flat 4 GiB descriptors: G=1, then D/B=1 for 32-bit or L=1 for 64-bit code.
const CODE32_FLAGS: u16 = 0xc09b;
const CODE64_FLAGS: u16 = 0xa09b;
const DATA_FLAGS: u16 = 0xc093;
const TSS_FLAGS: u16 = 0x008b;

/// The GDT for `mode`: null, null, code, data, TSS.
pub fn gdt(mode: EntryMode) -> [u64; 5] {
    let code = match mode {
        EntryMode::Pvh => CODE32_FLAGS,
        EntryMode::Linux64 => CODE64_FLAGS,
    };
    [
        0,
        0,
        gdt_entry(code, 0, 0xfffff),
        gdt_entry(DATA_FLAGS, 0, 0xfffff),
        gdt_entry(TSS_FLAGS, 0, 0xfffff),
    ]
}

/// Decodes a GDT entry into the kvm_segment KVM wants for `selector`.
fn segment(entry: u64, selector: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000);
    let limit_raw = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let g = ((entry >> 55) & 1) as u8;
    kvm_segment {
        base,
        limit: if g == 1 {
            (limit_raw << 12) | 0xfff
        } else {
            limit_raw
        },
        selector,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// The GDT as bytes, for guest RAM at BOOT_GDT.
pub fn gdt_bytes(mode: EntryMode) -> Vec<u8> {
    gdt(mode).iter().flat_map(|e| e.to_le_bytes()).collect()
}

/// Sets segments, descriptor tables and control registers for `mode` (other fields keep
/// KVM's reset values, e.g. the APIC base).
pub fn setup_sregs(sregs: &mut kvm_sregs, mode: EntryMode) {
    let table = gdt(mode);
    let code = segment(table[(CODE_SELECTOR / 8) as usize], CODE_SELECTOR);
    let data = segment(table[(DATA_SELECTOR / 8) as usize], DATA_SELECTOR);
    let tss = segment(table[(TSS_SELECTOR / 8) as usize], TSS_SELECTOR);
    sregs.gdt.base = BOOT_GDT;
    sregs.gdt.limit = (std::mem::size_of_val(&table) - 1) as u16;
    sregs.idt.base = BOOT_IDT;
    sregs.idt.limit = 0;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    match mode {
        EntryMode::Pvh => {
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
        EntryMode::Linux64 => {
            sregs.cr3 = PAGE_TABLES;
            sregs.cr4 |= CR4_PAE;
            sregs.cr0 |= CR0_PE | CR0_PG | CR0_ET;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
    }
}

/// General registers at entry.
pub fn boot_regs(mode: EntryMode, entry: u64) -> kvm_regs {
    let mut regs = kvm_regs {
        rip: entry,
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    };
    match mode {
        EntryMode::Pvh => regs.rbx = PVH_START_INFO,
        EntryMode::Linux64 => {
            regs.rsi = ZERO_PAGE;
            // A small stack below the page tables, as the protocol wants a usable one.
            regs.rsp = PAGE_TABLES - 0x10;
            regs.rbp = regs.rsp;
        }
    }
    regs
}

/// Identity page tables covering the first 4 GiB with 2 MiB pages: PML4 at PAGE_TABLES,
/// the PDPT after it, then four page directories. Returns the 6 pages as bytes.
pub fn identity_page_tables() -> Vec<u8> {
    let mut b = vec![0u8; 6 * 4096];
    let pdpt = PAGE_TABLES + 0x1000;
    let pd0 = PAGE_TABLES + 0x2000;
    b[..8].copy_from_slice(&(pdpt | PTE_PRESENT | PTE_WRITABLE).to_le_bytes());
    for i in 0..4u64 {
        let pd = pd0 + i * 0x1000;
        let at = 0x1000 + i as usize * 8;
        b[at..at + 8].copy_from_slice(&(pd | PTE_PRESENT | PTE_WRITABLE).to_le_bytes());
        for j in 0..512u64 {
            let phys = ((i * 512 + j) << 21) | PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE;
            let at = 0x2000 + (i as usize * 512 + j as usize) * 8;
            b[at..at + 8].copy_from_slice(&phys.to_le_bytes());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_descriptors_decode_flat() {
        let code64 = segment(gdt(EntryMode::Linux64)[2], CODE_SELECTOR);
        assert_eq!((code64.base, code64.limit), (0, 0xffff_ffff));
        assert_eq!(
            (code64.l, code64.db, code64.g, code64.present, code64.s),
            (1, 0, 1, 1, 1)
        );
        assert_eq!(code64.type_, 0xb);
        let code32 = segment(gdt(EntryMode::Pvh)[2], CODE_SELECTOR);
        assert_eq!((code32.l, code32.db), (0, 1));
        let data = segment(gdt(EntryMode::Pvh)[3], DATA_SELECTOR);
        assert_eq!((data.type_, data.db, data.limit), (3, 1, 0xffff_ffff));
        assert_eq!(gdt(EntryMode::Pvh)[2], 0x00cf_9b00_0000_ffff);
    }

    #[test]
    fn long_mode_state() {
        let mut s = kvm_sregs::default();
        setup_sregs(&mut s, EntryMode::Linux64);
        assert_eq!(s.cr3, PAGE_TABLES);
        assert_eq!(s.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(s.cs.selector, CODE_SELECTOR);
        let mut p = kvm_sregs::default();
        setup_sregs(&mut p, EntryMode::Pvh);
        assert_eq!((p.cr0, p.cr4, p.efer), (CR0_PE | CR0_ET, 0, 0));
        assert_eq!(boot_regs(EntryMode::Pvh, 0x100000).rbx, PVH_START_INFO);
        assert_eq!(boot_regs(EntryMode::Linux64, 0x100200).rsi, ZERO_PAGE);
    }

    #[test]
    fn page_tables_map_four_gib() {
        let t = identity_page_tables();
        let entry = |at: usize| u64::from_le_bytes(t[at..at + 8].try_into().unwrap());
        assert_eq!(entry(0), (PAGE_TABLES + 0x1000) | 3);
        assert_eq!(entry(0x1000 + 3 * 8), (PAGE_TABLES + 0x5000) | 3);
        assert_eq!(entry(0x2000), 0x83);
        // The last 2 MiB page maps 4 GiB - 2 MiB (LAPIC/IOAPIC live up there).
        assert_eq!(entry(0x2000 + 2047 * 8), ((4u64 << 30) - (2 << 20)) | 0x83);
    }
}
