//! Memory, NUMA, pinning and platform elements.

use super::{dom, err, parse};
use crate::config::cputune::Bandwidth;
use crate::config::libvirt::strip_option;
use crate::config::memory::MemoryBacking;
use crate::config::numa::HostPolicy;
use crate::config::pinning::VcpuPin;
use crate::config::BootSource;

/// Two cells of 64 MiB on vCPUs 0-1 and 2-3.
fn two_cells(cell_attrs: [&str; 2], extra: &str) -> String {
    dom(&format!(
        "<memory unit='MiB'>128</memory><vcpu>4</vcpu>{extra}<cpu><numa>\
         <cell id='0' cpus='0-1' memory='64' unit='MiB' {}/>\
         <cell id='1' cpus='2-3' memory='65536' {}/></numa></cpu>",
        cell_attrs[0], cell_attrs[1]
    ))
}

#[test]
fn numa_cells_and_numatune() {
    let d = parse(&two_cells(
        ["", ""],
        "<numatune><memnode cellid='1' mode='interleave' nodeset='0-1,3'/>\
         <memory nodeset='2'/></numatune>",
    ))
    .unwrap();
    let host: Vec<(Vec<u32>, Option<HostPolicy>)> = d
        .config
        .numa
        .nodes
        .iter()
        .map(|n| (n.host_nodes.clone(), n.policy))
        .collect();
    assert_eq!(
        host,
        [
            (vec![2], Some(HostPolicy::Bind)),
            (vec![0, 1, 3], Some(HostPolicy::Interleave))
        ]
    );
    assert_eq!(d.config.numa.distances, []);
    // The cells' total is the guest's memory, as in libvirt.
    let d = parse(
        &two_cells(["", ""], "").replace("<memory unit='MiB'>128", "<memory unit='MiB'>4096"),
    )
    .unwrap();
    assert_eq!(d.config.memory, 128 << 20);
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/memory: 4G differs from the NUMA cells' total 128M; the \
          cells' total is used, as libvirt does"
        ]
    );
    let d = parse(&two_cells(
        ["discard='yes'", ""],
        "<numatune><memnode cellid='0' mode='restrictive' nodeset='0'/></numatune>",
    ))
    .unwrap();
    assert_eq!(d.config.numa.nodes[0].policy, Some(HostPolicy::Bind));
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/cpu/numa/cell/@discard: ignored (rvmm does not support \
             this attribute)",
            "--domain vm.xml:3: domain/numatune/memnode: mode='restrictive' (cgroup cpuset.mems \
             only) is applied as 'strict' (mbind)"
        ]
    );
    let e =
        |attrs: [&str; 2], extra: &str| parse(&two_cells(attrs, extra)).unwrap_err().to_string();
    assert_eq!(
        e(
            ["", ""],
            "<numatune><memnode cellid='2' nodeset='0'/></numatune>"
        ),
        "--domain vm.xml:3: <memnode cellid='2'>: cell 2 does not exist (<numa> has cells 0-1)"
    );
    assert_eq!(
        e(["memAccess='shared'", ""], ""),
        "--domain vm.xml:3: <cell memAccess='shared'>: rvmm maps all guest memory shared or all \
         private, but cell 1 differs from cell 0"
    );
    let bad = |cells: &str| {
        err(&dom(&format!(
            "<memory>131072</memory><vcpu>4</vcpu><cpu><numa>{cells}</numa></cpu>"
        )))
    };
    assert_eq!(
        bad("<cell id='0' cpus='0-4' memory='131072'/>"),
        "--domain vm.xml:3: <cell cpus='0-4'>: vCPU 4 does not exist (<vcpu> gives vCPUs 0-3)"
    );
    assert_eq!(
        bad("<cell id='0' cpus='0-2' memory='65536'/><cell id='1' cpus='2-3' memory='65536'/>"),
        "--domain vm.xml:3: <cell cpus='2-3'>: vCPU 2 is already in cell 0"
    );
    assert_eq!(
        bad("<cell id='0' cpus='0-3' memory='65536'/><cell id='2' memory='65536'/>"),
        "--domain vm.xml:3: <cell id='2'>: cell 2 is out of range (the 2 cells must have IDs 0-1)"
    );
    assert_eq!(
        bad("<cell id='0' cpus='0-3' memory='64' unit='XiB'/>"),
        "--domain vm.xml:3: <cell unit='XiB'>: unknown unit 'XiB' (expected b, bytes, KB, k, \
         KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB)"
    );
    assert_eq!(
        bad("<cell id='0' cpus='0-3' memory='131072'><distances><sibling id='0' value='20'/>\
             </distances></cell>"),
        "--domain vm.xml:3: <sibling id='0' value='20'>: the distance of a cell to itself must be 10"
    );
    assert_eq!(
        bad("<cell id='0' cpus='0-1' memory='65536'><distances><sibling id='1' value='256'/>\
             </distances></cell><cell id='1' cpus='2-3' memory='65536'/>"),
        "--domain vm.xml:3: <sibling value='256'>: 256 is out of range (a NUMA distance is 10 to 255)"
    );
    // A third cell with no distance to the others: QEMU's rule, worded for the domain.
    assert_eq!(
        err(&dom("<memory>196608</memory><vcpu>3</vcpu><cpu><numa>\
             <cell id='0' cpus='0' memory='65536'><distances><sibling id='1' value='20'/></distances></cell>\
             <cell id='1' cpus='1' memory='65536'/><cell id='2' cpus='2' memory='65536'/></numa></cpu>")),
        "--domain vm.xml:3: <numa>: the distance between node 0 and 2 is missing; give at least \
         one distance value between each pair of nodes"
    );
}

