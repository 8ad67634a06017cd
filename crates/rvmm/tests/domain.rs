//! `rvmm run --domain FILE.xml`: the test domains are valid libvirt XML (libvirt's own
//! schema, via virt-xml-validate); `--dry-run` of a domain and of the `flags:` it prints are
//! identical; the acceptance domain (2 sockets × 2 cores × 2 threads, Haswell with
//! features, 2 NUMA cells, vcpupin, emulatorpin, 2 MiB huge pages) runs the probe guest
//! and shows the same layout as its flags to the guest (topology, SRAT nodes), to
//! `rvmm vcpuinfo` and to the kernel (affinity, huge pages, memory policy); bad domains get
//! one exact error line.

mod common;
mod host_memory;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::vm::{allowed_cpus, comm, taskset_list, test_dir, threads, BackgroundVm};
use common::{kvm_available, run_with_timeout, rvmm, text};
use host_memory::{field, reserve_hugepages, smaps_mappings, HostLock};
use serde_json::Value;
use vmm::util::cpulist::parse_cpulist;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/domains")
        .join(name)
}

/// Splits a line of shell words as `config::flags::command_line` writes them (plain words
/// and single-quoted ones, `'\''` for a quote).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    w.push(q);
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            _ => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// `rvmm ARGS` that must succeed: (stdout, stderr).
fn ok(args: &[String]) -> (String, String) {
    let mut cmd = rvmm();
    cmd.args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let (o, e) = text(&out);
    assert!(out.status.success(), "rvmm {args:?} failed: {e}");
    (o, e)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The `flags:` line of a dry run, split into arguments.
fn flags_of(dry_run: &str) -> Vec<String> {
    let line = dry_run
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or_else(|| panic!("no flags: line in\n{dry_run}"));
    shell_words(line)
}

#[test]
fn test_domains_are_valid_libvirt_xml() {
    let tool = "/usr/bin/virt-xml-validate";
    assert!(
        Path::new(tool).exists() && Path::new("/usr/bin/xmllint").exists(),
        "virt-xml-validate (libvirt-clients) or xmllint (libxml2-utils) is missing: run \
         scripts/deps.sh"
    );
    for name in ["acceptance.xml", "tuned.xml", "hotplug.xml"] {
        let path = fixture(name);
        let out = Command::new(tool)
            .arg(&path)
            .arg("domain")
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{name}: {stdout}{stderr}");
        assert_eq!(stderr.trim(), format!("{} validates", path.display()));
    }
}

/// The acceptance domain for this host: it names `<vendor>Intel</vendor>`, which rvmm (like
/// libvirt) refuses on a host of another vendor, so on an AMD host the test runs a copy that
/// names AMD. Everything else is the fixture as validated against libvirt's schema.
fn acceptance_for_this_host(tag: &str) -> std::path::PathBuf {
    let path = fixture("acceptance.xml");
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !cpuinfo.contains("AuthenticAMD") {
        return path;
    }
    let xml = std::fs::read_to_string(&path).unwrap();
    assert!(xml.contains("<vendor>Intel</vendor>"));
    let copy =
        std::env::temp_dir().join(format!("rvmm-acceptance-{tag}-{}.xml", std::process::id()));
    std::fs::write(
        &copy,
        xml.replace("<vendor>Intel</vendor>", "<vendor>AMD</vendor>"),
    )
    .unwrap();
    copy
}

const ACCEPTANCE_FLAGS: &str = "--name rvmm-domain-acceptance --append mode=halt \
--smp 8,maxcpus=8,sockets=2,dies=1,cores=2,threads=2 \
--cpu Haswell,+x2apic,+tsc-deadline,-hle,-rtm,-pclmulqdq,pmu=off \
-m 512M,hugepages=on,hugepage-size=2M,merge=off \
--numa node,nodeid=0,cpus=0-3,mem=256M,host-nodes=0,policy=bind \
--numa node,nodeid=1,cpus=4-7,mem=256M,host-nodes=0,policy=preferred \
--numa dist,src=0,dst=0,val=10 --numa dist,src=0,dst=1,val=21 \
--numa dist,src=1,dst=0,val=21 --numa dist,src=1,dst=1,val=10 \
--vcpu-pin 0=0 --vcpu-pin 1=1 --vcpu-pin 2=0 --vcpu-pin 3=1 --vcpu-pin 4=0 --vcpu-pin 5=1 \
--vcpu-pin 6=0-1 --vcpu-pin 7=1 --emulator-pin 0";

const TUNED_FLAGS: &str = "--name rvmm-domain-tuned --kernel /etc/passwd \
--append 'console=ttyS0 quiet' --smp 6,maxcpus=8,sockets=8,dies=1,cores=1,threads=1 \
--cpu host,-hle,pmu=on -m 1G,hugepages=on,prealloc=on,shared=on \
--numa node,nodeid=0,cpus=0-3,mem=512M,host-nodes=0,policy=bind \
--numa node,nodeid=1,cpus=4-7,mem=512M,host-nodes=0,policy=interleave \
--vcpu-pin 5=1 --cpuset 0-1 --cpu-shares 1024 \
--cpu-quota vcpu_period=100000,vcpu_quota=25000,emulator_quota=-1 --memory-limit 2G \
--disk path=/var/lib/libvirt/images/tuned.img --balloon on,current-memory=768M";

/// hotplug.xml: 2 of 4 vCPUs online at boot (`<vcpu current>` and `<vcpus>`), the others
/// hot-pluggable slots.
const HOTPLUG_FLAGS: &str = "--name rvmm-domain-hotplug --append mode=halt \
--smp 2,maxcpus=4,sockets=4,dies=1,cores=1,threads=1 --cpu qemu64 -m 128M --balloon on";

#[test]
fn dry_run_of_a_domain_equals_dry_run_of_its_flags() {
    for (name, flags) in [
        ("acceptance.xml", ACCEPTANCE_FLAGS),
        ("tuned.xml", TUNED_FLAGS),
        ("hotplug.xml", HOTPLUG_FLAGS),
    ] {
        let path = if name == "acceptance.xml" {
            acceptance_for_this_host("dry-run")
        } else {
            fixture(name)
        };
        let domain = strings(&["run", "--domain", path.to_str().unwrap(), "--dry-run"]);
        let (from_domain, _) = ok(&domain);
        let args = flags_of(&from_domain);
        assert_eq!(args, shell_words(flags), "{name}");
        let mut again = strings(&["run"]);
        again.extend(args);
        again.push("--dry-run".into());
        let (from_flags, warnings) = ok(&again);
        assert_eq!(from_flags, from_domain, "{name}");
        assert!(!warnings.contains("--domain"), "{warnings}");
    }
    // What tuned.xml ignores is named, with its line.
    let path = fixture("tuned.xml");
    let (_, stderr) = ok(&strings(&[
        "run",
        "--domain",
        path.to_str().unwrap(),
        "--dry-run",
    ]));
    let p = path.display();
    assert_eq!(
        stderr,
        format!(
            "rvmm: warning: --domain {p}:17: domain/cputune/iothread_quota: ignored (rvmm has \
             no I/O threads; their work runs in the emulator group \
             (<emulator_period>/<emulator_quota>))\n\
             rvmm: warning: --domain {p}:21: domain/memtune/soft_limit: ignored (rvmm sets no \
             soft limit (v1 memory.soft_limit_in_bytes, v2 memory.high))\n\
             rvmm: warning: --domain {p}:51: domain/devices/interface: ignored \
             (type='network': rvmm attaches virtio NICs to taps, <interface type='ethernet'>)\n"
        )
    );
}

/// The cgroup lines of a dry run.
fn cgroup_plan(dry_run: &str) -> Vec<&str> {
    dry_run
        .lines()
        .filter(|l| l.starts_with("cgroup"))
        .collect()
}

#[test]
fn dry_run_shows_the_cgroup_plan() {
    let (out, _) = ok(&strings(&["run", "--dry-run"]));
    assert_eq!(
        cgroup_plan(&out),
        ["cgroup: auto /rvmm.slice/rvmm-pid<PID>.scope"]
    );
    let (out, _) = ok(&strings(&["run", "--dry-run", "--cgroup", "off"]));
    assert_eq!(cgroup_plan(&out), ["cgroup: off"]);
    assert!(flags_of(&out).ends_with(&strings(&["--cgroup", "off"])));
    let (out, _) = ok(&strings(&[
        "run",
        "--dry-run",
        "--name",
        "web",
        "-m",
        "256M",
        "--cpu-shares",
        "512",
        "--cpu-quota",
        "period=100000,quota=200000",
        "--cpu-quota",
        "vcpu_quota=25000,emulator_period=10000,emulator_quota=-1",
        "--memory-limit",
        "1G",
        "--cgroup-parent",
        "/machine.slice",
    ]));
    assert_eq!(
        cgroup_plan(&out),
        [
            "cgroup: on /machine.slice/rvmm-web.scope (required by --cpu-shares)",
            "cgroup.shares: 512 (v2 cpu.weight 50)",
            "cgroup.global: period=100000 quota=200000",
            "cgroup.vcpu: period=default quota=25000",
            "cgroup.emulator: period=10000 quota=unlimited",
            "cgroup.memory-limit: 1G (1073741824 bytes)",
        ]
    );
    // The flags line spells every setting with its canonical key, and reads back the same.
    let flags = flags_of(&out);
    assert!(
        flags.ends_with(&strings(&[
            "--cpu-shares",
            "512",
            "--cpu-quota",
            "global_period=100000,global_quota=200000,vcpu_quota=25000,\
             emulator_period=10000,emulator_quota=-1",
            "--memory-limit",
            "1G",
            "--cgroup-parent",
            "/machine.slice",
        ])),
        "{flags:?}"
    );
    let mut again = strings(&["run"]);
    again.extend(flags);
    again.push("--dry-run".into());
    assert_eq!(ok(&again).0, out);
}

/// What a running acceptance VM looks like from the guest, rvmm and the kernel.
#[derive(Debug, PartialEq)]
struct Observed {
    /// The probe guest's decoded view (topology, SRAT nodes, SLIT).
    view: String,
    /// Per vCPU: its affinity as `rvmm vcpuinfo`, `taskset` and /proc agree on.
    vcpu_affinity: Vec<String>,
    /// The main thread's allowed CPUs.
    emulator_affinity: String,
    /// Sizes (KiB) of the 2 MiB hugetlb mappings.
    hugetlb_kb: Vec<u64>,
    /// numa_maps policies of the huge page mappings.
    huge_policies: Vec<String>,
}

fn cpus_allowed(pid: i32, tid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

fn observe(tag: &str, args: &[String]) -> Observed {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut vm = BackgroundVm::start(tag, &refs);
    // The decoded view (its first line) is printed once the guest's dump is complete; all
    // vCPUs halted is not enough, since the boot CPU halts between steps of its dump.
    vm.wait_line("vCPUs ");
    let pid = vm.pid();
    let (json, _) = ok(&strings(&[
        "vcpuinfo",
        vm.socket.to_str().unwrap(),
        "--json",
    ]));
    let info: Value = serde_json::from_str(&json).unwrap();
    let vcpus = info["vcpus"].as_array().unwrap();
    assert_eq!(vcpus.len(), 8, "{info}");
    let mut vcpu_affinity = Vec::new();
    for (i, v) in vcpus.iter().enumerate() {
        assert_eq!(v["vcpu"], i, "{info}");
        let tid = v["thread-id"].as_i64().unwrap() as i32;
        assert_eq!(comm(pid, tid), format!("CPU {i}/KVM"));
        let affinity = v["affinity"].as_str().unwrap().to_string();
        // taskset writes two CPUs as "0,1" where the kernel and rvmm write "0-1".
        let set = |list: &str| parse_cpulist(list).unwrap();
        assert_eq!(set(&taskset_list(tid)), set(&affinity), "vCPU {i}");
        assert_eq!(cpus_allowed(pid, tid), affinity, "vCPU {i}");
        vcpu_affinity.push(affinity);
    }
    assert!(threads(pid).contains(&pid));
    let emulator_affinity = cpus_allowed(pid, pid);
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let hugetlb_kb = smaps_mappings(&smaps)
        .iter()
        .filter(|m| field(m, "KernelPageSize") == 2048)
        .map(|m| field(m, "Size"))
        .collect();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/numa_maps")).unwrap();
    let huge_policies = maps
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == "huge"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    let mut client = vm.client();
    client.execute("quit", None);
    let out = vm.wait(Duration::from_secs(30));
    let (view, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    Observed {
        view,
        vcpu_affinity,
        emulator_affinity,
        hugetlb_kb,
        huge_policies,
    }
}

#[test]
fn acceptance_domain_runs_like_its_flags() {
    if !kvm_available("acceptance_domain_runs_like_its_flags") {
        return;
    }
    let cpus = allowed_cpus();
    if !(cpus.contains(&0) && cpus.contains(&1)) {
        common::skip(
            "acceptance_domain_runs_like_its_flags",
            &format!("the domain pins to host CPUs 0 and 1; have {cpus:?}"),
        );
        return;
    }
    // 512 MiB of 2 MiB pages for each of the two runs (one at a time).
    let _lock = HostLock::acquire();
    let _pool = match reserve_hugepages(2048, 256) {
        Ok(pool) => pool,
        Err(why) => return common::skip("acceptance_domain_runs_like_its_flags", &why),
    };

    let path = acceptance_for_this_host("run");
    let from_domain = observe(
        "domain-xml",
        &strings(&["--domain", path.to_str().unwrap()]),
    );
    let from_flags = observe("domain-flags", &shell_words(ACCEPTANCE_FLAGS));
    assert_eq!(from_domain, from_flags);

    let o = from_domain;
    assert_eq!(o.vcpu_affinity, ["0", "1", "0", "1", "0", "1", "0-1", "1"]);
    assert_eq!(o.emulator_affinity, "0");
    // One hugetlb mapping per guest node, bound as <numatune> says.
    assert_eq!(o.hugetlb_kb, [256 << 10, 256 << 10]);
    assert_eq!(o.huge_policies, ["bind:0", "prefer:0"]);
    for want in [
        "vCPUs      8 online (MADT: 8 enabled of 8 slots)",
        "topology   2 sockets x 1 die x ",
        "NUMA       node 0: cpus 0-3, ",
        "           node 1: cpus 4-7, 256 MiB",
        "           0     10  21",
        "           1     21  10",
    ] {
        assert!(
            o.view.lines().any(|l| l.starts_with(want)),
            "no line starting {want:?} in the guest's view:\n{}",
            o.view
        );
    }
    // The cores and threads as the model's vendor (Intel) encodes them. A kvm-pvm host shows
    // the guest its own vendor whatever the VMM sets (QEMU's guest too, see qemu_compare.rs);
    // an AMD guest kernel reads these leaves by AMD's rules and counts 4 cores x 1 thread.
    let want = if o.view.lines().any(|l| l == "vendor     GenuineIntel") {
        "topology   2 sockets x 1 die x 2 cores x 2 threads"
    } else {
        "topology   2 sockets x 1 die x 4 cores x 1 thread"
    };
    assert!(
        o.view.lines().any(|l| l.starts_with(want)),
        "no line starting {want:?} in the guest's view:\n{}",
        o.view
    );
}

/// `rvmm run --domain vm.xml EXTRA --dry-run` in a directory holding `xml` as vm.xml: the
/// one error line (exit 1, nothing on stdout).
fn refused(tag: &str, xml: &str, extra: &[&str]) -> String {
    let dir = test_dir(tag);
    std::fs::write(dir.join("vm.xml"), xml).unwrap();
    let mut cmd = rvmm();
    cmd.current_dir(&dir)
        .args(["run", "--domain", "vm.xml"])
        .args(extra)
        .arg("--dry-run");
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("rvmm: warning:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

/// A small valid domain with `cpu` as its `<cpu>` element and `memory` as `<memory>`.
fn small(memory: &str, cpu: &str) -> String {
    format!(
        "<domain type='kvm'>\n  <name>bad</name>\n  {memory}\n  <vcpu>4</vcpu>\n  {cpu}\n  \
         <os><type>hvm</type></os>\n  <features><acpi/></features>\n</domain>\n"
    )
}

#[test]
fn bad_domains_get_one_exact_error() {
    let mem = "<memory unit='MiB'>256</memory>";
    let cases: [(&str, String, &[&str], &str); 8] = [
        (
            "malformed",
            small(mem, "<cpu><model>Haswell</model>"),
            &[],
            "rvmm: --domain vm.xml:8: not well-formed XML: expected 'cpu' tag, not 'domain' at \
             8:1",
        ),
        (
            "unit",
            small("<memory unit='XB'>4</memory>", ""),
            &[],
            "rvmm: --domain vm.xml:3: <memory unit='XB'>: unknown unit 'XB' (expected b, bytes, \
             KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB)",
        ),
        (
            "range",
            small(
                mem,
                "<cpu><topology sockets='2' cores='4' threads='2'/></cpu>",
            ),
            &[],
            "rvmm: --domain vm.xml:5: <topology sockets='2' cores='4' threads='2'>: sockets × \
             dies × cores × threads = 16, but <vcpu> gives 4 vCPUs (libvirt requires them equal)",
        ),
        (
            "distance",
            small(
                mem,
                "<cpu><numa><cell id='0' cpus='0-3' memory='256' unit='MiB'><distances>\
                 <sibling id='0' value='300'/></distances></cell></numa></cpu>",
            ),
            &[],
            "rvmm: --domain vm.xml:5: <sibling value='300'>: 300 is out of range (a NUMA \
             distance is 10 to 255)",
        ),
        (
            "conflict-smp",
            small(mem, ""),
            &["--smp", "2"],
            "rvmm: --smp conflicts with --domain",
        ),
        (
            "conflict-m",
            small(mem, ""),
            &["-m", "1G", "--vcpu-pin", "0=0"],
            "rvmm: -m conflicts with --domain",
        ),
        (
            "unknown-feature",
            small(
                mem,
                "<cpu><model>Haswell</model><feature policy='require' name='warp-drive'/></cpu>",
            ),
            &[],
            "rvmm: --domain vm.xml:5: <feature name='warp-drive'>: unknown CPU feature \
             'warp-drive' (neither in libvirt's CPU map nor a QEMU 7.2 feature name)",
        ),
        (
            "mode",
            small(mem, "<cpu mode='host-model' match='sometimes'/>"),
            &[],
            "rvmm: --domain vm.xml:5: <cpu match='sometimes'>: unknown value 'sometimes' \
             (expected exact, minimum, strict)",
        ),
    ];
    for (tag, xml, extra, want) in cases {
        assert_eq!(refused(tag, &xml, extra), want, "{tag}");
    }
    let out = rvmm()
        .args(["run", "--domain", "/nonexistent/vm.xml"])
        .output()
        .unwrap();
    assert_eq!(
        text(&out).1,
        "rvmm: --domain /nonexistent/vm.xml: cannot read: No such file or directory (os error 2)\n"
    );
}

/// A feature the host's KVM cannot give: the first `--cpu Cooperlake` loses.
fn missing_feature() -> Option<String> {
    let (_, stderr) = ok(&strings(&[
        "run",
        "--cpu",
        "Cooperlake",
        "--dry-run",
        "--show-cpuid",
    ]));
    stderr.lines().find_map(|l| {
        let rest =
            l.strip_prefix("rvmm: warning: host doesn't support requested feature: CPUID.")?;
        let (_, named) = rest.split_once(':')?;
        let (_, name) = named.split_once('.')?;
        Some(name.split(" [").next()?.to_string())
    })
}

#[test]
fn a_required_feature_the_host_lacks_is_refused() {
    if !kvm_available("a_required_feature_the_host_lacks_is_refused") {
        return;
    }
    let Some(name) = missing_feature() else {
        common::skip(
            "a_required_feature_the_host_lacks_is_refused",
            "KVM gives every Cooperlake feature",
        );
        return;
    };
    let xml = small(
        "<memory unit='MiB'>256</memory>",
        &format!(
            "<cpu check='none'><model>qemu64</model><feature policy='require' name='{name}'/>\
             </cpu>"
        ),
    );
    assert_eq!(
        refused("require", &xml, &[]),
        format!(
            "rvmm: --domain vm.xml:5: <feature policy='require' name='{name}'>: the host's KVM \
             cannot give {name} to a guest (policy='optional' drops it on such hosts)"
        )
    );
    // As optional it is dropped silently.
    let optional = xml.replace("policy='require'", "policy='optional'");
    let dir = test_dir("optional");
    std::fs::write(dir.join("vm.xml"), optional).unwrap();
    let out = rvmm()
        .current_dir(&dir)
        .args(["run", "--domain", "vm.xml", "--dry-run"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("\ncpu.features: -\n"), "{stdout}");
    assert_eq!(stderr, "");
}

#[test]
fn a_hotplug_domain_runs_with_its_vcpu_counts() {
    if !kvm_available("a_hotplug_domain_runs_with_its_vcpu_counts") {
        return;
    }
    let dir = test_dir("hotplug-domain");
    let socket = dir.join("vm.qmp");
    let mut cmd = rvmm();
    cmd.arg("run")
        .arg("--domain")
        .arg(fixture("hotplug.xml"))
        .arg("--qmp")
        .arg(format!("unix:{}", socket.display()));
    let vm = BackgroundVm::spawn(cmd, dir, socket);
    let (table, _) = ok(&strings(&["vcpucount", vm.socket.to_str().unwrap()]));
    assert_eq!(
        table,
        "maximum      live           4\ncurrent      live           2\n"
    );
    // vCPUs 0 and 1 are the present ones: slots 2 and 3 are free for `rvmm setvcpus`.
    let slots = vm.client().ok("query-hotpluggable-cpus", None);
    let present: Vec<(u64, bool)> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["props"]["socket-id"].as_u64().unwrap(),
                s.get("qom-path").is_some(),
            )
        })
        .collect();
    assert_eq!(present, [(3, false), (2, false), (1, true), (0, true)]);
}

#[test]
fn bad_vcpus_get_one_exact_error() {
    let vcpus = |list: &str| {
        format!(
            "<domain type='kvm'>\n  <name>bad</name>\n  <memory unit='MiB'>128</memory>\n  \
             <vcpu current='2'>4</vcpu>\n  <vcpus>{list}</vcpus>\n  <os><type>hvm</type></os>\n\
             </domain>\n"
        )
    };
    let off = "<vcpu id='2' enabled='no'/><vcpu id='3' enabled='no'/>";
    assert_eq!(
        refused(
            "vcpu0",
            &vcpus(&format!(
                "<vcpu id='0' enabled='yes' hotpluggable='yes'/><vcpu id='1' enabled='yes'/>{off}"
            )),
            &[]
        ),
        "rvmm: --domain vm.xml:5: <vcpu id='0' hotpluggable='yes'>: vCPU 0 cannot be \
         hotpluggable (it is the boot vCPU, which can never be unplugged)"
    );
    assert_eq!(
        refused(
            "offline-fixed",
            &vcpus(
                "<vcpu id='0' enabled='yes'/><vcpu id='1' enabled='yes'/>\
                 <vcpu id='2' enabled='no' hotpluggable='no'/><vcpu id='3' enabled='no'/>"
            ),
            &[]
        ),
        "rvmm: --domain vm.xml:5: <vcpu id='2' enabled='no' hotpluggable='no'>: vCPU 2 is both \
         disabled and not hotpluggable (libvirt refuses it: a vCPU that is off at boot can only \
         be plugged later)"
    );
}
