//! Fuzz target bodies: one plain function per target, `fn NAME(data: &[u8])`, that feeds
//! arbitrary bytes to the parsers and decoders rvmm runs on outside input and ignores every
//! `Err`. A panic, an abort or a hang is the bug the fuzzer looks for.
//!
//! The cargo-fuzz crate in `fuzz/` calls these under libFuzzer (nightly); the stable test
//! `tests/fuzz_corpus.rs` replays the committed corpora and crash reproducers through the
//! same functions, so every input ever found stays a regression test.
//!
//! | target         | input                                   | what it reaches                      |
//! |----------------|-----------------------------------------|--------------------------------------|
//! | `cli_grammars` | byte 0 picks the grammar, the rest text | `--smp`, `--cpu`, `-m`/sizes, `--numa`, cpulists/`--vcpu-pin`, `--machine` |
//! | `domain_xml`   | libvirt domain XML                      | `parse_domain` to a `VmConfig`, NUMA resolution, flags rendering |
//! | `host_cpu`     | host CPU JSON or libvirt XML            | `cpu-baseline` / `cpu-compare` inputs, baseline and compare |
//! | `qmp`          | a QMP byte stream                       | framing, envelopes, negotiation, argument parsing and command execution on a plain-data VM |
//! | `boot_image`   | a kernel image (also used as the initrd) | ELF/PVH and bzImage checks, linux-loader, initrd placement, boot structures, in 64 MiB of guest RAM |
//! | `probe_dump`   | serial output                           | the probe dump decoder, the guest view and its rendering |
//! | `acpi_tables`  | one ACPI table                          | the MADT, SRAT and SLIT decoders |
//! | `device_bus`   | (op, port, size, value) records         | port and MMIO reads/writes of any size on COM1, i8042, PM, debug exit |
//!
//! Everything here runs without /dev/kvm: guest RAM is an anonymous mapping, the serial
//! interrupt is a plain eventfd and the VM that QMP commands act on is plain data.

mod fake_vm;

use std::cell::RefCell;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::json;
use vmm_sys_util::eventfd::EventFd;

use crate::boot::image::{load_initrd, load_kernel, ImageSource};
use crate::boot::{self, BootImage};
use crate::config::cpu::parse_cpu;
use crate::config::flags;
use crate::config::libvirt::{parse_domain, DomainEnv, DomainHost};
use crate::config::machine::parse_machine;
use crate::config::memory::parse_memory;
use crate::config::numa::NumaConfig;
use crate::config::pinning::{parse_vcpu_pin, PinningConfig};
use crate::config::size::{format_size, parse_size, DefaultUnit};
use crate::config::smp::{SmpConfig, SmpOptions};
use crate::control::commands::Command;
use crate::control::qmp::{reply_error, reply_return, Frame, Session, Splitter, Step};
use crate::cpu::baseline::{baseline, compare, requested_features};
use crate::cpu::filter::HostCpuSupport;
use crate::cpu::hostdesc::{parse_json, parse_libvirt_xml};
use crate::cpu::libvirt_map::LibvirtCpuMap;
use crate::cpu::models::expand::HostIdentity;
use crate::cpu::spec::CpuSpec;
use crate::devices::serial::{com1, SerialOutput};
use crate::devices::Bus;
use crate::memory::GuestRam;
use crate::probe::acpi_parse::{parse_madt, parse_slit, parse_srat};
use crate::probe::decode;
use crate::probe::view::GuestView;
use crate::util::cpulist::{cpulist, parse_cpulist};

/// The grammars `cli_grammars` dispatches to, by its first byte modulo their number.
pub const CLI_GRAMMARS: &[&str] = &["smp", "cpu", "memory", "numa", "cpulist", "machine", "disk"];

/// A target body.
pub type Target = fn(&[u8]);

