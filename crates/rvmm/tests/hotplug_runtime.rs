//! vCPU hotplug on a running VM, end to end: real KVM, real QMP over the Unix socket. The
//! probe guest's `mode=halt` never looks at the CPU hotplug block (it stays in QEMU's legacy
//! mode), so this drives rvmm's side: `device_add` creates the slot's vCPU at run time (its
//! thread `CPU N/KVM`, pinned per `--vcpu-pin`, and the queries show it with its props and
//! qom-path), QEMU 7.2's refusals and texts, `device_del` of the boot CPU refused and of a
//! plugged one answered as QEMU's PIIX-PM answers before the guest switched to the modern
//! interface; the hot-added vCPU pauses, resumes and stops with the others. And, on the
//! library's vCPU threads with a real KVM vCPU, what an eject does: the thread parks, a
//! replug resets the vCPU from its own thread and runs it again, and a parked thread still
//! stops with the VM.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kvm_available;
use common::vm::{
    allowed_cpus, comm, task_stat, taskset_list, thread_names, threads, BackgroundVm,
};
use serde_json::{json, Value};

/// The `desc` of an error reply (panics on success).
fn error(reply: &Value) -> (String, String) {
    let e = reply
        .get("error")
        .unwrap_or_else(|| panic!("expected an error, got {reply}"));
    (
        e["class"].as_str().unwrap().to_string(),
        e["desc"].as_str().unwrap().to_string(),
    )
}

fn generic(reply: Value) -> String {
    let (class, desc) = error(&reply);
    assert_eq!(class, "GenericError", "{reply}");
    desc
}

