//! The probe decoder against Linux itself: for three topologies, the package/die/core/thread
//! of every CPU that rvmm derives from a QEMU probe dump equals what the Debian kernel reports
//! in /sys when QEMU boots it (TCG, same -smp and -cpu). Both run under TCG, so that both
//! read the very same CPUID: under KVM the guest would see the model with the host's vendor
//! (QEMU's rule), and on kvm-pvm with the host's feature bits too, which TCG cannot give
//! Linux (topoext on an AMD host, say).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// An Intel model: Linux reads its topology from leaves 0BH/1FH and 4.
const CPU: &str = "Nehalem-v1";

const TOPOLOGIES: &[&str] = &[
    "8,sockets=2,cores=2,threads=2",
    "6,sockets=1,cores=3,threads=2",
    "8,sockets=2,dies=2,cores=2,threads=1",
];

/// (package, die, core, thread) per CPU.
type Layout = BTreeMap<u32, (u64, u64, u64, u64)>;

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

/// Boots the Debian kernel under QEMU TCG and reads its /sys topology.
fn linux_layout(smp: &str, img: &GuestImage) -> Layout {
    let mut q = qemu();
    q.args([
        "-M",
        "pc",
        "-accel",
        "tcg",
        "-cpu",
        CPU,
        "-smp",
        smp,
        "-m",
        "512",
        "-nographic",
        "-no-reboot",
    ])
    .arg("-kernel")
    .arg(&img.vmlinux)
    .arg("-initrd")
    .arg(&img.initramfs)
    .args(["-append", "console=ttyS0 quiet panic=-1"]);
    let out = run_with_timeout(q, Duration::from_secs(300));
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("RVMM-GUEST done"),
        "Linux under TCG did not finish (-smp {smp}): {stderr}\n{stdout}"
    );
    let mut layout = Layout::new();
    for line in stdout
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').split("RVMM-GUEST ").nth(1))
    {
        if !line.starts_with("cpu=") {
            continue;
        }
        let num = |k: &str| {
            field(line, k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{k} in {line}"))
        };
        let cpu = num("cpu") as u32;
        let siblings =
            vmm::util::cpulist::parse_cpulist(field(line, "thread_siblings").unwrap()).unwrap();
        let thread = siblings.iter().position(|&s| s == cpu).unwrap() as u64;
        layout.insert(cpu, (num("package"), num("die"), num("core"), thread));
    }
    layout
}

/// Boots the probe under QEMU (TCG) and decodes its dump with rvmm.
fn probe_layout(smp: &str, elf: &Path, dir: &Path) -> Layout {
    let machine = if smp.contains("dies") { "pc" } else { MICROVM };
    let mut q = qemu();
    q.args([
        "-M",
        machine,
        "-nodefaults",
        "-no-user-config",
        "-accel",
        "tcg",
    ])
    .args(["-cpu", CPU, "-smp", smp, "-m", "128", "-kernel"])
    .arg(elf)
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
    .args(["-serial", "stdio", "-display", "none"]);
    let out = run_with_timeout(q, Duration::from_secs(120));
    let log = dir.join("dump.log");
    std::fs::write(&log, &out.stdout).unwrap();
    let mut dec = rvmm();
    dec.args(["probe", "--json", "--decode"]).arg(&log);
    let d = run_with_timeout(dec, Duration::from_secs(10));
    let (stdout, stderr) = text(&d);
    assert!(d.status.success(), "decode (-smp {smp}): {stderr}");
    let view: Value = serde_json::from_str(&stdout).unwrap();
    view["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap();
            (
                n("cpu") as u32,
                (n("package"), n("die"), n("core"), n("thread")),
            )
        })
        .collect()
}

#[test]
fn decoded_topology_equals_linux_sysfs() {
    if !kvm_available("decoder_vs_linux") {
        return;
    }
    let img = guest_image();
    let dir = std::env::temp_dir().join(format!("rvmm-decoder-vs-linux-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let elf = dir.join("probe.elf");
    assert!(rvmm()
        .args(["probe", "--elf"])
        .arg(&elf)
        .status()
        .unwrap()
        .success());
    for smp in TOPOLOGIES {
        let ours = probe_layout(smp, &elf, &dir);
        let linux = linux_layout(smp, &img);
        assert_eq!(ours.len(), linux.len(), "-smp {smp}: CPU count");
        assert_eq!(
            ours, linux,
            "-smp {smp}: (package, die, core, thread) per CPU: rvmm's decoder vs Linux's /sys"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
