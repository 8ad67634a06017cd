//! vCPU hotplug against the fake VM: `device_add` and `device_del` with QEMU 7.2's checks
//! and texts, the guest's ejects and `_OST` reports, and what the queries show after each.

use serde_json::{json, Value};

use super::fake_vm::FakeVm;
use super::run;
use crate::control::commands::cpu_slot::{guest_ejected, guest_ost};
use crate::control::error::ErrorClass;
use crate::control::qmp::{AcpiOstInfo, Event};

const CPU: &str = "qemu64-x86_64-cpu";

fn add_err(vm: &mut FakeVm, arguments: Value) -> String {
    run(vm, "device_add", arguments).unwrap_err().desc
}

/// The `qom-path` query-hotpluggable-cpus shows for slot `index` (listed highest first).
fn slot_path(vm: &mut FakeVm, index: usize) -> Value {
    let slots = run(vm, "query-hotpluggable-cpus", json!({})).unwrap();
    let n = slots.as_array().unwrap().len();
    slots[n - 1 - index]
        .get("qom-path")
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn device_add_checks_as_qemu_7_2() {
    let mut vm = FakeVm::new("1,sockets=2,cores=2,maxcpus=4");
    let cpu = |extra: Value| {
        let mut a = json!({"driver": CPU, "socket-id": 1, "core-id": 0, "thread-id": 0});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                a.as_object_mut().unwrap().remove(k);
            } else {
                a[k] = v.clone();
            }
        }
        a
    };
    for (arguments, expected) in [
        (json!({}), "Parameter 'driver' is missing"),
        (
            json!({"driver": CPU, "id": "2cpu"}),
            "Parameter 'id' expects an identifier",
        ),
        (
            json!({"driver": "virtio-net-pci"}),
            "'virtio-net-pci' is not a valid device model name",
        ),
        (
            json!({"driver": "x86_64-cpu"}),
            "Parameter 'driver' expects a non-abstract device type",
        ),
        (
            cpu(json!({"driver": "Haswell-x86_64-cpu"})),
            "Invalid CPU type, expected cpu type: 'qemu64-x86_64-cpu'",
        ),
        (
            cpu(json!({"node-id": 0})),
            "Property 'qemu64-x86_64-cpu.node-id' not found",
        ),
        (
            cpu(json!({"socket-id": "one"})),
            "Parameter 'socket-id' expects integer",
        ),
        (
            cpu(json!({"core-id": 1.5})),
            "Parameter 'core-id' expects integer",
        ),
        (
            cpu(json!({"thread-id": 4294967296u64})),
            "Parameter 'thread-id' expects int32",
        ),
        (cpu(json!({"socket-id": null})), "CPU socket-id is not set"),
        (cpu(json!({"socket-id": -1})), "CPU socket-id is not set"),
        (
            cpu(json!({"socket-id": 2})),
            "Invalid CPU socket-id: 2 must be in range 0:1",
        ),
        (
            cpu(json!({"die-id": 1})),
            "Invalid CPU die-id: 1 must be in range 0:0",
        ),
        (cpu(json!({"core-id": null})), "CPU core-id is not set"),
        (
            cpu(json!({"core-id": 2})),
            "Invalid CPU core-id: 2 must be in range 0:1",
        ),
        (cpu(json!({"thread-id": null})), "CPU thread-id is not set"),
        (
            cpu(json!({"thread-id": 1})),
            "Invalid CPU thread-id: 1 must be in range 0:0",
        ),
        (cpu(json!({"socket-id": 0})), "CPU[0] with APIC ID 0 exists"),
    ] {
        assert_eq!(add_err(&mut vm, arguments.clone()), expected, "{arguments}");
    }
    assert!(vm.plugged.is_empty(), "nothing refused was plugged");

    // More than one die per socket: die-id is required.
    let mut dies = FakeVm::new("1,sockets=1,dies=2,cores=2,maxcpus=4");
    assert_eq!(
        add_err(
            &mut dies,
            json!({"driver": CPU, "socket-id": 0, "core-id": 1, "thread-id": 0})
        ),
        "CPU die-id is not set"
    );
    run(
        &mut dies,
        "device_add",
        json!({"driver": CPU, "socket-id": 0, "die-id": 1, "core-id": 1, "thread-id": 0}),
    )
    .unwrap();
    assert_eq!(dies.plugged, [3]);
}

