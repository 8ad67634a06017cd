//! The state KVM holds for a vCPU and for the VM, read out and written back whole, for
//! snapshots (`snapshot`).
//!
//! A vCPU's state is read on its own thread while it is parked out of KVM_RUN
//! (`VcpuHandle::run_parked`), in the order that keeps it consistent: MP_STATE first, then
//! REGS, SREGS, XSAVE (KVM_GET_XSAVE2 when KVM_CAP_XSAVE2 reports a size, else
//! KVM_GET_XSAVE), XCRS, DEBUGREGS, LAPIC, TSC_KHZ, the MSRs, VCPU_EVENTS last. It is written
//! back before the vCPU's first KVM_RUN in this order: MP_STATE, REGS, SREGS, XSAVE, XCRS,
//! DEBUGREGS, LAPIC **before** the MSRs (else the TSC-deadline timer is lost), VCPU_EVENTS,
//! then KVMCLOCK_CTRL. The MSRs are every index of KVM_GET_MSR_INDEX_LIST plus the MTRRs
//! that KVM_GET_MSRS accepts, read in batches (KVM stops a batch at the first MSR it refuses;
//! that one is skipped). The VM's part is the in-kernel irqchip (PIC master, slave, IOAPIC),
//! the PIT when there is one, and kvmclock (KVM_GET_CLOCK).
//!
//! The KVM structures are kept as their raw bytes ([`Blob`], hex in JSON) with their size
//! checked on the way back: they are the kernel's ABI, which does not change under a given
//! size.

use kvm_bindings::{
    kvm_clock_data, kvm_debugregs, kvm_irqchip, kvm_lapic_state, kvm_mp_state, kvm_msr_entry,
    kvm_pit_state2, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, Msrs, Xsave,
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
};
use kvm_ioctls::VcpuFd;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a vCPU's or the VM's state could not be read or written back.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("{what}: {source}")]
    Kvm {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("{what}: {got} bytes saved, this KVM's structure has {want}")]
    Size {
        what: &'static str,
        got: usize,
        want: usize,
    },
    #[error("{what}: {source}")]
    Fam {
        what: &'static str,
        source: vmm_sys_util::fam::Error,
    },
    #[error("XSAVE area of {saved} bytes saved, this host's KVM holds {host}")]
    XsaveTooBig { saved: usize, host: usize },
}

fn kvm<T>(what: &'static str, r: Result<T, kvm_ioctls::Error>) -> Result<T, StateError> {
    r.map_err(|source| StateError::Kvm { what, source })
}

/// A KVM structure's raw bytes (hex in JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(self.0.len() * 2);
        for b in &self.0 {
            text.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("hex bytes: odd length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("hex bytes: not a hex digit"))
            })
            .collect::<Result<Vec<u8>, _>>()
            .map(Blob)
    }
}

/// KVM ABI structures: plain C data, every bit pattern valid (no references, no enums).
///
/// # Safety
///
/// Implement only for `repr(C)` types made of integers and arrays/unions of them.
unsafe trait Pod: Copy {}
// SAFETY: each is a bindgen `repr(C)` struct of integers (and unions of them).
unsafe impl Pod for kvm_regs {}
// SAFETY: as above.
unsafe impl Pod for kvm_sregs {}
// SAFETY: as above.
unsafe impl Pod for kvm_xcrs {}
// SAFETY: as above.
unsafe impl Pod for kvm_debugregs {}
// SAFETY: as above.
unsafe impl Pod for kvm_lapic_state {}
// SAFETY: as above.
unsafe impl Pod for kvm_vcpu_events {}
// SAFETY: as above.
unsafe impl Pod for kvm_irqchip {}
// SAFETY: as above.
unsafe impl Pod for kvm_pit_state2 {}
// SAFETY: as above.
unsafe impl Pod for kvm_clock_data {}

fn to_blob<T: Pod>(v: &T) -> Blob {
    // SAFETY: T is plain data (Pod); we read exactly its bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
    };
    Blob(bytes.to_vec())
}

fn from_blob<T: Pod>(what: &'static str, b: &Blob) -> Result<T, StateError> {
    let want = std::mem::size_of::<T>();
    if b.0.len() != want {
        return Err(StateError::Size {
            what,
            got: b.0.len(),
            want,
        });
    }
    // SAFETY: every bit pattern is a valid T (Pod), and the source has exactly its size.
    Ok(unsafe { std::ptr::read_unaligned(b.0.as_ptr().cast::<T>()) })
}

