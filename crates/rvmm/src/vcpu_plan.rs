//! `rvmm setvcpus` and `rvmm vcpucount` without I/O: the VM's vCPU slots as
//! `query-hotpluggable-cpus` lists them, the plan that takes the VM to COUNT vCPUs, the
//! `device_add` / `device_del` requests that carry it out, and virsh's `vcpucount` table.
//! cmd_vcpus.rs sends the requests and waits for the guest.
//!
//! The plan follows libvirt's qemuDomainSelectHotplugVcpuEntities: to grow, plug the lowest
//! free slots in order; to shrink, unplug the highest present vCPUs first; vCPU 0 (the boot
//! vCPU) is never unplugged. A vCPU's number is its slot's index, the order QEMU numbers
//! possible CPUs in (socket, die, core, thread, the last fastest), which is also libvirt's
//! vCPU id. A plugged vCPU gets libvirt's alias `vcpuN` as its device id. A present vCPU is
//! unplugged by its id when it has one (`/machine/peripheral/ID`), else by its QOM path, as
//! QEMU's device_del accepts both (the boot-time vCPUs of `-smp N` have no id).

use std::fmt::Write as _;

use serde_json::Value;
use thiserror::Error;
use vmm::control::commands::cpu_slot::CpuInstanceProperties;
use vmm::control::commands::device_add::DeviceAddRequest;
use vmm::control::commands::device_del::DeviceDel as DeviceDelRequest;
use vmm::control::commands::query_hotpluggable_cpus::HotpluggableCpu;

/// Why the slots cannot be read or the count cannot be reached. Nothing has been changed
/// when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error("COUNT 0 is below the minimum of 1 vCPU (vCPU 0, the boot vCPU, is never unplugged)")]
    BelowMinimum,
    #[error(
        "COUNT {count} is above the VM's maximum of {max} vCPUs (--smp maxcpus, or <vcpu> of its \
         domain)"
    )]
    AboveMaximum { count: u32, max: u32 },
    #[error("query-hotpluggable-cpus lists no vCPU slot")]
    NoSlots,
    #[error(
        "query-hotpluggable-cpus: a slot holds {vcpus} vCPUs; setvcpus plugs one vCPU per slot, \
         as x86 machines have"
    )]
    Granularity { vcpus: u32 },
    #[error("query-hotpluggable-cpus lists the slot {slot} twice")]
    DuplicateSlot { slot: String },
    #[error("query-hotpluggable-cpus lists vCPU 0 as absent; the boot vCPU is always present")]
    BootVcpuAbsent,
}

/// One vCPU slot of the running VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The vCPU's number: the slot's index.
    pub vcpu: u32,
    pub props: CpuInstanceProperties,
    /// The CPU type to plug into it.
    pub driver: String,
    /// Where the present vCPU sits in QEMU's object tree; `None`: the slot is free.
    pub qom_path: Option<String>,
}

impl Slot {
    pub fn present(&self) -> bool {
        self.qom_path.is_some()
    }
}

/// `socket-id=0,die-id=1,core-id=0,thread-id=1` (die-id only when reported).
fn describe(p: &CpuInstanceProperties) -> String {
    let die = p.die_id.map(|d| format!("die-id={d},")).unwrap_or_default();
    format!(
        "socket-id={},{die}core-id={},thread-id={}",
        p.socket_id, p.core_id, p.thread_id
    )
}

