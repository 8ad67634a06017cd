//! Bad input of every kind gets one clear line on stderr and a non-zero exit, never a panic,
//! and nothing is left half-made.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Runs `cmd` with `args`: it must fail cleanly (an exit status, not a signal; no panic)
/// with exactly one error line besides warnings. Returns the status and that line.
fn error_line(mut cmd: std::process::Command, args: &[&str]) -> (i32, String) {
    cmd.args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let (code, stderr) = failed_cleanly(&out, &format!("rvmm {args:?}"));
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("rvmm: warning:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "rvmm {args:?}: expected one error line, got: {stderr}"
    );
    (code, errors[0].to_string())
}

/// Runs `rvmm ARGS` with `env`; see [`error_line`].
fn fails(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = rvmm();
    for (k, v) in env {
        cmd.env(k, v);
    }
    error_line(cmd, args)
}

#[test]
fn missing_kernel_file() {
    let (_, e) = fails(&["run", "--kernel", "/nonexistent/bzImage"], &[]);
    assert_eq!(
        e,
        "rvmm: --kernel: cannot open /nonexistent/bzImage: No such file or directory (os error 2)"
    );
}

#[test]
fn file_that_is_no_kernel() {
    if !kvm_available("file_that_is_no_kernel") {
        return;
    }
    let (_, e) = fails(&["run", "--kernel", "/etc/hostname"], &[]);
    assert_eq!(
        e,
        "rvmm: --kernel: /etc/hostname is not a Linux kernel: it is neither an ELF vmlinux nor a bzImage (no 'HdrS' setup header)"
    );
}

#[test]
fn smp_zero_and_too_many() {
    let (_, e) = fails(&["run", "--smp", "0"], &[]);
    assert!(e.starts_with("rvmm: --smp: ") && e.contains("(0)"), "{e}");
    if !kvm_available("smp_too_many") {
        return;
    }
    let (_, e) = fails(&["run", "--smp", "9999"], &[]);
    assert!(
        e.starts_with("rvmm: --smp: ") && e.contains("9999") && e.contains("maximum"),
        "{e}"
    );
}

#[test]
fn memory_zero_and_garbage() {
    let (_, e) = fails(&["run", "-m", "0"], &[]);
    assert_eq!(
        e,
        "rvmm: -m: guest memory must be at least 2 MiB (got 0 bytes)"
    );
    let (_, e) = fails(&["run", "-m", "lots"], &[]);
    assert!(e.starts_with("rvmm: -m: 'lots' is not a size"), "{e}");
}

#[test]
fn unknown_option() {
    let (code, e) = fails(&["run", "--frobnicate"], &[]);
    assert_eq!(code, 2);
    assert!(e.contains("--frobnicate"), "{e}");
}

#[test]
fn kvm_device_missing_says_how_to_fix() {
    let (_, e) = fails(&["run"], &[("RVMM_KVM_DEVICE", "/nonexistent/kvm")]);
    assert!(
        e.contains("/nonexistent/kvm does not exist") && e.contains("modprobe kvm_intel"),
        "{e}"
    );
}

#[test]
fn memory_beyond_the_host_is_refused_or_overcommitted() {
    if !kvm_available("memory_1t") {
        return;
    }
    let mut cmd = rvmm();
    cmd.args(["run", "-m", "1T"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let policy = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap();
    if policy.trim() == "1" {
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("overcommits this host"), "{stderr}");
        assert!(stdout.contains("vCPUs"), "{stdout}");
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr.contains("-m: 1048576 MiB of guest memory exceeds this host's RAM and swap")
                && stderr.contains("vm.overcommit_memory=1"),
            "{stderr}"
        );
    }
}

#[test]
fn machine_options_name_the_key_and_the_rule() {
    let (_, e) = fails(&["run", "--machine", "pit=maybe"], &[]);
    assert_eq!(e, "rvmm: --machine: pit='maybe' is not on or off");
    let (_, e) = fails(&["run", "--machine", "hpet=off"], &[]);
    assert_eq!(
        e,
        "rvmm: --machine: unknown option 'hpet' (expected pit, debug-exit, virtio-cmdline)"
    );
}

