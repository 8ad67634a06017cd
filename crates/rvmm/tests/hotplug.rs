//! Issue 12: vCPU hotplug and unplug through QMP, with QEMU -M pc as the oracle. The probe
//! guest's `mode=hotplug` (guest/probe/hotplug.c) does what an OS does with QEMU's ACPI CPU
//! hotplug block: it switches it to the modern interface, waits for GPE0 bit 2, starts each
//! inserted vCPU with INIT/SIPI (that vCPU prints its CPUID) and ejects removed ones,
//! reporting _OST. The same QMP sequence drives QEMU and rvmm, and both must print the same
//! probe lines and send the same QMP replies and events (what QEMU 7.2 does is written out
//! below, as observed on this kind of host).
//!
//! The sequence: `device_add` cpu1 at core-id 1 (slot 1, APIC ID 1), `device_del` cpu1,
//! `device_add` cpu2 at core-id 2, the error replies QEMU gives for bad requests, then
//! `device_add` cpu1 again into the slot that was ejected, which starts it again.
//! Separately, a vCPU plugged before the guest switched the block (no insert event comes for
//! it) is started while the guest boots and can then be unplugged.
//!
//! QEMU 7.2 on a kvm-pvm host cannot plug a slot a second time: it reuses the parked KVM vCPU
//! and KVM_SET_CPUID2 on a vCPU that has run fails with EINVAL there, so QEMU exits with
//! `kvm_init_vcpu: kvm_arch_init_vcpu failed (1): Invalid argument`. The QEMU test checks that
//! known failure on kvm-pvm and the re-plug everywhere else; rvmm must re-plug on every host.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::vm::TestClient;
use common::{
    is_kvm_pvm, kvm_available, probe_elf, qemu, run_with_timeout, rvmm, stdout_lines, tempdir, text,
};
use serde_json::{json, Value};
use vmm::probe::decode::parse;

/// The CPU model both VMMs run, and the device type query-hotpluggable-cpus reports for it.
const MODEL: &str = "qemu64";
const CPU_TYPE: &str = "qemu64-x86_64-cpu";
/// How long the guest may take to boot (QEMU -M pc boots through SeaBIOS in ~8 s here).
const BOOT_LIMIT: Duration = Duration::from_secs(90);
/// How long one hotplug step (an event handled, a vCPU started and dumped) may take.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// A VMM running the probe in `mode=hotplug`: its serial lines as they arrive, its stderr,
/// and a negotiated QMP client. Killed on drop.
struct HotplugVm {
    child: Child,
    lines: Receiver<String>,
    /// Every serial line read so far (for failure messages).
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    qmp: TestClient,
    dir: PathBuf,
}

impl HotplugVm {
    /// Starts `cmd` (whose stdout is the guest's serial port and which listens for QMP on
    /// `socket`), connects to it and negotiates.
    fn start(mut cmd: Command, socket: &Path, dir: PathBuf) -> HotplugVm {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the VMM");
        let lines = stdout_lines(&mut child);
        let stderr: Arc<Mutex<String>> = Arc::default();
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let start = Instant::now();
        while UnixStream::connect(socket).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "the VMM exited ({status}) before its QMP socket appeared:\n{}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no QMP socket after 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut qmp = TestClient::connect(socket);
        qmp.stream
            .set_read_timeout(Some(STEP_LIMIT))
            .expect("set the QMP read timeout");
        assert_eq!(qmp.execute("qmp_capabilities", None), json!({"return": {}}));
        HotplugVm {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            qmp,
            dir,
        }
    }

    /// The serial lines up to and including the first one starting with `prefix`.
    fn lines_until(&mut self, prefix: &str, limit: Duration) -> Vec<String> {
        let start = Instant::now();
        let mut got = Vec::new();
        loop {
            let left = limit.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let done = line.starts_with(prefix);
                    got.push(line);
                    if done {
                        return got;
                    }
                }
                Err(e) => {
                    let why = match e {
                        RecvTimeoutError::Timeout => format!("within {limit:?}"),
                        RecvTimeoutError::Disconnected => "before the VMM's output ended".into(),
                    };
                    panic!(
                        "no serial line `{prefix}...` {why}; the guest printed \
                         (CPUID and ACPI lines left out):\n{}\nstderr:\n{}",
                        self.summary(),
                        self.stderr.lock().unwrap()
                    )
                }
            }
        }
    }

    /// The serial output so far without the CPUID and ACPI lines.
    fn summary(&self) -> String {
        self.seen
            .iter()
            .filter(|l| !l.starts_with("CPUID ") && !l.starts_with("ACPI "))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The next QMP reply to `cmd`, events kept aside.
    fn execute(&mut self, cmd: &str, args: Value) -> Value {
        self.qmp.execute(cmd, Some(args))
    }

    /// The next event (already received or still to come), without its timestamp.
    fn next_event(&mut self) -> Value {
        let mut e = if self.qmp.events.is_empty() {
            let m = self.qmp.recv();
            assert!(m.get("event").is_some(), "expected an event, got {m}");
            m
        } else {
            self.qmp.events.remove(0)
        };
        let stamp = e.as_object_mut().unwrap().remove("timestamp");
        assert!(stamp.is_some(), "an event without a timestamp: {e}");
        e
    }
}

