//! A small synchronous QMP client, for rvmm's own subcommands (`vcpupin`, `vcpuinfo`, `qmp`,
//! ...): connect, read the greeting, negotiate, then execute commands one at a time,
//! skipping events and matching replies by `id`. `request` sends a command's typed
//! arguments and reads the reply into its reply type (`control::commands::*`), so both ends
//! share one definition.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::commands::ClientRequest;
use thiserror::Error;

/// How long to wait for any one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

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
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|error| ClientError::Io {
                path: self.path.clone(),
                error,
            })?;
        if n == 0 {
            return Err(ClientError::Closed {
                path: self.path.clone(),
            });
        }
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            detail: format!("{e}: {}", line.trim_end()),
        })
    }

    /// Sends a raw request line and returns the first reply (`return` or `error` object,
    /// whole), skipping events.
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
        }
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
