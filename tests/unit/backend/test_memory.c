/* Unit tests for the memory backend: read-after-write through scattered iovecs, zeroes for
 * never-written space, lazily committed memory, write zeroes and discard with unaligned edges,
 * and several threads writing different ranges through their own channels. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bt.h"
#include "proto/crc32c.h"
#include "tap.h"

static struct nvtcp_backend *open_mem(uint64_t size, uint32_t bs)
{
	struct nvtcp_backend_conf conf = {
		.type = NVTCP_BACKEND_MEMORY, .size = size, .block_size = bs};
	struct nvtcp_backend *be = NULL;
	char err[200];

	if (nvtcp_backend_open(&conf, &be, err, sizeof(err)) < 0)
		printf("# open: %s\n", err);
	return be;
}

/* Resident pages of this process, in KiB. */
static long rss_kib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_properties(void)
{
	struct nvtcp_backend *be = open_mem(1 << 20, 4096);
	struct nvtcp_backend_channel *ch = NULL;

	TAP_CHECK(be != NULL);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_type(be), NVTCP_BACKEND_MEMORY);
	TAP_CHECK_EQ(nvtcp_backend_block_size(be), 4096);
	TAP_CHECK_EQ(nvtcp_backend_size(be), 1 << 20);
	TAP_CHECK(!nvtcp_backend_has_volatile_cache(be));
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	TAP_CHECK_EQ(nvtcp_backend_channel_fd(ch), -1);
	TAP_CHECK_EQ(nvtcp_backend_channel_poll(ch), 0);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

static void test_read_after_write(void)
{
	struct nvtcp_backend *be = open_mem(1 << 20, 512);
	struct nvtcp_backend_channel *ch = NULL;
	static char src[16384], dst[16384];
	/* odd segment sizes; the last one is longer than the bio needs */
	struct iovec wiov[3] = {{src, 100}, {src + 100, 5000}, {src + 5100, 5000}};
	struct iovec riov[4] = {{dst, 1}, {dst + 1, 511}, {dst + 512, 7000}, {dst + 7512, 8000}};
	struct bt_done d = {0, 0};
	struct nvtcp_bio bio = {.op = NVTCP_BIO_WRITE,
				.offset = 3 * 512,
				.length = 9 * 1024,
				.iov = wiov,
				.iovcnt = 3,
				.done = bt_done_fn,
				.priv = &d};

	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	bt_fill(src, sizeof(src), 7);
	memset(dst, 0xee, sizeof(dst));
	/* inline: done has run when submit returns */
	TAP_CHECK_EQ(nvtcp_backend_submit(ch, &bio), 0);
	TAP_CHECK_EQ(d.calls, 1);
	TAP_CHECK_EQ(d.status, 0);
	TAP_CHECK_EQ(nvtcp_backend_channel_inflight(ch), 0);
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_READ, 2 * 512, riov, 4, 11 * 1024, false), 0);
	TAP_CHECK(bt_is_zero(dst, 512));		   /* block 2: never written */
	TAP_CHECK_MEM(dst + 512, src, 9 * 1024);	   /* blocks 3..20 */
	TAP_CHECK(bt_is_zero(dst + 512 + 9 * 1024, 1536)); /* after */
	TAP_CHECK((unsigned char)dst[11 * 1024] == 0xee);  /* past length: untouched */
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

static void test_large_namespace_is_lazy(void)
{
	long before = rss_kib(), after;
	struct nvtcp_backend *be = open_mem(1ull << 30, 512);
	struct nvtcp_backend_channel *ch = NULL;
	static char buf[65536];

	TAP_CHECK(be != NULL);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	memset(buf, 0xab, sizeof(buf));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, (1ull << 30) - 65536, buf, 65536), 0);
	memset(buf, 0xcd, sizeof(buf));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 1ull << 29, buf, 65536), 0);
	TAP_CHECK(bt_is_zero(buf, sizeof(buf)));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, (1ull << 30) - 65536, buf, 65536), 0);
	TAP_CHECK((unsigned char)buf[0] == 0xab && (unsigned char)buf[65535] == 0xab);
	after = rss_kib();
	printf("# rss before %ld KiB, after 1 GiB open + I/O %ld KiB\n", before, after);
	TAP_CHECK(before > 0 && after > 0 && after - before < 8 * 1024);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

