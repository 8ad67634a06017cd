//! Disassembles every table with ACPICA's `iasl -d` (Debian's acpica-tools) and checks key
//! lines of the listing: an independent decoder of our bytes. The DSDT's CPU hotplug AML is
//! compared line by line with the disassembly of QEMU 7.2 `-M pc`'s DSDT (testdata/), and
//! `acpiexec` runs its methods. The tests fail, naming the package to install, when iasl is
//! missing.

use super::tests::{cpus, two_node_platform};
use super::{build, AcpiCpu, AcpiPlatform, AcpiTables};
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

/// QEMU 7.2 `-M pc`'s DSDT for `-smp 1,maxcpus=4` (dumped from a running guest as the
/// qemu_tests fixtures were).
const QEMU_DSDT_SMP1_MAXCPUS4: &[u8] = include_bytes!("testdata/qemu-pc-smp1-maxcpus4.dsdt");
/// The same for `-smp 2,sockets=2,cores=3,maxcpus=6` with two NUMA nodes (`-object
/// memory-backend-ram,id=m0,size=128M -numa node,nodeid=0,cpus=0-2,memdev=m0`, and m1 /
/// node 1 / cpus 3-5): APIC IDs 0, 1, 2, 4, 5, 6, `_PXM` on every slot.
const QEMU_DSDT_NUMA: &[u8] = include_bytes!("testdata/qemu-pc-smp2-s2c3-maxcpus6-numa.dsdt");

/// The lines of the block that opens with the line `header` (trimmed, spaces squeezed): the
/// header, then everything up to the `}` that closes it.
fn block(dsl: &str, header: &str) -> Vec<String> {
    let lines: Vec<String> = squeeze(dsl).lines().map(str::to_string).collect();
    let start = lines
        .iter()
        .position(|l| l == header)
        .unwrap_or_else(|| panic!("no {header:?} in:\n{dsl}"));
    let mut depth = 0usize;
    let mut out = vec![];
    for line in &lines[start..] {
        out.push(line.clone());
        // iasl puts every brace of a block on a line of its own; `{}` and `})` are inline.
        match line.as_str() {
            "{" => depth += 1,
            "}" | "})" => {
                depth -= 1;
                if depth == 0 {
                    return out;
                }
            }
            _ => {}
        }
    }
    panic!("{header:?} is not closed")
}

/// iasl's rendering of a small integer constant.
fn iasl_int(v: u64) -> String {
    match v {
        0 => "Zero".into(),
        1 => "One".into(),
        v => format!("0x{v:02X}"),
    }
}

/// QEMU's hotplug AML rewritten to rvmm's expected form; every rewrite is a documented
/// difference (`cpus.rs`):
/// - `\_SB.PCI0.PRES` is `\_SB.PRES` (no PCI host bridge);
/// - `Processor (Cxxx, id, 0, 0)` is `Device (Cxxx)` with `_HID "ACPI0007"` and `_UID id`;
/// - `Method (\_GPE._E02)` is `Method (_E02)` inside `Scope (\_GPE)`.
fn qemu_as_rvmm(lines: Vec<String>) -> Vec<String> {
    let mut out = vec![];
    let mut iter = lines.into_iter();
    while let Some(line) = iter.next() {
        let line = line
            .replace(r"\_SB.PCI0.PRES", r"\_SB.PRES")
            .replace(r"Device (\_SB.PRES)", "Device (PRES)")
            .replace(r"Device (\_SB.CPUS)", "Device (CPUS)")
            .replace(r"Method (\_GPE._E02,", "Method (_E02,");
        let Some(args) = line
            .strip_prefix("Processor (")
            .and_then(|l| l.strip_suffix(')'))
        else {
            out.push(line);
            continue;
        };
        let fields: Vec<&str> = args.split(", ").collect();
        assert_eq!(fields[2..], ["0x00000000", "0x00"], "{line}");
        let id = u64::from_str_radix(fields[1].trim_start_matches("0x"), 16).unwrap();
        out.push(format!("Device ({})", fields[0]));
        out.push(iter.next().unwrap()); // {
        out.push(r#"Name (_HID, "ACPI0007" /* Processor Device */) // _HID: Hardware ID"#.into());
        out.push(format!("Name (_UID, {}) // _UID: Unique ID", iasl_int(id)));
    }
    out
}

/// Asserts two listings are equal, showing the first differing line with context.
fn assert_same_lines(case: &str, what: &str, ours: &[String], qemu: &[String]) {
    if ours == qemu {
        return;
    }
    let at = ours
        .iter()
        .zip(qemu)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(qemu.len()));
    let from = at.saturating_sub(5);
    panic!(
        "{case} {what}: rvmm's DSDT differs from QEMU 7.2's at line {at}\nrvmm:\n{}\nQEMU \
         (rewritten to rvmm's form):\n{}",
        ours[from..(at + 5).min(ours.len())].join("\n"),
        qemu[from..(at + 5).min(qemu.len())].join("\n")
    );
}

