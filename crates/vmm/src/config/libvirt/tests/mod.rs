//! Unit tests of the domain parser: the acceptance domain, defaults, units, errors and
//! the CPU side; memory.rs has the memory, NUMA, pinning and platform side.

mod disk;
mod hostile;
mod memory;
mod vcpus;

use super::*;
use crate::config::cpu::{Check, CpuConfig};
use crate::config::memory::MemoryBacking;
use crate::config::numa::{HostPolicy, NumaNodeSpec};
use crate::config::{BootSource, SmpConfig};
use crate::cpu::support::testing;

/// A slice of libvirt's x86_features.xml (bits as libvirt 9.0 has them).
const FEATURES: &str = "<cpus>\
<feature name='pclmuldq'><cpuid eax_in='0x01' ecx='0x00000002'/></feature>\
<feature name='fma'><cpuid eax_in='0x01' ecx='0x00001000'/></feature>\
<feature name='x2apic'><cpuid eax_in='0x01' ecx='0x00200000'/></feature>\
<feature name='tsc-deadline'><cpuid eax_in='0x01' ecx='0x01000000'/></feature>\
<feature name='aes'><cpuid eax_in='0x01' ecx='0x02000000'/></feature>\
<feature name='osxsave'><cpuid eax_in='0x01' ecx='0x08000000'/></feature>\
<feature name='tsc_adjust'><cpuid eax_in='0x07' ecx_in='0x00' ebx='0x00000002'/></feature>\
<feature name='hle'><cpuid eax_in='0x07' ecx_in='0x00' ebx='0x00000010'/></feature>\
<feature name='rtm'><cpuid eax_in='0x07' ecx_in='0x00' ebx='0x00000800'/></feature>\
</cpus>";

fn map() -> LibvirtCpuMap {
    let mut m = LibvirtCpuMap::default();
    m.add_file("x86_vendors.xml", "<cpus><vendor name='Intel' string='GenuineIntel'/><vendor name='AMD' string='AuthenticAMD'/></cpus>")
        .unwrap();
    m.add_file("x86_features.xml", FEATURES).unwrap();
    m
}

/// Parses with the test map and the synthetic Haswell-like test host.
pub(super) fn parse(xml: &str) -> Result<Domain, DomainError> {
    let m = map();
    let support = testing::host();
    let identity = testing::identity();
    let env = DomainEnv {
        cpu_map: Some(&m),
        host: Some(DomainHost {
            support: &support,
            identity: &identity,
        }),
    };
    parse_domain(xml, "vm.xml", &env)
}

pub(super) fn err(xml: &str) -> String {
    parse(xml).unwrap_err().to_string()
}

/// A domain around `body` (which goes after `<name>`), with `<os>` and `<features><acpi/>`.
pub(super) fn dom(body: &str) -> String {
    format!(
        "<domain type='kvm'>\n<name>t</name>\n{body}\n<os><type arch='x86_64' \
         machine='pc'>hvm</type></os>\n<features><acpi/></features>\n</domain>"
    )
}

const ACCEPTANCE: &str = include_str!("../../../../../rvmm/tests/data/domains/acceptance.xml");

