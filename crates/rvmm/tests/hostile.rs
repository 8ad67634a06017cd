//! A hostile guest cannot wedge rvmm. The probe's `mode=hostile` (guest/probe/hostile.c)
//! floods the console, storms the APs with INIT/SIPI, reads and writes every I/O port and
//! the MMIO holes with random values and hammers the PM/reset registers, then prints
//! forever. With its stdout a pipe nobody reads (the console buffer full, guest output
//! dropped) and with stdout drained, rvmm answers QMP `query-status` all along, never
//! panics, and ends on SIGTERM within a few seconds with status 0.
//!
//! These are hang checks, not benchmarks: the deadlines are generous.
//!
//! Also here, the other device a guest can end rvmm with: isa-debug-exit (port 0xf4), on
//! for the probe by default and off with `--machine debug-exit=off`, exiting with QEMU's
//! status `(value << 1) | 1`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::vm::{test_dir, TestClient};
use common::{kvm_available, run_with_timeout, rvmm, text};
use serde_json::json;

/// How long rvmm may take to end after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A shared, growing copy of a pipe's text.
type Text = Arc<Mutex<String>>;

fn read_into(pipe: impl Read + Send + 'static) -> Text {
    let text: Text = Arc::default();
    let t = text.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            t.lock().unwrap().push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
    text
}

/// `rvmm run --smp 2 --append mode=hostile --raw --qmp ...`; stderr is always read.
struct HostileVm {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    stderr: Text,
}

impl HostileVm {
    fn start(tag: &str) -> (HostileVm, ChildStdout) {
        Self::start_with(tag, true)
    }

    /// As [`HostileVm::start`]; without `raw`, rvmm prints what it captured once the VM ends.
    fn start_with(tag: &str, raw: bool) -> (HostileVm, ChildStdout) {
        let dir = test_dir(tag);
        let socket = dir.join("vm.qmp");
        let mut cmd = rvmm();
        cmd.args(["run", "--smp", "2", "--append", "mode=hostile"]);
        if raw {
            cmd.arg("--raw");
        }
        cmd.arg("--qmp")
            .arg(format!("unix:{}", socket.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn rvmm run");
        let stdout = child.stdout.take().unwrap();
        let stderr = read_into(child.stderr.take().unwrap());
        let mut vm = HostileVm {
            child,
            dir,
            socket,
            stderr,
        };
        vm.wait_socket();
        (vm, stdout)
    }

    fn wait_socket(&mut self) {
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("rvmm exited ({status}) early:\n{}", self.stderr());
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no QMP socket");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn client(&self) -> TestClient {
        client(&self.socket)
    }

    /// Asserts rvmm is alive and says it is running (the client has a 20 s read timeout).
    fn check_running(&mut self, c: &mut TestClient) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "rvmm ended while the guest misbehaved:\n{}",
            self.stderr()
        );
        assert_eq!(
            c.ok("query-status", None),
            json!({"status": "running", "singlestep": false, "running": true})
        );
    }

    /// SIGTERM, then rvmm must end by itself within [`STOP_LIMIT`], with status 0 and no
    /// panic; returns its stderr.
    fn terminate(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > STOP_LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "rvmm did not end within {STOP_LIMIT:?} of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The stderr reader sees the pipe's end shortly after the exit.
        std::thread::sleep(Duration::from_millis(200));
        let stderr = self.stderr();
        assert!(status.success(), "rvmm after SIGTERM: {status:?}\n{stderr}");
        assert!(!stderr.contains("panicked"), "rvmm panicked:\n{stderr}");
        assert!(
            stderr.contains("rvmm: terminating on signal 15"),
            "stderr:\n{stderr}"
        );
        stderr
    }
}

impl Drop for HostileVm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client(socket: &Path) -> TestClient {
    let mut c = TestClient::connect(socket);
    assert_eq!(c.execute("qmp_capabilities", None), json!({"return": {}}));
    c
}

/// Bytes waiting in a pipe (FIONREAD).
fn pipe_fill(pipe: &ChildStdout) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to our variable.
    let r = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD");
    n as usize
}

