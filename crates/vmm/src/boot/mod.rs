//! Getting a kernel into guest memory and the boot vCPU into its entry state: the Linux boot
//! protocol (bzImage), PVH (ELF vmlinux and the probe guest), the e820 map and ACPI tables.

pub mod acpi;
