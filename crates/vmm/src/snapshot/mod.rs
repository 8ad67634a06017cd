//! rvmm's snapshot format: a directory with `state.json` and `memory.bin` (docs/snapshot.md).
//!
//! `state.json` is one JSON object: `{"format": "rvmm-snapshot", "version": 1, "crc32":
//! "XXXXXXXX", "state": {...}}`, the CRC-32 (IEEE) taken over the exact bytes of the `state`
//! value as written. The state names the rvmm that wrote it, the configuration to rebuild
//! the VM (`config.flags`, the `rvmm run` flags of `config::flags::run_args`, plus a summary),
//! every present vCPU's state and CPUID table, the VM's in-kernel devices and clock, the
//! emulated devices' registers and how `memory.bin` maps onto guest RAM with its size and
//! checksum. `memory.bin` is guest RAM, each RAM range at its file offset, as a sparse file:
//! zero pages are not written (holes). Its CRC-32 covers every non-zero 4 KiB page (its page
//! number, little-endian u64, then its bytes) in file order, so it does not depend on how a
//! file system keeps the holes.
//!
//! Reading checks, in order: the format name, the version (a different one is refused as
//! "snapshot format vN, this rvmm reads vM"), the checksum of `state.json`, its content,
//! then `memory.bin`'s size; the memory checksum is checked while the pages are read in.

pub mod compat;
pub mod memory;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::devices::cpu_hotplug::CpuHotplug;
use crate::devices::gpe::Gpe0;
use crate::devices::pm::PmState;
use crate::devices::serial::SerialSnapshot;
use crate::devices::virtio::SavedVirtio;
use crate::machine::state::{StateError, VcpuState, VmState};

/// The format's name in `state.json`.
pub const FORMAT_NAME: &str = "rvmm-snapshot";
/// The format version this rvmm writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The state file's name in a snapshot directory.
pub const STATE_FILE: &str = "state.json";
/// The memory file's name in a snapshot directory.
pub const MEMORY_FILE: &str = "memory.bin";

/// Why a snapshot could not be written, read or used.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: exists and is not an empty directory; a snapshot needs a new or empty one")]
    NotEmpty { path: PathBuf },
    #[error("{path}: truncated or not JSON ({detail})")]
    NotJson { path: PathBuf, detail: String },
    #[error("{path}: not an rvmm snapshot (format {found:?}, expected {FORMAT_NAME:?})")]
    NotSnapshot { path: PathBuf, found: String },
    #[error("{path}: snapshot format v{found}, this rvmm reads v{FORMAT_VERSION}")]
    Version { path: PathBuf, found: String },
    #[error("{path}: bad checksum (crc32 stored {stored}, computed {computed:08x}): the file was changed or damaged")]
    Checksum {
        path: PathBuf,
        stored: String,
        computed: u32,
    },
    #[error("{path}: {detail}")]
    Content { path: PathBuf, detail: String },
    #[error("{path}: truncated: {got} bytes, the snapshot's guest RAM is {want}")]
    Truncated { path: PathBuf, got: u64, want: u64 },
    #[error("{path}: {got} bytes, longer than the snapshot's guest RAM ({want})")]
    TooLong { path: PathBuf, got: u64, want: u64 },
    #[error("{path}: bad checksum (crc32 of the data pages {computed:08x}, the snapshot says {stored:08x}): the file was changed or damaged")]
    MemoryChecksum {
        path: PathBuf,
        stored: u32,
        computed: u32,
    },
    #[error("{path}: guest RAM ranges {saved} do not match this VM's {this}")]
    Layout {
        path: PathBuf,
        saved: String,
        this: String,
    },
    #[error("vCPU {vcpu}: {source}")]
    Vcpu { vcpu: u32, source: StateError },
    #[error(transparent)]
    Machine(#[from] StateError),
    #[error("this host cannot run the snapshot's vCPUs: {0}")]
    Incompatible(String),
    /// A virtio device of the snapshot does not fit the rebuilt VM's.
    #[error("virtio slot {slot}: {detail}")]
    Virtio { slot: u32, detail: String },
}

/// What a snapshot holds (the `state` member of `state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// The rvmm that wrote it (`CARGO_PKG_VERSION`).
    pub rvmm_version: String,
    /// Whether it was taken with `stop` (the source VM stayed paused).
    pub stopped: bool,
    pub config: SavedConfig,
    /// Every present vCPU, boot and hot-added, in slot order.
    pub vcpus: Vec<SavedVcpu>,
    pub vm: VmState,
    pub devices: SavedDevices,
    pub memory: MemoryLayout,
    /// How QMP names the vCPUs (ids given to `device_add`, QOM paths, which were
    /// hot-added), in QEMU's order; absent in snapshots written before it was saved (the
    /// format version is still 1), whose vCPUs beyond the boot ones come back as hot-added
    /// without an id. Kept as the control plane's JSON (`control::commands::cpu_slot::
    /// CpuSlots`, which this layer does not see); the VMM decodes it on restore.
    #[serde(default)]
    pub cpu_slots: Option<serde_json::Value>,
}

