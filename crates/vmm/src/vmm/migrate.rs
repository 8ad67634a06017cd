//! Live migration's VMM side (docs/migration.md; the stream and the pre-copy thread are
//! `migration`).
//!
//! Source: [`hello`] describes the VM (its flags, every present vCPU's CPUID table, the RAM
//! ranges) for the destination's checks; once pre-copy is done the emulator thread parks
//! every vCPU and runs [`final_phase`]: the virtio devices quiesced (`snapshot::collect`),
//! the last dirty pages (KVM's and the VMM's own), the disks flushed and unlocked and the
//! named taps closed, then the machine state with the source's CLOCK_REALTIME when it read
//! it, then it waits for the destination's DONE (on a failure the disks are locked and the
//! taps opened again, and the devices resume).
//!
//! Destination (`rvmm run --incoming`): [`Vmm::receive_incoming`] runs after the VM is built
//! and before any vCPU runs. It accepts one connection, checks the HELLO before any page
//! (same RAM layout, same machine flags, every CPU feature of each source vCPU in this
//! VM's own table for the slot) and answers ACCEPT or REFUSE, writes the pages into guest
//! RAM, takes its disks' locks and opens its named taps (the source held both), restores
//! the machine (`restore_machine`, virtio devices included) with kvmclock and every vCPU's
//! IA32_TSC moved on by the real time since the source read them (the guest sees the
//! downtime, as on real hardware; a snapshot restore does not do this), answers DONE and
//! announces each NIC with RARP frames (QEMU's default rounds).

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::snapshot::{collect, resume_devices, saved_config};
use super::{Vmm, VmmError};
use crate::control::commands::cpu_slot::CpuSlots;
use crate::devices::virtio::VirtioHandle;
use crate::machine::state::VmState;
use crate::migration::precopy::Sender;
use crate::migration::wire::{self, Conn, Hello, HelloVcpu, PageEntry, RamRange};
use crate::migration::{Listener, MigrationError};
use crate::snapshot::compat::{entry, missing_from_own, saved};
use crate::snapshot::{SavedDevices, SavedVcpu};
use crate::vcpu::VcpuHandle;

/// IA32_TSC.
const MSR_IA32_TSC: u32 = 0x10;
/// How long the destination waits for the next frame once the source is connected.
const FRAME_TIMEOUT: Duration = Duration::from_secs(120);

/// The last message's content: the machine, and when the source paused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct FinalState {
    pub vcpus: Vec<SavedVcpu>,
    pub vm: VmState,
    pub devices: SavedDevices,
    /// The source's CLOCK_REALTIME when it read the guest's clocks, in ns since the epoch
    /// (the name is the wire's). kvmclock and the TSCs go on counting while the vCPUs are
    /// parked, so the state read holds the guest's time at the read, not at the pause: the
    /// destination moves it on by the time since then, and the guest sees the whole pause
    /// once (a `pre-switchover` wait included, which the read's values already hold).
    pub paused_at_ns: u64,
    /// How QMP names the vCPUs (ids, QOM paths), as a snapshot keeps them; absent from
    /// sources older than it, whose hot-added vCPUs the destination names by slot.
    #[serde(default)]
    pub cpu_slots: Option<CpuSlots>,
}

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The guest RAM ranges.
fn ram_ranges(vmm: &Vmm) -> Vec<RamRange> {
    vmm.ram
        .regions()
        .map(|(r, _)| RamRange {
            guest_addr: r.base,
            size: r.size,
        })
        .collect()
}

/// How long the source keeps trying to lock its disks again after a failed final phase
/// (the destination releases them as it fails, or when it exits).
const RELOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands every virtio device's host resources over (blk: flushed, then unlocked; net: a
/// tap opened by name closed); on an error the ones released are taken back. Each device
/// thread is woken so that it asks for its descriptor anew: a thread still polling a
/// closed tap would keep it attached to this process.
pub(super) fn release_locks(vmm: &Vmm) -> Result<(), String> {
    for (i, h) in vmm.virtio.iter().enumerate() {
        if let Err(e) = lock(&h.transport).release_host_locks() {
            let _ = take_locks(&vmm.virtio[..i]);
            return Err(e);
        }
        h.wake();
    }
    Ok(())
}

