//! The QMP control socket, end to end: a real client (the `qemu.qmp` Python package that
//! scripts/deps.sh installs) drives rvmm; several raw clients at once send garbage, huge
//! messages and half requests and vanish, and the VM and the other clients carry on; the
//! socket is private, found by --name, and never replaces a planted symlink; lifecycle
//! commands emit QEMU's events. The probe guest's busy and halt modes give the VM load.

mod common;

use std::time::Duration;

use common::vm::{comm, test_dir, BackgroundVm, TestClient};
use common::{failed_cleanly, kvm_available, run_with_timeout, rvmm};
use serde_json::{json, Value};

/// Runs the qemu.qmp `script` against `vm`'s socket; the JSON object it prints.
fn run_python_client(vm: &BackgroundVm, name: &str, script: &str) -> Value {
    let path = vm.dir.join(name);
    std::fs::write(&path, script).unwrap();
    let mut cmd = std::process::Command::new(common::venv_python("qemu.qmp"));
    cmd.arg(&path).arg(&vm.socket);
    let out = run_with_timeout(cmd, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the qemu.qmp client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

const PY_CLIENT: &str = r#"
import asyncio, json, sys
from qemu.qmp import QMPClient, ExecuteError

async def main(path):
    qmp = QMPClient('rvmm-test')
    await qmp.connect(path)
    out = {'greeting': qmp.greeting._asdict()}
    out['status'] = await qmp.execute('query-status')
    out['cpus'] = await qmp.execute('query-cpus-fast')
    await qmp.execute('stop')
    out['stop_event'] = (await qmp.events.get())['event']
    out['stopped'] = await qmp.execute('query-status')
    await qmp.execute('cont')
    out['cont_event'] = (await qmp.events.get())['event']
    out['continued'] = await qmp.execute('query-status')
    try:
        await qmp.execute('no-such-command')
    except ExecuteError as e:
        out['error'] = [e.error_class, e.error.error.desc]
    await qmp.execute('quit')
    ev = await qmp.events.get()
    out['quit_event'] = [ev['event'], ev['data']]
    try:
        await qmp.disconnect()
    except EOFError:
        # The server closed the stream after quit before we did: expected (QEMU's own
        # python/qemu/machine does the same with QEMU).
        pass
    print(json.dumps(out))

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 60))
"#;

#[test]
fn python_qemu_qmp_client_drives_rvmm() {
    if !kvm_available("python_qemu_qmp_client_drives_rvmm") {
        return;
    }
    let vm = BackgroundVm::start(
        "pyqmp",
        &["--smp", "2", "--append", "mode=busy", "--name", "pyvm"],
    );
    let pid = vm.pid();
    // The vCPU threads, seen before the Python client ends the VM: named as QEMU names them.
    let tids: Vec<i64> = vm
        .client()
        .ok("query-cpus-fast", None)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["thread-id"].as_i64().unwrap())
        .collect();
    for (i, &tid) in tids.iter().enumerate() {
        assert_eq!(comm(pid, tid as i32), format!("CPU {i}/KVM"));
    }
    let r = run_python_client(&vm, "client.py", PY_CLIENT);
    assert_eq!(r["greeting"]["QMP"]["capabilities"], json!([]));
    assert_eq!(
        r["greeting"]["QMP"]["version"]["package"],
        format!("rvmm {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        r["status"],
        json!({"status": "running", "singlestep": false, "running": true})
    );
    let cpus = r["cpus"].as_array().unwrap();
    assert_eq!(cpus.len(), 2);
    for (i, cpu) in cpus.iter().enumerate() {
        assert_eq!(cpu["cpu-index"], i);
        assert_eq!(cpu["target"], "x86_64");
        assert_eq!(
            cpu["props"],
            json!({"socket-id": 0, "core-id": i, "thread-id": 0})
        );
        assert_eq!(cpu["thread-id"], tids[i]);
    }
    assert_eq!(r["stop_event"], "STOP");
    assert_eq!(r["stopped"]["status"], "paused");
    assert_eq!(r["cont_event"], "RESUME");
    assert_eq!(r["continued"]["status"], "running");
    assert_eq!(
        r["error"],
        json!([
            "CommandNotFound",
            "The command no-such-command has not been found"
        ])
    );
    assert_eq!(
        r["quit_event"],
        json!(["SHUTDOWN", {"guest": false, "reason": "host-qmp-quit"}])
    );
    let out = vm.wait(Duration::from_secs(20));
    assert!(out.status.success(), "rvmm after quit: {:?}", out.status);
}

