//! A tap device for virtio-net: opened through `/dev/net/tun` by name (an existing tap, as
//! libvirt's `<interface type='ethernet'>` and QEMU's `-netdev tap,ifname=` use it),
//! created with a kernel-chosen name (gone again when rvmm closes it), or taken over from a
//! descriptor the launcher opened and left to rvmm (`--net fd=N`, QEMU's `-netdev tap,fd=N`;
//! checked with `TUNGETIFF`), always with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, a 12-byte
//! virtio 1.x header (with `num_buffers`) and non-blocking. Which receive offloads the tap
//! can give (`TUNSETOFFLOAD`: checksum, TSO) is found by trying them once at open; the device
//! model sets exactly what its driver accepted.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};

use thiserror::Error;

/// The tun/tap control device.
pub const TUN_PATH: &str = "/dev/net/tun";
/// The vnet header rvmm uses: `struct virtio_net_hdr_mrg_rxbuf` (virtio 1.x).
pub const VNET_HDR_LEN: usize = 12;

const IFF_TUN: libc::c_short = 0x0001;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// `_IOW('T', 202, int)`
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `_IOR('T', 210, unsigned int)`
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;
/// `_IOW('T', 208, unsigned int)`
pub const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// `_IOW('T', 216, int)`
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;

/// `TUNSETOFFLOAD` flags: the tap may hand over frames with a partial checksum...
pub const TUN_F_CSUM: u32 = 0x01;
/// ...TCPv4 segmentation left undone...
pub const TUN_F_TSO4: u32 = 0x02;
/// ...TCPv6 segmentation left undone.
pub const TUN_F_TSO6: u32 = 0x04;

/// The longest interface name, NUL excluded (`IFNAMSIZ - 1`).
pub const MAX_NAME: usize = libc::IFNAMSIZ - 1;

/// Why a tap could not be opened.
#[derive(Debug, Error)]
pub enum TapError {
    #[error("--net: cannot open {TUN_PATH}: {0} (is the tun module loaded?)")]
    Tun(std::io::Error),
    #[error(
        "--net tap={0}: no tap device named {0}: create it with `ip tuntap add dev {0} mode tap` \
         (or leave the name out to let rvmm create one, which needs CAP_NET_ADMIN)"
    )]
    NoSuchTap(String),
    #[error(
        "--net tap={name}: not permitted to attach ({error}); a tap made with \
         `ip tuntap add dev {name} mode tap user USER` can be used by USER, otherwise \
         rvmm needs CAP_NET_ADMIN"
    )]
    Permission { name: String, error: std::io::Error },
    #[error(
        "--net tap={0}: the device is busy: another process holds it (a tap takes one \
         user unless made with `multi_queue`), or {0} is not a tap (a tun device or another \
         kind of interface with that name)"
    )]
    Busy(String),
    #[error(
        "--net tap: not permitted to create a tap ({0}); rvmm needs CAP_NET_ADMIN, or use \
             an existing tap with tap=NAME (`ip tuntap add dev NAME mode tap user USER`)"
    )]
    CreatePermission(std::io::Error),
    #[error("--net {option}: {what}: {error}")]
    Ioctl {
        /// `tap=NAME` or `fd=N`.
        option: String,
        what: &'static str,
        error: std::io::Error,
    },
    #[error("--net tap={0}: the name is longer than {MAX_NAME} bytes or holds a NUL")]
    BadName(String),
    #[error(
        "--net fd={0}: not an open file descriptor (the launcher must leave the tap open, \
         without close-on-exec, when it starts rvmm)"
    )]
    NotOpen(RawFd),
    #[error("--net fd={fd}: fd=0..2 are stdio; the tap's descriptor is 3 or above")]
    Stdio { fd: RawFd },
    #[error("--net fd={fd}: not a TAP device (TUNGETIFF: {error})")]
    NotTap { fd: RawFd, error: std::io::Error },
    #[error(
        "--net fd={fd}: {name} is a TUN device (IP packets); a NIC needs a TAP (IFF_TAP, \
         Ethernet frames)"
    )]
    TunMode { fd: RawFd, name: String },
    #[error(
        "--net fd={fd}: tap {name} was opened without {missing}; rvmm reads frames as \
         IFF_TAP|IFF_NO_PI|IFF_VNET_HDR gives them"
    )]
    Flags {
        fd: RawFd,
        name: String,
        missing: &'static str,
    },
}

