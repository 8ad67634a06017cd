/*
 * virtio.c - mode=virtio: the scan of the virtio-mmio (version 2) transports, the driver
 * helpers virtio.h declares (at the end), and a bare-metal virtio-blk driver.
 *
 * Scans the 24 transports QEMU microvm can have at 0xfeb00000 + N * 512 for a device (magic
 * "virt", device ID non-zero); for each virtio-blk device, in address order: reset,
 * ACKNOWLEDGE | DRIVER, accept VERSION_1 (and RO / FLUSH when offered), FEATURES_OK, one
 * split queue of QSIZE entries in this program's own memory, DRIVER_OK; then
 *   writes a pattern to sectors 1..4, reads it back and compares, flushes, reads the serial
 *   (GET_ID), and prints one line per step:
 *
 *   PROBE-VIRTIO dev=K id=2 capacity=SECTORS ro=0|1 flush=0|1
 *   PROBE-VIRTIO dev=K write status=S
 *   PROBE-VIRTIO dev=K read status=S match=yes|no
 *   PROBE-VIRTIO dev=K flush status=S
 *   PROBE-VIRTIO dev=K getid status=S serial=TEXT
 *   PROBE-VIRTIO-END devices=N
 *
 *
 * With virtio=hostile, then: a write from a buffer outside RAM, a write of a partial sector,
 * a write past the end, a looping chain (PROBE-VIRTIO dev=K hostile ... lines), and a read
 * that must still find the pattern.
 *
 * With virtio=discard, then (on a device offering DISCARD and WRITE_ZEROES, else
 * "discard status=unoffered"): discard sectors 0..63 (the pattern's and the file system
 * blocks around them), write the pattern again, write-zeroes its sectors, read them back:
 *
 *   PROBE-VIRTIO dev=K discard status=S
 *   PROBE-VIRTIO dev=K rewrite status=S
 *   PROBE-VIRTIO dev=K write-zeroes status=S
 *   PROBE-VIRTIO dev=K read-zeroes status=S match=yes|no
 *
 * With virtio=bench [bench-ops=N] [bench-seq=BYTES], then three timed phases at queue depth
 * one: N 4 KiB reads at pseudo-random 4 KiB-aligned offsets, N sequential reads of
 * bench-seq bytes (default 64 KiB, at most 64 KiB), N sequential writes of as many (both
 * wrapping at the end of the disk). Each phase prints a begin and an end line, so the host
 * can time it by when they arrive; tsc= is the guest's TSC ticks for the phase:
 *
 *   PROBE-VBENCH dev=K phase=begin op=randread|seqread|seqwrite size=BYTES ops=N
 *   PROBE-VBENCH dev=K phase=end op=... size=BYTES ops=N errors=E tsc=TICKS
 *
 * With virtio=loop (the guest that proves a snapshot/restore kept the device going), then
 * forever, on the first disk: write a sector holding the counter n (le64, then a pattern
 * of n) to sector LOOP_SECTOR, read it back and compare, then sleep ~50 ms on the local
 * APIC's one-shot timer (sti; hlt, as counter.c: the vCPU's host thread really sleeps; the
 * wake-up never returns with IRET), counting n = 1, 2, ...; every LOOP_PRINT_EVERY rounds
 *
 *   PROBE-VLOOP n=N ok|bad
 *
 * where bad (kept once seen) means a request failed, timed out or read back something else.
 *
 * K counts the devices found (not slots: QEMU fills its transports from the top). Completion
 * is found by polling the used ring; interrupts stay disabled (nothing returns with IRET on
 * this host). Only the BSP runs; APs are never started.
 */
#include "virtio.h"

#define F_BLK_RO 5
#define F_BLK_FLUSH 9
#define F_BLK_DISCARD 13
#define F_BLK_WRITE_ZEROES 14

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_T_DISCARD 11
#define BLK_T_WRITE_ZEROES 13

#define QSIZE 8
#define SECTOR 512
#define FIRST_SECTOR 1
#define SECTORS 4
#define DATA_LEN (SECTORS * SECTOR)
#define ID_LEN 20
#define DISCARD_SECTORS 64
#define BENCH_MAX 65536
#define BENCH_DEFAULT_OPS 20000
#define LOOP_SECTOR 16
#define LOOP_SLEEP_NS 50000000u /* the APIC timer counts at 1 GHz */
#define LOOP_PRINT_EVERY 4u	/* ~200 ms between reports */

