//! Whether a pinning request suits this host, and what to tell the user about it.
//!
//! A host CPU that does not exist, is offline, or lies outside this process's cpuset is an
//! error naming it (the kernel would refuse it, or silently narrow the mask). Pinning onto
//! an isolated CPU (`isolcpus=`) is allowed and noted: it is the usual home of a pinned vCPU.
//! Two vCPUs of the VM pinned onto a shared host CPU is allowed with a warning: they will
//! take turns on it. The checks are pure (they take `host::cpus::HostCpus`); applying an
//! affinity is `host::thread`'s job.

use thiserror::Error;

use crate::config::pinning::PinningConfig;
use crate::host::cpus::HostCpus;
use crate::util::cpulist::cpulist;

/// A pinning request the host cannot honour. `what` names the option or command and its
/// value (`--vcpu-pin 1=5`, `vcpupin 1 5`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AffinityError {
    #[error("{what}: host {cpus} not exist (this host's CPUs are {possible})")]
    NoSuchCpu {
        what: String,
        cpus: String,
        possible: String,
    },
    #[error("{what}: host {cpus} offline (online CPUs: {online})")]
    Offline {
        what: String,
        cpus: String,
        online: String,
    },
    #[error("{what}: host {cpus} outside this process's cpuset ({source_name}: {allowed})")]
    OutsideCpuset {
        what: String,
        cpus: String,
        source_name: String,
        allowed: String,
    },
    /// The vCPU's thread has ended: its thread id may already name another thread.
    #[error("vCPU {vcpu} has exited")]
    Exited { vcpu: u32 },
}

/// "CPU 5" / "CPUs 5-7".
fn cpus_noun(cpus: &[u32]) -> String {
    if cpus.len() == 1 {
        format!("CPU {}", cpus[0])
    } else {
        format!("CPUs {}", cpulist(cpus))
    }
}

/// "CPU 5 does" / "CPUs 5-7 do" (`verb` is the singular and plural verb).
fn cpus_phrase(cpus: &[u32], verb: (&str, &str)) -> String {
    let v = if cpus.len() == 1 { verb.0 } else { verb.1 };
    format!("{} {v}", cpus_noun(cpus))
}

fn missing_from(cpus: &[u32], set: &[u32]) -> Vec<u32> {
    cpus.iter()
        .copied()
        .filter(|c| set.binary_search(c).is_err())
        .collect()
}

/// Checks `cpus` for the request `what`; returns notes for the user (isolated CPUs).
pub fn check_cpus(what: &str, cpus: &[u32], host: &HostCpus) -> Result<Vec<String>, AffinityError> {
    let absent = missing_from(cpus, &host.possible);
    if !absent.is_empty() {
        return Err(AffinityError::NoSuchCpu {
            what: what.to_string(),
            cpus: cpus_phrase(&absent, ("does", "do")),
            possible: cpulist(&host.possible),
        });
    }
    let offline = missing_from(cpus, &host.online);
    if !offline.is_empty() {
        return Err(AffinityError::Offline {
            what: what.to_string(),
            cpus: cpus_phrase(&offline, ("is", "are")),
            online: cpulist(&host.online),
        });
    }
    let outside = missing_from(cpus, &host.allowed);
    if !outside.is_empty() {
        return Err(AffinityError::OutsideCpuset {
            what: what.to_string(),
            cpus: cpus_phrase(&outside, ("is", "are")),
            source_name: host.allowed_source.to_string(),
            allowed: cpulist(&host.allowed),
        });
    }
    let isolated: Vec<u32> = cpus
        .iter()
        .copied()
        .filter(|c| host.isolated.binary_search(c).is_ok())
        .collect();
    let mut notes = Vec::new();
    if !isolated.is_empty() {
        notes.push(format!(
            "{what}: host {} isolated (isolcpus); the scheduler does not balance other work onto {}, so only threads pinned there run there",
            cpus_phrase(&isolated, ("is", "are")),
            if isolated.len() == 1 { "it" } else { "them" },
        ));
    }
    Ok(notes)
}

/// One warning per pair of vCPUs whose pins share host CPUs. `pins` holds (vCPU, CPUs).
pub fn shared_cpu_warnings(what: &str, pins: &[(u32, Vec<u32>)]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (i, (a, a_cpus)) in pins.iter().enumerate() {
        for (b, b_cpus) in &pins[i + 1..] {
            let shared: Vec<u32> = a_cpus
                .iter()
                .copied()
                .filter(|c| b_cpus.contains(c))
                .collect();
            if !shared.is_empty() {
                warnings.push(format!(
                    "{what}: vCPUs {a} and {b} are both pinned to host {}; they will take turns on {}",
                    cpus_noun(&shared),
                    if shared.len() == 1 { "it" } else { "them" },
                ));
            }
        }
    }
    warnings
}

