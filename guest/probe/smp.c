/*
 * smp.c - list the processors from the MADT and start the APs one at a time.
 *
 * Each AP is started the way firmware does it (SDM Vol. 3A 9.4.4.1 "Typical BSP
 * Initialization Sequence"): an INIT IPI, then two Start-up IPIs whose vector names the
 * trampoline page.  The AP runs trampoline.S -> entry.S -> ap_main() below, does its task,
 * sets ap_done, wakes the BSP with an IPI, and parks (or stays busy).  Meanwhile the BSP
 * sleeps in HLT (apic.c), waking at least every ~100 ms to check its ~1 s timeout.
 */
#include "probe.h"

/* MADT layout (ACPI 6.5 5.2.12): header, Local Interrupt Controller Address, Flags, then
 * interrupt controller structures of (type, length, ...). */
#define MADT_ENTRIES 44
#define MADT_TYPE_LAPIC 0 /* 5.2.12.2: ACPI processor UID, APIC ID (u8), flags (u32) */
#define MADT_TYPE_X2APIC 9 /* 5.2.12.12: reserved, x2APIC ID (u32), flags, UID */
#define MADT_LAPIC_ENABLED (1u << 0)

#define XAPIC_MAX_ID 254 /* 255 is the xAPIC broadcast destination */
#define MAX_CPUS 1024

/*
 * Timer count for one sleep of the BSP.  KVM's APIC timer counts at 1 GHz (1 ns bus
 * cycle), so this is 100 ms there; on another clock it is just a different poll period.
 */
#define SLEEP_TIMER_COUNT 100000000u

static uint32_t cpu_apic_ids[MAX_CPUS];
static bool cpu_started[MAX_CPUS]; /* the AP answered its last start */
static uint32_t ncpus;
static uint32_t bsp_index;
static uint32_t bsp_apic_id;
static bool trampoline_ready;

/* Handed to the AP being started (ap_stack_top is read by entry.S). */
uint64_t ap_stack_top;
static volatile uint32_t ap_cpu;
static volatile uint32_t ap_task;
static volatile uint32_t ap_done;

extern const uint8_t tramp_start[], tramp_end[];
extern uint8_t __image_end[];

static void add_cpu(uint32_t apic_id, uint32_t flags)
{
	if ((flags & MADT_LAPIC_ENABLED) && ncpus < MAX_CPUS)
		cpu_apic_ids[ncpus++] = apic_id;
}

uint32_t smp_init(const uint8_t *madt)
{
	bool need_x2apic = false;

	apic_init_bsp();
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
	for (uint32_t i = 0; i < ncpus; i++)
		need_x2apic |= cpu_apic_ids[i] > XAPIC_MAX_ID;
	/* Without x2APIC those APs cannot be addressed; smp_run_ap reports them. */
	if (need_x2apic)
		apic_enter_x2apic();

	bsp_apic_id = apic_self_id();
	bsp_index = 0;
	for (uint32_t i = 0; i < ncpus; i++)
		if (cpu_apic_ids[i] == bsp_apic_id)
			bsp_index = i;
	if (ncpus == 0)
		cpu_apic_ids[ncpus++] = bsp_apic_id;
	return ncpus;
}

uint32_t smp_bsp_index(void)
{
	return bsp_index;
}

uint32_t smp_apic_id(uint32_t cpu)
{
	return cpu_apic_ids[cpu];
}

/* Sleeps until the AP reports done or `timeout_ticks` of TSC pass. */
static bool wait_done(uint64_t timeout_ticks)
{
	uint64_t start = rdtsc();
	bool done;

	while (!(done = __atomic_load_n(&ap_done, __ATOMIC_ACQUIRE)) &&
	       rdtsc() - start < timeout_ticks) {
		apic_timer_oneshot(SLEEP_TIMER_COUNT);
		sleep_until_interrupt();
	}
	apic_timer_oneshot(0);
	return done;
}

bool smp_start(uint32_t apic_id, uint32_t stack_index, uint32_t dump_index, enum ap_task task)
{
	if (apic_id > XAPIC_MAX_ID && !apic_x2apic())
		return false;
	if (!trampoline_ready) {
		memcpy(phys(TRAMPOLINE_PADDR), tramp_start, (size_t)(tramp_end - tramp_start));
		trampoline_ready = true;
	}
	/* Stacks above the image, one per index, so busy APs never share one. */
	uint64_t stacks = ((uint64_t)(uintptr_t)__image_end + 0xfff) & ~0xfffull;
	ap_stack_top = stacks + (uint64_t)(stack_index + 1) * AP_STACK_SIZE;
	ap_cpu = dump_index;
	ap_task = task;
	__atomic_store_n(&ap_done, 0, __ATOMIC_RELEASE);

	apic_send_ipi(apic_id, ICR_DM_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL);
	/* Two Start-up IPIs; a started AP ignores the second (it is no longer waiting). */
	apic_send_ipi(apic_id, ICR_DM_STARTUP | TRAMPOLINE_SIPI_VECTOR);
	apic_send_ipi(apic_id, ICR_DM_STARTUP | TRAMPOLINE_SIPI_VECTOR);

	bool done = wait_done(tsc_hz());
	if (!done) {
		/* Put a late AP back into wait-for-SIPI so it cannot print over the BSP later. */
		apic_send_ipi(apic_id, ICR_DM_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL);
	}
	return done;
}

bool smp_run_ap(uint32_t cpu, enum ap_task task)
{
	cpu_started[cpu] = smp_start(cpu_apic_ids[cpu], cpu, cpu, task);
	return cpu_started[cpu];
}

uint32_t smp_madt_slots(const uint8_t *madt)
{
	uint32_t slots = 0;

	if (!madt)
		return 1;
	uint32_t len = rd32(madt + 4);
	for (uint32_t off = MADT_ENTRIES; off + 2 <= len;) {
		const uint8_t *e = madt + off;
		if (e[1] < 2)
			break; /* malformed: would not advance */
		if ((e[0] == MADT_TYPE_LAPIC && e[1] >= 8) || (e[0] == MADT_TYPE_X2APIC && e[1] >= 16))
			slots++;
		off += e[1];
	}
	return slots ? slots : 1;
}

bool smp_started(uint32_t cpu)
{
	return cpu_started[cpu];
}

/* Tells the BSP this AP's task is under way or over. */
static void report_done(void)
{
	__atomic_store_n(&ap_done, 1, __ATOMIC_RELEASE);
	apic_send_ipi(bsp_apic_id, ICR_DM_FIXED | ICR_LEVEL_ASSERT | APIC_WAKE_VECTOR);
}

/* Called by entry.S on each AP, on the stack the BSP chose. */
void ap_main(void);
void ap_main(void)
{
	apic_init_ap();
	if (ap_task == AP_TASK_BUSY) {
		report_done();
		busy_forever();
	}
	if (ap_task == AP_TASK_LOAD) {
		uint32_t cpu = ap_cpu; /* the BSP reuses ap_cpu once we report */
		report_done();
		load_loop(cpu);
	}
	if (ap_task == AP_TASK_COUNTER) {
		uint32_t cpu = ap_cpu;
		report_done();
		counter_loop(cpu);
	}
	cpuid_dump(ap_cpu);
	report_done();
	halt_forever();
}
