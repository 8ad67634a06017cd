use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region};
use kvm_ioctls::Kvm;
use std::time::Instant;

fn main() {
    let order = std::env::args().nth(1).unwrap_or("irq,pit,mem".into());
    let size: usize = 128 << 20;
    let kvm = Kvm::new().unwrap();
    let vm = kvm.create_vm().unwrap();
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    let mut out = vec![];
    let mut vcpus = vec![];
    for step in order.split(',') {
        let t = Instant::now();
        match step {
            "irq" => vm.create_irq_chip().unwrap(),
            "pit" => vm
                .create_pit2(kvm_pit_config {
                    flags: kvm_bindings::KVM_PIT_SPEAKER_DUMMY,
                    ..Default::default()
                })
                .unwrap(),
            "pit0" => vm.create_pit2(kvm_pit_config::default()).unwrap(),
            "noreinject" => {
                let rc = kvm_bindings::kvm_reinject_control::default();
                let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&vm), 0xAE71, &rc) };
                assert_eq!(r, 0);
            }
            "mem" => unsafe {
                vm.set_user_memory_region(kvm_userspace_memory_region {
                    slot: 0,
                    flags: 0,
                    guest_phys_addr: 0,
                    memory_size: size as u64,
                    userspace_addr: ptr as u64,
                })
                .unwrap()
            },
            "mem2" => unsafe {
                vm.set_user_memory_region(kvm_userspace_memory_region {
                    slot: 1,
                    flags: 0,
                    guest_phys_addr: 1 << 32,
                    memory_size: size as u64,
                    userspace_addr: ptr as u64,
                })
                .unwrap()
            },
            "vcpu" => {
                vcpus.push(vm.create_vcpu(0).unwrap());
            }
            "tss" => vm.set_tss_address(0xfffb_d000).unwrap(),
            _ => panic!(),
        }
        out.push(format!("{step}={:.3}", t.elapsed().as_secs_f64() * 1e3));
    }
    let t = Instant::now();
    drop(vcpus);
    drop(vm);
    out.push(format!("drop={:.3}", t.elapsed().as_secs_f64() * 1e3));
    println!("{}", out.join(" "));
}
