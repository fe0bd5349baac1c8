/* io_uring engine shared by the file and block device backends: opening and sizing the file,
 * and per-thread channels, each with its own ring and an eventfd the event loop polls.
 * Every bio runs as a small state machine in a preallocated slot (no allocation per bio):
 * READ/WRITE resubmit the rest after a short transfer, WRITE_ZEROES and DISCARD use fallocate
 * and fall back to writing zeroes, FUA writes carry RWF_DSYNC. Layer: backend. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backend_impl.h"
#include "../common/log.h"

#define URING_ZERO_BUF (64 * 1024) /* zeroes written per sqe when fallocate is unsupported */

struct uring_backend {
	struct nvtcp_backend base;
	int fd;
	bool direct; /* O_DIRECT: buffers need mem_align, lengths len_align */
	uint32_t mem_align;
	uint32_t len_align;
	/* Learned once a fallocate mode fails with EOPNOTSUPP; racing channels only repeat one
	 * failed attempt each. */
	atomic_bool no_punch_hole;
	atomic_bool no_zero_range;
	char path[256]; /* for log lines */
};

/* Where a slot's bio is; one sqe is in flight per slot at a time. */
enum uring_stage {
	URING_STAGE_RW,		/* readv/writev of the bio's data (or its bounce buffer) */
	URING_STAGE_PUNCH,	/* DISCARD: fallocate(PUNCH_HOLE) */
	URING_STAGE_ZERO_RANGE, /* WRITE_ZEROES, or DISCARD without hole punching */
	URING_STAGE_ZERO_WRITE, /* writing zeroes from the channel's zero buffer */
	URING_STAGE_FSYNC,	/* FLUSH, or FUA after WRITE_ZEROES/DISCARD */
	URING_STAGE_COUNT
};

struct uring_slot {
	struct nvtcp_bio *bio; /* NULL when free */
	enum uring_stage stage;
	uint64_t done;	   /* bytes of the bio transferred or zeroed so far */
	bool bounced;	   /* O_DIRECT with unaligned iovecs: data goes through bounce */
	struct iovec part; /* the one iovec of a partial segment, bounce or zero chunk */
	void *bounce;	   /* kept and reused by the slot; grows, never shrinks */
	size_t bounce_cap;
	unsigned next_free;
};

struct uring_channel {
	struct nvtcp_backend_channel base;
	struct io_uring ring;
	void *zeroes;	    /* URING_ZERO_BUF bytes, page aligned, never written */
	unsigned free_head; /* slot index, or URING_DEPTH when none is free */
	struct nvtcp_bio *wait_head, *wait_tail; /* FIFO of bios waiting for a slot */
	struct uring_slot slots[URING_DEPTH];
};

static inline struct uring_backend *uring_be(struct nvtcp_backend *be)
{
	return container_of(be, struct uring_backend, base);
}

static inline struct uring_channel *uring_ch(struct nvtcp_backend_channel *ch)
{
	return container_of(ch, struct uring_channel, base);
}

/* ---- opening ------------------------------------------------------------------------------ */

