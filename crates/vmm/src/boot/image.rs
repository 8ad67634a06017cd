//! Reading kernel images (ELF vmlinux with a PVH note, bzImage) and the initrd into guest RAM,
//! with errors that say what the file is not.
//!
//! rvmm checks an image first, with its own header parsing and error messages (what the file
//! is not, which segment does not fit in guest RAM), and only then hands it to linux-loader's
//! `Elf` or `BzImage` loader, which copies it into guest memory through `vm-memory`'s volatile
//! reads. Two things stay rvmm's own: the PVH entry note (it decides, before anything is
//! loaded, whether the ELF can boot at all; linux-loader only reports the note of the last
//! PT_NOTE segment, after loading) and the initrd (linux-loader has no initrd loader), which
//! `GuestRam::read_from` reads straight from the file. The boot structures are `params`'.

use std::fs::File;
use std::io::Cursor;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader, KernelLoaderResult};
use thiserror::Error;
use vm_memory::{ByteValued, GuestAddress};

use crate::memory::{GuestRam, MemoryError};
use crate::util::file::{open_regular, FileError, FileKind};

/// ELF identification and the fields we read (ELF-64 Object File Format, v1.5).
const ELF64_PHDR_SIZE: u64 = 56;
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// Xen's ELF note carrying the 32-bit PVH entry point (xen/include/public/elfnote.h).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// bzImage setup header fields (Documentation/x86/boot.rst, "The Real-Mode Kernel Header").
pub const HDR_SETUP_SECTS: usize = 0x1f1;
pub const HDR_START: usize = 0x1f1;
pub const HDR_JUMP_LEN: usize = 0x201;
pub const HDR_MAGIC: usize = 0x202;
pub const HDR_VERSION: usize = 0x206;
pub const HDR_LOADFLAGS: usize = 0x211;
pub const HDR_INITRD_ADDR_MAX: usize = 0x22c;
pub const HDR_XLOADFLAGS: usize = 0x236;
pub const HDR_CMDLINE_SIZE: usize = 0x238;
pub const HDR_INIT_SIZE: usize = 0x260;
/// "HdrS".
const BZIMAGE_MAGIC: u32 = 0x5372_6448;
/// Oldest boot protocol with a 64-bit entry point (xloadflags, 2.12).
const MIN_BOOT_PROTOCOL: u16 = 0x020c;
/// loadflags: LOADED_HIGH (protected-mode code at 0x100000).
const LOADFLAGS_LOADED_HIGH: u8 = 1 << 0;
/// xloadflags: XLF_KERNEL_64 (has the 64-bit entry at +0x200).
const XLF_KERNEL_64: u16 = 1 << 0;
/// Offset of the 64-bit entry point from the start of the protected-mode code.
pub const BZIMAGE_ENTRY64_OFFSET: u64 = 0x200;

