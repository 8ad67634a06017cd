//! Live migration end to end (docs/migration.md), with the probe's `mode=counter` guest
//! (2 vCPUs; each counts and checks a page it owns): a migration over a unix socket on
//! this host (the destination's counters go on from the source's, never reset, every
//! check `sum=ok`; the source ends `postmigrate`); A→B and back B→A between two network
//! namespaces linked by a veth pair (TCP); a destination killed during pre-copy and a
//! cancelled migration (the source keeps running and counting, `query-migrate` says why);
//! a destination with a narrower CPU refuses before any page, naming the features; and
//! the bad inputs (`--incoming` port in use, a bad URI, `migrate` to a port nobody
//! listens on). virtio: a guest using a virtio-blk disk (probe `virtio=loop`) and an
//! inflated balloon migrate and go on at the destination. QEMU's `pause-before-switchover`:
//! a 1.5 s wait in `pre-switchover` shows in the guest as the measured downtime, and a
//! cancel there resumes the source. virtio-net: a guest pinging the host through a named
//! tap goes on pinging at the destination, which took the tap over.
//!
//! Both ends run with the default sandbox (`--sandbox on`): the source's `migration`
//! thread has a filter of its own (docs/security.md); one test also gives `--sandbox on`
//! explicitly on both ends and checks that thread is filtered.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::netns::NetNs;
use common::vm::{comm, test_dir, threads, BackgroundVm, TestClient};
use common::{failed_cleanly, kvm_available, run_with_timeout, rvmm, skip};

const MACHINE: &[&str] = &["--smp", "2", "--append", "mode=counter", "--raw"];

/// (cpu, value, sum ok) of every `PROBE-COUNTER cpu=N value=V sum=S ...` line (fields
/// after `sum` are ignored).
fn counters(lines: &[String]) -> Vec<(u32, u64, bool)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("PROBE-COUNTER cpu=")?;
            let (cpu, rest) = rest.split_once(" value=")?;
            let (value, rest) = rest.split_once(" sum=")?;
            let sum = rest.split_whitespace().next().unwrap_or("");
            Some((cpu.parse().ok()?, value.parse().ok()?, sum == "ok"))
        })
        .collect()
}

fn out_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

fn last_per_cpu(c: &[(u32, u64, bool)]) -> BTreeMap<u32, u64> {
    c.iter().map(|&(cpu, v, _)| (cpu, v)).collect()
}

fn first_per_cpu(c: &[(u32, u64, bool)]) -> BTreeMap<u32, u64> {
    let mut m = BTreeMap::new();
    for &(cpu, v, _) in c {
        m.entry(cpu).or_insert(v);
    }
    m
}

/// `rvmm run MACHINE EXTRA --qmp ...` (the default sandbox), optionally inside network namespace
/// `netns`.
fn start(tag: &str, extra: &[&str], netns: Option<&str>) -> BackgroundVm {
    let dir = test_dir(tag);
    let socket = dir.join("vm.qmp");
    let program = rvmm().get_program().to_owned();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&program);
            c
        }
        None => rvmm(),
    };
    cmd.arg("run")
        .args(MACHINE)
        .args(extra)
        .arg("--qmp")
        .arg(format!("unix:{}", socket.display()));
    BackgroundVm::spawn(cmd, dir, socket)
}

