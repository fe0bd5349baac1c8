/* Backend dispatch: validates the configuration and every bio (range, alignment, read-only),
 * applies test error injection, keeps the in-flight count, then hands the bio to the type's
 * ops table (memory.c, null.c, file.c, block.c).
 * Layer: backend. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/copy.h"
#include "../proto/crc32c.h"
#include "backend_impl.h"

static const struct backend_ops *const backend_ops_by_type[NVTCP_BACKEND_TYPE_COUNT] = {
	[NVTCP_BACKEND_MEMORY] = &backend_memory_ops,
	[NVTCP_BACKEND_FILE] = &backend_file_ops,
	[NVTCP_BACKEND_BLOCK] = &backend_block_ops,
	[NVTCP_BACKEND_NULL] = &backend_null_ops,
};

static const char *const backend_type_names[NVTCP_BACKEND_TYPE_COUNT] = {
	[NVTCP_BACKEND_MEMORY] = "memory",
	[NVTCP_BACKEND_FILE] = "file",
	[NVTCP_BACKEND_BLOCK] = "block",
	[NVTCP_BACKEND_NULL] = "null",
};

void backend_iov_zero(const struct iovec *iov, int iovcnt, uint64_t len)
{
	for (int i = 0; i < iovcnt && len; i++) {
		size_t n = MIN(iov[i].iov_len, len);

		memset(iov[i].iov_base, 0, n);
		len -= n;
	}
}

void backend_iov_to_buf(void *dst, const struct iovec *iov, int iovcnt, uint64_t len, bool cold)
{
	char *p = dst;

	for (int i = 0; i < iovcnt && len; i++) {
		size_t n = MIN(iov[i].iov_len, len);

		if (cold)
			copy_cold(p, iov[i].iov_base, n);
		else
			memcpy(p, iov[i].iov_base, n);
		p += n;
		len -= n;
	}
}

void backend_buf_to_iov(const struct iovec *iov, int iovcnt, const void *src, uint64_t len)
{
	const char *p = src;

	for (int i = 0; i < iovcnt && len; i++) {
		size_t n = MIN(iov[i].iov_len, len);

		memcpy(iov[i].iov_base, p, n);
		p += n;
		len -= n;
	}
}

void backend_base_init(struct nvtcp_backend *be, const struct nvtcp_backend_conf *conf)
{
	be->ops = backend_ops_by_type[conf->type];
	be->type = conf->type;
	be->readonly = conf->readonly;
	atomic_init(&be->inject_count, 0);
	atomic_init(&be->inject_mask, 0);
	atomic_init(&be->inject_status, 0);
	atomic_init(&be->st_dsync_writes, 0);
	atomic_init(&be->st_syncs, 0);
}

NVTCP_EXPORT void nvtcp_backend_get_stats(struct nvtcp_backend *be, struct nvtcp_backend_stats *st)
{
	st->dsync_writes = atomic_load_explicit(&be->st_dsync_writes, memory_order_relaxed);
	st->syncs = atomic_load_explicit(&be->st_syncs, memory_order_relaxed);
}

NVTCP_EXPORT int nvtcp_backend_type_parse(const char *name, enum nvtcp_backend_type *out)
{
	if (!name)
		return -EINVAL;
	for (int t = 0; t < NVTCP_BACKEND_TYPE_COUNT; t++) {
		if (!strcasecmp(name, backend_type_names[t])) {
			*out = (enum nvtcp_backend_type)t;
			return 0;
		}
	}
	if (!strcasecmp(name, "bdev")) {
		*out = NVTCP_BACKEND_BLOCK;
		return 0;
	}
	return -EINVAL;
}

NVTCP_EXPORT const char *nvtcp_backend_type_name(enum nvtcp_backend_type type)
{
	if ((unsigned)type >= NVTCP_BACKEND_TYPE_COUNT)
		return "unknown";
	return backend_type_names[type];
}

NVTCP_EXPORT int nvtcp_backend_open(const struct nvtcp_backend_conf *conf,
				    struct nvtcp_backend **out, char *err, size_t errlen)
{
	struct nvtcp_backend *be = NULL;
	int ret;

	errbuf_set(err, errlen, "%s", "");
	if (!conf || !out) {
		errbuf_set(err, errlen, "no configuration");
		return -EINVAL;
	}
	if ((unsigned)conf->type >= NVTCP_BACKEND_TYPE_COUNT) {
		errbuf_set(err, errlen, "unknown backend type %d", (int)conf->type);
		return -EINVAL;
	}
	/* NVMe LBADS allows any power of two >= 512; we cap at 64 KiB like Linux's page-size
	 * limit on logical blocks. */
	if (conf->block_size && (conf->block_size < 512 || conf->block_size > 65536 ||
				 (conf->block_size & (conf->block_size - 1)))) {
		errbuf_set(err, errlen, "block size %u: must be a power of two from 512 to 65536",
			   conf->block_size);
		return -EINVAL;
	}
	ret = backend_ops_by_type[conf->type]->open(conf, &be, err, errlen);
	if (ret < 0)
		return ret;
	backend_base_init(be, conf);
	*out = be;
	return 0;
}

NVTCP_EXPORT void nvtcp_backend_close(struct nvtcp_backend *be)
{
	if (be)
		be->ops->close(be);
}

NVTCP_EXPORT uint64_t nvtcp_backend_size(const struct nvtcp_backend *be)
{
	return be->size;
}

NVTCP_EXPORT uint32_t nvtcp_backend_block_size(const struct nvtcp_backend *be)
{
	return be->block_size;
}

