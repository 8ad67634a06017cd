/*
 * out.c - build output lines in memory and write them to COM1.
 *
 * Every port write is a VM exit and costs far more than the instructions that format a
 * line, so lines are formatted with few instructions (hex through a byte-pair table) and
 * written in one go.  We never poll the line status register: the VMM's UART (QEMU's,
 * rvmm's) takes bytes at any rate.  On this kvm-pvm host every guest instruction is
 * emulated (about 0.3 us each) and a port write costs about 10 us.
 */
#include "probe.h"

#define COM1_THR 0x3f8

/*
 * Writes n bytes to the UART data register.  `rep outsb` is one instruction; KVM still
 * exits to the VMM once per byte for it (its emulator runs string OUTs a byte at a time),
 * which is no worse than a loop of `outb`.
 */
static void emit(const char *p, size_t n)
{
	__asm__ volatile("rep outsb" : "+S"(p), "+c"(n) : "d"((uint16_t)COM1_THR) : "memory");
}

/* "000102...feff": the two lowercase hex digits of every byte value. */
#define HEX_ROW(h)                                                                     \
	h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" h "8" h "9" h "a" h "b" h "c" h "d" \
		h "e" h "f"
static const char hex_pairs[512 + 1] =
	HEX_ROW("0") HEX_ROW("1") HEX_ROW("2") HEX_ROW("3") HEX_ROW("4") HEX_ROW("5")
	HEX_ROW("6") HEX_ROW("7") HEX_ROW("8") HEX_ROW("9") HEX_ROW("a") HEX_ROW("b")
	HEX_ROW("c") HEX_ROW("d") HEX_ROW("e") HEX_ROW("f");

static inline char *put_byte_hex(char *p, uint8_t b)
{
	__builtin_memcpy(p, &hex_pairs[2 * b], 2);
	return p + 2;
}

static void out_flush(struct out *o)
{
	emit(o->buf, o->len);
	o->len = 0;
}

/* Makes room for n more bytes (n <= 20) and returns where to write them. */
static inline char *out_room(struct out *o, uint32_t n)
{
	if (o->len + n > o->cap)
		out_flush(o);
	return o->buf + o->len;
}

void out_char(struct out *o, char c)
{
	*out_room(o, 1) = c;
	o->len++;
}

void out_str(struct out *o, const char *s)
{
	while (*s) {
		char *p = out_room(o, 1);
		uint32_t n = 0;
		while (s[n] && o->len + n < o->cap) {
			p[n] = s[n];
			n++;
		}
		o->len += n;
		s += n;
	}
}

/* Eight lowercase hex digits, most significant first. */
void out_hex32(struct out *o, uint32_t v)
{
	char *p = out_room(o, 8);

	p = put_byte_hex(p, (uint8_t)(v >> 24));
	p = put_byte_hex(p, (uint8_t)(v >> 16));
	p = put_byte_hex(p, (uint8_t)(v >> 8));
	put_byte_hex(p, (uint8_t)v);
	o->len += 8;
}

void out_dec(struct out *o, uint64_t v)
{
	char digits[20];
	uint32_t n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	char *p = out_room(o, n);
	for (uint32_t i = 0; i < n; i++)
		p[i] = digits[n - 1 - i];
	o->len += n;
}

/* Two lowercase hex digits per byte, no separators. */
void out_hex_bytes(struct out *o, const uint8_t *bytes, uint32_t n)
{
	while (n) {
		char *p = out_room(o, 2);
		uint32_t room = (o->cap - o->len) / 2;
		uint32_t chunk = n < room ? n : room;
		for (uint32_t i = 0; i < chunk; i++)
			p = put_byte_hex(p, bytes[i]);
		o->len += 2 * chunk;
		bytes += chunk;
		n -= chunk;
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
