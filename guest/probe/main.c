/*
 * main.c - the BSP's program: read hvm_start_info and the command line, then run the mode.
 *
 *   mode=dump (default)  PROBE-BEGIN v1, every vCPU's CPUID, the MADT/SRAT/SLIT,
 *                        PROBE-END cpus=N, power off
 *   mode=hello           PROBE-HELLO, power off
 *   mode=busy            the dump, then every vCPU loops on arithmetic; PROBE-BUSY cpus=N
 *
 *   mode=busy, load, counter and hotplug run until stopped; their BSP acts on the ACPI
 *   power button as mode=halt does (power_poll in power.c): PROBE-POWERBUTTON, power off.
 *
 *   mode=halt            the dump, PROBE-HALT cpus=N, the APs halt forever; the BSP waits
 *                        for the ACPI power button (power.c), then PROBE-POWERBUTTON and
 *                        powers off
 *   mode=reset           PROBE-RESET, then an i8042 reset pulse (a guest reboot)
 *   mode=triplefault     PROBE-TRIPLEFAULT, then ud2 with an empty IDT (a triple fault)
 *   mode=pio count=K     the dump, K one-byte writes to port 0x80, PROBE-PIO count=K,
 *                        power off
 *   mode=debugexit       PROBE-DEBUGEXIT, then a 32-bit write of 0x31 to isa-debug-exit
 *                        (port 0xf4); if the VM is still there, PROBE-DEBUGEXIT-IGNORED and
 *                        power off
 *   mode=hostile         PROBE-HOSTILE, then everything a VMM must survive (hostile.c):
 *                        INIT/SIPI storms, every I/O port and the MMIO holes with random
 *                        values, a console flood, then PROBE-HOSTILE-ALIVE n forever
 *   mode=hotplug         the dump, then the OS side of ACPI CPU hotplug (hotplug.c): switch
 *                        the CPU hotplug block at 0xaf00 to its modern interface, enable
 *                        GPE0 bit 2, start the vCPUs plugged before the switch (PROBE-HOTPLUG
 *                        present slot=S apic=A, CPUID lines, PROBE-HOTPLUG online ...),
 *                        PROBE-HOTPLUG ready cpus=N max=M; then, forever, for
 *                        each event: PROBE-HOTPLUG insert slot=S apic=A, that vCPU's
 *                        CPUID lines (cpu=S), PROBE-HOTPLUG online slot=S apic=A; or
 *                        PROBE-HOTPLUG eject slot=S apic=A once it is ejected;
 *                        wait-cpus=N first waits for N CPUs plugged (hotplug.c's header)
 *   mode=virtio          virtio-blk over virtio-mmio (virtio.c): write, read back, flush and
 *                        GET_ID on every disk found, PROBE-VIRTIO lines, power off;
 *                        virtio=hostile|discard|bench add steps (virtio.c's header);
 *                        virtio=loop never ends: a disk written and read back, or a
 *                        NIC pinging the host, forever (virtio.c's, vnet.c's header)
 *   mode=counter [dirty=PAGES] [dirty-mib=M]
 *                        every vCPU counts and checks a memory region it owns; the BSP
 *                        prints PROBE-COUNTER cpu=N value=V sum=ok|bad gap_ms=G
 *                        (counter.c); gap_ms is the vCPU's largest gap between two 10 ms
 *                        rounds since the last line (TSC time: a pause it could see);
 *                        dirty= also rewrites PAGES pages a second (default 0, at most
 *                        100000) of each vCPU's own M MiB buffer (default 4, 1..1024, all
 *                        of them must fit the RAM), checking each page's previous pattern
 *                        (a mismatch is sum=bad); a bad value is PROBE-ERROR bad dirty...
 *   mode=load duty=D0,D1,... [period=MS]
 *                        every vCPU busy D % of each period (default 100 ms) and halted the
 *                        rest, timed by the TSC (load.c); PROBE-LOAD cpus=N duty=...
 *                        period=MS tsc_khz=K once all run; no dump
 *
 * The strings and numbers here are mirrored in crates/vmm/src/probe/image.rs.
 */
#include "probe.h"

/* struct hvm_start_info (Xen public/arch-x86/hvm/start_info.h). */
#define HVM_START_MAGIC 0x336ec578
#define HVM_START_CMDLINE_PADDR 24
#define HVM_START_RSDP_PADDR 32
#define HVM_START_MEMMAP_PADDR 40
#define HVM_START_MEMMAP_ENTRIES 48
#define HVM_MEMMAP_TYPE_RAM 1
#define RAM_END_DEFAULT 0xc0000000ull /* rvmm's MMIO gap start */

#define PIO_PORT 0x80
#define DEBUG_EXIT_PORT 0xf4
#define DEBUG_EXIT_VALUE 0x31 /* QEMU exits with (0x31 << 1) | 1 = 99 */
#define PIO_DEFAULT_COUNT 1000000ull
#define CMDLINE_MAX 256
#define BUSY_POLL_STEPS 4096 /* arithmetic steps between power_poll() calls */

