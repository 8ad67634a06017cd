//! A minimal human monitor (HMP) on a Unix socket, as QEMU's `-monitor unix:PATH,server=on,
//! wait=off`: what Nomad's qemu driver and people with `socat` use. On connect a client gets
//! QEMU 7.2's banner (`QEMU 7.2.0 monitor - type 'help' for more information`) and the
//! `(qemu) ` prompt; each line it sends is echoed (plainly: QEMU's readline redraws the line
//! with terminal escapes as it is typed, rvmm echoes the finished line), run, answered in
//! QEMU's words, and followed by a new prompt. Every `\n` goes out as `\r\n`, as QEMU's.
//!
//! Commands: `system_powerdown`, `quit`|`q`, `stop`|`s`, `cont`|`c`, `info status`, `info cpus`
//! (`* CPU #0: thread_id=TID`, the `*` on the monitor's current CPU, the first), `help`|`?`.
//! Anything else is `unknown command: 'X'`; arguments to a command that takes none are
//! QEMU's "extraneous characters" error. Each command is the QMP command of the same
//! meaning, handed to the VMM thread as a [`Request`] exactly as a QMP client's (the VMM
//! thread polls [`HmpServer::wake_fd`]), so the monitor can do nothing QMP cannot.
//!
//! Several clients at once (at most [`MAX_CLIENTS`]; one more is told so and closed), one
//! thread each (`hmp-N`); a line is at most [`MAX_LINE`] bytes (a longer one is dropped with
//! an error). A client going away never stops the VM. The socket is created mode 0600, never
//! replaces anything but a stale socket, and is removed at shutdown if it is still ours.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};
use thiserror::Error;
use vmm_sys_util::eventfd::EventFd;

use super::commands::{self, Command};
use super::error::QmpError;
use super::qmp::qemu_version_text;
use super::server::{wait_for_client, Request, Wakeup};
use super::socket::{self, BindError};

/// Clients served at once.
pub const MAX_CLIENTS: usize = 8;
/// The longest command line, in bytes.
pub const MAX_LINE: usize = 4096;
/// How long one write to a client may block before it is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// The prompt QEMU prints.
pub const PROMPT: &str = "(qemu) ";

/// Why the monitor could not start, or what is wrong with its option.
#[derive(Debug, Error)]
pub enum HmpError {
    #[error(
        "--monitor {value}: expected unix:PATH[,server=on][,wait=off] (the only monitor rvmm \
         offers is a listening Unix socket)"
    )]
    Syntax { value: String },
    #[error(
        "--monitor {value}: option '{option}' is not supported (rvmm listens: server=on, \
         wait=off)"
    )]
    Option { value: String, option: String },
    #[error("--monitor: {path} exists and is {kind}, not a socket; refusing to replace it")]
    NotASocket { path: String, kind: &'static str },
    #[error("--monitor: {path}: another process is listening on this socket")]
    InUse { path: String },
    #[error("--monitor: {path}: after bind the socket has mode {mode:o}, expected 600")]
    Mode { path: String, mode: u32 },
    #[error("--monitor: {path}: {what}: {error}")]
    Io {
        path: String,
        what: &'static str,
        error: std::io::Error,
    },
}