static void uring_dio_align(struct uring_backend *ub, uint32_t logical)
{
	struct statx stx;

	ub->mem_align = logical ? logical : 4096;
	ub->len_align = ub->mem_align;
	if (statx(ub->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		ub->mem_align = stx.stx_dio_mem_align;
		ub->len_align = stx.stx_dio_offset_align;
	}
}

/* Whether the block device rdev has a volatile write cache: the kernel's queue/write_cache
 * says "write back" (a cache that a flush must empty) or "write through" (none). A partition
 * has no queue directory of its own; its disk's is one level up. Unknown: volatile, the side
 * on which FUA and Flush are never skipped. */
bool uring_blockdev_cache_volatile(unsigned major, unsigned minor)
{
	static const char *const fmt[] = {"/sys/dev/block/%u:%u/queue/write_cache",
					  "/sys/dev/block/%u:%u/../queue/write_cache"};
	char path[96], text[32];

	for (size_t i = 0; i < ARRAY_SIZE(fmt); i++) {
		FILE *f;
		bool ok;

		snprintf(path, sizeof(path), fmt[i], major, minor);
		f = fopen(path, "re");
		if (!f)
			continue;
		ok = fgets(text, sizeof(text), f) != NULL;
		fclose(f);
		if (ok)
			return strncmp(text, "write through", 13) != 0;
	}
	return true;
}

/* Work out size and block size from the open fd. */
static int uring_size_up(struct uring_backend *ub, const struct nvtcp_backend_conf *conf,
			 unsigned flags, char *err, size_t errlen)
{
	uint32_t logical = 0, bs;
	uint64_t have = 0, size;
	struct stat st;

	if (fstat(ub->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		int ssz = 0;

		if (conf->type != NVTCP_BACKEND_BLOCK) {
			errbuf_set(err, errlen, "%s is a block device: use type \"block\"",
				   conf->path);
			return -EINVAL;
		}
		if (ioctl(ub->fd, BLKGETSIZE64, &have) < 0 || ioctl(ub->fd, BLKSSZGET, &ssz) < 0) {
			int ret = -errno;

			errbuf_set(err, errlen, "%s: cannot read device size: %s", conf->path,
				   strerror(-ret));
			return ret;
		}
		logical = (uint32_t)ssz;
		ub->base.volatile_cache =
			uring_blockdev_cache_volatile(major(st.st_rdev), minor(st.st_rdev));
	} else if (S_ISREG(st.st_mode)) {
		if (conf->type == NVTCP_BACKEND_BLOCK && !(flags & URING_OPEN_ANY_FILE)) {
			errbuf_set(err, errlen, "%s is not a block device: use type \"file\"",
				   conf->path);
			return -EINVAL;
		}
		have = (uint64_t)st.st_size;
	} else if (!(flags & URING_OPEN_ANY_FILE) || !conf->size) {
		errbuf_set(err, errlen, "%s is neither a regular file nor a block device",
			   conf->path);
		return -EINVAL;
	}

	if (ub->direct)
		uring_dio_align(ub, logical);
	bs = conf->block_size ? conf->block_size : MAX(512u, ub->direct ? ub->len_align : logical);
	if (bs < logical || (ub->direct && bs % ub->len_align)) {
		errbuf_set(err, errlen, "%s: block size %u is below the device's %u", conf->path,
			   bs, ub->direct ? ub->len_align : logical);
		return -EINVAL;
	}

	size = conf->size ? conf->size : have;
	if (size > have && S_ISBLK(st.st_mode)) {
		errbuf_set(err, errlen, "%s: size %llu exceeds the device's %llu", conf->path,
			   (unsigned long long)size, (unsigned long long)have);
		return -EINVAL;
	}
	if (size > have && S_ISREG(st.st_mode)) {
		if (conf->readonly) {
			errbuf_set(err, errlen,
				   "%s: read-only file is %llu bytes, below size "
				   "%llu",
				   conf->path, (unsigned long long)have, (unsigned long long)size);
			return -EINVAL;
		}
		/* Sparse extension: costs nothing until written. */
		if (ftruncate(ub->fd, (off_t)size) < 0) {
			int ret = -errno;

			errbuf_set(err, errlen, "%s: extend to %llu bytes: %s", conf->path,
				   (unsigned long long)size, strerror(-ret));
			return ret;
		}
	}
	/* A tail smaller than a block cannot be addressed. */
	size -= size % bs;
	if (!size) {
		errbuf_set(err, errlen, "%s: empty; give a size to create it", conf->path);
		return -EINVAL;
	}
	ub->base.size = size;
	ub->base.block_size = bs;
	return 0;
}

int uring_backend_usage(struct nvtcp_backend *be, uint64_t *bytes)
{
	struct uring_backend *ub = container_of(be, struct uring_backend, base);
	struct stat st;

	if (fstat(ub->fd, &st) < 0)
		return -errno;
	*bytes = (uint64_t)st.st_blocks * 512; /* st_blocks counts 512-byte units, always */
	return 0;
}

int uring_backend_open(const struct nvtcp_backend_conf *conf, unsigned flags,
		       struct nvtcp_backend **out, char *err, size_t errlen)
{
	struct uring_backend *ub;
	int oflags, ret;

	if (!conf->path || !conf->path[0]) {
		errbuf_set(err, errlen, "%s backend needs a path",
			   nvtcp_backend_type_name(conf->type));
		return -EINVAL;
	}
	ub = calloc(1, sizeof(*ub));
	if (!ub)
		return -ENOMEM;
	ub->direct = flags & URING_OPEN_DIRECT;
	ub->base.volatile_cache = true; /* a file's page cache; a block device's: see size_up */
	snprintf(ub->path, sizeof(ub->path), "%s", conf->path);
	oflags = O_CLOEXEC | (conf->readonly ? O_RDONLY : O_RDWR);
	if (conf->type == NVTCP_BACKEND_FILE && !conf->readonly)
		oflags |= O_CREAT;
	if (ub->direct)
		oflags |= O_DIRECT;
	ub->fd = open(conf->path, oflags, 0644);
	if (ub->fd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "%s: open: %s", conf->path, strerror(-ret));
		goto err_free;
	}
	ret = uring_size_up(ub, conf, flags, err, errlen);
	if (ret < 0) {
		if (err && !err[0])
			errbuf_set(err, errlen, "%s: %s", conf->path, strerror(-ret));
		goto err_close;
	}
	atomic_init(&ub->no_punch_hole, false);
	atomic_init(&ub->no_zero_range, false);
	backend_base_init(&ub->base, conf);
	*out = &ub->base;
	return 0;

err_close:
	close(ub->fd);
err_free:
	free(ub);
	return ret;
}

void uring_backend_close(struct nvtcp_backend *be)
{
	struct uring_backend *ub = uring_be(be);

	/* EINVAL: a special file (tests' /dev/full) that has nothing to sync. */
	if (!be->readonly && fdatasync(ub->fd) < 0 && errno != EINVAL)
		log_warn("backend %s: fdatasync at close: %s", ub->path, strerror(errno));
	close(ub->fd);
	free(ub);
}

/* ---- channels ----------------------------------------------------------------------------- */

int uring_channel_open(struct nvtcp_backend *be, struct nvtcp_backend_channel **out)
{
	struct uring_channel *uc;
	int ret;

	uc = calloc(1, sizeof(*uc));
	if (!uc)
		return -ENOMEM;
	ret = posix_memalign(&uc->zeroes, 4096, URING_ZERO_BUF);
	if (ret) {
		ret = -ret;
		goto err_free;
	}
	memset(uc->zeroes, 0, URING_ZERO_BUF);
	/* One sqe per slot at most, so the SQ never fills; the CQ is twice that by default. */
	ret = io_uring_queue_init(URING_DEPTH, &uc->ring, 0);
	if (ret < 0)
		goto err_zeroes;
	uc->base.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (uc->base.fd < 0) {
		ret = -errno;
		goto err_ring;
	}
	ret = io_uring_register_eventfd(&uc->ring, uc->base.fd);
	if (ret < 0)
		goto err_eventfd;
	for (unsigned i = 0; i < URING_DEPTH; i++)
		uc->slots[i].next_free = i + 1;
	uc->free_head = 0;
	*out = &uc->base;
	return 0;

err_eventfd:
	close(uc->base.fd);
err_ring:
	io_uring_queue_exit(&uc->ring);
err_zeroes:
	free(uc->zeroes);
err_free:
	free(uc);
	return ret;
}

void uring_channel_close(struct nvtcp_backend_channel *ch)
{
	struct uring_channel *uc = uring_ch(ch);

	io_uring_unregister_eventfd(&uc->ring);
	io_uring_queue_exit(&uc->ring);
	close(ch->fd);
	for (unsigned i = 0; i < URING_DEPTH; i++)
		free(uc->slots[i].bounce);
	free(uc->zeroes);
	free(uc);
}

/* ---- the per-bio state machine ------------------------------------------------------------ */

/* Push prepared sqes to the kernel. A failure leaves them in the SQ for the next call. */
static void uring_flush(struct uring_channel *uc)
{
	int ret;

	for (int tries = 0; tries < 3; tries++) {
		ret = io_uring_submit(&uc->ring);
		if (ret >= 0 || (ret != -EINTR && ret != -EAGAIN))
			break;
	}
	if (ret < 0)
		log_warn("backend %s: io_uring_submit: %s", uring_be(uc->base.be)->path,
			 strerror(-ret));
}

static struct io_uring_sqe *uring_sqe(struct uring_channel *uc, struct uring_slot *slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&uc->ring);

	/* Cannot happen: the SQ has a place per slot. Flush and retry to be sure. */
	if (unlikely(!sqe)) {
		uring_flush(uc);
		sqe = io_uring_get_sqe(&uc->ring);
	}
	if (sqe)
		io_uring_sqe_set_data(sqe, slot);
	return sqe;
}

