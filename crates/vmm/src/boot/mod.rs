//! Getting a kernel into guest memory and the boot vCPU into its entry state: the Linux boot
//! protocol (bzImage), PVH (ELF vmlinux and the probe guest), the e820 map and ACPI tables.
//!
//! `load` is the whole recipe for one boot: kernel, initrd, command line, e820, the zero page
//! or PVH start info, GDT and page tables. Kernels are checked by `image` and copied by
//! linux-loader's `BzImage`/`Elf` loaders; the zero page and PVH start info are linux-loader's
//! typed `boot_params` / `hvm_start_info`, filled by `params`. Guest RAM access is `memory`'s;
//! the ACPI tables are built by the caller (they depend on the vCPU layout) and their RSDP
//! address is passed in.

pub mod acpi;
pub mod e820;
pub mod image;
pub mod params;
pub mod regs;

use std::path::Path;

use thiserror::Error;
use vm_memory::ByteValued;

use crate::memory::layout::{
    self, BOOT_GDT, CMDLINE, CMDLINE_MAX, MMIO_GAP_START, PAGE_TABLES, PVH_MEMMAP, PVH_START_INFO,
    ZERO_PAGE,
};
use crate::memory::{GuestRam, MemoryError};
use image::{ImageError, ImageSource, LoadedKernel, BZIMAGE_ENTRY64_OFFSET};
use params::{PvhStartInfo, ZeroPage};
pub use regs::EntryMode;

/// Where the PVH module list goes (after the memory map, same page).
const PVH_MODLIST: u64 = PVH_START_INFO + 0xc00;

/// Why the guest could not be set up for boot.
#[derive(Debug, Error)]
pub enum BootError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("--append: the command line is {len} bytes; this kernel accepts at most {max}")]
    CmdlineTooLong { len: usize, max: usize },
    #[error("--append: the command line contains a NUL byte")]
    CmdlineNul,
    #[error("writing boot structures: {0}")]
    Memory(#[from] MemoryError),
}

/// What to boot.
pub struct BootImage<'a> {
    pub kernel: ImageSource<'a>,
    pub initrd: Option<&'a Path>,
    pub cmdline: &'a str,
}

/// Where and how the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootEntry {
    pub mode: EntryMode,
    pub entry: u64,
    /// The e820 map handed to the guest has this many entries (for diagnostics).
    pub e820_entries: usize,
}

/// Loads `image` into `ram` and writes every boot structure; `rsdp_addr` is where the ACPI
/// tables' RSDP was placed.
pub fn load(ram: &GuestRam, image: &BootImage, rsdp_addr: u64) -> Result<BootEntry, BootError> {
    let kernel = image::load_kernel(ram, &image.kernel)?;
    let low_ram_top = ram.size().min(MMIO_GAP_START);
    let ranges = layout::ram_ranges(ram.size());
    let e820 = e820::build(&ranges);
    let cmdline_max = match kernel {
        LoadedKernel::BzImage { cmdline_size, .. } => (cmdline_size as usize).min(CMDLINE_MAX - 1),
        LoadedKernel::Pvh { .. } => CMDLINE_MAX - 1,
    };
    if image.cmdline.len() > cmdline_max {
        return Err(BootError::CmdlineTooLong {
            len: image.cmdline.len(),
            max: cmdline_max,
        });
    }
    if image.cmdline.contains('\0') {
        return Err(BootError::CmdlineNul);
    }
    let mut cmdline = image.cmdline.as_bytes().to_vec();
    cmdline.push(0);
    ram.write(CMDLINE, &cmdline)?;

    let initrd = match image.initrd {
        Some(path) => {
            let limit = match kernel {
                LoadedKernel::BzImage {
                    initrd_addr_max, ..
                } => low_ram_top.min(initrd_addr_max as u64 + 1),
                LoadedKernel::Pvh { .. } => low_ram_top,
            };
            let floor = kernel.end().next_multiple_of(4096);
            Some(image::load_initrd(ram, path, floor, limit)?)
        }
        None => None,
    };

    match kernel {
        LoadedKernel::Pvh { entry, .. } => {
            ram.write(BOOT_GDT, &regs::gdt_bytes(EntryMode::Pvh))?;
            let info = PvhStartInfo {
                cmdline_addr: CMDLINE,
                rsdp_addr,
                memmap_addr: PVH_MEMMAP,
                e820: &e820,
                initrd_module: initrd.map(|(addr, size)| (PVH_MODLIST, addr, size)),
            };
            ram.write_obj(PVH_START_INFO, &info.start_info())?;
            write_array(ram, PVH_MEMMAP, &info.memmap())?;
            write_array(ram, PVH_MODLIST, &info.modlist())?;
            Ok(BootEntry {
                mode: EntryMode::Pvh,
                entry,
                e820_entries: e820.len(),
            })
        }
        LoadedKernel::BzImage { setup_header, .. } => {
            ram.write(BOOT_GDT, &regs::gdt_bytes(EntryMode::Linux64))?;
            ram.write(PAGE_TABLES, &regs::identity_page_tables())?;
            let zero = ZeroPage {
                setup_header: &setup_header,
                cmdline_addr: CMDLINE,
                initrd,
                e820: &e820,
                rsdp_addr,
            };
            ram.write_obj(ZERO_PAGE, &zero.to_boot_params())?;
            Ok(BootEntry {
                mode: EntryMode::Linux64,
                entry: layout::KERNEL_LOAD + BZIMAGE_ENTRY64_OFFSET,
                e820_entries: e820.len(),
            })
        }
    }
}

/// Writes `items` back to back from `addr`.
fn write_array<T: ByteValued>(ram: &GuestRam, addr: u64, items: &[T]) -> Result<(), MemoryError> {
    let mut at = addr;
    for item in items {
        ram.write_obj(at, item)?;
        at += size_of::<T>() as u64;
    }
    Ok(())
}
