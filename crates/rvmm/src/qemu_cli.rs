//! The QEMU personality: invoked as `qemu-system-x86_64` (a symlink to rvmm), rvmm reads
//! QEMU's single-dash command line, so tools that launch QEMU with a fixed command line
//! (Nomad's qemu task driver) launch rvmm unchanged. Each option QEMU has and rvmm supports
//! becomes the `rvmm run` flag of the same meaning (the values keep QEMU's grammar there:
//! `-smp`, `-cpu`, `-numa`, `-m` go through unchanged); the result is parsed by the same
//! clap definition `rvmm run` uses, so the VM is configured exactly as `rvmm run` would.
//! Every other option is refused by name (`-OPTION: rvmm does not emulate this option`),
//! never ignored. `-daemonize` and `-pidfile` are handled here, around the run.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use thiserror::Error;

use crate::cli::{Cli, Command};
use crate::output::{errln, outln, set_sigpipe, SigPipe};

/// The name this personality answers to.
pub const PROGRAM: &str = "qemu-system-x86_64";

/// What is wrong with a QEMU command line.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QemuCliError {
    #[error("-{0}: rvmm does not emulate this option")]
    Unsupported(String),
    #[error("-{0}: requires an argument")]
    MissingArgument(String),
    #[error("{0}: a bare disk image is not supported; use -drive file={0},if=virtio")]
    Positional(String),
    #[error(
        "-{option} {value}: accel={accel}: rvmm is KVM-only (no TCG or other accelerator); \
         use accel=kvm"
    )]
    Accel {
        option: &'static str,
        value: String,
        accel: String,
    },
    #[error("-machine {value}: type={machine}: rvmm emulates pc and microvm (one machine)")]
    Machine { value: String, machine: String },
    #[error("-{option} {value}: {why}")]
    Value {
        option: &'static str,
        value: String,
        why: String,
    },
    #[error("-device {0}: rvmm does not emulate this device")]
    Device(String),
    #[error("-device {device}: drive={id}: no -drive with id={id}")]
    NoDrive { device: String, id: String },
    #[error("-drive id={0}: no -device uses this drive (if=none needs -device virtio-blk-device,drive={0})")]
    UnusedDrive(String),
    #[error("-{0} cannot be used with -daemonize")]
    Daemonize(&'static str),
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `-version` / `--version`.
    Version,
    /// `-h` / `-help` / `--help`.
    Help,
    /// Run a VM: the `rvmm run` arguments, and what happens around the run.
    Run {
        rvmm_args: Vec<String>,
        daemonize: bool,
        pidfile: Option<PathBuf>,
        /// `-serial none`: the guest's console goes nowhere (stdout is /dev/null).
        serial_none: bool,
    },
}

/// Whether argv[0] names the QEMU personality (its base name).
pub fn invoked_as_qemu(argv0: &OsString) -> bool {
    Path::new(argv0).file_name().and_then(|n| n.to_str()) == Some(PROGRAM)
}

/// `QEMU emulator version 7.2.0 (rvmm X.Y.Z)` and a line about rvmm, as `--version` prints.
pub fn version_text() -> String {
    format!(
        "QEMU emulator version {} (rvmm {v})\nrvmm {v}: a KVM VMM speaking QEMU's command line\n",
        vmm::control::qmp::qemu_version_text(),
        v = env!("CARGO_PKG_VERSION")
    )
}

const HELP: &str = "usage: qemu-system-x86_64 [options]  (rvmm's QEMU personality)

Accepted options (anything else is refused by name):
-machine|-M [type=]pc|microvm[,accel=kvm][,pit=on|off]
-enable-kvm | -accel kvm
-name [guest=]NAME[,debug-threads=on|off]
-m [size=]SIZE   -smp SPEC   -cpu MODEL   -numa SPEC
-kernel FILE   -initrd FILE   -append CMDLINE
-nographic   -serial stdio|mon:stdio|none   -display none   -vga none
-nodefaults   -no-user-config   -no-reboot
-qmp unix:PATH,server=on,wait=off   -monitor unix:PATH,server=on,wait=off
-drive file=F,if=virtio|none[,id=ID][,format=raw][,readonly=on|off][,cache=writeback]
-device virtio-blk-device|virtio-blk-pci,drive=ID[,serial=S]
-daemonize   -pidfile FILE   -version   -h
See docs/orchestrators.md.
";

