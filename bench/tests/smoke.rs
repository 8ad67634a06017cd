//! The bench tool's smoke test: every benchmark once, tiny, on real KVM and QEMU, then the
//! report and its plots written to a scratch directory. It checks that each benchmark
//! produced its samples and that the page renders, never how fast anything was.

use std::path::Path;

use rvmm_bench::plan::Plan;
use rvmm_bench::vmms::{Tools, QEMU_PATH};
use rvmm_bench::{report, run, rvmm_beside, Selection, WorkDir};

/// False when RVMM_SKIP_KVM=1; panics when /dev/kvm is unusable otherwise.
fn kvm_available() -> bool {
    if std::env::var("RVMM_SKIP_KVM").as_deref() == Ok("1") {
        eprintln!("every_benchmark_once: skipped (RVMM_SKIP_KVM=1)");
        return false;
    }
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    assert!(
        ok,
        "/dev/kvm is missing or not accessible; set RVMM_SKIP_KVM=1 to skip KVM tests"
    );
    true
}

fn one_sample_each(what: &str, p: &rvmm_bench::stats::Pair) {
    assert_eq!((p.rvmm.len(), p.qemu.len()), (1, 1), "{what}: {p:?}");
    for v in p.rvmm.iter().chain(&p.qemu) {
        assert!(v.is_finite() && *v > 0.0, "{what}: {p:?}");
    }
}

#[test]
fn every_benchmark_once() {
    if !kvm_available() {
        return;
    }
    assert!(
        Path::new(QEMU_PATH).exists(),
        "qemu-system-x86_64 is missing: run scripts/deps.sh"
    );
    let rvmm = rvmm_beside(&std::env::current_exe().unwrap());
    assert!(
        rvmm.exists(),
        "{} is missing: `cargo test --workspace` builds it; alone, run `cargo build -p rvmm` with the same profile first",
        rvmm.display()
    );
    let work = WorkDir::new().unwrap();
    let tools = Tools::prepare(&rvmm, Path::new(QEMU_PATH), &work.0).unwrap();
    let log = |line: &str| eprintln!("{line}");
    let r = run(&tools, &Plan::smoke(), Selection::ALL, &log).unwrap_or_else(|e| panic!("{e}"));

    let h = r.hotplug.as_ref().expect("the hotplug benchmark ran");
    one_sample_each("hotplug add", &h.add_to_running_ms);
    one_sample_each("hotplug remove", &h.del_to_deleted_ms);
    assert_eq!(r.start.len(), 2);
    for row in &r.start {
        one_sample_each("start first line", &row.first_line_ms);
        one_sample_each("start exit", &row.exit_ms);
    }
    assert_eq!(r.memory.len(), 2);
    for row in &r.memory {
        one_sample_each("peak RSS", &row.hwm_mib);
        one_sample_each("peak RSS (ru_maxrss)", &row.maxrss_mib);
        // The guest RAM was found in smaps, and the guest touched some of it.
        one_sample_each("guest RAM resident", &row.guest_rss_mib);
    }
    let m = r.monitoring.as_ref().expect("the monitoring benchmark ran");
    for (what, v) in [
        ("unwatched", &m.unwatched),
        ("qmp", &m.qmp),
        ("metrics", &m.metrics),
        ("top", &m.top),
    ] {
        assert_eq!(v.len(), 1, "monitoring {what}: {v:?}");
        assert!(v[0] > 0.0, "monitoring {what}: {v:?}");
    }
    let v = r.vblk.as_ref().expect("the virtio-blk benchmark ran");
    one_sample_each("virtio-blk randread", &v.randread_iops);
    one_sample_each("virtio-blk seqread", &v.seqread_mib_s);
    one_sample_each("virtio-blk seqwrite", &v.seqwrite_mib_s);
    let n = r.vnet.as_ref().expect("the virtio-net benchmark ran");
    one_sample_each("virtio-net 64-byte frames/s", &n.small_fps);
    one_sample_each("virtio-net 1500-byte frames/s", &n.large_fps);
    let b = r
        .vballoon
        .as_ref()
        .expect("the virtio-balloon benchmark ran");
    one_sample_each("virtio-balloon inflate ms", &b.inflate_ms);
    one_sample_each("virtio-balloon RSS before", &b.rss_before_mib);
    one_sample_each("virtio-balloon RSS after", &b.rss_after_mib);
    let snap = r.snapshot.as_ref().expect("the snapshot benchmark ran");
    assert_eq!(snap.rows.len(), 1);
    // The smoke plan gives no Firecracker binary: the section says so instead of a column.
    assert_eq!(
        snap.firecracker_note.as_deref(),
        Some(rvmm_bench::firecracker::NOT_GIVEN)
    );
    for row in &snap.rows {
        one_sample_each("snapshot save", &row.save_ms);
        one_sample_each("snapshot save (VMM's own)", &row.save_vmm_ms);
        one_sample_each("snapshot restore", &row.restore_ms);
        one_sample_each("snapshot on disk", &row.size_kib);
    }
    let mig = r.migrate.as_ref().expect("the migrate benchmark ran");
    // rvmm's half runs once this build has live migration; QEMU's always.
    let rvmm_runs = usize::from(mig.rvmm_note.is_none());
    for (what, p) in [
        ("migrate wall", &mig.wall_ms),
        ("migrate total", &mig.total_ms),
        ("migrate sent", &mig.transferred_mib),
    ] {
        assert_eq!(
            (p.rvmm.len(), p.qemu.len()),
            (rvmm_runs, 1),
            "{what}: {p:?}"
        );
        assert!(p.qemu[0] > 0.0, "{what}: {p:?}");
    }
    assert_eq!(mig.guest_gap_ms.qemu.len(), 1);
    let exits = r.exits.as_ref().unwrap();
    one_sample_each("exits", &exits.per_sec);
    assert_eq!(exits.bare_per_sec.len(), 1);
    assert_eq!(exits.bare_long_per_sec.len(), 1);
    assert_eq!(r.rate.len(), 1);
    one_sample_each("rate", &r.rate[0].per_sec);
    let sc = r.scaling.as_ref().unwrap();
    assert_eq!(
        sc.vcpus.iter().map(|p| p.shape.vcpus).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        sc.memory
            .iter()
            .map(|p| p.shape.mem_mib)
            .collect::<Vec<_>>(),
        [128, 256]
    );
    for p in sc.vcpus.iter().chain(&sc.memory) {
        one_sample_each("scaling exits", &p.exits_per_sec);
    }

    let doc = work.0.join("benchmarks.md");
    let plots = work.0.join("bench");
    report::write(&r, Some("## Hot spots\n"), &doc, &plots).unwrap();
    let md = std::fs::read_to_string(&doc).unwrap();
    for heading in [
        "## 1. Start time",
        "## 2. Memory overhead",
        "## 3. Exit round trip",
        "## 4. Start rate",
        "## 5. Scaling",
        "## 8. virtio-blk",
        "## 9. virtio-net",
        "## 10. virtio-balloon",
        "## 11. Snapshot and restore",
        "## 12. Live migration",
        "## Hot spots",
    ] {
        assert!(md.contains(heading), "{heading} missing from:\n{md}");
    }
    for (name, _) in report::plots(&r) {
        let svg = std::fs::read_to_string(plots.join(&name)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{name}"
        );
        assert!(md.contains(&format!("(bench/{name})")), "{name} not linked");
    }
    assert!(plots.join("results.json").exists());
}