/// Checks the start-time pinning options against the host; returns notes and warnings.
pub fn check_plan(plan: &PinningConfig, host: &HostCpus) -> Result<Vec<String>, AffinityError> {
    let mut notes = Vec::new();
    for pin in &plan.vcpus {
        notes.extend(check_cpus(
            &format!("--vcpu-pin {}={}", pin.vcpu, cpulist(&pin.cpus)),
            &pin.cpus,
            host,
        )?);
    }
    if let Some(cpus) = &plan.cpuset {
        notes.extend(check_cpus(
            &format!("--cpuset {}", cpulist(cpus)),
            cpus,
            host,
        )?);
    }
    if let Some(cpus) = &plan.emulator {
        notes.extend(check_cpus(
            &format!("--emulator-pin {}", cpulist(cpus)),
            cpus,
            host,
        )?);
    }
    let pins: Vec<(u32, Vec<u32>)> = plan
        .vcpus
        .iter()
        .map(|p| (p.vcpu, p.cpus.clone()))
        .collect();
    notes.extend(shared_cpu_warnings("--vcpu-pin", &pins));
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::cpus::CpusetSource;

    fn host() -> HostCpus {
        HostCpus {
            possible: (0..8).collect(),
            online: vec![0, 1, 2, 3, 4, 5],
            isolated: vec![2, 3],
            allowed: vec![0, 1, 2, 3, 4],
            allowed_source: CpusetSource::Status,
            ..Default::default()
        }
    }

    #[test]
    fn each_rule_names_the_cpus() {
        let h = host();
        assert_eq!(check_cpus("--cpuset 0-1", &[0, 1], &h), Ok(vec![]));
        assert_eq!(
            check_cpus("--vcpu-pin 0=9", &[9], &h)
                .unwrap_err()
                .to_string(),
            "--vcpu-pin 0=9: host CPU 9 does not exist (this host's CPUs are 0-7)"
        );
        assert_eq!(
            check_cpus("--cpuset 0-11", &(0..12).collect::<Vec<_>>(), &h)
                .unwrap_err()
                .to_string(),
            "--cpuset 0-11: host CPUs 8-11 do not exist (this host's CPUs are 0-7)"
        );
        assert_eq!(
            check_cpus("vcpupin 1 6-7", &[6, 7], &h)
                .unwrap_err()
                .to_string(),
            "vcpupin 1 6-7: host CPUs 6-7 are offline (online CPUs: 0-5)"
        );
        assert_eq!(
            check_cpus("--emulator-pin 5", &[5], &h).unwrap_err().to_string(),
            "--emulator-pin 5: host CPU 5 is outside this process's cpuset (Cpus_allowed_list in /proc/self/status: 0-4)"
        );
    }

    #[test]
    fn isolated_cpus_are_noted() {
        assert_eq!(
            check_cpus("--vcpu-pin 0=2", &[2], &host()).unwrap(),
            vec!["--vcpu-pin 0=2: host CPU 2 is isolated (isolcpus); the scheduler does not balance other work onto it, so only threads pinned there run there"]
        );
        assert_eq!(
            check_cpus("--cpuset 1-3", &[1, 2, 3], &host()).unwrap()[0],
            "--cpuset 1-3: host CPUs 2-3 are isolated (isolcpus); the scheduler does not balance other work onto them, so only threads pinned there run there"
        );
    }

    #[test]
    fn shared_cpus_warn_once_per_pair() {
        let pins = vec![(0, vec![0]), (1, vec![0, 1]), (2, vec![3])];
        assert_eq!(
            shared_cpu_warnings("--vcpu-pin", &pins),
            vec!["--vcpu-pin: vCPUs 0 and 1 are both pinned to host CPU 0; they will take turns on it"]
        );
        let pins = vec![(0, vec![0, 1]), (3, vec![0, 1])];
        assert_eq!(
            shared_cpu_warnings("vcpupin", &pins),
            vec!["vcpupin: vCPUs 0 and 3 are both pinned to host CPUs 0-1; they will take turns on them"]
        );
    }

    #[test]
    fn plan_checks_every_option() {
        let plan = PinningConfig::parse(&["0=0".into(), "1=0".into()], None, Some("4")).unwrap();
        let notes = check_plan(&plan, &host()).unwrap();
        assert_eq!(notes, vec!["--vcpu-pin: vCPUs 0 and 1 are both pinned to host CPU 0; they will take turns on it"]);
        let bad = PinningConfig::parse(&[], Some("0,7"), None).unwrap();
        assert_eq!(
            check_plan(&bad, &host()).unwrap_err().to_string(),
            "--cpuset 0,7: host CPU 7 is offline (online CPUs: 0-5)"
        );
    }
}