/* The iovecs still to transfer after slot->done bytes: a run of whole segments of bio->iov when
 * possible (no copy), else one partial segment in slot->part. */
static void uring_rw_vec(struct uring_slot *slot, const struct iovec **vec, unsigned *cnt)
{
	const struct nvtcp_bio *bio = slot->bio;
	const struct iovec *iov = bio->iov;
	uint64_t remaining = bio->length - slot->done, pos = 0, acc = 0;
	size_t off;
	int i = 0, j;

	if (slot->bounced) {
		slot->part.iov_base = (char *)slot->bounce + slot->done;
		slot->part.iov_len = remaining;
		goto single;
	}
	while (pos + iov[i].iov_len <= slot->done) /* skips empty segments too */
		pos += iov[i++].iov_len;
	off = slot->done - pos;
	if (off) {
		slot->part.iov_base = (char *)iov[i].iov_base + off;
		slot->part.iov_len = MIN(iov[i].iov_len - off, remaining);
		goto single;
	}
	for (j = i; j < bio->iovcnt && j - i < IOV_MAX && acc + iov[j].iov_len <= remaining; j++)
		acc += iov[j].iov_len;
	if (j > i) {
		*vec = iov + i;
		*cnt = (unsigned)(j - i);
		return;
	}
	/* The last segment is longer than what is left of the bio. */
	slot->part.iov_base = iov[i].iov_base;
	slot->part.iov_len = remaining;
single:
	*vec = &slot->part;
	*cnt = 1;
}

