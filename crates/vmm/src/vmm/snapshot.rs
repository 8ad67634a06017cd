//! Snapshot and restore of a whole VM (the format is `snapshot`'s; docs/snapshot.md).
//!
//! Saving (QMP `__org.rvmm_snapshot`, on the emulator thread, with every vCPU parked): each
//! present vCPU's state is read on its own thread (`VcpuHandle::run_parked`: the thread owns
//! the vCPU fd), then the VM's irqchip, PIT and clock, the devices' registers, guest RAM
//! (`memory.bin`, synced), each disk flushed (fdatasync) and last `state.json` (synced,
//! renamed into place), so a directory with a `state.json` is complete, after a crash too.
//! The virtio devices are paused (no request in flight, none taken) from before their
//! state is read until guest RAM is written, then resumed.
//!
//! Restoring (`rvmm run --restore`, after `Vmm::build` made the VM from the saved flags and
//! before any vCPU runs): this host is checked first (every saved CPUID table's features
//! within what its KVM supports, every XSAVE area within its size); then guest RAM is read
//! in, the irqchip, PIT and clock, the devices (virtio ones checked against the rebuilt
//! VM's slot by slot, put back, activated if their driver was live, their threads woken)
//! and every vCPU (its saved CPUID table, then its state) are written back; hot-added
//! vCPUs are created first, each in its own slot whatever slots are empty between them,
//! and the running VM names them as the saved one did (`device_add` ids, QOM paths: the
//! saved [`CpuSlots`]). The VM then runs from where the snapshot was taken, as QEMU's
//! `-incoming` does (a snapshot taken with `stop` runs too; the flag only kept the source
//! paused).

use std::path::Path;
use std::time::{Duration, Instant};

use kvm_ioctls::VcpuFd;

use super::{Vmm, VmmError};
use crate::control::commands::cpu_slot::CpuSlots;
use crate::control::commands::snapshot::SnapshotReply;
use crate::devices::serial;
use crate::devices::virtio::{self, SavedVirtio};
use crate::machine::state::{msrs_to_save, save_vcpu, StateError, VmState};
use crate::snapshot::compat::{entry, missing_features, saved};
use crate::snapshot::{
    self, memory, SavedConfig, SavedDevices, SavedVcpu, Snapshot, SnapshotError,
};
use crate::vcpu::{VcpuHandle, VcpuSetup};

/// How long one parked vCPU may take to hand over its state.
const VCPU_SAVE_TIMEOUT: Duration = Duration::from_secs(5);

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes the snapshot of the paused VM into `dir`. The virtio devices are quiesced from
/// before their state is read until guest RAM is written, and serve their queues again
/// afterwards, whatever the outcome.
pub(super) fn save(
    vmm: &Vmm,
    handles: &[VcpuHandle],
    slots: &CpuSlots,
    dir: &Path,
    stopped: bool,
) -> Result<SnapshotReply, String> {
    let result = save_quiesced(vmm, handles, slots, dir, stopped);
    resume_devices(vmm);
    result
}

fn save_quiesced(
    vmm: &Vmm,
    handles: &[VcpuHandle],
    slots: &CpuSlots,
    dir: &Path,
    stopped: bool,
) -> Result<SnapshotReply, String> {
    let start = Instant::now();
    // Refused before the directory is made (a vCPU that will not hand over its state):
    // nothing is left behind.
    let parts = collect(vmm, handles)?;
    let present: Vec<u32> = parts.vcpus.iter().map(|v| v.state.index).collect();
    slots.check_present(&present)?;
    snapshot::prepare_dir(dir).map_err(|e| e.to_string())?;
    let memory = memory::save(dir, &vmm.ram).map_err(|e| e.to_string())?;
    // The disks as the guest's memory knows them, on stable storage before state.json
    // says the snapshot is complete.
    for h in &vmm.virtio {
        lock(&h.transport).flush_backend()?;
    }
    let snap = Snapshot {
        rvmm_version: env!("CARGO_PKG_VERSION").to_string(),
        stopped,
        config: saved_config(vmm),
        vcpus: parts.vcpus,
        vm: parts.vm,
        devices: parts.devices,
        memory,
        cpu_slots: serde_json::to_value(slots).ok(),
    };
    snapshot::write_state(dir, &snap).map_err(|e| e.to_string())?;
    Ok(SnapshotReply {
        path: dir.display().to_string(),
        vcpus: snap.vcpus.len() as u32,
        memory_bytes: snap.memory.size,
        data_bytes: snap.memory.data_pages * 4096,
        milliseconds: start.elapsed().as_millis() as u64,
        stopped,
    })
}

