//! The rest of a domain: `<domain type>`, `<name>`, `<os>` (kernel, initrd, cmdline; no
//! kernel boots the probe guest), `<features>` (`<pmu>`; `<acpi/>` is always on in rvmm),
//! `<devices>` (the serial console is rvmm's stdio; disks and NICs are warned about) and
//! the top-level elements rvmm ignores or refuses.

use std::path::PathBuf;

use roxmltree::Node;

use super::{elements, text, Ctx, DomainError};
use crate::config::name::check_name;
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

/// `<devices>`: the console is accepted; everything else is warned about, except memory
/// devices (the guest would get less RAM than libvirt gives it).
pub(super) fn devices(ctx: &mut Ctx, n: Option<Node>) -> Result<(), DomainError> {
    let Some(n) = n else {
        return Ok(());
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
            // disk.rs.
            "disk" => {}
            "interface" | "filesystem" | "hostdev" => {
                ctx.ignored(c, "rvmm has no virtio devices yet")
            }
            "memballoon" => {
                if c.attribute("model") != Some("none") {
                    ctx.ignored(c, "rvmm has no balloon device");
                }
            }
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
    Ok(())
}
