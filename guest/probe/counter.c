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
 *     gap_ms=G
 * A restored guest goes on from the values it had: none is reset, and a region whose
 * memory was lost or mixed up prints sum=bad.
 *
 * gap_ms is that vCPU's largest gap between two consecutive rounds since the previous
 * report, in whole ms of TSC time (TSC ticks per ms calibrated once at start against the
 * APIC timer).  Normally ~10-20 ms; a pause the guest can see (a migration, whose
 * destination advances kvmclock and the TSC by the downtime) shows once as a large gap; a
 * snapshot restore (clock not advanced) shows a normal one.
 *
 * dirty=PAGES (default 0, at most DIRTY_MAX) makes every vCPU also dirty PAGES pages per
 * second of its own buffer of dirty-mib=M MiB (default 4, 1..DIRTY_MIB_MAX; every vCPU's
 * buffer must fit the RAM above the image and the AP stacks, from hvm_start_info's memory
 * map): each round it rewrites the next dirty/100 pages round robin (the remainder carried
 * to the next round), first checking the page still holds the pattern of its previous
 * generation (the first pass has none to check); a mismatch makes that vCPU's sum=bad.
 * Only one word per DIRTY_STRIDE bytes (a cache line) is written and checked, not the
 * whole page: plain stores are slow under kvm-pvm (~6 us each), and one store already
 * dirties the page for a migration.  A bad value prints PROBE-ERROR naming the parameter
 * and powers off.
 *
 * Every vCPU sleeps with timer_sleep() (timer.c), as load.c does.
 */
#include "probe.h"

#define COUNTER_MAX_CPUS 16
#define REGION_WORDS (4096 / 8)
#define COUNTER_SLEEP_NS 10000000u /* 10 ms: APIC timer counts at 1 GHz */
#define PRINT_EVERY 20u /* ~200 ms between reports */
#define PAGE_SIZE 4096u
#define DIRTY_STRIDE 64u /* bytes between two written words of a dirtied page */
#define DIRTY_WORDS (PAGE_SIZE / DIRTY_STRIDE)
#define ROUNDS_PER_S 100u /* 10 ms rounds */
#define DIRTY_MAX 100000u /* pages/s per vCPU: 1000 pages a round */
#define DIRTY_MIB_DEFAULT 4u
#define DIRTY_MIB_MAX 1024u
#define DIRTY_ALIGN (2u << 20)
#define CALIBRATE_COUNT 10000000u /* APIC timer counts: 10 ms at 1 GHz */

struct cpu_state {
	volatile uint64_t value;
	volatile uint64_t expected_sum;
	volatile uint32_t sum_ok;
	volatile uint32_t running;
	uint64_t dirty_written; /* pages rewritten so far: page = n % pages, generation = n / pages */
	uint32_t dirty_carry; /* dirty pages owed from earlier rounds, in 1/100 pages */
	uint64_t last_round_tsc; /* 0 before the first round */
	uint64_t max_gap_ticks; /* since the last report; the BSP swaps it to 0 */
};

/* Set once by counter_run before any AP starts. */
static uint32_t dirty_rate; /* pages per second per vCPU */
static uint64_t dirty_pages; /* pages in each vCPU's buffer */
static uint64_t dirty_base; /* physical address of vCPU 0's buffer */
static uint64_t tsc_per_ms;

static struct cpu_state cpus[COUNTER_MAX_CPUS];
static uint64_t regions[COUNTER_MAX_CPUS][REGION_WORDS] __attribute__((aligned(4096)));
static volatile uint32_t go;

