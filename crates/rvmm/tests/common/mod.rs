//! Shared helpers for rvmm's integration tests: running the real binary, requiring /dev/kvm
//! (or skipping only when RVMM_SKIP_KVM=1), recording skipped tests, checking that a failure
//! was an exit and not a crash, finding QEMU and the cached guest image.
#![allow(dead_code)]

pub mod netns;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The rvmm binary under test.
pub fn rvmm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvmm"));
    c.stdin(Stdio::null());
    c
}

/// The test venv's python (scripts/deps.sh builds it with `package`), or a failure telling
/// how to get it.
pub fn venv_python(package: &str) -> PathBuf {
    let cache = std::env::var_os("RVMM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache"));
    let python = cache.join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/deps.sh (it installs the {package} Python package)",
        python.display()
    );
    python
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Where skipped tests are recorded, one `test: reason` line each; scripts/test.sh empties it
/// before the run and prints it after (`cargo test` itself can only say "ok").
pub fn skip_log() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt")
}

/// Records that `test` did not run its assertions because of `reason`, so that it is reported
/// as skipped rather than counted as passed: a `SKIPPED: test: reason` line on stderr (shown
/// with --nocapture) and a line in `skip_log()`. With RVMM_NO_SKIP=1 a skip is a failure (a
/// machine meant to run everything must not pass by skipping). Call it as
/// `return skip(test, reason);`.
pub fn skip(test: &str, reason: &str) {
    assert!(
        std::env::var("RVMM_NO_SKIP").as_deref() != Ok("1"),
        "{test}: cannot run here ({reason}) and RVMM_NO_SKIP=1"
    );
    eprintln!("SKIPPED: {test}: {reason}");
    use std::io::Write;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skip_log());
    if let Ok(mut log) = log {
        // One write per line: concurrent tests append whole lines.
        let _ = log.write_all(format!("{test}: {reason}\n").as_bytes());
    }
}