/// Options that take an argument.
const WITH_ARGUMENT: &[&str] = &[
    "machine", "M", "accel", "name", "m", "smp", "cpu", "numa", "kernel", "initrd", "append",
    "serial", "display", "vga", "qmp", "monitor", "drive", "device", "netdev", "pidfile",
];

/// `key=value,...` with an optional leading bare value (QEMU's "implied" key).
fn key_values<'a>(
    text: &'a str,
    implied: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    text.split(',')
        .enumerate()
        .map(move |(i, item)| match item.split_once('=') {
            Some((k, v)) => (k, v),
            None if i == 0 => (implied, item),
            None => (item, "on"),
        })
}

/// A `-drive` waiting for its `-device` (if=none) or already a disk (if=virtio).
#[derive(Debug)]
struct Drive {
    id: Option<String>,
    disk: String,
    used: bool,
}

/// A `-netdev tap`.
#[derive(Debug)]
struct Netdev {
    id: String,
    backend: String,
}

#[derive(Debug, Default)]
struct State {
    args: Vec<String>,
    machine: Vec<String>,
    drives: Vec<Drive>,
    netdevs: Vec<Netdev>,
    nets: Vec<String>,
    daemonize: bool,
    pidfile: Option<PathBuf>,
    serial_none: bool,
    /// The option that puts something on stdio (refused with -daemonize).
    stdio: Option<&'static str>,
}

fn value_err(option: &'static str, value: &str, why: impl Into<String>) -> QemuCliError {
    QemuCliError::Value {
        option,
        value: value.to_string(),
        why: why.into(),
    }
}

impl State {
    fn push(&mut self, flag: &str, value: &str) {
        self.args.push(flag.to_string());
        self.args.push(value.to_string());
    }

    fn machine(&mut self, value: &str) -> Result<(), QemuCliError> {
        for (key, v) in key_values(value, "type") {
            match key {
                "type" => {
                    if !matches!(v, "pc" | "microvm") {
                        return Err(QemuCliError::Machine {
                            value: value.to_string(),
                            machine: v.to_string(),
                        });
                    }
                }
                "accel" => check_accel("machine", value, v)?,
                _ => self.machine.push(format!("{key}={v}")),
            }
        }
        Ok(())
    }

    fn drive(&mut self, value: &str) -> Result<(), QemuCliError> {
        let (mut file, mut interface, mut id, mut readonly) = (None, None, None, None);
        for (key, v) in key_values(value, "file") {
            match key {
                "file" => file = Some(v),
                "if" => interface = Some(v),
                "id" => id = Some(v.to_string()),
                "readonly" => match v {
                    "on" | "off" => readonly = Some(v),
                    _ => return Err(value_err("drive", value, "readonly= is on or off")),
                },
                "format" if v == "raw" => {}
                "format" => {
                    return Err(value_err(
                        "drive",
                        value,
                        format!("format={v}: rvmm reads raw images only"),
                    ))
                }
                "cache" if v == "writeback" => {}
                "cache" => {
                    return Err(value_err(
                        "drive",
                        value,
                        format!(
                            "cache={v}: rvmm's disks use the host page cache and honour flushes \
                             (cache=writeback) only"
                        ),
                    ))
                }
                "media" if v == "disk" => {}
                _ => {
                    return Err(value_err(
                        "drive",
                        value,
                        format!("{key}={v}: rvmm does not emulate this property"),
                    ))
                }
            }
        }
        let file = file
            .filter(|f| !f.is_empty())
            .ok_or_else(|| value_err("drive", value, "file= is required"))?;
        if !value.split(',').any(|kv| kv.starts_with("format=")) {
            // QEMU's own warning when it probes an image's format.
            errln!(
                "{PROGRAM}: warning: Image format was not specified for '{file}' and probing \
                 guessed raw."
            );
        }
        let mut disk = format!("path={file}");
        if readonly == Some("on") {
            disk.push_str(",readonly=on");
        }
        match interface {
            Some("virtio") => {
                self.drives.push(Drive {
                    id,
                    disk: disk.clone(),
                    used: true,
                });
                self.push("--disk", &disk);
            }
            Some("none") => {
                let id = id.ok_or_else(|| value_err("drive", value, "if=none needs id="))?;
                self.drives.push(Drive {
                    id: Some(id),
                    disk,
                    used: false,
                });
            }
            Some(other) => {
                return Err(value_err(
                    "drive",
                    value,
                    format!(
                        "if={other}: rvmm's disks are virtio (if=virtio, or if=none with -device)"
                    ),
                ))
            }
            None => {
                return Err(value_err(
                    "drive",
                    value,
                    "if= is required: rvmm's disks are virtio (if=virtio)",
                ))
            }
        }
        Ok(())
    }

