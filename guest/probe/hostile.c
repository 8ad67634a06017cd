/*
 * hostile.c - mode=hostile: a guest that does everything a VMM must survive, then prints
 * forever.  rvmm's tests (crates/rvmm/tests/hostile.rs) check that the VMM stays
 * answerable and ends cleanly on a signal meanwhile.
 *
 *   1. A console flood of FLOOD_SECONDS (first, so that a VMM whose stdout nobody drains
 *      is under back-pressure for everything that follows), PROBE-HOSTILE flood lines=N.
 *   2. INIT/SIPI storms at every AP: the Start-up vector names a page holding `cli; hlt`,
 *      so each AP parks (a spinning AP starves the BSP on a small host).
 *   3. Every I/O port 0..0xffff read and written with sizes 1, 2 and 4 and pseudo-random
 *      values, except the accesses that would legitimately end the VM (the reset control
 *      register 0xcf9, the i8042 command port, port 0x92, isa-debug-exit 0xf4 and the PM1a
 *      control block from the FADT); then those registers, the PM1a event block and the
 *      PM timer hammered with values that do not power off or reset; then QEMU's CPU hotplug
 *      block (0xaf00) switched to its modern interface and fed what a broken OSPM might
 *      write: selectors out of range, reserved control bits, ejects of the boot CPU, reserved
 *      commands and command data (PROBE-HOSTILE cpuhp done).
 *   4. The MMIO hole between the end of RAM and the IOAPIC, read and written with sizes
 *      1, 2, 4 and 8 (every MiB, at a random offset); the IOAPIC and local APIC pages read
 *      at every offset and size, and written wherever a write cannot send the BSP an INIT,
 *      NMI or SMI (no ICR writes, redirection entries fixed and masked).
 *   5. COM1 put back in order after each phase (PROBE-HOSTILE storm/ports/mmio done), then
 *      PROBE-HOSTILE-ALIVE n, forever.
 *
 * On a kvm-pvm host every exit costs tens of microseconds: the port sweep (393,216
 * accesses) takes most of a minute there.
 *
 * Interrupts stay disabled throughout (nothing returns with IRET on this host).
 */
#include "probe.h"

#define PARK_PAGE 0x3000 /* below 1 MiB, clear of start_info (0x6000) and the trampoline */
#define STORM_ROUNDS 200
#define FLOOD_SECONDS 3

#define FADT_PM1A_CNT_BLK 64
#define DEFAULT_PM1A_CNT 0x604
#define RESET_CONTROL_PORT 0xcf9
#define I8042_CMD_PORT 0x64
#define PORT92 0x92
#define DEBUG_EXIT_PORT 0xf4
#define COM1 0x3f8
#define CPUHP_BASE 0xaf00
#define CPUHP_FLAGS (CPUHP_BASE + 4)
#define CPUHP_COMMAND (CPUHP_BASE + 5)
#define CPUHP_DATA (CPUHP_BASE + 8)
#define CPUHP_EJECT 0x08

#define MMIO_HOLE_END 0xfec00000ull
#define IOAPIC_BASE 0xfec00000ull
#define LAPIC_BASE 0xfee00000ull
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define IOAPIC_IOWIN 0x10

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* xorshift64 */
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint32_t pm1a_cnt;

/* Whether [port, port + size) touches a register that ends the VM when written. */
static bool ends_vm(uint32_t port, uint32_t size)
{
	for (uint32_t p = port; p < port + size; p++) {
		uint32_t q = p & 0xffff;
		if (q == RESET_CONTROL_PORT || q == I8042_CMD_PORT || q == PORT92 ||
		    (q >= DEBUG_EXIT_PORT && q < DEBUG_EXIT_PORT + 4) ||
		    (q >= pm1a_cnt && q < pm1a_cnt + 2))
			return true;
	}
	return false;
}

static volatile uint32_t sink;

