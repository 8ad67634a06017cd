//! The `--metrics` endpoint end to end: a busy probe VM serves Prometheus's text format
//! over TCP and over a Unix socket (with the sandbox on, as `rvmm run` defaults), the
//! `prometheus_client` parser from PyPI (scripts/deps.sh installs it in .cache/venv) reads
//! two scrapes, and the counters grow with the guest's load; other paths and methods are
//! refused; bad `--metrics` values fail with one message naming the option.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::vm::BackgroundVm;
use common::{failed_cleanly, kvm_available, repo, run_with_timeout, rvmm};
use serde_json::Value;

/// Parses each file with prometheus_client and prints, per file, the families (name →
/// type, documentation) and every sample (name, labels, value).
const PY_PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families

out = []
for path in sys.argv[1:]:
    with open(path) as f:
        text = f.read()
    families = {}
    samples = []
    for fam in text_string_to_metric_families(text):
        families[fam.name] = [fam.type, fam.documentation]
        for s in fam.samples:
            samples.append([s.name, s.labels, s.value])
    out.append({'families': families, 'samples': samples})
print(json.dumps(out))
"#;

/// The scrapes parsed by prometheus_client.
fn parse_with_prometheus_client(dir: &Path, bodies: &[String]) -> Vec<Value> {
    let script = dir.join("parse.py");
    std::fs::write(&script, PY_PARSE).unwrap();
    let mut cmd = std::process::Command::new(common::venv_python("prometheus_client"));
    cmd.arg(&script);
    for (i, body) in bodies.iter().enumerate() {
        let p = dir.join(format!("scrape{i}.txt"));
        std::fs::write(&p, body).unwrap();
        cmd.arg(p);
    }
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "prometheus_client could not parse the scrapes:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().clone()
}

/// One HTTP exchange: the status line, the headers and the body.
fn http(mut stream: impl Read + Write, request: &str) -> (String, String, String) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// A TCP port free now (the kernel's pick, released for rvmm to bind).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// The value of the sample `name` with `labels` (a subset) in a parsed scrape.
fn value(scrape: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v))
        .map(|s| s[2].as_f64().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]
}

fn family_type(scrape: &Value, family: &str) -> String {
    scrape["families"][family][0]
        .as_str()
        .unwrap_or_else(|| panic!("no family {family}"))
        .to_string()
}

/// What every scrape of a 2-vCPU VM named `vm` must show.
fn check_families(scrape: &Value, vm: &str) {
    // prometheus_client names a counter family without `_total`.
    for (family, kind) in [
        ("rvmm_vcpu_run_seconds", "counter"),
        ("rvmm_vcpu_steal_seconds", "counter"),
        ("rvmm_vcpu_user_seconds", "counter"),
        ("rvmm_vcpu_system_seconds", "counter"),
        ("rvmm_vcpu_guest_seconds", "counter"),
        ("rvmm_vcpu_context_switches", "counter"),
        ("rvmm_vcpu_host_cpu", "gauge"),
        ("rvmm_vm_vcpus", "gauge"),
        ("rvmm_vm_emulator_run_seconds", "counter"),
        ("rvmm_vcpu_kvm_exits", "counter"),
        ("rvmm_vcpu_kvm_halt_exits", "counter"),
        ("rvmm_vcpu_kvm_halt_poll_success_seconds", "counter"),
        ("rvmm_vcpu_kvm_halt_wait_seconds", "counter"),
        ("rvmm_vm_kvm_remote_tlb_flush", "counter"),
    ] {
        assert_eq!(family_type(scrape, family), kind, "{family}");
    }
    // KVM's log2 histograms are histogram families.
    for family in [
        "rvmm_vcpu_kvm_halt_wait_hist_seconds",
        "rvmm_vcpu_kvm_halt_poll_success_hist_seconds",
    ] {
        assert_eq!(family_type(scrape, family), "histogram", "{family}");
    }
    assert_eq!(value(scrape, "rvmm_vm_vcpus", &[("vm", vm)]), 2.0);
    for vcpu in ["0", "1"] {
        let l = [("vm", vm), ("vcpu", vcpu)];
        value(scrape, "rvmm_vcpu_run_seconds_total", &l);
        value(scrape, "rvmm_vcpu_host_cpu", &l);
        for kind in ["voluntary", "involuntary"] {
            value(
                scrape,
                "rvmm_vcpu_context_switches_total",
                &[("vm", vm), ("vcpu", vcpu), ("kind", kind)],
            );
        }
    }
}