/// The configuration: `flags` rebuild the VM; the rest says what they mean.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedConfig {
    /// The `rvmm run` flags that build this VM (`config::flags::run_args`).
    pub flags: Vec<String>,
    /// `--smp` as resolved: cpus, maxcpus, sockets, dies, cores, threads.
    pub smp: [u32; 6],
    pub cpu_model: String,
    pub memory_bytes: u64,
    /// The backing options, NUMA and pins are in `flags`; this says whether there are any.
    pub numa_nodes: usize,
}

/// One vCPU: its state and the CPUID table it ran with (function, index, flags, eax, ebx,
/// ecx, edx per entry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedVcpu {
    pub state: VcpuState,
    pub cpuid: Vec<[u32; 7]>,
}

/// The emulated devices (the i8042 has no state: it only reports an empty buffer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedDevices {
    pub serial: SerialSnapshot,
    pub pm: PmState,
    pub gpe: Gpe0,
    pub cpu_hotplug: CpuHotplug,
    /// Every virtio transport in slot order (docs/snapshot.md); absent in snapshots of VMs
    /// without virtio devices written before it existed (the format version is still 1).
    #[serde(default)]
    pub virtio: Vec<SavedVirtio>,
}

/// How `memory.bin` maps onto guest RAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryLayout {
    pub file: String,
    /// The file's length: the sum of the ranges.
    pub size: u64,
    pub ranges: Vec<RamRangeAt>,
    /// Non-zero pages written.
    pub data_pages: u64,
    /// CRC-32 of the non-zero pages (see the module header).
    pub crc32: u32,
}

