//! The practical limit for exit round trips: a bare KVM_RUN loop with no VMM around it.
//!
//! One VM, one vCPU, one page of real-mode code that writes to port 0x80 forever
//! (`mov dx, 0x80; 1: out dx, al; jmp 1b`). Every `out` is a KVM_EXIT_IO to user space; the
//! loop counts the exits and re-enters at once, doing nothing else. What it measures is
//! KVM_RUN's own round trip on this host, the ceiling any VMM's port-I/O path can reach.

use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};
use thiserror::Error;

/// The port the guest writes (the POST-code port, handled nowhere in the kernel).
pub const LOOP_PORT: u16 = 0x80;
/// Guest-physical address of the code page.
const CODE_GPA: u64 = 0x1000;
/// Size of the one memory slot (guest RAM at 0).
const RAM_SIZE: usize = 0x10000;
/// KVM's real-mode TSS (3 pages) for VMX hosts without unrestricted guest; unused elsewhere.
const TSS_ADDRESS: usize = 0xfffb_d000;

/// `mov dx, 0x80` / `out dx, al` / `jmp short -3` (back to the `out`), in 16-bit real mode.
const GUEST_CODE: [u8; 6] = [0xba, 0x80, 0x00, 0xee, 0xeb, 0xfd];

/// Why the bare loop could not run.
#[derive(Debug, Error)]
pub enum KvmLoopError {
    #[error("bare KVM loop: {what}: {source}")]
    Kvm {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("bare KVM loop: mmap of {RAM_SIZE} bytes of guest RAM failed: {0}")]
    Mmap(std::io::Error),
    #[error("bare KVM loop: unexpected exit after {done} port writes: {exit}")]
    UnexpectedExit { done: u64, exit: String },
}

fn kvm<T>(what: &'static str, r: Result<T, kvm_ioctls::Error>) -> Result<T, KvmLoopError> {
    r.map_err(|source| KvmLoopError::Kvm { what, source })
}

/// What one run of the loop measured.
#[derive(Clone, Copy, Debug)]
pub struct LoopResult {
    /// Port writes (exits to user space) counted.
    pub exits: u64,
    /// Time from the first KVM_RUN to the last exit.
    pub elapsed: Duration,
}

impl LoopResult {
    /// Exit round trips per second.
    pub fn rate(&self) -> f64 {
        self.exits as f64 / self.elapsed.as_secs_f64()
    }
}

/// Anonymous guest RAM, unmapped on drop.
struct Ram {
    ptr: *mut u8,
}

impl Ram {
    fn new() -> Result<Ram, KvmLoopError> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RAM_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(KvmLoopError::Mmap(std::io::Error::last_os_error()));
        }
        Ok(Ram { ptr: ptr.cast() })
    }
}

impl Drop for Ram {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`, once.
        unsafe { libc::munmap(self.ptr.cast(), RAM_SIZE) };
    }
}

/// Runs the guest until it has made `exits` port writes and returns the time they took.
pub fn run(exits: u64) -> Result<LoopResult, KvmLoopError> {
    // Declared first, so dropped last: the RAM outlives the VM that maps it.
    let ram = Ram::new()?;
    let kvm_fd = kvm("open /dev/kvm", Kvm::new())?;
    let vm = kvm("KVM_CREATE_VM", kvm_fd.create_vm())?;
    kvm("KVM_SET_TSS_ADDR", vm.set_tss_address(TSS_ADDRESS))?;
    // SAFETY: CODE_GPA + the code lies inside the RAM_SIZE bytes just mapped.
    unsafe {
        std::ptr::copy_nonoverlapping(
            GUEST_CODE.as_ptr(),
            ram.ptr.add(CODE_GPA as usize),
            GUEST_CODE.len(),
        )
    };
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: RAM_SIZE as u64,
        userspace_addr: ram.ptr as u64,
    };
    // SAFETY: the region is our live mapping of RAM_SIZE bytes, and `ram` outlives `vm`.
    kvm("KVM_SET_USER_MEMORY_REGION", unsafe {
        vm.set_user_memory_region(region)
    })?;
    let mut vcpu = kvm("KVM_CREATE_VCPU", vm.create_vcpu(0))?;
    let mut sregs = kvm("KVM_GET_SREGS", vcpu.get_sregs())?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    kvm("KVM_SET_SREGS", vcpu.set_sregs(&sregs))?;
    let mut regs = kvm("KVM_GET_REGS", vcpu.get_regs())?;
    regs.rip = CODE_GPA;
    regs.rflags = 0x2; // RFLAGS bit 1 is reserved and always 1 (SDM Vol. 1, 3.4.3).
    kvm("KVM_SET_REGS", vcpu.set_regs(&regs))?;

    // One untimed exit first: the first KVM_RUN also faults in the code page and sets up
    // the vCPU, costs a VMM's loop has long paid by the time the guest's loop starts.
    let mut done = 0u64;
    let mut start = Instant::now();
    while done <= exits {
        match kvm("KVM_RUN", vcpu.run())? {
            VcpuExit::IoOut(LOOP_PORT, _) => {
                if done == 0 {
                    start = Instant::now();
                }
                done += 1;
            }
            other => {
                return Err(KvmLoopError::UnexpectedExit {
                    done,
                    exit: format!("{other:?}"),
                })
            }
        }
    }
    let elapsed = start.elapsed();
    Ok(LoopResult { exits, elapsed })
}
