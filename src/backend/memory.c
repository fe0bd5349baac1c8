/* Memory backend, the default namespace: one anonymous MAP_NORESERVE mapping made at open, so a
 * 1 GiB namespace costs nothing until written and never-written space reads as zeroes.
 * Completes every bio inline. Layer: backend.
 * Threads: each thread uses its own channel and no locks are taken. Bios on different ranges
 * never interfere; overlapping bios in flight at once may interleave their bytes, which NVMe
 * allows (it gives no ordering between concurrent commands). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../proto/crc32c.h"
#include "backend_impl.h"

/* CRC cache for data digests (nvtcp_backend_crc_update): the CRC32C from 0 of each aligned
 * MEM_CRC_CHUNK of the namespace that a digest read has needed since it last changed. Made on
 * first use (1 GiB: 2 MiB, MAP_NORESERVE), never locked: its user promises one thread. */
#define MEM_CRC_CHUNK 4096
#define MEM_CRC_KNOWN (1ull << 32) /* one word per chunk: one cache miss per lookup, not two */

struct mem_crc_cache {
	uint64_t *ent; /* chunk i's CRC in the low half of ent[i] if MEM_CRC_KNOWN is set */
	size_t nchunks;
	struct crc32c_shift shift; /* by MEM_CRC_CHUNK bytes */
};

struct mem_backend {
	struct nvtcp_backend base;
	unsigned char *data;
	size_t page_size;
	struct mem_crc_cache cc; /* cc.ent NULL until the first nvtcp_backend_crc_update */
	bool cc_failed;		 /* could not make one: CRC the bytes */
};

struct mem_channel {
	struct nvtcp_backend_channel base;
};

static int mem_open(const struct nvtcp_backend_conf *conf, struct nvtcp_backend **out, char *err,
		    size_t errlen)
{
	uint32_t bs = conf->block_size ? conf->block_size : 512;
	struct mem_backend *mb;

	if (!conf->size || conf->size % bs || conf->size > SIZE_MAX / 2) {
		errbuf_set(err, errlen,
			   "memory backend: size %llu must be a non-zero multiple "
			   "of the block size %u",
			   (unsigned long long)conf->size, bs);
		return -EINVAL;
	}
	mb = calloc(1, sizeof(*mb));
	if (!mb)
		return -ENOMEM;
	mb->data = mmap(NULL, conf->size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mb->data == MAP_FAILED) {
		int ret = -errno;

		errbuf_set(err, errlen, "memory backend: mmap %llu bytes: %s",
			   (unsigned long long)conf->size, strerror(-ret));
		free(mb);
		return ret;
	}
	/* Huge pages where the kernel allows them (THP "madvise" mode is common): a first read of
	 * never-written space maps the huge zero page and a first write allocates 2 MiB, one page
	 * fault per 2 MiB instead of per 4 KiB (page faults were a third of the target's CPU in a
	 * fresh 128K read benchmark), and fewer TLB misses on random I/O. Best effort. */
	(void)madvise(mb->data, conf->size, MADV_HUGEPAGE);
	mb->page_size = (size_t)sysconf(_SC_PAGESIZE);
	mb->base.size = conf->size;
	mb->base.block_size = bs;
	mb->base.volatile_cache = false;
	*out = &mb->base;
	return 0;
}

static void mem_close(struct nvtcp_backend *be)
{
	struct mem_backend *mb = container_of(be, struct mem_backend, base);

	if (mb->cc.ent)
		munmap(mb->cc.ent, mb->cc.nchunks * sizeof(mb->cc.ent[0]));
	munmap(mb->data, be->size);
	free(mb);
}

static int mem_channel_open(struct nvtcp_backend *be, struct nvtcp_backend_channel **out)
{
	struct mem_channel *mc = calloc(1, sizeof(*mc));

	if (!mc)
		return -ENOMEM;
	mc->base.fd = -1;
	*out = &mc->base;
	return 0;
}

static void mem_channel_close(struct nvtcp_backend_channel *ch)
{
	free(container_of(ch, struct mem_channel, base));
}

/* [off, off + len) is about to change or just changed: forget the CRCs of its chunks. */
static void mem_crc_forget(struct mem_backend *mb, uint64_t off, uint64_t len)
{
	struct mem_crc_cache *cc = &mb->cc;
	size_t first, last;

	if (!cc->ent || len == 0)
		return;
	first = off / MEM_CRC_CHUNK;
	last = (off + len - 1) / MEM_CRC_CHUNK;
	if (first >= cc->nchunks)
		return;
	if (last >= cc->nchunks)
		last = cc->nchunks - 1;
	memset(cc->ent + first, 0, (last - first + 1) * sizeof(cc->ent[0]));
}