#[test]
fn prometheus_client_parses_two_scrapes_and_the_counters_grow() {
    if !kvm_available("prometheus_client_parses_two_scrapes_and_the_counters_grow") {
        return;
    }
    let port = free_port();
    let address = format!("tcp:127.0.0.1:{port}");
    let vm = BackgroundVm::start(
        "metrics-tcp",
        &[
            "--smp",
            "2",
            "--append",
            "mode=busy",
            "--name",
            "metrics-vm",
            "--metrics",
            &address,
        ],
    );
    let (status, headers, first) = http(tcp(port), &get("/metrics"));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers
            .lines()
            .any(|h| h.starts_with("Content-Type: text/plain; version=0.0.4")),
        "{headers}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (_, _, second) = http(tcp(port), &get("/metrics?x=1"));
    let scrapes = parse_with_prometheus_client(&vm.dir, &[first, second]);
    for s in &scrapes {
        check_families(s, "metrics-vm");
    }
    // Log2 histograms: cumulative buckets ending in +Inf equal to the count.
    let hist = scrapes[1]["families"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, f)| f[0] == "histogram")
        .map(|(n, _)| n.clone())
        .collect::<Vec<_>>();
    for name in &hist {
        let buckets: Vec<(String, f64)> = scrapes[1]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s[0] == format!("{name}_bucket") && s[1]["vcpu"] == "0")
            .map(|s| {
                (
                    s[1]["le"].as_str().unwrap().to_string(),
                    s[2].as_f64().unwrap(),
                )
            })
            .collect();
        assert!(!buckets.is_empty(), "{name}");
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: {buckets:?}"
        );
        assert_eq!(buckets.last().unwrap().0, "+Inf", "{name}");
        let count = value(
            &scrapes[1],
            &format!("{name}_count"),
            &[("vm", "metrics-vm"), ("vcpu", "0")],
        );
        assert_eq!(buckets.last().unwrap().1, count, "{name}");
    }
    // Every series the Grafana dashboard queries is served.
    let served: Vec<&str> = scrapes[1]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_str().unwrap())
        .collect();
    for name in dashboard_metric_names() {
        assert!(
            served.contains(&name.as_str()),
            "the dashboard queries {name}, which is not served"
        );
    }
    // The busy guest's vCPUs ran, and exited to KVM, between the scrapes.
    for vcpu in ["0", "1"] {
        let l = [("vm", "metrics-vm"), ("vcpu", vcpu)];
        let run = |i: usize| value(&scrapes[i], "rvmm_vcpu_run_seconds_total", &l);
        let exits = |i: usize| value(&scrapes[i], "rvmm_vcpu_kvm_exits_total", &l);
        assert!(run(1) > run(0), "vCPU {vcpu} run {} → {}", run(0), run(1));
        assert!(
            exits(1) > exits(0),
            "vCPU {vcpu} exits {} → {}",
            exits(0),
            exits(1)
        );
    }
    // Other paths and methods, and a client that says nothing while another is served.
    let silent = tcp(port);
    let (status, _, _) = http(tcp(port), &get("/"));
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    drop(silent);
    let (status, headers, _) = http(tcp(port), "POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(headers.contains("Allow: GET"), "{headers}");
    let (status, _, _) = http(tcp(port), "nonsense\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let mut vm = vm;
    assert!(vm.alive(), "the VM carries on");
    // The serving thread runs under a seccomp filter (the sandbox is on by default).
    let tasks = std::fs::read_dir(format!("/proc/{}/task", vm.pid())).unwrap();
    let status = tasks
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim() == "metrics").then(|| std::fs::read_to_string(dir.join("status")).ok())?
        })
        .next()
        .expect("a thread named metrics");
    assert!(
        status.lines().any(|l| l == "Seccomp:\t2"),
        "the metrics thread is not filtered:\n{status}"
    );
}

