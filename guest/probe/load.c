/*
 * load.c - mode=load duty=D0,D1,... [period=MS]: keep each vCPU busy D % of every period and
 * idle (halted) the rest, forever, timed by the TSC.
 *
 *   duty=      percent per vCPU in MADT order (0..100); a single value applies to every
 *              vCPU; vCPUs without an entry get 0.  Missing: every vCPU at 100.
 *   period=    the period in milliseconds (1..10000), default 100.
 *
 * The TSC is calibrated first against the local APIC timer's current count (KVM's APIC timer
 * counts at 1 GHz with divide-by-1, as smp.c and hotplug.c assume too).  Then every AP is
 * restarted into load_loop(), where it halts until the BSP has printed
 *   PROBE-LOAD cpus=N duty=D0,D1,... period=MS tsc_khz=K
 * (APs never spin while the BSP prints), after which the BSP joins them.
 *
 * Busy: integer arithmetic until the TSC deadline.  Idle: the APIC one-shot timer armed for
 * the rest of the period and sti; hlt, repeated until the TSC deadline has passed, so the
 * vCPU really is halted (its host thread sleeps): timer_sleep() (timer.c), with which every
 * vCPU can sleep at once.
 */
#include "probe.h"

#define LOAD_MAX_CPUS 1024
#define DUTY_DEFAULT 100
#define PERIOD_DEFAULT_MS 100
#define PERIOD_MAX_MS 10000
/* TSC calibration: this many APIC timer counts (ns at 1 GHz). */
#define CALIBRATE_COUNT 50000000u
/* How often an AP waiting for the start looks at the flag (APIC counts, 1 ms). */
#define START_POLL_COUNT 1000000u

static uint8_t duty[LOAD_MAX_CPUS];
static uint32_t period_ms = PERIOD_DEFAULT_MS;
static uint64_t period_ticks;
static uint64_t ticks_per_s;
static volatile uint32_t started;

/* A decimal number in [0, max]; prints PROBE-ERROR and powers off otherwise. */
static uint32_t parse_number(const char *v, size_t len, uint32_t max, const char *what,
			     const char *whole, size_t whole_len)
{
	uint64_t n = 0;

	if (len == 0)
		probe_bad_param(what, whole, whole_len);
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			probe_bad_param(what, whole, whole_len);
		n = n * 10 + (uint64_t)(v[i] - '0');
		if (n > max)
			probe_bad_param(what, whole, whole_len);
	}
	return (uint32_t)n;
}

static void parse_params(void)
{
	size_t len = 0;
	const char *v = probe_param("duty", &len);

	if (!v) {
		memset(duty, DUTY_DEFAULT, sizeof(duty));
	} else {
		uint32_t count = 0;
		size_t start = 0;
		for (size_t i = 0; i <= len; i++) {
			if (i < len && v[i] != ',')
				continue;
			if (count == LOAD_MAX_CPUS)
				probe_bad_param("bad duty (more than 1024 vCPUs) ", v, len);
			duty[count++] = (uint8_t)parse_number(v + start, i - start, 100,
							       "bad duty (0..100 per vCPU) ", v, len);
			start = i + 1;
		}
		if (count == 1)
			memset(duty, duty[0], sizeof(duty));
	}
	v = probe_param("period", &len);
	if (v) {
		period_ms = parse_number(v, len, PERIOD_MAX_MS, "bad period (1..10000 ms) ", v, len);
		if (period_ms == 0)
			probe_bad_param("bad period (1..10000 ms) ", v, len);
	}
	period_ticks = ticks_per_s * period_ms / 1000;
}

/* Halts until the TSC reaches `deadline` (the APIC timer wakes it; early wakes sleep again). */
static void idle_until(uint64_t deadline)
{
	for (;;) {
		uint64_t now = rdtsc();
		if (now >= deadline)
			break;
		uint64_t ns = (deadline - now) * TIMER_COUNTS_PER_S / ticks_per_s;
		apic_timer_oneshot(ns == 0 ? 1 : ns > 0xffffffffull ? 0xffffffffu : (uint32_t)ns);
		timer_sleep();
	}
	apic_timer_oneshot(0);
}

static void busy_until(uint64_t deadline)
{
	uint64_t x = 1;

	while (rdtsc() < deadline) {
		/* A linear congruential step (Knuth's MMIX constants), as busy_forever. */
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		__asm__ volatile("" : "+r"(x));
	}
}

void load_loop(uint32_t cpu)
{
	uint32_t d = cpu < LOAD_MAX_CPUS ? duty[cpu] : 0;
	/* The BSP goes round the period loop whatever its duty, to see the power button. */
	bool bsp = cpu == smp_bsp_index();

	timer_use_idt();
	while (!__atomic_load_n(&started, __ATOMIC_ACQUIRE)) {
		apic_timer_oneshot(START_POLL_COUNT);
		timer_sleep();
	}
	apic_timer_oneshot(0);
	if (d == 100 && !bsp)
		busy_forever();
	if (d == 0 && !bsp)
		halt_forever();
	uint64_t busy_ticks = period_ticks * d / 100;
	uint64_t start = rdtsc();
	for (;;) {
		busy_until(start + busy_ticks);
		idle_until(start + period_ticks);
		start += period_ticks;
		/* Descheduled for longer than a period: start afresh rather than catch up. */
		if (rdtsc() > start + period_ticks)
			start = rdtsc();
		if (bsp)
			power_poll();
	}
}

void load_run(uint32_t n)
{
	timer_idt_init();
	ticks_per_s = timer_calibrate_tsc_hz(CALIBRATE_COUNT);
	parse_params();

	uint32_t running = 1;
	for (uint32_t cpu = 0; cpu < n; cpu++)
		if (cpu != smp_bsp_index() && smp_run_ap(cpu, AP_TASK_LOAD))
			running++;

	char buf[256];
	struct out o = OUT_INIT(buf);
	out_str(&o, "PROBE-LOAD cpus=");
	out_dec(&o, running);
	out_str(&o, " duty=");
	for (uint32_t cpu = 0; cpu < n && cpu < LOAD_MAX_CPUS; cpu++) {
		if (cpu)
			out_char(&o, ',');
		out_dec(&o, cpu == smp_bsp_index() || smp_started(cpu) ? duty[cpu] : 0);
	}
	out_str(&o, " period=");
	out_dec(&o, period_ms);
	out_str(&o, " tsc_khz=");
	out_dec(&o, ticks_per_s / 1000);
	power_poll(); /* armed before the line that says the guest runs */
	out_end(&o);

	__atomic_store_n(&started, 1, __ATOMIC_RELEASE);
	load_loop(smp_bsp_index());
}