/// Every target, by the name its `fuzz/fuzz_targets/NAME.rs` binary and corpus use.
pub const TARGETS: &[(&str, Target)] = &[
    ("cli_grammars", cli_grammars),
    ("domain_xml", domain_xml),
    ("host_cpu", host_cpu),
    ("qmp", qmp),
    ("boot_image", boot_image),
    ("probe_dump", probe_dump),
    ("acpi_tables", acpi_tables),
    ("device_bus", device_bus),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The command-line grammars. Byte 0 picks one of [`CLI_GRAMMARS`]; the rest is the option
/// text. `numa` reads the text as lines: `--smp`, `-m`, then one `--numa` option per line,
/// and resolves them together. `cpulist` also parses the text as `--vcpu-pin` and as
/// `--cpuset`/`--emulator-pin`.
pub fn cli_grammars(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let s = text(rest);
    match CLI_GRAMMARS[which as usize % CLI_GRAMMARS.len()] {
        "smp" => {
            if let Ok(options) = SmpOptions::parse(&s) {
                let _ = options.resolve();
            }
            if let Ok(smp) = SmpConfig::parse(&s) {
                let _ = smp.topology();
                let _ = smp.threads_per_socket();
                let _ = smp.validate_limits(0, 0);
                let _ = smp.validate_limits(1024, 4);
                let _ = flags::smp_option(&smp);
            }
        }
        "cpu" => {
            if let Ok(cpu) = parse_cpu(&s) {
                let _ = requested_features(&cpu);
                let _ = flags::cpu_option(&cpu);
            }
        }
        "memory" => {
            if let Ok(m) = parse_memory(&s) {
                let _ = m.validate();
            }
            for unit in [DefaultUnit::Bytes, DefaultUnit::Mebibytes] {
                if let Ok(bytes) = parse_size("-m", &s, unit) {
                    let _ = format_size(bytes);
                    let _ = flags::size_text(bytes);
                }
            }
        }
        "numa" => {
            let mut lines = s.split('\n');
            let smp = SmpConfig::parse(lines.next().unwrap_or_default());
            let memory = parse_size(
                "-m",
                lines.next().unwrap_or_default(),
                DefaultUnit::Mebibytes,
            );
            let options: Vec<&str> = lines.collect();
            if let (Ok(numa), Ok(smp), Ok(memory)) = (NumaConfig::parse(&options), smp, memory) {
                if let Ok(guest) = numa.resolve(&smp, memory) {
                    let _ = guest.node_sizes();
                    let _ = guest.node_offsets();
                    let _ = guest.flat_distances();
                }
            }
        }
        "cpulist" => {
            if let Ok(ids) = parse_cpulist(&s) {
                let _ = cpulist(&ids);
            }
            if let Ok(pin) = parse_vcpu_pin(&s) {
                let _ = flags::vcpu_pin_option(&pin);
            }
            if let Ok(p) = PinningConfig::parse(std::slice::from_ref(&s), Some(&s), Some(&s)) {
                let _ = p.validate(u32::MAX);
                let _ = p.for_vcpu(0);
            }
        }
        "machine" => {
            if let Ok(m) = parse_machine(&s) {
                let _ = m.option_text();
            }
        }
        "disk" => {
            if let Ok(d) = crate::config::disk::DiskConfig::parse(&s) {
                // The option text gives the same disk back.
                assert_eq!(crate::config::disk::DiskConfig::parse(&d.option()), Ok(d));
            }
        }
        _ => unreachable!("CLI_GRAMMARS lists every arm"),
    }
}

/// A small libvirt CPU map: two vendors, a few features (one without a QEMU name, one MSR
/// feature) and two models, enough for domain and host CPU XML to name features and models.
fn cpu_map() -> &'static LibvirtCpuMap {
    static MAP: OnceLock<LibvirtCpuMap> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m = LibvirtCpuMap::default();
        let files = [
            (
                "x86_vendors.xml",
                "<cpus><vendor name='Intel' string='GenuineIntel'/>\
<vendor name='AMD' string='AuthenticAMD'/></cpus>",
            ),
            (
                "x86_features.xml",
                "<cpus>\
<feature name='sse2'><cpuid eax_in='0x01' edx='0x04000000'/></feature>\
<feature name='pclmuldq'><cpuid eax_in='0x01' ecx='0x00000002'/></feature>\
<feature name='osxsave'><cpuid eax_in='0x01' ecx='0x08000000'/></feature>\
<feature name='tsc_adjust'><alias name='tsc-adjust' source='qemu'/>\
<cpuid eax_in='0x07' ecx_in='0x00' ebx='0x00000002'/></feature>\
<feature name='vmx'><cpuid eax_in='0x01' ecx='0x00000020'/></feature>\
<feature name='hypervisor'><cpuid eax_in='0x01' ecx='0x80000000'/></feature>\
<feature name='avx2'><cpuid eax_in='0x07' ecx_in='0x00' ebx='0x00000020'/></feature>\
<feature name='rdctl-no'><msr index='0x10a' edx='0x00000000' eax='0x00000001'/></feature>\
</cpus>",
            ),
            (
                "x86_models.xml",
                "<cpus><model name='Tiny'><vendor name='Intel'/><signature family='6' model='42'/>\
<feature name='sse2'/><feature name='pclmuldq'/></model>\
<model name='Haswell'><vendor name='Intel'/><feature name='sse2'/><feature name='avx2'/>\
</model></cpus>",
            ),
        ];
        for (file, text) in files {
            m.add_file(file, text)
                .expect("the built-in fuzzing CPU map parses");
        }
        m
    })
}

