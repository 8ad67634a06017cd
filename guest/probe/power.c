/*
 * power.c - turn the VM off, trying in order:
 *   1. ACPI S5 through the FADT (ACPI 6.5 7.4.2 "\_Sx (System States)", 4.8.3.2 "PM1
 *      Control Registers", 4.8.3.7 "Sleep Control and Status Registers");
 *   2. QEMU's isa-debug-exit at port 0xf4 (rvmm treats a write there as poweroff too);
 *   3. a reset pulse through the i8042 keyboard controller;
 *   4. halt forever.
 *
 * power_button_wait() is the other half, an OS's reaction to the ACPI power button (what
 * `system_powerdown` presses): PROBE-POWERBUTTON, then S5 as above.  The fixed-feature
 * button (ACPI 6.5 4.8.2.2.1.1) on a machine with PM1 registers (rvmm, QEMU pc): PWRBTN_EN
 * in PM1a_EN, PWRBTN_STS in PM1a_STS (write one to clear) after the SCI.  On a
 * hardware-reduced machine (QEMU microvm) the button is the Generic Event Device's
 * power-down event (ACPI 6.5 5.6.9; QEMU hw/acpi/generic_event_device.c): bit 1 of its
 * event selector register, which a read returns and clears; the GED (_HID ACPI0013) and
 * its interrupt are found in the DSDT.  The BSP sleeps until the interrupt (routed in the
 * IOAPIC to the BSP), with a one-second timer as a backstop, and checks the status then.
 *
 * power_poll() is the same reaction for the modes that keep the BSP busy until the VMM
 * stops them (busy, load, counter, hotplug): no interrupt, the status is read when the BSP
 * calls it, at most POLLS_PER_SECOND times a second (a read is a VM exit).  Its first call
 * sets PWRBTN_EN (QEMU sets PWRBTN_STS only when it is enabled; rvmm sets it either way),
 * leaving the SCI's IOAPIC pin masked and the PICs masked (apic_init_bsp).
 */
#include "probe.h"

/* FADT field offsets (ACPI 6.5 5.2.9, Table 5.9). */
#define FADT_DSDT 40
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM1B_CNT_BLK 68
#define FADT_FLAGS 112
#define FADT_X_DSDT 140
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_SLEEP_CONTROL_REG 244
#define FADT_FLAG_HW_REDUCED_ACPI (1u << 20)

/* Generic Address Structure (ACPI 6.5 5.2.3.2). */
#define GAS_SPACE_ID 0
#define GAS_BIT_WIDTH 1
#define GAS_ADDRESS 4
#define GAS_LEN 12
#define GAS_SPACE_MEMORY 0
#define GAS_SPACE_IO 1

/* PM1 control register: SLP_TYPx bits [12:10], SLP_EN bit 13. */
#define PM1_SLP_TYP_SHIFT 10
#define PM1_SLP_EN (1u << 13)
/* Sleep control register: SLP_TYPx bits [4:2], SLP_EN bit 5. */
#define SLEEP_CTL_SLP_TYP_SHIFT 2
#define SLEEP_CTL_SLP_EN (1u << 5)

/* AML opcodes (ACPI 6.5 20.2): PackageOp, BytePrefix, ZeroOp, OneOp. */
#define AML_PACKAGE_OP 0x12
#define AML_BYTE_PREFIX 0x0a
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01

/* FADT fields for the power button: SCI_INT (2 bytes), PM1a_EVT_BLK, PM1_EVT_LEN. */
#define FADT_SCI_INT 46
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1_EVT_LEN 88
#define PM1_PWRBTN (1u << 8) /* PWRBTN_STS in PM1 status, PWRBTN_EN in PM1 enable */
#define GED_EVT_PWR_DOWN (1u << 1) /* QEMU's ACPI_GED_PWR_DOWN_EVT */
#define AML_EXT_OP_PREFIX 0x5b
#define AML_OP_REGION_OP 0x80 /* after ExtOpPrefix */
#define AML_DWORD_PREFIX 0x0c
#define AML_SYSTEM_MEMORY 0x00
#define AML_EXT_INTERRUPT 0x89 /* large resource 0x09 */
#define GED_SEARCH_LEN 256

