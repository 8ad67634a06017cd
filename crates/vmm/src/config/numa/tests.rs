//! `--numa` parsing and QEMU's rules, with the error texts QEMU 7.2 prints for the same
//! input (observed with qemu-system-x86_64 7.2 `-M pc`, memdev= in place of mem=).

use super::*;

fn smp(cpus: u32) -> SmpConfig {
    SmpConfig::parse(&cpus.to_string()).unwrap()
}

fn resolve(options: &[&str], smp: &SmpConfig, memory: u64) -> Result<GuestNuma, NumaError> {
    NumaConfig::parse(options)?.resolve(smp, memory)
}

fn err(options: &[&str], cpus: u32, memory: u64) -> String {
    resolve(options, &smp(cpus), memory)
        .unwrap_err()
        .to_string()
}

const G: u64 = 1 << 30;
const TWO_NODES: [&str; 3] = [
    "node,nodeid=0,cpus=0-1,mem=1G",
    "node,nodeid=1,cpus=2-3,mem=1G",
    "dist,src=0,dst=1,val=21",
];

#[test]
fn two_nodes_with_a_distance() {
    let numa = resolve(&TWO_NODES, &smp(4), 2 * G).unwrap();
    assert_eq!(
        numa.nodes,
        vec![
            GuestNode {
                id: 0,
                mem: G,
                cpus: vec![0, 1],
                host: None
            },
            GuestNode {
                id: 1,
                mem: G,
                cpus: vec![2, 3],
                host: None
            },
        ]
    );
    assert_eq!(numa.cpu_nodes, vec![0, 0, 1, 1]);
    // The reverse distance is filled in; local distances are 10.
    assert_eq!(numa.distances, vec![vec![10, 21], vec![21, 10]]);
    assert_eq!(numa.flat_distances(), vec![10, 21, 21, 10]);
    assert_eq!(numa.node_sizes(), vec![(0, G), (1, G)]);
    assert_eq!(numa.node_offsets(), vec![(0, 0, G), (1, G, G)]);
    assert!(numa.warnings.is_empty());
}

#[test]
fn no_numa_and_no_slit_without_dist() {
    let numa = resolve(&[], &smp(2), G).unwrap();
    assert_eq!(numa, GuestNuma::default());
    let numa = resolve(&TWO_NODES[..2], &smp(4), 2 * G).unwrap();
    assert!(numa.distances.is_empty());
    assert!(numa.flat_distances().is_empty());
}

#[test]
fn nodeid_defaults_to_the_count_and_mem_is_mib() {
    let numa = resolve(&["node,mem=512", "type=node,mem=512,cpus=0"], &smp(2), G).unwrap();
    assert_eq!(numa.nodes[0].mem, 512 << 20);
    assert_eq!(numa.nodes[1].id, 1);
    // cpus= given for vCPU 0 only: vCPU 1 goes to node 0 with QEMU's warning.
    assert_eq!(numa.cpu_nodes, vec![1, 0]);
    assert_eq!(
        numa.warnings,
        vec![
            "--numa: vCPU(s) 1 are in no NUMA node and go to node 0; list every vCPU up to \
             maxcpus in some node's cpus= (QEMU warns the same: partial NUMA mappings are \
             obsolete)"
        ]
    );
    // Nodes may be given in any ID order; memory follows node IDs.
    let numa = resolve(
        &[
            "node,nodeid=1,mem=256M,cpus=1",
            "node,nodeid=0,mem=768M,cpus=0",
        ],
        &smp(2),
        G,
    )
    .unwrap();
    assert_eq!(
        numa.node_offsets(),
        vec![(0, 0, 768 << 20), (1, 768 << 20, 256 << 20)]
    );
}

#[test]
fn repeated_cpus_add_up_and_a_memoryless_node_is_fine() {
    let numa = resolve(
        &[
            "node,nodeid=0,cpus=0,cpus=2,mem=1G",
            "node,nodeid=1,cpus=1,cpus=3",
        ],
        &smp(4),
        G,
    )
    .unwrap();
    assert_eq!(numa.nodes[0].cpus, vec![0, 2]);
    assert_eq!(numa.nodes[1].cpus, vec![1, 3]);
    assert_eq!(numa.nodes[1].mem, 0);
    // The same vCPU listed twice in one node is not a conflict (QEMU accepts it too).
    assert!(resolve(&["node,cpus=0-1,cpus=1,mem=1G"], &smp(2), G).is_ok());
}

