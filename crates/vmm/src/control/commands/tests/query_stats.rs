//! `query-stats` and `query-stats-schemas` against the fake VM: QEMU 7.2's argument checks
//! and texts (captured from a live QEMU 7.2), its orders, filters and omitted members.

use serde_json::{json, Value};

use super::fake_vm::FakeVm;
use super::run;
use crate::control::commands::query_stats_schemas::StatsSchemaValue;
use crate::machine::stats::{StatDesc, StatType, StatUnit};

const STATS: &str = "query-stats";
const SCHEMAS: &str = "query-stats-schemas";

fn err(vm: &mut FakeVm, name: &str, arguments: Value) -> String {
    run(vm, name, arguments).unwrap_err().desc
}

/// The statistic names of each result.
fn names(reply: &Value) -> Vec<Vec<&str>> {
    reply
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["stats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn arguments_are_checked_with_qemu_7_2_texts() {
    let mut vm = FakeVm::new("2");
    for (arguments, text) in [
        (json!({}), "Parameter 'target' is missing"),
        (
            json!({"providers": [{"provider": "foo"}]}),
            "Parameter 'target' is missing",
        ),
        (
            json!({"target": "foo"}),
            "Parameter 'target' does not accept value 'foo'",
        ),
        (
            json!({"target": 5}),
            "Invalid parameter type for 'target', expected: string",
        ),
        (
            json!({"target": "vm", "providers": [{"provider": "foo"}]}),
            "Parameter 'provider' does not accept value 'foo'",
        ),
        (
            json!({"target": "vm", "providers": [{"provider": "kvm"}, {"provider": "cryptodev"}]}),
            "Parameter 'provider' does not accept value 'cryptodev'",
        ),
        (
            json!({"target": "vm", "providers": [{"provider": 5}]}),
            "Invalid parameter type for 'providers[0].provider', expected: string",
        ),
        (
            json!({"target": "vm", "providers": [{}]}),
            "Parameter 'providers[0].provider' is missing",
        ),
        (
            json!({"target": "vm", "providers": {"provider": "kvm"}}),
            "Invalid parameter type for 'providers', expected: array",
        ),
        (
            json!({"target": "vm", "providers": null}),
            "Invalid parameter type for 'providers', expected: array",
        ),
        (
            json!({"target": "vm", "providers": ["kvm"]}),
            "Invalid parameter type for 'providers[0]', expected: object",
        ),
        (
            json!({"target": "vm", "providers": [{"provider": "kvm", "names": "exits"}]}),
            "Invalid parameter type for 'providers[0].names', expected: array",
        ),
        (
            json!({"target": "vm", "providers": [{"provider": "kvm"}, {"provider": "kvm", "names": [1]}]}),
            "Invalid parameter type for 'providers[1].names[0]', expected: string",
        ),
        (
            json!({"target": "vm", "providers": [{"provider": "kvm", "extra": 1}]}),
            "Parameter 'providers[0].extra' is unexpected",
        ),
        // `vcpus` belongs to the vcpu variant only.
        (
            json!({"target": "vm", "vcpus": ["/machine/unattached/device[0]"]}),
            "Parameter 'vcpus' is unexpected",
        ),
        (
            json!({"target": "vm", "extra": 1}),
            "Parameter 'extra' is unexpected",
        ),
        (
            json!({"target": "vcpu", "vcpus": "/machine/unattached/device[0]"}),
            "Invalid parameter type for 'vcpus', expected: array",
        ),
        (
            json!({"target": "vcpu", "vcpus": [1]}),
            "Invalid parameter type for 'vcpus[0]', expected: string",
        ),
        // The base (target, providers) is visited before the variant (vcpus).
        (
            json!({"target": "vcpu", "vcpus": [1], "providers": [{"provider": "foo"}]}),
            "Parameter 'provider' does not accept value 'foo'",
        ),
    ] {
        assert_eq!(err(&mut vm, STATS, arguments.clone()), text, "{arguments}");
    }
    for (arguments, text) in [
        (
            json!({"provider": "foo"}),
            "Parameter 'provider' does not accept value 'foo'",
        ),
        (
            json!({"provider": 5}),
            "Invalid parameter type for 'provider', expected: string",
        ),
        (json!({"x": 5}), "Parameter 'x' is unexpected"),
    ] {
        assert_eq!(
            err(&mut vm, SCHEMAS, arguments.clone()),
            text,
            "{arguments}"
        );
    }
}

#[test]
fn vm_target_as_qemu_7_2() {
    let mut vm = FakeVm::new("2");
    let all = run(&mut vm, STATS, json!({"target": "vm"})).unwrap();
    // One result, no qom-path, the kernel's descriptors last first; booleans are bools and
    // histograms lists (bucket 0 first).
    assert_eq!(
        all,
        json!([{"provider": "kvm", "stats": [
            {"name": "guest_mode", "value": false},
            {"name": "halt_wait_hist", "value": [0, 1, 2]},
            {"name": "halt_poll_success_ns", "value": 1000},
            {"name": "io_exits", "value": 0},
            {"name": "exits", "value": 0},
        ]}])
    );
    // `names` keeps the named ones, in the same order whatever the order asked; unknown
    // names are ignored; nothing kept is no result at all; an empty list is nothing.
    let some = run(
        &mut vm,
        STATS,
        json!({"target": "vm", "providers": [{"provider": "kvm", "names": ["exits", "nope", "guest_mode", "exits"]}]}),
    )
    .unwrap();
    assert_eq!(names(&some), [["guest_mode", "exits"]]);
    for names in [json!(["nope"]), json!([])] {
        let none = run(
            &mut vm,
            STATS,
            json!({"target": "vm", "providers": [{"provider": "kvm", "names": names}]}),
        )
        .unwrap();
        assert_eq!(none, json!([]));
    }
    assert_eq!(
        run(&mut vm, STATS, json!({"target": "vm", "providers": []})).unwrap(),
        json!([])
    );
    // Each request is answered on its own, the last one first.
    let two = run(
        &mut vm,
        STATS,
        json!({"target": "vm", "providers": [{"provider": "kvm", "names": ["exits"]}, {"provider": "kvm", "names": ["io_exits"]}]}),
    )
    .unwrap();
    assert_eq!(names(&two), [["io_exits"], ["exits"]]);
}

#[test]
fn vcpu_target_as_qemu_7_2() {
    let mut vm = FakeVm::new("2,maxcpus=4");
    // A vCPU plugged by device_add keeps the path device_add gave it.
    vm.slots.plug(3, Some("cpu3".into()));
    vm.vcpus.push(crate::control::view::VcpuThread {
        index: 3,
        thread_id: 103,
    });
    let exits = json!({"provider": "kvm", "names": ["exits"]});
    let reply = run(
        &mut vm,
        STATS,
        json!({"target": "vcpu", "providers": [exits]}),
    )
    .unwrap();
    // The last vCPU first, with the qom-paths query-cpus-fast reports.
    let cpus = run(&mut vm, "query-cpus-fast", json!({})).unwrap();
    let mut fast: Vec<&Value> = cpus
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["qom-path"])
        .collect();
    fast.reverse();
    let paths: Vec<&Value> = reply
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["qom-path"])
        .collect();
    assert_eq!(paths, fast);
    assert_eq!(
        reply,
        json!([
            {"provider": "kvm", "qom-path": "/machine/peripheral/cpu3", "stats": [{"name": "exits", "value": 400}]},
            {"provider": "kvm", "qom-path": "/machine/unattached/device[1]", "stats": [{"name": "exits", "value": 200}]},
            {"provider": "kvm", "qom-path": "/machine/unattached/device[0]", "stats": [{"name": "exits", "value": 100}]},
        ])
    );
    // `vcpus` picks by path; a path twice is one result; a path that is not a vCPU (a
    // trailing slash, an empty slot's device number) is ignored; an empty list is nothing.
    let picked = run(
        &mut vm,
        STATS,
        json!({"target": "vcpu", "providers": [exits], "vcpus": [
            "/machine/unattached/device[0]", "/machine/unattached/device[0]",
            "/machine/unattached/device[0]/", "/machine/unattached/device[2]"]}),
    )
    .unwrap();
    assert_eq!(
        picked,
        json!([{"provider": "kvm", "qom-path": "/machine/unattached/device[0]", "stats": [{"name": "exits", "value": 100}]}])
    );
    for vcpus in [json!(["/machine/nothing"]), json!([])] {
        let none = run(&mut vm, STATS, json!({"target": "vcpu", "vcpus": vcpus})).unwrap();
        assert_eq!(none, json!([]));
    }
    // A VM statistic name asked of vCPUs matches nothing.
    let none = run(
        &mut vm,
        STATS,
        json!({"target": "vcpu", "providers": [{"provider": "kvm", "names": ["pages_4k"]}]}),
    )
    .unwrap();
    assert_eq!(none, json!([]));
    // Two requests: every vCPU for each, the last request first.
    let two = run(
        &mut vm,
        STATS,
        json!({"target": "vcpu", "vcpus": ["/machine/unattached/device[1]"], "providers": [exits, {"provider": "kvm", "names": ["io_exits"]}]}),
    )
    .unwrap();
    assert_eq!(names(&two), [["io_exits"], ["exits"]]);
    assert_eq!(two[0]["stats"][0]["value"], 100);
}