/* Queue the slot's next sqe for its current stage. Returns 0 or -errno. */
static int uring_slot_prep(struct uring_channel *uc, struct uring_slot *slot)
{
	struct uring_backend *ub = uring_be(uc->base.be);
	struct nvtcp_bio *bio = slot->bio;
	uint64_t off = bio->offset + slot->done, left = bio->length - slot->done;
	struct io_uring_sqe *sqe = uring_sqe(uc, slot);
	const struct iovec *vec;
	unsigned cnt;

	if (!sqe)
		return -EAGAIN;
	switch (slot->stage) {
	case URING_STAGE_RW:
		uring_rw_vec(slot, &vec, &cnt);
		if (bio->op == NVTCP_BIO_READ) {
			io_uring_prep_readv(sqe, ub->fd, vec, cnt, off);
		} else {
			io_uring_prep_writev(sqe, ub->fd, vec, cnt, off);
			/* FUA: durable on completion without a second sqe. */
			if (bio->fua)
				sqe->rw_flags = RWF_DSYNC;
		}
		break;
	case URING_STAGE_PUNCH:
		io_uring_prep_fallocate(sqe, ub->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					off, left);
		break;
	case URING_STAGE_ZERO_RANGE:
		io_uring_prep_fallocate(sqe, ub->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					off, left);
		break;
	case URING_STAGE_ZERO_WRITE:
		slot->part.iov_base = uc->zeroes;
		slot->part.iov_len = MIN(left, URING_ZERO_BUF);
		io_uring_prep_writev(sqe, ub->fd, &slot->part, 1, off);
		break;
	case URING_STAGE_FSYNC:
	default:
		io_uring_prep_fsync(sqe, ub->fd, IORING_FSYNC_DATASYNC);
		break;
	}
	return 0;
}