#[test]
fn memory_backing() {
    let b = |mb: &str| {
        parse(&two_cells(
            ["", ""],
            &format!("<memoryBacking>{mb}</memoryBacking>"),
        ))
    };
    let backing = |mb: &str| b(mb).unwrap().config.memory_backing;
    assert_eq!(
        backing("<hugepages/><allocation mode='immediate'/>"),
        MemoryBacking {
            hugepages: true,
            prealloc: true,
            ..MemoryBacking::default()
        }
    );
    assert_eq!(
        backing(
            "<hugepages><page size='4' unit='KiB'/></hugepages><access mode='shared'/>\
                 <nosharepages/>"
        ),
        MemoryBacking {
            shared: true,
            merge: Some(false),
            ..MemoryBacking::default()
        }
    );
    let d = b("<locked/><source type='memfd'/><discard/>").unwrap();
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/memoryBacking/locked: ignored (rvmm does not lock guest \
             memory into host RAM)",
            "--domain vm.xml:3: domain/memoryBacking/source: backed as anonymous memory: rvmm has \
             no memfd backend (the guest sees no difference)",
            "--domain vm.xml:3: domain/memoryBacking/discard: ignored (rvmm does not discard guest \
             memory on shutdown)"
        ]
    );
    let e = |mb: &str| b(mb).unwrap_err().to_string();
    assert_eq!(
        e("<hugepages><page size='1' unit='G'/></hugepages>"),
        "--domain vm.xml:3: <hugepages>: the guest memory (128M) is not a multiple of the 1G huge \
         page size"
    );
    assert_eq!(
        e("<hugepages><page size='4096' unit='KiB'/></hugepages>"),
        "--domain vm.xml:3: <page size='4096' unit='KiB'>: 4M is not a page size of x86-64 (4K, \
         2M or 1G)"
    );
    assert_eq!(
        e("<hugepages><page size='2048' nodeset='0'/></hugepages>"),
        "--domain vm.xml:3: <hugepages>: rvmm backs all guest memory with one page size, but \
         guest node 0 gets 2M pages and node 1 regular pages"
    );
    assert_eq!(
        e("<hugepages><page size='2048' nodeset='2'/></hugepages>"),
        "--domain vm.xml:3: <page nodeset='2'>: guest node 2 does not exist (<numa> has cells 0-1)"
    );
    // A per-node page that covers every node is one page size.
    assert_eq!(
        backing("<hugepages><page size='2' unit='M' nodeset='1'/><page size='2048'/></hugepages>"),
        MemoryBacking {
            hugepages: true,
            hugepage_size: Some(2 << 20),
            ..MemoryBacking::default()
        }
    );
}