#[test]
fn schemas_as_qemu_7_2() {
    let mut vm = FakeVm::new("2");
    let reply = run(&mut vm, SCHEMAS, json!({})).unwrap();
    assert_eq!(
        reply,
        run(&mut vm, SCHEMAS, json!({"provider": "kvm"})).unwrap()
    );
    // vcpu first, then vm; each statistic last descriptor first; no unit for none, base
    // only with a non-zero exponent, bucket-size only for linear histograms.
    let expected = json!([
        {"name": "guest_mode", "type": "instant", "unit": "boolean", "exponent": 0},
        {"name": "halt_wait_hist", "type": "log2-histogram", "unit": "seconds", "base": 10, "exponent": -9},
        {"name": "halt_poll_success_ns", "type": "cumulative", "unit": "seconds", "base": 10, "exponent": -9},
        {"name": "io_exits", "type": "cumulative", "exponent": 0},
        {"name": "exits", "type": "cumulative", "exponent": 0},
    ]);
    assert_eq!(
        reply,
        json!([
            {"provider": "kvm", "target": "vcpu", "stats": expected},
            {"provider": "kvm", "target": "vm", "stats": expected},
        ])
    );
    let linear = |bucket_size, base| StatDesc {
        name: "lin".into(),
        kind: StatType::LinearHistogram,
        unit: StatUnit::Bytes,
        base,
        exponent: 10,
        size: 4,
        offset: 0,
        bucket_size,
    };
    assert_eq!(
        serde_json::to_value(StatsSchemaValue::of(&linear(0, 2))).unwrap(),
        json!({"name": "lin", "type": "linear-histogram", "unit": "bytes", "base": 2, "exponent": 10, "bucket-size": 0})
    );
    assert_eq!(
        serde_json::to_value(StatsSchemaValue::of(&linear(64, 10))).unwrap()["bucket-size"],
        64
    );
}

#[test]
fn a_kernel_without_binary_stats_is_an_error() {
    let mut vm = FakeVm::new("1");
    vm.stats_error = Some("KVM_GET_STATS_FD on the VM fd: no such ioctl".into());
    for (name, arguments) in [
        (STATS, json!({"target": "vm"})),
        (STATS, json!({"target": "vcpu"})),
        (SCHEMAS, json!({})),
    ] {
        assert_eq!(
            err(&mut vm, name, arguments),
            "KVM_GET_STATS_FD on the VM fd: no such ioctl"
        );
    }
    // A request that reads nothing does not fail.
    assert_eq!(
        run(&mut vm, STATS, json!({"target": "vcpu", "vcpus": []})).unwrap(),
        json!([])
    );
}