/* The IOAPIC of rvmm and QEMU (pc and microvm's first) at its architectural base. */
#define IOAPIC_BASE 0xfec00000ull
#define IOAPIC_IOWIN 0x10
#define IOAPIC_REDTBL 0x10
#define IOAPIC_LEVEL (1u << 15)
#define SCI_VECTOR 0x42
#define BACKSTOP_TIMER_COUNT 1000000000u /* 1 s at KVM's 1 GHz APIC timer clock */
#define POLLS_PER_SECOND 100

#define DEBUG_EXIT_PORT 0xf4
#define I8042_COMMAND_PORT 0x64
#define I8042_PULSE_RESET 0xfe

/*
 * SLP_TYPa for S5 from the DSDT: the `_S5_` name followed by a Package whose first element
 * is the value: Name (_S5, Package () { 5, ... }).  Default 0 (QEMU's piix4/q35 value).
 */
static uint32_t s5_sleep_type(const uint8_t *dsdt)
{
	if (!dsdt)
		return 0;
	uint32_t len = rd32(dsdt + 4);
	for (uint32_t i = 36; i + 8 < len; i++) {
		/* The first-byte test keeps this loop short: every instruction counts here. */
		if (dsdt[i] != '_' || memcmp(dsdt + i, "_S5_", 4) != 0 ||
		    dsdt[i + 4] != AML_PACKAGE_OP)
			continue;
		/* PkgLength: bits [7:6] of its lead byte count the bytes that follow it. */
		const uint8_t *p = dsdt + i + 5;
		p += 1 + (p[0] >> 6);
		p += 1; /* NumElements */
		if (p[0] == AML_BYTE_PREFIX)
			return p[1];
		if (p[0] == AML_ONE_OP)
			return 1;
		return 0; /* ZeroOp or anything we do not decode */
	}
	return 0;
}

static void gas_write(const uint8_t *gas, uint32_t value)
{
	uint64_t addr = rd64(gas + GAS_ADDRESS);
	uint8_t width = gas[GAS_BIT_WIDTH];

	if (!addr)
		return;
	if (gas[GAS_SPACE_ID] == GAS_SPACE_IO) {
		if (width == 16)
			outw((uint16_t)addr, (uint16_t)value);
		else if (width == 32)
			outl((uint16_t)addr, value);
		else
			outb((uint16_t)addr, (uint8_t)value);
	} else if (gas[GAS_SPACE_ID] == GAS_SPACE_MEMORY && addr < 0x100000000ull) {
		if (width == 16)
			*(volatile uint16_t *)phys(addr) = (uint16_t)value;
		else if (width == 32)
			*(volatile uint32_t *)phys(addr) = value;
		else
			*(volatile uint8_t *)phys(addr) = (uint8_t)value;
	}
}