enum mode {
	MODE_DUMP,
	MODE_HELLO,
	MODE_BUSY,
	MODE_HALT,
	MODE_PIO,
	MODE_RESET,
	MODE_TRIPLEFAULT,
	MODE_HOSTILE,
	MODE_DEBUGEXIT,
	MODE_HOTPLUG,
	MODE_LOAD,
	MODE_VIRTIO,
	MODE_COUNTER
};

static char cmdline[CMDLINE_MAX];

/* A copy of the command line: its page may be reused (the AP trampoline) later. */
static void read_cmdline(uint64_t paddr)
{
	if (!paddr || paddr >= 0x100000000ull)
		return;
	const char *src = phys(paddr);
	for (size_t i = 0; i + 1 < CMDLINE_MAX && src[i]; i++)
		cmdline[i] = src[i];
}

/* The value of `key=` in the command line (up to the next space), or NULL. */
static const char *param(const char *key, size_t *len)
{
	size_t klen = strlen(key);

	for (const char *p = cmdline; *p;) {
		while (*p == ' ')
			p++;
		const char *word = p;
		while (*p && *p != ' ')
			p++;
		if ((size_t)(p - word) > klen && memcmp(word, key, klen) == 0 && word[klen] == '=') {
			*len = (size_t)(p - word) - klen - 1;
			return word + klen + 1;
		}
	}
	return NULL;
}

const char *probe_param(const char *key, size_t *len)
{
	return param(key, len);
}

void probe_bad_param(const char *what, const char *v, size_t len)
{
	char buf[160];
	struct out o = OUT_INIT(buf);

	out_str(&o, "PROBE-ERROR ");
	out_str(&o, what);
	for (size_t i = 0; i < len && i < 64; i++)
		out_char(&o, v[i]);
	out_end(&o);
	power_off();
}

uint32_t probe_number_param(const char *key, uint32_t dflt, uint32_t min, uint32_t max,
			    const char *what)
{
	size_t len = 0;
	const char *v = param(key, &len);
	if (!v)
		return dflt;
	uint64_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9' || n > max)
			probe_bad_param(what, v, len);
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (len == 0 || n < min || n > max)
		probe_bad_param(what, v, len);
	return (uint32_t)n;
}

static bool value_is(const char *v, size_t len, const char *s)
{
	return len == strlen(s) && memcmp(v, s, len) == 0;
}

static void print_error(const char *what, const char *v, size_t len)
{
	char buf[CMDLINE_MAX + 64];
	struct out o = OUT_INIT(buf);

	out_str(&o, "PROBE-ERROR ");
	out_str(&o, what);
	for (size_t i = 0; i < len; i++)
		out_char(&o, v[i]);
	out_end(&o);
}

static void print_count(const char *what, uint64_t n)
{
	char buf[64];
	struct out o = OUT_INIT(buf);

	out_str(&o, what);
	out_dec(&o, n);
	out_end(&o);
}

/* Parses mode= and count=; prints PROBE-ERROR and powers off on a bad value. */
static enum mode parse_mode(uint64_t *pio_count)
{
	size_t len = 0;
	const char *v = param("mode", &len);
	enum mode mode = MODE_DUMP;

	if (!v || value_is(v, len, "dump"))
		mode = MODE_DUMP;
	else if (value_is(v, len, "hello"))
		mode = MODE_HELLO;
	else if (value_is(v, len, "busy"))
		mode = MODE_BUSY;
	else if (value_is(v, len, "halt"))
		mode = MODE_HALT;
	else if (value_is(v, len, "pio"))
		mode = MODE_PIO;
	else if (value_is(v, len, "reset"))
		mode = MODE_RESET;
	else if (value_is(v, len, "triplefault"))
		mode = MODE_TRIPLEFAULT;
	else if (value_is(v, len, "hostile"))
		mode = MODE_HOSTILE;
	else if (value_is(v, len, "debugexit"))
		mode = MODE_DEBUGEXIT;
	else if (value_is(v, len, "hotplug"))
		mode = MODE_HOTPLUG;
	else if (value_is(v, len, "load"))
		mode = MODE_LOAD;
	else if (value_is(v, len, "virtio"))
		mode = MODE_VIRTIO;
	else if (value_is(v, len, "counter"))
		mode = MODE_COUNTER;
	else {
		print_error("unknown mode ", v, len);
		power_off();
	}

	*pio_count = PIO_DEFAULT_COUNT;
	v = param("count", &len);
	if (v) {
		uint64_t n = 0;
		for (size_t i = 0; i < len; i++) {
			if (v[i] < '0' || v[i] > '9' || n > 1000000000000ull) {
				print_error("bad count ", v, len);
				power_off();
			}
			n = n * 10 + (uint64_t)(v[i] - '0');
		}
		*pio_count = n;
	}
	return mode;
}

