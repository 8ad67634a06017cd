//! The probe guest ELF, built from guest/probe by build.rs (see there), and the facts a
//! VMM or a test needs about it: where it loads, where it starts APs, its command line
//! (`mode=...`) and the fixed lines it prints. Decoding the dump is `decode`'s job.
//!
//! The guest is a PVH ELF64 image: both rvmm (linux-loader's ELF loader) and QEMU
//! (`-kernel probe.elf`) boot the very same bytes.

use std::fmt;

/// The probe guest, an ELF64 image with a Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY).
pub static PROBE_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe.elf"));

/// Physical address of the first loadable segment (code); data and bss follow it.
pub const LOAD_PADDR: u64 = 0x10_0000;
/// The 32-bit PVH entry point named by the image's PVH note (its first code byte).
pub const PVH_ENTRY: u64 = 0x10_0000;
/// The page the guest copies its AP real-mode trampoline to (Start-up IPI vector 0x08).
/// A VMM must leave it as ordinary RAM; it is free once the probe has started.
pub const TRAMPOLINE_PADDR: u64 = 0x8000;
/// Bytes of RAM each AP's stack takes right after the image (one per MADT position).
pub const AP_STACK_SIZE: u64 = 8192;

/// The serial port (COM1 data register) the guest writes its lines to.
pub const SERIAL_PORT: u16 = 0x3f8;
/// The port `mode=pio` writes single bytes to.
pub const PIO_PORT: u16 = 0x80;
/// How many writes `mode=pio` does without `count=`.
pub const PIO_DEFAULT_COUNT: u64 = 1_000_000;
/// QEMU's isa-debug-exit port: after ACPI S5, the guest writes a 32-bit 0 here.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// First line of a dump.
pub const LINE_BEGIN: &str = "PROBE-BEGIN v1";
/// `mode=hello`'s only line.
pub const LINE_HELLO: &str = "PROBE-HELLO";
/// `PROBE-END cpus=N`: N vCPUs dumped their CPUID.
pub const PREFIX_END: &str = "PROBE-END cpus=";
/// `PROBE-BUSY cpus=N`: N vCPUs (the BSP included) now loop forever.
pub const PREFIX_BUSY: &str = "PROBE-BUSY cpus=";
/// `PROBE-HALT cpus=N`: the APs halt forever, the BSP waits for the ACPI power button.
pub const PREFIX_HALT: &str = "PROBE-HALT cpus=";
/// `PROBE-POWERBUTTON`: in mode=halt (and busy, load, counter, hotplug, which look at the
/// button as they run), the guest saw the power button and enters S5.
pub const LINE_POWERBUTTON: &str = "PROBE-POWERBUTTON";
/// `PROBE-PIO count=K`: the K port writes are done.
pub const PREFIX_PIO: &str = "PROBE-PIO count=";
/// `PROBE-ERROR ...`: something the guest could not do (an AP that did not start, an
/// unknown mode, no ACPI tables).
pub const PREFIX_ERROR: &str = "PROBE-ERROR ";

/// What the probe does after it boots, chosen by its PVH command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProbeMode {
    /// Dump every vCPU's CPUID and the MADT/SRAT/SLIT, then power off.
    #[default]
    Dump,
    /// Print `PROBE-HELLO` and power off: the smallest guest, for start-time benchmarks.
    Hello,
    /// Dump, then keep every vCPU busy (`PROBE-BUSY cpus=N`) until the ACPI power button
    /// (`PROBE-POWERBUTTON`, then S5).
    Busy,
    /// Dump, then halt every vCPU (`PROBE-HALT cpus=N`) until the ACPI power button
    /// (`PROBE-POWERBUTTON`, then S5).
    Halt,
    /// Dump, then write one byte `count` times to [`PIO_PORT`] and power off.
    Pio {
        /// Number of single-byte port writes.
        count: u64,
    },
}

impl fmt::Display for ProbeMode {
    /// The guest command line that selects this mode.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeMode::Dump => f.write_str("mode=dump"),
            ProbeMode::Hello => f.write_str("mode=hello"),
            ProbeMode::Busy => f.write_str("mode=busy"),
            ProbeMode::Halt => f.write_str("mode=halt"),
            ProbeMode::Pio { count } => write!(f, "mode=pio count={count}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::image::{load_kernel, ImageSource, LoadedKernel};
    use crate::memory::GuestRam;

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }

    #[test]
    fn image_is_elf64_x86_64() {
        assert_eq!(&PROBE_ELF[..4], b"\x7fELF");
        assert_eq!(PROBE_ELF[4], 2, "EI_CLASS must be ELFCLASS64");
        assert_eq!(PROBE_ELF[5], 1, "EI_DATA must be little endian");
        assert_eq!(u16_at(PROBE_ELF, 18), 62, "e_machine must be EM_X86_64");
    }

    #[test]
    fn our_loader_finds_the_pvh_entry() {
        let ram = GuestRam::new(16 << 20).expect("16 MiB of guest memory");
        let src = ImageSource::Bytes {
            bytes: PROBE_ELF,
            name: "probe.elf",
        };
        match load_kernel(&ram, &src).expect("the probe ELF loads") {
            LoadedKernel::Pvh { entry, end } => {
                assert_eq!(entry, PVH_ENTRY);
                assert!(
                    end > LOAD_PADDR && end < LOAD_PADDR + (1 << 20),
                    "end {end:#x}"
                );
            }
            other => panic!("expected a PVH kernel, got {other:?}"),
        }
    }

    #[test]
    fn mode_command_lines() {
        assert_eq!(ProbeMode::default().to_string(), "mode=dump");
        assert_eq!(ProbeMode::Hello.to_string(), "mode=hello");
        assert_eq!(ProbeMode::Busy.to_string(), "mode=busy");
        assert_eq!(ProbeMode::Halt.to_string(), "mode=halt");
        assert_eq!(
            ProbeMode::Pio { count: 42 }.to_string(),
            "mode=pio count=42"
        );
    }
}
