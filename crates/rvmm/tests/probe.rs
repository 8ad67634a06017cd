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

/// (cpu, value, sum ok, gap_ms) of a `PROBE-COUNTER cpu=N value=V sum=S gap_ms=G` line.
fn counter_line(l: &str) -> Option<(u32, u64, bool, Option<u64>)> {
    let rest = l.strip_prefix("PROBE-COUNTER cpu=")?;
    let (cpu, rest) = rest.split_once(" value=")?;
    let (value, rest) = rest.split_once(" sum=")?;
    let mut words = rest.split(' ');
    let sum = words.next()? == "ok";
    let gap = words
        .find_map(|w| w.strip_prefix("gap_ms="))
        .and_then(|g| g.parse().ok());
    Some((cpu.parse().ok()?, value.parse().ok()?, sum, gap))
}

/// The counting guest with `dirty=`: 2000 pages/s of a 1 MiB buffer (256 pages, so every
/// page is rewritten, and checked against its previous generation, about every 13 rounds)
/// runs until both vCPUs passed round 40; every line says sum=ok, each vCPU's value climbs,
/// and every line ends with a parseable gap_ms, above 0 once a vCPU has had two rounds.
#[test]
fn probe_counter_dirties_and_checks_pages_and_reports_gaps() {
    if !kvm_available("probe_counter_dirty") {
        return;
    }
    use std::process::Stdio;
    let mut cmd = rvmm();
    cmd.args(["run", "--smp", "2", "--raw", "--append"])
        .arg("mode=counter dirty=2000 dirty-mib=1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn rvmm");
    let rx = stdout_lines(&mut child);
    let start = std::time::Instant::now();
    let mut lines = Vec::new();
    let mut top = [0u64; 2];
    while top.iter().any(|&v| v < 40) && start.elapsed() < Duration::from_secs(120) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some((cpu, value, _, _)) = counter_line(&line) {
                top[cpu as usize] = value;
            }
            lines.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.join("\n");
    assert!(top.iter().all(|&v| v >= 40), "both vCPUs reach 40:\n{all}");
    let counted: Vec<_> = lines.iter().filter_map(|l| counter_line(l)).collect();
    for cpu in 0..2u32 {
        let mine: Vec<_> = counted.iter().filter(|c| c.0 == cpu).collect();
        assert!(mine.len() >= 2, "cpu {cpu} reported twice:\n{all}");
        assert!(
            mine.windows(2).all(|w| w[1].1 > w[0].1),
            "cpu {cpu} climbs:\n{all}"
        );
        assert!(mine.iter().all(|c| c.2), "cpu {cpu} sum=ok:\n{all}");
        assert!(
            mine.iter().all(|c| c.3.is_some()),
            "cpu {cpu} gap_ms on every line:\n{all}"
        );
        assert!(
            mine.iter().filter(|c| c.1 >= 2).all(|c| c.3 > Some(0)),
            "cpu {cpu}: a gap between rounds once there were two:\n{all}"
        );
    }
}

/// A bad `dirty=` or `dirty-mib=` value is one PROBE-ERROR line naming the parameter and
/// the value, then the guest powers off (no counting starts).
#[test]
fn probe_counter_refuses_bad_dirty_values() {
    if !kvm_available("probe_counter_bad_dirty") {
        return;
    }
    for (append, expect) in [
        (
            "mode=counter dirty=abc",
            "PROBE-ERROR bad dirty (0..100000 pages/s) abc",
        ),
        (
            "mode=counter dirty=100001",
            "PROBE-ERROR bad dirty (0..100000 pages/s) 100001",
        ),
        (
            "mode=counter dirty=10 dirty-mib=0",
            "PROBE-ERROR bad dirty-mib (1..1024) 0",
        ),
        (
            "mode=counter dirty=10 dirty-mib=100",
            "PROBE-ERROR bad dirty-mib (every vCPU's buffer must fit the guest RAM) 100",
        ),
    ] {
        let mut cmd = rvmm();
        cmd.args([
            "run", "--smp", "2", "-m", "128", "--raw", "--append", append,
        ]);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "{append}: the guest powers off: {stderr}"
        );
        assert!(stdout.lines().any(|l| l == expect), "{append}:\n{stdout}");
        assert!(
            !stdout.contains("PROBE-COUNTER"),
            "{append}: nothing counted:\n{stdout}"
        );
    }
}