/// Without `--raw` rvmm prints the probe's capture after the VM ends: to a stdout nobody
/// drains that write blocks like any program's, but the stop signals act as usual again by
/// then, so a second SIGTERM ends rvmm (by the signal, or by exiting if the write got
/// through) instead of being ignored.
#[test]
fn a_final_write_to_an_undrained_stdout_ends_on_sigterm() {
    if !kvm_available("a_final_write_to_an_undrained_stdout_ends_on_sigterm") {
        return;
    }
    let (mut vm, stdout) = HostileVm::start_with("hostile-final-write", false);
    let mut c = vm.client();
    // The guest floods its console for its first seconds: rvmm captures far more than a
    // pipe holds, and prints it all after the VM ends.
    for _ in 0..12 {
        vm.check_running(&mut c);
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(c);
    let pid = vm.child.id() as i32;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = vm.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < STOP_LIMIT,
            "rvmm ignored a second SIGTERM while writing to a full stdout:\n{}",
            vm.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(200));
    let stderr = vm.stderr();
    assert!(!stderr.contains("panicked"), "rvmm panicked:\n{stderr}");
    assert!(
        status.success() || status.signal() == Some(libc::SIGTERM),
        "rvmm after two SIGTERMs: {status:?}\n{stderr}"
    );
    drop(stdout);
}

/// Nobody reads rvmm's stdout: the guest's flood fills the pipe, the console buffer fills
/// and drops, and still QMP answers and SIGTERM ends rvmm (which reports the drop).
#[test]
fn undrained_stdout_does_not_wedge_rvmm() {
    if !kvm_available("undrained_stdout_does_not_wedge_rvmm") {
        return;
    }
    let (mut vm, stdout) = HostileVm::start("hostile-undrained");
    let mut c = vm.client();
    // SAFETY: F_GETPIPE_SZ on our end of the pipe.
    let capacity = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_GETPIPE_SZ) } as usize;
    let start = Instant::now();
    let mut full_checks = 0;
    // Until the pipe has been full for several checks (the guest floods first), and a few
    // seconds into the port sweep that follows.
    while full_checks < 10 {
        vm.check_running(&mut c);
        // Full: the pipe keeps its bytes in pages, so a blocked writer may leave part of
        // one page unused.
        if pipe_fill(&stdout) + 4096 >= capacity {
            full_checks += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the guest never filled stdout ({} of {capacity} bytes)",
            pipe_fill(&stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let stderr = vm.terminate();
    assert!(
        stderr.contains("bytes of guest output dropped (stdout not drained)"),
        "no drop report:\n{stderr}"
    );
    drop(stdout);
}

/// stdout drained: the guest gets through every phase while QMP keeps answering, then
/// SIGTERM ends rvmm.
#[test]
fn hostile_guest_runs_to_the_end_and_rvmm_stays_answerable() {
    if !kvm_available("hostile_guest_runs_to_the_end_and_rvmm_stays_answerable") {
        return;
    }
    let (mut vm, stdout) = HostileVm::start("hostile-drained");
    let out = read_into(stdout);
    let mut c = vm.client();
    let start = Instant::now();
    loop {
        vm.check_running(&mut c);
        let text = out.lock().unwrap().clone();
        if text.contains("PROBE-HOSTILE-ALIVE 1\n") {
            for phase in [
                "PROBE-HOSTILE flood lines=",
                "PROBE-HOSTILE storm done",
                "PROBE-HOSTILE ports done",
                "PROBE-HOSTILE cpuhp done",
                "PROBE-HOSTILE mmio done",
            ] {
                assert!(text.contains(phase), "no {phase:?} in the guest's output");
            }
            // The garbage written to the CPU hotplug block left the boot vCPU in its slot
            // (it printed the lines above; the slot still holds it).
            let slots = c.ok("query-hotpluggable-cpus", None);
            let boot = slots.as_array().unwrap().last().unwrap().clone();
            assert_eq!(boot["qom-path"], "/machine/unattached/device[0]", "{slots}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the hostile guest did not finish its phases; its output ends:\n{}",
            text.chars()
                .skip(text.chars().count().saturating_sub(2000))
                .collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    vm.terminate();
}

/// The probe's `mode=debugexit` writes 0x31 to port 0xf4: rvmm exits 99 as QEMU does; with
/// the device off the write is ignored and the guest powers off (status 0).
#[test]
fn isa_debug_exit_status_and_opt_out() {
    if !kvm_available("isa_debug_exit_status_and_opt_out") {
        return;
    }
    let mut on = rvmm();
    on.args(["run", "--append", "mode=debugexit"]);
    let out = run_with_timeout(on, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(99), "{stdout}\n{stderr}");
    assert!(stdout.contains("PROBE-DEBUGEXIT\n"), "{stdout}");
    assert!(!stdout.contains("IGNORED"), "{stdout}");

    let mut off = rvmm();
    off.args([
        "run",
        "--append",
        "mode=debugexit",
        "--machine",
        "debug-exit=off",
    ]);
    let out = run_with_timeout(off, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("PROBE-DEBUGEXIT-IGNORED\n"), "{stdout}");
}
