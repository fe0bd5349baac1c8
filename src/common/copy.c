/* Non-temporal copies (see copy.h). */
#include "copy.h"

#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define COPY_X86 1
#endif

#ifdef COPY_X86

/* What both variants share: a copy below COPY_COLD_MIN is a plain memcpy; otherwise the head is
 * copied plainly up to the first `align`-byte boundary of the destination. Returns the bytes
 * left for non-temporal stores, with *d and *s moved past what was copied. */
static size_t copy_cold_prologue(uint8_t **d, const uint8_t **s, size_t n, size_t align)
{
	size_t head = (size_t)(-(uintptr_t)*d & (align - 1));

	if (n < COPY_COLD_MIN)
		head = n;
	memcpy(*d, *s, head);
	*d += head;
	*s += head;
	return n - head;
}

__attribute__((target("sse2"))) void copy_cold_sse2(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	n = copy_cold_prologue(&d, &s, n, 16);
	for (; n >= 64; n -= 64, d += 64, s += 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)s);
		__m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(s + 32));
		__m128i e = _mm_loadu_si128((const __m128i *)(s + 48));

		_mm_stream_si128((__m128i *)d, a);
		_mm_stream_si128((__m128i *)(d + 16), b);
		_mm_stream_si128((__m128i *)(d + 32), c);
		_mm_stream_si128((__m128i *)(d + 48), e);
	}
	memcpy(d, s, n);
}

/* GCC and clang end a function that used ymm registers with vzeroupper, so legacy-SSE code
 * after it pays no state transition. */
__attribute__((target("avx2"))) void copy_cold_avx2(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	n = copy_cold_prologue(&d, &s, n, 32);
	for (; n >= 64; n -= 64, d += 64, s += 64) {
		__m256i a = _mm256_loadu_si256((const __m256i *)s);
		__m256i b = _mm256_loadu_si256((const __m256i *)(s + 32));

		_mm256_stream_si256((__m256i *)d, a);
		_mm256_stream_si256((__m256i *)(d + 32), b);
	}
	memcpy(d, s, n);
}

int copy_cold_have_avx2(void)
{
	return __builtin_cpu_supports("avx2");
}

void copy_cold(void *dst, const void *src, size_t n)
{
	if (__builtin_cpu_supports("avx2"))
		copy_cold_avx2(dst, src, n);
	else
		copy_cold_sse2(dst, src, n);
}

void copy_cold_fence(void)
{
	_mm_sfence();
}

#else /* not x86: plain copies, nothing to fence */

void copy_cold_sse2(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
}

void copy_cold_avx2(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
}

int copy_cold_have_avx2(void)
{
	return 0;
}

void copy_cold(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
}

void copy_cold_fence(void)
{
}

#endif
