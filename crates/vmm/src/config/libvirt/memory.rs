//! The memory side of a domain: `<memory>`, `<currentMemory>`, `<maxMemory>`, the guest
//! NUMA cells of `<cpu><numa>`, their host binding (`<numatune>`) and how the host backs
//! guest RAM (`<memoryBacking>`).
//!
//! libvirt semantics kept: sizes default to KiB and are rounded up to whole KiB; with NUMA
//! cells the guest's memory is the cells' total; `<numatune><memory>` binds every cell that
//! has no `<memnode>`; `<hugepages><page nodeset>` picks a page size per guest node (nodes
//! no page names use regular pages, a page without nodeset covers the rest). rvmm backs all
//! guest RAM one way, so cells that would differ (page size, `memAccess`) are refused.

use roxmltree::Node;

use super::{elements, strip_option, tag, Ctx, DomainError};
use crate::config::cputune::{check_memory_limit, MemTune};
use crate::config::memory::{MemoryBacking, X86_HUGE_PAGE_SIZES};
use crate::config::numa::{HostPolicy, NumaConfig, NumaDistSpec, NumaNodeSpec, MAX_NODES};
use crate::config::size::format_size;
use crate::config::smp::SmpConfig;
use crate::config::{flags, MAX_MEMORY, MAX_MEMORY_RULE, MIN_MEMORY};

/// The base page size: a `<page>` of this size means regular pages.
const BASE_PAGE: u64 = 4096;

/// One `<cell>`.
pub(super) struct Cell<'d, 'i> {
    pub id: u32,
    pub cpus: Vec<u32>,
    pub mem: u64,
    /// `memAccess='shared'|'private'`.
    pub shared: Option<bool>,
    /// `(sibling id, value, element)` in document order.
    pub distances: Vec<(u32, u32, Node<'d, 'i>)>,
    /// From `<numatune>`: host nodes and policy.
    pub host: Option<(Vec<u32>, HostPolicy)>,
    pub node: Node<'d, 'i>,
}

/// libvirt keeps memory sizes in KiB, rounding up.
fn kib_round(bytes: u64) -> u64 {
    bytes.div_ceil(1024).saturating_mul(1024)
}

/// `<cpu><numa>`: the cells, sorted by ID, checked against `maxcpus` vCPU slots.
pub(super) fn cells<'d, 'i>(
    ctx: &mut Ctx<'d, 'i>,
    cpu: Option<Node<'d, 'i>>,
    maxcpus: u32,
) -> Result<Vec<Cell<'d, 'i>>, DomainError> {
    let Some(numa) = cpu.and_then(|c| elements(c).find(|e| e.has_tag_name("numa"))) else {
        return Ok(Vec::new());
    };
    ctx.check_attrs(numa, &[]);
    let count = elements(numa).filter(|c| c.has_tag_name("cell")).count();
    if count > MAX_NODES as usize {
        return Err(ctx.text_err(
            numa,
            format!(
                "{count} cells are too many (at most {MAX_NODES} guest NUMA nodes, QEMU's \
                 MAX_NODES)"
            ),
        ));
    }
    // At most MAX_NODES, checked above.
    let count = count as u32;
    let mut cells: Vec<Cell> = Vec::new();
    let mut owner: Vec<Option<u32>> = vec![None; maxcpus as usize];
    for c in elements(numa) {
        if !c.has_tag_name("cell") {
            ctx.ignored(c, "not supported");
            continue;
        }
        ctx.check_attrs(c, &["id", "cpus", "memory", "unit", "memAccess"]);
        let id = ctx.attr_u32(c, "id")?.unwrap_or(cells.len() as u32);
        if id >= count {
            return Err(ctx.attr_err(
                c,
                "id",
                format!(
                    "cell {id} is out of range (the {count} cells must have IDs 0-{})",
                    count - 1
                ),
            ));
        }
        if cells.iter().any(|x| x.id == id) {
            return Err(ctx.attr_err(c, "id", format!("cell {id} is defined twice")));
        }
        let cpus = ctx.attr_list(c, "cpus")?.unwrap_or_default();
        for &cpu in &cpus {
            let Some(slot) = owner.get_mut(cpu as usize) else {
                return Err(ctx.attr_err(
                    c,
                    "cpus",
                    format!(
                        "vCPU {cpu} does not exist (<vcpu> gives vCPUs 0-{})",
                        maxcpus - 1
                    ),
                ));
            };
            if let Some(other) = slot {
                return Err(ctx.attr_err(
                    c,
                    "cpus",
                    format!("vCPU {cpu} is already in cell {other}"),
                ));
            }
            *slot = Some(id);
        }
        let mem = kib_round(ctx.size(c, Some("memory"), "unit")?);
        if mem % BASE_PAGE != 0 {
            return Err(ctx.err(
                c,
                tag(c, &["memory", "unit"]),
                format!(
                    "{mem} bytes is not a multiple of 4 KiB (rvmm binds guest memory to host \
                     nodes page by page)"
                ),
            ));
        }
        let shared = ctx
            .attr_choice(c, "memAccess", &["shared", "private"])?
            .map(|v| v == "shared");
        let mut distances = Vec::new();
        for d in elements(c) {
            if !d.has_tag_name("distances") {
                ctx.ignored(d, "not supported");
                continue;
            }
            for s in elements(d) {
                if !s.has_tag_name("sibling") {
                    ctx.ignored(s, "not a <sibling>");
                    continue;
                }
                ctx.check_attrs(s, &["id", "value"]);
                let sibling = ctx.required_u32(s, "id")?;
                let value = ctx.required_u32(s, "value")?;
                if !(10..=255).contains(&value) {
                    return Err(ctx.attr_err(
                        s,
                        "value",
                        format!("{value} is out of range (a NUMA distance is 10 to 255)"),
                    ));
                }
                if sibling == id && value != 10 {
                    return Err(ctx.err(
                        s,
                        tag(s, &["id", "value"]),
                        "the distance of a cell to itself must be 10",
                    ));
                }
                if sibling >= count {
                    return Err(ctx.attr_err(
                        s,
                        "id",
                        format!(
                            "cell {sibling} does not exist (<numa> has cells 0-{})",
                            count - 1
                        ),
                    ));
                }
                distances.push((sibling, value, s));
            }
        }
        cells.push(Cell {
            id,
            cpus,
            mem,
            shared,
            distances,
            host: None,
            node: c,
        });
    }
    cells.sort_by_key(|c| c.id);
    Ok(cells)
}

