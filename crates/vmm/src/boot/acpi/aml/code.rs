//! AML for control methods and the hardware they drive (ACPI 6.x §19.6, §20.2.5): operation
//! regions and their fields, mutexes, statements (Store, If/Else, While, Break, Notify,
//! Increment, Acquire/Release), expressions (LEqual, LLess, LAnd, Index, DerefOf) and the
//! objects they name (LocalX, ArgX, Debug, paths, method calls).
//!
//! Only the opcodes the DSDT's CPU hotplug machinery needs are here; each constructor
//! validates what it can (names, local and argument numbers, lengths) and returns
//! [`AmlError`] instead of bad bytecode. The term types of the grammar (TermArg, SuperName)
//! are not enforced: the DSDT builder passes what ACPI allows.

use super::{name_seg, name_string, with_pkg_length, Aml, AmlError};

/// Opcodes (ACPI 6.x §20.3, "AML Byte Stream Byte Values").
mod op {
    pub const EXT_OP_PREFIX: u8 = 0x5b;
    pub const MUTEX_EXT: u8 = 0x01;
    pub const ACQUIRE_EXT: u8 = 0x23;
    pub const RELEASE_EXT: u8 = 0x27;
    pub const DEBUG_EXT: u8 = 0x31;
    pub const OP_REGION_EXT: u8 = 0x80;
    pub const FIELD_EXT: u8 = 0x81;
    pub const PACKAGE: u8 = 0x12;
    pub const LOCAL0: u8 = 0x60;
    pub const ARG0: u8 = 0x68;
    pub const STORE: u8 = 0x70;
    pub const INCREMENT: u8 = 0x75;
    pub const DEREF_OF: u8 = 0x83;
    pub const NOTIFY: u8 = 0x86;
    pub const INDEX: u8 = 0x88;
    pub const LAND: u8 = 0x90;
    pub const LEQUAL: u8 = 0x93;
    pub const LLESS: u8 = 0x95;
    pub const IF: u8 = 0xa0;
    pub const ELSE: u8 = 0xa1;
    pub const WHILE: u8 = 0xa2;
    pub const BREAK: u8 = 0xa5;
    /// NullName: an absent Target.
    pub const NULL_NAME: u8 = 0x00;
    /// FieldList ReservedField lead byte.
    pub const RESERVED_FIELD: u8 = 0x00;
}

/// The last LocalX (Local0-Local7) and ArgX (Arg0-Arg6) a method has (ACPI 6.x §20.2.6.2).
const LOCAL_MAX: u8 = 7;
const ARG_MAX: u8 = 6;

/// An operation region's address space (ACPI 6.x §19.6.100, RegionSpace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RegionSpace {
    SystemIo = 1,
}

/// FieldFlags bits [3:0], AccessType (ACPI 6.x §20.2.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FieldAccess {
    Byte = 1,
    DWord = 3,
}

/// FieldFlags bits [6:5], UpdateRule: what happens to the bits of a partial write that the
/// field does not cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FieldUpdate {
    Preserve = 0,
    WriteAsZeros = 2,
}

/// FieldFlags bit 4, LockRule: 0 is NoLock (the Global Lock is not taken).
const FIELD_NO_LOCK: u8 = 0;
/// FieldFlags UpdateRule shift.
const FIELD_UPDATE_SHIFT: u8 = 5;

/// One entry of a Field's FieldList.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldEntry<'a> {
    /// `NAME, bits`: a named field of `bits` bits.
    Named { name: &'a str, bits: usize },
    /// `, bits` (ASL's `Offset ()` compiles to one): `bits` bits skipped.
    Reserved { bits: usize },
}

impl Aml {
    /// A reference to a named object: `path` as a NameString (also a method call without
    /// arguments when `path` names a method with none).
    pub fn path(path: &str) -> Result<Aml, AmlError> {
        Ok(Aml(name_string(path)?))
    }

    /// `Local<n>` (LocalObj, 0x60 + n).
    pub fn local(n: u8) -> Result<Aml, AmlError> {
        if n > LOCAL_MAX {
            return Err(AmlError::NoSuchLocal { index: n });
        }
        Ok(Aml(vec![op::LOCAL0 + n]))
    }

    /// `Arg<n>` (ArgObj, 0x68 + n).
    pub fn arg(n: u8) -> Result<Aml, AmlError> {
        if n > ARG_MAX {
            return Err(AmlError::NoSuchArg { index: n });
        }
        Ok(Aml(vec![op::ARG0 + n]))
    }

