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

int main(void)
{
	TAP_RUN(test_check_value);
	TAP_RUN(test_rfc3720);
	TAP_RUN(test_chaining);
	TAP_RUN(test_iov);
	return tap_done();
}
