//! Times each KVM VM-setup step in the order given on the command line, then the VM's
//! teardown: the experiment behind docs/benchmarks.md's finding that registering guest RAM
//! after KVM_CREATE_IRQCHIP/KVM_CREATE_PIT2 costs milliseconds on this host.
//!
//! `setup_order tss,irq,pit,mem,vcpu` (rvmm's order) vs `setup_order tss,mem,irq,pit,vcpu`.
//! Steps: `tss` KVM_SET_TSS_ADDR, `irq` KVM_CREATE_IRQCHIP, `pit` KVM_CREATE_PIT2 (speaker
//! dummy, as rvmm), `pit0` the same without the speaker, `noreinject` PIT reinjection off,
//! `mem` one 128 MiB memory slot, `vcpu` one vCPU. Prints `step=ms` for each and `drop=ms`.

use std::os::fd::AsRawFd;
use std::time::Instant;

use kvm_bindings::{
    kvm_pit_config, kvm_reinject_control, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::Kvm;

const MEM_SIZE: usize = 128 << 20;
/// KVM_REINJECT_CONTROL = _IO(KVMIO, 0x71).
const KVM_REINJECT_CONTROL: libc::c_ulong = 0xae71;

fn main() {
    let order = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tss,irq,pit,mem,vcpu".into());
    let kvm = Kvm::new().expect("open /dev/kvm");
    let vm = kvm.create_vm().expect("KVM_CREATE_VM");
    // SAFETY: a fresh anonymous mapping; it is never unmapped, so it outlives the VM.
    let ram = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(ram, libc::MAP_FAILED, "mmap of guest RAM");
    let mut vcpus = Vec::new();
    let mut out = Vec::new();
    for step in order.split(',') {
        let t = Instant::now();
        match step {
            "tss" => vm.set_tss_address(0xfffb_d000).expect("KVM_SET_TSS_ADDR"),
            "irq" => vm.create_irq_chip().expect("KVM_CREATE_IRQCHIP"),
            "pit" | "pit0" => {
                let flags = if step == "pit" {
                    KVM_PIT_SPEAKER_DUMMY
                } else {
                    0
                };
                let config = kvm_pit_config {
                    flags,
                    ..Default::default()
                };
                vm.create_pit2(config).expect("KVM_CREATE_PIT2 (after irq)")
            }
            "noreinject" => {
                let control = kvm_reinject_control::default();
                // SAFETY: KVM_REINJECT_CONTROL reads one kvm_reinject_control we own.
                let r = unsafe { libc::ioctl(vm.as_raw_fd(), KVM_REINJECT_CONTROL, &control) };
                assert_eq!(r, 0, "KVM_REINJECT_CONTROL (after pit)");
            }
            "mem" => {
                let region = kvm_userspace_memory_region {
                    slot: 0,
                    flags: 0,
                    guest_phys_addr: 0,
                    memory_size: MEM_SIZE as u64,
                    userspace_addr: ram as u64,
                };
                // SAFETY: the region is our mapping of MEM_SIZE bytes, never unmapped.
                unsafe { vm.set_user_memory_region(region) }.expect("KVM_SET_USER_MEMORY_REGION");
            }
            "vcpu" => vcpus.push(vm.create_vcpu(0).expect("KVM_CREATE_VCPU")),
            other => panic!("unknown step {other:?} (tss, irq, pit, pit0, noreinject, mem, vcpu)"),
        }
        out.push(format!("{step}={:.3}", t.elapsed().as_secs_f64() * 1e3));
    }
    let t = Instant::now();
    drop(vcpus);
    drop(vm);
    out.push(format!("drop={:.3}", t.elapsed().as_secs_f64() * 1e3));
    println!("{}", out.join(" "));
}