/// A generic error's description.
fn desc(reply: &Value) -> String {
    assert_eq!(reply["error"]["class"], "GenericError", "{reply}");
    reply["error"]["desc"].as_str().unwrap().to_string()
}

#[test]
fn bad_clients_do_not_disturb_the_vm_or_each_other() {
    if !kvm_available("bad_clients_do_not_disturb_the_vm_or_each_other") {
        return;
    }
    let mut vm = BackgroundVm::start("badqmp", &["--smp", "2", "--append", "mode=busy"]);
    let mut a = vm.client();
    let mut b = vm.client();
    // Not negotiated: commands are refused as QEMU refuses them.
    let mut c = TestClient::connect(&vm.socket);
    assert_eq!(
        c.execute("query-status", None),
        json!({"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}})
    );

    // Malformed JSON, non-objects, bad envelopes, unknown commands, wrong argument types.
    b.send(b"{\"execute\": }\n");
    assert!(desc(&b.reply()).starts_with("JSON parse error, "));
    b.send(b"garbage\n");
    assert!(desc(&b.reply()).starts_with("JSON parse error, "));
    b.send(b"[1, 2]\n");
    assert_eq!(desc(&b.reply()), "QMP input must be a JSON object");
    b.send(b"{\"execute\": 5}\n");
    assert_eq!(
        desc(&b.reply()),
        "QMP input member 'execute' must be a string"
    );
    b.send(b"{\"execute\": \"nope\", \"id\": [\"x\", 1]}\n");
    assert_eq!(
        b.reply(),
        json!({"id": ["x", 1], "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}})
    );
    assert_eq!(
        desc(&b.execute("__org.rvmm_vcpupin", Some(json!({"vcpu": "zero"})))),
        "Invalid parameter type for 'vcpu', expected: integer"
    );
    assert_eq!(
        desc(&b.execute("query-cpu-model-expansion", Some(json!({"type": 5})))),
        "Invalid parameter type for 'type', expected: string"
    );
    assert_eq!(
        desc(&b.execute("query-status", Some(json!({"x": 1})))),
        "Parameter 'x' is unexpected"
    );
    assert_eq!(
        desc(&b.execute("__org.rvmm_vcpupin", Some(json!({"vcpu": 7, "cpus": "0"})))),
        "vCPU 7 does not exist (the VM has vCPUs 0-1)"
    );
    // A request split across writes and lines is one request.
    b.send(b"{\"execute\":\n");
    b.send(b" \"query-name\", \"id\": 1}");
    assert_eq!(b.reply(), json!({"id": 1, "return": {}}));

    // An 8 MiB line: skipped with an error, and the same connection still works.
    let mut d = vm.client();
    let mut big = b"{\"execute\": \"query-status\", \"arguments\": {\"pad\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 8 << 20));
    big.extend(b"\"}}\n");
    d.send(&big);
    let e = desc(&d.reply());
    assert!(
        e.starts_with(&format!(
            "QMP input of {} bytes exceeds the limit of 1048576 bytes",
            big.len() - 1
        )),
        "{e}"
    );
    assert_eq!(d.ok("query-status", None)["status"], "running");
    // 8 MiB of bare garbage on one line, too.
    let mut e8 = vm.client();
    let mut junk = vec![b'a'; 8 << 20];
    junk.push(b'\n');
    e8.send(&junk);
    assert!(desc(&e8.reply()).contains("exceeds the limit"));

    // Abrupt disconnects: mid-message, and right after a request without reading the reply.
    {
        let mut f = vm.client();
        f.send(b"{\"execute\": \"query-st");
    }
    {
        let mut g = vm.client();
        g.send(b"{\"execute\": \"query-cpus-fast\"}\n{\"execute\": \"query-status\"}\n");
        let _ = g.stream.shutdown(std::net::Shutdown::Both);
    }
    // A client that stops mid-greeting.
    drop(std::os::unix::net::UnixStream::connect(&vm.socket).unwrap());

    // The VM runs on, and every remaining client is served and sees the events.
    assert_eq!(a.ok("query-status", None)["status"], "running");
    a.ok("stop", None);
    assert_eq!(a.event("STOP")["event"], "STOP");
    assert_eq!(b.event("STOP")["event"], "STOP");
    a.ok("cont", None);
    assert_eq!(b.event("RESUME")["event"], "RESUME");
    let resume = a.event("RESUME");
    assert!(
        resume["timestamp"]["seconds"].as_u64().unwrap() > 1_600_000_000,
        "{resume}"
    );
    assert!(
        resume["timestamp"]["microseconds"].as_u64().unwrap() < 1_000_000,
        "{resume}"
    );
    // c negotiates only now: it got no STOP/RESUME while it was not in command mode.
    assert_eq!(c.execute("qmp_capabilities", None), json!({"return": {}}));
    assert_eq!(c.ok("query-cpus-fast", None).as_array().unwrap().len(), 2);
    assert!(
        c.events.is_empty(),
        "events before negotiation: {:?}",
        c.events
    );
    assert!(vm.alive());

    a.ok("quit", None);
    assert_eq!(
        b.event("SHUTDOWN")["data"],
        json!({"guest": false, "reason": "host-qmp-quit"})
    );
    assert!(b.closed(), "the server closes clients when the VM ends");
    let socket = vm.socket.clone();
    let out = vm.wait(Duration::from_secs(20));
    assert!(out.status.success());
    assert!(!socket.exists(), "socket removed on exit");
}

#[test]
fn socket_is_private_named_and_never_follows_a_planted_symlink() {
    if !kvm_available("socket_is_private_named_and_never_follows_a_planted_symlink") {
        return;
    }
    // --name puts the socket under $XDG_RUNTIME_DIR/rvmm, created 0700; the socket is 0600.
    let dir = test_dir("named");
    let mut cmd = rvmm();
    cmd.env("XDG_RUNTIME_DIR", &dir).args([
        "run",
        "--smp",
        "1",
        "--append",
        "mode=halt",
        "--name",
        "web1",
    ]);
    let socket = dir.join("rvmm/web1.qmp");
    let vm = BackgroundVm::spawn(cmd, dir.clone(), socket.clone());
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode();
    assert_eq!(mode(&socket) & 0o777, 0o600);
    assert_eq!(mode(&dir.join("rvmm")) & 0o777, 0o700);
    assert_eq!(vm.client().ok("query-name", None), json!({"name": "web1"}));
    // `rvmm qmp NAME` finds it by name.
    let out = rvmm()
        .env("XDG_RUNTIME_DIR", &dir)
        .args(["qmp", "web1", r#"{"execute": "query-status"}"#])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["return"]["status"], "running");
    // A second VM with the same name is refused while the first listens.
    let out = run_with_timeout(
        {
            let mut c = rvmm();
            c.env("XDG_RUNTIME_DIR", &dir)
                .args(["run", "--append", "mode=halt", "--name", "web1"]);
            c
        },
        Duration::from_secs(30),
    );
    failed_cleanly(&out, "a second VM with the same name");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap(),
        format!(
            "rvmm: --qmp: {}: another process is listening on this socket",
            socket.display()
        )
    );
    drop(vm);

    // A symlink planted at the socket path is an error, and its target is untouched.
    let dir = test_dir("planted");
    let target = dir.join("precious");
    std::fs::write(&target, b"keep me").unwrap();
    let socket = dir.join("vm.qmp");
    std::os::unix::fs::symlink(&target, &socket).unwrap();
    let mut cmd = rvmm();
    cmd.args(["run", "--append", "mode=hello", "--qmp"])
        .arg(format!("unix:{}", socket.display()));
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap(),
        format!(
            "rvmm: --qmp: {} exists and is a symbolic link, not a socket; refusing to replace it",
            socket.display()
        )
    );
    assert!(std::fs::symlink_metadata(&socket)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lifecycle_events_powerdown_and_reset() {
    if !kvm_available("lifecycle_events_powerdown_and_reset") {
        return;
    }
    let vm = BackgroundVm::start("reset", &["--smp", "2,maxcpus=4", "--append", "mode=halt"]);
    // Let the probe finish its dump (rvmm reports a probe that ends before that).
    vm.wait_halted();
    let mut a = vm.client();
    assert_eq!(a.ok("query-status", None)["status"], "running");
    // Slots up to maxcpus, highest first; the present ones carry their qom-path.
    let slots = a.ok("query-hotpluggable-cpus", None);
    assert_eq!(slots.as_array().unwrap().len(), 4);
    assert_eq!(slots[0]["type"], "qemu64-x86_64-cpu");
    assert_eq!(slots[0].get("qom-path"), None);
    assert_eq!(slots[3]["qom-path"], "/machine/unattached/device[0]");
    let version = a.ok("query-version", None);
    assert_eq!(
        version["package"],
        format!("rvmm {}", env!("CARGO_PKG_VERSION"))
    );
    let commands: Vec<String> = a
        .ok("query-commands", None)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for name in [
        "query-status",
        "query-cpus-fast",
        "__org.rvmm_vcpupin",
        "__org.rvmm_vcpuinfo",
    ] {
        assert!(
            commands.iter().any(|c| c == name),
            "{name} not in {commands:?}"
        );
    }
    let defs = a.ok("query-cpu-definitions", None);
    let qemu64 = defs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "qemu64")
        .unwrap()
        .clone();
    assert_eq!(qemu64["alias-of"], "qemu64-v1");
    let full = a.ok(
        "query-cpu-model-expansion",
        Some(json!({"type": "full", "model": {"name": "qemu64", "props": {"aes": true}}})),
    );
    assert_eq!(full["model"]["name"], "qemu64");
    assert_eq!(full["model"]["props"]["aes"], true);
    assert_eq!(full["model"]["props"]["lm"], true);
    // system_reset: RESET, then the VM ends with outcome Reset (no in-place reset yet).
    a.ok("system_reset", None);
    assert_eq!(
        a.event("RESET")["data"],
        json!({"guest": false, "reason": "host-qmp-system-reset"})
    );
    let out = vm.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CPU  APIC"),
        "the probe's view was printed"
    );
}

/// `system_powerdown` presses the ACPI power button: POWERDOWN, the probe (mode=halt) acts
/// on it like an OS (PROBE-POWERBUTTON, S5), SHUTDOWN from the guest, exit 0.
#[test]
fn powerdown_reaches_the_guest() {
    if !kvm_available("powerdown_reaches_the_guest") {
        return;
    }
    let vm = BackgroundVm::start(
        "powerdown",
        &["--smp", "2", "--append", "mode=halt", "--raw"],
    );
    vm.wait_halted();
    let mut a = vm.client();
    a.ok("system_powerdown", None);
    assert!(a.event("POWERDOWN").get("data").is_none());
    assert_eq!(a.event("SHUTDOWN")["data"]["guest"], true);
    let out = vm.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBE-POWERBUTTON"));
}

#[test]
fn cpu_model_queries_match_qemu_7_2() {
    if !kvm_available("cpu_model_queries_match_qemu_7_2") {
        return;
    }
    // QEMU 7.2 under KVM on this host is the oracle.
    let dir = test_dir("qemu-oracle");
    let qemu_socket = dir.join("qemu.qmp");
    let mut qemu = common::qemu()
        .args([
            "-M",
            "pc",
            "-accel",
            "kvm",
            "-S",
            "-nodefaults",
            "-nographic",
        ])
        .args(["-monitor", "none", "-serial", "none", "-qmp"])
        .arg(format!("unix:{},server=on,wait=off", qemu_socket.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start qemu-system-x86_64");
    let vm = BackgroundVm::start("oracle", &["--append", "mode=halt"]);
    let start = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&qemu_socket).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "QEMU's QMP socket never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut q = TestClient::connect(&qemu_socket);
    q.ok("qmp_capabilities", None);
    let mut r = vm.client();

    // Every model, in QEMU's member shapes, with exactly QEMU's unavailable-features.
    let by_name = |v: Value| -> std::collections::BTreeMap<String, Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| (d["name"].as_str().unwrap().to_string(), d.clone()))
            .collect()
    };
    let theirs = by_name(q.ok("query-cpu-definitions", None));
    let ours = by_name(r.ok("query-cpu-definitions", None));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (name, def) in &theirs {
        assert_eq!(&ours[name], def, "query-cpu-definitions entry {name}");
    }
    // Full expansion: every feature property both report has the same value.
    for model in ["qemu64", "Haswell", "EPYC-Rome", "Skylake-Server-v4"] {
        let args = json!({"type": "full", "model": {"name": model, "props": {"aes": false}}});
        let theirs = q.ok("query-cpu-model-expansion", Some(args.clone()));
        let ours = r.ok("query-cpu-model-expansion", Some(args));
        let (t, o) = (&theirs["model"]["props"], &ours["model"]["props"]);
        let mut compared = 0;
        for (k, v) in o.as_object().unwrap() {
            if let (Some(tv), true) = (t.get(k), v.is_boolean()) {
                assert_eq!(tv, v, "{model}: property {k}");
                compared += 1;
            }
        }
        assert!(
            compared > 300,
            "{model}: only {compared} properties in common"
        );
        assert_eq!(o["family"], t["family"], "{model}");
        assert_eq!(o["model-id"], t["model-id"], "{model}");
    }
    q.ok("quit", None);
    let _ = qemu.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The QMP client commands keep SIGPIPE ignored (they talk over a socket): a full disk or a
/// closed pipe on their stdout is one error line and exit 1, and the VM is not disturbed.
#[test]
fn client_commands_report_a_failed_stdout() {
    if !kvm_available("client_commands_report_a_failed_stdout") {
        return;
    }
    let vm = BackgroundVm::start("client-stdout", &["--append", "mode=halt"]);
    let socket = vm.socket.to_str().unwrap().to_string();
    let args = ["qmp", socket.as_str(), r#"{"execute": "query-status"}"#];
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = rvmm()
        .args(args)
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let (code, stderr) = failed_cleanly(&out, "rvmm qmp > /dev/full");
    assert_eq!(code, 1);
    assert_eq!(stderr, "rvmm: writing to stdout: No space left on device\n");
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors this test owns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fds[0] is ours and closed once; fds[1] is handed to the child below.
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is an open descriptor no one else owns.
    let write_end = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
    let out = rvmm()
        .args(args)
        .stdout(write_end)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let (code, stderr) = failed_cleanly(&out, "rvmm qmp | (closed)");
    assert_eq!(code, 1);
    assert_eq!(stderr, "rvmm: writing to stdout: Broken pipe\n");
    assert_eq!(vm.client().ok("query-status", None)["status"], "running");
}

/// Peak resident memory of process `pid` (`VmHWM`), in KiB.
fn vm_hwm_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

/// Reads a client's socket to its end (the server closed it); the bytes read.
fn drain(stream: &std::os::unix::net::UnixStream) -> u64 {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    std::io::copy(&mut &*stream, &mut std::io::sink()).expect("read to the end")
}

#[test]
fn silent_and_half_open_clients_cannot_lock_out_the_cli() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    if !kvm_available("silent_and_half_open_clients_cannot_lock_out_the_cli") {
        return;
    }
    let vm = BackgroundVm::start("lockout", &["--append", "mode=halt"]);
    // 20 clients that never negotiate: every other one stops in the middle of a message.
    let silent: Vec<UnixStream> = (0..20)
        .map(|i| {
            let mut s = UnixStream::connect(&vm.socket).unwrap();
            if i % 2 == 1 {
                s.write_all(b"{\"execute\":").unwrap();
            }
            s
        })
        .collect();
    // rvmm's own subcommand gets in at once, by evicting the oldest of them.
    let mut cmd = rvmm();
    cmd.arg("qmp")
        .arg(&vm.socket)
        .arg(r#"{"execute": "query-status"}"#);
    let out = run_with_timeout(cmd, Duration::from_secs(5));
    assert!(
        out.status.success(),
        "rvmm qmp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["return"]["status"], "running");
    // 16 slots, 21 clients: the five oldest silent ones were closed (greeting, then the end).
    let closed: Vec<bool> = silent
        .iter()
        .map(|s| {
            s.set_nonblocking(true).unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = 0;
            loop {
                match (&*s).read(&mut buf) {
                    Ok(0) => return true,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && got > 0 => {
                        return false
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("read: {e}"),
                }
            }
        })
        .collect();
    let expected: Vec<bool> = (0..20).map(|i| i < 5).collect();
    assert_eq!(closed, expected, "which silent clients were evicted");
    // The others are told why and closed when the negotiation time runs out.
    for s in &silent[5..] {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut text = String::new();
        (&*s)
            .read_to_string(&mut text)
            .expect("closed by the server");
        assert_eq!(
            text,
            "{\"error\":{\"class\":\"GenericError\",\"desc\":\"capabilities negotiation was not completed within 10 s; closing the connection\"}}\r\n"
        );
    }
    assert_eq!(vm.client().ok("query-status", None)["status"], "running");
}

#[test]
fn a_client_that_never_reads_is_dropped_and_rvmm_stays_small() {
    use std::io::Write;
    if !kvm_available("a_client_that_never_reads_is_dropped_and_rvmm_stays_small") {
        return;
    }
    let vm = BackgroundVm::start("noread", &["--append", "mode=halt"]);
    vm.wait_halted();
    let before = vm_hwm_kib(vm.pid());
    let client = vm.client();
    // Each error reply echoes the request's 256 KiB id: 50 MiB of replies in all, if rvmm
    // kept them for a client that reads none.
    let count = 200;
    let request = format!(
        "{{\"execute\": \"no-such-command\", \"id\": \"{}\"}}\n",
        "x".repeat(256 << 10)
    );
    let mut w = client.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        (0..count)
            .position(|_| w.write_all(request.as_bytes()).is_err())
            .unwrap_or(count)
    });
    let sent = writer.join().unwrap();
    assert!(
        sent < count,
        "rvmm read all {count} requests from a client that reads nothing"
    );
    let received = drain(&client.stream);
    assert!(
        received < (count as u64) << 18,
        "{received} bytes: the client was not dropped"
    );
    let after = vm_hwm_kib(vm.pid());
    assert!(
        after < before + 16 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB for one client"
    );
    assert_eq!(vm.client().ok("query-status", None)["status"], "running");
}

#[test]
fn sigterm_ends_rvmm_promptly_despite_stuck_clients() {
    if !kvm_available("sigterm_ends_rvmm_promptly_despite_stuck_clients") {
        return;
    }
    let vm = BackgroundVm::start("stuckterm", &["--smp", "2", "--append", "mode=halt"]);
    vm.wait_halted();
    // Replies of 600 KiB for a client that reads none: more than the socket holds (rvmm's
    // writer blocks) and less than its queue limit (the client is not dropped).
    let mut stuck = vm.client();
    let request = format!(
        "{{\"execute\": \"no-such-command\", \"id\": \"{}\"}}\n",
        "x".repeat(100 << 10)
    );
    for _ in 0..6 {
        stuck.send(request.as_bytes());
    }
    // And one that never negotiates, one in the middle of a message.
    let _silent = std::os::unix::net::UnixStream::connect(&vm.socket).unwrap();
    let mut half = vm.client();
    half.send(b"{\"execute\": ");
    // A round trip on another client: the stuck requests have been read by now or soon.
    vm.client().ok("query-status", None);
    std::thread::sleep(Duration::from_millis(300));
    let start = std::time::Instant::now();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(vm.pid(), libc::SIGTERM) };
    let out = vm.wait(Duration::from_secs(30));
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM took {took:?} with a stuck QMP client"
    );
    // The stuck client got part of its replies, then the end.
    let received = drain(&stuck.stream);
    assert!(received < 6 * (100 << 10), "{received} bytes");
}

#[test]
fn hostile_json_over_the_socket_gets_generic_errors() {
    if !kvm_available("hostile_json_over_the_socket_gets_generic_errors") {
        return;
    }
    let vm = BackgroundVm::start("hostile", &["--append", "mode=halt"]);
    let mut c = vm.client();
    // Invalid UTF-8 inside a string.
    c.send(b"{\"execute\": \"query-status\", \"id\": \"\xff\xfe\"}\n");
    assert!(desc(&c.reply()).starts_with("JSON parse error, "));
    // Nesting as deep as a message may be long, on the QMP reader thread's own stack.
    let n = (1 << 20) / 2 - 64;
    let mut deep = b"{\"execute\": \"query-status\", \"id\": ".to_vec();
    deep.extend(std::iter::repeat_n(b'[', n));
    deep.extend(std::iter::repeat_n(b']', n));
    deep.extend(b"}\n");
    c.send(&deep);
    assert!(desc(&c.reply()).contains("recursion limit exceeded"));
    // Numbers beyond f64, beyond u32; wrong types.
    c.send(b"{\"execute\": \"__org.rvmm_vcpupin\", \"arguments\": {\"vcpu\": 1e400}}\n");
    assert!(desc(&c.reply()).starts_with("JSON parse error, "));
    assert_eq!(
        desc(&c.execute("__org.rvmm_vcpupin", Some(json!({"vcpu": 4294967296u64})))),
        "Parameter 'vcpu' expects uint32"
    );
    assert_eq!(
        desc(&c.execute("__org.rvmm_vcpupin", Some(json!({"vcpu": 0, "cpus": [0]})))),
        "Invalid parameter type for 'cpus', expected: string"
    );
    assert_eq!(c.ok("query-status", None)["status"], "running");
}

const PY_HOTPLUG: &str = r#"
import asyncio, json, sys
from qemu.qmp import QMPClient, ExecuteError

async def event(qmp, name, **match):
    async for ev in qmp.events:
        if ev['event'] == name and all(ev['data'].get(k) == v for k, v in match.items()):
            return ev['data']

async def main(path):
    qmp = QMPClient('rvmm-hotplug-test')
    await qmp.connect(path)
    out = {}
    slots = await qmp.execute('query-hotpluggable-cpus')
    free = [s for s in slots if 'qom-path' not in s][-1]
    args = dict(free['props'], driver=free['type'], id='cpu1')
    out['add'] = await qmp.execute('device_add', args)
    out['ost'] = await event(qmp, 'ACPI_DEVICE_OST')
    out['plugged'] = [s.get('qom-path') for s in await qmp.execute('query-hotpluggable-cpus')]
    out['cpus'] = [c['cpu-index'] for c in await qmp.execute('query-cpus-fast')]
    try:
        await qmp.execute('device_del', {'id': '/machine/unattached/device[0]'})
    except ExecuteError as e:
        out['boot_del'] = e.error.error.desc
    out['del'] = await qmp.execute('device_del', {'id': 'cpu1'})
    out['deleted'] = await event(qmp, 'DEVICE_DELETED', device='cpu1')
    out['after'] = [c['cpu-index'] for c in await qmp.execute('query-cpus-fast')]
    await qmp.disconnect()
    print(json.dumps(out))

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 60))
"#;

/// vCPU hotplug driven by QEMU's own Python client: device_add, the guest's _OST, both
/// queries, QEMU's refusal to unplug the boot CPU, device_del and DEVICE_DELETED once the
/// probe (`mode=hotplug`, acting as the OS) ejected the vCPU.
#[test]
fn python_qemu_qmp_client_plugs_and_unplugs_a_vcpu() {
    if !kvm_available("python_qemu_qmp_client_plugs_and_unplugs_a_vcpu") {
        return;
    }
    let mut vm = BackgroundVm::start_probe_elf(
        "pyqmp-hotplug",
        &["--smp", "1,maxcpus=4", "--append", "mode=hotplug"],
    );
    vm.wait_line("PROBE-HOTPLUG ready");
    let r = run_python_client(&vm, "hotplug.py", PY_HOTPLUG);
    assert_eq!(r["add"], json!({}));
    assert_eq!(
        r["ost"],
        json!({"info": {"device": "cpu1", "slot": "1", "slot-type": "CPU", "source": 1, "status": 0}})
    );
    assert_eq!(
        r["plugged"],
        json!([
            null,
            null,
            "/machine/peripheral/cpu1",
            "/machine/unattached/device[0]"
        ])
    );
    assert_eq!(r["cpus"], json!([0, 1]));
    assert_eq!(r["boot_del"], "Boot CPU is unpluggable");
    assert_eq!(r["del"], json!({}));
    assert_eq!(
        r["deleted"],
        json!({"device": "cpu1", "path": "/machine/peripheral/cpu1"})
    );
    assert_eq!(r["after"], json!([0]));
    // The guest prints its eject line after the eject write that sent DEVICE_DELETED.
    vm.wait_line("PROBE-HOTPLUG eject slot=1 apic=1");
    vm.client().ok("quit", None);
    let out = vm.wait(Duration::from_secs(10));
    let guest = String::from_utf8_lossy(&out.stdout);
    for line in [
        "PROBE-HOTPLUG insert slot=1 apic=1",
        "PROBE-HOTPLUG online slot=1 apic=1",
        "PROBE-HOTPLUG eject slot=1 apic=1",
    ] {
        assert!(guest.contains(line), "no {line:?} in:\n{guest}");
    }
}