/// Everything of a paused VM but its guest RAM: what `state.json` holds beside the memory
/// layout, and what a migration's final message carries.
#[derive(Debug, Clone)]
pub(super) struct MachineParts {
    pub vcpus: Vec<SavedVcpu>,
    pub vm: VmState,
    pub devices: SavedDevices,
}

/// The configuration summary and the flags that rebuild this VM.
pub(super) fn saved_config(vmm: &Vmm) -> SavedConfig {
    let c = &vmm.config;
    let s = &c.smp;
    SavedConfig {
        flags: crate::config::flags::run_args(c),
        smp: [s.cpus, s.maxcpus, s.sockets, s.dies, s.cores, s.threads],
        cpu_model: c.cpu.model.clone(),
        memory_bytes: c.memory,
        numa_nodes: vmm.numa.nodes.len(),
    }
}

/// Reads every present vCPU's state (each on its own thread, parked), the VM's in-kernel
/// devices and clock, and the emulated devices. Every vCPU must be parked.
pub(super) fn collect(vmm: &Vmm, handles: &[VcpuHandle]) -> Result<MachineParts, String> {
    let devices = save_devices(vmm)?;
    let msrs: std::sync::Arc<[u32]> = msrs_to_save(&vmm.host.msr_index_list).into();
    let xsave_size = vmm.vm.xsave_size();
    let mut vcpus = Vec::new();
    for h in handles
        .iter()
        .filter(|h| !h.is_finished() && !h.is_ejected())
    {
        let index = h.index;
        let list = msrs.clone();
        let state = h
            .run_parked(
                move |fd| save_vcpu(fd, index, &list, xsave_size),
                VCPU_SAVE_TIMEOUT,
            )
            .ok_or_else(|| format!("vCPU {index} did not hand over its state"))?
            .map_err(|e| format!("vCPU {index}: {e}"))?;
        let table = vmm
            .cpu_tables
            .slot_table(index)
            .ok_or_else(|| format!("vCPU {index}: no CPUID table for its slot"))?;
        vcpus.push(SavedVcpu {
            state,
            cpuid: table.entries.iter().map(saved).collect(),
        });
    }
    vcpus.sort_by_key(|v| v.state.index);
    let vm = vmm.vm.save_state().map_err(|e| e.to_string())?;
    Ok(MachineParts { vcpus, vm, devices })
}

/// The emulated devices' state (the paused VM's). Every virtio transport is paused first
/// (`MmioTransport::pause`: taking its lock waits for a request in flight to complete, and
/// its I/O thread takes no new one), so guest RAM read after this agrees with the saved
/// rings; [`resume_devices`] lets them go on. A caller that keeps the VM running after
/// `collect` (a migration that failed) must call it.
fn save_devices(vmm: &Vmm) -> Result<SavedDevices, String> {
    let virtio = vmm
        .virtio
        .iter()
        .map(|h| {
            let mut t = lock(&h.transport);
            t.pause();
            t.save(h.slot)
        })
        .collect();
    let bus = &vmm.bus;
    Ok(SavedDevices {
        serial: serial::state(&lock(&bus.com1)),
        pm: lock(&bus.pm).state(),
        gpe: lock(&bus.gpe).state(),
        cpu_hotplug: lock(&bus.cpu_hotplug).state(),
        virtio,
    })
}