    /// The `Debug` object (DebugObj): what is stored to it is printed by the interpreter.
    pub fn debug() -> Aml {
        Aml(vec![op::EXT_OP_PREFIX, op::DEBUG_EXT])
    }

    /// `method (args...)`: a MethodInvocation is the method's NameString followed by its
    /// arguments; the interpreter knows their count from the method's declaration.
    pub fn call(method: &str, args: Vec<Aml>) -> Result<Aml, AmlError> {
        let mut out = name_string(method)?;
        out.extend(args.into_iter().flat_map(|a| a.0));
        Ok(Aml(out))
    }

    /// `Package (count) {}`: a package of `count` uninitialized elements.
    pub fn empty_package(count: u8) -> Aml {
        // PackageOp, PkgLength 2 (itself and NumElements), NumElements.
        Aml(vec![op::PACKAGE, 2, count])
    }

    /// `OperationRegion (name, space, offset, len)`.
    pub fn operation_region(
        name: &str,
        space: RegionSpace,
        offset: u64,
        len: u64,
    ) -> Result<Aml, AmlError> {
        let mut out = vec![op::EXT_OP_PREFIX, op::OP_REGION_EXT];
        out.extend_from_slice(&name_string(name)?);
        out.push(space as u8);
        out.extend_from_slice(&Aml::int(offset).0);
        out.extend_from_slice(&Aml::int(len).0);
        Ok(Aml(out))
    }

    /// `Field (region, access, NoLock, update) {entries}`.
    pub fn field(
        region: &str,
        access: FieldAccess,
        update: FieldUpdate,
        entries: &[FieldEntry],
    ) -> Result<Aml, AmlError> {
        let mut content = name_string(region)?;
        content.push(access as u8 | FIELD_NO_LOCK | (update as u8) << FIELD_UPDATE_SHIFT);
        for entry in entries {
            match *entry {
                FieldEntry::Named { name, bits } => {
                    content.extend_from_slice(&name_seg(name, name)?);
                    content.extend_from_slice(&field_length(bits)?);
                }
                FieldEntry::Reserved { bits } => {
                    content.push(op::RESERVED_FIELD);
                    content.extend_from_slice(&field_length(bits)?);
                }
            }
        }
        with_pkg_length(&[op::EXT_OP_PREFIX, op::FIELD_EXT], &content)
    }

    /// `Mutex (name, sync_level)`.
    pub fn mutex(name: &str, sync_level: u8) -> Result<Aml, AmlError> {
        /// SyncFlags bits [3:0]: SyncLevel 0-15.
        const SYNC_LEVEL_MAX: u8 = 15;
        if sync_level > SYNC_LEVEL_MAX {
            return Err(AmlError::BadSyncLevel {
                name: name.to_string(),
                level: sync_level,
            });
        }
        let mut out = vec![op::EXT_OP_PREFIX, op::MUTEX_EXT];
        out.extend_from_slice(&name_string(name)?);
        out.push(sync_level);
        Ok(Aml(out))
    }

    /// `Acquire (mutex, timeout_ms)`; 0xffff waits forever.
    pub fn acquire(mutex: &str, timeout_ms: u16) -> Result<Aml, AmlError> {
        let mut out = vec![op::EXT_OP_PREFIX, op::ACQUIRE_EXT];
        out.extend_from_slice(&name_string(mutex)?);
        out.extend_from_slice(&timeout_ms.to_le_bytes());
        Ok(Aml(out))
    }

    /// `Release (mutex)`.
    pub fn release(mutex: &str) -> Result<Aml, AmlError> {
        let mut out = vec![op::EXT_OP_PREFIX, op::RELEASE_EXT];
        out.extend_from_slice(&name_string(mutex)?);
        Ok(Aml(out))
    }

    /// `Store (value, target)`, ASL+ `target = value`.
    pub fn store(value: Aml, target: Aml) -> Aml {
        Aml::prefixed(&[op::STORE], [value, target])
    }

    /// `Increment (target)`, ASL+ `target++`.
    pub fn increment(target: Aml) -> Aml {
        Aml::prefixed(&[op::INCREMENT], [target])
    }

    /// `Notify (object, value)`.
    pub fn notify(object: Aml, value: Aml) -> Aml {
        Aml::prefixed(&[op::NOTIFY], [object, value])
    }

