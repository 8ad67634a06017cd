//! How many vCPUs a domain has and which are online at boot: `<vcpu current='N'>M</vcpu>`
//! and `<vcpus><vcpu id enabled hotpluggable order/></vcpus>`. The topology they fill is
//! cpu.rs's (`<cpu><topology>`), and so is `<cputune>`.
//!
//! libvirt semantics kept: `<vcpu current=N>M</vcpu>` is N vCPUs at boot of M slots, the
//! others hot-pluggable later (`rvmm setvcpus`, QMP `device_add`). `<vcpus>` lists every
//! vCPU; `hotpluggable` defaults to `no` for enabled vCPUs and `yes` for disabled ones, and
//! libvirt's rules hold (virDomainVcpuDefPostParse, qemuDomainDefVcpusPostParse,
//! qemuProcessValidateHotpluggableVcpus): a disabled vCPU is hotpluggable; vCPU 0 is enabled,
//! not hotpluggable and first in `order`; either every enabled vCPU has an `order` or none
//! has; non-hotpluggable vCPUs come before hotpluggable ones, in ascending order; an order is
//! unique and at most the vCPU count (`order='0'` is libvirt's "no order").
//!
//! Where rvmm differs: it brings up vCPUs 0 to N-1 at boot, as QEMU's `-smp N` does, so the
//! enabled vCPUs must be the first N (libvirt would hot-plug the others while starting); and
//! every vCPU but vCPU 0 can be unplugged at run time, so `hotpluggable='no'` on another
//! enabled vCPU is accepted with a warning.

use roxmltree::Node;

use super::{elements, tag, text, Ctx, DomainError};
use crate::config::smp::MAX_VCPUS;

/// `<vcpu>` as given.
pub(super) struct VcpuSpec<'d, 'i> {
    /// The element text: vCPU slots.
    pub max: u32,
    /// `current=`: vCPUs at boot.
    pub current: Option<u32>,
    /// `cpuset=` (dropped for `placement='auto'`).
    pub cpuset: Option<Vec<u32>>,
    pub node: Option<Node<'d, 'i>>,
}

/// The rule for a vCPU number outside `<vcpu>`'s count.
pub(super) fn no_such_vcpu(vcpu: u32, max: u32) -> String {
    format!(
        "vCPU {vcpu} does not exist (<vcpu> gives vCPUs 0-{})",
        max - 1
    )
}

pub(super) fn vcpu<'d, 'i>(
    ctx: &mut Ctx<'d, 'i>,
    n: Option<Node<'d, 'i>>,
) -> Result<VcpuSpec<'d, 'i>, DomainError> {
    let Some(n) = n else {
        // libvirt's default: one vCPU.
        return Ok(VcpuSpec {
            max: 1,
            current: None,
            cpuset: None,
            node: None,
        });
    };
    ctx.check_attrs(n, &["placement", "cpuset", "current"]);
    let max = ctx.number(n, "", text(n))?;
    if max == 0 {
        return Err(ctx.text_err(n, "0 is out of range (a domain has at least 1 vCPU)"));
    }
    // Before anything is sized by the count (`<vcpus>`, cells, pins).
    if max > MAX_VCPUS {
        return Err(ctx.text_err(
            n,
            format!(
                "{max} is out of range (at most {MAX_VCPUS} vCPUs, the largest KVM_MAX_VCPUS of \
                 x86 Linux)"
            ),
        ));
    }
    let current = ctx.attr_u32(n, "current")?;
    match current {
        Some(0) => {
            return Err(ctx.attr_err(
                n,
                "current",
                "0 is out of range (at least 1 vCPU is online at boot)",
            ))
        }
        Some(c) if c > max => {
            return Err(ctx.attr_err(
                n,
                "current",
                format!("{c} is more than the {max} vCPUs of <vcpu>"),
            ))
        }
        _ => {}
    }
    let placement = ctx.attr_choice(n, "placement", &["static", "auto"])?;
    let mut cpuset = ctx.attr_list(n, "cpuset")?;
    if placement == Some("auto") {
        ctx.warn(
            n,
            "placement='auto' needs numad, which rvmm does not use; the vCPUs are not pinned",
        );
        cpuset = None;
    }
    Ok(VcpuSpec {
        max,
        current,
        cpuset,
        node: Some(n),
    })
}