/// The slots of a query-hotpluggable-cpus reply, numbered: sorted by (socket, die, core,
/// thread), the order QEMU's x86 machines index possible CPUs in.
pub fn slots(reply: Vec<HotpluggableCpu>) -> Result<Vec<Slot>, PlanError> {
    if reply.is_empty() {
        return Err(PlanError::NoSlots);
    }
    if let Some(c) = reply.iter().find(|c| c.vcpus_count != 1) {
        return Err(PlanError::Granularity {
            vcpus: c.vcpus_count,
        });
    }
    let key =
        |p: &CpuInstanceProperties| (p.socket_id, p.die_id.unwrap_or(0), p.core_id, p.thread_id);
    let mut cpus = reply;
    cpus.sort_by_key(|c| key(&c.props));
    if let Some(pair) = cpus
        .windows(2)
        .find(|w| key(&w[0].props) == key(&w[1].props))
    {
        return Err(PlanError::DuplicateSlot {
            slot: describe(&pair[0].props),
        });
    }
    let slots: Vec<Slot> = cpus
        .into_iter()
        .zip(0u32..)
        .map(|(c, vcpu)| Slot {
            vcpu,
            props: c.props,
            driver: c.type_name,
            qom_path: c.qom_path,
        })
        .collect();
    if !slots[0].present() {
        return Err(PlanError::BootVcpuAbsent);
    }
    Ok(slots)
}

/// Plugs vCPU `vcpu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plug {
    pub vcpu: u32,
    pub request: DeviceAddRequest,
}

/// Unplugs vCPU `vcpu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplug {
    pub vcpu: u32,
    pub request: DeviceDelRequest,
}

/// What takes the VM to the count asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// It has that many vCPUs already.
    Unchanged,
    /// Lowest free slots first.
    Plug(Vec<Plug>),
    /// Highest present vCPUs first.
    Unplug(Vec<Unplug>),
}

/// libvirt's alias for vCPU `vcpu`, used as its device id.
pub fn vcpu_alias(vcpu: u32) -> String {
    format!("vcpu{vcpu}")
}

/// What device_del names a present vCPU by: its id when it has one, else its QOM path.
pub fn unplug_id(qom_path: &str) -> String {
    match qom_path.strip_prefix("/machine/peripheral/") {
        Some(id) if !id.is_empty() && !id.contains('/') => id.to_string(),
        _ => qom_path.to_string(),
    }
}

/// Checks what can be checked before asking the VM anything.
pub fn check_count(count: u32) -> Result<(), PlanError> {
    if count == 0 {
        return Err(PlanError::BelowMinimum);
    }
    Ok(())
}

/// The plan that takes the VM with `slots` to `count` present vCPUs.
pub fn plan(slots: &[Slot], count: u32) -> Result<Plan, PlanError> {
    check_count(count)?;
    let max = u32::try_from(slots.len()).unwrap_or(u32::MAX);
    if count > max {
        return Err(PlanError::AboveMaximum { count, max });
    }
    let present = VcpuCount::of(slots).current;
    if count > present {
        let need = (count - present) as usize;
        let plugs = slots
            .iter()
            .filter(|s| !s.present())
            .take(need)
            .map(|s| Plug {
                vcpu: s.vcpu,
                request: DeviceAddRequest {
                    driver: s.driver.clone(),
                    id: Some(vcpu_alias(s.vcpu)),
                    socket_id: s.props.socket_id,
                    die_id: s.props.die_id,
                    core_id: s.props.core_id,
                    thread_id: s.props.thread_id,
                },
            })
            .collect();
        return Ok(Plan::Plug(plugs));
    }
    if count < present {
        let excess = (present - count) as usize;
        let unplugs = slots
            .iter()
            .rev()
            .filter(|s| s.vcpu != 0)
            .filter_map(|s| {
                let path = s.qom_path.as_deref()?;
                Some(Unplug {
                    vcpu: s.vcpu,
                    request: DeviceDelRequest {
                        id: unplug_id(path),
                    },
                })
            })
            .take(excess)
            .collect();
        return Ok(Plan::Unplug(unplugs));
    }
    Ok(Plan::Unchanged)
}

/// What setvcpus waits for its vCPUs to become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// Plugged: present.
    Present,
    /// Unplugged: ejected by the guest.
    Gone,
}