/// The MTRRs (fixed and variable ranges, the default type), saved besides KVM's MSR list
/// where KVM accepts them.
const MTRR_MSRS: &[u32] = &[
    0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207, 0x208, 0x209, 0x20a, 0x20b, 0x20c,
    0x20d, 0x20e, 0x20f, 0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e,
    0x26f, 0x2ff,
];

/// MSRs per KVM_GET_MSRS / KVM_SET_MSRS call.
const MSR_BATCH: usize = 64;

/// The MSRs a vCPU's state includes: KVM's list plus the MTRRs, each once.
pub fn msrs_to_save(index_list: &[u32]) -> Vec<u32> {
    let mut all: Vec<u32> = index_list.iter().chain(MTRR_MSRS).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// One vCPU's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuState {
    /// The vCPU's slot index (0 is the boot CPU).
    pub index: u32,
    /// KVM_MP_STATE_* (runnable, halted, waiting for INIT/SIPI, ...).
    pub mp_state: u32,
    pub regs: Blob,
    pub sregs: Blob,
    /// The XSAVE area: the legacy 4096 bytes, plus what KVM_GET_XSAVE2 adds.
    pub xsave: Blob,
    pub xcrs: Blob,
    pub debugregs: Blob,
    pub lapic: Blob,
    /// The TSC frequency this vCPU ran at (KVM_GET_TSC_KHZ).
    pub tsc_khz: u32,
    /// (index, value) of every MSR KVM gave, IA32_TSC among them.
    pub msrs: Vec<(u32, u64)>,
    pub vcpu_events: Blob,
}

#[cfg(test)]
impl VcpuState {
    /// A boot vCPU's state for tests that never give it to KVM: every blob is `fill`, the
    /// TSC at 2 GHz, the MSRs `msrs`.
    pub(crate) fn fixture(fill: &[u8], msrs: Vec<(u32, u64)>) -> Self {
        let blob = || Blob(fill.to_vec());
        VcpuState {
            index: 0,
            mp_state: 0,
            regs: blob(),
            sregs: blob(),
            xsave: blob(),
            xcrs: blob(),
            debugregs: blob(),
            lapic: blob(),
            tsc_khz: 2_000_000,
            msrs,
            vcpu_events: blob(),
        }
    }
}

/// Reads the state of a vCPU that is out of KVM_RUN (on its own thread). `msrs` is
/// [`msrs_to_save`]'s list; `xsave_size` is KVM_CAP_XSAVE2's size (0: KVM_GET_XSAVE).
pub fn save_vcpu(
    vcpu: &VcpuFd,
    index: u32,
    msrs: &[u32],
    xsave_size: usize,
) -> Result<VcpuState, StateError> {
    let mp_state = kvm("KVM_GET_MP_STATE", vcpu.get_mp_state())?.mp_state;
    let regs = to_blob(&kvm("KVM_GET_REGS", vcpu.get_regs())?);
    let sregs = to_blob(&kvm("KVM_GET_SREGS", vcpu.get_sregs())?);
    let xsave = Blob(get_xsave(vcpu, xsave_size)?);
    let xcrs = to_blob(&kvm("KVM_GET_XCRS", vcpu.get_xcrs())?);
    let debugregs = to_blob(&kvm("KVM_GET_DEBUGREGS", vcpu.get_debug_regs())?);
    let lapic = to_blob(&kvm("KVM_GET_LAPIC", vcpu.get_lapic())?);
    let tsc_khz = kvm("KVM_GET_TSC_KHZ", vcpu.get_tsc_khz())?;
    let msrs = get_msrs(vcpu, msrs)?;
    let vcpu_events = to_blob(&kvm("KVM_GET_VCPU_EVENTS", vcpu.get_vcpu_events())?);
    Ok(VcpuState {
        index,
        mp_state,
        regs,
        sregs,
        xsave,
        xcrs,
        debugregs,
        lapic,
        tsc_khz,
        msrs,
        vcpu_events,
    })
}

