//! The virtio-net benchmark: the probe guest's `net.bench=N` (guest/probe/vnet.c) sends N
//! Ethernet frames of one size (64 and 1500 bytes, one run each) to a tap in a network
//! namespace the bench creates and removes, under rvmm (`--net tap=T`) and QEMU microvm
//! (`-netdev tap,ifname=T -device virtio-net-device`), one frame at a time, polled.
//!
//! Frames per second: the frames the host's side of the tap received (its rx_packets counter,
//! read before the VMM starts and after it exits) over the time between the guest's
//! `PROBE-NBENCH ... phase=begin` and `phase=end` lines, timestamped on arrival as in vblk.rs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::benches::{brief, Bench};
use crate::plan::Plan;
use crate::results::VnetResult;
use crate::stats::Pair;
use crate::vmms::{Vmm, QEMU_ARGS};
use crate::BenchError;

/// Frames per run in the full plan.
pub const FULL_FRAMES: u64 = 20_000;
/// Frames per run in a smoke run.
pub const SMOKE_FRAMES: u64 = 500;
/// The frame sizes measured (bytes, Ethernet header included, no FCS).
pub const SIZES: [u64; 2] = [64, 1500];
const MEM_MIB: u64 = 128;
const TAP: &str = "rvbtap0";

/// One `PROBE-NBENCH` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbenchLine {
    pub dev: u32,
    pub end: bool,
    pub size: u64,
    pub frames: u64,
    /// End lines only.
    pub errors: u64,
    pub tsc: u64,
}

/// Parses `PROBE-NBENCH dev=K phase=begin|end size=B frames=N [errors=E tsc=T]`.
pub fn parse_line(line: &str) -> Option<NbenchLine> {
    let rest = line.trim_end().strip_prefix("PROBE-NBENCH ")?;
    let mut v = NbenchLine {
        dev: u32::MAX,
        end: false,
        size: 0,
        frames: 0,
        errors: 0,
        tsc: 0,
    };
    let mut phase = None;
    for word in rest.split(' ') {
        let (k, val) = word.split_once('=')?;
        match k {
            "dev" => v.dev = val.parse().ok()?,
            "phase" => phase = Some(val == "end").filter(|_| val == "end" || val == "begin"),
            "size" => v.size = val.parse().ok()?,
            "frames" => v.frames = val.parse().ok()?,
            "errors" => v.errors = val.parse().ok()?,
            "tsc" => v.tsc = val.parse().ok()?,
            _ => return None,
        }
    }
    v.end = phase?;
    (v.dev != u32::MAX && v.size > 0 && v.frames > 0).then_some(v)
}

/// Frames per second: `received` (the tap's rx delta) over the time between the begin and
/// end lines; an error when a line is missing, sends failed, or the tap got fewer frames than
/// the guest sent.
pub fn frames_per_sec(lines: &[(Duration, String)], received: u64) -> Result<f64, String> {
    let parsed: Vec<(Duration, NbenchLine)> = lines
        .iter()
        .filter_map(|(t, l)| parse_line(l).map(|p| (*t, p)))
        .collect();
    let Some((t0, _)) = parsed.iter().find(|(_, l)| !l.end) else {
        return Err("no phase=begin line".into());
    };
    let Some((t1, end)) = parsed.iter().find(|(_, l)| l.end) else {
        return Err("no phase=end line".into());
    };
    if end.errors != 0 {
        return Err(format!("{} of {} sends failed", end.errors, end.frames));
    }
    if received < end.frames {
        return Err(format!(
            "the tap received {received} frames of the {} sent",
            end.frames
        ));
    }
    let secs = t1.saturating_sub(*t0).as_secs_f64();
    if secs <= 0.0 {
        return Err("the phase took no measurable time".into());
    }
    Ok(end.frames as f64 / secs)
}

