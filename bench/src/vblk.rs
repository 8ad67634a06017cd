//! The eighth benchmark, virtio-blk: the probe guest's `virtio=bench` (guest/probe/virtio.c)
//! on one disk, a raw image in the page cache, under rvmm (`--disk path=IMG`) and QEMU
//! microvm (`-drive if=none,format=raw,file=IMG -device virtio-blk-device`), both with the
//! default cache mode (writeback). Three phases at queue depth one, polled (no interrupts):
//! 4 KiB reads at pseudo-random aligned offsets (IOPS), sequential 64 KiB reads and
//! sequential 64 KiB writes (MiB/s).
//!
//! Timing: the host timestamps each `PROBE-VBENCH` line as it arrives on the VMM's stdout;
//! a phase lasts from its `phase=begin` line to its `phase=end` line. That needs no TSC
//! frequency (QEMU and rvmm may describe the TSC differently to the guest) and times both
//! VMMs with the same clock; the serial line's own delay (tens of µs) is far below a
//! phase's length in the full plan. The guest's TSC ticks (`tsc=`) are kept in the line as
//! a cross-check but not used.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::benches::{brief, Bench};
use crate::plan::Plan;
use crate::results::VblkResult;
use crate::stats::Pair;
use crate::vmms::{Vmm, QEMU_ARGS};
use crate::BenchError;

/// Requests per phase in the full plan.
pub const FULL_OPS: u64 = 50_000;
/// Requests per phase in a smoke run.
pub const SMOKE_OPS: u64 = 200;
/// The sequential transfer size.
pub const SEQ_SIZE: u64 = 64 * 1024;
/// The image's size.
pub const IMAGE_MIB: u64 = 256;
/// Guest memory for the runs.
const MEM_MIB: u64 = 256;

/// One `PROBE-VBENCH` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbenchLine {
    pub dev: u32,
    pub end: bool,
    pub op: String,
    pub size: u64,
    pub ops: u64,
    /// End lines only.
    pub errors: u64,
    pub tsc: u64,
}

/// Parses `PROBE-VBENCH dev=K phase=begin|end op=OP size=B ops=N [errors=E tsc=T]`.
pub fn parse_line(line: &str) -> Option<VbenchLine> {
    let rest = line.trim_end().strip_prefix("PROBE-VBENCH ")?;
    let mut v = VbenchLine {
        dev: u32::MAX,
        end: false,
        op: String::new(),
        size: 0,
        ops: 0,
        errors: 0,
        tsc: 0,
    };
    let mut phase = None;
    for word in rest.split(' ') {
        let (k, val) = word.split_once('=')?;
        match k {
            "dev" => v.dev = val.parse().ok()?,
            "phase" => phase = Some(val == "end").filter(|_| val == "end" || val == "begin"),
            "op" => v.op = val.to_string(),
            "size" => v.size = val.parse().ok()?,
            "ops" => v.ops = val.parse().ok()?,
            "errors" => v.errors = val.parse().ok()?,
            "tsc" => v.tsc = val.parse().ok()?,
            _ => return None,
        }
    }
    v.end = phase?;
    (v.dev != u32::MAX && !v.op.is_empty() && v.size > 0).then_some(v)
}

/// What one run measured: (randread IOPS, seqread MiB/s, seqwrite MiB/s).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunRates {
    pub randread_iops: f64,
    pub seqread_mib_s: f64,
    pub seqwrite_mib_s: f64,
}