#[test]
fn cputune_and_pinning() {
    let d = parse(&dom(
        "<memory>131072</memory><vcpu cpuset='0-3,^1'>3</vcpu><cputune>\
         <vcpupin vcpu='2' cpuset='5'/><vcpupin vcpu='0' cpuset='4-5'/>\
         <emulatorpin cpuset='6'/><shares>2048</shares><period>100000</period></cputune>",
    ))
    .unwrap();
    assert_eq!(
        d.config.pinning.vcpus,
        [
            VcpuPin {
                vcpu: 0,
                cpus: vec![4, 5]
            },
            VcpuPin {
                vcpu: 2,
                cpus: vec![5]
            }
        ]
    );
    assert_eq!(d.config.pinning.cpuset, Some(vec![0, 2, 3]));
    assert_eq!(d.config.pinning.emulator, Some(vec![6]));
    assert_eq!(d.config.cputune.shares, Some(2048));
    assert_eq!(d.config.cputune.vcpu.period_us, Some(100_000));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert_eq!(
        err(&dom(
            "<memory>131072</memory><vcpu>2</vcpu><cputune><vcpupin vcpu='1' cpuset='0'/>\
                  <vcpupin vcpu='1' cpuset='1'/></cputune>"
        )),
        "--domain vm.xml:3: <vcpupin vcpu='1'>: vCPU 1 is pinned twice"
    );
}

#[test]
fn os_devices_and_other_elements() {
    let d = parse(
        "<domain type='kvm'>\n<name>k</name>\n<uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>\
         <memory>131072</memory>\n<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\
         <kernel>/boot/vmlinuz</kernel><initrd>/boot/initrd.img</initrd>\
         <cmdline>console=ttyS0</cmdline><loader>/x/OVMF.fd</loader></os>\n\
         <features><acpi/><apic/><hyperv/></features>\n<clock offset='utc'/>\n\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\n\
         <disk type='file' device='disk'><source file='/d.img'/></disk>\n\
         <interface type='network'/>\n\
         <serial type='pty'/><console type='pty'/><serial type='file'/>\n\
         <graphics type='vnc'/></devices>\n</domain>",
    )
    .unwrap();
    assert_eq!(
        d.config.boot,
        BootSource::Kernel {
            kernel: "/boot/vmlinuz".into(),
            initrd: Some("/boot/initrd.img".into()),
            cmdline: "console=ttyS0".into()
        }
    );
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:6: domain/clock: ignored (rvmm gives the guest QEMU's default clock \
             and timers)",
            "--domain vm.xml:5: domain/features/hyperv: ignored (not supported)",
            "--domain vm.xml:4: domain/os/type: machine 'pc-q35-7.2': rvmm's machine resembles \
             QEMU's pc (i440FX), not q35",
            "--domain vm.xml:4: domain/os/loader: ignored (rvmm boots a kernel or its probe guest, \
             without firmware)",
            "--domain vm.xml:9: domain/devices/interface: ignored (type='network': rvmm attaches \
             virtio NICs to taps, <interface type='ethernet'>)",
            "--domain vm.xml:10: domain/devices/serial: ignored (rvmm has one serial port (COM1, \
             on stdio))",
            "--domain vm.xml:11: domain/devices/graphics: ignored (rvmm does not emulate this \
             device)"
        ]
    );
    assert_eq!(
        err(&dom(
            "<memory>131072</memory><devices><memory model='dimm'/></devices>"
        )),
        "--domain vm.xml:3: <memory>: memory devices are not supported; the guest would have \
         less memory than libvirt gives it"
    );
}

#[test]
fn option_prefixes_are_stripped() {
    assert_eq!(
        strip_option("--numa: node ID missing: 1", "--numa"),
        "node ID missing: 1"
    );
    assert_eq!(
        strip_option("--numa node,nodeid=0,mem=1G: vCPU 1 is bad", "--numa"),
        "vCPU 1 is bad"
    );
    assert_eq!(strip_option("other: x", "--numa"), "other: x");
}

