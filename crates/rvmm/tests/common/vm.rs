//! A VM running in the background for control-socket tests (`rvmm run --qmp` in a private
//! temporary directory, killed and cleaned up on drop), a raw QMP test client that keeps
//! the events it sees, and readers for the kernel's view of a thread (`/proc`, `taskset`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::rvmm;

/// `rvmm run ARGS --qmp unix:DIR/vm.qmp` in the background.
pub struct BackgroundVm {
    child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// The guest's serial lines so far, once [`BackgroundVm::wait_line`] started reading them.
    lines: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
    /// The thread reading them, joined once the process is gone.
    reader: Option<std::thread::JoinHandle<()>>,
}

/// A fresh private directory for one test.
pub fn test_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvmm-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl BackgroundVm {
    /// Starts the VM and waits until its socket accepts connections.
    pub fn start(tag: &str, args: &[&str]) -> BackgroundVm {
        let dir = test_dir(tag);
        let socket = dir.join("vm.qmp");
        let mut cmd = rvmm();
        cmd.arg("run")
            .args(args)
            .arg("--qmp")
            .arg(format!("unix:{}", socket.display()));
        Self::spawn(cmd, dir, socket)
    }

    /// `rvmm run --kernel probe.elf ARGS --qmp ...`: the probe booted as a plain kernel, so
    /// stdout carries its serial lines alone (the built-in probe's `--raw` also prints the
    /// decoded view, which can land among them).
    pub fn start_probe_elf(tag: &str, args: &[&str]) -> BackgroundVm {
        let dir = test_dir(tag);
        let elf = super::probe_elf(&dir);
        let socket = dir.join("vm.qmp");
        let mut cmd = rvmm();
        cmd.args(["run", "--kernel"])
            .arg(&elf)
            .args(args)
            .arg("--qmp")
            .arg(format!("unix:{}", socket.display()));
        Self::spawn(cmd, dir, socket)
    }

    /// Starts `cmd` (an `rvmm run` that will listen on `socket`).
    pub fn spawn(mut cmd: std::process::Command, dir: PathBuf, socket: PathBuf) -> BackgroundVm {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn rvmm run");
        let mut vm = BackgroundVm {
            child: Some(child),
            dir,
            socket,
            lines: None,
            reader: None,
        };
        let start = Instant::now();
        loop {
            if UnixStream::connect(&vm.socket).is_ok() {
                return vm;
            }
            if let Some(status) = vm.child.as_mut().unwrap().try_wait().unwrap() {
                let out = vm.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "rvmm run exited ({status}) before its socket appeared:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no QMP socket after 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// A negotiated client.
    /// The vCPU thread ids, in query-cpus-fast's order.
    pub fn vcpu_tids(&self) -> Vec<i32> {
        self.client()
            .ok("query-cpus-fast", None)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["thread-id"].as_i64().unwrap() as i32)
            .collect()
    }

    pub fn client(&self) -> TestClient {
        let mut c = TestClient::connect(&self.socket);
        assert_eq!(c.execute("qmp_capabilities", None), json!({"return": {}}));
        c
    }

    /// Waits (30 s at most) for a line of guest output starting with `prefix`. The first call
    /// starts a thread that reads stdout from then on; `wait` returns what it read.
    pub fn wait_line(&mut self, prefix: &str) {
        self.wait_line_within(prefix, Duration::from_secs(30));
    }

    /// [`BackgroundVm::wait_line`] with a limit of its own.
    pub fn wait_line_within(&mut self, prefix: &str, limit: Duration) {
        let reader = &mut self.reader;
        let child = self.child.as_mut().unwrap();
        let lines = self.lines.get_or_insert_with(|| {
            let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let stdout = child.stdout.take().unwrap();
            let sink = lines.clone();
            *reader = Some(std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().unwrap().push(line);
                }
            }));
            lines
        });
        let start = Instant::now();
        while !lines.lock().unwrap().iter().any(|l| l.starts_with(prefix)) {
            assert!(
                start.elapsed() < limit,
                "no line starting with {prefix:?} after {limit:?}; the guest printed:\n{}",
                lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The guest's serial lines read so far (empty before the first `wait_line`).
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .as_ref()
            .map(|l| l.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Waits until every present vCPU is halted (the probe's `mode=halt` after its dump).
    pub fn wait_halted(&self) {
        let mut c = self.client();
        let start = Instant::now();
        loop {
            let info = c.ok("__org.rvmm_vcpuinfo", None);
            let states: Vec<&str> = info["vcpus"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["state"].as_str().unwrap())
                .filter(|s| *s != "offline")
                .collect();
            if states.iter().all(|s| *s == "halted") {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "vCPUs never halted: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to end by itself.
    pub fn wait(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "rvmm did not exit within {limit:?}:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = child.wait_with_output().unwrap();
        if let Some(lines) = &self.lines {
            // The reader thread sees the pipe's end once the process is gone.
            if let Some(reader) = self.reader.take() {
                reader.join().unwrap();
            }
            let mut text = lines.lock().unwrap().join("\n");
            text.push('\n');
            out.stdout = text.into_bytes();
        }
        out
    }
}

impl Drop for BackgroundVm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM first, so that rvmm ends as it should (removing its cgroup); SIGKILL
            // if it has not within 2 s.
            // SAFETY: kill with a valid signal on our own child, not yet reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let start = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A raw QMP client: one JSON value per line in, events kept aside.
pub struct TestClient {
    reader: BufReader<UnixStream>,
    pub stream: UnixStream,
    pub greeting: Value,
    pub events: Vec<Value>,
}

impl TestClient {
    /// Connects and reads the greeting (no negotiation).
    pub fn connect(path: &Path) -> TestClient {
        let stream = UnixStream::connect(path).expect("connect to the QMP socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut c = TestClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            greeting: Value::Null,
            events: Vec::new(),
        };
        c.greeting = c.recv();
        c
    }

    /// The next message, event or not.
    pub fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read a QMP line");
        assert!(n > 0, "the server closed the connection");
        assert!(line.ends_with("\r\n"), "QMP lines end in CRLF: {line:?}");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("bad JSON from the server ({e}): {line}"))
    }

    /// Whether the server closed the connection (reads to EOF).
    pub fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(self.reader.read_line(&mut line), Ok(0))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("send to the QMP socket");
    }

    /// The next reply (`return` or `error`), keeping events seen on the way.
    pub fn reply(&mut self) -> Value {
        loop {
            let m = self.recv();
            if m.get("event").is_some() {
                self.events.push(m);
            } else {
                return m;
            }
        }
    }

    /// Sends a command and returns the whole reply object.
    pub fn execute(&mut self, cmd: &str, args: Option<Value>) -> Value {
        let mut req = json!({"execute": cmd});
        if let Some(a) = args {
            req["arguments"] = a;
        }
        let mut line = req.to_string();
        line.push('\n');
        self.send(line.as_bytes());
        self.reply()
    }

    /// A command's `return` value (panics on an error reply).
    pub fn ok(&mut self, cmd: &str, args: Option<Value>) -> Value {
        let r = self.execute(cmd, args);
        r.get("return")
            .cloned()
            .unwrap_or_else(|| panic!("{cmd} failed: {r}"))
    }

    /// Waits for an event named `name` (already seen or still to come).
    pub fn event(&mut self, name: &str) -> Value {
        loop {
            if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
                return self.events.remove(i);
            }
            let m = self.recv();
            assert!(m.get("event").is_some(), "expected event {name}, got {m}");
            self.events.push(m);
        }
    }
}

/// One thread's `/proc/PID/task/TID/stat` fields: (state, utime + stime, last CPU).
pub fn task_stat(pid: i32, tid: i32) -> (char, u64, u32) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    let rest: Vec<&str> = text[text.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let field = |n: usize| rest[n - 3];
    (
        field(3).chars().next().unwrap(),
        field(14).parse::<u64>().unwrap() + field(15).parse::<u64>().unwrap(),
        field(39).parse().unwrap(),
    )
}

/// The CPU list `taskset -pc TID` prints.
pub fn taskset_list(tid: i32) -> String {
    let out = std::process::Command::new("taskset")
        .args(["-pc", &tid.to_string()])
        .output()
        .expect("taskset");
    assert!(
        out.status.success(),
        "taskset -pc {tid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.rsplit(": ").next().unwrap().trim().to_string()
}

/// `taskset -pc TID`, or None if the thread has ended (QMP client threads come and go).
pub fn taskset_if_alive(tid: i32) -> Option<String> {
    let out = std::process::Command::new("taskset")
        .args(["-pc", &tid.to_string()])
        .output()
        .expect("taskset");
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("No such process") {
        return None;
    }
    Some(taskset_list(tid))
}

/// The thread IDs of process `pid`.
pub fn threads(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// The names of `pid`'s threads, skipping any that ends between the listing and the read
/// (a QMP client's threads end when it disconnects).
pub fn thread_names(pid: i32) -> Vec<String> {
    threads(pid)
        .into_iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/task/{t}/comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect()
}

/// A thread's name (`/proc/PID/task/TID/comm`).
pub fn comm(pid: i32, tid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .unwrap()
        .trim_end()
        .to_string()
}

/// `ps -eLo lwp,psr,comm`: the CPU each of `tids` is on now.
pub fn ps_psr(tids: &[i32]) -> Vec<(i32, u32, String)> {
    let out = std::process::Command::new("ps")
        .args(["-eLo", "lwp,psr,comm"])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let lwp: i32 = it.next()?.parse().ok()?;
            let psr: u32 = it.next()?.parse().ok()?;
            let comm = it.collect::<Vec<_>>().join(" ");
            tids.contains(&lwp).then_some((lwp, psr, comm))
        })
        .collect()
}

/// A thread's (run ns, run-delay ns) from its schedstat.
pub fn run_wait(pid: i32, tid: i32) -> (u64, u64) {
    let s = vmm::host::thread::schedstat(pid, tid).expect("the thread's schedstat");
    (s.run_ns, s.wait_ns)
}

/// The CPUs this test process may use (`Cpus_allowed_list`).
pub fn allowed_cpus() -> Vec<u32> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

/// Clock ticks per second, as `getconf CLK_TCK` prints it.
pub fn clk_tck() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
