//! ACPI fixed-hardware power management (ACPI 6.5, 4.8): the PM1a event and control blocks
//! the FADT points at, the PM timer, and the reset register. A write of SLP_EN with the
//! `\_S5` sleep type powers the machine off.
//!
//! The reset register is port 0xCF9, the reset control register of Intel's PIIX/ICH chipsets
//! (which the FADT names with the value 0x06): as in QEMU's PIIX model, any write with bit 2
//! (RST_CPU) set resets the machine, whatever the reset type bits beside it (bit 1 SYS_RST
//! "hard", bit 3 "full": Linux's `reboot=pci` writes 0x02 then 0x06, or 0x0E for a full
//! reset); other writes only set the reset type, which reads return.

use std::time::Instant;

use super::GuestEvent;
use crate::memory::layout::{PM1A_CNT_PORT, PM1A_EVT_PORT, PM_TMR_PORT, RESET_PORT, S5_SLP_TYP};

/// PM1 control: SCI_EN (bit 0), SLP_TYP (bits 12:10), SLP_EN (bit 13).
const PM1_CNT_SCI_EN: u16 = 1 << 0;
const PM1_CNT_SLP_TYP_SHIFT: u16 = 10;
const PM1_CNT_SLP_TYP_MASK: u16 = 0x7;
const PM1_CNT_SLP_EN: u16 = 1 << 13;
/// PM1 status and enable, bit 8: PWRBTN_STS / PWRBTN_EN, the fixed power button
/// (ACPI 6.5, 4.8.3.1.1 and 4.8.3.1.2).
const PM1_PWRBTN: u16 = 1 << 8;
/// Reset control register (0xCF9): RST_CPU (bit 2) triggers the reset; SYS_RST (bit 1)
/// is the reset type that stays readable.
const RCR_RST_CPU: u8 = 1 << 2;
const RCR_SYS_RST: u8 = 1 << 1;
/// The PM timer runs at 3.579545 MHz (ACPI 6.5, 4.8.3.3).
const PM_TIMER_HZ: u128 = 3_579_545;

/// PM1a registers.
#[derive(Debug)]
pub struct Pm {
    status: u16,
    enable: u16,
    control: u16,
    /// The reset control register's kept bits (SYS_RST).
    rcr: u8,
    start: Instant,
}

impl Default for Pm {
    fn default() -> Self {
        Pm {
            status: 0,
            enable: 0,
            // ACPI is always on: there is no SMI_CMD to switch it.
            control: PM1_CNT_SCI_EN,
            rcr: 0,
            start: Instant::now(),
        }
    }
}

/// Which register a port is, and the byte within it.
fn decode(port: u16) -> Option<(u16, usize)> {
    match port {
        p if (PM1A_EVT_PORT..PM1A_EVT_PORT + 4).contains(&p) => {
            Some((PM1A_EVT_PORT, (p - PM1A_EVT_PORT) as usize))
        }
        p if (PM1A_CNT_PORT..PM1A_CNT_PORT + 2).contains(&p) => {
            Some((PM1A_CNT_PORT, (p - PM1A_CNT_PORT) as usize))
        }
        p if (PM_TMR_PORT..PM_TMR_PORT + 4).contains(&p) => {
            Some((PM_TMR_PORT, (p - PM_TMR_PORT) as usize))
        }
        RESET_PORT => Some((RESET_PORT, 0)),
        _ => None,
    }
}

/// The PM registers as a snapshot keeps them; the PM timer as its count of nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PmState {
    pub status: u16,
    pub enable: u16,
    pub control: u16,
    pub rcr: u8,
    pub timer_ns: u64,
}

