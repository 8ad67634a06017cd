/*
 * cpuid_dump.c - print the raw CPUID of the running vCPU, one line per (leaf, subleaf):
 *
 *   CPUID cpu=N leaf=XXXXXXXX sub=XXXXXXXX eax=XXXXXXXX ebx=XXXXXXXX ecx=XXXXXXXX edx=XXXXXXXX
 *
 * Which leaves: every basic leaf 0..CPUID.0:EAX, the hypervisor range 0x40000000.. when
 * CPUID.1:ECX[31] says there is a hypervisor, every extended leaf 0x80000000..
 * CPUID.80000000H:EAX.  Subleaves are walked only where the SDM/APM define them; everything
 * else is printed with sub=0.  Decoding is left to rvmm (crates/vmm/src/probe/decode.rs).
 */
#include "probe.h"

#define LEAF_CACHE_PARAMS 0x4 /* deterministic cache parameters */
#define LEAF_EXT_FEATURES 0x7 /* structured extended features */
#define LEAF_EXT_TOPOLOGY 0xb /* extended topology enumeration */
#define LEAF_XSAVE 0xd /* processor extended state enumeration */
#define LEAF_V2_TOPOLOGY 0x1f /* V2 extended topology enumeration */
#define LEAF_HYPERVISOR_BASE 0x40000000u
#define LEAF_HYPERVISOR_CAP 0x400000ffu /* the brief's cap: the first hypervisor block */
#define LEAF_EXT_BASE 0x80000000u
#define LEAF_AMD_CACHE_PROPS 0x8000001du /* AMD cache topology */
#define LEAF_KVM_TSC_KHZ 0x40000010u /* TSC frequency in kHz (VMware/KVM convention) */
#define LEAF_PROC_FREQ 0x16 /* processor base frequency in MHz */

/* Upper bounds so a strange CPUID (out-of-range leaves echo another leaf) cannot loop. */
#define MAX_RANGE_LEN 0x100
#define MAX_SUBLEAVES 64

/* CPUID.1:ECX[31]: running under a hypervisor. */
#define CPUID1_ECX_HYPERVISOR (1u << 31)

static void print_leaf(uint32_t cpu, uint32_t leaf, uint32_t sub, const uint32_t r[4])
{
	char buf[128];
	struct out o = OUT_INIT(buf);
	static const char *const reg_names[4] = { " eax=", " ebx=", " ecx=", " edx=" };

	out_str(&o, "CPUID cpu=");
	out_dec(&o, cpu);
	out_str(&o, " leaf=");
	out_hex32(&o, leaf);
	out_str(&o, " sub=");
	out_hex32(&o, sub);
	for (int i = 0; i < 4; i++) {
		out_str(&o, reg_names[i]);
		out_hex32(&o, r[i]);
	}
	out_end(&o);
}

/* Runs and prints CPUID(leaf, sub); the registers are left in r. */
static void dump(uint32_t cpu, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	cpuid(leaf, sub, r);
	print_leaf(cpu, leaf, sub, r);
}

/*
 * Subleaves until EAX[4:0] (cache type) is 0 "null, no more caches", printing the null one:
 * leaf 4 (SDM) and 0x8000001D (APM) share this layout.
 */
static void dump_caches(uint32_t cpu, uint32_t leaf)
{
	uint32_t r[4];

	for (uint32_t sub = 0; sub < MAX_SUBLEAVES; sub++) {
		dump(cpu, leaf, sub, r);
		if ((r[0] & 0x1f) == 0)
			break;
	}
}

/* Leaves 0xB/0x1F: subleaves until ECX[15:8] (level type) is 0 "invalid", printing it. */
static void dump_topology(uint32_t cpu, uint32_t leaf)
{
	uint32_t r[4];

	for (uint32_t sub = 0; sub < MAX_SUBLEAVES; sub++) {
		dump(cpu, leaf, sub, r);
		if (((r[2] >> 8) & 0xff) == 0)
			break;
	}
}

/* Leaf 7: subleaves 0..CPUID.(EAX=07H,ECX=0):EAX (the highest valid subleaf). */
static void dump_ext_features(uint32_t cpu)
{
	uint32_t r[4];

	dump(cpu, LEAF_EXT_FEATURES, 0, r);
	uint32_t max_sub = r[0] < MAX_SUBLEAVES ? r[0] : MAX_SUBLEAVES - 1;
	for (uint32_t sub = 1; sub <= max_sub; sub++)
		dump(cpu, LEAF_EXT_FEATURES, sub, r);
}

