//! Decodes the probe guest's serial dump (see guest/probe) into raw data: per-vCPU CPUID
//! results and the ACPI tables the guest was given.
//!
//! The dump is a block of lines inside arbitrary serial noise:
//! ```text
//! PROBE-BEGIN v1
//! CPUID cpu=N leaf=XXXXXXXX sub=XXXXXXXX eax=XXXXXXXX ebx=XXXXXXXX ecx=XXXXXXXX edx=XXXXXXXX
//! ACPI sig=APIC len=N data=<hex of the whole table>
//! PROBE-END cpus=N
//! ```
//! `PROBE-ERROR ...` lines and unknown `PROBE-*` lines become warnings; `PROBE-HELLO`,
//! `PROBE-BUSY`, `PROBE-HALT` and `PROBE-PIO` are progress notes and are skipped. Anything
//! else inside the block is an error, as is a block without its `PROBE-END`. This module only
//! checks the framing (hex widths, lengths, counts, checksums); what the values mean is
//! `view`'s business.

use std::collections::BTreeMap;

use thiserror::Error;

/// The line that opens a dump of the version this decoder reads.
pub const BEGIN_LINE: &str = "PROBE-BEGIN v1";
const BEGIN_TAG: &str = "PROBE-BEGIN";
/// ACPI table header size (ACPI 6.5, table 5.4: Signature..Creator Revision).
pub const ACPI_HEADER_LEN: usize = 36;
/// Longest excerpt of a bad line quoted in an error.
const QUOTE_MAX: usize = 80;

/// What went wrong decoding a dump. Every variant names the line (1-based, counted over the
/// whole serial text) where it applies.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("no \"{BEGIN_LINE}\" line in the serial output ({lines} lines)")]
    NoBegin { lines: usize },
    #[error("line {line}: unsupported probe dump version \"{text}\" (this decoder reads \"{BEGIN_LINE}\")")]
    Version { line: usize, text: String },
    #[error("line {line}: bad {kind} line \"{text}\": {reason}")]
    BadLine {
        line: usize,
        kind: &'static str,
        text: String,
        reason: String,
    },
    #[error(
        "line {line}: unexpected text \"{text}\" inside the probe dump (begun on line {begin})"
    )]
    Unexpected {
        line: usize,
        begin: usize,
        text: String,
    },
    #[error("probe dump truncated: no PROBE-END after line {last_line} (saw {cpus} CPUs, {tables} ACPI tables)")]
    Truncated {
        last_line: usize,
        cpus: usize,
        tables: usize,
    },
    #[error("line {line}: PROBE-END cpus={declared} but the dump has CPUID lines for {seen} CPUs")]
    CpuCount {
        line: usize,
        declared: u32,
        seen: usize,
    },
    #[error("line {line}: the dump has CPUID lines for CPUs {present} but none for cpu={missing}")]
    CpuGap {
        line: usize,
        present: String,
        missing: u32,
    },
}

/// The CPUID results one vCPU reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuDump {
    /// The vCPU's position in MADT order (0 is the BSP).
    pub index: u32,
    /// (leaf, subleaf) -> [EAX, EBX, ECX, EDX].
    pub leaves: BTreeMap<(u32, u32), [u32; 4]>,
}

impl CpuDump {
    /// The registers of CPUID(leaf, sub), if the probe dumped that pair.
    pub fn get(&self, leaf: u32, sub: u32) -> Option<[u32; 4]> {
        self.leaves.get(&(leaf, sub)).copied()
    }
}

/// One ACPI table as the guest found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTable {
    /// The 4-character signature (`APIC`, `SRAT`, `SLIT`).
    pub signature: String,
    /// The whole table, header included.
    pub data: Vec<u8>,
}

/// Everything the probe reported, raw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeDump {
    /// Per vCPU, indexed by `CpuDump::index` (0..n).
    pub cpus: Vec<CpuDump>,
    /// ACPI tables in dump order.
    pub acpi: Vec<AcpiTable>,
    /// PROBE-ERROR lines, unknown PROBE-* lines and bad ACPI checksums, each with its line.
    pub warnings: Vec<String>,
    /// Line numbers of PROBE-BEGIN and PROBE-END.
    pub begin_line: usize,
    pub end_line: usize,
}

impl ProbeDump {
    /// The first ACPI table with this signature.
    pub fn table(&self, signature: &str) -> Option<&AcpiTable> {
        self.acpi.iter().find(|t| t.signature == signature)
    }
}

