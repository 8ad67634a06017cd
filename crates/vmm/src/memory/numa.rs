//! Binding guest NUMA nodes' memory to host NUMA nodes with mbind(2), as QEMU's
//! memory-backend `host-nodes=`/`policy=` do (backends/hostmem.c).
//!
//! The pure half turns a resolved [`GuestNuma`] into one [`RangePolicy`] per bound guest
//! node (its offset into guest RAM, the mbind mode and host nodes) and checks host node IDs
//! against a [`HostNuma`]; the other half applies a policy to a live mapping. Policies are
//! set before guest memory is touched, so every page (huge pages included) is allocated on
//! the nodes the policy names; /proc/PID/numa_maps shows them (`bind:0`, `interleave:0-1`).

use thiserror::Error;

use crate::config::numa::{GuestNuma, HostPolicy};
use crate::host::numa::HostNuma;
use crate::util::cpulist::cpulist;

/// mbind mode: several preferred nodes (Linux 5.15+, include/uapi/linux/mempolicy.h).
pub const MPOL_PREFERRED_MANY: libc::c_int = 5;
/// mbind flags (include/uapi/linux/mempolicy.h): fail if existing pages break the policy,
/// and move them if they do. QEMU passes both.
pub const MPOL_MF_STRICT: libc::c_uint = 1 << 0;
pub const MPOL_MF_MOVE: libc::c_uint = 1 << 1;

/// Bits in one word of an mbind node mask.
const MASK_WORD_BITS: u32 = libc::c_ulong::BITS;

/// One guest node's memory policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePolicy {
    pub guest_node: u32,
    /// Where the node's memory starts in guest RAM (counted without the MMIO gap).
    pub offset: u64,
    pub len: u64,
    pub policy: HostPolicy,
    /// Host nodes, sorted and distinct.
    pub host_nodes: Vec<u32>,
}

impl RangePolicy {
    /// The mbind mode: MPOL_BIND, MPOL_INTERLEAVE, MPOL_PREFERRED for one node and
    /// MPOL_PREFERRED_MANY for several (QEMU 7.2 passes MPOL_PREFERRED, which the kernel
    /// reduces to the first node).
    pub fn mode(&self) -> libc::c_int {
        match self.policy {
            HostPolicy::Bind => libc::MPOL_BIND,
            HostPolicy::Interleave => libc::MPOL_INTERLEAVE,
            HostPolicy::Preferred if self.host_nodes.len() > 1 => MPOL_PREFERRED_MANY,
            HostPolicy::Preferred => libc::MPOL_PREFERRED,
        }
    }
}

/// Why guest memory could not be bound to host nodes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NumaBindError {
    #[error(
        "--numa node,nodeid={guest_node}: host-nodes={list}: host node {node} does not exist \
         (this host has node{plural} {have})",
        plural = if .have.contains(['-', ',']) { "s" } else { "" }
    )]
    NoSuchHostNode {
        guest_node: u32,
        list: String,
        node: u32,
        have: String,
    },
    #[error(
        "--numa node,nodeid={guest_node}: binding its memory to host node(s) {nodes} with \
         policy={policy} failed: {reason}"
    )]
    Mbind {
        guest_node: u32,
        nodes: String,
        policy: &'static str,
        reason: String,
    },
}

/// Checks that every host node a guest node names is online on `host`.
pub fn check_host_nodes(numa: &GuestNuma, host: &HostNuma) -> Result<(), NumaBindError> {
    for node in &numa.nodes {
        let Some(binding) = &node.host else { continue };
        if let Some(&missing) = binding.nodes.iter().find(|&&n| host.node(n).is_none()) {
            return Err(NumaBindError::NoSuchHostNode {
                guest_node: node.id,
                list: cpulist(&binding.nodes),
                node: missing,
                have: host.ids_text(),
            });
        }
    }
    Ok(())
}

/// The policies to apply: one per guest node with a host binding and memory.
pub fn range_policies(numa: &GuestNuma) -> Vec<RangePolicy> {
    numa.nodes
        .iter()
        .zip(numa.node_offsets())
        .filter_map(|(node, (_, offset, len))| {
            let binding = node.host.as_ref()?;
            (len > 0).then(|| RangePolicy {
                guest_node: node.id,
                offset,
                len,
                policy: binding.policy,
                host_nodes: binding.nodes.clone(),
            })
        })
        .collect()
}

/// The node mask mbind takes and its `maxnode` argument. The kernel reads `maxnode - 1`
/// bits (mm/mempolicy.c `get_nodes` decrements it first), so `maxnode` is the highest node
/// plus 2, as QEMU passes it.
pub fn nodemask(nodes: &[u32]) -> (Vec<libc::c_ulong>, libc::c_ulong) {
    let highest = nodes.iter().copied().max().unwrap_or(0);
    let mut mask = vec![0 as libc::c_ulong; (highest / MASK_WORD_BITS + 1) as usize];
    for &n in nodes {
        mask[(n / MASK_WORD_BITS) as usize] |= 1 << (n % MASK_WORD_BITS);
    }
    (mask, libc::c_ulong::from(highest) + 2)
}