/// Polls `query-migrate` every 20 ms until `done` holds of its answer (which it returns),
/// failing after `limit` with `what` and the last answer.
fn poll_migrate(
    c: &mut TestClient,
    limit: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let info = c.ok("query-migrate", None);
        if done(&info) {
            return info;
        }
        assert!(start.elapsed() < limit, "{what} after {limit:?}: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `query-migrate` until the migration is over (60 s at most).
fn wait_finished(c: &mut TestClient) -> Value {
    poll_migrate(c, Duration::from_secs(60), "migration not over", |info| {
        matches!(
            info["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    })
}

/// Polls `query-migrate` until the migration is active and has sent something (20 s at
/// most): pre-copy is under way.
fn wait_active(c: &mut TestClient) {
    poll_migrate(c, Duration::from_secs(20), "never active", |info| {
        info["status"] == "active" && info["ram"]["transferred"].as_u64() > Some(0)
    });
}

/// `rvmm migrate SOCKET URI EXTRA`.
fn migrate_cli(socket: &Path, uri: &str, extra: &[&str]) -> Output {
    let mut c = rvmm();
    c.arg("migrate").arg(socket).arg(uri).args(extra);
    run_with_timeout(c, Duration::from_secs(90))
}

/// Migrates `src` to `dst` (listening on `uri`), checks both ends, and returns the
/// destination (running).
fn migrate_and_check(src: &mut BackgroundVm, mut dst: BackgroundVm, uri: &str) -> BackgroundVm {
    src.wait_line("PROBE-COUNTER cpu=1");
    assert_eq!(
        dst.client().ok("query-status", None)["status"],
        "inmigrate",
        "the destination waits"
    );
    let mut events = src.client();
    let out = migrate_cli(&src.socket, uri, &[]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rvmm migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.starts_with(&format!("migrated to {uri} in ")) && said.contains("(downtime "),
        "{said}"
    );
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("completed") {
        let e = events.event("MIGRATION");
        statuses.push(e["data"]["status"].as_str().unwrap().to_string());
    }
    assert_eq!(
        statuses,
        ["setup", "active", "completed"],
        "MIGRATION events"
    );
    events.event("STOP");
    let mut c = src.client();
    assert_eq!(c.ok("query-status", None)["status"], "postmigrate");
    let info = c.ok("query-migrate", None);
    assert_eq!(info["status"], "completed", "{info}");
    assert_eq!(info["ram"]["total"], 128 << 20, "{info}");
    assert_eq!(info["ram"]["remaining"], 0, "{info}");
    // One dirty-log read after the first pass, one in the final phase at least.
    assert!(
        info["ram"]["dirty-sync-count"].as_u64() >= Some(2),
        "{info}"
    );
    assert!(
        info["ram"]["normal"].as_u64().unwrap() > 0 && info["downtime"].is_u64(),
        "{info}"
    );
    // The destination runs.
    dst.wait_line("PROBE-COUNTER cpu=1");
    let mut d = dst.client();
    assert_eq!(d.ok("query-status", None)["status"], "running");
    let before = counters(&src.lines());
    assert!(
        before.iter().all(|&(_, _, ok)| ok),
        "source sums: {before:?}"
    );
    // Counting goes on from where the source stopped (the source is paused: what it
    // printed last is from before the migration).
    let last_before = last_per_cpu(&before);
    assert_eq!(last_before.len(), 2, "both vCPUs counted: {before:?}");
    let start = Instant::now();
    loop {
        let after = counters(&dst.lines());
        let first = first_per_cpu(&after);
        let last = last_per_cpu(&after);
        let grown = last_before.keys().all(|c| last.get(c) > first.get(c));
        if grown {
            assert!(after.iter().all(|&(_, _, ok)| ok), "sums after: {after:?}");
            for (cpu, &b) in &last_before {
                let f = first[cpu];
                assert!(
                    f >= b && f < b + 200,
                    "vCPU {cpu}: {b} on the source, {f} first on the destination (a reset or a jump)"
                );
            }
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the destination does not count on: {after:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    dst
}

#[test]
fn a_counting_guest_migrates_over_a_unix_socket_and_goes_on() {
    if !kvm_available("migration_unix") {
        return;
    }
    let mut src = start("mig-src", &[], None);
    let work = test_dir("mig-sock");
    let uri = format!("unix:{}", work.join("mig.sock").display());
    let dst = start("mig-dst", &["--incoming", &uri], None);
    let dst = migrate_and_check(&mut src, dst, &uri);
    src.client().ok("quit", None);
    let out = src.wait(Duration::from_secs(10));
    assert!(out.status.success());
    dst.client().ok("quit", None);
    let out = dst.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rvmm: migration received: 2 vCPUs, "),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// The `Seccomp:` field of thread `tid` of `pid` (2: a filter).
fn seccomp_of(pid: i32, tid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn a_guest_migrates_with_the_sandbox_on_at_both_ends() {
    if !kvm_available("migration_sandbox_on") {
        return;
    }
    let mut src = start("mig-sb-src", &["--sandbox", "on"], None);
    let work = test_dir("mig-sb-sock");
    let uri = format!("unix:{}", work.join("mig.sock").display());
    let dst = start("mig-sb-dst", &["--sandbox", "on", "--incoming", &uri], None);
    // The source's migration thread exists before any `migrate`, filtered.
    let pid = src.pid();
    let migration: Vec<i32> = threads(pid)
        .into_iter()
        .filter(|&t| comm(pid, t) == "migration")
        .collect();
    assert_eq!(migration.len(), 1, "one migration thread");
    assert_eq!(
        seccomp_of(pid, migration[0]),
        "2",
        "the migration thread is filtered"
    );
    // A host name would need the resolver (files, DNS), which the filter does not allow:
    // refused before anything starts, naming the rule.
    let named = src
        .client()
        .execute("migrate", Some(json!({"uri": "tcp:nowhere.invalid:4444"})));
    let desc = named["error"]["desc"].as_str().unwrap_or("");
    assert!(
        desc.contains(
            "tcp:nowhere.invalid:4444: under --sandbox on the migration thread does not \
             resolve host names"
        ),
        "{named}"
    );
    let dst = migrate_and_check(&mut src, dst, &uri);
    src.client().ok("quit", None);
    let out = src.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("seccomp"), "{stderr}");
    dst.client().ok("quit", None);
    let out = dst.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("seccomp"), "{stderr}");
    let _ = std::fs::remove_dir_all(&work);
}

/// Two network namespaces linked by a veth pair, removed on drop.
struct Netns {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn new() -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        let n = Netns {
            a: format!("rvmm-mig-a-{id}"),
            b: format!("rvmm-mig-b-{id}"),
        };
        let (va, vb) = (format!("rma{id}"), format!("rmb{id}"));
        ip(&["netns", "add", &n.a])?;
        ip(&["netns", "add", &n.b])?;
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", &n.a])?;
        ip(&["link", "set", &vb, "netns", &n.b])?;
        for (ns, dev, addr) in [(&n.a, &va, "10.231.77.1/24"), (&n.b, &vb, "10.231.77.2/24")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(n)
    }

    /// The two namespaces for test `test`, or `None` once the test is skipped (no KVM under
    /// RVMM_SKIP_KVM=1, no `ip` command, or namespaces cannot be made here).
    fn for_test(test: &str) -> Option<Netns> {
        if !kvm_available(test) {
            return None;
        }
        if Command::new("ip").arg("-V").output().is_err() {
            skip(test, "no `ip` command (iproute2)");
            return None;
        }
        match Netns::new() {
            Ok(n) => Some(n),
            Err(e) => {
                skip(test, &format!("cannot make network namespaces: {e}"));
                None
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

#[test]
fn a_guest_migrates_between_network_namespaces_and_back() {
    const TEST: &str = "migration_netns";
    let Some(net) = Netns::for_test(TEST) else {
        return;
    };
    let mut a = start("mig-ns-a", &[], Some(&net.a));
    let to_b = "tcp:10.231.77.2:4444";
    let b = start("mig-ns-b", &["--incoming", to_b], Some(&net.b));
    let mut b = migrate_and_check(&mut a, b, to_b);
    a.client().ok("quit", None);
    a.wait(Duration::from_secs(10));
    // And back, to a new VM in namespace A.
    let to_a = "tcp:10.231.77.1:4445";
    let a2 = start("mig-ns-a2", &["--incoming", to_a], Some(&net.a));
    let a2 = migrate_and_check(&mut b, a2, to_a);
    b.client().ok("quit", None);
    b.wait(Duration::from_secs(10));
    a2.client().ok("quit", None);
    a2.wait(Duration::from_secs(10));
    drop(net);
}

/// The link between the two "hosts" goes away during pre-copy (the veth pair deleted: no
/// RST, no FIN reaches the source): the source's writes stall, it gives up after the send
/// timeout with a reason, and goes on running and counting.
#[test]
fn a_link_removed_during_pre_copy_leaves_the_source_running() {
    const TEST: &str = "migration_link_removed";
    let Some(net) = Netns::for_test(TEST) else {
        return;
    };
    let mut src = start("mig-link-src", &[], Some(&net.a));
    let to_b = "tcp:10.231.77.2:4446";
    let dst = start("mig-link-dst", &["--incoming", to_b], Some(&net.b));
    src.wait_line("PROBE-COUNTER cpu=1");
    let mut c = src.client();
    // ~20 kB/s: the first pass alone takes seconds, so the link goes during pre-copy (the
    // migration thread's writes stall, not the final phase's).
    c.ok(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 20_000})),
    );
    c.ok("migrate", Some(json!({ "uri": to_b })));
    wait_active(&mut c);
    let id = std::process::id() % 100_000;
    ip(&["-n", &net.a, "link", "del", &format!("rma{id}")]).unwrap();
    let info = wait_finished(&mut c);
    assert_eq!(info["status"], "failed", "{info}");
    // The stalled write's timeout, or the kernel's own error for the vanished route.
    let desc = info["error-desc"].as_str().unwrap_or("");
    assert!(desc.contains("peer"), "{info}");
    assert_eq!(c.ok("query-status", None)["status"], "running");
    let seen = counters(&src.lines()).len();
    counts_on(&src, seen, "after the link went away");
    assert!(counters(&src.lines()).iter().all(|&(_, _, ok)| ok));
    c.ok("quit", None);
    src.wait(Duration::from_secs(10));
    drop(dst);
    drop(net);
}

/// Waits until the source printed more counter lines than `seen`.
fn counts_on(vm: &BackgroundVm, seen: usize, what: &str) {
    let start = Instant::now();
    while counters(&vm.lines()).len() <= seen {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: the source stopped counting"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_destination_killed_during_pre_copy_or_a_cancel_leaves_the_source_running_and_it_migrates_after(
) {
    if !kvm_available("migration_failures") {
        return;
    }
    let mut src = start("mig-fail-src", &[], None);
    src.wait_line("PROBE-COUNTER cpu=1");
    let work = test_dir("mig-fail");
    let mut c = src.client();
    // ~100 kB/s: pre-copy of 128 MiB (mostly zero pages) takes seconds.
    c.ok(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 100_000})),
    );
    assert_eq!(
        c.ok("query-migrate-parameters", None),
        json!({"downtime-limit": 300, "max-bandwidth": 100_000, "announce-initial": 50,
               "announce-max": 550, "announce-rounds": 5, "announce-step": 100})
    );

    // The destination dies half-way.
    let uri = format!("unix:{}", work.join("a.sock").display());
    let mut dst = start("mig-fail-dst", &["--incoming", &uri], None);
    c.ok("migrate", Some(json!({ "uri": uri })));
    let busy = c.execute("migrate", Some(json!({ "uri": uri })));
    assert!(
        busy["error"]["desc"]
            .as_str()
            .unwrap()
            .contains("a migration is already in progress"),
        "{busy}"
    );
    wait_active(&mut c);
    // SAFETY: SIGKILL to our own child.
    unsafe { libc::kill(dst.pid(), libc::SIGKILL) };
    let info = wait_finished(&mut c);
    assert_eq!(info["status"], "failed", "{info}");
    assert!(
        info["error-desc"].as_str().is_some_and(|d| !d.is_empty()),
        "{info}"
    );
    assert!(!dst.alive());
    assert_eq!(c.ok("query-status", None)["status"], "running");
    counts_on(
        &src,
        counters(&src.lines()).len(),
        "after the destination died",
    );

    // A cancel during pre-copy.
    let uri = format!("unix:{}", work.join("b.sock").display());
    let dst = start("mig-cancel-dst", &["--incoming", &uri], None);
    c.ok("migrate", Some(json!({ "uri": uri })));
    std::thread::sleep(Duration::from_millis(300));
    c.ok("migrate_cancel", None);
    let info = wait_finished(&mut c);
    assert_eq!(info["status"], "cancelled", "{info}");
    assert_eq!(c.ok("query-status", None)["status"], "running");
    counts_on(&src, counters(&src.lines()).len(), "after the cancel");
    let out = dst.wait(Duration::from_secs(10));
    let (code, stderr) = failed_cleanly(&out, "the cancelled destination");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("incoming migration failed"), "{stderr}");

    // After both, a migration still works. With a downtime limit of 0, pre-copy ends only
    // on a round that finds nothing dirty, or at its cap of 30 rounds (the final phase
    // reads the log once more).
    let uri = format!("unix:{}", work.join("c.sock").display());
    let mut dst = start("mig-after-dst", &["--incoming", &uri], None);
    let out = migrate_cli(
        &src.socket,
        &uri,
        &["--downtime-limit", "0", "--max-bandwidth", "0"],
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rounds: u64 = said
        .split(" dirty-log rounds")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((2..=31).contains(&rounds), "{said}");
    assert_eq!(c.ok("query-status", None)["status"], "postmigrate");
    dst.wait_line("PROBE-COUNTER cpu=1");
    dst.client().ok("quit", None);
    let dout = dst.wait(Duration::from_secs(10));
    assert!(counters(&out_lines(&dout)).iter().all(|&(_, _, ok)| ok));

    c.ok("quit", None);
    let out = src.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rvmm: warning: migration failed:")
            && stderr.contains("rvmm: warning: migration cancelled:"),
        "{stderr}"
    );
    assert!(counters(&out_lines(&out)).iter().all(|&(_, _, ok)| ok));
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_destination_with_a_narrower_cpu_refuses_before_any_page() {
    if !kvm_available("migration_cpu") {
        return;
    }
    let mut src = start("mig-cpu-src", &["--cpu", "host"], None);
    src.wait_line("PROBE-COUNTER cpu=1");
    let work = test_dir("mig-cpu");
    let uri = format!("unix:{}", work.join("m.sock").display());
    let dst = start(
        "mig-cpu-dst",
        &["--cpu", "qemu64", "--incoming", &uri],
        None,
    );
    let out = migrate_cli(&src.socket, &uri, &[]);
    let (code, said) = failed_cleanly(&out, "rvmm migrate to a narrower CPU");
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("the destination refused the migration: this VM's CPU is narrower than the source's: vCPU 0 needs ")
            && said.contains("(this VM's --cpu qemu64 lacks them)"),
        "{said}"
    );
    // Named features (what `--cpu host` has beyond qemu64 depends on the host).
    let named = said
        .split("vCPU 0 needs ")
        .nth(1)
        .and_then(|r| r.split(" (this VM's").next())
        .unwrap_or("");
    assert!(
        !named.is_empty() && named.split(", ").all(|f| !f.is_empty() && !f.contains(' ')),
        "{said}"
    );
    let dout = dst.wait(Duration::from_secs(10));
    let (code, stderr) = failed_cleanly(&dout, "the refusing destination");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("refused the incoming migration: this VM's CPU is narrower"),
        "{stderr}"
    );
    assert!(dout.stdout.is_empty(), "the destination's guest never ran");
    let mut c = src.client();
    let info = c.ok("query-migrate", None);
    assert_eq!(info["status"], "failed");
    assert!(info["ram"].is_null(), "no page was sent: {info}");
    assert_eq!(c.ok("query-status", None)["status"], "running");
    counts_on(&src, counters(&src.lines()).len(), "after the refusal");

    // Another machine flag is named.
    let dst = start(
        "mig-flag-dst",
        &["--cpu", "host", "--machine", "pit=on", "--incoming", &uri],
        None,
    );
    let out = migrate_cli(&src.socket, &uri, &[]);
    let (_, said) = failed_cleanly(&out, "rvmm migrate to another --machine");
    assert!(
        said.contains("--machine differs: the source has none, this VM has \"pit=on\""),
        "{said}"
    );
    drop(dst);
    c.ok("quit", None);
    src.wait(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn bad_migration_input_is_refused_with_one_message() {
    if !kvm_available("migration_bad_input") {
        return;
    }
    let work = test_dir("mig-bad");
    let qmp: PathBuf = work.join("never.qmp");
    let run = |extra: &[&str]| {
        let mut c = rvmm();
        c.arg("run")
            .args(MACHINE)
            .args(extra)
            .arg("--qmp")
            .arg(format!("unix:{}", qmp.display()));
        run_with_timeout(c, Duration::from_secs(30))
    };
    let one_line = |out: &Output, what: &str, expect: &str| {
        let (code, stderr) = failed_cleanly(out, what);
        assert_eq!(code, 1, "{what}: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("rvmm: warning:"))
            .collect();
        assert_eq!(lines.len(), 1, "{what}: one message: {stderr}");
        assert!(lines[0].contains(expect), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}: the guest printed nothing");
        assert!(!qmp.exists(), "{what}: nothing started");
    };
    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let uri = format!("tcp:127.0.0.1:{port}");
    one_line(
        &run(&["--incoming", &uri]),
        "--incoming on a port in use",
        &format!("--incoming tcp:127.0.0.1:{port}: address in use"),
    );
    // Bad URIs.
    one_line(
        &run(&["--incoming", "exec:cat"]),
        "--incoming exec:",
        "--incoming exec:cat: a migration address is tcp:HOST:PORT or unix:PATH",
    );
    one_line(
        &run(&["--incoming", "tcp:127.0.0.1:0"]),
        "--incoming port 0",
        "tcp:127.0.0.1:0: the port must be a number from 1 to 65535",
    );
    let out = migrate_cli(&work.join("none.qmp"), "tcp:nowhere", &[]);
    let (code, said) = failed_cleanly(&out, "rvmm migrate to a bad URI");
    assert_eq!(code, 1);
    assert!(
        said.contains("tcp:nowhere: tcp: needs a host and a port (tcp:HOST:PORT)"),
        "{said}"
    );
    // Nobody listens.
    drop(taken);
    let mut src = start("mig-bad-src", &[], None);
    src.wait_line("PROBE-COUNTER cpu=1");
    let out = migrate_cli(&src.socket, &uri, &[]);
    let (code, said) = failed_cleanly(&out, "rvmm migrate to a closed port");
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains(&format!(
            "migration to {uri} failed: {uri}: cannot connect:"
        )) && said.contains("the VM keeps running"),
        "{said}"
    );
    let mut c = src.client();
    assert_eq!(c.ok("query-status", None)["status"], "running");
    let bad = c.execute("migrate", Some(json!({"uri": "fd:3"})));
    assert!(
        bad["error"]["desc"]
            .as_str()
            .unwrap()
            .contains("fd:3: a migration address is tcp:HOST:PORT or unix:PATH"),
        "{bad}"
    );
    counts_on(&src, counters(&src.lines()).len(), "after the failures");
    c.ok("quit", None);
    src.wait(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&work);
}

/// A hot-added vCPU after a gap in the slots (`--smp 1,maxcpus=4`, only core-id 2 added,
/// id "cpu2") migrates in its slot with its id: on the destination query-hotpluggable-cpus
/// and query-cpus-fast (but the thread ids) answer as on the source, and `device_del cpu2`
/// finds it (PIIX-PM's refusal while the counting guest keeps the legacy interface, as on
/// the source, not "not found").
#[test]
fn a_hot_added_vcpu_after_a_gap_migrates_in_its_slot_with_its_id() {
    if !kvm_available("migration_hotplug_gap") {
        return;
    }
    let machine = ["--smp", "1,maxcpus=4", "--append", "mode=counter", "--raw"];
    let spawn = |tag: &str, extra: &[&str]| {
        let dir = test_dir(tag);
        let socket = dir.join("vm.qmp");
        let mut cmd = rvmm();
        cmd.arg("run")
            .args(machine)
            .args(extra)
            .arg("--qmp")
            .arg(format!("unix:{}", socket.display()));
        BackgroundVm::spawn(cmd, dir, socket)
    };
    let work = test_dir("mig-gap");
    let uri = format!("unix:{}", work.join("mig.sock").display());
    let mut src = spawn("mig-gap-src", &[]);
    let mut dst = spawn("mig-gap-dst", &["--incoming", &uri]);
    src.wait_line("PROBE-COUNTER cpu=0 value=2");
    let mut c = src.client();
    let slots = c.ok("query-hotpluggable-cpus", None);
    let mut slot = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["props"]["core-id"] == 2)
        .unwrap()
        .clone();
    let mut args = slot["props"].take();
    args["driver"] = slot["type"].take();
    args["id"] = json!("cpu2");
    c.ok("device_add", Some(args));
    let slots = c.ok("query-hotpluggable-cpus", None);
    let without_tids = |c: &mut TestClient| {
        let mut cpus = c.ok("query-cpus-fast", None);
        for cpu in cpus.as_array_mut().unwrap() {
            cpu.as_object_mut().unwrap().remove("thread-id");
        }
        cpus
    };
    let cpus = without_tids(&mut c);
    assert_eq!(cpus.as_array().unwrap().len(), 2, "{cpus}");
    let del = c.execute("device_del", Some(json!({"id": "cpu2"})));
    assert!(del.get("error").is_some(), "{del}");
    c.ok("migrate", Some(json!({"uri": uri})));
    let info = wait_finished(&mut c);
    assert_eq!(info["status"], "completed", "{info}");

    dst.wait_line("PROBE-COUNTER cpu=0");
    let mut d = dst.client();
    assert_eq!(d.ok("query-hotpluggable-cpus", None), slots);
    assert_eq!(without_tids(&mut d), cpus);
    assert_eq!(d.execute("device_del", Some(json!({"id": "cpu2"}))), del);
    c.ok("quit", None);
    src.wait(Duration::from_secs(10));
    d.ok("quit", None);
    let out = dst.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rvmm: migration received: 2 vCPUs, "),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// `PROBE-VLOOP n=N ok|bad` lines (probe `virtio=loop`): (n, ok); a line with no status
/// word (cut by the migration) is skipped.
fn vloop(lines: &[String]) -> Vec<(u64, bool)> {
    lines
        .iter()
        .filter_map(|l| {
            let (n, status) = l.strip_prefix("PROBE-VLOOP n=")?.split_once(' ')?;
            let ok = match status.trim() {
                "ok" => true,
                "bad" => false,
                _ => return None,
            };
            Some((n.parse().ok()?, ok))
        })
        .collect()
}

/// The probe's `virtio=loop` sector and what it holds for counter `n` (virtio.c).
const LOOP_SECTOR: u64 = 16;

/// The counter the disk image holds in the loop's sector, checked against its pattern.
fn disk_counter(disk: &Path) -> u64 {
    let image = std::fs::read(disk).unwrap();
    let at = (LOOP_SECTOR * 512) as usize;
    let sector = &image[at..at + 512];
    let n = u64::from_le_bytes(sector[..8].try_into().unwrap());
    let mut want = n.to_le_bytes().to_vec();
    want.extend((8u64..512).map(|i| (n * 13 + i * 7 + (i >> 5)) as u8));
    assert_eq!(
        sector,
        &want[..],
        "sector {LOOP_SECTOR} holds counter {n}'s pattern"
    );
    n
}

/// A guest that keeps writing and reading back a virtio-blk sector (probe `virtio=loop`)
/// migrates over a unix socket on this host: the destination
/// opens the same image while the source holds its lock (it locks it only when the
/// migration completes), the guest's counter goes on from the source's with every request
/// answered right (the rings, the device state and the pages the disk thread wrote came
/// over), the image holds the latest counter, the source is postmigrate, and the
/// destination holds the disk's lock (a third VM on it is refused).
#[test]
fn a_guest_using_a_disk_migrates_over_a_unix_socket_and_goes_on() {
    if !kvm_available("migration_virtio_blk") {
        return;
    }
    let work = test_dir("mig-vblk");
    let disk = work.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let disk_arg = format!("path={}", disk.display());
    let machine = [
        "--append",
        "mode=virtio virtio=loop",
        "--raw",
        "--disk",
        &disk_arg,
    ];
    let mut src = BackgroundVm::start("mig-vblk-src", &machine);
    src.wait_line("PROBE-VLOOP n=8 ");
    let uri = format!("unix:{}", work.join("mig.sock").display());
    let mut dst_args = machine.to_vec();
    dst_args.extend(["--incoming", &uri]);
    let mut dst = BackgroundVm::start("mig-vblk-dst", &dst_args);
    assert_eq!(
        dst.client().ok("query-status", None)["status"],
        "inmigrate",
        "the destination waits, its disk open beside the source's"
    );
    let out = migrate_cli(&src.socket, &uri, &[]);
    assert!(
        out.status.success(),
        "rvmm migrate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = src.client();
    assert_eq!(c.ok("query-status", None)["status"], "postmigrate");
    let info = c.ok("query-migrate", None);
    assert_eq!(info["status"], "completed", "{info}");
    let before = vloop(&src.lines());
    assert!(before.iter().all(|&(_, ok)| ok), "source: {before:?}");
    let last_before = before.last().unwrap().0;
    dst.wait_line(&format!("PROBE-VLOOP n={} ", last_before + 16));
    assert_eq!(dst.client().ok("query-status", None)["status"], "running");

    // The source let the disk go, the destination has it.
    c.ok("quit", None);
    let out = src.wait(Duration::from_secs(10));
    assert!(out.status.success());
    let mut third = rvmm();
    third.arg("run").args(machine);
    let out = run_with_timeout(third, Duration::from_secs(30));
    let (_, said) = failed_cleanly(&out, "a third VM on the migrated disk");
    assert!(
        said.contains("the image is locked by another process"),
        "{said}"
    );

    dst.client().ok("quit", None);
    let out = dst.wait(Duration::from_secs(10));
    let after = vloop(&out_lines(&out));
    assert!(after.iter().all(|&(_, ok)| ok), "destination: {after:?}");
    let first_after = after[0].0;
    // Reports come every 4 rounds; the one in flight at the pause may be cut in two.
    assert!(
        first_after > last_before && first_after <= last_before + 8,
        "{last_before} last on the source, {first_after} first on the destination (a reset \
         or a jump)"
    );
    let last_after = after.last().unwrap().0;
    let on_disk = disk_counter(&disk);
    assert!(
        on_disk >= last_after && on_disk < last_after + 8,
        "the disk holds counter {on_disk}, the guest reported {last_after} last"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// A balloon inflated on the source migrates: the destination's `actual` is the
/// source's, and a lower target there is deflated through the migrated queues, the pages
/// reading zero.
#[test]
fn an_inflated_balloon_migrates_and_deflates_on_the_destination() {
    if !kvm_available("migration_virtio_balloon") {
        return;
    }
    const RAM: u64 = 256 << 20;
    let machine = [
        "-m",
        "256M",
        "--balloon",
        "--append",
        "mode=virtio balloon.wait=300",
        "--raw",
    ];
    let mut src = BackgroundVm::start("mig-vballoon-src", &machine);
    src.wait_line("PROBE-VIRTIO dev=0 id=5");
    let mut c = src.client();
    c.ok("balloon", Some(json!({ "value": RAM - (64 << 20) })));
    src.wait_line("PROBE-VIRTIO dev=0 balloon inflated=16384");
    let work = test_dir("mig-vballoon");
    let uri = format!("unix:{}", work.join("mig.sock").display());
    let mut dst_args = machine.to_vec();
    dst_args.extend(["--incoming", &uri]);
    let mut dst = BackgroundVm::start("mig-vballoon-dst", &dst_args);
    let out = migrate_cli(&src.socket, &uri, &[]);
    assert!(
        out.status.success(),
        "rvmm migrate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.ok("query-status", None)["status"], "postmigrate");
    let mut d = dst.client();
    // DONE reaches the source just before the destination's vCPUs start.
    let start = Instant::now();
    while d.ok("query-status", None)["status"] != "running" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the destination does not run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        d.ok("query-balloon", None)["actual"].as_u64(),
        Some(RAM - (64 << 20)),
        "the driver's actual came over"
    );
    d.ok("balloon", Some(json!({ "value": RAM - (32 << 20) })));
    dst.wait_line("PROBE-VIRTIO dev=0 balloon deflated=");
    assert_eq!(
        d.ok("query-balloon", None)["actual"].as_u64(),
        Some(RAM - (32 << 20))
    );
    c.ok("quit", None);
    src.wait(Duration::from_secs(10));
    d.ok("quit", None);
    let out = dst.wait(Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PROBE-VIRTIO dev=0 balloon deflated=8192 zero=yes"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

// ---- pause-before-switchover (QEMU's capability): a long pause the guest must notice ----

/// (cpu, gap_ms) of every `PROBE-COUNTER cpu=N ... gap_ms=G` line.
fn gaps(lines: &[String]) -> Vec<(u32, u64)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("PROBE-COUNTER cpu=")?;
            let cpu = rest.split_whitespace().next()?.parse().ok()?;
            let gap = rest
                .split_whitespace()
                .find_map(|w| w.strip_prefix("gap_ms="))?
                .parse()
                .ok()?;
            Some((cpu, gap))
        })
        .collect()
}

/// Polls `query-migrate` until its status is `status` (20 s at most).
fn wait_status(c: &mut TestClient, status: &str) -> Value {
    poll_migrate(
        c,
        Duration::from_secs(20),
        &format!("never {status}"),
        |info| info["status"] == status,
    )
}

/// The error `desc` of `cmd`, which must fail.
fn error_desc(c: &mut TestClient, cmd: &str, args: Option<Value>) -> String {
    let r = c.execute(cmd, args);
    r["error"]["desc"]
        .as_str()
        .unwrap_or_else(|| panic!("{cmd} did not fail: {r}"))
        .to_string()
}

/// Turns `pause-before-switchover` on (and checks the capability list before and after).
fn pause_before_switchover(c: &mut TestClient) {
    assert_eq!(
        c.ok("query-migrate-capabilities", None),
        json!([
            {"capability": "events", "state": true},
            {"capability": "pause-before-switchover", "state": false},
        ])
    );
    c.ok(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [
            {"capability": "pause-before-switchover", "state": true}]})),
    );
    assert_eq!(
        c.ok("query-migrate-capabilities", None)[1],
        json!({"capability": "pause-before-switchover", "state": true})
    );
}

/// The source waits in `pre-switchover` for 1.5 s before `migrate-continue`: `downtime`
/// (ms, measured by the source from its pause to DONE) includes the wait, and the guest
/// on the destination saw the same pause as its largest gap between two rounds (TSC time:
/// the destination moved kvmclock and the TSCs on by the time since the source read them).
/// Two measurements of one run are compared, not a fixed speed. Under kvm-pvm the guest's
/// TSC is the host's (writing IA32_TSC does not move it), so there the gap is wall time and
/// this does not check how far the destination moved the clocks; under VMX/SVM it does.
#[test]
fn a_pause_before_switchover_is_seen_by_the_guest_as_the_measured_downtime() {
    if !kvm_available("migration_pre_switchover") {
        return;
    }
    let mut src = start("mig-psw-src", &[], None);
    let work = test_dir("mig-psw-sock");
    let uri = format!("unix:{}", work.join("mig.sock").display());
    let mut dst = start("mig-psw-dst", &["--incoming", &uri], None);
    src.wait_line("PROBE-COUNTER cpu=1");
    let mut c = src.client();
    let mut events = src.client();
    pause_before_switchover(&mut c);
    // `rvmm migrate` waits through the pause, saying what it waits for.
    let cli = rvmm()
        .arg("migrate")
        .arg(&src.socket)
        .arg(&uri)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let info = wait_status(&mut c, "pre-switchover");
    assert!(info.get("downtime").is_none(), "{info}");
    // Paused, and the emulator thread serves QMP meanwhile.
    assert_eq!(c.ok("query-status", None)["status"], "paused");
    let desc = error_desc(
        &mut c,
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "events", "state": false}]})),
    );
    assert_eq!(desc, "There's a migration process in progress");
    let desc = error_desc(&mut c, "migrate-continue", Some(json!({"state": "active"})));
    assert!(
        desc.starts_with("Migration not in expected state: pre-switchover"),
        "{desc}"
    );
    let seen = counters(&src.lines()).len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        counters(&src.lines()).len(),
        seen,
        "the guest counted while paused"
    );
    c.ok("migrate-continue", Some(json!({"state": "pre-switchover"})));
    let info = wait_finished(&mut c);
    assert_eq!(info["status"], "completed", "{info}");
    let out = cli.wait_with_output().unwrap();
    let (said, told) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && said.starts_with(&format!("migrated to {uri} in ")),
        "{said}{told}"
    );
    assert!(
        told.contains("the VM is paused in pre-switchover (capability pause-before-switchover); waiting for QMP migrate-continue"),
        "{told}"
    );
    let downtime = info["downtime"].as_u64().unwrap();
    assert!(downtime >= 1500, "the wait is paused time: {info}");
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("completed") {
        let e = events.event("MIGRATION");
        statuses.push(e["data"]["status"].as_str().unwrap().to_string());
    }
    assert_eq!(
        statuses,
        ["setup", "active", "pre-switchover", "device", "completed"]
    );
    assert_eq!(c.ok("query-status", None)["status"], "postmigrate");

    // Every vCPU's first report on the destination holds the pause.
    dst.wait_line("PROBE-COUNTER cpu=1");
    let start_wait = Instant::now();
    let first = loop {
        let g = gaps(&dst.lines());
        let mut first = BTreeMap::new();
        for &(cpu, gap) in &g {
            first.entry(cpu).or_insert(gap);
        }
        if first.len() == 2 {
            break first;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(30),
            "the destination does not report: {g:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for (cpu, gap) in &first {
        assert!(
            *gap >= 1000 && gap.abs_diff(downtime) < 400,
            "vCPU {cpu}: the guest saw a {gap} ms gap, the source measured {downtime} ms of \
             downtime"
        );
    }
    eprintln!("pre-switchover: downtime {downtime} ms, the guest's gaps {first:?} ms");
    assert!(counters(&dst.lines()).iter().all(|&(_, _, ok)| ok));
    src.client().ok("quit", None);
    src.wait(Duration::from_secs(10));
    dst.client().ok("quit", None);
    dst.wait(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&work);
}

/// `migrate_cancel` in `pre-switchover`: the source resumes (RESUME, counting goes on),
/// the status is `cancelled`, the destination fails cleanly; with capability `events` off
/// no MIGRATION event goes out; and the bad inputs of the capability commands and
/// `migrate-continue` are one clear error each.
#[test]
fn a_cancel_in_pre_switchover_resumes_the_source_and_bad_capability_input_is_refused() {
    if !kvm_available("migration_pre_switchover_cancel") {
        return;
    }
    let mut src = start("mig-pswc-src", &[], None);
    let work = test_dir("mig-pswc-sock");
    let uri = format!("unix:{}", work.join("mig.sock").display());
    let dst = start("mig-pswc-dst", &["--incoming", &uri], None);
    src.wait_line("PROBE-COUNTER cpu=1");
    let mut c = src.client();
    let desc = error_desc(
        &mut c,
        "migrate-continue",
        Some(json!({"state": "pre-switchover"})),
    );
    assert!(
        desc.starts_with("Migration not in expected state: none"),
        "{desc}"
    );
    let desc = error_desc(&mut c, "migrate-continue", Some(json!({"state": "later"})));
    assert_eq!(desc, "Parameter 'state' does not accept value 'later'");
    let desc = error_desc(
        &mut c,
        "migrate-set-capabilities",
        Some(json!({"capabilities": [
            {"capability": "pause-before-switchover", "state": true},
            {"capability": "xbzrle", "state": true}]})),
    );
    assert_eq!(
        desc,
        "Parameter 'capability' does not accept value 'xbzrle' (rvmm's migration \
         capabilities: events, pause-before-switchover)"
    );
    let desc = error_desc(
        &mut c,
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "events", "state": "on"}]})),
    );
    assert_eq!(
        desc,
        "Invalid parameter type for 'capabilities[0].state', expected: boolean"
    );
    // Nothing of a refused list was applied.
    pause_before_switchover(&mut c);
    // Capability `events` off: no MIGRATION event (as in QEMU); STOP and RESUME still go.
    c.ok(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "events", "state": false}]})),
    );
    assert_eq!(
        c.ok("query-migrate-capabilities", None),
        json!([
            {"capability": "events", "state": false},
            {"capability": "pause-before-switchover", "state": true},
        ])
    );

    let mut events = src.client();
    c.ok("migrate", Some(json!({ "uri": uri })));
    wait_status(&mut c, "pre-switchover");
    events.event("STOP");
    c.ok("migrate_cancel", None);
    let info = wait_finished(&mut c);
    assert_eq!(info["status"], "cancelled", "{info}");
    assert_eq!(info["error-desc"], "cancelled by migrate_cancel", "{info}");
    events.event("RESUME");
    assert_eq!(c.ok("query-status", None)["status"], "running");
    counts_on(&src, counters(&src.lines()).len(), "after the cancel");
    // Events queued before this reply are in `events.events` now.
    events.ok("query-status", None);
    assert!(
        events.events.iter().all(|e| e["event"] != "MIGRATION"),
        "MIGRATION events with the capability off: {:?}",
        events.events
    );
    let desc = error_desc(
        &mut c,
        "migrate-continue",
        Some(json!({"state": "pre-switchover"})),
    );
    assert!(
        desc.starts_with("Migration not in expected state: cancelled"),
        "{desc}"
    );
    let out = dst.wait(Duration::from_secs(10));
    let (code, stderr) = failed_cleanly(&out, "the destination of the cancelled migration");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("incoming migration failed"), "{stderr}");
    c.ok("quit", None);
    let out = src.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rvmm: warning: migration cancelled: cancelled by migrate_cancel"),
        "{stderr}"
    );
    assert!(counters(&out_lines(&out)).iter().all(|&(_, _, ok)| ok));
    let _ = std::fs::remove_dir_all(&work);
}

