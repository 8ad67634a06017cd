//! Guest NUMA end to end: the SRAT and SLIT rvmm gives the probe guest equal what QEMU 7.2
//! (`-M pc -enable-kvm`, memdev-backed nodes) gives it for the same layout; `--numa` input
//! QEMU refuses is refused with one message; host binding shows in /proc/PID/numa_maps.

mod common;
mod host_memory;

use std::time::Duration;

use common::{kvm_available, qemu, run_with_timeout, text};
use host_memory::*;
use vmm::probe::acpi_parse::{parse_slit, parse_srat, Srat};
use vmm::probe::decode::{parse, ProbeDump};

/// Bytes of the ACPI table header (signature ... creator revision): OEM fields differ.
const ACPI_HEADER_LEN: usize = 36;

/// Command-line words.
fn words(args: &str) -> Vec<&str> {
    args.split_whitespace().collect()
}

fn rvmm_dump(args: &[&str]) -> ProbeDump {
    let mut cmd = common::rvmm();
    cmd.arg("run").args(args).arg("--raw");
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rvmm {args:?} failed: {stderr}");
    parse(&stdout).unwrap_or_else(|e| panic!("rvmm {args:?}: {e}\n{stdout}"))
}

/// Boots the probe under QEMU `-M pc -enable-kvm` with `args` (smp, memory, numa).
fn qemu_dump(args: &[&str]) -> ProbeDump {
    let elf = std::env::temp_dir().join(format!("rvmm-numa-probe-{}.elf", std::process::id()));
    std::fs::write(&elf, vmm::probe::image::PROBE_ELF).unwrap();
    let mut cmd = qemu();
    cmd.args(["-M", "pc", "-enable-kvm"])
        .args(args)
        .arg("-kernel")
        .arg(&elf)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .args(["-serial", "stdio", "-display", "none", "-nodefaults"]);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let _ = std::fs::remove_file(&elf);
    let (stdout, stderr) = text(&out);
    parse(&stdout).unwrap_or_else(|e| panic!("QEMU {args:?}: {e}\n{stdout}\n{stderr}"))
}

fn table<'a>(dump: &'a ProbeDump, sig: &str, who: &str) -> &'a [u8] {
    &dump
        .table(sig)
        .unwrap_or_else(|| panic!("{who} gave no {sig}"))
        .data
}

/// Compares SRAT and SLIT bodies (after the header) of rvmm and QEMU; returns rvmm's SRAT.
fn same_tables(rvmm_args: &str, qemu_args: &str) -> (Srat, Vec<Vec<u8>>) {
    let ours = rvmm_dump(&words(rvmm_args));
    let theirs = qemu_dump(&words(qemu_args));
    for sig in ["SRAT", "SLIT"] {
        let (a, b) = (table(&ours, sig, "rvmm"), table(&theirs, sig, "QEMU"));
        assert_eq!(a.len(), b.len(), "{sig} length");
        assert_eq!(a[..4], b[..4]);
        assert_eq!(a[8], b[8], "{sig} revision");
        assert_eq!(a[ACPI_HEADER_LEN..], b[ACPI_HEADER_LEN..], "{sig} body");
    }
    let srat = parse_srat(table(&ours, "SRAT", "rvmm")).unwrap();
    let slit = parse_slit(table(&ours, "SLIT", "rvmm")).unwrap();
    (srat, slit.distances)
}

