//! The rest of a domain: `<domain type>`, `<name>`, `<os>` (kernel, initrd, cmdline; no
//! kernel boots the probe guest), `<features>` (`<pmu>`; `<acpi/>` is always on in rvmm),
//! `<devices>` (the serial console is rvmm's stdio; `<interface type='ethernet'>` with a
//! virtio model is a `--net` NIC; disks and other NICs are warned about) and
//! the top-level elements rvmm ignores or refuses.

use std::path::PathBuf;

use roxmltree::Node;

use super::{elements, text, Ctx, DomainError};
use crate::config::balloon::BalloonConfig;
use crate::config::name::check_name;
use crate::config::net::{Mac, NetConfig};
use crate::config::BootSource;

/// `<domain type=>`: rvmm runs KVM domains.
pub(super) fn domain_type(ctx: &mut Ctx, root: Node) -> Result<(), DomainError> {
    ctx.check_attrs(root, &["type", "id"]);
    match root.attribute("type") {
        Some("kvm") => Ok(()),
        Some("qemu") => {
            ctx.warn(
                root,
                "type='qemu' asks for TCG emulation; rvmm always runs the guest on KVM",
            );
            Ok(())
        }
        Some(other) => Err(ctx.attr_err(
            root,
            "type",
            format!("rvmm runs KVM domains (type='kvm'), not '{other}'"),
        )),
        None => Err(ctx.text_err(
            root,
            "the 'type' attribute is missing (rvmm runs type='kvm')",
        )),
    }
}

/// `<name>`: also names the VM's control socket, so it follows `--name`'s rules.
pub(super) fn name(ctx: &Ctx, n: Node) -> Result<String, DomainError> {
    let name = text(n);
    check_name(name).map_err(|e| ctx.text_err(n, e.rule()))?;
    Ok(name.to_string())
}

/// A top-level element rvmm does not map: accepted, warned about or refused.
pub(super) fn other_top_level(ctx: &mut Ctx, n: Node) -> Result<(), DomainError> {
    match n.tag_name().name() {
        "uuid" | "genid" | "title" | "description" | "metadata" => {}
        "on_poweroff" | "on_reboot" | "on_crash" => {
            if text(n) != "destroy" {
                ctx.warn(
                    n,
                    format!("'{}' is not supported: rvmm ends the VM", text(n)),
                );
            }
        }
        "launchSecurity" => {
            return Err(ctx.text_err(
                n,
                "memory encryption is not supported; the guest would run unencrypted",
            ))
        }
        "iothreads" | "iothreadids" | "defaultiothread" => {
            ctx.ignored(n, "rvmm has no I/O threads")
        }
        "blkiotune" => ctx.ignored(n, "rvmm has no block devices to tune"),
        "resource" => ctx.ignored(
            n,
            "rvmm does not read <partition>: its cgroup parent is --cgroup-parent",
        ),
        "clock" => ctx.ignored(n, "rvmm gives the guest QEMU's default clock and timers"),
        "pm" => ctx.ignored(n, "rvmm offers no S3/S4 sleep states"),
        "seclabel" => ctx.ignored(n, "rvmm applies no security labels"),
        "sysinfo" => ctx.ignored(n, "rvmm gives the guest no SMBIOS tables"),
        _ => ctx.ignored(n, "not supported"),
    }
    Ok(())
}

/// `<features>`: returns `<pmu state>`; warns when `<acpi/>` is absent (rvmm always gives
/// the guest ACPI tables, which carry its CPUs and NUMA nodes).
pub(super) fn features(
    ctx: &mut Ctx,
    root: Node,
    n: Option<Node>,
) -> Result<Option<bool>, DomainError> {
    let mut pmu = None;
    let mut acpi = false;
    if let Some(n) = n {
        for c in elements(n) {
            match c.tag_name().name() {
                "acpi" => acpi = true,
                "apic" | "pae" => {}
                "pmu" => {
                    ctx.check_attrs(c, &["state"]);
                    pmu = Some(
                        ctx.attr_choice(c, "state", &["on", "off"])?
                            .ok_or_else(|| ctx.text_err(c, "the 'state' attribute is missing"))?
                            == "on",
                    );
                }
                _ => ctx.ignored(c, "not supported"),
            }
        }
    }
    if !acpi {
        ctx.warn(
            n.unwrap_or(root),
            "no <acpi/>, but rvmm always gives the guest ACPI tables (they describe its CPUs and \
             NUMA nodes)",
        );
    }
    Ok(pmu)
}