/// Takes the host resources of `devices` (disk locks, taps handed over; the first error).
pub(super) fn take_locks(devices: &[VirtioHandle]) -> Result<(), String> {
    for h in devices {
        lock(&h.transport).take_host_locks()?;
    }
    Ok(())
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The source's HELLO.
pub(super) fn hello(vmm: &Vmm, handles: &[VcpuHandle]) -> Result<Hello, String> {
    let mut vcpus = Vec::new();
    for h in handles
        .iter()
        .filter(|h| !h.is_finished() && !h.is_ejected())
    {
        let table = vmm
            .cpu_tables
            .slot_table(h.index)
            .ok_or_else(|| format!("vCPU {}: no CPUID table for its slot", h.index))?;
        vcpus.push(HelloVcpu {
            slot: h.index,
            cpuid: table.entries.iter().map(saved).collect(),
        });
    }
    vcpus.sort_by_key(|v| v.slot);
    Ok(Hello {
        format: wire::FORMAT.to_string(),
        version: wire::VERSION,
        rvmm_version: env!("CARGO_PKG_VERSION").to_string(),
        config: saved_config(vmm),
        vcpus,
        ram: ram_ranges(vmm),
    })
}

/// Flags that do not shape the guest's machine: its name, where its threads run and the
/// host resources it may use (they may differ between hosts), and `--cpu`, which the CPU
/// check covers feature by feature.
const NOT_MACHINE_FLAGS: &[&str] = &[
    "--name",
    "--cpu",
    "--vcpu-pin",
    "--cpuset",
    "--emulator-pin",
    "--cpu-shares",
    "--cpu-quota",
    "--memory-limit",
    "--cgroup",
    "--cgroup-parent",
];

/// The machine flags of a `run_args` list (flag, value pairs), in order. A NIC counts by
/// its MAC only (the guest sees that): its tap is a host resource, named or numbered as each
/// host's launcher chose (`tap=vnet3` here, `fd=27` there).
fn machine_flags(flags: &[String]) -> Vec<(&str, &str)> {
    flags
        .chunks(2)
        .filter_map(|c| match c {
            [f, v] if f == "--net" => Some((f.as_str(), nic_mac(v))),
            [f, v] if !NOT_MACHINE_FLAGS.contains(&f.as_str()) => Some((f.as_str(), v.as_str())),
            _ => None,
        })
        .collect()
}

/// The `mac=…` of a `--net` value as `run_args` writes it (always there), else the value.
fn nic_mac(value: &str) -> &str {
    value
        .split(',')
        .find(|p| p.starts_with("mac="))
        .unwrap_or(value)
}

/// The first machine flag the two lists disagree on, as a message.
fn flags_differ(source: &[String], this: &[String]) -> Option<String> {
    let (a, b) = (machine_flags(source), machine_flags(this));
    let mut names: Vec<&str> = a.iter().chain(&b).map(|(f, _)| *f).collect();
    names.dedup();
    let mut seen = Vec::new();
    for name in names {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let values = |l: &[(&str, &str)]| -> Vec<String> {
            l.iter()
                .filter(|(f, _)| *f == name)
                .map(|(_, v)| v.to_string())
                .collect()
        };
        let (va, vb) = (values(&a), values(&b));
        if va != vb {
            let show = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            return Some(format!(
                "{name} differs: the source has {}, this VM has {} (start the destination with the source's machine flags)",
                show(&va),
                show(&vb)
            ));
        }
    }
    None
}

/// The destination's checks of a HELLO, before any page: the reason to refuse, if any.
fn check_hello(vmm: &Vmm, hello: &Hello) -> Result<(), String> {
    let this = ram_ranges(vmm);
    if hello.ram != this {
        let show = |r: &[RamRange]| {
            r.iter()
                .map(|r| format!("{:#x}+{:#x}", r.guest_addr, r.size))
                .collect::<Vec<_>>()
                .join(",")
        };
        return Err(format!(
            "guest RAM ranges differ: the source has {}, this VM has {}",
            show(&hello.ram),
            show(&this)
        ));
    }
    let mine = saved_config(vmm);
    if let Some(diff) = flags_differ(&hello.config.flags, &mine.flags) {
        return Err(diff);
    }
    let mut problems = Vec::new();
    for v in &hello.vcpus {
        let Some(own) = vmm.cpu_tables.slot_table(v.slot) else {
            problems.push(format!("vCPU {}: this VM has no such slot", v.slot));
            continue;
        };
        let table: Vec<_> = v.cpuid.iter().map(entry).collect();
        let missing = missing_from_own(&table, &own.entries);
        if !missing.is_empty() {
            problems.push(format!(
                "vCPU {} needs {} (this VM's --cpu {} lacks them)",
                v.slot,
                missing.join(", "),
                vmm.config.cpu.model
            ));
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "this VM's CPU is narrower than the source's: {}",
            problems.join("; ")
        ));
    }
    Ok(())
}