    /// `LEqual (a, b)`, ASL+ `a == b`.
    pub fn equal(a: Aml, b: Aml) -> Aml {
        Aml::prefixed(&[op::LEQUAL], [a, b])
    }

    /// `LLess (a, b)`, ASL+ `a < b`.
    pub fn less(a: Aml, b: Aml) -> Aml {
        Aml::prefixed(&[op::LLESS], [a, b])
    }

    /// `LAnd (a, b)`, ASL+ `a && b`.
    pub fn and(a: Aml, b: Aml) -> Aml {
        Aml::prefixed(&[op::LAND], [a, b])
    }

    /// `Index (object, index)` with no target, ASL+ `object [index]`: a reference to one
    /// element.
    pub fn index(object: Aml, index: Aml) -> Aml {
        Aml::prefixed(&[op::INDEX], [object, index, Aml(vec![op::NULL_NAME])])
    }

    /// `DerefOf (reference)`.
    pub fn deref_of(reference: Aml) -> Aml {
        Aml::prefixed(&[op::DEREF_OF], [reference])
    }

    /// `If (predicate) {body}`.
    pub fn if_(predicate: Aml, body: Vec<Aml>) -> Result<Aml, AmlError> {
        let content: Vec<u8> = predicate.0.into_iter().chain(flatten(body)).collect();
        with_pkg_length(&[op::IF], &content)
    }

    /// `Else {body}`; it must directly follow an `If` (ASL's `ElseIf (p)` is
    /// `Else { If (p) {...} }`).
    pub fn else_(body: Vec<Aml>) -> Result<Aml, AmlError> {
        with_pkg_length(&[op::ELSE], &flatten(body))
    }

    /// `While (predicate) {body}`.
    pub fn while_(predicate: Aml, body: Vec<Aml>) -> Result<Aml, AmlError> {
        let content: Vec<u8> = predicate.0.into_iter().chain(flatten(body)).collect();
        with_pkg_length(&[op::WHILE], &content)
    }

    /// `Break`: leaves the innermost While.
    pub fn break_() -> Aml {
        Aml(vec![op::BREAK])
    }

    /// `opcode operands...` for fixed-length operators.
    fn prefixed<const N: usize>(opcode: &[u8], operands: [Aml; N]) -> Aml {
        let mut out = opcode.to_vec();
        for operand in operands {
            out.extend_from_slice(&operand.0);
        }
        Aml(out)
    }
}

fn flatten(terms: Vec<Aml>) -> Vec<u8> {
    terms.into_iter().flat_map(|t| t.0).collect()
}