#[test]
fn device_add_creates_a_pinned_vcpu_thread_and_the_queries_follow() {
    if !kvm_available("device_add_creates_a_pinned_vcpu_thread_and_the_queries_follow") {
        return;
    }
    let pin = *allowed_cpus().last().unwrap();
    let pin_arg = format!("2={pin}");
    let vm = BackgroundVm::start(
        "hotplug-runtime",
        &[
            "--smp",
            "1,maxcpus=4",
            "--vcpu-pin",
            &pin_arg,
            "--append",
            "mode=halt",
        ],
    );
    let pid = vm.pid();
    vm.wait_halted();
    let mut c = vm.client();

    // Slot 2 as query-hotpluggable-cpus lists it (highest first): empty, with its props.
    let slots = c.ok("query-hotpluggable-cpus", None);
    let slots = slots.as_array().unwrap();
    assert_eq!(slots.len(), 4);
    let slot2 = &slots[1];
    assert_eq!(slot2.get("qom-path"), None);
    let driver = slot2["type"].as_str().unwrap().to_string();
    let props = slot2["props"].clone();
    let max_socket = slots
        .iter()
        .map(|s| s["props"]["socket-id"].as_u64().unwrap())
        .max()
        .unwrap();
    let with = |extra: Value| -> Value {
        let mut a = props.clone();
        a["driver"] = json!(driver);
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    };

    // QEMU 7.2's refusals, none of which plugs anything.
    let other = if driver == "qemu64-x86_64-cpu" {
        "kvm64-x86_64-cpu"
    } else {
        "qemu64-x86_64-cpu"
    };
    assert_eq!(
        generic(c.execute("device_add", Some(with(json!({"driver": other}))))),
        format!("Invalid CPU type, expected cpu type: '{driver}'")
    );
    assert_eq!(
        generic(c.execute("device_add", Some(with(json!({"socket-id": 99}))))),
        format!("Invalid CPU socket-id: 99 must be in range 0:{max_socket}")
    );
    assert_eq!(
        generic(c.execute(
            "device_add",
            Some(json!({"driver": driver, "core-id": 0, "thread-id": 0}))
        )),
        "CPU socket-id is not set"
    );
    let mut slot0 = slots[3]["props"].clone();
    slot0["driver"] = json!(driver);
    assert_eq!(
        generic(c.execute("device_add", Some(slot0))),
        "CPU[0] with APIC ID 0 exists"
    );
    assert_eq!(
        generic(c.execute("device_add", Some(json!({"driver": "e1000"})))),
        "'e1000' is not a valid device model name"
    );
    assert!(
        !thread_names(pid).iter().any(|n| n == "CPU 2/KVM"),
        "no thread before the plug"
    );

    // The plug: a new vCPU thread, named and pinned like a boot one.
    assert_eq!(
        c.ok("device_add", Some(with(json!({"id": "cpu2"})))),
        json!({})
    );
    let fast = c.ok("query-cpus-fast", None);
    let cpus = fast.as_array().unwrap();
    assert_eq!(cpus.len(), 2);
    let cpu2 = &cpus[1];
    assert_eq!(cpu2["cpu-index"], 2);
    assert_eq!(cpu2["qom-path"], "/machine/peripheral/cpu2");
    assert_eq!(cpu2["props"], props);
    assert_eq!(cpu2["target"], "x86_64");
    let tid = cpu2["thread-id"].as_i64().unwrap() as i32;
    assert!(threads(pid).contains(&tid), "thread {tid} is rvmm's");
    assert_eq!(comm(pid, tid), "CPU 2/KVM");
    assert_eq!(taskset_list(tid), pin.to_string());
    // Filtered like every vCPU thread: the emulator thread's filter, inherited, and the
    // vCPU role's on top.
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(field("Seccomp").as_deref(), Some("2"), "{status}");
    assert_eq!(field("NoNewPrivs").as_deref(), Some("1"), "{status}");
    if let Some(n) = field("Seccomp_filters") {
        assert_eq!(n, "2", "{status}");
    }
    let slots = c.ok("query-hotpluggable-cpus", None);
    assert_eq!(slots[1]["qom-path"], "/machine/peripheral/cpu2");
    assert_eq!(slots[3]["qom-path"], "/machine/unattached/device[0]");
    assert_eq!(slots[0].get("qom-path"), None);

    // It waits for INIT/SIPI inside KVM_RUN: halted, not spinning.
    let start = Instant::now();
    while task_stat(pid, tid).0 != 'S' {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "CPU 2 never slept"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let info = c.ok("__org.rvmm_vcpuinfo", None);
    assert_eq!(info["vcpus"][2]["thread-id"], tid);
    assert_eq!(info["vcpus"][2]["state"], "halted");
    assert_eq!(info["vcpus"][2]["affinity"], pin.to_string());
    assert_eq!(info["vcpus"][1]["state"], "offline");

    // The same slot, the same id.
    assert_eq!(
        generic(c.execute("device_add", Some(with(json!({}))))),
        format!(
            "CPU[2] with APIC ID {} exists",
            2 // slot 2's APIC ID under -smp 1,maxcpus=4 (one thread per core)
        )
    );
    let mut slot3 = c.ok("query-hotpluggable-cpus", None)[0]["props"].clone();
    slot3["driver"] = json!(driver);
    slot3["id"] = json!("cpu2");
    assert_eq!(
        generic(c.execute("device_add", Some(slot3))),
        "Duplicate device ID 'cpu2'"
    );

    // device_del: the boot CPU is refused, an unknown id is not found, and the plugged one
    // gets PIIX-PM's answer while the guest still uses the legacy interface.
    assert_eq!(
        generic(c.execute(
            "device_del",
            Some(json!({"id": "/machine/unattached/device[0]"}))
        )),
        "Boot CPU is unpluggable"
    );
    assert_eq!(
        error(&c.execute("device_del", Some(json!({"id": "nope"})))),
        (
            "DeviceNotFound".to_string(),
            "Device 'nope' not found".to_string()
        )
    );
    assert_eq!(
        generic(c.execute("device_del", Some(json!({"id": "cpu2"})))),
        format!("acpi: device unplug request for not supported device type: {driver}")
    );

    // The hot-added vCPU pauses and resumes with the others.
    c.ok("stop", None);
    let info = c.ok("__org.rvmm_vcpuinfo", None);
    assert_eq!(info["vcpus"][0]["state"], "paused");
    assert_eq!(info["vcpus"][2]["state"], "paused");
    c.ok("cont", None);
    assert_eq!(c.ok("query-status", None)["status"], "running");

    // And stops with them: quit ends the process cleanly, with no DEVICE_DELETED on the way.
    c.ok("quit", None);
    let out = vm.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "rvmm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("did not stop"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !c.events.iter().any(|e| e["event"] == "DEVICE_DELETED"),
        "{:?}",
        c.events
    );
}

/// A vCPU plugged while the emulator thread carries `--emulator-pin` starts with the boot
/// vCPUs' affinity, not the emulator's; `vcpupin`, `emulatorpin` and `vcpuinfo` see it.
#[test]
fn a_plugged_vcpu_is_not_an_emulator_thread() {
    let test = "a_plugged_vcpu_is_not_an_emulator_thread";
    if !kvm_available(test) {
        return;
    }
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        common::skip(test, "needs two usable host CPUs");
        return;
    }
    let (a, b) = (cpus[0], cpus[1]);
    let vm = BackgroundVm::start(
        "hotplug-emulator-pin",
        &[
            "--smp",
            "1,maxcpus=2",
            "--emulator-pin",
            &a.to_string(),
            "--append",
            "mode=halt",
        ],
    );
    vm.wait_halted();
    let mut c = vm.client();
    let slot1 = c.ok("query-hotpluggable-cpus", None)[0].clone();
    let mut args = slot1["props"].clone();
    args["driver"] = slot1["type"].clone();
    c.ok("device_add", Some(args));
    let fast = c.ok("query-cpus-fast", None);
    let tid = |i: usize| fast[i]["thread-id"].as_i64().unwrap() as i32;
    assert_eq!(
        fast[1]["qom-path"], "/machine/peripheral-anon/device[0]",
        "no id: QEMU's anonymous path"
    );
    assert_eq!(taskset_list(tid(1)), taskset_list(tid(0)));
    assert_ne!(taskset_list(tid(1)), a.to_string());

    // emulatorpin moves every thread but the vCPUs, the plugged one included.
    let before = taskset_list(tid(1));
    c.ok(
        "__org.rvmm_emulatorpin",
        Some(json!({"cpus": b.to_string()})),
    );
    assert_eq!(taskset_list(tid(1)), before);
    // vcpupin reaches it.
    let pinned = c.ok(
        "__org.rvmm_vcpupin",
        Some(json!({"vcpu": 1, "cpus": b.to_string()})),
    );
    assert_eq!(pinned["vcpus"][0]["thread-id"], tid(1));
    assert_eq!(taskset_list(tid(1)), b.to_string());
    let info = c.ok("__org.rvmm_vcpuinfo", None);
    assert_eq!(info["vcpus"][1]["thread-id"], tid(1));
    assert_eq!(info["vcpus"][1]["affinity"], b.to_string());
    c.ok("quit", None);
    assert!(vm.wait(Duration::from_secs(20)).status.success());
}

