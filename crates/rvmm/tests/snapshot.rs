//! Snapshot and restore of a running VM, end to end (docs/snapshot.md): the probe's
//! `mode=counter` guest (every vCPU counts and checks a page it owns) runs with 2 vCPUs,
//! `rvmm snapshot VM DIR --stop` saves it, the VM is ended, and `rvmm run --restore DIR`
//! goes on: every counter continues from where it was (never below the last value printed
//! before the snapshot, never reset), and every page check still says `sum=ok`. Then the
//! bad inputs: a flipped byte in state.json, another format version, a truncated
//! memory.bin and a conflicting `--smp` each give one message and exit 1, and nothing
//! starts (no QMP socket appears, the guest prints nothing).
//!
//! virtio (issue 16): a guest that keeps using a virtio-blk disk (probe `virtio=loop`) goes
//! on after a restore with its counter and its disk; a snapshot without `--stop` leaves the
//! disk serving; a balloon keeps its target, `actual` and queues; a disk that changed size
//! is refused, naming the slot.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::vm::{test_dir, BackgroundVm, TestClient};
use common::{failed_cleanly, kvm_available, run_with_timeout, rvmm};

/// The tests here run one at a time: the balloon's driver polls its configuration (a vCPU
/// always busy), and beside it on a small host the counting guests' reports come too
/// seldom for the checks that they go on.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// (cpu, value, sum ok) of every `PROBE-COUNTER cpu=N value=V sum=S [gap_ms=G]` line.
fn counters(stdout: &[u8]) -> Vec<(u32, u64, bool)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("PROBE-COUNTER cpu=")?;
            let (cpu, rest) = rest.split_once(" value=")?;
            let (value, rest) = rest.split_once(" sum=")?;
            // Later fields (gap_ms=) follow the sum after a space.
            let sum = rest.split(' ').next()?;
            Some((cpu.parse().ok()?, value.parse().ok()?, sum == "ok"))
        })
        .collect()
}

fn last_per_cpu(lines: &[(u32, u64, bool)]) -> BTreeMap<u32, u64> {
    lines.iter().map(|&(c, v, _)| (c, v)).collect()
}

fn first_per_cpu(lines: &[(u32, u64, bool)]) -> BTreeMap<u32, u64> {
    let mut m = BTreeMap::new();
    for &(c, v, _) in lines {
        m.entry(c).or_insert(v);
    }
    m
}

fn restore(dir: &Path, extra: &[&str], qmp: &Path) -> Output {
    let mut c = rvmm();
    c.args(["run", "--restore"])
        .arg(dir)
        .args(extra)
        .arg("--qmp")
        .arg(format!("unix:{}", qmp.display()));
    run_with_timeout(c, Duration::from_secs(30))
}

/// `__org.rvmm_snapshot` of the VM `c` talks to into `dir` (`stop`: it stays paused): the
/// reply.
fn snapshot(c: &mut TestClient, dir: &Path, stop: bool) -> serde_json::Value {
    c.ok(
        "__org.rvmm_snapshot",
        Some(serde_json::json!({"path": dir.display().to_string(), "stop": stop})),
    )
}

/// `rvmm run --restore SNAP` in the background, with a QMP socket in a test directory
/// named `dir`.
fn spawn_restored(snap: &Path, dir: &str) -> BackgroundVm {
    let rdir = test_dir(dir);
    let socket = rdir.join("vm.qmp");
    let mut cmd = rvmm();
    cmd.args(["run", "--restore"])
        .arg(snap)
        .arg("--qmp")
        .arg(format!("unix:{}", socket.display()));
    BackgroundVm::spawn(cmd, rdir, socket)
}

