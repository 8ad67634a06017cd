/*
 * hotplug.c - mode=hotplug: handle ACPI CPU hotplug events the way an OS does, through QEMU's
 * CPU hotplug register block (QEMU docs/specs/acpi_cpu_hotplug.rst) and GPE0 bit 2, without
 * an AML interpreter: the steps below are the ones QEMU's DSDT methods (CSCN, COST, _EJ0)
 * take, done in C.
 *
 *   1. Switch the block at 0xaf00 from the legacy CPU bitmap to the modern interface and
 *      detect it as the document's "Typical usecases" says: write DWORD 0 at the base (the
 *      switch), select CPU 0, command 0, and "Command data 2" (offset 0) reads 0.  The legacy
 *      bitmap has bit 0 (the boot CPU) set before the switch, and CPU 0 reads enabled after
 *      it: together these tell a real block from an unclaimed port.
 *   2. Enable GPE0 bit 2 (the GPE0 block from the FADT: status bytes, then enable bytes).
 *   3. Start the CPUs that are enabled in the block but were not enabled in the MADT (plugged
 *      before the switch, so no insert event comes for them), as an OS's boot-time scan of
 *      its processor objects would: PROBE-HOTPLUG present slot=S apic=A, its CPUID lines,
 *      PROBE-HOTPLUG online slot=S apic=A, no _OST.
 *   4. PROBE-HOTPLUG ready cpus=N max=M (N vCPUs running, M processor entries in the MADT,
 *      enabled or not).
 *   5. Every ~10 ms, read GPE0 status bit 2.  Set: walk the CPUs with events (command 0,
 *      "next CPU with event", from selector 0) and for each
 *        insert: clear the insert event, read its APIC ID (command 3), print
 *                PROBE-HOTPLUG insert slot=S apic=A, INIT/SIPI it; it prints its CPUID
 *                (CPUID cpu=S ... lines, as in the dump) and parks; then
 *                PROBE-HOTPLUG online slot=S apic=A and _OST(1 device check, 0 success);
 *        remove: clear the remove event, _OST(3 eject request, 0x84 ejection in progress, as Linux reports it), the eject
 *                bit (the vCPU is already parked in cli; hlt), _OST(3, 0 success), then
 *                PROBE-HOTPLUG eject slot=S apic=A.
 *      then clear GPE0 status bit 2, and walk again if an event came in meanwhile.
 *   Forever (until the VMM powers the VM off).
 *
 * wait-cpus=N (1..256) first waits, before step 1, until the legacy bitmap shows N CPUs, so
 * that a vCPU plugged right after the VMM starts is surely plugged before the switch (the
 * VMM may boot the guest faster than its plug comes); it polls every ~10 ms, for at most
 * WAIT_CPUS_POLLS polls (~60 s), then PROBE-ERROR hotplug ... and power off.
 *
 * A failure prints PROBE-ERROR hotplug ...: no modern interface (then power off), an
 * inserted CPU that is not enabled or did not start (its _OST status is then 1, failure).
 *
 * The BSP waits with the local APIC's one-shot timer and sti; hlt (sleep_until_interrupt),
 * never spinning: on a small host a spinning vCPU starves the others.  The wake-up interrupt
 * never returns with IRET (entry.S).
 */
#include "probe.h"

/* The CPU hotplug block (QEMU PIIX-PM's base) and its registers. */
#define CPUHP_BASE 0xaf00
#define CPUHP_SELECTOR (CPUHP_BASE + 0) /* write: CPU selector; read: command data 2 */
#define CPUHP_FLAGS (CPUHP_BASE + 4) /* read: status fields; write: control fields */
#define CPUHP_COMMAND (CPUHP_BASE + 5) /* write: command field */
#define CPUHP_DATA (CPUHP_BASE + 8) /* read/write: command data */

#define CPUHP_STS_ENABLED (1u << 0)
#define CPUHP_STS_INSERT (1u << 1)
#define CPUHP_STS_REMOVE (1u << 2)
#define CPUHP_CTL_CLEAR_INSERT (1u << 1)
#define CPUHP_CTL_CLEAR_REMOVE (1u << 2)
#define CPUHP_CTL_EJECT (1u << 3)

#define CPUHP_CMD_NEXT_EVENT 0
#define CPUHP_CMD_OST_EVENT 1
#define CPUHP_CMD_OST_STATUS 2
#define CPUHP_CMD_ARCH_ID 3

/* _OST source events and status codes (ACPI 6.5 6.3.5, Table 6.170/6.171). */
#define OST_EVENT_DEVICE_CHECK 1
#define OST_EVENT_EJECT_REQUEST 3
#define OST_SUCCESS 0
#define OST_FAILURE 1
#define OST_EJECT_IN_PROGRESS 0x84

/* FADT (ACPI 6.5 Table 5.9): GPE0_BLK (I/O port, 4 bytes) and GPE0_BLK_LEN (1 byte). */
#define FADT_GPE0_BLK 80
#define FADT_GPE0_BLK_LEN 92
#define GPE0_DEFAULT_PORT 0xafe0 /* QEMU pc's */
#define GPE0_DEFAULT_LEN 4
#define GPE_CPU_HOTPLUG_BIT (1u << 2)

