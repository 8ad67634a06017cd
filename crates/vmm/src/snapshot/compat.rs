//! Can this host run a snapshot's vCPUs? Checked before any of them runs: every CPUID
//! feature word of each saved table (the same words `cpu-compare` and the CPU-model filter
//! use, `cpu::features::FeatureWord`) must be within what this host's KVM supports
//! (KVM_GET_SUPPORTED_CPUID as `HostCpuSupport::supported_word` reads it) or what rvmm itself
//! puts in the table for this configuration (the bits it sets on any host, like
//! `hypervisor`); and each saved XSAVE area must fit this host's KVM (KVM_CAP_XSAVE2).
//! The missing features are named, e.g. `vCPU 0: avx512f, avx512bw`.

use crate::cpu::cpuid::{CpuidEntry, CpuidReg};
use crate::cpu::features::{name_of, reg_name, FeatureWord, WordLocation};
use crate::cpu::support::HostCpuSupport;

/// A saved table's entry as [`CpuidEntry`].
pub fn entry(e: &[u32; 7]) -> CpuidEntry {
    CpuidEntry {
        function: e[0],
        index: e[1],
        flags: e[2],
        eax: e[3],
        ebx: e[4],
        ecx: e[5],
        edx: e[6],
    }
}

/// An entry as the snapshot keeps it.
pub fn saved(e: &CpuidEntry) -> [u32; 7] {
    [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx]
}

fn word_value(table: &[CpuidEntry], leaf: u32, subleaf: Option<u32>, reg: CpuidReg) -> u64 {
    table
        .iter()
        .find(|e| e.function == leaf && subleaf.is_none_or(|s| e.index == s))
        .map_or(0, |e| u64::from(e.reg(reg)))
}

/// The features `table` has that neither `host` supports nor `rebuilt` (the table rvmm
/// makes for the same configuration here) has, by name.
pub fn missing_features(
    table: &[CpuidEntry],
    rebuilt: &[CpuidEntry],
    host: &HostCpuSupport,
) -> Vec<String> {
    let mut missing = Vec::new();
    for word in FeatureWord::all() {
        let WordLocation::Cpuid { leaf, subleaf, reg } = word.info().location else {
            continue;
        };
        let have = word_value(table, leaf, subleaf, reg);
        let ok = host.supported_word(word) | word_value(rebuilt, leaf, subleaf, reg);
        let lacking = have & !ok;
        for bit in 0..32u8 {
            if lacking & (1 << bit) != 0 {
                missing.push(match name_of(word, bit) {
                    Some(name) => name.to_string(),
                    None => format!(
                        "CPUID.{leaf:X}H{}:{}[{bit}]",
                        subleaf.map(|s| format!(".{s}")).unwrap_or_default(),
                        reg_name(reg)
                    ),
                });
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::support::testing;

    #[test]
    fn features_beyond_the_host_are_named_and_the_hosts_own_pass() {
        let host = testing::host();
        let table: Vec<CpuidEntry> = host.cpuid.clone();
        assert!(missing_features(&table, &[], &host).is_empty());
        // AVX-512F is CPUID.(7,0):EBX bit 16; take it away from the host.
        let mut narrow = host.clone();
        for e in narrow
            .cpuid
            .iter_mut()
            .filter(|e| e.function == 7 && e.index == 0)
        {
            e.ebx &= !(1 << 16);
        }
        let mut wide = table.clone();
        for e in wide.iter_mut().filter(|e| e.function == 7 && e.index == 0) {
            e.ebx |= 1 << 16;
        }
        assert_eq!(missing_features(&wide, &[], &narrow), ["avx512f"]);
        // What rvmm's own table has is fine.
        assert!(missing_features(&wide, &wide, &narrow).is_empty());
        let e = saved(&wide[0]);
        assert_eq!(entry(&e), wide[0]);
    }
}
