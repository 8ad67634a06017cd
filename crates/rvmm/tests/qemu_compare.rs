//! Issue "vCPU topology and CPU models": the guest's view under rvmm equals QEMU 7.2's for the
//! same `-smp`/`-cpu`. Both VMMs boot the same probe ELF with KVM; every CPUID leaf and
//! subleaf of every vCPU, and the MADT's processor entries, are compared. Where rvmm differs
//! on purpose, `INTENDED` names the leaf, the bits and why.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use vmm::probe::acpi_parse::parse_madt;
use vmm::probe::decode::{parse, ProbeDump};

/// (leaf, subleaf, register index, mask of bits that may differ, machine it applies to, why).
const INTENDED: &[(u32, u32, usize, u32, &str, &str)] = &[
    (
        0x8000_0008,
        0,
        0,
        0xff,
        "microvm",
        "physical address bits: QEMU's microvm turns host-phys-bits on; rvmm follows -M pc \
         (40 bits for named models, the host's for host and max)",
    ),
    (
        0x4000_0001,
        0,
        0,
        1 << 15,
        "microvm",
        "KVM_FEATURE_MSI_EXT_DEST_ID: QEMU's microvm runs a split irqchip (IOAPIC in QEMU) and \
     advertises extended destination IDs; rvmm keeps the IOAPIC in KVM, as QEMU's -M pc does, \
     and so does not",
    ),
];

struct Case {
    smp: &'static str,
    /// rvmm's --cpu.
    cpu: &'static str,
    /// QEMU's -cpu: unversioned names resolve to v1 on pc/q35 (and in rvmm) but to the
    /// latest version on microvm, so the version is spelled out for QEMU.
    qemu_cpu: &'static str,
    /// QEMU machine: microvm (fast) unless the case needs dies, which microvm refuses.
    pc: bool,
}

const CASES: &[Case] = &[
    Case {
        smp: "1",
        cpu: "qemu64",
        qemu_cpu: "qemu64",
        pc: false,
    },
    Case {
        smp: "4",
        cpu: "kvm64",
        qemu_cpu: "kvm64",
        pc: false,
    },
    Case {
        smp: "8,sockets=2,cores=2,threads=2",
        cpu: "qemu64",
        qemu_cpu: "qemu64",
        pc: false,
    },
    Case {
        smp: "8,sockets=2,cores=2,threads=2",
        cpu: "EPYC",
        qemu_cpu: "EPYC-v1",
        pc: false,
    },
    Case {
        smp: "6,sockets=1,cores=3,threads=2",
        cpu: "Haswell",
        qemu_cpu: "Haswell-v1",
        pc: false,
    },
    Case {
        smp: "6,sockets=1,cores=3,threads=2",
        cpu: "EPYC",
        qemu_cpu: "EPYC-v1",
        pc: false,
    },
    Case {
        smp: "4,maxcpus=8",
        cpu: "Skylake-Server,+aes,-avx2",
        qemu_cpu: "Skylake-Server-v1,+aes,-avx2",
        pc: false,
    },
    Case {
        smp: "4",
        cpu: "host,-arch-capabilities",
        qemu_cpu: "host,-arch-capabilities",
        pc: false,
    },
    Case {
        smp: "8,sockets=2,dies=2,cores=2,threads=1",
        cpu: "qemu64",
        qemu_cpu: "qemu64",
        pc: true,
    },
];

fn rvmm_dump(case: &Case) -> ProbeDump {
    let mut cmd = rvmm();
    cmd.args(["run", "--raw", "--smp", case.smp, "--cpu", case.cpu]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "rvmm --smp {} --cpu {}: {stderr}",
        case.smp,
        case.cpu
    );
    parse(&stdout).unwrap_or_else(|e| panic!("rvmm's dump: {e}\n{stdout}"))
}

fn qemu_dump(case: &Case, elf: &Path) -> ProbeDump {
    let machine = if case.pc { "pc" } else { MICROVM };
    let out = qemu_probe(machine, case.smp, case.qemu_cpu, elf);
    let (stdout, stderr) = text(&out);
    parse(&stdout)
        .unwrap_or_else(|e| panic!("QEMU's dump ({machine}, -smp {}): {e}\n{stderr}", case.smp))
}

/// Every difference between the two dumps, as readable lines.
fn differences(case: &Case, ours: &ProbeDump, theirs: &ProbeDump) -> Vec<String> {
    let machine = if case.pc { "pc" } else { "microvm" };
    let mut diffs = Vec::new();
    if ours.cpus.len() != theirs.cpus.len() {
        diffs.push(format!(
            "vCPUs: rvmm {} QEMU {}",
            ours.cpus.len(),
            theirs.cpus.len()
        ));
    }
    for (a, b) in ours.cpus.iter().zip(&theirs.cpus) {
        let keys: std::collections::BTreeSet<_> = a.leaves.keys().chain(b.leaves.keys()).collect();
        for &(leaf, sub) in keys {
            let (x, y) = (a.leaves.get(&(leaf, sub)), b.leaves.get(&(leaf, sub)));
            let (Some(x), Some(y)) = (x, y) else {
                diffs.push(format!(
                    "cpu {} leaf {leaf:#x}.{sub}: only {}",
                    a.index,
                    if x.is_some() { "rvmm" } else { "QEMU" }
                ));
                continue;
            };
            for r in 0..4 {
                let allowed = INTENDED
                    .iter()
                    .filter(|i| i.0 == leaf && i.1 == sub && i.2 == r && i.4 == machine)
                    .fold(0u32, |m, i| m | i.3);
                if (x[r] ^ y[r]) & !allowed != 0 {
                    diffs.push(format!(
                        "cpu {} leaf {leaf:#x}.{sub} {}: rvmm {:08x} QEMU {:08x}",
                        a.index,
                        ["eax", "ebx", "ecx", "edx"][r],
                        x[r],
                        y[r]
                    ));
                }
            }
        }
    }
    let procs = |d: &ProbeDump| -> BTreeMap<u32, (u32, bool)> {
        let madt = parse_madt(&d.table("APIC").expect("a MADT").data).expect("a valid MADT");
        madt.processors
            .iter()
            .map(|p| (p.uid, (p.apic_id, p.enabled)))
            .collect()
    };
    if procs(ours) != procs(theirs) {
        diffs.push(format!(
            "MADT processors: rvmm {:?} QEMU {:?}",
            procs(ours),
            procs(theirs)
        ));
    }
    diffs
}

#[test]
fn guest_view_equals_qemu_for_each_topology_and_model() {
    if !kvm_available("qemu_compare") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rvmm-qemu-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let elf = dir.join("probe.elf");
    assert!(rvmm()
        .args(["probe", "--elf"])
        .arg(&elf)
        .status()
        .unwrap()
        .success());
    let mut failures = Vec::new();
    for case in CASES {
        let ours = rvmm_dump(case);
        let theirs = qemu_dump(case, &elf);
        let d = differences(case, &ours, &theirs);
        if !d.is_empty() {
            failures.push(format!(
                "--smp {} --cpu {}:\n  {}",
                case.smp,
                case.cpu,
                d.join("\n  ")
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "rvmm and QEMU differ:\n{}",
        failures.join("\n")
    );
}
