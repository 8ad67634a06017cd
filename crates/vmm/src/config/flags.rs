//! A [`VmConfig`] back as the `rvmm run` flags that build it (`--smp 8,sockets=2,... --cpu
//! Haswell,+aes -m 4G,hugepages=on --numa ...`): each renderer is the inverse of its
//! option's parser, so parsing the output gives the same configuration back. Used by
//! `--dry-run` to show what a `--domain` file amounts to, and to compare front ends.
//!
//! Not representable: a `mem-path` containing a comma (the `-m` grammar has no escape).

use super::cpu::{Check, CpuConfig};
use super::cputune::{Bandwidth, CgroupSwitch, CpuTune};
use super::memory::MemoryBacking;
use super::numa::{NumaDistSpec, NumaNodeSpec};
use super::pinning::VcpuPin;
use super::size::format_size;
use super::smp::SmpConfig;
use super::{BootSource, VmConfig};
use crate::util::cpulist::cpulist;

/// A size the size parsers read back exactly (`512M`, `2G`; `4097B` for odd byte counts,
/// since a bare number means MiB).
pub fn size_text(bytes: u64) -> String {
    let s = format_size(bytes);
    if s.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{s}B")
    } else {
        s
    }
}

/// `--smp`: every count spelled out.
pub fn smp_option(s: &SmpConfig) -> String {
    format!(
        "{},maxcpus={},sockets={},dies={},cores={},threads={}",
        s.cpus, s.maxcpus, s.sockets, s.dies, s.cores, s.threads
    )
}

/// `--cpu`: `+feat`/`-feat` when the changes are all enables then all disables (the order
/// `--cpu` applies them in), else `feat=on|off` in order.
pub fn cpu_option(c: &CpuConfig) -> String {
    let mut out = c.model.clone();
    let split = c.changes.iter().position(|(_, on)| !on);
    let signs = split.is_none_or(|i| c.changes[i..].iter().all(|(_, on)| !on));
    for (name, on) in &c.changes {
        if signs {
            out.push_str(&format!(",{}{name}", if *on { '+' } else { '-' }));
        } else {
            out.push_str(&format!(",{name}={}", if *on { "on" } else { "off" }));
        }
    }
    if let Some(pmu) = c.pmu {
        out.push_str(if pmu { ",pmu=on" } else { ",pmu=off" });
    }
    match c.check {
        Check::Warn => {}
        Check::None => out.push_str(",check=off"),
        Check::Enforce => out.push_str(",enforce"),
    }
    out
}