/* The poll period: KVM's APIC timer counts at 1 GHz, so this is 10 ms there. */
#define POLL_TIMER_COUNT 10000000u
/* wait-cpus: ~60 s of polls at POLL_TIMER_COUNT. */
#define WAIT_CPUS_POLLS 6000u
/* The legacy CPU bitmap's length in bytes (one bit per APIC ID 0..255). */
#define LEGACY_BITMAP_LEN 32u
/* Events handled per GPE before giving up on a block that always reports one. */
#define MAX_EVENTS_PER_SCAN 64
/* AP stacks of hot-plugged CPUs, above those of the boot-time APs. */
#define HOTPLUG_STACK_BASE 1024

static uint16_t gpe0_sts;
static uint16_t gpe0_en;

static void print_slot(const char *what, uint32_t slot, uint32_t apic)
{
	char buf[96];
	struct out o = OUT_INIT(buf);

	out_str(&o, what);
	out_str(&o, " slot=");
	out_dec(&o, slot);
	out_str(&o, " apic=");
	out_dec(&o, apic);
	out_end(&o);
}

/* The CPUs the legacy bitmap shows (before the switch to modern). */
static uint32_t legacy_cpus(void)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < LEGACY_BITMAP_LEN; i++)
		for (uint8_t b = inb((uint16_t)(CPUHP_BASE + i)); b; b &= (uint8_t)(b - 1))
			n++;
	return n;
}

/* wait-cpus=N (see the header); nothing without it. */
static void wait_for_cpus(void)
{
	uint32_t want = probe_number_param("wait-cpus", 0, 1, 256, "bad wait-cpus (1..256) ");
	if (want == 0)
		return;
	uint32_t have = legacy_cpus();
	for (uint32_t i = 0; have < want && i < WAIT_CPUS_POLLS; i++) {
		apic_timer_oneshot(POLL_TIMER_COUNT);
		sleep_until_interrupt();
		have = legacy_cpus();
	}
	apic_timer_oneshot(0);
	if (have >= want)
		return;
	char buf[96];
	struct out o = OUT_INIT(buf);
	out_str(&o, "PROBE-ERROR hotplug: wait-cpus=");
	out_dec(&o, want);
	out_str(&o, " not reached in ~60 s, the legacy bitmap shows ");
	out_dec(&o, have);
	out_end(&o);
	power_off();
}

/* Steps 1 and 2 of "Detecting and enabling modern CPU hotplug interface" and the checks. */
static bool switch_to_modern(void)
{
	bool legacy_bsp = inb(CPUHP_BASE) & 1;

	outl(CPUHP_SELECTOR, 0); /* the legacy -> modern switch */
	outl(CPUHP_SELECTOR, 0); /* a valid selector */
	outb(CPUHP_COMMAND, CPUHP_CMD_NEXT_EVENT);
	if (inl(CPUHP_SELECTOR) != 0)
		return false;
	outl(CPUHP_SELECTOR, 0);
	return legacy_bsp && (inb(CPUHP_FLAGS) & CPUHP_STS_ENABLED);
}

/* The GPE0 block from the FADT (QEMU pc's 0xafe0, 4 bytes, when there is none). */
static void find_gpe0(void)
{
	const uint8_t *fadt = acpi_find("FACP");
	uint32_t port = GPE0_DEFAULT_PORT, len = GPE0_DEFAULT_LEN;

	if (fadt && rd32(fadt + 4) > FADT_GPE0_BLK_LEN && rd32(fadt + FADT_GPE0_BLK) &&
	    rd32(fadt + FADT_GPE0_BLK) < 0x10000 && fadt[FADT_GPE0_BLK_LEN] >= 2) {
		port = rd32(fadt + FADT_GPE0_BLK);
		len = fadt[FADT_GPE0_BLK_LEN];
	}
	gpe0_sts = (uint16_t)port;
	gpe0_en = (uint16_t)(port + len / 2);
}

/* QEMU's COST method: _OST(event, status) for the CPU in `slot`. */
static void report_ost(uint32_t slot, uint32_t event, uint32_t status)
{
	outl(CPUHP_SELECTOR, slot);
	outb(CPUHP_COMMAND, CPUHP_CMD_OST_EVENT);
	outl(CPUHP_DATA, event);
	outb(CPUHP_COMMAND, CPUHP_CMD_OST_STATUS);
	outl(CPUHP_DATA, status);
}

/* The selected CPU's APIC ID (command 3: low half in command data, high half at 0). */
static uint32_t selected_apic_id(void)
{
	outb(CPUHP_COMMAND, CPUHP_CMD_ARCH_ID);
	return inl(CPUHP_DATA);
}

