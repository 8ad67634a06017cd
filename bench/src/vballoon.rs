//! The virtio-balloon benchmark: the time to give back memory through the balloon. The probe
//! guest (`mode=virtio balloon.mib=N`, guest/probe/balloon.c) touches N MiB of its RAM (1 GiB
//! in the full plan, guest RAM N + 512 MiB) and prints `touched=`; the bench then sends QMP
//! `balloon` with the RAM less N MiB, and times from sending the command to the arrival of
//! the guest's `balloon inflated=` line (printed after the device returned every PFN array,
//! so after the VMM dropped the pages), under rvmm (`--balloon on`) and QEMU microvm
//! (`-device virtio-balloon-device`). The VMM's VmRSS is read at `touched=` and at
//! `inflated=`: the difference is what the host got back.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::benches::{brief, Bench};
use crate::plan::Plan;
use crate::results::VballoonResult;
use crate::stats::Pair;
use crate::vmms::{Vmm, QEMU_ARGS};
use crate::BenchError;

/// MiB given back in the full plan.
pub const FULL_MIB: u64 = 1024;
/// MiB given back in a smoke run.
pub const SMOKE_MIB: u64 = 64;
/// Guest RAM beyond the ballooned region (the probe's region starts at 32 MiB).
const SPARE_MIB: u64 = 512;

/// The count in a `PROBE-VIRTIO dev=K balloon WHAT=N` line (`what` = "inflated", ...).
pub fn balloon_count(line: &str, what: &str) -> Option<u64> {
    let rest = line.trim_end().strip_prefix("PROBE-VIRTIO dev=")?;
    let (_dev, rest) = rest.split_once(" balloon ")?;
    let (k, v) = rest.split(' ').next()?.split_once('=')?;
    (k == what).then(|| v.parse().ok()).flatten()
}

/// The pages of a `PROBE-VIRTIO dev=K id=5 touched=PAGES ...` line.
pub fn touched_pages(line: &str) -> Option<u64> {
    let rest = line.trim_end().strip_prefix("PROBE-VIRTIO dev=")?;
    let v = rest.split(' ').find_map(|w| w.strip_prefix("touched="))?;
    v.parse().ok()
}

/// VmRSS in KiB from /proc/PID/status text.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    let l = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    vm_rss_kib(&text).ok_or_else(|| format!("{path}: no VmRSS line"))
}

/// What one run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunBalloon {
    /// From sending `balloon` to the guest's `inflated=` line.
    pub ms: f64,
    /// VmRSS before (at `touched=`) and after (at `inflated=`), MiB.
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
}

fn qmp_message(r: &mut BufReader<UnixStream>) -> Result<Value, String> {
    let mut line = String::new();
    let n = r
        .read_line(&mut line)
        .map_err(|e| format!("QMP: reading: {e}"))?;
    if n == 0 {
        return Err("QMP: the connection closed".into());
    }
    serde_json::from_str(&line).map_err(|e| format!("QMP: {e}: {line}"))
}

/// Sends `command` and waits for its `return` (events are skipped).
fn qmp_execute(
    w: &mut UnixStream,
    r: &mut BufReader<UnixStream>,
    command: &str,
    arguments: Value,
) -> Result<(), String> {
    writeln!(w, "{}", json!({"execute": command, "arguments": arguments}))
        .map_err(|e| format!("QMP: sending {command}: {e}"))?;
    loop {
        let m = qmp_message(r)?;
        if m.get("return").is_some() {
            return Ok(());
        }
        if m.get("event").is_none() {
            return Err(format!("QMP: {command}: {m}"));
        }
    }
}

fn qmp_connect(
    socket: &Path,
    limit: Duration,
) -> Result<(UnixStream, BufReader<UnixStream>), String> {
    let deadline = Instant::now() + limit;
    let stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("QMP: connecting to {}: {e}", socket.display()))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    stream
        .set_read_timeout(Some(limit))
        .map_err(|e| format!("QMP: {e}"))?;
    let mut w = stream.try_clone().map_err(|e| format!("QMP: {e}"))?;
    let mut r = BufReader::new(stream);
    let greeting = qmp_message(&mut r)?;
    if greeting.get("QMP").is_none() {
        return Err(format!("QMP: expected the greeting, got {greeting}"));
    }
    qmp_execute(&mut w, &mut r, "qmp_capabilities", json!({}))?;
    Ok((w, r))
}

/// Waits for a line `pick` accepts; the value it returns and the line's arrival.
fn wait_line<T>(
    rx: &Receiver<(Duration, String)>,
    deadline: Instant,
    what: &str,
    pick: impl Fn(&str) -> Option<T>,
) -> Result<(Duration, T), String> {
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((t, line)) => {
                if let Some(v) = pick(&line) {
                    return Ok((t, v));
                }
                if line.starts_with("PROBE-VIRTIO-END") {
                    return Err(format!("the guest ended before its {what} line"));
                }
            }
            Err(_) => return Err(format!("no {what} line")),
        }
    }
}