#[test]
fn device_add_plugs_and_every_query_shows_it() {
    let mut vm = FakeVm::new("1,sockets=2,cores=2,maxcpus=4");
    // QemuOpts turns numbers into text: "1" and 1 are the same socket.
    let reply = run(
        &mut vm,
        "device_add",
        json!({"driver": CPU, "id": "cpu2", "socket-id": "1", "core-id": 0, "thread-id": "0"}),
    );
    assert_eq!(reply, Ok(json!({})));
    assert_eq!(vm.plugged, [2]);
    assert_eq!(slot_path(&mut vm, 2), "/machine/peripheral/cpu2");
    assert_eq!(slot_path(&mut vm, 0), "/machine/unattached/device[0]");
    assert_eq!(slot_path(&mut vm, 1), Value::Null);
    let fast = run(&mut vm, "query-cpus-fast", json!({})).unwrap();
    assert_eq!(
        fast[1],
        json!({"cpu-index": 2, "qom-path": "/machine/peripheral/cpu2", "thread-id": 102,
               "props": {"socket-id": 1, "core-id": 0, "thread-id": 0}, "target": "x86_64"})
    );

    // The same slot again, the same id again.
    assert_eq!(
        add_err(
            &mut vm,
            json!({"driver": CPU, "socket-id": 1, "core-id": 0, "thread-id": 0})
        ),
        "CPU[2] with APIC ID 2 exists"
    );
    assert_eq!(
        add_err(
            &mut vm,
            json!({"driver": CPU, "id": "cpu2", "socket-id": 1, "core-id": 1, "thread-id": 0})
        ),
        "Duplicate device ID 'cpu2'"
    );

    // Without an id: QEMU's peripheral-anon path; a non-string id is dropped as QemuOpts
    // drops it.
    run(
        &mut vm,
        "device_add",
        json!({"driver": CPU, "id": 7, "socket-id": 1, "core-id": 1, "thread-id": 0}),
    )
    .unwrap();
    assert_eq!(slot_path(&mut vm, 3), "/machine/peripheral-anon/device[0]");
    let fast = run(&mut vm, "query-cpus-fast", json!({})).unwrap();
    let order: Vec<&Value> = fast
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["cpu-index"])
        .collect();
    assert_eq!(order, [0, 2, 3], "creation order, as QEMU lists CPUs");
    assert!(vm.events.is_empty(), "device_add sends no event");
}

#[test]
fn a_failed_plug_leaves_the_slot_free() {
    let mut vm = FakeVm::new("1,maxcpus=2");
    vm.plug_error = Some("the guest's block is broken".into());
    let args = json!({"driver": CPU, "id": "c1", "socket-id": 0, "core-id": 1, "thread-id": 0});
    assert_eq!(
        add_err(&mut vm, args.clone()),
        "CPU hotplug: the guest's block is broken"
    );
    assert_eq!(slot_path(&mut vm, 1), Value::Null);
    vm.plug_error = None;
    run(&mut vm, "device_add", args).unwrap();
    assert_eq!(slot_path(&mut vm, 1), "/machine/peripheral/c1");
}

