//! Unit tests of the cputune grammars and rules: every range edge and every message.

use super::*;

fn err<T: std::fmt::Debug>(r: Result<T, CputuneError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn shares_range_and_syntax() {
    assert_eq!(parse_shares("--cpu-shares", "2"), Ok(2));
    assert_eq!(parse_shares("--cpu-shares", " 262144 "), Ok(262144));
    assert_eq!(
        err(parse_shares("--cpu-shares", "1")),
        "--cpu-shares: 1 is out of range (CPU shares are 2 to 262144 (cgroup v1 cpu.shares, \
         libvirt's <shares>))"
    );
    assert!(err(parse_shares("--cpu-shares", "262145")).contains("262145 is out of range"));
    assert!(err(parse_shares("--cpu-shares", "0")).contains("0 is out of range"));
    assert!(err(parse_shares("--cpu-shares", "99999999999999999999999"))
        .starts_with("--cpu-shares: 99999999999999999999999 is out of range"));
    assert!(err(parse_shares("--cpu-shares", "-5"))
        .starts_with("--cpu-shares: '-5' is not a number (CPU shares are 2 to 262144"));
    assert!(err(parse_shares("--cpu-shares", "")).contains("'' is not a number"));
    assert!(err(parse_shares("--cpu-shares", "1k")).contains("'1k' is not a number"));
}

#[test]
fn period_range() {
    assert_eq!(parse_period("p", "1000"), Ok(1000));
    assert_eq!(parse_period("p", "1000000"), Ok(1_000_000));
    assert_eq!(
        err(parse_period("--cpu-quota vcpu_period", "999")),
        "--cpu-quota vcpu_period: 999 is out of range (a CFS period is 1000 to 1000000 \
         microseconds (the kernel's cpu.cfs_period_us range))"
    );
    assert!(err(parse_period("p", "1000001")).contains("1000001 is out of range"));
    assert!(err(parse_period("p", "0")).contains("0 is out of range"));
    assert!(err(parse_period("p", "-1")).contains("'-1' is not a number"));
    assert!(err(parse_period("p", "1e5")).contains("'1e5' is not a number"));
}

#[test]
fn quota_range() {
    assert_eq!(parse_quota("q", "-1"), Ok(-1));
    assert_eq!(parse_quota("q", "1000"), Ok(1000));
    assert_eq!(parse_quota("q", "17592186044415"), Ok(QUOTA_MAX_US));
    assert_eq!(
        err(parse_quota("--cpu-quota vcpu_quota", "0")),
        "--cpu-quota vcpu_quota: 0 is not a valid quota (a CFS quota is -1 (no limit) or \
         1000 to 17592186044415 microseconds; 0 and other negative values are refused)"
    );
    for bad in [
        "-2",
        "-1000",
        "999",
        "17592186044416",
        "-0",
        "99999999999999999999",
    ] {
        assert!(
            err(parse_quota("q", bad)).starts_with(&format!("q: {bad} is not a valid quota")),
            "{bad}"
        );
    }
    assert!(err(parse_quota("q", "-")).contains("'-' is not a number"));
    assert!(err(parse_quota("q", "--1")).contains("'--1' is not a number"));
    assert!(err(parse_quota("q", "max")).contains("'max' is not a number"));
}

fn quota(values: &[&str]) -> Result<CpuTune, CputuneError> {
    let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
    let mut t = CpuTune::default();
    parse_cpu_quota(&values, &mut t).map(|()| t)
}

#[test]
fn cpu_quota_keys() {
    let t = quota(&["period=100000,quota=50000", "vcpu_quota=25000"]).unwrap();
    assert_eq!(
        t.global,
        Bandwidth {
            period_us: Some(100_000),
            quota_us: Some(50_000)
        }
    );
    assert_eq!(t.vcpu.quota_us, Some(25_000));
    assert_eq!(t.vcpu.period_us, None);
    assert!(!t.emulator.is_set());
    let t = quota(&[
        "global_period=10000,global_quota=-1,vcpu_period=20000,emulator_period=30000,\
         emulator_quota=1000",
    ])
    .unwrap();
    assert_eq!(t.global.quota_us, Some(-1));
    assert_eq!(t.vcpu.period_us, Some(20_000));
    assert_eq!(
        t.emulator,
        Bandwidth {
            period_us: Some(30_000),
            quota_us: Some(1000)
        }
    );
    assert!(t.is_set());
    assert!(!quota(&[]).unwrap().is_set());
}

#[test]
fn cpu_quota_errors() {
    assert_eq!(
        err(quota(&["vcpu_quota=25000,cpu_quota=5"])),
        "--cpu-quota: unknown key 'cpu_quota' (expected one of period, quota, global_period, \
         global_quota, vcpu_period, vcpu_quota, emulator_period, emulator_quota)"
    );
    assert_eq!(
        err(quota(&["25000"])),
        "--cpu-quota: '25000' is not KEY=MICROSECONDS (e.g. vcpu_quota=25000)"
    );
    assert!(err(quota(&["vcpu_quota=25000,"])).contains("'' is not KEY=MICROSECONDS"));
    assert_eq!(
        err(quota(&["vcpu_quota=0"])),
        "--cpu-quota vcpu_quota: 0 is not a valid quota (a CFS quota is -1 (no limit) or \
         1000 to 17592186044415 microseconds; 0 and other negative values are refused)"
    );
    assert!(err(quota(&["emulator_quota=-5"]))
        .starts_with("--cpu-quota emulator_quota: -5 is not a valid quota"));
    assert!(err(quota(&["period=500"])).starts_with("--cpu-quota period: 500 is out of range"));
    assert!(err(quota(&["global_period=2000000"]))
        .starts_with("--cpu-quota global_period: 2000000 is out of range"));
    assert!(err(quota(&["vcpu_quota="])).contains("'' is not a number"));
    assert_eq!(
        err(quota(&["vcpu_quota=25000", "vcpu_quota=50000"])),
        "--cpu-quota: vcpu_quota is given twice ('vcpu_quota=25000' and 'vcpu_quota=50000')"
    );
    assert_eq!(
        err(quota(&["period=100000,global_period=200000"])),
        "--cpu-quota: global_period is given twice ('period=100000' and \
         'global_period=200000': period/quota are global_period/global_quota)"
    );
}

#[test]
fn sched_params() {
    assert_eq!(
        parse_sched_param("cpu_shares", "2048"),
        Ok(SchedParam::CpuShares(2048))
    );
    assert_eq!(
        parse_sched_param("vcpu_period", "50000"),
        Ok(SchedParam::VcpuPeriod(50_000))
    );
    assert_eq!(
        parse_sched_param("vcpu_quota", "-1"),
        Ok(SchedParam::VcpuQuota(-1))
    );
    assert_eq!(
        parse_sched_param("emulator_period", "1000"),
        Ok(SchedParam::EmulatorPeriod(1000))
    );
    assert_eq!(
        parse_sched_param("emulator_quota", "2000"),
        Ok(SchedParam::EmulatorQuota(2000))
    );
    assert_eq!(
        parse_sched_param("global_period", "1000000"),
        Ok(SchedParam::GlobalPeriod(1_000_000))
    );
    assert_eq!(
        parse_sched_param("global_quota", "17592186044415"),
        Ok(SchedParam::GlobalQuota(QUOTA_MAX_US))
    );
    assert_eq!(
        err(parse_sched_param("vcpu_quota", "0")),
        "vcpu_quota: 0 is not a valid quota (a CFS quota is -1 (no limit) or 1000 to \
         17592186044415 microseconds; 0 and other negative values are refused)"
    );
    assert!(err(parse_sched_param("cpu_shares", "1")).starts_with("cpu_shares: 1 is out"));
    assert!(err(parse_sched_param("global_period", "10")).starts_with("global_period: 10"));
    assert_eq!(
        err(parse_sched_param("iothread_quota", "5000")),
        "iothread_quota: rvmm has no iothreads (its I/O runs in the emulator threads: use \
         emulator_period/emulator_quota)"
    );
    assert_eq!(
        err(parse_sched_param("vcpu_shares", "5")),
        "unknown scheduler parameter 'vcpu_shares' (expected one of cpu_shares, vcpu_period, \
         vcpu_quota, emulator_period, emulator_quota, global_period, global_quota)"
    );
    // --cpu-quota's short aliases are not virsh names.
    assert!(parse_sched_param("quota", "5000").is_err());
}

#[test]
fn memory_limit() {
    assert_eq!(parse_memory_limit("1G"), Ok(1 << 30));
    assert_eq!(parse_memory_limit("300"), Ok(300 << 20));
    assert_eq!(
        err(parse_memory_limit("lots")),
        "--memory-limit: 'lots' is not a size (expected a number with an optional K, M, G or \
         T suffix, e.g. 512M or 2G)"
    );
    let ram = 128 << 20;
    assert_eq!(check_memory_limit(ram + MEMORY_OVERHEAD, ram), Ok(()));
    assert_eq!(check_memory_limit(1 << 40, ram), Ok(()));
    assert_eq!(
        check_memory_limit(100 << 20, ram).unwrap_err().to_string(),
        "--memory-limit: 100M (104857600 bytes) is below the guest RAM of 128M (134217728 \
         bytes): the limit must be at least guest RAM plus the VMM's 64M overhead, 192M \
         (201326592 bytes)"
    );
    assert_eq!(
        check_memory_limit(ram + MEMORY_OVERHEAD - 4096, ram)
            .unwrap_err()
            .to_string(),
        "--memory-limit: 196604K (201322496 bytes) leaves less than the VMM's 64M overhead \
         (MEMORY_OVERHEAD) above the guest RAM of 128M (134217728 bytes): the limit must be \
         at least 192M (201326592 bytes)"
    );
    assert!(matches!(
        check_memory_limit(ram, ram),
        Err(CputuneError::LimitBelowOverhead { .. })
    ));
    assert!(matches!(
        check_memory_limit(0, ram),
        Err(CputuneError::LimitBelowRam { .. })
    ));
    assert_eq!(MEMORY_OVERHEAD, 64 << 20);
}

#[test]
fn cgroup_switch_and_parent() {
    assert_eq!(CgroupSwitch::parse("on"), Ok(CgroupSwitch::On));
    assert_eq!(CgroupSwitch::parse("off"), Ok(CgroupSwitch::Off));
    assert_eq!(CgroupSwitch::parse("auto"), Ok(CgroupSwitch::Auto));
    assert_eq!(
        err(CgroupSwitch::parse("yes")),
        "--cgroup: 'yes' is not a cgroup mode (expected on, off or auto)"
    );
    for s in [CgroupSwitch::On, CgroupSwitch::Off, CgroupSwitch::Auto] {
        assert_eq!(CgroupSwitch::parse(s.name()), Ok(s));
    }
    assert_eq!(
        parse_cgroup_parent("/machine.slice"),
        Ok("/machine.slice".into())
    );
    assert_eq!(parse_cgroup_parent("/a/b.slice"), Ok("/a/b.slice".into()));
    assert_eq!(parse_cgroup_parent("/"), Ok("/".into()));
    assert_eq!(
        err(parse_cgroup_parent("machine.slice")),
        "--cgroup-parent: 'machine.slice' is not an absolute path inside the cgroup \
         hierarchy (e.g. /machine.slice)"
    );
    assert!(err(parse_cgroup_parent("")).contains("is not an absolute path"));
    assert_eq!(
        err(parse_cgroup_parent("/a/../b")),
        "--cgroup-parent: '/a/../b' may not contain '.' or '..' components"
    );
    assert!(err(parse_cgroup_parent("/a/./b")).contains("'.' or '..'"));
    assert_eq!(
        err(parse_cgroup_parent("/a//b")),
        "--cgroup-parent: '/a//b' has an empty component ('//' or a trailing '/')"
    );
    assert!(err(parse_cgroup_parent("/a/")).contains("empty component"));
    assert!(err(parse_cgroup_parent("/sys/fs/cgroup/cpu/x")).contains("file system path"));
    assert!(err(parse_cgroup_parent("/a\nb")).contains("control characters"));
    let long = format!("/{}", "a".repeat(5000));
    assert!(err(parse_cgroup_parent(&long)).contains("PATH_MAX"));
}

#[test]
fn scope_paths() {
    let c = CgroupConfig::default();
    assert_eq!(c.parent_path(), "/rvmm.slice");
    assert_eq!(c.scope_path(Some("web"), 7), "/rvmm.slice/rvmm-web.scope");
    assert_eq!(c.scope_path(None, 42), "/rvmm.slice/rvmm-pid42.scope");
    let root = CgroupConfig {
        parent: Some("/".into()),
        ..Default::default()
    };
    assert_eq!(root.scope_path(Some("x"), 1), "/rvmm-x.scope");
}

#[test]
fn options_and_validate() {
    let quota = vec!["vcpu_quota=25000".to_string()];
    let t = TuningOptions {
        cpu_shares: Some("2048"),
        cpu_quota: &quota,
        memory_limit: Some("1G"),
        cgroup: Some("on"),
        cgroup_parent: Some("/machine.slice"),
    }
    .parse()
    .unwrap();
    assert_eq!(t.cputune.shares, Some(2048));
    assert_eq!(t.cputune.vcpu.quota_us, Some(25_000));
    assert_eq!(t.memtune.hard_limit, Some(1 << 30));
    assert_eq!(t.cgroup.switch, CgroupSwitch::On);
    assert_eq!(t.cgroup.parent.as_deref(), Some("/machine.slice"));
    assert_eq!(
        validate(&t.cputune, &t.memtune, &t.cgroup, 512 << 20),
        Ok(())
    );
    assert!(matches!(
        validate(&t.cputune, &t.memtune, &t.cgroup, 1 << 30),
        Err(CputuneError::LimitBelowOverhead { .. })
    ));
    assert_eq!(TuningOptions::default().parse(), Ok(Tuning::default()));

    // --cgroup off with each tuning option names both.
    let off = CgroupConfig {
        switch: CgroupSwitch::Off,
        parent: None,
    };
    let none = (CpuTune::default(), MemTune::default());
    assert_eq!(validate(&none.0, &none.1, &off, 1 << 30), Ok(()));
    let shares = CpuTune {
        shares: Some(100),
        ..Default::default()
    };
    assert_eq!(
        validate(&shares, &none.1, &off, 1 << 30)
            .unwrap_err()
            .to_string(),
        "--cgroup off conflicts with --cpu-shares: without a cgroup of its own the VM's CPU \
         shares cannot be applied"
    );
    let mut bw = CpuTune::default();
    bw.emulator.period_us = Some(10_000);
    assert!(validate(&bw, &none.1, &off, 1 << 30)
        .unwrap_err()
        .to_string()
        .starts_with("--cgroup off conflicts with --cpu-quota"));
    let limit = MemTune {
        hard_limit: Some(4 << 30),
    };
    assert!(validate(&none.0, &limit, &off, 1 << 30)
        .unwrap_err()
        .to_string()
        .starts_with("--cgroup off conflicts with --memory-limit"));
    let off_parent = CgroupConfig {
        switch: CgroupSwitch::Off,
        parent: Some("/x".into()),
    };
    assert!(validate(&none.0, &none.1, &off_parent, 1 << 30)
        .unwrap_err()
        .to_string()
        .starts_with("--cgroup off conflicts with --cgroup-parent"));

    // Values set directly (not through the parsers) are range-checked too.
    let mut raw = CpuTune::default();
    raw.vcpu.quota_us = Some(0);
    assert!(validate(&raw, &none.1, &CgroupConfig::default(), 1 << 30)
        .unwrap_err()
        .to_string()
        .starts_with("--cpu-quota vcpu_quota: 0 is not a valid quota"));
    let mut raw = CpuTune::default();
    raw.global.period_us = Some(1);
    assert!(validate(&raw, &none.1, &CgroupConfig::default(), 1 << 30)
        .unwrap_err()
        .to_string()
        .starts_with("--cpu-quota global_period: 1 is out of range"));
    let raw = CpuTune {
        shares: Some(1),
        ..Default::default()
    };
    assert!(validate(&raw, &none.1, &CgroupConfig::default(), 1 << 30).is_err());
    let bad_parent = CgroupConfig {
        switch: CgroupSwitch::Auto,
        parent: Some("x".into()),
    };
    assert!(validate(&none.0, &none.1, &bad_parent, 1 << 30).is_err());
}

#[test]
fn weight_conversion() {
    assert_eq!(shares_to_weight(1024), 100);
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(262_144), 10_000);
}