/// Which of `vcpus` are not yet what is `awaited` in `slots`.
pub fn waiting_for(slots: &[Slot], vcpus: &[u32], awaited: Awaited) -> Vec<u32> {
    let want_present = awaited == Awaited::Present;
    vcpus
        .iter()
        .copied()
        .filter(|&v| {
            slots
                .iter()
                .find(|s| s.vcpu == v)
                .is_some_and(|s| s.present() != want_present)
        })
        .collect()
}

/// `vCPU 3`, `vCPUs 3 and 2`, `vCPUs 4, 3 and 2`.
pub fn name_vcpus(vcpus: &[u32]) -> String {
    let numbers: Vec<String> = vcpus.iter().map(u32::to_string).collect();
    match numbers.as_slice() {
        [] => "no vCPU".to_string(),
        [one] => format!("vCPU {one}"),
        [init @ .., last] => format!("vCPUs {} and {last}", init.join(", ")),
    }
}

/// An unplug the guest refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub vcpu: u32,
    /// The `_OST` status code.
    pub status: u64,
}

impl Rejection {
    /// ACPI's name for the status (ACPI 6.4, table 6.207, "_OST ejection status codes").
    pub fn reason(&self) -> &'static str {
        match self.status {
            0x01 => "non-specific failure",
            0x80 => "ejection not supported by the guest OS",
            0x81 => "device in use by an application",
            0x82 => "device busy",
            _ => "ejection dependency busy or not supported",
        }
    }
}

/// The vCPU whose unplug `event` reports refused by the guest: an `ACPI_DEVICE_OST` of a
/// CPU slot (QEMU's slot is the vCPU index) for an eject (source 0x003, the eject request,
/// or 0x103, eject processing) with a failure status (0x01 or 0x80-0x83), the rule libvirt
/// applies to memory devices (qemuProcessHandleAcpiOstInfo).
pub fn rejected_unplug(event: &Value) -> Option<Rejection> {
    if event["event"] != "ACPI_DEVICE_OST" {
        return None;
    }
    let info = &event["data"]["info"];
    if info["slot-type"] != "CPU" || !matches!(info["source"].as_u64()?, 0x003 | 0x103) {
        return None;
    }
    let status = info["status"].as_u64()?;
    if !matches!(status, 0x01 | 0x80..=0x83) {
        return None;
    }
    let vcpu = info["slot"].as_str()?.parse().ok()?;
    Some(Rejection { vcpu, status })
}

/// Why an unplug ended: the guest refused to eject `rejected`.
pub fn rejected_message(rejected: &[Rejection]) -> String {
    let each: Vec<String> = rejected
        .iter()
        .map(|r| {
            format!(
                "vCPU {} (_OST status {:#x}: {})",
                r.vcpu,
                r.status,
                r.reason()
            )
        })
        .collect();
    let stay = if rejected.len() == 1 {
        "it stays"
    } else {
        "they stay"
    };
    format!(
        "the guest refused to eject {}; {stay} present",
        each.join(", ")
    )
}

/// Why an unplug ended: `left` were still present after `seconds`.
pub fn timeout_message(left: &[u32], seconds: u64) -> String {
    let (they, theirs) = if left.len() == 1 {
        ("it is", "its request stays")
    } else {
        ("they are", "their requests stay")
    };
    format!(
        "the guest did not eject {} within {seconds} s: {they} still present and {theirs} \
         pending (the guest may eject later, `rvmm vcpucount` shows the count; a guest without \
         ACPI CPU hotplug never ejects)",
        name_vcpus(left)
    )
}

/// The VM's vCPU counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuCount {
    /// Slots: `--smp maxcpus`.
    pub maximum: u32,
    /// Present vCPUs (a vCPU the guest has not ejected yet still counts).
    pub current: u32,
}

impl VcpuCount {
    pub fn of(slots: &[Slot]) -> VcpuCount {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        VcpuCount {
            maximum: count(slots.len()),
            current: count(slots.iter().filter(|s| s.present()).count()),
        }
    }
}

