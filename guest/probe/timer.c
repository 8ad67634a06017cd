/*
 * timer.c - sleeping on the local APIC one-shot timer, for modes whose every vCPU sleeps
 * at once (load.c, counter.c), and the TSC calibrated against that timer.
 *
 * timer_sleep() is sti; hlt; cli.  The interrupt that wakes it never returns with IRET
 * (this host's instruction emulator cannot do one): timer_irq_entry drops the frame and
 * returns from timer_sleep(), finding the sleeper's stack in the frame itself (the RSP the
 * CPU pushed), so every vCPU can sleep at once.  entry.S's irq_entry keeps one saved stack
 * pointer for the BSP and cannot serve here.  Its gates fill timer_idt from vector 32 up,
 * which every vCPU loads with timer_use_idt().
 *
 * KVM's APIC timer counts at 1 GHz with divide-by-1, as smp.c and hotplug.c assume too.
 */
#include "probe.h"

/* Offset of the interrupted RSP in a 64-bit interrupt frame (RIP, CS, RFLAGS, RSP, SS). */
#define FRAME_RSP 24
/* 64-bit interrupt gate, present (SDM Vol. 3A 6.14.1). */
#define IDT_INTERRUPT_GATE (0xeull << 40)
#define IDT_PRESENT (1ull << 47)
#define IDT_ENTRIES 256
#define FIRST_EXTERNAL_VECTOR 32

static uint64_t timer_idt[IDT_ENTRIES * 2] __attribute__((aligned(16)));

void timer_irq_entry(void);

__asm__(".pushsection .text\n"
	".globl timer_sleep\n"
	"timer_sleep:\n"
	"	sti\n"
	"	hlt\n"
	"	cli\n"
	"	ret\n"
	".globl timer_irq_entry\n"
	"timer_irq_entry:\n"
	"	movq 24(%rsp), %rsp\n" /* FRAME_RSP: the sleeper's stack, its return address on top */
	"	subq $8, %rsp\n" /* the ABI's 16-byte alignment at the call */
	"	call apic_eoi\n"
	"	addq $8, %rsp\n"
	"	ret\n"
	".popsection\n");

_Static_assert(FRAME_RSP == 24, "timer_irq_entry's frame offset");

void timer_idt_init(void)
{
	uint64_t a = (uint64_t)(uintptr_t)timer_irq_entry;
	for (uint32_t v = FIRST_EXTERNAL_VECTOR; v < IDT_ENTRIES; v++) {
		timer_idt[2 * v] = (a & 0xffff) | ((uint64_t)GDT_CODE64_SEL << 16) |
				   IDT_INTERRUPT_GATE | IDT_PRESENT | ((a >> 16 & 0xffff) << 48);
		timer_idt[2 * v + 1] = a >> 32;
	}
}

void timer_use_idt(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = { sizeof(timer_idt) - 1, (uint64_t)(uintptr_t)timer_idt };

	__asm__ volatile("lidt %0" : : "m"(idtr));
}

uint64_t timer_calibrate_tsc_hz(uint32_t counts)
{
	apic_timer_oneshot(0xffffffffu);
	uint32_t c0 = apic_timer_current();
	uint64_t t0 = rdtsc();
	uint64_t give_up = tsc_hz(); /* ~1 s by the CPUID guess: a timer that does not count */
	uint32_t c1;
	uint64_t t1;
	do {
		c1 = apic_timer_current();
		t1 = rdtsc();
	} while (c0 - c1 < counts && c1 != 0 && t1 - t0 < give_up);
	apic_timer_oneshot(0);
	if (c0 == c1)
		return tsc_hz();
	return (t1 - t0) * TIMER_COUNTS_PER_S / (c0 - c1);
}
