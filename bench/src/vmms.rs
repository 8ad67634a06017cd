//! The two VMMs under test and the exact command lines that boot the probe guest in each:
//! the same PVH ELF (written by `rvmm probe --elf`), vCPU count, memory and guest command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where Debian's qemu-system-x86 package puts QEMU.
pub const QEMU_PATH: &str = "/usr/bin/qemu-system-x86_64";

/// The machine options both VMMs run with: no in-kernel PIT. The probe times with the TSC
/// and never programs a PIT, and KVM's PIT costs every exit its teardown (~7 ms here,
/// docs/benchmarks.md), so both VMMs leave it out: rvmm's `--machine pit=off`, QEMU's
/// `-M microvm,pit=off`.
pub const MACHINE_OPTIONS: &str = "pit=off";

/// QEMU's arguments before the shape and the guest command line (the recipe:
/// microvm with no option ROMs, an ISA serial port on stdio, isa-debug-exit at 0xf4, and
/// [`MACHINE_OPTIONS`]).
pub const QEMU_ARGS: &[&str] = &[
    "-M",
    "microvm,x-option-roms=off,isa-serial=on,rtc=on,pit=off",
    "-nodefaults",
    "-no-user-config",
    "-enable-kvm",
    "-cpu",
    "host,-arch-capabilities",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=4",
    "-serial",
    "stdio",
    "-display",
    "none",
];

/// Why the tools are not usable.
#[derive(Debug, Error)]
pub enum ToolError {
    #[error("qemu-system-x86_64 is missing at {0}: run scripts/deps.sh")]
    NoQemu(PathBuf),
    #[error("the rvmm binary is missing at {0}: build it with `cargo build --release -p rvmm` (or pass --rvmm PATH)")]
    NoRvmm(PathBuf),
    #[error("`rvmm probe --elf {path}` failed: {why}")]
    ProbeElf { path: PathBuf, why: String },
    #[error("cannot run {program} --version: {why}")]
    Version { program: String, why: String },
}

/// A VMM under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Vmm {
    Rvmm,
    Qemu,
}

impl Vmm {
    pub const BOTH: [Vmm; 2] = [Vmm::Rvmm, Vmm::Qemu];

    pub fn name(self) -> &'static str {
        match self {
            Vmm::Rvmm => "rvmm",
            Vmm::Qemu => "QEMU",
        }
    }

    /// Exit statuses that mean "the guest powered off". QEMU exits 0 on ACPI S5; should
    /// the probe's isa-debug-exit fallback win instead, QEMU exits (0 << 1) | 1 = 1.
    pub fn ok_statuses(self) -> &'static [i32] {
        match self {
            Vmm::Rvmm => &[0],
            Vmm::Qemu => &[0, 1],
        }
    }
}

/// vCPUs and guest memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub vcpus: u32,
    pub mem_mib: u64,
}

impl Shape {
    pub fn new(vcpus: u32, mem_mib: u64) -> Shape {
        Shape { vcpus, mem_mib }
    }

    pub fn mem_bytes(&self) -> u64 {
        self.mem_mib << 20
    }

    /// `1 vCPU, 128 MiB`, `8 vCPUs, 8 GiB`.
    pub fn label(&self) -> String {
        let mem = if self.mem_mib >= 1024 && self.mem_mib % 1024 == 0 {
            format!("{} GiB", self.mem_mib / 1024)
        } else {
            format!("{} MiB", self.mem_mib)
        };
        format!(
            "{} vCPU{}, {mem}",
            self.vcpus,
            if self.vcpus == 1 { "" } else { "s" }
        )
    }
}

/// What the probe guest does (its `mode=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Guest {
    /// The full dump: every vCPU's CPUID and the ACPI tables, then poweroff.
    Dump,
    /// `PROBE-HELLO`, then poweroff.
    Hello,
    /// The dump, then `count` writes to port 0x80, `PROBE-PIO count=N`, poweroff.
    Pio { count: u64 },
}

impl Guest {
    /// The guest command line (empty for the default dump).
    pub fn append(&self) -> Option<String> {
        match self {
            Guest::Dump => None,
            Guest::Hello => Some("mode=hello".into()),
            Guest::Pio { count } => Some(format!("mode=pio count={count}")),
        }
    }

    /// The line that says the guest finished its work.
    pub fn last_line(&self) -> &'static str {
        match self {
            Guest::Dump => "PROBE-END",
            Guest::Hello => "PROBE-HELLO",
            Guest::Pio { .. } => "PROBE-PIO",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Guest::Dump => "probe (dump)",
            Guest::Hello => "minimal (mode=hello)",
            Guest::Pio { .. } => "pio",
        }
    }
}

/// The binaries and the guest image.
#[derive(Clone, Debug)]
pub struct Tools {
    pub rvmm: PathBuf,
    pub qemu: PathBuf,
    pub probe_elf: PathBuf,
}