    fn device(&mut self, value: &str) -> Result<(), QemuCliError> {
        let driver = value.split(',').next().unwrap_or_default();
        let props: Vec<(&str, &str)> = key_values(value, "driver").skip(1).collect();
        let prop = |name: &str| props.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let unknown = |allowed: &[&str]| {
            props
                .iter()
                .find(|(k, _)| !allowed.contains(k))
                .map(|(k, v)| {
                    value_err(
                        "device",
                        value,
                        format!("{k}={v}: rvmm does not emulate this property"),
                    )
                })
        };
        match driver {
            "virtio-blk-device" | "virtio-blk-pci" => {
                if let Some(e) = unknown(&["drive", "serial", "id"]) {
                    return Err(e);
                }
                let id = prop("drive")
                    .ok_or_else(|| value_err("device", value, "drive= is required"))?;
                let drive = self
                    .drives
                    .iter_mut()
                    .find(|d| d.id.as_deref() == Some(id) && !d.used)
                    .ok_or_else(|| QemuCliError::NoDrive {
                        device: value.to_string(),
                        id: id.to_string(),
                    })?;
                drive.used = true;
                let mut disk = drive.disk.clone();
                if let Some(serial) = prop("serial") {
                    disk.push_str(&format!(",serial={serial}"));
                }
                self.push("--disk", &disk);
                Ok(())
            }
            "virtio-net-device" | "virtio-net-pci" => {
                if let Some(e) = unknown(&["netdev", "mac", "id"]) {
                    return Err(e);
                }
                let id = prop("netdev")
                    .ok_or_else(|| value_err("device", value, "netdev= is required"))?;
                let netdev = self.netdevs.iter().find(|n| n.id == id).ok_or_else(|| {
                    value_err(
                        "device",
                        value,
                        format!("netdev={id}: no -netdev with id={id}"),
                    )
                })?;
                let mut net = netdev.backend.clone();
                if let Some(mac) = prop("mac") {
                    net.push_str(&format!(",mac={mac}"));
                }
                self.nets.push(net);
                Ok(())
            }
            "virtio-balloon-device" | "virtio-balloon-pci" => {
                if let Some(e) = unknown(&["id", "deflate-on-oom", "free-page-reporting"]) {
                    return Err(e);
                }
                let mut balloon = "on".to_string();
                for key in ["deflate-on-oom", "free-page-reporting"] {
                    match prop(key) {
                        None => {}
                        Some(v @ ("on" | "off")) => balloon.push_str(&format!(",{key}={v}")),
                        Some(v) => {
                            return Err(value_err(
                                "device",
                                value,
                                format!("{key}={v}: expected on or off"),
                            ))
                        }
                    }
                }
                self.push("--balloon", &balloon);
                Ok(())
            }
            _ => Err(QemuCliError::Device(driver.to_string())),
        }
    }

