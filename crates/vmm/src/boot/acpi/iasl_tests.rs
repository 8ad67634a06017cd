//! Disassembles every table with ACPICA's `iasl -d` (Debian's acpica-tools) and checks key
//! lines of the listing: an independent decoder of our bytes. The tests fail, naming the
//! package to install, when iasl is missing.

use super::tests::{cpus, two_node_platform};
use super::{build, AcpiPlatform, AcpiTables};
use crate::memory::layout;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("rvmm-iasl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn iasl_missing_message() -> String {
    "iasl not found: these tests disassemble the ACPI tables with ACPICA's iasl; install \
     Debian's acpica-tools (`apt-get install -y acpica-tools`; the project's scripts do)"
        .to_string()
}

/// Writes `table` to `dir/name.dat`, runs `iasl -d` on it and returns the .dsl text.
fn disassemble(dir: &Path, name: &str, table: &[u8]) -> String {
    let dat = dir.join(format!("{name}.dat"));
    std::fs::write(&dat, table).expect("write the table");
    let out = match Command::new("iasl")
        .arg("-d")
        .arg(&dat)
        .current_dir(dir)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{}", iasl_missing_message()),
        Err(e) => panic!("running iasl: {e}"),
    };
    let dsl = dir.join(format!("{name}.dsl"));
    let text = std::fs::read_to_string(&dsl).unwrap_or_else(|e| {
        panic!(
            "iasl -d {name}.dat wrote no {}: {e}\nstdout:\n{}\nstderr:\n{}",
            dsl.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    for bad in [
        "Incorrect checksum",
        "should be",
        "Invalid",
        "Error",
        "terminates in the middle",
    ] {
        assert!(!text.contains(bad), "{name}: iasl reports {bad:?}:\n{text}");
    }
    text
}

/// Collapses runs of spaces so assertions do not depend on iasl's column alignment.
fn squeeze(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_lines(name: &str, dsl: &str, expected: &[&str]) {
    let text = squeeze(dsl);
    for line in expected {
        assert!(
            text.contains(&squeeze(line)),
            "{name}: iasl -d output lacks {line:?}:\n{dsl}"
        );
    }
}

fn disassemble_all(tables: &AcpiTables, dir: &Path) -> Vec<(String, String)> {
    tables
        .tables
        .iter()
        .filter(|p| &p.signature != b"RSDP")
        .map(|p| {
            let name = String::from_utf8_lossy(&p.signature).to_lowercase();
            let dsl = disassemble(dir, &name, tables.table(&p.signature).unwrap());
            (name, dsl)
        })
        .collect()
}

fn dsl_of<'a>(all: &'a [(String, String)], name: &str) -> &'a str {
    &all.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn iasl_is_installed() {
    let found = Command::new("iasl").arg("-v").output().is_ok();
    assert!(found, "{}", iasl_missing_message());
}

#[test]
fn iasl_two_node_platform() {
    let mut platform: AcpiPlatform = two_node_platform();
    platform.cpus[3].enabled = false;
    let tables = build(&platform, layout::ACPI_START).unwrap();
    let dir = ScratchDir::new("numa");
    let all = disassemble_all(&tables, &dir.0);

    assert_lines(
        "XSDT",
        dsl_of(&all, "xsdt"),
        &[
            r#"Signature : "XSDT""#,
            &format!(
                "ACPI Table Address 0 : {:016X}",
                tables.address(b"FACP").unwrap()
            ),
            &format!(
                "ACPI Table Address 3 : {:016X}",
                tables.address(b"SLIT").unwrap()
            ),
        ],
    );
    assert_lines(
        "FACP",
        dsl_of(&all, "facp"),
        &[
            "Revision : 06",
            r#"Oem ID : "RVMM  ""#,
            r#"Oem Table ID : "RVMMFACP""#,
            r#"Asl Compiler ID : "RVMM""#,
            &format!("FACS Address : {:08X}", tables.address(b"FACS").unwrap()),
            &format!("DSDT Address : {:016X}", tables.address(b"DSDT").unwrap()),
            "SCI Interrupt : 0009",
            "SMI Command Port : 00000000",
            "PM1A Event Block Address : 00000600",
            "PM1A Control Block Address : 00000604",
            "PM Timer Block Address : 00000608",
            "PM1 Event Block Length : 04",
            "PM1 Control Block Length : 02",
            "PM Timer Block Length : 04",
            "8042 Present on ports 60/64 (V2) : 1",
            "VGA Not Present (V4) : 1",
            "WBINVD instruction is operational (V1) : 1",
            "Control Method Sleep Button (V1) : 1",
            "RTC can wake system from S4 (V1) : 1",
            "Reset Register Supported (V2) : 1",
            "Use Platform Timer (V4) : 1",
            "Use APIC Cluster Model (V4) : 0",
            "Hardware Reduced (V5) : 0",
            "Address : 0000000000000CF9",
            "Value to cause reset : 06",
            "Address : 0000000000000600",
            "Address : 0000000000000604",
            "Address : 0000000000000608",
        ],
    );
    assert_lines(
        "FACS",
        dsl_of(&all, "facs"),
        &[r#"Signature : "FACS""#, "Length : 00000040", "Version : 02"],
    );
    assert_lines(
        "DSDT",
        dsl_of(&all, "dsdt"),
        &[
            r"Name (\_S5, Package (0x04)",
            "0x05,",
            r"Scope (\_SB)",
            "Device (COM1)",
            r#"Name (_HID, EisaId ("PNP0501")"#,
            "Name (_UID, One)",
            "Name (_STA, 0x0F)",
            "IO (Decode16,",
            "0x03F8, // Range Minimum",
            "0x08, // Length",
            "IRQNoFlags ()",
            "{4}",
            "Device (KBD)",
            r#"Name (_HID, EisaId ("PNP0303")"#,
            "0x0060, // Range Minimum",
            "0x0064, // Range Minimum",
            "{1}",
            "Device (CPUS)",
            "Device (C000)",
            r#"Name (_HID, "ACPI0007""#,
            "Name (_UID, Zero)",
            "Method (_STA, 0, Serialized)",
            "Return (CSTA (Zero))",
            "Name (_PXM, Zero)",
            "Device (C003)",
            "Name (_UID, 0x03)",
            "Return (CSTA (0x03))",
            "0x00, 0x08, 0x03, 0x03, 0x01, 0x00, 0x00, 0x00",
            "Name (_PXM, One)",
        ],
    );
    assert_lines(
        "APIC",
        dsl_of(&all, "apic"),
        &[
            "Revision : 01",
            "Local Apic Address : FEE00000",
            "PC-AT Compatibility : 1",
            "Subtable Type : 00 [Processor Local APIC]",
            "Local Apic ID : 03",
            "Processor Enabled : 0",
            "Subtable Type : 01 [I/O APIC]",
            "Address : FEC00000",
            "Subtable Type : 02 [Interrupt Source Override]",
            "Interrupt : 00000002",
            "Source : 09",
            "Interrupt : 00000009",
            "Trigger Mode : 3",
            "Subtable Type : 04 [Local APIC NMI]",
            "Processor ID : FF",
            "Interrupt Input LINT : 01",
        ],
    );
    assert_lines(
        "SRAT",
        dsl_of(&all, "srat"),
        &[
            "Table Revision : 00000001",
            "Subtable Type : 00 [Processor Local APIC/SAPIC Affinity]",
            "Proximity Domain Low(8) : 01",
            "Apic ID : 03",
            "Subtable Type : 01 [Memory Affinity]",
            "Base Address : 0000000000100000",
            "Address Length : 0000000007F00000",
            "Base Address : 0000000008000000",
            "Proximity Domain : 00000001",
            "Enabled : 1",
            "Hot Pluggable : 0",
        ],
    );
    assert_lines(
        "SLIT",
        dsl_of(&all, "slit"),
        &[
            "Localities : 0000000000000002",
            "Locality 0 : 0A 15",
            "Locality 1 : 15 0A",
        ],
    );
}

#[test]
fn iasl_288_vcpus_with_x2apic() {
    let mut c = cpus(288);
    c.iter_mut().skip(2).for_each(|c| c.enabled = false);
    let platform = super::tests::platform(c);
    let tables = build(&platform, layout::ACPI_START).unwrap();
    let dir = ScratchDir::new("x2apic");
    let all = disassemble_all(&tables, &dir.0);
    let madt = dsl_of(&all, "apic");
    assert_lines(
        "APIC",
        madt,
        &[
            "Subtable Type : 09 [Processor Local x2APIC]",
            "Processor x2Apic ID : 0000011F",
            "Processor UID : 0000011F",
            "Subtable Type : 0A [Local x2APIC NMI]",
            "Processor UID : FFFFFFFF",
        ],
    );
    assert_eq!(madt.matches("[Processor Local APIC]").count(), 255);
    assert_eq!(madt.matches("[Processor Local x2APIC]").count(), 33);
    assert_lines(
        "FACP",
        dsl_of(&all, "facp"),
        &["Use APIC Cluster Model (V4) : 1"],
    );
    let dsdt = dsl_of(&all, "dsdt");
    assert_lines(
        "DSDT",
        dsdt,
        &["Device (C11F)", "Name (_UID, 0x011F)", "Device (C0FF)"],
    );
    assert_eq!(dsdt.matches(r#"Name (_HID, "ACPI0007""#).count(), 288);
}

/// Loads the tables into ACPICA's `acpiexec` (same package as iasl), which runs the table
/// loader and the AML interpreter, and evaluates the objects Linux will evaluate.
#[test]
fn acpiexec_evaluates_the_dsdt() {
    let mut platform: AcpiPlatform = two_node_platform();
    platform.cpus[3].enabled = false;
    let tables = build(&platform, layout::ACPI_START).unwrap();
    let dir = ScratchDir::new("acpiexec");
    let mut files = Vec::new();
    for sig in [b"DSDT", b"FACP", b"APIC", b"SRAT", b"SLIT"] {
        let name = format!("{}.dat", String::from_utf8_lossy(sig));
        std::fs::write(dir.0.join(&name), tables.table(sig).unwrap()).unwrap();
        files.push(name);
    }
    // acpiexec backs the SystemIO region with plain memory that reads 0, so every _STA
    // (through CSTA and the register block) reads 0 and CSCN finds no event; the point is
    // that the hotplug methods load and run to completion without an error or a warning.
    let commands = [
        r"evaluate \_S5",
        r"evaluate \_SB.CPUS.C000._STA",
        r"evaluate \_SB.CPUS.C003._STA",
        r"evaluate \_SB.CPUS.C003._PXM",
        r"evaluate \_SB.CPUS.C002._UID",
        r"evaluate \_SB.KBD._CRS",
        r"evaluate \_SB.CPUS.C003._MAT",
        r"evaluate \_GPE._E02",
        r"evaluate \_SB.CPUS.C003._OST 0x103 0 (00)",
        r"evaluate \_SB.CPUS.C003._EJ0 1",
    ]
    .join("; ");
    let out = match Command::new("acpiexec")
        .arg("-b")
        .arg(&commands)
        .args(&files)
        .current_dir(&dir.0)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{}", iasl_missing_message()),
        Err(e) => panic!("running acpiexec: {e}"),
    };
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for bad in [
        "ACPI Warning",
        "ACPI Error",
        "Firmware Error",
        "ACPI Exception",
    ] {
        assert!(!text.contains(bad), "acpiexec reports {bad:?}:\n{text}");
    }
    let results: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('['))
        .map(str::trim)
        .collect();
    assert_eq!(
        results,
        [
            "[Package] Contains 4 Elements:",
            "[Integer] = 0000000000000005",
            "[Integer] = 0000000000000005",
            "[Integer] = 0000000000000000",
            "[Integer] = 0000000000000000",
            "[Integer] = 0000000000000000",
            "[Integer] = 0000000000000000",
            "[Integer] = 0000000000000001",
            "[Integer] = 0000000000000002",
            "[Buffer] Length 15 =",
            "[Buffer] Length 08 =     0000: 00 08 03 03 01 00 00 00                          \
             // ........",
        ],
        "{text}"
    );
    for row in [
        "0000: 47 01 60 00 60 00 01 01 47 01 64 00 64 00 01 01",
        "0010: 22 02 00 79 00",
        r"No object was returned from evaluation of \_GPE._E02",
        r"No object was returned from evaluation of \_SB.CPUS.C003._OST",
        r"No object was returned from evaluation of \_SB.CPUS.C003._EJ0",
        "Executed 1 _INI methods",
    ] {
        assert!(text.contains(row), "KBD._CRS lacks {row:?}:\n{text}");
    }
}