static bool uring_iov_is_aligned(const struct uring_backend *ub, const struct nvtcp_bio *bio)
{
	uint64_t left = bio->length;

	for (int i = 0; i < bio->iovcnt && left; i++) {
		size_t n = MIN(bio->iov[i].iov_len, left);

		if (((uintptr_t)bio->iov[i].iov_base % ub->mem_align) || n % ub->len_align)
			return false;
		left -= n;
	}
	return true;
}

/* O_DIRECT refuses unaligned user memory: stage the data in the slot's bounce buffer, which
 * only grows, so a channel stops allocating once it has seen its largest unaligned bio. */
static int uring_slot_bounce(struct uring_slot *slot)
{
	struct nvtcp_bio *bio = slot->bio;

	if (slot->bounce_cap < bio->length) {
		size_t cap = ALIGN_UP(bio->length, 4096);
		void *p;

		if (posix_memalign(&p, 4096, cap))
			return -ENOMEM;
		free(slot->bounce);
		slot->bounce = p;
		slot->bounce_cap = cap;
	}
	if (bio->op == NVTCP_BIO_WRITE)
		backend_iov_to_buf(slot->bounce, bio->iov, bio->iovcnt, bio->length, false);
	slot->bounced = true;
	return 0;
}

static enum uring_stage uring_zero_stage(struct uring_backend *ub, enum nvtcp_bio_op op)
{
	if (op == NVTCP_BIO_DISCARD && !atomic_load(&ub->no_punch_hole))
		return URING_STAGE_PUNCH;
	if (!atomic_load(&ub->no_zero_range))
		return URING_STAGE_ZERO_RANGE;
	return URING_STAGE_ZERO_WRITE;
}

/* Start bio in a free slot: pick its first stage and prepare the sqe. */
static int uring_slot_start(struct uring_channel *uc, struct uring_slot *slot,
			    struct nvtcp_bio *bio)
{
	struct uring_backend *ub = uring_be(uc->base.be);
	int ret;

	slot->bio = bio;
	slot->done = 0;
	slot->bounced = false;
	switch (bio->op) {
	case NVTCP_BIO_READ:
	case NVTCP_BIO_WRITE:
		slot->stage = URING_STAGE_RW;
		if (ub->direct && !uring_iov_is_aligned(ub, bio)) {
			ret = uring_slot_bounce(slot);
			if (ret < 0)
				return ret;
		}
		break;
	case NVTCP_BIO_WRITE_ZEROES:
	case NVTCP_BIO_DISCARD:
		slot->stage = uring_zero_stage(ub, bio->op);
		break;
	case NVTCP_BIO_FLUSH:
	default:
		slot->stage = URING_STAGE_FSYNC;
		break;
	}
	/* Nothing to transfer: complete through the ring anyway, keeping one completion path. */
	if (!bio->length && slot->stage != URING_STAGE_FSYNC) {
		struct io_uring_sqe *sqe = uring_sqe(uc, slot);

		if (!sqe)
			return -EAGAIN;
		io_uring_prep_nop(sqe);
		return 0;
	}
	return uring_slot_prep(uc, slot);
}

