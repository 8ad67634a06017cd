/*
 * util.c - the freestanding basics: the mem* functions GCC may call on its own, and the
 * two ways a vCPU ends (halted, or busy forever).
 */
#include "probe.h"

void *memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	while (n--)
		*d++ = *s++;
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	uint8_t *d = dst;

	while (n--)
		*d++ = (uint8_t)c;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

/* Loop on integer arithmetic forever (mode=busy: keeps the vCPU's host thread running). */
void busy_forever(void)
{
	uint64_t x = 1;

	for (;;) {
		/* A linear congruential step (Knuth's MMIX constants). */
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		__asm__ volatile("" : "+r"(x));
	}
}