/// `struct ifreq` as TUNSETIFF uses it: the name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl IfReq {
    /// The interface name the kernel wrote back.
    fn name(&self) -> String {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(MAX_NAME);
        String::from_utf8_lossy(&self.name[..len]).into_owned()
    }
}

/// An open tap.
#[derive(Debug)]
pub struct Tap {
    /// `None` while a migration has it handed over ([`Tap::detach`], [`Tap::detached`]).
    file: Option<File>,
    name: String,
    /// How the user named it: `tap=NAME` or `fd=N` (for errors).
    option: String,
    /// Whether rvmm created it (no name was given).
    created: bool,
    /// Opened by name (`tap=NAME`): the one kind a migration hands over, as two processes
    /// cannot hold one tap.
    by_name: bool,
    /// The `TUN_F_*` offloads the tap accepted.
    offloads: u32,
}

/// What every Linux tap takes (`TUNSETOFFLOAD` has accepted them since 2.6.27): the
/// offloads a tap opened only later, at a migration's handover, is assumed to take.
pub const LINUX_TAP_OFFLOADS: u32 = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

/// How long [`Tap::attach`] retries a tap that is still busy: the process handing it over
/// closed it, and the kernel lets it go once no thread of that process polls it any more.
const ATTACH_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

impl Tap {
    /// Opens the tap `name`, or creates one when `name` is `None`.
    pub fn open(name: Option<&str>) -> Result<Tap, TapError> {
        check_name(name)?;
        let (file, kernel_name) = set_iff(name)?;
        let mut tap = Tap {
            file: Some(file),
            name: kernel_name,
            option: String::new(),
            created: name.is_none(),
            by_name: name.is_some(),
            offloads: 0,
        };
        tap.option = format!("tap={}", tap.name);
        tap.set_up()?;
        Ok(tap)
    }

    /// The existing tap `name`, checked but not opened: `rvmm run --incoming` takes it
    /// over only when the source has closed it ([`Tap::attach`]). It is assumed to take
    /// [`LINUX_TAP_OFFLOADS`], which the device offers the guest meanwhile.
    pub fn detached(name: &str) -> Result<Tap, TapError> {
        check_name(Some(name))?;
        Ok(Tap {
            file: None,
            name: name.to_string(),
            option: format!("tap={name}"),
            created: false,
            by_name: true,
            offloads: LINUX_TAP_OFFLOADS,
        })
    }

    /// Whether a migration hands this tap over (one opened by name): a created tap or an
    /// inherited descriptor is each end's own.
    pub fn hands_over(&self) -> bool {
        self.by_name
    }

    /// Closes a tap opened by name so that another process can attach to it (a
    /// migration's source, at the final phase). Frames queued in it are dropped, as a
    /// wire drops them while a cable is moved; the interface stays.
    pub fn detach(&mut self) {
        if self.by_name {
            self.file = None;
        }
    }

    /// Whether the tap is open.
    pub fn attached(&self) -> bool {
        self.file.is_some()
    }