#[test]
fn acceptance_domain_maps_every_part() {
    let d = parse(ACCEPTANCE).unwrap();
    let c = &d.config;
    assert_eq!(c.name.as_deref(), Some("rvmm-domain-acceptance"));
    assert_eq!(
        c.boot,
        BootSource::Probe {
            cmdline: "mode=halt".into(),
            initrd: None
        }
    );
    assert_eq!(
        c.smp,
        SmpConfig {
            cpus: 8,
            maxcpus: 8,
            sockets: 2,
            dies: 1,
            cores: 2,
            threads: 2
        }
    );
    assert_eq!(c.cpu.model, "Haswell");
    let changes: Vec<(&str, bool)> = c
        .cpu
        .changes
        .iter()
        .map(|(n, on)| (n.as_str(), *on))
        .collect();
    assert_eq!(
        changes,
        [
            ("x2apic", true),
            ("tsc-deadline", true),
            ("hle", false),
            ("rtm", false),
            ("pclmulqdq", false)
        ]
    );
    assert_eq!(c.cpu.pmu, Some(false));
    assert_eq!(c.cpu.check, Check::Warn);
    assert_eq!(c.memory, 512 << 20);
    assert_eq!(
        c.memory_backing,
        MemoryBacking {
            hugepages: true,
            hugepage_size: Some(2 << 20),
            merge: Some(false),
            ..MemoryBacking::default()
        }
    );
    assert_eq!(
        c.numa.nodes,
        [
            NumaNodeSpec {
                text: "node,nodeid=0,cpus=0-3,mem=256M,host-nodes=0,policy=bind".into(),
                nodeid: Some(0),
                cpus: vec![0, 1, 2, 3],
                mem: Some(256 << 20),
                host_nodes: vec![0],
                policy: Some(HostPolicy::Bind),
            },
            NumaNodeSpec {
                text: "node,nodeid=1,cpus=4-7,mem=256M,host-nodes=0,policy=preferred".into(),
                nodeid: Some(1),
                cpus: vec![4, 5, 6, 7],
                mem: Some(256 << 20),
                host_nodes: vec![0],
                policy: Some(HostPolicy::Preferred),
            },
        ]
    );
    let dists: Vec<(u32, u32, u32)> = c
        .numa
        .distances
        .iter()
        .map(|d| (d.src, d.dst, d.val))
        .collect();
    assert_eq!(dists, [(0, 0, 10), (0, 1, 21), (1, 0, 21), (1, 1, 10)]);
    let pins: Vec<(u32, Vec<u32>)> = c
        .pinning
        .vcpus
        .iter()
        .map(|p| (p.vcpu, p.cpus.clone()))
        .collect();
    assert_eq!(
        pins,
        [
            (0, vec![0]),
            (1, vec![1]),
            (2, vec![0]),
            (3, vec![1]),
            (4, vec![0]),
            (5, vec![1]),
            (6, vec![0, 1]),
            (7, vec![1])
        ]
    );
    assert_eq!(c.pinning.emulator, Some(vec![0]));
    assert_eq!(c.pinning.cpuset, None);
    assert_eq!(d.warnings, Vec::<String>::new());
}

#[test]
fn smallest_domain_gets_libvirt_defaults() {
    let d = parse(
        "<domain type='kvm'><name>small</name><memory>131072</memory>\
         <os><type>hvm</type></os></domain>",
    )
    .unwrap();
    assert_eq!(d.config.memory, 128 << 20);
    assert_eq!(d.config.smp, SmpConfig::default());
    assert_eq!(d.config.cpu, CpuConfig::default());
    assert_eq!(d.config.memory_backing, MemoryBacking::default());
    assert!(d.config.numa.is_empty());
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:1: domain: no <acpi/>, but rvmm always gives the guest ACPI tables \
          (they describe its CPUs and NUMA nodes)"
        ]
    );
}

#[test]
fn vcpu_current_and_libvirt_default_topology() {
    let d = parse(&dom(
        "<memory unit='GiB'>1</memory><vcpu current='2'>6</vcpu>",
    ))
    .unwrap();
    // No <topology>: libvirt asks QEMU for sockets=6,cores=1,threads=1.
    assert_eq!(
        d.config.smp,
        SmpConfig {
            cpus: 2,
            maxcpus: 6,
            sockets: 6,
            dies: 1,
            cores: 1,
            threads: 1
        }
    );
    let d = parse(&dom(
        "<memory>1048576</memory><vcpu>4</vcpu><vcpus>\
         <vcpu id='0' enabled='yes' hotpluggable='no' order='1'/><vcpu id='1' enabled='yes' order='2'/>\
         <vcpu id='2' enabled='yes' order='3'/><vcpu id='3' enabled='no' hotpluggable='yes'/>\
         </vcpus><cpu><topology sockets='1' dies='2' cores='2' threads='1'/></cpu>",
    ))
    .unwrap();
    assert_eq!(
        d.config.smp,
        SmpConfig {
            cpus: 3,
            maxcpus: 4,
            sockets: 1,
            dies: 2,
            cores: 2,
            threads: 1
        }
    );
}

