/*
 * smp.c - list the processors from the MADT and start the APs one at a time.
 *
 * Each AP is started the way firmware does it (SDM Vol. 3A 9.4.4.1 "Typical BSP
 * Initialization Sequence"): an INIT IPI, then two Start-up IPIs whose vector names the
 * trampoline page.  The AP runs trampoline.S -> entry.S -> ap_main() below, does its task,
 * sets ap_done, and parks.  Only the BSP ever spins (with PAUSE): on a small host, spinning
 * vCPUs would starve the one that prints.  Every wait is bounded by about a second of TSC.
 */
#include "probe.h"

/* MADT layout (ACPI 6.5 5.2.12): header, Local Interrupt Controller Address, Flags, then
 * interrupt controller structures of (type, length, ...). */
#define MADT_ENTRIES 44
#define MADT_TYPE_LAPIC 0 /* 5.2.12.2: ACPI processor UID, APIC ID (u8), flags (u32) */
#define MADT_TYPE_X2APIC 9 /* 5.2.12.12: reserved, x2APIC ID (u32), flags, UID */
#define MADT_LAPIC_ENABLED (1u << 0)

/* IA32_APIC_BASE MSR (SDM Vol. 3A 11.4.4): base address [51:12], EN bit 11, EXTD bit 10. */
#define MSR_APIC_BASE 0x1b
#define APIC_BASE_EXTD (1ull << 10)
#define APIC_BASE_EN (1ull << 11)
#define APIC_BASE_ADDR_MASK 0xffffff000ull
#define CPUID1_ECX_X2APIC (1u << 21)

/* xAPIC registers (SDM Vol. 3A Table 11-1) and their x2APIC MSRs (Table 11-6). */
#define XAPIC_ID 0x20
#define XAPIC_ICR_LOW 0x300
#define XAPIC_ICR_HIGH 0x310
#define X2APIC_MSR_ID 0x802
#define X2APIC_MSR_ICR 0x830
#define XAPIC_MAX_ID 254 /* 255 is the xAPIC broadcast destination */

/*
 * Interrupt Command Register low dword (SDM Vol. 3A 11.6.1): vector [7:0], delivery mode
 * [10:8] (101b INIT, 110b Start-up), destination mode bit 11 (0 = physical), delivery
 * status bit 12, level bit 14 (1 = assert), trigger mode bit 15 (1 = level).  In xAPIC
 * mode the destination APIC ID is ICR[63:56]; in x2APIC mode it is ICR[63:32].
 */
#define ICR_DM_INIT (5u << 8)
#define ICR_DM_STARTUP (6u << 8)
#define ICR_DELIVERY_PENDING (1u << 12)
#define ICR_LEVEL_ASSERT (1u << 14)
#define ICR_TRIGGER_LEVEL (1u << 15)

#define MAX_CPUS 1024

struct cpu {
	uint32_t apic_id;
};

static struct cpu cpus[MAX_CPUS];
static uint32_t ncpus;
static uint32_t bsp_index;
static bool x2apic_mode;
static uint64_t apic_base;
static bool trampoline_ready;

/* Handed to the AP being started (read by entry.S and ap_main). */
uint64_t ap_stack_top;
static volatile uint32_t ap_cpu;
static volatile uint32_t ap_task;
static volatile uint32_t ap_done;

extern const uint8_t tramp_start[], tramp_end[];
extern uint8_t __image_end[];

static uint32_t xapic_read(uint32_t reg)
{
	return *(volatile uint32_t *)phys(apic_base + reg);
}

static void xapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)phys(apic_base + reg) = v;
}

static uint32_t own_apic_id(void)
{
	if (x2apic_mode)
		return (uint32_t)rdmsr(X2APIC_MSR_ID);
	return xapic_read(XAPIC_ID) >> 24; /* xAPIC ID register: ID in [31:24] */
}

static void send_ipi(uint32_t apic_id, uint32_t icr_low)
{
	if (x2apic_mode) {
		wrmsr(X2APIC_MSR_ICR, ((uint64_t)apic_id << 32) | icr_low);
		return;
	}
	xapic_write(XAPIC_ICR_HIGH, apic_id << 24);
	xapic_write(XAPIC_ICR_LOW, icr_low);
	for (int i = 0; i < 1000 && (xapic_read(XAPIC_ICR_LOW) & ICR_DELIVERY_PENDING); i++)
		cpu_pause();
}