struct blk_req {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static struct vq q;
static struct blk_req req __attribute__((aligned(16)));
static uint8_t data[DATA_LEN] __attribute__((aligned(16)));
static uint8_t bench_buf[BENCH_MAX] __attribute__((aligned(4096)));
static volatile uint8_t status;

static uint8_t pattern(uint32_t i)
{
	return (uint8_t)(i * 7 + (i / SECTOR) * 31 + 1);
}

static uint64_t data_addr;

static void print_status(uint32_t dev, const char *what, int s);
static int submit(uint64_t base, uint32_t type, uint64_t sector, uint32_t len, bool device_writes);

/* Reads the pattern's sectors back and prints "WHAT status=S match=yes|no". */
static void read_back(uint64_t base, uint32_t dev, const char *what)
{
	char buf[96];
	struct out o = OUT_INIT(buf);
	memset(data, 0, DATA_LEN);
	int s = submit(base, BLK_T_IN, FIRST_SECTOR, DATA_LEN, true);
	bool match = true;
	for (uint32_t i = 0; i < DATA_LEN; i++)
		if (data[i] != pattern(i))
			match = false;
	vio_line_start(&o, dev);
	out_str(&o, what);
	out_str(&o, " status=");
	out_dec(&o, (uint64_t)(s < 0 ? 255 : s));
	out_str(&o, match ? " match=yes" : " match=no");
	out_end(&o);
}

/* Header, then (if len) one data buffer, then the status byte; waits for the used entry. */
static int submit(uint64_t base, uint32_t type, uint64_t sector, uint32_t len, bool device_writes)
{
	req.type = type;
	req.reserved = 0;
	req.sector = sector;
	status = 0xff;
	uint16_t n = 0;
	q.desc[n] = (struct desc){ (uint64_t)(uintptr_t)&req, sizeof(req), DESC_F_NEXT, 1 };
	n++;
	if (len) {
		q.desc[n] = (struct desc){ data_addr ? data_addr : (uint64_t)(uintptr_t)data, len,
					  (uint16_t)(DESC_F_NEXT | (device_writes ? DESC_F_WRITE : 0)),
					  2 };
		n++;
	}
	q.desc[n] = (struct desc){ (uint64_t)(uintptr_t)&status, 1, DESC_F_WRITE, 0 };
	uint16_t want = (uint16_t)(q.used.idx + 1);
	vio_kick(base, &q, 0);
	if (!vio_wait_used(base, &q, want))
		return -1;
	return status;
}

/*
 * virtio=hostile (rvmm only: QEMU marks its device broken on the first of these): requests a
 * device must fail without touching the disk, then a good read that must still work.
 */
static void blk_hostile(uint64_t base, uint32_t dev, uint64_t capacity)
{
	data_addr = 0x1000000000ull; /* 64 GiB: no RAM there */
	print_status(dev, "hostile outside", submit(base, BLK_T_OUT, FIRST_SECTOR, SECTOR, false));
	data_addr = 0;
	print_status(dev, "hostile partial-sector", submit(base, BLK_T_OUT, 8, 100, false));
	print_status(dev, "hostile past-end", submit(base, BLK_T_OUT, capacity - 1, DATA_LEN, false));

	/* A chain that loops: 0 -> 1 -> 0. It must come back (unanswered), not hang the device. */
	req.type = BLK_T_OUT;
	req.sector = 8;
	status = 0xff;
	q.desc[0] = (struct desc){ (uint64_t)(uintptr_t)&req, sizeof(req), DESC_F_NEXT, 1 };
	q.desc[1] = (struct desc){ (uint64_t)(uintptr_t)data, SECTOR, DESC_F_NEXT, 0 };
	uint16_t want = (uint16_t)(q.used.idx + 1);
	vio_kick(base, &q, 0);
	bool back = vio_wait_used(base, &q, want);
	char buf[96];
	struct out o = OUT_INIT(buf);
	vio_line_start(&o, dev);
	out_str(&o, "hostile loop returned=");
	out_str(&o, back ? "yes" : "no");
	out_str(&o, " status=");
	out_dec(&o, status);
	out_end(&o);

	read_back(base, dev, "hostile then-read");
}

static void print_status(uint32_t dev, const char *what, int s)
{
	char buf[96];
	struct out o = OUT_INIT(buf);
	vio_line_start(&o, dev);
	out_str(&o, what);
	out_str(&o, " status=");
	if (s < 0)
		out_str(&o, "timeout");
	else
		out_dec(&o, (uint64_t)s);
	out_end(&o);
}

/* One discard / write-zeroes segment in `data`. */
static int dwz(uint64_t base, uint32_t type, uint64_t sector, uint32_t count)
{
	memset(data, 0, 16);
	memcpy(data, &sector, 8);
	memcpy(data + 8, &count, 4);
	return submit(base, type, 0, 16, false);
}

/* virtio=discard (see the top of the file). */
static void blk_discard(uint64_t base, uint32_t dev, uint32_t offered)
{
	uint32_t both = (1u << F_BLK_DISCARD) | (1u << F_BLK_WRITE_ZEROES);
	if ((offered & both) != both) {
		char buf[96];
		struct out o = OUT_INIT(buf);
		vio_line_start(&o, dev);
		out_str(&o, "discard status=unoffered");
		out_end(&o);
		return;
	}
	print_status(dev, "discard", dwz(base, BLK_T_DISCARD, 0, DISCARD_SECTORS));
	for (uint32_t i = 0; i < DATA_LEN; i++)
		data[i] = pattern(i);
	print_status(dev, "rewrite", submit(base, BLK_T_OUT, FIRST_SECTOR, DATA_LEN, false));
	print_status(dev, "write-zeroes", dwz(base, BLK_T_WRITE_ZEROES, FIRST_SECTOR, SECTORS));

	char buf[96];
	struct out o = OUT_INIT(buf);
	memset(data, 0xff, DATA_LEN);
	int s = submit(base, BLK_T_IN, FIRST_SECTOR, DATA_LEN, true);
	bool zero = true;
	for (uint32_t i = 0; i < DATA_LEN; i++)
		if (data[i])
			zero = false;
	vio_line_start(&o, dev);
	out_str(&o, "read-zeroes status=");
	out_dec(&o, (uint64_t)(s < 0 ? 255 : s));
	out_str(&o, zero ? " match=yes" : " match=no");
	out_end(&o);
}

/* A decimal parameter, or `dflt` when absent or not a number. */
static uint64_t num_param(const char *key, uint64_t dflt)
{
	size_t len;
	const char *v = probe_param(key, &len);
	if (!v || len == 0 || len > 18)
		return dflt;
	uint64_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return dflt;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	return n;
}

static void bench_line(uint32_t dev, bool end, const char *op, uint32_t size, uint64_t ops,
		       uint64_t errors, uint64_t tsc)
{
	char buf[160];
	struct out o = OUT_INIT(buf);
	out_str(&o, "PROBE-VBENCH dev=");
	out_dec(&o, dev);
	out_str(&o, end ? " phase=end op=" : " phase=begin op=");
	out_str(&o, op);
	out_str(&o, " size=");
	out_dec(&o, size);
	out_str(&o, " ops=");
	out_dec(&o, ops);
	if (end) {
		out_str(&o, " errors=");
		out_dec(&o, errors);
		out_str(&o, " tsc=");
		out_dec(&o, tsc);
	}
	out_end(&o);
}

/* One timed phase: `ops` requests of `size` bytes; random offsets or sequential ones. */
static void bench_phase(uint64_t base, uint32_t dev, uint64_t capacity, const char *op,
			uint32_t type, uint32_t size, uint64_t ops, bool random)
{
	uint64_t step = size / SECTOR;
	uint64_t slots = capacity / step;
	if (slots == 0)
		return;
	bench_line(dev, false, op, size, ops, 0, 0);
	uint64_t errors = 0, x = 0x9e3779b97f4a7c15ull;
	data_addr = (uint64_t)(uintptr_t)bench_buf;
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < ops; i++) {
		uint64_t slot = i % slots;
		if (random) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			slot = x % slots;
		}
		if (submit(base, type, slot * step, size, type == BLK_T_IN) != 0)
			errors++;
	}
	uint64_t t1 = rdtsc();
	data_addr = 0;
	bench_line(dev, true, op, size, ops, errors, t1 - t0);
}

