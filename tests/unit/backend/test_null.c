/* Unit tests for the null backend: reads return zeroes whatever was written, writes and the
 * other ops are accepted and complete inline, the range checks still apply. */
#include <errno.h>
#include <stdio.h>

#include "bt.h"
#include "tap.h"

static void test_null(void)
{
	struct nvtcp_backend_conf conf = {.type = NVTCP_BACKEND_NULL, .size = 1ull << 40};
	struct nvtcp_backend_channel *ch = NULL;
	struct nvtcp_backend *be = NULL;
	struct bt_done d = {0, 0};
	static char buf[8192];
	struct iovec iov[2] = {{buf, 3000}, {buf + 3000, 5192}};
	struct nvtcp_bio bio = {.op = NVTCP_BIO_READ,
				.offset = 4096,
				.length = 8192,
				.iov = iov,
				.iovcnt = 2,
				.done = bt_done_fn,
				.priv = &d};

	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, NULL, 0), 0);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_type(be), NVTCP_BACKEND_NULL);
	TAP_CHECK_EQ(nvtcp_backend_size(be), 1ull << 40); /* costs nothing */
	TAP_CHECK_EQ(nvtcp_backend_block_size(be), 512);
	TAP_CHECK(!nvtcp_backend_has_volatile_cache(be));
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	TAP_CHECK_EQ(nvtcp_backend_channel_fd(ch), -1);

	memset(buf, 0x77, sizeof(buf));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 4096, buf, 8192), 0);
	TAP_CHECK_EQ(nvtcp_backend_submit(ch, &bio), 0);
	TAP_CHECK_EQ(d.calls, 1); /* inline */
	TAP_CHECK_EQ(d.status, 0);
	TAP_CHECK(bt_is_zero(buf, sizeof(buf)));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE_ZEROES, 0, NULL, 1 << 20), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_DISCARD, 0, NULL, 1 << 20), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_FLUSH, 0, NULL, 0), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 1ull << 40, buf, 512), -ERANGE);
	TAP_CHECK_EQ(nvtcp_backend_channel_inflight(ch), 0);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

static void test_null_needs_size(void)
{
	struct nvtcp_backend_conf conf = {.type = NVTCP_BACKEND_NULL};
	struct nvtcp_backend *be = NULL;
	char err[128];

	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "null") != NULL);
	TAP_CHECK(be == NULL);
}

int main(void)
{
	TAP_RUN(test_null);
	TAP_RUN(test_null_needs_size);
	return tap_done();
}