    /// `-netdev tap,id=ID,ifname=NAME[,script=no,downscript=no,vhost=off]` or
    /// `-netdev tap,id=ID,fd=N[,vnet_hdr=on]` (a tap the launcher opened): kept for its
    /// `-device virtio-net-*`, which becomes `--net tap=NAME[,mac=MAC]` or
    /// `--net fd=N[,mac=MAC]`.
    fn netdev(&mut self, value: &str) -> Result<(), QemuCliError> {
        let (mut id, mut backend) = (None, None);
        for (key, v) in key_values(value, "type") {
            match (key, v) {
                ("type", "tap") => {}
                ("id", _) => id = Some(v.to_string()),
                ("ifname" | "fd", _) => {
                    let name = if key == "ifname" { "tap" } else { "fd" };
                    if backend.replace(format!("{name}={v}")).is_some() {
                        return Err(value_err(
                            "netdev",
                            value,
                            "give one of ifname=NAME and fd=N",
                        ));
                    }
                }
                // rvmm's taps always carry the vnet header (an fd= tap is checked for it).
                ("script" | "downscript", "no") | ("vhost", "off") | ("vnet_hdr", "on") => {}
                _ => {
                    return Err(value_err(
                        "netdev",
                        value,
                        format!("{key}={v}: rvmm's networking is tap,ifname=NAME or tap,fd=N only"),
                    ))
                }
            }
        }
        let id = id.ok_or_else(|| value_err("netdev", value, "id= is required"))?;
        let backend =
            backend.ok_or_else(|| value_err("netdev", value, "ifname=NAME or fd=N is required"))?;
        self.netdevs.push(Netdev { id, backend });
        Ok(())
    }
}

fn check_accel(option: &'static str, value: &str, accel: &str) -> Result<(), QemuCliError> {
    // QEMU's accel=kvm:tcg tries KVM first: that is what rvmm does, without the fallback.
    if accel.split(':').next() == Some("kvm") {
        return Ok(());
    }
    Err(QemuCliError::Accel {
        option,
        value: value.to_string(),
        accel: accel.to_string(),
    })
}

/// Parses QEMU's command line (without argv[0]).
pub fn parse(argv: &[String]) -> Result<Invocation, QemuCliError> {
    let mut s = State::default();
    let mut i = 0;
    while i < argv.len() {
        let raw = &argv[i];
        i += 1;
        let Some(option) = raw.strip_prefix("--").or_else(|| raw.strip_prefix('-')) else {
            return Err(QemuCliError::Positional(raw.clone()));
        };
        let value = if WITH_ARGUMENT.contains(&option) {
            let v = argv
                .get(i)
                .ok_or_else(|| QemuCliError::MissingArgument(option.to_string()))?;
            i += 1;
            v.as_str()
        } else {
            ""
        };
        match option {
            "version" => return Ok(Invocation::Version),
            "h" | "help" => return Ok(Invocation::Help),
            "machine" | "M" => s.machine(value)?,
            "accel" => {
                let mut parts = value.split(',');
                check_accel("accel", value, parts.next().unwrap_or_default())?;
                if let Some(extra) = parts.next() {
                    return Err(value_err(
                        "accel",
                        value,
                        format!("{extra}: rvmm does not emulate this property"),
                    ));
                }
            }
            "enable-kvm" | "nodefaults" | "no-user-config" | "no-reboot" => {}
            "nographic" => s.stdio = Some("nographic"),
            "name" => {
                let mut name = None;
                for (key, v) in key_values(value, "guest") {
                    match key {
                        "guest" => name = Some(v),
                        // rvmm names its threads (CPU N/KVM) anyway.
                        "debug-threads" if matches!(v, "on" | "off") => {}
                        _ => {
                            return Err(value_err(
                                "name",
                                value,
                                format!("{key}={v}: rvmm does not emulate this property"),
                            ))
                        }
                    }
                }
                if let Some(n) = name {
                    s.push("--name", n);
                }
            }
            "m" => s.push("-m", value.strip_prefix("size=").unwrap_or(value)),
            "smp" => s.push("--smp", value),
            "cpu" => s.push("--cpu", value),
            "numa" => s.push("--numa", value),
            "kernel" => s.push("--kernel", value),
            "initrd" => s.push("--initrd", value),
            "append" => s.push("--append", value),
            "serial" => match value {
                "stdio" | "mon:stdio" => s.stdio = Some("serial stdio"),
                "none" | "null" => s.serial_none = true,
                _ => {
                    return Err(value_err(
                        "serial",
                        value,
                        "rvmm's COM1 is stdio (or none); no other backends",
                    ))
                }
            },
            "display" | "vga" => {
                if value != "none" {
                    return Err(value_err(
                        option_static(option),
                        value,
                        "rvmm has no display: none only",
                    ));
                }
            }
            "qmp" => {
                if value.split(',').any(|o| o == "server=off") {
                    return Err(value_err(
                        "qmp",
                        value,
                        "server=off: rvmm only listens (server=on)",
                    ));
                }
                s.push("--qmp", value);
            }
            "monitor" => match value {
                "none" => {}
                v if v.starts_with("unix:") => {
                    if v.split(',').any(|o| o == "server=off") {
                        return Err(value_err(
                            "monitor",
                            value,
                            "server=off: rvmm only listens (server=on)",
                        ));
                    }
                    s.push("--monitor", v);
                }
                _ => {
                    return Err(value_err(
                        "monitor",
                        value,
                        "rvmm's monitor is a Unix socket: unix:PATH,server=on,wait=off",
                    ))
                }
            },
            "drive" => s.drive(value)?,
            "device" => s.device(value)?,
            "netdev" => s.netdev(value)?,
            "daemonize" => s.daemonize = true,
            "pidfile" => s.pidfile = Some(PathBuf::from(value)),
            other => return Err(QemuCliError::Unsupported(other.to_string())),
        }
    }
    if let Some(d) = s.drives.iter().find(|d| !d.used) {
        return Err(QemuCliError::UnusedDrive(d.id.clone().unwrap_or_default()));
    }
    if s.daemonize {
        if let Some(what) = s.stdio {
            return Err(QemuCliError::Daemonize(what));
        }
    }
    if !s.machine.is_empty() {
        let m = s.machine.join(",");
        s.push("--machine", &m);
    }
    for net in std::mem::take(&mut s.nets) {
        s.push("--net", &net);
    }
    Ok(Invocation::Run {
        rvmm_args: s.args,
        daemonize: s.daemonize,
        pidfile: s.pidfile,
        serial_none: s.serial_none,
    })
}

