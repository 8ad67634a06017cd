//! The CPU side of a domain: `<cpu>` (mode, model, vendor, features, topology; `<numa>` is
//! memory.rs's, `<vcpu>` and `<vcpus>` are vcpus.rs's) and `<cputune>`: pinning, shares and
//! CFS bandwidth (`<period>`/`<quota>` for each vCPU's group, `global_*` for the VM's scope,
//! `emulator_*` for the emulator group, as libvirt applies them).
//!
//! libvirt semantics kept: without `<topology>` libvirt asks QEMU for
//! `sockets=M,cores=1,threads=1` for the M vCPUs of `<vcpu>`, and so do we; a topology must
//! multiply out to M. Feature policies: `require` fails when the host's KVM
//! cannot give the feature, `optional` is dropped silently then, `force` cannot be faked
//! (the guest sees only what KVM gives) and is dropped with a warning, `disable` turns the
//! feature off and `forbid` also fails when the host has it. `check='partial'|'full'` (the
//! default for `custom` and `host-model`) refuses a model the host cannot run, as
//! QEMU's `enforce`; `check='none'` warns and filters, as QEMU's default.

use roxmltree::Node;

use super::vcpus::{no_such_vcpu, VcpuSpec};
use super::{elements, strip_option, tag, text, Ctx, DomainEnv, DomainError, DomainHost};
use crate::config::cpu::{Check, CpuConfig};
use crate::config::cputune::{parse_period, parse_quota, parse_shares, Bandwidth, CpuTune};
use crate::config::pinning::{PinningConfig, VcpuPin};
use crate::config::smp::{SmpConfig, SmpOptions};
use crate::cpu::availability::{closest_model, expand_for_host};
use crate::cpu::features::{canonical_name, feature_mask, FeatureSet};
use crate::cpu::filter::filter_cpu;
use crate::cpu::models::lookup;

/// The topology: `<cpu><topology>`, else libvirt's `sockets=M,cores=1,threads=1`.
pub(super) fn smp(
    ctx: &mut Ctx,
    cpu: Option<Node>,
    spec: &VcpuSpec,
    current: u32,
) -> Result<SmpConfig, DomainError> {
    let topology = cpu.and_then(|c| elements(c).find(|e| e.has_tag_name("topology")));
    let (sockets, dies, cores, threads) = match topology {
        Some(t) => {
            ctx.check_attrs(t, &["sockets", "dies", "clusters", "cores", "threads"]);
            let count = |attr: &str, default: Option<u32>| -> Result<u32, DomainError> {
                let v = match (ctx.attr_u32(t, attr)?, default) {
                    (Some(v), _) => v,
                    (None, Some(d)) => d,
                    (None, None) => {
                        return Err(ctx.text_err(t, format!("the '{attr}' attribute is missing")))
                    }
                };
                if v == 0 {
                    return Err(ctx.attr_err(t, attr, "0 is out of range (at least 1)"));
                }
                Ok(v)
            };
            let sockets = count("sockets", None)?;
            let dies = count("dies", Some(1))?;
            let clusters = count("clusters", Some(1))?;
            let cores = count("cores", None)?;
            let threads = count("threads", None)?;
            if clusters != 1 {
                return Err(ctx.attr_err(
                    t,
                    "clusters",
                    "x86 machines have no clusters (QEMU 7.2's pc machine needs clusters='1')",
                ));
            }
            // Four u32 factors cannot wrap a u128.
            let product = [sockets, dies, cores, threads]
                .iter()
                .map(|&v| u128::from(v))
                .product::<u128>();
            if product != u128::from(spec.max) {
                return Err(ctx.err(
                    t,
                    tag(t, &["sockets", "dies", "cores", "threads"]),
                    format!(
                        "sockets × dies × cores × threads = {product}, but <vcpu> gives {} vCPUs \
                         (libvirt requires them equal)",
                        spec.max
                    ),
                ));
            }
            (sockets, dies, cores, threads)
        }
        None => (spec.max, 1, 1, 1),
    };
    SmpOptions {
        cpus: Some(current),
        maxcpus: Some(spec.max),
        sockets: Some(sockets),
        dies: Some(dies),
        cores: Some(cores),
        threads: Some(threads),
    }
    .resolve()
    .map_err(|e| ctx.domain_err(format!("<vcpu>: {}", strip_option(&e.to_string(), "--smp"))))
}

