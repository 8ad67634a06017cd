//! A vCPU's state before its first KVM_RUN: its CPUID table, the boot MSRs, and for the boot
//! vCPU the registers the boot protocol asks for. The values come from `cpu` (tables, MSR
//! list) and `boot` (entry point and mode); this module only hands them to KVM.

use kvm_bindings::{kvm_fpu, kvm_msr_entry, Msrs};
use kvm_ioctls::VcpuFd;

use super::cpuid;
use crate::boot::{self, BootEntry};
use crate::cpu::cpuid::CpuidEntry;
use crate::machine::{kvm_call, MachineError};

/// What one vCPU starts with.
pub struct VcpuSetup<'a> {
    /// The vCPU's index (0 is the boot CPU), for messages.
    pub index: u32,
    /// Its CPUID table, as `cpu::builder` made it.
    pub cpuid: &'a [CpuidEntry],
    /// MSR index and value pairs (`cpu::msr::boot_msrs`).
    pub msrs: &'a [(u32, u64)],
    /// Where the boot vCPU starts; `None` for application processors, which wait for
    /// INIT/SIPI in the in-kernel LAPIC.
    pub boot: Option<&'a BootEntry>,
}

/// Sets CPUID, MSRs and, for the boot vCPU, the registers.
pub fn configure(vcpu: &VcpuFd, setup: &VcpuSetup) -> Result<(), MachineError> {
    let table = cpuid::to_kvm(setup.cpuid).map_err(MachineError::Cpuid)?;
    kvm_call("KVM_SET_CPUID2", vcpu.set_cpuid2(&table))?;
    set_msrs(vcpu, setup.index, setup.msrs)?;
    if let Some(entry) = setup.boot {
        set_boot_registers(vcpu, entry)?;
    }
    Ok(())
}

/// Makes a vCPU created while the VM runs reachable by IPIs: KVM computes the map from
/// APIC IDs to vCPUs when a local APIC's ID or state changes, and a new vCPU's reset does
/// that before KVM counts the vCPU as online, so INIT/SIPI for its APIC ID would find no
/// one. Writing its local APIC state back (KVM_GET_LAPIC, KVM_SET_LAPIC) recomputes the map
/// with it in. Boot vCPUs need none of this: the guest's own APIC setup recomputes the map
/// after every one of them exists.
pub fn refresh_apic_map(vcpu: &VcpuFd) -> Result<(), MachineError> {
    let lapic = kvm_call("KVM_GET_LAPIC", vcpu.get_lapic())?;
    kvm_call("KVM_SET_LAPIC", vcpu.set_lapic(&lapic))
}

/// Sets `msrs` (index, value) on `vcpu`; every one must be accepted.
pub(crate) fn set_msrs(vcpu: &VcpuFd, index: u32, msrs: &[(u32, u64)]) -> Result<(), MachineError> {
    let entries: Vec<kvm_msr_entry> = msrs
        .iter()
        .map(|&(i, data)| kvm_msr_entry {
            index: i,
            data,
            ..Default::default()
        })
        .collect();
    let list = Msrs::from_entries(&entries).map_err(MachineError::MsrList)?;
    let set = kvm_call("KVM_SET_MSRS", vcpu.set_msrs(&list))?;
    if set != entries.len() {
        return Err(MachineError::Msrs {
            vcpu: index,
            set,
            total: entries.len(),
            refused: entries[set].index,
        });
    }
    Ok(())
}

fn set_boot_registers(vcpu: &VcpuFd, entry: &BootEntry) -> Result<(), MachineError> {
    let mut sregs = kvm_call("KVM_GET_SREGS", vcpu.get_sregs())?;
    boot::regs::setup_sregs(&mut sregs, entry.mode);
    kvm_call("KVM_SET_SREGS", vcpu.set_sregs(&sregs))?;
    kvm_call(
        "KVM_SET_REGS",
        vcpu.set_regs(&boot::regs::boot_regs(entry.mode, entry.entry)),
    )?;
    // x87 and SSE control words at their power-on values (SDM Vol. 1, 8.1.5 and 10.2.3).
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    kvm_call("KVM_SET_FPU", vcpu.set_fpu(&fpu))?;
    Ok(())
}
