/*
 * out.c - build output lines in memory and write them to COM1 with one `rep outsb`.
 *
 * Every port write is a VM exit, but KVM hands a string port write to the VMM as one exit
 * (up to a page of bytes), so a whole line costs one exit instead of one per byte.  We
 * never poll the line status register: the VMM's UART (QEMU's, rvmm's) takes bytes at
 * any rate.
 */
#include "probe.h"

#define COM1_THR 0x3f8

static void emit(const char *p, size_t n)
{
	__asm__ volatile("rep outsb" : "+S"(p), "+c"(n) : "d"((uint16_t)COM1_THR) : "memory");
}

static void out_flush(struct out *o)
{
	emit(o->buf, o->len);
	o->len = 0;
}

void out_char(struct out *o, char c)
{
	if (o->len == o->cap)
		out_flush(o);
	o->buf[o->len++] = c;
}

void out_str(struct out *o, const char *s)
{
	while (*s)
		out_char(o, *s++);
}

static const char hex_digits[] = "0123456789abcdef";

/* Eight lowercase hex digits. */
void out_hex32(struct out *o, uint32_t v)
{
	for (int shift = 28; shift >= 0; shift -= 4)
		out_char(o, hex_digits[(v >> shift) & 0xf]);
}

void out_dec(struct out *o, uint64_t v)
{
	char digits[20];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		out_char(o, digits[--n]);
}

/* Two lowercase hex digits per byte, no separators. */
void out_hex_bytes(struct out *o, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		out_char(o, hex_digits[p[i] >> 4]);
		out_char(o, hex_digits[p[i] & 0xf]);
	}
}

void out_end(struct out *o)
{
	out_char(o, '\n');
	out_flush(o);
}

void out_line(const char *s)
{
	char buf[128];
	struct out o = OUT_INIT(buf);

	out_str(&o, s);
	out_end(&o);
}