static void check_zeroing(enum nvtcp_bio_op op)
{
	const uint64_t size = 256 * 1024;
	struct nvtcp_backend *be = open_mem(size, 512);
	struct nvtcp_backend_channel *ch = NULL;
	static char pat[256 * 1024], buf[256 * 1024];
	/* (offset, length): inside one page, unaligned both ends across pages, page-aligned */
	static const uint64_t spans[][2] = {
		{512, 1024}, {3584, 3 * 4096 + 1024}, {64 * 1024, 64 * 1024}, {size - 512, 512}};

	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
		bt_fill(pat, size, (unsigned)i + 1);
		TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, pat, size), 0);
		TAP_CHECK_EQ(bt_io(ch, op, spans[i][0], NULL, spans[i][1]), 0);
		TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 0, buf, size), 0);
		memset(pat + spans[i][0], 0, spans[i][1]);
		TAP_CHECK_MEM(buf, pat, size);
	}
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

static void test_write_zeroes(void)
{
	check_zeroing(NVTCP_BIO_WRITE_ZEROES);
}

static void test_discard(void)
{
	check_zeroing(NVTCP_BIO_DISCARD);
}

static void test_discard_releases_memory(void)
{
	const uint64_t size = 32ull << 20;
	struct nvtcp_backend *be = open_mem(size, 512);
	struct nvtcp_backend_channel *ch = NULL;
	char *buf = malloc(size);
	long written, discarded;

	if (!be || !buf)
		goto out;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	memset(buf, 0x11, size);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, buf, size), 0);
	free(buf);
	buf = NULL;
	written = rss_kib();
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_DISCARD, 0, NULL, size), 0);
	discarded = rss_kib();
	printf("# rss after writing 32 MiB %ld KiB, after discarding it %ld KiB\n", written,
	       discarded);
	TAP_CHECK(written - discarded > 24 * 1024);
	nvtcp_backend_channel_close(ch);
out:
	free(buf);
	nvtcp_backend_close(be);
}

/* nvtcp_backend_usage: what the namespace's data occupies, not what was read or discarded. */
static void test_usage(void)
{
	const uint64_t size = 64ull << 20, mib = 1 << 20, huge = 2 * mib;
	struct nvtcp_backend *be = open_mem(size, 512);
	struct nvtcp_backend_channel *ch = NULL;
	static char buf[1 << 20];
	uint64_t used = ~0ull;

	TAP_CHECK(be != NULL);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	TAP_CHECK_EQ(nvtcp_backend_usage(be, &used), 0);
	TAP_CHECK_EQ(used, 0);
	/* reads of never-written space map the zero page: still nothing used */
	for (uint64_t off = 0; off < size; off += 4 * mib)
		TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, off, buf, sizeof(buf)), 0);
	TAP_CHECK_EQ(nvtcp_backend_usage(be, &used), 0);
	TAP_CHECK_EQ(used, 0);
	/* 1 MiB written at 8 MiB and 4 KiB at 32 MiB + 4 KiB: that much, up to one huge page
	 * each where the kernel gives huge pages */
	memset(buf, 0x5a, sizeof(buf));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 8 * mib, buf, mib), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 32 * mib + 4096, buf, 4096), 0);
	TAP_CHECK_EQ(nvtcp_backend_usage(be, &used), 0);
	printf("# used after writing 1 MiB + 4 KiB: %llu KiB\n", (unsigned long long)used >> 10);
	TAP_CHECK(used >= mib + 4096 && used <= 2 * huge);
	/* discarded: freed again */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_DISCARD, 0, NULL, size), 0);
	TAP_CHECK_EQ(nvtcp_backend_usage(be, &used), 0);
	TAP_CHECK_EQ(used, 0);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

/* Complete a WRITE whose data the caller already put in place; iov_base is what the bio's iovec
 * says (the backend must not copy from it). Returns like bt_submit. */
