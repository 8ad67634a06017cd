//! Guest physical memory: the address layout (RAM regions around the 32-bit MMIO gap and the
//! fixed platform addresses), the host mapping that backs it (anonymous, hugetlb, file;
//! KSM/THP advice; preallocation), its binding to host NUMA nodes, and the `vm-memory` view
//! of it (`GuestRam`: one `GuestRegionMmap` per RAM range, volatile access only).
//!
//! KVM memory slots are the machine layer's; what goes where at boot is `boot`'s.

pub mod backing;
pub mod guest;
pub mod layout;
pub mod numa;
pub mod prealloc;

pub use guest::{GuestRam, MemoryError};
