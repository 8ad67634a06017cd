//! `<devices><disk>`: file-backed virtio disks become `--disk`s in document order; what
//! rvmm cannot give the guest as written is one error naming the element and value.

use super::*;
use crate::config::disk::{Cache, DiskConfig};

fn devices(inner: &str) -> String {
    dom(&format!(
        "<memory>131072</memory>\n<devices>\n{inner}\n</devices>"
    ))
}

#[test]
fn disks_in_document_order() {
    let d = parse(&devices(
        "<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/>\
         <source file='/img/root.img'/><target dev='vda' bus='virtio'/>\
         <serial>ROOT-1</serial></disk>\n\
         <disk type='file' device='disk'><driver name='qemu' type='raw' cache='writeback'/>\
         <source file='/img/data.img'/><target dev='vdb' bus='virtio'/><readonly/>\
         <address type='virtio-mmio'/></disk>\n\
         <disk type='file'><source file='/img/c.img'/><target dev='vdc'/></disk>",
    ))
    .unwrap();
    assert_eq!(
        d.config.disks,
        [
            DiskConfig {
                path: "/img/root.img".into(),
                readonly: false,
                cache: Cache::None,
                serial: Some("ROOT-1".into()),
            },
            DiskConfig {
                path: "/img/data.img".into(),
                readonly: true,
                cache: Cache::Writeback,
                serial: None,
            },
            DiskConfig {
                path: "/img/c.img".into(),
                readonly: false,
                cache: Cache::Writeback,
                serial: None,
            },
        ]
    );
    assert_eq!(
        d.warnings,
        [
            "--domain vm.xml:6: domain/devices/disk/address: ignored (it does not change the disk \
          rvmm gives the guest)"
        ]
    );
}

#[test]
fn disks_rvmm_cannot_give_are_errors() {
    let disk = |attrs: &str, inner: &str| {
        err(&devices(&format!(
            "<disk {attrs}><source file='/a.img'/>{inner}</disk>"
        )))
    };
    let file = "type='file' device='disk'";
    assert_eq!(
        disk(file, "<driver name='qemu' type='qcow2'/>"),
        "--domain vm.xml:5: <driver type='qcow2'>: rvmm reads raw images only (type='raw'), \
         not 'qcow2'"
    );
    assert_eq!(
        disk("type='file' device='cdrom'", ""),
        "--domain vm.xml:5: <disk device='cdrom'>: rvmm's disks are virtio-blk disks \
         (device='disk'), not 'cdrom'"
    );
    assert_eq!(
        disk(file, "<target dev='sda' bus='sata'/>"),
        "--domain vm.xml:5: <target bus='sata'>: rvmm's disks are on virtio (bus='virtio'), \
         not 'sata'"
    );
    assert_eq!(
        disk("type='block' device='disk'", ""),
        "--domain vm.xml:5: <disk type='block'>: rvmm's disks are image files (type='file'), \
         not 'block'"
    );
    assert_eq!(
        disk(
            file,
            "<driver name='qemu' type='raw' cache='writethrough'/>"
        ),
        "--domain vm.xml:5: <driver cache='writethrough'>: rvmm has cache='none' (O_DIRECT) \
         and 'writeback', not 'writethrough' (its guarantees differ)"
    );
    assert_eq!(
        disk(file, "<serial>has space</serial>"),
        "--domain vm.xml:5: <serial>: serial=has space: only printable ASCII without spaces or \
         commas is allowed"
    );
    assert_eq!(
        err(&devices(
            "<disk type='file' device='disk'><target dev='vda'/></disk>"
        )),
        "--domain vm.xml:5: <disk type='file' device='disk'>: no <source file='...'/> (the \
         image file to use)"
    );
    assert_eq!(
        err(&devices(
            "<disk type='file'><source file='/a'/><target dev='vda'/></disk>\n\
             <disk type='file'><source file='/b'/><target dev='vda'/></disk>"
        )),
        "--domain vm.xml:6: <target dev='vda'>: a second disk with this target (each disk needs \
         its own)"
    );
    let nine: String = (0..9)
        .map(|i| format!("<disk type='file'><source file='/{i}'/><target dev='vd{i}'/></disk>"))
        .collect();
    let e = err(&devices(&nine));
    assert!(e.contains("9") && e.contains("8"), "{e}");
}
