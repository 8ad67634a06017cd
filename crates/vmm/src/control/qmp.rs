//! The QMP wire protocol as QEMU 7.2 speaks it (docs/interop/qmp-spec.txt): the greeting,
//! capabilities negotiation, `{"execute", "arguments", "id"}` requests checked member by
//! member with QEMU's error texts, `return`/`error` replies carrying the request's `id`, and
//! events with `{"seconds", "microseconds"}` timestamps. Every line ends in CRLF, as QEMU's.
//!
//! Framing follows QEMU's JSON streamer rather than lines: a message ends where its
//! top-level value ends, whatever the newlines, so pretty-printed input works. Each message
//! is bounded (`MAX_MESSAGE`): a longer one is skipped without being buffered and answered
//! with an error, and the stream stays in step. All of this is pure: `server` does the I/O.
//!
//! The protocol knows nothing of the command set beyond [`ParseCommand`]: it handles
//! `qmp_capabilities` itself (negotiation is the protocol's) and hands every other name and
//! its arguments to the set it is given (`commands::Command` in rvmm).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::args::{type_error, Args, Presence};
pub use super::error::{ErrorClass, QmpError};

/// The negotiation command, handled by the protocol itself.
pub const CAPABILITIES_COMMAND: &str = "qmp_capabilities";

/// A command set as the protocol sees it: a name and its arguments in, a command (or
/// QEMU's error for an unknown name or bad arguments) out.
pub trait ParseCommand: Sized {
    fn parse(name: &str, arguments: Map<String, Value>) -> Result<Self, QmpError>;
}

/// The largest request accepted, in bytes (QMP commands are small; libvirt's largest are a
/// few KiB).
pub const MAX_MESSAGE: usize = 1 << 20;

/// One message cut from the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The bytes of one top-level JSON value (or of one stray token).
    Message(Vec<u8>),
    /// A value longer than the limit, skipped; its length in bytes.
    TooLarge(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Between values (whitespace).
    Idle,
    /// Inside an object or array.
    Nested,
    /// Inside a top-level string.
    TopString,
    /// A bare top-level token (number, keyword, garbage).
    Bare,
}

/// Splits a byte stream into top-level JSON values by tracking strings, escapes and
/// bracket depth, as QEMU's json-streamer does.
#[derive(Debug)]
pub struct Splitter {
    limit: usize,
    buf: Vec<u8>,
    /// Bytes of the current value, skipped ones included.
    len: usize,
    overflow: bool,
    scan: Scan,
    depth: usize,
    in_string: bool,
    escape: bool,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl Splitter {
    pub fn new(limit: usize) -> Self {
        Splitter {
            limit,
            buf: Vec::new(),
            len: 0,
            overflow: false,
            scan: Scan::Idle,
            depth: 0,
            in_string: false,
            escape: false,
        }
    }

    fn append(&mut self, b: u8) {
        self.len += 1;
        if self.overflow {
            return;
        }
        if self.buf.len() >= self.limit {
            self.overflow = true;
            self.buf = Vec::new();
        } else {
            self.buf.push(b);
        }
    }

    fn finish(&mut self, out: &mut Vec<Frame>) {
        let frame = if self.overflow {
            Frame::TooLarge(self.len)
        } else {
            Frame::Message(std::mem::take(&mut self.buf))
        };
        out.push(frame);
        self.buf = Vec::new();
        self.len = 0;
        self.overflow = false;
        self.scan = Scan::Idle;
        self.depth = 0;
        self.in_string = false;
        self.escape = false;
    }

    /// Whether a string's state machine consumed `b` (and so brackets inside strings are
    /// not counted).
    fn string_byte(&mut self, b: u8) -> bool {
        if !self.in_string {
            return false;
        }
        if self.escape {
            self.escape = false;
        } else if b == b'\\' {
            self.escape = true;
        } else if b == b'"' {
            self.in_string = false;
        }
        true
    }

    /// Whether a message has begun and not yet ended.
    pub fn pending(&self) -> bool {
        self.scan != Scan::Idle
    }

    /// Feeds bytes; returns the messages they complete.
    pub fn push(&mut self, data: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        for &b in data {
            self.byte(b, &mut out);
        }
        out
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Frame>) {
        match self.scan {
            Scan::Idle => match b {
                _ if is_space(b) => {}
                b'{' | b'[' => {
                    self.scan = Scan::Nested;
                    self.depth = 1;
                    self.append(b);
                }
                b'"' => {
                    self.scan = Scan::TopString;
                    self.in_string = true;
                    self.append(b);
                }
                b'}' | b']' => {
                    self.append(b);
                    self.finish(out);
                }
                _ => {
                    self.scan = Scan::Bare;
                    self.append(b);
                }
            },
            Scan::Nested => {
                self.append(b);
                if self.string_byte(b) {
                    return;
                }
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            self.finish(out);
                        }
                    }
                    _ => {}
                }
            }
            Scan::TopString => {
                self.append(b);
                self.string_byte(b);
                if !self.in_string {
                    self.finish(out);
                }
            }
            Scan::Bare => {
                if is_space(b) || matches!(b, b'{' | b'}' | b'[' | b']' | b'"') {
                    self.finish(out);
                    self.byte(b, out);
                } else {
                    self.append(b);
                }
            }
        }
    }
}

