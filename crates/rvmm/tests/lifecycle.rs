//! How a VM ends: guest reboot and poweroff exit 0, a triple fault exits 1 with the reason and
//! registers, SIGTERM/SIGINT stop the VM cleanly, and on a terminal Ctrl-A x quits and the
//! terminal's mode is restored.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn guest_reboot_and_poweroff_exit_0() {
    if !kvm_available("guest_reboot") {
        return;
    }
    for (mode, line) in [("mode=reset", "PROBE-RESET"), ("mode=hello", "PROBE-HELLO")] {
        let mut cmd = rvmm();
        cmd.args(["run", "--append", mode]);
        let out = run_with_timeout(cmd, Duration::from_secs(30));
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{mode}: {stderr}");
        assert!(stdout.contains(line), "{mode}: {stdout}");
    }
}

#[test]
fn triple_fault_exits_1_with_registers() {
    if !kvm_available("triple_fault") {
        return;
    }
    let mut cmd = rvmm();
    cmd.args(["run", "--append", "mode=triplefault"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rvmm: vCPU 0: triple fault (KVM_EXIT_SHUTDOWN)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("RIP=") && stderr.contains("IDT=0000000000000000 0000"),
        "{stderr}"
    );
}

/// Starts a halted probe guest, waits until it is up, sends `signal`, expects a clean exit.
fn stop_with(signal: i32, name: &str) {
    let mut child = rvmm()
        .args(["run", "--smp", "2", "--append", "mode=halt"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // The decoded view appears once the dump is complete; the guest then halts forever.
    let mut seen = Vec::new();
    let start = Instant::now();
    while !String::from_utf8_lossy(&seen).contains("CPU  APIC") {
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut stdout, &mut buf).unwrap();
        assert!(
            n > 0 && start.elapsed() < Duration::from_secs(30),
            "no view: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
    assert!(
        stderr.contains(&format!("rvmm: terminating on signal {signal}")),
        "{name}: {stderr}"
    );
}

#[test]
fn sigterm_and_sigint_stop_the_vm_cleanly() {
    if !kvm_available("signals") {
        return;
    }
    stop_with(libc::SIGTERM, "SIGTERM");
    stop_with(libc::SIGINT, "SIGINT");
}

/// On a terminal: raw mode while the guest runs, Ctrl-A x quits with status 0, and the
/// terminal's attributes afterwards equal those before (checked through a real pty).
#[test]
fn ctrl_a_x_quits_and_restores_the_terminal() {
    if !kvm_available("ctrl_a_x") {
        return;
    }
    let script = r#"
import os, pty, sys, termios, time
rvmm = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(rvmm, [rvmm, "run", "--append", "mode=halt"])
before = termios.tcgetattr(fd)
out = b""
deadline = time.time() + 30
raw_seen = False
while b"PROBE-HALT" not in out and b"CPU  APIC" not in out and time.time() < deadline:
    try:
        out += os.read(fd, 4096)
    except OSError:
        break
during = termios.tcgetattr(fd)
raw_seen = (during[3] & termios.ICANON) == 0 and (during[3] & termios.ECHO) == 0
os.write(fd, b"\x01x")
status = None
while status is None and time.time() < deadline + 10:
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = st
    else:
        time.sleep(0.05)
if status is None:
    os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
after = termios.tcgetattr(fd)
print("raw_during", raw_seen)
print("exit", os.waitstatus_to_exitcode(status))
print("restored", before == after)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_rvmm"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("raw_during True"), "{stdout}");
    assert!(stdout.contains("exit 0"), "{stdout}");
    assert!(stdout.contains("restored True"), "{stdout}");
}
