/*
 * balloon.c - mode=virtio: a bare-metal virtio-balloon driver (device ID 5).
 *
 * Negotiates VERSION_1, STATS_VQ when offered (never used: QEMU always has a statsq, and
 * accepting it numbers the queues as QEMU's Linux guests see them) and, with
 * balloon.report=on, VIRTIO_BALLOON_F_REPORTING. Queues: inflate 0, deflate 1, reporting
 * 2 + (STATS_VQ negotiated) (queues that exist are numbered one after the other).
 * Then it writes every page of a region of its own RAM (balloon.mib=N MiB at 32 MiB,
 * default 64) so that the host backs it, and prints
 *
 *   PROBE-VIRTIO dev=K id=5 touched=PAGES reporting=0|1
 *
 * and polls the config's num_pages (ConfigGeneration-consistent) for up to balloon.wait=S
 * seconds (default 30). When a target appears it inflates that many pages of the region
 * (at most the region) through the inflate queue (arrays of le32 PFNs), writes `actual`:
 *
 *   PROBE-VIRTIO dev=K balloon target=N
 *   PROBE-VIRTIO dev=K balloon inflated=N
 *
 * then waits for the target to drop, deflates to it, writes `actual`, checks the pages read
 * as zero (the host dropped them) and writes them again:
 *
 *   PROBE-VIRTIO dev=K balloon deflated=N zero=yes|no
 *
 * Then it waits for the target to rise again (or the deadline) before it goes on, so the
 * host can measure it while it is still running.
 *
 * With balloon.report=on it then reports the first 4 MiB of the region as free through the
 * reporting queue: "balloon reported=PAGES status=ok". With balloon.hostile=on (rvmm only:
 * QEMU marks the device broken on a buffer outside RAM), before waiting: an inflate array of
 * 1024 PFNs outside RAM, a 2 GiB array outside RAM, a write to the read-only num_pages
 * (read back): "hostile used=1 num_pages=unchanged".
 */
#include "virtio.h"

#define F_STATS_VQ 1
#define F_REPORTING 5
#define REGION_BASE (32ull << 20)
#define PAGE 4096u
#define PFNS_PER_KICK 1024
#define REPORT_LEN (4u << 20)

static struct vq inflate_q, deflate_q, report_q;
static uint32_t pfns[PFNS_PER_KICK] __attribute__((aligned(16)));

static bool param_on(const char *key)
{
	size_t len;
	const char *v = probe_param(key, &len);
	return v && len == 2 && memcmp(v, "on", 2) == 0;
}