/// Runs `--restore` that must fail: exit 1, one line on stderr containing `expect`, no
/// socket, no guest output.
fn refused(dir: &Path, extra: &[&str], expect: &str, what: &str) {
    let qmp = dir.with_extension("qmp");
    let out = restore(dir, extra, &qmp);
    let (code, stderr) = failed_cleanly(&out, what);
    assert_eq!(code, 1, "{what}: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("rvmm: warning:"))
        .collect();
    assert_eq!(lines.len(), 1, "{what}: one message: {stderr}");
    assert!(lines[0].contains(expect), "{what}: {stderr}");
    assert!(out.stdout.is_empty(), "{what}: the guest printed nothing");
    assert!(!qmp.exists(), "{what}: nothing started (no QMP socket)");
}

#[test]
fn a_counting_guest_goes_on_after_snapshot_and_restore_and_bad_snapshots_are_refused() {
    if !kvm_available("snapshot") {
        return;
    }
    let _one = one_at_a_time();
    let work = test_dir("snapshot-work");
    let snap: PathBuf = work.join("snap");

    // Run, snapshot with --stop (the VM stays paused: what it printed last is from before
    // the snapshot), end it.
    let mut vm = BackgroundVm::start(
        "snapshot-src",
        &["--smp", "2", "--append", "mode=counter", "--raw"],
    );
    vm.wait_line("PROBE-COUNTER cpu=1 value=2");
    let mut c = rvmm();
    c.arg("snapshot").arg(&vm.socket).arg(&snap).arg("--stop");
    let out = run_with_timeout(c, Duration::from_secs(30));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rvmm snapshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.starts_with("snapshot of 2 vCPUs and 128 MiB of guest RAM")
            && said.contains("the VM is paused"),
        "{said}"
    );
    let status = vm.client().ok("query-status", None);
    assert_eq!(status["status"], "paused", "--stop leaves the VM paused");
    vm.client().ok("quit", None);
    let before_out = vm.wait(Duration::from_secs(10));
    let before = counters(&before_out.stdout);
    assert!(
        before.iter().all(|&(_, _, ok)| ok),
        "sums before: {before:?}"
    );
    let last_before = last_per_cpu(&before);
    assert_eq!(last_before.len(), 2, "both vCPUs counted: {before:?}");

    // The files: state.json and a sparse memory.bin of the guest's RAM size.
    let mem = std::fs::metadata(snap.join("memory.bin")).unwrap();
    assert_eq!(mem.len(), 128 << 20);
    use std::os::unix::fs::MetadataExt;
    assert!(
        mem.blocks() * 512 < 16 << 20,
        "zero pages are holes: {} bytes allocated",
        mem.blocks() * 512
    );
    let state = std::fs::read_to_string(snap.join("state.json")).unwrap();
    assert!(state.starts_with("{\"format\":\"rvmm-snapshot\",\"version\":1,\"crc32\":\""));

    // Restore and let it count for a while.
    let mut restored = spawn_restored(&snap, "snapshot-restored");
    restored.wait_line("PROBE-COUNTER cpu=1");
    // Reports come every 20 rounds (~200 ms idle, ~0.5 s with the 2 host cores loaded): wait
    // for a few so that every vCPU reports at least twice.
    std::thread::sleep(Duration::from_millis(1500));
    restored.client().ok("quit", None);
    let after_out = restored.wait(Duration::from_secs(10));
    let after = counters(&after_out.stdout);
    assert!(
        String::from_utf8_lossy(&after_out.stderr).contains("rvmm: restored 2 vCPUs"),
        "{}",
        String::from_utf8_lossy(&after_out.stderr)
    );
    assert!(after.iter().all(|&(_, _, ok)| ok), "sums after: {after:?}");
    let first_after = first_per_cpu(&after);
    let last_after = last_per_cpu(&after);
    for (cpu, &b) in &last_before {
        let f = first_after[cpu];
        assert!(
            f >= b && f < b + 200,
            "vCPU {cpu}: {b} before the snapshot, {f} first after the restore (a reset or a jump)"
        );
        assert!(last_after[cpu] > f, "vCPU {cpu} keeps counting: {after:?}");
    }

    // Bad input, each on its own.
    let state_path = snap.join("state.json");
    let original = std::fs::read(&state_path).unwrap();

    let mut flipped = original.clone();
    let at = state.find("\"regs\": \"").unwrap() + "\"regs\": \"".len();
    flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&state_path, &flipped).unwrap();
    refused(&snap, &[], "state.json: bad checksum", "a flipped byte");

    let v2 = state.replacen("\"version\":1", "\"version\":2", 1);
    std::fs::write(&state_path, v2).unwrap();
    refused(
        &snap,
        &[],
        "state.json: snapshot format v2, this rvmm reads v1",
        "another version",
    );
    std::fs::write(&state_path, &original).unwrap();

    refused(
        &snap,
        &["--smp", "4"],
        "--smp conflicts with --restore",
        "a conflicting --smp",
    );

    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(snap.join("memory.bin"))
        .unwrap();
    f.set_len((128 << 20) - 4096).unwrap();
    refused(
        &snap,
        &[],
        "memory.bin: truncated: 134213632 bytes, the snapshot's guest RAM is 134217728",
        "a truncated memory.bin",
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// `PROBE-VLOOP n=N ok|bad` lines (probe `virtio=loop`): (n, ok). A line cut in two by the
/// snapshot (its start from the source, its end from the restored VM) has no status word
/// and is skipped.
fn vloop(stdout: &[u8]) -> Vec<(u64, bool)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| {
            let (n, status) = l.strip_prefix("PROBE-VLOOP n=")?.split_once(' ')?;
            let ok = match status {
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
fn loop_sector(n: u64) -> Vec<u8> {
    let mut s = n.to_le_bytes().to_vec();
    s.extend((8u64..512).map(|i| (n * 13 + i * 7 + (i >> 5)) as u8));
    s
}

/// The counter the disk image holds in the loop's sector, checked against its pattern.
fn disk_counter(disk: &Path) -> u64 {
    let image = std::fs::read(disk).unwrap();
    let at = (LOOP_SECTOR * 512) as usize;
    let sector = &image[at..at + 512];
    let n = u64::from_le_bytes(sector[..8].try_into().unwrap());
    assert_eq!(
        sector,
        &loop_sector(n)[..],
        "sector {LOOP_SECTOR} holds counter {n}'s pattern"
    );
    n
}

/// Issue 16: a guest that keeps writing and reading back a virtio-blk sector (probe
/// `virtio=loop`) is snapshotted with `--stop`, ended, and restored: its counter goes on
/// from where it was (the next report is the next one due, not a reset), every request
/// still succeeds (the queue's ring positions and the driver's state came back), and the
/// disk holds the latest counter. Then the same snapshot with the disk grown is refused,
/// naming the slot, and nothing starts.
#[test]
fn a_guest_using_a_disk_goes_on_after_snapshot_and_restore() {
    if !kvm_available("snapshot_virtio_blk") {
        return;
    }
    let _one = one_at_a_time();
    let work = test_dir("snapshot-vblk");
    let disk = work.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let snap = work.join("snap");
    let mut vm = BackgroundVm::start(
        "snapshot-vblk-src",
        &[
            "--append",
            "mode=virtio virtio=loop",
            "--raw",
            "--disk",
            &format!("path={}", disk.display()),
        ],
    );
    vm.wait_line("PROBE-VLOOP n=8 ");
    let mut c = rvmm();
    c.arg("snapshot").arg(&vm.socket).arg(&snap).arg("--stop");
    let out = run_with_timeout(c, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "rvmm snapshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    vm.client().ok("quit", None);
    let before = vloop(&vm.wait(Duration::from_secs(10)).stdout);
    assert!(before.iter().all(|&(_, ok)| ok), "before: {before:?}");
    let last_before = before.last().unwrap().0;
    let state = std::fs::read_to_string(snap.join("state.json")).unwrap();
    assert!(
        state.contains("\"kind\": \"block\"") && state.contains("\"next_avail\""),
        "state.json has the disk's transport and queue"
    );

    let mut restored = spawn_restored(&snap, "snapshot-vblk-restored");
    restored.wait_line(&format!("PROBE-VLOOP n={} ", last_before + 16));
    restored.client().ok("quit", None);
    let after_out = restored.wait(Duration::from_secs(10));
    let written_since = "virtio slot 0: the disk ";
    assert!(
        !String::from_utf8_lossy(&after_out.stderr).contains(written_since),
        "the image is as the snapshot left it: no warning"
    );
    let after = vloop(&after_out.stdout);
    assert!(after.iter().all(|&(_, ok)| ok), "after: {after:?}");
    let first_after = after[0].0;
    // Reports come every 4 rounds; the round in flight at the snapshot may have been
    // half printed.
    assert!(
        first_after > last_before && first_after <= last_before + 8,
        "{last_before} last before the snapshot, {first_after} first after the restore \
         (a reset or a jump)"
    );
    let last_after = after.last().unwrap().0;
    let on_disk = disk_counter(&disk);
    assert!(
        on_disk >= last_after && on_disk < last_after + 8,
        "the disk holds counter {on_disk}, the guest reported {last_after} last"
    );

    // The restored VM wrote the image: a second restore of the same snapshot warns that
    // the guest's memory no longer matches it (and runs: a backup copied back has a new
    // time with the old data).
    let again = spawn_restored(&snap, "snapshot-vblk-again");
    again.client().ok("quit", None);
    let said = String::from_utf8_lossy(&again.wait(Duration::from_secs(10)).stderr).into_owned();
    assert!(
        said.contains(&format!(
            "rvmm: warning: virtio slot 0: the disk {} was modified after the snapshot was taken",
            disk.display()
        )),
        "{said}"
    );

    // The disk grown since: refused, naming the slot.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    refused(
        &snap,
        &[],
        &format!(
            "virtio slot 0: the disk {} was 1048576 bytes when the snapshot was taken, it is \
             2097152 bytes now",
            disk.display()
        ),
        "a disk of another size",
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// A snapshot without `--stop` leaves the VM running, and its disk serving: the devices
/// are quiesced only while the snapshot is taken.
#[test]
fn a_vm_with_a_disk_keeps_using_it_after_a_snapshot() {
    if !kvm_available("snapshot_virtio_running") {
        return;
    }
    let _one = one_at_a_time();
    let work = test_dir("snapshot-vrun");
    let disk = work.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let mut vm = BackgroundVm::start(
        "snapshot-vrun-vm",
        &[
            "--append",
            "mode=virtio virtio=loop",
            "--raw",
            "--disk",
            &format!("path={}", disk.display()),
        ],
    );
    vm.wait_line("PROBE-VLOOP n=4 ");
    let reply = snapshot(&mut vm.client(), &work.join("s"), false);
    assert_eq!(reply["stopped"], false, "{reply}");
    assert_eq!(vm.client().ok("query-status", None)["status"], "running");
    vm.wait_line("PROBE-VLOOP n=24 ");
    vm.client().ok("quit", None);
    let lines = vloop(&vm.wait(Duration::from_secs(10)).stdout);
    assert!(lines.iter().all(|&(_, ok)| ok), "{lines:?}");
    let _ = std::fs::remove_dir_all(&work);
}

/// virtio-balloon: the probe's balloon driver inflates to the target QMP `balloon` set;
/// after a snapshot and restore `query-balloon` still says so, the guest did not see the
/// target change (it would deflate on its own), and a lower target then is deflated
/// through the restored queues, the pages reading zero.
#[test]
fn a_balloon_keeps_its_target_and_queues_across_snapshot_and_restore() {
    if !kvm_available("snapshot_virtio_balloon") {
        return;
    }
    let _one = one_at_a_time();
    const RAM: u64 = 256 << 20;
    let work = test_dir("snapshot-vballoon");
    let snap = work.join("snap");
    let mut vm = BackgroundVm::start(
        "snapshot-vballoon-src",
        &[
            "-m",
            "256M",
            "--balloon",
            "--append",
            "mode=virtio balloon.wait=300",
            "--raw",
        ],
    );
    vm.wait_line("PROBE-VIRTIO dev=0 id=5");
    let mut c = vm.client();
    c.ok(
        "balloon",
        Some(serde_json::json!({ "value": RAM - (64 << 20) })),
    );
    vm.wait_line("PROBE-VIRTIO dev=0 balloon inflated=16384");
    assert_eq!(
        c.ok("query-balloon", None)["actual"].as_u64(),
        Some(RAM - (64 << 20))
    );
    snapshot(&mut c, &snap, true);
    c.ok("quit", None);
    vm.wait(Duration::from_secs(10));

    let mut restored = spawn_restored(&snap, "snapshot-vballoon-restored");
    let mut c = restored.client();
    assert_eq!(
        c.ok("query-balloon", None)["actual"].as_u64(),
        Some(RAM - (64 << 20)),
        "the driver's actual came back"
    );
    // Half of it back: the guest deflates 8192 pages (all 16384 had it seen the target
    // lost).
    c.ok(
        "balloon",
        Some(serde_json::json!({ "value": RAM - (32 << 20) })),
    );
    restored.wait_line("PROBE-VIRTIO dev=0 balloon deflated=");
    assert_eq!(
        c.ok("query-balloon", None)["actual"].as_u64(),
        Some(RAM - (32 << 20))
    );
    c.ok("quit", None);
    let out = restored.wait(Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PROBE-VIRTIO dev=0 balloon deflated=8192 zero=yes"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// A vCPU plugged at run time (device_add, still waiting for INIT/SIPI) is saved and
/// created again by the restore; the guest goes on.
#[test]
fn a_hot_added_vcpu_is_saved_and_restored() {
    if !kvm_available("snapshot_hotplug") {
        return;
    }
    let _one = one_at_a_time();
    let work = test_dir("snapshot-hotplug");
    let snap = work.join("snap");
    let mut vm = BackgroundVm::start(
        "snapshot-hotplug-src",
        &["--smp", "1,maxcpus=2", "--append", "mode=counter", "--raw"],
    );
    vm.wait_line("PROBE-COUNTER cpu=0 value=2");
    let mut c = vm.client();
    let slots = c.ok("query-hotpluggable-cpus", None);
    let empty = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s.get("qom-path").is_none())
        .unwrap()
        .clone();
    let mut args = empty["props"].clone();
    args["driver"] = empty["type"].clone();
    args["id"] = serde_json::json!("cpu1");
    c.ok("device_add", Some(args));
    assert_eq!(c.ok("query-cpus-fast", None).as_array().unwrap().len(), 2);
    let reply = snapshot(&mut c, &snap, false);
    assert_eq!(reply["vcpus"], 2, "{reply}");
    assert_eq!(reply["stopped"], false);
    c.ok("quit", None);
    vm.wait(Duration::from_secs(10));

    let mut restored = spawn_restored(&snap, "snapshot-hotplug-restored");
    restored.wait_line("PROBE-COUNTER cpu=0");
    let cpus = restored.client().ok("query-cpus-fast", None);
    assert_eq!(cpus.as_array().unwrap().len(), 2, "{cpus}");
    restored.client().ok("quit", None);
    let out = restored.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rvmm: restored 2 vCPUs"), "{stderr}");
    let after = counters(&out.stdout);
    assert!(
        !after.is_empty() && after.iter().all(|&(_, _, ok)| ok),
        "{after:?}"
    );
    assert!(after[0].1 > 20, "cpu 0 went on: {after:?}");
    let _ = std::fs::remove_dir_all(&work);
}

/// `query-cpus-fast` without the thread ids (a restored VM's threads are new).
fn cpus_fast(c: &mut TestClient) -> serde_json::Value {
    let mut cpus = c.ok("query-cpus-fast", None);
    for cpu in cpus.as_array_mut().unwrap() {
        cpu.as_object_mut().unwrap().remove("thread-id");
    }
    cpus
}

/// device_add of the vCPU at core-id `core` (socket 0, thread 0) with `id`, of the type
/// query-hotpluggable-cpus names.
fn add_vcpu(c: &mut TestClient, id: &str, core: u32) {
    let slots = c.ok("query-hotpluggable-cpus", None);
    let slot = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["props"]["core-id"] == core)
        .unwrap_or_else(|| panic!("no slot with core-id {core}: {slots}"))
        .clone();
    assert!(slot.get("qom-path").is_none(), "empty: {slot}");
    let mut args = slot["props"].clone();
    args["driver"] = slot["type"].clone();
    args["id"] = serde_json::json!(id);
    c.ok("device_add", Some(args));
}

/// The slots of query-hotpluggable-cpus (by core-id) with their qom-path, if any.
fn slot_paths(slots: &serde_json::Value) -> BTreeMap<u64, Option<String>> {
    slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["props"]["core-id"].as_u64().unwrap(),
                s.get("qom-path").map(|p| p.as_str().unwrap().to_string()),
            )
        })
        .collect()
}

/// A snapshot with a gap in the vCPU slots (issue 16): `--smp 1,maxcpus=4`, only the slot
/// of core-id 2 hot-added (id "cpu2"). The restore creates that vCPU in slot 2 again (not
/// slot 1), the counting guest's counter goes on, and QMP names the vCPUs as before the
/// snapshot: query-hotpluggable-cpus shows slot 2 holding /machine/peripheral/cpu2 and
/// slots 1 and 3 empty, query-cpus-fast lists cpu-index 2 with that path, and `device_del
/// cpu2` finds the device (the counting guest keeps the CPU hotplug block in its legacy
/// mode, so the answer is PIIX-PM's refusal, the same as before the snapshot, not "not
/// found"). The counting guest starts only the vCPUs present at boot (MADT order), so the
/// hot-added one waits for INIT/SIPI on both sides.
#[test]
fn a_hot_added_vcpu_after_a_gap_comes_back_in_its_slot_with_its_id() {
    if !kvm_available("snapshot_hotplug_gap") {
        return;
    }
    let _one = one_at_a_time();
    let work = test_dir("snapshot-hotplug-gap");
    let snap = work.join("snap");
    let mut vm = BackgroundVm::start(
        "snapshot-hotplug-gap-src",
        &["--smp", "1,maxcpus=4", "--append", "mode=counter", "--raw"],
    );
    vm.wait_line("PROBE-COUNTER cpu=0 value=2");
    let mut c = vm.client();
    add_vcpu(&mut c, "cpu2", 2);
    let slots = c.ok("query-hotpluggable-cpus", None);
    let paths = slot_paths(&slots);
    assert_eq!(
        paths,
        BTreeMap::from([
            (0, Some("/machine/unattached/device[0]".to_string())),
            (1, None),
            (2, Some("/machine/peripheral/cpu2".to_string())),
            (3, None),
        ]),
        "{slots}"
    );
    let cpus = cpus_fast(&mut c);
    let indexes: Vec<&serde_json::Value> = cpus
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["cpu-index"])
        .collect();
    assert_eq!(indexes, [0, 2], "{cpus}");
    let del = c.execute("device_del", Some(serde_json::json!({"id": "cpu2"})));
    assert!(
        del["error"]["desc"]
            .as_str()
            .unwrap_or_default()
            .starts_with("acpi: device unplug request for not supported device type"),
        "{del}"
    );
    let reply = snapshot(&mut c, &snap, false);
    assert_eq!(reply["vcpus"], 2, "{reply}");
    c.ok("quit", None);
    let out = vm.wait(Duration::from_secs(10));
    let before = last_per_cpu(&counters(&out.stdout));
    let state = std::fs::read_to_string(snap.join("state.json")).unwrap();
    assert!(
        state.contains("/machine/peripheral/cpu2"),
        "the id is saved"
    );

    let mut restored = spawn_restored(&snap, "snapshot-hotplug-gap-restored");
    restored.wait_line("PROBE-COUNTER cpu=0");
    let mut c = restored.client();
    assert_eq!(c.ok("query-hotpluggable-cpus", None), slots);
    assert_eq!(cpus_fast(&mut c), cpus);
    assert_eq!(
        c.execute("device_del", Some(serde_json::json!({"id": "cpu2"}))),
        del,
        "device_del finds cpu2 as before the snapshot"
    );
    let info = c.ok("__org.rvmm_vcpuinfo", None);
    let vcpus: Vec<&serde_json::Value> = info["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["state"] != "offline")
        .map(|v| &v["vcpu"])
        .collect();
    assert_eq!(vcpus, [0, 2], "{info}");
    c.ok("quit", None);
    let out = restored.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rvmm: restored 2 vCPUs"), "{stderr}");
    let after = counters(&out.stdout);
    assert!(
        !after.is_empty() && after.iter().all(|&(_, _, ok)| ok),
        "{after:?}"
    );
    let first = first_per_cpu(&after);
    assert_eq!(first.keys().collect::<Vec<_>>(), [&0], "{after:?}");
    assert!(
        first[&0] >= before[&0] && before[&0] > 2,
        "cpu 0 went on from {before:?}: {after:?}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// The same gap with a guest that drives CPU hotplug (probe `mode=hotplug`): after the
/// restore, `device_del cpu2` is accepted, the guest ejects the vCPU of slot 2 and
/// DEVICE_DELETED names cpu2; its slot is empty again, and a new device_add fills it.
#[test]
fn a_restored_hot_added_vcpu_can_be_unplugged_by_its_id() {
    if !kvm_available("snapshot_hotplug_unplug") {
        return;
    }
    let _one = one_at_a_time();
    let work = test_dir("snapshot-hotplug-unplug");
    let snap = work.join("snap");
    // The probe as a plain kernel (kept in `work` for the restore): stdout carries its
    // serial lines alone, with no decoded view of its boot dump landing among them.
    let elf = common::probe_elf(&work);
    let sdir = test_dir("snapshot-hotplug-unplug-src");
    let socket = sdir.join("vm.qmp");
    let mut cmd = rvmm();
    cmd.args(["run", "--kernel"])
        .arg(&elf)
        .args(["--smp", "1,maxcpus=4", "--append", "mode=hotplug", "--qmp"])
        .arg(format!("unix:{}", socket.display()));
    let mut vm = BackgroundVm::spawn(cmd, sdir, socket);
    vm.wait_line("PROBE-HOTPLUG ready cpus=1 max=4");
    let mut c = vm.client();
    add_vcpu(&mut c, "cpu2", 2);
    vm.wait_line("PROBE-HOTPLUG online slot=2 apic=2");
    snapshot(&mut c, &snap, true);
    c.ok("quit", None);
    vm.wait(Duration::from_secs(10));

    let mut restored = spawn_restored(&snap, "snapshot-hotplug-unplug-restored");
    let mut c = restored.client();
    c.ok("device_del", Some(serde_json::json!({"id": "cpu2"})));
    let deleted = loop {
        let e = c.event("DEVICE_DELETED");
        if e["data"].get("device").is_some() {
            break e;
        }
    };
    assert_eq!(
        deleted["data"],
        serde_json::json!({"device": "cpu2", "path": "/machine/peripheral/cpu2"})
    );
    restored.wait_line("PROBE-HOTPLUG eject slot=2 apic=2");
    let paths = slot_paths(&c.ok("query-hotpluggable-cpus", None));
    assert_eq!(paths[&2], None);
    add_vcpu(&mut c, "cpu2b", 2);
    restored.wait_line("PROBE-HOTPLUG online slot=2 apic=2");
    c.ok("quit", None);
    restored.wait(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&work);
}

/// A boot vCPU the guest ejected before the snapshot (`--smp 2,maxcpus=4`, `device_del` of
/// vCPU 1): the restore brings the VM back with slot 1 empty (query-cpus-fast lists vCPU 0
/// alone, query-hotpluggable-cpus as before), and a device_add of that slot plugs it again.
#[test]
fn a_boot_vcpu_ejected_before_the_snapshot_stays_out_and_can_be_plugged_again() {
    if !kvm_available("snapshot_boot_vcpu_ejected") {
        return;
    }
    let _one = one_at_a_time();
    let work = test_dir("snapshot-boot-ejected");
    let snap = work.join("snap");
    let elf = common::probe_elf(&work);
    let sdir = test_dir("snapshot-boot-ejected-src");
    let socket = sdir.join("vm.qmp");
    let mut cmd = rvmm();
    cmd.args(["run", "--kernel"])
        .arg(&elf)
        .args(["--smp", "2,maxcpus=4", "--append", "mode=hotplug", "--qmp"])
        .arg(format!("unix:{}", socket.display()));
    let mut vm = BackgroundVm::spawn(cmd, sdir, socket);
    vm.wait_line("PROBE-HOTPLUG ready cpus=2 max=4");
    let mut c = vm.client();
    c.ok(
        "device_del",
        Some(serde_json::json!({"id": "/machine/unattached/device[1]"})),
    );
    vm.wait_line("PROBE-HOTPLUG eject slot=1 apic=1");
    let slots = c.ok("query-hotpluggable-cpus", None);
    assert_eq!(slot_paths(&slots)[&1], None, "{slots}");
    let reply = snapshot(&mut c, &snap, true);
    assert_eq!(reply["vcpus"], 1, "{reply}");
    c.ok("quit", None);
    vm.wait(Duration::from_secs(10));

    let mut restored = spawn_restored(&snap, "snapshot-boot-ejected-restored");
    let mut c = restored.client();
    assert_eq!(c.ok("query-hotpluggable-cpus", None), slots);
    let cpus = cpus_fast(&mut c);
    assert_eq!(cpus.as_array().unwrap().len(), 1, "{cpus}");
    assert_eq!(cpus[0]["cpu-index"], 0, "{cpus}");
    add_vcpu(&mut c, "cpu1", 1);
    restored.wait_line("PROBE-HOTPLUG online slot=1 apic=1");
    assert_eq!(cpus_fast(&mut c).as_array().unwrap().len(), 2);
    c.ok("quit", None);
    let out = restored.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rvmm: restored 1 vCPUs"), "{stderr}");
    let _ = std::fs::remove_dir_all(&work);
}
