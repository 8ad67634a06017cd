//! Builds the probe guest (see guest/probe) and places it in OUT_DIR.
//!
//! The guest is GNU assembly and freestanding C, compiled with the system `gcc` and linked
//! with the system `ld` (binutils) into `$OUT_DIR/probe.elf`, an ELF64 PVH image that
//! `src/probe/image.rs` embeds with `include_bytes!`. No Rust target for bare metal is
//! needed, and no binary is kept in git.

use std::env;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's sources, relative to guest/probe, in link order (entry.S first).
const SOURCES: &[&str] = &[
    "entry.S",
    "trampoline.S",
    "main.c",
    "out.c",
    "cpuid_dump.c",
    "acpi.c",
    "apic.c",
    "smp.c",
    "power.c",
    "hostile.c",
    "hotplug.c",
    "timer.c",
    "load.c",
    "counter.c",
    "virtio.c",
    "vnet.c",
    "balloon.c",
    "util.c",
];

/// Freestanding 64-bit code: no SSE (the guest never enables it), no red zone (interrupts
/// arrive on the same stack), no PIC (linked at a fixed physical address), and no calls
/// GCC might invent from loops (our `memcpy` is itself such a loop).
const CFLAGS: &[&str] = &[
    "-std=gnu11",
    "-O2",
    "-m64",
    "-march=x86-64",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-mcmodel=small",
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fcf-protection=none",
    "-fno-tree-loop-distribute-patterns",
    "-Wall",
    "-Wextra",
    "-Werror",
];

/// A failed step of the guest build, with what to do about it.
enum BuildError {
    /// A tool is not installed.
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    /// A tool could not be started for another reason.
    Spawn {
        tool: &'static str,
        source: io::Error,
    },
    /// A tool ran and failed.
    Failed { command: String, output: String },
    /// OUT_DIR handling.
    Io { path: PathBuf, source: io::Error },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::MissingTool { tool, package } => write!(
                f,
                "the probe guest (guest/probe) is built with the system `{tool}`, which was \
                 not found in PATH: install it (Debian/Ubuntu: `apt-get install {package}`)"
            ),
            BuildError::Spawn { tool, source } => {
                write!(
                    f,
                    "could not run `{tool}` to build the probe guest: {source}"
                )
            }
            BuildError::Failed { command, output } => {
                write!(f, "building the probe guest failed: `{command}`\n{output}")
            }
            BuildError::Io { path, source } => {
                write!(f, "probe guest build: {}: {source}", path.display())
            }
        }
    }
}

fn main() {
    if let Err(e) = build() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), BuildError> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let src_dir = manifest_dir.join("../../guest/probe");
    println!("cargo:rerun-if-changed=build.rs");
    // A directory: cargo rebuilds when any file below it changes.
    println!("cargo:rerun-if-changed={}", src_dir.display());

    let obj_dir = out_dir.join("probe-obj");
    fs::create_dir_all(&obj_dir).map_err(|source| BuildError::Io {
        path: obj_dir.clone(),
        source,
    })?;

    let mut objects = Vec::with_capacity(SOURCES.len());
    for source in SOURCES {
        let object = obj_dir.join(Path::new(source).with_extension("o"));
        let mut gcc = Command::new("gcc");
        gcc.args(CFLAGS)
            .arg("-I")
            .arg(&src_dir)
            .arg("-c")
            .arg(src_dir.join(source))
            .arg("-o")
            .arg(&object);
        run("gcc", "gcc", &mut gcc)?;
        objects.push(object);
    }

    let elf = out_dir.join("probe.elf");
    let mut ld = Command::new("ld");
    ld.args([
        "-m",
        "elf_x86_64",
        "-nostdlib",
        "-static",
        "--build-id=none",
    ])
    .args(["-z", "max-page-size=0x1000", "-z", "noexecstack"])
    .arg("-T")
    .arg(src_dir.join("probe.ld"))
    .arg("-o")
    .arg(&elf)
    .args(&objects);
    run("ld", "binutils", &mut ld)
}

/// Runs `command`, turning a missing tool or a failure into a [`BuildError`].
fn run(tool: &'static str, package: &'static str, command: &mut Command) -> Result<(), BuildError> {
    let output = command.output().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => BuildError::MissingTool { tool, package },
        _ => BuildError::Spawn { tool, source },
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(BuildError::Failed {
        command: format!("{command:?}"),
        output: text,
    })
}