#[test]
fn srat_and_slit_equal_qemus_for_two_nodes() {
    if !kvm_available("srat_and_slit_equal_qemus") {
        return;
    }
    let (srat, distances) = same_tables(
        concat!(
            "--smp 4 -m 2G ",
            "--numa node,nodeid=0,cpus=0-1,mem=1G ",
            "--numa node,nodeid=1,cpus=2-3,mem=1G ",
            "--numa dist,src=0,dst=1,val=21",
        ),
        concat!(
            "-smp 4 -m 2G ",
            "-object memory-backend-ram,id=m0,size=1G ",
            "-object memory-backend-ram,id=m1,size=1G ",
            "-numa node,nodeid=0,cpus=0-1,memdev=m0 ",
            "-numa node,nodeid=1,cpus=2-3,memdev=m1 ",
            "-numa dist,src=0,dst=1,val=21",
        ),
    );
    let cpus: Vec<(u32, u32)> = srat
        .cpus
        .iter()
        .map(|c| (c.apic_id, c.proximity_domain))
        .collect();
    assert_eq!(cpus, [(0, 0), (1, 0), (2, 1), (3, 1)]);
    let mem: Vec<(u32, u64, u64, bool)> = srat
        .memory
        .iter()
        .map(|m| (m.proximity_domain, m.base, m.length, m.enabled))
        .collect();
    assert_eq!(
        mem,
        [
            (0, 0, 0xa_0000, true),
            (0, 0x10_0000, 0x3ff0_0000, true),
            (1, 0x4000_0000, 0x4000_0000, true),
            (0, 0, 0, false),
        ]
    );
    assert_eq!(distances, [[10, 21], [21, 10]]);
}

#[test]
fn srat_and_slit_equal_qemus_above_4g_with_default_placement_and_hotplug_slots() {
    if !kvm_available("srat_and_slit_above_4g") {
        return;
    }
    // No cpus=: QEMU places vCPUs by socket, hot-pluggable slots (2 of 4 present) too.
    // Node 1 crosses the 3 GiB hole start and continues at 4 GiB; the distances differ by
    // direction.
    let (srat, distances) = same_tables(
        concat!(
            "--smp 2,maxcpus=4,sockets=2,cores=2 -m 4G ",
            "--numa node,mem=1G ",
            "--numa node,mem=3G ",
            "--numa dist,src=0,dst=1,val=20 ",
            "--numa dist,src=1,dst=0,val=30",
        ),
        concat!(
            "-smp 2,maxcpus=4,sockets=2,cores=2 -m 4G ",
            "-object memory-backend-ram,id=m0,size=1G ",
            "-object memory-backend-ram,id=m1,size=3G ",
            "-numa node,memdev=m0 ",
            "-numa node,memdev=m1 ",
            "-numa dist,src=0,dst=1,val=20 ",
            "-numa dist,src=1,dst=0,val=30",
        ),
    );
    let cpus: Vec<u32> = srat.cpus.iter().map(|c| c.proximity_domain).collect();
    assert_eq!(cpus, [0, 0, 1, 1]);
    let mem: Vec<(u32, u64, u64)> = srat
        .memory
        .iter()
        .map(|m| (m.proximity_domain, m.base, m.length))
        .collect();
    assert_eq!(
        mem,
        [
            (0, 0, 0xa_0000),
            (0, 0x10_0000, 0x3ff0_0000),
            (1, 0x4000_0000, 0x8000_0000),
            (1, 0x1_0000_0000, 0x4000_0000),
        ]
    );
    assert_eq!(distances, [[10, 20], [30, 10]]);
}