/// `<os>`: what boots.
pub(super) fn os(ctx: &mut Ctx, n: Option<Node>) -> Result<BootSource, DomainError> {
    let Some(n) = n else {
        return Err(
            ctx.domain_err("<domain> has no <os> (libvirt requires <os><type>hvm</type></os>)")
        );
    };
    ctx.check_attrs(n, &[]);
    let (mut kernel, mut initrd, mut cmdline) = (None, None, None);
    let mut typed = false;
    let mut boots = Vec::new();
    for c in elements(n) {
        match c.tag_name().name() {
            "type" => {
                typed = true;
                os_type(ctx, c)?;
            }
            "kernel" | "initrd" => {
                let path = text(c);
                if path.is_empty() {
                    return Err(ctx.text_err(c, "the path is empty"));
                }
                let slot = if c.has_tag_name("kernel") {
                    &mut kernel
                } else {
                    &mut initrd
                };
                *slot = Some(PathBuf::from(path));
            }
            "cmdline" => cmdline = Some(text(c).to_string()),
            "boot" => boots.push(c),
            _ => ctx.ignored(
                c,
                "rvmm boots a kernel or its probe guest, without firmware",
            ),
        }
    }
    if !typed {
        return Err(ctx.text_err(n, "no <type> (libvirt requires <type>hvm</type>)"));
    }
    let cmdline = cmdline.unwrap_or_default();
    match kernel {
        Some(kernel) => Ok(BootSource::Kernel {
            kernel,
            initrd,
            cmdline,
        }),
        None => {
            if let Some(&b) = boots.first() {
                ctx.ignored(
                    b,
                    "rvmm has no disks; without <kernel> the built-in probe guest boots",
                );
            }
            Ok(BootSource::Probe { cmdline, initrd })
        }
    }
}

fn os_type(ctx: &mut Ctx, c: Node) -> Result<(), DomainError> {
    ctx.check_attrs(c, &["arch", "machine"]);
    if text(c) != "hvm" {
        return Err(ctx.text_err(
            c,
            format!(
                "rvmm runs full virtualization guests (hvm), not '{}'",
                text(c)
            ),
        ));
    }
    if let Some(arch) = c.attribute("arch") {
        if arch != "x86_64" {
            return Err(ctx.attr_err(c, "arch", format!("rvmm runs x86_64 guests, not {arch}")));
        }
    }
    match c.attribute("machine") {
        None => {}
        Some(m) if m.contains("q35") => ctx.warn(
            c,
            format!("machine '{m}': rvmm's machine resembles QEMU's pc (i440FX), not q35"),
        ),
        Some(m) if m == "pc" || m.starts_with("pc-i440fx") || m.starts_with("pc-") => {}
        Some(m) => ctx.warn(
            c,
            format!("machine '{m}': rvmm's machine resembles QEMU's pc (i440FX)"),
        ),
    }
    Ok(())
}

/// Whether the domain has a balloon: libvirt adds a virtio `<memballoon>` unless one says
/// `model='none'` (and so does a domain without `<devices>`).
pub(super) fn has_balloon(devices: Option<Node>) -> bool {
    !devices.is_some_and(|d| {
        elements(d).any(|c| c.has_tag_name("memballoon") && c.attribute("model") == Some("none"))
    })
}

/// `<memballoon>`: virtio (or libvirt's default when absent) with `autodeflate` and
/// `freePageReporting`; `none` for no balloon. Statistics are not supported (warned about).
fn memballoon(ctx: &mut Ctx, c: Node) -> Result<Option<BalloonConfig>, DomainError> {
    let model = ctx.attr_choice(
        c,
        "model",
        &[
            "virtio",
            "virtio-transitional",
            "virtio-non-transitional",
            "xen",
            "none",
        ],
    )?;
    match model {
        Some("none") => return Ok(None),
        Some("xen") => {
            return Err(ctx.attr_err(
                c,
                "model",
                "'xen' needs a Xen host; rvmm's balloon is virtio",
            ))
        }
        None => return Err(ctx.attr_err(c, "model", "missing (libvirt requires one)")),
        _ => {}
    }
    ctx.check_attrs(c, &["model", "autodeflate", "freePageReporting"]);
    let onoff = |ctx: &Ctx, attr: &str| -> Result<bool, DomainError> {
        Ok(ctx.attr_choice(c, attr, &["on", "off"])? == Some("on"))
    };
    let config = BalloonConfig {
        deflate_on_oom: onoff(ctx, "autodeflate")?,
        free_page_reporting: onoff(ctx, "freePageReporting")?,
        initial_memory: None,
    };
    for child in elements(c) {
        match child.tag_name().name() {
            "address" | "alias" => {}
            "stats" => ctx.ignored(child, "rvmm's balloon has no statistics queue"),
            _ => ctx.ignored(child, "rvmm's balloon does not support this element"),
        }
    }
    Ok(Some(config))
}

