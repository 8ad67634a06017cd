//! `query-stats` and `query-stats-schemas` with QEMU 7.2 as the oracle: QEMU (microvm, KVM)
//! and rvmm boot the probe guest busy with the same `-smp` on this host, and the `qemu.qmp`
//! Python client asks both the same questions. Both read the same kernel's KVM statistics,
//! so the schemas must be equal (names, types, units, bases, exponents, bucket sizes, in the
//! same order), the replies must have the same shapes, and bad requests must get the same
//! error texts. Values differ (two VMs), so they are checked for their kind only, and the
//! `exits` counter of every vCPU must grow between two calls on the busy guest.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::vm::BackgroundVm;
use common::{kvm_available, probe_elf, qemu, run_with_timeout, MICROVM};
use serde_json::{json, Value};

const SMP: &str = "2";

/// Runs each command of `script` (`[name, arguments]`, or `["sleep", seconds]`) through
/// qemu.qmp and prints one `{"ok": reply}` or `{"err": [class, desc]}` per command.
const PY_ASK: &str = r#"
import asyncio, json, sys
from qemu.qmp import QMPClient, ExecuteError

async def main(path, script):
    qmp = QMPClient('rvmm-stats-test')
    await qmp.connect(path)
    out = []
    for name, arguments in script:
        if name == 'sleep':
            await asyncio.sleep(arguments)
            continue
        try:
            out.append({'ok': await qmp.execute(name, arguments)})
        except ExecuteError as e:
            out.append({'err': [e.error_class, e.error.error.desc]})
    await qmp.disconnect()
    print(json.dumps(out))

asyncio.run(asyncio.wait_for(main(sys.argv[1], json.loads(sys.argv[2])), 60))
"#;