/// QEMU 7.2 as the oracle: `query-migrate-capabilities` has the same shape and lists
/// `events` and `pause-before-switchover` among its capabilities, and the errors of
/// `migrate-continue` with no migration and of bad `migrate-set-capabilities` lists begin
/// with QEMU's texts (rvmm adds what it supports and what it needs after them).
#[test]
fn the_capability_commands_answer_in_qemus_shape_and_words() {
    if !kvm_available("migration_capabilities_qemu") {
        return;
    }
    let requests: Vec<(&str, Option<Value>)> = vec![
        ("query-migrate-capabilities", None),
        ("migrate-continue", Some(json!({"state": "pre-switchover"}))),
        ("migrate-continue", Some(json!({"state": "later"}))),
        (
            "migrate-set-capabilities",
            Some(json!({"capabilities": [{"capability": "foo", "state": true}]})),
        ),
        (
            "migrate-set-capabilities",
            Some(json!({"capabilities": [{"capability": "events", "state": "on"}]})),
        ),
        (
            "migrate-set-capabilities",
            Some(json!({"capabilities": [{"state": true}]})),
        ),
        (
            "migrate-set-capabilities",
            Some(json!({"capabilities": [{"capability": "events", "state": true, "x": 1}]})),
        ),
        (
            "migrate-set-capabilities",
            Some(json!({"capabilities": {}})),
        ),
        ("announce-self", Some(json!({}))),
        ("announce-self", Some(json!({"initial": 50}))),
        (
            "announce-self",
            Some(json!({"initial": 50, "max": 550, "rounds": 5, "step": 100})),
        ),
        (
            "migrate-set-parameters",
            Some(json!({"announce-rounds": 1001})),
        ),
        ("migrate-set-parameters", Some(json!({"announce-step": 0}))),
        (
            "migrate-set-parameters",
            Some(json!({"announce-initial": 100001})),
        ),
        ("query-migrate-parameters", None),
    ];
    let qemu = common::qemu_qmp(&[], &requests);

    let vm = start("mig-caps-qemu", &[], None);
    let mut c = vm.client();
    for ((cmd, args), q) in requests.iter().zip(&qemu) {
        let r = c.execute(cmd, args.clone());
        match (q.get("return"), r.get("return")) {
            (Some(Value::Array(theirs)), Some(Value::Array(ours))) => {
                for mine in ours {
                    let name = &mine["capability"];
                    let same = theirs.iter().find(|t| &t["capability"] == name);
                    let keys = |v: &Value| {
                        v.as_object()
                            .map(|o| o.keys().cloned().collect::<Vec<_>>())
                            .unwrap_or_default()
                    };
                    assert!(
                        same.is_some_and(|t| keys(t) == keys(mine) && t["state"].is_boolean()),
                        "{cmd}: QEMU has no {name} of the same shape as {mine}: {theirs:?}"
                    );
                }
            }
            (Some(Value::Object(theirs)), Some(Value::Object(ours))) => {
                // Every member rvmm answers, QEMU has; the announce ones (defaults) agree.
                for (k, v) in ours {
                    assert!(theirs.contains_key(k), "{cmd}: QEMU has no {k}: {theirs:?}");
                    if k.starts_with("announce-") {
                        assert_eq!(&theirs[k], v, "{cmd}: {k}");
                    }
                }
            }
            (None, None) => {
                let (theirs, ours) = (
                    q["error"]["desc"].as_str().unwrap(),
                    r["error"]["desc"].as_str().unwrap(),
                );
                assert!(
                    ours.starts_with(theirs),
                    "{cmd} {args:?}: QEMU says {theirs:?}, rvmm {ours:?}"
                );
                assert_eq!(q["error"]["class"], r["error"]["class"]);
            }
            _ => panic!("{cmd} {args:?}: QEMU answered {q}, rvmm {r}"),
        }
    }
    c.ok("quit", None);
    vm.wait(Duration::from_secs(10));
}

