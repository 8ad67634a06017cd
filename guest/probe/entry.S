/*
 * entry.S - PVH entry point: from 32-bit protected mode into 64-bit long mode, then C.
 *
 * PVH boot (Xen's "HVM direct boot ABI", also used by QEMU, Firecracker and rvmm): the loader
 * finds our 32-bit entry in the XEN_ELFNOTE_PHYS32_ENTRY ELF note and starts the BSP there in
 * flat 32-bit protected mode with paging off, interrupts off and EBX = physical address of
 * struct hvm_start_info.  Nothing else (stack, GDT contents) may be relied on.
 *
 * We identity-map the low 4 GiB with 2 MiB pages (static tables below, so there is no loop to
 * run), switch to long mode and call probe_main(start_info).  APs reach ap_long_entry from
 * the real-mode trampoline (trampoline.S) and call ap_main() on the stack the BSP chose.
 */
#include "layout.h"

/* Xen public/elfnote.h: "Physical entry point into the kernel", a 32-bit entry point. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/*
 * The note: namesz, descsz, type, "Xen\0", entry.  4-byte alignment matters: QEMU pads the
 * name to the PT_NOTE segment's alignment, so a larger alignment would make it read the
 * wrong bytes.  The descriptor is 8 bytes like Linux's; loaders read its low 32 bits.
 */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 8
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.balign 4
	.quad pvh_start

	.section .text.entry, "ax", @progbits
	.code32
	.globl pvh_start
pvh_start:
	cli
	cld
	/* Keep EBX (hvm_start_info) in ESI: rep stosl uses EAX, ECX and EDI. */
	movl %ebx, %esi

	/*
	 * Zero .bss: a loader copies only the file bytes and need not clear the rest.  Kept
	 * small (stacks live in .stack, which needs no clearing): every REP iteration is
	 * emulated one by one on some hosts.
	 */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl
	movl %esi, start_info_paddr

	/* Our own GDT; the flat data selector for every data segment. */
	lgdt gdt_desc
	movw $GDT_DATA_SEL, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $bsp_stack_top, %esp

	call enable_long_mode
	ljmp $GDT_CODE64_SEL, $bsp_long_entry

/*
 * Long mode from 32-bit protected mode (SDM Vol. 3A 9.8.5 "Initializing IA-32e Mode"):
 * CR4.PAE, CR3 = PML4, EFER.LME, then CR0.PG; the far jump to a 64-bit code segment that
 * follows leaves compatibility mode.  CR0.CD/NW are cleared too (an AP starts with them set).
 * Shared by the BSP and by the trampoline (which calls it through an absolute address).
 */
	.globl enable_long_mode
enable_long_mode:
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	andl $~(CR0_CD | CR0_NW), %eax
	orl $(CR0_PG | CR0_PE), %eax
	movl %eax, %cr0
	ret

	.code64
bsp_long_entry:
	movl start_info_paddr(%rip), %edi
	call probe_main
	jmp halt_forever

	.globl ap_long_entry
ap_long_entry:
	movw $GDT_DATA_SEL, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movq ap_stack_top(%rip), %rsp
	call ap_main
	jmp halt_forever

/*
 * void sleep_until_interrupt(void): enable interrupts and halt until one arrives.
 *
 * irq_entry (every IDT gate we install) does not IRET: it throws the interrupt frame
 * away, restores the stack pointer saved here, sends the EOI and returns to our caller as
 * if this function had returned.  The gate is an interrupt gate, so IF is clear again.
 * STI's one-instruction interrupt shadow covers HLT, so an interrupt already pending when
 * we get here wakes the HLT rather than being taken before it.
 */
	.globl sleep_until_interrupt
sleep_until_interrupt:
	movq %rsp, irq_resume_rsp(%rip)
	sti
	hlt
	cli
	ret

	.globl irq_entry
irq_entry:
	movq irq_resume_rsp(%rip), %rsp
	subq $8, %rsp		/* the ABI's 16-byte alignment at the call */
	call apic_eoi
	addq $8, %rsp
	ret

	.globl halt_forever
halt_forever:
	cli
1:	hlt
	jmp 1b

	.section .data
	.globl start_info_paddr
	.balign 4
start_info_paddr:
	.long 0
	.balign 8
irq_resume_rsp:
	.quad 0

/*
 * GDT: null, flat 32-bit code (0x08), flat data (0x10), 64-bit code (0x18).  Descriptor
 * fields per SDM Vol. 3A 3.4.5: base 0, limit 0xfffff with G=1, P=1, DPL 0; D=1 for 32-bit
 * code, L=1 (and D=0) for 64-bit code.
 */
	.balign 16
	.globl gdt
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff
	.quad 0x00cf92000000ffff
	.quad 0x00af9a000000ffff
	.globl gdt_desc
gdt_desc:
	.word GDT_LIMIT
	.long gdt

/*
 * Identity map of 0..4 GiB: one PML4 entry -> one PDPT with four entries -> four page
 * directories of 512 2-MiB pages each (SDM Vol. 3A 4.5, PDE with PS=1).  Bits: P (0),
 * R/W (1), PS (7).  This covers RAM, the ACPI tables and the local APIC at 0xfee00000.
 */
#define PTE_P_RW 0x3
#define PDE_2M (PTE_P_RW | 0x80)
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + PTE_P_RW
	.fill 511, 8, 0
pdpt:
	.quad pd + PTE_P_RW
	.quad pd + 0x1000 + PTE_P_RW
	.quad pd + 0x2000 + PTE_P_RW
	.quad pd + 0x3000 + PTE_P_RW
	.fill 508, 8, 0
pd:
	.set page, 0
	.rept 2048
	.quad (page << 21) + PDE_2M
	.set page, page + 1
	.endr

	.section .stack, "aw", @nobits
	.balign 16
bsp_stack:
	.skip BSP_STACK_SIZE
bsp_stack_top:

	.section .note.GNU-stack, "", @progbits
