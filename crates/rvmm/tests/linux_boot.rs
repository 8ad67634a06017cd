//! Tier 3 and 4: the Debian cloud kernel under rvmm. On kvm-pvm hosts Linux only gets through
//! its early boot log before KVM gives up, so these tests assert what the kernel printed
//! about what rvmm gave it (e820 map, ACPI MADT, CPU count) and that rvmm then reports the
//! KVM internal error cleanly. Where KVM is hardware-backed the full-boot test reaches /init.

mod common;

use std::time::Duration;

use common::*;

const EARLY_APPEND: &str = "console=ttyS0 earlyprintk=serial,ttyS0 keep_bootcon";

/// Boots `kernel` with `--smp SMP -m 1G` and checks the early log. `reserved` is the e820
/// line for the legacy BIOS area: rvmm marks 0xe0000-0xfffff (the ACPI tables) reserved;
/// Linux's PVH entry widens that to the whole ISA hole 0xa0000-0xfffff itself.
fn early_boot(kernel: &std::path::Path, what: &str, smp: &str, reserved: &str, allowing: &str) {
    let mut cmd = rvmm();
    cmd.args([
        "run",
        "--smp",
        smp,
        "-m",
        "1G",
        "--append",
        EARLY_APPEND,
        "--kernel",
    ])
    .arg(kernel);
    let out = run_with_timeout(cmd, Duration::from_secs(400));
    let (stdout, stderr) = text(&out);
    let expect = [
        "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
        reserved,
        "BIOS-e820: [mem 0x0000000000100000-0x000000003fffffff] usable",
        "ACPI: Using ACPI (MADT) for SMP configuration information",
        allowing,
    ];
    for line in expect {
        assert!(
            stdout.contains(line),
            "{what}: the kernel log lacks {line:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        );
    }
    if is_kvm_pvm() {
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: rvmm must exit 1 when KVM gives up: {stderr}"
        );
        assert!(
            stderr.contains("KVM internal error (KVM_EXIT_INTERNAL_ERROR)")
                && stderr.contains("RIP="),
            "{what}: rvmm must name the internal error and show registers: {stderr}"
        );
    }
}

#[test]
fn bzimage_early_boot_shows_e820_madt_and_cpus() {
    if !kvm_available("bzimage_early_boot") {
        return;
    }
    let img = guest_image();
    early_boot(
        &img.bzimage,
        "bzImage",
        "4",
        "BIOS-e820: [mem 0x00000000000e0000-0x00000000000fffff] reserved",
        "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
    );
}

#[test]
fn vmlinux_pvh_early_boot_shows_e820_madt_and_cpus() {
    if !kvm_available("vmlinux_early_boot") {
        return;
    }
    let img = guest_image();
    early_boot(
        &img.vmlinux,
        "vmlinux (PVH)",
        "4",
        "BIOS-e820: [mem 0x00000000000a0000-0x00000000000fffff] reserved",
        "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
    );
}

/// The "smpboot: Allowing N CPUs, M hotplug CPUs" line, once (keep_bootcon prints lines twice).
fn smpboot_line(log: &str) -> Option<String> {
    log.lines().find_map(|l| {
        l.find("smpboot: Allowing")
            .map(|i| l[i..].trim_end().to_string())
    })
}

#[test]
fn smpboot_line_equals_qemu_for_hotplug_slots() {
    if !kvm_available("smpboot_vs_qemu") {
        return;
    }
    let img = guest_image();
    let smp = "4,maxcpus=8";
    let mut q = qemu();
    q.args([
        "-M",
        "microvm,x-option-roms=off,isa-serial=on,rtc=on",
        "-nodefaults",
        "-no-user-config",
        "-enable-kvm",
        "-cpu",
        "qemu64",
        "-smp",
        smp,
        "-m",
        "1G",
        "-serial",
        "stdio",
        "-display",
        "none",
        "-append",
        EARLY_APPEND,
        "-kernel",
    ])
    .arg(&img.vmlinux);
    let qemu_log =
        std::thread::spawn(move || run_until(q, "smpboot: Allowing", Duration::from_secs(300)));
    let mut r = rvmm();
    r.args([
        "run",
        "--smp",
        smp,
        "-m",
        "1G",
        "--append",
        EARLY_APPEND,
        "--kernel",
    ])
    .arg(&img.vmlinux);
    let ours = run_until(r, "smpboot: Allowing", Duration::from_secs(300));
    let theirs = qemu_log.join().unwrap();
    let (a, b) = (smpboot_line(&ours), smpboot_line(&theirs));
    assert!(a.is_some(), "rvmm: no smpboot line:\n{ours}");
    assert_eq!(a, b, "rvmm vs QEMU");
    assert_eq!(
        a.as_deref(),
        Some("smpboot: Allowing 8 CPUs, 4 hotplug CPUs")
    );
}

/// The kernel's NUMA lines from SRAT parsing to node setup, each once, in order.
fn numa_lines(log: &str) -> Vec<String> {
    const PREFIXES: [&str; 5] = [
        "SRAT: PXM",
        "ACPI: SRAT: Node",
        "NUMA: Node",
        "Initmem setup node 0",
        "smpboot: Allowing",
    ];
    let mut out: Vec<String> = Vec::new();
    for line in log.lines() {
        for p in PREFIXES {
            if let Some(i) = line.find(p) {
                let l = line[i..].trim_end().to_string();
                if !out.contains(&l) {
                    out.push(l);
                }
            }
        }
    }
    out
}

