//! Benchmarks 11 and 12: snapshot/restore and live migration of the probe's counting guest
//! (`mode=counter`, guest/probe/counter.c), rvmm against QEMU microvm.
//!
//! 11. snapshot: the guest (2 vCPUs, 512 MiB and 2 GiB) counts until both vCPUs reported,
//!     then rvmm saves it with `rvmm snapshot SOCKET DIR --stop` (timed from spawning the
//!     command to its exit; the time it prints is kept too), QEMU with QMP `stop`, then
//!     `migrate {"uri": "exec:cat > FILE"}` polled with `query-migrate` until `completed`
//!     (timed from sending `migrate`; QEMU's `total-time` kept too), with `max-bandwidth`
//!     raised so QEMU's default cap does not set the pace. The restore is timed from spawning
//!     `rvmm run --restore DIR` / `qemu ... -incoming "exec:cat FILE"` until QMP
//!     `query-status` answers `running`; a `PROBE-COUNTER ... sum=ok` line must follow. The
//!     snapshot's size on disk is what `du` counts (allocated blocks). With a Firecracker
//!     binary given, Firecracker's full snapshot of the same guest too (firecracker.rs).
//! 12. migrate: the guest dirtying memory (`mode=counter dirty=N dirty-mib=M`, 2 vCPUs,
//!     512 MiB) migrates over loopback TCP to a second VMM started with
//!     `--incoming tcp:127.0.0.1:PORT` (rvmm) / `-incoming tcp:127.0.0.1:PORT` (QEMU), with
//!     the same downtime limit and bandwidth cap; `rvmm migrate SOCKET URI` / QMP `migrate`,
//!     then the source's `query-migrate` gives total time, downtime and bytes sent. The
//!     destination's next counter lines must say `sum=ok`; their largest `gap_ms` is the
//!     pause the guest saw. An rvmm without `migrate` gives an "not available" note instead.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::benches::{brief, Bench};
use crate::firecracker::Instance;
use crate::plan::Plan;
use crate::results::{FirecrackerSamples, MigrateResult, SnapshotResult, SnapshotRow};
use crate::stats::Pair;
use crate::vmms::{Shape, Vmm, QEMU_ARGS};
use crate::BenchError;

/// The bandwidth cap both VMMs get: far above what loopback carries here, so neither
/// VMM's default cap (QEMU's is 128 MiB/s) sets the pace.
pub const MAX_BANDWIDTH: u64 = 10 << 30;
/// What the report says when rvmm has no live migration.
pub const RVMM_NO_MIGRATION: &str = "rvmm: live migration not available in this build";