    /// Opens a detached tap again by its name (a migration's destination at the handover,
    /// or its source taking it back after a failure), retrying while the process that
    /// handed it over still lets it go; then sets it up as [`Tap::open`] does. Nothing
    /// to do for an open tap.
    pub fn attach(&mut self) -> Result<(), TapError> {
        if self.file.is_some() {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + ATTACH_RETRY;
        let file = loop {
            match set_iff(Some(&self.name)) {
                Ok((file, _)) => break file,
                Err(TapError::Busy(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        };
        self.file = Some(file);
        self.set_up()
    }
}

/// A tap name the kernel can take, naming an existing interface: TUNSETIFF on a missing
/// name would create a tap (with CAP_NET_ADMIN), and an existing one was asked for.
fn check_name(name: Option<&str>) -> Result<(), TapError> {
    let shown = name.unwrap_or("");
    if shown.len() > MAX_NAME || shown.contains('\0') {
        return Err(TapError::BadName(shown.to_string()));
    }
    if let Some(n) = name {
        if !exists(n) {
            return Err(TapError::NoSuchTap(n.to_string()));
        }
    }
    Ok(())
}

/// Opens `/dev/net/tun` and attaches it to the tap `name` (a new tap for `None`): the file
/// and the interface's name.
fn set_iff(name: Option<&str>) -> Result<(File, String), TapError> {
    let shown = name.unwrap_or("");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_PATH)
        .map_err(TapError::Tun)?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
        _pad: [0; 22],
    };
    req.name[..shown.len()].copy_from_slice(shown.as_bytes());
    // SAFETY: TUNSETIFF reads and writes the ifreq we pass, which outlives the call.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
    if r < 0 {
        let error = std::io::Error::last_os_error();
        return Err(match (name, error.raw_os_error()) {
            (None, Some(libc::EPERM | libc::EACCES)) => TapError::CreatePermission(error),
            (Some(n), Some(libc::EPERM | libc::EACCES)) => TapError::Permission {
                name: n.to_string(),
                error,
            },
            (Some(n), Some(libc::EBUSY | libc::EINVAL)) => TapError::Busy(n.to_string()),
            _ => TapError::Ioctl {
                option: format!("tap={shown}"),
                what: "TUNSETIFF",
                error,
            },
        });
    }
    Ok((file, req.name()))
}

impl Tap {
    /// Takes over the tap the launcher opened on descriptor `fd` (`--net fd=N`): checks it
    /// is open and a tap with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, then owns it (closed when
    /// the tap is dropped, close-on-exec from now on) and sets it up as [`Tap::open`] does.
    /// On an error before the checks pass, `fd` is left alone.
    pub fn from_fd(fd: RawFd) -> Result<Tap, TapError> {
        if (0..=2).contains(&fd) {
            return Err(TapError::Stdio { fd });
        }
        // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(TapError::NotOpen(fd));
        }
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        // SAFETY: TUNGETIFF writes the ifreq we pass, which outlives the call; on a
        // descriptor that is not an attached tun/tap it fails without writing.
        if unsafe { libc::ioctl(fd, TUNGETIFF as _, &mut req) } < 0 {
            let error = std::io::Error::last_os_error();
            return Err(TapError::NotTap { fd, error });
        }
        let name = req.name();
        if req.flags & IFF_TAP == 0 || req.flags & IFF_TUN != 0 {
            return Err(TapError::TunMode { fd, name });
        }
        for (flag, missing) in [(IFF_NO_PI, "IFF_NO_PI"), (IFF_VNET_HDR, "IFF_VNET_HDR")] {
            if req.flags & flag == 0 {
                return Err(TapError::Flags { fd, name, missing });
            }
        }
        // SAFETY: `fd` is open (F_GETFD) and a tap the launcher handed to rvmm: nothing else
        // in rvmm owns it, as the VMM takes `fd=` taps before it opens taps of its own
        // (`vmm::virtio_devices`) and `config::net` refuses one number for two NICs.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut tap = Tap {
            file: Some(file),
            name,
            option: format!("fd={fd}"),
            created: false,
            by_name: false,
            offloads: 0,
        };
        // SAFETY: F_SETFD on a descriptor we own.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(tap.ioctl_err("F_SETFD FD_CLOEXEC"));
        }
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if fl < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
            return Err(tap.ioctl_err("F_SETFL O_NONBLOCK"));
        }
        tap.set_up()?;
        Ok(tap)
    }

    /// The vnet header size, then which offloads the tap takes.
    fn set_up(&mut self) -> Result<(), TapError> {
        let hdr = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads the int we pass.
        let r = unsafe { libc::ioctl(self.as_raw_fd(), TUNSETVNETHDRSZ as _, &hdr) };
        if r < 0 {
            return Err(self.ioctl_err("TUNSETVNETHDRSZ 12"));
        }
        self.offloads = self.probe_offloads();
        Ok(())
    }

    fn ioctl_err(&self, what: &'static str) -> TapError {
        TapError::Ioctl {
            option: self.option.clone(),
            what,
            error: std::io::Error::last_os_error(),
        }
    }

    /// Tries checksum, then each TSO on top of it; leaves the tap with no offload on.
    fn probe_offloads(&self) -> u32 {
        let mut ok = 0;
        if self.set_offloads(TUN_F_CSUM).is_ok() {
            ok = TUN_F_CSUM;
            for f in [TUN_F_TSO4, TUN_F_TSO6] {
                if self.set_offloads(ok | f).is_ok() {
                    ok |= f;
                }
            }
        }
        let _ = self.set_offloads(0);
        ok
    }

    /// `TUNSETOFFLOAD`: the offloads the tap may leave to the reader.
    pub fn set_offloads(&self, flags: u32) -> std::io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value; the fd is open (or -1 while
        // detached, which the kernel refuses with EBADF).
        let r =
            unsafe { libc::ioctl(self.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_ulong) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The interface's name (the kernel's choice for a created tap).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether rvmm created the tap (it disappears when rvmm exits).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The `TUN_F_*` offloads the tap accepted.
    pub fn offloads(&self) -> u32 {
        self.offloads
    }

    /// Reads one frame (vnet header first); `WouldBlock` when none is queued,
    /// `NotConnected` while detached.
    pub fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.open_file()?.read(buf)
    }

    /// Writes one frame (vnet header first); `NotConnected` while detached.
    pub fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.open_file()?.write(frame).map(|_| ())
    }

    fn open_file(&mut self) -> std::io::Result<&mut File> {
        self.file.as_mut().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("tap {} is handed over (detached)", self.name),
            )
        })
    }
}

