//! libFuzzer entry for `vmm::fuzz_targets::device_bus` (what it reaches is documented there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vmm::fuzz_targets::device_bus(data));