static void port_access(uint16_t port, uint32_t size, bool write)
{
	uint32_t v = (uint32_t)rnd();

	switch (size) {
	case 1:
		if (write)
			outb(port, (uint8_t)v);
		else
			sink = inb(port);
		break;
	case 2:
		if (write)
			outw(port, (uint16_t)v);
		else
			sink = inw(port);
		break;
	default:
		if (write)
			outl(port, v);
		else
			sink = inl(port);
	}
}

static void sweep_ports(void)
{
	for (uint32_t port = 0; port <= 0xffff; port++) {
		for (uint32_t size = 1; size <= 4; size *= 2) {
			port_access((uint16_t)port, size, false);
			if (!ends_vm(port, size))
				port_access((uint16_t)port, size, true);
		}
	}
}

/* QEMU's CPU hotplug block, as a broken OSPM would drive it.  None of this may eject the boot
 * CPU (the next line on the console proves it still runs) or disturb the VMM. */
static void hammer_cpu_hotplug(void)
{
	static const uint32_t selectors[] = { 0xffffffffu, 0x80000000u, 4096, 255, 0 };

	outl(CPUHP_BASE, 0); /* the switch to the modern interface */
	for (uint32_t i = 0; i < sizeof(selectors) / sizeof(selectors[0]); i++) {
		outl(CPUHP_BASE, selectors[i]);
		outb(CPUHP_FLAGS, 0xe0);	/* reserved control bits */
		outb(CPUHP_FLAGS, CPUHP_EJECT); /* out of range, or the boot CPU */
		outb(CPUHP_COMMAND, (uint8_t)rnd());
		outl(CPUHP_DATA, (uint32_t)rnd());
		sink = inl(CPUHP_DATA);
		sink = inl(CPUHP_BASE);
		sink = inb(CPUHP_FLAGS);
	}
	for (uint32_t cmd = 4; cmd < 256; cmd++) { /* reserved commands */
		outl(CPUHP_BASE, 0);
		outb(CPUHP_COMMAND, (uint8_t)cmd);
		outl(CPUHP_DATA, (uint32_t)rnd());
		sink = inl(CPUHP_DATA);
	}
	outl(CPUHP_BASE, 0);
	for (uint32_t bits = 0; bits < 256; bits++) /* every control value on the boot CPU */
		outb(CPUHP_FLAGS, (uint8_t)bits);
	for (uint32_t off = 0; off < 32; off++) /* every byte, also past the modern block */
		sink = inb((uint16_t)(CPUHP_BASE + off));
}

/* The registers that can end the VM, with values that do not. */
static void hammer_power_registers(void)
{
	for (uint32_t i = 0; i < 20000; i++) {
		uint32_t v = (uint32_t)rnd();
		/* 0xcf9: bit 2 is the reset trigger (PIIX RCR); everything else is state. */
		outb(RESET_CONTROL_PORT, (uint8_t)(v & ~4u));
		/* i8042: not a pulse-output command (0xf0-0xff) nor "write output port" (0xd1). */
		uint8_t cmd = (uint8_t)(v >> 8);
		if (cmd < 0xf0 && cmd != 0xd1)
			outb(I8042_CMD_PORT, cmd);
		/* PM1a control without SLP_EN (bit 13): no sleep state is entered. */
		outw((uint16_t)pm1a_cnt, (uint16_t)((v >> 16) & ~(1u << 13)));
		sink = inw((uint16_t)pm1a_cnt);
		/* PM1a status/enable (write-one-to-clear status, enables) and the PM timer. */
		outl((uint16_t)(pm1a_cnt - 4), (uint32_t)rnd());
		sink = inl((uint16_t)(pm1a_cnt - 4));
		sink = inl((uint16_t)(pm1a_cnt + 4));
		/* Port 0x92 without the fast-reset bit 0. */
		outb(PORT92, (uint8_t)(v & ~1u));
	}
}