NVTCP_EXPORT int nvtcp_backend_usage(struct nvtcp_backend *be, uint64_t *bytes)
{
	int r;

	if (!be->ops->usage)
		return -EOPNOTSUPP;
	r = be->ops->usage(be, bytes);
	if (r == 0 && *bytes > be->size)
		*bytes = be->size; /* a file's blocks include metadata and preallocation */
	return r;
}

NVTCP_EXPORT bool nvtcp_backend_has_volatile_cache(const struct nvtcp_backend *be)
{
	return be->volatile_cache;
}

NVTCP_EXPORT bool nvtcp_backend_is_readonly(const struct nvtcp_backend *be)
{
	return be->readonly;
}

NVTCP_EXPORT enum nvtcp_backend_type nvtcp_backend_type(const struct nvtcp_backend *be)
{
	return be->type;
}

NVTCP_EXPORT int nvtcp_backend_channel_open(struct nvtcp_backend *be,
					    struct nvtcp_backend_channel **out)
{
	struct nvtcp_backend_channel *ch = NULL;
	int ret;

	ret = be->ops->channel_open(be, &ch);
	if (ret < 0)
		return ret;
	ch->be = be;
	ch->inflight = 0;
	ch->closing = false;
	*out = ch;
	return 0;
}

NVTCP_EXPORT void nvtcp_backend_channel_close(struct nvtcp_backend_channel *ch)
{
	if (!ch)
		return;
	ch->closing = true;
	if (ch->be->ops->channel_drain)
		ch->be->ops->channel_drain(ch);
	ch->be->ops->channel_close(ch);
}

static int backend_check_bio(const struct nvtcp_backend *be, const struct nvtcp_bio *bio)
{
	uint64_t covered = 0;

	if ((unsigned)bio->op >= NVTCP_BIO_OP_COUNT || !bio->done)
		return -EINVAL;
	if (bio->op == NVTCP_BIO_FLUSH)
		return 0;
	if (be->readonly && bio->op != NVTCP_BIO_READ)
		return -EROFS;
	if (bio->offset > be->size || bio->length > be->size - bio->offset)
		return -ERANGE;
	if ((bio->offset | bio->length) & (be->block_size - 1))
		return -EINVAL;
	if (bio->op != NVTCP_BIO_READ && bio->op != NVTCP_BIO_WRITE)
		return 0;
	if (bio->op == NVTCP_BIO_WRITE && bio->in_place && !be->ops->write_place)
		return -EINVAL;
	if (bio->iovcnt < 0 || (bio->iovcnt && !bio->iov))
		return -EINVAL;
	for (int i = 0; i < bio->iovcnt && covered < bio->length; i++)
		covered += bio->iov[i].iov_len;
	return covered < bio->length ? -EINVAL : 0;
}

/* Returns the injected status for this bio, or 0. */
static int backend_take_injection(struct nvtcp_backend *be, const struct nvtcp_bio *bio)
{
	unsigned count = atomic_load_explicit(&be->inject_count, memory_order_relaxed);

	if (likely(count == 0))
		return 0;
	if (!(atomic_load(&be->inject_mask) & (1u << bio->op)))
		return 0;
	/* Several channels may race for the last injections: only the ones that win a count
	 * fail. */
	while (count) {
		if (atomic_compare_exchange_weak(&be->inject_count, &count, count - 1))
			return atomic_load(&be->inject_status);
	}
	return 0;
}

NVTCP_EXPORT int nvtcp_backend_submit(struct nvtcp_backend_channel *ch, struct nvtcp_bio *bio)
{
	struct nvtcp_backend *be = ch->be;
	int ret;

	if (unlikely(ch->closing))
		return -ESHUTDOWN;
	ret = backend_check_bio(be, bio);
	if (unlikely(ret < 0))
		return ret;
	ch->inflight++;
	ret = backend_take_injection(be, bio);
	if (unlikely(ret < 0)) {
		backend_bio_complete(ch, bio, ret);
		return 0;
	}
	ret = be->ops->submit(ch, bio);
	if (ret < 0)
		ch->inflight--;
	return ret;
}

NVTCP_EXPORT void *nvtcp_backend_write_place(struct nvtcp_backend *be, uint64_t offset,
					     uint64_t length)
{
	if (!be->ops->write_place || be->readonly || length == 0)
		return NULL;
	if (offset > be->size || length > be->size - offset ||
	    ((offset | length) & (be->block_size - 1)))
		return NULL;
	return be->ops->write_place(be, offset, length);
}

NVTCP_EXPORT uint32_t nvtcp_backend_crc_update(struct nvtcp_backend *be, uint32_t crc,
					       const void *p, size_t len)
{
	if (be->ops->crc_update)
		return be->ops->crc_update(be, crc, p, len);
	return crc32c_update(crc, p, len);
}

NVTCP_EXPORT int nvtcp_backend_channel_fd(const struct nvtcp_backend_channel *ch)
{
	return ch->fd;
}

NVTCP_EXPORT int nvtcp_backend_channel_poll(struct nvtcp_backend_channel *ch)
{
	if (!ch->be->ops->channel_poll)
		return 0;
	return ch->be->ops->channel_poll(ch);
}

NVTCP_EXPORT unsigned nvtcp_backend_channel_inflight(const struct nvtcp_backend_channel *ch)
{
	return ch->inflight;
}

NVTCP_EXPORT void nvtcp_backend_inject_error(struct nvtcp_backend *be, unsigned op_mask,
					     unsigned count, int status)
{
	/* Publish mask and status before the count that arms them. */
	atomic_store(&be->inject_mask, op_mask);
	atomic_store(&be->inject_status, status < 0 ? status : -EIO);
	atomic_store(&be->inject_count, count);
}