/// Guest RAM: `<memory>`, or the cells' total with NUMA, and `<currentMemory>` when it is
/// below it (the balloon's first target, as libvirt sets it at start; warned about when
/// the domain has no balloon, `balloon` false). `<maxMemory>` is warned about.
pub(super) fn memory(
    ctx: &mut Ctx,
    memory: Option<Node>,
    current: Option<Node>,
    max: Option<Node>,
    cells: &[Cell],
    balloon: bool,
) -> Result<(u64, Option<u64>), DomainError> {
    let given = match memory {
        Some(n) => {
            ctx.check_attrs(n, &["unit", "dumpCore"]);
            Some((kib_round(ctx.size(n, None, "unit")?), n))
        }
        None => None,
    };
    let (size, at) = if cells.is_empty() {
        given.ok_or_else(|| ctx.domain_err("<domain> has no <memory> (libvirt requires one)"))?
    } else {
        let mut total: u64 = 0;
        for c in cells {
            total = total.checked_add(c.mem).ok_or_else(|| {
                ctx.err(
                    c.node,
                    tag(c.node, &["id", "memory", "unit"]),
                    format!(
                        "the cells' memory adds up to more than 2^64 bytes ({total} bytes before \
                         this cell's {} bytes)",
                        c.mem
                    ),
                )
            })?;
        }
        if let Some((g, n)) = given {
            if g != total {
                ctx.warn(
                    n,
                    format!(
                        "{} differs from the NUMA cells' total {}; the cells' total is used, as \
                         libvirt does",
                        format_size(g),
                        format_size(total)
                    ),
                );
            }
        }
        (total, given.map_or(cells[0].node, |(_, n)| n))
    };
    if size < MIN_MEMORY {
        return Err(ctx.err(
            at,
            tag(at, &["unit"]),
            format!(
                "{size} bytes is too small (rvmm needs at least {} MiB of guest memory)",
                MIN_MEMORY >> 20
            ),
        ));
    }
    if size > MAX_MEMORY {
        return Err(ctx.err(
            at,
            tag(at, &["unit"]),
            format!("{size} bytes exceeds {MAX_MEMORY_RULE}"),
        ));
    }
    if size % BASE_PAGE != 0 {
        return Err(ctx.err(
            at,
            tag(at, &["unit"]),
            format!("{size} bytes is not a multiple of 4 KiB (rvmm maps guest RAM in pages)"),
        ));
    }
    let mut initial = None;
    if let Some(n) = current {
        ctx.check_attrs(n, &["unit"]);
        let cur = kib_round(ctx.size(n, None, "unit")?);
        if cur < size && balloon {
            // 4 KiB pages are the balloon's unit.
            initial = Some(cur - cur % BASE_PAGE);
        } else if cur < size {
            ctx.warn(
                n,
                format!(
                    "the guest gets all {} of <memory>: with <memballoon model='none'/> there is \
                     no balloon to hold {} back",
                    format_size(size),
                    format_size(size - cur)
                ),
            );
        }
    }
    if let Some(n) = max {
        ctx.ignored(n, "memory hotplug is not supported");
    }
    Ok((size, initial))
}

