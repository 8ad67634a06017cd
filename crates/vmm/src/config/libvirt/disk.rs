//! `<devices><disk>`: libvirt's file-backed virtio disks, mapped onto the `--disk` list
//! (`config::disk`), in document order (the domain's disks take the first virtio slots,
//! and `--disk` on the command line adds more after them).
//!
//! ```xml
//! <disk type='file' device='disk'>
//!   <driver name='qemu' type='raw' cache='none'/>
//!   <source file='/var/lib/images/root.img'/>
//!   <target dev='vda' bus='virtio'/>
//!   <readonly/>
//!   <serial>ROOT-1</serial>
//! </disk>
//! ```
//!
//! A disk rvmm cannot give the guest as written (another type, device, bus or image format,
//! a cache mode with other guarantees, no source file) is an error, not a warning: the guest
//! would boot without a disk the domain gives it, or with one that behaves differently.
//! Elements that do not change what the guest reads and writes (`<address>`, `<alias>`,
//! `<boot>`, ...) are ignored with a warning.

use roxmltree::Node;

use super::{elements, strip_option, tag, text, Ctx, DomainError};
use crate::config::disk::{check_serial, Cache, DiskConfig};

/// Every `<disk>` under `<devices>`, in order.
pub(super) fn disks(ctx: &mut Ctx, devices: Option<Node>) -> Result<Vec<DiskConfig>, DomainError> {
    let Some(devices) = devices else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for d in elements(devices).filter(|c| c.has_tag_name("disk")) {
        let (disk, target) = disk(ctx, d)?;
        if let Some(t) = target {
            if targets.contains(&t) {
                return Err(ctx.err(
                    d,
                    format!("<target dev='{t}'>"),
                    "a second disk with this target (each disk needs its own)",
                ));
            }
            targets.push(t);
        }
        out.push(disk);
    }
    Ok(out)
}

fn disk(ctx: &mut Ctx, d: Node) -> Result<(DiskConfig, Option<String>), DomainError> {
    ctx.check_attrs(d, &["type", "device"]);
    match d.attribute("type") {
        Some("file") => {}
        Some(other) => {
            return Err(ctx.attr_err(
                d,
                "type",
                format!("rvmm's disks are image files (type='file'), not '{other}'"),
            ))
        }
        None => return Err(ctx.text_err(d, "no type (rvmm's disks are type='file')")),
    }
    match d.attribute("device").unwrap_or("disk") {
        "disk" => {}
        other => {
            return Err(ctx.attr_err(
                d,
                "device",
                format!("rvmm's disks are virtio-blk disks (device='disk'), not '{other}'"),
            ))
        }
    }
    let (mut path, mut readonly, mut cache, mut serial, mut target) =
        (None, false, Cache::default(), None, None);
    for c in elements(d) {
        match c.tag_name().name() {
            "driver" => cache = driver(ctx, c)?,
            "source" => {
                ctx.check_attrs(c, &["file"]);
                match c.attribute("file") {
                    Some(f) if !f.is_empty() => path = Some(f.to_string()),
                    _ => return Err(ctx.text_err(c, "no file='...' (the image file to use)")),
                }
            }
            "target" => {
                ctx.check_attrs(c, &["dev", "bus"]);
                match c.attribute("bus") {
                    None | Some("virtio") => {}
                    Some(other) => {
                        return Err(ctx.attr_err(
                            c,
                            "bus",
                            format!("rvmm's disks are on virtio (bus='virtio'), not '{other}'"),
                        ))
                    }
                }
                target = c.attribute("dev").map(str::to_string);
            }
            "readonly" => readonly = true,
            "serial" => {
                let s = text(c);
                if let Err(e) = check_serial(s) {
                    return Err(ctx.text_err(c, strip_option(&e.to_string(), "--disk")));
                }
                serial = Some(s.to_string());
            }
            _ => ctx.ignored(c, "it does not change the disk rvmm gives the guest"),
        }
    }
    let Some(path) = path else {
        return Err(ctx.err(
            d,
            tag(d, &["type", "device"]),
            "no <source file='...'/> (the image file to use)",
        ));
    };
    Ok((
        DiskConfig {
            path: path.into(),
            readonly,
            cache,
            serial,
        },
        target,
    ))
}

/// `<driver name='qemu' type='raw' cache='...'/>`: the cache mode.
fn driver(ctx: &mut Ctx, c: Node) -> Result<Cache, DomainError> {
    ctx.check_attrs(c, &["name", "type", "cache"]);
    if let Some(name) = c.attribute("name") {
        if name != "qemu" {
            ctx.warn(c, format!("name='{name}': rvmm serves the disk itself"));
        }
    }
    match c.attribute("type") {
        None | Some("raw") => {}
        Some(other) => {
            return Err(ctx.attr_err(
                c,
                "type",
                format!("rvmm reads raw images only (type='raw'), not '{other}'"),
            ))
        }
    }
    match c.attribute("cache") {
        // libvirt's 'default' is the hypervisor's: QEMU's is writeback.
        None | Some("default") => Ok(Cache::Writeback),
        Some(v) => Cache::parse(v).ok_or_else(|| {
            ctx.attr_err(
                c,
                "cache",
                format!(
                    "rvmm has cache='none' (O_DIRECT) and 'writeback', not '{v}' (its \
                     guarantees differ)"
                ),
            )
        }),
    }
}