#[test]
fn default_placement_is_by_socket() {
    // QEMU's x86 default: package ID modulo the node count; 2 sockets x 2 cores.
    let smp = SmpConfig::parse("4,sockets=2,cores=2").unwrap();
    let numa = resolve(&["node,mem=1G", "node,mem=1G"], &smp, 2 * G).unwrap();
    assert_eq!(numa.cpu_nodes, vec![0, 0, 1, 1]);
    let smp = SmpConfig::parse("4,sockets=4").unwrap();
    let numa = resolve(&["node,mem=1G", "node,mem=1G"], &smp, 2 * G).unwrap();
    assert_eq!(numa.cpu_nodes, vec![0, 1, 0, 1]);
    // Slots above the boot vCPU count (hotplug) get a node too.
    let smp = SmpConfig::parse("2,maxcpus=4,sockets=4").unwrap();
    let numa = resolve(&["node,mem=1G", "node,mem=1G"], &smp, 2 * G).unwrap();
    assert_eq!(numa.cpu_nodes, vec![0, 1, 0, 1]);
    assert!(numa.warnings.is_empty());
}

#[test]
fn host_binding() {
    let numa = resolve(
        &[
            "node,cpus=0,mem=512M,host-nodes=0",
            "node,cpus=1,mem=256M,host-nodes=1,host-nodes=0,policy=interleave",
            "node,cpus=2,mem=256M,host-nodes=2-3,policy=preferred",
        ],
        &smp(3),
        G,
    )
    .unwrap();
    let hosts: Vec<_> = numa.nodes.iter().map(|n| n.host.clone()).collect();
    assert_eq!(
        hosts,
        vec![
            Some(HostBinding {
                nodes: vec![0],
                policy: HostPolicy::Bind
            }),
            Some(HostBinding {
                nodes: vec![0, 1],
                policy: HostPolicy::Interleave
            }),
            Some(HostBinding {
                nodes: vec![2, 3],
                policy: HostPolicy::Preferred
            }),
        ]
    );
}

#[test]
fn parse_errors() {
    let e = |text: &str| NumaConfig::parse(&[text]).unwrap_err().to_string();
    assert_eq!(
        e("nod,mem=1G"),
        "--numa nod,mem=1G: unknown type 'nod' (expected node or dist)"
    );
    assert_eq!(e(""), "--numa : unknown type '' (expected node or dist)");
    assert_eq!(
        e("node,size=1G"),
        "--numa node,size=1G: unknown key 'size' for node (expected nodeid, cpus, mem, \
         host-nodes, policy)"
    );
    assert_eq!(
        e("dist,src=0,dst=1,val=20,x=1"),
        "--numa dist,src=0,dst=1,val=20,x=1: unknown key 'x' for dist (expected src, dst, val)"
    );
    assert_eq!(e("node,0"), "--numa node,0: '0' is not key=value");
    assert_eq!(
        e("node,nodeid=x"),
        "--numa node,nodeid=x: nodeid='x' is not a number"
    );
    assert_eq!(e("node,cpus=3-1"), "--numa node,cpus=3-1: cpus='3-1': CPU list \"3-1\": bad token \"3-1\": range start 3 is above its end 1");
    assert_eq!(
        e("node,mem=lots"),
        "--numa node,mem=lots: mem: 'lots' is not a size (expected a number with an optional K, \
         M, G or T suffix, e.g. 512M or 2G)"
    );
    assert_eq!(e("node,mem=1G,policy=strict,host-nodes=0"), "--numa node,mem=1G,policy=strict,host-nodes=0: policy='strict' is not bind, preferred or interleave");
    assert_eq!(
        e("node,mem=1G,policy=bind"),
        "--numa node,mem=1G,policy=bind: policy=bind needs host-nodes=LIST"
    );
    assert_eq!(
        e("node,memdev=m0"),
        "--numa node,memdev=m0: memdev= is not supported; give the node's RAM as mem=SIZE and \
         the backing options on -m"
    );
    assert_eq!(
        e("dist,src=0,val=20"),
        "--numa dist,src=0,val=20: dist needs src=, dst= and val= ('dst' is missing)"
    );
    assert_eq!(
        e("dist,src=0,dst=1,val=256"),
        "--numa dist,src=0,dst=1,val=256: val='256' is not a distance (an integer from 10 to 255)"
    );
}