/// libvirt's numatune modes as host policies.
fn policy(ctx: &mut Ctx, n: Node) -> Result<HostPolicy, DomainError> {
    let mode = ctx
        .attr_choice(
            n,
            "mode",
            &["strict", "preferred", "interleave", "restrictive"],
        )?
        .unwrap_or("strict");
    Ok(match mode {
        "strict" => HostPolicy::Bind,
        "preferred" => HostPolicy::Preferred,
        "interleave" => HostPolicy::Interleave,
        _ => {
            ctx.warn(
                n,
                "mode='restrictive' (cgroup cpuset.mems only) is applied as 'strict' (mbind)",
            );
            HostPolicy::Bind
        }
    })
}

fn nodeset(ctx: &Ctx, n: Node) -> Result<Vec<u32>, DomainError> {
    ctx.attr_list(n, "nodeset")?
        .ok_or_else(|| ctx.text_err(n, "the 'nodeset' attribute is missing"))
}

/// `<numatune>`: host nodes and policy for each cell.
pub(super) fn numatune(
    ctx: &mut Ctx,
    n: Option<Node>,
    cells: &mut [Cell],
) -> Result<(), DomainError> {
    let Some(n) = n else {
        return Ok(());
    };
    ctx.check_attrs(n, &[]);
    let mut default: Option<(Vec<u32>, HostPolicy)> = None;
    for c in elements(n) {
        match c.tag_name().name() {
            "memory" => {
                ctx.check_attrs(c, &["mode", "nodeset", "placement"]);
                let mode = policy(ctx, c)?;
                if ctx.attr_choice(c, "placement", &["static", "auto"])? == Some("auto") {
                    ctx.ignored(c, "placement='auto' needs numad, which rvmm does not use");
                    continue;
                }
                let nodes = nodeset(ctx, c)?;
                if cells.is_empty() {
                    ctx.ignored(
                        c,
                        "rvmm binds memory per guest NUMA node; without <numa> cells it is not bound",
                    );
                    continue;
                }
                default = Some((nodes, mode));
            }
            "memnode" => {
                ctx.check_attrs(c, &["cellid", "mode", "nodeset"]);
                let id = ctx.required_u32(c, "cellid")?;
                let count = cells.len();
                let Some(cell) = cells.iter_mut().find(|x| x.id == id) else {
                    let rule = if count == 0 {
                        "the domain has no <numa> cells".to_string()
                    } else {
                        format!(
                            "cell {id} does not exist (<numa> has cells 0-{})",
                            count - 1
                        )
                    };
                    return Err(ctx.attr_err(c, "cellid", rule));
                };
                if cell.host.is_some() {
                    return Err(ctx.attr_err(c, "cellid", format!("cell {id} is tuned twice")));
                }
                let mode = policy(ctx, c)?;
                cell.host = Some((nodeset(ctx, c)?, mode));
            }
            _ => ctx.ignored(c, "not supported"),
        }
    }
    if let Some(d) = default {
        for cell in cells.iter_mut().filter(|c| c.host.is_none()) {
            cell.host = Some(d.clone());
        }
    }
    Ok(())
}