static void mmio_access(uint64_t addr, uint32_t size, bool write)
{
	uint64_t v = rnd();
	void *p = phys(addr);

	switch (size) {
	case 1:
		if (write)
			*(volatile uint8_t *)p = (uint8_t)v;
		else
			sink = *(volatile uint8_t *)p;
		break;
	case 2:
		if (write)
			*(volatile uint16_t *)p = (uint16_t)v;
		else
			sink = *(volatile uint16_t *)p;
		break;
	case 4:
		if (write)
			*(volatile uint32_t *)p = (uint32_t)v;
		else
			sink = *(volatile uint32_t *)p;
		break;
	default:
		if (write)
			*(volatile uint64_t *)p = v;
		else
			sink = (uint32_t)*(volatile uint64_t *)p;
	}
}

/* Reads and writes of every size at a random offset of each MiB in [start, end). */
static void sweep_range(uint64_t start, uint64_t end)
{
	for (uint64_t mib = (start + 0xfffff) & ~0xfffffull; mib < end; mib += 0x100000) {
		for (uint32_t size = 1; size <= 8; size *= 2) {
			uint64_t addr = mib + (rnd() & 0xffff8);
			mmio_access(addr, size, false);
			mmio_access(addr, size, true);
		}
	}
}

/* The holes below 4 GiB: from the end of RAM to the IOAPIC, and above the local APIC. */
static void sweep_mmio_hole(uint64_t ram_end)
{
	sweep_range(ram_end, MMIO_HOLE_END);
	sweep_range(LAPIC_BASE + 0x100000, 0x100000000ull);
}

static void sweep_ioapic(void)
{
	for (uint32_t off = 0; off < 0x40; off++)
		for (uint32_t size = 1; size <= 8; size *= 2)
			if ((off & (size - 1)) == 0)
				mmio_access(IOAPIC_BASE + off, size, false);
	for (uint32_t i = 0; i < 2000; i++) {
		uint32_t sel = (uint32_t)rnd() & 0xff;
		*(volatile uint32_t *)phys(IOAPIC_BASE) = sel;
		/* Redirection entry low words: fixed delivery (bits 10:8 = 0), masked. */
		uint32_t v = (uint32_t)rnd();
		if (sel >= 0x10 && (sel & 1) == 0)
			v = (v & ~0x700u) | (1u << 16);
		*(volatile uint32_t *)phys(IOAPIC_BASE + IOAPIC_IOWIN) = v;
		sink = *(volatile uint32_t *)phys(IOAPIC_BASE + IOAPIC_IOWIN);
	}
	/* Byte and word writes land in IOREGSEL only. */
	for (uint32_t i = 0; i < 256; i++) {
		*(volatile uint8_t *)phys(IOAPIC_BASE) = (uint8_t)rnd();
		*(volatile uint16_t *)phys(IOAPIC_BASE) = (uint16_t)rnd();
	}
}

static void sweep_lapic(void)
{
	for (uint32_t off = 0; off < 0x1000; off++)
		for (uint32_t size = 1; size <= 8; size *= 2)
			if ((off & (size - 1)) == 0)
				mmio_access(LAPIC_BASE + off, size, false);
	/* Sub-dword writes anywhere but the ICR (the APIC ignores them). */
	for (uint32_t off = 0; off < 0x1000; off++) {
		if (off >= LAPIC_ICR_LOW && off < LAPIC_ICR_HIGH + 0x10)
			continue;
		mmio_access(LAPIC_BASE + off, 1, true);
		if ((off & 1) == 0)
			mmio_access(LAPIC_BASE + off, 2, true);
	}
	/* Dword writes to registers that cannot send an IPI: TPR, ESR, timer count and
	 * divide, the (masked) timer LVT. */
	static const uint32_t regs[] = { 0x80, 0x280, 0x380, 0x3e0 };
	for (uint32_t i = 0; i < 4000; i++) {
		*(volatile uint32_t *)phys(LAPIC_BASE + regs[i % 4]) = (uint32_t)rnd();
		*(volatile uint32_t *)phys(LAPIC_BASE + 0x320) = ((uint32_t)rnd() & 0xff) |
								     (1u << 16);
	}
	*(volatile uint32_t *)phys(LAPIC_BASE + 0x380) = 0;
	*(volatile uint32_t *)phys(LAPIC_BASE + 0x80) = 0;
}

