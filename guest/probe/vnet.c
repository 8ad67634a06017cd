/*
 * vnet.c - mode=virtio: a bare-metal virtio-net driver (device ID 1), called by virtio.c's
 * scan for each NIC.
 *
 * Negotiates VERSION_1 with MAC and STATUS only (no offloads: every frame is whole), sets up
 * the receive queue (0) with RX_BUFS buffers and the transmit queue (1), DRIVER_OK; then asks
 * the host (net.host=, default 10.99.0.1) for its MAC with an ARP request from net.ip=
 * (default 10.99.0.2), and pings it once:
 *
 *   PROBE-VIRTIO dev=K id=1 mac=52:54:00:12:34:56 status=1
 *   PROBE-VIRTIO dev=K arp reply mac=HOSTMAC
 *   PROBE-VIRTIO dev=K ping reply seq=1 match=yes|no
 *
 * (or "arp timeout" / "ping timeout"). Frames carry the 12-byte virtio 1.x net header. While
 * it waits for a reply it answers ARP requests for net.ip (the host asks when it has
 * forgotten the guest's MAC).
 * With net.bench=N [net.size=BYTES] (default 64, at most 1514), instead of the ARP and ping:
 * N Ethernet frames of net.size bytes (broadcast, ethertype 0x88b5, local experimental) sent
 * one at a time (each waited for in the used ring, polled), between two lines the host
 * timestamps:
 *
 *   PROBE-NBENCH dev=K phase=begin size=BYTES frames=N
 *   PROBE-NBENCH dev=K phase=end size=BYTES frames=N errors=E tsc=TICKS
 * With virtio=hostile (rvmm only), first: a transmit chain outside RAM, a receive buffer
 * smaller than the header, a transmit chain that loops; each must come back
 * ("PROBE-VIRTIO dev=K hostile WHAT returned=yes len=N"), and the ARP and ping after them
 * must still work.
 * With virtio=loop (the guest that proves a migration kept the NIC going), after the first
 * ping, forever: ping the host with seq n = 2, 3, ..., wait for that reply, then sleep
 * ~50 ms on the local APIC's one-shot timer (as virtio.c's disk loop); every
 * VNLOOP_PRINT_EVERY pings
 *
 *   PROBE-VNLOOP dev=K n=N replies=R lost=L
 *
 * where R counts the pings answered with the right data and L those that were not.
 */
#include "virtio.h"

#define F_NET_MAC 5
#define F_NET_STATUS 16

#define QSIZE 16
#define RX_BUFS 8
#define BUF_LEN 2048
#define HDR 12
#define ETH 14
#define WAIT_LIMIT 100000000ull

static struct vq rxq, txq;
static uint8_t rx_buf[RX_BUFS][BUF_LEN] __attribute__((aligned(16)));
static uint8_t tx_buf[BUF_LEN] __attribute__((aligned(16)));
static uint8_t small_buf[4] __attribute__((aligned(16)));
static uint8_t mac[6], host_mac[6];
static uint8_t guest_ip[4] = { 10, 99, 0, 2 }, host_ip[4] = { 10, 99, 0, 1 };

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint16_t csum(const uint8_t *p, uint32_t n)
{
	uint32_t s = 0;
	for (uint32_t i = 0; i + 1 < n; i += 2)
		s += get16(p + i);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void parse_ip(const char *key, uint8_t ip[4])
{
	size_t len;
	const char *v = probe_param(key, &len);
	if (!v)
		return;
	uint8_t out[4] = { 0 };
	uint32_t part = 0, val = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || v[i] == '.') {
			if (part > 3 || val > 255)
				return;
			out[part++] = (uint8_t)val;
			val = 0;
		} else if (v[i] >= '0' && v[i] <= '9') {
			val = val * 10 + (uint32_t)(v[i] - '0');
		} else {
			return;
		}
	}
	if (part == 4)
		memcpy(ip, out, 4);
}

static void out_mac(struct out *o, const uint8_t *m)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 6; i++) {
		if (i)
			out_char(o, ':');
		out_char(o, hex[m[i] >> 4]);
		out_char(o, hex[m[i] & 15]);
	}
}

/* Sends tx_buf's first `len` bytes (header included) as one descriptor at `addr`. */
static bool send_at(uint64_t base, uint64_t addr, uint32_t len)
{
	txq.desc[0] = (struct desc){ addr, len, 0, 0 };
	uint16_t want = (uint16_t)(txq.used.idx + 1);
	vio_kick(base, &txq, 0);
	return vio_wait_used(base, &txq, want);
}

