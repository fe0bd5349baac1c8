/* Null backend: reads return zeroes, writes are discarded, everything completes inline. For
 * measuring the transport without storage cost. Layer: backend. */
#include <errno.h>
#include <stdlib.h>

#include "backend_impl.h"

static int null_open(const struct nvtcp_backend_conf *conf, struct nvtcp_backend **out, char *err,
		     size_t errlen)
{
	uint32_t bs = conf->block_size ? conf->block_size : 512;
	struct nvtcp_backend *be;

	if (!conf->size || conf->size % bs) {
		errbuf_set(err, errlen,
			   "null backend: size %llu must be a non-zero multiple "
			   "of the block size %u",
			   (unsigned long long)conf->size, bs);
		return -EINVAL;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	be->size = conf->size;
	be->block_size = bs;
	be->volatile_cache = false;
	*out = be;
	return 0;
}

static void null_close(struct nvtcp_backend *be)
{
	free(be);
}

static int null_channel_open(struct nvtcp_backend *be, struct nvtcp_backend_channel **out)
{
	struct nvtcp_backend_channel *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return -ENOMEM;
	ch->fd = -1;
	*out = ch;
	return 0;
}

static void null_channel_close(struct nvtcp_backend_channel *ch)
{
	free(ch);
}

static int null_submit(struct nvtcp_backend_channel *ch, struct nvtcp_bio *bio)
{
	if (bio->op == NVTCP_BIO_READ)
		backend_iov_zero(bio->iov, bio->iovcnt, bio->length);
	backend_bio_complete(ch, bio, 0);
	return 0;
}

const struct backend_ops backend_null_ops = {
	.open = null_open,
	.close = null_close,
	.channel_open = null_channel_open,
	.channel_close = null_channel_close,
	.submit = null_submit,
};
