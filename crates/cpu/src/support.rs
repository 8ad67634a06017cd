//! What the host's KVM can give a guest, as plain data: KVM_GET_SUPPORTED_CPUID, the
//! feature MSRs and a few capabilities, with QEMU 7.2's fixups applied per register
//! (`kvm_arch_get_supported_cpuid` / `kvm_arch_get_supported_msr_feature`).
//!
//! The VMM fills `HostCpuSupport` at its KVM edge; nothing here touches /dev/kvm. Filtering
//! a model against it is `filter`'s job; `-cpu host` expansion (`models::expand`) and the
//! model leaves (`models::leaves`) read it too.

use std::collections::BTreeMap;

use crate::cpuid::{CpuidEntry, CpuidReg};
use crate::features::{FeatureSet, FeatureWord, WordLocation};

/// CPUID.01H:EDX bits QEMU always reports as supported under KVM (MTRR, PAT, MCE, MCA:
/// "KVM before 2.6.30 misreports the following features").
const CPUID_1_EDX_ALWAYS: u64 = (1 << 12) | (1 << 16) | (1 << 7) | (1 << 14);
/// CPUID.01H:ECX[31], hypervisor present: QEMU may always set it.
const CPUID_1_ECX_HYPERVISOR: u64 = 1 << 31;
/// CPUID.01H:ECX[24], TSC-deadline timer: supported when KVM_CAP_TSC_DEADLINE_TIMER and the
/// irqchip is in the kernel.
const CPUID_1_ECX_TSC_DEADLINE: u64 = 1 << 24;
/// CPUID.01H:ECX[21], x2APIC: needs the in-kernel irqchip.
const CPUID_1_ECX_X2APIC: u64 = 1 << 21;
/// CPUID.06H:EAX[2], always-running APIC timer: safe because the APIC is emulated.
const CPUID_6_EAX_ARAT: u64 = 1 << 2;
/// CPUID.(EAX=07H,ECX=0):EBX[4] HLE and [11] RTM.
const CPUID_7_0_EBX_HLE_RTM: u64 = (1 << 4) | (1 << 11);
/// CPUID.(EAX=07H,ECX=0):EBX[25], Intel Processor Trace.
pub(crate) const CPUID_7_0_EBX_INTEL_PT: u64 = 1 << 25;
/// CPUID.(EAX=07H,ECX=0):EDX[29], IA32_ARCH_CAPABILITIES enumeration.
const CPUID_7_0_EDX_ARCH_CAPABILITIES: u64 = 1 << 29;
/// CPUID.80000001H:ECX[22], TOPOEXT: QEMU always allows it.
const CPUID_8000_0001_ECX_TOPOEXT: u64 = 1 << 22;
/// CPUID.80000001H:EDX bits that mirror CPUID.01H:EDX on AMD (QEMU's
/// CPUID_EXT2_AMD_ALIASES: FPU..APIC, MTRR..PSE36, MMX, FXSR).
pub const AMD_ALIASES: u64 = 0x0183_F3FF;
/// CPUID.40000001H:EAX[7], KVM_FEATURE_PV_UNHALT: needs the in-kernel irqchip.
const KVM_FEATURE_PV_UNHALT: u64 = 1 << 7;
/// CPUID.40000001H:EAX[15], KVM_FEATURE_MSI_EXT_DEST_ID: offered with a split irqchip.
const KVM_FEATURE_MSI_EXT_DEST_ID: u64 = 1 << 15;
/// CPUID.40000001H:EDX[0], KVM_HINTS_REALTIME: QEMU may always set it.
const KVM_HINTS_REALTIME: u64 = 1;
/// VMX capability MSRs whose low half is "must be one" and high half "may be one"
/// (SDM Vol. 3 Appendix A.3-A.5): IA32_VMX_PROCBASED_CTLS2 and the TRUE_* controls.
const VMX_CONTROL_MSRS: [u32; 5] = [0x48B, 0x48D, 0x48E, 0x48F, 0x490];