#[test]
fn unix_socket_endpoint_is_private_and_removed_at_exit() {
    if !kvm_available("unix_socket_endpoint_is_private_and_removed_at_exit") {
        return;
    }
    let dir = common::vm::test_dir("metrics-unix-sock");
    let path = dir.join("metrics.sock");
    let address = format!("unix:{}", path.display());
    let vm = BackgroundVm::start(
        "metrics-unix",
        &["--smp", "2", "--append", "mode=busy", "--metrics", &address],
    );
    let mode = std::fs::symlink_metadata(&path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let scrape = || {
        let s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        http(s, &get("/metrics"))
    };
    let (status, _, first) = scrape();
    assert_eq!(status, "HTTP/1.1 200 OK");
    std::thread::sleep(Duration::from_millis(1000));
    let (_, _, second) = scrape();
    let scrapes = parse_with_prometheus_client(&dir, &[first, second]);
    // Without --name the vm label is the process id.
    let pid = vm.pid().to_string();
    for s in &scrapes {
        check_families(s, &pid);
    }
    let l = [("vm", pid.as_str()), ("vcpu", "0")];
    assert!(
        value(&scrapes[1], "rvmm_vcpu_run_seconds_total", &l)
            > value(&scrapes[0], "rvmm_vcpu_run_seconds_total", &l)
    );
    let mut client = vm.client();
    client.ok("quit", None);
    let out = vm.wait(Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "the socket is removed at exit"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rvmm run ARGS`, which must fail at once with `message` on stderr.
fn refused(args: &[&str], message: &str) {
    let mut cmd = rvmm();
    cmd.arg("run").args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let (_, stderr) = failed_cleanly(&out, &format!("rvmm run {args:?}"));
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert_eq!(
        stderr.matches("--metrics").count(),
        1,
        "one message: {stderr}"
    );
}

#[test]
fn bad_metrics_values_are_refused_with_one_message() {
    for (value, message) in [
        (
            "9100",
            "--metrics: '9100' is not an address (expected tcp:HOST:PORT or unix:PATH)",
        ),
        (
            "tcp:127.0.0.1:0",
            "--metrics: port 0 is not allowed: a scraper needs a known port (1 to 65535)",
        ),
        (
            "tcp:127.0.0.1:70000",
            "--metrics: port '70000' is not a number from 1 to 65535",
        ),
        (
            "tcp:metrics.example:80",
            "--metrics: 'metrics.example' is not an IP address",
        ),
        ("unix:", "--metrics: unix: needs a socket path (unix:PATH)"),
    ] {
        refused(&["--metrics", value], message);
    }
    if !kvm_available("bad_metrics_values_are_refused_with_one_message") {
        return;
    }
    // Problems only binding shows.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    refused(
        &["--metrics", &format!("tcp:127.0.0.1:{port}")],
        &format!("--metrics: tcp:127.0.0.1:{port}: the address is already in use"),
    );
    let dir = common::vm::test_dir("metrics-bad");
    refused(
        &[
            "--metrics",
            &format!("unix:{}/no/such/dir/m.sock", dir.display()),
        ],
        "bind: No such file or directory",
    );
    let planted = dir.join("planted");
    std::fs::write(&planted, b"keep").unwrap();
    refused(
        &["--metrics", &format!("unix:{}", planted.display())],
        "the path exists and is a regular file, not a socket; refusing to replace it",
    );
    assert_eq!(std::fs::read(&planted).unwrap(), b"keep");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The metric names the Grafana dashboard's queries use (regular expressions aside).
fn dashboard_metric_names() -> Vec<String> {
    let path = repo().join("docs/grafana/rvmm-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dash: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let mut names = Vec::new();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 8, "{exprs:?}");
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("rvmm_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            // A regular expression over names (`rvmm_vcpu_kvm_.+_exits_total`) is not one.
            if !tail[end..].starts_with(['.', '(']) {
                names.push(name.to_string());
            }
            rest = &tail[end..];
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn grafana_dashboard_is_json_and_queries_rvmm_metrics() {
    let names = dashboard_metric_names();
    for must in [
        "rvmm_vcpu_run_seconds_total",
        "rvmm_vcpu_steal_seconds_total",
        "rvmm_vcpu_kvm_halt_poll_success_seconds_total",
        "rvmm_vcpu_kvm_exits_total",
        "rvmm_vcpu_host_cpu",
    ] {
        assert!(names.iter().any(|n| n == must), "{must} not in {names:?}");
    }
}

#[test]
fn a_libvirt_domain_takes_metrics_too() {
    if !kvm_available("a_libvirt_domain_takes_metrics_too") {
        return;
    }
    let dir = common::vm::test_dir("metrics-domain");
    let socket = dir.join("vm.qmp");
    let metrics = dir.join("metrics.sock");
    let mut cmd = rvmm();
    cmd.arg("run")
        .arg("--domain")
        .arg(repo().join("crates/rvmm/tests/data/domains/hotplug.xml"))
        .arg("--qmp")
        .arg(format!("unix:{}", socket.display()))
        .arg("--metrics")
        .arg(format!("unix:{}", metrics.display()));
    let vm = BackgroundVm::spawn(cmd, dir, socket);
    let s = UnixStream::connect(&metrics).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (status, _, body) = http(s, &get("/metrics"));
    assert_eq!(status, "HTTP/1.1 200 OK");
    // The domain's <name> is the vm label; 2 of its 4 vCPUs are present.
    assert!(
        body.contains("\nrvmm_vm_vcpus{vm=\"rvmm-domain-hotplug\"} 2\n"),
        "{body}"
    );
    drop(vm);
}
