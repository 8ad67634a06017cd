//! A small synchronous QMP client, for rvmm's own subcommands (`vcpupin`, `vcpuinfo`, `qmp`,
//! ...): connect, read the greeting, negotiate, then execute commands one at a time,
//! skipping events and matching replies by `id`. `request` sends a command's typed
//! arguments and reads the reply into its reply type (`control::commands::*`), so both ends
//! share one definition. A reply line is read up to [`MAX_REPLY`] bytes, so a socket that
//! is not rvmm's cannot make the client allocate without bound. Events read while waiting
//! for a reply are kept (the last [`MAX_EVENTS`]) for `take_events`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::commands::ClientRequest;
use thiserror::Error;

/// How long to wait for any one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest message accepted from the server, in bytes (rvmm's largest reply,
/// `query-cpu-definitions`, is well under 1 MiB).
pub const MAX_REPLY: u64 = 64 << 20;
/// How many unread events the client keeps (the oldest are dropped first).
pub const MAX_EVENTS: usize = 1024;

/// Client failures.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "cannot connect to {path}: {error} (is a VM running with this --name or --qmp socket?)"
    )]
    Connect {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: the server closed the connection")]
    Closed { path: PathBuf },
    #[error("{path}: not a QMP reply: {detail}")]
    Protocol { path: PathBuf, detail: String },
    /// The server answered with an error.
    #[error("{desc}")]
    Qmp { class: String, desc: String },
}

/// A connected, negotiated QMP session.
pub struct QmpClient {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// The server's greeting.
    pub greeting: Value,
    next_id: u64,
    /// Events read while waiting for replies, oldest first.
    events: VecDeque<Value>,
}

impl QmpClient {
    /// Connects to `path` and negotiates capabilities.
    pub fn connect(path: &Path) -> Result<QmpClient, ClientError> {
        let stream = UnixStream::connect(path).map_err(|error| ClientError::Connect {
            path: path.to_path_buf(),
            error,
        })?;
        let io = |error| ClientError::Io {
            path: path.to_path_buf(),
            error,
        };
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut client = QmpClient {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            greeting: Value::Null,
            next_id: 1,
            events: VecDeque::new(),
        };
        client.greeting = client.read_message()?;
        if client.greeting.get("QMP").is_none() {
            return Err(ClientError::Protocol {
                path: client.path.clone(),
                detail: format!("expected a greeting, got {}", client.greeting),
            });
        }
        client.execute("qmp_capabilities", None)?;
        Ok(client)
    }

    fn read_message(&mut self) -> Result<Value, ClientError> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY)
            .read_until(b'\n', &mut line)
            .map_err(|error| ClientError::Io {
                path: self.path.clone(),
                error,
            })?;
        if n == 0 {
            return Err(ClientError::Closed {
                path: self.path.clone(),
            });
        }
        if !line.ends_with(b"\n") && n as u64 == MAX_REPLY {
            return Err(ClientError::Protocol {
                path: self.path.clone(),
                detail: format!("a message longer than {MAX_REPLY} bytes"),
            });
        }
        serde_json::from_slice(&line).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            detail: format!("{e}: {}", String::from_utf8_lossy(&line).trim_end()),
        })
    }

    /// Sends a raw request line and returns the first reply (`return` or `error` object,
    /// whole); events on the way are kept for [`QmpClient::take_events`].
    pub fn raw(&mut self, text: &str) -> Result<Value, ClientError> {
        let mut data = text.trim_end().as_bytes().to_vec();
        data.push(b'\n');
        self.writer
            .write_all(&data)
            .map_err(|error| ClientError::Io {
                path: self.path.clone(),
                error,
            })?;
        loop {
            let msg = self.read_message()?;
            if msg.get("event").is_none() {
                return Ok(msg);
            }
            if self.events.len() == MAX_EVENTS {
                self.events.pop_front();
            }
            self.events.push_back(msg);
        }
    }

    /// The events read so far while waiting for replies, oldest first.
    pub fn take_events(&mut self) -> Vec<Value> {
        self.events.drain(..).collect()
    }

    /// Executes `command` and returns its `return` value, or its error.
    pub fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, ClientError> {
        let id = format!("rvmm-{}", self.next_id);
        self.next_id += 1;
        let mut request = json!({"execute": command, "id": id});
        if let Some(a) = arguments {
            request["arguments"] = a;
        }
        let reply = self.raw(&request.to_string())?;
        if reply.get("id") != Some(&Value::String(id)) {
            return Err(ClientError::Protocol {
                path: self.path.clone(),
                detail: format!("reply without our id: {reply}"),
            });
        }
        if let Some(ret) = reply.get("return") {
            return Ok(ret.clone());
        }
        let error = reply.get("error").cloned().unwrap_or_default();
        Err(ClientError::Qmp {
            class: error["class"]
                .as_str()
                .unwrap_or("GenericError")
                .to_string(),
            desc: error["desc"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string(),
        })
    }

    /// Executes `command` and reads its `return` value as `R` (the command's reply type).
    pub fn call<R: DeserializeOwned>(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<R, ClientError> {
        let value = self.execute(command, arguments)?;
        serde_json::from_value(value).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            detail: format!("{command}: unexpected reply: {e}"),
        })
    }

    /// Sends `request` and reads its reply.
    pub fn request<R: ClientRequest>(&mut self, request: &R) -> Result<R::Reply, ClientError> {
        let arguments = serde_json::to_value(request).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            detail: format!("{}: arguments: {e}", R::NAME),
        })?;
        self.call(R::NAME, Some(arguments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A server that sends `greeting` and nothing else.
    fn serve_once(tag: &str, greeting: Vec<u8>) -> (PathBuf, std::thread::JoinHandle<()>) {
        let path = std::env::temp_dir().join(format!("rvmm-cl-{tag}-{}.qmp", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = s.write_all(&greeting);
        });
        (path, server)
    }

    #[test]
    fn an_endless_line_from_the_server_is_refused() {
        let len = usize::try_from(MAX_REPLY).unwrap() + 16;
        let (path, server) = serve_once("endless", vec![b' '; len]);
        let err = QmpClient::connect(&path).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "{}: not a QMP reply: a message longer than 67108864 bytes",
                path.display()
            )
        );
        drop(server);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn events_before_a_reply_are_kept_for_take_events() {
        let path = std::env::temp_dir().join(format!("rvmm-cl-events-{}.qmp", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"{\"QMP\": {}}\r\n").unwrap();
            let mut line = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            let mut out = Vec::new();
            for n in 0..MAX_EVENTS + 2 {
                out.extend(format!("{{\"event\": \"E\", \"data\": {{\"n\": {n}}}}}\r\n").bytes());
            }
            out.extend(b"{\"return\": {}, \"id\": \"rvmm-1\"}\r\n");
            s.write_all(&out).unwrap();
        });
        let mut client = QmpClient::connect(&path).unwrap();
        let events = client.take_events();
        // The oldest two were dropped.
        assert_eq!(events.len(), MAX_EVENTS);
        assert_eq!(events[0], json!({"event": "E", "data": {"n": 2}}));
        assert!(client.take_events().is_empty());
        server.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_greeting_that_is_not_json_is_refused() {
        let (path, server) = serve_once("garbage", b"\xff\xfe\r\n".to_vec());
        let err = QmpClient::connect(&path).err().unwrap().to_string();
        assert!(
            err.starts_with(&format!("{}: not a QMP reply: ", path.display())),
            "{err}"
        );
        server.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }
}
