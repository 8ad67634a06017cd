//! `rvmm setvcpus VM COUNT` and `rvmm vcpucount VM` against a running probe VM: virsh's
//! table and single numbers, agreeing with QMP; counts out of range, unknown VMs and bad
//! syntax are one error line that changes nothing. QEMU is the oracle for the requests:
//! `rvmm setvcpus` plugs vCPUs into `qemu-system-x86_64 -M pc` through its QMP socket, with
//! the device ids, slots and cpu-index QEMU reports. The tests that plug and unplug rvmm's
//! own VM need the server's `device_add` / `device_del` and the probe's `mode=hotplug`
//! (issue 12) and are ignored until those land.

mod common;

use std::process::Output;
use std::time::Duration;

use common::vm::test_dir;
use common::vm::{thread_names, BackgroundVm};
use common::{
    failed_cleanly, kvm_available, probe_elf, qemu, run_with_timeout, rvmm, tempdir, text,
};
use serde_json::Value;

/// `rvmm ARGS` (a minute at most).
fn run(args: &[&str]) -> Output {
    let mut cmd = rvmm();
    cmd.args(args);
    run_with_timeout(cmd, Duration::from_secs(60))
}

/// `rvmm ARGS` that must succeed: its stdout.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rvmm {args:?} failed: {stderr}");
    assert_eq!(stderr, "", "rvmm {args:?}");
    stdout
}

/// `rvmm ARGS` that must fail with exit `code`: its stderr (nothing on stdout).
fn fails(args: &[&str], code: i32) -> String {
    let out = run(args);
    let (got, stderr) = failed_cleanly(&out, &format!("rvmm {args:?}"));
    assert_eq!(got, code, "rvmm {args:?}: {stderr}");
    assert_eq!(text(&out).0, "", "rvmm {args:?}");
    stderr
}

/// A probe VM (`mode`) with `smp`, named by its socket path.
fn probe_vm(tag: &str, smp: &str, mode: &str) -> (BackgroundVm, String) {
    let append = format!("mode={mode}");
    let mut vm = BackgroundVm::start_probe_elf(tag, &["--smp", smp, "--append", &append]);
    if mode == "hotplug" {
        // The guest handles hotplug events (its block is in the modern mode) from here on.
        vm.wait_line("PROBE-HOTPLUG ready");
    }
    let socket = vm.socket.to_str().unwrap().to_string();
    (vm, socket)
}