/// libvirt's vendor names when its CPU map is not installed.
const VENDORS: [(&str, &str); 3] = [
    ("Intel", "GenuineIntel"),
    ("AMD", "AuthenticAMD"),
    ("Hygon", "HygonGenuine"),
];

/// `<cpu mode='host-model'>`: the closest named model this host runs without losing a
/// feature, plus the named features the host's KVM gives beyond it.
fn host_model(host: DomainHost) -> Option<(String, Vec<&'static str>)> {
    let closest = closest_model(host.support, host.identity)?;
    let expand = |model: &str| {
        let cpu = CpuConfig {
            model: model.to_string(),
            ..CpuConfig::default()
        };
        expand_for_host(&cpu, host.support, host.identity)
            .ok()
            .map(|e| e.features)
    };
    let model = expand(&closest.name)?;
    let all = expand("host")?;
    Some((closest.name, all.difference(&model).names()))
}

/// The QEMU name of a `<feature name=>` (libvirt's spelling or QEMU's); `Ok(None)` for a
/// libvirt feature QEMU 7.2 has no name for.
fn qemu_feature(
    ctx: &Ctx,
    env: &DomainEnv,
    f: Node,
    name: &str,
) -> Result<Option<&'static str>, DomainError> {
    if let Some(lv) = env.cpu_map.and_then(|m| m.feature(name)) {
        return Ok(lv.qemu.map(|q| canonical_name(q).unwrap_or(q)));
    }
    if let Some(q) = canonical_name(name) {
        return Ok(Some(q));
    }
    let known = if env.cpu_map.is_some() {
        "neither in libvirt's CPU map nor a QEMU 7.2 feature name"
    } else {
        "not a QEMU 7.2 feature name; libvirt's CPU map is not installed, so libvirt's \
         spellings are unknown"
    };
    Err(ctx.attr_err(f, "name", format!("unknown CPU feature '{name}' ({known})")))
}

/// How a feature is named in messages: `pclmuldq (QEMU's pclmulqdq)`.
fn spelled(name: &str, qemu: &str) -> String {
    if name == qemu {
        name.to_string()
    } else {
        format!("{name} (QEMU's {qemu})")
    }
}

/// The `+`/`-` feature lists the `<feature>` elements ask for.
struct FeatureLists {
    plus: Vec<&'static str>,
    minus: Vec<&'static str>,
}

