//! Can this host run a snapshot's vCPUs? Checked before any of them runs: every CPUID
//! feature word of each saved table (the same words `cpu-compare` and the CPU-model filter
//! use, `cpu::features::FeatureWord`) must be within what this host's KVM supports
//! (KVM_GET_SUPPORTED_CPUID as `HostCpuSupport::supported_word` reads it) or what rvmm itself
//! puts in the table for this configuration (the bits it sets on any host, like
//! `hypervisor`); and each saved XSAVE area must fit this host's KVM (KVM_CAP_XSAVE2).
//! The missing features are named, e.g. `vCPU 0: avx512f, avx512bw`.
//!
//! A live migration's destination is stricter ([`missing_from_own`]): every feature of the
//! source's table must be in the destination's own table for that slot, the one its
//! `--cpu` model and features made, so a destination started with a narrower model refuses.

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
    lacking(table, |word, leaf, subleaf, reg| {
        host.supported_word(word) | word_value(rebuilt, leaf, subleaf, reg)
    })
}

/// The features `table` (a migration source's) has that `own` (the destination's table
/// for the same slot) lacks, by name.
pub fn missing_from_own(table: &[CpuidEntry], own: &[CpuidEntry]) -> Vec<String> {
    lacking(table, |_, leaf, subleaf, reg| {
        word_value(own, leaf, subleaf, reg)
    })
}

/// The feature bits of `table` outside what `ok` allows for each feature word.
fn lacking(
    table: &[CpuidEntry],
    ok: impl Fn(FeatureWord, u32, Option<u32>, CpuidReg) -> u64,
) -> Vec<String> {
    let mut missing = Vec::new();
    for word in FeatureWord::all() {
        let WordLocation::Cpuid { leaf, subleaf, reg } = word.info().location else {
            continue;
        };
        let have = word_value(table, leaf, subleaf, reg);
        let lacking = have & !ok(word, leaf, subleaf, reg);
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

    #[test]
    fn a_migration_destination_needs_every_feature_in_its_own_table() {
        let host = testing::host();
        let table: Vec<CpuidEntry> = host.cpuid.clone();
        assert!(missing_from_own(&table, &table).is_empty());
        let mut wide = table.clone();
        for e in wide.iter_mut().filter(|e| e.function == 7 && e.index == 0) {
            e.ebx |= 1 << 16;
        }
        let mut narrow = table.clone();
        for e in narrow
            .iter_mut()
            .filter(|e| e.function == 7 && e.index == 0)
        {
            e.ebx &= !(1 << 16);
        }
        // The host supports it, but the destination's own table does not have it.
        assert_eq!(missing_from_own(&wide, &narrow), ["avx512f"]);
        assert!(missing_features(&wide, &narrow, &host_with_avx512f(&host)).is_empty());
    }

    fn host_with_avx512f(host: &HostCpuSupport) -> HostCpuSupport {
        let mut h = host.clone();
        for e in h
            .cpuid
            .iter_mut()
            .filter(|e| e.function == 7 && e.index == 0)
        {
            e.ebx |= 1 << 16;
        }
        h
    }
}