/// The bit length of a field entry: a PkgLength-style encoding of `bits` itself (a field's
/// length does not count its own encoding bytes, unlike an object's PkgLength).
fn field_length(bits: usize) -> Result<Vec<u8>, AmlError> {
    /// One byte holds up to 63 in bits [5:0].
    const ONE_BYTE_MAX: usize = 63;
    if bits <= ONE_BYTE_MAX {
        return Ok(vec![bits as u8]);
    }
    // Otherwise bits [7:6] count the following bytes, bits [3:0] hold the low nibble.
    for extra in 1..=3usize {
        if bits < 1 << (4 + 8 * extra) {
            let mut out = vec![((extra as u8) << 6) | (bits & 0xf) as u8];
            out.extend((0..extra).map(|i| (bits >> (4 + 8 * i)) as u8));
            return Ok(out);
        }
    }
    Err(AmlError::FieldTooLong { bits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locals_args_debug_and_paths() {
        assert_eq!(Aml::local(0).unwrap().as_bytes(), &[0x60]);
        assert_eq!(Aml::local(7).unwrap().as_bytes(), &[0x67]);
        assert_eq!(Aml::local(8), Err(AmlError::NoSuchLocal { index: 8 }));
        assert_eq!(Aml::arg(0).unwrap().as_bytes(), &[0x68]);
        assert_eq!(Aml::arg(6).unwrap().as_bytes(), &[0x6e]);
        assert_eq!(
            Aml::arg(7).unwrap_err().to_string(),
            "AML Arg7: a method has Arg0 to Arg6 only"
        );
        assert_eq!(Aml::debug().as_bytes(), &[0x5b, 0x31]);
        assert_eq!(
            Aml::path("\\_SB.PRES.CSEL").unwrap().as_bytes(),
            b"\\\x2f\x03_SB_PRESCSEL"
        );
        assert!(Aml::path("\\_SB.pres").is_err());
    }

    #[test]
    fn method_calls() {
        assert_eq!(
            Aml::call("CSTA", vec![Aml::int(2)]).unwrap().as_bytes(),
            b"CSTA\x0a\x02"
        );
        let args = vec![
            Aml::int(1),
            Aml::arg(0).unwrap(),
            Aml::arg(1).unwrap(),
            Aml::arg(2).unwrap(),
        ];
        assert_eq!(
            Aml::call("COST", args).unwrap().as_bytes(),
            b"COST\x01\x68\x69\x6a"
        );
        assert_eq!(
            Aml::call("\\_SB.CPUS.CSCN", vec![]).unwrap().as_bytes(),
            b"\\\x2f\x03_SB_CPUSCSCN"
        );
    }

    #[test]
    fn empty_package() {
        assert_eq!(Aml::empty_package(0xff).as_bytes(), &[0x12, 0x02, 0xff]);
    }

    #[test]
    fn operation_region() {
        // OpRegionOp, NameString, RegionSpace SystemIO, WordConst 0xaf00, ByteConst 12.
        assert_eq!(
            Aml::operation_region("PRST", RegionSpace::SystemIo, 0xaf00, 12)
                .unwrap()
                .as_bytes(),
            b"\x5b\x80PRST\x01\x0b\x00\xaf\x0a\x0c"
        );
    }

    /// QEMU's two CPU hotplug fields, the bytes iasl compiles their ASL to.
    #[test]
    fn fields_with_reserved_and_named_entries() {
        let byte_field = Aml::field(
            "PRST",
            FieldAccess::Byte,
            FieldUpdate::WriteAsZeros,
            &[
                FieldEntry::Reserved { bits: 32 },
                FieldEntry::Named {
                    name: "CPEN",
                    bits: 1,
                },
                FieldEntry::Named {
                    name: "CINS",
                    bits: 1,
                },
                FieldEntry::Reserved { bits: 6 },
                FieldEntry::Named {
                    name: "CCMD",
                    bits: 8,
                },
            ],
        )
        .unwrap();
        let mut expect = vec![0x5b, 0x81, 0x00];
        expect.extend_from_slice(b"PRST\x41"); // ByteAcc | NoLock | WriteAsZeros << 5
        expect.extend_from_slice(b"\x00\x20CPEN\x01CINS\x01\x00\x06CCMD\x08");
        expect[2] = (expect.len() - 2) as u8;
        assert_eq!(byte_field.as_bytes(), &expect[..]);

        let dword_field = Aml::field(
            "PRST",
            FieldAccess::DWord,
            FieldUpdate::Preserve,
            &[
                FieldEntry::Named {
                    name: "CSEL",
                    bits: 32,
                },
                FieldEntry::Reserved { bits: 32 },
                FieldEntry::Named {
                    name: "CDAT",
                    bits: 32,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            dword_field.as_bytes(),
            b"\x5b\x81\x12PRST\x03CSEL\x20\x00\x20CDAT\x20"
        );
        assert!(matches!(
            Aml::field(
                "PRST",
                FieldAccess::Byte,
                FieldUpdate::Preserve,
                &[FieldEntry::Named {
                    name: "TOOLONG",
                    bits: 1
                }]
            ),
            Err(AmlError::BadNameSegment { .. })
        ));
    }

    #[test]
    fn field_lengths_encode_the_bit_count_itself() {
        assert_eq!(field_length(1).unwrap(), vec![0x01]);
        assert_eq!(field_length(63).unwrap(), vec![0x3f]);
        // 64 = 0x40: two bytes, low nibble 0, then 0x04.
        assert_eq!(field_length(64).unwrap(), vec![0x40, 0x04]);
        assert_eq!(field_length(0xfff).unwrap(), vec![0x4f, 0xff]);
        assert_eq!(field_length(0x1000).unwrap(), vec![0x80, 0x00, 0x01]);
        assert_eq!(field_length(0x10_0000).unwrap(), vec![0xc0, 0, 0, 0x01]);
        assert_eq!(
            field_length(0x0fff_ffff).unwrap(),
            vec![0xcf, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            field_length(1 << 28),
            Err(AmlError::FieldTooLong { bits: 1 << 28 })
        );
    }

    #[test]
    fn mutex_acquire_release() {
        assert_eq!(
            Aml::mutex("CPLK", 0).unwrap().as_bytes(),
            b"\x5b\x01CPLK\x00"
        );
        assert_eq!(
            Aml::mutex("CPLK", 16),
            Err(AmlError::BadSyncLevel {
                name: "CPLK".into(),
                level: 16
            })
        );
        assert_eq!(
            Aml::acquire("\\_SB.PRES.CPLK", 0xffff).unwrap().as_bytes(),
            b"\x5b\x23\\\x2f\x03_SB_PRESCPLK\xff\xff"
        );
        assert_eq!(Aml::release("CPLK").unwrap().as_bytes(), b"\x5b\x27CPLK");
    }

    #[test]
    fn statements() {
        let l0 = || Aml::local(0).unwrap();
        // Store (0x0F, Local0)
        assert_eq!(
            Aml::store(Aml::int(0xf), l0()).as_bytes(),
            &[0x70, 0x0a, 0x0f, 0x60]
        );
        // Increment (Local1)
        assert_eq!(
            Aml::increment(Aml::local(1).unwrap()).as_bytes(),
            &[0x75, 0x61]
        );
        // Notify (C001, Arg1)
        assert_eq!(
            Aml::notify(Aml::path("C001").unwrap(), Aml::arg(1).unwrap()).as_bytes(),
            b"\x86C001\x69"
        );
        // Store (Local3, Debug)
        assert_eq!(
            Aml::store(Aml::local(3).unwrap(), Aml::debug()).as_bytes(),
            &[0x70, 0x63, 0x5b, 0x31]
        );
        assert_eq!(Aml::break_().as_bytes(), &[0xa5]);
    }

    #[test]
    fn expressions() {
        let l = |n| Aml::local(n).unwrap();
        assert_eq!(
            Aml::equal(l(0), Aml::int(1)).as_bytes(),
            &[0x93, 0x60, 0x01]
        );
        assert_eq!(
            Aml::less(l(3), Aml::int(4)).as_bytes(),
            &[0x95, 0x63, 0x0a, 0x04]
        );
        assert_eq!(
            Aml::and(Aml::equal(l(0), Aml::int(1)), Aml::less(l(3), Aml::int(4))).as_bytes(),
            &[0x90, 0x93, 0x60, 0x01, 0x95, 0x63, 0x0a, 0x04]
        );
        // Store (Local3, Index (CNEW, Local1)), ASL+ CNEW [Local1] = Local3.
        let cnew = || Aml::path("CNEW").unwrap();
        assert_eq!(
            Aml::store(l(3), Aml::index(cnew(), l(1))).as_bytes(),
            b"\x70\x63\x88CNEW\x61\x00"
        );
        // Store (DerefOf (Index (CNEW, Local2)), Local3)
        assert_eq!(
            Aml::store(Aml::deref_of(Aml::index(cnew(), l(2))), l(3)).as_bytes(),
            b"\x70\x83\x88CNEW\x62\x00\x63"
        );
    }

    #[test]
    fn if_else_while() {
        let l0 = || Aml::local(0).unwrap();
        // If (LEqual (Local0, One)) { Break }
        let i = Aml::if_(Aml::equal(l0(), Aml::int(1)), vec![Aml::break_()]).unwrap();
        assert_eq!(i.as_bytes(), &[0xa0, 0x05, 0x93, 0x60, 0x01, 0xa5]);
        let e = Aml::else_(vec![Aml::store(Aml::int(0), l0())]).unwrap();
        assert_eq!(e.as_bytes(), &[0xa1, 0x04, 0x70, 0x00, 0x60]);
        assert_eq!(Aml::else_(vec![]).unwrap().as_bytes(), &[0xa1, 0x01]);
        let w = Aml::while_(Aml::less(l0(), Aml::int(2)), vec![Aml::increment(l0())]).unwrap();
        assert_eq!(
            w.as_bytes(),
            &[0xa2, 0x07, 0x95, 0x60, 0x0a, 0x02, 0x75, 0x60]
        );
        // A long body takes a two-byte PkgLength.
        let body = vec![Aml::increment(l0()); 40];
        let w = Aml::while_(Aml::less(l0(), Aml::int(2)), body).unwrap();
        // Content: 4 + 80 = 84 bytes, total 86 = 0x56.
        assert_eq!(&w.as_bytes()[..3], &[0xa2, 0x46, 0x05]);
        assert_eq!(w.as_bytes().len(), 1 + 86);
    }
}
