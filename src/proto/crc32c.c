/* CRC32C (Castagnoli) for NVMe/TCP digests, through ISA-L's crc32_iscsi.
 * Layer: proto (pure). crc32_iscsi(buf, len, init) takes and returns the running value without
 * the final inversion (seed 0xFFFFFFFF in, XOR 0xFFFFFFFF out), which is what CRC32C_INIT and
 * crc32c_final() expect, so chunks can be chained. */
#include "crc32c.h"

#include <limits.h>
#include <string.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include <isa-l/crc.h>

/* ISA-L 2.30 (Debian 12) dispatches crc32_iscsi to an AVX-512 routine (crc32_iscsi_by16_10)
 * that returns without vzeroupper. The dirty upper register state then makes every later
 * legacy-SSE instruction (glibc's small memcpy, gcc's SSE moves) pay a state transition:
 * bench_proto measured PDU decoding 4-6x slower after the first CRC. Clean up after it. The
 * CPU check reads libgcc's cached CPUID result; no state of ours. */
static inline void crc32c_clear_upper(void)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx"))
		__asm__ volatile("vzeroupper" ::: "memory");
#endif
}

/* Headers and other short runs: ISA-L's routine is built for long buffers and takes 18-24 ns
 * for a 24..72-byte PDU header here, the CPU's crc32 instruction 3-6 ns (same CRC32C;
 * bench/bench_proto's header-digest cases and the digest vectors cover both paths). */
#define CRC32C_SMALL_MAX 256

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_small(uint32_t crc, const unsigned char *p,
							       size_t len)
{
	uint64_t c = crc;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
	}
	crc = (uint32_t)c;
	for (; len > 0; len--, p++)
		crc = _mm_crc32_u8(crc, *p);
	return crc;
}
#endif

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

#if defined(__x86_64__)
	if (len <= CRC32C_SMALL_MAX && __builtin_cpu_supports("sse4.2"))
		return crc32c_small(crc, p, len);
#endif

	/* ISA-L takes an int length and a non-const pointer (it does not write). */
	while (len > 0) {
		int n = len > (size_t)INT_MAX ? INT_MAX : (int)len;

		crc = crc32_iscsi((unsigned char *)p, n, crc);
		p += n;
		len -= (size_t)n;
	}
	crc32c_clear_upper();
	return crc;
}

uint32_t crc32c(const void *buf, size_t len)
{
	return crc32c_final(crc32c_update(CRC32C_INIT, buf, len));
}

uint32_t crc32c_iov(const struct iovec *iov, int iovcnt, size_t len)
{
	uint32_t crc = CRC32C_INIT;

	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;

		crc = crc32c_update(crc, iov[i].iov_base, n);
		len -= n;
	}
	return crc32c_final(crc);
}

/* The running value after len zero bytes, from crc. */
static uint32_t crc32c_zeroes(uint32_t crc, size_t len)
{
	static const uint8_t zero[256];

	for (; len > sizeof(zero); len -= sizeof(zero))
		crc = crc32c_update(crc, zero, sizeof(zero));
	return crc32c_update(crc, zero, len);
}

void crc32c_shift_init(struct crc32c_shift *sh, size_t len)
{
	uint32_t bit[32];

	/* the shift is linear: its effect on each single bit, then on each byte value */
	for (int j = 0; j < 32; j++)
		bit[j] = crc32c_zeroes(1u << j, len);
	for (int k = 0; k < 4; k++) {
		for (int b = 0; b < 256; b++) {
			uint32_t v = 0;

			for (int j = 0; j < 8; j++)
				if (b & (1 << j))
					v ^= bit[8 * k + j];
			sh->t[k][b] = v;
		}
	}
}