#[test]
fn libvirt_units() {
    let mem = |m: &str| parse(&dom(m)).unwrap().config.memory;
    assert_eq!(mem("<memory unit='KB'>2048000</memory>"), 2_048_000_000);
    assert_eq!(mem("<memory unit='k'>1048576</memory>"), 1 << 30);
    assert_eq!(mem("<memory unit='M'>300</memory>"), 300 << 20);
    assert_eq!(mem("<memory unit='bytes'>268435456</memory>"), 256 << 20);
    assert_eq!(mem("<memory unit='GB'>8</memory>"), 8_000_000_000);
    // Rounded up to whole KiB first, then it must be whole 4 KiB pages.
    assert_eq!(
        err(&dom("<memory unit='b'>134217729</memory>")),
        "--domain vm.xml:3: <memory unit='b'>: 134218752 bytes is not a multiple of 4 KiB \
         (rvmm maps guest RAM in pages)"
    );
}

#[test]
fn bad_values_name_element_and_rule() {
    let cases: [(&str, &str); 14] = [
        (
            "<memory unit='XB'>4</memory>",
            "vm.xml:3: <memory unit='XB'>: unknown unit 'XB' (expected b, bytes, KB, k, KiB, MB, \
             M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB)",
        ),
        (
            "<memory>4x</memory>",
            "vm.xml:3: <memory>: '4x' is not a number (expected an unsigned decimal integer)",
        ),
        (
            "<memory unit='EiB'>16</memory>",
            "vm.xml:3: <memory unit='EiB'>: 16 EiB is too large",
        ),
        (
            "<memory>1024</memory>",
            "vm.xml:3: <memory>: 1048576 bytes is too small (rvmm needs at least 2 MiB of guest \
             memory)",
        ),
        (
            "<memory>131072</memory><vcpu>0</vcpu>",
            "vm.xml:3: <vcpu>: 0 is out of range (a domain has at least 1 vCPU)",
        ),
        (
            "<memory>131072</memory><vcpu current='5'>4</vcpu>",
            "vm.xml:3: <vcpu current='5'>: 5 is more than the 4 vCPUs of <vcpu>",
        ),
        (
            "<memory>131072</memory><vcpu>4</vcpu><cpu><topology sockets='2' cores='2' \
             threads='2'/></cpu>",
            "vm.xml:3: <topology sockets='2' cores='2' threads='2'>: sockets × dies × cores × \
             threads = 8, but <vcpu> gives 4 vCPUs (libvirt requires them equal)",
        ),
        (
            "<memory>131072</memory><vcpu>2</vcpu><cpu><topology sockets='2' clusters='2' \
             cores='1' threads='1'/></cpu>",
            "vm.xml:3: <topology clusters='2'>: x86 machines have no clusters (QEMU 7.2's pc \
             machine needs clusters='1')",
        ),
        (
            "<memory>131072</memory><vcpu>2</vcpu><cputune><vcpupin vcpu='2' cpuset='0'/>\
             </cputune>",
            "vm.xml:3: <vcpupin vcpu='2'>: vCPU 2 does not exist (<vcpu> gives vCPUs 0-1)",
        ),
        (
            "<memory>131072</memory><vcpu cpuset='3-1'>2</vcpu>",
            "vm.xml:3: <vcpu cpuset='3-1'>: CPU list \"3-1\": bad token \"3-1\": range start 3 \
             is above its end 1",
        ),
        (
            "<memory>131072</memory><vcpu placement='sometimes'>2</vcpu>",
            "vm.xml:3: <vcpu placement='sometimes'>: unknown value 'sometimes' (expected static, \
             auto)",
        ),
        (
            "<memory>131072</memory><cpu mode='host-model-ish'/>",
            "vm.xml:3: <cpu mode='host-model-ish'>: unknown value 'host-model-ish' (expected \
             custom, host-model, host-passthrough, maximum)",
        ),
        (
            "<memory>131072</memory><memory>131072</memory>",
            "vm.xml:3: <memory>: appears more than once (libvirt allows one)",
        ),
        (
            "<memory>131072</memory><launchSecurity type='sev'/>",
            "vm.xml:3: <launchSecurity>: memory encryption is not supported; the guest would run \
             unencrypted",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(err(&dom(body)), format!("--domain {want}"), "{body}");
    }
}

#[test]
fn malformed_and_missing() {
    assert_eq!(
        err("<domain type='kvm'><name>x</name>\n<memory>1</memory"),
        "--domain vm.xml:2: not well-formed XML: unexpected end of stream"
    );
    assert_eq!(
        err("<domain type='kvm'>\n<name>x</nam>\n</domain>"),
        "--domain vm.xml:2: not well-formed XML: expected 'name' tag, not 'nam' at 2:8"
    );
    assert_eq!(
        err("<vm/>"),
        "--domain vm.xml:1: <vm>: the root element must be <domain>"
    );
    assert_eq!(
        err("<domain type='xen'><name>x</name></domain>"),
        "--domain vm.xml:1: <domain type='xen'>: rvmm runs KVM domains (type='kvm'), not 'xen'"
    );
    assert_eq!(
        err("<domain type='kvm'><memory>131072</memory><os><type>hvm</type></os></domain>"),
        "--domain vm.xml: <domain> has no <name> (libvirt requires one)"
    );
    assert_eq!(
        err("<domain type='kvm'><name>a b</name></domain>"),
        "--domain vm.xml:1: <name>: \"a b\": a VM name may hold only letters, digits, '.', '_' \
         and '-', must not start with '.', and is at most 64 characters (it names the control \
         socket)"
    );
    assert_eq!(
        err("<domain type='kvm'><name>a</name><memory>131072</memory></domain>"),
        "--domain vm.xml: <domain> has no <os> (libvirt requires <os><type>hvm</type></os>)"
    );
    assert_eq!(
        err(&dom("<memory>131072</memory>").replace("x86_64", "aarch64")),
        "--domain vm.xml:4: <type arch='aarch64'>: rvmm runs x86_64 guests, not aarch64"
    );
}

#[test]
fn cpu_modes() {
    let cpu = |xml: &str| parse(&dom(&format!("<memory>131072</memory>{xml}"))).unwrap();
    let d = cpu("<cpu mode='host-passthrough'/>");
    assert_eq!(
        (d.config.cpu.model.as_str(), d.config.cpu.check),
        ("host", Check::Warn)
    );
    let d = cpu("<cpu mode='maximum'/>");
    assert_eq!(d.config.cpu.model, "max");
    let d = cpu("<cpu mode='custom' match='exact'><model>SandyBridge-v1</model></cpu>");
    assert_eq!(
        (d.config.cpu.model.as_str(), d.config.cpu.check),
        ("SandyBridge-v1", Check::Enforce)
    );
    // check='partial' (custom's default) refuses a model the host cannot give in full.
    assert_eq!(
        err(&dom(
            "<memory>131072</memory><cpu><model>Haswell-noTSX</model></cpu>"
        )),
        "--domain vm.xml:3: <model>: the host's KVM cannot give Haswell-noTSX: fma, pcid, movbe, \
         f16c, rdrand, invpcid (check='partial' refuses such hosts; check='none' runs the model \
         without them, as QEMU does by default)"
    );
    let d = cpu("<cpu check='full'><model>qemu64</model></cpu>");
    assert_eq!(d.config.cpu.check, Check::Enforce);
    // Only a topology: QEMU's default model, not compared with the host.
    let d = cpu("<vcpu>2</vcpu><cpu><topology sockets='1' cores='2' threads='1'/></cpu>");
    assert_eq!(d.config.cpu, CpuConfig::default());
    // host-model: SandyBridge-v1 runs on the test host without losing a feature; the host's
    // KVM gives x2apic, avx2 and more beyond it.
    let d = cpu("<cpu mode='host-model'><feature policy='disable' name='avx2'/></cpu>");
    assert_eq!(d.config.cpu.model, "SandyBridge-v1");
    assert_eq!(d.config.cpu.check, Check::Enforce);
    let on: Vec<&str> = d
        .config
        .cpu
        .changes
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(on.contains(&"bmi2") && on.contains(&"fsgsbase"), "{on:?}");
    assert!(!on.contains(&"avx2"), "{on:?}");
    assert_eq!(
        d.config.cpu.changes.last().unwrap(),
        &("avx2".to_string(), false)
    );
    assert_eq!(d.warnings.len(), 1);
    assert!(
        d.warnings[0].starts_with(
            "--domain vm.xml:3: domain/cpu: mode='host-model' is approximated as SandyBridge-v1 \
             plus the "
        ),
        "{}",
        d.warnings[0]
    );
    assert_eq!(
        err(&dom(
            "<memory>131072</memory><cpu><model>Haswel</model></cpu>"
        )),
        "--domain vm.xml:3: <model>: unknown CPU model 'Haswel' (`rvmm cpu-models` lists the \
         models)"
    );
    assert_eq!(
        err(&dom(
            "<memory>131072</memory><cpu><model>Haswell</model><vendor>AMD</vendor></cpu>"
        )),
        "--domain vm.xml:3: <vendor>: the host CPU is GenuineIntel, not AMD (AuthenticAMD)"
    );
    assert_eq!(
        err(&dom(
            "<memory>131072</memory><cpu><feature name='aes'/></cpu>"
        )),
        "--domain vm.xml:3: <feature name='aes'>: a feature needs a CPU <model> (libvirt refuses \
         features without one)"
    );
}

#[test]
fn feature_policies_against_the_host() {
    let feats = |f: &str| {
        parse(&dom(&format!(
            "<memory>131072</memory><cpu check='none'><model>Haswell</model>{f}</cpu>"
        )))
    };
    // libvirt spellings become QEMU's by CPUID bit; QEMU spellings are accepted too.
    let d = feats(
        "<feature name='pclmuldq'/><feature policy='disable' name='tsc_adjust'/>\
         <feature policy='force' name='aes'/><feature policy='disable' name='tsc-deadline'/>\
         <feature policy='optional' name='fma'/><feature policy='disable' name='lahf_lm'/>\
         <feature policy='optional' name='x2apic'/>",
    )
    .unwrap();
    let changes: Vec<(&str, bool)> = d
        .config
        .cpu
        .changes
        .iter()
        .map(|(n, on)| (n.as_str(), *on))
        .collect();
    // Enables first, then disables (the order --cpu applies them in). The test host's KVM
    // lacks FMA: optional drops it silently; it has x2apic.
    assert_eq!(
        changes,
        [
            ("pclmulqdq", true),
            ("aes", true),
            ("x2apic", true),
            ("tsc-adjust", false),
            ("tsc-deadline", false),
            ("lahf-lm", false)
        ]
    );
    assert_eq!(d.warnings, Vec::<String>::new());
    let d = feats("<feature policy='force' name='fma'/>").unwrap();
    assert_eq!(d.config.cpu.changes, []);
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/cpu/feature: the host's KVM cannot give fma; rvmm does not \
          fake CPUID bits, so the guest will not see it"
        ]
    );
    let e = |f: &str| feats(f).unwrap_err().to_string();
    assert_eq!(
        e("<feature policy='require' name='fma'/>"),
        "--domain vm.xml:3: <feature policy='require' name='fma'>: the host's KVM cannot give \
         fma to a guest (policy='optional' drops it on such hosts)"
    );
    assert_eq!(
        e("<feature policy='forbid' name='pclmuldq'/>"),
        "--domain vm.xml:3: <feature policy='forbid' name='pclmuldq'>: the host CPU has \
         pclmuldq (QEMU's pclmulqdq) (policy='forbid' refuses such hosts)"
    );
    assert_eq!(
        e("<feature policy='require' name='warp-drive'/>"),
        "--domain vm.xml:3: <feature name='warp-drive'>: unknown CPU feature 'warp-drive' \
         (neither in libvirt's CPU map nor a QEMU 7.2 feature name)"
    );
    assert_eq!(
        e("<feature policy='require' name='osxsave'/>"),
        "--domain vm.xml:3: <feature policy='require' name='osxsave'>: libvirt's feature \
         'osxsave' has no QEMU 7.2 name, so rvmm cannot ask KVM for it"
    );
    assert_eq!(
        e("<feature policy='maybe' name='aes'/>"),
        "--domain vm.xml:3: <feature policy='maybe'>: unknown value 'maybe' (expected force, \
         require, optional, disable, forbid)"
    );
    assert_eq!(
        e("<feature name='aes'/><feature policy='disable' name='aes'/>"),
        "--domain vm.xml:3: <feature policy='disable' name='aes'>: feature 'aes' is listed twice"
    );
    let d = feats("<feature policy='disable' name='osxsave'/>").unwrap();
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/cpu/feature: ignored (libvirt's feature 'osxsave' has no \
          QEMU 7.2 name, so rvmm cannot ask KVM for it)"
        ]
    );
}

