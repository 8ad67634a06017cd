//! rvmm driven by Kata Containers' own QMP client: the `qapi` crate (qmp feature, the
//! synchronous client runtime-rs uses), whose replies are typed from QEMU's QAPI schema, so a
//! missing or mistyped field in any rvmm reply fails deserialization here. The sequence is
//! Kata's: handshake, version, status, CPUs, pause/resume, then its vCPU hot-add (for the first
//! hotpluggable slot without a qom-path, `device_add` with the slot's type as driver and its
//! socket/die/core/thread ids, id `cpu-N`), and quit.

mod common;

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::kvm_available;
use common::vm::BackgroundVm;
use qapi::qmp;
use qapi::{Dictionary, Qmp, Stream};

/// The x86_64 base of each `query-cpus-fast` entry (panics on another target).
fn x86_cpus(cpus: Vec<qmp::CpuInfoFast>) -> Vec<qmp::CpuInfoFastBase> {
    cpus.into_iter()
        .map(|c| match c {
            qmp::CpuInfoFast::x86_64(base) => base,
            other => panic!("not an x86_64 CPU: {other:?}"),
        })
        .collect()
}

#[test]
fn kata_typed_client_handshakes_queries_pauses_and_hot_adds_a_vcpu() {
    if !kvm_available("kata_typed_client_handshakes_queries_pauses_and_hot_adds_a_vcpu") {
        return;
    }
    let vm = BackgroundVm::start(
        "kata-qmp",
        &["--smp", "1,maxcpus=2", "--append", "mode=halt"],
    );
    vm.wait_halted();

    // As runtime-rs connects: a Unix stream with a read timeout, BufReader + writer halves.
    let stream = UnixStream::connect(&vm.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut q = Qmp::new(Stream::new(
        BufReader::new(stream.try_clone().unwrap()),
        stream,
    ));

    let greeting = q.handshake().expect("QMP handshake");
    assert_eq!(
        (greeting.version.qemu.major, greeting.version.qemu.minor),
        (7, 2)
    );

    let v = q.execute(&qmp::query_version {}).expect("query-version");
    assert_eq!((v.qemu.major, v.qemu.minor, v.qemu.micro), (7, 2, 0));
    assert!(v.package.starts_with("rvmm"), "package {:?}", v.package);

    let s = q.execute(&qmp::query_status {}).expect("query-status");
    assert!(s.running);
    assert!(matches!(s.status, qmp::RunState::running), "{s:?}");

    let cpus = x86_cpus(
        q.execute(&qmp::query_cpus_fast {})
            .expect("query-cpus-fast"),
    );
    assert_eq!(cpus.len(), 1);
    assert_eq!(cpus[0].cpu_index, 0);
    assert!(cpus[0].thread_id > 0);

    let slots = q
        .execute(&qmp::query_hotpluggable_cpus {})
        .expect("query-hotpluggable-cpus");
    assert_eq!(slots.len(), 2);
    assert_eq!(slots.iter().filter(|s| s.qom_path.is_some()).count(), 1);

    q.execute(&qmp::stop {}).expect("stop");
    let s = q.execute(&qmp::query_status {}).expect("query-status");
    assert!(!s.running);
    assert!(matches!(s.status, qmp::RunState::paused), "{s:?}");
    q.execute(&qmp::cont {}).expect("cont");
    let s = q.execute(&qmp::query_status {}).expect("query-status");
    assert!(s.running, "{s:?}");

    // Kata's hotplug_vcpus: every slot without a qom-path, until enough are added.
    let mut added = 0;
    for slot in slots.iter().filter(|s| s.qom_path.is_none()) {
        let mut args = Dictionary::new();
        let props = &slot.props;
        let socket = props.socket_id.expect("socket-id");
        let core = props.core_id.expect("core-id");
        let thread = props.thread_id.expect("thread-id");
        args.insert("socket-id".into(), socket.into());
        if let Some(die) = props.die_id {
            args.insert("die-id".into(), die.into());
        }
        args.insert("core-id".into(), core.into());
        args.insert("thread-id".into(), thread.into());
        added += 1;
        q.execute(&qmp::device_add {
            bus: None,
            id: Some(format!("cpu-{added}")),
            driver: slot.type_.clone(),
            arguments: args,
        })
        .expect("device_add of a vCPU");
    }
    assert_eq!(added, 1);

    let cpus = x86_cpus(
        q.execute(&qmp::query_cpus_fast {})
            .expect("query-cpus-fast"),
    );
    assert_eq!(cpus.len(), 2, "{cpus:?}");
    let slots = q
        .execute(&qmp::query_hotpluggable_cpus {})
        .expect("query-hotpluggable-cpus");
    assert!(slots.iter().all(|s| s.qom_path.is_some()), "{slots:?}");

    // A refusal reaches the client as a typed QMP error (class and desc), not an I/O error:
    // a `device_add` for a slot that is already plugged (all of them are now).
    let again = slots[0].props.clone();
    let mut args = Dictionary::new();
    for (k, v) in [
        ("socket-id", again.socket_id),
        ("die-id", again.die_id),
        ("core-id", again.core_id),
        ("thread-id", again.thread_id),
    ] {
        if let Some(v) = v {
            args.insert(k.into(), v.into());
        }
    }
    match q.execute(&qmp::device_add {
        bus: None,
        id: Some("cpu-again".into()),
        driver: slots[0].type_.clone(),
        arguments: args,
    }) {
        Err(qapi::ExecuteError::Qapi(e)) => {
            assert!(matches!(e.class, qapi::ErrorClass::GenericError), "{e:?}");
            assert!(!e.desc.is_empty());
        }
        other => panic!("device_add of a plugged slot: {other:?}"),
    }

    q.execute(&qmp::quit {}).expect("quit");
    let out = vm.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "rvmm after quit: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
