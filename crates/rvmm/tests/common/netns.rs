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

/// Python run in the namespace: a packet socket on the tap for RARP (ethertype 0x8035),
/// printing `ready`, then one line per frame that arrives on the host side of the tap:
/// milliseconds since ready, the source MAC, the opcode and the target MAC.
const RARP_SNIFFER: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
s.bind((sys.argv[1], 0x8035))
t0 = time.monotonic()
print("ready", flush=True)
while True:
    f = s.recv(2048)
    mac = lambda b: ":".join("%02x" % x for x in b)
    print("%d %s %d %s" % ((time.monotonic() - t0) * 1000, mac(f[6:12]),
                           int.from_bytes(f[20:22], "big"), mac(f[32:38])), flush=True)
"#;

/// The RARP frames a [`NetNs::sniff_rarp`] saw, as they arrive.
pub struct RarpSniffer {
    child: Child,
    frames: std::sync::Arc<std::sync::Mutex<Vec<RarpFrame>>>,
}

/// One RARP frame: when (ms after the sniffer was ready), from which MAC, its opcode and
/// the MAC it asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RarpFrame {
    pub ms: u64,
    pub source: String,
    pub op: u16,
    pub target: String,
}

impl NetNs {
    /// Starts a RARP sniffer on the tap (python3 in the namespace); returns once it listens.
    pub fn sniff_rarp(&self) -> RarpSniffer {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "python3",
                "-c",
                RARP_SNIFFER,
                &self.tap,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 in the namespace");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok);
        assert_eq!(
            first.as_deref(),
            Some("ready"),
            "the RARP sniffer did not start"
        );
        let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = frames.clone();
        std::thread::spawn(move || {
            for line in lines {
                let Ok(line) = line else { break };
                let w: Vec<&str> = line.split_whitespace().collect();
                if let [ms, source, op, target] = w[..] {
                    sink.lock().unwrap().push(RarpFrame {
                        ms: ms.parse().unwrap(),
                        source: source.into(),
                        op: op.parse().unwrap(),
                        target: target.into(),
                    });
                }
            }
        });
        RarpSniffer { child, frames }
    }
}

impl RarpSniffer {
    /// The frames seen so far.
    pub fn frames(&self) -> Vec<RarpFrame> {
        self.frames.lock().unwrap().clone()
    }

    /// Waits (up to `limit`) until `n` frames have been seen; returns them all.
    pub fn wait_frames(&self, n: usize, limit: Duration) -> Vec<RarpFrame> {
        let start = std::time::Instant::now();
        while self.frames().len() < n && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.frames()
    }
}

impl Drop for RarpSniffer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}
