//! The sixth benchmark, vCPU hotplug: how long from QMP `device_add`'s reply until the new vCPU runs guest
//! code, and from `device_del`'s reply until the `DEVICE_DELETED` event, on the probe guest's
//! `mode=hotplug` (it handles the ACPI CPU hotplug events as an OS does: it starts an inserted
//! vCPU with INIT/SIPI, and ejects a removed one).
//!
//! Both VMMs run the same probe ELF with the same topology (`-smp 1,maxcpus=6`) and QEMU's
//! ACPI CPU hotplug interface: rvmm as usual, QEMU as `-M pc` (microvm has no CPU hotplug).
//! One VM per VMM and run; each VM plugs its free slots one after the other, lowest first,
//! then unplugs them in the same order, every step one sample. No slot is plugged twice:
//! QEMU cannot re-plug an ejected slot on this host (KVM_SET_CPUID2 on the reused vCPU
//! fails with EINVAL under kvm-pvm). The guest notices events by polling GPE0 every 10 ms,
//! so both VMMs' figures include the same guest-side delay.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use thiserror::Error;

use crate::benches::{brief, ms, Bench};
use crate::results::HotplugResult;
use crate::stats::Pair;
use crate::vmms::{Tools, Vmm, MACHINE_OPTIONS};

/// Slots plugged and unplugged per VM.
pub const CYCLES: usize = 5;
/// The topology: one boot vCPU, [`CYCLES`] free slots.
pub const SMP: &str = "1,maxcpus=6";
/// Guest memory, MiB.
pub const MEM_MIB: u64 = 128;
/// The guest's line once it handles hotplug events.
pub const READY: &str = "PROBE-HOTPLUG ready";
/// The first line vCPU `slot` prints itself once plugged (it runs guest code): its first
/// CPUID line, right after the boot vCPU's `PROBE-HOTPLUG insert`.
fn running(slot: usize) -> String {
    format!("CPUID cpu={slot} ")
}
/// The line that ends a new vCPU's start (its dump is complete).
pub const ONLINE: &str = "PROBE-HOTPLUG online";
/// How long any one step may take (QEMU -M pc boots through SeaBIOS in ~8 s here).
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// Why the hotplug benchmark could not finish.
#[derive(Debug, Error)]
pub enum HotplugError {
    #[error("{vmm}: starting {program}: {source}")]
    Spawn {
        vmm: &'static str,
        program: String,
        source: std::io::Error,
    },
    #[error("{vmm}: QMP: {why}")]
    Qmp { vmm: &'static str, why: String },
    #[error("{vmm}: no `{what}` within {} s; guest output so far:\n{output}", STEP_LIMIT.as_secs())]
    Timeout {
        vmm: &'static str,
        what: String,
        output: String,
    },
}

/// The command that boots the probe in `mode=hotplug` under `vmm`, its QMP socket at `qmp`.
pub fn command(tools: &Tools, vmm: Vmm, qmp: &Path) -> Command {
    let mut c;
    match vmm {
        Vmm::Rvmm => {
            c = Command::new(&tools.rvmm);
            c.args(["run", "--kernel"]).arg(&tools.probe_elf);
            c.args(["--cpu", "host", "--smp", SMP]);
            c.arg("-m").arg(format!("{MEM_MIB}M"));
            c.args(["--machine", MACHINE_OPTIONS]);
            c.arg("--qmp").arg(format!("unix:{}", qmp.display()));
            c.args(["--append", "mode=hotplug"]);
        }
        Vmm::Qemu => {
            c = Command::new(&tools.qemu);
            c.args(["-M", "pc", "-nodefaults", "-no-user-config", "-enable-kvm"]);
            c.args(["-cpu", "host,-arch-capabilities", "-smp", SMP]);
            c.arg("-m").arg(format!("{MEM_MIB}M"));
            c.arg("-kernel").arg(&tools.probe_elf);
            c.args(["-append", "mode=hotplug"]);
            c.args(["-serial", "stdio", "-display", "none"]);
            c.arg("-qmp")
                .arg(format!("unix:{},server=on,wait=off", qmp.display()));
        }
    }
    c
}

/// A VM under test: its process, its serial lines (with the time each arrived) and QMP.
struct Vm {
    vmm: Vmm,
    child: Child,
    lines: Receiver<(Instant, String)>,
    seen: Vec<String>,
    qmp: Qmp,
}

impl Vm {
    fn start(tools: &Tools, vmm: Vmm, dir: &Path) -> Result<Vm, HotplugError> {
        let socket = dir.join(format!("{}-hotplug.qmp", vmm.name()));
        let _ = std::fs::remove_file(&socket);
        let mut cmd = command(tools, vmm, &socket);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|source| HotplugError::Spawn {
            vmm: vmm.name(),
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let qmp = Qmp::connect(vmm, &socket);
        let qmp = match qmp {
            Ok(q) => q,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Vm {
            vmm,
            child,
            lines,
            seen: Vec::new(),
            qmp,
        })
    }

    /// Waits for a serial line starting with `prefix`; returns when it arrived.
    fn line(&mut self, prefix: &str) -> Result<Instant, HotplugError> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let hit = line.starts_with(prefix);
                    self.seen.push(line);
                    if hit {
                        return Ok(at);
                    }
                }
                Err(_) => {
                    return Err(HotplugError::Timeout {
                        vmm: self.vmm.name(),
                        what: prefix.to_string(),
                        output: self.seen.join("\n"),
                    })
                }
            }
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.qmp.execute("quit", json!({}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal QMP client: one command at a time; events are kept with their arrival time.
struct Qmp {
    vmm: Vmm,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<(Instant, Value)>,
}

impl Qmp {
    fn connect(vmm: Vmm, socket: &Path) -> Result<Qmp, HotplugError> {
        let err = |why: String| HotplugError::Qmp {
            vmm: vmm.name(),
            why,
        };
        let deadline = Instant::now() + STEP_LIMIT;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(err(format!("connecting to {}: {e}", socket.display())))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        stream
            .set_read_timeout(Some(STEP_LIMIT))
            .map_err(|e| err(e.to_string()))?;
        let writer = stream.try_clone().map_err(|e| err(e.to_string()))?;
        let mut qmp = Qmp {
            vmm,
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = qmp.message()?;
        if greeting.get("QMP").is_none() {
            return Err(err(format!("expected the greeting, got {greeting}")));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn message(&mut self) -> Result<Value, HotplugError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| HotplugError::Qmp {
                vmm: self.vmm.name(),
                why: format!("reading: {e}"),
            })?;
        if n == 0 {
            return Err(HotplugError::Qmp {
                vmm: self.vmm.name(),
                why: "the connection closed".into(),
            });
        }
        serde_json::from_str(&line).map_err(|e| HotplugError::Qmp {
            vmm: self.vmm.name(),
            why: format!("{e}: {line}"),
        })
    }

    /// Runs `command`; returns its `return` value and when the reply arrived.
    fn execute(
        &mut self,
        command: &str,
        arguments: Value,
    ) -> Result<(Value, Instant), HotplugError> {
        let request = json!({"execute": command, "arguments": arguments});
        writeln!(self.writer, "{request}").map_err(|e| HotplugError::Qmp {
            vmm: self.vmm.name(),
            why: format!("sending {command}: {e}"),
        })?;
        loop {
            let m = self.message()?;
            let at = Instant::now();
            if m.get("event").is_some() {
                self.events.push((at, m));
            } else if let Some(r) = m.get("return") {
                return Ok((r.clone(), at));
            } else {
                return Err(HotplugError::Qmp {
                    vmm: self.vmm.name(),
                    why: format!("{command}: {m}"),
                });
            }
        }
    }

    /// Waits for the `DEVICE_DELETED` event of device `id` (QEMU sends one for the CPU's
    /// local APIC first, without a device name); returns when it arrived.
    fn device_deleted(&mut self, id: &Value) -> Result<Instant, HotplugError> {
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|(_, e)| e["event"] == "DEVICE_DELETED" && &e["data"]["device"] == id)
            {
                return Ok(self.events.remove(i).0);
            }
            let m = self.message()?;
            if m.get("event").is_some() {
                self.events.push((Instant::now(), m));
            }
        }
    }
}

/// The free slots' `device_add` arguments from query-hotpluggable-cpus (type and props,
/// id `cpuN`), lowest slot first, with their slot numbers (QEMU lists slots highest first).
fn free_slots(qmp: &mut Qmp) -> Result<Vec<(usize, Value)>, HotplugError> {
    let (slots, _) = qmp.execute("query-hotpluggable-cpus", json!({}))?;
    let all = slots.as_array().cloned().unwrap_or_default();
    let n = all.len();
    let free: Vec<(usize, Value)> = all
        .iter()
        .enumerate()
        .filter(|(_, s)| s.get("qom-path").is_none())
        .map(|(i, s)| {
            let slot = n - 1 - i;
            let mut args = s["props"].clone();
            args["driver"] = s["type"].clone();
            args["id"] = json!(format!("cpu{slot}"));
            (slot, args)
        })
        .rev()
        .collect();
    if free.is_empty() {
        return Err(HotplugError::Qmp {
            vmm: qmp.vmm.name(),
            why: format!("no free vCPU slot in {slots}"),
        });
    }
    Ok(free)
}

/// One VM's samples: add → running, and del → DEVICE_DELETED, ms.
fn one_vm(
    tools: &Tools,
    vmm: Vmm,
    dir: &Path,
    cycles: usize,
) -> Result<(Vec<f64>, Vec<f64>), HotplugError> {
    let mut vm = Vm::start(tools, vmm, dir)?;
    vm.line(READY)?;
    let slots: Vec<(usize, Value)> = free_slots(&mut vm.qmp)?.into_iter().take(cycles).collect();
    let (mut add, mut del) = (Vec::new(), Vec::new());
    for (slot, args) in &slots {
        let (_, added) = vm.qmp.execute("device_add", args.clone())?;
        let running = vm.line(&running(*slot))?;
        add.push(ms(running.saturating_duration_since(added)));
        vm.line(ONLINE)?;
    }
    for (_, args) in &slots {
        let id = args["id"].clone();
        let (_, asked) = vm.qmp.execute("device_del", json!({ "id": id }))?;
        let deleted = vm.qmp.device_deleted(&id)?;
        del.push(ms(deleted.saturating_duration_since(asked)));
    }
    Ok((add, del))
}

impl Bench<'_> {
    /// 6. vCPU hotplug latencies, rvmm and QEMU alternating one VM each per round.
    pub fn hotplug(&self, dir: &Path) -> Result<HotplugResult, HotplugError> {
        let cycles = if self.plan.runs <= 1 { 1 } else { CYCLES };
        let mut add = Pair::default();
        let mut del = Pair::default();
        for round in self.plan.rounds() {
            for vmm in crate::plan::Plan::order(round) {
                let (a, d) = one_vm(self.tools, vmm, dir, cycles)?;
                if !self.plan.counted(round) {
                    continue;
                }
                let (pa, pd) = match vmm {
                    Vmm::Rvmm => (&mut add.rvmm, &mut del.rvmm),
                    Vmm::Qemu => (&mut add.qemu, &mut del.qemu),
                };
                pa.extend(a);
                pd.extend(d);
            }
        }
        (self.log)(&format!(
            "hotplug: device_add → vCPU running: rvmm {} ms, QEMU {} ms; device_del → DEVICE_DELETED: rvmm {} ms, QEMU {} ms",
            brief(&add.rvmm),
            brief(&add.qemu),
            brief(&del.rvmm),
            brief(&del.qemu)
        ));
        Ok(HotplugResult {
            smp: SMP.into(),
            cycles,
            add_to_running_ms: add,
            del_to_deleted_ms: del,
        })
    }
}