static bool mem_crc_cache_make(struct mem_backend *mb)
{
	struct mem_crc_cache *cc = &mb->cc;
	size_t n = mb->base.size / MEM_CRC_CHUNK; /* a partial last chunk is never cached */
	void *ent;

	if (cc->ent || mb->cc_failed)
		return cc->ent != NULL;
	ent = n ? mmap(NULL, n * sizeof(cc->ent[0]), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
		: MAP_FAILED;
	if (ent == MAP_FAILED) {
		mb->cc_failed = true;
		return false;
	}
	crc32c_shift_init(&cc->shift, MEM_CRC_CHUNK);
	cc->nchunks = n;
	cc->ent = ent;
	return true;
}

/* nvtcp_backend_crc_update: whole chunks by their cached CRC (computed once if unknown), the
 * unaligned head and tail by their bytes. */
static uint32_t mem_crc_update(struct nvtcp_backend *be, uint32_t crc, const void *p, size_t len)
{
	struct mem_backend *mb = container_of(be, struct mem_backend, base);
	const unsigned char *b = p;
	struct mem_crc_cache *cc = &mb->cc;
	uint64_t off = (uint64_t)((uintptr_t)b - (uintptr_t)mb->data);
	size_t head;

	/* (off wraps for bytes before the namespace) */
	if (off > be->size || len > be->size - off || !mem_crc_cache_make(mb))
		return crc32c_update(crc, p, len);
	head = (size_t)(-off & (MEM_CRC_CHUNK - 1));
	if (head > len)
		head = len;
	crc = crc32c_update(crc, b, head);
	b += head;
	off += head;
	len -= head;
	for (; len >= MEM_CRC_CHUNK;
	     len -= MEM_CRC_CHUNK, b += MEM_CRC_CHUNK, off += MEM_CRC_CHUNK) {
		size_t i = off / MEM_CRC_CHUNK;

		if (!(cc->ent[i] & MEM_CRC_KNOWN))
			cc->ent[i] = MEM_CRC_KNOWN | crc32c_update(0, b, MEM_CRC_CHUNK);
		crc = crc32c_shift(&cc->shift, crc) ^ (uint32_t)cc->ent[i];
	}
	return crc32c_update(crc, b, len);
}

/* Zero [off, off + len): whole pages go back to the kernel (they read as zeroes and stop
 * costing memory), the unaligned head and tail are cleared by hand. */
static void mem_zero_range(struct mem_backend *mb, uint64_t off, uint64_t len)
{
	uint64_t start = ALIGN_UP(off, mb->page_size);
	uint64_t end = (off + len) / mb->page_size * mb->page_size;

	mem_crc_forget(mb, off, len);
	if (start >= end) {
		memset(mb->data + off, 0, len);
		return;
	}
	memset(mb->data + off, 0, start - off);
	if (madvise(mb->data + start, end - start, MADV_DONTNEED) < 0)
		memset(mb->data + start, 0, end - start);
	memset(mb->data + end, 0, off + len - end);
}

/* A lent Read is copied out by the kernel's send at the end of the loop turn, after the rest of
 * the turn's commands. Touching its first lines now starts the hardware's stream prefetch for
 * every Read of the batch at once, instead of one cold start after another in the send copy:
 * 4K randread QD32 on a 1 GiB namespace, busy-poll, 555-734K -> 721-828K IOPS (A/B, 9 pairs).
 * Only the head: prefetching all of each 4K (64 lines x 32 Reads) cost 30% instead, and 8
 * lines did no better than 4. */
#define MEM_PREFETCH_HEAD 256
static inline void mem_prefetch_head(const void *p, uint64_t len)
{
	for (uint64_t i = 0; i < MEM_PREFETCH_HEAD && i < len; i += 64)
		__builtin_prefetch((const uint8_t *)p + i, 0, 3);
}

/* Once digest Reads use the CRC cache, a lent Read's digest is computed from it in the send at
 * the end of the turn, one cache miss per 4 KiB chunk at random offsets. Fetching the first
 * chunk's entry now overlaps that miss with the rest of the turn, as the head prefetch does for
 * the data. */
static inline void mem_crc_prefetch(const struct mem_backend *mb, uint64_t off)
{
	size_t i = off / MEM_CRC_CHUNK;

	if (mb->cc.ent && i < mb->cc.nchunks)
		__builtin_prefetch(&mb->cc.ent[i], 0, 3);
}

static int mem_submit(struct nvtcp_backend_channel *ch, struct nvtcp_bio *bio)
{
	struct mem_backend *mb = container_of(ch->be, struct mem_backend, base);

	switch (bio->op) {
	case NVTCP_BIO_READ:
		if (bio->lend) {
			bio->lent = mb->data + bio->offset;
			mem_prefetch_head(bio->lent, bio->length);
			mem_crc_prefetch(mb, bio->offset);
			break;
		}
		backend_buf_to_iov(bio->iov, bio->iovcnt, mb->data + bio->offset, bio->length);
		break;
	case NVTCP_BIO_WRITE:
		/* (in place: forgotten when placed too, and again now, since a digest read may
		 * have cached a chunk while the data was still arriving) */
		mem_crc_forget(mb, bio->offset, bio->length);
		/* in place: the caller put the data into mem_write_place's memory; otherwise
		 * (larger writes, data digests) it goes in cold: nobody reads it back soon */
		if (!bio->in_place)
			backend_iov_to_buf(mb->data + bio->offset, bio->iov, bio->iovcnt,
					   bio->length, true);
		break;
	case NVTCP_BIO_WRITE_ZEROES:
	case NVTCP_BIO_DISCARD:
		mem_zero_range(mb, bio->offset, bio->length);
		break;
	case NVTCP_BIO_FLUSH:
	default:
		break;
	}
	backend_bio_complete(ch, bio, 0);
	return 0;
}

/* /proc/self/pagemap, one 64-bit entry per page: present (bit 63) or swapped (bit 62) pages
 * that are ours. Reads of never-written space map the shared zero page, which must not count:
 * the huge one has bit 61 ("file page or shared-anon") set, the 4 KiB one lacks bit 56
 * ("exclusively mapped"), which every page of ours has as nvtcpd never forks. */
#define MEM_PM_PRESENT	 (1ull << 63)
#define MEM_PM_SWAPPED	 (1ull << 62)
#define MEM_PM_FILE	 (1ull << 61)
#define MEM_PM_EXCLUSIVE (1ull << 56)
#define MEM_PM_BATCH	 4096 /* entries per pread: 16 MiB of namespace per 32 KiB read */

static int mem_usage(struct nvtcp_backend *be, uint64_t *bytes)
{
	struct mem_backend *mb = container_of(be, struct mem_backend, base);
	size_t pages = (be->size + mb->page_size - 1) / mb->page_size, used = 0;
	uint64_t *ent = malloc(MEM_PM_BATCH * sizeof(*ent));
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0 || !ent) {
		ret = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < pages;) {
		size_t n = MIN(pages - i, (size_t)MEM_PM_BATCH);
		off_t at = (off_t)(((uintptr_t)mb->data / mb->page_size + i) * sizeof(*ent));
		ssize_t got = pread(fd, ent, n * sizeof(*ent), at);

		if (got <= 0 || got % (ssize_t)sizeof(*ent)) {
			ret = got < 0 ? -errno : -EIO;
			goto out;
		}
		n = (size_t)got / sizeof(*ent);
		for (size_t k = 0; k < n; k++) {
			uint64_t e = ent[k];

			if (e & MEM_PM_FILE)
				continue;
			used += (e & MEM_PM_SWAPPED) ||
				((e & MEM_PM_PRESENT) && (e & MEM_PM_EXCLUSIVE));
		}
		i += n;
	}
	*bytes = (uint64_t)used * mb->page_size;
out:
	if (fd >= 0)
		close(fd);
	free(ent);
	return ret;
}

static void *mem_write_place(struct nvtcp_backend *be, uint64_t offset, uint64_t length)
{
	struct mem_backend *mb = container_of(be, struct mem_backend, base);

	mem_crc_forget(mb, offset, length);
	return mb->data + offset;
}

const struct backend_ops backend_memory_ops = {
	.open = mem_open,
	.close = mem_close,
	.channel_open = mem_channel_open,
	.channel_close = mem_channel_close,
	.submit = mem_submit,
	.write_place = mem_write_place,
	.usage = mem_usage,
	.crc_update = mem_crc_update,
};
