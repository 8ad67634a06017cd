//! QEMU 7.2 as the oracle for the CPU model tables, their expansion, the host filter and the
//! `-cpu help` listing.
//!
//! - TCG expansion: `qemu-system-x86_64 -machine none -accel tcg -qmp stdio` answers
//!   `query-cpu-model-expansion {"type":"full"}` for every model name. That command loads the
//!   model and runs `x86_cpu_expand_features` but never filters against the accelerator,
//!   so it shows the model definition plus TCG's one instance default (`vme=off`), the
//!   dependency pruning and the automatic levels. Every feature property (with aliases) and
//!   family/model/stepping/model-id/vendor/level/xlevel/xlevel2/min-level/min-xlevel must
//!   equal `expand(.., Accel::Tcg)`.
//! - KVM expansion: the same with `-accel kvm`: KVM's instance defaults (`kvm_default_props`)
//!   and the host's vendor. Needs /dev/kvm.
//! - Host filter: `-M pc -accel kvm -cpu MODEL -S` prints QEMU's "host doesn't support
//!   requested feature" warnings at CPU realize; they must equal `filter()`'s lines for the
//!   same model with this host's KVM_GET_SUPPORTED_CPUID and feature MSRs.
//!
//! A missing qemu-system-x86_64 fails the tests (run scripts/deps.sh). Tests needing
//! /dev/kvm fail without it unless RVMM_SKIP_KVM=1.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{json, Value};
use vmm::cpu::features::accepted_names;
use vmm::cpu::filter::{filter, HostCpuSupport};
use vmm::cpu::models::expand::{expand, Accel, CpuRequest, ExpandedCpu, HostIdentity};
use vmm::cpu::models::list::{entries, help_text, EntryKind};
use vmm::cpu::models::DefaultVersion;

fn qemu_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("qemu-system-x86_64 not found in PATH: run scripts/deps.sh to install QEMU 7.2 (qemu-system-x86)")
        })
}

/// True when the KVM tests should run; panics when /dev/kvm is missing and not skipped.
fn kvm_available() -> bool {
    if std::env::var("RVMM_SKIP_KVM").as_deref() == Ok("1") {
        // Recorded as skipped for scripts/test.sh (as rvmm's tests/common skip() does).
        assert!(
            std::env::var("RVMM_NO_SKIP").as_deref() != Ok("1"),
            "cpu_models_qemu: needs /dev/kvm, and RVMM_NO_SKIP=1"
        );
        eprintln!("SKIPPED: cpu_models_qemu: needs /dev/kvm (RVMM_SKIP_KVM=1)");
        use std::io::Write;
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = f.write_all(b"cpu_models_qemu: needs /dev/kvm (RVMM_SKIP_KVM=1)\n");
        }
        return false;
    }
    assert!(
        std::path::Path::new("/dev/kvm").exists(),
        "/dev/kvm is missing: this test compares with QEMU under KVM (set RVMM_SKIP_KVM=1 to skip)"
    );
    true
}

struct Qmp {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Qmp {
    fn start(args: &[&str]) -> Qmp {
        let mut child = Command::new(qemu_binary())
            .args(args)
            .args(["-qmp", "stdio", "-nographic", "-nodefaults"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qemu-system-x86_64");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut qmp = Qmp {
            child,
            stdin,
            stdout,
        };
        let greeting = qmp.read();
        assert!(greeting.get("QMP").is_some(), "no QMP greeting: {greeting}");
        qmp.execute("qmp_capabilities", json!({}));
        qmp
    }

    fn read(&mut self) -> Value {
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).expect("read QMP");
            assert!(n > 0, "QEMU closed QMP");
            let v: Value = serde_json::from_str(&line).expect("QMP JSON");
            if v.get("event").is_none() {
                return v;
            }
        }
    }

    fn execute(&mut self, cmd: &str, args: Value) -> Value {
        let msg = json!({"execute": cmd, "arguments": args});
        writeln!(self.stdin, "{msg}").unwrap();
        let reply = self.read();
        reply
            .get("return")
            .cloned()
            .unwrap_or_else(|| panic!("{cmd} failed: {reply}"))
    }

    /// Sends `quit` and returns QEMU's stderr.
    fn quit(mut self) -> String {
        // QEMU may already be exiting; its stderr is what matters.
        let _ = writeln!(self.stdin, "{}", json!({"execute": "quit"}));
        let out = self.child.wait_with_output().expect("wait for QEMU");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Every model name `-cpu help` lists except base/host/max.
fn model_names() -> Vec<String> {
    entries()
        .into_iter()
        .filter(|e| e.kind != EntryKind::Special)
        .map(|e| e.name)
        .collect()
}

fn request(model: &str) -> CpuRequest<'_> {
    CpuRequest {
        model,
        changes: &[],
        pmu: None,
        default_version: DefaultVersion::V1,
        dies: 1,
    }
}

/// Differences between QEMU's expansion props and ours, as readable lines.
fn compare(model: &str, props: &Value, ours: &ExpandedCpu) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut check = |key: &str, ours: Value| {
        let theirs = props.get(key).cloned().unwrap_or(Value::Null);
        if theirs != ours {
            diffs.push(format!("{model}: {key}: QEMU {theirs}, ours {ours}"));
        }
    };
    check("vendor", json!(ours.vendor.as_string()));
    check("family", json!(ours.family));
    check("model", json!(ours.model));
    check("stepping", json!(ours.stepping));
    check("model-id", json!(ours.model_id));
    check("level", json!(ours.level));
    check("xlevel", json!(ours.xlevel));
    check("xlevel2", json!(ours.xlevel2));
    for name in accepted_names() {
        check(name, json!(ours.features.has_named(name).unwrap()));
    }
    diffs
}