impl Bench<'_> {
    fn vballoon_command(&self, vmm: Vmm, mib: u64, socket: &Path) -> Command {
        let append = format!("mode=virtio balloon.mib={mib} balloon.wait=120");
        let ram = mib + SPARE_MIB;
        let t = self.tools;
        match vmm {
            Vmm::Rvmm => {
                let mut c = Command::new(&t.rvmm);
                c.args(["run", "--kernel"])
                    .arg(&t.probe_elf)
                    .args(["--machine", crate::vmms::MACHINE_OPTIONS])
                    .args(["--cpu", "host", "--smp", "1", "-m", &format!("{ram}M")])
                    .args(["--append", &append, "--balloon", "on", "--qmp"])
                    .arg(format!("unix:{}", socket.display()));
                c
            }
            Vmm::Qemu => {
                let mut c = Command::new(&t.qemu);
                c.args(QEMU_ARGS)
                    .args(["-global", "virtio-mmio.force-legacy=false"])
                    .args(["-device", "virtio-balloon-device"])
                    .args(["-smp", "1", "-m", &ram.to_string(), "-kernel"])
                    .arg(&t.probe_elf)
                    .args(["-append", &append, "-qmp"])
                    .arg(format!("unix:{},server=on,wait=off", socket.display()));
                c
            }
        }
    }

    fn vballoon_run(&self, vmm: Vmm, mib: u64, dir: &Path) -> Result<RunBalloon, BenchError> {
        let fail = |why: String| BenchError::Vballoon {
            vmm: vmm.name(),
            why,
        };
        let socket = dir.join(format!("{}-balloon.qmp", vmm.name()));
        let _ = std::fs::remove_file(&socket);
        let mut child = self
            .vballoon_command(vmm, mib, &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        let start = Instant::now();
        let rx = crate::vnet::line_reader(&mut child, start);
        let deadline = start + self.plan.timeout;
        let pages = mib * 256;
        let result = (|| {
            let (w, r) = qmp_connect(&socket, self.plan.timeout)?;
            let (_, touched) = wait_line(&rx, deadline, "touched=", touched_pages)?;
            if touched != pages {
                return Err(format!("the guest touched {touched} pages, not {pages}"));
            }
            let before = rss_kib(child.id())?;
            let (mut w, mut r) = (w, r);
            let sent = start.elapsed();
            let ram = (mib + SPARE_MIB) << 20;
            qmp_execute(
                &mut w,
                &mut r,
                "balloon",
                json!({ "value": ram - (mib << 20) }),
            )?;
            let (at, n) = wait_line(&rx, deadline, "balloon inflated=", |l| {
                balloon_count(l, "inflated")
            })?;
            let after = rss_kib(child.id())?;
            if n != pages {
                return Err(format!("the guest inflated {n} pages, not {pages}"));
            }
            let ms = at.saturating_sub(sent).as_secs_f64() * 1e3;
            if ms <= 0.0 {
                return Err("the inflation took no measurable time".into());
            }
            Ok(RunBalloon {
                ms,
                rss_before_mib: before as f64 / 1024.0,
                rss_after_mib: after as f64 / 1024.0,
            })
        })();
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&socket);
        result.map_err(fail)
    }

    /// The virtio-balloon benchmark.
    pub fn vballoon(&self, dir: &Path) -> Result<VballoonResult, BenchError> {
        let mib = self.plan.vballoon_mib;
        let (mut ms, mut before, mut after) = (Pair::default(), Pair::default(), Pair::default());
        for round in self.plan.rounds() {
            for vmm in Plan::order(round) {
                let r = self.vballoon_run(vmm, mib, dir)?;
                if !self.plan.counted(round) {
                    continue;
                }
                for (pair, v) in [
                    (&mut ms, r.ms),
                    (&mut before, r.rss_before_mib),
                    (&mut after, r.rss_after_mib),
                ] {
                    match vmm {
                        Vmm::Rvmm => pair.rvmm.push(v),
                        Vmm::Qemu => pair.qemu.push(v),
                    }
                }
            }
        }
        for (name, p) in [
            ("ms", &ms),
            ("RSS before MiB", &before),
            ("RSS after MiB", &after),
        ] {
            (self.log)(&format!(
                "virtio-balloon {mib} MiB {name}: rvmm {} QEMU {}",
                brief(&p.rvmm),
                brief(&p.qemu)
            ));
        }
        Ok(VballoonResult {
            mib,
            inflate_ms: ms,
            rss_before_mib: before,
            rss_after_mib: after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_guest_lines() {
        assert_eq!(
            balloon_count("PROBE-VIRTIO dev=0 balloon inflated=262144\r", "inflated"),
            Some(262144)
        );
        assert_eq!(
            balloon_count("PROBE-VIRTIO dev=2 balloon deflated=5 zero=yes", "deflated"),
            Some(5)
        );
        for bad in [
            "PROBE-VIRTIO dev=0 balloon target=262144",
            "PROBE-VIRTIO dev=0 balloon inflated=many",
            "PROBE-VIRTIO dev=0 id=5 touched=16384 reporting=0",
            "PROBE-VBENCH dev=0 balloon inflated=1",
        ] {
            assert_eq!(balloon_count(bad, "inflated"), None, "{bad}");
        }
        assert_eq!(
            touched_pages("PROBE-VIRTIO dev=0 id=5 touched=16384 reporting=0"),
            Some(16384)
        );
        assert_eq!(touched_pages("PROBE-VIRTIO dev=0 balloon inflated=3"), None);
        assert_eq!(touched_pages("PROBE-VIRTIO dev=0 id=5 touched=x"), None);
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\trvmm\nVmHWM:\t  300000 kB\nVmRSS:\t  123456 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_kib(status), Some(123456));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\tlots kB\n"), None);
        // Our own status has one.
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