/// The page size backing each guest node (one entry without NUMA): `None` is the host's
/// default huge page size, `Some(BASE_PAGE)` regular pages.
fn page_sizes(ctx: &mut Ctx, h: Node, cells: &[Cell]) -> Result<Vec<Option<u64>>, DomainError> {
    ctx.check_attrs(h, &[]);
    let nodes = cells.len().max(1);
    let pages: Vec<Node> = elements(h).filter(|p| p.has_tag_name("page")).collect();
    for other in elements(h).filter(|p| !p.has_tag_name("page")) {
        ctx.ignored(other, "not supported");
    }
    if pages.is_empty() {
        return Ok(vec![None; nodes]);
    }
    let mut default: Option<u64> = None;
    let mut per_node: Vec<Option<u64>> = vec![None; nodes];
    for p in pages {
        ctx.check_attrs(p, &["size", "unit", "nodeset"]);
        let size = ctx.size(p, Some("size"), "unit")?;
        if size != BASE_PAGE && !X86_HUGE_PAGE_SIZES.contains(&size) {
            return Err(ctx.err(
                p,
                tag(p, &["size", "unit"]),
                format!(
                    "{} is not a page size of x86-64 (4K, 2M or 1G)",
                    format_size(size)
                ),
            ));
        }
        match ctx.attr_list(p, "nodeset")? {
            None if default.is_some() => {
                return Err(ctx.text_err(p, "only one <page> may leave out nodeset"))
            }
            None => default = Some(size),
            Some(_) if cells.is_empty() => {
                return Err(ctx.attr_err(
                    p,
                    "nodeset",
                    "the domain has no <numa> cells for nodeset to name",
                ))
            }
            Some(list) => {
                for node in list {
                    let Some(slot) = per_node.get_mut(node as usize) else {
                        return Err(ctx.attr_err(
                            p,
                            "nodeset",
                            format!(
                                "guest node {node} does not exist (<numa> has cells 0-{})",
                                cells.len() - 1
                            ),
                        ));
                    };
                    if slot.is_some() {
                        return Err(ctx.attr_err(
                            p,
                            "nodeset",
                            format!("guest node {node} is given two page sizes"),
                        ));
                    }
                    *slot = Some(size);
                }
            }
        }
    }
    Ok(per_node
        .into_iter()
        .map(|s| Some(s.or(default).unwrap_or(BASE_PAGE)))
        .collect())
}

fn page_name(size: Option<u64>) -> String {
    match size {
        None => "the default huge page size".to_string(),
        Some(BASE_PAGE) => "regular pages".to_string(),
        Some(s) => format!("{} pages", format_size(s)),
    }
}

/// `<hugepages>`: one page size for all guest RAM.
fn hugepages(
    ctx: &mut Ctx,
    h: Node,
    cells: &[Cell],
    size: u64,
    backing: &mut MemoryBacking,
) -> Result<(), DomainError> {
    let sizes = page_sizes(ctx, h, cells)?;
    if let Some(i) = sizes.iter().position(|s| *s != sizes[0]) {
        return Err(ctx.text_err(
            h,
            format!(
                "rvmm backs all guest memory with one page size, but guest node 0 gets {} and \
                 node {i} {}",
                page_name(sizes[0]),
                page_name(sizes[i])
            ),
        ));
    }
    let page = sizes[0];
    if page == Some(BASE_PAGE) {
        return Ok(());
    }
    backing.hugepages = true;
    backing.hugepage_size = page;
    if let Some(p) = page {
        if size % p != 0 {
            return Err(ctx.text_err(
                h,
                format!(
                    "the guest memory ({}) is not a multiple of the {} huge page size",
                    format_size(size),
                    format_size(p)
                ),
            ));
        }
        if let Some(c) = cells.iter().find(|c| c.mem % p != 0) {
            return Err(ctx.err(
                c.node,
                tag(c.node, &["id", "memory", "unit"]),
                format!(
                    "the cell's memory ({}) is not a multiple of the {} huge page size",
                    format_size(c.mem),
                    format_size(p)
                ),
            ));
        }
    }
    Ok(())
}

/// `<memoryBacking>` (and the cells' `memAccess`).
pub(super) fn backing(
    ctx: &mut Ctx,
    n: Option<Node>,
    cells: &[Cell],
    size: u64,
) -> Result<MemoryBacking, DomainError> {
    let mut b = MemoryBacking::default();
    let mut shared = false;
    if let Some(n) = n {
        ctx.check_attrs(n, &[]);
        for c in elements(n) {
            match c.tag_name().name() {
                "hugepages" => hugepages(ctx, c, cells, size, &mut b)?,
                "nosharepages" => b.merge = Some(false),
                "locked" => ctx.ignored(c, "rvmm does not lock guest memory into host RAM"),
                "source" => {
                    ctx.check_attrs(c, &["type"]);
                    match ctx.attr_choice(c, "type", &["anonymous", "file", "memfd"])? {
                        Some("file") => ctx.ignored(
                            c,
                            "guest memory is anonymous (use rvmm's -m mem-path=DIR for a file)",
                        ),
                        Some("memfd") => ctx.warn(
                            c,
                            "backed as anonymous memory: rvmm has no memfd backend (the guest sees \
                             no difference)",
                        ),
                        _ => {}
                    }
                }
                "access" => {
                    ctx.check_attrs(c, &["mode"]);
                    shared = ctx.attr_choice(c, "mode", &["shared", "private"])? == Some("shared");
                }
                "allocation" => {
                    ctx.check_attrs(c, &["mode"]);
                    b.prealloc = ctx.attr_choice(c, "mode", &["immediate", "ondemand"])?
                        == Some("immediate");
                }
                "discard" => ctx.ignored(c, "rvmm does not discard guest memory on shutdown"),
                _ => ctx.ignored(c, "not supported"),
            }
        }
    }
    // With NUMA, each cell's memAccess (or the default) must agree.
    let access: Vec<bool> = cells.iter().map(|c| c.shared.unwrap_or(shared)).collect();
    if let Some(i) = access.iter().position(|a| *a != access[0]) {
        let at = cells
            .iter()
            .find(|c| c.shared.is_some())
            .unwrap_or(&cells[i]);
        return Err(ctx.attr_err(
            at.node,
            "memAccess",
            format!(
                "rvmm maps all guest memory shared or all private, but cell {} differs from cell 0",
                cells[i].id
            ),
        ));
    }
    b.shared = access.first().copied().unwrap_or(shared);
    Ok(b)
}