static void add_cpu(uint32_t apic_id, uint32_t flags)
{
	if (!(flags & MADT_LAPIC_ENABLED) || ncpus == MAX_CPUS)
		return;
	cpus[ncpus++].apic_id = apic_id;
}

/* x2APIC mode is needed to address APIC IDs above 254; switch if the CPU has it. */
static void maybe_enter_x2apic(void)
{
	uint32_t r[4];
	bool needed = false;

	for (uint32_t i = 0; i < ncpus; i++)
		needed |= cpus[i].apic_id > XAPIC_MAX_ID;
	cpuid(1, 0, r);
	if (needed && !x2apic_mode && (r[2] & CPUID1_ECX_X2APIC)) {
		/* xAPIC -> x2APIC: set EXTD with EN already set (SDM 11.12.5). */
		wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EXTD);
		x2apic_mode = true;
	}
}

uint32_t smp_init(const uint8_t *madt)
{
	uint64_t msr = rdmsr(MSR_APIC_BASE);

	apic_base = msr & APIC_BASE_ADDR_MASK;
	x2apic_mode = (msr & APIC_BASE_EN) && (msr & APIC_BASE_EXTD);
	ncpus = 0;
	if (madt) {
		uint32_t len = rd32(madt + 4);
		for (uint32_t off = MADT_ENTRIES; off + 2 <= len;) {
			const uint8_t *e = madt + off;
			if (e[1] < 2)
				break; /* malformed: would not advance */
			if (e[0] == MADT_TYPE_LAPIC && e[1] >= 8)
				add_cpu(e[3], rd32(e + 4));
			else if (e[0] == MADT_TYPE_X2APIC && e[1] >= 16)
				add_cpu(rd32(e + 4), rd32(e + 8));
			off += e[1];
		}
	}
	maybe_enter_x2apic();

	uint32_t self = own_apic_id();
	bsp_index = 0;
	for (uint32_t i = 0; i < ncpus; i++)
		if (cpus[i].apic_id == self)
			bsp_index = i;
	if (ncpus == 0)
		cpus[ncpus++].apic_id = self;
	return ncpus;
}

uint32_t smp_bsp_index(void)
{
	return bsp_index;
}

uint32_t smp_apic_id(uint32_t cpu)
{
	return cpus[cpu].apic_id;
}

static bool wait_done(uint64_t timeout_ticks)
{
	uint64_t start = rdtsc();

	while (!__atomic_load_n(&ap_done, __ATOMIC_ACQUIRE)) {
		if (rdtsc() - start > timeout_ticks)
			return false;
		cpu_pause();
	}
	return true;
}

bool smp_run_ap(uint32_t cpu, enum ap_task task)
{
	uint32_t apic_id = cpus[cpu].apic_id;

	if (apic_id > XAPIC_MAX_ID && !x2apic_mode)
		return false;
	if (!trampoline_ready) {
		memcpy(phys(TRAMPOLINE_PADDR), tramp_start, (size_t)(tramp_end - tramp_start));
		trampoline_ready = true;
	}
	/* Stacks above the image, one per MADT position, so busy APs never share one. */
	uint64_t stacks = ((uint64_t)(uintptr_t)__image_end + 0xfff) & ~0xfffull;
	ap_stack_top = stacks + (uint64_t)(cpu + 1) * AP_STACK_SIZE;
	ap_cpu = cpu;
	ap_task = task;
	__atomic_store_n(&ap_done, 0, __ATOMIC_RELEASE);

	send_ipi(apic_id, ICR_DM_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL);
	/* Two Start-up IPIs; a started AP ignores the second (it is no longer waiting). */
	send_ipi(apic_id, ICR_DM_STARTUP | TRAMPOLINE_SIPI_VECTOR);
	send_ipi(apic_id, ICR_DM_STARTUP | TRAMPOLINE_SIPI_VECTOR);

	if (wait_done(tsc_hz()))
		return true;
	/* Put a late AP back into wait-for-SIPI so it cannot print over the BSP later. */
	send_ipi(apic_id, ICR_DM_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL);
	return false;
}

/* Called by entry.S on each AP, on the stack the BSP chose. */
void ap_main(void);
void ap_main(void)
{
	uint32_t task = ap_task;

	if (task == AP_TASK_BUSY) {
		__atomic_store_n(&ap_done, 1, __ATOMIC_RELEASE);
		busy_forever();
	}
	cpuid_dump(ap_cpu);
	__atomic_store_n(&ap_done, 1, __ATOMIC_RELEASE);
	halt_forever();
}