/// One `<vcpus><vcpu>`.
#[derive(Clone, Copy)]
struct Listed<'d, 'i> {
    node: Node<'d, 'i>,
    id: u32,
    enabled: bool,
    /// `hotpluggable=`, else libvirt's default (enabled vCPUs are not, disabled ones are).
    hotpluggable: bool,
    /// Whether `hotpluggable=` was written.
    hotpluggable_given: bool,
    /// `order=`; libvirt's `0` is none.
    order: Option<u32>,
}

/// `<vcpus><vcpu>`: its attributes, with libvirt's rule for a disabled vCPU.
fn listed<'d, 'i>(
    ctx: &mut Ctx<'d, 'i>,
    v: Node<'d, 'i>,
    id: u32,
) -> Result<Listed<'d, 'i>, DomainError> {
    let enabled = ctx
        .attr_choice(v, "enabled", &["yes", "no"])?
        .ok_or_else(|| ctx.text_err(v, "the 'enabled' attribute is missing"))?
        == "yes";
    let hotpluggable = ctx.attr_choice(v, "hotpluggable", &["yes", "no"])?;
    let order = ctx.attr_u32(v, "order")?.filter(|&o| o != 0);
    if !enabled && hotpluggable == Some("no") {
        return Err(ctx.err(
            v,
            tag(v, &["id", "enabled", "hotpluggable"]),
            format!(
                "vCPU {id} is both disabled and not hotpluggable (libvirt refuses it: a vCPU \
                 that is off at boot can only be plugged later)"
            ),
        ));
    }
    Ok(Listed {
        node: v,
        id,
        enabled,
        hotpluggable: hotpluggable.map_or(!enabled, |h| h == "yes"),
        hotpluggable_given: hotpluggable.is_some(),
        order,
    })
}

/// vCPU 0: enabled, not hotpluggable, first (libvirt's qemuDomainDefVcpusPostParse).
fn boot_vcpu(ctx: &Ctx, v: &Listed) -> Result<(), DomainError> {
    if !v.enabled {
        return Err(ctx.err(
            v.node,
            tag(v.node, &["id", "enabled"]),
            "vCPU 0 cannot be disabled (it is the boot vCPU, always online)",
        ));
    }
    if v.hotpluggable {
        return Err(ctx.err(
            v.node,
            tag(v.node, &["id", "hotpluggable"]),
            "vCPU 0 cannot be hotpluggable (it is the boot vCPU, which can never be unplugged)",
        ));
    }
    if v.order.is_some_and(|o| o != 1) {
        return Err(ctx.err(
            v.node,
            tag(v.node, &["id", "order"]),
            "vCPU 0 must be enabled first (order='1', or no order)",
        ));
    }
    Ok(())
}

/// The `order` rules: all enabled vCPUs have one or none does; non-hotpluggable vCPUs come
/// before hotpluggable ones and in ascending order (qemuDomainDefVcpusPostParse); each order
/// is unique and within the vCPU count (qemuProcessValidateHotpluggableVcpus).
fn orders(ctx: &Ctx, list: &[Listed]) -> Result<(), DomainError> {
    let has_order = list[0].order.is_some();
    for pair in list.windows(2) {
        let (prev, v) = (&pair[0], &pair[1]);
        if v.enabled && v.order.is_some() != has_order {
            let rule = if has_order {
                "has no order, but vCPU 0 has one (libvirt needs an order on every enabled vCPU \
                 or on none)"
            } else {
                "has an order, but vCPU 0 has none (libvirt needs an order on every enabled vCPU \
                 or on none)"
            };
            return Err(ctx.err(
                v.node,
                tag(v.node, &["id", "enabled", "order"]),
                format!("vCPU {} {rule}", v.id),
            ));
        }
        if v.hotpluggable {
            continue;
        }
        if prev.hotpluggable {
            return Err(ctx.err(
                v.node,
                tag(v.node, &["id", "hotpluggable"]),
                format!(
                    "vCPU {} is not hotpluggable but vCPU {} before it is (libvirt needs the \
                     non-hotpluggable vCPUs first)",
                    v.id, prev.id
                ),
            ));
        }
        if prev.order.unwrap_or(0) > v.order.unwrap_or(0) {
            return Err(ctx.err(
                v.node,
                tag(v.node, &["id", "order"]),
                format!(
                    "vCPU {} comes before vCPU {} in order (libvirt needs the non-hotpluggable \
                     vCPUs in ascending order)",
                    v.id, prev.id
                ),
            ));
        }
    }
    let max = list.len();
    let mut owner: Vec<Option<u32>> = vec![None; max];
    for v in list {
        let Some(order) = v.order else { continue };
        let Some(slot) = (order as usize)
            .checked_sub(1)
            .and_then(|i| owner.get_mut(i))
        else {
            return Err(ctx.err(
                v.node,
                tag(v.node, &["id", "order"]),
                format!("order {order} exceeds the vCPU count ({max})"),
            ));
        };
        if let Some(first) = slot {
            return Err(ctx.err(
                v.node,
                tag(v.node, &["id", "order"]),
                format!("order {order} is also vCPU {first}'s (each order is unique)"),
            ));
        }
        *slot = Some(v.id);
    }
    Ok(())
}