/// `cont` during `pre-switchover` runs the guest again (it counts); `migrate-continue` then
/// parks it once more and completes, and the destination goes on from the source's last
/// values (what the guest wrote while it ran again went over too).
#[test]
fn a_cont_during_pre_switchover_runs_the_guest_until_migrate_continue() {
    if !kvm_available("migration_pre_switchover_cont") {
        return;
    }
    let mut src = start("mig-pswr-src", &[], None);
    let work = test_dir("mig-pswr-sock");
    let uri = format!("unix:{}", work.join("mig.sock").display());
    let mut dst = start("mig-pswr-dst", &["--incoming", &uri], None);
    src.wait_line("PROBE-COUNTER cpu=1");
    let mut c = src.client();
    pause_before_switchover(&mut c);
    c.ok("migrate", Some(json!({ "uri": uri })));
    wait_status(&mut c, "pre-switchover");
    assert_eq!(c.ok("query-status", None)["status"], "paused");
    c.ok("cont", None);
    assert_eq!(c.ok("query-status", None)["status"], "running");
    counts_on(
        &src,
        counters(&src.lines()).len(),
        "after cont in pre-switchover",
    );
    assert_eq!(c.ok("query-migrate", None)["status"], "pre-switchover");
    c.ok("migrate-continue", Some(json!({"state": "pre-switchover"})));
    let info = wait_finished(&mut c);
    assert_eq!(info["status"], "completed", "{info}");
    assert_eq!(c.ok("query-status", None)["status"], "postmigrate");
    let last_before = last_per_cpu(&counters(&src.lines()));
    dst.wait_line("PROBE-COUNTER cpu=1");
    let after = counters(&dst.lines());
    let first = first_per_cpu(&after);
    for (cpu, b) in &last_before {
        let f = first.get(cpu).copied().unwrap_or(0);
        assert!(
            f >= *b && f < b + 200,
            "vCPU {cpu}: {b} last on the source, {f} first on the destination"
        );
    }
    assert!(after.iter().all(|&(_, _, ok)| ok), "{after:?}");
    src.client().ok("quit", None);
    src.wait(Duration::from_secs(10));
    dst.client().ok("quit", None);
    dst.wait(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&work);
}