#[test]
fn numa_layouts_qemu_refuses_get_one_clear_message() {
    let two = [
        "--smp",
        "4",
        "-m",
        "2G",
        "--numa",
        "node,nodeid=0,cpus=0-1,mem=1G",
    ];
    let with = |extra: &[&'static str]| {
        let mut a: Vec<&str> = two.to_vec();
        a.extend_from_slice(extra);
        refused(&a)
    };
    assert_eq!(
        with(&["--numa", "node,nodeid=1,cpus=2-3,mem=512M"]),
        "rvmm: --numa: total memory for NUMA nodes (0x60000000) should equal RAM size -m \
         (0x80000000)\n"
    );
    assert_eq!(
        with(&["--numa", "node,nodeid=1,cpus=1-3,mem=1G"]),
        "rvmm: --numa node,nodeid=1,cpus=1-3,mem=1G: vCPU 1 is already assigned to node 0\n"
    );
    assert_eq!(
        with(&["--numa", "node,nodeid=1,cpus=2-4,mem=1G"]),
        "rvmm: --numa node,nodeid=1,cpus=2-4,mem=1G: CPU index (4) should be smaller than \
         maxcpus (4)\n"
    );
    assert_eq!(
        with(&["--numa", "node,nodeid=2,cpus=2-3,mem=1G"]),
        "rvmm: --numa: node ID missing: 1 (node IDs must run from 0 without gaps)\n"
    );
    assert_eq!(
        with(&[
            "--numa",
            "node,nodeid=1,cpus=2-3,mem=1G",
            "--numa",
            "dist,src=0,dst=1,val=9"
        ]),
        "rvmm: --numa dist,src=0,dst=1,val=9: NUMA distance (9) is invalid, it shouldn't be \
         less than 10\n"
    );
    assert_eq!(
        with(&[
            "--numa",
            "node,nodeid=1,cpus=2-3,mem=1G",
            "--numa",
            "dist,src=1,dst=1,val=20"
        ]),
        "rvmm: --numa dist,src=1,dst=1,val=20: local distance of node 1 should be 10\n"
    );
    assert_eq!(
        with(&["--numa", "node,nodeid=1,cpus=2-3,memdev=m1"]),
        "rvmm: --numa node,nodeid=1,cpus=2-3,memdev=m1: memdev= is not supported; give the \
         node's RAM as mem=SIZE and the backing options on -m\n"
    );
    assert_eq!(
        with(&["--numa", "node,nodeid=1,cpus=2-3,mem=1G,policy=bind"]),
        "rvmm: --numa node,nodeid=1,cpus=2-3,mem=1G,policy=bind: policy=bind needs \
         host-nodes=LIST\n"
    );
}

/// The first node ID this host does not have, and the host's node list as rvmm words it.
fn missing_host_node() -> (u32, String) {
    let online =
        std::fs::read_to_string("/sys/devices/system/node/online").unwrap_or_else(|_| "0".into());
    let online = online.trim().to_string();
    let ids = vmm::util::cpulist::parse_cpulist(&online).unwrap();
    let missing = (0..).find(|i| !ids.contains(i)).unwrap();
    let have = if ids.len() == 1 {
        format!("node {online}")
    } else {
        format!("nodes {online}")
    };
    (missing, have)
}

#[test]
fn host_node_that_does_not_exist_is_refused() {
    if !kvm_available("host_node_that_does_not_exist") {
        return;
    }
    let (missing, have) = missing_host_node();
    let spec = format!("node,cpus=0,mem=256M,host-nodes={missing}");
    assert_eq!(
        refused(&["-m", "256M", "--numa", &spec]),
        format!(
            "rvmm: --numa node,nodeid=0: host-nodes={missing}: host node {missing} does not exist \
             (this host has {have})\n"
        )
    );
}

#[test]
fn host_binding_shows_in_numa_maps() {
    if !kvm_available("host_binding_shows_in_numa_maps") {
        return;
    }
    // Node 0 of the host always exists. 128 MiB per guest node = 32768 pages of 4 KiB.
    let vm = HaltedVm::start(
        &words(concat!(
            "--smp 3 -m 384M,prealloc=on,thp=off ",
            "--numa node,cpus=0,mem=128M,host-nodes=0 ",
            "--numa node,cpus=1,mem=128M,host-nodes=0,policy=interleave ",
            "--numa node,cpus=2,mem=128M,host-nodes=0,policy=preferred",
        )),
        Duration::from_secs(60),
    );
    let maps = vm.proc("numa_maps");
    for policy in ["bind:0", "interleave:0", "prefer:0"] {
        let line = maps
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(policy))
            .unwrap_or_else(|| panic!("no {policy} mapping in numa_maps:\n{maps}"));
        assert!(
            line.contains(" anon=32768 ") && line.contains(" N0=32768 "),
            "{policy}: the guest node's 32768 pages must all be on host node 0: {line}"
        );
    }
}
