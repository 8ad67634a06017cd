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
//!
//! Resource rules (the constants below), so that no client can hold rvmm's memory, its
//! client slots or its shutdown hostage:
//! - At most [`MAX_CLIENTS`] clients at once. When the table is full, a new client evicts
//!   the oldest client that has not completed capabilities negotiation (a silent or slow
//!   one); if every slot holds a negotiated client, the new one is told "too many QMP
//!   clients" and closed. rvmm's own subcommands negotiate at once, so silent or
//!   half-open connections can never lock them out; only [`MAX_CLIENTS`] clients that
//!   really speak QMP (over a 0600 socket: the same user) can.
//! - A client must complete negotiation within [`NEGOTIATION_TIMEOUT`] of connecting, and
//!   a message, once begun, must end within [`MESSAGE_TIMEOUT`] (slow drip-feeding counts
//!   from the message's first byte); otherwise the client is told why and closed. A
//!   negotiated client idle between messages may stay (libvirt keeps its connection).
//! - Replies and events wait for a client in a queue of at most [`OUTPUT_LIMIT`] bytes (a
//!   message is queued if the queue holds less than that, so one large reply always fits).
//!   A client whose queue is full when another message comes is disconnected, as QEMU
//!   drops a monitor connection it cannot write to; a write that blocks for
//!   [`SEND_TIMEOUT`] disconnects it too. A client's memory is thus bounded by
//!   `OUTPUT_LIMIT` plus one message in and one out.
//! - Shutdown stops accepting, stops reading requests, and gives clients
//!   [`SHUTDOWN_GRACE`] in all to take what is queued for them (the last reply and the
//!   SHUTDOWN event); then it closes every socket, which ends the client threads at once.
//!
//! Thread roles, each entered through one function (where a per-role filter is applied):
//! `accept_loop` (the `qmp-accept` thread), `Client::serve` (`qmp-in-N`) and
//! `client_writer` (`qmp-out-N`).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use thiserror::Error;
use vmm_sys_util::eventfd::EventFd;

use super::commands::Command;
use super::error::QmpError;
use super::qmp::{self, Event, Session, Splitter, Step, Version, MAX_MESSAGE};
use super::socket::{self, BindError};

/// Clients served at once (see the module rules for who gets a slot when it is full).
pub const MAX_CLIENTS: usize = 16;
/// How long a client may take from connecting to completing `qmp_capabilities`.
pub const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one message may take from its first byte to its last.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of replies and events queued for one client before it counts as not reading.
pub const OUTPUT_LIMIT: usize = 1 << 20;
/// How long one write to a client may block.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits, in all, for clients to take what is queued for them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Read size per call.
const READ_CHUNK: usize = 64 * 1024;

/// The server's time and size limits: the constants above, shorter in unit tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub negotiation: Duration,
    pub message: Duration,
    pub output: usize,
    pub shutdown_grace: Duration,
}