/// Writes a saved state into a vCPU before its first KVM_RUN (its CPUID is set already).
/// Returns the MSRs KVM refused (the caller warns; the rest are set).
pub fn restore_vcpu(
    vcpu: &VcpuFd,
    state: &VcpuState,
    xsave_size: usize,
) -> Result<Vec<u32>, StateError> {
    kvm(
        "KVM_SET_MP_STATE",
        vcpu.set_mp_state(kvm_mp_state {
            mp_state: state.mp_state,
        }),
    )?;
    kvm(
        "KVM_SET_REGS",
        vcpu.set_regs(&from_blob::<kvm_regs>("regs", &state.regs)?),
    )?;
    kvm(
        "KVM_SET_SREGS",
        vcpu.set_sregs(&from_blob::<kvm_sregs>("sregs", &state.sregs)?),
    )?;
    set_xsave(vcpu, &state.xsave.0, xsave_size)?;
    kvm(
        "KVM_SET_XCRS",
        vcpu.set_xcrs(&from_blob::<kvm_xcrs>("xcrs", &state.xcrs)?),
    )?;
    kvm(
        "KVM_SET_DEBUGREGS",
        vcpu.set_debug_regs(&from_blob::<kvm_debugregs>("debugregs", &state.debugregs)?),
    )?;
    kvm(
        "KVM_SET_LAPIC",
        vcpu.set_lapic(&from_blob::<kvm_lapic_state>("lapic", &state.lapic)?),
    )?;
    let refused = set_msrs(vcpu, &state.msrs)?;
    kvm(
        "KVM_SET_VCPU_EVENTS",
        vcpu.set_vcpu_events(&from_blob::<kvm_vcpu_events>(
            "vcpu_events",
            &state.vcpu_events,
        )?),
    )?;
    // Tells a guest using kvmclock that it was paused (no soft-lockup reports); a guest
    // without kvmclock makes this fail, which is harmless.
    let _ = vcpu.kvmclock_ctrl();
    Ok(refused)
}

/// The legacy XSAVE area's size (struct kvm_xsave).
const XSAVE_LEGACY: usize = std::mem::size_of::<kvm_xsave>();

fn xsave_fam_len(size: usize) -> usize {
    size.saturating_sub(XSAVE_LEGACY).div_ceil(4)
}

fn get_xsave(vcpu: &VcpuFd, xsave_size: usize) -> Result<Vec<u8>, StateError> {
    if xsave_size > XSAVE_LEGACY {
        let mut x = Xsave::new(xsave_fam_len(xsave_size)).map_err(|source| StateError::Fam {
            what: "KVM_GET_XSAVE2 buffer",
            source,
        })?;
        // SAFETY: the buffer holds the whole area KVM_CAP_XSAVE2 reported.
        kvm("KVM_GET_XSAVE2", unsafe { vcpu.get_xsave2(&mut x) })?;
        let mut bytes = Vec::with_capacity(xsave_size);
        for w in x
            .as_fam_struct_ref()
            .xsave
            .region
            .iter()
            .chain(x.as_slice())
        {
            bytes.extend_from_slice(&w.to_ne_bytes());
        }
        Ok(bytes)
    } else {
        let x = kvm("KVM_GET_XSAVE", vcpu.get_xsave())?;
        Ok(x.region.iter().flat_map(|w| w.to_ne_bytes()).collect())
    }
}

fn set_xsave(vcpu: &VcpuFd, bytes: &[u8], xsave_size: usize) -> Result<(), StateError> {
    let host = xsave_size.max(XSAVE_LEGACY);
    if bytes.len() > host {
        return Err(StateError::XsaveTooBig {
            saved: bytes.len(),
            host,
        });
    }
    if bytes.len() < XSAVE_LEGACY || bytes.len() % 4 != 0 {
        return Err(StateError::Size {
            what: "xsave",
            got: bytes.len(),
            want: XSAVE_LEGACY,
        });
    }
    let mut words = bytes
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    if xsave_size > XSAVE_LEGACY {
        let mut x = Xsave::new(xsave_fam_len(xsave_size)).map_err(|source| StateError::Fam {
            what: "KVM_SET_XSAVE2 buffer",
            source,
        })?;
        // SAFETY: kvm_xsave2 is plain data; we only write its region words.
        let fam = unsafe { x.as_mut_fam_struct() };
        for (slot, w) in fam.xsave.region.iter_mut().zip(&mut words) {
            *slot = w;
        }
        for (slot, w) in x.as_mut_slice().iter_mut().zip(&mut words) {
            *slot = w;
        }
        // SAFETY: the buffer holds the whole area this host's KVM reads.
        kvm("KVM_SET_XSAVE2", unsafe { vcpu.set_xsave2(&x) })
    } else {
        let mut x = kvm_xsave::default();
        for (slot, w) in x.region.iter_mut().zip(&mut words) {
            *slot = w;
        }
        // SAFETY: without KVM_CAP_XSAVE2 beyond 4096 bytes, KVM reads only the legacy area.
        kvm("KVM_SET_XSAVE", unsafe { vcpu.set_xsave(&x) })
    }
}

