//! Link options for the `rvmm` binary; nothing is generated.
//!
//! rvmm is a position-independent executable, so the dynamic loader writes every absolute
//! pointer in its read-only tables (CPU model and feature names, clap's argument tables,
//! string slices in constants) at start. Stored as classic `Elf64_Rela` entries (24 bytes
//! each) those relocations are ~8,000 entries, 80-190 KiB that the loader reads once and
//! that stay resident for the life of the VM; packed as `DT_RELR` bitmaps
//! (`-z pack-relative-relocs`, GNU ld 2.38+, lld, mold; glibc 2.36+ or musl 1.2.4+ at run
//! time) they take ~3 KiB. Peak RSS of a minimal guest drops by about as much, start time a
//! little. Other crates' binaries (tests, benches) keep the default. The option set lives
//! here rather than in a workspace `.cargo/config.toml` so that it follows the binary
//! whichever way it is built (`cargo build`, `cargo install`).

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
