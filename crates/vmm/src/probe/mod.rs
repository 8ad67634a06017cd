//! The built-in probe guest: the PVH ELF built from `guest/probe` by build.rs and embedded
//! here, the serial capture that watches COM1 for its dump markers (`serial`), and the
//! decoder that turns the dump into what a guest sees.

pub mod acpi_parse;
pub mod decode;
pub mod flags;
pub mod image;
pub mod leaves;
pub mod render;
pub mod serial;
#[cfg(test)]
pub(crate) mod synth;
pub mod topology;
pub mod view;