#[test]
fn qemu_node_errors() {
    // QEMU: "CPU is already assigned to node-id: 0".
    assert_eq!(
        err(
            &[
                "node,nodeid=0,cpus=0-1,mem=1G",
                "node,nodeid=1,cpus=1-3,mem=1G"
            ],
            4,
            2 * G
        ),
        "--numa node,nodeid=1,cpus=1-3,mem=1G: vCPU 1 is already assigned to node 0"
    );
    // QEMU: "CPU index (4) should be smaller than maxcpus (4)".
    assert_eq!(
        err(
            &[
                "node,nodeid=0,cpus=0-1,mem=1G",
                "node,nodeid=1,cpus=2-4,mem=1G"
            ],
            4,
            2 * G
        ),
        "--numa node,nodeid=1,cpus=2-4,mem=1G: CPU index (4) should be smaller than maxcpus (4)"
    );
    // QEMU: "total memory for NUMA nodes (0x80000000) should equal RAM size (0xc0000000)".
    assert_eq!(
        err(&TWO_NODES[..2], 4, 3 * G),
        "--numa: total memory for NUMA nodes (0x80000000) should equal RAM size -m (0xc0000000)"
    );
    // A node without mem= has none, as in QEMU 7.2 for pc-i440fx-7.2 (no default split).
    assert_eq!(
        err(&["node", "node"], 2, G),
        "--numa: total memory for NUMA nodes (0x0) should equal RAM size -m (0x40000000)"
    );
    // QEMU: "numa: Node ID missing: 1" (the largest missing ID first).
    assert_eq!(
        err(&["node,nodeid=0,mem=1G", "node,nodeid=3,mem=1G"], 1, 2 * G),
        "--numa: node ID missing: 2 (node IDs must run from 0 without gaps)"
    );
    // QEMU: "Duplicate NUMA nodeid: 0".
    assert_eq!(
        err(&["node,nodeid=0,mem=1G", "node,nodeid=0,mem=1G"], 1, 2 * G),
        "--numa node,nodeid=0,mem=1G: duplicate NUMA nodeid: 0"
    );
    // QEMU: "Max number of NUMA nodes reached: 200".
    assert_eq!(
        err(&["node,nodeid=200,mem=1G"], 1, G),
        "--numa node,nodeid=200,mem=1G: max number of NUMA nodes reached: nodeid 200 (node IDs \
         must be below 128)"
    );
    // Unequal nodes are fine as long as they add up.
    let numa = resolve(&["node,mem=1023M", "node,mem=1025M"], &smp(1), 2 * G).unwrap();
    assert_eq!(numa.node_sizes(), vec![(0, 1023 << 20), (1, 1025 << 20)]);
    assert_eq!(
        err(&["node,mem=1.5K", "node,mem=1G"], 1, G + 1536),
        "--numa node,mem=1.5K: mem=1536 bytes is not a multiple of 4 KiB (host binding works \
         on whole pages)"
    );
}

#[test]
fn qemu_distance_errors() {
    let with = |dists: &[&str]| {
        let mut o: Vec<&str> = TWO_NODES[..2].to_vec();
        o.extend_from_slice(dists);
        err(&o, 4, 2 * G)
    };
    // QEMU: "NUMA distance (9) is invalid, it shouldn't be less than 10."
    assert_eq!(
        with(&["dist,src=0,dst=1,val=9"]),
        "--numa dist,src=0,dst=1,val=9: NUMA distance (9) is invalid, it shouldn't be less than 10"
    );
    // QEMU: "Local distance of node 0 should be 10."
    assert_eq!(
        with(&["dist,src=0,dst=0,val=11"]),
        "--numa dist,src=0,dst=0,val=11: local distance of node 0 should be 10"
    );
    // QEMU: "Source/Destination NUMA node is missing. Please use '-numa node' option to
    // declare it first."
    assert_eq!(
        with(&["dist,src=0,dst=2,val=20"]),
        "--numa dist,src=0,dst=2,val=20: source/destination NUMA node is missing; declare it \
         with --numa node,nodeid=N"
    );
    // QEMU: "Parameter 'dst' expects an integer between 0 and 127".
    assert_eq!(
        with(&["dist,src=0,dst=200,val=20"]),
        "--numa dist,src=0,dst=200,val=20: parameter 'dst' expects an integer between 0 and 127"
    );
    // QEMU: "The distance between node 0 and 1 is missing, at least one distance value
    // between each nodes should be provided."
    assert_eq!(
        with(&["dist,src=0,dst=0,val=10"]),
        "--numa: the distance between node 0 and 1 is missing; give at least one distance \
         value between each pair of nodes"
    );
}

