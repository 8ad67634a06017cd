//! One KVM VM: its file descriptor and the in-kernel parts of the machine.
//!
//! [`Vm::new`] creates the VM in the order that keeps starts fast: the TSS and identity map,
//! then guest RAM as memory slots, then the in-kernel irqchip and (when asked) the PIT.
//! Registering a slot once the irqchip or PIT exists waits for an RCU grace period in the
//! kernel (~6 ms per start, docs/benchmarks.md hot spot 1). Devices reach the guest's
//! interrupt controllers through irqfds ([`Vm::irqfd`]). Guest RAM itself (mapping, backing,
//! prealloc) belongs to `memory`; this module only tells KVM where it is.
//!
//! For live migration the VM keeps its RAM slots: [`Vm::dirty_log`] hands a migration thread
//! what it needs to turn KVM's dirty page logging on and off (the slots registered again with
//! KVM_MEM_LOG_DIRTY_PAGES, or without) and to read each slot's log (KVM_GET_DIRTY_LOG, which
//! also clears it).

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use std::sync::Arc;

use kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vmm_sys_util::eventfd::EventFd;

use super::{kvm_call, MachineError};
use crate::config::machine::Switch;
use crate::memory::layout::{COM1_IRQ, SCI_IRQ};

/// Where KVM puts the TSS and identity map VMX needs for real mode (3 pages just below the
/// BIOS ROM area at the top of the 32-bit space, inside the MMIO gap).
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;
const KVM_IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;

/// The machine's own options (`--machine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineOptions {
    /// KVM's in-kernel i8254 PIT (KVM_CREATE_PIT2).
    pub pit: Switch,
}

/// One range of guest RAM as KVM sees it: guest-physical base, size, and where it is
/// mapped in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamSlot {
    pub guest_addr: u64,
    pub size: u64,
    pub host_addr: *mut u8,
}

/// The interrupt lines user-space devices raise through irqfds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqLine {
    /// COM1's IRQ 4.
    Com1,
    /// The ACPI SCI, IRQ 9 (the FADT's SCI_INT).
    Sci,
}

impl IrqLine {
    fn gsi(self) -> u32 {
        match self {
            IrqLine::Com1 => COM1_IRQ,
            IrqLine::Sci => SCI_IRQ,
        }
    }

    fn eventfd_name(self) -> &'static str {
        match self {
            IrqLine::Com1 => "serial eventfd",
            IrqLine::Sci => "SCI eventfd",
        }
    }

    fn irqfd_name(self) -> &'static str {
        match self {
            IrqLine::Com1 => "KVM_IRQFD (COM1)",
            IrqLine::Sci => "KVM_IRQFD (SCI)",
        }
    }
}

/// A KVM VM with its memory slots, irqchip and PIT.
pub struct Vm {
    fd: Arc<VmFd>,
    /// Whether the VM has the in-kernel PIT.
    pit: bool,
    /// The RAM slots as registered (slot number = index).
    slots: Vec<SlotInfo>,
}

/// One registered RAM slot (the host address as a number: it is only handed back to KVM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    pub slot: u32,
    pub guest_addr: u64,
    pub size: u64,
    host_addr: u64,
}

impl SlotInfo {
    fn region(&self, flags: u32) -> kvm_userspace_memory_region {
        kvm_userspace_memory_region {
            slot: self.slot,
            flags,
            guest_phys_addr: self.guest_addr,
            memory_size: self.size,
            userspace_addr: self.host_addr,
        }
    }
}

/// KVM's dirty page log over every RAM slot, for a migration thread. It holds the VM fd
/// and the guest RAM, so the slots it registers again stay valid while it lives.
pub struct DirtyLog {
    fd: Arc<VmFd>,
    slots: Vec<SlotInfo>,
    _ram: Arc<crate::memory::GuestRam>,
}

impl DirtyLog {
    /// The RAM slots.
    pub fn slots(&self) -> &[SlotInfo] {
        &self.slots
    }

    fn set_flags(&self, flags: u32) -> Result<(), MachineError> {
        for s in &self.slots {
            // SAFETY: the same mapping the slot was created with (`Vm::new`'s contract);
            // `_ram` keeps it mapped while this lives.
            kvm_call("KVM_SET_USER_MEMORY_REGION (dirty log)", unsafe {
                self.fd.set_user_memory_region(s.region(flags))
            })?;
        }
        Ok(())
    }

    /// Turns dirty page logging on for every slot (the logs start empty).
    pub fn enable(&self) -> Result<(), MachineError> {
        self.set_flags(KVM_MEM_LOG_DIRTY_PAGES)
    }

    /// Turns it off again.
    pub fn disable(&self) -> Result<(), MachineError> {
        self.set_flags(0)
    }

    /// The slot's pages written since the last call (one bit per page, from the slot's
    /// base), and clears the log.
    pub fn fetch(&self, slot: &SlotInfo) -> Result<Vec<u64>, MachineError> {
        kvm_call(
            "KVM_GET_DIRTY_LOG",
            self.fd.get_dirty_log(slot.slot, slot.size as usize),
        )
    }
}