impl Drop for HotplugVm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The probe's ready line for `-smp 1,maxcpus=4`.
const READY: &str = "PROBE-HOTPLUG ready cpus=1 max=4";

/// Waits for the guest to be ready: the boot dump (one vCPU, four MADT slots) and the ready
/// line. Returns the boot vCPU's CPUID leaves (for comparison with hot-added ones).
fn boot(vm: &mut HotplugVm) -> Vec<(u32, u32)> {
    let lines = vm.lines_until(READY, BOOT_LIMIT);
    let text = lines.join("\n");
    let dump = parse(&text).unwrap_or_else(|e| panic!("the boot dump: {e}\n{}", vm.summary()));
    assert_eq!(dump.cpus.len(), 1, "one boot vCPU");
    assert!(
        !lines.iter().any(|l| l.starts_with("PROBE-ERROR")),
        "{}",
        vm.summary()
    );
    dump.cpus[0].leaves.keys().copied().collect()
}

/// device_add of a vCPU at core-id `core` (socket 0, thread 0) with `id`.
fn add_args(id: &str, core: u32) -> Value {
    json!({"driver": CPU_TYPE, "id": id, "socket-id": 0, "core-id": core, "thread-id": 0})
}

/// Plugs `id` at core-id `slot` and checks the guest's side: the insert line, the new vCPU's
/// CPUID dump (its APIC ID is `slot`, its leaves those of the boot vCPU), the online line,
/// and the _OST QEMU reports.
fn plug(vm: &mut HotplugVm, id: &str, slot: u32, boot_leaves: &[(u32, u32)]) {
    assert_eq!(
        vm.execute("device_add", add_args(id, slot)),
        json!({"return": {}})
    );
    let online = format!("PROBE-HOTPLUG online slot={slot} apic={slot}");
    let lines = vm.lines_until(&online, STEP_LIMIT);
    let insert = format!("PROBE-HOTPLUG insert slot={slot} apic={slot}");
    assert_eq!(lines[0], insert, "{}", vm.summary());
    let cpuid: Vec<&String> = lines[1..lines.len() - 1].iter().collect();
    let prefix = format!("CPUID cpu={slot} ");
    assert!(
        !cpuid.is_empty() && cpuid.iter().all(|l| l.starts_with(&prefix)),
        "between the insert and online lines only the new vCPU's CPUID lines:\n{}",
        vm.summary()
    );
    // The decoder numbers vCPUs from 0: the lone vCPU becomes cpu=0.
    let block = format!(
        "PROBE-BEGIN v1\n{}\nPROBE-END cpus=1\n",
        cpuid
            .iter()
            .map(|s| s.replacen(&prefix, "CPUID cpu=0 ", 1))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let dump = parse(&block).unwrap_or_else(|e| panic!("the new vCPU's dump: {e}"));
    let cpu = &dump.cpus[0];
    let leaf1 = cpu.get(1, 0).expect("CPUID leaf 1");
    assert_eq!(
        leaf1[1] >> 24,
        slot,
        "CPUID.1:EBX[31:24], the initial APIC ID"
    );
    let leaves: Vec<(u32, u32)> = cpu.leaves.keys().copied().collect();
    assert_eq!(
        leaves, boot_leaves,
        "the hot-added vCPU has the boot vCPU's leaves"
    );
    assert_eq!(
        vm.next_event(),
        json!({"event": "ACPI_DEVICE_OST", "data": {"info": {
            "device": id, "slot": slot.to_string(), "slot-type": "CPU", "source": 1, "status": 0}}})
    );
}

/// Unplugs `id` (in `slot`) and checks the eject line and QEMU's events: _OST(3, 0x84) before
/// the eject, DEVICE_DELETED for the CPU's local APIC child and for the CPU itself, then
/// _OST(3, 0) without a device (it is gone).
fn unplug(vm: &mut HotplugVm, id: &str, slot: u32) {
    assert_eq!(
        vm.execute("device_del", json!({"id": id})),
        json!({"return": {}})
    );
    let eject = format!("PROBE-HOTPLUG eject slot={slot} apic={slot}");
    let lines = vm.lines_until(&eject, STEP_LIMIT);
    assert_eq!(lines, [eject], "{}", vm.summary());
    let path = format!("/machine/peripheral/{id}");
    let events: Vec<Value> = (0..4).map(|_| vm.next_event()).collect();
    assert_eq!(
        events,
        [
            json!({"event": "ACPI_DEVICE_OST", "data": {"info": {
                "device": id, "slot": slot.to_string(), "slot-type": "CPU", "source": 3,
                "status": 132}}}),
            json!({"event": "DEVICE_DELETED", "data": {"path": format!("{path}/lapic")}}),
            json!({"event": "DEVICE_DELETED", "data": {"device": id, "path": path}}),
            json!({"event": "ACPI_DEVICE_OST", "data": {"info": {
                "slot": slot.to_string(), "slot-type": "CPU", "source": 3, "status": 0}}}),
        ]
    );
}

/// query-hotpluggable-cpus as `[(core-id, qom-path)]`, checking the type and props.
fn hotpluggable(vm: &mut HotplugVm) -> Vec<(u64, Option<String>)> {
    let r = vm.execute("query-hotpluggable-cpus", json!({}));
    let list = r["return"].as_array().unwrap_or_else(|| panic!("{r}"));
    list.iter()
        .map(|c| {
            assert_eq!(c["type"], CPU_TYPE, "{c}");
            assert_eq!(c["vcpus-count"], 1, "{c}");
            assert_eq!(c["props"]["socket-id"], 0, "{c}");
            assert_eq!(c["props"]["thread-id"], 0, "{c}");
            (
                c["props"]["core-id"].as_u64().unwrap(),
                c["qom-path"].as_str().map(String::from),
            )
        })
        .collect()
}

/// query-cpus-fast as `[(cpu-index, qom-path, core-id)]`, checking the rest of each entry.
fn cpus_fast(vm: &mut HotplugVm) -> Vec<(u64, String, u64)> {
    let r = vm.execute("query-cpus-fast", json!({}));
    let list = r["return"].as_array().unwrap_or_else(|| panic!("{r}"));
    let mut tids: Vec<i64> = list
        .iter()
        .map(|c| c["thread-id"].as_i64().unwrap())
        .collect();
    tids.sort_unstable();
    tids.dedup();
    assert_eq!(tids.len(), list.len(), "one thread per vCPU: {r}");
    list.iter()
        .map(|c| {
            assert_eq!(c["target"], "x86_64", "{c}");
            assert_eq!(c["props"]["socket-id"], 0, "{c}");
            assert_eq!(c["props"]["thread-id"], 0, "{c}");
            (
                c["cpu-index"].as_u64().unwrap(),
                c["qom-path"].as_str().unwrap().to_string(),
                c["props"]["core-id"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn error_desc(vm: &mut HotplugVm, cmd: &str, args: Value) -> (String, String) {
    let r = vm.execute(cmd, args.clone());
    let e = r
        .get("error")
        .unwrap_or_else(|| panic!("{cmd} {args} should fail: {r}"));
    (
        e["class"].as_str().unwrap().to_string(),
        e["desc"].as_str().unwrap().to_string(),
    )
}

/// Bad requests, with QEMU 7.2's replies (cpu1 is ejected, cpu2 plugged at core-id 2).
fn bad_requests(vm: &mut HotplugVm) {
    let generic = |s: &str| ("GenericError".to_string(), s.to_string());
    let cases = [
        (
            "device_add",
            json!({"driver": CPU_TYPE, "id": "x", "socket-id": 0, "core-id": 0, "thread-id": 0}),
            generic("CPU[0] with APIC ID 0 exists"),
        ),
        (
            "device_add",
            add_args("x", 4),
            generic("Invalid CPU core-id: 4 must be in range 0:3"),
        ),
        (
            "device_add",
            json!({"driver": CPU_TYPE, "id": "x", "socket-id": 1, "core-id": 1, "thread-id": 0}),
            generic("Invalid CPU socket-id: 1 must be in range 0:0"),
        ),
        (
            "device_add",
            json!({"driver": CPU_TYPE, "id": "x", "socket-id": 0, "core-id": 1, "thread-id": 1}),
            generic("Invalid CPU thread-id: 1 must be in range 0:0"),
        ),
        (
            "device_add",
            json!({"driver": "kvm64-x86_64-cpu", "id": "x", "socket-id": 0, "core-id": 1,
                   "thread-id": 0}),
            generic("Invalid CPU type, expected cpu type: 'qemu64-x86_64-cpu'"),
        ),
        (
            "device_add",
            json!({"driver": CPU_TYPE, "id": "x"}),
            generic("CPU socket-id is not set"),
        ),
        (
            "device_add",
            add_args("cpu2", 3),
            generic("Duplicate device ID 'cpu2'"),
        ),
        (
            "device_del",
            json!({"id": "nosuch"}),
            (
                "DeviceNotFound".to_string(),
                "Device 'nosuch' not found".to_string(),
            ),
        ),
        (
            "device_del",
            json!({"id": "cpu1"}),
            (
                "DeviceNotFound".to_string(),
                "Device 'cpu1' not found".to_string(),
            ),
        ),
        (
            "device_del",
            json!({"id": "/machine/unattached/device[0]"}),
            generic("Boot CPU is unpluggable"),
        ),
    ];
    for (cmd, args, want) in cases {
        assert_eq!(error_desc(vm, cmd, args.clone()), want, "{cmd} {args}");
    }
    assert!(
        vm.qmp.events.is_empty(),
        "no events from refused requests: {:?}",
        vm.qmp.events
    );
}

/// Everything up to the re-plug: cpu1 in and out, cpu2 in, the refused requests, and
/// query-hotpluggable-cpus after each step.
fn first_plugs(vm: &mut HotplugVm) -> Vec<(u32, u32)> {
    let boot_leaves = boot(vm);
    let boot_cpu = Some("/machine/unattached/device[0]".to_string());
    assert_eq!(
        hotpluggable(vm),
        [(3, None), (2, None), (1, None), (0, boot_cpu.clone())]
    );
    plug(vm, "cpu1", 1, &boot_leaves);
    assert_eq!(
        hotpluggable(vm),
        [
            (3, None),
            (2, None),
            (1, Some("/machine/peripheral/cpu1".into())),
            (0, boot_cpu.clone())
        ]
    );
    unplug(vm, "cpu1", 1);
    assert_eq!(
        hotpluggable(vm),
        [(3, None), (2, None), (1, None), (0, boot_cpu.clone())]
    );
    plug(vm, "cpu2", 2, &boot_leaves);
    bad_requests(vm);
    assert_eq!(
        hotpluggable(vm),
        [
            (3, None),
            (2, Some("/machine/peripheral/cpu2".into())),
            (1, None),
            (0, boot_cpu)
        ]
    );
    assert_eq!(
        cpus_fast(vm),
        [
            (0, "/machine/unattached/device[0]".into(), 0),
            (2, "/machine/peripheral/cpu2".into(), 2)
        ]
    );
    boot_leaves
}

/// The re-plug of the ejected slot 1, then its second unplug and `quit`.
fn replug(vm: &mut HotplugVm, boot_leaves: &[(u32, u32)]) {
    plug(vm, "cpu1", 1, boot_leaves);
    unplug(vm, "cpu1", 1);
    assert_eq!(vm.execute("quit", json!({})), json!({"return": {}}));
}

/// The early plug's guest: it waits (wait-cpus=2) for the plug before it switches the block,
/// since rvmm boots the probe in milliseconds, and the plug may come after that on a busy
/// host.
const EARLY_APPEND: &str = "mode=hotplug wait-cpus=2";

/// A vCPU plugged right after the VMM starts, before the guest switched the block to the
/// modern interface (the guest waits for it: EARLY_APPEND): no insert event will come for it,
/// so the probe starts it while it boots, either from the MADT (if the firmware built the
/// tables after the plug) or from the block's enabled bit (PROBE-HOTPLUG present), as an OS's
/// boot-time scan does. Then it unplugs.
fn early_plug(vm: &mut HotplugVm) {
    assert_eq!(
        vm.execute("device_add", add_args("cpu1", 1)),
        json!({"return": {}})
    );
    let lines = vm.lines_until("PROBE-HOTPLUG ready", BOOT_LIMIT);
    assert_eq!(
        lines.last().unwrap(),
        "PROBE-HOTPLUG ready cpus=2 max=4",
        "{}",
        vm.summary()
    );
    let dump = parse(&lines.join("\n")).unwrap_or_else(|e| panic!("the boot dump: {e}"));
    let apic_of = |cpu: &vmm::probe::decode::CpuDump| cpu.get(1, 0).expect("CPUID leaf 1")[1] >> 24;
    let after: Vec<&String> = lines
        .iter()
        .skip_while(|l| !l.starts_with("PROBE-END"))
        .skip(1)
        .filter(|l| l.starts_with("PROBE-"))
        .collect();
    if dump.cpus.len() == 2 {
        assert_eq!(apic_of(&dump.cpus[1]), 1);
        assert_eq!(
            after,
            ["PROBE-HOTPLUG ready cpus=2 max=4"],
            "{}",
            vm.summary()
        );
    } else {
        assert_eq!(dump.cpus.len(), 1, "{}", vm.summary());
        assert_eq!(
            after,
            [
                "PROBE-HOTPLUG present slot=1 apic=1",
                "PROBE-HOTPLUG online slot=1 apic=1",
                "PROBE-HOTPLUG ready cpus=2 max=4"
            ],
            "{}",
            vm.summary()
        );
        let cpu1 = lines
            .iter()
            .filter_map(|l| l.strip_prefix("CPUID cpu=1 "))
            .map(|l| format!("CPUID cpu=0 {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        let d = parse(&format!("PROBE-BEGIN v1\n{cpu1}\nPROBE-END cpus=1\n"))
            .unwrap_or_else(|e| panic!("the plugged vCPU's dump: {e}"));
        assert_eq!(apic_of(&d.cpus[0]), 1);
    }
    assert!(
        vm.qmp.events.is_empty(),
        "no _OST for a vCPU the guest found at boot: {:?}",
        vm.qmp.events
    );
    unplug(vm, "cpu1", 1);
    assert_eq!(vm.execute("quit", json!({})), json!({"return": {}}));
}

/// QEMU -M pc with KVM, `-smp 1,maxcpus=4`, the probe with `append` (`mode=hotplug`, maybe
/// more), QMP on `socket`.
fn qemu_hotplug(dir: &Path, socket: &Path, append: &str) -> Command {
    let elf = probe_elf(dir);
    let mut q = qemu();
    q.args([
        "-M",
        "pc",
        "-nodefaults",
        "-no-user-config",
        "-enable-kvm",
        "-cpu",
        MODEL,
        "-smp",
        "1,maxcpus=4",
        "-m",
        "128",
        "-kernel",
    ])
    .arg(&elf)
    .args(["-append", append])
    .args([
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-serial",
        "stdio",
        "-display",
        "none",
        "-qmp",
    ])
    .arg(format!("unix:{},server=on,wait=off", socket.display()));
    q
}

/// `rvmm run` with the probe's `append` (`mode=hotplug`, maybe more), `--smp 1,maxcpus=4`,
/// QMP on `socket`.
/// The probe ELF boots as a `--kernel` so that stdout carries the guest's lines alone (the
/// built-in probe's `--raw` also prints the decoded view, which can land among them).
fn rvmm_hotplug(dir: &Path, socket: &Path, append: &str) -> Command {
    let mut cmd = rvmm();
    cmd.args(["run", "--kernel"]).arg(probe_elf(dir));
    cmd.args([
        "--cpu",
        MODEL,
        "--smp",
        "1,maxcpus=4",
        "--append",
        append,
        "--qmp",
    ])
    .arg(format!("unix:{}", socket.display()));
    cmd
}

#[test]
fn qemu_vcpu_plugged_before_the_guest_is_ready() {
    if !kvm_available("qemu_vcpu_plugged_before_the_guest_is_ready") {
        return;
    }
    let dir = tempdir("hotplug-qemu-early");
    let socket = dir.join("qmp.sock");
    let mut vm = HotplugVm::start(qemu_hotplug(&dir, &socket, EARLY_APPEND), &socket, dir);
    early_plug(&mut vm);
}

#[test]
fn rvmm_vcpu_plugged_before_the_guest_is_ready() {
    if !kvm_available("rvmm_vcpu_plugged_before_the_guest_is_ready") {
        return;
    }
    let dir = tempdir("hotplug-rvmm-early");
    let socket = dir.join("qmp.sock");
    let mut vm = HotplugVm::start(rvmm_hotplug(&dir, &socket, EARLY_APPEND), &socket, dir);
    early_plug(&mut vm);
}

#[test]
fn qemu_hotplug_oracle() {
    if !kvm_available("qemu_hotplug_oracle") {
        return;
    }
    let dir = tempdir("hotplug-qemu");
    let socket = dir.join("qmp.sock");
    let q = qemu_hotplug(&dir, &socket, "mode=hotplug");
    let mut vm = HotplugVm::start(q, &socket, dir);
    let boot_leaves = first_plugs(&mut vm);
    if !is_kvm_pvm() {
        return replug(&mut vm, &boot_leaves);
    }
    // kvm-pvm: QEMU 7.2 reuses the parked vCPU of slot 1 and cannot set its CPUID again.
    vm.qmp.send(
        format!(
            "{}\n",
            json!({"execute": "device_add", "arguments": add_args("cpu1", 1)})
        )
        .as_bytes(),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = vm.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < STEP_LIMIT,
            "QEMU re-plugged slot 1 on kvm-pvm: the known failure is gone, so drop this branch \
             and let replug() run here too"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    let stderr = vm.stderr.lock().unwrap().clone();
    assert!(
        !status.success()
            && stderr.contains("kvm_init_vcpu: kvm_arch_init_vcpu failed (1): Invalid argument"),
        "QEMU's re-plug on kvm-pvm: {status}\n{stderr}"
    );
    eprintln!("note: QEMU 7.2 cannot re-plug an ejected vCPU on kvm-pvm (KVM_SET_CPUID2 EINVAL)");
}

#[test]
fn rvmm_hotplug_matches_qemu() {
    if !kvm_available("rvmm_hotplug_matches_qemu") {
        return;
    }
    let dir = tempdir("hotplug-rvmm");
    let socket = dir.join("qmp.sock");
    let cmd = rvmm_hotplug(&dir, &socket, "mode=hotplug");
    let mut vm = HotplugVm::start(cmd, &socket, dir);
    let boot_leaves = first_plugs(&mut vm);
    replug(&mut vm, &boot_leaves);
    let start = Instant::now();
    while vm.child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < STEP_LIMIT, "rvmm did not end after quit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The guest-visible CPUID of a vCPU hot-added into slot 3 equals, line for line, that of the
/// boot-time vCPU in slot 3 of the same topology with every slot present (`--smp 4`): the
/// slot's table (`rvmm run --dry-run --show-cpuid --smp 4` prints it) is what it runs with.
#[test]
fn rvmm_hot_added_vcpu_sees_the_cpuid_of_its_boot_time_slot() {
    if !kvm_available("rvmm_hot_added_vcpu_sees_the_cpuid_of_its_boot_time_slot") {
        return;
    }
    let dir = tempdir("hotplug-rvmm-cpuid");
    let socket = dir.join("qmp.sock");
    let mut vm = HotplugVm::start(rvmm_hotplug(&dir, &socket, "mode=hotplug"), &socket, dir);
    boot(&mut vm);
    assert_eq!(
        vm.execute("device_add", add_args("cpu3", 3)),
        json!({"return": {}})
    );
    let prefix = "CPUID cpu=3 ";
    let hot: Vec<String> = vm
        .lines_until("PROBE-HOTPLUG online slot=3", STEP_LIMIT)
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect();

    let mut cmd = rvmm();
    cmd.args([
        "run",
        "--raw",
        "--cpu",
        MODEL,
        "--smp",
        "4",
        "--append",
        "mode=dump",
    ]);
    let out = common::run_with_timeout(cmd, BOOT_LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boot_time: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect();
    assert!(!boot_time.is_empty(), "the --smp 4 dump has vCPU 3");
    assert_eq!(hot, boot_time, "hot-added vs boot-time vCPU 3");
}

/// A bad `wait-cpus=` is one PROBE-ERROR line naming it and the value, then the guest powers
/// off before it touches the hotplug block.
#[test]
fn rvmm_probe_refuses_bad_wait_cpus() {
    if !kvm_available("rvmm_probe_refuses_bad_wait_cpus") {
        return;
    }
    for value in ["0", "257", "x"] {
        let append = format!("mode=hotplug wait-cpus={value}");
        let mut cmd = rvmm();
        cmd.args(["run", "--smp", "1,maxcpus=4", "--raw", "--append", &append]);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "{append}: the guest powers off: {stderr}"
        );
        let expect = format!("PROBE-ERROR bad wait-cpus (1..256) {value}");
        assert!(stdout.lines().any(|l| l == expect), "{append}:\n{stdout}");
        assert!(!stdout.contains("PROBE-HOTPLUG"), "{append}:\n{stdout}");
    }
}
