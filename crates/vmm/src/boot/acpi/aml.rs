//! A small AML (ACPI Machine Language) encoder for the DSDT: names, integers, strings,
//! packages, buffers, resource templates, scopes, devices and methods (ACPI 6.x §20.2).
//!
//! [`Aml`] is an encoded term; constructors validate names and sizes and return
//! [`AmlError`] instead of emitting bad bytecode. What the DSDT says lives in `dsdt.rs`; the
//! opcodes of control methods (regions, fields, mutexes, statements, expressions) are in
//! [`code`].

mod code;

pub use code::{FieldAccess, FieldEntry, FieldUpdate, RegionSpace};

use thiserror::Error;

/// Errors building AML.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AmlError {
    #[error(
        "AML name {path:?}: segment {segment:?} must be 1 to 4 characters from A-Z, 0-9 and _, \
         not starting with a digit"
    )]
    BadNameSegment { path: String, segment: String },
    #[error("AML name {path:?}: has no name segment after its prefix")]
    EmptyName { path: String },
    #[error("AML string {value:?}: must be ASCII without NUL (ACPI 6.x §20.2.3 AsciiCharList)")]
    BadString { value: String },
    #[error("AML EISA ID {value:?}: must be 3 uppercase letters and 4 hex digits, like PNP0501")]
    BadEisaId { value: String },
    #[error("AML package: {count} elements exceed the 255 a Package's NumElements can count")]
    PackageTooLong { count: usize },
    #[error("AML method {name:?}: {count} arguments exceed the 7 MethodFlags[2:0] can count")]
    TooManyArgs { name: String, count: u8 },
    #[error("AML IRQNoFlags: IRQ {irq} is above 15, the last ISA IRQ the 16-bit mask covers")]
    IrqOutOfRange { irq: u8 },
    #[error("AML object of {len} bytes exceeds the 2^28-1 bytes a PkgLength can encode")]
    TooLong { len: usize },
    #[error("AML field of {bits} bits exceeds the 2^28-1 bits a field length can encode")]
    FieldTooLong { bits: usize },
    #[error("AML Local{index}: a method has Local0 to Local7 only")]
    NoSuchLocal { index: u8 },
    #[error("AML Arg{index}: a method has Arg0 to Arg6 only")]
    NoSuchArg { index: u8 },
    #[error("AML mutex {name:?}: sync level {level} is above 15")]
    BadSyncLevel { name: String, level: u8 },
}

/// Opcodes and prefixes (ACPI 6.x §20.3, Table 20.x "AML Byte Stream Byte Values").
mod op {
    pub const ZERO: u8 = 0x00;
    pub const ONE: u8 = 0x01;
    pub const NAME: u8 = 0x08;
    pub const BYTE_PREFIX: u8 = 0x0a;
    pub const WORD_PREFIX: u8 = 0x0b;
    pub const DWORD_PREFIX: u8 = 0x0c;
    pub const STRING_PREFIX: u8 = 0x0d;
    pub const QWORD_PREFIX: u8 = 0x0e;
    pub const SCOPE: u8 = 0x10;
    pub const BUFFER: u8 = 0x11;
    pub const PACKAGE: u8 = 0x12;
    pub const METHOD: u8 = 0x14;
    pub const DUAL_NAME_PREFIX: u8 = 0x2e;
    pub const MULTI_NAME_PREFIX: u8 = 0x2f;
    pub const EXT_OP_PREFIX: u8 = 0x5b;
    pub const DEVICE_EXT: u8 = 0x82;
    pub const ROOT_CHAR: u8 = b'\\';
    pub const PARENT_PREFIX_CHAR: u8 = b'^';
    pub const RETURN: u8 = 0xa4;
}

/// Resource descriptor tags (ACPI 6.x §6.4).
mod res {
    /// Small item: IRQ descriptor without the information byte (type 0x04, length 2).
    pub const IRQ_NO_FLAGS: u8 = 0x22;
    /// Small item: I/O port descriptor (type 0x08, length 7).
    pub const IO: u8 = 0x47;
    /// I/O descriptor information bit 0: the device decodes 16 address bits.
    pub const IO_DECODE16: u8 = 0x01;
    /// Small item: end tag (type 0x0F, length 1) followed by its checksum byte.
    pub const END_TAG: u8 = 0x79;
    /// Large item: 32-bit fixed memory range (type 0x06).
    pub const MEMORY32_FIXED: u8 = 0x86;
    /// Memory32Fixed information bit 0: read/write.
    pub const MEMORY_READ_WRITE: u8 = 0x01;
    /// Large item: extended interrupt descriptor (type 0x09).
    pub const EXTENDED_INTERRUPT: u8 = 0x89;
}