/// `unix:PATH[,server=on|server][,wait=off|nowait]` (QEMU's spellings, old and new): the path.
pub fn parse_monitor_option(value: &str) -> Result<PathBuf, HmpError> {
    let syntax = || HmpError::Syntax {
        value: value.to_string(),
    };
    let rest = value.strip_prefix("unix:").ok_or_else(syntax)?;
    let mut parts = rest.split(',');
    let path = parts.next().unwrap_or_default();
    if path.is_empty() {
        return Err(syntax());
    }
    for option in parts {
        if !matches!(option, "server" | "server=on" | "wait=off" | "nowait") {
            return Err(HmpError::Option {
                value: value.to_string(),
                option: option.to_string(),
            });
        }
    }
    Ok(PathBuf::from(path))
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct ClientSlot {
    stream: UnixStream,
    thread: JoinHandle<()>,
}

struct Shared {
    clients: Mutex<Vec<ClientSlot>>,
    next_id: AtomicU64,
    requests: Mutex<Sender<Request>>,
    wake: Arc<EventFd>,
}

/// A listening monitor.
pub struct HmpServer {
    path: PathBuf,
    identity: (u64, u64),
    shared: Arc<Shared>,
    requests: Option<Receiver<Request>>,
    wake: Arc<EventFd>,
    stop_accept: Arc<EventFd>,
    acceptor: Option<JoinHandle<()>>,
}

/// Binds `path` as a 0600 socket, replacing only a stale socket (`socket::bind_private`).
fn bind(path: &Path) -> Result<UnixListener, HmpError> {
    let path_text = || path.display().to_string();
    socket::bind_private(path).map_err(|e| match e {
        BindError::NotASocket(kind) => HmpError::NotASocket {
            path: path_text(),
            kind,
        },
        BindError::InUse => HmpError::InUse { path: path_text() },
        BindError::Io(what, error) => HmpError::Io {
            path: path_text(),
            what,
            error,
        },
        BindError::Mode(mode) => HmpError::Mode {
            path: path_text(),
            mode,
        },
    })
}

impl HmpServer {
    /// Binds `path` and starts accepting clients.
    pub fn start(path: &Path) -> Result<HmpServer, HmpError> {
        let io = |what: &'static str| {
            move |error| HmpError::Io {
                path: path.display().to_string(),
                what,
                error,
            }
        };
        let listener = bind(path)?;
        let meta = std::fs::symlink_metadata(path).map_err(io("lstat after bind"))?;
        listener.set_nonblocking(true).map_err(io("O_NONBLOCK"))?;
        let eventfd = || EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map(Arc::new);
        let wake = eventfd().map_err(io("eventfd"))?;
        let stop_accept = eventfd().map_err(io("eventfd"))?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            clients: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            requests: Mutex::new(tx),
            wake: wake.clone(),
        });
        let acceptor = {
            let (shared, stop) = (shared.clone(), stop_accept.clone());
            std::thread::Builder::new()
                .name("hmp-accept".into())
                .spawn(move || {
                    // The client threads it starts inherit this filter.
                    crate::sandbox::apply(crate::sandbox::Role::Control);
                    accept_loop(listener, shared, stop)
                })
                .map_err(io("spawning the accept thread"))?
        };
        Ok(HmpServer {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            shared,
            requests: Some(rx),
            wake,
            stop_accept,
            acceptor: Some(acceptor),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Readable when requests wait; poll it, then call `next_request` until it is empty.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// The next queued request, if any.
    pub fn next_request(&self) -> Option<Request> {
        let _ = self.wake.read();
        self.requests.as_ref()?.try_recv().ok()
    }

    /// Stops accepting, closes every client and removes the socket.
    pub fn shutdown(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let _ = self.stop_accept.write(1);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        // Requests still queued are dropped: their clients see the reply channel close.
        self.requests = None;
        let clients = std::mem::take(&mut *lock(&self.shared.clients));
        for c in &clients {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        for c in clients {
            let _ = c.thread.join();
        }
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.file_type().is_socket() && (meta.dev(), meta.ino()) == self.identity {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for HmpServer {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.close();
        }
    }
}

/// The `hmp-accept` thread: accepts clients until `stop` is written.
fn accept_loop(listener: UnixListener, shared: Arc<Shared>, stop: Arc<EventFd>) {
    loop {
        match wait_for_client(listener.as_raw_fd(), stop.as_raw_fd()) {
            Wakeup::Retry => continue,
            Wakeup::Stop => return,
            Wakeup::Client => {}
        }
        let mut stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors or memory: the listener stays readable, so do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err()
            || stream.set_write_timeout(Some(SEND_TIMEOUT)).is_err()
        {
            continue;
        }
        let mut clients = lock(&shared.clients);
        clients.retain(|c| !c.thread.is_finished());
        if clients.len() >= MAX_CLIENTS {
            let _ = stream.write_all(
                format!("too many monitor clients (at most {MAX_CLIENTS}); try again later\r\n")
                    .as_bytes(),
            );
            continue;
        }
        let Ok(kept) = stream.try_clone() else {
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let client = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("hmp-{id}"))
            .spawn(move || serve(stream, &client));
        if let Ok(thread) = thread {
            clients.push(ClientSlot {
                stream: kept,
                thread,
            });
        }
    }
}

/// QEMU's monitor output: every `\n` as `\r\n`.
fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

/// The `hmp-N` thread: banner, then a line at a time until the client goes away. A client
/// that writes its command and hangs up at once (Nomad's stop) still has it run: output
/// that cannot be written is dropped, input is read to its end.
fn serve(mut stream: UnixStream, shared: &Shared) {
    let banner = format!(
        "QEMU {} monitor - type 'help' for more information\n",
        qemu_version_text()
    );
    let mut writable = stream
        .write_all(format!("{}{PROMPT}", crlf(&banner)).as_bytes())
        .is_ok();
    let mut pending: Vec<u8> = Vec::new();
    let mut overlong = false;
    // The last byte was a '\r' ending a line: a '\n' right after it ends nothing.
    let mut after_cr = false;
    let mut buf = [0u8; 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b != b'\n' && b != b'\r' {
                after_cr = false;
                if pending.len() < MAX_LINE {
                    pending.push(b);
                } else {
                    overlong = true;
                }
                continue;
            }
            let pair = b == b'\n' && after_cr;
            after_cr = b == b'\r';
            if pair {
                continue;
            }
            let line = String::from_utf8_lossy(&pending).into_owned();
            pending.clear();
            let answer = if std::mem::take(&mut overlong) {
                format!("line too long (at most {MAX_LINE} bytes)\n")
            } else {
                run_line(line.trim(), shared)
            };
            let quit = answer == QUIT;
            let text = if quit {
                format!("{}\r\n", line.trim_end())
            } else {
                format!("{}\r\n{}{PROMPT}", line.trim_end(), crlf(&answer))
            };
            if writable {
                writable = stream.write_all(text.as_bytes()).is_ok();
            }
            if quit {
                return;
            }
        }
    }
}

/// What `quit` answers: the connection closes as QEMU ends.
const QUIT: &str = "\u{0}quit";

/// The help text: the commands rvmm's monitor has, in QEMU's words.
const HELP: &str = "cont|c  -- resume emulation
help|? [cmd] -- show the help
info [subcommand] -- show various information about the system state
quit|q  -- quit the emulator
stop|s  -- stop emulation
system_powerdown  -- send system power down event
";

const INFO_HELP: &str = "info cpus  -- show infos for each CPU
info status  -- show the current VM status (running|paused)
";

/// One command line's answer (without the prompt).
fn run_line(line: &str, shared: &Shared) -> String {
    let (name, args) = match line.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (line, ""),
    };
    let no_args = |full: &str, qmp: &str| -> String {
        if !args.is_empty() {
            return format!(
                "{full}: extraneous characters at the end of line\nTry \"help {name}\" for more information\n"
            );
        }
        match execute(shared, qmp) {
            Ok(_) => String::new(),
            Err(e) => e,
        }
    };
    match name {
        "" => String::new(),
        "help" | "?" => HELP.to_string(),
        "system_powerdown" => no_args("system_powerdown", "system_powerdown"),
        "stop" | "s" => no_args("stop|s", "stop"),
        "cont" | "c" => no_args("cont|c", "cont"),
        "quit" | "q" => {
            let answer = no_args("quit|q", "quit");
            if answer.is_empty() {
                QUIT.to_string()
            } else {
                answer
            }
        }
        "info" => info(args, shared),
        _ => format!("unknown command: '{name}'\n"),
    }
}

fn info(args: &str, shared: &Shared) -> String {
    let (sub, rest) = match args.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r.trim()),
        None => (args, ""),
    };
    let reply = match sub {
        "" => return INFO_HELP.to_string(),
        "status" | "cpus" if !rest.is_empty() => {
            return format!(
                "info {sub}: extraneous characters at the end of line\nTry \"help info {sub}\" for more information\n"
            )
        }
        "status" => execute(shared, "query-status").map(|v| format_status(&v)),
        "cpus" => execute(shared, "query-cpus-fast").map(|v| format_cpus(&v)),
        _ => return format!("unknown command: 'info {sub}'\n"),
    };
    reply.unwrap_or_else(|e| e)
}