/// A request's envelope after QEMU's checks (qmp_dispatch_check_obj).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: Option<Value>,
    pub execute: String,
    pub arguments: Map<String, Value>,
}

/// A request that cannot be executed: the error and the `id` to answer with, if known.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub id: Option<Value>,
    pub error: QmpError,
}

/// Parses and checks one message.
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, Rejected> {
    let reject = |id: Option<Value>, desc: String| Rejected {
        id,
        error: QmpError::generic(desc),
    };
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| reject(None, format!("JSON parse error, {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(reject(None, "QMP input must be a JSON object".into()));
    };
    let id = obj.remove("id");
    let mut execute = None;
    let mut arguments = Map::new();
    for (key, v) in obj {
        match (key.as_str(), v) {
            ("execute", Value::String(s)) => execute = Some(s),
            ("arguments", Value::Object(m)) => arguments = m,
            ("exec-oob", Value::String(_)) => return Err(reject(
                id,
                "Please enable out-of-band first for the session during capabilities negotiation"
                    .into(),
            )),
            ("execute" | "exec-oob", _) => {
                return Err(reject(
                    id,
                    format!("QMP input member '{key}' must be a string"),
                ))
            }
            ("arguments", _) => {
                return Err(reject(
                    id,
                    "QMP input member 'arguments' must be an object".into(),
                ))
            }
            _ => {
                return Err(reject(
                    id,
                    format!("QMP input member '{key}' is unexpected"),
                ))
            }
        }
    }
    match execute {
        Some(execute) => Ok(Envelope {
            id,
            execute,
            arguments,
        }),
        None => Err(reject(id, "QMP input lacks member 'execute'".into())),
    }
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<C> {
    /// Send this line back (negotiation, or an error found without the VMM).
    Reply(String),
    /// Ask the VMM thread, then answer with this `id`.
    Execute { id: Option<Value>, command: C },
}

/// Checks `qmp_capabilities`' arguments: `enable` may only list capabilities the greeting
/// offered, and rvmm offers none (no out-of-band execution).
pub fn check_capabilities(arguments: Map<String, Value>) -> Result<(), QmpError> {
    let mut args = Args::new(arguments);
    if let Some(enable) = args.take("enable", Presence::Optional)? {
        let Value::Array(items) = enable else {
            return Err(type_error("enable", "array"));
        };
        // rvmm's greeting offers no capability, so any entry is refused: the first decides how.
        match items.first() {
            None => {}
            Some(Value::String(s)) if s == "oob" => {
                return Err(QmpError::generic(
                    "Capability 'oob' not available".to_string(),
                ))
            }
            Some(Value::String(s)) => {
                return Err(QmpError::generic(format!(
                    "Parameter 'enable' does not accept value '{s}'"
                )))
            }
            Some(_) => return Err(type_error("enable", "string")),
        }
    }
    args.finish("")
}

/// One client's protocol state: capabilities negotiation, then command mode.
#[derive(Debug, Default)]
pub struct Session {
    negotiated: bool,
}

impl Session {
    /// Whether the client is in command mode (and receives events).
    pub fn negotiated(&self) -> bool {
        self.negotiated
    }

    /// Handles one frame, parsing commands with the set `C`.
    pub fn handle<C: ParseCommand>(&mut self, frame: Frame) -> Step<C> {
        let bytes = match frame {
            Frame::Message(b) => b,
            Frame::TooLarge(n) => {
                return Step::Reply(reply_error(
                    None,
                    &QmpError::generic(format!(
                        "QMP input of {n} bytes exceeds the limit of {MAX_MESSAGE} bytes; it was discarded"
                    )),
                ))
            }
        };
        let env = match parse_envelope(&bytes) {
            Ok(e) => e,
            Err(r) => return Step::Reply(reply_error(r.id.as_ref(), &r.error)),
        };
        let id = env.id;
        if env.execute == CAPABILITIES_COMMAND {
            if self.negotiated {
                let e = QmpError {
                    class: ErrorClass::CommandNotFound,
                    desc: "Capabilities negotiation is already complete, command ignored".into(),
                };
                return Step::Reply(reply_error(id.as_ref(), &e));
            }
            return Step::Reply(match check_capabilities(env.arguments) {
                Ok(()) => {
                    self.negotiated = true;
                    reply_return(id.as_ref(), json!({}))
                }
                Err(e) => reply_error(id.as_ref(), &e),
            });
        }
        if !self.negotiated {
            let e = QmpError {
                class: ErrorClass::CommandNotFound,
                desc: "Expecting capabilities negotiation with 'qmp_capabilities'".into(),
            };
            return Step::Reply(reply_error(id.as_ref(), &e));
        }
        match C::parse(&env.execute, env.arguments) {
            Ok(command) => Step::Execute { id, command },
            Err(e) => Step::Reply(reply_error(id.as_ref(), &e)),
        }
    }
}

/// The QEMU release whose behaviour rvmm follows (its QMP replies, error texts, HMP output
/// and command line): what QMP reports as the server's version, since clients check it
/// (libvirt and Kata require QEMU >= 5.0, Nomad parses `--version`).
pub const QEMU_VERSION: (u32, u32, u32) = (7, 2, 0);

/// [`QEMU_VERSION`] as QEMU prints it: `7.2.0`.
pub fn qemu_version_text() -> String {
    let (major, minor, micro) = QEMU_VERSION;
    format!("{major}.{minor}.{micro}")
}

/// The version QMP reports (greeting and `query-version`): QEMU's shape, the QEMU version
/// rvmm follows, and rvmm's own version in `package` (where QEMU puts distribution
/// suffixes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
    pub package: String,
}

impl Version {
    /// This build of rvmm: QEMU [`QEMU_VERSION`], package `rvmm X.Y.Z`.
    pub fn rvmm() -> Version {
        let (major, minor, micro) = QEMU_VERSION;
        Version {
            major,
            minor,
            micro,
            package: format!("rvmm {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// `{"qemu": {"major", "minor", "micro"}, "package"}`: the member is named `qemu`
    /// because the schema says so; clients read it as the server's version.
    pub fn to_json(&self) -> Value {
        json!({"qemu": {"major": self.major, "minor": self.minor, "micro": self.micro}, "package": self.package})
    }
}

/// QEMU's VersionInfo shape (`to_json`), so `query-version` can return a `Version`.
impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

fn line(v: Value) -> String {
    let mut s = v.to_string();
    s.push_str("\r\n");
    s
}

/// The greeting: no capabilities (rvmm has no out-of-band execution).
pub fn greeting(version: &Version) -> String {
    line(json!({"QMP": {"version": version.to_json(), "capabilities": []}}))
}

/// A success reply.
pub fn reply_return(id: Option<&Value>, value: Value) -> String {
    let mut obj = Map::new();
    obj.insert("return".into(), value);
    if let Some(id) = id {
        obj.insert("id".into(), id.clone());
    }
    line(Value::Object(obj))
}

/// An error reply.
pub fn reply_error(id: Option<&Value>, error: &QmpError) -> String {
    let mut obj = Map::new();
    obj.insert(
        "error".into(),
        json!({"class": error.class, "desc": error.desc}),
    );
    if let Some(id) = id {
        obj.insert("id".into(), id.clone());
    }
    line(Value::Object(obj))
}

/// Why the VM shut down or reset (qapi/run-state.json, ShutdownCause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownCause {
    HostError,
    HostQmpQuit,
    HostQmpSystemReset,
    HostSignal,
    HostUi,
    GuestShutdown,
    GuestReset,
}

impl ShutdownCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownCause::HostError => "host-error",
            ShutdownCause::HostQmpQuit => "host-qmp-quit",
            ShutdownCause::HostQmpSystemReset => "host-qmp-system-reset",
            ShutdownCause::HostSignal => "host-signal",
            ShutdownCause::HostUi => "host-ui",
            ShutdownCause::GuestShutdown => "guest-shutdown",
            ShutdownCause::GuestReset => "guest-reset",
        }
    }

    /// Whether the guest asked for it (the events' `guest` member).
    pub fn is_guest(self) -> bool {
        matches!(
            self,
            ShutdownCause::GuestShutdown | ShutdownCause::GuestReset
        )
    }
}