/// The answers of the VM listening on `socket` to `script`, in order.
fn ask(dir: &Path, socket: &Path, script: &Value) -> Vec<Value> {
    let path = dir.join("ask.py");
    std::fs::write(&path, PY_ASK).unwrap();
    let mut cmd = std::process::Command::new(common::venv_python("qemu.qmp"));
    cmd.arg(&path).arg(socket).arg(script.to_string());
    let out = run_with_timeout(cmd, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the qemu.qmp client failed on {}:\n{stdout}\n{}",
        socket.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str::<Value>(stdout.trim())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// QEMU 7.2 running the probe busy, killed on drop.
struct Qemu {
    child: Child,
    socket: PathBuf,
}

impl Qemu {
    fn start(dir: &Path) -> Qemu {
        let elf = probe_elf(dir);
        let socket = dir.join("qemu.qmp");
        let serial = dir.join("qemu-serial.txt");
        let child = qemu()
            .args([
                "-M",
                MICROVM,
                "-accel",
                "kvm",
                "-cpu",
                "host,-arch-capabilities",
            ])
            .args(["-smp", SMP, "-m", "128", "-nodefaults", "-no-user-config"])
            .args(["-display", "none", "-monitor", "none", "-kernel"])
            .arg(&elf)
            .args(["-append", "mode=busy", "-serial"])
            .arg(format!("file:{}", serial.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start qemu-system-x86_64");
        let mut q = Qemu { child, socket };
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&serial).unwrap_or_default();
            if text.contains("PROBE-BUSY") {
                return q;
            }
            assert!(
                q.child.try_wait().unwrap().is_none(),
                "QEMU exited before the probe was busy:\n{text}"
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "QEMU's probe never said PROBE-BUSY:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ok reply of answer `i`.
fn ok(answers: &[Value], i: usize) -> &Value {
    answers[i]
        .get("ok")
        .unwrap_or_else(|| panic!("command {i} failed: {}", answers[i]))
}

/// Every schema entry as (target, name, type, unit, base, exponent, bucket-size), in order.
fn schema_rows(schemas: &Value) -> Vec<(String, Value)> {
    let mut rows = Vec::new();
    for s in schemas.as_array().unwrap() {
        assert_eq!(s["provider"], "kvm");
        let keys: BTreeSet<&str> = s.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, BTreeSet::from(["provider", "target", "stats"]));
        for v in s["stats"].as_array().unwrap() {
            let row = json!([
                v["name"],
                v["type"],
                v.get("unit"),
                v.get("base"),
                v["exponent"],
                v.get("bucket-size")
            ]);
            rows.push((s["target"].as_str().unwrap().to_string(), row));
        }
    }
    rows
}

/// The members of each result and of each of its statistics, with the kind of each value.
fn shape(results: &Value) -> Vec<Value> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
            let stats: Vec<Value> = r["stats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
                    let kind = match &s["value"] {
                        Value::Bool(_) => json!("bool"),
                        Value::Number(n) => {
                            assert!(n.is_u64(), "{s}: not a non-negative integer");
                            json!("number")
                        }
                        Value::Array(a) => {
                            assert!(a.iter().all(Value::is_u64), "{s}: not a list of u64");
                            json!(["list", a.len()])
                        }
                        other => panic!("{s}: value {other} of no StatsValue kind"),
                    };
                    json!({"keys": keys, "name": s["name"], "kind": kind})
                })
                .collect();
            json!({"keys": keys, "provider": r["provider"], "stats": stats})
        })
        .collect()
}

/// `exits` of every result, by qom-path.
fn exits(results: &Value) -> Vec<(String, u64)> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let e = r["stats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "exits")
                .unwrap_or_else(|| panic!("no exits in {r}"));
            (
                r["qom-path"].as_str().unwrap().to_string(),
                e["value"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn query_stats_matches_qemu_7_2() {
    if !kvm_available("query_stats_matches_qemu_7_2") {
        return;
    }
    let dir = common::tempdir("stats-qmp");
    let q = Qemu::start(&dir);
    let mut vm =
        BackgroundVm::start_probe_elf("stats-qmp", &["--smp", SMP, "--append", "mode=busy"]);
    vm.wait_line("PROBE-BUSY");

    // The schemas first: both read the same kernel.
    let schemas =
        json!([["query-stats-schemas", {}], ["query-stats-schemas", {"provider": "kvm"}]]);
    let theirs = ask(&dir, &q.socket, &schemas);
    let ours = ask(&dir, &vm.socket, &schemas);
    assert_eq!(ok(&theirs, 0), ok(&theirs, 1));
    assert_eq!(ok(&ours, 0), ok(&ours, 1));
    let (their_rows, our_rows) = (schema_rows(ok(&theirs, 0)), schema_rows(ok(&ours, 0)));
    let targets = |rows: &[(String, Value)]| -> Vec<String> {
        let mut t: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        t.dedup();
        t
    };
    assert_eq!(targets(&their_rows), ["vcpu", "vm"]);
    assert_eq!(targets(&our_rows), ["vcpu", "vm"]);
    assert_eq!(our_rows, their_rows, "schemas differ");
    let names_of = |target: &str| -> Vec<String> {
        their_rows
            .iter()
            .filter(|r| r.0 == target)
            .map(|r| r.1[0].as_str().unwrap().to_string())
            .collect()
    };
    let (vm_names, vcpu_names) = (names_of("vm"), names_of("vcpu"));
    assert!(
        vcpu_names.iter().any(|n| n == "exits"),
        "no exits: {vcpu_names:?}"
    );

    // A names filter with a histogram and a boolean when the kernel has them, plus a name
    // that matches nothing.
    let pick = |pred: &dyn Fn(&Value) -> bool| {
        their_rows
            .iter()
            .find(|r| r.0 == "vcpu" && pred(&r.1))
            .map(|r| r.1[0].clone())
    };
    let mut filter = vec![json!("exits"), json!("no_such_stat")];
    filter.extend(pick(&|r| r[1].as_str().unwrap().ends_with("histogram")));
    filter.extend(pick(&|r| r[2] == "boolean"));
    let vcpu_filtered =
        json!({"target": "vcpu", "providers": [{"provider": "kvm", "names": filter}]});
    let script = json!([
        ["query-stats", {"target": "vm"}],
        ["query-stats", {"target": "vcpu"}],
        ["query-stats", vcpu_filtered],
        ["sleep", 1.0],
        ["query-stats", vcpu_filtered],
        ["query-cpus-fast", {}],
        ["query-stats", {"target": "vm", "providers": [{"provider": "kvm", "names": [vm_names[0], "exits"]}]}],
        ["query-stats", {"target": "vcpu", "providers": [{"provider": "kvm", "names": ["exits"]}, {"provider": "kvm", "names": ["no_such_stat"]}, {"provider": "kvm"}]}],
    ]);
    let theirs = ask(&dir, &q.socket, &script);
    let ours = ask(&dir, &vm.socket, &script);
    for i in 0..theirs.len() {
        if i == 4 {
            // query-cpus-fast: qom-paths are each VM's own (QEMU's microvm numbers devices
            // differently); checked below against query-stats of the same VM.
            continue;
        }
        assert_eq!(
            shape(ok(&ours, i)),
            shape(ok(&theirs, i)),
            "reply {i} differs in shape:\nrvmm: {}\nQEMU: {}",
            ok(&ours, i),
            ok(&theirs, i)
        );
    }
    // Every statistic of the schema, and no other, in each full reply.
    for (i, names) in [(0, &vm_names), (1, &vcpu_names)] {
        for r in ok(&ours, i).as_array().unwrap() {
            let got: Vec<&str> = r["stats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            assert_eq!(&got, names, "reply {i}");
        }
    }
    // One vCPU result per vCPU, last first, named as query-cpus-fast names them.
    for answers in [&ours, &theirs] {
        let mut paths: Vec<&Value> = ok(answers, 4)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["qom-path"])
            .collect();
        assert_eq!(paths.len(), 2);
        paths.reverse();
        for i in [1, 2, 3] {
            let got: Vec<&Value> = ok(answers, i)
                .as_array()
                .unwrap()
                .iter()
                .map(|r| &r["qom-path"])
                .collect();
            assert_eq!(got, paths, "reply {i}");
        }
        assert!(ok(answers, 0)[0].get("qom-path").is_none());
        // The counters grow on a busy guest.
        let (before, after) = (exits(ok(answers, 2)), exits(ok(answers, 3)));
        for ((path, b), (_, a)) in before.iter().zip(&after) {
            assert!(a > b, "{path}: exits {b} -> {a} did not grow");
        }
    }

    // Bad requests get QEMU's texts (and good odd ones its empty answers).
    let dev0 = ok(&ours, 4)[0]["qom-path"].clone();
    let bad = json!([
        ["query-stats", {}],
        ["query-stats", {"target": "foo"}],
        ["query-stats", {"target": "vm", "providers": [{"provider": "foo"}]}],
        ["query-stats", {"target": "vm", "providers": [{}]}],
        ["query-stats", {"target": "vm", "providers": [{"provider": "kvm", "names": [5]}]}],
        ["query-stats", {"target": "vm", "providers": [{"provider": "kvm", "x": 1}]}],
        ["query-stats", {"target": "vm", "vcpus": [dev0]}],
        ["query-stats", {"target": "vcpu", "vcpus": "x"}],
        ["query-stats", {"target": "vcpu", "vcpus": []}],
        ["query-stats", {"target": "vcpu", "vcpus": ["/machine/peripheral/none"]}],
        ["query-stats", {"target": "vm", "providers": [{"provider": "kvm", "names": ["no_such_stat"]}]}],
        ["query-stats", {"target": "vm", "providers": [{"provider": "kvm", "names": []}]}],
        ["query-stats-schemas", {"provider": "foo"}],
    ]);
    let theirs = ask(&dir, &q.socket, &bad);
    let ours = ask(&dir, &vm.socket, &bad);
    assert_eq!(ours, theirs);
    assert!(vm.alive());
    drop(q);
    drop(vm);
    let _ = std::fs::remove_dir_all(&dir);
}