fn expansion_diffs(accel_arg: &str, accel: Accel<'_>, names: Vec<String>) -> Vec<String> {
    let mut qmp = Qmp::start(&["-machine", "none", "-accel", accel_arg]);
    let mut diffs = Vec::new();
    for name in names {
        let reply = qmp.execute(
            "query-cpu-model-expansion",
            json!({"type": "full", "model": {"name": name}}),
        );
        let props = &reply["model"]["props"];
        let count = props.as_object().map_or(0, |p| p.len());
        assert!(count > 400, "{name}: QEMU returned {count} props: {reply}");
        let ours = expand(&request(&name), accel).unwrap_or_else(|e| panic!("{name}: {e}"));
        diffs.extend(compare(&name, props, &ours));
    }
    qmp.quit();
    diffs
}

#[test]
fn tcg_expansion_matches_qemu_for_every_model() {
    let diffs = expansion_diffs("tcg", Accel::Tcg, model_names());
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// This host as QEMU sees it: KVM's supported CPUID and feature MSRs, and the raw CPUID
/// identity, probed the way `rvmm run` probes them.
fn host_support() -> (HostCpuSupport, HostIdentity) {
    let host = vmm::host::KvmHost::open().expect("open /dev/kvm");
    (host.cpu_support, host.identity)
}

#[test]
fn kvm_expansion_matches_qemu_for_every_model_and_host() {
    if !kvm_available() {
        return;
    }
    let (host, identity) = host_support();
    let mut names = model_names();
    names.extend(["host".to_string(), "max".to_string()]);
    let accel = Accel::Kvm {
        host: &host,
        identity: &identity,
    };
    let diffs = expansion_diffs("kvm", accel, names);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// Our warning lines for `--cpu spec` on this host, as QEMU prints them.
fn our_warnings(spec: &str, host: &HostCpuSupport, identity: &HostIdentity) -> Vec<String> {
    let cfg = vmm::config::cpu::parse_cpu(spec).unwrap();
    let cpu = expand(
        &cfg.request(DefaultVersion::V1, 1),
        Accel::Kvm { host, identity },
    )
    .unwrap();
    let result = filter(&cpu.features, host);
    cpu.dependency_warnings
        .iter()
        .chain(result.warnings.iter())
        .map(|w| format!("qemu-system-x86_64: warning: {w}"))
        .collect()
}

#[test]
fn kvm_filter_warnings_match_qemu() {
    if !kvm_available() {
        return;
    }
    let (host, identity) = host_support();
    let specs = [
        "qemu64",
        "kvm64",
        "Haswell",
        "Haswell-noTSX-IBRS",
        "Skylake-Server",
        // Models with arch-capabilities get `-arch-capabilities`: QEMU 7.2 aborts setting
        // MSR 0x10a on hosts whose KVM lists the MSR but refuses the model's value (kvm-pvm
        // on AMD), as with `-cpu host` below.
        "Cascadelake-Server-v2,-arch-capabilities",
        "Icelake-Server",
        "Cooperlake,-arch-capabilities",
        "EPYC",
        "EPYC-Milan",
        "Opteron_G5",
        "Snowridge",
        "Haswell,+vmx-ept,-avx2",
        "Skylake-Client,vmx=on,pmu=on",
        "host,-arch-capabilities",
        "host,-arch-capabilities,+hle,+pku",
        "max,-arch-capabilities,-avx2",
    ];
    let mut diffs = Vec::new();
    for spec in specs {
        let qemu = Qmp::start(&[
            "-M", "pc", "-accel", "kvm", "-cpu", spec, "-display", "none", "-S",
        ]);
        let stderr = qemu.quit();
        let theirs: Vec<String> = stderr
            .lines()
            .filter(|l| l.contains("warning:"))
            .map(String::from)
            .collect();
        let ours = our_warnings(spec, &host, &identity);
        eprintln!(
            "--cpu {spec}: QEMU printed {} warnings, we {}",
            theirs.len(),
            ours.len()
        );
        if spec.contains("+vmx-ept") {
            // Host-independent: vmx-ept needs vmx, which Haswell lacks; proves stderr is read.
            assert!(
                theirs
                    .iter()
                    .any(|l| l.contains("MSR(48BH).vmx-ept [bit 1]")),
                "QEMU's dependency warning missing from {theirs:?}"
            );
        }
        if theirs != ours {
            diffs.push(format!(
                "--cpu {spec}:\nQEMU:\n{}\nours:\n{}",
                theirs.join("\n"),
                ours.join("\n")
            ));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n\n"));
}

#[test]
fn cpu_help_matches_qemu() {
    let out = Command::new(qemu_binary())
        .args(["-cpu", "help"])
        .output()
        .expect("run qemu-system-x86_64 -cpu help");
    let theirs = String::from_utf8_lossy(&out.stdout);
    let ours = help_text();
    let diffs: Vec<String> = theirs
        .lines()
        .zip(ours.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("QEMU: {a:?}\nours: {b:?}"))
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert_eq!(theirs.lines().count(), ours.lines().count());
}