static void acpi_s5(void)
{
	const uint8_t *fadt = acpi_find("FACP");

	if (!fadt)
		return;
	uint32_t len = rd32(fadt + 4);
	uint64_t dsdt = 0;
	if (len >= FADT_X_DSDT + 8)
		dsdt = rd64(fadt + FADT_X_DSDT);
	if (!dsdt || dsdt >= 0x100000000ull)
		dsdt = rd32(fadt + FADT_DSDT);
	uint32_t slp_typ = s5_sleep_type(dsdt ? phys(dsdt) : NULL) & 7;

	if ((rd32(fadt + FADT_FLAGS) & FADT_FLAG_HW_REDUCED_ACPI) &&
	    len >= FADT_SLEEP_CONTROL_REG + GAS_LEN) {
		gas_write(fadt + FADT_SLEEP_CONTROL_REG,
			  (slp_typ << SLEEP_CTL_SLP_TYP_SHIFT) | SLEEP_CTL_SLP_EN);
		return;
	}

	uint16_t pm1 = (uint16_t)((slp_typ << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
	uint32_t pm1a = rd32(fadt + FADT_PM1A_CNT_BLK);
	uint32_t pm1b = rd32(fadt + FADT_PM1B_CNT_BLK);
	if (!pm1a && len >= FADT_X_PM1A_CNT_BLK + GAS_LEN &&
	    fadt[FADT_X_PM1A_CNT_BLK + GAS_SPACE_ID] == GAS_SPACE_IO)
		pm1a = (uint32_t)rd64(fadt + FADT_X_PM1A_CNT_BLK + GAS_ADDRESS);
	if (pm1a)
		outw((uint16_t)pm1a, pm1);
	if (pm1b)
		outw((uint16_t)pm1b, pm1);
}

/*
 * A VMM may act on the S5 write asynchronously (QEMU queues a shutdown request and lets the
 * vCPU run on), so give it a moment before the cruder fallbacks: isa-debug-exit would
 * otherwise win the race and end QEMU with a non-zero status.
 */
static void settle(void)
{
	uint64_t start = rdtsc(), ticks = tsc_hz() / 20;

	while (rdtsc() - start < ticks)
		cpu_pause();
}

/* A guest reboot the way Linux's reboot=k does it: pulse the CPU reset line. */
void reset(void)
{
	outb(I8042_COMMAND_PORT, I8042_PULSE_RESET);
	halt_forever();
}

/*
 * An exception (#UD) with an empty IDT cannot be delivered (#GP, then #DF, then shutdown): a triple
 * fault, which KVM reports as KVM_EXIT_SHUTDOWN.
 */
void triple_fault(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} empty = { 0, 0 };

	__asm__ volatile("lidt %0\n\tud2" : : "m"(empty));
	halt_forever();
}

static void ioapic_route(uint32_t gsi, bool level)
{
	volatile uint32_t *sel = phys(IOAPIC_BASE);
	volatile uint32_t *win = phys(IOAPIC_BASE + IOAPIC_IOWIN);

	if (gsi >= 24)
		return;
	*sel = IOAPIC_REDTBL + 2 * gsi + 1;
	*win = apic_self_id() << 24; /* physical destination: this CPU */
	*sel = IOAPIC_REDTBL + 2 * gsi;
	*win = SCI_VECTOR | (level ? IOAPIC_LEVEL : 0); /* fixed, active high, unmasked */
}

/* The DSDT the FADT names, or NULL. */
static const uint8_t *fadt_dsdt(const uint8_t *fadt)
{
	uint32_t len = rd32(fadt + 4);
	uint64_t dsdt = 0;

	if (len >= FADT_X_DSDT + 8)
		dsdt = rd64(fadt + FADT_X_DSDT);
	if (!dsdt || dsdt >= 0x100000000ull)
		dsdt = rd32(fadt + FADT_DSDT);
	return dsdt ? phys(dsdt) : NULL;
}

/*
 * The Generic Event Device in the DSDT: after its _HID string "ACPI0013", the first
 * SystemMemory OperationRegion with a DWord offset is its event selector register and the
 * first Extended Interrupt descriptor (in _CRS) its GSI, as QEMU's build_ged_aml emits
 * them.  Returns the register's address.
 */
static uint64_t find_ged(const uint8_t *dsdt, uint32_t *gsi)
{
	if (!dsdt)
		return 0;
	uint32_t len = rd32(dsdt + 4);
	for (uint32_t i = 36; i + 8 < len; i++) {
		if (dsdt[i] != 'A' || memcmp(dsdt + i, "ACPI0013", 8) != 0)
			continue;
		uint64_t base = 0;
		for (uint32_t j = i + 8; j + 12 < len && j < i + GED_SEARCH_LEN; j++) {
			/* OperationRegion (NAME, SystemMemory, DWord offset, length) */
			if (!base && dsdt[j] == AML_EXT_OP_PREFIX && dsdt[j + 1] == AML_OP_REGION_OP &&
			    dsdt[j + 6] == AML_SYSTEM_MEMORY && dsdt[j + 7] == AML_DWORD_PREFIX)
				base = rd32(dsdt + j + 8);
			if (dsdt[j] == AML_EXT_INTERRUPT && dsdt[j + 1] >= 6 && dsdt[j + 4] == 1)
				*gsi = rd32(dsdt + j + 5);
		}
		return base;
	}
	return 0;
}

/* Whether the button was pressed (PM1a's PWRBTN_STS, cleared here, or the GED's event). */
static bool button_pressed(uint16_t sts, volatile uint32_t *ged)
{
	if (ged)
		return *ged & GED_EVT_PWR_DOWN;
	if (!sts || !(inw(sts) & PM1_PWRBTN))
		return false;
	outw(sts, PM1_PWRBTN);
	return true;
}

static struct {
	bool ready;
	uint16_t sts; /* PM1a_STS, or 0 */
	volatile uint32_t *ged; /* the GED's event selector, or NULL */
	uint64_t next, interval; /* TSC ticks */
} poll;

static void power_poll_init(void)
{
	const uint8_t *fadt = acpi_find("FACP");

	poll.ready = true;
	poll.interval = tsc_hz() / POLLS_PER_SECOND;
	if (!fadt)
		return;
	uint16_t sts = (uint16_t)rd32(fadt + FADT_PM1A_EVT_BLK);
	if (sts) {
		uint16_t en = (uint16_t)(sts + fadt[FADT_PM1_EVT_LEN] / 2);
		/* No stale-status clear: a press before this first call still counts. */
		outw(en, (uint16_t)(inw(en) | PM1_PWRBTN));
		poll.sts = sts;
		return;
	}
	uint32_t gsi = 0;
	uint64_t base = find_ged(fadt_dsdt(fadt), &gsi);
	if (base && base < 0x100000000ull)
		poll.ged = phys(base);
}

void power_poll(void)
{
	if (!poll.ready)
		power_poll_init();
	uint64_t now = rdtsc();
	if (now < poll.next)
		return;
	poll.next = now + poll.interval;
	if (!button_pressed(poll.sts, poll.ged))
		return;
	out_line("PROBE-POWERBUTTON");
	power_off();
}

void power_button_wait(void)
{
	const uint8_t *fadt = acpi_find("FACP");

	if (!fadt)
		halt_forever();
	uint16_t sts = (uint16_t)rd32(fadt + FADT_PM1A_EVT_BLK);
	uint16_t en = (uint16_t)(sts + fadt[FADT_PM1_EVT_LEN] / 2);
	uint32_t gsi = rd16(fadt + FADT_SCI_INT);
	volatile uint32_t *ged = NULL;

	if (sts) {
		outw(sts, PM1_PWRBTN); /* anything stale */
		outw(en, (uint16_t)(inw(en) | PM1_PWRBTN));
		ioapic_route(gsi, true); /* SCI: level, active high (the MADT's override) */
	} else {
		uint64_t base = find_ged(fadt_dsdt(fadt), &gsi);
		if (!base || base >= 0x100000000ull)
			halt_forever();
		ged = phys(base);
		ioapic_route(gsi, false); /* QEMU's GED interrupt: edge, active high */
	}
	for (;;) {
		apic_timer_oneshot(BACKSTOP_TIMER_COUNT);
		sleep_until_interrupt();
		apic_eoi();
		if (button_pressed(ged ? 0 : sts, ged))
			break;
	}
	out_line("PROBE-POWERBUTTON");
	power_off();
}

void power_off(void)
{
	acpi_s5();
	settle();
	outl(DEBUG_EXIT_PORT, 0);
	outb(I8042_COMMAND_PORT, I8042_PULSE_RESET);
	halt_forever();
}