static bool send(uint64_t base, uint32_t frame_len)
{
	memset(tx_buf, 0, HDR);
	return send_at(base, (uint64_t)(uintptr_t)tx_buf, HDR + frame_len);
}

static void post_rx(uint64_t base, uint16_t i)
{
	rxq.desc[i] = (struct desc){ (uint64_t)(uintptr_t)rx_buf[i], BUF_LEN, DESC_F_WRITE, 0 };
	vio_kick(base, &rxq, i);
}

/* The next used receive entry: its buffer's index and length; false on timeout. */
static bool next_rx(uint64_t base, uint32_t *id, uint32_t *len)
{
	for (uint64_t i = 0; i < WAIT_LIMIT; i++) {
		mb();
		if (*(volatile uint16_t *)&rxq.used.idx != rxq.seen) {
			uint16_t slot = rxq.seen % rxq.size;
			*id = rxq.used.ring[slot].id;
			*len = rxq.used.ring[slot].len;
			rxq.seen++;
			uint32_t isr = mmio_rd(base, R_INTERRUPT_STATUS);
			mmio_wr(base, R_INTERRUPT_ACK, isr);
			return true;
		}
		cpu_pause();
	}
	return false;
}

/* Sends an ARP packet (opcode `op`) from us to `dst` (its Ethernet address; the target
 * hardware address too, or zeros for a request) about `target_ip`. */
static void arp_send(uint64_t base, uint16_t op, const uint8_t *dst, const uint8_t *target_ip)
{
	uint8_t *f = tx_buf + HDR;
	memcpy(f, dst, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, 0x0806);
	uint8_t *a = f + ETH;
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, guest_ip, 4);
	if (op == 1)
		memset(a + 18, 0, 6);
	else
		memcpy(a + 18, dst, 6);
	memcpy(a + 24, target_ip, 4);
	send(base, ETH + 28);
}

static void arp_request(uint64_t base)
{
	static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	arp_send(base, 1, broadcast, host_ip);
}

#define PING_ID 0x5276
#define PING_DATA 32

static void echo_request(uint64_t base, uint16_t seq)
{
	uint8_t *f = tx_buf + HDR;
	memcpy(f, host_mac, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + ETH;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, 20 + 8 + PING_DATA);
	put16(ip + 4, seq);
	ip[8] = 64;
	ip[9] = 1;
	memcpy(ip + 12, guest_ip, 4);
	memcpy(ip + 16, host_ip, 4);
	put16(ip + 10, csum(ip, 20));
	uint8_t *icmp = ip + 20;
	memset(icmp, 0, 8);
	icmp[0] = 8;
	put16(icmp + 4, PING_ID);
	put16(icmp + 6, seq);
	for (int i = 0; i < PING_DATA; i++)
		icmp[8 + i] = (uint8_t)(i * 3 + seq);
	put16(icmp + 2, csum(icmp, 8 + PING_DATA));
	send(base, ETH + 20 + 8 + PING_DATA);
}

/* Answers an ARP request for our address, as any host on a LAN does (the host's kernel asks
 * again whenever it forgot us, e.g. when the tap lost its carrier during a migration). */
static void answer_arp(uint64_t base, const uint8_t *f, uint32_t len)
{
	if (len < ETH + 28 || get16(f + 12) != 0x0806)
		return;
	const uint8_t *a = f + ETH;
	if (get16(a + 6) != 1 || memcmp(a + 24, guest_ip, 4) != 0)
		return;
	arp_send(base, 2, a + 8, a + 14); /* to the asker's MAC, about its IP */
}

/* Receives until a frame `want` accepts (returning true) or the wait runs out; every buffer
 * goes back to the device; ARP requests for us are answered on the way. */
static bool receive(uint64_t base, bool (*want)(const uint8_t *f, uint32_t len, uint16_t arg),
		    uint16_t arg, bool *matched)
{
	for (int frames = 0; frames < 64; frames++) {
		uint32_t id, len;
		if (!next_rx(base, &id, &len))
			return false;
		if (id >= RX_BUFS)
			continue; /* the hostile small buffer */
		bool ok = len > HDR + ETH && want(rx_buf[id] + HDR, len - HDR, arg);
		if (!ok && len > HDR + ETH)
			answer_arp(base, rx_buf[id] + HDR, len - HDR);
		if (ok && matched) {
			const uint8_t *icmp = rx_buf[id] + HDR + ETH + 20;
			*matched = true;
			for (int i = 0; i < PING_DATA; i++)
				if (icmp[8 + i] != (uint8_t)(i * 3 + arg))
					*matched = false;
		}
		post_rx(base, (uint16_t)id);
		if (ok)
			return true;
	}
	return false;
}