fn msr_list(what: &'static str, entries: &[kvm_msr_entry]) -> Result<Msrs, StateError> {
    Msrs::from_entries(entries).map_err(|source| StateError::Fam { what, source })
}

/// Every MSR of `indices` KVM_GET_MSRS gives, in batches; a refused one is skipped.
fn get_msrs(vcpu: &VcpuFd, indices: &[u32]) -> Result<Vec<(u32, u64)>, StateError> {
    let mut out = Vec::with_capacity(indices.len());
    let mut i = 0;
    while i < indices.len() {
        let end = (i + MSR_BATCH).min(indices.len());
        let entries: Vec<kvm_msr_entry> = indices[i..end]
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut list = msr_list("KVM_GET_MSRS", &entries)?;
        let n = kvm("KVM_GET_MSRS", vcpu.get_msrs(&mut list))?;
        out.extend(list.as_slice()[..n].iter().map(|e| (e.index, e.data)));
        // The one after the last read was refused.
        i += n + usize::from(i + n < end);
    }
    Ok(out)
}

/// Sets every saved MSR in batches; returns the ones KVM refused.
fn set_msrs(vcpu: &VcpuFd, msrs: &[(u32, u64)]) -> Result<Vec<u32>, StateError> {
    let mut refused = Vec::new();
    let mut i = 0;
    while i < msrs.len() {
        let end = (i + MSR_BATCH).min(msrs.len());
        let entries: Vec<kvm_msr_entry> = msrs[i..end]
            .iter()
            .map(|&(index, data)| kvm_msr_entry {
                index,
                data,
                ..Default::default()
            })
            .collect();
        let list = msr_list("KVM_SET_MSRS", &entries)?;
        let n = kvm("KVM_SET_MSRS", vcpu.set_msrs(&list))?;
        if i + n < end {
            refused.push(msrs[i + n].0);
            i += n + 1;
        } else {
            i = end;
        }
    }
    Ok(refused)
}

/// The VM's in-kernel devices and clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmState {
    pub pic_master: Blob,
    pub pic_slave: Blob,
    pub ioapic: Blob,
    /// The PIT, when the VM has one (`--machine pit=on`).
    pub pit: Option<Blob>,
    /// kvmclock (KVM_GET_CLOCK).
    pub clock: Blob,
}

fn get_chip(vm: &kvm_ioctls::VmFd, chip_id: u32) -> Result<Blob, StateError> {
    let mut chip = kvm_irqchip {
        chip_id,
        ..Default::default()
    };
    kvm("KVM_GET_IRQCHIP", vm.get_irqchip(&mut chip))?;
    Ok(to_blob(&chip))
}

fn set_chip(vm: &kvm_ioctls::VmFd, chip_id: u32, b: &Blob) -> Result<(), StateError> {
    let mut chip = from_blob::<kvm_irqchip>("irqchip", b)?;
    chip.chip_id = chip_id;
    kvm("KVM_SET_IRQCHIP", vm.set_irqchip(&chip))
}

/// Reads the VM's irqchip, PIT (when `pit`) and clock; every vCPU must be out of KVM_RUN.
pub fn save_vm(vm: &kvm_ioctls::VmFd, pit: bool) -> Result<VmState, StateError> {
    Ok(VmState {
        pic_master: get_chip(vm, KVM_IRQCHIP_PIC_MASTER)?,
        pic_slave: get_chip(vm, KVM_IRQCHIP_PIC_SLAVE)?,
        ioapic: get_chip(vm, KVM_IRQCHIP_IOAPIC)?,
        pit: if pit {
            Some(to_blob(&kvm("KVM_GET_PIT2", vm.get_pit2())?))
        } else {
            None
        },
        clock: to_blob(&kvm("KVM_GET_CLOCK", vm.get_clock())?),
    })
}