/// Lets every virtio transport serve its queues again after [`save_devices`], and wakes its
/// I/O thread for whatever the driver made available meanwhile.
pub(super) fn resume_devices(vmm: &Vmm) {
    for h in &vmm.virtio {
        lock(&h.transport).resume();
        h.wake();
    }
}

/// A warning for each saved disk whose image was modified after the snapshot (its
/// modification time differs): the guest's memory, its page cache and file systems
/// included, is of the disk as it was then. Not an error: an image copied back from a
/// backup has a new time with the old data.
fn disks_written_since(saved: &[SavedVirtio]) -> Vec<String> {
    saved
        .iter()
        .filter_map(|s| match &s.device {
            virtio::DeviceState::Block {
                path,
                modified_ns: Some(then),
                ..
            } => {
                let now = std::fs::metadata(path)
                    .ok()
                    .as_ref()
                    .and_then(virtio::modified_ns)?;
                (now != *then).then(|| {
                    format!(
                        "virtio slot {}: the disk {path} was modified after the snapshot was \
                         taken; if it was written since (the VM ran on), the guest's memory \
                         no longer matches it: restore a copy of the image kept with the \
                         snapshot",
                        s.slot
                    )
                })
            }
            _ => None,
        })
        .collect()
}

/// What a restore did, for the front end's report.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub vcpus: usize,
    /// Guest RAM data read from memory.bin.
    pub data_bytes: u64,
    pub elapsed: Duration,
    /// Things the user should know (MSRs this KVM refused, a TSC frequency change).
    pub warnings: Vec<String>,
}

impl Vmm {
    /// Puts the snapshot `snap` (read from `dir`) into this freshly built VM, before it
    /// runs; see the module header. Nothing has run when this fails.
    pub fn restore(&mut self, snap: &Snapshot, dir: &Path) -> Result<RestoreReport, VmmError> {
        let start = Instant::now();
        // The host first.
        self.check_host_cpus(snap.vcpus.iter().map(|v| (v.state.index, &v.cpuid[..])))?;
        self.check_xsave(&snap.vcpus)?;
        let slots = snap
            .cpu_slots
            .clone()
            .map(serde_json::from_value::<CpuSlots>)
            .transpose()
            .map_err(|e| SnapshotError::Content {
                path: dir.join(snapshot::STATE_FILE),
                detail: format!("cpu_slots: {e}"),
            })?;
        if let Some(slots) = &slots {
            let present: Vec<u32> = snap.vcpus.iter().map(|v| v.state.index).collect();
            slots
                .check_present(&present)
                .map_err(SnapshotError::Incompatible)?;
        }
        let data_bytes = memory::restore(dir, &snap.memory, &self.ram)?;
        let mut warnings = self.restore_machine(&snap.vcpus, &snap.vm, &snap.devices)?;
        warnings.extend(disks_written_since(&snap.devices.virtio));
        if let Some(slots) = slots {
            self.restored_slots = Some(slots);
        }
        Ok(RestoreReport {
            vcpus: snap.vcpus.len(),
            data_bytes,
            elapsed: start.elapsed(),
            warnings,
        })
    }