static bool is_arp_reply(const uint8_t *f, uint32_t len, uint16_t arg)
{
	(void)arg;
	if (len < ETH + 28 || get16(f + 12) != 0x0806)
		return false;
	const uint8_t *a = f + ETH;
	if (get16(a + 6) != 2 || memcmp(a + 14, host_ip, 4) != 0)
		return false;
	memcpy(host_mac, a + 8, 6);
	return true;
}

static bool is_echo_reply(const uint8_t *f, uint32_t len, uint16_t seq)
{
	if (len < ETH + 20 + 8 + PING_DATA || get16(f + 12) != 0x0800)
		return false;
	const uint8_t *ip = f + ETH;
	const uint8_t *icmp = ip + 20;
	return ip[9] == 1 && memcmp(ip + 12, host_ip, 4) == 0 && icmp[0] == 0 &&
	       get16(icmp + 4) == PING_ID && get16(icmp + 6) == seq;
}

static void hostile_line(uint32_t dev, const char *what, bool back, uint32_t len)
{
	char buf[96];
	struct out o = OUT_INIT(buf);
	vio_line_start(&o, dev);
	out_str(&o, "hostile ");
	out_str(&o, what);
	out_str(&o, " returned=");
	out_str(&o, back ? "yes" : "no");
	out_str(&o, " len=");
	out_dec(&o, len);
	out_end(&o);
}

static void hostile(uint64_t base, uint32_t dev)
{
	/* A frame in no RAM (64 GiB). */
	hostile_line(dev, "tx-outside", send_at(base, 0x1000000000ull, 60), 0);

	/* A receive buffer of 4 bytes, less than the header: a frame for it comes back with
	 * length 0. */
	rxq.desc[RX_BUFS] =
		(struct desc){ (uint64_t)(uintptr_t)small_buf, sizeof(small_buf), DESC_F_WRITE, 0 };
	vio_kick(base, &rxq, RX_BUFS);
	arp_request(base);
	uint32_t id = 0, len = 0;
	bool back = next_rx(base, &id, &len);
	hostile_line(dev, "rx-small", back && id == RX_BUFS, len);

	/* A transmit chain that loops: 0 -> 1 -> 0. */
	memset(tx_buf, 0, HDR);
	txq.desc[0] = (struct desc){ (uint64_t)(uintptr_t)tx_buf, HDR, DESC_F_NEXT, 1 };
	txq.desc[1] = (struct desc){ (uint64_t)(uintptr_t)tx_buf + HDR, 60, DESC_F_NEXT, 0 };
	uint16_t want = (uint16_t)(txq.used.idx + 1);
	vio_kick(base, &txq, 0);
	hostile_line(dev, "tx-loop", vio_wait_used(base, &txq, want), 0);
}

static uint64_t bench_param(const char *key, uint64_t dflt)
{
	size_t len;
	const char *v = probe_param(key, &len);
	if (!v || len == 0)
		return dflt;
	uint64_t n = 0;
	for (size_t i = 0; i < len && i < 12; i++) {
		if (v[i] < '0' || v[i] > '9')
			return dflt;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	return n;
}

static void bench_line(uint32_t dev, bool end, uint32_t size, uint64_t frames, uint64_t errors,
		       uint64_t tsc)
{
	char buf[160];
	struct out o = OUT_INIT(buf);
	out_str(&o, "PROBE-NBENCH dev=");
	out_dec(&o, dev);
	out_str(&o, end ? " phase=end size=" : " phase=begin size=");
	out_dec(&o, size);
	out_str(&o, " frames=");
	out_dec(&o, frames);
	if (end) {
		out_str(&o, " errors=");
		out_dec(&o, errors);
		out_str(&o, " tsc=");
		out_dec(&o, tsc);
	}
	out_end(&o);
}

/* net.bench=N (see the top of the file). */
static void bench(uint64_t base, uint32_t dev, uint64_t frames)
{
	uint64_t size = bench_param("net.size", 64);
	if (size < ETH)
		size = ETH;
	if (size > 1514)
		size = 1514;
	uint8_t *f = tx_buf + HDR;
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, 0x88b5);
	for (uint64_t i = ETH; i < size; i++)
		f[i] = (uint8_t)i;
	bench_line(dev, false, (uint32_t)size, frames, 0, 0);
	uint64_t errors = 0, t0 = rdtsc();
	for (uint64_t i = 0; i < frames; i++)
		if (!send(base, (uint32_t)size))
			errors++;
	bench_line(dev, true, (uint32_t)size, frames, errors, rdtsc() - t0);
}