#[test]
fn without_a_host_or_map() {
    let xml = dom(
        "<memory>131072</memory><cpu><model>Haswell</model><vendor>Intel</vendor>\
         <feature name='fma'/></cpu>",
    );
    let d = parse_domain(&xml, "vm.xml", &DomainEnv::default()).unwrap();
    assert_eq!(d.config.cpu.changes, [("fma".to_string(), true)]);
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/cpu/feature: feature policies were not checked against \
             the host (no KVM host information)",
            "--domain vm.xml:3: domain/cpu/vendor: not checked against the host (no KVM host \
             information)"
        ]
    );
    assert_eq!(
        parse_domain(
            &dom(
                "<memory>131072</memory><cpu><model>Haswell</model><feature name='osxsave'/></cpu>"
            ),
            "vm.xml",
            &DomainEnv::default()
        )
        .unwrap_err()
        .to_string(),
        "--domain vm.xml:3: <feature name='osxsave'>: unknown CPU feature 'osxsave' (not a \
         QEMU 7.2 feature name; libvirt's CPU map is not installed, so libvirt's spellings are \
         unknown)"
    );
    assert_eq!(
        parse_domain(
            &dom("<memory>131072</memory><cpu mode='host-model'/>"),
            "vm.xml",
            &DomainEnv::default()
        )
        .unwrap_err()
        .to_string(),
        "--domain vm.xml:3: <cpu mode='host-model'>: needs the host's KVM CPU support, which is \
         not available (no /dev/kvm?)"
    );
}