fn features(ctx: &mut Ctx, env: &DomainEnv, list: &[Node]) -> Result<FeatureLists, DomainError> {
    let supported: Option<FeatureSet> = env.host.map(|h| h.support.supported_set());
    let mut out = FeatureLists {
        plus: Vec::new(),
        minus: Vec::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut unchecked = false;
    for &f in list {
        ctx.check_attrs(f, &["policy", "name"]);
        let name = f
            .attribute("name")
            .ok_or_else(|| ctx.text_err(f, "the 'name' attribute is missing"))?;
        let policy = ctx
            .attr_choice(
                f,
                "policy",
                &["force", "require", "optional", "disable", "forbid"],
            )?
            .unwrap_or("require");
        let element = tag(f, &["policy", "name"]);
        if seen.contains(&name) {
            return Err(ctx.err(f, element, format!("feature '{name}' is listed twice")));
        }
        seen.push(name);
        let Some(q) = qemu_feature(ctx, env, f, name)? else {
            let rule = format!(
                "libvirt's feature '{name}' has no QEMU 7.2 name, so rvmm cannot ask KVM for it"
            );
            if matches!(policy, "require" | "force") {
                return Err(ctx.err(f, element, rule));
            }
            ctx.warn(f, format!("ignored ({rule})"));
            continue;
        };
        let on_host = supported
            .as_ref()
            .map(|s| feature_mask(q).is_some_and(|(w, m)| s.contains(w, m)));
        unchecked |= on_host.is_none() && matches!(policy, "require" | "optional" | "forbid");
        match (policy, on_host) {
            ("require", Some(false)) => {
                return Err(ctx.err(
                    f,
                    element,
                    format!(
                        "the host's KVM cannot give {} to a guest (policy='optional' drops it on \
                         such hosts)",
                        spelled(name, q)
                    ),
                ))
            }
            ("force", Some(false)) => ctx.warn(
                f,
                format!(
                    "the host's KVM cannot give {}; rvmm does not fake CPUID bits, so the guest \
                     will not see it",
                    spelled(name, q)
                ),
            ),
            ("optional", Some(false)) => {}
            ("forbid", Some(true)) => {
                return Err(ctx.err(
                    f,
                    element,
                    format!(
                        "the host CPU has {} (policy='forbid' refuses such hosts)",
                        spelled(name, q)
                    ),
                ))
            }
            ("require" | "force" | "optional", _) => out.plus.push(q),
            _ => out.minus.push(q),
        }
    }
    if unchecked {
        if let Some(&first) = list.first() {
            ctx.warn(
                first,
                "feature policies were not checked against the host (no KVM host information)",
            );
        }
    }
    Ok(out)
}

/// `<cpu>` → `CpuConfig` (with `<features><pmu>`'s `pmu`).
pub(super) fn cpu(
    ctx: &mut Ctx,
    n: Option<Node>,
    pmu: Option<bool>,
    env: &DomainEnv,
) -> Result<CpuConfig, DomainError> {
    let mut config = CpuConfig {
        pmu,
        ..CpuConfig::default()
    };
    let Some(n) = n else {
        return Ok(config);
    };
    ctx.check_attrs(n, &["mode", "match", "check", "migratable"]);
    let mode = ctx
        .attr_choice(
            n,
            "mode",
            &["custom", "host-model", "host-passthrough", "maximum"],
        )?
        .unwrap_or("custom");
    if let Some(m @ ("minimum" | "strict")) =
        ctx.attr_choice(n, "match", &["exact", "minimum", "strict"])?
    {
        ctx.warn(n, format!("match='{m}' is treated as 'exact'"));
    }
    let check = ctx.attr_choice(n, "check", &["none", "partial", "full"])?;
    let migratable = ctx.attr_choice(n, "migratable", &["on", "off"])?;
    let (mut model, mut vendor, mut feature_nodes) = (None, None, Vec::new());
    for c in elements(n) {
        let slot = match c.tag_name().name() {
            "model" => &mut model,
            "vendor" => &mut vendor,
            "feature" => {
                feature_nodes.push(c);
                continue;
            }
            "topology" | "numa" => continue,
            "cache" => {
                ctx.ignored(c, "rvmm describes caches as QEMU does by default");
                continue;
            }
            "maxphysaddr" => {
                ctx.ignored(c, "rvmm gives QEMU's default physical address width");
                continue;
            }
            _ => {
                ctx.ignored(c, "not supported");
                continue;
            }
        };
        if slot.is_some() {
            return Err(ctx.text_err(c, "appears more than once (libvirt allows one)"));
        }
        *slot = Some(c);
    }
    let default_check = match mode {
        "custom" if model.is_none() => "none",
        "custom" | "host-model" => "partial",
        _ => "none",
    };
    config.check = match check.unwrap_or(default_check) {
        "none" => Check::Warn,
        _ => Check::Enforce,
    };
    let lists = features(ctx, env, &feature_nodes)?;
    let mut plus: Vec<&'static str> = Vec::new();
    match mode {
        "custom" => custom_model(ctx, env, model, vendor, &feature_nodes, &mut config)?,
        "host-model" => {
            let Some(host) = env.host else {
                return Err(ctx.err(
                    n,
                    tag(n, &["mode"]),
                    "needs the host's KVM CPU support, which is not available (no /dev/kvm?)",
                ));
            };
            let Some((name, extra)) = host_model(host) else {
                return Err(ctx.err(
                    n,
                    tag(n, &["mode"]),
                    "no named CPU model runs on this host without losing a feature",
                ));
            };
            ctx.warn(
                n,
                format!(
                    "mode='host-model' is approximated as {name} plus the {} named features the \
                     host's KVM gives beyond it (libvirt picks the model from its own CPU map)",
                    extra.len()
                ),
            );
            config.model = name;
            plus.extend(extra.into_iter().filter(|f| !lists.minus.contains(f)));
        }
        "host-passthrough" => {
            config.model = "host".to_string();
            if migratable == Some("off") {
                ctx.warn(
                    n,
                    "migratable='off' is treated as 'on': rvmm's host model is QEMU's -cpu host \
                     with its default migratable=on (invtsc is left out)",
                );
            }
        }
        _ => config.model = "max".to_string(),
    }
    for f in lists.plus {
        if !plus.contains(&f) {
            plus.push(f);
        }
    }
    config.changes = plus.into_iter().map(|f| (f.to_string(), true)).collect();
    config
        .changes
        .extend(lists.minus.into_iter().map(|f| (f.to_string(), false)));
    if let (Check::Enforce, Some(host), Some(m)) = (config.check, env.host, model) {
        if mode == "custom" {
            check_model(ctx, host, m, &config, check.unwrap_or(default_check))?;
        }
    }
    Ok(config)
}

/// `check='partial'|'full'`: libvirt refuses a model the host cannot give in full (QEMU's
/// `enforce` would refuse it too, later and naming `--cpu`).
fn check_model(
    ctx: &Ctx,
    host: DomainHost,
    model: Node,
    config: &CpuConfig,
    check: &str,
) -> Result<(), DomainError> {
    let Ok(expanded) = expand_for_host(config, host.support, host.identity) else {
        return Ok(());
    };
    let lacking = filter_cpu(&expanded, host.support).dropped_names();
    if lacking.is_empty() {
        return Ok(());
    }
    Err(ctx.text_err(
        model,
        format!(
            "the host's KVM cannot give {}: {} (check='{check}' refuses such hosts; check='none' \
             runs the model without them, as QEMU does by default)",
            config.model,
            lacking.join(", ")
        ),
    ))
}

/// `mode='custom'`: the `<model>` and the `<vendor>` check.
fn custom_model(
    ctx: &mut Ctx,
    env: &DomainEnv,
    model: Option<Node>,
    vendor: Option<Node>,
    feature_nodes: &[Node],
    config: &mut CpuConfig,
) -> Result<(), DomainError> {
    let Some(m) = model else {
        if let Some(&f) = feature_nodes.first() {
            return Err(ctx.err(
                f,
                tag(f, &["policy", "name"]),
                "a feature needs a CPU <model> (libvirt refuses features without one)",
            ));
        }
        if let Some(v) = vendor {
            return Err(ctx.text_err(v, "a <vendor> needs a CPU <model>"));
        }
        return Ok(());
    };
    ctx.check_attrs(m, &["fallback", "vendor_id"]);
    ctx.attr_choice(m, "fallback", &["allow", "forbid"])?;
    if m.attribute("vendor_id").is_some() {
        return Err(ctx.attr_err(
            m,
            "vendor_id",
            "rvmm cannot change the CPU vendor the guest sees",
        ));
    }
    let name = text(m);
    if lookup(name).is_none() {
        return Err(ctx.text_err(
            m,
            format!("unknown CPU model '{name}' (`rvmm cpu-models` lists the models)"),
        ));
    }
    config.model = name.to_string();
    let Some(v) = vendor else {
        return Ok(());
    };
    let vendor_name = text(v);
    let id = env
        .cpu_map
        .and_then(|map| map.vendor_string(vendor_name).map(str::to_string))
        .or_else(|| {
            VENDORS
                .iter()
                .find(|(n, _)| *n == vendor_name)
                .map(|(_, s)| s.to_string())
        })
        .ok_or_else(|| {
            ctx.text_err(
                v,
                format!("unknown CPU vendor '{vendor_name}' (expected Intel, AMD or Hygon)"),
            )
        })?;
    match env.host {
        Some(host) if host.identity.vendor.as_string() != id => Err(ctx.text_err(
            v,
            format!(
                "the host CPU is {}, not {vendor_name} ({id})",
                host.identity.vendor.as_string()
            ),
        )),
        Some(_) => Ok(()),
        None => {
            ctx.warn(v, "not checked against the host (no KVM host information)");
            Ok(())
        }
    }
}

/// One `<cputune>` bandwidth element (`<period>`, `<global_quota>`, ...) into `b`; each
/// may appear once.
fn bandwidth(ctx: &Ctx, c: Node, b: &mut Bandwidth, is_period: bool) -> Result<(), DomainError> {
    let element = tag(c, &[]);
    let taken = if is_period {
        b.period_us.is_some()
    } else {
        b.quota_us.is_some()
    };
    if taken {
        return Err(ctx.text_err(c, "appears more than once (libvirt allows one)"));
    }
    let rule = |e: crate::config::cputune::CputuneError| {
        ctx.text_err(c, strip_option(&e.to_string(), &element).to_string())
    };
    if is_period {
        b.period_us = Some(parse_period(&element, text(c)).map_err(rule)?);
    } else {
        b.quota_us = Some(parse_quota(&element, text(c)).map_err(rule)?);
    }
    Ok(())
}

/// `<cputune>`: vCPU and emulator pinning, shares and CFS bandwidth; scheduling policies
/// and iothread settings are warned about and not applied.
pub(super) fn cputune(
    ctx: &mut Ctx,
    n: Option<Node>,
    maxcpus: u32,
    cpuset: Option<Vec<u32>>,
) -> Result<(PinningConfig, CpuTune), DomainError> {
    let mut pinning = PinningConfig {
        cpuset,
        ..PinningConfig::default()
    };
    let mut tune = CpuTune::default();
    let Some(n) = n else {
        return Ok((pinning, tune));
    };
    ctx.check_attrs(n, &[]);
    for c in elements(n) {
        match c.tag_name().name() {
            "vcpupin" => {
                ctx.check_attrs(c, &["vcpu", "cpuset"]);
                let vcpu = ctx.required_u32(c, "vcpu")?;
                if vcpu >= maxcpus {
                    return Err(ctx.attr_err(c, "vcpu", no_such_vcpu(vcpu, maxcpus)));
                }
                if pinning.vcpus.iter().any(|p| p.vcpu == vcpu) {
                    return Err(ctx.attr_err(c, "vcpu", format!("vCPU {vcpu} is pinned twice")));
                }
                let cpus = ctx
                    .attr_list(c, "cpuset")?
                    .ok_or_else(|| ctx.text_err(c, "the 'cpuset' attribute is missing"))?;
                pinning.vcpus.push(VcpuPin { vcpu, cpus });
            }
            "emulatorpin" => {
                ctx.check_attrs(c, &["cpuset"]);
                if pinning.emulator.is_some() {
                    return Err(ctx.text_err(c, "appears more than once (libvirt allows one)"));
                }
                pinning.emulator = Some(
                    ctx.attr_list(c, "cpuset")?
                        .ok_or_else(|| ctx.text_err(c, "the 'cpuset' attribute is missing"))?,
                );
            }
            "shares" => {
                ctx.check_attrs(c, &[]);
                if tune.shares.is_some() {
                    return Err(ctx.text_err(c, "appears more than once (libvirt allows one)"));
                }
                let shares = parse_shares("<shares>", text(c))
                    .map_err(|e| ctx.text_err(c, strip_option(&e.to_string(), "<shares>")))?;
                tune.shares = Some(shares);
            }
            "period" => bandwidth(ctx, c, &mut tune.vcpu, true)?,
            "quota" => bandwidth(ctx, c, &mut tune.vcpu, false)?,
            "global_period" => bandwidth(ctx, c, &mut tune.global, true)?,
            "global_quota" => bandwidth(ctx, c, &mut tune.global, false)?,
            "emulator_period" => bandwidth(ctx, c, &mut tune.emulator, true)?,
            "emulator_quota" => bandwidth(ctx, c, &mut tune.emulator, false)?,
            "iothread_period" | "iothread_quota" => ctx.ignored(
                c,
                "rvmm has no I/O threads; their work runs in the emulator group \
                 (<emulator_period>/<emulator_quota>)",
            ),
            "vcpusched" | "iothreadsched" | "emulatorsched" => {
                ctx.ignored(c, "rvmm does not set scheduling policies")
            }
            "iothreadpin" => ctx.ignored(c, "rvmm has no I/O threads"),
            _ => ctx.ignored(c, "not supported"),
        }
    }
    pinning.vcpus.sort_by_key(|p| p.vcpu);
    Ok((pinning, tune))
}