    /// Checks that this host's KVM can run vCPUs with the saved CPUID tables (`(slot,
    /// table)`): every feature within what it supports or what rvmm's own table for the
    /// slot has. The error names each vCPU's missing features.
    pub(super) fn check_host_cpus<'s>(
        &self,
        tables: impl Iterator<Item = (u32, &'s [[u32; 7]])>,
    ) -> Result<(), SnapshotError> {
        let mut problems = Vec::new();
        for (index, cpuid) in tables {
            let table: Vec<_> = cpuid.iter().map(entry).collect();
            let rebuilt = self
                .cpu_tables
                .slot_table(index)
                .map(|t| t.entries.clone())
                .ok_or_else(|| {
                    SnapshotError::Incompatible(format!(
                        "vCPU {index}: the configuration has no such slot"
                    ))
                })?;
            let missing = missing_features(&table, &rebuilt, &self.host.cpu_support);
            if !missing.is_empty() {
                problems.push(format!(
                    "vCPU {index} needs {} (this host's KVM lacks them)",
                    missing.join(", ")
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Incompatible(problems.join("; ")))
        }
    }

    /// Checks that every saved XSAVE area fits this host's.
    pub(super) fn check_xsave(&self, vcpus: &[SavedVcpu]) -> Result<(), SnapshotError> {
        let host_xsave = self.vm.xsave_size().max(4096);
        let problems: Vec<String> = vcpus
            .iter()
            .filter(|v| v.state.xsave.0.len() > host_xsave)
            .map(|v| {
                format!(
                    "vCPU {}: XSAVE area of {} bytes, this host's KVM holds {host_xsave}",
                    v.state.index,
                    v.state.xsave.0.len()
                )
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Incompatible(problems.join("; ")))
        }
    }

    /// Puts everything but guest RAM back into this freshly built VM (hot-added vCPUs are
    /// created first, each in its own slot): the irqchip, PIT and clock, the devices, every
    /// vCPU's CPUID table and state. The vCPUs' slots must be those the saved CPU hotplug
    /// block shows present; a boot vCPU missing from `vcpus` (the guest had ejected it)
    /// parks once the VM runs. Until the caller gives the saved ids, the hot-added vCPUs
    /// are named by their slot ([`CpuSlots::restored`]). Returns warnings (MSRs KVM
    /// refused, a TSC frequency change).
    pub(super) fn restore_machine(
        &mut self,
        vcpus: &[SavedVcpu],
        vm: &VmState,
        devices: &SavedDevices,
    ) -> Result<Vec<String>, VmmError> {
        let mut warnings = Vec::new();
        let boot = self.vcpus.len() as u32;
        let mut present: Vec<u32> = vcpus.iter().map(|v| v.state.index).collect();
        present.sort_unstable();
        if let Some(w) = present.windows(2).find(|w| w[0] == w[1]) {
            return Err(
                SnapshotError::Incompatible(format!("vCPU {} is saved twice", w[0])).into(),
            );
        }
        if present.first() != Some(&0) {
            return Err(SnapshotError::Incompatible(
                "the snapshot has no vCPU 0 (the boot CPU)".into(),
            )
            .into());
        }
        // Hot-added vCPUs: each created in its own slot.
        for v in vcpus.iter().filter(|v| v.state.index >= boot) {
            let index = v.state.index;
            let table = self.cpu_tables.slot_table(index).ok_or_else(|| {
                SnapshotError::Incompatible(format!("vCPU {index}: no such slot"))
            })?;
            let fd = self.vm.create_vcpu(table.apic_id)?;
            crate::vcpu::configure(
                &fd,
                &VcpuSetup {
                    index,
                    cpuid: &table.entries,
                    msrs: &self.boot_msrs,
                    boot: None,
                },
            )?;
            self.restored_vcpus.push((index, fd));
        }
        self.vm.restore_state(vm).map_err(SnapshotError::from)?;
        self.restore_devices(devices)?;
        let enabled = lock(&self.bus.cpu_hotplug).present_slots();
        if enabled != present {
            return Err(SnapshotError::Incompatible(format!(
                "the saved CPU hotplug block shows the slots {enabled:?} present, the saved vCPUs are those of {present:?}"
            ))
            .into());
        }
        self.restored_slots = Some(CpuSlots::restored(&present, boot));
        let xsave_size = self.vm.xsave_size();
        let host_khz = self.vcpus.first().and_then(|v| v.get_tsc_khz().ok());
        for v in vcpus {
            let index = v.state.index;
            let fd = self.vcpu_fd(index).ok_or_else(|| {
                SnapshotError::Incompatible(format!("vCPU {index}: no such slot"))
            })?;
            let table: Vec<_> = v.cpuid.iter().map(entry).collect();
            let kvm_table = crate::vcpu::cpuid::to_kvm(&table)
                .map_err(|e| SnapshotError::Incompatible(format!("vCPU {index}: {e}")))?;
            fd.set_cpuid2(&kvm_table)
                .map_err(|source| SnapshotError::Vcpu {
                    vcpu: index,
                    source: StateError::Kvm {
                        what: "KVM_SET_CPUID2",
                        source,
                    },
                })?;
            let refused = crate::machine::state::restore_vcpu(fd, &v.state, xsave_size).map_err(
                |source| SnapshotError::Vcpu {
                    vcpu: index,
                    source,
                },
            )?;
            if !refused.is_empty() {
                let list: Vec<String> = refused.iter().map(|m| format!("{m:#x}")).collect();
                warnings.push(format!(
                    "vCPU {index}: KVM refused the saved MSRs {}; they keep their reset values",
                    list.join(", ")
                ));
            }
            if let Some(khz) = host_khz.filter(|&k| k != v.state.tsc_khz) {
                warnings.push(format!(
                    "vCPU {index}: the TSC ran at {} kHz, here at {khz} kHz (no TSC scaling: the guest's TSC-based time may drift)",
                    v.state.tsc_khz
                ));
            }
        }
        Ok(warnings)
    }

    /// The vCPU of slot `index`: a boot one or one a restore created.
    fn vcpu_fd(&self, index: u32) -> Option<&VcpuFd> {
        self.vcpus.get(index as usize).or_else(|| {
            self.restored_vcpus
                .iter()
                .find(|(slot, _)| *slot == index)
                .map(|(_, fd)| fd)
        })
    }

    /// Puts the emulated devices' saved state back.
    fn restore_devices(&self, d: &SavedDevices) -> Result<(), VmmError> {
        let bus = &self.bus;
        serial::restore(&mut lock(&bus.com1), &d.serial).map_err(|source| VmmError::Io {
            what: "restoring COM1",
            source,
        })?;
        lock(&bus.pm).restore(&d.pm);
        lock(&bus.gpe).restore(&d.gpe);
        lock(&bus.cpu_hotplug)
            .restore(&d.cpu_hotplug)
            .map_err(SnapshotError::Incompatible)?;
        self.restore_virtio(&d.virtio)
    }

    /// Puts every virtio transport back (registers, queues, the device's own state; a
    /// device whose driver was live is activated), then wakes each I/O thread so that it
    /// serves what the driver had made available and polls the device's descriptor (net's
    /// tap) again. Guest RAM must be in place. A slot whose device differs (another kind,
    /// another disk or size, another MAC, a device the other side lacks) is one error
    /// naming the slot.
    fn restore_virtio(&self, saved: &[SavedVirtio]) -> Result<(), VmmError> {
        for h in &self.virtio {
            if !saved.iter().any(|s| s.slot == h.slot) {
                return Err(SnapshotError::Virtio {
                    slot: h.slot,
                    detail: format!(
                        "this VM has a {} there, the snapshot no device",
                        virtio::kind_name(h.device_id)
                    ),
                }
                .into());
            }
        }
        for s in saved {
            let Some(h) = self.virtio.iter().find(|h| h.slot == s.slot) else {
                return Err(SnapshotError::Virtio {
                    slot: s.slot,
                    detail: format!(
                        "the snapshot has a {} there, this VM no device",
                        virtio::kind_name(s.device_id)
                    ),
                }
                .into());
            };
            lock(&h.transport)
                .restore(s)
                .map_err(|detail| SnapshotError::Virtio {
                    slot: s.slot,
                    detail,
                })?;
        }
        for h in &self.virtio {
            h.wake();
        }
        Ok(())
    }
}
