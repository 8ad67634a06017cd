//! Guest physical memory: the address layout (RAM regions around the 32-bit MMIO gap and the
//! fixed platform addresses), and the host mappings that back it.

pub mod guest;
pub mod layout;

pub use guest::{GuestRam, MemoryError};
