//! A network namespace with one tap for the tests that put a guest's NIC on a network:
//! the tap (rvtap0, 10.99.0.1/24, up) is the host end the probe's `mode=virtio` NIC ARPs
//! and pings. Needs root and `ip`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A network namespace with one tap (10.99.0.1/24, up); deleted on drop, tap and all.
pub struct NetNs {
    pub ns: String,
    pub tap: String,
}

pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl NetNs {
    pub fn new(tag: &str) -> NetNs {
        let ns = format!("rvmm-{tag}-{}", std::process::id());
        let tap = "rvtap0".to_string();
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        ip(&["netns", "add", &ns]);
        let n = NetNs { ns, tap };
        n.ip(&["tuntap", "add", "dev", &n.tap, "mode", "tap"]);
        n.ip(&["addr", "add", "10.99.0.1/24", "dev", &n.tap]);
        n.ip(&["link", "set", &n.tap, "up"]);
        n
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `cmd` run inside the namespace.
    pub fn exec(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c.stdin(Stdio::null());
        c
    }

    /// (rx packets, tx packets) of the tap as the host counts them.
    pub fn counters(&self) -> (u64, u64) {
        let read = |dir: &str| -> u64 {
            let out = self.ip(&["-s", "-j", "link", "show", &self.tap]);
            let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
            v[0]["stats64"][dir]["packets"].as_u64().expect("packets")
        };
        (read("rx"), read("tx"))
    }

    pub fn tap_mac(&self) -> String {
        let out = self.ip(&["-j", "link", "show", &self.tap]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
        v[0]["address"].as_str().expect("address").to_string()
    }

    /// `ip monitor neigh` in the namespace, for the neighbour entries made while it runs
    /// (the kernel flushes them when the tap loses its carrier at the VMM's exit).
    pub fn monitor(&self) -> Child {
        let child = Command::new("ip")
            .args(["-n", &self.ns, "monitor", "neigh"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ip monitor");
        // Give it time to subscribe before the guest starts (setup, not a measurement).
        std::thread::sleep(Duration::from_millis(300));
        child
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}
