//! The MSRs rvmm sets on every vCPU before it first runs, filtered to those KVM accepts
//! (KVM_GET_MSR_INDEX_LIST), so an MSR this host's KVM lacks never aborts a boot.

/// IA32_SYSENTER_CS/ESP/EIP (SDM Vol. 4, Table 2-2).
pub const MSR_IA32_SYSENTER_CS: u32 = 0x174;
pub const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
pub const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
/// IA32_STAR, IA32_LSTAR, IA32_CSTAR, IA32_FMASK, IA32_KERNEL_GS_BASE.
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_CSTAR: u32 = 0xc000_0083;
pub const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// IA32_TSC.
pub const MSR_IA32_TSC: u32 = 0x10;
/// IA32_MISC_ENABLE; bit 0 enables fast string operations.
pub const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
pub const MISC_ENABLE_FAST_STRING: u64 = 1 << 0;
/// IA32_MTRR_DEF_TYPE: bit 11 enables MTRRs, bits 7:0 the default type (6 = write-back).
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
pub const MTRR_ENABLE: u64 = 1 << 11;
pub const MTRR_TYPE_WRBACK: u64 = 6;

/// The boot MSR values, in the order they are set.
pub const BOOT_MSRS: &[(u32, u64)] = &[
    (MSR_IA32_SYSENTER_CS, 0),
    (MSR_IA32_SYSENTER_ESP, 0),
    (MSR_IA32_SYSENTER_EIP, 0),
    (MSR_STAR, 0),
    (MSR_CSTAR, 0),
    (MSR_KERNEL_GS_BASE, 0),
    (MSR_SYSCALL_MASK, 0),
    (MSR_LSTAR, 0),
    (MSR_IA32_TSC, 0),
    (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
    (MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRBACK),
];

/// The boot MSRs KVM accepts, given its index list.
pub fn boot_msrs(supported: &[u32]) -> Vec<(u32, u64)> {
    BOOT_MSRS
        .iter()
        .copied()
        .filter(|(index, _)| supported.contains(index))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_unsupported_msrs() {
        let got = boot_msrs(&[MSR_IA32_TSC, MSR_MTRR_DEF_TYPE, 0x10a]);
        assert_eq!(got, vec![(MSR_IA32_TSC, 0), (MSR_MTRR_DEF_TYPE, 0x806)]);
        assert!(boot_msrs(&[]).is_empty());
    }
}