static int write_in_place(struct nvtcp_backend_channel *ch, uint64_t off, void *iov_base,
			  uint64_t len)
{
	struct iovec iov = {iov_base, len};
	struct nvtcp_bio bio = {.op = NVTCP_BIO_WRITE,
				.offset = off,
				.length = len,
				.iov = &iov,
				.iovcnt = 1,
				.in_place = true};

	return bt_submit(ch, &bio);
}

static void test_write_place(void)
{
	const uint64_t size = 1 << 20;
	struct nvtcp_backend *be = open_mem(size, 512);
	struct nvtcp_backend_channel *ch = NULL;
	static char pat[8192], other[8192], buf[8192];
	char *place;

	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	TAP_CHECK(nvtcp_backend_write_place(be, 100, 512) == NULL);	    /* misaligned offset */
	TAP_CHECK(nvtcp_backend_write_place(be, 512, 100) == NULL);	    /* misaligned length */
	TAP_CHECK(nvtcp_backend_write_place(be, size - 512, 1024) == NULL); /* past the end */
	TAP_CHECK(nvtcp_backend_write_place(be, size, 512) == NULL);
	TAP_CHECK(nvtcp_backend_write_place(be, 0, 0) == NULL);
	TAP_CHECK(nvtcp_backend_write_place(be, size - 512, 512) != NULL);
	place = nvtcp_backend_write_place(be, 4096, 8192);
	TAP_CHECK(place != NULL);
	if (!place)
		goto out;
	TAP_CHECK(nvtcp_backend_write_place(be, 0, 512) + 4096 == place);
	bt_fill(pat, sizeof(pat), 3);
	bt_fill(other, sizeof(other), 4);
	memcpy(place, pat, sizeof(pat));
	TAP_CHECK_EQ(write_in_place(ch, 4096, other, sizeof(other)), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 4096, buf, sizeof(buf)), 0);
	TAP_CHECK_MEM(buf, pat, sizeof(pat));
out:
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

/* The namespace's own bytes, as a lent Read of block 0 shows them (write_place would also
 * forget cached CRCs). */
static const unsigned char *lent_base(struct nvtcp_backend *be)
{
	struct nvtcp_backend_channel *ch = NULL;
	struct bt_done d = {0, 0};
	char buf[512];
	struct iovec iov = {buf, sizeof(buf)};
	struct nvtcp_bio bio = {.op = NVTCP_BIO_READ,
				.length = sizeof(buf),
				.iov = &iov,
				.iovcnt = 1,
				.lend = true,
				.done = bt_done_fn,
				.priv = &d};

	if (nvtcp_backend_channel_open(be, &ch) < 0)
		return NULL;
	if (nvtcp_backend_submit(ch, &bio) < 0)
		bio.lent = NULL;
	nvtcp_backend_channel_close(ch);
	return bio.lent;
}

/* CRC over [off, off + len) of the namespace through nvtcp_backend_crc_update (the cache) and
 * by reading the bytes: equal, else the case fails and says where. */
static void check_crc(struct nvtcp_backend *be, const char *step, uint64_t off, size_t len)
{
	const unsigned char *ns = lent_base(be);
	uint32_t start = 0x1234567u ^ (uint32_t)off;
	uint32_t want, got;

	TAP_CHECK(ns != NULL);
	if (!ns)
		return;
	want = crc32c_update(start, ns + off, len);
	got = nvtcp_backend_crc_update(be, start, ns + off, len);

	if (got != want) {
		TAP_CHECK_EQ(got, want);
		printf("# after %s: off %llu len %zu\n", step, (unsigned long long)off, len);
	}
}

static void check_crcs(struct nvtcp_backend *be, const char *step)
{
	static const struct {
		uint64_t off;
		size_t len;
	} r[] = {{0, 4096},
		 {0, 131072},
		 {4096, 8192},
		 {100, 20000},
		 {4000, 200},
		 {8192, 1},
		 {65536 - 7, 4110},
		 {(1 << 20) - 4096, 4096},
		 {(1 << 20), 512}, /* the partial last chunk: never cached */
		 {(1 << 20) - 8192, 8704}};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		check_crc(be, step, r[i].off, r[i].len);
}