/// `<devices>`: the console, virtio NICs on taps and the balloon are accepted; everything
/// else is warned about, except memory devices (the guest would get less RAM than libvirt
/// gives it). Returns the NICs and the balloon (libvirt's default virtio one when there is
/// no `<memballoon>`).
pub(super) fn devices(
    ctx: &mut Ctx,
    n: Option<Node>,
) -> Result<(Vec<NetConfig>, Option<BalloonConfig>), DomainError> {
    let mut nets = Vec::new();
    let mut balloon = Some(BalloonConfig::default());
    let Some(n) = n else {
        return Ok((nets, balloon));
    };
    let mut serials = 0;
    for c in elements(n) {
        match c.tag_name().name() {
            "emulator" => {}
            "serial" | "console" => {
                if c.has_tag_name("serial") {
                    serials += 1;
                    if serials > 1 {
                        ctx.ignored(c, "rvmm has one serial port (COM1, on stdio)");
                        continue;
                    }
                }
                match c.attribute("type") {
                    Some("pty" | "stdio") => {}
                    _ => ctx.warn(c, "the console is rvmm's stdio whatever its type"),
                }
            }
            "interface" => {
                if let Some(net) = interface(ctx, c, nets.len())? {
                    nets.push(net);
                }
            }
            // disk.rs.
            "disk" => {}
            "filesystem" | "hostdev" => ctx.ignored(c, "rvmm does not emulate this device"),
            "memballoon" => balloon = memballoon(ctx, c)?,
            "memory" => {
                return Err(ctx.text_err(
                    c,
                    "memory devices are not supported; the guest would have less memory than \
                     libvirt gives it",
                ))
            }
            _ => ctx.ignored(c, "rvmm does not emulate this device"),
        }
    }
    Ok((nets, balloon))
}

/// `<interface type='ethernet'>` with `<model type='virtio'/>`: a virtio-net NIC on the tap
/// `<target dev=>` names (rvmm creates one when there is no target), with `<mac address=>`
/// or the default MAC of NIC `index`. Other types and models are warned about and left out.
fn interface(ctx: &mut Ctx, n: Node, index: usize) -> Result<Option<NetConfig>, DomainError> {
    let kind = n.attribute("type").unwrap_or("");
    if kind != "ethernet" {
        ctx.ignored(
            n,
            &format!(
                "type='{kind}': rvmm attaches virtio NICs to taps, <interface type='ethernet'>"
            ),
        );
        return Ok(None);
    }
    ctx.check_attrs(n, &["type"]);
    let (mut tap, mut mac, mut model) = (None, None, None);
    for c in elements(n) {
        match c.tag_name().name() {
            "target" => {
                ctx.check_attrs(c, &["dev", "managed"]);
                tap = c.attribute("dev").map(str::to_string);
            }
            "mac" => {
                ctx.check_attrs(c, &["address"]);
                let Some(a) = c.attribute("address") else {
                    return Err(ctx.text_err(c, "the 'address' attribute is missing"));
                };
                let m = Mac::parse(a).map_err(|e| {
                    let rule = e.to_string();
                    let prefix = format!("--net: mac={a}: ");
                    let rule = rule.strip_prefix(&prefix).unwrap_or(&rule).to_string();
                    ctx.attr_err(c, "address", rule)
                })?;
                mac = Some(m);
            }
            "model" => model = c.attribute("type").map(str::to_string),
            "alias" | "address" => {}
            _ => ctx.ignored(c, "rvmm's NIC is a virtio-net device on a tap"),
        }
    }
    match model.as_deref() {
        Some("virtio") => {}
        None => ctx.warn(n, "no <model>: rvmm's NIC is virtio (model type='virtio')"),
        Some(other) => {
            ctx.ignored(
                n,
                &format!("model '{other}': rvmm emulates virtio NICs only (model type='virtio')"),
            );
            return Ok(None);
        }
    }
    let text = match &tap {
        Some(t) => format!("tap={t}"),
        None => "tap".to_string(),
    };
    let mut net = NetConfig::parse(&text, index).map_err(|e| {
        let rule = e.to_string();
        let rule = rule.strip_prefix("--net: ").unwrap_or(&rule).to_string();
        ctx.text_err(n, rule)
    })?;
    if let Some(m) = mac {
        net.mac = m;
    }
    Ok(Some(net))
}
