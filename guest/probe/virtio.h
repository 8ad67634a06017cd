/*
 * virtio.h - the probe's virtio-mmio (version 2) driver side, shared by its device drivers
 * (virtio.c: the scan and virtio-blk; each further device in a file of its own).
 *
 * One split virtqueue lives in a struct vq in the driver's own memory (identity mapped, so
 * its address is its guest-physical address). Drivers poll the used ring; interrupts stay
 * disabled (nothing returns with IRET on this host), and every queue asks for none
 * (VIRTQ_AVAIL_F_NO_INTERRUPT).
 */
#ifndef VIRTIO_H
#define VIRTIO_H

#include "probe.h"

#define VIRTIO_MMIO_BASE 0xfeb00000ull
#define VIRTIO_MMIO_STRIDE 0x200
#define VIRTIO_MMIO_SLOTS 24 /* QEMU microvm with its second IOAPIC has 24; rvmm 8 */
#define VIRTIO_MAGIC 0x74726976u

#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEVICE_FEATURES 0x010
#define R_DEVICE_FEATURES_SEL 0x014
#define R_DRIVER_FEATURES 0x020
#define R_DRIVER_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INTERRUPT_STATUS 0x060
#define R_INTERRUPT_ACK 0x064
#define R_STATUS 0x070
#define R_QUEUE_DESC_LOW 0x080
#define R_QUEUE_DESC_HIGH 0x084
#define R_QUEUE_AVAIL_LOW 0x090
#define R_QUEUE_AVAIL_HIGH 0x094
#define R_QUEUE_USED_LOW 0x0a0
#define R_QUEUE_USED_HIGH 0x0a4
#define R_CONFIG_GENERATION 0x0fc
#define R_CONFIG 0x100

#define S_ACKNOWLEDGE 1u
#define S_DRIVER 2u
#define S_DRIVER_OK 4u
#define S_FEATURES_OK 8u
#define S_NEEDS_RESET 64u

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

/* The most entries a probe queue has; a queue may be set up smaller (a power of two). */
#define VQ_MAX 16
#define VIO_POLL_LIMIT 200000000ull

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq {
	struct desc desc[VQ_MAX] __attribute__((aligned(16)));
	struct {
		uint16_t flags;
		uint16_t idx;
		uint16_t ring[VQ_MAX];
		uint16_t used_event;
	} avail __attribute__((aligned(2)));
	struct {
		uint16_t flags;
		uint16_t idx;
		struct {
			uint32_t id;
			uint32_t len;
		} ring[VQ_MAX];
		uint16_t avail_event;
	} used __attribute__((aligned(4)));
	uint16_t size;  /* entries in use (a power of two, <= VQ_MAX) */
	uint16_t index; /* the queue's number on its device */
	uint16_t seen;  /* used.idx as far as the driver has consumed it */
};

static inline uint32_t mmio_rd(uint64_t base, uint32_t off)
{
	return *(volatile uint32_t *)phys(base + off);
}

static inline void mmio_wr(uint64_t base, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)phys(base + off) = v;
}

static inline void mb(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

/*
 * Reset, ACKNOWLEDGE | DRIVER, then accept VERSION_1 and the bits of `want_lo` the device
 * offers, and FEATURES_OK. Returns false (and prints "PROBE-VIRTIO dev=K error=...") when the
 * device has no VERSION_1 or refuses the features. `*offered_lo` gets the device's low word.
 */
bool vio_negotiate(uint64_t base, uint32_t dev, uint32_t want_lo, uint32_t *offered_lo);
/* Sets up queue `index` with `size` entries in `q` and marks it ready; false if too small. */
bool vio_queue(uint64_t base, struct vq *q, uint16_t index, uint16_t size);
/* Sets DRIVER_OK. */
void vio_driver_ok(uint64_t base);
/* Makes descriptor chain `head` available in `q` and notifies the device. */
void vio_kick(uint64_t base, struct vq *q, uint16_t head);
/* Polls until q->used.idx reaches `want` (false on timeout), then acknowledges interrupts. */
bool vio_wait_used(uint64_t base, struct vq *q, uint16_t want);
/* Starts a "PROBE-VIRTIO dev=K " line. */
void vio_line_start(struct out *o, uint32_t dev);

/* The device drivers other than virtio-blk: each takes a transport found by the scan. */
void vnet_run(uint64_t base, uint32_t dev); /* vnet.c */
void balloon_run(uint64_t base, uint32_t dev); /* balloon.c */

#endif
