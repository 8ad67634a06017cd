//! QEMU 7.2's VMX capability sets as shared groups: each Intel generation's VMX features as
//! the previous generation's plus what it added, so the ~60-name block every Intel model
//! repeats in QEMU's `builtin_x86_defs[]` is written once. Models take a group, with their
//! own differences (`models::intel_core`, `intel_xeon`, `intel_other`).

use crate::feats;
use crate::features::FeatureSet;

/// Nehalem's VMX capabilities, the base every later Intel model builds on.
pub(super) const VMX_NEHALEM: FeatureSet = FeatureSet::of(feats![
    VMX_VINTR_PENDING VMX_TSC_OFFSET VMX_HLT_EXIT VMX_INVLPG_EXIT VMX_MWAIT_EXIT VMX_RDPMC_EXIT
    VMX_RDTSC_EXIT VMX_CR3_LOAD_NOEXIT VMX_CR3_STORE_NOEXIT VMX_CR8_LOAD_EXIT VMX_CR8_STORE_EXIT
    VMX_FLEXPRIORITY VMX_VNMI_PENDING VMX_MOVDR_EXIT VMX_IO_EXIT VMX_IO_BITMAP VMX_MTF
    VMX_MSR_BITMAP VMX_MONITOR_EXIT VMX_PAUSE_EXIT VMX_SECONDARY_CTLS VMX_APICV_XAPIC VMX_EPT
    VMX_DESC_EXIT VMX_RDTSCP_EXIT VMX_APICV_X2APIC VMX_VPID VMX_WBINVD_EXIT VMX_INTR_EXIT
    VMX_NMI_EXIT VMX_VNMI VMX_PREEMPTION_TIMER VMX_EXIT_NOSAVE_DEBUGCTL
    VMX_EXIT_LOAD_PERF_GLOBAL_CTRL VMX_EXIT_ACK_INTR VMX_EXIT_SAVE_PAT VMX_EXIT_LOAD_PAT
    VMX_EXIT_SAVE_EFER VMX_EXIT_LOAD_EFER VMX_EXIT_SAVE_PREEMPTION_TIMER VMX_ENTRY_NOLOAD_DEBUGCTL
    VMX_ENTRY_IA32E_MODE VMX_ENTRY_LOAD_PERF_GLOBAL_CTRL VMX_ENTRY_LOAD_PAT VMX_ENTRY_LOAD_EFER
    VMX_ACTIVITY_HLT VMX_EPT_EXECONLY VMX_PAGE_WALK_4 VMX_EPT_2MB VMX_EPT_1GB VMX_INVEPT
    VMX_INVEPT_SINGLE_CONTEXT VMX_INVEPT_ALL_CONTEXT VMX_INVVPID VMX_INVVPID_SINGLE_ADDR
    VMX_INVVPID_ALL_CONTEXT VMX_INVEPT_SINGLE_CONTEXT_NOGLOBALS VMX_INS_OUTS VMX_TRUE_CTLS
]);

/// Westmere adds unrestricted guests and IA32_VMX_MISC.LMA storing.
pub(super) const VMX_WESTMERE: FeatureSet =
    VMX_NEHALEM.with(feats![VMX_UNRESTRICTED_GUEST VMX_STORE_LMA]);

/// Ivy Bridge adds APIC virtualization, posted interrupts and RDRAND exiting.
pub(super) const VMX_IVYBRIDGE: FeatureSet =
    VMX_WESTMERE.with(feats![VMX_APICV_REGISTER VMX_APICV_VID VMX_RDRAND_EXIT VMX_POSTED_INTR]);

/// Haswell adds VMCS shadowing, VM functions (EPTP switching), EPT A/D bits and INVPCID exiting.
pub(super) const VMX_HASWELL: FeatureSet = VMX_IVYBRIDGE.with(feats![
    VMX_INVPCID_EXIT VMX_VMFUNC VMX_SHADOW_VMCS VMX_VMWRITE_VMEXIT_FIELDS VMX_EPTAD
    VMX_EPTP_SWITCHING
]);

/// Broadwell adds RDSEED exiting and page-modification logging.
pub(super) const VMX_BROADWELL: FeatureSet = VMX_HASWELL.with(feats![VMX_RDSEED_EXIT VMX_PML]);