/// One encoded AML term (a name, an object, a named scope...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aml(Vec<u8>);

/// Extended interrupt descriptor flags (ACPI 6.x §6.4.3.6, byte 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptFlags {
    /// Bit 1: level-triggered (else edge).
    pub level: bool,
    /// Bit 2: active-low (else active-high).
    pub active_low: bool,
    /// Bit 3: shared.
    pub shared: bool,
}

/// A resource descriptor inside a `ResourceTemplate ()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `IO (Decode16, min, max, align, len)`.
    Io {
        min: u16,
        max: u16,
        align: u8,
        len: u8,
    },
    /// `IRQNoFlags () {irq}`: an ISA IRQ (0-15), edge-triggered active-high.
    IrqNoFlags { irq: u8 },
    /// `Memory32Fixed (ReadWrite, base, len)`.
    Memory32Fixed { base: u32, len: u32 },
    /// `Interrupt (ResourceConsumer, ...) {gsi}`.
    Interrupt { gsi: u32, flags: InterruptFlags },
}

impl Aml {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// An integer constant in its shortest form: `Zero`, `One`, or a Byte/Word/DWord/QWord
    /// prefix (ACPI 6.x §20.2.3 ComputationalData).
    pub fn int(value: u64) -> Aml {
        let mut out = Vec::with_capacity(9);
        match value {
            0 => out.push(op::ZERO),
            1 => out.push(op::ONE),
            v if v <= 0xff => out.extend_from_slice(&[op::BYTE_PREFIX, v as u8]),
            v if v <= 0xffff => {
                out.push(op::WORD_PREFIX);
                out.extend_from_slice(&(v as u16).to_le_bytes());
            }
            v if v <= 0xffff_ffff => {
                out.push(op::DWORD_PREFIX);
                out.extend_from_slice(&(v as u32).to_le_bytes());
            }
            v => {
                out.push(op::QWORD_PREFIX);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Aml(out)
    }

    /// A string constant (`StringPrefix AsciiCharList NullChar`).
    pub fn string(value: &str) -> Result<Aml, AmlError> {
        if !value.bytes().all(|b| (0x01..=0x7f).contains(&b)) {
            return Err(AmlError::BadString {
                value: value.to_string(),
            });
        }
        let mut out = Vec::with_capacity(value.len() + 2);
        out.push(op::STRING_PREFIX);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
        Ok(Aml(out))
    }

    /// A compressed EISA ID (`EisaId ("PNP0501")`): three 5-bit letters and four hex digits
    /// packed big-endian into a DWord (ACPI 6.x §6.1.5 _HID).
    pub fn eisa_id(id: &str) -> Result<Aml, AmlError> {
        let bad = || AmlError::BadEisaId {
            value: id.to_string(),
        };
        let b = id.as_bytes();
        if b.len() != 7 || !b[..3].iter().all(u8::is_ascii_uppercase) {
            return Err(bad());
        }
        let mut hex = [0u8; 4];
        for (digit, c) in hex.iter_mut().zip(&b[3..]) {
            *digit = char::from(*c)
                .to_digit(16)
                .filter(|_| !c.is_ascii_lowercase())
                .ok_or_else(bad)? as u8;
        }
        let letter = |c: u8| c - 0x40; // 'A' is 1 in the 5-bit alphabet.
        let bytes = [
            (letter(b[0]) << 2) | (letter(b[1]) >> 3),
            ((letter(b[1]) & 0x7) << 5) | letter(b[2]),
            (hex[0] << 4) | hex[1],
            (hex[2] << 4) | hex[3],
        ];
        Ok(Aml::int(u64::from(u32::from_le_bytes(bytes))))
    }

    /// `Package () {elements}` (PackageOp PkgLength NumElements PackageElementList).
    pub fn package(elements: Vec<Aml>) -> Result<Aml, AmlError> {
        let count = u8::try_from(elements.len()).map_err(|_| AmlError::PackageTooLong {
            count: elements.len(),
        })?;
        let mut body = vec![count];
        for e in elements {
            body.extend_from_slice(&e.0);
        }
        with_pkg_length(&[op::PACKAGE], &body)
    }

    /// `Buffer () {bytes}` (BufferOp PkgLength BufferSize ByteList).
    pub fn buffer(bytes: &[u8]) -> Result<Aml, AmlError> {
        let mut body = Aml::int(bytes.len() as u64).0;
        body.extend_from_slice(bytes);
        with_pkg_length(&[op::BUFFER], &body)
    }

    /// `ResourceTemplate () {...}`: a buffer of descriptors closed by an end tag whose
    /// checksum byte is 0 ("treated as if the checksum operation succeeded", §6.4.2.9).
    pub fn resource_template(items: &[Resource]) -> Result<Aml, AmlError> {
        let mut bytes = Vec::new();
        for item in items {
            encode_resource(item, &mut bytes)?;
        }
        bytes.extend_from_slice(&[res::END_TAG, 0]);
        Aml::buffer(&bytes)
    }

    /// `Name (path, value)`.
    pub fn name(path: &str, value: Aml) -> Result<Aml, AmlError> {
        let mut out = vec![op::NAME];
        out.extend_from_slice(&name_string(path)?);
        out.extend_from_slice(&value.0);
        Ok(Aml(out))
    }

    /// `Scope (path) {body}`.
    pub fn scope(path: &str, body: Vec<Aml>) -> Result<Aml, AmlError> {
        let mut content = name_string(path)?;
        content.extend(body.into_iter().flat_map(|t| t.0));
        with_pkg_length(&[op::SCOPE], &content)
    }

    /// `Device (path) {body}`.
    pub fn device(path: &str, body: Vec<Aml>) -> Result<Aml, AmlError> {
        let mut content = name_string(path)?;
        content.extend(body.into_iter().flat_map(|t| t.0));
        with_pkg_length(&[op::EXT_OP_PREFIX, op::DEVICE_EXT], &content)
    }

    /// `Method (name, args, NotSerialized|Serialized) {body}`, sync level 0.
    pub fn method(name: &str, args: u8, serialized: bool, body: Vec<Aml>) -> Result<Aml, AmlError> {
        /// MethodFlags[2:0]: ArgCount.
        const ARG_COUNT_MAX: u8 = 7;
        /// MethodFlags[3]: SerializeFlag.
        const SERIALIZED: u8 = 1 << 3;
        if args > ARG_COUNT_MAX {
            return Err(AmlError::TooManyArgs {
                name: name.to_string(),
                count: args,
            });
        }
        let mut content = name_string(name)?;
        content.push(args | if serialized { SERIALIZED } else { 0 });
        content.extend(body.into_iter().flat_map(|t| t.0));
        with_pkg_length(&[op::METHOD], &content)
    }

    /// `Return (value)`.
    pub fn ret(value: Aml) -> Aml {
        let mut out = vec![op::RETURN];
        out.extend_from_slice(&value.0);
        Aml(out)
    }
}

/// Encodes a PkgLength for `content_len` bytes that follow it (ACPI 6.x §20.2.4): the
/// encoded length counts the PkgLength bytes themselves. One byte holds up to 63 in bits
/// [5:0]; longer lengths put the byte count minus one in bits [7:6], the low nibble in
/// bits [3:0] and the rest in up to three following bytes.
pub fn pkg_length(content_len: usize) -> Result<Vec<u8>, AmlError> {
    if content_len < 63 {
        return Ok(vec![(content_len + 1) as u8]);
    }
    for extra in 1..=3usize {
        let total = content_len + 1 + extra;
        if total < 1 << (4 + 8 * extra) {
            let mut out = vec![((extra as u8) << 6) | (total & 0xf) as u8];
            out.extend((0..extra).map(|i| (total >> (4 + 8 * i)) as u8));
            return Ok(out);
        }
    }
    Err(AmlError::TooLong { len: content_len })
}

fn with_pkg_length(opcode: &[u8], content: &[u8]) -> Result<Aml, AmlError> {
    let mut out = opcode.to_vec();
    out.extend_from_slice(&pkg_length(content.len())?);
    out.extend_from_slice(content);
    Ok(Aml(out))
}

/// Encodes a NameString (ACPI 6.x §20.2.2): an optional root (`\`) or parent (`^`) prefix,
/// then one NameSeg, a DualNamePath or a MultiNamePath; dots separate segments and short
/// segments are padded with `_`.
pub fn name_string(path: &str) -> Result<Vec<u8>, AmlError> {
    let mut out = Vec::new();
    let mut rest = path;
    if let Some(r) = rest.strip_prefix('\\') {
        out.push(op::ROOT_CHAR);
        rest = r;
    } else {
        while let Some(r) = rest.strip_prefix('^') {
            out.push(op::PARENT_PREFIX_CHAR);
            rest = r;
        }
    }
    if rest.is_empty() {
        return Err(AmlError::EmptyName {
            path: path.to_string(),
        });
    }
    let segments: Vec<&str> = rest.split('.').collect();
    match segments.len() {
        1 => {}
        2 => out.push(op::DUAL_NAME_PREFIX),
        n => {
            out.push(op::MULTI_NAME_PREFIX);
            out.push(u8::try_from(n).map_err(|_| AmlError::BadNameSegment {
                path: path.to_string(),
                segment: rest.to_string(),
            })?);
        }
    }
    for segment in segments {
        out.extend_from_slice(&name_seg(path, segment)?);
    }
    Ok(out)
}

fn name_seg(path: &str, segment: &str) -> Result<[u8; 4], AmlError> {
    let b = segment.as_bytes();
    let lead_ok = b
        .first()
        .is_some_and(|c| c.is_ascii_uppercase() || *c == b'_');
    let rest_ok = b
        .iter()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_');
    if b.len() > 4 || !lead_ok || !rest_ok {
        return Err(AmlError::BadNameSegment {
            path: path.to_string(),
            segment: segment.to_string(),
        });
    }
    let mut seg = [b'_'; 4];
    seg[..b.len()].copy_from_slice(b);
    Ok(seg)
}

fn encode_resource(item: &Resource, out: &mut Vec<u8>) -> Result<(), AmlError> {
    match *item {
        Resource::Io {
            min,
            max,
            align,
            len,
        } => {
            out.extend_from_slice(&[res::IO, res::IO_DECODE16]);
            out.extend_from_slice(&min.to_le_bytes());
            out.extend_from_slice(&max.to_le_bytes());
            out.extend_from_slice(&[align, len]);
        }
        Resource::IrqNoFlags { irq } => {
            if irq > 15 {
                return Err(AmlError::IrqOutOfRange { irq });
            }
            out.push(res::IRQ_NO_FLAGS);
            out.extend_from_slice(&(1u16 << irq).to_le_bytes());
        }
        Resource::Memory32Fixed { base, len } => {
            out.push(res::MEMORY32_FIXED);
            out.extend_from_slice(&9u16.to_le_bytes());
            out.push(res::MEMORY_READ_WRITE);
            out.extend_from_slice(&base.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        Resource::Interrupt { gsi, flags } => {
            /// Byte 3 bit 0: resource consumer.
            const CONSUMER: u8 = 1 << 0;
            /// Bit 1: interrupt mode, 1 = edge-triggered, 0 = level-triggered.
            const EDGE: u8 = 1 << 1;
            const ACTIVE_LOW: u8 = 1 << 2;
            const SHARED: u8 = 1 << 3;
            let mut bits = CONSUMER;
            if !flags.level {
                bits |= EDGE;
            }
            if flags.active_low {
                bits |= ACTIVE_LOW;
            }
            if flags.shared {
                bits |= SHARED;
            }
            out.push(res::EXTENDED_INTERRUPT);
            out.extend_from_slice(&6u16.to_le_bytes());
            out.push(bits);
            out.push(1); // Interrupt table length.
            out.extend_from_slice(&gsi.to_le_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_use_the_shortest_encoding() {
        assert_eq!(Aml::int(0).as_bytes(), &[0x00]);
        assert_eq!(Aml::int(1).as_bytes(), &[0x01]);
        assert_eq!(Aml::int(5).as_bytes(), &[0x0a, 0x05]);
        assert_eq!(Aml::int(0xff).as_bytes(), &[0x0a, 0xff]);
        assert_eq!(Aml::int(0x3f8).as_bytes(), &[0x0b, 0xf8, 0x03]);
        assert_eq!(Aml::int(0x1_0000).as_bytes(), &[0x0c, 0, 0, 1, 0]);
        assert_eq!(
            Aml::int(0x1_0000_0000).as_bytes(),
            &[0x0e, 0, 0, 0, 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn pkg_length_one_two_three_and_four_bytes() {
        // One byte: content + 1 <= 63.
        assert_eq!(pkg_length(0).unwrap(), vec![0x01]);
        assert_eq!(pkg_length(62).unwrap(), vec![0x3f]);
        // Two bytes: total 65 = 0x41 -> 0x41 & 0xf = 1, 0x41 >> 4 = 4.
        assert_eq!(pkg_length(63).unwrap(), vec![0x41, 0x04]);
        // Largest two-byte length: total 0xfff.
        assert_eq!(pkg_length(0xffd).unwrap(), vec![0x4f, 0xff]);
        // Three bytes: total 0xffe + 3 = 0x1001.
        assert_eq!(pkg_length(0xffe).unwrap(), vec![0x81, 0x00, 0x01]);
        assert_eq!(pkg_length(0x1_2340).unwrap(), vec![0x83, 0x34, 0x12]);
        // Four bytes: total 0x10_0000.
        // Largest three-byte length: total 0xf_ffff; one more needs four bytes.
        assert_eq!(pkg_length(0xf_fffc).unwrap(), vec![0x8f, 0xff, 0xff]);
        assert_eq!(pkg_length(0xf_fffd).unwrap(), vec![0xc1, 0x00, 0x00, 0x01]);
        assert_eq!(pkg_length(1 << 28), Err(AmlError::TooLong { len: 1 << 28 }));
    }

    #[test]
    fn long_scope_gets_a_two_byte_pkg_length() {
        let names: Vec<Aml> = (0..10)
            .map(|i| Aml::name(&format!("N{i:03}"), Aml::int(0x1234)).unwrap())
            .collect();
        // Each Name is 1 + 4 + 3 = 8 bytes: content = 4 (NameSeg) + 80 = 84, total 86.
        let s = Aml::scope("_SB", names).unwrap();
        assert_eq!(
            &s.as_bytes()[..7],
            &[0x10, 0x46, 0x05, b'_', b'S', b'B', b'_']
        );
        assert_eq!(s.as_bytes().len(), 1 + 86);
    }

    #[test]
    fn name_strings() {
        assert_eq!(name_string("_SB").unwrap(), b"_SB_".to_vec());
        assert_eq!(name_string("\\_S5").unwrap(), b"\\_S5_".to_vec());
        assert_eq!(
            name_string("\\_SB.COM1").unwrap(),
            [&[b'\\', 0x2e][..], b"_SB_COM1"].concat()
        );
        assert_eq!(
            name_string("_SB.PCI0.ISA").unwrap(),
            [&[0x2f, 3][..], b"_SB_PCI0ISA_"].concat()
        );
        assert_eq!(name_string("^^C000").unwrap(), b"^^C000".to_vec());
        assert_eq!(
            name_string("\\_SB.com1"),
            Err(AmlError::BadNameSegment {
                path: "\\_SB.com1".into(),
                segment: "com1".into()
            })
        );
        assert_eq!(
            name_string("1ABC").unwrap_err().to_string(),
            "AML name \"1ABC\": segment \"1ABC\" must be 1 to 4 characters from A-Z, 0-9 \
             and _, not starting with a digit"
        );
        assert!(matches!(
            name_string("TOOLONG"),
            Err(AmlError::BadNameSegment { .. })
        ));
        assert_eq!(
            name_string("\\"),
            Err(AmlError::EmptyName { path: "\\".into() })
        );
    }

    #[test]
    fn strings_and_eisa_ids() {
        assert_eq!(
            Aml::string("ACPI0007").unwrap().as_bytes(),
            b"\x0dACPI0007\x00"
        );
        assert!(matches!(
            Aml::string("a\0b"),
            Err(AmlError::BadString { .. })
        ));
        // PNP0501 -> 0x0105D041, PNP0303 -> 0x0303D041 (the values iasl emits).
        assert_eq!(
            Aml::eisa_id("PNP0501").unwrap().as_bytes(),
            &[0x0c, 0x41, 0xd0, 0x05, 0x01]
        );
        assert_eq!(
            Aml::eisa_id("PNP0303").unwrap().as_bytes(),
            &[0x0c, 0x41, 0xd0, 0x03, 0x03]
        );
        assert_eq!(
            Aml::eisa_id("PNP0A0G").unwrap_err().to_string(),
            "AML EISA ID \"PNP0A0G\": must be 3 uppercase letters and 4 hex digits, like PNP0501"
        );
        assert!(Aml::eisa_id("pnp0501").is_err());
        assert!(Aml::eisa_id("PNP0a05").is_err());
        assert!(Aml::eisa_id("PNP050").is_err());
    }

    #[test]
    fn s5_package() {
        let p = Aml::package(vec![Aml::int(5), Aml::int(5), Aml::int(0), Aml::int(0)]).unwrap();
        // PackageOp, PkgLength (1 + 1 + 2 + 2 + 1 + 1 = 8), NumElements 4, elements.
        assert_eq!(
            p.as_bytes(),
            &[0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00]
        );
        let n = Aml::name("\\_S5", p).unwrap();
        assert_eq!(&n.as_bytes()[..6], &[0x08, b'\\', b'_', b'S', b'5', b'_']);
        let too_many = vec![Aml::int(0); 256];
        assert_eq!(
            Aml::package(too_many),
            Err(AmlError::PackageTooLong { count: 256 })
        );
    }

    #[test]
    fn resource_template_io_and_irq() {
        let rt = Aml::resource_template(&[
            Resource::Io {
                min: 0x3f8,
                max: 0x3f8,
                align: 0,
                len: 8,
            },
            Resource::IrqNoFlags { irq: 4 },
        ])
        .unwrap();
        assert_eq!(
            rt.as_bytes(),
            &[
                0x11, 0x10, 0x0a, 0x0d, // Buffer, PkgLength 16, BufferSize 13
                0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08, // IO
                0x22, 0x10, 0x00, // IRQNoFlags {4}
                0x79, 0x00, // End tag
            ]
        );
        assert_eq!(
            Aml::resource_template(&[Resource::IrqNoFlags { irq: 16 }]),
            Err(AmlError::IrqOutOfRange { irq: 16 })
        );
    }

    #[test]
    fn resource_template_memory_and_interrupt() {
        let rt = Aml::resource_template(&[
            Resource::Memory32Fixed {
                base: 0xd000_0000,
                len: 0x200,
            },
            Resource::Interrupt {
                gsi: 5,
                flags: InterruptFlags {
                    level: false,
                    active_low: false,
                    shared: false,
                },
            },
        ])
        .unwrap();
        assert_eq!(
            &rt.as_bytes()[4..],
            &[
                0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x02, 0x00, 0x00, 0x89, 0x06,
                0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00, //
                0x79, 0x00,
            ]
        );
    }

    #[test]
    fn device_and_method() {
        let m = Aml::method("_STA", 0, false, vec![Aml::ret(Aml::int(0xf))]).unwrap();
        assert_eq!(
            m.as_bytes(),
            &[0x14, 0x09, b'_', b'S', b'T', b'A', 0x00, 0xa4, 0x0a, 0x0f]
        );
        let d = Aml::device("C001", vec![m]).unwrap();
        assert_eq!(
            &d.as_bytes()[..7],
            &[0x5b, 0x82, 0x0f, b'C', b'0', b'0', b'1']
        );
        assert_eq!(d.as_bytes().len(), 2 + 15);
        let serialized = Aml::method("XMTH", 3, true, vec![]).unwrap();
        assert_eq!(serialized.as_bytes()[6], 0x0b);
        assert_eq!(
            Aml::method("XMTH", 8, false, vec![]),
            Err(AmlError::TooManyArgs {
                name: "XMTH".into(),
                count: 8
            })
        );
    }
}
