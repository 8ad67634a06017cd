/*
 * trampoline.S - where an AP starts after INIT + Start-up IPI.
 *
 * The BSP copies tramp_start..tramp_end to TRAMPOLINE_PADDR before waking an AP.  The AP
 * starts in real mode at CS = TRAMPOLINE_PADDR >> 4, IP = 0 (SDM Vol. 3A 9.4.4), so code
 * here is position dependent on that copy: every absolute address is written as
 * TRAMPOLINE_PADDR + (label - tramp_start).  The bytes live in .rodata because they are
 * only ever executed from the copy.
 *
 * Real mode -> 32-bit protected mode with our GDT -> enable_long_mode (entry.S, same page
 * tables as the BSP) -> ap_long_entry in 64-bit mode.
 */
#include "layout.h"

#define TRAMP(label) (TRAMPOLINE_PADDR + (label) - tramp_start)

	.section .rodata.trampoline, "a", @progbits
	.globl tramp_start, tramp_end
	.code16
tramp_start:
	cli
	cld
	/* DS = CS so the GDT pseudo-descriptor below is addressable as an offset. */
	movw %cs, %ax
	movw %ax, %ds
	/* 32-bit operand size loads the full 32-bit GDT base (the GDT is above 1 MiB). */
	lgdtl tramp_gdt_desc - tramp_start
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $GDT_CODE32_SEL, $TRAMP(tramp_pm32)

	.code32
tramp_pm32:
	movw $GDT_DATA_SEL, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	/* A stack for the call: the top of the trampoline page, unused by the code. */
	movl $(TRAMPOLINE_PADDR + 0x1000), %esp
	movl $enable_long_mode, %eax
	call *%eax
	ljmp $GDT_CODE64_SEL, $ap_long_entry

	.balign 8
tramp_gdt_desc:
	.word GDT_LIMIT
	.long gdt
tramp_end:

	.section .note.GNU-stack, "", @progbits