static void handle_insert(uint32_t slot)
{
	outb(CPUHP_FLAGS, CPUHP_CTL_CLEAR_INSERT);
	uint32_t apic = selected_apic_id();
	bool enabled = inb(CPUHP_FLAGS) & CPUHP_STS_ENABLED;

	print_slot("PROBE-HOTPLUG insert", slot, apic);
	if (!enabled) {
		print_slot("PROBE-ERROR hotplug insert of a disabled CPU", slot, apic);
		report_ost(slot, OST_EVENT_DEVICE_CHECK, OST_FAILURE);
		return;
	}
	if (!smp_start(apic, HOTPLUG_STACK_BASE + slot, slot, AP_TASK_DUMP)) {
		print_slot("PROBE-ERROR hotplug did not start", slot, apic);
		report_ost(slot, OST_EVENT_DEVICE_CHECK, OST_FAILURE);
		return;
	}
	print_slot("PROBE-HOTPLUG online", slot, apic);
	report_ost(slot, OST_EVENT_DEVICE_CHECK, OST_SUCCESS);
}

static void handle_remove(uint32_t slot)
{
	outb(CPUHP_FLAGS, CPUHP_CTL_CLEAR_REMOVE);
	uint32_t apic = selected_apic_id();

	report_ost(slot, OST_EVENT_EJECT_REQUEST, OST_EJECT_IN_PROGRESS);
	/* The vCPU parked in cli; hlt after its dump: nothing to stop.  _EJ0: */
	outl(CPUHP_SELECTOR, slot);
	outb(CPUHP_FLAGS, CPUHP_CTL_EJECT);
	report_ost(slot, OST_EVENT_EJECT_REQUEST, OST_SUCCESS);
	print_slot("PROBE-HOTPLUG eject", slot, apic);
}

/* Command 0 from selector 0: true and the slot and its flags if a CPU has an event. */
static bool next_event(uint32_t *slot, uint8_t *flags)
{
	outl(CPUHP_SELECTOR, 0);
	outb(CPUHP_COMMAND, CPUHP_CMD_NEXT_EVENT);
	*flags = inb(CPUHP_FLAGS);
	if (!(*flags & (CPUHP_STS_INSERT | CPUHP_STS_REMOVE)))
		return false;
	*slot = inl(CPUHP_DATA);
	return true;
}

/* QEMU's CSCN: every CPU with an event, until none is left. */
static void scan(void)
{
	uint32_t slot;
	uint8_t flags;

	for (uint32_t n = 0; n < MAX_EVENTS_PER_SCAN && next_event(&slot, &flags); n++) {
		if (flags & CPUHP_STS_INSERT)
			handle_insert(slot);
		else
			handle_remove(slot);
	}
}

/* Whether a boot-time processor (one of the `n` from smp_init) with `apic` is running. */
static bool booted(uint32_t apic, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (smp_apic_id(i) == apic && (i == smp_bsp_index() || smp_started(i)))
			return true;
	return false;
}

/*
 * The OS's boot-time scan of the processor objects: a slot that is enabled (_STA) but was not
 * in the MADT as enabled (plugged after the firmware built the tables, before our switch, so
 * no insert event will come for it) is started like an inserted one, without _OST (there was
 * no notification to answer).  Returns how many it started.
 */
static uint32_t start_present(uint32_t slots, uint32_t n)
{
	uint32_t started = 0;

	for (uint32_t slot = 0; slot < slots; slot++) {
		outl(CPUHP_SELECTOR, slot);
		if (!(inb(CPUHP_FLAGS) & CPUHP_STS_ENABLED))
			continue;
		uint32_t apic = selected_apic_id();
		if (booted(apic, n))
			continue;
		print_slot("PROBE-HOTPLUG present", slot, apic);
		if (smp_start(apic, HOTPLUG_STACK_BASE + slot, slot, AP_TASK_DUMP)) {
			print_slot("PROBE-HOTPLUG online", slot, apic);
			started++;
		} else {
			print_slot("PROBE-ERROR hotplug did not start", slot, apic);
		}
	}
	return started;
}

void hotplug_run(const uint8_t *madt, uint32_t n, uint32_t cpus)
{
	uint32_t slots = smp_madt_slots(madt);

	wait_for_cpus();
	if (!switch_to_modern()) {
		out_line("PROBE-ERROR hotplug: no modern CPU hotplug interface at 0xaf00");
		power_off();
	}
	find_gpe0();
	outb(gpe0_sts, GPE_CPU_HOTPLUG_BIT); /* write-one-to-clear anything stale */
	outb(gpe0_en, (uint8_t)(inb(gpe0_en) | GPE_CPU_HOTPLUG_BIT));
	cpus += start_present(slots, n);

	char buf[64];
	struct out o = OUT_INIT(buf);
	out_str(&o, "PROBE-HOTPLUG ready cpus=");
	out_dec(&o, cpus);
	out_str(&o, " max=");
	out_dec(&o, slots);
	out_end(&o);

	for (;;) {
		apic_timer_oneshot(POLL_TIMER_COUNT);
		sleep_until_interrupt();
		power_poll();
		if (!(inb(gpe0_sts) & GPE_CPU_HOTPLUG_BIT))
			continue;
		scan();
		outb(gpe0_sts, GPE_CPU_HOTPLUG_BIT);
		/* An event raised after the scan but before the clear: scan again. */
		scan();
	}
}
