/*
 * probe.h - shared declarations of the probe guest, plus the few instructions C cannot say
 * (port I/O, CPUID, MSRs, TSC) as inline assembly.
 *
 * The guest runs in 64-bit long mode with the low 4 GiB identity mapped (entry.S), so a
 * physical address below 4 GiB is a usable pointer (see phys()).
 */
#ifndef PROBE_H
#define PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* ---- hardware access ---------------------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
			 : "memory");
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_pause(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/*
 * A pointer to physical address `paddr`.  The empty asm hides the constant from the
 * compiler, which otherwise treats small constant addresses (the BIOS data area at 0x40e)
 * as out-of-bounds accesses of a null object.
 */
static inline void *phys(uint64_t paddr)
{
	void *p = (void *)(uintptr_t)paddr;
	__asm__("" : "+r"(p));
	return p;
}

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static inline uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

/* ---- util.c ------------------------------------------------------------------------- */

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
__attribute__((noreturn)) void halt_forever(void);
__attribute__((noreturn)) void busy_forever(void);

/* ---- out.c: building lines and writing them to COM1 ---------------------------------- */

/* A line under construction; it is written out when full and by out_end(). */
struct out {
	char *buf;
	uint32_t len;
	uint32_t cap;
};

#define OUT_INIT(array) { (array), 0, sizeof(array) }

void out_str(struct out *o, const char *s);
void out_char(struct out *o, char c);
void out_hex32(struct out *o, uint32_t v);
void out_dec(struct out *o, uint64_t v);
void out_hex_bytes(struct out *o, const uint8_t *p, uint32_t n);
void out_end(struct out *o);
/* One whole line: `s` followed by "\n". */
void out_line(const char *s);

/* ---- cpuid_dump.c --------------------------------------------------------------------- */

void cpuid_dump(uint32_t cpu);
/* TSC ticks per second, from the CPUID frequency leaves, or a guess. */
uint64_t tsc_hz(void);

/* ---- acpi.c --------------------------------------------------------------------------- */

/* Finds the RSDP (`hint` from hvm_start_info, else the BIOS areas); false if none. */
bool acpi_init(uint64_t rsdp_hint);
/* The first table with this signature, or NULL. */
const uint8_t *acpi_find(const char sig[4]);
void acpi_dump(const char sig[4]);

/* ---- power.c -------------------------------------------------------------------------- */

__attribute__((noreturn)) void power_off(void);
/* Waits for the ACPI power button, then PROBE-POWERBUTTON and power_off() (power.c). */
__attribute__((noreturn)) void power_button_wait(void);
/*
 * The same for a BSP that runs on: if the power button was pressed, PROBE-POWERBUTTON and
 * power_off(); else returns at once (reads the status at most 100 times a second).
 */
void power_poll(void);
__attribute__((noreturn)) void reset(void);
__attribute__((noreturn)) void triple_fault(void);

/* ---- apic.c: the local APIC --------------------------------------------------------- */

#define APIC_WAKE_VECTOR 0x40 /* an AP tells the BSP it is done */
#define APIC_TIMER_VECTOR 0x41 /* bounds each sleep of the BSP */
#define APIC_SPURIOUS_VECTOR 0xff

/* ICR delivery modes and flags (SDM Vol. 3A 11.6.1). */
#define ICR_DM_FIXED (0u << 8)
#define ICR_DM_INIT (5u << 8)
#define ICR_DM_STARTUP (6u << 8)
#define ICR_LEVEL_ASSERT (1u << 14)
#define ICR_TRIGGER_LEVEL (1u << 15)

void apic_init_bsp(void);
void apic_init_ap(void);
/* Switches the BSP to x2APIC mode; false if the CPU has none. */
bool apic_enter_x2apic(void);
bool apic_x2apic(void);
uint32_t apic_self_id(void);
void apic_send_ipi(uint32_t dest, uint32_t icr_low);
void apic_eoi(void);
void apic_timer_oneshot(uint32_t count);
uint32_t apic_timer_current(void);
/* sti; hlt, returning with interrupts disabled after the next interrupt (entry.S). */
void sleep_until_interrupt(void);

/* ---- smp.c ---------------------------------------------------------------------------- */

/* What an AP does once started (written by the BSP before the Start-up IPI). */
enum ap_task {
	AP_TASK_DUMP = 1, /* dump CPUID, report done, park */
	AP_TASK_BUSY = 2, /* report done, then loop on arithmetic forever */
	AP_TASK_LOAD = 3, /* report done, then load_loop() (load.c) */
	AP_TASK_COUNTER = 4, /* report done, then counter_loop() (counter.c) */
};

/* Reads the MADT; returns the number of enabled processors (at least 1, the BSP). */
uint32_t smp_init(const uint8_t *madt);
/* The BSP's position among the enabled processors in MADT order. */
uint32_t smp_bsp_index(void);
/* Starts the AP at MADT position `cpu` with `task` and waits for it; false on timeout. */
bool smp_run_ap(uint32_t cpu, enum ap_task task);
/*
 * Starts the processor with `apic_id` (INIT, Start-up, Start-up) with `task`, on the AP stack
 * numbered `stack_index`, printing `cpu=dump_index` in its CPUID lines, and waits for it;
 * false on timeout (or an APIC ID this APIC mode cannot address).
 */
bool smp_start(uint32_t apic_id, uint32_t stack_index, uint32_t dump_index, enum ap_task task);
/* Processor entries in the MADT, enabled or not (the possible CPUs; at least 1). */
uint32_t smp_madt_slots(const uint8_t *madt);
uint32_t smp_apic_id(uint32_t cpu);
/* Whether the AP at MADT position `cpu` answered its last start. */
bool smp_started(uint32_t cpu);

/* ---- virtio.c: mode=virtio, a polling virtio-blk driver (see virtio.c) --------------- */

__attribute__((noreturn)) void virtio_run(void);

/* ---- hostile.c ------------------------------------------------------------------------ */

/* mode=hostile (see hostile.c): `n` processors from smp_init, RAM below 4 GiB ends at
 * `ram_end`.  Never returns. */
__attribute__((noreturn)) void hostile_run(uint32_t n, uint64_t ram_end);

/* ---- hotplug.c ------------------------------------------------------------------------ */

/* mode=hotplug (see hotplug.c), after the dump: `n` processors from smp_init, `cpus` of them
 * running.  Never returns. */
__attribute__((noreturn)) void hotplug_run(const uint8_t *madt, uint32_t n, uint32_t cpus);

/* ---- main.c --------------------------------------------------------------------------- */

/* The value of `key=` on the guest command line (up to the next space) and its length, or
 * NULL. */
const char *probe_param(const char *key, size_t *len);
/* PROBE-ERROR `what` and the value (its first 64 characters), then power off. */
__attribute__((noreturn)) void probe_bad_param(const char *what, const char *v, size_t len);
/* `key=` as a decimal in min..max, or `dflt` when absent; probe_bad_param(`what`) otherwise. */
uint32_t probe_number_param(const char *key, uint32_t dflt, uint32_t min, uint32_t max,
			    const char *what);

/* ---- timer.c -------------------------------------------------------------------------- */

/* The APIC timer's counts per second (1 GHz, divide by 1). */
#define TIMER_COUNTS_PER_S 1000000000ull

/* Fills the IDT whose gates wake timer_sleep() (once, before any vCPU loads it). */
void timer_idt_init(void);
/* Loads that IDT on this vCPU. */
void timer_use_idt(void);
/* sti; hlt, returning (with IF clear) once an interrupt came in; any number of vCPUs at
 * once, with timer_use_idt() loaded. */
void timer_sleep(void);
/* TSC ticks per second, measured over `counts` counts of the APIC timer (tsc_hz()'s guess
 * if the timer does not count). */
uint64_t timer_calibrate_tsc_hz(uint32_t counts);

/* ---- load.c --------------------------------------------------------------------------- */

/* mode=load (see load.c): `n` processors from smp_init.  Never returns. */
__attribute__((noreturn)) void load_run(uint32_t n);
/* One vCPU's duty loop (MADT position `cpu`).  Never returns. */
__attribute__((noreturn)) void load_loop(uint32_t cpu);

/* ---- counter.c ------------------------------------------------------------------------ */

/* mode=counter (see counter.c): `n` processors from smp_init.  Never returns. */
__attribute__((noreturn)) void counter_run(uint32_t n, uint64_t ram_end);
/* One vCPU's counting loop (MADT position `cpu`).  Never returns. */
__attribute__((noreturn)) void counter_loop(uint32_t cpu);

#endif