impl Tools {
    /// Checks both VMMs exist and writes the probe ELF into `work_dir` with rvmm itself.
    pub fn prepare(rvmm: &Path, qemu: &Path, work_dir: &Path) -> Result<Tools, ToolError> {
        if !qemu.exists() {
            return Err(ToolError::NoQemu(qemu.into()));
        }
        if !rvmm.exists() {
            return Err(ToolError::NoRvmm(rvmm.into()));
        }
        let probe_elf = work_dir.join("probe.elf");
        let out = Command::new(rvmm)
            .args(["probe", "--elf"])
            .arg(&probe_elf)
            .output()
            .map_err(|e| ToolError::ProbeElf {
                path: probe_elf.clone(),
                why: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(ToolError::ProbeElf {
                path: probe_elf,
                why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(Tools {
            rvmm: rvmm.into(),
            qemu: qemu.into(),
            probe_elf,
        })
    }

    /// The command that boots `guest` with `shape` under `vmm`.
    pub fn command(&self, vmm: Vmm, shape: Shape, guest: Guest) -> Command {
        let mut c;
        match vmm {
            Vmm::Rvmm => {
                c = Command::new(&self.rvmm);
                c.args(["run", "--kernel"]).arg(&self.probe_elf);
                c.args(["--cpu", "host", "--smp"])
                    .arg(shape.vcpus.to_string());
                c.arg("-m").arg(format!("{}M", shape.mem_mib));
                c.args(["--machine", MACHINE_OPTIONS]);
                if let Some(a) = guest.append() {
                    c.arg("--append").arg(a);
                }
            }
            Vmm::Qemu => {
                c = Command::new(&self.qemu);
                c.args(QEMU_ARGS).arg("-kernel").arg(&self.probe_elf);
                c.arg("-smp").arg(shape.vcpus.to_string());
                c.arg("-m").arg(format!("{}M", shape.mem_mib));
                if let Some(a) = guest.append() {
                    c.arg("-append").arg(a);
                }
            }
        }
        c
    }

    /// A command line as one shell-quoted string, with the probe ELF's path shortened.
    pub fn command_text(&self, vmm: Vmm, shape: Shape, guest: Guest) -> String {
        let c = self.command(vmm, shape, guest);
        let mut parts = vec![display_program(c.get_program())];
        for a in c.get_args() {
            let a = if Path::new(a) == self.probe_elf {
                "probe.elf".to_string()
            } else {
                a.to_string_lossy().into_owned()
            };
            parts.push(shell_quote(&a));
        }
        parts.join(" ")
    }

    /// `rvmm --version` and `qemu-system-x86_64 --version` (first lines; for rvmm, which
    /// prints QEMU's `QEMU emulator version 7.2.0 (rvmm X.Y.Z)`, the `rvmm X.Y.Z` in it).
    pub fn versions(&self) -> Result<(String, String), ToolError> {
        let rvmm = version(&self.rvmm)?;
        Ok((rvmm_version(&rvmm), version(&self.qemu)?))
    }
}

fn display_program(p: &std::ffi::OsStr) -> String {
    Path::new(p).file_name().map_or_else(
        || p.to_string_lossy().into_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn version(program: &Path) -> Result<String, ToolError> {
    let err = |why: String| ToolError::Version {
        program: program.display().to_string(),
        why,
    };
    let out = Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(str::to_string)
        .ok_or_else(|| err("it printed nothing".into()))
}

/// `rvmm X.Y.Z` from rvmm's QEMU-style first line (the line itself otherwise).
fn rvmm_version(line: &str) -> String {
    line.split_once("(rvmm ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map_or_else(|| line.to_string(), |v| format!("rvmm {v}"))
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,./:+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Tools {
        Tools {
            rvmm: "/x/rvmm".into(),
            qemu: QEMU_PATH.into(),
            probe_elf: "/tmp/w/probe.elf".into(),
        }
    }

    #[test]
    fn rvmm_version_from_its_qemu_line() {
        assert_eq!(
            rvmm_version("QEMU emulator version 7.2.0 (rvmm 0.1.0)"),
            "rvmm 0.1.0"
        );
        assert_eq!(rvmm_version("rvmm 0.1.0"), "rvmm 0.1.0");
    }

    #[test]
    fn rvmm_command_line() {
        assert_eq!(
            tools().command_text(Vmm::Rvmm, Shape::new(8, 1024), Guest::Pio { count: 5 }),
            "rvmm run --kernel probe.elf --cpu host --smp 8 -m 1024M --machine pit=off --append 'mode=pio count=5'"
        );
        assert_eq!(
            tools().command_text(Vmm::Rvmm, Shape::new(1, 128), Guest::Dump),
            "rvmm run --kernel probe.elf --cpu host --smp 1 -m 128M --machine pit=off"
        );
    }

    #[test]
    fn qemu_command_line() {
        assert_eq!(
            tools().command_text(Vmm::Qemu, Shape::new(2, 8192), Guest::Hello),
            "qemu-system-x86_64 -M microvm,x-option-roms=off,isa-serial=on,rtc=on,pit=off -nodefaults -no-user-config \
             -enable-kvm -cpu host,-arch-capabilities -device isa-debug-exit,iobase=0xf4,iosize=4 -serial stdio \
             -display none -kernel probe.elf -smp 2 -m 8192M -append mode=hello"
        );
    }

    #[test]
    fn shape_labels_and_quoting() {
        assert_eq!(Shape::new(1, 128).label(), "1 vCPU, 128 MiB");
        assert_eq!(Shape::new(32, 8192).label(), "32 vCPUs, 8 GiB");
        assert_eq!(Shape::new(2, 1536).label(), "2 vCPUs, 1536 MiB");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
