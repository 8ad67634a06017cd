/*
 * counter.c - mode=counter: the guest that proves a snapshot/restore (or a migration) kept
 * every vCPU's state and memory.
 *
 * Every vCPU (MADT order) owns a counter and a 4 KiB page of memory.  Each
 * round it first checks the region still holds the pattern of its current counter value (a
 * sum over every word against the sum it stored when it wrote the pattern), then counts one
 * up and writes the new value's pattern, then sleeps COUNTER_SLEEP_NS on the local APIC
 * timer (sti; hlt: the vCPU's host thread really sleeps, so vCPUs never starve the one that
 * prints on a small host).  Every PRINT_EVERY rounds the BSP prints, for every vCPU,
 *   PROBE-COUNTER cpu=N value=V sum=ok|bad
 * A restored guest goes on from the values it had: none is reset, and a region whose
 * memory was lost or mixed up prints sum=bad.
 *
 * The wake-up never returns with IRET (this host's instruction emulator cannot do one):
 * counter_irq_entry drops the frame and returns from counter_sleep(), as load.c does.
 */
#include "probe.h"

#define COUNTER_MAX_CPUS 16
#define REGION_WORDS (4096 / 8)
#define COUNTER_SLEEP_NS 10000000u /* 10 ms: APIC timer counts at 1 GHz */
#define PRINT_EVERY 20u /* ~200 ms between reports */
#define IDT_ENTRIES 256
#define FIRST_EXTERNAL_VECTOR 32
#define IDT_INTERRUPT_GATE (0xeull << 40)
#define IDT_PRESENT (1ull << 47)

struct cpu_state {
	volatile uint64_t value;
	volatile uint64_t expected_sum;
	volatile uint32_t sum_ok;
	volatile uint32_t running;
};

static struct cpu_state cpus[COUNTER_MAX_CPUS];
static uint64_t regions[COUNTER_MAX_CPUS][REGION_WORDS] __attribute__((aligned(4096)));
static uint64_t counter_idt[IDT_ENTRIES * 2] __attribute__((aligned(16)));
static volatile uint32_t go;

void counter_sleep(void);
void counter_irq_entry(void);

__asm__(".pushsection .text\n"
	".globl counter_sleep\n"
	"counter_sleep:\n"
	"	sti\n"
	"	hlt\n"
	"	cli\n"
	"	ret\n"
	".globl counter_irq_entry\n"
	"counter_irq_entry:\n"
	"	movq 24(%rsp), %rsp\n" /* the sleeper's stack, its return address on top */
	"	subq $8, %rsp\n"
	"	call apic_eoi\n"
	"	addq $8, %rsp\n"
	"	ret\n"
	".popsection\n");

static void use_counter_idt(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = { sizeof(counter_idt) - 1, (uint64_t)(uintptr_t)counter_idt };

	__asm__ volatile("lidt %0" : : "m"(idtr));
}

static void nap(void)
{
	apic_timer_oneshot(COUNTER_SLEEP_NS);
	counter_sleep();
}

/* The pattern of `value` in `cpu`'s region; returns its sum. */
static uint64_t write_pattern(uint32_t cpu, uint64_t value)
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < REGION_WORDS; i++) {
		uint64_t w = (value + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)cpu << 56 | i);
		regions[cpu][i] = w;
		sum += w;
	}
	return sum;
}

static bool check_pattern(uint32_t cpu)
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < REGION_WORDS; i++)
		sum += regions[cpu][i];
	return sum == cpus[cpu].expected_sum;
}

static void round_of(uint32_t cpu)
{
	struct cpu_state *s = &cpus[cpu];
	if (!check_pattern(cpu))
		s->sum_ok = 0;
	uint64_t next = s->value + 1;
	s->expected_sum = write_pattern(cpu, next);
	s->value = next;
}

static void report(uint32_t n)
{
	power_poll(); /* the ACPI power button (power.c) */
	for (uint32_t cpu = 0; cpu < n && cpu < COUNTER_MAX_CPUS; cpu++) {
		if (!cpus[cpu].running)
			continue;
		char buf[96];
		struct out o = OUT_INIT(buf);
		out_str(&o, "PROBE-COUNTER cpu=");
		out_dec(&o, cpu);
		out_str(&o, " value=");
		out_dec(&o, cpus[cpu].value);
		out_str(&o, cpus[cpu].sum_ok ? " sum=ok" : " sum=bad");
		out_end(&o);
	}
}

static void start_cpu(uint32_t cpu)
{
	cpus[cpu].expected_sum = write_pattern(cpu, 0);
	cpus[cpu].sum_ok = 1;
	cpus[cpu].running = 1;
}

void counter_loop(uint32_t cpu)
{
	use_counter_idt();
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		nap();
	for (;;) {
		round_of(cpu);
		nap();
	}
}

void counter_run(uint32_t n)
{
	uint64_t a = (uint64_t)(uintptr_t)counter_irq_entry;
	for (uint32_t v = FIRST_EXTERNAL_VECTOR; v < IDT_ENTRIES; v++) {
		counter_idt[2 * v] = (a & 0xffff) | ((uint64_t)GDT_CODE64_SEL << 16) |
				     IDT_INTERRUPT_GATE | IDT_PRESENT | ((a >> 16 & 0xffff) << 48);
		counter_idt[2 * v + 1] = a >> 32;
	}
	if (n > COUNTER_MAX_CPUS)
		n = COUNTER_MAX_CPUS;
	uint32_t bsp = smp_bsp_index();
	uint32_t running = 1;
	start_cpu(bsp);
	for (uint32_t cpu = 0; cpu < n; cpu++) {
		if (cpu == bsp)
			continue;
		start_cpu(cpu);
		if (smp_run_ap(cpu, AP_TASK_COUNTER))
			running++;
		else
			cpus[cpu].running = 0;
	}
	char buf[64];
	struct out o = OUT_INIT(buf);
	out_str(&o, "PROBE-COUNTER-START cpus=");
	out_dec(&o, running);
	out_end(&o);
	use_counter_idt();
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (uint64_t r = 0;; r++) {
		round_of(bsp);
		if (r % PRINT_EVERY == 0)
			report(n);
		nap();
	}
}
