//! `rvmm setvcpus VM COUNT` and `rvmm vcpucount VM` (virsh's commands for a running
//! domain): read the slots with `query-hotpluggable-cpus`, carry out vcpu_plan.rs's plan with
//! `device_add` / `device_del`, and wait until the slots show it done.
//!
//! Waiting. A plugged vCPU is present as soon as the VMM has created it; an unplugged one
//! stays present until the guest ejects it (its OS must offline it first), which may take a
//! while or never happen (a guest without ACPI CPU hotplug). setvcpus polls
//! query-hotpluggable-cpus every [`POLL`] until every vCPU it asked for is there or gone,
//! for at most `--timeout` seconds (default [`DEFAULT_TIMEOUT`]; libvirt waits 5 s for an
//! unplug, which a loaded Linux guest can exceed). On a timeout it names the vCPUs still
//! present and exits non-zero; the requests stay pending with the guest. A guest that
//! reports an eject failed (`ACPI_DEVICE_OST`, vcpu_plan.rs's `rejected_unplug`) ends the
//! wait at once with the reason.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use vmm::control::commands::query_hotpluggable_cpus::{self, HotpluggableCpu};
use vmm::control::{ClientError, QmpClient};

use crate::cli::{SetvcpusArgs, VcpucountArgs};
use crate::cmd_qmp::connect;
use crate::output::{out, outln};
use crate::vcpu_plan::{
    check_count, name_vcpus, plan, rejected_message, rejected_unplug, render_vcpucount, slots,
    timeout_message, waiting_for, Awaited, Plan, Plug, Rejection, Slot, Unplug, VcpuCount,
};

/// `--timeout`'s default, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 30;
/// How often the slots are read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// The VM's slots, numbered.
fn read_slots(client: &mut QmpClient) -> Result<Vec<Slot>> {
    let reply: Vec<HotpluggableCpu> = client
        .call(query_hotpluggable_cpus::NAME, None)
        .context(query_hotpluggable_cpus::NAME)?;
    Ok(slots(reply)?)
}

/// How a wait ended.
enum Waited {
    Done,
    /// These were still waited for.
    TimedOut(Vec<u32>),
    /// The guest refused to eject these.
    Rejected(Vec<Rejection>),
}

/// Reads the slots until `vcpus` are all what is `awaited`, `timeout` passes or, when
/// waiting for them to go, the guest reports it refuses to eject one.
fn wait(
    client: &mut QmpClient,
    vcpus: &[u32],
    awaited: Awaited,
    timeout: Duration,
) -> Result<Waited> {
    let start = Instant::now();
    loop {
        let left = waiting_for(&read_slots(client)?, vcpus, awaited);
        if left.is_empty() {
            return Ok(Waited::Done);
        }
        let rejected: Vec<Rejection> = client
            .take_events()
            .iter()
            .filter_map(rejected_unplug)
            .filter(|r| awaited == Awaited::Gone && left.contains(&r.vcpu))
            .collect();
        if !rejected.is_empty() {
            return Ok(Waited::Rejected(rejected));
        }
        if start.elapsed() >= timeout {
            return Ok(Waited::TimedOut(left));
        }
        std::thread::sleep(POLL);
    }
}

/// Whether a device_del error says an unplug request is pending already (QEMU's text).
fn already_unplugging(e: &ClientError) -> bool {
    matches!(e, ClientError::Qmp { desc, .. } if desc.contains("is already in the process of unplug"))
}

/// `device_add` for each plug in order, then waits until they are all present.
fn plug_all(client: &mut QmpClient, plugs: &[Plug], args: &SetvcpusArgs) -> Result<()> {
    let mut done: Vec<u32> = Vec::new();
    for p in plugs {
        client.request(&p.request).map_err(|e| {
            let before = if done.is_empty() {
                String::new()
            } else {
                format!("{} plugged, then ", name_vcpus(&done))
            };
            anyhow!(
                "setvcpus: {before}device_add of vCPU {} ({}) failed: {e}",
                p.vcpu,
                p.request.id.as_deref().unwrap_or("no id")
            )
        })?;
        done.push(p.vcpu);
    }
    let timeout = Duration::from_secs(args.timeout);
    match wait(client, &done, Awaited::Present, timeout).context("setvcpus")? {
        Waited::Done | Waited::Rejected(_) => Ok(()),
        Waited::TimedOut(left) => bail!(
            "setvcpus: device_add returned, but {} did not appear within {} s",
            name_vcpus(&left),
            args.timeout
        ),
    }
}

/// `device_del` for each unplug in order, then waits until the guest has ejected them all.
fn unplug_all(client: &mut QmpClient, unplugs: &[Unplug], args: &SetvcpusArgs) -> Result<()> {
    // Only what the guest says about these requests counts.
    client.take_events();
    let mut asked: Vec<u32> = Vec::new();
    for u in unplugs {
        match client.request(&u.request) {
            Ok(_) => {}
            Err(e) if already_unplugging(&e) => {}
            Err(e) => {
                let before = if asked.is_empty() {
                    String::new()
                } else {
                    format!("unplug of {} requested, then ", name_vcpus(&asked))
                };
                bail!(
                    "setvcpus: {before}device_del of vCPU {} ({}) failed: {e}",
                    u.vcpu,
                    u.request.id
                );
            }
        }
        asked.push(u.vcpu);
    }
    let timeout = Duration::from_secs(args.timeout);
    match wait(client, &asked, Awaited::Gone, timeout).context("setvcpus")? {
        Waited::Done => Ok(()),
        Waited::Rejected(rejected) => bail!("setvcpus: {}", rejected_message(&rejected)),
        Waited::TimedOut(left) => bail!("setvcpus: {}", timeout_message(&left, args.timeout)),
    }
}

pub fn setvcpus(args: SetvcpusArgs) -> Result<ExitCode> {
    // COUNT 0 needs no VM to be wrong.
    check_count(args.count).context("setvcpus")?;
    let mut client = connect(&args.vm)?;
    let slots = read_slots(&mut client).context("setvcpus")?;
    match plan(&slots, args.count).context("setvcpus")? {
        Plan::Unchanged => {}
        Plan::Plug(plugs) => plug_all(&mut client, &plugs, &args)?,
        Plan::Unplug(unplugs) => unplug_all(&mut client, &unplugs, &args)?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn vcpucount(args: VcpucountArgs) -> Result<ExitCode> {
    let mut client = connect(&args.vm)?;
    let count = VcpuCount::of(&read_slots(&mut client).context("vcpucount")?);
    // virsh: with any flag, just the number asked for (--live and --current mean the
    // running VM, the only state an rvmm VM has).
    if args.maximum {
        outln!("{}", count.maximum)?;
    } else if args.active || args.live || args.current {
        outln!("{}", count.current)?;
    } else {
        out!("{}", render_vcpucount(count))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_unplug_is_not_an_error_to_ask_again() {
        let qmp = |desc: &str| ClientError::Qmp {
            class: "GenericError".into(),
            desc: desc.into(),
        };
        // QEMU's qmp_device_del text for a device whose unplug is pending.
        assert!(already_unplugging(&qmp(
            "Device vcpu2 is already in the process of unplug"
        )));
        assert!(!already_unplugging(&qmp("Boot CPU is unpluggable")));
        assert!(!already_unplugging(&ClientError::Closed {
            path: "/x.qmp".into()
        }));
    }
}