/// Intel PT: CPUID.(EAX=14H,ECX=0):EBX bits QEMU requires (CR3 filtering, PSB/CYC,
/// IP filtering, MTC).
const INTEL_PT_MINIMAL_EBX: u32 = 0xf;
/// CPUID.(EAX=14H,ECX=0):ECX bits QEMU requires (ToPA, multiple ToPA entries, single range).
const INTEL_PT_MINIMAL_ECX: u32 = 0x7;
/// CPUID.(EAX=14H,ECX=0):ECX[31], IP payloads are LIP.
pub(crate) const INTEL_PT_LIP: u32 = 1 << 31;
/// CPUID.(EAX=14H,ECX=1):EAX[31:16] MTC period bitmap QEMU requires (ART 0, 3, 6, 9).
const INTEL_PT_MTC_BITMAP: u32 = 0x0249 << 16;
/// CPUID.(EAX=14H,ECX=1):EAX[2:0], number of address ranges.
const INTEL_PT_ADDR_RANGES_NUM_MASK: u32 = 0x3;
const INTEL_PT_ADDR_RANGES_NUM: u32 = 0x2;
/// CPUID.(EAX=14H,ECX=1):EBX PSB frequency and cycle threshold bitmaps QEMU requires.
const INTEL_PT_PSB_CYCLE_BITMAP: u32 = (0x003f << 16) | 0x1fff;

/// What the host's KVM supports, as read at the KVM edge. `Default` is an empty host with
/// QEMU's default irqchip (in the kernel, not split).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCpuSupport {
    /// KVM_GET_SUPPORTED_CPUID.
    pub cpuid: Vec<CpuidEntry>,
    /// Raw values of the feature MSRs KVM_GET_MSR_FEATURE_INDEX_LIST lists, read with
    /// KVM_GET_MSRS on the system fd. An MSR missing here supports nothing.
    pub msr_features: BTreeMap<u32, u64>,
    /// The irqchip is in the kernel (QEMU's default; `kernel-irqchip=off` clears it).
    pub irqchip_in_kernel: bool,
    /// The irqchip is split (LAPIC in the kernel, IOAPIC in user space).
    pub irqchip_split: bool,
    /// KVM_CAP_TSC_DEADLINE_TIMER.
    pub tsc_deadline_timer: bool,
    /// IA32_ARCH_CAPABILITIES is in KVM_GET_MSR_INDEX_LIST (QEMU hides the CPUID bit
    /// otherwise, for Linux 4.17-4.20 on AMD hosts).
    pub has_msr_arch_capabilities: bool,
    /// KVM_GET_DEVICE_ATTR(KVM_X86_XCOMP_GUEST_SUPP), when the kernel has it: the XCR0
    /// components a guest may use, including those needing arch_prctl permission.
    pub xcomp_guest_supp: Option<u64>,
    /// The host is a Haswell with broken TSX (see `tsx_broken`): HLE/RTM are not offered.
    pub tsx_broken: bool,
}

impl Default for HostCpuSupport {
    fn default() -> Self {
        HostCpuSupport {
            cpuid: Vec::new(),
            msr_features: BTreeMap::new(),
            irqchip_in_kernel: true,
            irqchip_split: false,
            tsc_deadline_timer: false,
            has_msr_arch_capabilities: false,
            xcomp_guest_supp: None,
            tsx_broken: false,
        }
    }
}

/// QEMU's `host_tsx_broken`: Intel family 6 model 60, 69, 70, or 63 with stepping < 4.
pub fn tsx_broken(vendor_is_intel: bool, family: u32, model: u32, stepping: u32) -> bool {
    vendor_is_intel
        && family == 6
        && ((model == 63 && stepping < 4) || matches!(model, 60 | 69 | 70))
}

fn reg_value(entry: &CpuidEntry, reg: CpuidReg) -> u32 {
    match reg {
        CpuidReg::Eax => entry.eax,
        CpuidReg::Ebx => entry.ebx,
        CpuidReg::Ecx => entry.ecx,
        CpuidReg::Edx => entry.edx,
    }
}