/// Issue "guest memory": with two guest NUMA nodes the Debian kernel's early NUMA lines under
/// rvmm equal those under QEMU -M pc (memdev nodes, the same options). Node 1's Initmem line is
/// left out: SeaBIOS reserves the top 128 KiB of RAM for its tables, rvmm's firmware-less
/// layout does not.
#[test]
fn numa_early_boot_lines_equal_qemu() {
    if !kvm_available("numa_vs_qemu") {
        return;
    }
    let img = guest_image();
    let mut q = qemu();
    q.args([
        "-M",
        "pc",
        "-enable-kvm",
        "-cpu",
        "qemu64",
        "-smp",
        "4",
        "-m",
        "2G",
        "-nodefaults",
    ])
    .args([
        "-object",
        "memory-backend-ram,id=m0,size=1G",
        "-object",
        "memory-backend-ram,id=m1,size=1G",
    ])
    .args([
        "-numa",
        "node,nodeid=0,cpus=0-1,memdev=m0",
        "-numa",
        "node,nodeid=1,cpus=2-3,memdev=m1",
    ])
    .args([
        "-numa",
        "dist,src=0,dst=1,val=21",
        "-serial",
        "stdio",
        "-display",
        "none",
    ])
    .args(["-append", EARLY_APPEND, "-kernel"])
    .arg(&img.vmlinux);
    let qemu_log =
        std::thread::spawn(move || run_until(q, "smpboot: Allowing", Duration::from_secs(300)));
    let mut r = rvmm();
    r.args(["run", "--smp", "4", "-m", "2G"])
        .args([
            "--numa",
            "node,nodeid=0,cpus=0-1,mem=1G",
            "--numa",
            "node,nodeid=1,cpus=2-3,mem=1G",
        ])
        .args([
            "--numa",
            "dist,src=0,dst=1,val=21",
            "--append",
            EARLY_APPEND,
            "--kernel",
        ])
        .arg(&img.vmlinux);
    let ours = numa_lines(&run_until(r, "smpboot: Allowing", Duration::from_secs(300)));
    let theirs = numa_lines(&qemu_log.join().unwrap());
    assert!(
        ours.contains(&"SRAT: PXM 1 -> APIC 0x03 -> Node 1".to_string()),
        "{ours:#?}"
    );
    assert!(
        ours.contains(&"ACPI: SRAT: Node 1 PXM 1 [mem 0x40000000-0x7fffffff]".to_string()),
        "{ours:#?}"
    );
    assert_eq!(ours, theirs, "rvmm vs QEMU -M pc");
}

#[test]
fn full_boot_reaches_init_with_all_vcpus() {
    if !kvm_available("full_boot") {
        return;
    }
    if is_kvm_pvm() {
        skip(
            "full_boot_reaches_init_with_all_vcpus",
            "/dev/kvm is kvm-pvm (software nested virtualization), where Linux stops after early boot",
        );
        return;
    }
    let img = guest_image();
    let mut cmd = rvmm();
    cmd.args([
        "run",
        "--smp",
        "4",
        "-m",
        "1G",
        "--append",
        "console=ttyS0 quiet",
        "--kernel",
    ])
    .arg(&img.bzimage)
    .arg("--initrd")
    .arg(&img.initramfs);
    let out = run_with_timeout(cmd, Duration::from_secs(300));
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "guest did not power off cleanly: {stderr}\n{stdout}"
    );
    assert!(stdout.contains("RVMM-GUEST nproc=4"), "{stdout}");
    assert!(stdout.contains("RVMM-GUEST done"), "{stdout}");
}

/// Linux onlines a vCPU plugged while it runs: the guest's `/init` reports `nproc=1`, QMP
/// `device_add` plugs the free slot, and the guest's command waits for
/// `/sys/devices/system/cpu/cpu1`, onlines it and prints `nproc` again. Needs a Linux that
/// gets past early boot, so hardware-backed KVM.
#[test]
fn linux_onlines_a_hot_added_vcpu() {
    let name = "linux_onlines_a_hot_added_vcpu";
    if !kvm_available(name) {
        return;
    }
    if is_kvm_pvm() {
        skip(
            name,
            "/dev/kvm is kvm-pvm (software nested virtualization), where Linux stops in early \
             boot, before its ACPI CPU hotplug driver runs",
        );
        return;
    }
    let img = guest_image();
    let wait_and_online = "i=0; while [ ! -e /sys/devices/system/cpu/cpu1/online ] && \
        [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
        echo 1 > /sys/devices/system/cpu/cpu1/online; nproc";
    let append = format!("console=ttyS0 quiet rvmm.cmd=\"{wait_and_online}\"");
    let (bzimage, initrd) = (
        img.bzimage.to_str().unwrap().to_string(),
        img.initramfs.to_str().unwrap().to_string(),
    );
    let mut vm = vm::BackgroundVm::start(
        "linux-hotplug",
        &[
            "--smp",
            "1,maxcpus=2",
            "-m",
            "1G",
            "--kernel",
            &bzimage,
            "--initrd",
            &initrd,
            "--append",
            &append,
        ],
    );
    vm.wait_line_within("RVMM-GUEST nproc=1", Duration::from_secs(120));
    let mut c = vm.client();
    let slots = c.ok("query-hotpluggable-cpus", None);
    let free = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s.get("qom-path").is_none())
        .expect("a free slot")
        .clone();
    let mut args = free["props"].clone();
    args["driver"] = free["type"].clone();
    args["id"] = "cpu1".into();
    assert_eq!(c.ok("device_add", Some(args)), serde_json::json!({}));
    let out = vm.wait(Duration::from_secs(300));
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "guest did not power off cleanly: {stderr}\n{stdout}"
    );
    assert!(stdout.contains("RVMM-GUEST cmd 2"), "nproc after: {stdout}");
    assert!(stdout.contains("RVMM-GUEST cmd-rc=0"), "{stdout}");
}
