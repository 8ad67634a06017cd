//! Named bit fields of CPUID registers: every write in the topology and cache encoders
//! goes through a [`BitField`] constant that cites the SDM/APM field it stands for,
//! instead of a bare shift. Only the field arithmetic lives here.

/// An inclusive bit range `[hi:lo]` of a 32-bit register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitField {
    pub hi: u32,
    pub lo: u32,
}

impl BitField {
    /// The bits `[hi:lo]`; `hi` must be at least `lo` and below 32 (checked at compile
    /// time for constants).
    pub const fn new(hi: u32, lo: u32) -> BitField {
        assert!(hi < 32 && lo <= hi, "bit field out of range");
        BitField { hi, lo }
    }

    /// A one-bit field.
    pub const fn bit(n: u32) -> BitField {
        BitField::new(n, n)
    }

    /// Number of bits in the field.
    pub const fn width(self) -> u32 {
        self.hi - self.lo + 1
    }

    /// The field's bits, in place.
    pub const fn mask(self) -> u32 {
        (u32::MAX >> (31 - (self.hi - self.lo))) << self.lo
    }

    /// The largest value the field holds.
    pub const fn max_value(self) -> u32 {
        self.mask() >> self.lo
    }

    /// `value` placed in the field; bits of `value` beyond the field's width are dropped
    /// (the same as C's truncating `value << lo` when it does not overflow into a
    /// neighbouring field).
    pub const fn encode(self, value: u32) -> u32 {
        (value << self.lo) & self.mask()
    }

    /// The field's value in `reg`.
    pub const fn get(self, reg: u32) -> u32 {
        (reg & self.mask()) >> self.lo
    }

    /// Replaces the field in `reg` with `value` (truncated to the field width).
    pub fn set(self, reg: &mut u32, value: u32) {
        *reg = (*reg & !self.mask()) | self.encode(value);
    }

    /// Sets (true) or clears (false) a flag field to all ones / zero.
    pub fn set_flag(self, reg: &mut u32, on: bool) {
        self.set(reg, if on { self.max_value() } else { 0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_values() {
        let f = BitField::new(31, 26);
        assert_eq!((f.width(), f.mask(), f.max_value()), (6, 0xfc00_0000, 63));
        assert_eq!(BitField::new(31, 0).mask(), u32::MAX);
        assert_eq!(BitField::bit(28).mask(), 0x1000_0000);
        assert_eq!(BitField::new(25, 14).encode(3), 0xc000);
        assert_eq!(
            BitField::new(7, 0).encode(0x1ff),
            0xff,
            "truncated to width"
        );
        assert_eq!(BitField::new(15, 8).get(0x00ab_cd12), 0xcd);
    }

    #[test]
    fn set_replaces_only_the_field() {
        let mut reg = 0xffff_ffff;
        BitField::new(23, 16).set(&mut reg, 0x12);
        assert_eq!(reg, 0xff12_ffff);
        BitField::bit(1).set_flag(&mut reg, false);
        assert_eq!(reg, 0xff12_fffd);
        BitField::bit(1).set_flag(&mut reg, true);
        assert_eq!(reg, 0xff12_ffff);
    }
}