#[test]
fn approximations_are_warned_about() {
    let d = parse(
        "<domain type='qemu'><name>w</name><memory>131072</memory>\
         <vcpu placement='auto' cpuset='1'>2</vcpu>\
         <numatune><memory mode='interleave' nodeset='0-1'/></numatune>\
         <cpu mode='host-passthrough' migratable='off' match='minimum'/>\
         <os><type>hvm</type></os><features><acpi/><pmu state='on'/></features>\
         <devices><memballoon model='virtio'/><serial type='tcp'/></devices></domain>",
    )
    .unwrap();
    assert_eq!(d.config.pinning.cpuset, None);
    assert!(d.config.numa.is_empty());
    assert_eq!(d.config.cpu.model, "host");
    assert_eq!(d.config.cpu.pmu, Some(true));
    let w = "--domain vm.xml:1: domain";
    assert_eq!(
        d.warnings,
        [
            format!("{w}: type='qemu' asks for TCG emulation; rvmm always runs the guest on KVM"),
            format!(
                "{w}/vcpu: placement='auto' needs numad, which rvmm does not use; the vCPUs are \
                 not pinned"
            ),
            format!("{w}/cpu: match='minimum' is treated as 'exact'"),
            format!(
                "{w}/cpu: migratable='off' is treated as 'on': rvmm's host model is QEMU's -cpu \
                 host with its default migratable=on (invtsc is left out)"
            ),
            format!(
                "{w}/numatune/memory: ignored (rvmm binds memory per guest NUMA node; without \
                 <numa> cells it is not bound)"
            ),
            format!("{w}/devices/serial: the console is rvmm's stdio whatever its type"),
        ]
    );
}

#[test]
fn cputune_bandwidth_and_shares() {
    let d = parse(&dom("<memory>131072</memory><vcpu>2</vcpu><cputune>\
         <shares>512</shares><period>50000</period><quota>12500</quota>\
         <global_period>100000</global_period><global_quota>-1</global_quota>\
         <emulator_period>20000</emulator_period><emulator_quota>5000</emulator_quota>\
         <iothread_period>1000</iothread_period><iothread_quota>2000</iothread_quota>\
         <vcpusched vcpus='0' scheduler='fifo' priority='1'/></cputune>"))
    .unwrap();
    let t = &d.config.cputune;
    assert_eq!(t.shares, Some(512));
    let bw = |p, q| Bandwidth {
        period_us: Some(p),
        quota_us: Some(q),
    };
    // libvirt: <period>/<quota> are each vCPU's, global_* the VM's, emulator_* the rest.
    assert_eq!(t.vcpu, bw(50_000, 12_500));
    assert_eq!(t.global, bw(100_000, -1));
    assert_eq!(t.emulator, bw(20_000, 5_000));
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/cputune/iothread_period: ignored (rvmm has no I/O \
             threads; their work runs in the emulator group (<emulator_period>/<emulator_quota>))",
            "--domain vm.xml:3: domain/cputune/iothread_quota: ignored (rvmm has no I/O \
             threads; their work runs in the emulator group (<emulator_period>/<emulator_quota>))",
            "--domain vm.xml:3: domain/cputune/vcpusched: ignored (rvmm does not set scheduling \
             policies)",
        ]
    );
    let bad = |tune: &str| {
        err(&dom(&format!(
            "<memory>131072</memory><vcpu>2</vcpu><cputune>{tune}</cputune>"
        )))
    };
    assert_eq!(
        bad("<quota>0</quota>"),
        "--domain vm.xml:3: <quota>: 0 is not a valid quota (a CFS quota is -1 (no limit) or \
         1000 to 17592186044415 microseconds; 0 and other negative values are refused)"
    );
    assert!(bad("<global_quota>-7</global_quota>")
        .starts_with("--domain vm.xml:3: <global_quota>: -7 is not a valid quota"));
    assert!(bad("<emulator_quota>999</emulator_quota>")
        .starts_with("--domain vm.xml:3: <emulator_quota>: 999 is not a valid quota"));
    assert_eq!(
        bad("<period>999</period>"),
        "--domain vm.xml:3: <period>: 999 is out of range (a CFS period is 1000 to 1000000 \
         microseconds (the kernel's cpu.cfs_period_us range))"
    );
    assert!(bad("<global_period>1000001</global_period>")
        .starts_with("--domain vm.xml:3: <global_period>: 1000001 is out of range"));
    assert!(bad("<emulator_period>x</emulator_period>")
        .starts_with("--domain vm.xml:3: <emulator_period>: 'x' is not a number"));
    assert_eq!(
        bad("<shares>1</shares>"),
        "--domain vm.xml:3: <shares>: 1 is out of range (CPU shares are 2 to 262144 (cgroup v1 \
         cpu.shares, libvirt's <shares>))"
    );
    assert!(bad("<shares>262145</shares>").contains("<shares>: 262145 is out of range"));
    assert_eq!(
        bad("<quota>2000</quota><quota>3000</quota>"),
        "--domain vm.xml:3: <quota>: appears more than once (libvirt allows one)"
    );
    assert!(bad("<shares>2</shares><shares>3</shares>").contains("appears more than once"));
}

