/* Block device backend: O_DIRECT through the io_uring channels of uring.c. Size comes from
 * BLKGETSIZE64, the default block size from BLKSSZGET; unaligned buffers go through per-slot
 * bounce buffers. DISCARD is fallocate(PUNCH_HOLE) (the kernel's zeroing unmap, so reads after
 * it return zeroes, unlike BLKDISCARD), falling back to ZERO_RANGE; both run asynchronously in
 * the ring. The device's write cache is volatile unless sysfs says "write through" (then
 * Identify reports no volatile write cache and the host sends no Flush).
 * Layer: backend. */
#include "backend_impl.h"

static int block_open(const struct nvtcp_backend_conf *conf, struct nvtcp_backend **out, char *err,
		      size_t errlen)
{
	return uring_backend_open(conf, URING_OPEN_DIRECT, out, err, errlen);
}

const struct backend_ops backend_block_ops = {
	.open = block_open,
	.close = uring_backend_close,
	.channel_open = uring_channel_open,
	.channel_close = uring_channel_close,
	.submit = uring_submit,
	.channel_poll = uring_channel_poll,
	.channel_drain = uring_channel_drain,
};