/* nvtcp_backend_crc_update: the cached CRC of every 4 KiB chunk follows every way the bytes
 * change (write through iovecs, write in place, write zeroes, discard, a placement still
 * arriving when a digest read looks), including chunks a change only partly covers; bytes
 * outside the namespace are CRC'd as they are. */
static void test_crc_cache(void)
{
	const uint64_t size = (1 << 20) + 512;
	struct nvtcp_backend *be = open_mem(size, 512);
	struct nvtcp_backend_channel *ch = NULL;
	static char pat[131072], outside[5000];
	char *place;

	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	bt_fill(pat, sizeof(pat), 5);
	for (uint64_t off = 0; off < size - 512; off += sizeof(pat))
		TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, off, pat, sizeof(pat)), 0);
	check_crcs(be, "fill");
	check_crcs(be, "fill, cached"); /* now from the cache */

	bt_fill(pat, 1536, 6); /* part of one chunk, unaligned to it */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 4096 + 1024, pat, 1536), 0);
	check_crcs(be, "partial write");

	place = nvtcp_backend_write_place(be, 65536, 8192);
	TAP_CHECK(place != NULL);
	if (place) {
		bt_fill(place, 4096, 7); /* half arrived: a digest read caches what is there */
		check_crcs(be, "half a placement");
		bt_fill(place + 4096, 4096, 8);
		memset(place, 0x5a, 100); /* ... and the first half changes again */
		TAP_CHECK_EQ(write_in_place(ch, 65536, place, 8192), 0);
		check_crcs(be, "placement done");
	}
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE_ZEROES, 512, NULL, 3 * 4096), 0);
	check_crcs(be, "write zeroes");
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_DISCARD, 0, NULL, 131072), 0);
	check_crcs(be, "discard");

	bt_fill(outside, sizeof(outside), 9);
	TAP_CHECK_EQ(nvtcp_backend_crc_update(be, 77, outside, sizeof(outside)),
		     crc32c_update(77, outside, sizeof(outside)));
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

struct thread_arg {
	struct nvtcp_backend *be;
	unsigned index;
	int failures;
};

/* Each thread owns 64 blocks of 4 KiB and rewrites/verifies them with its own channel. */
static void *writer_thread(void *p)
{
	struct thread_arg *a = p;
	struct nvtcp_backend_channel *ch = NULL;
	char wbuf[4096], rbuf[4096];

	if (nvtcp_backend_channel_open(a->be, &ch) < 0) {
		a->failures++;
		return NULL;
	}
	for (unsigned round = 0; round < 200; round++) {
		for (unsigned b = 0; b < 64; b++) {
			uint64_t off = ((uint64_t)a->index * 64 + b) * 4096;

			bt_fill(wbuf, sizeof(wbuf), a->index * 100000 + round * 64 + b);
			if (bt_io(ch, NVTCP_BIO_WRITE, off, wbuf, 4096) ||
			    bt_io(ch, NVTCP_BIO_READ, off, rbuf, 4096) ||
			    memcmp(wbuf, rbuf, sizeof(wbuf)))
				a->failures++;
		}
	}
	nvtcp_backend_channel_close(ch);
	return NULL;
}

static void test_threads_disjoint_ranges(void)
{
	struct nvtcp_backend *be = open_mem(4 * 64 * 4096, 4096);
	struct thread_arg args[4];
	pthread_t tid[4];

	if (!be)
		return;
	for (unsigned i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){.be = be, .index = i};
		TAP_CHECK_EQ(pthread_create(&tid[i], NULL, writer_thread, &args[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		TAP_CHECK_EQ(args[i].failures, 0);
	}
	nvtcp_backend_close(be);
}

int main(void)
{
	TAP_RUN(test_properties);
	TAP_RUN(test_read_after_write);
	TAP_RUN(test_large_namespace_is_lazy);
	TAP_RUN(test_write_zeroes);
	TAP_RUN(test_discard);
	TAP_RUN(test_discard_releases_memory);
	TAP_RUN(test_usage);
	TAP_RUN(test_write_place);
	TAP_RUN(test_crc_cache);
	TAP_RUN(test_threads_disjoint_ranges);
	return tap_done();
}