/// A QMP connection.
struct Qmp {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Qmp {
    /// Connects (retrying until `limit`), reads the greeting, negotiates capabilities.
    fn connect(socket: &Path, limit: Duration) -> Result<Qmp, String> {
        let deadline = Instant::now() + limit;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("QMP: connecting to {}: {e}", socket.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        stream
            .set_read_timeout(Some(limit))
            .map_err(|e| format!("QMP: {e}"))?;
        let w = stream.try_clone().map_err(|e| format!("QMP: {e}"))?;
        let mut q = Qmp {
            w,
            r: BufReader::new(stream),
        };
        let greeting = q.message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("QMP: expected the greeting, got {greeting}"));
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn message(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = self
            .r
            .read_line(&mut line)
            .map_err(|e| format!("QMP: reading: {e}"))?;
        if n == 0 {
            return Err("QMP: the connection closed".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("QMP: {e}: {line}"))
    }

    /// Sends `command` and returns its `return` value (events are skipped).
    fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        writeln!(
            self.w,
            "{}",
            json!({"execute": command, "arguments": arguments})
        )
        .map_err(|e| format!("QMP: sending {command}: {e}"))?;
        loop {
            let m = self.message()?;
            if let Some(r) = m.get("return") {
                return Ok(r.clone());
            }
            if m.get("event").is_none() {
                return Err(format!("QMP: {command}: {m}"));
            }
        }
    }

    /// Polls `query-migrate` every `every` until `completed`; `failed`/`cancelled` or
    /// `limit` passing are errors. Returns the last answer.
    fn wait_migrated(&mut self, every: Duration, limit: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        loop {
            let m = self.execute("query-migrate", json!({}))?;
            match m["status"].as_str() {
                Some("completed") => return Ok(m),
                Some("failed" | "cancelled") => return Err(format!("migration ended: {m}")),
                _ if Instant::now() >= deadline => {
                    return Err(format!("migration not completed within {limit:?}: {m}"))
                }
                _ => std::thread::sleep(every),
            }
        }
    }

    /// Polls `query-status` until it says `running`. With `resume`, a VM that finished
    /// loading but stayed `paused` gets `cont` (QEMU keeps a VM paused after `-incoming`
    /// when the source was stopped, as for a saved VM; libvirt sends `cont` the same way).
    fn wait_running(&mut self, limit: Duration, resume: bool) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.execute("query-status", json!({}))?;
            if s["status"] == "running" {
                return Ok(());
            }
            if resume && s["status"] == "paused" {
                self.execute("cont", json!({}))?;
                continue;
            }
            if Instant::now() >= deadline {
                return Err(format!("not running within {limit:?}: {s}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// (cpu, value, sum ok, gap_ms) of a `PROBE-COUNTER cpu=N value=V sum=S [gap_ms=G]` line.
pub fn counter_line(line: &str) -> Option<(u32, u64, bool, Option<u64>)> {
    let rest = line.trim_end().strip_prefix("PROBE-COUNTER cpu=")?;
    let (cpu, rest) = rest.split_once(" value=")?;
    let (value, rest) = rest.split_once(" sum=")?;
    let mut words = rest.split(' ');
    let ok = words.next()? == "ok";
    let gap = words
        .find_map(|w| w.strip_prefix("gap_ms="))
        .and_then(|g| g.parse().ok());
    Some((cpu.parse().ok()?, value.parse().ok()?, ok, gap))
}

/// The `N ms` in `rvmm snapshot`'s summary (`... written to DIR in N ms; ...`).
pub fn snapshot_cli_ms(summary: &str) -> Option<f64> {
    let (_, rest) = summary.rsplit_once(" in ")?;
    rest.split_once(" ms")?.0.trim().parse().ok()
}

/// Bytes allocated on disk under `path` (a file, or a directory's files), as `du` counts.
pub fn allocated_bytes(path: &Path) -> std::io::Result<u64> {
    let m = std::fs::symlink_metadata(path)?;
    if !m.is_dir() {
        return Ok(m.blocks() * 512);
    }
    let mut sum = 0;
    for e in std::fs::read_dir(path)? {
        sum += allocated_bytes(&e?.path())?;
    }
    Ok(sum)
}

/// What the counter lines waited for by [`counted`] showed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counted {
    /// The largest gap_ms.
    gap_ms: u64,
    /// Rounds per second per vCPU between each vCPU's first and last line (0 with one line).
    rounds_per_s: f64,
}

/// Waits for counter lines: until every one of `cpus` vCPUs reported `lines_each` times
/// (from now on). Every line must say sum=ok.
fn counted(
    rx: &Receiver<(Duration, String)>,
    cpus: u32,
    lines_each: usize,
    limit: Duration,
) -> Result<Counted, String> {
    let deadline = Instant::now() + limit;
    let mut seen = vec![0usize; cpus as usize];
    // (arrival, value) of each vCPU's first and last line.
    let mut first = vec![None; cpus as usize];
    let mut last = vec![None; cpus as usize];
    let mut gap = 0;
    while seen.iter().any(|&n| n < lines_each) {
        let (at, line) = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| format!("no PROBE-COUNTER lines from every vCPU within {limit:?}"))?;
        if line.starts_with("PROBE-ERROR") {
            return Err(format!("the guest: {line}"));
        }
        let Some((cpu, value, ok, g)) = counter_line(&line) else {
            continue;
        };
        if !ok {
            return Err(format!("the guest's memory check failed: {line}"));
        }
        if let Some(n) = seen.get_mut(cpu as usize) {
            *n += 1;
            first[cpu as usize].get_or_insert((at, value));
            last[cpu as usize] = Some((at, value));
        }
        gap = gap.max(g.unwrap_or(0));
    }
    let rates: Vec<f64> = first
        .iter()
        .zip(&last)
        .filter_map(|(f, l)| {
            let ((t0, v0), (t1, v1)) = ((*f)?, (*l)?);
            let dt = t1.saturating_sub(t0).as_secs_f64();
            (dt > 0.0).then(|| v1.saturating_sub(v0) as f64 / dt)
        })
        .collect();
    let rounds_per_s = if rates.is_empty() {
        0.0
    } else {
        rates.iter().sum::<f64>() / rates.len() as f64
    };
    Ok(Counted {
        gap_ms: gap,
        rounds_per_s,
    })
}

/// Kills and reaps a VMM process.
fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A TCP port on 127.0.0.1 free a moment ago.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("a free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Whether this rvmm has `migrate` and `run --incoming`.
pub fn rvmm_can_migrate(rvmm: &Path) -> bool {
    let help = |args: &[&str]| {
        Command::new(rvmm)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    help(&["migrate", "--help"]).is_some()
        && help(&["run", "--help"]).is_some_and(|h| h.contains("--incoming"))
}

/// What one snapshot run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunSnapshot {
    pub save_ms: f64,
    pub save_vmm_ms: f64,
    pub restore_ms: f64,
    pub size_kib: f64,
}

/// What one migration measured (from the source's `query-migrate`, and the destination's
/// guest).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunMigrate {
    pub wall_ms: f64,
    pub total_ms: f64,
    pub downtime_ms: f64,
    pub transferred_mib: f64,
    pub guest_gap_ms: f64,
    pub guest_gap_before_ms: f64,
    pub guest_dirty_rate: f64,
    pub dirty_pages_rate: Option<f64>,
}

impl Bench<'_> {
    /// The counting guest under `vmm`, with its QMP socket at `socket`; `extra` goes after
    /// the shape (rvmm: `--incoming URI`; QEMU: `-incoming URI`).
    fn counter_command(
        &self,
        vmm: Vmm,
        shape: Shape,
        append: &str,
        socket: &Path,
        extra: &[&str],
    ) -> Command {
        let t = self.tools;
        let mut c;
        match vmm {
            Vmm::Rvmm => {
                c = Command::new(&t.rvmm);
                c.args(["run", "--kernel"])
                    .arg(&t.probe_elf)
                    .args(["--machine", crate::vmms::MACHINE_OPTIONS, "--cpu", "host"])
                    .args(["--smp", &shape.vcpus.to_string()])
                    .args(["-m", &format!("{}M", shape.mem_mib)])
                    .args(["--append", append])
                    .args(extra)
                    .arg("--qmp")
                    .arg(format!("unix:{}", socket.display()));
            }
            Vmm::Qemu => {
                c = Command::new(&t.qemu);
                c.args(QEMU_ARGS)
                    .args(["-smp", &shape.vcpus.to_string()])
                    .args(["-m", &shape.mem_mib.to_string(), "-kernel"])
                    .arg(&t.probe_elf)
                    .args(["-append", append])
                    .args(extra)
                    .arg("-qmp")
                    .arg(format!("unix:{},server=on,wait=off", socket.display()));
            }
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        c
    }

    fn spawn(&self, mut c: Command) -> Result<(Child, Receiver<(Duration, String)>), String> {
        let mut child = c.spawn().map_err(|e| format!("cannot start: {e}"))?;
        let rx = crate::vnet::line_reader(&mut child, Instant::now());
        Ok((child, rx))
    }

    fn snapshot_run(&self, vmm: Vmm, shape: Shape, dir: &Path) -> Result<RunSnapshot, String> {
        let tag = format!("{}-{}", vmm.name(), shape.mem_mib);
        let socket = dir.join(format!("{tag}-snap.qmp"));
        let socket2 = dir.join(format!("{tag}-restored.qmp"));
        let target = dir.join(format!("{tag}-snapshot"));
        for p in [&socket, &socket2] {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_dir_all(&target);
        let _ = std::fs::remove_file(&target);
        let limit = self.plan.timeout;
        let (src, rx) =
            self.spawn(self.counter_command(vmm, shape, "mode=counter", &socket, &[]))?;
        let saved = (|| {
            let mut q = Qmp::connect(&socket, limit)?;
            counted(&rx, shape.vcpus, 1, limit)?;
            match vmm {
                Vmm::Rvmm => {
                    let t0 = Instant::now();
                    let out = Command::new(&self.tools.rvmm)
                        .arg("snapshot")
                        .arg(&socket)
                        .arg(&target)
                        .arg("--stop")
                        .output()
                        .map_err(|e| format!("rvmm snapshot: {e}"))?;
                    let wall = crate::benches::ms(t0.elapsed());
                    let said = String::from_utf8_lossy(&out.stdout);
                    if !out.status.success() {
                        return Err(format!(
                            "rvmm snapshot failed: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ));
                    }
                    let own = snapshot_cli_ms(&said)
                        .ok_or_else(|| format!("rvmm snapshot said {said:?}: no time in it"))?;
                    Ok((wall, own))
                }
                Vmm::Qemu => {
                    q.execute("stop", json!({}))?;
                    q.execute(
                        "migrate-set-parameters",
                        json!({"max-bandwidth": MAX_BANDWIDTH}),
                    )?;
                    let t0 = Instant::now();
                    let uri = format!("exec:cat > {}", target.display());
                    q.execute("migrate", json!({ "uri": uri }))?;
                    let m = q.wait_migrated(Duration::from_millis(1), limit)?;
                    let wall = crate::benches::ms(t0.elapsed());
                    let own = m["total-time"]
                        .as_f64()
                        .ok_or_else(|| format!("query-migrate has no total-time: {m}"))?;
                    Ok((wall, own))
                }
            }
        })();
        end(src);
        let (save_ms, save_vmm_ms) = saved?;
        let size = allocated_bytes(&target).map_err(|e| format!("{}: {e}", target.display()))?;

        let extra_q = format!("exec:cat {}", target.display());
        let cmd = match vmm {
            Vmm::Rvmm => {
                let mut c = Command::new(&self.tools.rvmm);
                c.args(["run", "--restore"])
                    .arg(&target)
                    .arg("--qmp")
                    .arg(format!("unix:{}", socket2.display()))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null());
                c
            }
            Vmm::Qemu => self.counter_command(
                vmm,
                shape,
                "mode=counter",
                &socket2,
                &["-incoming", &extra_q],
            ),
        };
        let t0 = Instant::now();
        let (dst, rx) = self.spawn(cmd)?;
        let restored = (|| -> Result<f64, String> {
            let mut q = Qmp::connect(&socket2, limit)?;
            q.wait_running(limit, vmm == Vmm::Qemu)?;
            let ms = crate::benches::ms(t0.elapsed());
            counted(&rx, shape.vcpus, 1, limit)?;
            Ok(ms)
        })();
        end(dst);
        let _ = std::fs::remove_dir_all(&target);
        let _ = std::fs::remove_file(&target);
        for p in [&socket, &socket2] {
            let _ = std::fs::remove_file(p);
        }
        Ok(RunSnapshot {
            save_ms,
            save_vmm_ms,
            restore_ms: restored?,
            size_kib: size as f64 / 1024.0,
        })
    }

    /// One Firecracker snapshot run (firecracker.rs): the same guest, saved and restored.
    fn firecracker_run(&self, fc: &Path, shape: Shape, dir: &Path) -> Result<RunSnapshot, String> {
        let tag = format!("firecracker-{}", shape.mem_mib);
        let socket = dir.join(format!("{tag}-snap.sock"));
        let socket2 = dir.join(format!("{tag}-restored.sock"));
        let log = dir.join(format!("{tag}.log"));
        let target = dir.join(format!("{tag}-snapshot"));
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        let (state, memory) = (target.join("vmstate"), target.join("memory"));
        let limit = self.plan.timeout;
        let with_log = |e: String| {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            match said.trim() {
                "" => e,
                said => format!("{e}; its log: {said}"),
            }
        };
        let mut src = Instance::start(fc, &socket, &log, limit)?;
        let saved = (|| {
            src.boot(
                &self.tools.probe_elf,
                "mode=counter",
                shape.vcpus,
                shape.mem_mib,
            )?;
            counted(&src.lines, shape.vcpus, 1, limit)?;
            src.pause()?;
            let t0 = Instant::now();
            src.snapshot(&state, &memory)?;
            Ok(crate::benches::ms(t0.elapsed()))
        })();
        src.end();
        let save_ms = saved.map_err(with_log)?;
        let size = allocated_bytes(&target).map_err(|e| format!("{}: {e}", target.display()))?;

        let t0 = Instant::now();
        let mut dst = Instance::start(fc, &socket2, &log, limit).map_err(with_log)?;
        let restored = (|| -> Result<f64, String> {
            dst.load(&state, &memory)?;
            let ms = crate::benches::ms(t0.elapsed());
            counted(&dst.lines, shape.vcpus, 1, limit)?;
            Ok(ms)
        })();
        dst.end();
        let restore_ms = restored.map_err(with_log)?;
        let _ = std::fs::remove_dir_all(&target);
        for p in [&socket, &socket2, &log] {
            let _ = std::fs::remove_file(p);
        }
        Ok(RunSnapshot {
            save_ms,
            save_vmm_ms: save_ms,
            restore_ms,
            size_kib: size as f64 / 1024.0,
        })
    }

    /// The snapshot benchmark.
    pub fn snapshot(&self, dir: &Path) -> Result<SnapshotResult, BenchError> {
        let mut rows = Vec::new();
        let mut fc = self.plan.firecracker.clone();
        let mut fc_version = None;
        let mut fc_note = None;
        match &fc {
            None => fc_note = Some(crate::firecracker::NOT_GIVEN.to_string()),
            Some(bin) => match crate::firecracker::version(bin) {
                Ok(v) => fc_version = Some(v),
                Err(why) => {
                    fc_note = Some(format!("Firecracker: not measured ({why})"));
                    fc = None;
                }
            },
        }
        if let Some(note) = &fc_note {
            (self.log)(note);
        }
        for &shape in &self.plan.snapshot_shapes {
            let mut row = SnapshotRow {
                shape,
                save_ms: Pair::default(),
                save_vmm_ms: Pair::default(),
                restore_ms: Pair::default(),
                size_kib: Pair::default(),
                firecracker: FirecrackerSamples::default(),
            };
            for round in self.plan.rounds() {
                if let Some(bin) = fc.clone() {
                    // Firecracker first: its runs neither follow nor precede one VMM always.
                    match self.firecracker_run(&bin, shape, dir) {
                        Ok(r) if self.plan.counted(round) => {
                            row.firecracker.save_ms.push(r.save_ms);
                            row.firecracker.restore_ms.push(r.restore_ms);
                            row.firecracker.size_kib.push(r.size_kib);
                        }
                        Ok(_) => {}
                        Err(why) => {
                            let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
                            let note = format!("Firecracker failed ({}): {why}", shape.label());
                            (self.log)(&note);
                            fc_note = Some(note);
                            fc = None;
                        }
                    }
                }
                for vmm in Plan::order(round) {
                    let r =
                        self.snapshot_run(vmm, shape, dir)
                            .map_err(|why| BenchError::Snapshot {
                                vmm: vmm.name(),
                                shape: shape.label(),
                                why,
                            })?;
                    if !self.plan.counted(round) {
                        continue;
                    }
                    for (pair, v) in [
                        (&mut row.save_ms, r.save_ms),
                        (&mut row.save_vmm_ms, r.save_vmm_ms),
                        (&mut row.restore_ms, r.restore_ms),
                        (&mut row.size_kib, r.size_kib),
                    ] {
                        match vmm {
                            Vmm::Rvmm => pair.rvmm.push(v),
                            Vmm::Qemu => pair.qemu.push(v),
                        }
                    }
                }
            }
            let f = &row.firecracker;
            for (name, p, fc_samples) in [
                ("save ms", &row.save_ms, Some(&f.save_ms)),
                ("save ms (VMM's own)", &row.save_vmm_ms, None),
                ("restore → running ms", &row.restore_ms, Some(&f.restore_ms)),
                ("on disk KiB", &row.size_kib, Some(&f.size_kib)),
            ] {
                let fc_text = match fc_samples {
                    Some(v) if !v.is_empty() => format!(" Firecracker {}", brief(v)),
                    _ => String::new(),
                };
                (self.log)(&format!(
                    "snapshot {} {name}: rvmm {} QEMU {}{fc_text}",
                    shape.label(),
                    brief(&p.rvmm),
                    brief(&p.qemu)
                ));
            }
            rows.push(row);
        }
        Ok(SnapshotResult {
            rows,
            firecracker: fc_version,
            firecracker_note: fc_note,
        })
    }

    fn migrate_run(&self, vmm: Vmm, dir: &Path) -> Result<RunMigrate, String> {
        let p = self.plan;
        let shape = p.migrate_shape;
        let tag = vmm.name();
        let src_sock = dir.join(format!("{tag}-mig-src.qmp"));
        let dst_sock = dir.join(format!("{tag}-mig-dst.qmp"));
        for s in [&src_sock, &dst_sock] {
            let _ = std::fs::remove_file(s);
        }
        let append = format!(
            "mode=counter dirty={} dirty-mib={}",
            p.migrate_dirty, p.migrate_dirty_mib
        );
        let uri = format!("tcp:127.0.0.1:{}", free_port()?);
        // Both ends with their default sandbox (rvmm's migration thread has a role of its own).
        let (src_extra, dst_extra): (&[&str], &[&str]) = match vmm {
            Vmm::Rvmm => (&[], &["--incoming", &uri]),
            Vmm::Qemu => (&[], &["-incoming", &uri]),
        };
        let limit = p.timeout;
        let (dst, dst_rx) =
            self.spawn(self.counter_command(vmm, shape, &append, &dst_sock, dst_extra))?;
        let src = match self.spawn(self.counter_command(vmm, shape, &append, &src_sock, src_extra))
        {
            Ok(s) => s,
            Err(e) => {
                end(dst);
                return Err(e);
            }
        };
        let (src, src_rx) = src;
        let result = (|| {
            let mut sq = Qmp::connect(&src_sock, limit)?;
            // The destination listens once its monitor answers.
            let mut dq = Qmp::connect(&dst_sock, limit)?;
            dq.execute("query-status", json!({}))?;
            // Let the guest dirty its buffers for a while (two reports of every vCPU).
            let before = counted(&src_rx, shape.vcpus, p.migrate_settle_reports, limit)?;
            let t0 = Instant::now();
            match vmm {
                Vmm::Rvmm => {
                    let out = Command::new(&self.tools.rvmm)
                        .arg("migrate")
                        .arg(&src_sock)
                        .arg(&uri)
                        .args(["--downtime-limit", &p.migrate_downtime_ms.to_string()])
                        .args(["--max-bandwidth", &MAX_BANDWIDTH.to_string()])
                        .output()
                        .map_err(|e| format!("rvmm migrate: {e}"))?;
                    if !out.status.success() {
                        return Err(format!(
                            "rvmm migrate failed: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ));
                    }
                }
                Vmm::Qemu => {
                    sq.execute(
                        "migrate-set-parameters",
                        json!({"downtime-limit": p.migrate_downtime_ms, "max-bandwidth": MAX_BANDWIDTH}),
                    )?;
                    sq.execute("migrate", json!({ "uri": uri }))?;
                }
            }
            let m = sq.wait_migrated(Duration::from_millis(5), limit)?;
            let wall_ms = crate::benches::ms(t0.elapsed());
            let num = |v: &Value, what: &str| {
                v.as_f64()
                    .ok_or_else(|| format!("query-migrate has no {what}: {m}"))
            };
            let total_ms = num(&m["total-time"], "total-time")?;
            let downtime_ms = num(&m["downtime"], "downtime")?;
            let transferred = num(&m["ram"]["transferred"], "ram.transferred")?;
            dq.wait_running(limit, false)?;
            // The destination's guest goes on, its memory intact; the pause it saw shows in
            // the first report of each vCPU.
            let gap = counted(&dst_rx, shape.vcpus, 2, limit)?;
            Ok(RunMigrate {
                wall_ms,
                total_ms,
                downtime_ms,
                transferred_mib: transferred / (1u64 << 20) as f64,
                guest_gap_ms: gap.gap_ms as f64,
                guest_gap_before_ms: before.gap_ms as f64,
                // Each round rewrites dirty/100 pages (the remainder carried over).
                guest_dirty_rate: before.rounds_per_s * f64::from(p.migrate_dirty) / 100.0,
                dirty_pages_rate: m["ram"]["dirty-pages-rate"].as_f64(),
            })
        })();
        end(src);
        end(dst);
        for s in [&src_sock, &dst_sock] {
            let _ = std::fs::remove_file(s);
        }
        result
    }

    /// The live-migration benchmark; rvmm's half only when this rvmm can migrate.
    pub fn migrate(&self, dir: &Path) -> Result<MigrateResult, BenchError> {
        let p = self.plan;
        let available = rvmm_can_migrate(&self.tools.rvmm);
        let mut r = MigrateResult {
            shape: p.migrate_shape,
            dirty_pages_per_s: p.migrate_dirty,
            dirty_mib: p.migrate_dirty_mib,
            downtime_limit_ms: p.migrate_downtime_ms,
            max_bandwidth: MAX_BANDWIDTH,
            settle_reports: p.migrate_settle_reports,
            rvmm_note: (!available).then(|| RVMM_NO_MIGRATION.to_string()),
            ..MigrateResult::default()
        };
        if !available {
            (self.log)(RVMM_NO_MIGRATION);
        }
        for round in p.rounds() {
            for vmm in Plan::order(round) {
                if vmm == Vmm::Rvmm && !available {
                    continue;
                }
                let m = self
                    .migrate_run(vmm, dir)
                    .map_err(|why| BenchError::Migrate {
                        vmm: vmm.name(),
                        why,
                    })?;
                if !p.counted(round) {
                    continue;
                }
                if let Some(rate) = m.dirty_pages_rate {
                    match vmm {
                        Vmm::Rvmm => r.dirty_pages_rate.rvmm.push(rate),
                        Vmm::Qemu => r.dirty_pages_rate.qemu.push(rate),
                    }
                }
                for (pair, v) in [
                    (&mut r.wall_ms, m.wall_ms),
                    (&mut r.total_ms, m.total_ms),
                    (&mut r.downtime_ms, m.downtime_ms),
                    (&mut r.transferred_mib, m.transferred_mib),
                    (&mut r.guest_gap_ms, m.guest_gap_ms),
                    (&mut r.guest_gap_before_ms, m.guest_gap_before_ms),
                    (&mut r.guest_dirty_rate, m.guest_dirty_rate),
                ] {
                    match vmm {
                        Vmm::Rvmm => pair.rvmm.push(v),
                        Vmm::Qemu => pair.qemu.push(v),
                    }
                }
            }
        }
        for (name, pair) in [
            ("total ms", &r.total_ms),
            ("downtime ms", &r.downtime_ms),
            ("MiB sent", &r.transferred_mib),
            ("guest-seen gap ms", &r.guest_gap_ms),
            ("guest gap before ms", &r.guest_gap_before_ms),
            ("guest dirtied pages/s per vCPU", &r.guest_dirty_rate),
            ("dirty pages/s", &r.dirty_pages_rate),
        ] {
            (self.log)(&format!(
                "migrate {name}: rvmm {} QEMU {}",
                brief(&pair.rvmm),
                brief(&pair.qemu)
            ));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counter_lines() {
        assert_eq!(
            counter_line("PROBE-COUNTER cpu=1 value=42 sum=ok gap_ms=17\r"),
            Some((1, 42, true, Some(17)))
        );
        assert_eq!(
            counter_line("PROBE-COUNTER cpu=0 value=3 sum=bad"),
            Some((0, 3, false, None))
        );
        for bad in [
            "PROBE-COUNTER-START cpus=2",
            "PROBE-COUNTER cpu=x value=1 sum=ok",
            "PROBE-COUNTER cpu=0 value=1",
        ] {
            assert_eq!(counter_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_the_snapshot_summary() {
        let said = "snapshot of 2 vCPUs and 512 MiB of guest RAM (0 MiB of data) written to /t/s in 41 ms; the VM is paused\n";
        assert_eq!(snapshot_cli_ms(said), Some(41.0));
        assert_eq!(snapshot_cli_ms("snapshot written"), None);
    }

    #[test]
    fn counts_allocated_bytes() {
        let d = std::env::temp_dir().join(format!("snapmig-du-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a"), vec![1u8; 8192]).unwrap();
        let f = std::fs::File::create(d.join("sparse")).unwrap();
        f.set_len(64 << 20).unwrap();
        let n = allocated_bytes(&d).unwrap();
        assert!((8192..1 << 20).contains(&n), "{n}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
