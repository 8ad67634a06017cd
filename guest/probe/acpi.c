/*
 * acpi.c - find the ACPI tables the VMM or firmware built, and dump some of them raw.
 *
 * RSDP: hvm_start_info.rsdp_paddr when the loader gives one (rvmm, QEMU's PVH option ROM);
 * otherwise the legacy search (ACPI 6.5 5.2.5.1 "Finding the RSDP on IA-PC Systems"): the
 * first KiB of the EBDA (real-mode segment at 0x40e) and 0xe0000..0xfffff, on 16-byte
 * boundaries, for "RSD PTR " with a valid checksum.  From there the XSDT (64-bit entries,
 * revision >= 2) or the RSDT (32-bit entries) lists the other tables.
 */
#include "probe.h"

/* RSDP fields (ACPI 6.5 5.2.5.3). */
#define RSDP_V1_LEN 20
#define RSDP_REVISION 15
#define RSDP_RSDT_ADDR 16
#define RSDP_LENGTH 20
#define RSDP_XSDT_ADDR 24

/* System description table header (ACPI 6.5 5.2.6): signature, length, ..., 36 bytes. */
#define SDT_LENGTH 4
#define SDT_HEADER_LEN 36

#define BDA_EBDA_SEGMENT 0x40e
#define EBDA_SEARCH_LEN 1024
#define BIOS_AREA_START 0xe0000
#define BIOS_AREA_END 0x100000

/* Tables must lie in the identity-mapped low 4 GiB (entry.S). */
#define MAPPED_LIMIT 0x100000000ull

static const uint8_t *root; /* the XSDT or RSDT */
static uint32_t root_entry_size; /* 8 for the XSDT, 4 for the RSDT */

static bool checksum_ok(const uint8_t *p, uint32_t len)
{
	uint8_t sum = 0;

	for (uint32_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return sum == 0;
}

static bool is_rsdp(const uint8_t *p)
{
	return p[0] == 'R' && memcmp(p, "RSD PTR ", 8) == 0 && checksum_ok(p, RSDP_V1_LEN);
}

static const uint8_t *scan_rsdp(uint64_t start, uint64_t end)
{
	for (uint64_t a = start; a + RSDP_V1_LEN <= end; a += 16) {
		const uint8_t *p = phys(a);
		if (is_rsdp(p))
			return p;
	}
	return NULL;
}

static const uint8_t *find_rsdp(uint64_t hint)
{
	if (hint && hint < MAPPED_LIMIT)
		return phys(hint);

	uint64_t ebda = (uint64_t)rd16(phys(BDA_EBDA_SEGMENT)) << 4;
	if (ebda >= 0x400 && ebda < 0xa0000) {
		const uint8_t *p = scan_rsdp(ebda, ebda + EBDA_SEARCH_LEN);
		if (p)
			return p;
	}
	return scan_rsdp(BIOS_AREA_START, BIOS_AREA_END);
}

bool acpi_init(uint64_t rsdp_hint)
{
	const uint8_t *rsdp = find_rsdp(rsdp_hint);

	if (!rsdp)
		return false;
	uint64_t xsdt = rsdp[RSDP_REVISION] >= 2 ? rd64(rsdp + RSDP_XSDT_ADDR) : 0;
	if (xsdt && xsdt < MAPPED_LIMIT) {
		root = phys(xsdt);
		root_entry_size = 8;
	} else {
		root = phys(rd32(rsdp + RSDP_RSDT_ADDR));
		root_entry_size = 4;
	}
	return true;
}

const uint8_t *acpi_find(const char sig[4])
{
	if (!root)
		return NULL;
	uint32_t len = rd32(root + SDT_LENGTH);
	for (uint32_t off = SDT_HEADER_LEN; off + root_entry_size <= len;
	     off += root_entry_size) {
		uint64_t addr = root_entry_size == 8 ? rd64(root + off) : rd32(root + off);
		if (!addr || addr >= MAPPED_LIMIT)
			continue;
		const uint8_t *table = phys(addr);
		if (memcmp(table, sig, 4) == 0)
			return table;
	}
	return NULL;
}

/* ACPI sig=SSSS len=N data=<hex of all N bytes> */
void acpi_dump(const char sig[4])
{
	static char buf[4096];
	const uint8_t *table = acpi_find(sig);

	if (!table)
		return;
	uint32_t len = rd32(table + SDT_LENGTH);
	struct out o = OUT_INIT(buf);
	out_str(&o, "ACPI sig=");
	for (int i = 0; i < 4; i++)
		out_char(&o, sig[i]);
	out_str(&o, " len=");
	out_dec(&o, len);
	out_str(&o, " data=");
	out_hex_bytes(&o, table, len);
	out_end(&o);
}