static void storm(uint32_t n)
{
	static const uint8_t park[] = { 0xfa, 0xf4, 0xeb, 0xfd }; /* cli; 1: hlt; jmp 1b */

	memcpy(phys(PARK_PAGE), park, sizeof(park));
	for (uint32_t round = 0; round < STORM_ROUNDS; round++) {
		for (uint32_t cpu = 0; cpu < n; cpu++) {
			if (cpu == smp_bsp_index())
				continue;
			uint32_t id = smp_apic_id(cpu);
			apic_send_ipi(id, ICR_DM_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL);
			apic_send_ipi(id, ICR_DM_INIT | ICR_TRIGGER_LEVEL); /* de-assert */
			apic_send_ipi(id, ICR_DM_STARTUP | (PARK_PAGE >> 12));
			apic_send_ipi(id, ICR_DM_STARTUP | (PARK_PAGE >> 12));
		}
		/* All-excluding-self shorthand (ICR bits 19:18 = 11). */
		apic_send_ipi(0, ICR_DM_INIT | ICR_LEVEL_ASSERT | (3u << 18));
		apic_send_ipi(0, ICR_DM_STARTUP | (3u << 18) | (PARK_PAGE >> 12));
	}
}

/* COM1 as out.c expects it: 8N1, no loopback, no interrupts, FIFO on. */
static void serial_reset(void)
{
	outb(COM1 + 3, 0x03); /* LCR: DLAB off, 8N1 */
	outb(COM1 + 1, 0x00); /* IER */
	outb(COM1 + 2, 0x07); /* FCR: enable and clear the FIFOs */
	outb(COM1 + 4, 0x03); /* MCR: DTR, RTS, no loopback */
}

static void print_count(const char *what, uint64_t n)
{
	char buf[80];
	struct out o = OUT_INIT(buf);

	out_str(&o, what);
	out_dec(&o, n);
	out_end(&o);
}

static void flood(void)
{
	static const char line[] =
		"hostile flood: the quick brown fox jumps over the lazy dog 0123456789\n";
	uint64_t end = rdtsc() + FLOOD_SECONDS * tsc_hz();
	uint64_t lines = 0;

	while (rdtsc() < end) {
		const char *p = line;
		size_t len = sizeof(line) - 1;
		__asm__ volatile("rep outsb" : "+S"(p), "+c"(len) : "d"((uint16_t)COM1) : "memory");
		lines++;
	}
	print_count("PROBE-HOSTILE flood lines=", lines);
}

void hostile_run(uint32_t n, uint64_t ram_end)
{
	const uint8_t *fadt = acpi_find("FACP");

	pm1a_cnt = fadt ? rd32(fadt + FADT_PM1A_CNT_BLK) : DEFAULT_PM1A_CNT;
	if (pm1a_cnt < 4 || pm1a_cnt > 0xfff0)
		pm1a_cnt = DEFAULT_PM1A_CNT;

	flood();
	storm(n);
	serial_reset();
	out_line("PROBE-HOSTILE storm done");
	sweep_ports();
	hammer_power_registers();
	serial_reset();
	out_line("PROBE-HOSTILE ports done");
	hammer_cpu_hotplug();
	out_line("PROBE-HOSTILE cpuhp done");
	sweep_mmio_hole(ram_end);
	sweep_ioapic();
	sweep_lapic();
	serial_reset();
	out_line("PROBE-HOSTILE mmio done");
	for (uint64_t i = 0;; i++)
		print_count("PROBE-HOSTILE-ALIVE ", i);
}
