//! The QMP server: a Unix socket, an accept thread, and per client a reader thread (framing,
//! negotiation, one request at a time handed to the VMM thread) and a writer thread (replies
//! and events from a bounded queue, with a send timeout).
//!
//! A client that sends garbage gets error replies; one that sends too much in one message
//! has it skipped and gets an error; one that stops reading, or whose queue overflows, is
//! dropped; one that disconnects mid-request just goes away. None of this reaches the VM or
//! the other clients. The socket is created mode 0600 (umask during bind), never replaces
//! anything that is not a stale socket (a planted symlink or file is an error; `bind` itself
//! never follows a symlink), and is removed at shutdown only if it is still ours.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use thiserror::Error;
use vmm_sys_util::eventfd::EventFd;

use super::commands::Command;
use super::error::QmpError;
use super::qmp::{self, Event, Session, Splitter, Step, Version, MAX_MESSAGE};

/// Clients served at once; more are told so and closed.
pub const MAX_CLIENTS: usize = 16;
/// Lines queued for one client before it counts as stuck and is dropped.
const CLIENT_QUEUE: usize = 256;
/// How long a write to a client may block.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Read size per call.
const READ_CHUNK: usize = 64 * 1024;

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("--qmp: {path} exists and is {kind}, not a socket; refusing to replace it")]
    NotASocket { path: String, kind: &'static str },
    #[error("--qmp: {path}: another process is listening on this socket")]
    InUse { path: String },
    #[error("--qmp: {path}: {what}: {error}")]
    Io {
        path: String,
        what: &'static str,
        error: std::io::Error,
    },
    #[error("--qmp: {path}: after bind the socket has mode {mode:o}, expected 600")]
    Mode { path: String, mode: u32 },
}

/// A command from a client, with the way back.
pub struct Request {
    pub command: Command,
    reply: Sender<Result<Value, QmpError>>,
}

impl Request {
    /// Answers the client (who may have gone; that is fine).
    pub fn respond(self, result: Result<Value, QmpError>) {
        let _ = self.reply.send(result);
    }
}

struct ClientSlot {
    id: u64,
    negotiated: Arc<AtomicBool>,
    out: SyncSender<String>,
    stream: UnixStream,
}

struct Shared {
    clients: Mutex<Vec<ClientSlot>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_id: AtomicU64,
    version: Version,
}

impl Shared {
    fn remove(&self, id: u64) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c| c.id != id);
    }
}