/// Why a kernel or initrd could not be loaded.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error("{option}: cannot open {path}: {source}")]
    Open {
        option: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{option}: cannot read {path}: {source}")]
    Read {
        option: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a regular file, larger than the limit, or unreadable (`util::file`).
    #[error(transparent)]
    File(#[from] FileError),
    #[error("--kernel: {path} is not a Linux kernel: it is neither an ELF vmlinux nor a bzImage (no 'HdrS' setup header)")]
    NotAKernel { path: PathBuf },
    #[error("--kernel: {path}: {what}")]
    BadElf { path: PathBuf, what: String },
    #[error("--kernel: {path} has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build the kernel with CONFIG_PVH=y or boot its bzImage")]
    NoPvhNote { path: PathBuf },
    #[error("--kernel: {path}: boot protocol {major}.{minor:02} is too old; rvmm needs 2.12 or later (a 64-bit bzImage)")]
    OldProtocol {
        path: PathBuf,
        major: u16,
        minor: u16,
    },
    #[error("--kernel: {path} has no 64-bit entry point (xloadflags XLF_KERNEL_64 clear)")]
    Not64Bit { path: PathBuf },
    #[error("{what} ({len:#x} bytes at {addr:#x}) does not fit in guest RAM; give the guest more memory (-m)")]
    DoesNotFit { what: String, addr: u64, len: u64 },
    #[error("loading {what}: {source}")]
    Memory {
        what: String,
        source: Box<MemoryError>,
    },
    #[error("--kernel: {path}: {source}")]
    Loader {
        path: PathBuf,
        source: linux_loader::loader::Error,
    },
}

/// Where a kernel image comes from: a file, or bytes built into rvmm (the probe).
pub enum ImageSource<'a> {
    File { file: File, path: PathBuf },
    Bytes { bytes: &'a [u8], name: &'static str },
}

impl<'a> ImageSource<'a> {
    /// Opens `path` for the flag `option`.
    pub fn open(option: &'static str, path: &Path) -> Result<Self, ImageError> {
        let (file, _) = open_regular(option, path, FileKind::Image)?;
        Ok(ImageSource::File {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The name errors use.
    pub fn path(&self) -> PathBuf {
        match self {
            ImageSource::File { path, .. } => path.clone(),
            ImageSource::Bytes { name, .. } => PathBuf::from(name),
        }
    }

    fn len(&self) -> Result<u64, ImageError> {
        match self {
            ImageSource::File { file, path } => {
                file.metadata()
                    .map(|m| m.len())
                    .map_err(|source| ImageError::Read {
                        option: "--kernel",
                        path: path.clone(),
                        source,
                    })
            }
            ImageSource::Bytes { bytes, .. } => Ok(bytes.len() as u64),
        }
    }

    /// Reads exactly `buf.len()` bytes at `offset`; reading past the end is an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ImageError> {
        match self {
            ImageSource::File { file, path } => {
                file.read_exact_at(buf, offset)
                    .map_err(|source| ImageError::Read {
                        option: "--kernel",
                        path: path.clone(),
                        source,
                    })
            }
            ImageSource::Bytes { bytes, name } => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let src = start
                    .checked_add(buf.len())
                    .and_then(|end| bytes.get(start..end))
                    .ok_or_else(|| ImageError::BadElf {
                        path: PathBuf::from(name),
                        what: format!("truncated at offset {offset:#x}"),
                    })?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }

    /// Runs linux-loader's loader `L` over the image (checked beforehand by our own code).
    fn load_with<L: KernelLoader>(
        &self,
        ram: &GuestRam,
        offset: Option<GuestAddress>,
    ) -> Result<KernelLoaderResult, ImageError> {
        let result = match self {
            ImageSource::File { file, .. } => {
                let mut reader: &File = file;
                L::load(ram.memory(), offset, &mut reader, None)
            }
            ImageSource::Bytes { bytes, .. } => {
                L::load(ram.memory(), offset, &mut Cursor::new(*bytes), None)
            }
        };
        result.map_err(|source| ImageError::Loader {
            path: self.path(),
            source,
        })
    }
}

/// What kind of kernel was loaded and where it starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadedKernel {
    /// ELF with a PVH note: enter at `entry` in 32-bit protected mode.
    Pvh { entry: u64, end: u64 },
    /// bzImage: protected-mode code at KERNEL_LOAD, 64-bit entry at +0x200; the setup header
    /// (as far as the image's header reaches, zero beyond) goes into the zero page.
    BzImage {
        end: u64,
        setup_header: setup_header,
        protocol: u16,
        initrd_addr_max: u32,
        cmdline_size: u32,
    },
}

impl LoadedKernel {
    /// One past the highest byte the kernel occupies (or will, for a bzImage's init_size).
    pub fn end(&self) -> u64 {
        match *self {
            LoadedKernel::Pvh { end, .. } | LoadedKernel::BzImage { end, .. } => end,
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Loads a kernel image into guest RAM, recognising ELF (PVH) and bzImage.
pub fn load_kernel(ram: &GuestRam, src: &ImageSource) -> Result<LoadedKernel, ImageError> {
    let len = src.len()?;
    let mut head = vec![0u8; len.min(0x1000) as usize];
    src.read_at(0, &mut head)?;
    if head.len() >= 64 && &head[..4] == ELF_MAGIC {
        return load_elf(ram, src, &head);
    }
    if head.len() >= 0x264 && u32_at(&head, HDR_MAGIC) == BZIMAGE_MAGIC {
        return load_bzimage(ram, src, &head, len);
    }
    Err(ImageError::NotAKernel { path: src.path() })
}

fn load_elf(ram: &GuestRam, src: &ImageSource, ehdr: &[u8]) -> Result<LoadedKernel, ImageError> {
    let bad = |what: String| ImageError::BadElf {
        path: src.path(),
        what,
    };
    if ehdr[4] != ELFCLASS64 || ehdr[5] != ELFDATA2LSB || u16_at(ehdr, 18) != EM_X86_64 {
        return Err(bad(
            "not a little-endian ELF64 x86-64 image (PVH boot needs the 64-bit vmlinux)".into(),
        ));
    }
    let phoff = u64_at(ehdr, 32);
    let phentsize = u16_at(ehdr, 54) as u64;
    let phnum = u16_at(ehdr, 56) as u64;
    // linux-loader reads ELF64 program headers back to back, so their size must be exact.
    if phentsize != ELF64_PHDR_SIZE || phnum == 0 || phnum > 256 {
        return Err(bad(format!(
            "unusable program headers (entry size {phentsize}, count {phnum})"
        )));
    }
    let file_len = src.len()?;
    let mut entry = None;
    let mut end = 0u64;
    // The zero-filled tails (bss) of the loadable segments, which linux-loader leaves alone.
    let mut tails = Vec::new();
    for i in 0..phnum {
        let mut ph = [0u8; ELF64_PHDR_SIZE as usize];
        src.read_at(phoff + i * phentsize, &mut ph)?;
        let p_type = u32_at(&ph, 0);
        let offset = u64_at(&ph, 8);
        let paddr = u64_at(&ph, 24);
        let filesz = u64_at(&ph, 32);
        let memsz = u64_at(&ph, 40);
        match p_type {
            PT_LOAD if memsz > 0 || filesz > 0 => {
                if filesz > memsz {
                    return Err(bad(format!("segment {i}: file size exceeds memory size")));
                }
                if offset.checked_add(filesz).is_none_or(|e| e > file_len) {
                    return Err(bad(format!(
                        "segment {i}: {filesz:#x} bytes at file offset {offset:#x} run past the \
                         end of the file ({file_len:#x} bytes)"
                    )));
                }
                let what = format!("kernel segment {i}");
                if !ram.contains(paddr, filesz) {
                    return Err(ImageError::DoesNotFit {
                        what,
                        addr: paddr,
                        len: filesz,
                    });
                }
                if !ram.contains(paddr + filesz, memsz - filesz) {
                    return Err(ImageError::DoesNotFit {
                        what,
                        addr: paddr,
                        len: memsz,
                    });
                }
                tails.push((paddr + filesz, memsz - filesz));
                end = end.max(paddr + memsz);
            }
            PT_NOTE if entry.is_none() => {
                if filesz > 1 << 20 {
                    return Err(bad(format!("note segment {i} is {filesz} bytes")));
                }
                let mut notes = vec![0u8; filesz as usize];
                src.read_at(offset, &mut notes)?;
                entry = pvh_entry(&notes);
            }
            _ => {}
        }
    }
    let Some(entry) = entry else {
        return Err(ImageError::NoPvhNote { path: src.path() });
    };
    // Every segment fits (checked above): linux-loader copies them to their physical
    // addresses. Its own PVH answer (`pvh_boot_cap`) is not used: ours, from the note found
    // above, decided already.
    src.load_with::<Elf>(ram, None)?;
    for (addr, len) in tails {
        ram.zero(addr, len).map_err(|e| {
            ImageError::from_memory("the kernel's zero-filled segment tail".into(), e)
        })?;
    }
    Ok(LoadedKernel::Pvh { entry, end })
}

/// Finds XEN_ELFNOTE_PHYS32_ENTRY in a note segment (ELF notes: namesz, descsz, type, then
/// the name and descriptor, each padded to 4 bytes).
fn pvh_entry(notes: &[u8]) -> Option<u64> {
    let align4 = |n: usize| (n + 3) & !3;
    let mut at = 0usize;
    while at + 12 <= notes.len() {
        let namesz = u32_at(notes, at) as usize;
        let descsz = u32_at(notes, at + 4) as usize;
        let kind = u32_at(notes, at + 8);
        let name_at = at + 12;
        let desc_at = name_at.checked_add(align4(namesz))?;
        let next = desc_at.checked_add(align4(descsz))?;
        if next > notes.len() {
            return None;
        }
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && &notes[name_at..name_at + namesz] == b"Xen\0" {
            return match descsz {
                4 => Some(u32_at(notes, desc_at) as u64),
                8 => Some(u64_at(notes, desc_at)),
                _ => None,
            };
        }
        at = next;
    }
    None
}

fn load_bzimage(
    ram: &GuestRam,
    src: &ImageSource,
    head: &[u8],
    len: u64,
) -> Result<LoadedKernel, ImageError> {
    let protocol = u16_at(head, HDR_VERSION);
    if protocol < MIN_BOOT_PROTOCOL {
        return Err(ImageError::OldProtocol {
            path: src.path(),
            major: protocol >> 8,
            minor: protocol & 0xff,
        });
    }
    if head[HDR_LOADFLAGS] & LOADFLAGS_LOADED_HIGH == 0
        || u16_at(head, HDR_XLOADFLAGS) & XLF_KERNEL_64 == 0
    {
        return Err(ImageError::Not64Bit { path: src.path() });
    }
    let setup_sects = match head[HDR_SETUP_SECTS] {
        0 => 4,
        n => n as u64,
    };
    let pm_offset = (setup_sects + 1) * 512;
    if pm_offset >= len {
        return Err(ImageError::NotAKernel { path: src.path() });
    }
    let pm_len = len - pm_offset;
    let load = crate::memory::layout::KERNEL_LOAD;
    if !ram.contains(load, pm_len) {
        return Err(ImageError::DoesNotFit {
            what: "kernel".to_string(),
            addr: load,
            len: pm_len,
        });
    }
    let loaded = src.load_with::<BzImage>(ram, Some(GuestAddress(load)))?;
    let mut setup_header = loaded.setup_header.unwrap_or_default();
    // The zero page gets the header only as far as the image's header reaches (0x202 plus
    // the jump's length byte, boot protocol "The Real-Mode Kernel Header"); past that the
    // image holds setup code, not header fields.
    let hdr_len = (HDR_MAGIC + head[HDR_JUMP_LEN] as usize - HDR_START)
        .min(std::mem::size_of::<setup_header>());
    setup_header.as_mut_slice()[hdr_len..].fill(0);
    let init_size = u32_at(head, HDR_INIT_SIZE) as u64;
    Ok(LoadedKernel::BzImage {
        end: load + pm_len.max(init_size),
        setup_header,
        protocol,
        initrd_addr_max: u32_at(head, HDR_INITRD_ADDR_MAX),
        cmdline_size: u32_at(head, HDR_CMDLINE_SIZE),
    })
}

impl ImageError {
    /// A guest RAM access for `what` that failed.
    fn from_memory(what: String, e: MemoryError) -> Self {
        match e {
            MemoryError::OutOfRange { addr, len } => ImageError::DoesNotFit { what, addr, len },
            source => ImageError::Memory {
                what,
                source: Box::new(source),
            },
        }
    }
}

/// Loads the initrd at the highest page-aligned address that ends at or below `limit` and
/// starts above `floor`; returns (address, size).
pub fn load_initrd(
    ram: &GuestRam,
    path: &Path,
    floor: u64,
    limit: u64,
) -> Result<(u64, u64), ImageError> {
    let src = ImageSource::open("--initrd", path)?;
    let size = src.len()?;
    let what = format!("--initrd: {}", path.display());
    let addr = limit
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|a| *a >= floor)
        .ok_or(ImageError::DoesNotFit {
            what: what.clone(),
            addr: floor,
            len: size,
        })?;
    if !ram.contains(addr, size) {
        return Err(ImageError::DoesNotFit {
            what: what.clone(),
            addr,
            len: size,
        });
    }
    let read = match &src {
        ImageSource::File { file, .. } => {
            let mut reader: &File = file;
            ram.read_from(addr, &mut reader, size)
        }
        ImageSource::Bytes { bytes, .. } => ram.write(addr, bytes),
    };
    read.map_err(|e| match e {
        MemoryError::Read { source, .. } => ImageError::Read {
            option: "--initrd",
            path: path.to_path_buf(),
            source,
        },
        other => ImageError::from_memory(what, other),
    })?;
    Ok((addr, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((name.len() as u32).to_le_bytes());
        v.extend((desc.len() as u32).to_le_bytes());
        v.extend(kind.to_le_bytes());
        v.extend(name);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    #[test]
    fn finds_pvh_note_among_others() {
        let mut notes = note(b"GNU\0", 3, &[1, 2, 3, 4, 5, 6, 7, 8]);
        notes.extend(note(b"Xen\0", 6, b"linux\0"));
        notes.extend(note(b"Xen\0", 18, &0x1000000u32.to_le_bytes()));
        assert_eq!(pvh_entry(&notes), Some(0x1000000));
        assert_eq!(pvh_entry(&note(b"Xen\0", 17, &[0; 4])), None);
        assert_eq!(pvh_entry(&[1, 0, 0]), None);
    }

    fn elf_with(notes: &[u8], code: &[u8], paddr: u64) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 2 * 56];
        f[..4].copy_from_slice(ELF_MAGIC);
        f[4] = ELFCLASS64;
        f[5] = ELFDATA2LSB;
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let notes_off = f.len() as u64;
        f.extend(notes);
        let code_off = f.len() as u64;
        f.extend(code);
        let ph = |p: &mut [u8], t: u32, off: u64, addr: u64, fsz: u64, msz: u64| {
            p[0..4].copy_from_slice(&t.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[24..32].copy_from_slice(&addr.to_le_bytes());
            p[32..40].copy_from_slice(&fsz.to_le_bytes());
            p[40..48].copy_from_slice(&msz.to_le_bytes());
        };
        ph(
            &mut f[64..120],
            PT_NOTE,
            notes_off,
            0,
            notes.len() as u64,
            notes.len() as u64,
        );
        ph(
            &mut f[120..176],
            PT_LOAD,
            code_off,
            paddr,
            code.len() as u64,
            code.len() as u64 + 16,
        );
        f
    }

    #[test]
    fn loads_pvh_elf_segments() {
        let ram = GuestRam::new(4 << 20).unwrap();
        let image = elf_with(
            &note(b"Xen\0", 18, &0x100010u32.to_le_bytes()),
            b"\xf4\xeb\xfd",
            0x100000,
        );
        let src = ImageSource::Bytes {
            bytes: &image,
            name: "test.elf",
        };
        let k = load_kernel(&ram, &src).unwrap();
        assert_eq!(
            k,
            LoadedKernel::Pvh {
                entry: 0x100010,
                end: 0x100013
            }
        );
        let mut b = [0u8; 3];
        ram.read(0x100000, &mut b).unwrap();
        assert_eq!(&b, b"\xf4\xeb\xfd");
    }

    #[test]
    fn rejects_what_is_not_a_kernel() {
        let ram = GuestRam::new(4 << 20).unwrap();
        let junk = vec![0x55u8; 8192];
        let src = ImageSource::Bytes {
            bytes: &junk,
            name: "junk.bin",
        };
        assert_eq!(
            load_kernel(&ram, &src).unwrap_err().to_string(),
            "--kernel: junk.bin is not a Linux kernel: it is neither an ELF vmlinux nor a bzImage (no 'HdrS' setup header)"
        );
        let no_note = elf_with(&note(b"GNU\0", 3, &[0; 4]), b"\x90", 0x100000);
        let src = ImageSource::Bytes {
            bytes: &no_note,
            name: "plain.elf",
        };
        assert_eq!(
            load_kernel(&ram, &src).unwrap_err().to_string(),
            "--kernel: plain.elf has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build the kernel with CONFIG_PVH=y or boot its bzImage"
        );
        let high = elf_with(&note(b"Xen\0", 18, &[0; 4]), b"\x90", 64 << 20);
        let src = ImageSource::Bytes {
            bytes: &high,
            name: "high.elf",
        };
        assert_eq!(
            load_kernel(&ram, &src).unwrap_err().to_string(),
            "kernel segment 1 (0x1 bytes at 0x4000000) does not fit in guest RAM; give the guest more memory (-m)"
        );
    }

    #[test]
    fn bzimage_header_checks() {
        let ram = GuestRam::new(8 << 20).unwrap();
        let mut img = vec![0u8; 0x2000];
        img[HDR_SETUP_SECTS] = 1;
        img[HDR_MAGIC..HDR_MAGIC + 4].copy_from_slice(b"HdrS");
        img[HDR_VERSION..HDR_VERSION + 2].copy_from_slice(&0x0204u16.to_le_bytes());
        let src = ImageSource::Bytes {
            bytes: &img,
            name: "old.bz",
        };
        assert_eq!(
            load_kernel(&ram, &src).unwrap_err().to_string(),
            "--kernel: old.bz: boot protocol 2.04 is too old; rvmm needs 2.12 or later (a 64-bit bzImage)"
        );
        img[HDR_VERSION..HDR_VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        img[HDR_LOADFLAGS] = LOADFLAGS_LOADED_HIGH;
        img[HDR_XLOADFLAGS] = 1;
        img[HDR_JUMP_LEN] = 0x66;
        img[HDR_INIT_SIZE..HDR_INIT_SIZE + 4].copy_from_slice(&0x4000u32.to_le_bytes());
        img[0x400] = 0xAB;
        let src = ImageSource::Bytes {
            bytes: &img,
            name: "ok.bz",
        };
        match load_kernel(&ram, &src).unwrap() {
            LoadedKernel::BzImage {
                end,
                protocol,
                setup_header,
                ..
            } => {
                assert_eq!(protocol, 0x020f);
                assert_eq!(end, 0x100000 + 0x4000);
                assert_eq!(setup_header.as_slice()[HDR_MAGIC - HDR_START], b'H');
            }
            other => panic!("expected bzImage, got {other:?}"),
        }
        let mut b = [0u8; 1];
        ram.read(0x100000, &mut b).unwrap();
        assert_eq!(b[0], 0xAB);
    }

    #[test]
    fn elf_tails_are_zeroed_and_initrd_streams_from_its_file() {
        let ram = GuestRam::new(4 << 20).unwrap();
        // Dirty the segment's zero-filled tail: loading must clear it.
        ram.write(0x100003, &[0xff; 16]).unwrap();
        let image = elf_with(
            &note(b"Xen\0", 18, &0x100000u32.to_le_bytes()),
            b"\xf4\xeb\xfd",
            0x100000,
        );
        let src = ImageSource::Bytes {
            bytes: &image,
            name: "tail.elf",
        };
        load_kernel(&ram, &src).unwrap();
        let mut tail = [0xeeu8; 16];
        ram.read(0x100003, &mut tail).unwrap();
        assert_eq!(tail, [0; 16]);

        let dir = std::env::temp_dir().join(format!("rvmm-initrd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("initrd.img");
        let data: Vec<u8> = (0..=255u8).cycle().take(0x2345).collect();
        std::fs::write(&path, &data).unwrap();
        let (addr, size) = load_initrd(&ram, &path, 0x200000, 4 << 20).unwrap();
        assert_eq!((addr, size), (((4 << 20) - 0x2345) & !0xfff, 0x2345));
        let mut back = vec![0u8; data.len()];
        ram.read(addr, &mut back).unwrap();
        assert_eq!(back, data);
        let err = load_initrd(&ram, &path, 0x3ff000, 4 << 20).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "--initrd: {} (0x2345 bytes at 0x3ff000) does not fit in guest RAM; give the guest more memory (-m)",
                path.display()
            )
        );
    }
}