/// One guest RAM range and where it is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RamRangeAt {
    pub guest_addr: u64,
    pub size: u64,
    pub file_offset: u64,
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`), fed in pieces.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

impl Default for Crc32 {
    fn default() -> Self {
        Crc32(0xffff_ffff)
    }
}

impl Crc32 {
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for &b in data {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub fn finish(self) -> u32 {
        !self.0
    }

    pub fn of(data: &[u8]) -> u32 {
        let mut c = Crc32::default();
        c.update(data);
        c.finish()
    }
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Makes `dir` (new, or an empty directory) for a snapshot.
pub fn prepare_dir(dir: &Path) -> Result<(), SnapshotError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(SnapshotError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io(dir, "cannot create the directory"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(SnapshotError::NotEmpty {
            path: dir.to_path_buf(),
        }),
        Err(e) => Err(io(dir, "cannot read the directory")(e)),
    }
}

/// The text of `state.json` for `snapshot`.
pub fn state_text(snapshot: &Snapshot) -> String {
    // Serializing plain data with string keys cannot fail.
    let body = serde_json::to_string_pretty(snapshot).unwrap_or_default();
    format!(
        "{{\"format\":\"{FORMAT_NAME}\",\"version\":{FORMAT_VERSION},\"crc32\":\"{:08x}\",\"state\":{body}}}\n",
        Crc32::of(body.as_bytes())
    )
}

/// Writes `state.json` into `dir`, durably: the text goes to a temporary file that is
/// synced and then renamed, and the directory (and its parent, which may have just
/// gained it) is synced, so after a crash `state.json` is either absent or complete, and
/// with it everything written before it (memory.bin is synced by [`memory::save`]).
pub fn write_state(dir: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
    let path = dir.join(STATE_FILE);
    let temp = dir.join(format!("{STATE_FILE}.tmp"));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        std::io::Write::write_all(&mut file, state_text(snapshot).as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(&path, "cannot write")(e));
    }
    std::fs::rename(&temp, &path).map_err(io(&path, "cannot rename state.json.tmp to it"))?;
    sync_dir(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// fsync of a directory: its entries (a new or renamed file) reach the disk.
fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "cannot sync the directory"))
}

/// Reads and checks `dir/state.json` and the size of `dir/memory.bin`.
pub fn read(dir: &Path) -> Result<Snapshot, SnapshotError> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read(&path).map_err(io(&path, "cannot read"))?;
    let snapshot = parse_state(&path, &text)?;
    let mem = dir.join(&snapshot.memory.file);
    let got = std::fs::metadata(&mem)
        .map_err(io(&mem, "cannot read"))?
        .len();
    let want = snapshot.memory.size;
    if got < want {
        return Err(SnapshotError::Truncated {
            path: mem,
            got,
            want,
        });
    }
    if got > want {
        return Err(SnapshotError::TooLong {
            path: mem,
            got,
            want,
        });
    }
    Ok(snapshot)
}

/// Checks and decodes the bytes of a `state.json` (`path` for messages).
pub fn parse_state(path: &Path, text: &[u8]) -> Result<Snapshot, SnapshotError> {
    let p = || path.to_path_buf();
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| SnapshotError::NotJson {
            path: p(),
            detail: e.to_string(),
        })?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT_NAME {
        return Err(SnapshotError::NotSnapshot {
            path: p(),
            found: format.to_string(),
        });
    }
    let version = value.get("version").cloned().unwrap_or_default();
    if version.as_u64() != Some(u64::from(FORMAT_VERSION)) {
        return Err(SnapshotError::Version {
            path: p(),
            found: version.to_string(),
        });
    }
    let stored = value
        .get("crc32")
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .to_string();
    // The body: from after `"state":` to the object's closing brace.
    let text = std::str::from_utf8(text).map_err(|e| SnapshotError::NotJson {
        path: p(),
        detail: e.to_string(),
    })?;
    const KEY: &str = "\"state\":";
    let body = text
        .find(KEY)
        .map(|at| text[at + KEY.len()..].trim_end())
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or_else(|| SnapshotError::Content {
            path: p(),
            detail: "no \"state\" member".into(),
        })?;
    let computed = Crc32::of(body.as_bytes());
    if u32::from_str_radix(&stored, 16).ok() != Some(computed) {
        return Err(SnapshotError::Checksum {
            path: p(),
            stored,
            computed,
        });
    }
    serde_json::from_str(body).map_err(|e| SnapshotError::Content {
        path: p(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(Crc32::of(b""), 0);
        assert_eq!(Crc32::of(b"123456789"), 0xcbf4_3926);
        let mut c = Crc32::default();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xcbf4_3926);
    }

    fn sample() -> Snapshot {
        use crate::machine::state::Blob;
        let blob = || Blob(vec![1, 2, 3]);
        Snapshot {
            rvmm_version: "0.1.0".into(),
            stopped: false,
            config: SavedConfig {
                flags: vec!["--smp".into(), "2".into()],
                smp: [2, 2, 1, 1, 2, 1],
                cpu_model: "qemu64".into(),
                memory_bytes: 134217728,
                numa_nodes: 0,
            },
            vcpus: vec![SavedVcpu {
                state: VcpuState::fixture(&[1, 2, 3], vec![(0x10, 12345)]),
                cpuid: vec![[0, 0, 0, 0xd, 1, 2, 3]],
            }],
            vm: VmState {
                pic_master: blob(),
                pic_slave: blob(),
                ioapic: blob(),
                pit: None,
                clock: blob(),
            },
            devices: SavedDevices {
                serial: SerialSnapshot {
                    baud_divisor_low: 12,
                    baud_divisor_high: 0,
                    interrupt_enable: 0,
                    interrupt_identification: 1,
                    line_control: 3,
                    line_status: 0x60,
                    modem_control: 8,
                    modem_status: 0xb0,
                    scratch: 0,
                    in_buffer: vec![],
                },
                pm: PmState {
                    status: 0,
                    enable: 0,
                    control: 1,
                    rcr: 0,
                    timer_ns: 5,
                },
                gpe: Gpe0::default(),
                cpu_hotplug: CpuHotplug::new(vec![0, 1], 1),
                virtio: vec![],
            },
            memory: MemoryLayout {
                file: MEMORY_FILE.into(),
                size: 134217728,
                ranges: vec![RamRangeAt {
                    guest_addr: 0,
                    size: 134217728,
                    file_offset: 0,
                }],
                data_pages: 3,
                crc32: 7,
            },
            cpu_slots: Some(serde_json::json!({"cpus": [], "anon_count": 0})),
        }
    }

    /// state.json is renamed into place: the directory ends with it alone (no temporary
    /// file), holding exactly the text; a directory that cannot be written is one error
    /// naming state.json, and leaves nothing.
    #[test]
    fn state_json_is_written_under_a_temporary_name_and_renamed() {
        let dir = std::env::temp_dir().join(format!("rvmm-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_state(&dir, &sample()).unwrap();
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [STATE_FILE]);
        let text = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert_eq!(text, state_text(&sample()));
        std::fs::remove_dir_all(&dir).unwrap();

        let missing = dir.join("gone");
        let e = write_state(&missing, &sample()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}/state.json: cannot write: ", missing.display())),
            "{e}"
        );
        assert!(!missing.exists());
    }

    #[test]
    fn state_json_round_trips_and_every_damage_has_its_message() {
        let path = Path::new("/snap/state.json");
        let text = state_text(&sample());
        let back = parse_state(path, text.as_bytes()).unwrap();
        assert_eq!(back.config.flags, sample().config.flags);

        // A changed digit in a value: the checksum.
        let flipped = text.replacen(
            "\"memory_bytes\": 134217728",
            "\"memory_bytes\": 134217729",
            1,
        );
        assert_ne!(flipped, text);
        let e = parse_state(path, flipped.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/snap/state.json: bad checksum (crc32 stored "),
            "{e}"
        );
        // Another version.
        let v2 = text.replacen("\"version\":1", "\"version\":2", 1);
        assert_eq!(
            parse_state(path, v2.as_bytes()).unwrap_err().to_string(),
            "/snap/state.json: snapshot format v2, this rvmm reads v1"
        );
        // Cut short.
        let e = parse_state(path, &text.as_bytes()[..text.len() / 2])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/snap/state.json: truncated or not JSON ("),
            "{e}"
        );
        // Not ours.
        assert_eq!(
            parse_state(path, br#"{"format":"qemu"}"#)
                .unwrap_err()
                .to_string(),
            "/snap/state.json: not an rvmm snapshot (format \"qemu\", expected \"rvmm-snapshot\")"
        );
    }

    #[test]
    fn virtio_state_round_trips_and_a_v1_snapshot_without_it_still_reads() {
        use crate::devices::virtio::mmio::{SavedQueue, TransportState};
        use crate::devices::virtio::{DeviceState, SavedVirtio};
        let path = Path::new("/snap/state.json");
        let mut snap = sample();
        snap.devices.virtio.push(SavedVirtio {
            slot: 0,
            device_id: 2,
            transport: TransportState {
                status: 15,
                device_features_sel: 1,
                driver_features_sel: 1,
                driver_features: 1 << 32,
                queue_sel: 0,
                interrupt_status: 1,
                config_generation: 0,
                queues: vec![SavedQueue {
                    max_size: 256,
                    size: 8,
                    bad_size: false,
                    ready: true,
                    desc_table: 0x1000,
                    avail_ring: 0x2000,
                    used_ring: 0x3000,
                    next_avail: 65535,
                    next_used: 65535,
                }],
            },
            device: DeviceState::Block {
                path: "/d.img".into(),
                size: 1 << 20,
                readonly: false,
                modified_ns: None,
            },
        });
        let back = parse_state(path, state_text(&snap).as_bytes()).unwrap();
        assert_eq!(back.devices.virtio, snap.devices.virtio);

        // A v1 state.json written before `virtio` existed: no such member at all.
        let mut value = serde_json::to_value(sample()).unwrap();
        let devices = value["devices"].as_object_mut().unwrap();
        assert!(devices.remove("virtio").is_some());
        let body = serde_json::to_string_pretty(&value).unwrap();
        assert!(!body.contains("virtio"));
        let text = format!(
            "{{\"format\":\"rvmm-snapshot\",\"version\":1,\"crc32\":\"{:08x}\",\"state\":{body}}}",
            Crc32::of(body.as_bytes())
        );
        let old = parse_state(path, text.as_bytes()).unwrap();
        assert!(old.devices.virtio.is_empty());
    }

    #[test]
    fn cpu_slots_round_trip_and_a_v1_snapshot_without_them_still_reads() {
        let path = Path::new("/snap/state.json");
        let mut snap = sample();
        let slots = serde_json::json!({"cpus": [{"index": 2, "id": "cpu2"}], "anon_count": 1});
        snap.cpu_slots = Some(slots.clone());
        let back = parse_state(path, state_text(&snap).as_bytes()).unwrap();
        assert_eq!(back.cpu_slots, Some(slots));

        // A v1 state.json written before `cpu_slots` existed.
        let mut value = serde_json::to_value(sample()).unwrap();
        assert!(value.as_object_mut().unwrap().remove("cpu_slots").is_some());
        let body = serde_json::to_string_pretty(&value).unwrap();
        let text = format!(
            "{{\"format\":\"rvmm-snapshot\",\"version\":1,\"crc32\":\"{:08x}\",\"state\":{body}}}",
            Crc32::of(body.as_bytes())
        );
        assert_eq!(parse_state(path, text.as_bytes()).unwrap().cpu_slots, None);
    }

    #[test]
    fn a_snapshot_directory_must_be_new_or_empty() {
        let base = std::env::temp_dir().join(format!("rvmm-snap-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        prepare_dir(&base).unwrap();
        prepare_dir(&base).unwrap();
        std::fs::write(base.join("x"), b"x").unwrap();
        let e = prepare_dir(&base).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "exists and is not an empty directory; a snapshot needs a new or empty one"
            ),
            "{e}"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
