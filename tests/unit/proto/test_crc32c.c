/* Unit tests for src/proto/crc32c.c: check value, RFC 3720 vectors, chaining, iovecs. */
#include <stdint.h>
#include <string.h>

#include "proto/crc32c.h"
#include "tap.h"

static void test_check_value(void)
{
	TAP_CHECK_EQ(crc32c("123456789", 9), 0xe3069283u);
	TAP_CHECK_EQ(crc32c("", 0), 0x00000000u);
}

/* RFC 3720 appendix B.4 (iSCSI uses the same CRC32C). */
static void test_rfc3720(void)
{
	uint8_t buf[32];

	memset(buf, 0, sizeof(buf));
	TAP_CHECK_EQ(crc32c(buf, sizeof(buf)), 0x8a9136aau);
	memset(buf, 0xff, sizeof(buf));
	TAP_CHECK_EQ(crc32c(buf, sizeof(buf)), 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	TAP_CHECK_EQ(crc32c(buf, sizeof(buf)), 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	TAP_CHECK_EQ(crc32c(buf, sizeof(buf)), 0x113fdb5cu);
}

static void test_chaining(void)
{
	uint8_t buf[1000];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	uint32_t whole = crc32c(buf, sizeof(buf));
	int bad = 0;
	for (size_t split = 0; split <= sizeof(buf); split++) {
		uint32_t c = crc32c_update(CRC32C_INIT, buf, split);
		c = crc32c_update(c, buf + split, sizeof(buf) - split);
		bad += crc32c_final(c) != whole;
	}
	TAP_CHECK_EQ(bad, 0);
}

/* Bit by bit, straight from the polynomial: the reference both code paths (the CPU's crc32
 * instruction for short runs, ISA-L for long ones) must match. */
static uint32_t ref_update(uint32_t crc, const uint8_t *p, size_t n)
{
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
	}
	return crc;
}

/* Every length from 0 to 600 (both sides of the short-run threshold) at every alignment mod 8,
 * from several starting values. */
static void test_against_reference(void)
{
	static uint8_t buf[700];
	uint32_t starts[] = {CRC32C_INIT, 0, 0x12345678u};
	int bad = 0;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 17);
	for (size_t si = 0; si < 3; si++)
		for (size_t off = 0; off < 8; off++)
			for (size_t len = 0; len <= 600; len++)
				bad += crc32c_update(starts[si], buf + off, len) !=
				       ref_update(starts[si], buf + off, len);
	TAP_CHECK_EQ(bad, 0);
}

static void test_iov(void)
{
	uint8_t buf[300];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i ^ 0x5a);
	struct iovec iov[3] = {
		{buf, 100},
		{buf + 100, 0},
		{buf + 100, 200},
	};
	TAP_CHECK_EQ(crc32c_iov(iov, 3, 300), crc32c(buf, 300));
	/* len shorter than the iovecs: only the first len bytes count */
	TAP_CHECK_EQ(crc32c_iov(iov, 3, 150), crc32c(buf, 150));
	TAP_CHECK_EQ(crc32c_iov(iov, 1, 300), crc32c(buf, 100));
}

/* crc32c_shift: appending a block by its CRC from 0 gives what running over its bytes gives,
 * for any starting value and several block sizes, chained over many blocks. */
static void test_shift(void)
{
	static const size_t lens[] = {1, 3, 512, 4096, 65536};
	static uint8_t buf[8 * 65536];
	static struct crc32c_shift sh;
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t len = lens[li];
		uint32_t starts[] = {CRC32C_INIT, 0, 0x80000000u, x};

		crc32c_shift_init(&sh, len);
		for (size_t si = 0; si < sizeof(starts) / sizeof(starts[0]); si++) {
			uint32_t direct = starts[si], combined = starts[si];

			for (size_t b = 0; b < 8; b++) {
				const uint8_t *blk = buf + b * len;

				direct = crc32c_update(direct, blk, len);
				combined = crc32c_shift(&sh, combined) ^ crc32c_update(0, blk, len);
				TAP_CHECK_EQ(combined, direct);
			}
		}
	}
	/* the shift by 0 bytes changes nothing */
	crc32c_shift_init(&sh, 0);
	TAP_CHECK_EQ(crc32c_shift(&sh, 0xdeadbeefu), 0xdeadbeefu);
}

int main(void)
{
	TAP_RUN(test_check_value);
	TAP_RUN(test_rfc3720);
	TAP_RUN(test_chaining);
	TAP_RUN(test_iov);
	TAP_RUN(test_against_reference);
	TAP_RUN(test_shift);
	return tap_done();
}