static void nap(void)
{
	apic_timer_oneshot(COUNTER_SLEEP_NS);
	timer_sleep();
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

/* Word `i` of page `page` of `cpu`'s dirty buffer in generation `gen`. */
static uint64_t dirty_word(uint32_t cpu, uint64_t page, uint64_t gen, uint32_t i)
{
	return (gen + 1) * 0xd6e8feb86659fd93ull ^ ((uint64_t)cpu << 56 | page << 12 | i);
}

/* Rewrites the pages this round owes, each checked against its previous generation. */
static bool dirty_round(uint32_t cpu)
{
	struct cpu_state *s = &cpus[cpu];
	bool ok = true;

	s->dirty_carry += dirty_rate;
	uint32_t n = s->dirty_carry / ROUNDS_PER_S;
	s->dirty_carry %= ROUNDS_PER_S;
	for (uint32_t k = 0; k < n; k++, s->dirty_written++) {
		uint64_t page = s->dirty_written % dirty_pages;
		uint64_t gen = s->dirty_written / dirty_pages;
		volatile uint64_t *w =
			phys(dirty_base + ((uint64_t)cpu * dirty_pages + page) * PAGE_SIZE);
		for (uint32_t i = 0; i < DIRTY_WORDS; i++) {
			volatile uint64_t *at = w + i * (DIRTY_STRIDE / 8);
			if (gen > 0 && *at != dirty_word(cpu, page, gen - 1, i))
				ok = false;
			*at = dirty_word(cpu, page, gen, i);
		}
	}
	return ok;
}

/* Keeps the largest TSC gap between two rounds until the BSP takes it. */
static void note_gap(struct cpu_state *s)
{
	uint64_t now = rdtsc();
	uint64_t last = s->last_round_tsc;
	s->last_round_tsc = now;
	if (!last || now < last)
		return;
	uint64_t gap = now - last;
	uint64_t seen = __atomic_load_n(&s->max_gap_ticks, __ATOMIC_RELAXED);
	while (gap > seen && !__atomic_compare_exchange_n(&s->max_gap_ticks, &seen, gap, false,
							  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void round_of(uint32_t cpu)
{
	struct cpu_state *s = &cpus[cpu];
	note_gap(s);
	if (!check_pattern(cpu))
		s->sum_ok = 0;
	if (dirty_rate && !dirty_round(cpu))
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
		char buf[128];
		struct out o = OUT_INIT(buf);
		out_str(&o, "PROBE-COUNTER cpu=");
		out_dec(&o, cpu);
		out_str(&o, " value=");
		out_dec(&o, cpus[cpu].value);
		out_str(&o, cpus[cpu].sum_ok ? " sum=ok" : " sum=bad");
		out_str(&o, " gap_ms=");
		out_dec(&o, __atomic_exchange_n(&cpus[cpu].max_gap_ticks, 0, __ATOMIC_RELAXED) /
				    tsc_per_ms);
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
	timer_use_idt();
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		nap();
	for (;;) {
		round_of(cpu);
		nap();
	}
}

/*
 * dirty= and dirty-mib=: every vCPU's buffer goes above the image and the AP stacks
 * (smp.c), 2 MiB aligned, and must end below `ram_end`.
 */
static void parse_dirty(uint32_t n, uint64_t ram_end)
{
	extern uint8_t __image_end[];

	dirty_rate = probe_number_param("dirty", 0, 0, DIRTY_MAX, "bad dirty (0..100000 pages/s) ");
	uint32_t mib = probe_number_param("dirty-mib", DIRTY_MIB_DEFAULT, 1, DIRTY_MIB_MAX,
				    "bad dirty-mib (1..1024) ");
	dirty_pages = (uint64_t)mib * (1u << 20) / PAGE_SIZE;
	uint64_t above = (uint64_t)(uintptr_t)__image_end + (uint64_t)(n + 1) * AP_STACK_SIZE;
	dirty_base = (above + DIRTY_ALIGN - 1) & ~(uint64_t)(DIRTY_ALIGN - 1);
	if (dirty_rate && dirty_base + (uint64_t)n * mib * (1u << 20) > ram_end) {
		size_t len = 0;
		const char *v = probe_param("dirty-mib", &len);
		if (!v) {
			v = "4";
			len = 1;
		}
		probe_bad_param("bad dirty-mib (every vCPU's buffer must fit the guest RAM) ", v, len);
	}
}

void counter_run(uint32_t n, uint64_t ram_end)
{
	if (n > COUNTER_MAX_CPUS)
		n = COUNTER_MAX_CPUS;
	parse_dirty(n, ram_end);
	/* TSC ticks per whole ms (at least 1: gap_ms divides by it) */
	tsc_per_ms = timer_calibrate_tsc_hz(CALIBRATE_COUNT) / 1000;
	if (tsc_per_ms == 0)
		tsc_per_ms = 1;
	timer_idt_init();
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
	timer_use_idt();
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (uint64_t r = 0;; r++) {
		round_of(bsp);
		if (r % PRINT_EVERY == 0)
			report(n);
		nap();
	}
}
