//! What the host's CPUs are, as the kernel reports them: /proc/cpuinfo (vendor, model name,
//! family/model/stepping, flags) and the sysfs topology (package, die and core of each
//! online CPU), summarized the way `lscpu` counts sockets, cores per socket and threads per
//! core. Which CPUs exist, are online or may be used is `host::cpus`'s.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use thiserror::Error;

use super::sysfs::HostFs;

/// /proc/cpuinfo text that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CpuInfoError {
    #[error("/proc/cpuinfo: no \"processor\" entries")]
    Empty,
    #[error(
        "/proc/cpuinfo line {line}: field \"{field}\" has value \"{value}\", which is not a number"
    )]
    BadNumber {
        line: usize,
        field: String,
        value: String,
    },
}

/// One `processor` block of /proc/cpuinfo (x86 fields).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CpuInfoEntry {
    pub processor: u32,
    pub vendor_id: String,
    pub model_name: String,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    /// `physical id`: the package.
    pub physical_id: Option<u32>,
    /// `core id`.
    pub core_id: Option<u32>,
    pub flags: Vec<String>,
}

/// Parses /proc/cpuinfo (blocks separated by blank lines, `key<TAB>: value` lines).
pub fn parse_cpuinfo(text: &str) -> Result<Vec<CpuInfoEntry>, CpuInfoError> {
    let mut out: Vec<CpuInfoEntry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        let number = |v: &str| {
            v.parse::<u32>().map_err(|_| CpuInfoError::BadNumber {
                line: i + 1,
                field: key.to_string(),
                value: v.to_string(),
            })
        };
        if key == "processor" {
            out.push(CpuInfoEntry {
                processor: number(value)?,
                ..Default::default()
            });
            continue;
        }
        let Some(cur) = out.last_mut() else {
            continue;
        };
        match key {
            "vendor_id" => cur.vendor_id = value.to_string(),
            "model name" => cur.model_name = value.to_string(),
            "cpu family" => cur.family = number(value)?,
            "model" => cur.model = number(value)?,
            "stepping" => cur.stepping = number(value)?,
            "physical id" => cur.physical_id = Some(number(value)?),
            "core id" => cur.core_id = Some(number(value)?),
            "flags" => cur.flags = value.split_whitespace().map(String::from).collect(),
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(CpuInfoError::Empty);
    }
    Ok(out)
}

/// Where one online CPU sits (sysfs `topology/`, else /proc/cpuinfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuPlace {
    pub cpu: u32,
    pub package: u32,
    pub die: u32,
    pub core: u32,
}

/// Sockets, cores per socket and threads per core as `lscpu` derives them: sockets are
/// distinct packages; cores are distinct (package, die, core) triples; threads per core
/// and cores per socket are the CPU and core counts divided out (rounded down, as lscpu).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TopologyCounts {
    pub cpus: u32,
    pub sockets: u32,
    pub cores_per_socket: u32,
    pub threads_per_core: u32,
}

/// Counts sockets, cores and threads over the online CPUs' places.
pub fn count_topology(places: &[CpuPlace]) -> TopologyCounts {
    let cpus = places.len() as u32;
    let sockets = places
        .iter()
        .map(|p| p.package)
        .collect::<BTreeSet<_>>()
        .len() as u32;
    let cores = places
        .iter()
        .map(|p| (p.package, p.die, p.core))
        .collect::<BTreeSet<_>>()
        .len() as u32;
    TopologyCounts {
        cpus,
        sockets,
        cores_per_socket: cores.checked_div(sockets).unwrap_or(0),
        threads_per_core: cpus.checked_div(cores).unwrap_or(0),
    }
}

/// What the host's CPUs are and where the online ones sit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    pub vendor_id: String,
    pub model_name: String,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    /// The online CPUs' places, in CPU order.
    pub places: Vec<CpuPlace>,
    pub counts: TopologyCounts,
    /// The first CPU's flags (Linux's names).
    pub flags: BTreeSet<String>,
}

/// Reads the online CPUs' places: sysfs topology when present, else the cpuinfo ids.
fn places(fs: &HostFs, online: &[u32], info: &[CpuInfoEntry]) -> Vec<CpuPlace> {
    let by_cpu: BTreeMap<u32, &CpuInfoEntry> = info.iter().map(|e| (e.processor, e)).collect();
    online
        .iter()
        .map(|&cpu| {
            let topo = |f: &str| {
                fs.read_u64(&format!("/sys/devices/system/cpu/cpu{cpu}/topology/{f}"))
                    .map(|v| v as u32)
            };
            let entry = by_cpu.get(&cpu);
            CpuPlace {
                cpu,
                package: topo("physical_package_id")
                    .or_else(|| entry.and_then(|e| e.physical_id))
                    .unwrap_or(0),
                die: topo("die_id").unwrap_or(0),
                core: topo("core_id")
                    .or_else(|| entry.and_then(|e| e.core_id))
                    .unwrap_or(cpu),
            }
        })
        .collect()
}