// ---- virtio-net: a named tap handed over ----

/// (n, replies, lost) of every `PROBE-VNLOOP dev=0 n=N replies=R lost=L` line.
fn vnloop(lines: &[String]) -> Vec<(u64, u64, u64)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("PROBE-VNLOOP dev=0 ")?;
            let field = |name: &str| -> Option<u64> {
                rest.split(' ')
                    .find_map(|f| f.strip_prefix(name))?
                    .parse()
                    .ok()
            };
            Some((field("n=")?, field("replies=")?, field("lost=")?))
        })
        .collect()
}

/// `rvmm run ARGS --qmp ...` inside `n`'s network namespace.
fn start_in(n: &NetNs, tag: &str, args: &[&str]) -> BackgroundVm {
    let dir = test_dir(tag);
    let socket = dir.join("vm.qmp");
    let mut cmd = n.exec(Path::new(env!("CARGO_BIN_EXE_rvmm")));
    cmd.arg("run")
        .args(args)
        .arg("--qmp")
        .arg(format!("unix:{}", socket.display()));
    BackgroundVm::spawn(cmd, dir, socket)
}

/// A guest pinging the host through a named tap migrates on this host: the source closes
/// the tap at the handover and the destination opens it, the pings go on (at most the one
/// in flight lost), the destination announces the NIC. The source cannot run again while
/// the destination holds the tap; once it is gone, `cont` takes the tap back and the pings
/// go on there.
#[test]
fn a_guest_on_a_named_tap_migrates_and_its_pings_go_on() {
    const TEST: &str = "migration_virtio_net";
    if !kvm_available(TEST) {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip(TEST, "needs root for a network namespace and a tap");
        return;
    }
    let n = NetNs::new("mig-net");
    let work = test_dir("mig-vnet");
    let uri = format!("unix:{}", work.join("mig.sock").display());
    let net = format!("tap={}", n.tap);
    let machine = [
        "--append",
        "mode=virtio virtio=loop",
        "--raw",
        "--net",
        &net,
    ];
    let mut src = start_in(&n, "mig-vnet-src", &machine);
    src.wait_line("PROBE-VNLOOP dev=0 n=8 ");
    let mut dst_args = machine.to_vec();
    dst_args.extend(["--incoming", &uri]);
    let mut dst = start_in(&n, "mig-vnet-dst", &dst_args);
    let mut d = dst.client();
    assert_eq!(
        d.ok("query-status", None)["status"],
        "inmigrate",
        "the destination waits, its tap not yet opened (the source holds it)"
    );
    // As with QEMU (and libvirt, which does so), the waiting destination takes migration
    // parameters and capabilities: its announcement follows them.
    d.ok(
        "migrate-set-parameters",
        Some(json!({"announce-rounds": 3, "announce-initial": 100, "announce-step": 200})),
    );
    let p = d.ok("query-migrate-parameters", None);
    assert_eq!(
        (
            &p["announce-rounds"],
            &p["announce-initial"],
            &p["announce-step"],
            &p["announce-max"]
        ),
        (&json!(3), &json!(100), &json!(200), &json!(550)),
        "{p}"
    );
    d.ok(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "events", "state": false}]})),
    );
    let sniffer = n.sniff_rarp();
    let out = migrate_cli(&src.socket, &uri, &[]);
    assert!(
        out.status.success(),
        "rvmm migrate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = src.client();
    assert_eq!(c.ok("query-status", None)["status"], "postmigrate");
    // The destination announces the NIC in the rounds set above: 3 RARP requests about
    // the guest's MAC, from it, the first at once and then 100 and 300 ms apart (at least;
    // sleeps end late, never early). QEMU's default (5 rounds) is the unit tests'.
    let frames = sniffer.wait_frames(3, Duration::from_secs(10));
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert!(
        frames
            .iter()
            .all(|f| f.op == 3 && f.source == f.target && f.source == frames[0].source),
        "{frames:?}"
    );
    assert!(frames[2].ms - frames[0].ms >= 400, "{frames:?}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(sniffer.frames().len(), 3, "no more than 3 rounds");
    // What the destination was given while it waited is its own after the migration.
    assert_eq!(d.ok("query-migrate-parameters", None), p);
    let caps = d.ok("query-migrate-capabilities", None);
    assert!(
        caps.as_array()
            .unwrap()
            .contains(&json!({"capability": "events", "state": false})),
        "{caps}"
    );
    let before = vnloop(&src.lines());
    let &(last_n, _, last_lost) = before.last().unwrap();
    assert_eq!(last_lost, 0, "source: {before:?}");
    dst.wait_line(&format!("PROBE-VNLOOP dev=0 n={} ", last_n + 16));

    // The destination holds the tap: the source cannot run again, and says why.
    let refused = c.execute("cont", None);
    let desc = refused["error"]["desc"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        desc.starts_with(
            "migrate: cannot run again: the destination still holds what the migration handed over"
        ) && desc.contains(&format!("--net tap={}: the device is busy", n.tap)),
        "{refused}"
    );
    assert_eq!(c.ok("query-status", None)["status"], "postmigrate");

    // announce-self on the destination: the NIC by its tap's name, 2 rounds.
    let resent = n.sniff_rarp();
    let announce = |rounds: u64, interfaces: Value| {
        json!({"initial": 100, "max": 100, "rounds": rounds, "step": 1,
               "interfaces": interfaces})
    };
    d.ok("announce-self", Some(announce(2, json!([n.tap]))));
    let again = resent.wait_frames(2, Duration::from_secs(10));
    assert_eq!(again.len(), 2, "{again:?}");
    assert_eq!(again[0].source, frames[0].source);
    // By its libvirt-style name too; a name no NIC has is refused, naming the NICs.
    d.ok("announce-self", Some(announce(1, json!(["net0"]))));
    assert_eq!(resent.wait_frames(3, Duration::from_secs(10)).len(), 3);
    let refused = d.execute("announce-self", Some(announce(1, json!(["eth9"]))));
    assert_eq!(
        refused["error"]["desc"],
        format!(
            "announce-self: no NIC named 'eth9' (this VM's NICs: net0 (tap {}))",
            n.tap
        ),
        "{refused}"
    );

    d.ok("quit", None);
    let out = dst.wait(Duration::from_secs(10));
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        said.contains("; 1 NIC(s) announced (RARP, 3 round(s))"),
        "{said}"
    );
    let after = vnloop(&out_lines(&out));
    let &(first_n, _, _) = after.first().unwrap();
    let &(end_n, end_replies, end_lost) = after.last().unwrap();
    // Reports come every 4 pings; the one in flight at the pause may be cut in two.
    assert!(
        first_n > last_n && first_n <= last_n + 8,
        "{last_n} last on the source, {first_n} first on the destination"
    );
    assert!(
        end_lost <= 1 && end_replies + end_lost == end_n - 1,
        "the pings went on through the tap the destination took over: {after:?}"
    );

    // With the destination gone, the source takes its tap back and the pings go on there.
    c.ok("cont", None);
    assert_eq!(c.ok("query-status", None)["status"], "running");
    src.wait_line(&format!("PROBE-VNLOOP dev=0 n={} ", last_n + 8));
    c.ok("quit", None);
    let out = src.wait(Duration::from_secs(10));
    let resumed = vnloop(&out_lines(&out));
    let &(n_end, replies_end, lost_end) = resumed.last().unwrap();
    assert!(
        n_end >= last_n + 8 && lost_end <= 1 && replies_end + lost_end == n_end - 1,
        "{resumed:?}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