/// `virsh vcpucount`'s table for a running transient domain (an rvmm VM has no stored
/// configuration, so there are no `config` rows): `%-12s %-12s %3d` per row.
pub fn render_vcpucount(c: VcpuCount) -> String {
    let mut out = String::new();
    for (which, n) in [("maximum", c.maximum), ("current", c.current)] {
        let _ = writeln!(out, "{which:<12} {:<12} {n:>3}", "live");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `max` slots of one socket per vCPU (libvirt's default topology), `0..present` present
    /// as boot vCPUs, listed highest first as query-hotpluggable-cpus does.
    fn reply(max: u32, present: &[u32]) -> Vec<HotpluggableCpu> {
        (0..max)
            .rev()
            .map(|i| HotpluggableCpu {
                props: CpuInstanceProperties {
                    socket_id: i,
                    die_id: None,
                    core_id: 0,
                    thread_id: 0,
                },
                vcpus_count: 1,
                qom_path: present
                    .contains(&i)
                    .then(|| format!("/machine/unattached/device[{i}]")),
                type_name: "qemu64-x86_64-cpu".into(),
            })
            .collect()
    }

    fn plugs(p: Plan) -> Vec<(u32, String)> {
        match p {
            Plan::Plug(v) => v
                .into_iter()
                .map(|p| (p.vcpu, p.request.id.unwrap_or_default()))
                .collect(),
            other => panic!("expected plugs, got {other:?}"),
        }
    }

    fn unplugs(p: Plan) -> Vec<(u32, String)> {
        match p {
            Plan::Unplug(v) => v.into_iter().map(|u| (u.vcpu, u.request.id)).collect(),
            other => panic!("expected unplugs, got {other:?}"),
        }
    }

    #[test]
    fn growing_plugs_the_lowest_free_slots_in_order() {
        let s = slots(reply(6, &[0, 1, 3])).unwrap();
        assert_eq!(
            plugs(plan(&s, 5).unwrap()),
            [(2, "vcpu2".into()), (4, "vcpu4".into())]
        );
        assert_eq!(
            plugs(plan(&s, 6).unwrap()),
            [
                (2, "vcpu2".into()),
                (4, "vcpu4".into()),
                (5, "vcpu5".into())
            ]
        );
    }

    #[test]
    fn shrinking_unplugs_the_highest_present_never_vcpu_0() {
        let mut r = reply(6, &[0, 1, 2, 4]);
        // vCPU 4 was plugged with an id, vCPU 2 without one.
        r[1].qom_path = Some("/machine/peripheral/vcpu4".into());
        r[3].qom_path = Some("/machine/peripheral-anon/device[0]".into());
        let s = slots(r).unwrap();
        assert_eq!(
            unplugs(plan(&s, 2).unwrap()),
            [
                (4, "vcpu4".into()),
                (2, "/machine/peripheral-anon/device[0]".into())
            ]
        );
        assert_eq!(
            unplugs(plan(&s, 1).unwrap()),
            [
                (4, "vcpu4".into()),
                (2, "/machine/peripheral-anon/device[0]".into()),
                (1, "/machine/unattached/device[1]".into())
            ]
        );
        assert_eq!(plan(&s, 4).unwrap(), Plan::Unchanged);
    }

    #[test]
    fn counts_out_of_range_name_the_limit() {
        let s = slots(reply(4, &[0, 1])).unwrap();
        let e = plan(&s, 5).unwrap_err();
        assert_eq!(e, PlanError::AboveMaximum { count: 5, max: 4 });
        assert_eq!(
            e.to_string(),
            "COUNT 5 is above the VM's maximum of 4 vCPUs (--smp maxcpus, or <vcpu> of its domain)"
        );
        assert_eq!(
            plan(&s, 0).unwrap_err().to_string(),
            "COUNT 0 is below the minimum of 1 vCPU (vCPU 0, the boot vCPU, is never unplugged)"
        );
        assert_eq!(check_count(0), Err(PlanError::BelowMinimum));
        assert_eq!(check_count(1), Ok(()));
        assert_eq!(plan(&s, 4).map(plugs).unwrap().len(), 2);
    }

    #[test]
    fn slots_are_numbered_socket_die_core_thread() {
        // 2 sockets × 2 dies × 1 core × 2 threads, listed in a shuffled order.
        let mut r = Vec::new();
        for i in [5u32, 2, 7, 0, 3, 6, 1, 4] {
            r.push(HotpluggableCpu {
                props: CpuInstanceProperties {
                    socket_id: i / 4,
                    die_id: Some(i / 2 % 2),
                    core_id: 0,
                    thread_id: i % 2,
                },
                vcpus_count: 1,
                qom_path: (i == 0).then(|| "/machine/unattached/device[0]".to_string()),
                type_name: "Haswell-x86_64-cpu".into(),
            });
        }
        let s = slots(r).unwrap();
        let ids: Vec<String> = s
            .iter()
            .map(|s| format!("{}: {}", s.vcpu, describe(&s.props)))
            .collect();
        assert_eq!(
            ids,
            [
                "0: socket-id=0,die-id=0,core-id=0,thread-id=0",
                "1: socket-id=0,die-id=0,core-id=0,thread-id=1",
                "2: socket-id=0,die-id=1,core-id=0,thread-id=0",
                "3: socket-id=0,die-id=1,core-id=0,thread-id=1",
                "4: socket-id=1,die-id=0,core-id=0,thread-id=0",
                "5: socket-id=1,die-id=0,core-id=0,thread-id=1",
                "6: socket-id=1,die-id=1,core-id=0,thread-id=0",
                "7: socket-id=1,die-id=1,core-id=0,thread-id=1",
            ]
        );
        // The request carries the die only when the slot has one.
        let Plan::Plug(p) = plan(&s, 2).unwrap() else {
            panic!("expected a plug")
        };
        assert_eq!(
            serde_json::to_value(&p[0].request).unwrap(),
            json!({"driver": "Haswell-x86_64-cpu", "id": "vcpu1", "socket-id": 0, "die-id": 0,
                   "core-id": 0, "thread-id": 1})
        );
        let s = slots(reply(2, &[0])).unwrap();
        let Plan::Plug(p) = plan(&s, 2).unwrap() else {
            panic!("expected a plug")
        };
        assert_eq!(
            serde_json::to_value(&p[0].request).unwrap(),
            json!({"driver": "qemu64-x86_64-cpu", "id": "vcpu1", "socket-id": 1, "core-id": 0,
                   "thread-id": 0})
        );
    }

    #[test]
    fn replies_that_cannot_be_planned_are_errors() {
        assert_eq!(slots(Vec::new()), Err(PlanError::NoSlots));
        let mut r = reply(2, &[0]);
        r[0].vcpus_count = 2;
        assert_eq!(
            slots(r).unwrap_err().to_string(),
            "query-hotpluggable-cpus: a slot holds 2 vCPUs; setvcpus plugs one vCPU per slot, as \
             x86 machines have"
        );
        let mut r = reply(2, &[0]);
        r[0].props.socket_id = 0;
        assert_eq!(
            slots(r).unwrap_err().to_string(),
            "query-hotpluggable-cpus lists the slot socket-id=0,core-id=0,thread-id=0 twice"
        );
        assert_eq!(slots(reply(2, &[1])), Err(PlanError::BootVcpuAbsent));
    }

    #[test]
    fn unplug_ids_are_device_ids_or_qom_paths() {
        assert_eq!(unplug_id("/machine/peripheral/vcpu3"), "vcpu3");
        assert_eq!(
            unplug_id("/machine/unattached/device[2]"),
            "/machine/unattached/device[2]"
        );
        assert_eq!(
            unplug_id("/machine/peripheral-anon/device[0]"),
            "/machine/peripheral-anon/device[0]"
        );
        assert_eq!(unplug_id("/machine/peripheral/"), "/machine/peripheral/");
        assert_eq!(
            serde_json::to_value(DeviceDelRequest { id: "vcpu3".into() }).unwrap(),
            json!({"id": "vcpu3"})
        );
    }

    #[test]
    fn waiting_lists_the_vcpus_not_there_yet() {
        let s = slots(reply(4, &[0, 1, 3])).unwrap();
        assert_eq!(waiting_for(&s, &[3, 2], Awaited::Gone), [3]);
        assert_eq!(waiting_for(&s, &[3, 2], Awaited::Present), [2]);
        assert_eq!(name_vcpus(&[3]), "vCPU 3");
        assert_eq!(name_vcpus(&[3, 2]), "vCPUs 3 and 2");
        assert_eq!(name_vcpus(&[4, 3, 2]), "vCPUs 4, 3 and 2");
    }

    #[test]
    fn eject_failures_reported_by_the_guest_are_rejections() {
        let ost = |slot_type: &str, slot: &str, source: u64, status: u64| {
            json!({"event": "ACPI_DEVICE_OST", "data": {"info": {"device": "vcpu2",
                   "slot": slot, "slot-type": slot_type, "source": source, "status": status}},
                   "timestamp": {"seconds": 1, "microseconds": 0}})
        };
        let r = rejected_unplug(&ost("CPU", "2", 0x103, 0x82)).unwrap();
        assert_eq!(
            r,
            Rejection {
                vcpu: 2,
                status: 0x82
            }
        );
        assert_eq!(r.reason(), "device busy");
        assert_eq!(
            rejected_unplug(&ost("CPU", "3", 0x003, 0x01)).map(|r| r.reason()),
            Some("non-specific failure")
        );
        // Success, "in progress", insertion events, other devices, malformed slots: not.
        assert_eq!(rejected_unplug(&ost("CPU", "2", 0x103, 0x00)), None);
        assert_eq!(rejected_unplug(&ost("CPU", "2", 0x103, 0x84)), None);
        assert_eq!(rejected_unplug(&ost("CPU", "2", 0x200, 0x01)), None);
        assert_eq!(rejected_unplug(&ost("DIMM", "2", 0x103, 0x01)), None);
        assert_eq!(rejected_unplug(&ost("CPU", "x", 0x103, 0x01)), None);
        assert_eq!(
            rejected_unplug(&json!({"event": "DEVICE_DELETED", "data": {"device": "vcpu2"}})),
            None
        );
    }

    #[test]
    fn unplugs_that_end_badly_name_the_vcpus() {
        assert_eq!(
            rejected_message(&[Rejection {
                vcpu: 2,
                status: 0x82
            }]),
            "the guest refused to eject vCPU 2 (_OST status 0x82: device busy); it stays present"
        );
        assert_eq!(
            rejected_message(&[
                Rejection {
                    vcpu: 3,
                    status: 0x01
                },
                Rejection {
                    vcpu: 2,
                    status: 0x80
                }
            ]),
            "the guest refused to eject vCPU 3 (_OST status 0x1: non-specific failure), vCPU 2 \
             (_OST status 0x80: ejection not supported by the guest OS); they stay present"
        );
        assert_eq!(
            timeout_message(&[3], 30),
            "the guest did not eject vCPU 3 within 30 s: it is still present and its request \
             stays pending (the guest may eject later, `rvmm vcpucount` shows the count; a guest \
             without ACPI CPU hotplug never ejects)"
        );
        assert!(timeout_message(&[3, 2], 1).starts_with(
            "the guest did not eject vCPUs 3 and 2 within 1 s: they are still present and their \
             requests stay pending"
        ));
    }

    #[test]
    fn vcpucount_prints_virshs_table() {
        let s = slots(reply(16, &[0, 1])).unwrap();
        assert_eq!(
            VcpuCount::of(&s),
            VcpuCount {
                maximum: 16,
                current: 2
            }
        );
        assert_eq!(
            render_vcpucount(VcpuCount::of(&s)),
            "maximum      live          16\ncurrent      live           2\n"
        );
    }
}
