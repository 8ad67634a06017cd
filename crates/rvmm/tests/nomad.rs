//! rvmm as `qemu-system-x86_64` (a symlink) under Nomad's qemu task driver, replayed
//! exactly: its version check (the regex `version (\d[\.\d+]+)` on `--version`), its
//! command line (`-machine type=pc,accel=kvm -name ID -m 512M -drive file=IMG,if=virtio
//! -nographic -monitor unix:SOCK,server=on,wait=off -enable-kvm -smp N` plus the task's
//! args), and its graceful stop (`system_powerdown\n` written to the monitor socket). Also
//! the refusals, the human monitor's commands, and -daemonize with -pidfile.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{kvm_available, probe_elf, tempdir};

/// A temp dir holding `qemu-system-x86_64` → the rvmm under test, and the probe ELF.
struct Qemu {
    dir: PathBuf,
    bin: PathBuf,
}

impl Qemu {
    fn new(tag: &str) -> Qemu {
        let dir = tempdir(tag);
        let bin = dir.join("qemu-system-x86_64");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rvmm"), &bin).unwrap();
        Qemu { dir, bin }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.stdin(Stdio::null()).env("XDG_RUNTIME_DIR", &self.dir);
        c
    }

    fn elf(&self) -> PathBuf {
        probe_elf(&self.dir)
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Nomad's `version (\d[\.\d+]+)`, by hand: the first "version " followed by a digit, then
/// as many of '.', digits and '+' as follow.
fn nomad_version(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(at) = rest.find("version ") {
        let tail = &rest[at + "version ".len()..];
        if tail.starts_with(|c: char| c.is_ascii_digit()) {
            let len = tail
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
                .unwrap_or(tail.len());
            // The regex needs at least one character after the first digit.
            if len >= 2 {
                return Some(tail[..len].to_string());
            }
        }
        rest = &rest[at + 1..];
    }
    None
}

/// stdout lines as they come, from a reader thread.
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(child: &mut Child) -> Lines {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Lines(lines)
    }

    fn wait_for(&self, prefix: &str, limit: Duration) {
        let start = Instant::now();
        while !self.0.lock().unwrap().iter().any(|l| l.starts_with(prefix)) {
            assert!(
                start.elapsed() < limit,
                "no {prefix:?} after {limit:?}; output:\n{}",
                self.0.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Waits for `child` to end within `limit` (killing it otherwise); its exit code.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_socket(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while UnixStream::connect(path).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!(
                "exited ({status}) before {} appeared:\n{err}",
                path.display()
            );
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nomad_version_check() {
    let q = Qemu::new("nomad-version");
    for flag in ["--version", "-version"] {
        let out = q.command().arg(flag).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            format!(
                "QEMU emulator version 7.2.0 (rvmm {})",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(nomad_version(&text).as_deref(), Some("7.2.0"));
    }
    // rvmm's own --version says the same.
    let out = common::rvmm().arg("--version").output().unwrap();
    assert_eq!(
        nomad_version(&String::from_utf8(out.stdout).unwrap()).as_deref(),
        Some("7.2.0")
    );
    // The hand regex is the regex.
    assert_eq!(
        nomad_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg)").as_deref(),
        Some("7.2.22")
    );
    assert_eq!(nomad_version("version x version 5"), None);
}

/// Nomad's command line for a task with `image_path = IMG`, `accelerator = "kvm"`,
/// `graceful_shutdown = true`, 512 MiB, 2 cores and `args = ["-kernel", ELF, "-append",
/// "mode=halt"]`; then its stop.
#[test]
fn nomad_replay() {
    if !kvm_available("nomad_replay") {
        return;
    }
    let q = Qemu::new("nomad-replay");
    let elf = q.elf();
    let img = q.dir.join("disk.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let monitor = q.dir.join("qemu-monitor.sock");
    let mut child = q
        .command()
        .args(["-machine", "type=pc,accel=kvm", "-name", "task-1a2b3c4d"])
        .args(["-m", "512M", "-drive"])
        .arg(format!("file={},if=virtio", img.display()))
        .args(["-nographic", "-monitor"])
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .args(["-enable-kvm", "-smp", "2", "-kernel"])
        .arg(&elf)
        .args(["-append", "mode=halt"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::follow(&mut child);
    lines.wait_for("PROBE-HALT cpus=2", Duration::from_secs(60));
    // As Nomad's sendQemuShutdown: connect, write the line, close.
    let mut s = UnixStream::connect(&monitor).unwrap();
    s.write_all(b"system_powerdown\n").unwrap();
    drop(s);
    lines.wait_for("PROBE-POWERBUTTON", Duration::from_secs(10));
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
    assert!(!monitor.exists(), "the monitor socket is removed at exit");
}

fn refused(q: &Qemu, args: &[&str]) -> String {
    let out = q.command().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn unsupported_options_are_named() {
    let q = Qemu::new("nomad-refusals");
    for option in ["usb", "snapshot", "S", "boot", "vnc", "chardev", "object"] {
        let mut args = vec![format!("-{option}")];
        if option != "usb" && option != "snapshot" && option != "S" {
            args.push("x".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(
            refused(&q, &args),
            format!("qemu-system-x86_64: -{option}: rvmm does not emulate this option\n")
        );
    }
    assert_eq!(
        refused(&q, &["-machine", "type=pc,accel=tcg"]),
        "qemu-system-x86_64: -machine type=pc,accel=tcg: accel=tcg: rvmm is KVM-only (no TCG \
         or other accelerator); use accel=kvm\n"
    );
    assert!(refused(&q, &["-accel", "tcg"]).contains("rvmm is KVM-only"));
    assert_eq!(
        refused(&q, &["-device", "e1000"]),
        "qemu-system-x86_64: -device e1000: rvmm does not emulate this device\n"
    );
    assert_eq!(
        refused(&q, &["-m"]),
        "qemu-system-x86_64: -m: requires an argument\n"
    );
    assert!(refused(&q, &["-drive", "file=/x,if=ide"]).contains("if=ide"));
    // Values go through rvmm's own parsers.
    assert!(refused(&q, &["-smp", "banana"]).starts_with("qemu-system-x86_64: "));
}

/// A human monitor client: reads up to the next prompt.
struct Hmp {
    stream: UnixStream,
}

impl Hmp {
    fn connect(path: &Path) -> (Hmp, String) {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut h = Hmp { stream };
        let banner = h.until_prompt();
        (h, banner)
    }

    fn until_prompt(&mut self) -> String {
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while !got.ends_with(b"(qemu) ") {
            match self.stream.read(&mut b) {
                Ok(1) => got.push(b[0]),
                _ => break,
            }
        }
        String::from_utf8(got).unwrap()
    }

    /// The command's answer: the lines between its echo and the prompt.
    fn run(&mut self, line: &str) -> String {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let text = self.until_prompt();
        let echo = format!("{line}\r\n");
        assert!(text.starts_with(&echo), "{text:?}");
        text[echo.len()..text.len() - "(qemu) ".len()].to_string()
    }
}

#[test]
fn hmp_commands() {
    if !kvm_available("hmp_commands") {
        return;
    }
    let q = Qemu::new("nomad-hmp");
    let elf = q.elf();
    let monitor = q.dir.join("m.sock");
    let mut child = q
        .command()
        .args(["-M", "microvm", "-enable-kvm", "-smp", "2", "-m", "64M"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-vga",
            "none",
        ])
        .args(["-serial", "stdio", "-no-reboot", "-monitor"])
        .arg(format!("unix:{},server,nowait", monitor.display()))
        .arg("-kernel")
        .arg(&elf)
        .args(["-append", "mode=halt"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::follow(&mut child);
    wait_socket(&monitor, &mut child);
    lines.wait_for("PROBE-HALT", Duration::from_secs(60));
    let (mut a, banner) = Hmp::connect(&monitor);
    assert_eq!(
        banner,
        "QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) "
    );
    assert_eq!(a.run("info status"), "VM status: running\r\n");
    let cpus = a.run("info cpus");
    let cpu_lines: Vec<&str> = cpus.lines().collect();
    assert_eq!(cpu_lines.len(), 2, "{cpus:?}");
    for (i, line) in cpu_lines.iter().enumerate() {
        let mark = if i == 0 { '*' } else { ' ' };
        let prefix = format!("{mark} CPU #{i}: thread_id=");
        assert!(line.starts_with(&prefix), "{line:?}");
        let tid: i32 = line[prefix.len()..].trim_end().parse().unwrap();
        assert!(Path::new(&format!("/proc/{}/task/{tid}", child.id())).exists());
    }
    // A second client at the same time; stop in one, seen in the other.
    let (mut b, _) = Hmp::connect(&monitor);
    assert_eq!(b.run("stop"), "");
    assert_eq!(a.run("info status"), "VM status: paused\r\n");
    assert_eq!(a.run("cont"), "");
    assert_eq!(b.run("info status"), "VM status: running\r\n");
    assert_eq!(a.run("frobnicate now"), "unknown command: 'frobnicate'\r\n");
    assert_eq!(
        a.run("info registers"),
        "unknown command: 'info registers'\r\n"
    );
    assert_eq!(
        a.run("stop x"),
        "stop|s: extraneous characters at the end of line\r\nTry \"help stop\" for more information\r\n"
    );
    assert_eq!(a.run(""), "");
    assert!(a.run("help").contains("system_powerdown"));
    // A client going away leaves the VM running.
    drop(b);
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none());
    assert_eq!(a.run("info status"), "VM status: running\r\n");
    a.stream.write_all(b"quit\n").unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
}

/// -daemonize: the parent exits 0 once the VM runs and its sockets listen; the daemon
/// writes -pidfile, answers on its monitor, and removes the pidfile when it ends.
#[test]
fn daemonize_and_pidfile() {
    if !kvm_available("daemonize_and_pidfile") {
        return;
    }
    let q = Qemu::new("nomad-daemon");
    let elf = q.elf();
    let monitor = q.dir.join("m.sock");
    let pidfile = q.dir.join("vm.pid");
    let start = Instant::now();
    let out = q
        .command()
        .args(["-M", "pc", "-enable-kvm", "-m", "64M", "-display", "none"])
        .args(["-serial", "none", "-daemonize", "-pidfile"])
        .arg(&pidfile)
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .arg("-kernel")
        .arg(&elf)
        .args(["-append", "mode=halt"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    // The parent returned: the daemon's socket and pidfile are already there.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Running (not gone, not a zombie nobody has reaped yet).
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
            .unwrap_or(false)
    };
    assert!(alive(pid));
    let (mut h, _) = Hmp::connect(&monitor);
    assert_eq!(h.run("info status"), "VM status: running\r\n");
    // Its own session, away from the test's terminal.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "session id is its own pid");
    h.stream.write_all(b"quit\n").unwrap();
    let start = Instant::now();
    while alive(pid) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the daemon did not end on quit");
    assert!(!pidfile.exists(), "the pidfile is removed at exit");
    // -nographic puts the console on stdio: not with -daemonize (QEMU's rule).
    let out = q
        .command()
        .args(["-daemonize", "-nographic"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "qemu-system-x86_64: -nographic cannot be used with -daemonize\n"
    );
}

/// The oracle: the same probe, command and monitor line under QEMU's microvm (its power
/// button is the Generic Event Device's power-down event) give the same lines, and QEMU
/// too exits 0 on the guest's S5.
#[test]
fn powerbutton_same_under_qemu_microvm() {
    if !kvm_available("powerbutton_same_under_qemu_microvm") {
        return;
    }
    let q = Qemu::new("nomad-oracle");
    let elf = q.elf();
    let mut outputs = Vec::new();
    for (name, mut cmd) in [("qemu", common::qemu()), ("rvmm", q.command())] {
        let monitor = q.dir.join(format!("{name}.sock"));
        let _ = std::fs::remove_file(&monitor);
        let mut child = cmd
            .args(["-M", "microvm", "-enable-kvm", "-smp", "2", "-m", "128M"])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-serial", "stdio", "-monitor"])
            .arg(format!("unix:{},server=on,wait=off", monitor.display()))
            .arg("-kernel")
            .arg(&elf)
            .args(["-append", "mode=halt"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Lines::follow(&mut child);
        lines.wait_for("PROBE-HALT", Duration::from_secs(60));
        let mut s = UnixStream::connect(&monitor).unwrap();
        s.write_all(b"system_powerdown\n").unwrap();
        lines.wait_for("PROBE-POWERBUTTON", Duration::from_secs(10));
        assert_eq!(
            wait_exit(&mut child, Duration::from_secs(10)),
            Some(0),
            "{name}"
        );
        let tail: Vec<String> = lines
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("PROBE-HALT") || l.starts_with("PROBE-POWERBUTTON"))
            .cloned()
            .collect();
        outputs.push(tail);
    }
    assert_eq!(outputs[0], ["PROBE-HALT cpus=2", "PROBE-POWERBUTTON"]);
    assert_eq!(outputs[0], outputs[1]);
}

/// Starts `cmd` with a monitor at `monitor`, waits for `ready`, presses the power button
/// through the monitor (as Nomad stops a task) and returns the exit code and the lines.
fn powerdown(mut cmd: Command, monitor: &Path, ready: &str) -> (Option<i32>, Vec<String>) {
    let _ = std::fs::remove_file(monitor);
    let mut child = cmd
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Lines::follow(&mut child);
    lines.wait_for(ready, Duration::from_secs(60));
    let mut s = UnixStream::connect(monitor).unwrap();
    s.write_all(b"system_powerdown\n").unwrap();
    // Kept open until the guest answers: QEMU may see the hang-up before the line and drop
    // it (nomad_replay closes at once, as Nomad does, against rvmm).
    lines.wait_for("PROBE-POWERBUTTON", Duration::from_secs(10));
    drop(s);
    let code = wait_exit(&mut child, Duration::from_secs(10));
    let out = lines.0.lock().unwrap().clone();
    (code, out)
}

/// Every mode that runs until stopped acts on the power button as mode=halt does (the
/// probe's power_poll): `system_powerdown` ends mode=counter, busy, load and hotplug with
/// PROBE-POWERBUTTON and exit 0, on pc (PM1's PWRBTN_STS) and on microvm (the GED's
/// event), where QEMU does the same for counter and busy.
#[test]
fn powerbutton_ends_every_running_mode() {
    if !kvm_available("powerbutton_ends_every_running_mode") {
        return;
    }
    let q = Qemu::new("nomad-modes");
    let elf = q.elf();
    let cases = [
        ("pc", "2", "mode=counter", "PROBE-COUNTER cpu=1 "),
        ("pc", "1", "mode=busy", "PROBE-BUSY cpus=1"),
        ("pc", "2", "mode=load duty=20", "PROBE-LOAD cpus=2"),
        ("pc", "2", "mode=hotplug", "PROBE-HOTPLUG ready cpus=2"),
        ("microvm", "2", "mode=counter", "PROBE-COUNTER cpu=1 "),
        ("microvm", "1", "mode=busy", "PROBE-BUSY cpus=1"),
    ];
    for (machine, smp, append, ready) in cases {
        let mut runners = vec![("rvmm", q.command())];
        if machine == "microvm" {
            runners.push(("qemu", common::qemu()));
        }
        for (name, mut cmd) in runners {
            cmd.args(["-M", machine, "-enable-kvm", "-smp", smp, "-m", "128M"])
                .args(["-nodefaults", "-no-user-config", "-display", "none"])
                .args(["-serial", "stdio", "-kernel"])
                .arg(&elf)
                .args(["-append", append]);
            let what = format!("{name} -M {machine} {append}");
            eprintln!("{what}"); // (shown with a failure: which case it was)
            let monitor = q.dir.join(format!("{name}.sock"));
            let (code, lines) = powerdown(cmd, &monitor, ready);
            assert_eq!(code, Some(0), "{what}:\n{}", lines.join("\n"));
            assert_eq!(
                lines.iter().filter(|l| *l == "PROBE-POWERBUTTON").count(),
                1,
                "{what}"
            );
            assert!(
                !lines.iter().any(|l| l.starts_with("PROBE-ERROR")),
                "{what}:\n{}",
                lines.join("\n")
            );
        }
    }
}

/// `-serial none` sends the console nowhere; a daemon that fails before the VM runs makes
/// its parent fail with the reason on stderr.
#[test]
fn serial_none_and_failed_daemon() {
    if !kvm_available("serial_none_and_failed_daemon") {
        return;
    }
    let q = Qemu::new("nomad-serial");
    let elf = q.elf();
    let hello = |serial: &str| {
        q.command()
            .args(["-M", "microvm", "-m", "64M", "-serial", serial, "-kernel"])
            .arg(&elf)
            .args(["-append", "mode=hello"])
            .output()
            .unwrap()
    };
    let out = hello("stdio");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBE-HELLO"));
    let out = hello("none");
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let missing = q.dir.join("missing.elf");
    let out = q
        .command()
        .args(["-display", "none", "-daemonize", "-kernel"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("qemu-system-x86_64: ") && err.contains("missing.elf"),
        "{err}"
    );
}
