//! Guest physical memory: the address layout (RAM regions around the 32-bit MMIO gap and the
//! fixed platform addresses), the host mapping that backs it (anonymous, hugetlb, file;
//! KSM/THP advice; preallocation) and its binding to host NUMA nodes.

pub mod backing;
pub mod guest;
pub mod layout;
pub mod numa;
pub mod prealloc;

pub use guest::{GuestRam, MemoryError};