/// Rates from (arrival time, line) pairs: each phase's ops over the time between its
/// begin and end lines. `None` when a phase is missing, failed requests, or took no time.
pub fn rates(lines: &[(Duration, String)]) -> Result<RunRates, String> {
    let mut r = RunRates::default();
    let mut begin: Option<(Duration, VbenchLine)> = None;
    let mut seen = 0;
    for (t, text) in lines {
        let Some(l) = parse_line(text) else { continue };
        if !l.end {
            begin = Some((*t, l));
            continue;
        }
        let Some((t0, b)) = begin.take().filter(|(_, b)| b.op == l.op) else {
            return Err(format!("{text}: no begin line before it"));
        };
        if l.errors != 0 {
            return Err(format!("{text}: requests failed"));
        }
        let secs = t.saturating_sub(t0).as_secs_f64();
        if secs <= 0.0 {
            return Err(format!("{text}: the phase took no measurable time"));
        }
        let per_s = l.ops as f64 / secs;
        let mib_s = per_s * b.size as f64 / (1024.0 * 1024.0);
        match l.op.as_str() {
            "randread" => r.randread_iops = per_s,
            "seqread" => r.seqread_mib_s = mib_s,
            "seqwrite" => r.seqwrite_mib_s = mib_s,
            other => return Err(format!("unknown phase '{other}'")),
        }
        seen += 1;
    }
    if seen != 3 {
        return Err(format!("{seen} of 3 phases ended"));
    }
    Ok(r)
}