/// Waits (up to 10 s) until `done` holds; panics naming `what` otherwise.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_ejected_vcpu_parks_and_a_replug_runs_it_again() {
    use vmm::devices::cpu_hotplug::CpuHotplug;
    use vmm::devices::serial::{com1, SerialOutput};
    use vmm::devices::Bus;
    use vmm::host::KvmHost;
    use vmm::machine::{IrqLine, MachineOptions, RamSlot, Vm};
    use vmm::memory::GuestRam;
    use vmm::vcpu::thread::{install_kick_handler, spawn, stop_all, VcpuShared};
    use vmm::vcpu::{VcpuRunState, VmControl, VmOutcome};

    if !kvm_available("an_ejected_vcpu_parks_and_a_replug_runs_it_again") {
        return;
    }
    let host = KvmHost::open().unwrap();
    let ram = Arc::new(GuestRam::new(4 << 20).unwrap());
    let slots: Vec<RamSlot> = ram
        .regions()
        .map(|(range, host_addr)| RamSlot {
            guest_addr: range.base,
            size: range.size,
            host_addr,
        })
        .collect();
    let options = MachineOptions {
        pit: vmm::config::machine::Switch::Off,
    };
    // SAFETY: the slots are `ram`'s live mappings; `ram` outlives the VM (declared
    // before it, dropped after it, and held by the vCPU thread until it ends).
    let vm = unsafe { Vm::new(&host.kvm, slots, options) }.unwrap();
    let uart = com1(
        vm.irqfd(IrqLine::Com1).unwrap(),
        SerialOutput::To(Box::new(std::io::sink())),
    );
    let bus = Arc::new(Bus::new(uart, false, CpuHotplug::new(vec![0, 1], 1)));
    install_kick_handler().unwrap();
    let control = Arc::new(VmControl::new().unwrap());
    // An application processor (APIC ID 1): it waits for INIT/SIPI inside KVM_RUN.
    let fd = vm.create_vcpu(1).unwrap();
    let shared = VcpuShared {
        bus,
        control: control.clone(),
        ram: ram.clone(),
        boot_msrs: Arc::from(vmm::cpu::msr::boot_msrs(&host.msr_index_list)),
        cgroup: None,
    };
    let mut handles = vec![spawn(1, fd, shared, None).unwrap()];
    let h = &handles[0];
    let tid = h.thread_id();
    let pid = std::process::id() as i32;
    wait_until("the AP sleeps in KVM_RUN", || task_stat(pid, tid).0 == 'S');
    assert_eq!(h.run_state(), VcpuRunState::Running);

    h.eject();
    wait_until("the ejected vCPU parks", || {
        h.run_state() == VcpuRunState::Ejected
    });
    assert!(h.is_ejected());
    // A VM-wide pause and resume leave it parked.
    control.request_pause();
    control.resume();
    assert_eq!(h.run_state(), VcpuRunState::Ejected);

    h.replug();
    wait_until("the replugged vCPU runs again", || {
        h.run_state() == VcpuRunState::Running
    });
    // Reset to a new AP (KVM_SET_MP_STATE from its own thread), it sleeps in KVM_RUN again
    // waiting for INIT/SIPI, and nothing failed on the way.
    wait_until("the replugged AP sleeps in KVM_RUN", || {
        task_stat(pid, tid).0 == 'S'
    });
    assert_eq!(control.outcome(), None);

    // Parked again, it still stops with the VM.
    h.eject();
    wait_until("parked again", || h.run_state() == VcpuRunState::Ejected);
    control.finish(VmOutcome::Quit);
    assert_eq!(
        stop_all(&mut handles, Duration::from_secs(5)),
        Vec::<u32>::new()
    );
    drop(vm);
}