impl CpuInfo {
    /// Reads /proc/cpuinfo and the topology of the `online` CPUs (`host::cpus`'s list; when
    /// it is empty, the CPUs /proc/cpuinfo lists).
    pub fn read(fs: &HostFs, online: &[u32]) -> Result<CpuInfo, CpuInfoError> {
        let info = parse_cpuinfo(&fs.read("/proc/cpuinfo").unwrap_or_default())?;
        let listed: Vec<u32>;
        let online = if online.is_empty() {
            listed = info.iter().map(|e| e.processor).collect();
            &listed
        } else {
            online
        };
        let places = places(fs, online, &info);
        let first = &info[0];
        Ok(CpuInfo {
            vendor_id: first.vendor_id.clone(),
            model_name: first.model_name.clone(),
            family: first.family,
            model: first.model,
            stepping: first.stepping,
            counts: count_topology(&places),
            places,
            flags: first.flags.iter().cloned().collect(),
        })
    }

    /// True when the host CPU reports the Linux flag `name`.
    pub fn has(&self, name: &str) -> bool {
        self.flags.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CPUS: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n\
model\t\t: 167\nmodel name\t: Intel(R) Xeon(R) Processor\nstepping\t: 1\nphysical id\t: 0\n\
core id\t\t: 0\nflags\t\t: fpu vme avx2 hypervisor\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n\
cpu family\t: 6\nmodel\t\t: 167\nmodel name\t: Intel(R) Xeon(R) Processor\nstepping\t: 1\n\
physical id\t: 0\ncore id\t\t: 1\nflags\t\t: fpu vme avx2 hypervisor\n\n";

    #[test]
    fn parses_processor_blocks() {
        let e = parse_cpuinfo(TWO_CPUS).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].processor, 1);
        assert_eq!(e[1].vendor_id, "GenuineIntel");
        assert_eq!(e[0].model_name, "Intel(R) Xeon(R) Processor");
        assert_eq!((e[0].family, e[0].model, e[0].stepping), (6, 167, 1));
        assert_eq!(e[1].core_id, Some(1));
        assert_eq!(e[0].flags, ["fpu", "vme", "avx2", "hypervisor"]);
    }

    #[test]
    fn bad_numbers_name_the_line_and_field() {
        let err = parse_cpuinfo("processor\t: 0\ncpu family\t: six\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/proc/cpuinfo line 2: field \"cpu family\" has value \"six\", which is not a number"
        );
        assert_eq!(parse_cpuinfo("").unwrap_err(), CpuInfoError::Empty);
    }

    #[test]
    fn counts_like_lscpu() {
        // 2 packages x 2 cores x 2 threads.
        let mut places = Vec::new();
        for cpu in 0..8u32 {
            places.push(CpuPlace {
                cpu,
                package: cpu / 4,
                die: 0,
                core: (cpu / 2) % 2,
            });
        }
        assert_eq!(
            count_topology(&places),
            TopologyCounts {
                cpus: 8,
                sockets: 2,
                cores_per_socket: 2,
                threads_per_core: 2
            }
        );
    }

    #[test]
    fn reads_a_fixture_tree() {
        let dir = std::env::temp_dir().join(format!("rvmm-cpuinfo-{}", std::process::id()));
        let w = |p: &str, v: &str| {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        };
        w("proc/cpuinfo", TWO_CPUS);
        // CPU 1's sysfs topology puts it on package 1; CPU 0 has none (cpuinfo's ids).
        w(
            "sys/devices/system/cpu/cpu1/topology/physical_package_id",
            "1\n",
        );
        w("sys/devices/system/cpu/cpu1/topology/core_id", "0\n");
        let fs = HostFs::at(&dir);
        let info = CpuInfo::read(&fs, &[0, 1]).unwrap();
        let listed = CpuInfo::read(&fs, &[]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(info.vendor_id, "GenuineIntel");
        assert_eq!((info.family, info.model, info.stepping), (6, 167, 1));
        assert!(info.has("avx2") && !info.has("avx512f"));
        assert_eq!(
            info.places[1],
            CpuPlace {
                cpu: 1,
                package: 1,
                die: 0,
                core: 0
            }
        );
        assert_eq!((info.counts.sockets, info.counts.cores_per_socket), (2, 1));
        assert_eq!(listed, info);
        assert_eq!(
            CpuInfo::read(&HostFs::at("/nonexistent-root"), &[]).unwrap_err(),
            CpuInfoError::Empty
        );
    }
}