#[test]
fn memtune_hard_limit() {
    let tuned = |tune: &str| {
        parse(&dom(&format!(
            "<memory unit='MiB'>128</memory><vcpu>1</vcpu><memtune>{tune}</memtune>"
        )))
    };
    // libvirt's default unit is KiB.
    let d = tuned("<hard_limit>262144</hard_limit>").unwrap();
    assert_eq!(d.config.memtune.hard_limit, Some(256 << 20));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let d = tuned("<hard_limit unit='GiB'>1</hard_limit>").unwrap();
    assert_eq!(d.config.memtune.hard_limit, Some(1 << 30));
    // Exactly guest RAM plus the overhead.
    let d = tuned("<hard_limit unit='MiB'>192</hard_limit>").unwrap();
    assert_eq!(d.config.memtune.hard_limit, Some(192 << 20));
    // libvirt's "unlimited" (virsh memtune --hard-limit -1).
    let d = tuned("<hard_limit unit='KiB'>9007199254740991</hard_limit>").unwrap();
    assert_eq!(d.config.memtune.hard_limit, None);
    let d = tuned(
        "<hard_limit unit='GiB'>2</hard_limit><soft_limit unit='GiB'>1</soft_limit>\
         <swap_hard_limit unit='GiB'>3</swap_hard_limit><min_guarantee>65536</min_guarantee>",
    )
    .unwrap();
    assert_eq!(d.config.memtune.hard_limit, Some(2 << 30));
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/memtune/soft_limit: ignored (rvmm sets no soft limit (v1 \
             memory.soft_limit_in_bytes, v2 memory.high))",
            "--domain vm.xml:3: domain/memtune/swap_hard_limit: ignored (rvmm sets no swap \
             limit (v1 memory.memsw.limit_in_bytes, v2 memory.swap.max))",
            "--domain vm.xml:3: domain/memtune/min_guarantee: ignored (rvmm reserves no memory \
             (min_guarantee is for VMware/ESX hosts in libvirt))",
        ]
    );
    assert_eq!(
        tuned("<hard_limit unit='MiB'>100</hard_limit>")
            .unwrap_err()
            .to_string(),
        "--domain vm.xml:3: <hard_limit unit='MiB'>: 100M (104857600 bytes) is below the guest \
         RAM of 128M (134217728 bytes): the limit must be at least guest RAM plus the VMM's 64M \
         overhead, 192M (201326592 bytes)"
    );
    assert_eq!(
        tuned("<hard_limit>196604</hard_limit>")
            .unwrap_err()
            .to_string(),
        "--domain vm.xml:3: <hard_limit>: 196604K (201322496 bytes) leaves less than the VMM's \
         64M overhead (MEMORY_OVERHEAD) above the guest RAM of 128M (134217728 bytes): the limit \
         must be at least 192M (201326592 bytes)"
    );
    assert!(tuned("<hard_limit unit='XB'>1</hard_limit>")
        .unwrap_err()
        .to_string()
        .contains("<hard_limit unit='XB'>: unknown unit 'XB'"));
    assert!(tuned("<hard_limit>-1</hard_limit>")
        .unwrap_err()
        .to_string()
        .contains("<hard_limit>: '-1' is not a number"));
    assert!(
        tuned("<hard_limit>300000</hard_limit><hard_limit>300000</hard_limit>")
            .unwrap_err()
            .to_string()
            .contains("appears more than once")
    );
    assert!(parse(&dom(
        "<memory>131072</memory><vcpu>1</vcpu><memtune/><memtune/>"
    ))
    .unwrap_err()
    .to_string()
    .contains("<memtune>: appears more than once"));
}