/// A synthetic Intel host whose KVM offers a Haswell-like CPU (no /dev/kvm needed).
fn host() -> &'static (HostCpuSupport, HostIdentity) {
    static HOST: OnceLock<(HostCpuSupport, HostIdentity)> = OnceLock::new();
    HOST.get_or_init(fake_vm::host)
}

/// libvirt domain XML, parsed once without a host and once with the synthetic host; an
/// accepted domain's NUMA layout is resolved and its configuration printed as flags.
pub fn domain_xml(data: &[u8]) {
    let s = text(data);
    let (support, identity) = host();
    let envs = [
        DomainEnv {
            cpu_map: Some(cpu_map()),
            host: None,
        },
        DomainEnv {
            cpu_map: Some(cpu_map()),
            host: Some(DomainHost { support, identity }),
        },
    ];
    for env in &envs {
        if let Ok(domain) = parse_domain(&s, "fuzz.xml", env) {
            let config = domain.config;
            let _ = config.validate();
            if let Ok(guest) = config.numa.resolve(&config.smp, config.memory) {
                let _ = guest.node_offsets();
                let _ = guest.flat_distances();
            }
            let _ = flags::command_line(&flags::run_args(&config));
        }
    }
}

/// Host CPU descriptions as `cpu-baseline` / `cpu-compare` read them: JSON when the text
/// starts with `{` or `[`, libvirt XML otherwise (`hostdesc::load_file`'s rule); then the
/// baseline of all of them and a comparison of two CPUs against each.
pub fn host_cpu(data: &[u8]) {
    let s = text(data);
    let descs = if matches!(s.trim_start().chars().next(), Some('{' | '[')) {
        parse_json(&s, "fuzz.json")
    } else {
        parse_libvirt_xml(&s, "fuzz.xml", cpu_map())
    };
    let Ok(descs) = descs else {
        return;
    };
    if let Ok(b) = baseline(&descs) {
        let _ = b.cpu_string();
        let _ = b.libvirt_xml(cpu_map());
    }
    let haswell = CpuSpec {
        model: "Haswell".to_string(),
        ..CpuSpec::default()
    };
    for desc in &descs {
        let _ = desc.to_json();
        let _ = compare(&CpuSpec::default(), desc);
        let _ = compare(&haswell, desc);
    }
}

