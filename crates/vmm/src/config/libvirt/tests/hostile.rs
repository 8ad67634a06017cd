//! Hostile domains (issue 11): sizes and counts that wrap or would size allocations,
//! non-ASCII units, deep nesting and oversized documents. Each is one error line.

use super::{dom, err, parse};

const MAX_RULE: &str = "exceeds the maximum of 4 PiB less 1 GiB (4503598553628672 bytes): \
                        guest RAM and the 1 GiB MMIO hole below 4 GiB must fit in x86-64's \
                        52-bit physical addresses";

#[test]
fn non_ascii_units_are_unknown_units() {
    for unit in ["éB", "é", "ÉiB", "\u{1F600}", "kéB"] {
        let xml = dom(&format!("<memory unit='{unit}'>4</memory>"));
        assert_eq!(
            err(&xml),
            format!(
                "--domain vm.xml:3: <memory unit='{unit}'>: unknown unit '{unit}' (expected b, \
                 bytes, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB)"
            ),
            "{unit}"
        );
    }
    let xml = dom(
        "<memory unit='MiB'>1024</memory><cpu><numa><cell id='0' cpus='0' memory='1' \
         unit='ĝiB'/></numa></cpu>",
    );
    assert!(err(&xml).contains("unknown unit 'ĝiB'"), "{}", err(&xml));
}

#[test]
fn memory_near_2_pow_64_is_refused() {
    // 16 EiB wraps u64; 15 EiB and 18446744073709551615 bytes do not, but exceed the
    // address space.
    assert_eq!(
        err(&dom("<memory unit='EiB'>16</memory>")),
        "--domain vm.xml:3: <memory unit='EiB'>: 16 EiB is too large"
    );
    assert_eq!(
        err(&dom("<memory unit='EiB'>15</memory>")),
        format!("--domain vm.xml:3: <memory unit='EiB'>: 17293822569102704640 bytes {MAX_RULE}")
    );
    assert_eq!(
        err(&dom("<memory unit='b'>18446744073709551615</memory>")),
        format!("--domain vm.xml:3: <memory unit='b'>: 18446744073709551615 bytes {MAX_RULE}")
    );
    assert_eq!(
        err(&dom("<memory unit='b'>18446744073709551616</memory>")),
        "--domain vm.xml:3: <memory unit='b'>: 18446744073709551616 b is too large"
    );
}

#[test]
fn numa_cell_sizes_that_wrap_are_refused() {
    // 2 * 8 EiB wraps to 0; with the cells' total used as guest RAM, a wrap would pass.
    let xml = dom("<memory unit='MiB'>1024</memory><vcpu>2</vcpu><cpu><numa>\
         <cell id='0' cpus='0' memory='8' unit='EiB'/>\
         <cell id='1' cpus='1' memory='8' unit='EiB'/></numa></cpu>");
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <cell id='1' memory='8' unit='EiB'>: the cells' memory adds up to \
         more than 2^64 bytes (9223372036854775808 bytes before this cell's \
         9223372036854775808 bytes)"
    );
    // 15 EiB + 1 EiB + 1 GiB wraps to 1 GiB, which would equal <memory>.
    let xml = dom("<memory unit='GiB'>1</memory><vcpu>3</vcpu><cpu><numa>\
         <cell id='0' cpus='0' memory='15' unit='EiB'/>\
         <cell id='1' cpus='1' memory='1' unit='EiB'/>\
         <cell id='2' cpus='2' memory='1' unit='GiB'/></numa></cpu>");
    assert!(
        err(&xml).contains("the cells' memory adds up to more than 2^64 bytes"),
        "{}",
        err(&xml)
    );
    // More cells than guest NUMA nodes: refused before any is read.
    let cells: String = (0..129)
        .map(|i| format!("<cell id='{i}' memory='4' unit='MiB'/>"))
        .collect();
    let xml = dom(&format!(
        "<memory unit='MiB'>516</memory><cpu><numa>{cells}</numa></cpu>"
    ));
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <numa>: 129 cells are too many (at most 128 guest NUMA nodes, \
         QEMU's MAX_NODES)"
    );
}