#[test]
fn ethernet_interfaces_are_virtio_nics_on_taps() {
    use crate::config::net::Mac;
    let d = parse(&dom("<memory>131072</memory><devices>\n\
         <interface type='ethernet'><target dev='vnet7'/><mac address='52:54:00:aa:bb:cc'/>\
         <model type='virtio'/></interface>\n\
         <interface type='ethernet'><model type='virtio'/></interface>\n\
         <interface type='ethernet'><target dev='vnet8'/><model type='e1000'/></interface>\n\
         <interface type='bridge'><source bridge='br0'/></interface>\n\
         <interface type='ethernet'><target dev='vnet9'/></interface>\n\
         </devices>"))
    .unwrap();
    let nets = &d.config.nets;
    assert_eq!(nets.len(), 3);
    assert_eq!(nets[0].tap.as_deref(), Some("vnet7"));
    assert_eq!(nets[0].mac, Mac([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]));
    assert_eq!(nets[1].tap, None, "no target: rvmm creates the tap");
    assert_eq!(nets[1].mac.to_string(), "52:54:00:12:34:57");
    assert_eq!(nets[2].tap.as_deref(), Some("vnet9"));
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:6: domain/devices/interface: ignored (model 'e1000': rvmm emulates \
             virtio NICs only (model type='virtio'))",
            "--domain vm.xml:7: domain/devices/interface: ignored (type='bridge': rvmm attaches \
             virtio NICs to taps, <interface type='ethernet'>)",
            "--domain vm.xml:8: domain/devices/interface: no <model>: rvmm's NIC is virtio \
             (model type='virtio')",
        ]
    );
    assert_eq!(
        err(&dom(
            "<memory>131072</memory><devices><interface type='ethernet'>\
             <mac address='01:00:5e:00:00:01'/></interface></devices>"
        )),
        "--domain vm.xml:3: <mac address='01:00:5e:00:00:01'>: a multicast address (the first \
         byte is odd); a NIC needs a unicast one"
    );
    assert_eq!(
        err(&dom(
            "<memory>131072</memory><devices><interface type='ethernet'><target dev='a/b'/>\
             <model type='virtio'/></interface></devices>"
        )),
        "--domain vm.xml:3: <interface>: tap=a/b: an interface name is at most 15 bytes, \
         without '/', ':', spaces or commas"
    );
}

#[test]
fn memballoon_and_current_memory() {
    use crate::config::balloon::BalloonConfig;
    // No <memballoon>: libvirt's default virtio balloon; <currentMemory> is its first target.
    let d = parse(&dom(
        "<memory unit='MiB'>256</memory><currentMemory unit='MiB'>192</currentMemory>",
    ))
    .unwrap();
    assert_eq!(
        d.config.balloon,
        Some(BalloonConfig {
            initial_memory: Some(192 << 20),
            ..Default::default()
        })
    );
    assert_eq!(d.warnings, Vec::<String>::new());
    let d = parse(&dom(
        "<memory unit='MiB'>256</memory><devices><memballoon model='virtio' autodeflate='on' \
         freePageReporting='on'><stats period='10'/><address type='pci'/></memballoon></devices>",
    ))
    .unwrap();
    assert_eq!(
        d.config.balloon,
        Some(BalloonConfig {
            deflate_on_oom: true,
            free_page_reporting: true,
            initial_memory: None,
        })
    );
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/devices/memballoon/stats: ignored (rvmm's balloon has no \
          statistics queue)"
        ]
    );
    // model='none': no balloon, and <currentMemory> cannot be honoured.
    let d = parse(&dom(
        "<memory unit='MiB'>256</memory><currentMemory unit='MiB'>192</currentMemory>\
         <devices><memballoon model='none'/></devices>",
    ))
    .unwrap();
    assert_eq!(d.config.balloon, None);
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:3: domain/currentMemory: the guest gets all 256M of <memory>: with \
          <memballoon model='none'/> there is no balloon to hold 64M back"
        ]
    );
    assert!(err(&dom(
        "<memory unit='MiB'>256</memory><devices><memballoon model='virtio' \
             autodeflate='yes'/></devices>"
    ))
    .contains("autodeflate"),);
    assert!(err(&dom(
        "<memory unit='MiB'>256</memory><devices><memballoon model='xen'/></devices>"
    ))
    .contains("'xen' needs a Xen host"));
}