/// QEMU 7.2's `info status`: `VM status: running`, `paused`, or `paused (STATE)` for a
/// stopped VM in another state than `paused`.
pub fn format_status(status: &Value) -> String {
    let running = status["running"].as_bool().unwrap_or(false);
    let state = status["status"].as_str().unwrap_or("");
    let mut s = format!("VM status: {}", if running { "running" } else { "paused" });
    if status["singlestep"].as_bool() == Some(true) {
        s.push_str(" (single step mode)");
    }
    if !running && state != "paused" && !state.is_empty() {
        s.push_str(&format!(" ({state})"));
    }
    s.push('\n');
    s
}

/// QEMU 7.2's `info cpus`: one line per vCPU, `*` on the monitor's current CPU (the first,
/// as in a fresh QEMU monitor).
pub fn format_cpus(cpus: &Value) -> String {
    let list = cpus.as_array().cloned().unwrap_or_default();
    let current = list
        .iter()
        .filter_map(|c| c["cpu-index"].as_i64())
        .min()
        .unwrap_or(0);
    let mut s = String::new();
    for c in &list {
        let index = c["cpu-index"].as_i64().unwrap_or(0);
        let mark = if index == current { '*' } else { ' ' };
        s.push_str(&format!(
            "{mark} CPU #{index}: thread_id={}\n",
            c["thread-id"].as_i64().unwrap_or(0)
        ));
    }
    s
}