#[test]
fn huge_vcpu_counts_are_refused_before_allocating() {
    let rule = "is out of range (at most 4096 vCPUs, the largest KVM_MAX_VCPUS of x86 Linux)";
    // With <vcpus> or NUMA cells these used to size a vector by the count first.
    for (count, extra) in [
        ("4294967295", "<vcpus><vcpu id='0' enabled='yes'/></vcpus>"),
        (
            "4294967295",
            "<cpu><numa><cell id='0' cpus='0' memory='128' unit='MiB'/></numa></cpu>",
        ),
        ("4097", ""),
    ] {
        let xml = dom(&format!(
            "<memory unit='MiB'>128</memory><vcpu current='1'>{count}</vcpu>{extra}"
        ));
        assert_eq!(
            err(&xml),
            format!("--domain vm.xml:3: <vcpu>: {count} {rule}")
        );
    }
    assert_eq!(
        err(&dom(
            "<memory unit='MiB'>128</memory><vcpu>4294967296</vcpu>"
        )),
        "--domain vm.xml:3: <vcpu>: 4294967296 is out of range (at most 4294967295)"
    );
    let d = parse(&dom(
        "<memory unit='MiB'>128</memory><vcpu current='2'>4096</vcpu>",
    ))
    .unwrap();
    assert_eq!((d.config.smp.cpus, d.config.smp.maxcpus), (2, 4096));
}

#[test]
fn topology_products_that_wrap_are_refused() {
    // 2^32 split across the factors, and all four at u32::MAX: a u64 product would wrap
    // (to 0, or to exactly <vcpu>).
    for (attrs, product) in [
        (
            "sockets='65536' dies='65536' cores='65536' threads='65536'",
            "18446744073709551616",
        ),
        (
            "sockets='4294967295' dies='4294967295' cores='4294967295' threads='4294967295'",
            "340282366604025813516997721482669850625",
        ),
        ("sockets='4294967296' dies='1' cores='1' threads='1'", ""),
    ] {
        let xml = dom(&format!(
            "<memory unit='MiB'>128</memory><vcpu>4</vcpu><cpu><topology {attrs}/></cpu>"
        ));
        let e = err(&xml);
        if product.is_empty() {
            assert_eq!(
                e,
                "--domain vm.xml:3: <topology sockets='4294967296'>: 4294967296 is out of range \
                 (at most 4294967295)"
            );
        } else {
            assert!(
                e.contains(&format!(
                    "sockets × dies × cores × threads = {product}, but <vcpu> gives 4 vCPUs"
                )),
                "{e}"
            );
        }
    }
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    // 100000 levels inside an element rvmm ignores overflowed the parser's stack.
    let deep = format!(
        "<metadata>{}{}</metadata>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    let xml = dom(&format!("<memory unit='MiB'>128</memory>\n{deep}"));
    assert_eq!(
        err(&xml),
        "--domain vm.xml:4: refused before parsing: elements nest deeper than the limit of 256 \
         levels"
    );
    // 250 levels are fine (ignored with a warning, as any metadata).
    let ok = format!(
        "<metadata>{}{}</metadata>",
        "<a>".repeat(250),
        "</a>".repeat(250)
    );
    assert!(parse(&dom(&format!("<memory unit='MiB'>128</memory>{ok}"))).is_ok());
}

#[test]
fn oversized_documents_are_refused() {
    let pad = format!("<!--{}-->", " ".repeat(1 << 20));
    let xml = dom(&format!("<memory unit='MiB'>128</memory>{pad}"));
    assert_eq!(
        err(&xml),
        format!(
            "--domain vm.xml:1: refused before parsing: the document is {} bytes, more than \
             the limit of 1048576 bytes (1 MiB)",
            xml.len()
        )
    );
}