/*
 * Leaf 0xD: subleaves 0 and 1, then each state component i in 2..63 that XCR0 or IA32_XSS
 * can enable: CPUID.(EAX=0DH,ECX=0):EDX:EAX (XCR0 bits) | CPUID.(EAX=0DH,ECX=1):EDX:ECX
 * (IA32_XSS bits).
 */
static void dump_xsave(uint32_t cpu)
{
	uint32_t r[4];

	dump(cpu, LEAF_XSAVE, 0, r);
	uint64_t components = ((uint64_t)r[3] << 32) | r[0];
	dump(cpu, LEAF_XSAVE, 1, r);
	components |= ((uint64_t)r[3] << 32) | r[2];
	for (uint32_t i = 2; i < 64; i++)
		if (components & (1ull << i))
			dump(cpu, LEAF_XSAVE, i, r);
}

static void dump_basic(uint32_t cpu, uint32_t max)
{
	uint32_t r[4];

	for (uint32_t leaf = 0; leaf <= max; leaf++) {
		switch (leaf) {
		case LEAF_CACHE_PARAMS:
			dump_caches(cpu, leaf);
			break;
		case LEAF_EXT_FEATURES:
			dump_ext_features(cpu);
			break;
		case LEAF_EXT_TOPOLOGY:
		case LEAF_V2_TOPOLOGY:
			dump_topology(cpu, leaf);
			break;
		case LEAF_XSAVE:
			dump_xsave(cpu);
			break;
		default:
			dump(cpu, leaf, 0, r);
		}
	}
}

/* The last leaf of a range from its base leaf's EAX, clamped to [base, cap]. */
static uint32_t range_max(uint32_t base, uint32_t eax, uint32_t cap)
{
	if (eax < base)
		return base;
	return eax > cap ? cap : eax;
}

void cpuid_dump(uint32_t cpu)
{
	uint32_t r[4];

	cpuid(0, 0, r);
	dump_basic(cpu, r[0] < MAX_RANGE_LEN ? r[0] : MAX_RANGE_LEN - 1);

	cpuid(1, 0, r);
	if (r[2] & CPUID1_ECX_HYPERVISOR) {
		cpuid(LEAF_HYPERVISOR_BASE, 0, r);
		uint32_t max = range_max(LEAF_HYPERVISOR_BASE, r[0], LEAF_HYPERVISOR_CAP);
		for (uint32_t leaf = LEAF_HYPERVISOR_BASE; leaf <= max; leaf++)
			dump(cpu, leaf, 0, r);
	}

	cpuid(LEAF_EXT_BASE, 0, r);
	uint32_t max = range_max(LEAF_EXT_BASE, r[0], LEAF_EXT_BASE + MAX_RANGE_LEN - 1);
	for (uint32_t leaf = LEAF_EXT_BASE; leaf <= max; leaf++) {
		if (leaf == LEAF_AMD_CACHE_PROPS)
			dump_caches(cpu, leaf);
		else
			dump(cpu, leaf, 0, r);
	}
}

uint64_t tsc_hz(void)
{
	uint32_t r[4];

	cpuid(1, 0, r);
	if (r[2] & CPUID1_ECX_HYPERVISOR) {
		cpuid(LEAF_HYPERVISOR_BASE, 0, r);
		if (r[0] >= LEAF_KVM_TSC_KHZ && r[0] <= LEAF_HYPERVISOR_CAP) {
			cpuid(LEAF_KVM_TSC_KHZ, 0, r);
			if (r[0])
				return (uint64_t)r[0] * 1000;
		}
	}
	cpuid(0, 0, r);
	if (r[0] >= LEAF_PROC_FREQ) {
		cpuid(LEAF_PROC_FREQ, 0, r);
		if (r[0] & 0xffff)
			return (uint64_t)(r[0] & 0xffff) * 1000000;
	}
	/* No frequency leaf: assume a fast 3 GHz clock (slower hosts just wait longer). */
	return 3000000000ull;
}
