/* nvtcp storage backends: one ops table for memory, file, block device and null namespaces.
 * Public API. A backend is opened once per namespace; each event-loop thread opens its own
 * channel on it (no locks on the I/O path) and submits struct nvtcp_bio requests there.
 * Completion: bio->done runs on the submitting thread, either inline from submit (memory,
 * null) or later from nvtcp_backend_channel_poll() when the channel's fd becomes readable
 * (file, block device: io_uring with an eventfd). */
#ifndef NVTCP_BACKEND_H
#define NVTCP_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum nvtcp_bio_op {
	NVTCP_BIO_READ,
	NVTCP_BIO_WRITE,
	NVTCP_BIO_FLUSH,	/* make completed writes durable */
	NVTCP_BIO_WRITE_ZEROES, /* offset/length, no data */
	NVTCP_BIO_DISCARD,	/* deallocate offset/length; reads after return zeroes */
	NVTCP_BIO_OP_COUNT
};

struct nvtcp_bio;
/* status: 0, or a negative errno (-EIO, -ENOSPC, -EROFS, ...). */
typedef void (*nvtcp_bio_done_fn)(struct nvtcp_bio *bio, int status);

/* One backend request. Owned by the caller; the backend borrows it (and the memory its iovecs
 * point to) from submit until done is called. */
struct nvtcp_bio {
	enum nvtcp_bio_op op;
	uint64_t offset;	 /* bytes, multiple of the block size */
	uint64_t length;	 /* bytes */
	const struct iovec *iov; /* READ/WRITE data, covering length bytes */
	int iovcnt;
	bool fua; /* WRITE, WRITE_ZEROES, DISCARD: durable when done is called */
	nvtcp_bio_done_fn done;
	void *priv; /* caller's */
	/* READ only, optional zero-copy: with lend set (and lent NULL), a backend that keeps the
	 * namespace in process memory (memory) may skip the copy into iov and point lent at its
	 * own bytes for [offset, offset + length) before done runs; other backends copy into iov
	 * and leave lent NULL, so iov must still be valid. Lent bytes stay owned by the backend,
	 * readable until nvtcp_backend_close, and change under later writes or discards of the
	 * range (a reader sees whatever is there when it copies them out). */
	bool lend;
	const void *lent;
	/* WRITE only: the data is already in place, written by the caller straight into the
	 * memory nvtcp_backend_write_place() returned for exactly [offset, offset + length); the
	 * backend copies nothing and only completes the bio (iov must still cover length, e.g. a
	 * single iovec pointing at that memory). */
	bool in_place;
	/* private to the backend: links bios waiting for a free slot when more than the channel's
	 * depth (256 for file/block) are in flight; no need to initialise */
	struct nvtcp_bio *next_queued;
};

enum nvtcp_backend_type {
	NVTCP_BACKEND_MEMORY,
	NVTCP_BACKEND_FILE,
	NVTCP_BACKEND_BLOCK,
	NVTCP_BACKEND_NULL,
	NVTCP_BACKEND_TYPE_COUNT
};

struct nvtcp_backend_conf {
	enum nvtcp_backend_type type;
	const char *path;    /* file or block device; NULL for memory/null */
	uint64_t size;	     /* bytes: memory/null size; file: created/extended to this if > 0 */
	uint32_t block_size; /* 512 or 4096; 0 = default (512, or the device's logical size) */
	bool readonly;
};

struct nvtcp_backend;
struct nvtcp_backend_channel;

/* Open a backend. Returns 0 and *out, or -errno with a message in err (size errlen).
 * Not thread-safe; call at configuration time. */
int nvtcp_backend_open(const struct nvtcp_backend_conf *conf, struct nvtcp_backend **out, char *err,
		       size_t errlen);
/* Close after every channel is closed; flushes file-backed data. */
void nvtcp_backend_close(struct nvtcp_backend *be);

uint64_t nvtcp_backend_size(const struct nvtcp_backend *be);	   /* bytes */
uint32_t nvtcp_backend_block_size(const struct nvtcp_backend *be); /* bytes */
bool nvtcp_backend_has_volatile_cache(const struct nvtcp_backend *be);
bool nvtcp_backend_is_readonly(const struct nvtcp_backend *be);
enum nvtcp_backend_type nvtcp_backend_type(const struct nvtcp_backend *be);
/* Space the namespace's data occupies now, in bytes (*bytes), for thin provisioning: a memory
 * backend's pages of its own (never-written space, and space read but never written, take none;
 * at the kernel's page granularity, so up to 2 MiB per written spot with huge pages), a file's
 * allocated blocks. Returns 0, or -EOPNOTSUPP where the backend cannot tell (block, null): then
 * the whole size is in use as far as anyone knows. Costs a walk of the page tables (memory:
 * about 1 ms per GiB): for Identify, not for the I/O path. Any thread. */
