//! The command set's tests: argument checks with QEMU 7.2's texts, the protocol session
//! driving the real command set, and every command run against a fake VM.

use serde_json::{json, Map, Value};

use super::*;
use crate::control::error::ErrorClass;
use crate::control::qmp::{Frame, Session, Step};

mod fake_vm;
mod hotplug;
mod query_stats;

fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn err(name: &str, v: Value) -> String {
    parse(name, args(v)).unwrap_err().desc
}

#[test]
fn plain_commands() {
    assert_eq!(
        parse("query-status", Map::new()),
        Ok(Command::QueryStatus(query_status::QueryStatus))
    );
    assert_eq!(parse("quit", Map::new()), Ok(Command::Quit(quit::Quit)));
    assert_eq!(
        parse(CMD_VCPUINFO, Map::new()),
        Ok(Command::VcpuInfo(vcpuinfo::VcpuInfoQuery {}))
    );
    let e = parse("nope", Map::new()).unwrap_err();
    assert_eq!(e.class, ErrorClass::CommandNotFound);
    assert_eq!(e.desc, "The command nope has not been found");
    // QEMU 7.2's texts for argument errors.
    assert_eq!(
        err("query-status", json!({"a": 1})),
        "Parameter 'a' is unexpected"
    );
    assert_eq!(
        err("query-cpu-model-expansion", json!({})),
        "Parameter 'type' is missing"
    );
    assert_eq!(
        err("query-cpu-model-expansion", json!({"type": 5})),
        "Invalid parameter type for 'type', expected: string"
    );
    assert_eq!(
        err(
            "query-cpu-model-expansion",
            json!({"type": "bogus", "model": {"name": "qemu64"}})
        ),
        "Parameter 'type' does not accept value 'bogus'"
    );
}

#[test]
fn model_expansion_arguments() {
    assert_eq!(
        parse(
            "query-cpu-model-expansion",
            args(json!({"type": "full", "model": {"name": "Haswell", "props": {"aes": false}}}))
        ),
        Ok(Command::QueryCpuModelExpansion(
            query_cpu_model_expansion::QueryCpuModelExpansion {
                expansion: ExpansionType::Full,
                model: "Haswell".into(),
                props: args(json!({"aes": false})),
            }
        ))
    );
    assert_eq!(
        err("query-cpu-model-expansion", json!({"type": "static"})),
        "Parameter 'model' is missing"
    );
    assert_eq!(
        err(
            "query-cpu-model-expansion",
            json!({"type": "static", "model": {}})
        ),
        "Parameter 'model.name' is missing"
    );
    assert_eq!(
        err(
            "query-cpu-model-expansion",
            json!({"type": "static", "model": {"name": "x", "props": 1}})
        ),
        "Invalid parameter type for 'model.props', expected: object"
    );
    assert_eq!(
        err(
            "query-cpu-model-expansion",
            json!({"type": "static", "model": {"name": "x", "extra": 1}})
        ),
        "Parameter 'model.extra' is unexpected"
    );
}

#[test]
fn pin_arguments() {
    assert_eq!(
        parse(CMD_VCPUPIN, Map::new()),
        Ok(Command::VcpuPin(vcpupin::VcpuPin {
            vcpu: None,
            cpus: None
        }))
    );
    assert_eq!(
        parse(CMD_VCPUPIN, args(json!({"vcpu": 1, "cpus": "0-3,^2"}))),
        Ok(Command::VcpuPin(vcpupin::VcpuPin {
            vcpu: Some(1),
            cpus: Some(vec![0, 1, 3])
        }))
    );
    assert_eq!(
        err(CMD_VCPUPIN, json!({"vcpu": "1"})),
        "Invalid parameter type for 'vcpu', expected: integer"
    );
    assert_eq!(
        err(CMD_VCPUPIN, json!({"vcpu": -1})),
        "Parameter 'vcpu' expects uint32"
    );
    assert_eq!(
        err(CMD_VCPUPIN, json!({"vcpu": 1.5})),
        "Invalid parameter type for 'vcpu', expected: integer"
    );
    assert_eq!(
        err(CMD_VCPUPIN, json!({"cpus": "0"})),
        "Parameter 'vcpu' is missing (needed with 'cpus')"
    );
    assert_eq!(
        err(CMD_VCPUPIN, json!({"vcpu": 0, "cpus": "x"})),
        "Parameter 'cpus': CPU list \"x\": bad token \"x\": \"x\" is not a decimal CPU number"
    );
    assert_eq!(
        parse(CMD_EMULATORPIN, args(json!({"cpus": "0"}))),
        Ok(Command::EmulatorPin(emulatorpin::EmulatorPin {
            cpus: Some(vec![0])
        }))
    );
    assert_eq!(
        err(CMD_EMULATORPIN, json!({"cpus": ["0"]})),
        "Invalid parameter type for 'cpus', expected: string"
    );
}

