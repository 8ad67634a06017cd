//! Link options for the `rvmm` binary; nothing is generated.
//!
//! rvmm is a position-independent executable, so the dynamic loader writes every absolute
//! pointer in its read-only tables (CPU model and feature names, clap's argument tables,
//! string slices in constants) at start. Stored as classic `Elf64_Rela` entries (24 bytes
//! each) those relocations are ~8,000 entries, 80-190 KiB that the loader reads once and
//! that stay resident for the life of the VM; packed as `DT_RELR` bitmaps
//! (`-z pack-relative-relocs`, GNU ld 2.38+, lld, mold; glibc 2.36+ or musl 1.2.4+ at run
//! time, so only when the building host's glibc has it) they take ~3 KiB. Peak RSS of a
//! minimal guest drops by about as much, start time a little.
//!
//! The kernel maps a file's pages 64 KiB around each fault ("fault-around"), and a start of
//! rvmm runs ~1,000 functions (~370 KiB) spread over all of its 1.5-1.8 MiB of code, so every
//! page of the code ended up resident. `hot-text.ld` lists those functions as input-section
//! patterns (one section per function is rustc's default) in an output section `.text.hot`
//! placed before `.text`, so they share pages and the rest is never mapped: ~0.6-0.9 MiB
//! less peak RSS. The list comes from callgrind runs of the probe guest
//! (`scripts/hot-text.sh` regenerates it); a stale list costs memory, never correctness.
//! The same script moves `.gcc_except_table` (read only when a panic unwinds) from the front
//! of the read-only data to after `.eh_frame`, out of the pages a start faults in.
//!
//! Other crates' binaries (tests, benches) keep the default layout. The options live here
//! rather than in a workspace `.cargo/config.toml` so that they follow the binary whichever
//! way it is built (`cargo build`, `cargo install`); GNU ld and lld both take them.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=hot-text.ld");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    // DT_RELR needs glibc 2.36 where the binary runs: pack only when the building host has
    // it (`cargo install` builds where it runs), so older hosts get a binary that starts.
    if host_glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!(
        "cargo:rustc-link-arg-bins=-Wl,-T,{}",
        dir.join("hot-text.ld").display()
    );
}

/// Whether `getconf GNU_LIBC_VERSION` reports glibc `major.minor` or later (false when it
/// cannot tell, e.g. on musl).
fn host_glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}