/// Applies `policy` to the host range `[base + policy.offset, + policy.len)`.
///
/// # Safety
/// `base` must be the start of a live mapping of at least `policy.offset + policy.len`
/// bytes owned by the caller (mbind changes how that range is allocated).
pub unsafe fn apply(base: *mut u8, policy: &RangePolicy) -> Result<(), NumaBindError> {
    let (mask, maxnode) = nodemask(&policy.host_nodes);
    // SAFETY: per this function's contract the range is the caller's mapping; the mask
    // buffer holds `maxnode - 1` bits and outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            base.add(policy.offset as usize),
            policy.len as libc::c_ulong,
            policy.mode() as libc::c_ulong,
            mask.as_ptr(),
            maxnode,
            (MPOL_MF_STRICT | MPOL_MF_MOVE) as libc::c_ulong,
        )
    };
    if r != 0 {
        return Err(NumaBindError::Mbind {
            guest_node: policy.guest_node,
            nodes: cpulist(&policy.host_nodes),
            policy: policy.policy.name(),
            reason: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::numa::NumaConfig;
    use crate::config::SmpConfig;
    use crate::host::numa::HostNode;

    fn host(ids: &[u32]) -> HostNuma {
        HostNuma {
            nodes: ids
                .iter()
                .map(|&id| HostNode {
                    id,
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn numa(options: &[&str], memory: u64) -> GuestNuma {
        NumaConfig::parse(options)
            .unwrap()
            .resolve(&SmpConfig::parse("2").unwrap(), memory)
            .unwrap()
    }

    #[test]
    fn node_masks() {
        assert_eq!(nodemask(&[0]), (vec![1], 2));
        assert_eq!(nodemask(&[1]), (vec![2], 3));
        assert_eq!(nodemask(&[0, 2, 3]), (vec![0b1101], 5));
        assert_eq!(nodemask(&[64]), (vec![0, 1], 66));
        assert_eq!(
            nodemask(&[1, 65, 127]),
            (vec![2, (1 << 1) | (1 << 63)], 129)
        );
    }

    #[test]
    fn policies_for_a_four_node_host() {
        let n = numa(
            &[
                "node,cpus=0,mem=1G,host-nodes=2",
                "node,cpus=1,mem=512M",
                "node,mem=256M,host-nodes=0-1,policy=interleave",
                "node,mem=256M,host-nodes=3,host-nodes=1,policy=preferred",
                "node,host-nodes=3",
            ],
            2 << 30,
        );
        assert_eq!(check_host_nodes(&n, &host(&[0, 1, 2, 3])), Ok(()));
        let p = range_policies(&n);
        let summary: Vec<_> = p
            .iter()
            .map(|p| {
                (
                    p.guest_node,
                    p.offset >> 20,
                    p.len >> 20,
                    p.mode(),
                    p.host_nodes.clone(),
                )
            })
            .collect();
        // Node 1 is unbound and node 4 has no memory: neither gets a policy.
        assert_eq!(
            summary,
            vec![
                (0, 0, 1024, libc::MPOL_BIND, vec![2]),
                (2, 1536, 256, libc::MPOL_INTERLEAVE, vec![0, 1]),
                (3, 1792, 256, MPOL_PREFERRED_MANY, vec![1, 3]),
            ]
        );
        let one = numa(
            &["node,cpus=0-1,mem=1G,host-nodes=1,policy=preferred"],
            1 << 30,
        );
        assert_eq!(range_policies(&one)[0].mode(), libc::MPOL_PREFERRED);
    }

    #[test]
    fn missing_host_nodes() {
        let n = numa(&["node,cpus=0-1,mem=1G,host-nodes=1"], 1 << 30);
        assert_eq!(
            check_host_nodes(&n, &host(&[0])).unwrap_err().to_string(),
            "--numa node,nodeid=0: host-nodes=1: host node 1 does not exist (this host has node 0)"
        );
        let n = numa(
            &[
                "node,cpus=0,mem=512M",
                "node,cpus=1,mem=512M,host-nodes=0-2",
            ],
            1 << 30,
        );
        assert_eq!(
            check_host_nodes(&n, &host(&[0, 1]))
                .unwrap_err()
                .to_string(),
            "--numa node,nodeid=1: host-nodes=0-2: host node 2 does not exist (this host has \
             nodes 0-1)"
        );
        assert_eq!(check_host_nodes(&n, &host(&[0, 1, 2])), Ok(()));
        // Sparse host node IDs (a node offline) are named as they are.
        assert_eq!(
            check_host_nodes(&n, &host(&[0, 2]))
                .unwrap_err()
                .to_string(),
            "--numa node,nodeid=1: host-nodes=0-2: host node 1 does not exist (this host has \
             nodes 0,2)"
        );
    }
}
