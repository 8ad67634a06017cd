/*
 * apic.c - the local APIC: IPIs, the one-shot timer, and sleeping until an interrupt.
 *
 * The BSP sleeps (sti; hlt) while an AP prints instead of spinning: on a small host a
 * spinning vCPU takes a host core from the one that prints.  An AP wakes it with a fixed
 * IPI when done; the one-shot timer bounds each sleep so that timeouts are still seen.
 *
 * No interrupt handler ever returns with IRET (this host's instruction emulator cannot do
 * a protected-mode IRET): irq_entry in entry.S drops the interrupt frame and returns from
 * sleep_until_interrupt() instead, with interrupts disabled again.
 */
#include "probe.h"

/* IA32_APIC_BASE MSR (SDM Vol. 3A 11.4.4): base address [51:12], EXTD bit 10, EN bit 11. */
#define MSR_APIC_BASE 0x1b
#define APIC_BASE_EXTD (1ull << 10)
#define APIC_BASE_EN (1ull << 11)
#define APIC_BASE_ADDR_MASK 0xffffff000ull
#define CPUID1_ECX_X2APIC (1u << 21)

/*
 * Register offsets in the xAPIC page (SDM Vol. 3A Table 11-1); the x2APIC MSR of each is
 * 0x800 + offset / 16 (Table 11-6).
 */
#define APIC_ID 0x20
#define APIC_EOI 0xb0
#define APIC_SVR 0xf0
#define APIC_ICR_LOW 0x300
#define APIC_ICR_HIGH 0x310
#define APIC_LVT_TIMER 0x320
#define APIC_TIMER_INITIAL 0x380
#define APIC_TIMER_CURRENT 0x390
#define APIC_TIMER_DIVIDE 0x3e0
#define X2APIC_MSR(reg) (0x800 + (reg) / 16)

/* Spurious-interrupt vector register: vector [7:0], APIC software enable bit 8 (11.9). */
#define SVR_APIC_ENABLE (1u << 8)
/* Divide configuration register: 1011b = divide by 1 (11.5.4). */
#define TIMER_DIVIDE_BY_1 0xb
#define ICR_DELIVERY_PENDING (1u << 12)

/* 64-bit IDT gate (SDM Vol. 3A 6.14.1): type 1110b = interrupt gate (clears IF), P bit. */
#define IDT_INTERRUPT_GATE (0xeull << 40)
#define IDT_PRESENT (1ull << 47)
#define IDT_ENTRIES 256
#define FIRST_EXTERNAL_VECTOR 32

/* Interrupt mask registers of the master and slave 8259A PICs. */
#define PIC1_DATA 0x21
#define PIC2_DATA 0xa1

static uint64_t apic_base;
static bool x2apic;
static uint64_t idt[IDT_ENTRIES * 2] __attribute__((aligned(16)));

extern void irq_entry(void);

static uint32_t apic_read(uint32_t reg)
{
	if (x2apic)
		return (uint32_t)rdmsr(X2APIC_MSR(reg));
	return *(volatile uint32_t *)phys(apic_base + reg);
}

static void apic_write(uint32_t reg, uint32_t v)
{
	if (x2apic)
		wrmsr(X2APIC_MSR(reg), v);
	else
		*(volatile uint32_t *)phys(apic_base + reg) = v;
}

static void set_gate(uint8_t vector, void (*handler)(void))
{
	uint64_t a = (uint64_t)(uintptr_t)handler;

	idt[2 * vector] = (a & 0xffff) | ((uint64_t)GDT_CODE64_SEL << 16) | IDT_INTERRUPT_GATE |
			  IDT_PRESENT | ((a >> 16 & 0xffff) << 48);
	idt[2 * vector + 1] = a >> 32;
}

/* Software-enables this CPU's APIC (SVR) and points it at our IDT. */
static void enable_this_cpu(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };

	__asm__ volatile("lidt %0" : : "m"(idtr));
	apic_write(APIC_SVR, SVR_APIC_ENABLE | APIC_SPURIOUS_VECTOR);
}

void apic_init_bsp(void)
{
	uint64_t msr = rdmsr(MSR_APIC_BASE);

	apic_base = msr & APIC_BASE_ADDR_MASK;
	x2apic = (msr & APIC_BASE_EN) && (msr & APIC_BASE_EXTD);
	/*
	 * Firmware (SeaBIOS) leaves the 8259 PICs unmasked with the PIT ticking and IRQs on
	 * vectors 0x08-0x0f, which are exception vectors to us: mask every PIC line (OCW1).
	 */
	outb(PIC1_DATA, 0xff);
	outb(PIC2_DATA, 0xff);
	/*
	 * Every external-interrupt vector just wakes the sleeper: interrupts are enabled only
	 * inside sleep_until_interrupt().  Exception vectors 0-31 get no gate, so a fault
	 * ends in a visible triple fault.
	 */
	for (uint32_t v = FIRST_EXTERNAL_VECTOR; v < IDT_ENTRIES; v++)
		set_gate((uint8_t)v, irq_entry);
	enable_this_cpu();
}

/* An AP uses the mode the BSP chose (x2APIC only when IDs above 254 need it). */
void apic_init_ap(void)
{
	if (x2apic)
		wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EXTD);
	enable_this_cpu();
}

bool apic_enter_x2apic(void)
{
	uint32_t r[4];

	if (x2apic)
		return true;
	cpuid(1, 0, r);
	if (!(r[2] & CPUID1_ECX_X2APIC))
		return false;
	/* xAPIC -> x2APIC: set EXTD while EN is set (SDM 11.12.5). */
	wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EXTD);
	x2apic = true;
	return true;
}

bool apic_x2apic(void)
{
	return x2apic;
}

uint32_t apic_self_id(void)
{
	if (x2apic)
		return apic_read(APIC_ID); /* the full 32-bit x2APIC ID */
	return apic_read(APIC_ID) >> 24; /* xAPIC ID register: ID in [31:24] */
}

/*
 * Interrupt Command Register (SDM 11.6.1): the destination is ICR[63:56] in xAPIC mode and
 * ICR[63:32] in x2APIC mode, where the ICR is one 64-bit MSR (11.12.9).
 */
void apic_send_ipi(uint32_t dest, uint32_t icr_low)
{
	if (x2apic) {
		wrmsr(X2APIC_MSR(APIC_ICR_LOW), ((uint64_t)dest << 32) | icr_low);
		return;
	}
	apic_write(APIC_ICR_HIGH, dest << 24);
	apic_write(APIC_ICR_LOW, icr_low);
	for (int i = 0; i < 100 && (apic_read(APIC_ICR_LOW) & ICR_DELIVERY_PENDING); i++)
		cpu_pause();
}

void apic_eoi(void)
{
	apic_write(APIC_EOI, 0);
}

/* One-shot timer (LVT timer mode bits [18:17] = 00) of `count` bus clocks; 0 stops it. */
void apic_timer_oneshot(uint32_t count)
{
	if (count) {
		apic_write(APIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_1);
		apic_write(APIC_LVT_TIMER, APIC_TIMER_VECTOR);
	}
	apic_write(APIC_TIMER_INITIAL, count);
}

/* The timer's current count (counts down from the initial count to 0). */
uint32_t apic_timer_current(void)
{
	return apic_read(APIC_TIMER_CURRENT);
}
