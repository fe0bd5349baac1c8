/* Backend internals: the ops table each backend type fills in, and the base structs that each
 * type embeds first in its own backend and channel structs. backend.c does the common checks
 * (range, alignment, read-only, error injection) and the in-flight accounting; a type only
 * moves data and calls backend_bio_complete().
 * Layer: backend. */
#ifndef NVTCP_BACKEND_IMPL_H
#define NVTCP_BACKEND_IMPL_H

#include <stdatomic.h>
#include <stddef.h>

#include "nvtcp/backend.h"
#include "../common/compiler.h"
#include "../common/errbuf.h"

struct backend_ops {
	/* Open the type's backend from an already validated conf (block_size 0 or a power of two).
	 * Must fill the base: size, block_size, volatile_cache. */
	int (*open)(const struct nvtcp_backend_conf *conf, struct nvtcp_backend **out, char *err,
		    size_t errlen);
	void (*close)(struct nvtcp_backend *be);
	int (*channel_open)(struct nvtcp_backend *be, struct nvtcp_backend_channel **out);
	/* Called once the channel has nothing in flight (uring waits itself first). */
	void (*channel_close)(struct nvtcp_backend_channel *ch);
	/* bio has passed the common checks; ch->inflight already counts it. Return 0 and later
	 * (or now) call backend_bio_complete, or -errno without calling it. */
	int (*submit)(struct nvtcp_backend_channel *ch, struct nvtcp_bio *bio);
	/* NULL for inline types. */
	int (*channel_poll)(struct nvtcp_backend_channel *ch);
	/* Block until every bio on ch has completed; NULL for inline types. */
	void (*channel_drain)(struct nvtcp_backend_channel *ch);
	/* nvtcp_backend_write_place after the common checks; NULL: not supported. */
	void *(*write_place)(struct nvtcp_backend *be, uint64_t offset, uint64_t length);
	/* nvtcp_backend_usage; NULL: cannot tell (-EOPNOTSUPP) */
	int (*usage)(struct nvtcp_backend *be, uint64_t *bytes);
	/* nvtcp_backend_crc_update; NULL: the bytes are CRC'd */
	uint32_t (*crc_update)(struct nvtcp_backend *be, uint32_t crc, const void *p, size_t len);
};

struct nvtcp_backend {
	const struct backend_ops *ops;
	enum nvtcp_backend_type type;
	uint64_t size;
	uint32_t block_size;
	bool readonly;
	bool volatile_cache;
	/* nvtcp_backend_get_stats: durability work done, by any channel's thread */
	atomic_ullong st_dsync_writes; /* writes stored with RWF_DSYNC (FUA) */
	atomic_ullong st_syncs;	       /* fdatasyncs completed (Flush, FUA after zeroing) */
	/* Error injection (tests). Channels on several threads may race on count: atomics. */
	atomic_uint inject_count;
	atomic_uint inject_mask;
	atomic_int inject_status;
};

struct nvtcp_backend_channel {
	struct nvtcp_backend *be;
	int fd;		   /* completion eventfd, or -1 when completions are inline */
	unsigned inflight; /* accepted and not yet completed; only the owning thread touches it */
	bool closing;	   /* channel_close started: new submits get -ESHUTDOWN */
};

/* Run bio's done callback and drop it from ch's in-flight count. Channel thread only. */
static inline void backend_bio_complete(struct nvtcp_backend_channel *ch, struct nvtcp_bio *bio,
					int status)
{
	ch->inflight--;
	bio->done(bio, status);
}

/* Fill dst's first len bytes with zeroes (reads of unwritten or null space). */
void backend_iov_zero(const struct iovec *iov, int iovcnt, uint64_t len);
/* Copy len bytes between a flat buffer and an iovec array. cold: nobody reads dst soon (a
 * memory namespace), so it is written with non-temporal stores (common/copy.h). */
void backend_iov_to_buf(void *dst, const struct iovec *iov, int iovcnt, uint64_t len, bool cold);
void backend_buf_to_iov(const struct iovec *iov, int iovcnt, const void *src, uint64_t len);

/* Fill the base fields every type shares (ops by conf->type, type, readonly, injection off). */
void backend_base_init(struct nvtcp_backend *be, const struct nvtcp_backend_conf *conf);

extern const struct backend_ops backend_memory_ops;
extern const struct backend_ops backend_null_ops;
extern const struct backend_ops backend_file_ops;
extern const struct backend_ops backend_block_ops;

/* Shared io_uring engine (uring.c) for file and block backends. */
enum uring_open_flags {
	URING_OPEN_DIRECT = 1u << 0,   /* O_DIRECT, alignment checks and bounce buffers */
	URING_OPEN_ANY_FILE = 1u << 1, /* tests: accept a character device such as /dev/full */
};

/* Open path as a file-like backend of type conf->type with io_uring channels. Exposed so tests
 * can run the block device's O_DIRECT path on a regular file, and ENOSPC through /dev/full. */
int uring_backend_open(const struct nvtcp_backend_conf *conf, unsigned flags,
		       struct nvtcp_backend **out, char *err, size_t errlen);

/* The engine's ops, shared by file.c and block.c's tables. */
void uring_backend_close(struct nvtcp_backend *be);
int uring_channel_open(struct nvtcp_backend *be, struct nvtcp_backend_channel **out);
void uring_channel_close(struct nvtcp_backend_channel *ch);
int uring_submit(struct nvtcp_backend_channel *ch, struct nvtcp_bio *bio);
int uring_channel_poll(struct nvtcp_backend_channel *ch);
void uring_channel_drain(struct nvtcp_backend_channel *ch);
/* A regular file's allocated blocks (file backend's usage op). */
int uring_backend_usage(struct nvtcp_backend *be, uint64_t *bytes);

/* Whether block device major:minor has a volatile write cache (sysfs queue/write_cache;
 * true when unknown). */
bool uring_blockdev_cache_volatile(unsigned major, unsigned minor);

/* Channel depth: bios beyond it wait in a FIFO inside the channel (no -EBUSY). */
#define URING_DEPTH 256

#endif
