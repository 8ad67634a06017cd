//! The ACPI general-purpose event block GPE0 (ACPI 6.5, 4.8.4.1) at QEMU PIIX-PM's port
//! 0xafe0: two status bytes (write one to clear) followed by two enable bytes. A device
//! raises an event by setting its status bit; the SCI fires when the guest has enabled that
//! bit. Bit 2 is CPU hotplug (`\_GPE._E02` in the DSDT), as in QEMU's `pc` machine.
//!
//! The SCI is pulsed when an enabled event is raised; a status bit the guest enables while
//! it is already set is seen on the guest's next scan of the block (QEMU models the SCI as a
//! level, which would fire at that enable; OSPMs scan the block on every SCI anyway).

use crate::memory::layout::{GPE0_LEN, GPE0_PORT};

/// Bytes of status (and, after them, of enable) bits.
const HALF: usize = GPE0_LEN as usize / 2;

/// GPE0's status and enable registers.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gpe0 {
    status: [u8; HALF],
    enable: [u8; HALF],
}

impl Gpe0 {
    /// The registers, for a snapshot.
    pub fn state(&self) -> Gpe0 {
        self.clone()
    }

    /// Puts saved registers back.
    pub fn restore(&mut self, state: &Gpe0) {
        *self = state.clone();
    }

    /// Whether `port` is in the block.
    pub fn owns(port: u16) -> bool {
        (GPE0_PORT..GPE0_PORT + GPE0_LEN).contains(&port)
    }

    /// Sets event `bit`'s status. Returns whether the guest enabled it, i.e. whether the
    /// caller should raise the SCI.
    pub fn raise(&mut self, bit: u8) -> bool {
        let (byte, mask) = (usize::from(bit / 8), 1u8 << (bit % 8));
        let Some(status) = self.status.get_mut(byte) else {
            return false;
        };
        *status |= mask;
        self.enable[byte] & mask != 0
    }

    /// Whether event `bit`'s status is set.
    pub fn is_raised(&self, bit: u8) -> bool {
        let (byte, mask) = (usize::from(bit / 8), 1u8 << (bit % 8));
        self.status.get(byte).is_some_and(|s| s & mask != 0)
    }

    /// A read of `data.len()` bytes at `port` (bytes past the block read as all-ones).
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let start = usize::from(port.wrapping_sub(GPE0_PORT));
        for (i, d) in data.iter_mut().enumerate() {
            *d = match start + i {
                b if b < HALF => self.status[b],
                b if b < 2 * HALF => self.enable[b - HALF],
                _ => 0xff,
            };
        }
    }

    /// A write of `data` at `port`: status bytes clear the bits written as one, enable bytes
    /// take the value.
    pub fn write(&mut self, port: u16, data: &[u8]) {
        let start = usize::from(port.wrapping_sub(GPE0_PORT));
        for (i, &d) in data.iter().enumerate() {
            match start + i {
                b if b < HALF => self.status[b] &= !d,
                b if b < 2 * HALF => self.enable[b - HALF] = d,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::layout::GPE_CPU_HOTPLUG_BIT;

    #[test]
    fn raise_reports_enable_and_status_is_write_one_to_clear() {
        let mut gpe = Gpe0::default();
        assert!(!gpe.raise(GPE_CPU_HOTPLUG_BIT), "not enabled at reset");
        let mut b = [0u8; 4];
        gpe.read(0xafe0, &mut b);
        assert_eq!(b, [0x04, 0, 0, 0]);
        // Enable bit 2 (byte 0xafe2), then clear the status with a write of one.
        gpe.write(0xafe2, &[0x04]);
        gpe.write(0xafe0, &[0x04]);
        gpe.read(0xafe0, &mut b);
        assert_eq!(b, [0, 0, 0x04, 0]);
        assert!(gpe.raise(GPE_CPU_HOTPLUG_BIT));
        assert!(gpe.is_raised(GPE_CPU_HOTPLUG_BIT));
        // A write of zero clears nothing; a 16-bit write of ones clears every status bit.
        gpe.write(0xafe0, &[0, 0]);
        assert!(gpe.is_raised(GPE_CPU_HOTPLUG_BIT));
        gpe.write(0xafe0, &[0xff, 0xff]);
        assert!(!gpe.is_raised(GPE_CPU_HOTPLUG_BIT));
    }

    #[test]
    fn odd_accesses_stay_inside_the_block() {
        let mut gpe = Gpe0::default();
        // A 4-byte write at the last port touches only the last enable byte.
        gpe.write(0xafe3, &[0xaa, 0xbb, 0xcc, 0xdd]);
        let mut b = [0u8; 4];
        gpe.read(0xafe3, &mut b);
        assert_eq!(b, [0xaa, 0xff, 0xff, 0xff]);
        assert!(!gpe.raise(200), "no such bit");
        assert!(Gpe0::owns(0xafe0) && Gpe0::owns(0xafe3));
        assert!(!Gpe0::owns(0xafe4) && !Gpe0::owns(0xafdf));
    }
}
