//! Emulated devices and the port-I/O / MMIO bus that routes guest accesses to them: COM1
//! (8250), the i8042 reset line, and the ACPI power-management registers.