/// Disassembles rvmm's DSDT for `platform` and QEMU's, and compares the CPU hotplug AML
/// line by line: the `\_SB.GPE0` and `\_SB.PRES` devices (region, field offsets, mutex,
/// `_INI`), the `\_SB.CPUS` container (every method, every processor device with `_STA`,
/// `_MAT`, `_EJ0`, `_OST`, `_PXM`) and the `\_GPE` objects. The rest of QEMU's DSDT (PCI,
/// ISA bridge, HPET, ...) describes hardware rvmm does not have and is not compared.
fn compare_hotplug_aml(case: &str, platform: &AcpiPlatform, qemu_dsdt: &[u8]) {
    let tables = build(platform, layout::ACPI_START).unwrap();
    let dir = ScratchDir::new(&format!("dsdt-{case}"));
    let ours = disassemble(&dir.0, "rvmm", tables.table(b"DSDT").unwrap());
    let qemu = disassemble(&dir.0, "qemu", qemu_dsdt);

    for (what, ours_header, qemu_header) in [
        ("GPE0", "Device (GPE0)", "Device (GPE0)"),
        ("PRES", "Device (PRES)", r"Device (\_SB.PCI0.PRES)"),
        ("CPUS", "Device (CPUS)", r"Device (\_SB.CPUS)"),
        (
            "_E02",
            "Method (_E02, 0, NotSerialized) // _Exx: Edge-Triggered GPE, xx=0x00-0xFF",
            r"Method (\_GPE._E02, 0, NotSerialized) // _Exx: Edge-Triggered GPE, xx=0x00-0xFF",
        ),
    ] {
        let ours_block = block(&ours, ours_header);
        let qemu_block = qemu_as_rvmm(block(&qemu, qemu_header));
        assert_same_lines(case, what, &ours_block, &qemu_block);
        if what == "CPUS" {
            let devices = ours_block[1..]
                .iter()
                .filter(|l| l.starts_with("Device (C"));
            assert_eq!(devices.count(), platform.cpus.len(), "{case}");
        }
    }
    let gpe_hid = r#"Name (_HID, "ACPI0006" /* GPE Block Device */) // _HID: Hardware ID"#;
    assert_eq!(block(&ours, r"Scope (\_GPE)")[2], gpe_hid, "{case}");
    assert_eq!(block(&qemu, "Scope (_GPE)")[2], gpe_hid, "{case}");
    let slots = platform.cpus.len();
    assert_eq!(
        squeeze(&ours)
            .matches("Method (_OST, 3, Serialized)")
            .count(),
        slots,
        "{case}"
    );
    assert_eq!(
        squeeze(&ours)
            .matches("Method (_EJ0, 1, NotSerialized)")
            .count(),
        slots - 1,
        "{case}: every slot but the boot vCPU's has _EJ0"
    );
}

#[test]
fn hotplug_aml_equals_qemu_smp1_maxcpus4() {
    let mut c = cpus(4);
    c.iter_mut().skip(1).for_each(|c| c.enabled = false);
    compare_hotplug_aml(
        "smp1-maxcpus4",
        &super::tests::platform(c),
        QEMU_DSDT_SMP1_MAXCPUS4,
    );
}

#[test]
fn hotplug_aml_equals_qemu_sockets_cores_numa() {
    let apic_ids = [0, 1, 2, 4, 5, 6];
    let c = apic_ids
        .iter()
        .enumerate()
        .map(|(uid, &apic_id)| AcpiCpu {
            uid: uid as u32,
            apic_id,
            enabled: uid < 2,
            node: Some(uid as u32 / 3),
        })
        .collect();
    compare_hotplug_aml("numa", &super::tests::platform(c), QEMU_DSDT_NUMA);
}

/// The comparison can fail: a DSDT built for another slot count differs from QEMU's.
#[test]
fn hotplug_aml_comparison_catches_a_difference() {
    let result = std::panic::catch_unwind(|| {
        compare_hotplug_aml(
            "wrong-count",
            &super::tests::platform(cpus(3)),
            QEMU_DSDT_SMP1_MAXCPUS4,
        );
    });
    let message = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("wrong-count CPUS: rvmm's DSDT differs"),
        "{message}"
    );
}

/// The virtio-mmio devices disassemble to what QEMU microvm's DSDT says for its transports.
#[test]
fn iasl_virtio_mmio_devices() {
    let mut platform = super::tests::platform(cpus(1));
    platform.virtio_mmio = (0..2)
        .map(|slot| super::AcpiVirtioMmio {
            slot,
            base: 0xfeb0_0000 + slot * 0x200,
            size: 0x200,
            gsi: 16 + slot,
        })
        .collect();
    let tables = build(&platform, layout::ACPI_START).unwrap();
    let dir = ScratchDir::new("virtio");
    let all = disassemble_all(&tables, &dir.0);
    assert_lines(
        "DSDT",
        dsl_of(&all, "dsdt"),
        &[
            "Device (VR01)",
            r#"Name (_HID, "LNRO0005")"#,
            "Name (_UID, One)",
            "Name (_CCA, One)",
            "Memory32Fixed (ReadWrite,",
            "0xFEB00200, // Address Base",
            "0x00000200, // Address Length",
            "Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )",
            "0x00000011,",
        ],
    );
}
