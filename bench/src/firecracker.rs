//! Firecracker beside rvmm and QEMU in benchmark 11 (snapshot and restore), when a
//! Firecracker binary is given (`--firecracker PATH` or `RVMM_BENCH_FIRECRACKER`).
//!
//! Firecracker is driven through its REST API on a unix socket (`--api-sock`), with the
//! small HTTP/1.1 client below: `PUT /boot-source` (the probe ELF, which Firecracker boots
//! through its PVH note, and `mode=counter` as the command line), `PUT /machine-config`,
//! `PUT /actions {InstanceStart}`; once both vCPUs reported, `PATCH /vm {Paused}` and the
//! timed `PUT /snapshot/create {Full}` (from sending the request to its response). The
//! restore is a new process, timed from spawning it to the response of `PUT /snapshot/load`
//! with `resume_vm: true` (the guest runs again when it answers); a `PROBE-COUNTER ... sum=ok`
//! line from every vCPU must follow. Its log goes to a file, so its stdout is the serial port.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The environment variable naming the Firecracker binary when `--firecracker` is absent.
pub const ENV: &str = "RVMM_BENCH_FIRECRACKER";
/// What the report says when no binary was given.
pub const NOT_GIVEN: &str = "Firecracker: not measured (no binary given)";

/// One keep-alive HTTP/1.1 connection to Firecracker's API socket.
struct Api {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

/// The status and body of an HTTP response.
#[derive(Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Reads one HTTP/1.1 response (status line, headers, a `Content-Length` body) from `r`.
pub fn read_response(r: &mut impl BufRead) -> Result<Response, String> {
    let mut line = String::new();
    if r.read_line(&mut line)
        .map_err(|e| format!("API: reading: {e}"))?
        == 0
    {
        return Err("API: the connection closed".into());
    }
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("API: not an HTTP/1.1 status line: {:?}", line.trim_end()))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line)
            .map_err(|e| format!("API: reading: {e}"))?
            == 0
        {
            return Err("API: the connection closed inside the headers".into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("API: bad Content-Length: {header:?}"))?;
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)
        .map_err(|e| format!("API: reading the body: {e}"))?;
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The bytes of a request with a JSON body.
pub fn request_bytes(method: &str, path: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl Api {
    /// Connects, retrying until `limit` (the socket appears once Firecracker is up).
    fn connect(socket: &Path, limit: Duration) -> Result<Api, String> {
        let deadline = Instant::now() + limit;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("API: connecting to {}: {e}", socket.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        stream
            .set_read_timeout(Some(limit))
            .map_err(|e| format!("API: {e}"))?;
        let w = stream.try_clone().map_err(|e| format!("API: {e}"))?;
        Ok(Api {
            w,
            r: BufReader::new(stream),
        })
    }

    /// Sends `method path` with `body`; a status other than 2xx is an error with the body.
    fn call(&mut self, method: &str, path: &str, body: Value) -> Result<String, String> {
        self.w
            .write_all(&request_bytes(method, path, &body))
            .map_err(|e| format!("API: sending {method} {path}: {e}"))?;
        let r = read_response(&mut self.r)?;
        if !(200..300).contains(&r.status) {
            return Err(format!("{method} {path}: {} {}", r.status, r.body.trim()));
        }
        Ok(r.body)
    }
}

/// The first line of `firecracker --version` (e.g. `Firecracker v1.16.1`); a program that
/// does not answer so is not Firecracker.
pub fn version(binary: &Path) -> Result<String, String> {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --version failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default().trim();
    if !first.starts_with("Firecracker v") {
        return Err(format!(
            "{} --version said {first:?}, not `Firecracker vX.Y.Z`",
            binary.display()
        ));
    }
    Ok(first.to_string())
}

/// A Firecracker process with its API socket and serial lines.
pub struct Instance {
    child: Child,
    api: Api,
    pub lines: std::sync::mpsc::Receiver<(Duration, String)>,
}

impl Instance {
    /// Starts `binary` with its API at `socket` and its log (warnings and worse) in `log`,
    /// then connects to the API.
    pub fn start(
        binary: &Path,
        socket: &Path,
        log: &Path,
        limit: Duration,
    ) -> Result<Instance, String> {
        let _ = std::fs::remove_file(socket);
        // Firecracker opens the log file; it does not create it.
        std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(binary)
            .arg("--api-sock")
            .arg(socket)
            .arg("--log-path")
            .arg(log)
            .args(["--level", "Warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let lines = crate::vnet::line_reader(&mut child, Instant::now());
        match Api::connect(socket, limit) {
            Ok(api) => Ok(Instance { child, api, lines }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// Boots `kernel` with `boot_args`, `vcpus` and `mem_mib`.
    pub fn boot(
        &mut self,
        kernel: &Path,
        boot_args: &str,
        vcpus: u32,
        mem_mib: u64,
    ) -> Result<(), String> {
        self.api.call(
            "PUT",
            "/boot-source",
            json!({"kernel_image_path": kernel, "boot_args": boot_args}),
        )?;
        self.api.call(
            "PUT",
            "/machine-config",
            json!({"vcpu_count": vcpus, "mem_size_mib": mem_mib}),
        )?;
        self.api
            .call("PUT", "/actions", json!({"action_type": "InstanceStart"}))?;
        Ok(())
    }

    /// Pauses the VM.
    pub fn pause(&mut self) -> Result<(), String> {
        self.api
            .call("PATCH", "/vm", json!({"state": "Paused"}))
            .map(drop)
    }

    /// A full snapshot: the state into `state`, the guest memory into `memory`.
    pub fn snapshot(&mut self, state: &Path, memory: &Path) -> Result<(), String> {
        self.api
            .call(
                "PUT",
                "/snapshot/create",
                json!({"snapshot_type": "Full", "snapshot_path": state, "mem_file_path": memory}),
            )
            .map(drop)
    }

    /// Loads a snapshot (memory from the file) and resumes it.
    pub fn load(&mut self, state: &Path, memory: &Path) -> Result<(), String> {
        self.api
            .call(
                "PUT",
                "/snapshot/load",
                json!({
                    "snapshot_path": state,
                    "mem_backend": {"backend_type": "File", "backend_path": memory},
                    "resume_vm": true
                }),
            )
            .map(drop)
    }

    /// Kills and reaps the process.
    pub fn end(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary to measure: `--firecracker`, else `RVMM_BENCH_FIRECRACKER` when set and not
/// empty.
pub fn binary(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        std::env::var_os(ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_responses() {
        let mut r: &[u8] = b"HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\nHTTP/1.1 400 \r\nContent-Type: application/json\r\nContent-Length: 23\r\n\r\n{\"fault_message\":\"no\"}\n";
        assert_eq!(
            read_response(&mut r).unwrap(),
            Response {
                status: 204,
                body: String::new()
            }
        );
        assert_eq!(
            read_response(&mut r).unwrap(),
            Response {
                status: 400,
                body: "{\"fault_message\":\"no\"}\n".into()
            }
        );
        assert!(read_response(&mut r).is_err());
        let mut bad: &[u8] = b"SSH-2.0-x\r\n\r\n";
        assert!(read_response(&mut bad).is_err());
    }

    #[test]
    fn writes_requests() {
        let b = request_bytes("PATCH", "/vm", &json!({"state": "Paused"}));
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "PATCH /vm HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"state\":\"Paused\"}"
        );
    }
}