impl Bench<'_> {
    fn vblk_command(&self, vmm: Vmm, image: &Path, ops: u64) -> Command {
        let append = format!("mode=virtio virtio=bench bench-ops={ops} bench-seq={SEQ_SIZE}");
        let t = self.tools;
        match vmm {
            Vmm::Rvmm => {
                let mut c = Command::new(&t.rvmm);
                c.args(["run", "--kernel"])
                    .arg(&t.probe_elf)
                    .args(["--machine", crate::vmms::MACHINE_OPTIONS])
                    .args(["--cpu", "host", "--smp", "1", "-m", &format!("{MEM_MIB}M")])
                    .args(["--append", &append, "--disk"])
                    .arg(format!("path={}", image.display()));
                c
            }
            Vmm::Qemu => {
                let mut c = Command::new(&t.qemu);
                c.args(QEMU_ARGS)
                    .args(["-global", "virtio-mmio.force-legacy=false", "-drive"])
                    .arg(format!(
                        "if=none,id=d0,format=raw,cache=writeback,file={}",
                        image.display()
                    ))
                    .args(["-device", "virtio-blk-device,drive=d0"])
                    .args(["-smp", "1", "-m", &MEM_MIB.to_string(), "-kernel"])
                    .arg(&t.probe_elf)
                    .args(["-append", &append]);
                c
            }
        }
    }

    /// One run: the lines as they arrived, timestamped.
    fn vblk_run(&self, vmm: Vmm, image: &Path, ops: u64) -> Result<RunRates, BenchError> {
        let fail = |why: String| BenchError::Vblk {
            vmm: vmm.name(),
            why,
        };
        let mut child = self
            .vblk_command(vmm, image, ops)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        let start = Instant::now();
        // A VMM that hangs without output is killed at the plan's timeout (which ends the
        // reads below with EOF).
        let pid = child.id() as libc::pid_t;
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let timeout = self.plan.timeout;
        let watchdog = std::thread::spawn(move || {
            if stop_rx.recv_timeout(timeout).is_err() {
                // SAFETY: kill(2) with a pid and a signal; the child is not yet reaped
                // (the wait below comes after this thread is joined), so the pid is still
                // its own.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let mut lines = Vec::new();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no stdout".into()))?;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let t = start.elapsed();
            let done = line.starts_with("PROBE-VIRTIO-END");
            if line.starts_with("PROBE-VBENCH") || done {
                lines.push((t, line));
            }
            if done {
                break;
            }
        }
        let _ = stop_tx.send(());
        let _ = watchdog.join();
        let _ = child.kill();
        let _ = child.wait();
        rates(&lines).map_err(fail)
    }

    /// Benchmark 8.
    pub fn vblk(&self, dir: &Path) -> Result<VblkResult, BenchError> {
        let ops = self.plan.vblk_ops;
        let image = dir.join("vblk.img");
        // Written here, so it is in the page cache for both VMMs.
        std::fs::write(&image, vec![0x5au8; (IMAGE_MIB << 20) as usize]).map_err(|e| {
            BenchError::Vblk {
                vmm: "-",
                why: format!("cannot write {}: {e}", image.display()),
            }
        })?;
        let (mut rr, mut sr, mut sw) = (Pair::default(), Pair::default(), Pair::default());
        for round in self.plan.rounds() {
            for vmm in Plan::order(round) {
                let r = self.vblk_run(vmm, &image, ops)?;
                if !self.plan.counted(round) {
                    continue;
                }
                for (pair, v) in [
                    (&mut rr, r.randread_iops),
                    (&mut sr, r.seqread_mib_s),
                    (&mut sw, r.seqwrite_mib_s),
                ] {
                    match vmm {
                        Vmm::Rvmm => pair.rvmm.push(v),
                        Vmm::Qemu => pair.qemu.push(v),
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&image);
        for (name, p) in [
            ("randread IOPS", &rr),
            ("seqread MiB/s", &sr),
            ("seqwrite MiB/s", &sw),
        ] {
            (self.log)(&format!(
                "virtio-blk {name}: rvmm {} QEMU {}",
                brief(&p.rvmm),
                brief(&p.qemu)
            ));
        }
        Ok(VblkResult {
            ops,
            seq_size: SEQ_SIZE,
            image_mib: IMAGE_MIB,
            randread_iops: rr,
            seqread_mib_s: sr,
            seqwrite_mib_s: sw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_begin_and_end_lines() {
        assert_eq!(
            parse_line(
                "PROBE-VBENCH dev=0 phase=end op=seqread size=65536 ops=200 errors=0 tsc=123\r"
            ),
            Some(VbenchLine {
                dev: 0,
                end: true,
                op: "seqread".into(),
                size: 65536,
                ops: 200,
                errors: 0,
                tsc: 123,
            })
        );
        let b = parse_line("PROBE-VBENCH dev=1 phase=begin op=randread size=4096 ops=9").unwrap();
        assert!(!b.end);
        assert_eq!((b.dev, b.size, b.ops), (1, 4096, 9));
        for bad in [
            "PROBE-VIRTIO dev=0 read status=0",
            "PROBE-VBENCH dev=0 phase=middle op=x size=1 ops=1",
            "PROBE-VBENCH dev=0 op=x size=1 ops=1",
            "PROBE-VBENCH dev=0 phase=end op=x size=zero ops=1",
            "PROBE-VBENCH dev=0 phase=end op=x size=1 ops=1 what=2",
            "PROBE-VBENCH phase=end op=x size=1 ops=1",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn rates_from_arrival_times() {
        let at = |ms: u64, s: &str| (Duration::from_millis(ms), s.to_string());
        let lines = [
            at(
                10,
                "PROBE-VBENCH dev=0 phase=begin op=randread size=4096 ops=1000",
            ),
            at(
                510,
                "PROBE-VBENCH dev=0 phase=end op=randread size=4096 ops=1000 errors=0 tsc=1",
            ),
            at(
                510,
                "PROBE-VBENCH dev=0 phase=begin op=seqread size=65536 ops=1000",
            ),
            at(
                1510,
                "PROBE-VBENCH dev=0 phase=end op=seqread size=65536 ops=1000 errors=0 tsc=1",
            ),
            at(
                1510,
                "PROBE-VBENCH dev=0 phase=begin op=seqwrite size=65536 ops=1000",
            ),
            at(
                3510,
                "PROBE-VBENCH dev=0 phase=end op=seqwrite size=65536 ops=1000 errors=0 tsc=1",
            ),
        ];
        let r = rates(&lines).unwrap();
        assert_eq!(r.randread_iops, 2000.0);
        assert_eq!(r.seqread_mib_s, 62.5);
        assert_eq!(r.seqwrite_mib_s, 31.25);
        assert!(rates(&lines[..4]).unwrap_err().contains("2 of 3"));
        let mut failed = lines.to_vec();
        failed[1].1 = failed[1].1.replace("errors=0", "errors=3");
        assert!(rates(&failed).unwrap_err().contains("requests failed"));
        assert!(rates(&lines[1..]).unwrap_err().contains("no begin line"));
    }
}
