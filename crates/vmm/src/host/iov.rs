//! I/O virtualization on the host: IOMMU groups (/sys/kernel/iommu_groups/N/devices), the
//! IOMMU units (/sys/class/iommu) and SR-IOV capable network devices with their virtual
//! function counts (/sys/class/net/IF/device/sriov_totalvfs, sriov_numvfs).

use serde::Serialize;

use super::sysfs::HostFs;

/// One IOMMU group and the devices in it (PCI addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IommuGroup {
    pub id: u32,
    pub devices: Vec<String>,
}

/// An SR-IOV capable NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SriovNic {
    pub interface: String,
    /// The PCI device behind it (the `device` link's last component).
    pub pci: Option<String>,
    pub total_vfs: u64,
    pub enabled_vfs: u64,
}

/// The host's I/O virtualization state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostIov {
    /// /sys/class/iommu entries (`dmar0`, `ivhd0`, ...).
    pub iommus: Vec<String>,
    pub groups: Vec<IommuGroup>,
    pub sriov: Vec<SriovNic>,
    /// The IOMMU switches on the kernel command line (`intel_iommu=`, `amd_iommu=`, `iommu=`).
    pub cmdline: Vec<String>,
}

/// The IOMMU-related parameters of a kernel command line.
pub fn iommu_params(cmdline: &str) -> Vec<String> {
    cmdline
        .split_whitespace()
        .take_while(|t| *t != "--")
        .filter(|t| {
            t.starts_with("intel_iommu=") || t.starts_with("amd_iommu=") || t.starts_with("iommu=")
        })
        .map(String::from)
        .collect()
}

impl HostIov {
    pub fn read(fs: &HostFs) -> HostIov {
        let groups = fs
            .list("/sys/kernel/iommu_groups")
            .into_iter()
            .filter_map(|g| {
                let id = g.parse().ok()?;
                Some(IommuGroup {
                    id,
                    devices: fs.list(&format!("/sys/kernel/iommu_groups/{g}/devices")),
                })
            })
            .collect();
        let sriov = fs
            .list("/sys/class/net")
            .into_iter()
            .filter_map(|ifname| {
                let dev = format!("/sys/class/net/{ifname}/device");
                let total_vfs = fs.read_u64(&format!("{dev}/sriov_totalvfs"))?;
                Some(SriovNic {
                    pci: fs
                        .link(&dev)
                        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())),
                    enabled_vfs: fs.read_u64(&format!("{dev}/sriov_numvfs")).unwrap_or(0),
                    total_vfs,
                    interface: ifname,
                })
            })
            .collect();
        HostIov {
            iommus: fs.list("/sys/class/iommu"),
            groups,
            sriov,
            cmdline: iommu_params(&fs.read("/proc/cmdline").unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iommu_switches() {
        assert_eq!(
            iommu_params("ro intel_iommu=on iommu=pt quiet -- iommu=off"),
            ["intel_iommu=on", "iommu=pt"]
        );
        assert!(iommu_params("console=ttyS0").is_empty());
    }

    #[test]
    fn reads_groups_and_vfs_from_a_fixture_tree() {
        let dir = std::env::temp_dir().join(format!("rvmm-iov-{}", std::process::id()));
        let mk = |p: &str| std::fs::create_dir_all(dir.join(p)).unwrap();
        mk("sys/kernel/iommu_groups/10/devices/0000:3b:00.0");
        mk("sys/kernel/iommu_groups/10/devices/0000:3b:00.1");
        mk("sys/kernel/iommu_groups/2/devices/0000:00:02.0");
        mk("sys/class/net/eth0/device");
        mk("sys/class/net/lo");
        std::fs::write(dir.join("sys/class/net/eth0/device/sriov_totalvfs"), "64\n").unwrap();
        std::fs::write(dir.join("sys/class/net/eth0/device/sriov_numvfs"), "8\n").unwrap();
        let iov = HostIov::read(&HostFs::at(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(iov.groups.len(), 2);
        assert_eq!(iov.groups[0].id, 2);
        assert_eq!(iov.groups[1].devices, ["0000:3b:00.0", "0000:3b:00.1"]);
        assert_eq!(iov.sriov.len(), 1);
        assert_eq!(iov.sriov[0].interface, "eth0");
        assert_eq!((iov.sriov[0].total_vfs, iov.sriov[0].enabled_vfs), (64, 8));
    }
}
