//! The CPUID table rvmm hands KVM (`rvmm run --dry-run --show-cpuid`) equals, entry for entry
//! and vCPU for vCPU, the table QEMU 7.2 `-M pc -accel kvm` hands KVM_SET_CPUID2 for the same
//! `-smp`/`-cpu` on this host: features after filtering, levels, family/model/stepping, brand,
//! topology and cache leaves. QEMU's table is captured with a small LD_PRELOAD shim
//! (crates/cpu/src/topology/testdata/capture) that records the ioctl's argument; no guest
//! runs. This is where feature bits are proven: on kvm-pvm hosts a guest sees the host's
//! feature bits whatever the table says.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// (vCPU APIC ID) → (function, index) → [flags, eax, ebx, ecx, edx].
type Tables = BTreeMap<u32, BTreeMap<(u32, u32), [u32; 5]>>;

/// Entries QEMU lists that rvmm leaves out on purpose: (function, why). All are all-zero
/// subleaves, which KVM answers with zeros when they are missing anyway.
const QEMU_ONLY_ZERO_LEAVES: &[(u32, &str)] = &[
    (0x12, "SGX enumeration: QEMU lists subleaves 0-2 whenever the level reaches 12H; rvmm offers no SGX"),
    (0x1d, "AMX tile information: listed by QEMU at level 1DH even without AMX"),
    (0x1e, "AMX TMUL information: listed by QEMU at level 1EH even without AMX"),
];

const CASES: &[(&str, &str)] = &[
    ("2", "qemu64"),
    ("4", "kvm64"),
    ("8,sockets=2,cores=2,threads=2", "Haswell"),
    ("6,sockets=1,cores=3,threads=2", "EPYC"),
    ("4,maxcpus=8", "Skylake-Server,+aes,-avx2"),
    ("8,sockets=2,dies=2,cores=2,threads=1", "Cascadelake-Server"),
    ("2", "host,-arch-capabilities"),
];

fn hex(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

fn shim(dir: &Path) -> PathBuf {
    let src = repo().join("crates/cpu/src/topology/testdata/capture/cpuid_shim.c");
    let so = dir.join("cpuid_shim.so");
    let st = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(src)
        .arg("-ldl")
        .status()
        .unwrap();
    assert!(st.success(), "building the capture shim failed");
    so
}

fn qemu_tables(smp: &str, cpu: &str, shim: &Path, out: &Path) -> Tables {
    let _ = std::fs::remove_file(out);
    let mut q = qemu();
    q.args([
        "-M",
        "pc",
        "-accel",
        "kvm",
        "-display",
        "none",
        "-nodefaults",
        "-S",
        "-qmp",
        "stdio",
    ])
    .args(["-smp", smp, "-cpu", cpu])
    .env("CPUID_DUMP", out)
    .env("LD_PRELOAD", shim)
    .stdin(std::process::Stdio::piped());
    q.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = q.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"execute":"qmp_capabilities"}{"execute":"quit"}"#)
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "QEMU did not quit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(out).expect("the shim wrote QEMU's tables");
    let mut t = Tables::new();
    let mut cur = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["vcpu", id] => {
                cur = id.parse().unwrap();
                t.insert(cur, BTreeMap::new());
            }
            [func, idx, flags, a, b, c, d] => {
                t.get_mut(&cur).unwrap().insert(
                    (hex(func), hex(idx)),
                    [hex(flags), hex(a), hex(b), hex(c), hex(d)],
                );
            }
            _ => {}
        }
    }
    t
}

fn rvmm_tables(smp: &str, cpu: &str) -> Tables {
    let mut cmd = rvmm();
    cmd.args([
        "run",
        "--dry-run",
        "--show-cpuid",
        "--smp",
        smp,
        "--cpu",
        cpu,
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut t = Tables::new();
    let mut cur = None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("vCPU ") {
            let apic = rest
                .split("APIC ID ")
                .nth(1)
                .unwrap()
                .split(')')
                .next()
                .unwrap();
            cur = Some(apic.parse().unwrap());
            t.insert(cur.unwrap(), BTreeMap::new());
        } else if let (Some(c), true) = (cur, line.trim_start().starts_with("0x")) {
            let f: Vec<u32> = line.split_whitespace().map(hex).collect();
            t.get_mut(&c)
                .unwrap()
                .insert((f[0], f[1]), [f[2], f[3], f[4], f[5], f[6]]);
        }
    }
    t
}

#[test]
fn kvm_cpuid_tables_equal_qemus() {
    if !kvm_available("cpuid_table_qemu") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rvmm-cpuid-table-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shim = shim(&dir);
    let mut failures = Vec::new();
    for (smp, cpu) in CASES {
        let theirs = qemu_tables(smp, cpu, &shim, &dir.join("qemu.txt"));
        let ours = rvmm_tables(smp, cpu);
        if theirs.keys().collect::<Vec<_>>() != ours.keys().collect::<Vec<_>>() {
            failures.push(format!(
                "{smp} {cpu}: vCPU APIC IDs rvmm {:?} QEMU {:?}",
                ours.keys(),
                theirs.keys()
            ));
            continue;
        }
        for (apic, q) in &theirs {
            let r = &ours[apic];
            for key in q
                .keys()
                .chain(r.keys())
                .collect::<std::collections::BTreeSet<_>>()
            {
                let (a, b) = (r.get(key), q.get(key));
                let allowed = a.is_none()
                    && b.is_some_and(|v| v[1..] == [0; 4])
                    && QEMU_ONLY_ZERO_LEAVES.iter().any(|(f, _)| *f == key.0);
                if a != b && !allowed {
                    failures.push(format!(
                        "--smp {smp} --cpu {cpu}: APIC {apic} leaf {:#x}.{}: rvmm {a:08x?} QEMU {b:08x?}",
                        key.0, key.1
                    ));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
