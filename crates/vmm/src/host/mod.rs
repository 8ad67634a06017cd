//! Host capabilities, probed once: /dev/kvm and its capabilities, the CPUID and MSRs KVM can
//! give a guest, host CPUs, NUMA nodes, huge page pools and KSM.
