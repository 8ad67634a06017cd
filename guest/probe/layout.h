/*
 * layout.h - addresses and selectors shared by the assembly and C parts of the probe guest.
 *
 * Only preprocessor constants live here so that both entry.S/trampoline.S and the C files
 * can include it.
 */
#ifndef PROBE_LAYOUT_H
#define PROBE_LAYOUT_H

/*
 * Physical page the AP start-up trampoline is copied to.  A Start-up IPI carries an 8-bit
 * vector VV and the AP starts in real mode at CS:IP = VV00:0000, i.e. physical VV000, so the
 * page must be below 1 MiB and 4 KiB aligned (SDM Vol. 3A 9.4.4 "MP Initialization Example").
 * rvmm keeps hvm_start_info at 0x6000, page tables at 0x9000 and the command line at
 * 0x20000; 0x8000 is clear of all three.
 */
#define TRAMPOLINE_PADDR 0x8000
#define TRAMPOLINE_SIPI_VECTOR (TRAMPOLINE_PADDR >> 12)

/* Our GDT (entry.S): flat 32-bit code, flat data, 64-bit code. */
#define GDT_CODE32_SEL 0x08
#define GDT_DATA_SEL 0x10
#define GDT_CODE64_SEL 0x18
#define GDT_LIMIT (4 * 8 - 1)

/* Control register and MSR bits used to enter long mode (SDM Vol. 3A 2.5, 9.8.5). */
#define CR0_PE (1 << 0)
#define CR0_NW (1 << 29)
#define CR0_CD (1 << 30)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)

/* Each AP gets its own stack above the image (busy mode keeps every AP running). */
#define AP_STACK_SIZE 8192
#define BSP_STACK_SIZE 16384

#endif
