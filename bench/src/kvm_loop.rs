//! The practical limit for exit round trips: a bare KVM_RUN loop with no VMM around it.
//!
//! One VM, one vCPU, a few bytes of code that write to port 0x80 forever
//! (`mov dx, 0x80; 1: out dx, al; jmp 1b`). Every `out` is a KVM_EXIT_IO to user space; the
//! loop counts the exits and re-enters at once, doing nothing else. What it measures is
//! KVM_RUN's own round trip on this host, the ceiling any VMM's port-I/O path can reach.
//!
//! The code runs in 16-bit real mode (the classic minimal guest), or in 64-bit long mode
//! with 4-level paging like the probe guest's own loop: on kvm-pvm the `out` is emulated,
//! and fetching it through the guest's page tables costs more than in real mode.

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
const REAL_MODE_CODE: &[u8] = &[0xba, 0x80, 0x00, 0xee, 0xeb, 0xfd];
/// `mov edx, 0x80` / `out dx, al` / `jmp short -3`, in 64-bit mode.
const LONG_MODE_CODE: &[u8] = &[0xba, 0x80, 0x00, 0x00, 0x00, 0xee, 0xeb, 0xfd];

/// Long mode's page tables: PML4 → PDPT → PD with one 2 MiB page mapping [0, 2 MiB).
const PML4_GPA: u64 = 0x2000;
const PDPT_GPA: u64 = 0x3000;
const PD_GPA: u64 = 0x4000;
/// Page-table entry bits (SDM Vol. 3A, 4.5): present, writable, and PS (a 2 MiB page in a PD).
const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_PS: u64 = 1 << 7;
/// CR0.PE (bit 0), CR0.ET (bit 4), CR0.PG (bit 31); CR4.PAE (bit 5); EFER.LME (bit 8),
/// EFER.LMA (bit 10) (SDM Vol. 3A, 2.5 and 2.2.1).
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// Segment descriptor types: execute/read code, read/write data, both accessed.
const SEG_TYPE_CODE: u8 = 0xb;
const SEG_TYPE_DATA: u8 = 0x3;

/// At most this many untimed exits before the timed ones (a tenth of the count otherwise).
const WARMUP_MAX: u64 = 10_000;

/// The guest's CPU mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 16-bit real mode, as the vCPU comes out of reset.
    Real,
    /// 64-bit long mode with 4-level paging, as the probe guest runs.
    Long,
}

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

impl Ram {
    fn write(&self, gpa: u64, bytes: &[u8]) {
        assert!(
            gpa as usize + bytes.len() <= RAM_SIZE,
            "guest write outside RAM"
        );
        // SAFETY: the range lies inside the RAM_SIZE bytes mapped (checked just above).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(gpa as usize), bytes.len())
        };
    }
}

/// Runs the guest until it has made `exits` port writes and returns the time they took.
pub fn run(exits: u64) -> Result<LoopResult, KvmLoopError> {
    run_in(Mode::Real, exits)
}

/// Sets up `vcpu` for `mode` and writes its code (and page tables) into `ram`.
fn setup(mode: Mode, ram: &Ram, vcpu: &kvm_ioctls::VcpuFd) -> Result<(), KvmLoopError> {
    let mut sregs = kvm("KVM_GET_SREGS", vcpu.get_sregs())?;
    match mode {
        Mode::Real => {
            ram.write(CODE_GPA, REAL_MODE_CODE);
            sregs.cs.base = 0;
            sregs.cs.selector = 0;
        }
        Mode::Long => {
            ram.write(CODE_GPA, LONG_MODE_CODE);
            ram.write(PML4_GPA, &(PDPT_GPA | PTE_P | PTE_RW).to_le_bytes());
            ram.write(PDPT_GPA, &(PD_GPA | PTE_P | PTE_RW).to_le_bytes());
            ram.write(PD_GPA, &(PTE_P | PTE_RW | PTE_PS).to_le_bytes());
            sregs.cr3 = PML4_GPA;
            sregs.cr4 = CR4_PAE;
            sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
            sregs.efer = EFER_LME | EFER_LMA;
            let flat = |selector: u16, type_: u8, l: u8, db: u8| kvm_bindings::kvm_segment {
                base: 0,
                limit: 0xffff_ffff,
                selector,
                type_,
                present: 1,
                dpl: 0,
                db,
                s: 1,
                l,
                g: 1,
                ..Default::default()
            };
            sregs.cs = flat(0x8, SEG_TYPE_CODE, 1, 0);
            let data = flat(0x10, SEG_TYPE_DATA, 0, 1);
            (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
        }
    }
    kvm("KVM_SET_SREGS", vcpu.set_sregs(&sregs))?;
    let mut regs = kvm("KVM_GET_REGS", vcpu.get_regs())?;
    regs.rip = CODE_GPA;
    regs.rflags = 0x2; // RFLAGS bit 1 is reserved and always 1 (SDM Vol. 1, 3.4.3).
    kvm("KVM_SET_REGS", vcpu.set_regs(&regs))?;
    Ok(())
}

/// [`run`] with the guest in `mode`.
pub fn run_in(mode: Mode, exits: u64) -> Result<LoopResult, KvmLoopError> {
    // Declared first, so dropped last: the RAM outlives the VM that maps it.
    let ram = Ram::new()?;
    let kvm_fd = kvm("open /dev/kvm", Kvm::new())?;
    let vm = kvm("KVM_CREATE_VM", kvm_fd.create_vm())?;
    kvm("KVM_SET_TSS_ADDR", vm.set_tss_address(TSS_ADDRESS))?;
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
    setup(mode, &ram, &vcpu)?;

    // Untimed exits first: the first KVM_RUNs fault in the code page and warm up the vCPU
    // (and, on kvm-pvm, its emulator), costs a VMM's loop has long paid by the time the
    // probe's loop starts after its dump.
    let warmup = (exits / 10).clamp(1, WARMUP_MAX);
    let mut done = 0u64;
    let mut start = Instant::now();
    while done < warmup + exits {
        match kvm("KVM_RUN", vcpu.run())? {
            VcpuExit::IoOut(LOOP_PORT, _) => {
                done += 1;
                if done == warmup {
                    start = Instant::now();
                }
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
