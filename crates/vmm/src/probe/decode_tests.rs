//! Tests for `decode`: a synthetic dump round-trips, and every error has its exact text.

use super::*;
use crate::probe::synth::{acpi_table, dump_text, madt, madt_lapic, Style, Topo};

const C0: &str =
    "CPUID cpu=0 leaf=00000000 sub=00000000 eax=0000000d ebx=756e6547 ecx=6c65746e edx=49656e69";
const C1: &str =
    "CPUID cpu=1 leaf=00000000 sub=00000000 eax=0000000d ebx=756e6547 ecx=6c65746e edx=49656e69";

/// A dump block around `body` lines.
fn block(body: &[&str]) -> String {
    let mut s = String::from("noise\r\nPROBE-BEGIN v1\r\n");
    for l in body {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

/// A line as errors quote it: its first 80 characters, then "..." when longer.
fn q(line: &str) -> String {
    if line.len() <= 80 {
        line.to_string()
    } else {
        format!("{}...", &line[..80])
    }
}

/// The hex line for a table.
fn acpi_line(t: &[u8]) -> String {
    let hex: String = t.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "ACPI sig={} len={} data={hex}",
        String::from_utf8_lossy(&t[..4]),
        t.len()
    )
}

#[test]
fn parses_a_synthetic_dump() {
    let cpus = Topo::new(1, 1, 2, 1).cpus(Style::Intel0b);
    let apic = madt(&[madt_lapic(0, 0, 1), madt_lapic(1, 1, 1)]);
    let text = dump_text(&cpus, std::slice::from_ref(&apic));
    let dump = parse(&text).unwrap();
    assert_eq!(dump.cpus.len(), 2);
    assert_eq!(dump.cpus[1].index, 1);
    assert_eq!(dump.cpus[0].leaves, cpus[0]);
    assert_eq!(dump.cpus[1].get(0xb, 0), Some([0, 1, 0x100, 1]));
    assert_eq!(dump.cpus[1].get(0xb, 7), None);
    assert_eq!(dump.acpi.len(), 1);
    assert_eq!(dump.table("APIC").unwrap().data, apic);
    assert_eq!(dump.table("SRAT"), None);
    assert!(dump.warnings.is_empty());
    assert_eq!(dump.begin_line, 3);
    let end = text
        .lines()
        .position(|l| l.starts_with("PROBE-END"))
        .unwrap()
        + 1;
    assert_eq!(dump.end_line, end);
}

#[test]
fn tolerates_noise_progress_lines_and_upper_case_hex() {
    let text = "\u{1b}[2Jfirmware PROBE-BEGIN v1\n\
                PROBE-HELLO\n\
                \n\
                PROBE-BUSY cpus=2\n\
                CPUID cpu=0 leaf=00000001 sub=00000000 eax=000806F8 ebx=00000000 ecx=00000000 edx=00000000\n\
                PROBE-PIO count=3\n\
                PROBE-ERROR cpu 1 did not answer\n\
                PROBE-FUTURE x=1\n\
                PROBE-END cpus=1\n\
                PROBE-HALT cpus=1\n\
                [    0.000000] Linux noise after the end\n";
    let dump = parse(text).unwrap();
    assert_eq!(dump.cpus[0].get(1, 0), Some([0x0008_06f8, 0, 0, 0]));
    assert_eq!(
        dump.warnings,
        [
            "line 7: PROBE-ERROR cpu 1 did not answer",
            "line 8: unknown probe line \"PROBE-FUTURE x=1\" ignored",
        ]
    );
    assert_eq!((dump.begin_line, dump.end_line), (1, 9));
}

#[test]
fn missing_or_wrong_begin() {
    assert_eq!(
        err("SeaBIOS\r\nno probe here\r\n"),
        "no \"PROBE-BEGIN v1\" line in the serial output (2 lines)"
    );
    assert_eq!(
        err("x\nPROBE-BEGIN v2\nPROBE-END cpus=0\n"),
        "line 2: unsupported probe dump version \"PROBE-BEGIN v2\" (this decoder reads \"PROBE-BEGIN v1\")"
    );
}

#[test]
fn truncated_dump() {
    assert_eq!(
        err(&block(&[C0, C1])),
        "probe dump truncated: no PROBE-END after line 4 (saw 2 CPUs, 0 ACPI tables)"
    );
    assert_eq!(
        err("PROBE-BEGIN v1"),
        "probe dump truncated: no PROBE-END after line 1 (saw 0 CPUs, 0 ACPI tables)"
    );
}

#[test]
fn cpu_count_must_match() {
    assert_eq!(
        err(&block(&[C0, C1, "PROBE-END cpus=3"])),
        "line 5: PROBE-END cpus=3 but the dump has CPUID lines for 2 CPUs"
    );
    let c2 = C1.replace("cpu=1", "cpu=2");
    assert_eq!(
        err(&block(&[C0, &c2, "PROBE-END cpus=2"])),
        "line 5: the dump has CPUID lines for CPUs 0,2 but none for cpu=1"
    );
    let dump = parse(&block(&["PROBE-END cpus=0"])).unwrap();
    assert!(dump.cpus.is_empty());
}

#[test]
fn bad_probe_end() {
    assert_eq!(
        err(&block(&[C0, "PROBE-END"])),
        "line 4: bad PROBE-END line \"PROBE-END\": field cpus= is missing"
    );
    assert_eq!(
        err(&block(&[C0, "PROBE-END cpus=one"])),
        "line 4: bad PROBE-END line \"PROBE-END cpus=one\": field cpus= is not a decimal number below 10^9"
    );
}

#[test]
fn bad_cpuid_lines() {
    let cases = [
        (
            C0.replace("eax=0000000d", "eax=000000d"),
            "field eax= is not 8 hex digits",
        ),
        (
            C0.replace("ebx=756e6547", "ebx=756e654g"),
            "field ebx= is not 8 hex digits",
        ),
        (
            C0.replace("cpu=0", "cpu=0x1"),
            "field cpu= is not a decimal number below 10^9",
        ),
        (C0.replace(" edx=49656e69", ""), "field edx= is missing"),
        (
            C0.replace("sub=", "subleaf="),
            "expected field sub= but found \"subleaf=00000000\"",
        ),
        (
            format!("{C0} extra"),
            "unexpected text \"extra\" after the last field",
        ),
    ];
    for (line, reason) in cases {
        assert_eq!(
            err(&block(&[&line, "PROBE-END cpus=1"])),
            format!("line 3: bad CPUID line \"{}\": {reason}", q(&line))
        );
    }
    assert_eq!(
        err(&block(&[C0, C1, C0, "PROBE-END cpus=2"])),
        format!(
            "line 5: bad CPUID line \"{}\": cpu=0 leaf=00000000 sub=00000000 was already given on line 3",
            q(C0)
        )
    );
}

#[test]
fn unexpected_text_inside_the_block() {
    assert_eq!(
        err(&block(&[C0, "garbage \"quoted\"", "PROBE-END cpus=1"])),
        "line 4: unexpected text \"garbage \\\"quoted\\\"\" inside the probe dump (begun on line 2)"
    );
    assert_eq!(
        err(&block(&[C0, "PROBE-BEGIN v1", "PROBE-END cpus=1"])),
        "line 4: unexpected text \"PROBE-BEGIN v1\" inside the probe dump (begun on line 2)"
    );
}

#[test]
fn acpi_lines() {
    let table = acpi_table(b"SLIT", 1, &[1, 0, 0, 0, 0, 0, 0, 0, 10]);
    let good = acpi_line(&table);
    let dump = parse(&block(&[C0, &good, "PROBE-END cpus=1"])).unwrap();
    assert_eq!(dump.acpi[0].signature, "SLIT");
    assert_eq!(dump.acpi[0].data, table);

    let mut bad_sum = table.clone();
    bad_sum[44] = 11;
    let dump = parse(&block(&[C0, &acpi_line(&bad_sum), "PROBE-END cpus=1"])).unwrap();
    assert_eq!(
        dump.warnings,
        ["line 4: ACPI SLIT table checksum is bad (its bytes sum to 0x01, not 0)"]
    );

    let short = acpi_table(b"SLIT", 1, &[])[..35].to_vec();
    let mut renamed = table.clone();
    renamed[..4].copy_from_slice(b"SRAT");
    let mut long_header = table.clone();
    long_header[4] = 46;
    let cases = [
        (
            good.replace("sig=SLIT", "sig=SL"),
            "field sig= \"SL\" is not 4 printable ASCII characters".to_string(),
        ),
        (
            good.replace("len=45", "len=4x"),
            "field len= is not a decimal number below 10^9".to_string(),
        ),
        (
            good.replace("len=45", "len=44"),
            "len=44 but data= holds 45 bytes".to_string(),
        ),
        (
            format!("{good}0"),
            "field data= has an odd number of hex digits (91)".to_string(),
        ),
        (
            good.replacen("data=53", "data=5z", 1),
            "field data= has a non-hex character at offset 1".to_string(),
        ),
        (
            acpi_line(&short),
            "len=35 is shorter than the 36-byte ACPI table header".to_string(),
        ),
        (
            acpi_line(&renamed).replace("sig=SRAT", "sig=SLIT"),
            "sig=SLIT but the table header says \"SRAT\"".to_string(),
        ),
        (
            acpi_line(&long_header),
            "len=45 but the table header's Length field is 46".to_string(),
        ),
        (
            good.replace("sig=SLIT ", ""),
            "expected field sig= but found \"len=45\"".to_string(),
        ),
    ];
    for (line, reason) in cases {
        assert_eq!(
            err(&block(&[C0, &line, "PROBE-END cpus=1"])),
            format!("line 4: bad ACPI line \"{}\": {reason}", q(&line))
        );
    }
    assert_eq!(
        err(&block(&[C0, &good, &good, "PROBE-END cpus=1"])),
        format!(
            "line 5: bad ACPI line \"{}\": a second SLIT table (the first is on line 4)",
            q(&good)
        )
    );
}

/// Every real dump saved by the probe-guest work parses, and its CPU count is PROBE-END's.
#[test]
fn saved_dumps_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("dump") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let dump = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let end = text
            .lines()
            .nth(dump.end_line - 1)
            .and_then(|l| l.trim().strip_prefix("PROBE-END cpus="))
            .and_then(|n| n.parse::<usize>().ok());
        assert_eq!(Some(dump.cpus.len()), end, "{}", path.display());
        crate::probe::view::GuestView::from_dump(&dump)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