/* virtio=bench (see the top of the file). */
static void blk_bench(uint64_t base, uint32_t dev, uint64_t capacity)
{
	uint64_t ops = num_param("bench-ops", BENCH_DEFAULT_OPS);
	uint64_t seq = num_param("bench-seq", BENCH_MAX);
	if (seq < SECTOR || seq > BENCH_MAX || seq % SECTOR)
		seq = BENCH_MAX;
	for (uint32_t i = 0; i < BENCH_MAX; i++)
		bench_buf[i] = (uint8_t)(i * 3 + 1);
	bench_phase(base, dev, capacity, "randread", BLK_T_IN, 4096, ops, true);
	bench_phase(base, dev, capacity, "seqread", BLK_T_IN, (uint32_t)seq, ops, false);
	bench_phase(base, dev, capacity, "seqwrite", BLK_T_OUT, (uint32_t)seq, ops, false);
}

static uint8_t loop_byte(uint64_t n, uint32_t i)
{
	return (uint8_t)(n * 13 + i * 7 + (i >> 5));
}

/* virtio=loop (see the top of the file): never returns. */
__attribute__((noreturn)) static void blk_loop(uint64_t base)
{
	bool ok = true;
	apic_init_bsp();
	for (uint64_t n = 1;; n++) {
		memcpy(data, &n, 8);
		for (uint32_t i = 8; i < SECTOR; i++)
			data[i] = loop_byte(n, i);
		if (submit(base, BLK_T_OUT, LOOP_SECTOR, SECTOR, false) != 0)
			ok = false;
		memset(data, 0, SECTOR);
		if (submit(base, BLK_T_IN, LOOP_SECTOR, SECTOR, true) != 0)
			ok = false;
		uint64_t back;
		memcpy(&back, data, 8);
		if (back != n)
			ok = false;
		for (uint32_t i = 8; i < SECTOR; i++)
			if (data[i] != loop_byte(n, i))
				ok = false;
		if (n % LOOP_PRINT_EVERY == 0) {
			char buf[64];
			struct out o = OUT_INIT(buf);
			out_str(&o, "PROBE-VLOOP n=");
			out_dec(&o, n);
			out_str(&o, ok ? " ok" : " bad");
			out_end(&o);
		}
		apic_timer_oneshot(LOOP_SLEEP_NS);
		sleep_until_interrupt();
	}
}