impl HostCpuSupport {
    /// The raw register from KVM_GET_SUPPORTED_CPUID, 0 when the leaf is absent.
    pub fn raw_cpuid(&self, leaf: u32, subleaf: u32, reg: CpuidReg) -> u32 {
        self.cpuid
            .iter()
            .find(|e| e.function == leaf && e.index == subleaf)
            .map(|e| reg_value(e, reg))
            .unwrap_or(0)
    }

    /// The supported bits of one CPUID register with QEMU 7.2's fixups
    /// (`kvm_arch_get_supported_cpuid` in target/i386/kvm/kvm.c).
    pub fn supported_cpuid(&self, leaf: u32, subleaf: u32, reg: CpuidReg) -> u64 {
        let mut r = u64::from(self.raw_cpuid(leaf, subleaf, reg));
        match (leaf, subleaf, reg) {
            (1, _, CpuidReg::Edx) => r |= CPUID_1_EDX_ALWAYS,
            (1, _, CpuidReg::Ecx) => {
                r |= CPUID_1_ECX_HYPERVISOR;
                if self.irqchip_in_kernel && self.tsc_deadline_timer {
                    r |= CPUID_1_ECX_TSC_DEADLINE;
                }
                if !self.irqchip_in_kernel {
                    r &= !CPUID_1_ECX_X2APIC;
                }
            }
            (6, _, CpuidReg::Eax) => r |= CPUID_6_EAX_ARAT,
            (7, 0, CpuidReg::Ebx) if self.tsx_broken => r &= !CPUID_7_0_EBX_HLE_RTM,
            (7, 0, CpuidReg::Edx) if !self.has_msr_arch_capabilities => {
                r &= !CPUID_7_0_EDX_ARCH_CAPABILITIES
            }
            (0xD, 0, CpuidReg::Eax) => {
                if let Some(supp) = self.xcomp_guest_supp {
                    r = supp & 0xffff_ffff;
                }
            }
            (0xD, 0, CpuidReg::Edx) => {
                if let Some(supp) = self.xcomp_guest_supp {
                    r = supp >> 32;
                }
            }
            (0x8000_0001, _, CpuidReg::Ecx) => r |= CPUID_8000_0001_ECX_TOPOEXT,
            (0x8000_0001, _, CpuidReg::Edx) => {
                r |= self.supported_cpuid(1, 0, CpuidReg::Edx) & AMD_ALIASES;
            }
            (0x4000_0001, _, CpuidReg::Eax) => {
                if !self.irqchip_in_kernel {
                    r &= !KVM_FEATURE_PV_UNHALT;
                }
                if self.irqchip_split {
                    r |= KVM_FEATURE_MSI_EXT_DEST_ID;
                }
            }
            (0x4000_0001, _, CpuidReg::Edx) => r |= KVM_HINTS_REALTIME,
            _ => {}
        }
        r
    }

    /// The supported bits of a feature MSR (`kvm_arch_get_supported_msr_feature`): 0 when
    /// KVM does not list it; for VMX control MSRs the bits that may be one but need not be.
    pub fn supported_msr(&self, index: u32) -> u64 {
        let Some(&value) = self.msr_features.get(&index) else {
            return 0;
        };
        if VMX_CONTROL_MSRS.contains(&index) {
            let must_be_one = value & 0xffff_ffff;
            let can_be_one = value >> 32;
            can_be_one & !must_be_one
        } else {
            value
        }
    }

    /// QEMU's `x86_cpu_get_supported_feature_word(w, false)` under KVM.
    pub fn supported_word(&self, word: FeatureWord) -> u64 {
        match word.info().location {
            WordLocation::Cpuid { leaf, subleaf, reg } => {
                self.supported_cpuid(leaf, subleaf.unwrap_or(0), reg)
            }
            WordLocation::Msr { index } => self.supported_msr(index),
        }
    }

    /// Every word's supported bits.
    pub fn supported_set(&self) -> FeatureSet {
        let mut set = FeatureSet::new();
        for word in FeatureWord::all() {
            set.set_word(word, self.supported_word(word));
        }
        set
    }