/// What the guest's OSPM reported through a device's `_OST` (qapi/acpi.json, ACPIOSTInfo):
/// always a CPU slot here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiOstInfo {
    /// The id of the device in the slot, when it has one.
    pub device: Option<String>,
    /// The slot's index, as a decimal string.
    pub slot: String,
    /// The OST event (1 device check, 3 eject request, ...).
    pub source: u32,
    /// The OST status code.
    pub status: u32,
}

/// Asynchronous events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Shutdown(ShutdownCause),
    Reset(ShutdownCause),
    Stop,
    Resume,
    Powerdown,
    /// A device is gone (qapi/qdev.json): for a vCPU, once the guest ejected it. `device` is
    /// its id, when it has one; `path` its QOM path.
    DeviceDeleted {
        device: Option<String>,
        path: String,
    },
    /// The guest's `_OST` report for a slot (qapi/acpi.json).
    AcpiDeviceOst(AcpiOstInfo),
    /// The balloon driver changed the balloon's size: the guest's memory now, in bytes
    /// (qapi/machine.json).
    BalloonChange {
        actual: u64,
    },
    /// A live migration's status changed (qapi/migration.json's MIGRATION).
    Migration {
        status: &'static str,
    },
}

/// An event line stamped with `at`.
pub fn event_line(event: Event, at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut obj = Map::new();
    obj.insert(
        "timestamp".into(),
        json!({"seconds": since.as_secs(), "microseconds": since.subsec_micros()}),
    );
    let (name, data) = match event {
        Event::Shutdown(c) => (
            "SHUTDOWN",
            Some(json!({"guest": c.is_guest(), "reason": c.as_str()})),
        ),
        Event::Reset(c) => (
            "RESET",
            Some(json!({"guest": c.is_guest(), "reason": c.as_str()})),
        ),
        Event::Stop => ("STOP", None),
        Event::Resume => ("RESUME", None),
        Event::Powerdown => ("POWERDOWN", None),
        Event::DeviceDeleted { device, path } => {
            let mut data = Map::new();
            if let Some(id) = device {
                data.insert("device".into(), Value::String(id));
            }
            data.insert("path".into(), Value::String(path));
            ("DEVICE_DELETED", Some(Value::Object(data)))
        }
        Event::AcpiDeviceOst(info) => {
            let mut data = Map::new();
            if let Some(id) = info.device {
                data.insert("device".into(), Value::String(id));
            }
            data.insert("slot".into(), Value::String(info.slot));
            data.insert("slot-type".into(), Value::String("CPU".into()));
            data.insert("source".into(), info.source.into());
            data.insert("status".into(), info.status.into());
            ("ACPI_DEVICE_OST", Some(json!({ "info": data })))
        }
        Event::BalloonChange { actual } => ("BALLOON_CHANGE", Some(json!({ "actual": actual }))),
        Event::Migration { status } => ("MIGRATION", Some(json!({ "status": status }))),
    };
    obj.insert("event".into(), Value::String(name.into()));
    if let Some(d) = data {
        obj.insert("data".into(), d);
    }
    line(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn messages(frames: Vec<Frame>) -> Vec<String> {
        frames
            .into_iter()
            .map(|f| match f {
                Frame::Message(b) => String::from_utf8(b).unwrap(),
                Frame::TooLarge(n) => format!("<{n} bytes>"),
            })
            .collect()
    }

    #[test]
    fn splits_values_not_lines() {
        let mut s = Splitter::new(MAX_MESSAGE);
        assert_eq!(
            messages(s.push(b"{\"execute\":\n \"a\"}{\"execute\":\"b\"}\r\n[1,[2]] ")),
            vec!["{\"execute\":\n \"a\"}", "{\"execute\":\"b\"}", "[1,[2]]"]
        );
        // Brackets and quotes inside strings, escaped quotes, a value split across reads.
        assert_eq!(
            messages(s.push(b"{\"a\":\"}]\\\"{\"")),
            Vec::<String>::new()
        );
        assert_eq!(messages(s.push(b"}")), vec!["{\"a\":\"}]\\\"{\"}"]);
        // Bare tokens and stray closers are messages of their own (the parser rejects them).
        assert_eq!(
            messages(s.push(b"garbage 12{}] \"s\"")),
            vec!["garbage", "12", "{}", "]", "\"s\""]
        );
    }

    #[test]
    fn oversized_values_are_skipped_and_counted() {
        let mut s = Splitter::new(16);
        let mut big = b"{\"execute\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'x', 100));
        big.extend(b"\"} {\"execute\":\"ok\"}");
        assert_eq!(
            messages(s.push(&big)),
            vec!["<114 bytes>", "{\"execute\":\"ok\"}"]
        );
        // Exactly at the limit is fine.
        let mut s = Splitter::new(4);
        assert_eq!(messages(s.push(b"[12] [123]")), vec!["[12]", "<5 bytes>"]);
    }

    /// A command set of one command, `ping`, without arguments.
    #[derive(Debug, PartialEq)]
    struct Ping;

    impl ParseCommand for Ping {
        fn parse(name: &str, arguments: Map<String, Value>) -> Result<Ping, QmpError> {
            if name != "ping" {
                return Err(QmpError::command_not_found(name));
            }
            match arguments.keys().next() {
                Some(k) => Err(QmpError::generic(format!("Parameter '{k}' is unexpected"))),
                None => Ok(Ping),
            }
        }
    }

    fn msg(text: &str) -> Frame {
        Frame::Message(text.as_bytes().to_vec())
    }

    #[test]
    fn the_session_hands_commands_to_the_set_it_is_given() {
        let mut s = Session::default();
        let Step::Reply(_) = s.handle::<Ping>(msg(r#"{"execute":"ping"}"#)) else {
            panic!("executed before negotiation");
        };
        s.handle::<Ping>(msg(r#"{"execute":"qmp_capabilities"}"#));
        assert_eq!(
            s.handle::<Ping>(msg(r#"{"execute":"ping","id":2}"#)),
            Step::Execute {
                id: Some(json!(2)),
                command: Ping
            }
        );
        assert_eq!(
            s.handle::<Ping>(msg(r#"{"execute":"pong","id":3}"#)),
            Step::Reply("{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command pong has not been found\"},\"id\":3}\r\n".into())
        );
    }

    #[test]
    fn capabilities_arguments() {
        assert_eq!(check_capabilities(Map::new()), Ok(()));
        assert_eq!(check_capabilities(args(json!({"enable": []}))), Ok(()));
        assert_eq!(
            check_capabilities(args(json!({"enable": ["oob"]})))
                .unwrap_err()
                .desc,
            "Capability 'oob' not available"
        );
        assert_eq!(
            check_capabilities(args(json!({"x": 1}))).unwrap_err().desc,
            "Parameter 'x' is unexpected"
        );
    }

    #[test]
    fn greeting_and_events() {
        let v = Version {
            major: 7,
            minor: 2,
            micro: 0,
            package: "rvmm 0.1.0".into(),
        };
        assert_eq!(
            greeting(&v),
            "{\"QMP\":{\"capabilities\":[],\"version\":{\"package\":\"rvmm 0.1.0\",\"qemu\":{\"major\":7,\"micro\":0,\"minor\":2}}}}\r\n"
        );
        let ours = Version::rvmm();
        assert_eq!((ours.major, ours.minor, ours.micro), (7, 2, 0));
        assert_eq!(ours.package, format!("rvmm {}", env!("CARGO_PKG_VERSION")));
        assert_eq!(qemu_version_text(), "7.2.0");
        let at = UNIX_EPOCH + Duration::from_micros(1_795_310_514_352_094);
        assert_eq!(
            event_line(Event::Resume, at),
            "{\"event\":\"RESUME\",\"timestamp\":{\"microseconds\":352094,\"seconds\":1795310514}}\r\n"
        );
        assert_eq!(
            event_line(Event::Shutdown(ShutdownCause::HostQmpQuit), at),
            "{\"data\":{\"guest\":false,\"reason\":\"host-qmp-quit\"},\"event\":\"SHUTDOWN\",\"timestamp\":{\"microseconds\":352094,\"seconds\":1795310514}}\r\n"
        );
        assert_eq!(
            event_line(Event::Reset(ShutdownCause::GuestReset), at),
            "{\"data\":{\"guest\":true,\"reason\":\"guest-reset\"},\"event\":\"RESET\",\"timestamp\":{\"microseconds\":352094,\"seconds\":1795310514}}\r\n"
        );
        // QEMU 7.2's DEVICE_DELETED and ACPI_DEVICE_OST data; `device` only with an id.
        let data = |e: Event| -> Value {
            let v: Value = serde_json::from_str(&event_line(e, at)).unwrap();
            json!([v["event"], v["data"]])
        };
        assert_eq!(
            data(Event::DeviceDeleted {
                device: Some("cpu2".into()),
                path: "/machine/peripheral/cpu2".into()
            }),
            json!(["DEVICE_DELETED", {"device": "cpu2", "path": "/machine/peripheral/cpu2"}])
        );
        assert_eq!(
            data(Event::DeviceDeleted {
                device: None,
                path: "/machine/peripheral-anon/device[0]".into()
            }),
            json!(["DEVICE_DELETED", {"path": "/machine/peripheral-anon/device[0]"}])
        );
        assert_eq!(
            data(Event::AcpiDeviceOst(AcpiOstInfo {
                device: Some("cpu2".into()),
                slot: "2".into(),
                source: 1,
                status: 0
            })),
            json!(["ACPI_DEVICE_OST", {"info": {"device": "cpu2", "slot": "2", "slot-type": "CPU", "source": 1, "status": 0}}])
        );
        assert_eq!(
            data(Event::AcpiDeviceOst(AcpiOstInfo {
                device: None,
                slot: "3".into(),
                source: 3,
                status: 0x80
            })),
            json!(["ACPI_DEVICE_OST", {"info": {"slot": "3", "slot-type": "CPU", "source": 3, "status": 128}}])
        );
    }
}