// ---- issue 11: files and output ----

/// A FIFO (whose open would wait for a writer), /dev/zero (endless), a directory and a sparse
/// file one byte over the limit, in a fresh directory; removed on drop.
struct HostileFiles {
    dir: std::path::PathBuf,
    fifo: String,
    dir_path: String,
    big_text: String,
    big_image: String,
}

impl HostileFiles {
    fn new(tag: &str) -> HostileFiles {
        let dir = tempdir(tag);
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path; mkfifo only creates a file there.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        let big_text = dir.join("big.xml");
        std::fs::File::create(&big_text)
            .unwrap()
            .set_len((16 << 20) + 1)
            .unwrap();
        let big_image = dir.join("big.img");
        std::fs::File::create(&big_image)
            .unwrap()
            .set_len((1 << 30) + 1)
            .unwrap();
        let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
        HostileFiles {
            fifo: s(&fifo),
            dir_path: s(&sub),
            big_text: s(&big_text),
            big_image: s(&big_image),
            dir,
        }
    }
}

impl Drop for HostileFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The one error line for `args`; a hang (a FIFO open that waits) fails after 10 s instead of
/// blocking the suite (`run_with_timeout` kills it, and `failed_cleanly` refuses the SIGKILL).
fn refused_quickly(args: &[&str]) -> String {
    let mut cmd = rvmm();
    cmd.args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(10));
    let (code, stderr) = failed_cleanly(&out, &format!("rvmm {args:?}"));
    assert_eq!(code, 1, "rvmm {args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "rvmm {args:?}: {stderr}");
    stderr.trim_end().to_string()
}

#[test]
fn user_named_files_must_be_regular_files() {
    let f = HostileFiles::new("hostile-files");
    // Every option that reads a file, with each kind of non-file.
    let options: [(&[&str], &str); 6] = [
        (&["run", "--kernel"], "--kernel"),
        (&["run", "--initrd"], "--initrd"),
        (&["run", "--domain"], "--domain"),
        (&["cpu-baseline"], "cpu-baseline"),
        (&["cpu-compare", "qemu64", "--host"], "--host"),
        (&["probe", "--decode"], "--decode"),
    ];
    for (args, option) in options {
        for (path, what) in [
            (f.fifo.as_str(), "a FIFO"),
            ("/dev/zero", "a character device"),
            (f.dir_path.as_str(), "a directory"),
        ] {
            let mut all = args.to_vec();
            all.push(path);
            assert_eq!(
                refused_quickly(&all),
                format!("rvmm: {option}: {path} is {what}: only regular files are accepted")
            );
        }
    }
    // A kernel named by a domain file.
    let xml = f.dir.join("fifo-kernel.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='kvm'><name>f</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64'>hvm</type><kernel>{}</kernel></os></domain>",
            f.fifo
        ),
    )
    .unwrap();
    let xml = xml.to_str().unwrap();
    assert_eq!(
        refused_quickly(&["run", "--domain", xml, "--dry-run"]),
        format!(
            "rvmm: --domain {xml}: <kernel>: {} is a FIFO: only regular files are accepted",
            f.fifo
        )
    );
}

#[test]
fn user_named_files_have_a_size_limit() {
    let f = HostileFiles::new("large-files");
    for (args, option, path, limit) in [
        (&["run", "--domain"][..], "--domain", &f.big_text, "16 MiB"),
        (&["cpu-baseline"][..], "cpu-baseline", &f.big_text, "16 MiB"),
        (
            &["probe", "--decode"][..],
            "--decode",
            &f.big_text,
            "16 MiB",
        ),
        (&["run", "--kernel"][..], "--kernel", &f.big_image, "1 GiB"),
        (&["run", "--initrd"][..], "--initrd", &f.big_image, "1 GiB"),
    ] {
        let mut all = args.to_vec();
        all.push(path);
        assert_eq!(
            refused_quickly(&all),
            format!(
                "rvmm: {option}: {path} is larger than {limit}, the limit for this kind of file"
            )
        );
    }
    // stdin has the same limit: /dev/zero as stdin is cut at 16 MiB, not read until ENOMEM.
    let mut cmd = rvmm();
    cmd.args(["probe", "--decode", "-"])
        .stdin(std::fs::File::open("/dev/zero").unwrap());
    let out = run_with_timeout(cmd, Duration::from_secs(20));
    let (_, stderr) = failed_cleanly(&out, "probe --decode - < /dev/zero");
    assert_eq!(
        stderr,
        "rvmm: --decode: stdin is larger than 16 MiB, the limit for this kind of file\n"
    );
}