fn switch(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// `-m`: the size, then only the options that differ from the defaults.
pub fn memory_option(size: u64, b: &MemoryBacking) -> String {
    let mut out = size_text(size);
    if b.hugepages {
        out.push_str(",hugepages=on");
    }
    if let Some(page) = b.hugepage_size {
        out.push_str(&format!(",hugepage-size={}", size_text(page)));
    }
    if b.prealloc {
        out.push_str(",prealloc=on");
    }
    if let Some(merge) = b.merge {
        out.push_str(&format!(",merge={}", switch(merge)));
    }
    if let Some(thp) = b.thp {
        out.push_str(&format!(",thp={}", switch(thp)));
    }
    if b.shared {
        out.push_str(",shared=on");
    }
    if let Some(p) = &b.mem_path {
        out.push_str(&format!(",mem-path={}", p.display()));
    }
    out
}

/// Runs of consecutive ascending numbers, in order, as `A` or `A-B` (a list given out of
/// order keeps its order).
fn runs(ids: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && end.checked_add(1) == Some(ids[i + 1]) {
            i += 1;
            end = ids[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out
}

/// `--numa node,...`: one `cpus=` and one `host-nodes=` per run of numbers (the option's
/// items are comma-separated, so a list repeats the key).
pub fn numa_node_option(n: &NumaNodeSpec) -> String {
    let mut out = String::from("node");
    if let Some(id) = n.nodeid {
        out.push_str(&format!(",nodeid={id}"));
    }
    for r in runs(&n.cpus) {
        out.push_str(&format!(",cpus={r}"));
    }
    if let Some(mem) = n.mem {
        out.push_str(&format!(",mem={}", size_text(mem)));
    }
    for r in runs(&n.host_nodes) {
        out.push_str(&format!(",host-nodes={r}"));
    }
    if let Some(p) = n.policy {
        out.push_str(&format!(",policy={}", p.name()));
    }
    out
}

/// `--numa dist,...`.
pub fn numa_dist_option(d: &NumaDistSpec) -> String {
    format!("dist,src={},dst={},val={}", d.src, d.dst, d.val)
}

/// `--vcpu-pin VCPU=CPULIST`.
pub fn vcpu_pin_option(p: &VcpuPin) -> String {
    format!("{}={}", p.vcpu, cpulist(&p.cpus))
}

/// `--cpu-quota`: every bandwidth set, as `KEY=US` items (`None` when none is).
pub fn cpu_quota_option(t: &CpuTune) -> Option<String> {
    let mut items = Vec::new();
    let mut add = |name: &str, b: &Bandwidth| {
        if let Some(p) = b.period_us {
            items.push(format!("{name}_period={p}"));
        }
        if let Some(q) = b.quota_us {
            items.push(format!("{name}_quota={q}"));
        }
    };
    add("global", &t.global);
    add("vcpu", &t.vcpu);
    add("emulator", &t.emulator);
    (!items.is_empty()).then(|| items.join(","))
}

/// The `rvmm run` arguments that build `config` (its QMP socket aside).
pub fn run_args(config: &VmConfig) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut add = |flag: &str, value: String| {
        args.push(flag.to_string());
        args.push(value);
    };
    if let Some(name) = &config.name {
        add("--name", name.clone());
    }
    let (kernel, initrd, cmdline) = match &config.boot {
        BootSource::Probe { cmdline, initrd } => (None, initrd, cmdline),
        BootSource::Kernel {
            kernel,
            initrd,
            cmdline,
        } => (Some(kernel), initrd, cmdline),
    };
    if let Some(k) = kernel {
        add("--kernel", k.display().to_string());
    }
    if let Some(i) = initrd {
        add("--initrd", i.display().to_string());
    }
    if !cmdline.is_empty() {
        add("--append", cmdline.clone());
    }
    add("--smp", smp_option(&config.smp));
    add("--cpu", cpu_option(&config.cpu));
    add("-m", memory_option(config.memory, &config.memory_backing));
    let machine = config.machine.option_text();
    if !machine.is_empty() {
        add("--machine", machine);
    }
    for n in &config.numa.nodes {
        add("--numa", numa_node_option(n));
    }
    for d in &config.numa.distances {
        add("--numa", numa_dist_option(d));
    }
    for p in &config.pinning.vcpus {
        add("--vcpu-pin", vcpu_pin_option(p));
    }
    if let Some(c) = &config.pinning.cpuset {
        add("--cpuset", cpulist(c));
    }
    if let Some(c) = &config.pinning.emulator {
        add("--emulator-pin", cpulist(c));
    }
    if let Some(s) = config.cputune.shares {
        add("--cpu-shares", s.to_string());
    }
    if let Some(q) = cpu_quota_option(&config.cputune) {
        add("--cpu-quota", q);
    }
    if let Some(limit) = config.memtune.hard_limit {
        add("--memory-limit", size_text(limit));
    }
    if config.cgroup.switch != CgroupSwitch::Auto {
        add("--cgroup", config.cgroup.switch.name().to_string());
    }
    if let Some(p) = &config.cgroup.parent {
        add("--cgroup-parent", p.clone());
    }
    for disk in &config.disks {
        add("--disk", disk.option());
    }
    for net in &config.nets {
        add("--net", net.option());
    }
    if let Some(b) = &config.balloon {
        add("--balloon", b.option());
    }
    args
}

/// `arg` as a POSIX shell word: unchanged when it needs no quoting, else single-quoted.
pub fn shell_word(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=+,.:/@%^".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The arguments as one shell command-line fragment.
pub fn command_line(args: &[String]) -> String {
    args.iter()
        .map(|a| shell_word(a))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cpu::parse_cpu;
    use crate::config::memory::parse_memory;
    use crate::config::numa::{HostPolicy, NumaConfig};
    use crate::config::pinning::parse_vcpu_pin;

    #[test]
    fn sizes_read_back() {
        assert_eq!(size_text(512 << 20), "512M");
        assert_eq!(size_text(2 << 30), "2G");
        assert_eq!(size_text(4100), "4100B");
        assert_eq!(size_text(0), "0B");
    }

    #[test]
    fn smp_round_trips() {
        let s = SmpConfig::parse("6,maxcpus=8,sockets=2,cores=2,threads=2").unwrap();
        assert_eq!(
            smp_option(&s),
            "6,maxcpus=8,sockets=2,dies=1,cores=2,threads=2"
        );
        assert_eq!(SmpConfig::parse(&smp_option(&s)).unwrap(), s);
    }

    #[test]
    fn cpu_round_trips() {
        for text in [
            "Haswell,+aes,-hle,-rtm",
            "qemu64",
            "host,pmu=off,enforce",
            "Haswell,check=off",
            "Haswell,hle=off,aes=on",
            "Haswell,-hle,+aes",
        ] {
            let c = parse_cpu(text).unwrap();
            let again = parse_cpu(&cpu_option(&c)).unwrap();
            assert_eq!(again, c, "{text} -> {}", cpu_option(&c));
        }
        assert_eq!(
            cpu_option(&parse_cpu("Haswell,-hle,+aes,pmu=on").unwrap()),
            "Haswell,+aes,-hle,pmu=on"
        );
        assert_eq!(
            cpu_option(&parse_cpu("Haswell,hle=off,aes=on").unwrap()),
            "Haswell,hle=off,aes=on"
        );
    }

    #[test]
    fn memory_round_trips() {
        for text in [
            "2G",
            "512M,hugepages=on,hugepage-size=2M,merge=off",
            "1G,prealloc=on,thp=off,shared=on,mem-path=/dev/shm",
            "1G,merge=on,thp=on",
        ] {
            let m = parse_memory(text).unwrap();
            assert_eq!(memory_option(m.size, &m.backing), text);
            assert_eq!(parse_memory(&memory_option(m.size, &m.backing)).unwrap(), m);
        }
    }

    #[test]
    fn numa_and_pins_round_trip() {
        let spec = NumaNodeSpec {
            text: String::new(),
            nodeid: Some(1),
            cpus: vec![4, 5, 6, 7, 0, 2],
            mem: Some(256 << 20),
            host_nodes: vec![0, 1, 3],
            policy: Some(HostPolicy::Preferred),
        };
        let text = numa_node_option(&spec);
        assert_eq!(
            text,
            "node,nodeid=1,cpus=4-7,cpus=0,cpus=2,mem=256M,host-nodes=0-1,host-nodes=3,\
             policy=preferred"
        );
        let parsed = NumaConfig::parse(&[text.as_str()]).unwrap();
        assert_eq!(parsed.nodes, vec![NumaNodeSpec { text, ..spec }]);
        let d = NumaDistSpec {
            text: String::new(),
            src: 0,
            dst: 1,
            val: 21,
        };
        assert_eq!(numa_dist_option(&d), "dist,src=0,dst=1,val=21");
        let pin = VcpuPin {
            vcpu: 3,
            cpus: vec![0, 1, 2, 5],
        };
        assert_eq!(vcpu_pin_option(&pin), "3=0-2,5");
        assert_eq!(parse_vcpu_pin(&vcpu_pin_option(&pin)).unwrap(), pin);
    }

    #[test]
    fn run_args_and_quoting() {
        let config = VmConfig {
            name: Some("vm1".into()),
            boot: BootSource::Kernel {
                kernel: "/k/bzImage".into(),
                initrd: None,
                cmdline: "console=ttyS0 quiet".into(),
            },
            ..VmConfig::default()
        };
        assert_eq!(
            command_line(&run_args(&config)),
            "--name vm1 --kernel /k/bzImage --append 'console=ttyS0 quiet' \
             --smp 1,maxcpus=1,sockets=1,dies=1,cores=1,threads=1 --cpu qemu64 -m 128M"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        let mut tuned = VmConfig::default();
        tuned.cputune.shares = Some(2048);
        tuned.cputune.vcpu.quota_us = Some(25_000);
        tuned.cputune.global.period_us = Some(10_000);
        tuned.cputune.emulator.quota_us = Some(-1);
        tuned.memtune.hard_limit = Some(1 << 30);
        tuned.cgroup.switch = CgroupSwitch::On;
        tuned.cgroup.parent = Some("/machine.slice".into());
        assert_eq!(
            command_line(&run_args(&tuned)),
            "--smp 1,maxcpus=1,sockets=1,dies=1,cores=1,threads=1 --cpu qemu64 -m 128M \
             --cpu-shares 2048 \
             --cpu-quota global_period=10000,vcpu_quota=25000,emulator_quota=-1 \
             --memory-limit 1G --cgroup on --cgroup-parent /machine.slice"
        );
        // The options read back to the same configuration.
        let args = run_args(&tuned);
        let value = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        let quota = [value("--cpu-quota")];
        let back = crate::config::cputune::TuningOptions {
            cpu_shares: Some(&value("--cpu-shares")),
            cpu_quota: &quota,
            memory_limit: Some(&value("--memory-limit")),
            cgroup: Some(&value("--cgroup")),
            cgroup_parent: Some(&value("--cgroup-parent")),
        }
        .parse()
        .unwrap();
        assert_eq!(back.cputune, tuned.cputune);
        assert_eq!(back.memtune, tuned.memtune);
        assert_eq!(back.cgroup, tuned.cgroup);
        assert_eq!(shell_word(""), "''");
    }
}