impl AsRawFd for Tap {
    /// The tap's descriptor; -1 while detached.
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

/// Whether a network interface `name` exists in this network namespace.
fn exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn a_missing_tap_is_named_with_the_command_that_makes_it() {
        let name = format!("rvnone{}", std::process::id() % 100_000);
        let e = Tap::open(Some(&name)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "--net tap={name}: no tap device named {name}: create it with \
                 `ip tuntap add dev {name} mode tap`"
            )),
            "{e}"
        );
        assert!(
            !exists(&name),
            "asking for a missing tap does not create it"
        );
        let e = Tap::open(Some("a-name-far-too-long-for-ifnamsiz")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--net tap=a-name-far-too-long-for-ifnamsiz: the name is longer than 15 \
             bytes or holds a NUL"
        );
    }

    #[test]
    fn a_non_tap_interface_is_refused() {
        if !root() {
            return;
        }
        // `lo` exists and is not a tap: TUNSETIFF refuses to attach to it.
        let e = Tap::open(Some("lo")).unwrap_err().to_string();
        assert!(e.starts_with("--net tap=lo: the device is busy"), "{e}");
    }

    #[test]
    fn a_descriptor_that_is_not_a_tap_is_refused_and_left_open() {
        assert_eq!(
            Tap::from_fd(1).unwrap_err().to_string(),
            "--net fd=1: fd=0..2 are stdio; the tap's descriptor is 3 or above"
        );
        let file = File::open("/proc/self/status").unwrap();
        let fd = file.as_raw_fd();
        let e = Tap::from_fd(fd).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("--net fd={fd}: not a TAP device (TUNGETIFF: ")),
            "{e}"
        );
        // The refused descriptor is still the caller's.
        // SAFETY: F_GETFD only reads flags.
        assert!(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
        drop(file);
        // (A number far above any this process opens: one just closed could be reused by
        // a test running beside this one.)
        assert_eq!(
            Tap::from_fd(999_999).unwrap_err().to_string(),
            "--net fd=999999: not an open file descriptor (the launcher must leave the tap \
             open, without close-on-exec, when it starts rvmm)"
        );
    }

    /// `/dev/net/tun` attached with `flags` to a new tap (needs CAP_NET_ADMIN).
    fn tun_with(flags: libc::c_short) -> RawFd {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(TUN_PATH)
            .unwrap();
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags,
            _pad: [0; 22],
        };
        // SAFETY: TUNSETIFF reads and writes the ifreq, which outlives the call.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        // As a launcher leaves it: inheritable (std opens with O_CLOEXEC).
        // SAFETY: F_SETFD on the descriptor `file` owns.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFD, 0) };
        assert_eq!(r, 0);
        std::os::unix::io::IntoRawFd::into_raw_fd(file)
    }

    #[test]
    fn an_inherited_tap_is_checked_then_owned() {
        if !root() || !std::path::Path::new(TUN_PATH).exists() {
            return; // tests/virtio_net.rs covers --net fd=N as root.
        }
        let close = |fd| {
            // SAFETY: the test owns `fd`, refused (so left open) by from_fd.
            unsafe { libc::close(fd) };
        };
        let fd = tun_with(IFF_TUN | IFF_NO_PI);
        let e = Tap::from_fd(fd).unwrap_err().to_string();
        assert!(e.starts_with(&format!("--net fd={fd}: tun")), "{e}");
        assert!(
            e.ends_with(
                "is a TUN device (IP packets); a NIC needs a TAP (IFF_TAP, Ethernet frames)"
            ),
            "{e}"
        );
        close(fd);
        let fd = tun_with(IFF_TAP | IFF_NO_PI);
        let e = Tap::from_fd(fd).unwrap_err().to_string();
        assert!(
            e.contains(" was opened without IFF_VNET_HDR; rvmm reads frames as"),
            "{e}"
        );
        close(fd);
        let fd = tun_with(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
        // SAFETY: F_GETFD/F_GETFL only read flags.
        let (fd_flags, fl) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFD),
                libc::fcntl(fd, libc::F_GETFL),
            )
        };
        assert_eq!((fd_flags & libc::FD_CLOEXEC, fl & libc::O_NONBLOCK), (0, 0));
        let tap = Tap::from_fd(fd).unwrap();
        assert!(!tap.created());
        assert!(tap.name().starts_with("tap"), "{}", tap.name());
        assert_eq!(tap.offloads(), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
        // SAFETY: as above.
        let (fd_flags, fl) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFD),
                libc::fcntl(fd, libc::F_GETFL),
            )
        };
        assert_eq!(
            (fd_flags & libc::FD_CLOEXEC, fl & libc::O_NONBLOCK),
            (libc::FD_CLOEXEC, libc::O_NONBLOCK)
        );
        let name = tap.name().to_string();
        drop(tap);
        assert!(
            !exists(&name),
            "the tap is closed with the Tap that owns it"
        );
    }

    /// `TUNSETPERSIST` (`_IOW('T', 203, int)`): the tap outlives its descriptor.
    fn set_persist(tap: &Tap, on: bool) {
        // SAFETY: TUNSETPERSIST takes its argument by value; the tap's fd is open.
        let r = unsafe { libc::ioctl(tap.as_raw_fd(), 0x4004_54cb as _, libc::c_ulong::from(on)) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    }

    #[test]
    fn a_named_tap_is_handed_over_between_two_holders() {
        if !root() || !std::path::Path::new(TUN_PATH).exists() {
            return; // tests/migration.rs hands a tap over between two rvmm as root.
        }
        let mut created = Tap::open(None).unwrap();
        // A created tap is this process's own: it is never handed over.
        created.detach();
        assert!(created.attached() && !created.hands_over());
        drop(created);
        // A persistent tap of our own name, as one made with `ip tuntap add`.
        let name = format!("rvho{}", std::process::id() % 100_000);
        let made = Tap {
            file: Some(set_iff(Some(&name)).unwrap().0),
            name: name.clone(),
            option: String::new(),
            created: true,
            by_name: false,
            offloads: 0,
        };
        set_persist(&made, true);
        drop(made);
        assert!(exists(&name));

        let mut source = Tap::open(Some(&name)).unwrap();
        assert!(source.hands_over() && !source.created());
        let mut dest = Tap::detached(&name).unwrap();
        assert!(!dest.attached());
        assert_eq!(dest.as_raw_fd(), -1);
        assert_eq!(dest.offloads(), LINUX_TAP_OFFLOADS);
        let frame = [0u8; VNET_HDR_LEN + 60];
        assert_eq!(
            dest.send(&frame).unwrap_err().kind(),
            std::io::ErrorKind::NotConnected
        );
        source.detach();
        assert!(!source.attached());
        dest.attach().unwrap();
        assert!(dest.attached() && dest.as_raw_fd() >= 0);
        dest.set_offloads(TUN_F_CSUM).unwrap();
        // The source cannot take it back while the destination holds it (after retrying).
        let e = source.attach().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("--net tap={name}: the device is busy")),
            "{e}"
        );
        dest.detach();
        source.attach().unwrap();
        set_persist(&source, false);
        drop((source, dest));
        assert!(!exists(&name));
        assert_eq!(
            Tap::detached(&name).unwrap_err().to_string(),
            TapError::NoSuchTap(name).to_string()
        );
    }

    #[test]
    fn a_created_tap_has_a_kernel_name_and_offloads() {
        if !root() || !std::path::Path::new(TUN_PATH).exists() {
            // Creating a tap needs CAP_NET_ADMIN; checked by tests/virtio_net.rs as root.
            let e = Tap::open(None).unwrap_err().to_string();
            assert!(e.contains("CAP_NET_ADMIN") || e.contains(TUN_PATH), "{e}");
            return;
        }
        let tap = Tap::open(None).unwrap();
        assert!(tap.created());
        assert!(tap.name().starts_with("tap"), "{}", tap.name());
        assert!(exists(tap.name()));
        // Every Linux tap with a vnet header takes checksum and TSO offloads.
        assert_eq!(tap.offloads(), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
        let name = tap.name().to_string();
        drop(tap);
        assert!(!exists(&name), "a created tap goes with its last fd");
    }
}