/// Runs `rvmm args` with stdout on /dev/full.
fn to_dev_full(args: &[&str]) -> std::process::Output {
    let mut cmd = rvmm();
    cmd.args(args)
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_full_disk_is_one_error_line_not_a_panic() {
    let commands: [&[&str]; 7] = [
        &["cpu-models"],
        &["cpu-models", "--json"],
        &["cpu-models", "--expand", "Haswell"],
        &["host"],
        &["host", "--json"],
        &["--help"],
        &["run", "--smp", "2", "--dry-run"],
    ];
    for args in commands {
        let out = to_dev_full(args);
        let (code, stderr) = failed_cleanly(&out, &format!("rvmm {args:?} > /dev/full"));
        assert_eq!(code, 1, "rvmm {args:?}: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("rvmm: warning:"))
            .collect();
        assert_eq!(
            errors,
            ["rvmm: writing to stdout: No space left on device"],
            "rvmm {args:?}: {stderr}"
        );
    }
}

/// The write end of a pipe whose read end is already closed.
fn closed_pipe() -> std::fs::File {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors this test owns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fds[0] is ours and closed once; fds[1] is returned as its only owner.
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is an open descriptor no one else owns.
    unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) }
}

#[test]
fn a_closed_pipe_ends_the_printing_commands_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [
        &["cpu-models"][..],
        &["host"][..],
        &["--help"][..],
        &["run", "--dry-run"][..],
    ] {
        let mut cmd = rvmm();
        cmd.args(args)
            .stdout(closed_pipe())
            .stderr(std::process::Stdio::piped());
        let out = cmd.spawn().unwrap().wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "rvmm {args:?}: {stderr}");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "rvmm {args:?} must end by SIGPIPE: {:?} {stderr}",
            out.status
        );
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("rvmm: warning:"))
            .collect();
        assert!(errors.is_empty(), "rvmm {args:?}: {stderr}");
    }
}

#[test]
fn the_vmm_reports_a_failed_stdout_and_is_not_killed_by_sigpipe() {
    if !kvm_available("the_vmm_reports_a_failed_stdout") {
        return;
    }
    // `rvmm run` keeps SIGPIPE ignored (its QMP clients may leave at any time): the probe's
    // view to a full disk or a closed pipe is one error line and exit 1.
    let out = to_dev_full(&["run"]);
    let (code, stderr) = failed_cleanly(&out, "rvmm run > /dev/full");
    assert_eq!(code, 1, "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("rvmm: warning:"))
        .collect();
    assert_eq!(
        errors,
        ["rvmm: writing to stdout: No space left on device"],
        "{stderr}"
    );
    let out = rvmm()
        .arg("run")
        .stdout(closed_pipe())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let (code, stderr) = failed_cleanly(&out, "rvmm run | (closed)");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.ends_with("rvmm: writing to stdout: Broken pipe\n"),
        "{stderr}"
    );
}

// ---- issue 11: configuration input ----

/// Runs `rvmm ARGS` (in `dir` when given): it must exit (not die of a signal such as a
/// stack overflow's SIGSEGV/SIGABRT) with status 1 and exactly one error line, no panic.
/// Returns that line.
fn config_error(args: &[&str], dir: Option<&std::path::Path>) -> String {
    let mut cmd = rvmm();
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let (code, line) = error_line(cmd, args);
    assert_eq!(code, 1, "rvmm {args:?} should exit 1: {line}");
    line
}

