//! The `--metrics` endpoint: Prometheus's text exposition format over a minimal HTTP/1.1
//! server on TCP or a Unix socket, one connection at a time, on one thread (`metrics`).
//!
//! `GET /metrics` (a query string is ignored) answers 200 with the VM's figures in
//! exposition format 0.0.4 ([`crate::monitor::prometheus`]); another path gets 404,
//! another method 405 (`Allow: GET`), a malformed request 400, a request head over
//! [`MAX_REQUEST`] bytes 431, one that does not arrive in full within [`READ_TIMEOUT`]
//! 408; every answer closes the connection (after a lingering close of at most 0.5 s). A client that does not read its answer is
//! dropped after [`WRITE_TIMEOUT`]. So a silent or slow client holds the endpoint for at
//! most those times and never holds the VM.
//!
//! The figures are the same [`StatsReport`] a QMP client's `__org.rvmm_stats` gets: the
//! serving thread hands the command to the VMM thread through a [`Request`] exactly as a
//! QMP client thread does (the VMM thread polls [`MetricsServer::wake_fd`]) and waits up to
//! [`REPORT_TIMEOUT`] for the answer (503 otherwise); nothing reads KVM from here.
//!
//! The listener is bound on the main thread before the sandbox applies; the `metrics`
//! thread applies the Control role's filter as its first act. A Unix socket is created
//! mode 0600, never replaces anything but a stale socket, and is removed at shutdown if it
//! is still ours.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use vmm_sys_util::eventfd::EventFd;

use super::commands::stats::StatsQuery;
use super::commands::Command;
use super::server::{wait_for_client, Request, Wakeup};
use super::socket::{self, BindError};
use crate::config::metrics::MetricsAddress;
use crate::monitor::prometheus;
use crate::monitor::sample::StatsReport;

/// The largest request head (request line and headers) read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// How long a request head may take to arrive, from the connection's start.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the answer may take to be taken by the client.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the VMM thread may take to answer for the figures.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long, and how many bytes, the close after an answer waits for the client's end.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 64 * 1024;
/// Socket reads and writes wait at most this long at a time, so shutdown is noticed.
const SLICE: Duration = Duration::from_millis(100);

/// Why the endpoint could not start.
#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("--metrics: {address}: the address is already in use (another process listens there)")]
    InUse { address: String },
    #[error("--metrics: {address}: {what}: {error}")]
    Io {
        address: String,
        what: &'static str,
        error: std::io::Error,
    },
    #[error(
        "--metrics: {address}: the path exists and is {kind}, not a socket; refusing to replace it"
    )]
    NotASocket { address: String, kind: &'static str },
    #[error("--metrics: {address}: after bind the socket has mode {mode:o}, expected 600")]
    Mode { address: String, mode: u32 },
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Stream::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }

    fn close(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Listener {
    fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }

    fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }
}