/// The source's final phase, with every vCPU parked (the caller paused them and resumes
/// them on an error but [`MigrationError::DisksNotBack`]): the last dirty pages, the
/// machine state, then DONE. The virtio devices are quiesced by `collect` and stay so on
/// success (postmigrate); their disks are flushed and unlocked before the state goes, so
/// the destination can lock them before anything runs there. On a failure the disks are
/// locked again and the devices resume.
pub(super) fn final_phase(
    vmm: &Vmm,
    handles: &[VcpuHandle],
    slots: &CpuSlots,
    sender: &mut Sender,
) -> Result<(), MigrationError> {
    // Taken with the guest's clocks, not at the park: they counted on since (see
    // `FinalState::paused_at_ns`).
    let paused_at_ns = realtime_ns();
    let parts = collect(vmm, handles).map_err(MigrationError::Protocol);
    // After the devices are quiesced: what they wrote is in the last dirty set.
    let result = parts.and_then(|parts| {
        sender.send_last_pages()?;
        release_locks(vmm).map_err(MigrationError::Protocol)?;
        send_state(sender, parts, slots, paused_at_ns).or_else(|e| {
            // The disks were handed over: take them back (the destination unlocks them
            // as it fails, or exits).
            let deadline = Instant::now() + RELOCK_TIMEOUT;
            loop {
                match take_locks(&vmm.virtio) {
                    Ok(()) => return Err(e),
                    Err(lock) if Instant::now() >= deadline => {
                        return Err(MigrationError::DisksNotBack {
                            failure: e.to_string(),
                            lock,
                        })
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
    });
    if let Err(e) = &result {
        if !matches!(e, MigrationError::DisksNotBack { .. }) {
            resume_devices(vmm);
        }
    }
    result
}

/// Sends the machine state and waits for DONE.
fn send_state(
    sender: &mut Sender,
    parts: super::snapshot::MachineParts,
    slots: &CpuSlots,
    paused_at_ns: u64,
) -> Result<(), MigrationError> {
    let state = FinalState {
        vcpus: parts.vcpus,
        vm: parts.vm,
        devices: parts.devices,
        paused_at_ns,
        cpu_slots: Some(slots.clone()),
    };
    let body = serde_json::to_vec(&state).unwrap_or_default();
    // write(2) and recvfrom(2) on the open stream are in this thread's filter; the DONE
    // timeout was set by the migration thread (no setsockopt here).
    sender.conn.send(wire::STATE, &body)?;
    let (tag, payload) = sender.conn.recv("before answering the final state")?;
    match tag {
        wire::DONE => Ok(()),
        wire::REFUSE => Err(MigrationError::Refused(
            String::from_utf8_lossy(&payload).into_owned(),
        )),
        t => Err(MigrationError::Protocol(format!(
            "the destination answered the final state with frame {t:#04x}"
        ))),
    }
}

/// Moves kvmclock and every vCPU's TSC on by `delta_ns`.
fn advance_time(state: &mut FinalState, delta_ns: u64) {
    // kvm_clock_data starts with `clock`, the guest's kvmclock in ns.
    if let Some(b) = state.vm.clock.0.get_mut(..8) {
        let clock = u64::from_le_bytes(b.try_into().unwrap_or_default());
        b.copy_from_slice(&clock.wrapping_add(delta_ns).to_le_bytes());
    }
    for v in &mut state.vcpus {
        let ticks = (u128::from(delta_ns) * u128::from(v.state.tsc_khz) / 1_000_000) as u64;
        for (index, value) in &mut v.state.msrs {
            if *index == MSR_IA32_TSC {
                *value = value.wrapping_add(ticks);
            }
        }
    }
}

/// What an incoming migration did, for the front end's report.
#[derive(Debug, Clone)]
pub struct IncomingReport {
    pub vcpus: usize,
    pub pages: u64,
    pub data_pages: u64,
    /// From the connection to DONE.
    pub elapsed: Duration,
    /// From the source's pause to the restore here (its clock against ours).
    pub downtime_ns: u64,
    /// The NICs announced on the network after DONE.
    pub announced: usize,
    pub warnings: Vec<String>,
}

/// Why an incoming migration failed (the destination exits with this).
fn failed(reason: impl std::fmt::Display) -> VmmError {
    VmmError::Migration(format!("incoming migration failed: {reason}"))
}

impl Vmm {
    /// Waits for the source on `listener` and takes the VM over (see the module header).
    /// `stop_fd` (the stop signals) ends the wait. Nothing has run when this fails.
    pub(super) fn receive_incoming(
        &mut self,
        listener: &Listener,
        stop_fd: i32,
        params: &std::sync::Mutex<crate::migration::MigrationParameters>,
    ) -> Result<IncomingReport, VmmError> {
        wait_readable(listener_fd(listener), stop_fd)
            .map_err(|e| failed(format!("{}: {e}", listener.name())))?;
        let mut conn = listener.accept().map_err(failed)?;
        let start = Instant::now();
        conn.set_read_timeout(Some(FRAME_TIMEOUT));
        let (tag, payload) = conn.recv("before HELLO").map_err(failed)?;
        if tag != wire::HELLO {
            return Err(failed(format!(
                "the source sent frame {tag:#04x} first, not HELLO: not an rvmm migration"
            )));
        }
        let checked = wire::parse_hello(&payload).and_then(|h| check_hello(self, &h).map(|()| h));
        if let Err(reason) = checked {
            let _ = conn.send(wire::REFUSE, reason.as_bytes());
            return Err(VmmError::Migration(format!(
                "refused the incoming migration: {reason}"
            )));
        }
        conn.send(wire::ACCEPT, &[]).map_err(failed)?;
        let (pages, data_pages, state) = self.receive_pages(&mut conn)?;
        let mut report = self.finish_incoming(conn, &state, start, pages, data_pages)?;
        // DONE went out. Switches and bridges learn where the NICs are now: RARP frames in
        // the rounds of this VM's announce parameters (QEMU's defaults unless set while it
        // waited; the first now, the rest on the announcer's thread).
        let announce = lock(params).announce();
        report.announced = self.announcer.start(self.announce_targets(), announce);
        Ok(report)
    }

    /// PAGES frames until STATE: the pages, the data pages and STATE's payload.
    fn receive_pages(&self, conn: &mut Conn) -> Result<(u64, u64, Vec<u8>), VmmError> {
        let (mut pages, mut data) = (0u64, 0u64);
        loop {
            let (tag, payload) = conn.recv("while sending pages").map_err(failed)?;
            match tag {
                wire::PAGES => {
                    let entries = wire::parse_batch(&payload).map_err(failed)?;
                    for e in entries {
                        let (gpa, bytes) = match e {
                            PageEntry::Zero(gpa) => (gpa, None),
                            PageEntry::Data(gpa, b) => (gpa, Some(b)),
                        };
                        if !self.ram.contains(gpa, wire::PAGE as u64) {
                            return Err(failed(format!("page {gpa:#x} is outside guest RAM")));
                        }
                        let written = match bytes {
                            Some(b) => {
                                data += 1;
                                self.ram.write(gpa, b)
                            }
                            // Only a page the VMM wrote here (the build, or an earlier
                            // round's data) can be non-zero: the rest of guest RAM is not
                            // touched (reading it would fault every page in).
                            None if self.ram.vmm_wrote(gpa) => {
                                self.ram.zero(gpa, wire::PAGE as u64)
                            }
                            None => Ok(()),
                        };
                        written.map_err(failed)?;
                        pages += 1;
                    }
                }
                wire::SYNC => conn.send(wire::SYNCED, &[]).map_err(failed)?,
                wire::STATE => return Ok((pages, data, payload)),
                t => return Err(failed(format!("unexpected frame {t:#04x} among the pages"))),
            }
        }
    }

    fn finish_incoming(
        &mut self,
        mut conn: Conn,
        payload: &[u8],
        start: Instant,
        pages: u64,
        data_pages: u64,
    ) -> Result<IncomingReport, VmmError> {
        let restored = serde_json::from_slice::<FinalState>(payload)
            .map_err(|e| format!("the source's final state: {e}"))
            .and_then(|mut state| {
                let delta = realtime_ns().saturating_sub(state.paused_at_ns);
                advance_time(&mut state, delta);
                self.check_xsave(&state.vcpus).map_err(|e| e.to_string())?;
                if let Some(slots) = &state.cpu_slots {
                    let present: Vec<u32> = state.vcpus.iter().map(|v| v.state.index).collect();
                    slots.check_present(&present)?;
                }
                // The source unlocked its disks and closed its named taps before sending the
                // state: they are this VM's from before a device here can serve a request.
                take_locks(&self.virtio).map_err(|e| {
                    format!("taking the disks and taps over (the source released them): {e}")
                })?;
                let warnings = self
                    .restore_machine(&state.vcpus, &state.vm, &state.devices)
                    .map_err(|e| e.to_string())?;
                if let Some(slots) = state.cpu_slots.take() {
                    self.restored_slots = Some(slots);
                }
                Ok((state.vcpus.len(), delta, warnings))
            });
        let (vcpus, delta, warnings) = match restored {
            Ok(r) => r,
            Err(reason) => {
                // Handed back before the answer, so the source can lock them again.
                let _ = release_locks(self);
                let _ = conn.send(wire::REFUSE, reason.as_bytes());
                return Err(failed(reason));
            }
        };
        conn.send(wire::DONE, &[]).map_err(failed)?;
        Ok(IncomingReport {
            vcpus,
            pages,
            data_pages,
            elapsed: start.elapsed(),
            downtime_ns: delta,
            announced: 0,
            warnings,
        })
    }
}

fn listener_fd(l: &Listener) -> i32 {
    match l {
        Listener::Tcp(t, _) => t.as_raw_fd(),
        Listener::Unix(u, _, _) => u.as_raw_fd(),
    }
}

/// Waits until `fd` is readable; an error when `stop_fd` is first (a stop signal).
fn wait_readable(fd: i32, stop_fd: i32) -> Result<(), String> {
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop_fd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: fds is a valid array of two pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if fds[1].revents != 0 {
            return Err("a stop signal arrived while waiting for the source".into());
        }
        if fds[0].revents != 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_downtime_moves_kvmclock_and_the_tsc_on() {
        use crate::machine::state::{Blob, VcpuState};
        let blob = || Blob(vec![0; 4]);
        let mut clock = 5_000u64.to_le_bytes().to_vec();
        clock.extend([0u8; 40]);
        let mut state = FinalState {
            vcpus: vec![SavedVcpu {
                state: VcpuState::fixture(&[0; 4], vec![(0x10, 100), (0x11, 7)]),
                cpuid: vec![],
            }],
            vm: VmState {
                pic_master: blob(),
                pic_slave: blob(),
                ioapic: blob(),
                pit: None,
                clock: Blob(clock),
            },
            devices: serde_json::from_value(serde_json::json!({
                "serial": {"baud_divisor_low": 12, "baud_divisor_high": 0, "interrupt_enable": 0,
                    "interrupt_identification": 1, "line_control": 3, "line_status": 96,
                    "modem_control": 8, "modem_status": 176, "scratch": 0, "in_buffer": []},
                "pm": {"status": 0, "enable": 0, "control": 1, "rcr": 0, "timer_ns": 0},
                "gpe": serde_json::to_value(crate::devices::gpe::Gpe0::default()).unwrap(),
                "cpu_hotplug": serde_json::to_value(
                    crate::devices::cpu_hotplug::CpuHotplug::new(vec![0], 1)).unwrap(),
            }))
            .unwrap(),
            paused_at_ns: 0,
            cpu_slots: None,
        };
        // 1.5 ms at 2 GHz: 3 000 000 TSC ticks; kvmclock by 1 500 000 ns.
        advance_time(&mut state, 1_500_000);
        assert_eq!(&state.vm.clock.0[..8], &1_505_000u64.to_le_bytes());
        assert_eq!(state.vcpus[0].state.msrs, [(0x10, 3_000_100), (0x11, 7)]);
    }

    #[test]
    fn machine_flags_are_compared_and_runtime_ones_are_not() {
        let a = v(&["--name", "a", "--smp", "2", "--cpu", "host", "-m", "128M"]);
        let b = v(&["--name", "b", "--smp", "2", "--cpu", "qemu64", "-m", "128M"]);
        assert_eq!(flags_differ(&a, &b), None);
        let c = v(&["--smp", "1", "-m", "128M"]);
        let d = flags_differ(&a, &c).unwrap();
        assert!(
            d.starts_with("--smp differs: the source has \"2\", this VM has \"1\""),
            "{d}"
        );
        // A NIC is its MAC: each host names or numbers its own tap.
        let nic = |n: &str| v(&["--smp", "2", "--net", n]);
        let here = nic("tap=vnet3,mac=52:54:00:12:34:56");
        assert_eq!(
            flags_differ(&here, &nic("fd=27,mac=52:54:00:12:34:56")),
            None
        );
        assert_eq!(flags_differ(&here, &nic("tap,mac=52:54:00:12:34:56")), None);
        let d = flags_differ(&here, &nic("tap=vnet3,mac=52:54:00:12:34:57")).unwrap();
        assert!(
            d.starts_with(
                "--net differs: the source has \"mac=52:54:00:12:34:56\", this VM has \"mac=52:54:00:12:34:57\""
            ),
            "{d}"
        );
        let e = v(&["--smp", "2", "-m", "128M", "--machine", "pit=on"]);
        let d = flags_differ(&a, &e).unwrap();
        assert!(
            d.starts_with("--machine differs: the source has none, this VM has \"pit=on\""),
            "{d}"
        );
    }
}