#[test]
fn device_del_asks_the_guest_and_the_eject_deletes() {
    let mut vm = FakeVm::new("2,sockets=2,cores=2,maxcpus=4");
    assert_eq!(
        run(&mut vm, "device_del", json!({})).unwrap_err().desc,
        "Parameter 'id' is missing"
    );
    assert_eq!(
        run(&mut vm, "device_del", json!({"id": 2}))
            .unwrap_err()
            .desc,
        "Invalid parameter type for 'id', expected: string"
    );
    let e = run(&mut vm, "device_del", json!({"id": "cpu2"})).unwrap_err();
    assert_eq!(
        (e.class, e.desc.as_str()),
        (ErrorClass::DeviceNotFound, "Device 'cpu2' not found")
    );
    assert_eq!(
        run(
            &mut vm,
            "device_del",
            json!({"id": "/machine/unattached/device[0]"})
        )
        .unwrap_err()
        .desc,
        "Boot CPU is unpluggable"
    );
    // A boot vCPU other than the first can be unplugged by its path.
    run(
        &mut vm,
        "device_del",
        json!({"id": "/machine/unattached/device[1]"}),
    )
    .unwrap();
    assert_eq!(vm.unplug_requests, [1]);

    run(
        &mut vm,
        "device_add",
        json!({"driver": CPU, "id": "cpu2", "socket-id": 1, "core-id": 0, "thread-id": 0}),
    )
    .unwrap();
    assert_eq!(
        run(&mut vm, "device_del", json!({"id": "cpu2"})),
        Ok(json!({}))
    );
    // Asking again before the guest answers is allowed for CPUs.
    run(&mut vm, "device_del", json!({"id": "cpu2"})).unwrap();
    assert_eq!(vm.unplug_requests, [1, 2, 2]);
    assert!(
        vm.events.is_empty(),
        "no DEVICE_DELETED before the guest ejects"
    );
    assert_eq!(slot_path(&mut vm, 2), "/machine/peripheral/cpu2");

    // The guest reports, then ejects.
    guest_ost(&mut vm, 2, 3, 0x84);
    guest_ejected(&mut vm, 2);
    guest_ost(&mut vm, 2, 3, 0);
    assert_eq!(
        vm.events,
        [
            Event::AcpiDeviceOst(AcpiOstInfo {
                device: Some("cpu2".into()),
                slot: "2".into(),
                source: 3,
                status: 0x84
            }),
            Event::DeviceDeleted {
                device: None,
                path: "/machine/peripheral/cpu2/lapic".into()
            },
            Event::DeviceDeleted {
                device: Some("cpu2".into()),
                path: "/machine/peripheral/cpu2".into()
            },
            Event::AcpiDeviceOst(AcpiOstInfo {
                device: None,
                slot: "2".into(),
                source: 3,
                status: 0
            }),
        ]
    );
    assert_eq!(vm.ejected, [2]);
    assert_eq!(slot_path(&mut vm, 2), Value::Null);
    let fast = run(&mut vm, "query-cpus-fast", json!({})).unwrap();
    assert_eq!(fast.as_array().unwrap().len(), 2);
    assert_eq!(
        run(&mut vm, "device_del", json!({"id": "cpu2"}))
            .unwrap_err()
            .class,
        ErrorClass::DeviceNotFound
    );
    // An eject of an empty slot changes nothing.
    guest_ejected(&mut vm, 3);
    assert_eq!(vm.events.len(), 4);
    assert_eq!(vm.ejected, [2]);

    // The slot and the id are free again.
    run(
        &mut vm,
        "device_add",
        json!({"driver": CPU, "id": "cpu2", "socket-id": 1, "core-id": 0, "thread-id": 0}),
    )
    .unwrap();
    assert_eq!(vm.plugged, [2, 2]);
    assert_eq!(slot_path(&mut vm, 2), "/machine/peripheral/cpu2");
    // A boot vCPU ejected by the guest goes with its unattached path and no id.
    guest_ejected(&mut vm, 1);
    assert_eq!(
        vm.events[4..],
        [
            Event::DeviceDeleted {
                device: None,
                path: "/machine/unattached/device[1]/lapic".into()
            },
            Event::DeviceDeleted {
                device: None,
                path: "/machine/unattached/device[1]".into()
            }
        ]
    );
}