/// A listening metrics endpoint.
pub struct MetricsServer {
    address: MetricsAddress,
    /// (device, inode) of the Unix socket we bound, to remove only our own.
    identity: Option<(u64, u64)>,
    requests: Option<Receiver<Request>>,
    wake: Arc<EventFd>,
    stop: Arc<EventFd>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Binds `path` as a 0600 socket, replacing only a stale socket.
fn bind_unix(path: &Path, address: &str) -> Result<UnixListener, MetricsError> {
    let address = || address.to_string();
    socket::bind_private(path).map_err(|e| match e {
        BindError::NotASocket(kind) => MetricsError::NotASocket {
            address: address(),
            kind,
        },
        BindError::InUse => MetricsError::InUse { address: address() },
        BindError::Io(what, error) => MetricsError::Io {
            address: address(),
            what,
            error,
        },
        BindError::Mode(mode) => MetricsError::Mode {
            address: address(),
            mode,
        },
    })
}

impl MetricsServer {
    /// Binds `address` and starts serving.
    pub fn start(address: &MetricsAddress) -> Result<MetricsServer, MetricsError> {
        let text = address.to_string();
        let io = |what: &'static str| {
            let text = text.clone();
            move |error| MetricsError::Io {
                address: text,
                what,
                error,
            }
        };
        let (listener, identity) = match address {
            MetricsAddress::Tcp(a) => {
                let l = TcpListener::bind(a).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AddrInUse {
                        MetricsError::InUse {
                            address: text.clone(),
                        }
                    } else {
                        io("bind")(e)
                    }
                })?;
                (Listener::Tcp(l), None)
            }
            MetricsAddress::Unix(p) => {
                let l = bind_unix(p, &text)?;
                let meta = std::fs::symlink_metadata(p).map_err(io("lstat after bind"))?;
                (Listener::Unix(l), Some((meta.dev(), meta.ino())))
            }
        };
        let eventfd = || EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map(Arc::new);
        let wake = eventfd().map_err(io("eventfd"))?;
        let stop = eventfd().map_err(io("eventfd"))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let serving = Serving {
            requests: Mutex::new(tx),
            wake: wake.clone(),
            stopping: stopping.clone(),
        };
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || {
                    crate::sandbox::apply(crate::sandbox::Role::Control);
                    serving.accept_loop(&listener, &stop);
                })
                .map_err(io("spawning the metrics thread"))?
        };
        Ok(MetricsServer {
            address: address.clone(),
            identity,
            requests: Some(rx),
            wake,
            stop,
            stopping,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn address(&self) -> &MetricsAddress {
        &self.address
    }

    /// Readable when a request waits; poll it, then call `next_request` until it is empty.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// The next queued request, if any.
    pub fn next_request(&self) -> Option<Request> {
        let _ = self.wake.read();
        self.requests.as_ref()?.try_recv().ok()
    }

    /// Stops serving (a scrape in progress gets 503 or is closed), joins the thread and
    /// removes the Unix socket if it is still ours.
    pub fn shutdown(mut self) {
        self.close();
    }

    fn close(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.write(1);
        // Queued requests are dropped: their waiter sees its reply channel close.
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let (MetricsAddress::Unix(path), Some(identity)) = (&self.address, self.identity) {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() && (meta.dev(), meta.ino()) == identity {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.close();
        }
    }
}

/// The `metrics` thread's side.
struct Serving {
    requests: Mutex<Sender<Request>>,
    wake: Arc<EventFd>,
    stopping: Arc<AtomicBool>,
}

/// An HTTP answer: status line, extra headers, content type and body.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: &'static str,
    headers: &'static str,
    content_type: &'static str,
    body: String,
}

impl Answer {
    fn text(status: &'static str, body: impl Into<String>) -> Answer {
        Answer {
            status,
            headers: "",
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n{}",
            self.status,
            self.content_type,
            self.body.len(),
            self.headers,
            self.body
        )
        .into_bytes()
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Answer(Answer),
}

/// Routes a complete request head (everything before the blank line).
fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::Answer(Answer::text("400 Bad Request", "request is not text\n"));
    };
    let line = head.lines().next().unwrap_or("");
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Route::Answer(Answer::text(
            "400 Bad Request",
            "expected a request line METHOD TARGET HTTP/1.x\n",
        ));
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Route::Answer(Answer::text(
            "505 HTTP Version Not Supported",
            "only HTTP/1.0 and HTTP/1.1 are served\n",
        ));
    }
    if method != "GET" {
        return Route::Answer(Answer {
            headers: "Allow: GET\r\n",
            ..Answer::text("405 Method Not Allowed", "only GET is served\n")
        });
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Route::Answer(Answer::text(
            "404 Not Found",
            "the metrics are at /metrics\n",
        ));
    }
    Route::Metrics
}

/// Where the blank line that ends a request head starts, and its length.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