static void blk_run(uint64_t base, uint32_t dev)
{
	char buf[160];
	struct out o = OUT_INIT(buf);

	uint32_t lo;
	if (!vio_negotiate(base, dev,
			   (1u << F_BLK_RO) | (1u << F_BLK_FLUSH) | (1u << F_BLK_DISCARD) |
				   (1u << F_BLK_WRITE_ZEROES),
			   &lo))
		return;
	if (!vio_queue(base, &q, 0, QSIZE)) {
		vio_line_start(&o, dev);
		out_str(&o, "error=queue-too-small");
		out_end(&o);
		return;
	}
	vio_driver_ok(base);

	uint64_t capacity = (uint64_t)mmio_rd(base, R_CONFIG) |
			    ((uint64_t)mmio_rd(base, R_CONFIG + 4) << 32);
	vio_line_start(&o, dev);
	out_str(&o, "id=2 capacity=");
	out_dec(&o, capacity);
	out_str(&o, " ro=");
	out_dec(&o, (lo >> F_BLK_RO) & 1);
	out_str(&o, " flush=");
	out_dec(&o, (lo >> F_BLK_FLUSH) & 1);
	out_end(&o);

	for (uint32_t i = 0; i < DATA_LEN; i++)
		data[i] = pattern(i);
	print_status(dev, "write", submit(base, BLK_T_OUT, FIRST_SECTOR, DATA_LEN, false));

	read_back(base, dev, "read");

	print_status(dev, "flush", submit(base, BLK_T_FLUSH, 0, 0, false));

	memset(data, 0, ID_LEN + 1);
	int s = submit(base, BLK_T_GET_ID, 0, ID_LEN, true);
	vio_line_start(&o, dev);
	out_str(&o, "getid status=");
	out_dec(&o, (uint64_t)(s < 0 ? 255 : s));
	out_str(&o, " serial=");
	for (uint32_t i = 0; i < ID_LEN && data[i]; i++)
		out_char(&o, (data[i] > ' ' && data[i] < 0x7f) ? (char)data[i] : '?');
	out_end(&o);

	size_t len;
	const char *v = probe_param("virtio", &len);
	if (v && len == 7 && memcmp(v, "hostile", 7) == 0)
		blk_hostile(base, dev, capacity);
	if (v && len == 7 && memcmp(v, "discard", 7) == 0)
		blk_discard(base, dev, lo);
	if (v && len == 5 && memcmp(v, "bench", 5) == 0)
		blk_bench(base, dev, capacity);
	if (v && len == 4 && memcmp(v, "loop", 4) == 0)
		blk_loop(base);
}

void vio_line_start(struct out *o, uint32_t dev)
{
	out_str(o, "PROBE-VIRTIO dev=");
	out_dec(o, dev);
	out_char(o, ' ');
}

static void vio_error(uint32_t dev, const char *what)
{
	char buf[96];
	struct out o = OUT_INIT(buf);
	vio_line_start(&o, dev);
	out_str(&o, "error=");
	out_str(&o, what);
	out_end(&o);
}