#[test]
fn downstream_names_carry_the_prefix() {
    for name in [CMD_VCPUPIN, CMD_EMULATORPIN, CMD_VCPUINFO] {
        assert!(
            name.starts_with(RVMM_PREFIX) && COMMAND_NAMES.contains(&name),
            "{name}"
        );
    }
}

// The protocol session with the real command set (moved from `qmp`, which no longer
// knows the command set).

fn reply(step: Step<Command>) -> String {
    match step {
        Step::Reply(r) => r,
        Step::Execute { .. } => panic!("expected a reply"),
    }
}

fn msg(text: &str) -> Frame {
    Frame::Message(text.as_bytes().to_vec())
}

#[test]
fn negotiation_as_qemu_7_2() {
    let mut s = Session::default();
    assert_eq!(
        reply(s.handle::<Command>(msg(r#"{"execute":"query-status"}"#))),
        "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n"
    );
    assert_eq!(
        reply(s.handle::<Command>(msg(r#"{"execute":"nope","id":7}"#))),
        "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"Expecting capabilities negotiation with 'qmp_capabilities'\"},\"id\":7}\r\n"
    );
    assert!(!s.negotiated());
    assert_eq!(
        reply(s.handle::<Command>(msg(r#"{"execute":"qmp_capabilities","id":1}"#))),
        "{\"id\":1,\"return\":{}}\r\n"
    );
    assert!(s.negotiated());
    assert_eq!(
        reply(s.handle::<Command>(msg(r#"{"execute":"qmp_capabilities"}"#))),
        "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"Capabilities negotiation is already complete, command ignored\"}}\r\n"
    );
    assert_eq!(
        s.handle::<Command>(msg(r#"{"execute":"query-status","id":"x"}"#)),
        Step::Execute {
            id: Some(json!("x")),
            command: Command::QueryStatus(query_status::QueryStatus)
        }
    );
}

#[test]
fn bad_envelopes_as_qemu_7_2() {
    let mut s = Session::default();
    s.handle::<Command>(msg(r#"{"execute":"qmp_capabilities"}"#));
    let err = |s: &mut Session, text: &str| -> Value {
        serde_json::from_str(&reply(s.handle::<Command>(msg(text)))).unwrap()
    };
    let e = err(&mut s, "garbage");
    assert_eq!(e["error"]["class"], "GenericError");
    assert!(
        e["error"]["desc"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error, "),
        "{e}"
    );
    assert_eq!(e.get("id"), None);
    assert_eq!(
        err(&mut s, "[1,2]"),
        json!({"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}})
    );
    assert_eq!(
        err(&mut s, r#"{"execute":5}"#),
        json!({"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}})
    );
    assert_eq!(
        err(&mut s, r#"{"arguments":{}}"#),
        json!({"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}})
    );
    assert_eq!(
        err(
            &mut s,
            r#"{"execute":"query-status","arguments":[],"id":3}"#
        ),
        json!({"id": 3, "error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}})
    );
    assert_eq!(
        err(&mut s, r#"{"execute":"query-status","foo":1,"id":4}"#),
        json!({"id": 4, "error": {"class": "GenericError", "desc": "QMP input member 'foo' is unexpected"}})
    );
    assert_eq!(
        err(&mut s, r#"{"execute":"nope","id":{"a":[1]}}"#),
        json!({"id": {"a": [1]}, "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}})
    );
    assert_eq!(
        err(
            &mut s,
            r#"{"execute":"query-status","arguments":{"a":1},"id":5}"#
        ),
        json!({"id": 5, "error": {"class": "GenericError", "desc": "Parameter 'a' is unexpected"}})
    );
    assert_eq!(
        reply(s.handle::<Command>(Frame::TooLarge(8 << 20))),
        "{\"error\":{\"class\":\"GenericError\",\"desc\":\"QMP input of 8388608 bytes exceeds the limit of 1048576 bytes; it was discarded\"}}\r\n"
    );
    assert!(s.negotiated(), "errors leave the session in command mode");
}

/// Hostile JSON (invalid UTF-8, deep nesting, numbers out of every range, members of the
/// wrong type) gets GenericError replies, never a panic or a stack overflow; run on a
/// thread with a quarter of a QMP reader thread's stack to show the margin.
#[test]
fn hostile_json_gets_generic_errors() {
    let run = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(hostile_json)
        .unwrap();
    run.join().unwrap();
}

fn hostile_json() {
    let mut s = Session::default();
    s.handle::<Command>(msg(r#"{"execute":"qmp_capabilities"}"#));
    let answer = |s: &mut Session, bytes: Vec<u8>| -> Value {
        serde_json::from_str(&reply(s.handle::<Command>(Frame::Message(bytes)))).unwrap()
    };
    let generic = |v: &Value| -> String {
        assert_eq!(v["error"]["class"], "GenericError", "{v}");
        v["error"]["desc"].as_str().unwrap().to_string()
    };
    let parse_error = |v: &Value| {
        let d = generic(v);
        assert!(d.starts_with("JSON parse error, "), "{d}");
        assert_eq!(v.get("id"), None, "{v}");
    };
    // Invalid UTF-8 in a string, in a key, and a lone surrogate escape.
    parse_error(&answer(
        &mut s,
        b"{\"execute\":\"query-status\",\"id\":\"\xff\xfe\"}".to_vec(),
    ));
    parse_error(&answer(
        &mut s,
        b"{\"exe\xc3cute\":\"query-status\"}".to_vec(),
    ));
    parse_error(&answer(
        &mut s,
        br#"{"execute":"query-status","id":"\ud800"}"#.to_vec(),
    ));
    // Nesting: as deep as a message may be long, and just past serde_json's limit of 128.
    let deep = |n: usize| {
        let mut v = b"{\"execute\":\"nope\",\"id\":".to_vec();
        v.extend(std::iter::repeat_n(b'[', n));
        v.extend(std::iter::repeat_n(b']', n));
        v.push(b'}');
        v
    };
    parse_error(&answer(
        &mut s,
        deep(crate::control::qmp::MAX_MESSAGE / 2 - 16),
    ));
    parse_error(&answer(&mut s, deep(128)));
    // Within the limit the id is echoed whole.
    let v = answer(&mut s, deep(126));
    assert_eq!(v["error"]["class"], "CommandNotFound");
    let mut id = &v["id"];
    for _ in 1..126 {
        id = &id[0];
    }
    assert_eq!(id, &json!([]));
    // Deep arguments reach the argument checks, which name the member.
    let mut nested = "[".repeat(100);
    nested.push_str(&"]".repeat(100));
    let text = format!(r#"{{"execute":"query-status","arguments":{{"deep":{nested}}}}}"#);
    assert_eq!(
        generic(&answer(&mut s, text.into_bytes())),
        "Parameter 'deep' is unexpected"
    );
    // Numbers: beyond f64, beyond u64, negative, fractional, beyond u32.
    parse_error(&answer(
        &mut s,
        br#"{"execute":"__org.rvmm_vcpupin","arguments":{"vcpu":1e400}}"#.to_vec(),
    ));
    let vcpu = |s: &mut Session, n: &str| -> String {
        let text = format!(r#"{{"execute":"__org.rvmm_vcpupin","arguments":{{"vcpu":{n}}}}}"#);
        generic(&answer(s, text.into_bytes()))
    };
    // 4001 digits: beyond f64 too.
    let long = format!(
        r#"{{"execute":"__org.rvmm_vcpupin","arguments":{{"vcpu":1{}}}}}"#,
        "0".repeat(4000)
    );
    parse_error(&answer(&mut s, long.into_bytes()));
    for n in ["18446744073709551616", "1.5", "1e300"] {
        assert_eq!(
            vcpu(&mut s, n),
            "Invalid parameter type for 'vcpu', expected: integer",
            "{n}"
        );
    }
    for n in [
        "-1",
        "4294967296",
        "-9223372036854775808",
        "18446744073709551615",
    ] {
        assert_eq!(vcpu(&mut s, n), "Parameter 'vcpu' expects uint32", "{n}");
    }
    // Members of the wrong type, in the envelope and in arguments.
    let text = |t: &str| t.as_bytes().to_vec();
    for (request, expected) in [
        (
            r#"{"execute":"__org.rvmm_vcpupin","arguments":{"vcpu":0,"cpus":5}}"#,
            "Invalid parameter type for 'cpus', expected: string",
        ),
        (
            r#"{"execute":"__org.rvmm_vcpupin","arguments":{"vcpu":null}}"#,
            "Invalid parameter type for 'vcpu', expected: integer",
        ),
        (
            r#"{"execute":"query-cpu-model-expansion","arguments":{"type":"full","model":"qemu64"}}"#,
            "Invalid parameter type for 'model', expected: object",
        ),
        (
            r#"{"execute":"qmp_capabilities","arguments":{"enable":"oob"}}"#,
            "Capabilities negotiation is already complete, command ignored",
        ),
        (
            r#"{"execute":["query-status"]}"#,
            "QMP input member 'execute' must be a string",
        ),
        (
            r#"{"execute":"query-status","arguments":"x"}"#,
            "QMP input member 'arguments' must be an object",
        ),
    ] {
        let v = answer(&mut s, text(request));
        assert_eq!(v["error"]["desc"], expected, "{request}");
    }
    assert!(s.negotiated());
}

// Every command run against a fake VM.

use fake_vm::FakeVm;

use crate::control::qmp::{Event, ShutdownCause};
use crate::control::view::{EndRequest, RunState};

/// Parses and runs `name` with `arguments` on `vm`.
fn run(vm: &mut FakeVm, name: &str, arguments: Value) -> Result<Value, QmpError> {
    parse(name, args(arguments))?.execute(vm)
}

#[test]
fn query_commands_lists_the_command_enum() {
    let mut vm = FakeVm::new("2");
    let listed = run(&mut vm, "query-commands", json!({})).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, COMMAND_NAMES);
    assert_eq!(names[0], "qmp_capabilities");
    // Every listed name but the protocol's own parses into the command of that name.
    for name in &names[1..] {
        let mut arguments = Map::new();
        if *name == "query-cpu-model-expansion" {
            arguments = args(json!({"type": "full", "model": {"name": "qemu64"}}));
        }
        if *name == "device_del" {
            arguments = args(json!({"id": "cpu1"}));
        }
        if *name == "query-stats" {
            arguments = args(json!({"target": "vm"}));
        }
        if *name == "__org.rvmm_snapshot" {
            arguments = args(json!({"path": "/s"}));
        }
        if *name == "balloon" {
            arguments = args(json!({"value": 1}));
        }
        if *name == "migrate" {
            arguments = args(json!({"uri": "unix:/m"}));
        }
        if *name == "migrate-set-capabilities" {
            arguments = args(json!({"capabilities": []}));
        }
        if *name == "migrate-continue" {
            arguments = args(json!({"state": "pre-switchover"}));
        }
        if *name == "announce-self" {
            arguments = args(json!({"initial": 50, "max": 550, "rounds": 5, "step": 100}));
        }
        assert_eq!(parse(name, arguments).unwrap().name(), *name);
    }
    assert_eq!(names.len(), 35);
}

#[test]
fn identity_queries() {
    let mut vm = FakeVm::new("1");
    assert_eq!(run(&mut vm, "query-name", json!({})), Ok(json!({})));
    vm.name = Some("web1".into());
    assert_eq!(
        run(&mut vm, "query-name", json!({})),
        Ok(json!({"name": "web1"}))
    );
    let version = run(&mut vm, "query-version", json!({})).unwrap();
    assert_eq!(version, crate::control::qmp::Version::rvmm().to_json());
}

#[test]
fn stop_cont_and_the_end() {
    let mut vm = FakeVm::new("2");
    assert_eq!(run(&mut vm, "stop", json!({})), Ok(json!({})));
    assert_eq!(vm.state, RunState::Paused);
    assert_eq!(
        run(&mut vm, "query-status", json!({})),
        Ok(json!({"status": "paused", "singlestep": false, "running": false}))
    );
    // A second stop changes nothing and sends no second STOP.
    run(&mut vm, "stop", json!({})).unwrap();
    run(&mut vm, "cont", json!({})).unwrap();
    run(&mut vm, "cont", json!({})).unwrap();
    assert_eq!(vm.state, RunState::Running);
    run(&mut vm, "system_powerdown", json!({})).unwrap();
    assert_eq!(vm.power_presses, 1);
    assert_eq!(vm.events, [Event::Stop, Event::Resume, Event::Powerdown]);
    assert_eq!(vm.ended, None);
    run(&mut vm, "system_reset", json!({})).unwrap();
    assert_eq!(vm.ended, Some(EndRequest::Reset));
    run(&mut vm, "quit", json!({})).unwrap();
    assert_eq!(vm.ended, Some(EndRequest::Quit));
    assert_eq!(
        vm.events[3..],
        [
            Event::Reset(ShutdownCause::HostQmpSystemReset),
            Event::Shutdown(ShutdownCause::HostQmpQuit)
        ]
    );
}

#[test]
fn cpu_slots_come_from_the_vm_topology() {
    let mut vm = FakeVm::new("2,sockets=2,cores=2,maxcpus=4");
    let fast = run(&mut vm, "query-cpus-fast", json!({})).unwrap();
    assert_eq!(fast.as_array().unwrap().len(), 2);
    assert_eq!(fast[1]["thread-id"], 101);
    assert_eq!(
        fast[1]["props"],
        json!({"socket-id": 0, "core-id": 1, "thread-id": 0})
    );
    let slots = run(&mut vm, "query-hotpluggable-cpus", json!({})).unwrap();
    assert_eq!(slots.as_array().unwrap().len(), 4);
    assert_eq!(slots[0]["type"], "qemu64-x86_64-cpu");
    assert_eq!(slots[0].get("qom-path"), None);
    assert_eq!(slots[3]["qom-path"], "/machine/unattached/device[0]");
    let defs = run(&mut vm, "query-cpu-definitions", json!({})).unwrap();
    assert_eq!(defs[0]["name"], "max");
    let expanded = run(
        &mut vm,
        "query-cpu-model-expansion",
        json!({"type": "static", "model": {"name": "qemu64"}}),
    )
    .unwrap();
    assert_eq!(expanded["model"]["name"], "base");
}

#[test]
fn vcpupin_pins_warns_and_reports() {
    let mut vm = FakeVm::new("2");
    let all = run(&mut vm, CMD_VCPUPIN, json!({})).unwrap();
    let reply: vcpupin::VcpuPinReply = serde_json::from_value(all).unwrap();
    assert_eq!(reply.vcpus.len(), 2);
    assert_eq!(reply.vcpus[1].thread_id, 101);
    assert_eq!(reply.vcpus[1].cpus, "0-7");
    assert!(reply.warnings.is_empty());
    // No warning for the first pin; the second shares CPU 3 with it.
    run(&mut vm, CMD_VCPUPIN, json!({"vcpu": 1, "cpus": "3"})).unwrap();
    let second = run(&mut vm, CMD_VCPUPIN, json!({"vcpu": 0, "cpus": "2-3"})).unwrap();
    assert_eq!(
        second,
        json!({"vcpus": [{"vcpu": 0, "thread-id": 100, "cpus": "2-3"}],
               "warnings": ["vcpupin: vCPUs 0 and 1 are both pinned to host CPU 3; they will take turns on it"]})
    );
    assert_eq!(vm.affinity[&101], [3]);
    assert_eq!(
        run(&mut vm, CMD_VCPUPIN, json!({"vcpu": 7, "cpus": "0"}))
            .unwrap_err()
            .desc,
        "vCPU 7 does not exist (the VM has vCPUs 0-1)"
    );
    assert_eq!(
        run(&mut vm, CMD_VCPUPIN, json!({"vcpu": 1, "cpus": "9"}))
            .unwrap_err()
            .desc,
        "vcpupin 1 9: host CPU 9 does not exist (this host's CPUs are 0-7)"
    );
    assert_eq!(vm.affinity[&101], [3], "a refused pin changes nothing");
}

#[test]
fn emulatorpin_pins_every_other_thread() {
    let mut vm = FakeVm::new("2");
    let reply = run(&mut vm, CMD_EMULATORPIN, json!({"cpus": "0-1"})).unwrap();
    let reply: emulatorpin::EmulatorPinReply = serde_json::from_value(reply).unwrap();
    assert_eq!(reply.cpus, "0-1");
    assert_eq!(reply.threads.len(), 2);
    assert_eq!(reply.threads[1].name, "qmp-accept");
    assert_eq!(reply.threads[1].cpus, "0-1");
    assert_eq!(vm.affinity[&100].len(), 8, "vCPUs keep their affinity");
}

#[test]
fn vcpuinfo_shows_every_slot() {
    let mut vm = FakeVm::new("2,maxcpus=4");
    vm.configured.insert(3, vec![5]);
    let reply = run(&mut vm, CMD_VCPUINFO, json!({})).unwrap();
    let report: vcpuinfo::VcpuInfoReport = serde_json::from_value(reply).unwrap();
    assert_eq!(report.host_cpus, 8);
    assert_eq!(report.vcpus.len(), 4);
    assert_eq!(report.vcpus[1].thread_id, Some(101));
    assert_eq!(report.vcpus[2].state, crate::vcpu::info::VcpuState::Offline);
    assert_eq!(report.vcpus[2].affinity, "0-7");
    assert_eq!(report.vcpus[3].affinity, "5");
}

#[test]
fn stats_reports_every_present_vcpu_or_one() {
    let mut vm = FakeVm::new("2,maxcpus=4");
    let reply = run(&mut vm, CMD_STATS, json!({})).unwrap();
    let report: crate::monitor::sample::StatsReport = serde_json::from_value(reply).unwrap();
    assert_eq!(report.pid, std::process::id() as i32);
    assert_eq!(report.vcpus.len(), 2, "offline slots have no sample");
    assert_eq!(report.vcpus[1].vcpu, 1);
    assert_eq!(report.vcpus[1].thread.thread_id, 101);
    assert_eq!(
        crate::machine::stats::value_of(&report.vcpus[1].kvm, "exits"),
        Some(200)
    );
    assert_eq!(report.kvm_error, None);
    assert_eq!(report.emulator.len(), 2);
    let one = run(&mut vm, CMD_STATS, json!({"vcpu": 1})).unwrap();
    assert_eq!(one["vcpus"].as_array().unwrap().len(), 1);
    assert_eq!(
        run(&mut vm, CMD_STATS, json!({"vcpu": 3}))
            .unwrap_err()
            .desc,
        "vCPU 3 does not exist (the VM has vCPUs 0-1)"
    );
    assert_eq!(
        run(&mut vm, CMD_STATS, json!({"vcpu": "x"}))
            .unwrap_err()
            .desc,
        "Invalid parameter type for 'vcpu', expected: integer"
    );
}

#[test]
fn client_requests_are_what_the_commands_parse() {
    let pin = vcpupin::VcpuPinRequest {
        vcpu: Some(1),
        cpus: Some("0-3,^2".into()),
    };
    let sent = serde_json::to_value(&pin).unwrap();
    assert_eq!(sent, json!({"vcpu": 1, "cpus": "0-3,^2"}));
    assert_eq!(
        parse(vcpupin::VcpuPinRequest::NAME, args(sent)),
        Ok(Command::VcpuPin(vcpupin::VcpuPin {
            vcpu: Some(1),
            cpus: Some(vec![0, 1, 3])
        }))
    );
    let show = serde_json::to_value(vcpupin::VcpuPinRequest::default()).unwrap();
    assert_eq!(show, json!({}));
    let emu = serde_json::to_value(emulatorpin::EmulatorPinRequest::default()).unwrap();
    assert_eq!(
        parse(emulatorpin::EmulatorPinRequest::NAME, args(emu)),
        Ok(Command::EmulatorPin(emulatorpin::EmulatorPin {
            cpus: None
        }))
    );
    let info = serde_json::to_value(vcpuinfo::VcpuInfoQuery {}).unwrap();
    assert_eq!(
        parse(vcpuinfo::NAME, args(info)),
        Ok(Command::VcpuInfo(vcpuinfo::VcpuInfoQuery {}))
    );
}

#[test]
fn schedinfo_reports_with_virshs_names() {
    let mut vm = FakeVm::new("2");
    assert_eq!(
        run(&mut vm, CMD_SCHEDINFO, json!({})),
        Ok(
            json!({"cpu_shares": 1024, "vcpu_period": 100000, "vcpu_quota": -1,
                  "emulator_period": 100000, "emulator_quota": -1,
                  "global_period": 100000, "global_quota": -1})
        )
    );
    vm.sched = None;
    assert_eq!(
        run(&mut vm, CMD_SCHEDINFO, json!({})).unwrap_err().desc,
        "the VM has no cgroup of its own (it was started with --cgroup off, or --cgroup auto \
         found no writable cpu controller): its scheduler parameters cannot be read or set"
    );
}

#[test]
fn schedinfo_sets_then_reports() {
    let mut vm = FakeVm::new("2");
    let after = run(
        &mut vm,
        CMD_SCHEDINFO,
        json!({"set": {"vcpu_quota": 25000, "cpu_shares": 512, "global_period": 50000}}),
    )
    .unwrap();
    let after: schedinfo::SchedInfoReply = serde_json::from_value(after).unwrap();
    assert_eq!(after.vcpu_quota, 25_000);
    assert_eq!(after.cpu_shares, 512);
    assert_eq!(after.global_period, 50_000);
    assert_eq!(after.emulator_quota, -1, "what was not set stays");
    let sched = vm.sched.unwrap();
    assert_eq!(
        (sched.vcpu_quota, sched.cpu_shares, sched.global_period),
        (25_000, 512, 50_000)
    );
    // Back to no limit.
    let again = run(&mut vm, CMD_SCHEDINFO, json!({"set": {"vcpu_quota": -1}})).unwrap();
    assert_eq!(again["vcpu_quota"], -1);
    // An empty set only reports.
    assert_eq!(
        run(&mut vm, CMD_SCHEDINFO, json!({"set": {}})).unwrap()["cpu_shares"],
        512
    );
}

/// The QMP error text for a bad schedinfo parameter: the parser's message (its texts are
/// config::cputune's tests') after the command's prefix.
fn bad_param(key: &str, value: &str) -> String {
    format!(
        "schedinfo: {}",
        crate::config::cputune::parse_sched_param(key, value).unwrap_err()
    )
}

#[test]
fn schedinfo_checks_every_key_before_changing_anything() {
    let mut vm = FakeVm::new("2");
    let before = vm.sched;
    let desc = |vm: &mut FakeVm, arguments: Value| {
        let e = run(vm, CMD_SCHEDINFO, arguments).unwrap_err();
        assert_eq!(e.class, ErrorClass::GenericError);
        e.desc
    };
    // A good change beside a bad one: neither is applied.
    assert_eq!(
        desc(
            &mut vm,
            json!({"set": {"cpu_shares": 2048, "vcpu_quota": 0}})
        ),
        bad_param("vcpu_quota", "0")
    );
    assert_eq!(
        desc(
            &mut vm,
            json!({"set": {"vcpu_quota": 30000, "vcpu_bogus": 1}})
        ),
        bad_param("vcpu_bogus", "1")
    );
    assert_eq!(
        desc(&mut vm, json!({"set": {"emulator_period": 999}})),
        bad_param("emulator_period", "999")
    );
    assert_eq!(
        desc(&mut vm, json!({"set": {"global_quota": -5}})),
        bad_param("global_quota", "-5")
    );
    assert_eq!(
        desc(&mut vm, json!({"set": {"cpu_shares": 1}})),
        bad_param("cpu_shares", "1")
    );
    assert_eq!(
        desc(&mut vm, json!({"set": {"cpu_shares": "1024"}})),
        "Invalid parameter type for 'set.cpu_shares', expected: integer"
    );
    assert_eq!(
        desc(&mut vm, json!({"set": {"cpu_shares": 1.5}})),
        "Invalid parameter type for 'set.cpu_shares', expected: integer"
    );
    assert_eq!(
        desc(&mut vm, json!({"set": [1]})),
        "Invalid parameter type for 'set', expected: object"
    );
    assert_eq!(
        desc(&mut vm, json!({"sett": {}})),
        "Parameter 'sett' is unexpected"
    );
    assert_eq!(vm.sched, before, "refused requests change nothing");
    // The kernel refusing a change is the VM's error, passed on.
    vm.sched_error = Some("writing vcpu0/cpu.cfs_quota_us: Invalid argument".into());
    assert_eq!(
        desc(&mut vm, json!({"set": {"vcpu_quota": 1000}})),
        "cgroup: writing vcpu0/cpu.cfs_quota_us: Invalid argument"
    );
    assert_eq!(vm.sched, before);
}

#[test]
fn schedinfo_request_is_what_the_command_parses() {
    let changes = [
        crate::config::cputune::SchedParam::VcpuQuota(25_000),
        crate::config::cputune::SchedParam::CpuShares(100),
    ];
    let sent = serde_json::to_value(schedinfo::SchedInfoRequest::setting(&changes)).unwrap();
    assert_eq!(
        sent,
        json!({"set": {"vcpu_quota": 25000, "cpu_shares": 100}})
    );
    let Command::SchedInfo(parsed) = parse(schedinfo::NAME, args(sent)).unwrap() else {
        panic!("not schedinfo");
    };
    assert_eq!(parsed.set.len(), 2);
    assert!(parsed.set.contains(&changes[0]) && parsed.set.contains(&changes[1]));
}

#[test]
fn stats_and_vcpuinfo_carry_each_vcpus_cgroup() {
    let mut vm = FakeVm::new("2,maxcpus=3");
    let group = crate::host::vmcgroup::CgroupCpuStat {
        period_us: 100_000,
        quota_us: 25_000,
        nr_periods: 40,
        nr_throttled: 30,
        throttled_ns: 2_250_000_000,
        usage_ns: Some(1_000_000_000),
    };
    vm.cgroups.insert(1, group);
    let report: crate::monitor::sample::StatsReport =
        serde_json::from_value(run(&mut vm, CMD_STATS, json!({})).unwrap()).unwrap();
    assert_eq!(report.vcpus[0].cgroup, None);
    assert_eq!(report.vcpus[1].cgroup, Some(group));
    let info = run(&mut vm, CMD_VCPUINFO, json!({})).unwrap();
    assert_eq!(info["vcpus"][0].get("cgroup"), None);
    assert_eq!(info["vcpus"][1]["cgroup"]["throttled-ns"], 2_250_000_000u64);
    assert_eq!(
        info["vcpus"][2].get("cgroup"),
        None,
        "an offline slot has none"
    );
    let report: vcpuinfo::VcpuInfoReport = serde_json::from_value(info).unwrap();
    assert_eq!(report.vcpus[1].cgroup, Some(group));
}

#[test]
fn snapshot_pauses_saves_and_resumes_or_stays_stopped() {
    let mut vm = FakeVm::new("2");
    let reply = run(&mut vm, "__org.rvmm_snapshot", json!({"path": "/tmp/s"})).unwrap();
    assert_eq!(reply["path"], "/tmp/s");
    assert_eq!(reply["stopped"], false);
    assert_eq!(vm.state, RunState::Running);
    assert!(
        vm.events.is_empty(),
        "a snapshot that resumes sends no event"
    );
    let reply = run(
        &mut vm,
        "__org.rvmm_snapshot",
        json!({"path": "/tmp/s2", "stop": true}),
    )
    .unwrap();
    assert_eq!(reply["stopped"], true);
    assert_eq!(vm.state, RunState::Paused);
    assert_eq!(vm.events, [Event::Stop]);
    // Failing leaves the VM as it was.
    run(&mut vm, "cont", json!({})).unwrap();
    let e = run(&mut vm, "__org.rvmm_snapshot", json!({"path": ""})).unwrap_err();
    assert_eq!(
        e.to_string(),
        QmpError::generic("snapshot: no directory").to_string()
    );
    assert_eq!(vm.state, RunState::Running);
    assert_eq!(
        run(
            &mut vm,
            "__org.rvmm_snapshot",
            json!({"path": "/x", "stop": 1})
        ),
        Err(crate::control::args::type_error("stop", "boolean"))
    );
    assert_eq!(
        run(&mut vm, "__org.rvmm_snapshot", json!({})),
        Err(QmpError::generic("Parameter 'path' is missing"))
    );
}

#[test]
fn balloon_and_query_balloon() {
    use crate::control::view::BalloonStatus;
    let mut vm = FakeVm::new("1");
    // No balloon: QEMU's DeviceNotActive.
    for (name, arguments) in [
        ("balloon", json!({"value": 1 << 20})),
        ("query-balloon", json!({})),
    ] {
        let e = run(&mut vm, name, arguments).unwrap_err();
        assert_eq!(e.class, ErrorClass::DeviceNotActive);
        assert_eq!(e.desc, "No balloon device has been activated");
    }
    let ram: u64 = 256 << 20;
    vm.balloon = Some(BalloonStatus {
        ram,
        target: 0,
        actual: 0,
    });
    assert_eq!(
        run(&mut vm, "query-balloon", json!({})),
        Ok(json!({"actual": ram}))
    );
    run(&mut vm, "balloon", json!({"value": ram - (64 << 20)})).unwrap();
    assert_eq!(vm.balloon.unwrap().target, 16384);
    // Above RAM: an empty balloon, as QEMU clamps it.
    run(&mut vm, "balloon", json!({"value": ram * 2})).unwrap();
    assert_eq!(vm.balloon.unwrap().target, 0);
    // A value not above zero: QEMU's error, with its C parameter's name.
    for v in [0i64, -4096] {
        let e = run(&mut vm, "balloon", json!({ "value": v })).unwrap_err();
        assert_eq!(e.desc, "Parameter 'target' expects a size");
        assert_eq!(e.class, ErrorClass::GenericError);
    }
    assert_eq!(err("balloon", json!({})), "Parameter 'value' is missing");
    assert_eq!(
        err("balloon", json!({"value": "1G"})),
        "Invalid parameter type for 'value', expected: integer"
    );
    assert_eq!(
        err("balloon", json!({"value": 1, "extra": 2})),
        "Parameter 'extra' is unexpected"
    );
    vm.balloon = Some(BalloonStatus {
        ram,
        target: 16384,
        actual: 16384,
    });
    assert_eq!(
        run(&mut vm, "query-balloon", json!({})),
        Ok(json!({"actual": ram - (64 << 20)}))
    );
}

#[test]
fn balloon_change_event_line() {
    let line = crate::control::qmp::event_line(
        Event::BalloonChange { actual: 1 << 30 },
        std::time::UNIX_EPOCH,
    );
    assert!(
        line.contains(r#"{"data":{"actual":1073741824},"event":"BALLOON_CHANGE""#),
        "{line}"
    );
}

#[test]
fn migration_capability_commands_check_their_arguments_as_qemu() {
    let err = |name: &str, a: Value| parse(name, args(a)).unwrap_err().desc;
    assert_eq!(
        err(
            "migrate-set-capabilities",
            json!({"capabilities": [{"capability": "events", "state": true},
                {"capability": "postcopy-ram", "state": true}]})
        ),
        "Parameter 'capability' does not accept value 'postcopy-ram' (rvmm's migration \
         capabilities: events, pause-before-switchover)"
    );
    assert_eq!(
        err(
            "migrate-set-capabilities",
            json!({"capabilities": [{"capability": "events"}]})
        ),
        "Parameter 'capabilities[0].state' is missing"
    );
    assert_eq!(
        err("migrate-set-capabilities", json!({})),
        "Parameter 'capabilities' is missing"
    );
    assert_eq!(
        err("migrate-continue", json!({"state": 1})),
        "Invalid parameter type for 'state', expected: string"
    );
    // announce-self: the four numbers required, each in QEMU's announce range.
    assert_eq!(
        err("announce-self", json!({})),
        "Parameter 'initial' is missing"
    );
    assert_eq!(
        err(
            "announce-self",
            json!({"initial": 50, "max": 550, "rounds": 5})
        ),
        "Parameter 'step' is missing"
    );
    assert_eq!(
        err(
            "announce-self",
            json!({"initial": -1, "max": 550, "rounds": 5, "step": 100})
        ),
        "Parameter 'initial' expects a value between 0 and 100000"
    );
    assert_eq!(
        err(
            "announce-self",
            json!({"initial": 50, "max": 550, "rounds": "5", "step": 100})
        ),
        "Invalid parameter type for 'rounds', expected: integer"
    );
    assert_eq!(
        err(
            "announce-self",
            json!({"initial": 50, "max": 550, "rounds": 5, "step": 100, "interfaces": ["net0", 1]})
        ),
        "Invalid parameter type for 'interfaces[1]', expected: string"
    );
    assert_eq!(
        err(
            "announce-self",
            json!({"initial": 50, "max": 550, "rounds": 5, "step": 100, "ifaces": []})
        ),
        "Parameter 'ifaces' is unexpected"
    );
    assert_eq!(
        err("migrate-set-parameters", json!({"announce-rounds": 1001})),
        "Parameter 'announce_rounds' expects a value between 0 and 1000"
    );
    assert_eq!(
        err("migrate-set-parameters", json!({"announce-step": 0})),
        "Parameter 'announce_step' expects a value between 0 and 10000"
    );
    // A view without NICs (the default) refuses.
    let mut vm = FakeVm::new("1");
    assert_eq!(
        run(
            &mut vm,
            "announce-self",
            json!({"initial": 50, "max": 550, "rounds": 5, "step": 100})
        )
        .unwrap_err()
        .desc,
        "this VM has no NIC"
    );
    let ok = parse(
        "migrate-set-capabilities",
        args(json!({"capabilities": [{"capability": "pause-before-switchover", "state": true}]})),
    )
    .unwrap();
    assert_eq!(ok.name(), "migrate-set-capabilities");
    // A VM that cannot migrate (the view's default) refuses, and nothing is listed as set.
    let mut vm = FakeVm::new("1");
    assert!(ok.execute(&mut vm).is_err());
    assert_eq!(
        run(&mut vm, "query-migrate-capabilities", json!({})).unwrap()[1],
        json!({"capability": "pause-before-switchover", "state": false})
    );
}