const VCPU_RULE: &str =
    "exceeds the maximum of 4096 vCPUs (the largest KVM_MAX_VCPUS of x86 Linux)";
const MEMORY_RULE: &str = "exceeds the maximum of 4 PiB less 1 GiB (4503598553628672 bytes): \
                           guest RAM and the 1 GiB MMIO hole below 4 GiB must fit in x86-64's \
                           52-bit physical addresses";

#[test]
fn smp_products_and_counts_that_overflow_are_one_error_line() {
    let e = config_error(
        &[
            "run",
            "--smp",
            "sockets=65536,dies=65536,cores=65536,threads=65536",
            "--dry-run",
        ],
        None,
    );
    assert_eq!(
        e,
        format!(
            "rvmm: --smp: sockets (65536) * dies (65536) * cores (65536) * threads (65536) = \
             18446744073709551616 {VCPU_RULE}"
        )
    );
    // 2^32 * 2^32 wraps u64 to 0, which QEMU's arithmetic divides by.
    let e = config_error(&["run", "--smp", "4,sockets=4294967296", "--dry-run"], None);
    assert_eq!(
        e,
        "rvmm: --smp: sockets '4294967296' is too large (at most 4294967295)"
    );
    let e = config_error(
        &[
            "run",
            "--smp",
            "4,sockets=65536,dies=65536,threads=65536",
            "--dry-run",
        ],
        None,
    );
    assert!(e.contains("= 0 does not equal maxcpus (4)"), "{e}");
    // A huge maxcpus with NUMA used to size a vector by it (a 34 GB allocation).
    let e = config_error(
        &[
            "run",
            "--smp",
            "1,maxcpus=4294967295",
            "--numa",
            "node,mem=128M",
            "--dry-run",
        ],
        None,
    );
    assert_eq!(e, format!("rvmm: --smp: maxcpus (4294967295) {VCPU_RULE}"));
    let e = config_error(&["run", "--smp", "18446744073709551615", "--dry-run"], None);
    assert_eq!(
        e,
        "rvmm: --smp: cpus '18446744073709551615' is too large (at most 4294967295)"
    );
}

#[test]
fn memory_and_numa_sizes_near_2_pow_64_are_one_error_line() {
    let e = config_error(&["run", "-m", "16777215T", "--dry-run"], None);
    assert_eq!(
        e,
        format!("rvmm: -m: '16777215T' (18446742974197923840 bytes) {MEMORY_RULE}")
    );
    let e = config_error(&["run", "-m", "18446744073709551615", "--dry-run"], None);
    assert_eq!(e, "rvmm: -m: '18446744073709551615' is too large");
    // Two nodes of 2^63 bytes wrap to 0.
    let e = config_error(
        &[
            "run",
            "-m",
            "1G",
            "--numa",
            "node,mem=9223372036854775808B",
            "--numa",
            "node,mem=9223372036854775808B",
            "--dry-run",
        ],
        None,
    );
    assert!(
        e.starts_with("rvmm: --numa node,mem=9223372036854775808B: total memory for NUMA nodes")
            && e.contains("exceeds 2^64 bytes"),
        "{e}"
    );
}

#[test]
fn huge_cpu_lists_and_pins_are_bounded() {
    // ~120 KiB (one argument holds at most 128 KiB) of overlapping ranges over every CPU
    // number: one bitmap, not a vector per group. The pinned vCPU does not exist, so the
    // run stops at that rule.
    let mut list = String::from("0-8191");
    while list.len() < 120 << 10 {
        list.push_str(",0-8191,1-8190:1/2,^8191");
    }
    let pin = format!("7={list}");
    let e = config_error(&["run", "--vcpu-pin", &pin, "--dry-run"], None);
    assert_eq!(
        e,
        "rvmm: --vcpu-pin: vCPU 7 does not exist (--smp gives vCPUs 0-0)"
    );
    let pin = format!("4294967295={list}");
    let e = config_error(&["run", "--vcpu-pin", &pin, "--dry-run"], None);
    assert!(
        e.ends_with("vCPU 4294967295 does not exist (a VM has at most 4096 vCPUs)"),
        "{}",
        &e[e.len().saturating_sub(200)..]
    );
}