/// `<vcpus>`: every vCPU listed with `enabled=yes|no`. Returns the vCPUs online at boot.
pub(super) fn vcpus<'d, 'i>(
    ctx: &mut Ctx<'d, 'i>,
    n: Option<Node<'d, 'i>>,
    spec: &VcpuSpec,
) -> Result<u32, DomainError> {
    let Some(n) = n else {
        return Ok(spec.current.unwrap_or(spec.max));
    };
    ctx.check_attrs(n, &[]);
    let mut listed_at: Vec<Option<Listed>> = vec![None; spec.max as usize];
    for v in elements(n) {
        if !v.has_tag_name("vcpu") {
            ctx.ignored(v, "not a <vcpu>");
            continue;
        }
        ctx.check_attrs(v, &["id", "enabled", "hotpluggable", "order"]);
        let id = ctx.required_u32(v, "id")?;
        let Some(slot) = listed_at.get_mut(id as usize) else {
            return Err(ctx.attr_err(v, "id", no_such_vcpu(id, spec.max)));
        };
        if slot.is_some() {
            return Err(ctx.attr_err(v, "id", format!("vCPU {id} is listed twice")));
        }
        *slot = Some(listed(ctx, v, id)?);
    }
    if let Some(missing) = listed_at.iter().position(Option::is_none) {
        return Err(ctx.text_err(
            n,
            format!(
                "vCPU {missing} is not listed (libvirt needs every vCPU up to the <vcpu> count)"
            ),
        ));
    }
    let list: Vec<Listed> = listed_at.into_iter().flatten().collect();
    boot_vcpu(ctx, &list[0])?;
    let online = list.iter().filter(|v| v.enabled).count() as u32;
    // rvmm brings up vCPUs 0..N-1 at boot, as QEMU's -smp N does; libvirt would hot-plug
    // the others after start.
    if let Some(v) = list.iter().find(|v| v.enabled && v.id >= online) {
        let off = list.iter().position(|v| !v.enabled).unwrap_or(0);
        return Err(ctx.err(
            v.node,
            tag(v.node, &["id", "enabled"]),
            format!(
                "vCPU {} is enabled but vCPU {off} is not (rvmm brings up vCPUs 0 to N-1 at \
                 boot; enable the first N)",
                v.id
            ),
        ));
    }
    orders(ctx, &list)?;
    if let (Some(current), Some(vn)) = (spec.current, spec.node) {
        if current != online {
            return Err(ctx.attr_err(
                vn,
                "current",
                format!("<vcpus> enables {online} vCPUs, not {current}"),
            ));
        }
    }
    for v in list.iter().skip(1) {
        if v.enabled && v.hotpluggable_given && !v.hotpluggable {
            ctx.warn(
                v.node,
                format!(
                    "hotpluggable='no' is not enforced: rvmm can unplug any vCPU but vCPU 0 \
                     (`rvmm setvcpus`, QMP device_del of vCPU {}'s QOM path)",
                    v.id
                ),
            );
        }
    }
    Ok(online)
}
