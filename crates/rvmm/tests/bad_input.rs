//! Bad input of every kind gets one clear line on stderr and a non-zero exit, never a panic,
//! and nothing is left half-made.

mod common;

use std::time::Duration;

use common::*;

/// Runs rvmm with `args` (and extra env) and returns (exit code, stderr).
fn fails(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = rvmm();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let (_, stderr) = text(&out);
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 0, "rvmm {args:?} should fail: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "rvmm {args:?} panicked: {stderr}"
    );
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
        "rvmm: --machine: unknown option 'hpet' (expected pit, debug-exit)"
    );
}