/// Writes the saved irqchip, PIT and clock back (before any vCPU runs). The clock goes on
/// from the saved value: the guest does not see the time the snapshot spent on disk.
pub fn restore_vm(vm: &kvm_ioctls::VmFd, state: &VmState) -> Result<(), StateError> {
    set_chip(vm, KVM_IRQCHIP_PIC_MASTER, &state.pic_master)?;
    set_chip(vm, KVM_IRQCHIP_PIC_SLAVE, &state.pic_slave)?;
    set_chip(vm, KVM_IRQCHIP_IOAPIC, &state.ioapic)?;
    if let Some(pit) = &state.pit {
        kvm(
            "KVM_SET_PIT2",
            vm.set_pit2(&from_blob::<kvm_pit_state2>("pit", pit)?),
        )?;
    }
    let saved = from_blob::<kvm_clock_data>("clock", &state.clock)?;
    let clock = kvm_clock_data {
        clock: saved.clock,
        ..Default::default()
    };
    kvm("KVM_SET_CLOCK", vm.set_clock(&clock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_as_hex_and_sizes_are_checked() {
        let b = Blob(vec![0, 1, 0xab, 0xff]);
        let text = serde_json::to_string(&b).unwrap();
        assert_eq!(text, "\"0001abff\"");
        assert_eq!(serde_json::from_str::<Blob>(&text).unwrap(), b);
        assert!(serde_json::from_str::<Blob>("\"0g\"").is_err());
        assert!(serde_json::from_str::<Blob>("\"abc\"").is_err());
        let regs = kvm_regs {
            rip: 0x1234,
            ..Default::default()
        };
        let blob = to_blob(&regs);
        assert_eq!(from_blob::<kvm_regs>("regs", &blob).unwrap().rip, 0x1234);
        let short = Blob(blob.0[1..].to_vec());
        assert_eq!(
            from_blob::<kvm_regs>("regs", &short)
                .unwrap_err()
                .to_string(),
            format!(
                "regs: {} bytes saved, this KVM's structure has {}",
                blob.0.len() - 1,
                blob.0.len()
            )
        );
    }

    #[test]
    fn the_msr_list_adds_the_mtrrs_once() {
        let list = msrs_to_save(&[0x10, 0x2ff, 0x174]);
        assert_eq!(list.iter().filter(|&&m| m == 0x2ff).count(), 1);
        assert!(list.contains(&0x10) && list.contains(&0x200) && list.contains(&0x174));
        assert!(list.windows(2).all(|w| w[0] < w[1]));
    }

    /// A real vCPU's state survives a save and a restore into a second VM's vCPU.
    #[test]
    fn a_vcpu_state_restores_into_a_fresh_vcpu() {
        let kvm = kvm_ioctls::Kvm::new().unwrap();
        let make = || {
            let vm = kvm.create_vm().unwrap();
            vm.create_irq_chip().unwrap();
            let vcpu = vm.create_vcpu(0).unwrap();
            let cpuid = kvm
                .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                .unwrap();
            vcpu.set_cpuid2(&cpuid).unwrap();
            (vm, vcpu)
        };
        let (vm1, vcpu1) = make();
        let mut regs = vcpu1.get_regs().unwrap();
        regs.rax = 0xdead_beef;
        regs.rip = 0x1000;
        vcpu1.set_regs(&regs).unwrap();
        let xsave_size = vm1.check_extension_int(kvm_ioctls::Cap::Xsave2).max(0) as usize;
        let list = msrs_to_save(kvm.get_msr_index_list().unwrap().as_slice());
        let saved = save_vcpu(&vcpu1, 0, &list, xsave_size).unwrap();
        assert!(
            saved.msrs.iter().any(|&(i, _)| i == 0x10),
            "IA32_TSC is saved"
        );
        let vm_state = save_vm(&vm1, false).unwrap();

        let (vm2, vcpu2) = make();
        restore_vm(&vm2, &vm_state).unwrap();
        restore_vcpu(&vcpu2, &saved, xsave_size).unwrap();
        let again = save_vcpu(&vcpu2, 0, &list, xsave_size).unwrap();
        assert_eq!(
            from_blob::<kvm_regs>("regs", &again.regs).unwrap().rax,
            0xdead_beef
        );
        assert_eq!(again.sregs, saved.sregs);
        assert_eq!(again.lapic, saved.lapic);
        assert_eq!(again.xsave, saved.xsave);
    }
}