/// The exit code and stderr of a run that had to fail cleanly: it ended by itself (a status
/// code, not a signal: a panic under `panic = "abort"` is SIGABRT, a hang killed by
/// `run_with_timeout` is SIGKILL) with a non-zero code, and printed no panic message.
pub fn failed_cleanly(out: &Output, what: &str) -> (i32, String) {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let Some(code) = out.status.code() else {
        panic!(
            "{what}: killed by signal {:?} instead of exiting with an error: {stderr}",
            out.status.signal()
        );
    };
    assert_ne!(code, 0, "{what} should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
    (code, stderr)
}

/// True when tests that need /dev/kvm should run; panics when it is missing and the user did
/// not ask to skip (RVMM_SKIP_KVM=1, then the test is recorded as skipped).
pub fn kvm_available(test: &str) -> bool {
    if std::env::var("RVMM_SKIP_KVM").as_deref() == Ok("1") {
        skip(test, "needs /dev/kvm (RVMM_SKIP_KVM=1)");
        return false;
    }
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    assert!(
        ok,
        "{test}: /dev/kvm is missing or not accessible; set RVMM_SKIP_KVM=1 to skip KVM tests"
    );
    true
}

/// True when the host's KVM is kvm-pvm (software nested virtualization), where Linux cannot
/// boot past its early log.
pub fn is_kvm_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// qemu-system-x86_64, which scripts/deps.sh installs; panics with the fix if absent.
pub fn qemu() -> Command {
    let path = "/usr/bin/qemu-system-x86_64";
    assert!(
        Path::new(path).exists(),
        "qemu-system-x86_64 is missing: run scripts/deps.sh"
    );
    let mut c = Command::new(path);
    c.stdin(Stdio::null());
    c
}

/// QEMU as a QMP oracle without a guest: `qemu -machine none EXTRA -qmp stdio`, given
/// `qmp_capabilities`, then each of `requests` (a command and its arguments), then `quit`.
/// Returns QEMU's answer (`{"return": ...}` or `{"error": ...}`) to each request, in order;
/// panics with QEMU's output if it answered fewer.
pub fn qemu_qmp(
    extra: &[&str],
    requests: &[(&str, Option<serde_json::Value>)],
) -> Vec<serde_json::Value> {
    use std::io::Write as _;
    let mut input = String::from("{\"execute\":\"qmp_capabilities\"}\n");
    for (cmd, args) in requests {
        let mut r = serde_json::json!({ "execute": cmd });
        if let Some(a) = args {
            r["arguments"] = a.clone();
        }
        input.push_str(&format!("{r}\n"));
    }
    input.push_str("{\"execute\":\"quit\"}\n");
    let mut child = qemu()
        .args(["-machine", "none"])
        .args(extra)
        .args(["-qmp", "stdio", "-nodefaults", "-display", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("return").is_some() || v.get("error").is_some())
        .skip(1) // qmp_capabilities
        .take(requests.len())
        .collect();
    assert_eq!(
        answers.len(),
        requests.len(),
        "QEMU answered {answers:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    answers
}

/// Runs a command with a time limit, returning its output (stdout and stderr).
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let start = Instant::now();
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || read_all(out_pipe));
    let err_t = std::thread::spawn(move || read_all(err_pipe));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn read_all(mut r: impl std::io::Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The cached guest image built by scripts/guest-image.sh (bzImage, vmlinux, initramfs).
pub struct GuestImage {
    pub bzimage: PathBuf,
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
}

pub fn guest_image() -> GuestImage {
    let out = Command::new(repo().join("scripts/guest-image.sh"))
        .arg("--print-paths")
        .output()
        .expect("run scripts/guest-image.sh");
    assert!(
        out.status.success(),
        "scripts/guest-image.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("guest-image.sh printed no {key}: {text}"))
    };
    GuestImage {
        bzimage: get("KERNEL_BZIMAGE"),
        vmlinux: get("KERNEL_VMLINUX"),
        initramfs: get("INITRAMFS"),
    }
}

/// `child`'s stdout (piped) line by line as it comes, from a reader thread that ends with it.
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `cmd` until a line of its stdout contains `needle` (or `limit` passes), then kills it;
/// returns the stdout read so far. For VMMs that keep running after the part we test (QEMU
/// stays paused after a KVM internal error).
pub fn run_until(mut cmd: Command, needle: &str, limit: Duration) -> String {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    let rx = stdout_lines(&mut child);
    let start = Instant::now();
    let mut out = String::new();
    while start.elapsed() < limit {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
                if line.contains(needle) {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

/// QEMU's microvm as the probe guest's oracle (the command DESIGN.md gives).
pub const MICROVM: &str = "microvm,x-option-roms=off,isa-serial=on,rtc=on";

/// Writes the built-in probe ELF into `dir` and returns its path.
pub fn probe_elf(dir: &Path) -> PathBuf {
    let elf = dir.join("probe.elf");
    let st = rvmm().args(["probe", "--elf"]).arg(&elf).status().unwrap();
    assert!(st.success(), "rvmm probe --elf failed");
    elf
}

/// Boots the probe ELF under QEMU with KVM (`machine`, `-smp`, `-cpu`, 128 MiB) and returns
/// its serial output (the dump).
pub fn qemu_probe(machine: &str, smp: &str, cpu: &str, elf: &Path) -> Output {
    let mut q = qemu();
    q.args([
        "-M",
        machine,
        "-nodefaults",
        "-no-user-config",
        "-enable-kvm",
    ])
    .args(["-cpu", cpu, "-smp", smp, "-m", "128", "-kernel"])
    .arg(elf)
    .args([
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-serial",
        "stdio",
        "-display",
        "none",
    ]);
    run_with_timeout(q, Duration::from_secs(120))
}

/// A fresh temporary directory for one test.
pub fn tempdir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("rvmm-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