/// Runs QMP command `name` (no arguments) on the VMM thread; its reply, or the error line
/// QEMU's HMP prints.
fn execute(shared: &Shared, name: &str) -> Result<Value, String> {
    let command: Command =
        commands::parse(name, Map::new()).map_err(|e| format!("Error: {}\n", e.desc))?;
    let (request, reply) = Request::new(command);
    lock(&shared.requests)
        .send(request)
        .map_err(|_| "Error: the VM is shutting down\n".to_string())?;
    let _ = shared.wake.write(1);
    match reply.recv() {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(QmpError { desc, .. })) => Err(format!("Error: {desc}\n")),
        Err(_) => Err("Error: the VM is shutting down\n".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn monitor_option() {
        for ok in [
            "unix:/tmp/m",
            "unix:/tmp/m,server=on,wait=off",
            "unix:/tmp/m,server,nowait",
        ] {
            assert_eq!(parse_monitor_option(ok).unwrap(), PathBuf::from("/tmp/m"));
        }
        assert!(parse_monitor_option("stdio")
            .unwrap_err()
            .to_string()
            .contains("expected unix:PATH"));
        assert!(parse_monitor_option("unix:")
            .unwrap_err()
            .to_string()
            .contains("expected unix:PATH"));
        assert_eq!(
            parse_monitor_option("unix:/m,server=off")
                .unwrap_err()
                .to_string(),
            "--monitor unix:/m,server=off: option 'server=off' is not supported (rvmm listens: \
             server=on, wait=off)"
        );
    }

    /// A real socket, with this thread standing in for the VMM thread.
    #[test]
    fn serves_lines_over_a_socket() {
        let path = std::env::temp_dir().join(format!("rvmm-hmp-unit-{}", std::process::id()));
        let server = HmpServer::start(&path).unwrap();
        let mut c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut read_until = |c: &mut UnixStream, prompts: usize| {
            let mut b = [0u8; 1];
            while String::from_utf8_lossy(&got).matches(PROMPT).count() < prompts {
                assert_eq!(c.read(&mut b).unwrap(), 1);
                got.push(b[0]);
            }
            String::from_utf8_lossy(&got).into_owned()
        };
        assert_eq!(
            read_until(&mut c, 1),
            "QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) "
        );
        // A terminal's "\r\n" ends one line; the second pair is an empty line.
        c.write_all(b"info status\r\n\r\n").unwrap();
        // Answer the one request as the VMM thread would.
        let mut polls = 0;
        let request = loop {
            if let Some(r) = server.next_request() {
                break r;
            }
            polls += 1;
            assert!(polls < 1000, "no request");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(request.command.name(), "query-status");
        request.respond(Ok(
            json!({"running": false, "status": "paused", "singlestep": false}),
        ));
        let text = read_until(&mut c, 3);
        assert!(
            text.ends_with("(qemu) info status\r\nVM status: paused\r\n(qemu) \r\n(qemu) "),
            "{text:?}"
        );
        c.write_all(&vec![b'x'; MAX_LINE + 10]).unwrap();
        c.write_all(b"\n").unwrap();
        assert!(read_until(&mut c, 4).contains("line too long"));
        server.shutdown();
        assert!(!path.exists());
    }

    #[test]
    fn status_and_cpus_as_qemu_prints_them() {
        assert_eq!(
            format_status(&json!({"running": true, "status": "running", "singlestep": false})),
            "VM status: running\n"
        );
        assert_eq!(
            format_status(&json!({"running": false, "status": "paused", "singlestep": false})),
            "VM status: paused\n"
        );
        assert_eq!(
            format_status(&json!({"running": false, "status": "shutdown", "singlestep": false})),
            "VM status: paused (shutdown)\n"
        );
        assert_eq!(
            format_cpus(&json!([
                {"cpu-index": 0, "thread-id": 17068},
                {"cpu-index": 1, "thread-id": 17069}
            ])),
            "* CPU #0: thread_id=17068\n  CPU #1: thread_id=17069\n"
        );
        assert_eq!(crlf("a\nb\n"), "a\r\nb\r\n");
    }
}
