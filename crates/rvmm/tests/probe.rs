//! Tier 2: the built-in probe guest on real KVM. rvmm boots it, the probe dumps what every
//! vCPU sees, rvmm decodes it; the same ELF booted by QEMU is the oracle.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn rvmm_view(args: &[&str]) -> Value {
    let mut cmd = rvmm();
    cmd.args(["run", "--json"]).args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rvmm run {args:?} failed: {stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("rvmm run {args:?}: bad JSON ({e}): {stdout}"))
}

fn apic_ids(view: &Value) -> Vec<u64> {
    view["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["apic_id"].as_u64().unwrap())
        .collect()
}

#[test]
fn probe_smp4_prints_the_view_and_exits_0() {
    if !kvm_available("probe_smp4") {
        return;
    }
    let mut cmd = rvmm();
    cmd.args(["run", "--smp", "4"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("vCPUs      4 online (MADT: 4 enabled of 4 slots)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("model name QEMU Virtual CPU version 2.5+"),
        "{stdout}"
    );
    assert!(
        stdout.contains("topology   1 socket x 1 die x 4 cores x 1 thread"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("CPU  APIC"))
        .skip(1)
        .take(4)
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[..2], [i.to_string(), i.to_string()], "row {i}: {row}");
    }
}

#[test]
fn probe_counts_every_vcpu() {
    if !kvm_available("probe_counts") {
        return;
    }
    for n in [1u64, 2, 8] {
        let v = rvmm_view(&["--smp", &n.to_string()]);
        assert_eq!(v["vcpus"], n);
        assert_eq!(v["madt"]["enabled"], n);
        assert_eq!(apic_ids(&v), (0..n).collect::<Vec<_>>());
    }
}

#[test]
fn probe_under_qemu_microvm_decodes_to_the_same_cpus() {
    if !kvm_available("probe_vs_qemu") {
        return;
    }
    let dir = tempdir("probe-vs-qemu");
    let elf = probe_elf(&dir);
    let out = qemu_probe(MICROVM, "4", "host,-arch-capabilities", &elf);
    let log = dir.join("qemu.log");
    std::fs::write(&log, &out.stdout).unwrap();
    let mut dec = rvmm();
    dec.args(["probe", "--json", "--decode"]).arg(&log);
    let d = run_with_timeout(dec, Duration::from_secs(10));
    let (stdout, stderr) = text(&d);
    assert!(
        d.status.success(),
        "decoding QEMU's dump failed: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let qemu_view: Value = serde_json::from_str(&stdout).unwrap();
    let ours = rvmm_view(&["--smp", "4", "--cpu", "host"]);
    assert_eq!(qemu_view["vcpus"], 4);
    assert_eq!(qemu_view["vcpus"], ours["vcpus"]);
    assert_eq!(apic_ids(&qemu_view), apic_ids(&ours));
    assert_eq!(qemu_view["madt"]["enabled"], ours["madt"]["enabled"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--machine pit=on|off`: the probe (which times with the TSC) runs either way and sees the
/// same machine. The same ELF given as `--kernel` (where the default is a PIT) dumps and
/// powers off either way.
#[test]
fn probe_runs_with_and_without_the_pit() {
    if !kvm_available("probe_pit") {
        return;
    }
    let default = rvmm_view(&["--smp", "2"]);
    assert_eq!(default["vcpus"], 2);
    for pit in ["pit=on", "pit=off"] {
        let v = rvmm_view(&["--smp", "2", "--machine", pit]);
        assert_eq!(v, default, "--machine {pit}");
    }
    let dir = tempdir("probe-pit");
    let elf = probe_elf(&dir);
    let elf = elf.to_str().unwrap();
    for machine in [None, Some("pit=off")] {
        let mut cmd = rvmm();
        cmd.args(["run", "--kernel", elf, "--smp", "2"]);
        cmd.args(machine.iter().flat_map(|m| ["--machine", *m]));
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{machine:?}: {stderr}");
        assert!(stdout.contains("PROBE-END"), "{machine:?}: {stdout}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