impl Serving {
    fn accept_loop(&self, listener: &Listener, stop: &EventFd) {
        loop {
            match wait_for_client(listener.fd(), stop.as_raw_fd()) {
                Wakeup::Retry => continue,
                Wakeup::Stop => return,
                Wakeup::Client if self.stopping.load(Ordering::SeqCst) => return,
                Wakeup::Client => {}
            }
            match listener.accept() {
                Ok(stream) => self.serve(stream),
                // Out of descriptors or memory: the listener stays readable, so do not spin.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Serves one connection: one request, one answer, close.
    fn serve(&self, mut stream: Stream) {
        if stream.set_timeouts(SLICE).is_err() {
            stream.close();
            return;
        }
        let answer = match self.read_head(&mut stream) {
            Ok(head) => match route(&head) {
                Route::Metrics => self.metrics(),
                Route::Answer(a) => a,
            },
            Err(Some(a)) => a,
            Err(None) => {
                stream.close();
                return;
            }
        };
        self.write_all(&mut stream, &answer.bytes());
        self.linger(&mut stream);
        stream.close();
    }

    /// A lingering close: ends our side, then reads and drops what the client still sends
    /// (the rest of an oversized request) until it closes, for at most [`LINGER`] and
    /// [`LINGER_BYTES`]. Closing with unread input would reset the connection, and the
    /// client could lose the answer.
    fn linger(&self, stream: &mut Stream) {
        stream.shutdown_write();
        let deadline = Instant::now() + LINGER;
        let mut left = LINGER_BYTES;
        let mut chunk = [0u8; 4096];
        while left > 0 && Instant::now() < deadline && !self.stopping.load(Ordering::SeqCst) {
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => left = left.saturating_sub(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        }
    }

    /// The request head; `Err(Some)` the answer when it is too large, late or cut short,
    /// `Err(None)` when there is nobody to answer.
    fn read_head(&self, stream: &mut Stream) -> Result<Vec<u8>, Option<Answer>> {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = head_end(&buf) {
                buf.truncate(end);
                return Ok(buf);
            }
            if buf.len() > MAX_REQUEST {
                return Err(Some(Answer::text(
                    "431 Request Header Fields Too Large",
                    format!("the request head is over {MAX_REQUEST} bytes\n"),
                )));
            }
            if self.stopping.load(Ordering::SeqCst) {
                return Err(None);
            }
            if Instant::now() >= deadline {
                return Err(Some(Answer::text(
                    "408 Request Timeout",
                    format!(
                        "the request did not arrive in full within {} s\n",
                        READ_TIMEOUT.as_secs()
                    ),
                )));
            }
            match stream.read(&mut chunk) {
                Ok(0) if buf.is_empty() => return Err(None),
                Ok(0) => {
                    return Err(Some(Answer::text(
                        "400 Bad Request",
                        "the connection ended inside the request head\n",
                    )))
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Err(None),
            }
        }
    }

    /// Writes `bytes` within [`WRITE_TIMEOUT`], or gives up on the client.
    fn write_all(&self, stream: &mut Stream, mut bytes: &[u8]) {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        while !bytes.is_empty() {
            if Instant::now() >= deadline || self.stopping.load(Ordering::SeqCst) {
                return;
            }
            match stream.write(bytes) {
                Ok(0) => return,
                Ok(n) => bytes = &bytes[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        }
    }

    /// The figures from the VMM thread, rendered; 503 when it does not answer.
    fn metrics(&self) -> Answer {
        let unavailable = |why: String| Answer::text("503 Service Unavailable", why + "\n");
        let (request, reply) = Request::new(Command::Stats(StatsQuery { vcpu: None }));
        let sent = self
            .requests
            .lock()
            .map(|tx| tx.send(request).is_ok())
            .unwrap_or(false);
        if !sent {
            return unavailable("the VM is shutting down".into());
        }
        let _ = self.wake.write(1);
        let value = match reply.recv_timeout(REPORT_TIMEOUT) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return unavailable(format!("the VM did not give its figures: {e}")),
            Err(RecvTimeoutError::Timeout) => {
                return unavailable(format!(
                    "the VM did not give its figures within {} s",
                    REPORT_TIMEOUT.as_secs()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return unavailable("the VM is shutting down".into())
            }
        };
        match serde_json::from_value::<StatsReport>(value) {
            Ok(report) => Answer {
                status: "200 OK",
                headers: "",
                content_type: prometheus::CONTENT_TYPE,
                body: prometheus::render(&report),
            },
            Err(e) => unavailable(format!("the VM's figures did not decode: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::sample::{example_kvm_stats, StatsReport};

    fn status(route: Route) -> String {
        match route {
            Route::Metrics => "metrics".into(),
            Route::Answer(a) => a.status.to_string(),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(
            status(route(b"GET /metrics HTTP/1.1\r\nHost: x")),
            "metrics"
        );
        assert_eq!(status(route(b"GET /metrics?x=1 HTTP/1.0")), "metrics");
        assert_eq!(status(route(b"GET / HTTP/1.1")), "404 Not Found");
        assert_eq!(
            status(route(b"POST /metrics HTTP/1.1")),
            "405 Method Not Allowed"
        );
        assert_eq!(status(route(b"GET /metrics")), "400 Bad Request");
        assert_eq!(status(route(b"\xff\xfe")), "400 Bad Request");
        assert_eq!(
            status(route(b"GET /metrics HTTP/2.0")),
            "505 HTTP Version Not Supported"
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    fn temp_path(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rvmm-metrics-{tag}-{}.sock", std::process::id()))
    }

    /// One HTTP exchange over a Unix socket.
    fn exchange(path: &Path, request: &[u8]) -> String {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn fake_report() -> StatsReport {
        StatsReport {
            name: Some("t".into()),
            pid: 1,
            time_ns: 1,
            host_cpus: 2,
            vm: example_kvm_stats(3),
            kvm_error: None,
            vcpus: Vec::new(),
            emulator: Vec::new(),
            host_nodes: Vec::new(),
        }
    }

    #[test]
    fn serves_the_vmm_threads_report_and_refuses_the_rest() {
        let path = temp_path("serve");
        let _ = std::fs::remove_file(&path);
        let address = MetricsAddress::Unix(path.clone());
        let server = MetricsServer::start(&address).unwrap();
        assert!(matches!(
            MetricsServer::start(&address),
            Err(MetricsError::InUse { .. })
        ));
        // The clients on another thread; this one plays the VMM thread.
        let clients = std::thread::spawn({
            let path = path.clone();
            move || {
                let ok = exchange(&path, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
                let other = exchange(&path, b"GET /x HTTP/1.1\r\n\r\n");
                let huge = exchange(&path, &vec![b'a'; 3 * MAX_REQUEST]);
                (ok, other, huge)
            }
        });
        while !clients.is_finished() {
            if let Some(r) = server.next_request() {
                assert_eq!(r.command, Command::Stats(StatsQuery { vcpu: None }));
                r.respond(Ok(serde_json::to_value(fake_report()).unwrap()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let (ok, other, huge) = clients.join().unwrap();
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(ok.contains("\r\n\r\n# HELP rvmm_vm_vcpus "), "{ok}");
        assert!(ok.contains("rvmm_vm_kvm_exits_total{vm=\"t\"} 3\n"), "{ok}");
        assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
        assert!(huge.starts_with("HTTP/1.1 431 "), "{huge}");
        // Nobody plays the VMM thread now and shutdown drops the queue: 503, not a hang.
        let late = std::thread::spawn({
            let path = path.clone();
            move || exchange(&path, b"GET /metrics HTTP/1.1\r\n\r\n")
        });
        while server
            .requests
            .as_ref()
            .unwrap()
            .try_recv()
            .map(drop)
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let answer = late.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        server.shutdown();
        assert!(std::fs::symlink_metadata(&path).is_err(), "socket removed");
    }

    #[test]
    fn refuses_to_replace_a_file_and_reports_a_busy_port() {
        let path = temp_path("planted");
        std::fs::write(&path, b"data").unwrap();
        let err = MetricsServer::start(&MetricsAddress::Unix(path.clone()))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            format!(
                "--metrics: unix:{}: the path exists and is a regular file, not a socket; refusing to replace it",
                path.display()
            )
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(&path).unwrap();
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = MetricsAddress::Tcp(taken.local_addr().unwrap());
        let err = MetricsServer::start(&address).err().unwrap().to_string();
        assert_eq!(
            err,
            format!("--metrics: {address}: the address is already in use (another process listens there)")
        );
    }
}