/// Per slot, highest first: (core-id, qom-path or "-"). The VMs here have QEMU 7.2's
/// default topology for `-smp N,maxcpus=4`: one socket of 4 cores.
fn slots(vm: &BackgroundVm) -> Vec<(u64, String)> {
    vm.client()
        .ok("query-hotpluggable-cpus", None)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["props"]["core-id"].as_u64().unwrap(),
                s["qom-path"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// The vCPU indexes query-cpus-fast lists.
fn cpus_fast(vm: &BackgroundVm) -> Vec<u64> {
    let reply: Value = vm.client().ok("query-cpus-fast", None);
    reply
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cpu-index"].as_u64().unwrap())
        .collect()
}

fn table(maximum: u32, current: u32) -> String {
    format!("maximum      live         {maximum:>3}\ncurrent      live         {current:>3}\n")
}

#[test]
fn vcpucount_prints_virshs_table_and_numbers() {
    if !kvm_available("vcpucount_prints_virshs_table_and_numbers") {
        return;
    }
    let (vm, sock) = probe_vm("vcpucount", "2,maxcpus=4", "halt");
    assert_eq!(
        ok(&["vcpucount", &sock]),
        "maximum      live           4\ncurrent      live           2\n"
    );
    // virsh: with a flag, just the number.
    assert_eq!(ok(&["vcpucount", &sock, "--maximum"]), "4\n");
    assert_eq!(ok(&["vcpucount", &sock, "--maximum", "--live"]), "4\n");
    assert_eq!(ok(&["vcpucount", &sock, "--active"]), "2\n");
    assert_eq!(ok(&["vcpucount", &sock, "--active", "--current"]), "2\n");
    assert_eq!(ok(&["vcpucount", &sock, "--live"]), "2\n");
    // The same counts as QMP's.
    assert_eq!(slots(&vm).len(), 4);
    assert_eq!(cpus_fast(&vm), [0, 1]);
    assert_eq!(
        fails(&["vcpucount", &sock, "--maximum", "--active"], 2),
        "rvmm: the argument '--maximum' cannot be used with '--active' (see rvmm --help)\n"
    );
    assert_eq!(
        fails(&["vcpucount", &sock, "--live", "--current"], 2),
        "rvmm: the argument '--live' cannot be used with '--current' (see rvmm --help)\n"
    );
}

#[test]
fn counts_out_of_range_are_errors_that_change_nothing() {
    if !kvm_available("counts_out_of_range_are_errors_that_change_nothing") {
        return;
    }
    let (vm, sock) = probe_vm("setvcpus-range", "2,maxcpus=4", "halt");
    let before = slots(&vm);
    assert_eq!(
        fails(&["setvcpus", &sock, "5"], 1),
        "rvmm: setvcpus: COUNT 5 is above the VM's maximum of 4 vCPUs (--smp maxcpus, or <vcpu> \
         of its domain)\n"
    );
    assert_eq!(
        fails(&["setvcpus", &sock, "4294967295"], 1),
        "rvmm: setvcpus: COUNT 4294967295 is above the VM's maximum of 4 vCPUs (--smp maxcpus, \
         or <vcpu> of its domain)\n"
    );
    assert_eq!(
        fails(&["setvcpus", &sock, "0"], 1),
        "rvmm: setvcpus: COUNT 0 is below the minimum of 1 vCPU (vCPU 0, the boot vCPU, is \
         never unplugged)\n"
    );
    // The count it has already: nothing to do, nothing printed.
    assert_eq!(ok(&["setvcpus", &sock, "2"]), "");
    assert_eq!(
        ok(&["setvcpus", &sock, "2", "--live", "--timeout", "1"]),
        ""
    );
    assert_eq!(slots(&vm), before);
    assert_eq!(ok(&["vcpucount", &sock]), table(4, 2));
    assert_eq!(cpus_fast(&vm), [0, 1]);
}

#[test]
fn bad_arguments_and_unknown_vms_are_one_error_line() {
    // A name resolves under $XDG_RUNTIME_DIR/rvmm: here an empty private one.
    let runtime = tempdir("setvcpus-runtime");
    let rvmm_dir = runtime.join("rvmm");
    std::fs::create_dir(&rvmm_dir).unwrap();
    std::fs::set_permissions(
        &rvmm_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let with_runtime = |args: &[&str]| {
        let mut cmd = rvmm();
        cmd.env("XDG_RUNTIME_DIR", &runtime).args(args);
        run_with_timeout(cmd, Duration::from_secs(30))
    };
    let socket = rvmm_dir.join("nosuch.qmp");
    for args in [&["setvcpus", "nosuch", "2"][..], &["vcpucount", "nosuch"]] {
        let out = with_runtime(args);
        let (code, stderr) = failed_cleanly(&out, &format!("{args:?}"));
        assert_eq!(code, 1);
        assert_eq!(
            stderr,
            format!(
                "rvmm: cannot connect to {}: No such file or directory (os error 2) (is a VM \
                 running with this --name or --qmp socket?)\n",
                socket.display()
            )
        );
    }
    // COUNT 0 is wrong whatever the VM: no connection is tried.
    let out = with_runtime(&["setvcpus", "nosuch", "0"]);
    assert_eq!(
        failed_cleanly(&out, "setvcpus 0").1,
        "rvmm: setvcpus: COUNT 0 is below the minimum of 1 vCPU (vCPU 0, the boot vCPU, is \
         never unplugged)\n"
    );
    let _ = std::fs::remove_dir_all(&runtime);
    let sock = "/nonexistent/vm.qmp";
    assert_eq!(
        fails(&["setvcpus", sock, "two"], 2),
        "rvmm: invalid value 'two' for '<COUNT>': invalid digit found in string (see rvmm \
         --help)\n"
    );
    assert_eq!(
        fails(&["setvcpus", sock, "2", "--timeout", "0"], 2),
        "rvmm: invalid value '0' for '--timeout <SECONDS>': 0 is not in 1..=86400 (see rvmm \
         --help)\n"
    );
    assert_eq!(
        fails(&["setvcpus", sock], 2),
        "rvmm: the following required arguments were not provided: <COUNT> (see rvmm --help)\n"
    );
}

#[test]
fn setvcpus_plugs_vcpus_into_qemu_as_qemu_numbers_them() {
    if !kvm_available("setvcpus_plugs_vcpus_into_qemu_as_qemu_numbers_them") {
        return;
    }
    // QEMU -M pc with the probe guest (which never switches the CPU hotplug block to its
    // modern mode, so QEMU refuses unplugs).
    let dir = test_dir("setvcpus-qemu");
    let elf = probe_elf(&dir);
    let socket = dir.join("qemu.qmp");
    let mut q = qemu();
    q.args(["-M", "pc", "-nodefaults", "-no-user-config", "-enable-kvm"])
        .args([
            "-cpu",
            "qemu64",
            "-smp",
            "2,maxcpus=4",
            "-m",
            "128",
            "-kernel",
        ])
        .arg(&elf)
        .args(["-append", "mode=halt", "-display", "none", "-serial"])
        .arg(format!("file:{}", dir.join("serial.log").display()))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", socket.display()));
    let vm = BackgroundVm::spawn(q, dir, socket);
    let sock = vm.socket.to_str().unwrap().to_string();
    assert_eq!(ok(&["vcpucount", &sock]), table(4, 2));
    // A boot vCPU has no id: device_del names it by the QOM path QEMU reports, which QEMU
    // resolves (else: "Device '...' not found"), then refuses in legacy mode.
    assert_eq!(
        fails(&["setvcpus", &sock, "1", "--timeout", "1"], 1),
        "rvmm: setvcpus: device_del of vCPU 1 (/machine/unattached/device[2]) failed: acpi: \
         device unplug request for not supported device type: qemu64-x86_64-cpu\n"
    );
    assert_eq!(ok(&["setvcpus", &sock, "4"]), "");
    assert_eq!(ok(&["vcpucount", &sock]), table(4, 4));
    // The vCPU numbers setvcpus gives are QEMU's cpu-index.
    let cpus = vm.client().ok("query-cpus-fast", None);
    let plugged: Vec<(u64, String)> = cpus
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cpu-index"].as_u64().unwrap(),
                c["qom-path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        plugged[2..],
        [
            (2, "/machine/peripheral/vcpu2".to_string()),
            (3, "/machine/peripheral/vcpu3".to_string()),
        ]
    );
    assert_eq!(
        fails(&["setvcpus", &sock, "5"], 1),
        "rvmm: setvcpus: COUNT 5 is above the VM's maximum of 4 vCPUs (--smp maxcpus, or <vcpu> \
         of its domain)\n"
    );
    // The highest goes first, by its id; QEMU's refusal is passed on and nothing changes.
    assert_eq!(
        fails(&["setvcpus", &sock, "3", "--timeout", "1"], 1),
        "rvmm: setvcpus: device_del of vCPU 3 (vcpu3) failed: acpi: device unplug request for \
         not supported device type: qemu64-x86_64-cpu\n"
    );
    assert_eq!(ok(&["vcpucount", &sock, "--active"]), "4\n");
}

/// The `CPU N/KVM` threads of the VM, by name.
fn vcpu_threads(vm: &BackgroundVm) -> Vec<String> {
    let mut names: Vec<String> = thread_names(vm.pid())
        .into_iter()
        .filter(|n| n.starts_with("CPU "))
        .collect();
    names.sort();
    names
}

#[test]
fn setvcpus_grows_and_shrinks_a_hotplug_guest() {
    if !kvm_available("setvcpus_grows_and_shrinks_a_hotplug_guest") {
        return;
    }
    let (vm, sock) = probe_vm("setvcpus-grow", "1,maxcpus=4", "hotplug");
    assert_eq!(ok(&["setvcpus", &sock, "3"]), "");
    assert_eq!(ok(&["vcpucount", &sock]), table(4, 3));
    assert_eq!(
        slots(&vm),
        [
            (3, "-".to_string()),
            (2, "/machine/peripheral/vcpu2".to_string()),
            (1, "/machine/peripheral/vcpu1".to_string()),
            (0, "/machine/unattached/device[0]".to_string()),
        ]
    );
    assert_eq!(cpus_fast(&vm), [0, 1, 2]);
    assert_eq!(vcpu_threads(&vm), ["CPU 0/KVM", "CPU 1/KVM", "CPU 2/KVM"]);
    assert_eq!(ok(&["setvcpus", &sock, "4", "--live"]), "");
    assert_eq!(ok(&["vcpucount", &sock, "--active"]), "4\n");
    // Down to 1: the highest first, waiting for the guest to eject each.
    assert_eq!(ok(&["setvcpus", &sock, "1", "--timeout", "20"]), "");
    assert_eq!(ok(&["vcpucount", &sock]), table(4, 1));
    assert_eq!(cpus_fast(&vm), [0]);
    let free: Vec<(u64, String)> = (1..4).rev().map(|s| (s, "-".to_string())).collect();
    assert_eq!(slots(&vm)[..3], free[..]);
    // A slot plugged again gets its alias back.
    assert_eq!(ok(&["setvcpus", &sock, "2"]), "");
    assert_eq!(slots(&vm)[2], (1, "/machine/peripheral/vcpu1".to_string()));
}

#[test]
fn setvcpus_unplugs_boot_vcpus_by_their_qom_path() {
    if !kvm_available("setvcpus_unplugs_boot_vcpus_by_their_qom_path") {
        return;
    }
    let (vm, sock) = probe_vm("setvcpus-boot", "3,maxcpus=4", "hotplug");
    assert_eq!(ok(&["setvcpus", &sock, "1"]), "");
    assert_eq!(ok(&["vcpucount", &sock]), table(4, 1));
    assert_eq!(cpus_fast(&vm), [0]);
}

#[test]
fn setvcpus_plugs_dies_with_their_die_id() {
    if !kvm_available("setvcpus_plugs_dies_with_their_die_id") {
        return;
    }
    let (vm, sock) = probe_vm(
        "setvcpus-dies",
        "1,maxcpus=4,sockets=1,dies=2,cores=2",
        "hotplug",
    );
    assert_eq!(ok(&["setvcpus", &sock, "4"]), "");
    let reply = vm.client().ok("query-hotpluggable-cpus", None);
    let plugged: Vec<(u64, u64, String)> = reply
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["props"]["die-id"].as_u64().unwrap(),
                s["props"]["core-id"].as_u64().unwrap(),
                s["qom-path"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    assert_eq!(
        plugged,
        [
            (1, 1, "/machine/peripheral/vcpu3".to_string()),
            (1, 0, "/machine/peripheral/vcpu2".to_string()),
            (0, 1, "/machine/peripheral/vcpu1".to_string()),
            (0, 0, "/machine/unattached/device[0]".to_string()),
        ]
    );
}

#[test]
fn a_paused_guest_times_out_naming_the_vcpus_then_ejects_them() {
    if !kvm_available("a_paused_guest_times_out_naming_the_vcpus_then_ejects_them") {
        return;
    }
    let (vm, sock) = probe_vm("setvcpus-stuck", "1,maxcpus=4", "hotplug");
    assert_eq!(ok(&["setvcpus", &sock, "3"]), "");
    // Paused, the guest cannot take the SCI: the unplugs stay pending.
    let mut c = vm.client();
    assert_eq!(c.ok("stop", None), serde_json::json!({}));
    assert_eq!(
        fails(&["setvcpus", &sock, "1", "--timeout", "1"], 1),
        "rvmm: setvcpus: the guest did not eject vCPUs 2 and 1 within 1 s: they are still \
         present and their requests stay pending (the guest may eject later, `rvmm vcpucount` \
         shows the count; a guest without ACPI CPU hotplug never ejects)\n"
    );
    assert_eq!(ok(&["vcpucount", &sock, "--active"]), "3\n");
    assert_eq!(cpus_fast(&vm), [0, 1, 2]);
    // Asking again while they are pending waits for the same vCPUs.
    assert_eq!(
        fails(&["setvcpus", &sock, "2", "--timeout", "1"], 1),
        "rvmm: setvcpus: the guest did not eject vCPU 2 within 1 s: it is still present and its \
         request stays pending (the guest may eject later, `rvmm vcpucount` shows the count; a \
         guest without ACPI CPU hotplug never ejects)\n"
    );
    // Running again, the guest ejects both.
    assert_eq!(c.ok("cont", None), serde_json::json!({}));
    let start = std::time::Instant::now();
    while ok(&["vcpucount", &sock, "--active"]) != "1\n" {
        assert!(start.elapsed() < Duration::from_secs(20), "never ejected");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ok(&["setvcpus", &sock, "1"]), "");
}

#[test]
fn a_guest_in_legacy_mode_gets_qemus_unplug_refusal() {
    if !kvm_available("a_guest_in_legacy_mode_gets_qemus_unplug_refusal") {
        return;
    }
    // mode=halt never switches the hotplug block to its modern mode: QEMU refuses unplugs
    // then (setvcpus_plugs_vcpus_into_qemu_as_qemu_numbers_them shows the same text).
    let (vm, sock) = probe_vm("setvcpus-legacy", "1,maxcpus=4", "halt");
    assert_eq!(ok(&["setvcpus", &sock, "3"]), "");
    assert_eq!(
        fails(&["setvcpus", &sock, "1", "--timeout", "1"], 1),
        "rvmm: setvcpus: device_del of vCPU 2 (vcpu2) failed: acpi: device unplug request for \
         not supported device type: qemu64-x86_64-cpu\n"
    );
    assert_eq!(cpus_fast(&vm), [0, 1, 2]);
}
