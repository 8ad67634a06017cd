//! System description table framing shared by every table: the 36-byte header (ACPI 6.x
//! §5.2.6, Table 5.4), the checksum rule, and the Generic Address Structure (§5.2.3.2).
//!
//! A table is written field by field into an [`Sdt`]; `finish` patches the length and the
//! checksum. What goes after the header belongs to each table's own module.

/// Length of the common table header (ACPI 6.x Table 5.4).
pub const HEADER_LEN: usize = 36;
/// Offset of the header's Length field.
pub const LENGTH_OFFSET: usize = 4;
/// Offset of the header's Checksum field.
pub const CHECKSUM_OFFSET: usize = 9;
/// The OEM table ID prefix; the table signature fills the other 4 bytes ("RVMMAPIC").
pub const OEM_TABLE_ID_PREFIX: &[u8; 4] = b"RVMM";
/// OEM revision written in every header.
pub const OEM_REVISION: u32 = 1;
/// Creator ID ("ASL Compiler ID" in iasl's listing) written in every header.
pub const CREATOR_ID: &[u8; 4] = b"RVMM";
/// Creator revision written in every header.
pub const CREATOR_REVISION: u32 = 1;

/// The byte that makes `bytes` sum to zero modulo 256 once it is stored in a zeroed
/// checksum field (ACPI 6.x §5.2.6: "the entire table, including the checksum field, must
/// add to zero").
pub fn checksum(bytes: &[u8]) -> u8 {
    let sum = bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    0u8.wrapping_sub(sum)
}

/// Address space of a Generic Address Structure (ACPI 6.x Table 5.1, Address Space ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AddressSpace {
    SystemMemory = 0,
    SystemIo = 1,
}

/// Access size of a Generic Address Structure (ACPI 6.x Table 5.1, Access Size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AccessSize {
    /// "Undefined (legacy reasons)": the OS derives the access from the bit width.
    Undefined = 0,
    Byte = 1,
}

/// A Generic Address Structure (12 bytes, ACPI 6.x §5.2.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gas {
    pub space: AddressSpace,
    pub bit_width: u8,
    pub bit_offset: u8,
    pub access_size: AccessSize,
    pub address: u64,
}

impl Gas {
    /// An all-zero GAS: "not present".
    pub const NONE: Gas = Gas {
        space: AddressSpace::SystemMemory,
        bit_width: 0,
        bit_offset: 0,
        access_size: AccessSize::Undefined,
        address: 0,
    };

    /// A register block of `bit_width` bits at I/O `port`.
    pub fn system_io(port: u16, bit_width: u8, access_size: AccessSize) -> Gas {
        Gas {
            space: AddressSpace::SystemIo,
            bit_width,
            bit_offset: 0,
            access_size,
            address: u64::from(port),
        }
    }
}

/// Identity written in every table header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OemIds {
    pub oem_id: [u8; 6],
}

/// A table being written: header first, fields appended in order, little-endian.
#[derive(Debug, Clone)]
pub struct Sdt {
    bytes: Vec<u8>,
}

impl Sdt {
    /// Starts a table with its header; Length and Checksum are filled in by `finish`.
    pub fn new(signature: &[u8; 4], revision: u8, oem: &OemIds) -> Sdt {
        let mut sdt = Sdt {
            bytes: Vec::with_capacity(256),
        };
        sdt.bytes(signature);
        sdt.u32(0); // Length, patched by finish.
        sdt.u8(revision);
        sdt.u8(0); // Checksum, patched by finish.
        sdt.bytes(&oem.oem_id);
        sdt.bytes(OEM_TABLE_ID_PREFIX);
        sdt.bytes(signature);
        sdt.u32(OEM_REVISION);
        sdt.bytes(CREATOR_ID);
        sdt.u32(CREATOR_REVISION);
        debug_assert_eq!(sdt.bytes.len(), HEADER_LEN);
        sdt
    }

    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes.push(value);
        self
    }

    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(value);
        self
    }

    pub fn gas(&mut self, gas: &Gas) -> &mut Self {
        self.u8(gas.space as u8)
            .u8(gas.bit_width)
            .u8(gas.bit_offset)
            .u8(gas.access_size as u8)
            .u64(gas.address)
    }

    /// Bytes written so far, header included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Patches Length and Checksum and returns the table.
    ///
    /// Tables are bounded by the ACPI area (128 KiB), far below the u32 Length field.
    pub fn finish(mut self) -> Vec<u8> {
        let length = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        self.bytes[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&length.to_le_bytes());
        self.bytes[CHECKSUM_OFFSET] = 0;
        self.bytes[CHECKSUM_OFFSET] = checksum(&self.bytes);
        self.bytes
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reads a little-endian integer of `len` bytes at `offset` (test helper for every table).
    pub fn le(bytes: &[u8], offset: usize, len: usize) -> u64 {
        bytes[offset..offset + len]
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    }

    /// The sum of all bytes modulo 256 (0 for a correctly checksummed table).
    pub fn byte_sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
    }

    #[test]
    fn header_fields_and_checksum() {
        let oem = OemIds { oem_id: *b"RVMMOE" };
        let mut sdt = Sdt::new(b"TEST", 3, &oem);
        sdt.u8(0xaa)
            .u16(0xbbcc)
            .u32(0x1122_3344)
            .u64(0x0102_0304_0506_0708);
        let t = sdt.finish();
        assert_eq!(t.len(), HEADER_LEN + 15);
        assert_eq!(&t[0..4], b"TEST");
        assert_eq!(le(&t, 4, 4), 51);
        assert_eq!(t[8], 3);
        assert_eq!(&t[10..16], b"RVMMOE");
        assert_eq!(&t[16..24], b"RVMMTEST");
        assert_eq!(le(&t, 24, 4), 1);
        assert_eq!(&t[28..32], b"RVMM");
        assert_eq!(le(&t, 32, 4), 1);
        assert_eq!(t[36], 0xaa);
        assert_eq!(le(&t, 37, 2), 0xbbcc);
        assert_eq!(le(&t, 39, 4), 0x1122_3344);
        assert_eq!(le(&t, 43, 8), 0x0102_0304_0506_0708);
        assert_eq!(byte_sum(&t), 0);
    }

    #[test]
    fn checksum_balances_the_sum() {
        assert_eq!(checksum(&[]), 0);
        assert_eq!(checksum(&[1]), 0xff);
        assert_eq!(checksum(&[0x80, 0x80]), 0);
        assert_eq!(checksum(&[0x10, 0x20, 0x30]), 0xa0);
    }

    #[test]
    fn gas_layout() {
        let oem = OemIds { oem_id: [0; 6] };
        let mut sdt = Sdt::new(b"GAST", 1, &oem);
        sdt.gas(&Gas::system_io(0xcf9, 8, AccessSize::Byte));
        let t = sdt.finish();
        assert_eq!(
            &t[HEADER_LEN..],
            &[1, 8, 0, 1, 0xf9, 0x0c, 0, 0, 0, 0, 0, 0]
        );
    }
}