static struct uring_slot *uring_slot_get(struct uring_channel *uc)
{
	struct uring_slot *slot;

	if (uc->free_head == URING_DEPTH)
		return NULL;
	slot = &uc->slots[uc->free_head];
	uc->free_head = slot->next_free;
	return slot;
}

static void uring_slot_put(struct uring_channel *uc, struct uring_slot *slot)
{
	slot->bio = NULL;
	slot->next_free = uc->free_head;
	uc->free_head = (unsigned)(slot - uc->slots);
}

int uring_submit(struct nvtcp_backend_channel *ch, struct nvtcp_bio *bio)
{
	struct uring_channel *uc = uring_ch(ch);
	struct uring_slot *slot;
	int ret;

	bio->next_queued = NULL;
	/* Keep FIFO order: nobody overtakes bios already waiting. */
	slot = uc->wait_head ? NULL : uring_slot_get(uc);
	if (!slot) {
		if (uc->wait_tail)
			uc->wait_tail->next_queued = bio;
		else
			uc->wait_head = bio;
		uc->wait_tail = bio;
		return 0;
	}
	ret = uring_slot_start(uc, slot, bio);
	if (ret < 0) {
		uring_slot_put(uc, slot);
		return ret;
	}
	uring_flush(uc);
	return 0;
}

/* A slot freed up: start waiting bios; one that cannot start completes with its error. */
static void uring_start_waiting(struct uring_channel *uc, struct uring_slot *slot)
{
	while (uc->wait_head) {
		struct nvtcp_bio *bio = uc->wait_head;
		int ret;

		uc->wait_head = bio->next_queued;
		if (!uc->wait_head)
			uc->wait_tail = NULL;
		ret = uring_slot_start(uc, slot, bio);
		if (ret == 0)
			return;
		uring_slot_put(uc, slot);
		backend_bio_complete(&uc->base, bio, ret);
		slot = uring_slot_get(uc);
		if (!slot)
			return;
	}
	uring_slot_put(uc, slot);
}

/* Finish the slot's bio: free the slot (starting a waiting bio in it), then run done, which
 * may submit again. */
static void uring_slot_finish(struct uring_channel *uc, struct uring_slot *slot, int status)
{
	struct nvtcp_bio *bio = slot->bio;

	if (status == 0 && slot->bounced && bio->op == NVTCP_BIO_READ)
		backend_buf_to_iov(bio->iov, bio->iovcnt, slot->bounce, bio->length);
	slot->bio = NULL;
	uring_start_waiting(uc, slot);
	backend_bio_complete(&uc->base, bio, status);
}

/* Bytes past the end of the file read as zeroes, as a sparse namespace would. */
static void uring_zero_tail(struct uring_slot *slot)
{
	struct nvtcp_bio *bio = slot->bio;
	uint64_t skip = slot->done, left = bio->length - slot->done;

	if (slot->bounced) {
		memset((char *)slot->bounce + skip, 0, left);
		return;
	}
	for (int i = 0; i < bio->iovcnt && left; i++) {
		size_t len = bio->iov[i].iov_len, n;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		n = MIN(len - skip, left);
		memset((char *)bio->iov[i].iov_base + skip, 0, n);
		left -= n;
		skip = 0;
	}
}