#[test]
fn asymmetric_distances() {
    // Both directions given and different: accepted as given (QEMU too).
    let mut o: Vec<&str> = TWO_NODES[..2].to_vec();
    o.extend(["dist,src=0,dst=1,val=20", "dist,src=1,dst=0,val=30"]);
    let numa = resolve(&o, &smp(4), 2 * G).unwrap();
    assert_eq!(numa.distances, vec![vec![10, 20], vec![30, 10]]);
    // Three nodes, one asymmetric pair and one pair given one way: refused.
    let three = [
        "node,mem=1G,cpus=0",
        "node,mem=1G,cpus=1",
        "node,mem=1G,cpus=2",
        "dist,src=0,dst=1,val=20",
        "dist,src=1,dst=0,val=30",
        "dist,src=0,dst=2,val=40",
        "dist,src=1,dst=2,val=50",
    ];
    assert_eq!(
        err(&three, 3, 3 * G),
        "--numa: at least one asymmetrical pair of distances is given; give distances for both \
         directions of all node pairs"
    );
    // Symmetric, one way each: completed.
    let numa = resolve(
        &[
            "node,mem=1G,cpus=0",
            "node,mem=1G,cpus=1",
            "node,mem=1G,cpus=2",
            "dist,src=0,dst=1,val=20",
            "dist,src=2,dst=0,val=40",
            "dist,src=1,dst=2,val=50",
        ],
        &smp(3),
        3 * G,
    )
    .unwrap();
    assert_eq!(
        numa.distances,
        vec![vec![10, 20, 40], vec![20, 10, 50], vec![40, 50, 10]]
    );
    // Order does not matter: a dist before its nodes is fine.
    let numa = resolve(
        &["dist,src=0,dst=1,val=15", "node,mem=1G", "node,mem=1G"],
        &smp(1),
        2 * G,
    )
    .unwrap();
    assert_eq!(numa.distances, vec![vec![10, 15], vec![15, 10]]);
}

/// Node sizes whose sum wraps u64 (two nodes of 2^63, or 16777215T and more) are an error
/// naming the node, not a wrapped total that happens to equal -m.
#[test]
fn node_memory_sums_that_wrap_are_errors() {
    // 2 * 2^63 wraps to 0 bytes; 9223372036854775808 is 2^63.
    let e = err(
        &[
            "node,mem=9223372036854775808B",
            "node,mem=9223372036854775808B",
        ],
        1,
        0,
    );
    assert_eq!(
        e,
        "--numa node,mem=9223372036854775808B: total memory for NUMA nodes so far \
         (9223372036854775808 bytes) plus mem=9223372036854775808 bytes exceeds 2^64 bytes \
         (it must equal RAM size -m)"
    );
    // 16777215T + 16777215T + 2T would wrap to exactly 1 GiB's neighbourhood; with -m 1G.
    let e = err(
        &["node,mem=16777215T", "node,mem=16777215T", "node,mem=1G"],
        1,
        G,
    );
    assert!(
        e.starts_with("--numa node,mem=16777215T: total memory for NUMA nodes so far"),
        "{e}"
    );
    assert_eq!(
        err(&["node,mem=18446744073709551615"], 1, G),
        "--numa node,mem=18446744073709551615: mem: '18446744073709551615' is too large"
    );
}

/// `cpus=` repeated many times stays one entry per vCPU (no list grows with the
/// repetitions), and vCPU numbers past maxcpus are the usual error.
#[test]
fn repeated_cpu_lists_stay_bounded() {
    let mut text = String::from("node,mem=1G");
    for _ in 0..2000 {
        text.push_str(",cpus=0-8191");
    }
    let config = NumaConfig::parse(&[text.as_str()]).unwrap();
    assert_eq!(config.nodes[0].cpus.len(), 8192);
    let e = config.resolve(&smp(4), G).unwrap_err().to_string();
    assert!(
        e.ends_with("CPU index (4) should be smaller than maxcpus (4)"),
        "{e}"
    );
}