/// The cells as `--numa` options, checked with QEMU's rules.
pub(super) fn numa_config(
    ctx: &Ctx,
    cpu: Option<Node>,
    cells: &[Cell],
    smp: &SmpConfig,
    size: u64,
) -> Result<NumaConfig, DomainError> {
    let mut numa = NumaConfig::default();
    for c in cells {
        let (host_nodes, policy) = match &c.host {
            Some((nodes, policy)) => (nodes.clone(), Some(*policy)),
            None => (Vec::new(), None),
        };
        let mut spec = NumaNodeSpec {
            text: String::new(),
            nodeid: Some(c.id),
            cpus: c.cpus.clone(),
            mem: Some(c.mem),
            host_nodes,
            policy,
        };
        spec.text = flags::numa_node_option(&spec);
        numa.nodes.push(spec);
    }
    for c in cells {
        for &(dst, val, _) in &c.distances {
            let mut d = NumaDistSpec {
                text: String::new(),
                src: c.id,
                dst,
                val,
            };
            d.text = flags::numa_dist_option(&d);
            numa.distances.push(d);
        }
    }
    if let (Some(first), Some(cpu)) = (cells.first(), cpu) {
        let at = elements(cpu)
            .find(|e| e.has_tag_name("numa"))
            .unwrap_or(first.node);
        numa.resolve(smp, size)
            .map_err(|e| ctx.text_err(at, strip_option(&e.to_string(), "--numa")))?;
    }
    Ok(numa)
}

/// libvirt's "unlimited" for a `<memtune>` limit: `VIR_DOMAIN_MEMORY_PARAM_UNLIMITED`,
/// 2^53 - 1 KiB (what `virsh memtune --hard-limit -1` stores).
const MEMTUNE_UNLIMITED_KIB: u64 = (1 << 53) - 1;

/// `<memtune>`: `<hard_limit>` (default unit KiB) becomes the VM's memory limit, which must
/// hold guest RAM plus the VMM's overhead; the other limits are warned about.
pub(super) fn memtune(
    ctx: &mut Ctx,
    n: Option<Node>,
    guest_ram: u64,
) -> Result<MemTune, DomainError> {
    let mut tune = MemTune::default();
    let Some(n) = n else {
        return Ok(tune);
    };
    ctx.check_attrs(n, &[]);
    let mut seen_hard = false;
    for c in elements(n) {
        match c.tag_name().name() {
            "hard_limit" => {
                ctx.check_attrs(c, &["unit"]);
                if seen_hard {
                    return Err(ctx.text_err(c, "appears more than once (libvirt allows one)"));
                }
                seen_hard = true;
                let limit = ctx.size(c, None, "unit")?;
                if limit == MEMTUNE_UNLIMITED_KIB * 1024 {
                    continue;
                }
                check_memory_limit(limit, guest_ram).map_err(|e| {
                    ctx.err(
                        c,
                        tag(c, &["unit"]),
                        strip_option(&e.to_string(), "--memory-limit"),
                    )
                })?;
                tune.hard_limit = Some(limit);
            }
            "soft_limit" => ctx.ignored(
                c,
                "rvmm sets no soft limit (v1 memory.soft_limit_in_bytes, v2 memory.high)",
            ),
            "swap_hard_limit" => ctx.ignored(
                c,
                "rvmm sets no swap limit (v1 memory.memsw.limit_in_bytes, v2 memory.swap.max)",
            ),
            "min_guarantee" => ctx.ignored(
                c,
                "rvmm reserves no memory (min_guarantee is for VMware/ESX hosts in libvirt)",
            ),
            _ => ctx.ignored(c, "not supported"),
        }
    }
    Ok(tune)
}
