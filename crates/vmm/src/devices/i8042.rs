//! The i8042 keyboard controller, reduced to what a VM without a keyboard needs: a status
//! register that reports an empty buffer, and the 0xFE "pulse reset line" command, which
//! Linux uses to reboot.

use super::GuestEvent;
use crate::memory::layout::{I8042_CMD_PORT, I8042_DATA_PORT};

/// Command: pulse output line 0 (the CPU reset line) low.
pub const CMD_PULSE_RESET: u8 = 0xfe;
/// Status bit 2: system flag (self-test passed).
const STATUS_SYSTEM_FLAG: u8 = 1 << 2;

/// Reads from the controller.
pub fn read(port: u16) -> u8 {
    match port {
        I8042_CMD_PORT => STATUS_SYSTEM_FLAG,
        I8042_DATA_PORT => 0,
        _ => 0xff,
    }
}

/// Writes to the controller.
pub fn write(port: u16, value: u8) -> Option<GuestEvent> {
    (port == I8042_CMD_PORT && value == CMD_PULSE_RESET).then_some(GuestEvent::Reset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command_only_on_command_port() {
        assert_eq!(write(0x64, 0xfe), Some(GuestEvent::Reset));
        assert_eq!(write(0x64, 0xd1), None);
        assert_eq!(write(0x60, 0xfe), None);
        assert_eq!(read(0x64) & 0x3, 0, "output and input buffers are empty");
    }
}