#[test]
fn vcpus_must_be_listed_and_enabled_in_order() {
    let v = |list: &str| {
        err(&dom(&format!(
            "<memory>131072</memory><vcpu current='2'>3</vcpu><vcpus>{list}</vcpus>"
        )))
    };
    assert_eq!(
        v("<vcpu id='0' enabled='yes'/><vcpu id='1' enabled='no'/><vcpu id='2' enabled='yes'/>"),
        "--domain vm.xml:3: <vcpu id='2' enabled='yes'>: vCPU 2 is enabled but vCPU 1 is not \
         (rvmm brings up vCPUs 0 to N-1 at boot; enable the first N)"
    );
    assert_eq!(
        v("<vcpu id='0' enabled='yes'/><vcpu id='1' enabled='yes'/>"),
        "--domain vm.xml:3: <vcpus>: vCPU 2 is not listed (libvirt needs every vCPU up to the \
         <vcpu> count)"
    );
    assert_eq!(
        v("<vcpu id='0' enabled='yes'/><vcpu id='1' enabled='no'/><vcpu id='2' enabled='no'/>"),
        "--domain vm.xml:3: <vcpu current='2'>: <vcpus> enables 1 vCPUs, not 2"
    );
    assert_eq!(
        v("<vcpu id='0' enabled='yes'/><vcpu id='3' enabled='no'/>"),
        "--domain vm.xml:3: <vcpu id='3'>: vCPU 3 does not exist (<vcpu> gives vCPUs 0-2)"
    );
}