/* Advance the slot after one cqe. Returns true when the bio is finished (status set). */
static bool uring_slot_advance(struct uring_channel *uc, struct uring_slot *slot, int res,
			       int *status)
{
	struct uring_backend *ub = uring_be(uc->base.be);
	struct nvtcp_bio *bio = slot->bio;

	if (res == -EINTR || res == -EAGAIN)
		goto again;
	if (!bio->length && slot->stage != URING_STAGE_FSYNC) {
		*status = 0;
		return true;
	}
	switch (slot->stage) {
	case URING_STAGE_RW:
	case URING_STAGE_ZERO_WRITE:
		if (res < 0) {
			*status = res;
			return true;
		}
		if (res == 0) {
			if (slot->stage == URING_STAGE_RW && bio->op == NVTCP_BIO_READ) {
				uring_zero_tail(slot);
				*status = 0;
			} else {
				*status = -EIO; /* a write that moves nothing would loop forever */
			}
			return true;
		}
		slot->done += (unsigned)res;
		if (slot->done < bio->length)
			goto again;
		if (slot->stage == URING_STAGE_RW && bio->op == NVTCP_BIO_WRITE && bio->fua)
			atomic_fetch_add_explicit(&ub->base.st_dsync_writes, 1,
						  memory_order_relaxed);
		break;
	case URING_STAGE_PUNCH:
		if (res == -EOPNOTSUPP) {
			if (!atomic_exchange(&ub->no_punch_hole, true))
				log_debug("backend %s: no hole punching, zeroing instead",
					  ub->path);
			slot->stage = uring_zero_stage(ub, bio->op);
			goto again;
		}
		if (res < 0) {
			*status = res;
			return true;
		}
		slot->done = bio->length;
		break;
	case URING_STAGE_ZERO_RANGE:
		if (res == -EOPNOTSUPP) {
			if (!atomic_exchange(&ub->no_zero_range, true))
				log_debug("backend %s: no FALLOC_FL_ZERO_RANGE, writing zeroes",
					  ub->path);
			slot->stage = URING_STAGE_ZERO_WRITE;
			goto again;
		}
		if (res < 0) {
			*status = res;
			return true;
		}
		slot->done = bio->length;
		break;
	case URING_STAGE_FSYNC:
	default:
		if (res >= 0)
			atomic_fetch_add_explicit(&ub->base.st_syncs, 1, memory_order_relaxed);
		*status = res < 0 ? res : 0;
		return true;
	}
	/* Data stage complete. FUA on zeroing ops needs an explicit sync; writes used DSYNC. */
	if (bio->fua && bio->op != NVTCP_BIO_WRITE && bio->op != NVTCP_BIO_READ) {
		slot->stage = URING_STAGE_FSYNC;
		goto again;
	}
	*status = 0;
	return true;

again:
	*status = uring_slot_prep(uc, slot);
	return *status < 0;
}

/* Reap what the CQ holds. Returns the number of bios completed. */
static int uring_reap(struct uring_channel *uc)
{
	struct io_uring_cqe *cqe;
	int completed = 0;

	while (io_uring_peek_cqe(&uc->ring, &cqe) == 0) {
		struct uring_slot *slot = io_uring_cqe_get_data(cqe);
		int res = cqe->res, status;

		/* Release the cqe first: done callbacks may submit and reap re-entrantly. */
		io_uring_cqe_seen(&uc->ring, cqe);
		if (uring_slot_advance(uc, slot, res, &status)) {
			uring_slot_finish(uc, slot, status);
			completed++;
		}
	}
	uring_flush(uc);
	return completed;
}

int uring_channel_poll(struct nvtcp_backend_channel *ch)
{
	struct uring_channel *uc = uring_ch(ch);
	uint64_t count;

	/* Clear before reaping: a cqe posted after this read signals the fd again. */
	if (read(ch->fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return -errno;
	return uring_reap(uc);
}

void uring_channel_drain(struct nvtcp_backend_channel *ch)
{
	struct uring_channel *uc = uring_ch(ch);
	uint64_t count;

	while (ch->inflight) {
		/* Submits too: sqes left over by a failed flush must not be waited on forever. */
		int ret = io_uring_submit_and_wait(&uc->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN) {
			log_err("backend %s: waiting for %u in-flight bios: %s",
				uring_be(ch->be)->path, ch->inflight, strerror(-ret));
			break;
		}
		uring_reap(uc);
	}
	if (read(ch->fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_debug("backend %s: eventfd read: %s", uring_be(ch->be)->path, strerror(errno));
}