/// Finds the first `PROBE-BEGIN v1` block in serial output and decodes it.
pub fn parse(text: &str) -> Result<ProbeDump, DecodeError> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.trim_end_matches(['\r', ' ', '\t']))
        .collect();
    let (begin_idx, begin_at) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| l.find(BEGIN_TAG).map(|at| (i, at)))
        .ok_or(DecodeError::NoBegin {
            lines: lines.len() - usize::from(text.ends_with('\n')),
        })?;
    let begin_line = begin_idx + 1;
    let begin_text = lines[begin_idx][begin_at..].trim();
    if begin_text != BEGIN_LINE {
        return Err(DecodeError::Version {
            line: begin_line,
            text: quote(begin_text),
        });
    }

    let mut builder = Builder::default();
    for (idx, raw) in lines.iter().enumerate().skip(begin_idx + 1) {
        let line = idx + 1;
        let text = raw.trim_start();
        if text.is_empty() {
            continue;
        }
        let (keyword, rest) = text.split_once(' ').unwrap_or((text, ""));
        match keyword {
            "CPUID" => builder.cpuid(line, text, rest)?,
            "ACPI" => builder.acpi(line, text, rest)?,
            "PROBE-END" => return builder.finish(line, text, rest, begin_line),
            "PROBE-ERROR" => builder.warnings.push(format!("line {line}: {text}")),
            "PROBE-HELLO" | "PROBE-BUSY" | "PROBE-HALT" | "PROBE-PIO" => {}
            BEGIN_TAG => {
                return Err(DecodeError::Unexpected {
                    line,
                    begin: begin_line,
                    text: quote(text),
                })
            }
            k if k.starts_with("PROBE-") => builder.warnings.push(format!(
                "line {line}: unknown probe line \"{}\" ignored",
                quote(text)
            )),
            _ => {
                return Err(DecodeError::Unexpected {
                    line,
                    begin: begin_line,
                    text: quote(text),
                })
            }
        }
    }
    let last_line = lines.len() - usize::from(text.ends_with('\n'));
    Err(DecodeError::Truncated {
        last_line,
        cpus: builder.cpus.len(),
        tables: builder.acpi.len(),
    })
}

/// One CPU's leaves while parsing: (leaf, sub) -> (registers, line).
type CpuLines = BTreeMap<(u32, u32), ([u32; 4], usize)>;

/// Accumulates the lines of one block.
#[derive(Default)]
struct Builder {
    /// cpu index -> its leaves.
    cpus: BTreeMap<u32, CpuLines>,
    /// (table, line) in dump order.
    acpi: Vec<(AcpiTable, usize)>,
    warnings: Vec<String>,
}

/// The fields of a CPUID line, in order.
const CPUID_FIELDS: [&str; 7] = ["cpu", "leaf", "sub", "eax", "ebx", "ecx", "edx"];
/// The fields of an ACPI line, in order.
const ACPI_FIELDS: [&str; 3] = ["sig", "len", "data"];

impl Builder {
    fn cpuid(&mut self, line: usize, text: &str, rest: &str) -> Result<(), DecodeError> {
        let bad = |reason: String| DecodeError::BadLine {
            line,
            kind: "CPUID",
            text: quote(text),
            reason,
        };
        let values = fields(rest, &CPUID_FIELDS).map_err(bad)?;
        let cpu = decimal(CPUID_FIELDS[0], values[0]).map_err(bad)?;
        let mut hex = [0u32; 6];
        for (slot, (name, value)) in hex
            .iter_mut()
            .zip(CPUID_FIELDS[1..].iter().zip(&values[1..]))
        {
            *slot = hex8(name, value).map_err(bad)?;
        }
        let [leaf, sub, eax, ebx, ecx, edx] = hex;
        let regs = self.cpus.entry(cpu).or_default();
        if let Some((_, first)) = regs.get(&(leaf, sub)) {
            return Err(bad(format!(
                "cpu={cpu} leaf={leaf:08x} sub={sub:08x} was already given on line {first}"
            )));
        }
        regs.insert((leaf, sub), ([eax, ebx, ecx, edx], line));
        Ok(())
    }