impl Vm {
    /// Creates the VM with `ram` registered and the in-kernel devices `options` ask for.
    ///
    /// # Safety
    ///
    /// Every slot must describe a live mapping of `size` bytes at `host_addr` that outlives
    /// the returned `Vm` (KVM maps guest memory from it until the VM fd is closed).
    pub unsafe fn new(
        kvm: &Kvm,
        ram: impl IntoIterator<Item = RamSlot>,
        options: MachineOptions,
    ) -> Result<Vm, MachineError> {
        let fd = kvm_call("KVM_CREATE_VM", kvm.create_vm())?;
        kvm_call("KVM_SET_TSS_ADDR", fd.set_tss_address(KVM_TSS_ADDRESS))?;
        kvm_call(
            "KVM_SET_IDENTITY_MAP_ADDR",
            fd.set_identity_map_address(KVM_IDENTITY_MAP_ADDRESS),
        )?;
        let mut slots = Vec::new();
        for (slot, r) in ram.into_iter().enumerate() {
            let info = SlotInfo {
                slot: slot as u32,
                guest_addr: r.guest_addr,
                size: r.size,
                host_addr: r.host_addr as u64,
            };
            slots.push(info);
            let region = info.region(0);
            // SAFETY: the caller guarantees the mapping is live, of this size, and outlives
            // the VM (this function's contract).
            kvm_call("KVM_SET_USER_MEMORY_REGION", unsafe {
                fd.set_user_memory_region(region)
            })?;
        }
        kvm_call("KVM_CREATE_IRQCHIP", fd.create_irq_chip())?;
        if options.pit == Switch::On {
            let pit = kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            kvm_call("KVM_CREATE_PIT2", fd.create_pit2(pit))?;
        }
        Ok(Vm {
            fd: Arc::new(fd),
            pit: options.pit == Switch::On,
            slots,
        })
    }

    /// The dirty page log over this VM's RAM slots (`ram` is the RAM they map).
    pub fn dirty_log(&self, ram: Arc<crate::memory::GuestRam>) -> DirtyLog {
        DirtyLog {
            fd: self.fd.clone(),
            slots: self.slots.clone(),
            _ram: ram,
        }
    }

    /// The VM's KVM binary statistics.
    pub fn stats(
        &self,
    ) -> Result<crate::machine::stats::StatsFd, crate::machine::stats::StatsError> {
        crate::machine::stats::StatsFd::open_vm(&self.fd)
    }

    /// A new eventfd wired to `line`: writing it raises the guest interrupt.
    pub fn irqfd(&self, line: IrqLine) -> Result<EventFd, MachineError> {
        let evt = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(|source| {
            MachineError::Eventfd {
                what: line.eventfd_name(),
                source,
            }
        })?;
        kvm_call(line.irqfd_name(), self.fd.register_irqfd(&evt, line.gsi()))?;
        Ok(evt)
    }

    /// A new eventfd wired to a virtio-mmio device's GSI.
    pub fn irqfd_gsi(&self, gsi: u32) -> Result<EventFd, MachineError> {
        let evt = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(|source| {
            MachineError::Eventfd {
                what: "virtio interrupt eventfd",
                source,
            }
        })?;
        kvm_call("KVM_IRQFD (virtio)", self.fd.register_irqfd(&evt, gsi))?;
        Ok(evt)
    }

    /// A new eventfd that KVM signals, without leaving the kernel, when the guest writes
    /// 4 bytes (any value) to the MMIO address `addr` (KVM_IOEVENTFD).
    pub fn ioeventfd_mmio(&self, addr: u64) -> Result<EventFd, MachineError> {
        let evt = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(|source| {
            MachineError::Eventfd {
                what: "virtio notify eventfd",
                source,
            }
        })?;
        kvm_call(
            "KVM_IOEVENTFD",
            self.fd.register_ioevent(
                &evt,
                &kvm_ioctls::IoEventAddress::Mmio(addr),
                kvm_ioctls::NoDatamatch,
            ),
        )?;
        Ok(evt)
    }

    /// The VM's irqchip, PIT and clock (`machine::state`); every vCPU must be out of KVM_RUN.
    pub fn save_state(&self) -> Result<super::state::VmState, super::state::StateError> {
        super::state::save_vm(&self.fd, self.pit)
    }

    /// Writes a saved irqchip, PIT and clock back, before any vCPU runs.
    pub fn restore_state(
        &self,
        state: &super::state::VmState,
    ) -> Result<(), super::state::StateError> {
        super::state::restore_vm(&self.fd, state)
    }

    /// Whether the VM has the in-kernel PIT.
    pub fn has_pit(&self) -> bool {
        self.pit
    }

    /// KVM_CAP_XSAVE2's XSAVE area size, 0 when KVM has no KVM_GET_XSAVE2.
    pub fn xsave_size(&self) -> usize {
        usize::try_from(self.fd.check_extension_int(kvm_ioctls::Cap::Xsave2)).unwrap_or(0)
    }

    /// Creates the vCPU whose KVM id (and initial APIC ID) is `apic_id`.
    pub fn create_vcpu(&self, apic_id: u32) -> Result<VcpuFd, MachineError> {
        kvm_call("KVM_CREATE_VCPU", self.fd.create_vcpu(apic_id as u64))
    }
}
