//! Builds the probe guest (see guest/probe) and places it in OUT_DIR.

fn main() {}