impl Limits {
    pub(crate) const DEFAULT: Limits = Limits {
        negotiation: NEGOTIATION_TIMEOUT,
        message: MESSAGE_TIMEOUT,
        output: OUTPUT_LIMIT,
        shutdown_grace: SHUTDOWN_GRACE,
    };
}

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
    /// A request made by another server of this process (the metrics endpoint), with the
    /// channel its answer comes back on.
    pub(crate) fn new(command: Command) -> (Request, Receiver<Result<Value, QmpError>>) {
        let (reply, rx) = mpsc::channel();
        (Request { command, reply }, rx)
    }

    /// Answers the client (who may have gone; that is fine).
    pub fn respond(self, result: Result<Value, QmpError>) {
        let _ = self.reply.send(result);
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `Outbox::push` did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queued {
    Yes,
    /// The queue was closed: the client is going away.
    Closed,
    /// The queue was full: it is now closed and emptied.
    Overflow,
}

#[derive(Debug, Default)]
struct OutState {
    lines: VecDeque<String>,
    bytes: usize,
    closed: bool,
}

/// One client's queue of replies and events, bounded in bytes.
#[derive(Debug)]
struct Outbox {
    state: Mutex<OutState>,
    ready: Condvar,
    limit: usize,
}

impl Outbox {
    fn new(limit: usize) -> Self {
        Outbox {
            state: Mutex::new(OutState::default()),
            ready: Condvar::new(),
            limit,
        }
    }

    /// Queues `line` unless the queue is closed or already holds `limit` bytes.
    fn push(&self, line: String) -> Queued {
        let mut s = lock(&self.state);
        if s.closed {
            return Queued::Closed;
        }
        if s.bytes >= self.limit {
            *s = OutState {
                closed: true,
                ..OutState::default()
            };
            self.ready.notify_all();
            return Queued::Overflow;
        }
        s.bytes += line.len();
        s.lines.push_back(line);
        self.ready.notify_all();
        Queued::Yes
    }

    /// Takes no more messages; the writer ends once the queued ones are sent.
    fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_all();
    }

    /// Takes no more messages and forgets the queued ones.
    fn discard(&self) {
        *lock(&self.state) = OutState {
            closed: true,
            ..OutState::default()
        };
        self.ready.notify_all();
    }

    /// The next message to send, waiting for one; `None` once closed and empty.
    fn next(&self) -> Option<String> {
        let mut s = lock(&self.state);
        loop {
            if let Some(line) = s.lines.pop_front() {
                s.bytes -= line.len();
                return Some(line);
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// One client connection, shared by its two threads and the server.
#[derive(Debug)]
struct Conn {
    id: u64,
    connected: Instant,
    /// In command mode (receives events); un-negotiated clients are the ones evicted.
    negotiated: AtomicBool,
    stream: UnixStream,
    outbox: Outbox,
}

impl Conn {
    /// Queues a message for the client, disconnecting it if its queue is full; whether the
    /// client is still there.
    fn send(&self, line: String) -> bool {
        match self.outbox.push(line) {
            Queued::Yes => true,
            Queued::Closed => false,
            Queued::Overflow => {
                self.disconnect();
                false
            }
        }
    }

    /// Closes the connection now, dropping what is queued: both threads end at once.
    fn disconnect(&self) {
        self.outbox.discard();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Tells the client why it is being closed; the writer sends that, then closes.
    fn hang_up(&self, why: String) {
        self.send(qmp::reply_error(None, &QmpError::generic(why)));
        self.outbox.close();
        let _ = self.stream.shutdown(std::net::Shutdown::Read);
    }
}

/// A client's threads, kept until both have ended (shutdown closes what is still open).
struct ClientThreads {
    conn: Arc<Conn>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl ClientThreads {
    fn finished(&self) -> bool {
        self.reader.is_finished() && self.writer.is_finished()
    }
}

struct Shared {
    /// The clients being served (the ones that count against `MAX_CLIENTS`).
    clients: Mutex<Vec<Arc<Conn>>>,
    threads: Mutex<Vec<ClientThreads>>,
    next_id: AtomicU64,
    version: Version,
    limits: Limits,
}

impl Shared {
    fn remove(&self, id: u64) {
        lock(&self.clients).retain(|c| c.id != id);
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

/// Binds `path` as a 0600 socket, replacing only a stale socket (`socket::bind_private`).
fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let path_text = || path.display().to_string();
    socket::bind_private(path).map_err(|e| match e {
        BindError::NotASocket(kind) => ServerError::NotASocket {
            path: path_text(),
            kind,
        },
        BindError::InUse => ServerError::InUse { path: path_text() },
        BindError::Io(what, error) => ServerError::Io {
            path: path_text(),
            what,
            error,
        },
        BindError::Mode(mode) => ServerError::Mode {
            path: path_text(),
            mode,
        },
    })
}

impl QmpServer {
    /// Binds `path` and starts accepting clients.
    pub fn start(path: &Path, version: Version) -> Result<QmpServer, ServerError> {
        Self::start_with(path, version, Limits::DEFAULT)
    }

    /// `start` with other limits (unit tests use short ones).
    pub(crate) fn start_with(
        path: &Path,
        version: Version,
        limits: Limits,
    ) -> Result<QmpServer, ServerError> {
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
        let eventfd = || EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map(Arc::new);
        let wake = eventfd().map_err(io("eventfd"))?;
        let stop_accept = eventfd().map_err(io("eventfd"))?;
        let shared = Arc::new(Shared {
            clients: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            version,
            limits,
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

    /// Sends an event to every client in command mode, now; a client whose queue is full
    /// is disconnected.
    pub fn emit(&self, event: Event) {
        let text = qmp::event_line(event, SystemTime::now());
        for c in lock(&self.shared.clients)
            .iter()
            .filter(|c| c.negotiated.load(Ordering::SeqCst))
        {
            c.send(text.clone());
        }
    }

    /// Stops accepting, gives clients `SHUTDOWN_GRACE` to receive what is queued for them,
    /// closes them and removes the socket.
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
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        // Each reader ends at its next read (or request) and closes its queue itself: a
        // reply it has in hand (`quit`'s) is still queued, and the writer sends it.
        for t in &threads {
            let _ = t.conn.stream.shutdown(std::net::Shutdown::Read);
        }
        let deadline = Instant::now() + self.shared.limits.shutdown_grace;
        while Instant::now() < deadline && !threads.iter().all(ClientThreads::finished) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Whoever has not taken their messages by now does not get them.
        for t in &threads {
            t.conn.disconnect();
        }
        for t in threads {
            let _ = t.reader.join();
            let _ = t.writer.join();
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

/// Why an accepting thread woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wakeup {
    /// The listener has a client waiting.
    Client,
    /// `stop` was written, or polling failed: the thread ends.
    Stop,
    /// A signal interrupted the wait.
    Retry,
}

/// Waits until listener `listen` has a client or eventfd `stop` is written (the accept
/// loops of the QMP server and the metrics endpoint).
pub(crate) fn wait_for_client(listen: RawFd, stop: RawFd) -> Wakeup {
    let mut fds = [
        libc::pollfd {
            fd: listen,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: fds is a valid array of two pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
    if n < 0 {
        if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            return Wakeup::Retry;
        }
        return Wakeup::Stop;
    }
    if fds[1].revents != 0 {
        return Wakeup::Stop;
    }
    Wakeup::Client
}

/// The `qmp-accept` thread: accepts clients until `stop` is written.
fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    requests: Sender<Request>,
    wake: Arc<EventFd>,
    stop: Arc<EventFd>,
) {
    loop {
        match wait_for_client(listener.as_raw_fd(), stop.as_raw_fd()) {
            Wakeup::Retry => continue,
            Wakeup::Stop => return,
            Wakeup::Client => {}
        }
        let stream = match listener.accept() {
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
        let mut threads = lock(&shared.threads);
        threads.retain(|t| !t.finished());
        if !make_room(&shared) {
            let mut s = stream;
            let e = QmpError::generic(format!(
                "too many QMP clients (at most {MAX_CLIENTS}); try again later"
            ));
            let _ = s.write_all(qmp::reply_error(None, &e).as_bytes());
            continue;
        }
        if let Ok(t) = start_client(stream, &shared, requests.clone(), wake.clone()) {
            threads.push(t);
        }
    }
}

/// Whether a new client may have a slot, evicting the oldest un-negotiated client when the
/// table is full.
fn make_room(shared: &Shared) -> bool {
    let mut clients = lock(&shared.clients);
    if clients.len() < MAX_CLIENTS {
        return true;
    }
    let victim = clients
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.negotiated.load(Ordering::SeqCst))
        .min_by_key(|(_, c)| (c.connected, c.id))
        .map(|(i, _)| i);
    match victim {
        Some(i) => {
            clients.swap_remove(i).disconnect();
            true
        }
        None => false,
    }
}

fn start_client(
    stream: UnixStream,
    shared: &Arc<Shared>,
    requests: Sender<Request>,
    wake: Arc<EventFd>,
) -> std::io::Result<ClientThreads> {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let conn = Arc::new(Conn {
        id,
        connected: Instant::now(),
        negotiated: AtomicBool::new(false),
        stream,
        outbox: Outbox::new(shared.limits.output),
    });
    conn.send(qmp::greeting(&shared.version));
    lock(&shared.clients).push(conn.clone());
    let writer = {
        let conn = conn.clone();
        std::thread::Builder::new()
            .name(format!("qmp-out-{id}"))
            .spawn(move || client_writer(&conn))
    };
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            shared.remove(id);
            return Err(e);
        }
    };
    let client = Client {
        conn: conn.clone(),
        shared: shared.clone(),
        requests,
        wake,
    };
    let reader = std::thread::Builder::new()
        .name(format!("qmp-in-{id}"))
        .spawn(move || client.serve());
    match reader {
        Ok(reader) => Ok(ClientThreads {
            conn,
            reader,
            writer,
        }),
        Err(e) => {
            shared.remove(id);
            conn.disconnect();
            let _ = writer.join();
            Err(e)
        }
    }
}

/// The `qmp-out-N` thread: sends what is queued until the queue is closed and empty or a
/// write fails (or blocks for `SEND_TIMEOUT`), then closes the connection.
fn client_writer(conn: &Conn) {
    while let Some(line) = conn.outbox.next() {
        if (&conn.stream).write_all(line.as_bytes()).is_err() {
            conn.disconnect();
            return;
        }
    }
    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
}

/// Whole seconds as "10 s", anything else in milliseconds.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// One client's reader side.
struct Client {
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    requests: Sender<Request>,
    wake: Arc<EventFd>,
}

impl Client {
    /// The `qmp-in-N` thread: serves the client, then lets the writer finish and frees
    /// the slot.
    fn serve(self) {
        self.read_requests();
        self.conn.outbox.close();
        self.shared.remove(self.conn.id);
    }

    fn read_requests(&self) {
        let mut splitter = Splitter::new(MAX_MESSAGE);
        let mut session = Session::default();
        let mut buf = vec![0u8; READ_CHUNK];
        // When the message being received began.
        let mut message_start: Option<Instant> = None;
        loop {
            if let Err(why) = self.arm_deadline(session.negotiated(), message_start) {
                self.conn.hang_up(why);
                return;
            }
            let n = match (&self.conn.stream).read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(_) => return,
            };
            let frames = splitter.push(&buf[..n]);
            if !frames.is_empty() || message_start.is_none() {
                message_start = splitter.pending().then(Instant::now);
            }
            for frame in frames {
                let line = match session.handle::<Command>(frame) {
                    Step::Reply(line) => line,
                    Step::Execute { id, command } => match self.execute(command) {
                        Some(Ok(v)) => qmp::reply_return(id.as_ref(), v),
                        Some(Err(e)) => qmp::reply_error(id.as_ref(), &e),
                        None => return,
                    },
                };
                self.conn
                    .negotiated
                    .store(session.negotiated(), Ordering::SeqCst);
                if !self.conn.send(line) {
                    return;
                }
            }
        }
    }

    /// Sets the read timeout to the nearest deadline (negotiation, the current message);
    /// the reason to hang up if one has passed.
    fn arm_deadline(&self, negotiated: bool, message_start: Option<Instant>) -> Result<(), String> {
        let limits = self.shared.limits;
        let negotiation = (!negotiated).then(|| {
            (
                self.conn.connected + limits.negotiation,
                format!(
                    "capabilities negotiation was not completed within {}; closing the connection",
                    human(limits.negotiation)
                ),
            )
        });
        let message = message_start.map(|start| {
            (
                start + limits.message,
                format!(
                    "a QMP message did not arrive in full within {}; closing the connection",
                    human(limits.message)
                ),
            )
        });
        let nearest = [negotiation, message]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at);
        let timeout = match nearest {
            None => None,
            Some((at, why)) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(why),
            },
        };
        // SO_RCVTIMEO on a connected socket of ours cannot fail.
        let _ = self.conn.stream.set_read_timeout(timeout);
        Ok(())
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
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
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

    /// A connected client that has read the greeting.
    fn connect(path: &Path) -> (BufReader<UnixStream>, UnixStream) {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("{\"QMP\":"), "{line}");
        (reader, stream)
    }

    fn negotiate(path: &Path) -> (BufReader<UnixStream>, UnixStream) {
        let (mut reader, mut w) = connect(path);
        w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "{\"return\":{}}\r\n");
        (reader, w)
    }

    /// Every line the server still sends, up to the end of the connection.
    fn rest(reader: &mut BufReader<UnixStream>) -> Vec<String> {
        reader.lines().map(|l| l.unwrap()).collect()
    }

    fn clients(server: &QmpServer) -> usize {
        lock(&server.shared.clients).len()
    }

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(30), "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_full_table_evicts_the_oldest_silent_client_never_a_negotiated_one() {
        let path = temp_path("evict");
        let server = QmpServer::start(&path, version()).unwrap();
        let (mut first_negotiated, _w0) = negotiate(&path);
        let mut silent: Vec<_> = (1..MAX_CLIENTS).map(|_| connect(&path)).collect();
        wait_for("a full table", || clients(&server) == MAX_CLIENTS);
        // The newcomer gets in; the oldest silent client is closed, the others stay.
        let (mut newcomer, mut nw) = connect(&path);
        let (mut oldest, _) = silent.remove(0);
        assert_eq!(rest(&mut oldest), Vec::<String>::new());
        nw.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .unwrap();
        let mut line = String::new();
        newcomer.read_line(&mut line).unwrap();
        assert_eq!(line, "{\"return\":{}}\r\n");
        assert_eq!(clients(&server), MAX_CLIENTS);
        // Negotiate every other client: now nobody can be evicted and the next is refused.
        for (r, w) in &mut silent {
            w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
                .unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
        }
        let mut refused = BufReader::new(UnixStream::connect(&path).unwrap());
        assert_eq!(
            rest(&mut refused),
            vec!["{\"error\":{\"class\":\"GenericError\",\"desc\":\"too many QMP clients (at most 16); try again later\"}}"]
        );
        server.emit(Event::Stop);
        line.clear();
        first_negotiated.read_line(&mut line).unwrap();
        assert!(line.contains("\"STOP\""), "{line}");
        server.shutdown();
    }

    fn short_limits() -> Limits {
        Limits {
            negotiation: Duration::from_millis(300),
            message: Duration::from_millis(300),
            ..Limits::DEFAULT
        }
    }

    #[test]
    fn silent_clients_and_slow_messages_are_hung_up_on() {
        let path = temp_path("timeouts");
        let server = QmpServer::start_with(&path, version(), short_limits()).unwrap();
        // Never negotiates, though it keeps sending (whitespace, then garbage).
        let (mut silent, mut sw) = connect(&path);
        sw.write_all(b"\n \n").unwrap();
        let lines = rest(&mut silent);
        assert_eq!(
            lines,
            vec!["{\"error\":{\"class\":\"GenericError\",\"desc\":\"capabilities negotiation was not completed within 300 ms; closing the connection\"}}"]
        );
        // Negotiated, then half a message.
        let (mut half, mut hw) = negotiate(&path);
        hw.write_all(b"{\"execute\":").unwrap();
        assert_eq!(
            rest(&mut half),
            vec!["{\"error\":{\"class\":\"GenericError\",\"desc\":\"a QMP message did not arrive in full within 300 ms; closing the connection\"}}"]
        );
        // Drip-fed: a byte every 50 ms keeps the socket busy but the message never ends.
        let (mut drip, mut dw) = negotiate(&path);
        dw.write_all(b"[").unwrap();
        let dripper = std::thread::spawn(move || {
            for _ in 0..200 {
                if dw.write_all(b"1,").is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        });
        assert_eq!(rest(&mut drip).len(), 1, "the reason, then the end");
        assert!(dripper.join().unwrap(), "the server closed the socket");
        // A negotiated client that is idle between messages stays.
        let (mut idle, mut iw) = negotiate(&path);
        std::thread::sleep(Duration::from_millis(600));
        iw.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .unwrap();
        let mut line = String::new();
        idle.read_line(&mut line).unwrap();
        assert!(line.contains("already complete"), "{line}");
        wait_for("only the idle client left", || clients(&server) == 1);
        server.shutdown();
    }

    #[test]
    fn a_client_that_does_not_read_is_dropped_when_its_queue_is_full() {
        let path = temp_path("overflow");
        let limits = Limits {
            output: 4096,
            ..Limits::DEFAULT
        };
        let server = QmpServer::start_with(&path, version(), limits).unwrap();
        let (mut stuck, _sw) = negotiate(&path);
        // Far more than the socket buffers and the queue hold.
        let sent = 50_000;
        for _ in 0..sent {
            server.emit(Event::Stop);
        }
        wait_for("the stuck client dropped", || clients(&server) == 0);
        let got = rest(&mut stuck).len();
        assert!(got < sent, "{got} events reached a client that was dropped");
        // The server carries on.
        let (mut next, _nw) = negotiate(&path);
        server.emit(Event::Resume);
        let mut line = String::new();
        next.read_line(&mut line).unwrap();
        assert!(line.contains("\"RESUME\""), "{line}");
        server.shutdown();
    }

    #[test]
    fn shutdown_does_not_wait_for_a_client_that_does_not_read() {
        let path = temp_path("stuck");
        let limits = Limits {
            shutdown_grace: Duration::from_millis(100),
            ..Limits::DEFAULT
        };
        let server = QmpServer::start_with(&path, version(), limits).unwrap();
        let (mut stuck, _sw) = negotiate(&path);
        // Enough to fill the socket buffers (the writer blocks) but not the queue.
        let line = qmp::event_line(Event::Stop, SystemTime::now()).len();
        let count = (OUTPUT_LIMIT / 2) / line;
        for _ in 0..count {
            server.emit(Event::Stop);
        }
        server.shutdown();
        let got = rest(&mut stuck).len();
        assert!(got < count, "{got} of {count}: the writer was not blocked");
        assert!(std::fs::symlink_metadata(&path).is_err(), "socket removed");
    }

    #[test]
    fn outbox_bounds() {
        let q = Outbox::new(10);
        assert_eq!(q.push("0123456789ab".into()), Queued::Yes, "one may exceed");
        assert_eq!(q.push("x".into()), Queued::Overflow);
        assert_eq!(q.push("x".into()), Queued::Closed);
        assert_eq!(q.next(), None, "emptied");
        let q = Outbox::new(10);
        q.push("a".into());
        q.push("b".into());
        q.close();
        assert_eq!(q.push("c".into()), Queued::Closed);
        assert_eq!(
            (q.next(), q.next(), q.next()),
            (Some("a".into()), Some("b".into()), None)
        );
    }

    #[test]
    fn a_reply_answered_just_before_shutdown_is_still_sent() {
        // As `quit` does: the VMM thread answers, emits SHUTDOWN and shuts the server down
        // at once, before the client's reader has queued the answer.
        for round in 0..20 {
            let path = temp_path(&format!("quit-{round}"));
            let server = QmpServer::start(&path, version()).unwrap();
            let (mut reader, mut w) = negotiate(&path);
            w.write_all(b"{\"execute\":\"quit\",\"id\":1}\n").unwrap();
            let req = loop {
                if let Some(r) = server.next_request() {
                    break r;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            req.respond(Ok(serde_json::json!({})));
            server.emit(Event::Stop);
            server.shutdown();
            let lines = rest(&mut reader);
            assert!(
                lines.iter().any(|l| l == "{\"id\":1,\"return\":{}}"),
                "round {round}: {lines:?}"
            );
        }
    }
}