/// A listening QMP server.
pub struct QmpServer {
    path: PathBuf,
    /// (device, inode) of the socket we bound, to remove only our own.
    identity: (u64, u64),
    shared: Arc<Shared>,
    requests: Option<Receiver<Request>>,
    /// Written when a request is queued; the VMM thread polls it.
    wake: Arc<EventFd>,
    stop_accept: Arc<EventFd>,
    acceptor: Option<JoinHandle<()>>,
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Binds `path` as a 0600 socket, replacing only a stale socket.
fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let io = |what: &'static str| {
        move |error| ServerError::Io {
            path: path.display().to_string(),
            what,
            error,
        }
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(ServerError::InUse {
                    path: path.display().to_string(),
                });
            }
            std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
        }
        Ok(meta) => {
            return Err(ServerError::NotASocket {
                path: path.display().to_string(),
                kind: kind_of(&meta),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("lstat")(e)),
    }
    // The umask makes bind create the node as 0600 from the start (the mode of a socket
    // node comes from the umask; fchmod on the socket does not reach it). The process has
    // no other thread creating files while the server starts.
    // SAFETY: umask only swaps the process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(io("bind"))?;
    let meta = std::fs::symlink_metadata(path).map_err(io("lstat after bind"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o600 {
        let _ = std::fs::remove_file(path);
        return Err(ServerError::Mode {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(listener)
}

impl QmpServer {
    /// Binds `path` and starts accepting clients.
    pub fn start(path: &Path, version: Version) -> Result<QmpServer, ServerError> {
        let io = |what: &'static str| {
            move |error| ServerError::Io {
                path: path.display().to_string(),
                what,
                error,
            }
        };
        let listener = bind(path)?;
        let meta = std::fs::symlink_metadata(path).map_err(io("lstat after bind"))?;
        let identity = (meta.dev(), meta.ino());
        listener.set_nonblocking(true).map_err(io("O_NONBLOCK"))?;
        let wake = Arc::new(EventFd::new(libc::EFD_NONBLOCK).map_err(io("eventfd"))?);
        let stop_accept = Arc::new(EventFd::new(libc::EFD_NONBLOCK).map_err(io("eventfd"))?);
        let shared = Arc::new(Shared {
            clients: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            version,
        });
        let (tx, rx) = mpsc::channel();
        let acceptor = {
            let (shared, wake, stop) = (shared.clone(), wake.clone(), stop_accept.clone());
            std::thread::Builder::new()
                .name("qmp-accept".into())
                .spawn(move || {
                    // The client threads it starts inherit this filter.
                    crate::sandbox::apply(crate::sandbox::Role::Control);
                    accept_loop(listener, shared, tx, wake, stop)
                })
                .map_err(io("spawning the accept thread"))?
        };
        Ok(QmpServer {
            path: path.to_path_buf(),
            identity,
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

    /// Sends an event to every client in command mode, now.
    pub fn emit(&self, event: Event) {
        let text = qmp::event_line(event, SystemTime::now());
        let clients = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for c in clients
            .iter()
            .filter(|c| c.negotiated.load(Ordering::SeqCst))
        {
            if let Err(TrySendError::Full(_)) = c.out.try_send(text.clone()) {
                // A client this far behind is not reading: drop it.
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Stops accepting, lets every client receive what is queued for it, closes them and
    /// removes the socket.
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
        for c in self
            .shared
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = c.stream.shutdown(std::net::Shutdown::Read);
        }
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for t in threads {
            let _ = t.join();
        }
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.file_type().is_socket() && (meta.dev(), meta.ino()) == self.identity {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for QmpServer {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.close();
        }
    }
}

fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    requests: Sender<Request>,
    wake: Arc<EventFd>,
    stop: Arc<EventFd>,
) {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) => continue,
        };
        if stream.set_nonblocking(false).is_err()
            || stream.set_write_timeout(Some(SEND_TIMEOUT)).is_err()
        {
            continue;
        }
        let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.retain(|t| !t.is_finished());
        let count = shared
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        if count >= MAX_CLIENTS {
            let mut s = stream;
            let e = QmpError::generic(format!(
                "too many QMP clients (at most {MAX_CLIENTS}); try again later"
            ));
            let _ = s.write_all(qmp::reply_error(None, &e).as_bytes());
            continue;
        }
        if let Ok((r, w)) = start_client(stream, &shared, requests.clone(), wake.clone()) {
            threads.push(r);
            threads.push(w);
        }
    }
}

fn start_client(
    stream: UnixStream,
    shared: &Arc<Shared>,
    requests: Sender<Request>,
    wake: Arc<EventFd>,
) -> std::io::Result<(JoinHandle<()>, JoinHandle<()>)> {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let (out_tx, out_rx) = mpsc::sync_channel::<String>(CLIENT_QUEUE);
    let negotiated = Arc::new(AtomicBool::new(false));
    let writer_stream = stream.try_clone()?;
    let slot_stream = stream.try_clone()?;
    let _ = out_tx.try_send(qmp::greeting(&shared.version));
    shared
        .clients
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(ClientSlot {
            id,
            negotiated: negotiated.clone(),
            out: out_tx.clone(),
            stream: slot_stream,
        });
    let writer = std::thread::Builder::new()
        .name(format!("qmp-out-{id}"))
        .spawn(move || client_writer(writer_stream, out_rx));
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            shared.remove(id);
            return Err(e);
        }
    };
    let reader_shared = shared.clone();
    let reader = std::thread::Builder::new()
        .name(format!("qmp-in-{id}"))
        .spawn(move || {
            let client = Client {
                stream,
                out: out_tx,
                negotiated,
                requests,
                wake,
            };
            client.serve();
            reader_shared.remove(id);
        });
    match reader {
        Ok(r) => Ok((r, writer)),
        Err(e) => {
            shared.remove(id);
            Err(e)
        }
    }
}

fn client_writer(mut stream: UnixStream, queue: Receiver<String>) {
    for line in queue {
        if stream.write_all(line.as_bytes()).is_err() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// One client's reader side.
struct Client {
    stream: UnixStream,
    out: SyncSender<String>,
    negotiated: Arc<AtomicBool>,
    requests: Sender<Request>,
    wake: Arc<EventFd>,
}

impl Client {
    fn serve(mut self) {
        let mut splitter = Splitter::new(MAX_MESSAGE);
        let mut session = Session::default();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            for frame in splitter.push(&buf[..n]) {
                let line = match session.handle::<Command>(frame) {
                    Step::Reply(line) => line,
                    Step::Execute { id, command } => match self.execute(command) {
                        Some(Ok(v)) => qmp::reply_return(id.as_ref(), v),
                        Some(Err(e)) => qmp::reply_error(id.as_ref(), &e),
                        None => return,
                    },
                };
                self.negotiated
                    .store(session.negotiated(), Ordering::SeqCst);
                if self.out.send(line).is_err() {
                    return;
                }
            }
        }
    }

    /// Hands one command to the VMM thread and waits for its answer; `None` when the VMM
    /// is gone.
    fn execute(&self, command: Command) -> Option<Result<Value, QmpError>> {
        let (tx, rx) = mpsc::channel();
        self.requests.send(Request { command, reply: tx }).ok()?;
        let _ = self.wake.write(1);
        rx.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("rvmm-srv-{tag}-{}.qmp", std::process::id()))
    }

    fn version() -> Version {
        Version {
            major: 0,
            minor: 1,
            micro: 0,
            package: "test".into(),
        }
    }

    #[test]
    fn refuses_to_replace_what_is_not_a_stale_socket() {
        let path = temp_path("planted");
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let err = QmpServer::start(&path, version())
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            format!(
                "--qmp: {} exists and is a symbolic link, not a socket; refusing to replace it",
                path.display()
            )
        );
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink(),
            "left alone"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"data").unwrap();
        assert!(QmpServer::start(&path, version()).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn serves_negotiation_and_relays_commands() {
        let path = temp_path("serve");
        let _ = std::fs::remove_file(&path);
        // A stale socket (nobody listening) is replaced.
        drop(UnixListener::bind(&path).unwrap());
        let server = QmpServer::start(&path, version()).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A second server on the same live socket is refused.
        assert!(matches!(
            QmpServer::start(&path, version()),
            Err(ServerError::InUse { .. })
        ));

        let stream = UnixStream::connect(&path).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut w = stream;
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("{\"QMP\":"), "{line}");
        w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-name\",\"id\":9}\n")
            .unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "{\"return\":{}}\r\n");
        // Play the VMM thread.
        let req = loop {
            if let Some(r) = server.next_request() {
                break r;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(
            req.command,
            Command::QueryName(crate::control::commands::query_name::QueryName)
        );
        server.emit(Event::Stop);
        req.respond(Ok(serde_json::json!({"name": "t"})));
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains("\"event\":\"STOP\""), "{line}");
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "{\"id\":9,\"return\":{\"name\":\"t\"}}\r\n");
        server.shutdown();
        line.clear();
        assert_eq!(
            reader.read_line(&mut line).unwrap(),
            0,
            "closed at shutdown"
        );
        assert!(std::fs::symlink_metadata(&path).is_err(), "socket removed");
    }
}
