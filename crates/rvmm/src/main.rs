//! The `rvmm` binary: argv → VmConfig → Vmm. The only place anyhow lives.

fn main() {}
