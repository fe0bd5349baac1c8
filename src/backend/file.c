/* File backend: a namespace stored in a regular file through the page cache, with io_uring
 * channels (uring.c). The file is created if missing and extended (sparsely) to the configured
 * size; without a size, the file's own size is used. Writes land in the page cache, so the
 * namespace reports a volatile write cache and FLUSH/FUA reach the disk. Layer: backend. */
#include "backend_impl.h"

static int file_open(const struct nvtcp_backend_conf *conf, struct nvtcp_backend **out, char *err,
		     size_t errlen)
{
	return uring_backend_open(conf, 0, out, err, errlen);
}

const struct backend_ops backend_file_ops = {
	.open = file_open,
	.close = uring_backend_close,
	.channel_open = uring_channel_open,
	.channel_close = uring_channel_close,
	.submit = uring_submit,
	.channel_poll = uring_channel_poll,
	.channel_drain = uring_channel_drain,
	.usage = uring_backend_usage,
};