/// A QMP byte stream, cut into frames as the server cuts it (the first byte also picks a
/// chunk size, so frames span reads), handled by two sessions: a fresh one (negotiation
/// rules) and one already negotiated (command parsing). Parsed commands run against a
/// plain-data VM, and every answer is rendered as the server would send it.
pub fn qmp(data: &[u8]) {
    let _ = run_qmp(data);
}

/// The `qmp` target's body; returns how many commands ran on the plain-data VM.
fn run_qmp(data: &[u8]) -> usize {
    let chunk = data.first().map_or(1, |&b| usize::from(b % 64) + 1);
    let mut splitter = Splitter::new(4096);
    let mut frames = Vec::new();
    for piece in data.chunks(chunk) {
        frames.extend(splitter.push(piece));
    }
    let mut fresh = Session::default();
    let mut negotiated = Session::default();
    let hello = Frame::Message(br#"{"execute":"qmp_capabilities"}"#.to_vec());
    let _ = negotiated.handle::<Command>(hello);
    let mut vm = fake_vm::FakeVm::new();
    let mut executed = 0;
    for frame in frames {
        for session in [&mut fresh, &mut negotiated] {
            match session.handle::<Command>(frame.clone()) {
                Step::Reply(line) => drop(line),
                Step::Execute { id, command } => {
                    executed += 1;
                    let _ = command.name();
                    let _ = match command.execute(&mut vm) {
                        Ok(value) => reply_return(id.as_ref(), value),
                        Err(e) => reply_error(id.as_ref(), &e),
                    };
                }
            }
        }
    }
    let _ = reply_return(None, json!({}));
    executed
}

/// Guest RAM for the boot target: 64 MiB, mapped once per thread and reused.
fn with_ram(f: impl FnOnce(&GuestRam)) {
    thread_local! {
        static RAM: GuestRam = GuestRam::new(64 << 20).expect("64 MiB of anonymous guest RAM");
    }
    RAM.with(f)
}

/// A memory file (reused) holding `data`, and a path that opens it, for loaders that read
/// files by path (the initrd).
fn memory_file(data: &[u8]) -> Option<PathBuf> {
    thread_local! {
        static FILE: RefCell<Option<File>> = const { RefCell::new(None) };
    }
    FILE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            // SAFETY: memfd_create reads the NUL-terminated name and returns a new fd or -1.
            let fd = unsafe { libc::memfd_create(c"rvmm-fuzz".as_ptr(), libc::MFD_CLOEXEC) };
            if fd < 0 {
                return None;
            }
            // SAFETY: `fd` was just created above and nothing else owns it.
            *slot = Some(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        let file = slot.as_mut()?;
        file.set_len(0).ok()?;
        file.seek(SeekFrom::Start(0)).ok()?;
        file.write_all(data).ok()?;
        Some(PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd())))
    })
}

/// A kernel image from bytes: `load_kernel` alone, then the whole boot recipe (`boot::load`)
/// with the same bytes as the initrd, and `load_initrd` with a floor and limit taken from the
/// image's first 16 bytes.
pub fn boot_image(data: &[u8]) {
    with_ram(|ram| {
        let source = || ImageSource::Bytes {
            bytes: data,
            name: "fuzz-kernel",
        };
        let _ = load_kernel(ram, &source());
        let initrd = memory_file(data);
        let image = BootImage {
            kernel: source(),
            initrd: initrd.as_deref(),
            cmdline: "console=ttyS0 reboot=k",
        };
        let _ = boot::load(ram, &image, 0xe_0000);
        if let (Some(path), Some(head)) = (initrd.as_deref(), data.get(..16)) {
            let floor = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
            let limit = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
            let _ = load_initrd(ram, path, floor, limit);
        }
    });
}

/// Serial output as `rvmm probe --decode` reads it: decoded, turned into the guest view,
/// rendered as text and as JSON.
pub fn probe_dump(data: &[u8]) {
    let s = text(data);
    if let Ok(dump) = decode::parse(&s) {
        if let Ok(view) = GuestView::from_dump(&dump) {
            let _ = view.render();
            let _ = serde_json::to_string(&view);
        }
    }
}