    /// QEMU's extra Intel PT check: PT is usable only if the host's leaf 0x14 offers at
    /// least what QEMU reports to the guest, and LIP matches the requested LIP bit.
    pub(crate) fn intel_pt_usable(&self, requested_lip: bool) -> bool {
        let eax_0 = self.raw_cpuid(0x14, 0, CpuidReg::Eax);
        let ebx_0 = self.raw_cpuid(0x14, 0, CpuidReg::Ebx);
        let ecx_0 = self.raw_cpuid(0x14, 0, CpuidReg::Ecx);
        let eax_1 = self.raw_cpuid(0x14, 1, CpuidReg::Eax);
        let ebx_1 = self.raw_cpuid(0x14, 1, CpuidReg::Ebx);
        eax_0 != 0
            && ebx_0 & INTEL_PT_MINIMAL_EBX == INTEL_PT_MINIMAL_EBX
            && ecx_0 & INTEL_PT_MINIMAL_ECX == INTEL_PT_MINIMAL_ECX
            && eax_1 & INTEL_PT_MTC_BITMAP == INTEL_PT_MTC_BITMAP
            && eax_1 & INTEL_PT_ADDR_RANGES_NUM_MASK >= INTEL_PT_ADDR_RANGES_NUM
            && ebx_1 & INTEL_PT_PSB_CYCLE_BITMAP == INTEL_PT_PSB_CYCLE_BITMAP
            && (ecx_0 & INTEL_PT_LIP != 0) == requested_lip
    }
}

/// A synthetic host for unit tests, here and (with the `test-util` feature) in the VMM.
#[cfg(any(test, feature = "test-util"))]
pub mod testing {
    use super::*;
    use crate::identity::{HostIdentity, VendorId};

    /// The identity of the Haswell test host below.
    pub fn identity() -> HostIdentity {
        HostIdentity {
            vendor: VendorId::INTEL,
            family: 6,
            model: 60,
            stepping: 3,
            model_id: "Test CPU".to_string(),
        }
    }

    fn leaf(function: u32, index: u32, regs: [u32; 4]) -> CpuidEntry {
        CpuidEntry {
            function,
            index,
            flags: 0,
            eax: regs[0],
            ebx: regs[1],
            ecx: regs[2],
            edx: regs[3],
        }
    }

    /// An Intel host whose KVM offers a Haswell without FMA, PCID, MOVBE, F16C, RDRAND,
    /// HLE, RTM and INVPCID, with IA32_ARCH_CAPABILITIES = RDCL_NO | IBRS_ALL.
    pub fn host() -> HostCpuSupport {
        let (b, d, c) = VendorId::INTEL.regs();
        HostCpuSupport {
            cpuid: vec![
                leaf(0, 0, [0xd, b, c, d]),
                // ECX: sse3 pclmulqdq ssse3 cx16 sse4.1 sse4.2 x2apic popcnt aes xsave avx.
                leaf(1, 0, [0x306c3, 0, 0x16b8_2203, 0x078b_fbff]),
                // EBX: fsgsbase bmi1 avx2 smep bmi2 erms; EDX: arch-capabilities.
                leaf(7, 0, [0, 0x3a9, 0, 1 << 29]),
                leaf(0xA, 0, [0x0730_0402, 0, 0, 0x603]),
                leaf(0xD, 0, [0x7, 0x340, 0x340, 0]),
                leaf(0xD, 1, [0x1, 0, 0, 0]),
                leaf(0xD, 2, [0x100, 0x240, 0, 0]),
                leaf(0x4000_0001, 0, [0x0100_07fb, 0, 0, 0]),
                leaf(0x8000_0000, 0, [0x8000_0008, 0, 0, 0]),
                // ECX: lahf-lm abm; EDX: syscall nx rdtscp lm.
                leaf(0x8000_0001, 0, [0, 0, 0x21, 0x2810_0800]),
                leaf(0x8000_0008, 0, [0x3027, 0, 0, 0]),
            ],
            msr_features: BTreeMap::from([(0x10A, 0b11)]),
            irqchip_in_kernel: true,
            irqchip_split: false,
            tsc_deadline_timer: true,
            has_msr_arch_capabilities: true,
            xcomp_guest_supp: None,
            tsx_broken: false,
        }
    }
}

#[cfg(test)]
mod tests;