int nvtcp_backend_usage(struct nvtcp_backend *be, uint64_t *bytes);
/* Durability work a backend has done since it was opened: writes it stored durably on
 * completion (FUA, RWF_DSYNC) and data syncs it completed (Flush; FUA on zeroing). A memory or
 * null namespace has nothing to make durable: both stay 0. Any thread. */
struct nvtcp_backend_stats {
	uint64_t dsync_writes;
	uint64_t syncs;
};
void nvtcp_backend_get_stats(struct nvtcp_backend *be, struct nvtcp_backend_stats *st);
/* Parse "memory", "file", "block" (or "bdev"), "null". Returns -EINVAL if unknown. */
int nvtcp_backend_type_parse(const char *name, enum nvtcp_backend_type *out);
const char *nvtcp_backend_type_name(enum nvtcp_backend_type type);

/* Zero-copy writes: for a backend that keeps the namespace in process memory (memory), the
 * address where the bytes of [offset, offset + length) live, so that a caller can receive a
 * Write's data straight into place and then submit the WRITE with in_place set; NULL for other
 * backends, a read-only backend, or a range that is out of bounds or not block-aligned.
 * Ownership: the memory stays the backend's (valid until nvtcp_backend_close). Bytes stored
 * there are the namespace's contents at once, visible to reads before the WRITE completes, and
 * a transfer that stops half way leaves the range partly written: only for callers that cannot
 * hand over bytes they have not verified (e.g. a connection without a data digest), and for
 * which a Write that does not complete successfully may leave its range with old and new data,
 * as NVMe allows for a command that failed or was aborted. Any thread. */
void *nvtcp_backend_write_place(struct nvtcp_backend *be, uint64_t offset, uint64_t length);

/* Data digests of lent bytes: continue a running CRC32C (not finalised: start from 0xFFFFFFFF,
 * XOR the result with 0xFFFFFFFF) over len bytes at p, which lie in bytes this backend lent
 * (bio.lent) or anywhere else. A memory backend keeps the CRC of every aligned 4 KiB of the
 * namespace it has been asked for, until a write, zeroing or discard touches it, and combines
 * those instead of reading the bytes again: a digest read of unchanged data then costs no pass
 * over it. Other backends, and bytes outside the namespace, are simply CRC'd. Threads: the
 * cache takes no lock; use it only while one thread submits every bio of this backend (and
 * calls this), or not at all. */
uint32_t nvtcp_backend_crc_update(struct nvtcp_backend *be, uint32_t crc, const void *p,
				  size_t len);

/* Per-thread channel. Returns 0 or -errno. */
int nvtcp_backend_channel_open(struct nvtcp_backend *be, struct nvtcp_backend_channel **out);
/* Waits for the channel's in-flight bios to complete (their done callbacks run), then frees it. */
void nvtcp_backend_channel_close(struct nvtcp_backend_channel *ch);

/* Submit a bio. Returns 0 if accepted (done will be called exactly once, possibly before
 * submit returns), or -errno if rejected outright (done is NOT called): -ERANGE for an
 * out-of-range offset/length, -EINVAL for a bad op, misaligned offset/length or iovecs
 * covering less than length, -EROFS for WRITE/WRITE_ZEROES/DISCARD on a read-only backend,
 * -ESHUTDOWN once channel_close has started. FLUSH ignores offset/length. Never -EBUSY: bios
 * beyond the channel's depth wait inside the channel (linked through bio->next_queued).
 * Channel's thread only; done runs on that thread. Overlapping bios in flight at once
 * (on one or several channels) complete in no defined order, as in NVMe. */
int nvtcp_backend_submit(struct nvtcp_backend_channel *ch, struct nvtcp_bio *bio);
/* fd that becomes readable when completions are waiting, or -1 if completions are always
 * inline. The event loop polls it for reading. */
int nvtcp_backend_channel_fd(const struct nvtcp_backend_channel *ch);
/* Reap waiting completions (runs their done callbacks). Returns how many, or -errno. */
int nvtcp_backend_channel_poll(struct nvtcp_backend_channel *ch);
/* Bios submitted and not yet completed. */
unsigned nvtcp_backend_channel_inflight(const struct nvtcp_backend_channel *ch);

/* For tests: make the next `count` bios of these ops (bit mask of 1 << op) fail with `status`
 * (a negative errno; anything else means -EIO) on this backend. Bios rejected by submit's
 * checks do not use up a count; injected failures complete inline. Thread-safe. */
void nvtcp_backend_inject_error(struct nvtcp_backend *be, unsigned op_mask, unsigned count,
				int status);

#ifdef __cplusplus
}
#endif
#endif