impl Pm {
    /// The registers, for a snapshot.
    pub fn state(&self) -> PmState {
        PmState {
            status: self.status,
            enable: self.enable,
            control: self.control,
            rcr: self.rcr,
            timer_ns: u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Puts saved registers back; the PM timer goes on from the saved count.
    pub fn restore(&mut self, state: &PmState) {
        self.status = state.status;
        self.enable = state.enable;
        self.control = state.control;
        self.rcr = state.rcr;
        let elapsed = std::time::Duration::from_nanos(state.timer_ns);
        self.start = Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(Instant::now);
    }

    /// Whether `port` belongs to this device.
    pub fn owns(port: u16) -> bool {
        decode(port).is_some()
    }

    fn register(&self, base: u16) -> u32 {
        match base {
            PM1A_EVT_PORT => self.status as u32 | (self.enable as u32) << 16,
            PM1A_CNT_PORT => self.control as u32,
            PM_TMR_PORT => {
                let ticks = self.start.elapsed().as_nanos() * PM_TIMER_HZ / 1_000_000_000;
                (ticks as u32) & 0x00ff_ffff
            }
            RESET_PORT => self.rcr as u32,
            _ => 0,
        }
    }

    /// Presses the fixed-feature power button: sets PWRBTN_STS. Returns whether the guest
    /// enabled the event (PWRBTN_EN), i.e. whether the SCI should be raised.
    pub fn press_power_button(&mut self) -> bool {
        self.status |= PM1_PWRBTN;
        self.enable & PM1_PWRBTN != 0
    }

    /// A read of `data.len()` bytes at `port`.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let Some((base, byte)) = decode(port) else {
            data.fill(0xff);
            return;
        };
        let value = self.register(base).to_le_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            *d = value.get(byte + i).copied().unwrap_or(0xff);
        }
    }

    /// A write of `data` at `port`.
    pub fn write(&mut self, port: u16, data: &[u8]) -> Option<GuestEvent> {
        let (base, byte) = decode(port)?;
        let mut value = [0u8; 4];
        for (i, d) in data.iter().enumerate().take(4 - byte) {
            value[byte + i] = *d;
        }
        let v = u32::from_le_bytes(value);
        match base {
            PM1A_EVT_PORT => {
                // Status bits are write-one-to-clear; enable bits are plain.
                if byte < 2 {
                    self.status &= !(v as u16);
                }
                if byte + data.len() > 2 {
                    self.enable = (v >> 16) as u16;
                }
                None
            }
            PM1A_CNT_PORT => {
                let written = v as u16;
                self.control = (written & !PM1_CNT_SLP_EN) | PM1_CNT_SCI_EN;
                let slp_typ = (written >> PM1_CNT_SLP_TYP_SHIFT) & PM1_CNT_SLP_TYP_MASK;
                (written & PM1_CNT_SLP_EN != 0 && slp_typ == S5_SLP_TYP as u16)
                    .then_some(GuestEvent::Poweroff)
            }
            RESET_PORT => {
                let written = data.first().copied().unwrap_or(0);
                if written & RCR_RST_CPU != 0 {
                    return Some(GuestEvent::Reset);
                }
                self.rcr = written & RCR_SYS_RST;
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_powers_off() {
        let mut pm = Pm::default();
        let s5 = (5u16 << 10) | (1 << 13);
        assert_eq!(
            pm.write(0x604, &s5.to_le_bytes()),
            Some(GuestEvent::Poweroff)
        );
        // Another sleep state (S3, type 1) is not a poweroff.
        let s3 = (1u16 << 10) | (1 << 13);
        assert_eq!(pm.write(0x604, &s3.to_le_bytes()), None);
        // SLP_TYP without SLP_EN does nothing.
        assert_eq!(pm.write(0x604, &(5u16 << 10).to_le_bytes()), None);
    }

    #[test]
    fn sci_en_always_set_and_reset_register() {
        let mut pm = Pm::default();
        let mut b = [0u8; 2];
        pm.read(0x604, &mut b);
        assert_eq!(u16::from_le_bytes(b) & 1, 1);
        assert_eq!(pm.write(0xcf9, &[0x06]), Some(GuestEvent::Reset));
        assert_eq!(pm.write(0xcf9, &[0x02]), None);
    }

    /// Linux `reboot=pci` (arch/x86/kernel/reboot.c): 0x02, then 0x06, or 0x0E with
    /// `reboot=pci,full`... any write with RST_CPU resets, like QEMU's PIIX.
    #[test]
    fn reset_control_register_like_piix() {
        let mut pm = Pm::default();
        let mut b = [0u8];
        assert_eq!(pm.write(0xcf9, &[0x02]), None, "reset type only");
        pm.read(0xcf9, &mut b);
        assert_eq!(b[0], 0x02, "SYS_RST reads back");
        assert_eq!(pm.write(0xcf9, &[0x0e]), Some(GuestEvent::Reset));
        assert_eq!(pm.write(0xcf9, &[0x04]), Some(GuestEvent::Reset));
        assert_eq!(pm.write(0xcf9, &[0xfb]), None, "everything but RST_CPU");
        pm.read(0xcf9, &mut b);
        assert_eq!(b[0], 0x02, "only SYS_RST is kept");
        assert_eq!(pm.write(0xcf9, &[0x00]), None);
        pm.read(0xcf9, &mut b);
        assert_eq!(b[0], 0);
    }

    #[test]
    fn power_button_sets_status_and_reports_enable() {
        let mut pm = Pm::default();
        assert!(!pm.press_power_button(), "PWRBTN_EN is clear at reset");
        let mut b = [0u8; 2];
        pm.read(0x600, &mut b);
        assert_eq!(u16::from_le_bytes(b), 1 << 8, "PWRBTN_STS set");
        // The guest clears the status (write one) and enables the event.
        assert_eq!(pm.write(0x600, &(1u16 << 8).to_le_bytes()), None);
        assert_eq!(pm.write(0x602, &(1u16 << 8).to_le_bytes()), None);
        pm.read(0x600, &mut b);
        assert_eq!(u16::from_le_bytes(b), 0);
        assert!(pm.press_power_button());
    }

    #[test]
    fn timer_advances_and_is_24_bits() {
        let pm = Pm::default();
        let mut a = [0u8; 4];
        std::thread::sleep(std::time::Duration::from_millis(2));
        pm.read(0x608, &mut a);
        let t = u32::from_le_bytes(a);
        assert!(t > 0 && t <= 0xff_ffff, "timer {t:#x}");
    }
}