    fn acpi(&mut self, line: usize, text: &str, rest: &str) -> Result<(), DecodeError> {
        let bad = |reason: String| DecodeError::BadLine {
            line,
            kind: "ACPI",
            text: quote(text),
            reason,
        };
        let values = fields(rest, &ACPI_FIELDS).map_err(bad)?;
        let signature = values[0];
        if signature.len() != 4 || !signature.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(format!(
                "field sig= \"{signature}\" is not 4 printable ASCII characters"
            )));
        }
        let len = decimal(ACPI_FIELDS[1], values[1]).map_err(bad)? as usize;
        let data = hex_bytes(values[2]).map_err(bad)?;
        if data.len() != len {
            return Err(bad(format!(
                "len={len} but data= holds {} bytes",
                data.len()
            )));
        }
        if len < ACPI_HEADER_LEN {
            return Err(bad(format!(
                "len={len} is shorter than the {ACPI_HEADER_LEN}-byte ACPI table header"
            )));
        }
        if &data[..4] != signature.as_bytes() {
            return Err(bad(format!(
                "sig={signature} but the table header says \"{}\"",
                String::from_utf8_lossy(&data[..4]).escape_debug()
            )));
        }
        let header_len = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
        if header_len as usize != len {
            return Err(bad(format!(
                "len={len} but the table header's Length field is {header_len}"
            )));
        }
        if let Some((_, first)) = self.acpi.iter().find(|(t, _)| t.signature == signature) {
            return Err(bad(format!(
                "a second {signature} table (the first is on line {first})"
            )));
        }
        let sum = data.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
        if sum != 0 {
            self.warnings.push(format!(
                "line {line}: ACPI {signature} table checksum is bad (its bytes sum to 0x{sum:02x}, not 0)"
            ));
        }
        self.acpi.push((
            AcpiTable {
                signature: signature.to_string(),
                data,
            },
            line,
        ));
        Ok(())
    }

    fn finish(
        self,
        line: usize,
        text: &str,
        rest: &str,
        begin_line: usize,
    ) -> Result<ProbeDump, DecodeError> {
        let values = fields(rest, &["cpus"]).map_err(|reason| DecodeError::BadLine {
            line,
            kind: "PROBE-END",
            text: quote(text),
            reason,
        })?;
        let declared = decimal("cpus", values[0]).map_err(|reason| DecodeError::BadLine {
            line,
            kind: "PROBE-END",
            text: quote(text),
            reason,
        })?;
        if declared as usize != self.cpus.len() {
            return Err(DecodeError::CpuCount {
                line,
                declared,
                seen: self.cpus.len(),
            });
        }
        if let Some(missing) = (0..declared).find(|i| !self.cpus.contains_key(i)) {
            let present: Vec<u32> = self.cpus.keys().copied().collect();
            return Err(DecodeError::CpuGap {
                line,
                present: crate::util::cpulist::cpulist(&present),
                missing,
            });
        }
        let cpus = self
            .cpus
            .into_iter()
            .map(|(index, leaves)| CpuDump {
                index,
                leaves: leaves.into_iter().map(|(k, (v, _))| (k, v)).collect(),
            })
            .collect();
        Ok(ProbeDump {
            cpus,
            acpi: self.acpi.into_iter().map(|(t, _)| t).collect(),
            warnings: self.warnings,
            begin_line,
            end_line: line,
        })
    }
}

/// Splits `key=value` fields that must come exactly in the order `names`.
fn fields<'a>(rest: &'a str, names: &[&str]) -> Result<Vec<&'a str>, String> {
    let tokens: Vec<&str> = rest.split_whitespace().collect();
    let mut values = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let Some(token) = tokens.get(i) else {
            return Err(format!("field {name}= is missing"));
        };
        match token.split_once('=') {
            Some((key, value)) if key == *name => values.push(value),
            _ => {
                return Err(format!(
                    "expected field {name}= but found \"{}\"",
                    quote(token)
                ))
            }
        }
    }
    if let Some(extra) = tokens.get(names.len()) {
        return Err(format!(
            "unexpected text \"{}\" after the last field",
            quote(extra)
        ));
    }
    Ok(values)
}

/// A decimal count field.
fn decimal(name: &str, value: &str) -> Result<u32, String> {
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("field {name}= is not a decimal number below 10^9"));
    }
    value
        .parse()
        .map_err(|_| format!("field {name}= is not a decimal number below 10^9"))
}

/// A 32-bit register or index field: exactly 8 hex digits.
fn hex8(name: &str, value: &str) -> Result<u32, String> {
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("field {name}= is not 8 hex digits"));
    }
    u32::from_str_radix(value, 16).map_err(|_| format!("field {name}= is not 8 hex digits"))
}

/// The ACPI table bytes: an even number of hex digits.
fn hex_bytes(value: &str) -> Result<Vec<u8>, String> {
    if value.len() % 2 != 0 {
        return Err(format!(
            "field data= has an odd number of hex digits ({})",
            value.len()
        ));
    }
    if let Some(at) = value.bytes().position(|b| !b.is_ascii_hexdigit()) {
        return Err(format!(
            "field data= has a non-hex character at offset {at}"
        ));
    }
    Ok(value
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16).unwrap_or(0);
            let lo = (pair[1] as char).to_digit(16).unwrap_or(0);
            (hi * 16 + lo) as u8
        })
        .collect())
}

/// A line or token as quoted in an error: at most QUOTE_MAX characters, control characters
/// escaped.
fn quote(text: &str) -> String {
    let escaped: String = text.chars().flat_map(char::escape_debug).collect();
    if escaped.chars().count() <= QUOTE_MAX {
        escaped
    } else {
        let cut: String = escaped.chars().take(QUOTE_MAX).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