/// One ACPI table (header included) through the MADT, SRAT and SLIT decoders.
pub fn acpi_tables(data: &[u8]) {
    let _ = parse_madt(data);
    let _ = parse_srat(data);
    let _ = parse_slit(data);
}

/// What a `device_bus` record does.
#[derive(Debug, Clone, Copy)]
enum BusOp {
    PioRead,
    PioWrite,
    MmioRead,
    MmioWrite,
    /// Bytes typed on the console (the emulator thread's input to COM1).
    ConsoleInput,
    /// The ACPI power button (`system_powerdown`).
    PowerButton,
}

/// Guest port and MMIO accesses on a fresh bus (COM1 writing to a sink, i8042, PM, debug
/// exit). The input is 6-byte records: op, port or address (2 bytes, little-endian; MMIO
/// addresses are placed in the hole below 4 GiB), size, value (2 bytes, repeated to fill the
/// access). A size byte above 0xf0 asks for a string access of up to 64 bytes; otherwise
/// the size is 0 to 8 bytes.
pub fn device_bus(data: &[u8]) {
    let Ok(irq) = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) else {
        return;
    };
    let bus = Bus::new(
        com1(irq, SerialOutput::To(Box::new(std::io::sink()))),
        true,
        crate::devices::cpu_hotplug::CpuHotplug::new(vec![0, 1, 2, 3], 1),
    );
    const OPS: [BusOp; 6] = [
        BusOp::PioRead,
        BusOp::PioWrite,
        BusOp::MmioRead,
        BusOp::MmioWrite,
        BusOp::ConsoleInput,
        BusOp::PowerButton,
    ];
    let mut buf = [0u8; 64];
    for record in data.chunks_exact(6) {
        let op = OPS[record[0] as usize % OPS.len()];
        let port = u16::from_le_bytes([record[1], record[2]]);
        let size = match record[3] {
            s @ 0xf1.. => usize::from(s - 0xf0) * 4,
            s => usize::from(s % 9),
        };
        let value = [record[4], record[5]];
        let bytes = &mut buf[..size];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = value[i % 2];
        }
        let addr = 0xd000_0000 + u64::from(port) * 8;
        match op {
            BusOp::PioRead => bus.pio_read(port, bytes),
            BusOp::PioWrite => drop(bus.pio_write(port, bytes)),
            BusOp::MmioRead => bus.mmio_read(addr, bytes),
            BusOp::MmioWrite => drop(bus.mmio_write(addr, bytes)),
            BusOp::ConsoleInput => {
                let mut uart = bus.com1.lock().unwrap_or_else(|p| p.into_inner());
                let _ = uart.enqueue_raw_bytes(bytes);
            }
            BusOp::PowerButton => {
                let mut pm = bus.pm.lock().unwrap_or_else(|p| p.into_inner());
                let _ = pm.press_power_button();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmp_commands_run_only_after_negotiation() {
        let stream = br#"{"execute":"query-status"} {"execute":"__org.rvmm_vcpupin",
            "arguments":{"vcpu":1,"cpus":"0-3"}}{"execute":"nope"}"#;
        // The pre-negotiated session runs the two known commands; the fresh one runs none.
        assert_eq!(run_qmp(stream), 2);
        let negotiating = br#"{"execute":"qmp_capabilities"}{"execute":"query-status"}"#;
        assert_eq!(run_qmp(negotiating), 2);
    }

    #[test]
    fn every_target_is_found_by_name() {
        for (name, _) in TARGETS {
            assert!(target(name).is_some(), "{name}");
        }
        assert!(target("nope").is_none());
    }

    #[test]
    fn the_fake_host_and_the_cpu_map_are_usable() {
        let (support, identity) = host();
        assert!(!support.cpuid.is_empty());
        assert_eq!(identity.family, 6);
        assert!(cpu_map().model("Tiny").is_some());
        assert!(cpu_map().feature("tsc-adjust").is_some());
    }
}