/// A VMM's stdout lines with their arrival times (from the spawn), read on a thread.
pub(crate) fn line_reader(
    child: &mut std::process::Child,
    start: Instant,
) -> Receiver<(Duration, String)> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((start.elapsed(), line)).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// A network namespace with one tap; deleted (tap and all) on drop.
struct NetNs {
    name: String,
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl NetNs {
    fn new() -> Result<NetNs, String> {
        let name = format!("rvbench-{}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let n = NetNs { name };
        ip(&["-n", &n.name, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
        ip(&["-n", &n.name, "link", "set", TAP, "up"])?;
        Ok(n)
    }

    fn rx_packets(&self) -> Result<u64, String> {
        let path = format!("/sys/class/net/{TAP}/statistics/rx_packets");
        let out = ip(&["netns", "exec", &self.name, "cat", &path])?;
        out.trim()
            .parse()
            .map_err(|e| format!("{path}: '{}': {e}", out.trim()))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

impl Bench<'_> {
    fn vnet_command(&self, ns: &NetNs, vmm: Vmm, size: u64, frames: u64) -> Command {
        let append = format!("mode=virtio net.bench={frames} net.size={size}");
        let t = self.tools;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name]);
        match vmm {
            Vmm::Rvmm => {
                c.arg(&t.rvmm)
                    .args(["run", "--kernel"])
                    .arg(&t.probe_elf)
                    .args(["--machine", crate::vmms::MACHINE_OPTIONS])
                    .args(["--cpu", "host", "--smp", "1", "-m", &format!("{MEM_MIB}M")])
                    .args(["--append", &append, "--net", &format!("tap={TAP}")]);
            }
            Vmm::Qemu => {
                c.arg(&t.qemu)
                    .args(QEMU_ARGS)
                    .args(["-global", "virtio-mmio.force-legacy=false", "-netdev"])
                    .arg(format!("tap,id=n0,ifname={TAP},script=no,downscript=no"))
                    .args(["-device", "virtio-net-device,netdev=n0"])
                    .args(["-smp", "1", "-m", &MEM_MIB.to_string(), "-kernel"])
                    .arg(&t.probe_elf)
                    .args(["-append", &append]);
            }
        }
        c
    }

    fn vnet_run(&self, ns: &NetNs, vmm: Vmm, size: u64, frames: u64) -> Result<f64, BenchError> {
        let fail = |why: String| BenchError::Vnet {
            vmm: vmm.name(),
            why: format!("{size}-byte frames: {why}"),
        };
        let before = ns.rx_packets().map_err(fail)?;
        let mut child = self
            .vnet_command(ns, vmm, size, frames)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        let rx = line_reader(&mut child, Instant::now());
        let deadline = Instant::now() + self.plan.timeout;
        let mut lines = Vec::new();
        while let Ok((t, line)) =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let done = line.starts_with("PROBE-VIRTIO-END");
            if line.starts_with("PROBE-NBENCH") || done {
                lines.push((t, line));
            }
            if done {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let received = ns.rx_packets().map_err(fail)?.saturating_sub(before);
        frames_per_sec(&lines, received).map_err(fail)
    }

    /// The virtio-net benchmark.
    pub fn vnet(&self) -> Result<VnetResult, BenchError> {
        let frames = self.plan.vnet_frames;
        let ns = NetNs::new().map_err(|why| BenchError::Vnet { vmm: "-", why })?;
        let mut pairs = vec![Pair::default(); SIZES.len()];
        for round in self.plan.rounds() {
            for vmm in Plan::order(round) {
                for (i, &size) in SIZES.iter().enumerate() {
                    let v = self.vnet_run(&ns, vmm, size, frames)?;
                    if self.plan.counted(round) {
                        match vmm {
                            Vmm::Rvmm => pairs[i].rvmm.push(v),
                            Vmm::Qemu => pairs[i].qemu.push(v),
                        }
                    }
                }
            }
        }
        for (size, p) in SIZES.iter().zip(&pairs) {
            (self.log)(&format!(
                "virtio-net {size}-byte frames/s: rvmm {} QEMU {}",
                brief(&p.rvmm),
                brief(&p.qemu)
            ));
        }
        let mut it = pairs.into_iter();
        Ok(VnetResult {
            frames,
            small_fps: it.next().unwrap_or_default(),
            large_fps: it.next().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_begin_and_end_lines() {
        assert_eq!(
            parse_line("PROBE-NBENCH dev=0 phase=end size=64 frames=500 errors=0 tsc=9\r"),
            Some(NbenchLine {
                dev: 0,
                end: true,
                size: 64,
                frames: 500,
                errors: 0,
                tsc: 9,
            })
        );
        let b = parse_line("PROBE-NBENCH dev=1 phase=begin size=1500 frames=7").unwrap();
        assert_eq!((b.end, b.dev, b.size, b.frames), (false, 1, 1500, 7));
        for bad in [
            "PROBE-VBENCH dev=0 phase=end op=x size=1 ops=1",
            "PROBE-NBENCH dev=0 phase=middle size=64 frames=1",
            "PROBE-NBENCH dev=0 size=64 frames=1",
            "PROBE-NBENCH dev=0 phase=end size=big frames=1",
            "PROBE-NBENCH dev=0 phase=end size=64 frames=0",
            "PROBE-NBENCH dev=0 phase=end size=64 frames=1 what=2",
            "PROBE-NBENCH phase=end size=64 frames=1",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn rate_from_arrival_times_and_the_tap_count() {
        let at = |ms: u64, s: &str| (Duration::from_millis(ms), s.to_string());
        let lines = [
            at(5, "PROBE-VIRTIO dev=0 id=1 mac=52:54:00:12:34:56 status=1"),
            at(10, "PROBE-NBENCH dev=0 phase=begin size=64 frames=1000"),
            at(
                510,
                "PROBE-NBENCH dev=0 phase=end size=64 frames=1000 errors=0 tsc=1",
            ),
        ];
        assert_eq!(frames_per_sec(&lines, 1000).unwrap(), 2000.0);
        // Frames the kernel's own traffic added do not count.
        assert_eq!(frames_per_sec(&lines, 1003).unwrap(), 2000.0);
        assert!(frames_per_sec(&lines, 999)
            .unwrap_err()
            .contains("received 999 frames of the 1000"));
        assert!(frames_per_sec(&lines[..2], 1000)
            .unwrap_err()
            .contains("no phase=end"));
        assert!(frames_per_sec(&lines[2..], 1000)
            .unwrap_err()
            .contains("no phase=begin"));
        let mut failed = lines.to_vec();
        failed[2].1 = failed[2].1.replace("errors=0", "errors=4");
        assert!(frames_per_sec(&failed, 1000)
            .unwrap_err()
            .contains("4 of 1000 sends failed"));
        let mut instant = lines.to_vec();
        instant[2].0 = instant[1].0;
        assert!(frames_per_sec(&instant, 1000)
            .unwrap_err()
            .contains("no measurable time"));
    }
}
