//! The probe guest ELF, built from guest/probe by build.rs (see there).