bool vio_negotiate(uint64_t base, uint32_t dev, uint32_t want_lo, uint32_t *offered_lo)
{
	mmio_wr(base, R_STATUS, 0);
	mmio_wr(base, R_STATUS, S_ACKNOWLEDGE | S_DRIVER);
	mmio_wr(base, R_DEVICE_FEATURES_SEL, 0);
	uint32_t lo = mmio_rd(base, R_DEVICE_FEATURES);
	mmio_wr(base, R_DEVICE_FEATURES_SEL, 1);
	uint32_t hi = mmio_rd(base, R_DEVICE_FEATURES);
	*offered_lo = lo;
	if (!(hi & 1)) {
		vio_error(dev, "no-version-1");
		return false;
	}
	mmio_wr(base, R_DRIVER_FEATURES_SEL, 0);
	mmio_wr(base, R_DRIVER_FEATURES, lo & want_lo);
	mmio_wr(base, R_DRIVER_FEATURES_SEL, 1);
	mmio_wr(base, R_DRIVER_FEATURES, 1);
	mmio_wr(base, R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(mmio_rd(base, R_STATUS) & S_FEATURES_OK)) {
		vio_error(dev, "features-refused");
		return false;
	}
	return true;
}

bool vio_queue(uint64_t base, struct vq *q, uint16_t index, uint16_t size)
{
	mmio_wr(base, R_QUEUE_SEL, index);
	if (size > VQ_MAX || mmio_rd(base, R_QUEUE_NUM_MAX) < size)
		return false;
	memset(q, 0, sizeof(*q));
	q->size = size;
	q->index = index;
	q->avail.flags = 1; /* VIRTQ_AVAIL_F_NO_INTERRUPT: we poll */
	mmio_wr(base, R_QUEUE_NUM, size);
	mmio_wr(base, R_QUEUE_DESC_LOW, (uint32_t)(uintptr_t)q->desc);
	mmio_wr(base, R_QUEUE_DESC_HIGH, 0);
	mmio_wr(base, R_QUEUE_AVAIL_LOW, (uint32_t)(uintptr_t)&q->avail);
	mmio_wr(base, R_QUEUE_AVAIL_HIGH, 0);
	mmio_wr(base, R_QUEUE_USED_LOW, (uint32_t)(uintptr_t)&q->used);
	mmio_wr(base, R_QUEUE_USED_HIGH, 0);
	mmio_wr(base, R_QUEUE_READY, 1);
	return true;
}

void vio_driver_ok(uint64_t base)
{
	mmio_wr(base, R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

void vio_kick(uint64_t base, struct vq *q, uint16_t head)
{
	q->avail.ring[q->avail.idx % q->size] = head;
	mb();
	q->avail.idx++;
	mb();
	mmio_wr(base, R_QUEUE_NOTIFY, q->index);
}

bool vio_wait_used(uint64_t base, struct vq *q, uint16_t want)
{
	for (uint64_t i = 0; i < VIO_POLL_LIMIT; i++) {
		mb();
		if (*(volatile uint16_t *)&q->used.idx == want)
			break;
		cpu_pause();
	}
	mb();
	uint32_t isr = mmio_rd(base, R_INTERRUPT_STATUS);
	mmio_wr(base, R_INTERRUPT_ACK, isr);
	bool ok = *(volatile uint16_t *)&q->used.idx == want;
	if (ok)
		q->seen = want;
	return ok;
}

__attribute__((noreturn)) void virtio_run(void)
{
	uint32_t found = 0;
	char buf[64];
	struct out o = OUT_INIT(buf);

	for (uint32_t slot = 0; slot < VIRTIO_MMIO_SLOTS; slot++) {
		uint64_t base = VIRTIO_MMIO_BASE + (uint64_t)slot * VIRTIO_MMIO_STRIDE;
		if (mmio_rd(base, R_MAGIC) != VIRTIO_MAGIC || mmio_rd(base, R_VERSION) != 2)
			continue;
		uint32_t id = mmio_rd(base, R_DEVICE_ID);
		if (id == 0)
			continue;
		if (id == 2) {
			blk_run(base, found);
		} else if (id == 1) {
			vnet_run(base, found);
		} else if (id == 5) {
			balloon_run(base, found);
		} else {
			vio_line_start(&o, found);
			out_str(&o, "id=");
			out_dec(&o, id);
			out_str(&o, " skipped");
			out_end(&o);
		}
		found++;
	}
	out_str(&o, "PROBE-VIRTIO-END devices=");
	out_dec(&o, found);
	out_end(&o);
	power_off();
}