/// The option names used in messages need a static lifetime.
fn option_static(option: &str) -> &'static str {
    if option == "vga" {
        "vga"
    } else {
        "display"
    }
}

/// The pidfile, removed when the VM ends (if it is still ours: same content).
struct PidFile {
    path: PathBuf,
    content: String,
}

impl PidFile {
    fn write(path: &Path) -> anyhow::Result<PidFile> {
        let content = format!("{}\n", std::process::id());
        std::fs::write(path, &content)
            .map_err(|e| anyhow::anyhow!("-pidfile {}: {e}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            content,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|c| c == self.content) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `-daemonize`, the QEMU way: fork before anything is built (a KVM VM belongs to the
/// process that created it), the parent waits on a pipe until the child says the VM runs
/// and its sockets listen (exit 0) or the child ends first (its status; the child has
/// printed why on the shared stderr). Returns the write end the child reports on.
fn daemonize() -> anyhow::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array with new descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        anyhow::bail!("-daemonize: pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here (nothing has started a thread yet), so
    // the child may run any code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        anyhow::bail!("-daemonize: fork: {}", std::io::Error::last_os_error());
    }
    if pid > 0 {
        drop(write);
        let mut reader = std::fs::File::from(read);
        let mut byte = [0u8; 1];
        let ready = matches!(reader.read(&mut byte), Ok(1));
        if ready {
            std::process::exit(0);
        }
        let mut status = 0;
        // SAFETY: waiting for our own child into a local.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            1
        };
        std::process::exit(if code == 0 { 1 } else { code });
    }
    drop(read);
    // SAFETY: setsid in the child, which is not a process group leader.
    unsafe { libc::setsid() };
    Ok(write)
}

/// Points the standard descriptors `fds` at /dev/null.
fn to_dev_null(fds: &[i32]) {
    // SAFETY: opening /dev/null with a static C string.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if null >= 0 {
        for &fd in fds {
            // SAFETY: dup2 of our /dev/null descriptor onto a standard descriptor.
            unsafe { libc::dup2(null, fd) };
        }
        // SAFETY: closing the descriptor we opened.
        unsafe { libc::close(null) };
    }
}

/// What the daemon does once the VM runs: tell the parent, and leave the terminal.
fn detach(ready: OwnedFd) {
    to_dev_null(&[libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO]);
    // SAFETY: writing one byte from a local to the pipe we own.
    unsafe { libc::write(ready.as_raw_fd(), b"R".as_ptr().cast(), 1) };
    drop(ready);
}

/// The `qemu-system-x86_64` entry point.
pub fn main(argv: Vec<OsString>) -> ExitCode {
    let fail = |message: String| {
        errln!("{PROGRAM}: {message}");
        ExitCode::from(1)
    };
    let mut args = Vec::new();
    for a in argv.into_iter().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => return fail(format!("{}: not UTF-8", a.to_string_lossy())),
        }
    }
    let (rvmm_args, daemon, pidfile, serial_none) = match parse(&args) {
        Ok(Invocation::Version) => {
            return match crate::output::out!("{}", version_text()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("{e:#}")),
            }
        }
        Ok(Invocation::Help) => {
            return match outln!("{}", HELP.trim_end()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("{e:#}")),
            }
        }
        Ok(Invocation::Run {
            rvmm_args,
            daemonize,
            pidfile,
            serial_none,
        }) => (rvmm_args, daemonize, pidfile, serial_none),
        Err(e) => return fail(e.to_string()),
    };
    let cli = match Cli::try_parse_from(
        ["rvmm".to_string(), "run".to_string()]
            .into_iter()
            .chain(rvmm_args),
    ) {
        Ok(cli) => cli,
        Err(e) => return fail(e.to_string().lines().next().unwrap_or_default().to_string()),
    };
    let Command::Run(run_args) = cli.command else {
        return fail("internal error: not a run command".into());
    };
    set_sigpipe(SigPipe::Ignore);
    if serial_none {
        // With --kernel, stdout carries the guest's console alone.
        to_dev_null(&[libc::STDOUT_FILENO]);
    }
    let ready = if daemon {
        match daemonize() {
            Ok(fd) => Some(fd),
            Err(e) => return fail(format!("{e:#}")),
        }
    } else {
        None
    };
    let _pidfile = match pidfile.as_deref().map(PidFile::write).transpose() {
        Ok(p) => p,
        Err(e) => return fail(format!("{e:#}")),
    };
    let on_started: Option<Box<dyn FnOnce()>> =
        ready.map(|fd| Box::new(move || detach(fd)) as Box<dyn FnOnce()>);
    match crate::commands::run(*run_args, on_started) {
        Ok(code) => code,
        Err(e) => fail(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(line: &str) -> Vec<String> {
        let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        match parse(&argv).unwrap() {
            Invocation::Run { rvmm_args, .. } => rvmm_args,
            other => panic!("{other:?}"),
        }
    }

    fn err(line: &str) -> String {
        let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&argv).unwrap_err().to_string()
    }

    #[test]
    fn nomads_command_line() {
        assert_eq!(
            run_args(
                "-machine type=pc,accel=kvm -name vm1 -m 512M -drive file=/i.img,if=virtio \
                 -nographic -monitor unix:/s,server=on,wait=off -enable-kvm -smp 2 \
                 -kernel /p.elf -append mode=halt"
            ),
            [
                "--name",
                "vm1",
                "-m",
                "512M",
                "--disk",
                "path=/i.img",
                "--monitor",
                "unix:/s,server=on,wait=off",
                "--smp",
                "2",
                "--kernel",
                "/p.elf",
                "--append",
                "mode=halt"
            ]
        );
    }

    #[test]
    fn drives_devices_and_machine() {
        assert_eq!(
            run_args(
                "-M microvm,pit=off -drive file=/a,if=none,id=d0,format=raw,readonly=on \
                 -device virtio-blk-device,drive=d0,serial=S1 --qmp unix:/q,server,nowait \
                 -name guest=x,debug-threads=on -m size=1G -serial none -display none"
            ),
            [
                "--disk",
                "path=/a,readonly=on,serial=S1",
                "--qmp",
                "unix:/q,server,nowait",
                "--name",
                "x",
                "-m",
                "1G",
                "--machine",
                "pit=off"
            ]
        );
        assert_eq!(parse(&["-version".into()]).unwrap(), Invocation::Version);
        assert_eq!(parse(&["--version".into()]).unwrap(), Invocation::Version);
        assert_eq!(parse(&["-h".into()]).unwrap(), Invocation::Help);
    }

    #[test]
    fn netdev_and_balloon_devices() {
        assert_eq!(
            run_args(
                "-netdev tap,id=n0,ifname=tap7,script=no,downscript=no \
                 -device virtio-net-device,netdev=n0,mac=52:54:00:00:00:07 \
                 -device virtio-balloon-device,free-page-reporting=on"
            ),
            [
                "--balloon",
                "on,free-page-reporting=on",
                "--net",
                "tap=tap7,mac=52:54:00:00:00:07"
            ]
        );
        assert_eq!(
            err("-device virtio-balloon-device,deflate-on-oom=yes"),
            "-device virtio-balloon-device,deflate-on-oom=yes: deflate-on-oom=yes: expected on or off"
        );
        assert_eq!(
            err("-netdev user,id=n0"),
            "-netdev user,id=n0: type=user: rvmm's networking is tap,ifname=NAME or tap,fd=N only"
        );
        assert_eq!(
            run_args(
                "-netdev tap,id=n1,fd=7,vnet_hdr=on -device virtio-net-pci,netdev=n1 \
                 -netdev tap,id=n0,fd=9 -device virtio-net-device,netdev=n0,mac=52:54:00:00:00:09"
            ),
            ["--net", "fd=7", "--net", "fd=9,mac=52:54:00:00:00:09"]
        );
        assert_eq!(
            err("-netdev tap,id=n0,fd=3,ifname=t"),
            "-netdev tap,id=n0,fd=3,ifname=t: give one of ifname=NAME and fd=N"
        );
        assert_eq!(
            err("-netdev tap,id=n0"),
            "-netdev tap,id=n0: ifname=NAME or fd=N is required"
        );
        assert!(err("-netdev tap,id=n0,fd=3,vnet_hdr=off").contains("vnet_hdr=off: rvmm's"));
        assert!(err("-netdev tap,id=n0,fds=3:4").contains("fds=3:4: rvmm's"));
    }

    #[test]
    fn refusals_name_the_option() {
        assert_eq!(err("-usb"), "-usb: rvmm does not emulate this option");
        assert_eq!(
            err("--snapshot"),
            "-snapshot: rvmm does not emulate this option"
        );
        assert_eq!(err("-m"), "-m: requires an argument");
        assert_eq!(
            err("-machine type=pc,accel=tcg"),
            "-machine type=pc,accel=tcg: accel=tcg: rvmm is KVM-only (no TCG or other \
             accelerator); use accel=kvm"
        );
        assert!(err("-accel tcg").contains("rvmm is KVM-only"));
        assert!(err("-machine q35").contains("type=q35: rvmm emulates pc and microvm"));
        assert_eq!(
            err("-device e1000"),
            "-device e1000: rvmm does not emulate this device"
        );
        assert!(err("-drive file=/a,if=ide").contains("if=ide"));
        assert!(err("-drive file=/a,if=virtio,format=qcow2").contains("raw images only"));
        assert!(err("-drive file=/a,if=virtio,cache=none").contains("cache=none"));
        assert!(err("-drive file=/a,if=none,id=x").contains("no -device uses this drive"));
        assert!(err("-device virtio-blk-pci,drive=y").contains("no -drive with id=y"));
        assert!(err("disk.img").contains("a bare disk image"));
        assert!(err("-serial pty").contains("-serial pty"));
        assert!(err("-monitor stdio").contains("unix:PATH"));
        assert!(err("-qmp unix:/q,server=off").contains("server=off"));
        assert_eq!(
            err("-daemonize -nographic"),
            "-nographic cannot be used with -daemonize"
        );
    }

    #[test]
    fn personality_and_version() {
        assert!(invoked_as_qemu(&"/usr/bin/qemu-system-x86_64".into()));
        assert!(invoked_as_qemu(&"qemu-system-x86_64".into()));
        assert!(!invoked_as_qemu(&"/usr/bin/rvmm".into()));
        assert!(version_text().starts_with(&format!(
            "QEMU emulator version 7.2.0 (rvmm {})\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
}