#define VNLOOP_SLEEP_NS 50000000u /* the APIC timer counts at 1 GHz */
#define VNLOOP_PRINT_EVERY 4u

/* virtio=loop (see the top of the file): never returns. */
__attribute__((noreturn)) static void vnet_loop(uint64_t base, uint32_t dev)
{
	uint64_t replies = 0, lost = 0;
	apic_init_bsp();
	for (uint64_t n = 2;; n++) {
		bool matched = false;
		echo_request(base, (uint16_t)n);
		if (receive(base, is_echo_reply, (uint16_t)n, &matched) && matched)
			replies++;
		else
			lost++;
		if (n % VNLOOP_PRINT_EVERY == 0) {
			char buf[96];
			struct out o = OUT_INIT(buf);
			out_str(&o, "PROBE-VNLOOP dev=");
			out_dec(&o, dev);
			out_str(&o, " n=");
			out_dec(&o, n);
			out_str(&o, " replies=");
			out_dec(&o, replies);
			out_str(&o, " lost=");
			out_dec(&o, lost);
			out_end(&o);
		}
		apic_timer_oneshot(VNLOOP_SLEEP_NS);
		sleep_until_interrupt();
	}
}

void vnet_run(uint64_t base, uint32_t dev)
{
	char buf[160];
	struct out o = OUT_INIT(buf);

	parse_ip("net.ip", guest_ip);
	parse_ip("net.host", host_ip);
	uint32_t lo;
	if (!vio_negotiate(base, dev, (1u << F_NET_MAC) | (1u << F_NET_STATUS), &lo))
		return;
	if (!vio_queue(base, &rxq, 0, QSIZE) || !vio_queue(base, &txq, 1, QSIZE)) {
		vio_line_start(&o, dev);
		out_str(&o, "error=queue-too-small");
		out_end(&o);
		return;
	}
	vio_driver_ok(base);

	uint32_t c0 = mmio_rd(base, R_CONFIG), c1 = mmio_rd(base, R_CONFIG + 4);
	for (int i = 0; i < 4; i++)
		mac[i] = (uint8_t)(c0 >> (8 * i));
	mac[4] = (uint8_t)c1;
	mac[5] = (uint8_t)(c1 >> 8);
	vio_line_start(&o, dev);
	out_str(&o, "id=1 mac=");
	out_mac(&o, mac);
	out_str(&o, " status=");
	out_dec(&o, (lo >> F_NET_STATUS) & 1 ? (c1 >> 16) & 0xffff : 0);
	out_end(&o);

	size_t len;
	const char *v = probe_param("virtio", &len);
	if (v && len == 7 && memcmp(v, "hostile", 7) == 0)
		hostile(base, dev);

	uint64_t frames = bench_param("net.bench", 0);
	if (frames) {
		bench(base, dev, frames);
		return;
	}

	for (uint16_t i = 0; i < RX_BUFS; i++)
		post_rx(base, i);

	bool got = false;
	for (int tries = 0; tries < 3 && !got; tries++) {
		arp_request(base);
		got = receive(base, is_arp_reply, 0, NULL);
	}
	vio_line_start(&o, dev);
	if (got) {
		out_str(&o, "arp reply mac=");
		out_mac(&o, host_mac);
	} else {
		out_str(&o, "arp timeout");
	}
	out_end(&o);
	if (!got)
		return;

	bool matched = false;
	echo_request(base, 1);
	got = receive(base, is_echo_reply, 1, &matched);
	vio_line_start(&o, dev);
	if (got) {
		out_str(&o, "ping reply seq=1 match=");
		out_str(&o, matched ? "yes" : "no");
	} else {
		out_str(&o, "ping timeout");
	}
	out_end(&o);
	if (got && v && len == 4 && memcmp(v, "loop", 4) == 0)
		vnet_loop(base, dev);
}