/* PROBE-BEGIN .. PROBE-END; returns how many vCPUs dumped (APs that started + the BSP). */
static uint32_t dump_all(uint32_t n)
{
	uint32_t started = 1;

	cpuid_dump(smp_bsp_index());
	acpi_dump("APIC");
	acpi_dump("SRAT");
	acpi_dump("SLIT");
	for (uint32_t cpu = 0; cpu < n; cpu++) {
		if (cpu == smp_bsp_index())
			continue;
		if (smp_run_ap(cpu, AP_TASK_DUMP)) {
			started++;
		} else {
			char buf[64];
			struct out o = OUT_INIT(buf);
			out_str(&o, "PROBE-ERROR ap apic=");
			out_dec(&o, smp_apic_id(cpu));
			out_str(&o, " did not start");
			out_end(&o);
		}
	}
	print_count("PROBE-END cpus=", started);
	return started;
}

/*
 * mode=busy: restart each parked AP straight into the busy loop, then join them.  (APs
 * park during the dump so that busy ones never slow down the one printing.)
 */
__attribute__((noreturn)) static void run_busy(uint32_t n)
{
	uint32_t busy = 1;

	for (uint32_t cpu = 0; cpu < n; cpu++)
		if (cpu != smp_bsp_index() && smp_started(cpu) && smp_run_ap(cpu, AP_TASK_BUSY))
			busy++;
	power_poll(); /* armed before the line that says the guest runs */
	print_count("PROBE-BUSY cpus=", busy);
	/* The BSP's arithmetic, as busy_forever, with a look at the power button between. */
	for (uint64_t x = 1;;) {
		for (uint32_t i = 0; i < BUSY_POLL_STEPS; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			__asm__ volatile("" : "+r"(x));
		}
		power_poll();
	}
}

/* The end of the RAM below 4 GiB, from hvm_start_info's memory map (version 1). */
static uint64_t ram_end_below_4g(const uint8_t *si)
{
	uint64_t end = 0;

	if (!si || rd32(si + 4) < 1)
		return RAM_END_DEFAULT;
	uint64_t map = rd64(si + HVM_START_MEMMAP_PADDR);
	uint32_t entries = rd32(si + HVM_START_MEMMAP_ENTRIES);
	if (!map || map >= 0x100000000ull || entries > 128)
		return RAM_END_DEFAULT;
	const uint8_t *e = phys(map);
	for (uint32_t i = 0; i < entries; i++, e += 24) {
		uint64_t top = rd64(e) + rd64(e + 8);
		if (rd32(e + 16) == HVM_MEMMAP_TYPE_RAM && rd64(e) < 0x100000000ull && top > end)
			end = top < 0x100000000ull ? top : 0x100000000ull;
	}
	return end ? end : RAM_END_DEFAULT;
}

void probe_main(uint32_t start_info_paddr);
void probe_main(uint32_t start_info_paddr)
{
	const uint8_t *si = start_info_paddr ? phys(start_info_paddr) : NULL;
	uint64_t rsdp_hint = 0;
	uint64_t pio_count;

	if (si && rd32(si) == HVM_START_MAGIC) {
		read_cmdline(rd64(si + HVM_START_CMDLINE_PADDR));
		rsdp_hint = rd64(si + HVM_START_RSDP_PADDR);
	}
	/* ACPI first: even a bad command line ends in power_off(), which needs the FADT. */
	bool have_acpi = acpi_init(rsdp_hint);
	enum mode mode = parse_mode(&pio_count);
	if (mode == MODE_HELLO) {
		out_line("PROBE-HELLO");
		power_off();
	}
	if (mode == MODE_RESET) {
		out_line("PROBE-RESET");
		reset();
	}
	if (mode == MODE_TRIPLEFAULT) {
		out_line("PROBE-TRIPLEFAULT");
		triple_fault();
	}
	if (mode == MODE_DEBUGEXIT) {
		out_line("PROBE-DEBUGEXIT");
		outl(DEBUG_EXIT_PORT, DEBUG_EXIT_VALUE);
		out_line("PROBE-DEBUGEXIT-IGNORED");
		power_off();
	}
	if (mode == MODE_HOSTILE) {
		out_line("PROBE-HOSTILE");
		hostile_run(smp_init(acpi_find("APIC")), ram_end_below_4g(si));
	}

	if (mode == MODE_LOAD)
		load_run(smp_init(acpi_find("APIC")));
	if (mode == MODE_VIRTIO)
		virtio_run();
	if (mode == MODE_COUNTER)
		counter_run(smp_init(acpi_find("APIC")), ram_end_below_4g(si));

	out_line("PROBE-BEGIN v1");
	const uint8_t *madt = acpi_find("APIC");
	if (!have_acpi)
		out_line("PROBE-ERROR no ACPI RSDP found");
	else if (!madt)
		out_line("PROBE-ERROR no MADT");
	uint32_t n = smp_init(madt);
	uint32_t cpus = dump_all(n);

	switch (mode) {
	case MODE_BUSY:
		run_busy(n);
	case MODE_HALT:
		print_count("PROBE-HALT cpus=", cpus);
		power_button_wait();
	case MODE_HOTPLUG:
		hotplug_run(madt, n, cpus);
	case MODE_PIO:
		for (uint64_t i = 0; i < pio_count; i++)
			outb(PIO_PORT, 0);
		print_count("PROBE-PIO count=", pio_count);
		power_off();
	default:
		power_off();
	}
}