static uint32_t param_num(const char *key, uint32_t dflt)
{
	size_t len;
	const char *v = probe_param(key, &len);
	if (!v || len == 0)
		return dflt;
	uint64_t n = 0;
	for (size_t i = 0; i < len && i < 9; i++) {
		if (v[i] < '0' || v[i] > '9')
			return dflt;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	return (uint32_t)n;
}

static void line(uint32_t dev, const char *what, uint64_t n, const char *rest)
{
	char buf[128];
	struct out o = OUT_INIT(buf);
	vio_line_start(&o, dev);
	out_str(&o, what);
	out_dec(&o, n);
	if (rest)
		out_str(&o, rest);
	out_end(&o);
}

/* num_pages, read consistently (ConfigGeneration unchanged across the read). */
static uint32_t num_pages(uint64_t base)
{
	uint32_t gen, v;
	do {
		gen = mmio_rd(base, R_CONFIG_GENERATION);
		v = mmio_rd(base, R_CONFIG);
	} while (gen != mmio_rd(base, R_CONFIG_GENERATION));
	return v;
}

/* Polls until pred(num_pages) or the deadline; returns the last value seen. */
static uint32_t wait_target(uint64_t base, uint64_t deadline, bool want_above, uint32_t than)
{
	uint32_t v = num_pages(base);
	while (rdtsc() < deadline) {
		v = num_pages(base);
		if (want_above ? v > than : v < than)
			break;
		cpu_pause();
	}
	uint32_t isr = mmio_rd(base, R_INTERRUPT_STATUS);
	mmio_wr(base, R_INTERRUPT_ACK, isr);
	return v;
}

/* Sends one buffer (addr, len) on q and waits for it. */
static bool send(uint64_t base, struct vq *q, uint64_t addr, uint32_t len, uint16_t flags)
{
	q->desc[0].addr = addr;
	q->desc[0].len = len;
	q->desc[0].flags = flags;
	q->desc[0].next = 0;
	vio_kick(base, q, 0);
	return vio_wait_used(base, q, (uint16_t)(q->seen + 1));
}

/* Sends pages [first, first + n) of the region as PFN arrays on q. */
static bool send_pfns(uint64_t base, struct vq *q, uint32_t first, uint32_t n)
{
	uint32_t pfn0 = (uint32_t)(REGION_BASE / PAGE) + first;
	for (uint32_t done = 0; done < n;) {
		uint32_t k = n - done < PFNS_PER_KICK ? n - done : PFNS_PER_KICK;
		for (uint32_t i = 0; i < k; i++)
			pfns[i] = pfn0 + done + i;
		if (!send(base, q, (uint64_t)(uintptr_t)pfns, k * 4, 0))
			return false;
		done += k;
	}
	return true;
}

static void touch(uint32_t first, uint32_t n)
{
	for (uint32_t p = first; p < first + n; p++)
		*(volatile uint32_t *)phys(REGION_BASE + (uint64_t)p * PAGE + 64) = 0x5a5a0000u | p;
}

static void hostile(uint64_t base, uint32_t dev)
{
	/* A full array of PFNs outside RAM (and in the MMIO hole), then an array 2 GiB long
	 * just below 4 GiB (not RAM). */
	for (uint32_t i = 0; i < PFNS_PER_KICK; i++)
		pfns[i] = (i & 1) ? 0xffffffffu - i : (uint32_t)(0xfeb00000ull / PAGE);
	bool a = send(base, &inflate_q, (uint64_t)(uintptr_t)pfns, PFNS_PER_KICK * 4, 0);
	bool b = send(base, &inflate_q, 0xfffff000ull, 0x7ffffff0u, 0);
	uint32_t before = num_pages(base);
	mmio_wr(base, R_CONFIG, 0x12345u);
	bool same = num_pages(base) == before;
	line(dev, "hostile used=", (uint64_t)(a && b),
	     same ? " num_pages=unchanged" : " num_pages=changed");
}

void balloon_run(uint64_t base, uint32_t dev)
{
	bool report = param_on("balloon.report");
	uint32_t region = param_num("balloon.mib", 64) * (1u << 20) / PAGE;
	uint64_t deadline = rdtsc() + (uint64_t)param_num("balloon.wait", 30) * tsc_hz();

	uint32_t lo;
	uint32_t want = (1u << F_STATS_VQ) | (report ? 1u << F_REPORTING : 0);
	if (!vio_negotiate(base, dev, want, &lo))
		return;
	bool reporting = report && (lo & (1u << F_REPORTING));
	uint16_t report_index = (uint16_t)(2 + ((lo >> F_STATS_VQ) & 1));
	if (!vio_queue(base, &inflate_q, 0, VQ_MAX) || !vio_queue(base, &deflate_q, 1, VQ_MAX) ||
	    (reporting && !vio_queue(base, &report_q, report_index, VQ_MAX))) {
		line(dev, "error=queue-too-small ", 0, NULL);
		return;
	}
	vio_driver_ok(base);

	touch(0, region);
	{
		char buf[128];
		struct out o = OUT_INIT(buf);
		vio_line_start(&o, dev);
		out_str(&o, "id=5 touched=");
		out_dec(&o, region);
		out_str(&o, " reporting=");
		out_dec(&o, reporting);
		out_end(&o);
	}
	if (param_on("balloon.hostile"))
		hostile(base, dev);

	uint32_t target = wait_target(base, deadline, true, 0);
	line(dev, "balloon target=", target, NULL);
	if (target == 0)
		return;
	uint32_t n = target < region ? target : region;
	if (!send_pfns(base, &inflate_q, 0, n)) {
		line(dev, "balloon error=inflate-timeout ", 0, NULL);
		return;
	}
	mmio_wr(base, R_CONFIG + 4, n);
	line(dev, "balloon inflated=", n, NULL);

	uint32_t lower = wait_target(base, deadline, false, target);
	uint32_t keep = lower < n ? lower : n;
	uint32_t back = n - keep;
	if (!send_pfns(base, &deflate_q, keep, back)) {
		line(dev, "balloon error=deflate-timeout ", 0, NULL);
		return;
	}
	mmio_wr(base, R_CONFIG + 4, keep);
	bool zero = true;
	for (uint32_t p = keep; p < n; p++)
		if (*(volatile uint32_t *)phys(REGION_BASE + (uint64_t)p * PAGE + 64) != 0)
			zero = false;
	touch(keep, back);
	line(dev, "balloon deflated=", back, zero ? " zero=yes" : " zero=no");

	if (reporting) {
		bool ok = send(base, &report_q, REGION_BASE, REPORT_LEN, DESC_F_WRITE);
		line(dev, "balloon reported=", REPORT_LEN / PAGE, ok ? " status=ok" : " status=timeout");
	}
	/* Stay (until the target rises again, or the deadline) so the host can look. */
	wait_target(base, deadline, true, lower);
}