/// Writes `xml` as vm.xml in a fresh directory and returns `rvmm run --domain vm.xml
/// --dry-run`'s one error line.
fn domain_error(tag: &str, xml: &str) -> String {
    let dir = tempdir(tag);
    std::fs::write(dir.join("vm.xml"), xml).unwrap();
    let e = config_error(&["run", "--domain", "vm.xml", "--dry-run"], Some(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    e
}

fn domain_with(body: &str) -> String {
    format!(
        "<domain type='kvm'>\n<name>t</name>\n{body}\n<os><type arch='x86_64'>hvm</type></os>\n\
         <features><acpi/></features>\n</domain>\n"
    )
}

#[test]
fn hostile_domain_xml_is_one_error_line() {
    // 100000 nested elements inside an ignored element: a SIGSEGV (stack overflow) before.
    let deep = format!(
        "<memory unit='MiB'>128</memory>\n<metadata>{}{}</metadata>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    assert_eq!(
        domain_error("deep", &domain_with(&deep)),
        "rvmm: --domain vm.xml:4: refused before parsing: elements nest deeper than the limit \
         of 256 levels"
    );
    // A non-ASCII unit: a panic on a char boundary before.
    assert_eq!(
        domain_error("unit", &domain_with("<memory unit='éB'>4</memory>")),
        "rvmm: --domain vm.xml:3: <memory unit='éB'>: unknown unit 'éB' (expected b, bytes, KB, \
         k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB)"
    );
    // A huge <vcpu> with <vcpus>: a 34 GB allocation before.
    assert_eq!(
        domain_error(
            "vcpu",
            &domain_with(
                "<memory unit='MiB'>128</memory><vcpu>4294967295</vcpu>\
                 <vcpus><vcpu id='0' enabled='yes'/></vcpus>"
            )
        ),
        "rvmm: --domain vm.xml:3: <vcpu>: 4294967295 is out of range (at most 4096 vCPUs, the \
         largest KVM_MAX_VCPUS of x86 Linux)"
    );
    // Memory near 2^64, and NUMA cells whose sizes wrap.
    assert_eq!(
        domain_error("mem", &domain_with("<memory unit='EiB'>15</memory>")),
        format!("rvmm: --domain vm.xml:3: <memory unit='EiB'>: 17293822569102704640 bytes {MEMORY_RULE}")
    );
    let e = domain_error(
        "cells",
        &domain_with(
            "<memory unit='MiB'>1024</memory><vcpu>2</vcpu><cpu><numa>\
             <cell id='0' cpus='0' memory='8' unit='EiB'/>\
             <cell id='1' cpus='1' memory='8' unit='EiB'/></numa></cpu>",
        ),
    );
    assert!(
        e.contains("<cell id='1' memory='8' unit='EiB'>: the cells' memory adds up to more than 2^64 bytes"),
        "{e}"
    );
    // Topology factors whose product wraps u64.
    let e = domain_error(
        "topo",
        &domain_with(
            "<memory unit='MiB'>128</memory><vcpu>4</vcpu><cpu><topology sockets='65536' \
             dies='65536' cores='65536' threads='65536'/></cpu>",
        ),
    );
    assert!(
        e.contains("sockets × dies × cores × threads = 18446744073709551616, but <vcpu> gives 4"),
        "{e}"
    );
    // More than 1 MiB.
    let big = domain_with(&format!(
        "<memory unit='MiB'>128</memory><!--{}-->",
        " ".repeat(1 << 20)
    ));
    assert_eq!(
        domain_error("big", &big),
        format!(
            "rvmm: --domain vm.xml:1: refused before parsing: the document is {} bytes, more \
             than the limit of 1048576 bytes (1 MiB)",
            big.len()
        )
    );
}

#[test]
fn deep_host_cpu_xml_is_one_error_line() {
    let dir = tempdir("deep-host");
    let file = dir.join("host.xml");
    std::fs::write(
        &file,
        format!(
            "<capabilities>{}{}</capabilities>",
            "<x>".repeat(100_000),
            "</x>".repeat(100_000)
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap().to_string();
    let e = config_error(&["cpu-baseline", &path], None);
    let _ = std::fs::remove_dir_all(&dir);
    // Refused before libvirt's CPU map is even loaded.
    assert_eq!(
        e,
        format!(
            "rvmm: {path}: not well-formed XML: line 1: refused before parsing: elements nest \
             deeper than the limit of 256 levels"
        )
    );
}

/// The scope a VM named `name` would get under the default parent in the v1 cpu hierarchy
/// (this host's layout) and in the unified one.
fn scope_dirs(name: &str) -> [String; 2] {
    [
        format!("/sys/fs/cgroup/cpu/rvmm.slice/rvmm-{name}.scope"),
        format!("/sys/fs/cgroup/rvmm.slice/rvmm-{name}.scope"),
    ]
}

#[test]
fn cgroup_tuning_options_name_the_option_and_the_rule() {
    const QUOTA_RULE: &str = "a CFS quota is -1 (no limit) or 1000 to 17592186044415 \
        microseconds; 0 and other negative values are refused";
    const PERIOD_RULE: &str =
        "a CFS period is 1000 to 1000000 microseconds (the kernel's cpu.cfs_period_us range)";
    let cases: [(&[&str], String); 12] = [
        (
            &["--cpu-shares", "-5"],
            "--cpu-shares: '-5' is not a number (CPU shares are 2 to 262144 (cgroup v1 \
             cpu.shares, libvirt's <shares>))"
                .to_string(),
        ),
        (
            &["--memory-limit", "-1"],
            "--memory-limit: '-1' is not a size (expected a number with an optional K, M, G or \
             T suffix, e.g. 512M or 2G)"
                .to_string(),
        ),
        (
            &["--cpu-quota", "vcpu_quota=0"],
            format!("--cpu-quota vcpu_quota: 0 is not a valid quota ({QUOTA_RULE})"),
        ),
        (
            &["--cpu-quota", "period=100000,quota=-5000"],
            format!("--cpu-quota quota: -5000 is not a valid quota ({QUOTA_RULE})"),
        ),
        (
            &["--cpu-quota", "emulator_quota=-2"],
            format!("--cpu-quota emulator_quota: -2 is not a valid quota ({QUOTA_RULE})"),
        ),
        (
            &["--cpu-quota", "vcpu_period=999"],
            format!("--cpu-quota vcpu_period: 999 is out of range ({PERIOD_RULE})"),
        ),
        (
            &["--cpu-quota", "global_period=1000001"],
            format!("--cpu-quota global_period: 1000001 is out of range ({PERIOD_RULE})"),
        ),
        (
            &["--cpu-quota", "vcpu_qouta=25000"],
            "--cpu-quota: unknown key 'vcpu_qouta' (expected one of period, quota, \
             global_period, global_quota, vcpu_period, vcpu_quota, emulator_period, \
             emulator_quota)"
                .to_string(),
        ),
        (
            &["--cpu-shares", "1"],
            "--cpu-shares: 1 is out of range (CPU shares are 2 to 262144 (cgroup v1 cpu.shares, \
             libvirt's <shares>))"
                .to_string(),
        ),
        (
            &["-m", "256M", "--memory-limit", "200M"],
            "--memory-limit: 200M (209715200 bytes) is below the guest RAM of 256M (268435456 \
             bytes): the limit must be at least guest RAM plus the VMM's 64M overhead, 320M \
             (335544320 bytes)"
                .to_string(),
        ),
        (
            &["--cgroup", "off", "--cpu-shares", "2048"],
            "--cgroup off conflicts with --cpu-shares: without a cgroup of its own the VM's CPU \
             shares cannot be applied"
                .to_string(),
        ),
        (
            &["--cgroup-parent", "machine.slice"],
            "--cgroup-parent: 'machine.slice' is not an absolute path inside the cgroup \
             hierarchy (e.g. /machine.slice)"
                .to_string(),
        ),
    ];
    for (i, (options, message)) in cases.iter().enumerate() {
        let name = format!("rvmm-badcg-{}-{i}", std::process::id());
        let mut args = vec!["run", "--name", &name, "--append", "mode=halt"];
        args.extend_from_slice(options);
        let (code, e) = fails(&args, &[]);
        assert_eq!(code, 1, "{options:?}");
        assert_eq!(e, format!("rvmm: {message}"), "{options:?}");
        for dir in scope_dirs(&name) {
            assert!(!Path::new(&dir).exists(), "{options:?} left {dir}");
        }
    }
}

#[test]
fn cgroup_options_and_domain_files() {
    let dir = tempdir("cgroup-domain");
    let xml = dir.join("quota.xml");
    let write = |tune: &str| {
        std::fs::write(
            &xml,
            format!(
                "<domain type='kvm'><name>q</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\n\
                 {tune}\n<os><type arch='x86_64'>hvm</type></os></domain>"
            ),
        )
        .unwrap();
    };
    let x = xml.to_str().unwrap();
    write("<cputune><quota>0</quota></cputune>");
    assert_eq!(
        fails(&["run", "--domain", x], &[]).1,
        format!(
            "rvmm: --domain {x}:2: <quota>: 0 is not a valid quota (a CFS quota is -1 (no \
             limit) or 1000 to 17592186044415 microseconds; 0 and other negative values are \
             refused)"
        )
    );
    write("<memtune><hard_limit unit='MiB'>64</hard_limit></memtune>");
    assert_eq!(
        fails(&["run", "--domain", x], &[]).1,
        format!(
            "rvmm: --domain {x}:2: <hard_limit unit='MiB'>: 64M (67108864 bytes) is below the \
             guest RAM of 128M (134217728 bytes): the limit must be at least guest RAM plus the \
             VMM's 64M overhead, 192M (201326592 bytes)"
        )
    );
    write("<cputune><shares>512</shares></cputune>");
    assert_eq!(
        fails(&["run", "--domain", x, "--cgroup", "off"], &[]).1,
        format!(
            "rvmm: --cgroup off conflicts with <cputune><shares> of --domain {x}: without a \
             cgroup of its own the VM's CPU and memory tuning cannot be applied"
        )
    );
    assert_eq!(
        fails(&["run", "--domain", x, "--cpu-shares", "100"], &[]).1,
        "rvmm: --cpu-shares conflicts with --domain"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- issue 15: virtio-net ----

#[test]
fn net_options_name_the_value_and_the_rule() {
    let (code, e) = fails(&["run", "--net", "tap=t0,mac=01:02:03:04:05:06"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        e,
        "rvmm: --net: mac=01:02:03:04:05:06: a multicast address (the first byte is odd); a \
         NIC needs a unicast one"
    );
    let (_, e) = fails(&["run", "--net", "tap=t0,mac=52:54:00"], &[]);
    assert_eq!(
        e,
        "rvmm: --net: mac=52:54:00: expected six hex bytes like 52:54:00:12:34:56"
    );
    let (_, e) = fails(&["run", "--net", "tap=t0,queues=4"], &[]);
    assert_eq!(e, "rvmm: --net: unknown key 'queues' (keys: tap, fd, mac)");
    let (_, e) = fails(&["run", "--net", "user"], &[]);
    assert_eq!(
        e,
        "rvmm: --net: 'user' is not KEY=VALUE (keys: tap, fd, mac)"
    );
    // A tap that does not exist: checked when the VM is built, before the guest runs.
    let (code, e) = fails(
        &["run", "--append", "mode=hello", "--net", "tap=rvmm-nosuch0"],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        e,
        "rvmm: --net tap=rvmm-nosuch0: no tap device named rvmm-nosuch0: create it with `ip \
         tuntap add dev rvmm-nosuch0 mode tap` (or leave the name out to let rvmm create one, \
         which needs CAP_NET_ADMIN)"
    );
}
