/* Unit tests for the file backend (io_uring channels): creation and sizing, read-after-write
 * checked against the file itself, FUA and flush, write zeroes (fallocate and the zero-write
 * fallback on tmpfs), discard punching holes, short reads and writes, ENOSPC and EFBIG
 * propagation, more bios than the ring's depth, close waiting for in-flight bios, and
 * completions reaped through the channel fd. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend_impl.h"
#include "bt.h"
#include "common/log.h"
#include "tap.h"

static char path[64];

static void tmp_path(const char *dir)
{
	int fd;

	snprintf(path, sizeof(path), "%s/nvtcp-test-file-XXXXXX", dir);
	fd = mkstemp(path);
	TAP_CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
}

/* Open path as a file backend. io_uring is required: a backend that cannot be opened fails
 * the case (callers then return early, with the case already failed). */
static struct nvtcp_backend *open_file(uint64_t size, bool readonly)
{
	struct nvtcp_backend_conf conf = {
		.type = NVTCP_BACKEND_FILE, .path = path, .size = size, .readonly = readonly};
	struct nvtcp_backend *be = NULL;
	char err[300];

	if (nvtcp_backend_open(&conf, &be, err, sizeof(err)) < 0 || !be) {
		tap_case_failed = 1;
		printf("# FAIL %s:%d: open %s: %s\n", __FILE__, __LINE__, path, err);
		return NULL;
	}
	return be;
}

static void test_open_and_size(void)
{
	struct nvtcp_backend_conf conf = {.type = NVTCP_BACKEND_FILE, .path = path};
	struct nvtcp_backend *be;
	struct stat st;
	char err[300];
	int fd;

	tmp_path("/tmp");
	unlink(path); /* let the backend create it */
	be = open_file(3 << 20, false);
	TAP_CHECK(be != NULL);
	if (!be)
		return;
	TAP_CHECK_EQ(stat(path, &st), 0);
	TAP_CHECK_EQ(st.st_size, 3 << 20);
	TAP_CHECK(st.st_blocks < 64); /* extended sparsely */
	TAP_CHECK_EQ(nvtcp_backend_size(be), 3 << 20);
	TAP_CHECK_EQ(nvtcp_backend_block_size(be), 512);
	TAP_CHECK_EQ(nvtcp_backend_type(be), NVTCP_BACKEND_FILE);
	TAP_CHECK(nvtcp_backend_has_volatile_cache(be));
	/* no zero-copy write placement: the data must go through write(2) */
	TAP_CHECK(nvtcp_backend_write_place(be, 0, 512) == NULL);
	{
		struct nvtcp_backend_channel *ch = NULL;
		static char blk[512];
		struct iovec iov = {blk, sizeof(blk)};
		struct nvtcp_bio bio = {.op = NVTCP_BIO_WRITE,
					.length = 512,
					.iov = &iov,
					.iovcnt = 1,
					.in_place = true,
					.done = bt_done_fn};

		TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
		TAP_CHECK_EQ(nvtcp_backend_submit(ch, &bio), -EINVAL);
		nvtcp_backend_channel_close(ch);
	}
	nvtcp_backend_close(be);

	/* size 0: the file's own size, rounded down to whole blocks */
	TAP_CHECK_EQ(truncate(path, 8192 + 100), 0);
	be = open_file(0, false);
	TAP_CHECK(be && nvtcp_backend_size(be) == 8192);
	nvtcp_backend_close(be);

	/* an empty file without a size, a missing file read-only, a directory */
	TAP_CHECK_EQ(truncate(path, 0), 0);
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "empty") != NULL);
	unlink(path);
	conf.readonly = true;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -ENOENT);
	TAP_CHECK(strstr(err, path) != NULL);
	conf.path = "/tmp";
	conf.readonly = false;
	TAP_CHECK(nvtcp_backend_open(&conf, &be, err, sizeof(err)) < 0);
	/* read-only and smaller than the size asked for */
	fd = open(path, O_CREAT | O_RDWR, 0600);
	TAP_CHECK_EQ(ftruncate(fd, 4096), 0);
	close(fd);
	conf.path = path;
	conf.readonly = true;
	conf.size = 8192;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	unlink(path);
}

static void test_read_after_write(void)
{
	struct nvtcp_backend *be;
	struct nvtcp_backend_channel *ch = NULL;
	static char src[65536], dst[65536], raw[65536];
	struct iovec wiov[4] = {{src, 100},
				{src + 100, 1000},
				{src + 1100, 948},
				{src + 2048, 40000}}; /* last one longer than needed */
	struct iovec riov[2] = {{dst, 7}, {dst + 7, 60000}};
	int fd;

	tmp_path("/tmp");
	be = open_file(1 << 20, false);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	TAP_CHECK(nvtcp_backend_channel_fd(ch) >= 0);
	bt_fill(src, sizeof(src), 3);
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_WRITE, 4096, wiov, 4, 32768, false), 0);
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_READ, 4096 - 512, riov, 2, 32768 + 1024, false), 0);
	TAP_CHECK(bt_is_zero(dst, 512));
	TAP_CHECK_MEM(dst + 512, src, 32768);
	TAP_CHECK(bt_is_zero(dst + 512 + 32768, 512));
	/* and the bytes really are in the file */
	fd = open(path, O_RDONLY);
	TAP_CHECK_EQ(pread(fd, raw, 32768, 4096), 32768);
	TAP_CHECK_MEM(raw, src, 32768);
	close(fd);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
	unlink(path);
}

static bool stats_are(struct nvtcp_backend *be, uint64_t dsync_writes, uint64_t syncs)
{
	struct nvtcp_backend_stats st;

	nvtcp_backend_get_stats(be, &st);
	if (st.dsync_writes == dsync_writes && st.syncs == syncs)
		return true;
	printf("# stats: %llu DSYNC writes, %llu syncs; expected %llu, %llu\n",
	       (unsigned long long)st.dsync_writes, (unsigned long long)st.syncs,
	       (unsigned long long)dsync_writes, (unsigned long long)syncs);
	return false;
}

static void test_fua_and_flush(void)
{
	struct nvtcp_backend *be;
	struct nvtcp_backend_channel *ch = NULL;
	static char src[8192], dst[8192];
	struct iovec iov = {src, 8192};

	tmp_path("/tmp");
	be = open_file(1 << 20, false);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	bt_fill(src, sizeof(src), 9);
	/* what reached the file is counted: a plain write is not made durable, a FUA one is
	 * (RWF_DSYNC), a Flush is one data sync, FUA on write zeroes adds one */
	TAP_CHECK(stats_are(be, 0, 0));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, src, 4096), 0);
	TAP_CHECK(stats_are(be, 0, 0));
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_WRITE, 8192, &iov, 1, 8192, true), 0);
	TAP_CHECK(stats_are(be, 1, 0));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 8192, dst, 8192), 0);
	TAP_CHECK_MEM(dst, src, 8192);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_FLUSH, 0, NULL, 0), 0);
	TAP_CHECK(stats_are(be, 1, 1));
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_WRITE_ZEROES, 8192, NULL, 0, 4096, true), 0);
	TAP_CHECK(stats_are(be, 1, 2));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 8192, dst, 8192), 0);
	TAP_CHECK(bt_is_zero(dst, 4096));
	TAP_CHECK_MEM(dst + 4096, src + 4096, 4096);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
	unlink(path);
}

/* nvtcp_backend_usage of a file namespace: the blocks the file has, at most its size. */
static void check_usage(struct nvtcp_backend *be, const struct stat *st, uint64_t size)
{
	uint64_t used = ~0ull, blocks = (uint64_t)st->st_blocks * 512;

	TAP_CHECK_EQ(nvtcp_backend_usage(be, &used), 0);
	TAP_CHECK_EQ(used, blocks < size ? blocks : size);
}

/* Write a pattern, zero a span with op, check the span reads zeroes and the rest survived. */
static void check_zeroing(const char *dir, enum nvtcp_bio_op op, uint64_t off, uint64_t len,
			  blkcnt_t *blocks_before, blkcnt_t *blocks_after)
{
	const uint64_t size = 1 << 20;
	struct nvtcp_backend *be;
	struct nvtcp_backend_channel *ch = NULL;
	char *pat = malloc(size), *buf = malloc(size);
	struct stat st;

	*blocks_before = *blocks_after = 0;
	tmp_path(dir);
	be = open_file(size, false);
	TAP_CHECK(pat && buf);
	if (!be || !pat || !buf)
		goto out;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	bt_fill(pat, size, 5);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, pat, size), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_FLUSH, 0, NULL, 0), 0);
	stat(path, &st);
	*blocks_before = st.st_blocks;
	check_usage(be, &st, size);
	TAP_CHECK_EQ(bt_io(ch, op, off, NULL, len), 0);
	stat(path, &st);
	*blocks_after = st.st_blocks;
	check_usage(be, &st, size);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 0, buf, size), 0);
	memset(pat + off, 0, len);
	TAP_CHECK_MEM(buf, pat, size);
	nvtcp_backend_channel_close(ch);
out:
	nvtcp_backend_close(be);
	free(pat);
	free(buf);
	unlink(path);
}

static void test_write_zeroes(void)
{
	blkcnt_t before, after;

	check_zeroing("/tmp", NVTCP_BIO_WRITE_ZEROES, 512, 300 * 1024 + 512, &before, &after);
	printf("# ext4 write zeroes: %ld -> %ld blocks\n", (long)before, (long)after);
}

/* Whether dir's filesystem refuses FALLOC_FL_ZERO_RANGE (EOPNOTSUPP): 1 yes, 0 no, -1 unknown. */
static int no_zero_range(const char *dir)
{
	int fd, ret;

	tmp_path(dir);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return -1;
	ret = ftruncate(fd, 8192) == 0 && fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 4096) < 0
		      ? (errno == EOPNOTSUPP ? 1 : -1)
		      : 0;
	close(fd);
	unlink(path);
	return ret;
}

/* tmpfs has no FALLOC_FL_ZERO_RANGE: the backend must fall back to writing zeroes, in
 * several 64 KiB chunks here. That it did is read from its debug log line (stderr captured
 * in a file while the zeroing runs). */
static void test_write_zeroes_fallback(void)
{
	static const char want[] = "no FALLOC_FL_ZERO_RANGE, writing zeroes";
	enum log_level level = log_threshold;
	char logpath[] = "/tmp/nvtcp-test-file-log-XXXXXX", logbuf[4096];
	blkcnt_t before, after;
	int logfd, saved, zr;
	ssize_t n;

	if (access("/dev/shm", W_OK) < 0) {
		tap_skip("no writable /dev/shm: fallback not exercised here");
		return;
	}
	zr = no_zero_range("/dev/shm");
	TAP_CHECK(zr >= 0);
	if (zr == 0)
		tap_skip("/dev/shm accepts FALLOC_FL_ZERO_RANGE: fallback not reachable here");
	if (zr <= 0)
		return;
	logfd = mkstemp(logpath);
	TAP_CHECK(logfd >= 0);
	if (logfd < 0)
		return;
	unlink(logpath);
	fflush(stdout);
	saved = dup(STDERR_FILENO);
	TAP_CHECK(saved >= 0 && dup2(logfd, STDERR_FILENO) == STDERR_FILENO);
	log_set_level(LOG_LEVEL_DEBUG);
	check_zeroing("/dev/shm", NVTCP_BIO_WRITE_ZEROES, 4096, 200 * 1024 + 512, &before, &after);
	log_set_level(level);
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	n = pread(logfd, logbuf, sizeof(logbuf) - 1, 0);
	close(logfd);
	logbuf[n > 0 ? n : 0] = 0;
	printf("# tmpfs write zeroes (fallback): %ld -> %ld blocks\n", (long)before, (long)after);
	if (!strstr(logbuf, want))
		for (char *line = strtok(logbuf, "\n"); line; line = strtok(NULL, "\n"))
			printf("# backend log: %s\n", line);
	TAP_CHECK(strstr(logbuf, want) != NULL); /* the zero-write path was taken */
}

static void test_discard(void)
{
	blkcnt_t before, after;

	check_zeroing("/tmp", NVTCP_BIO_DISCARD, 64 * 1024, 512 * 1024, &before, &after);
	printf("# ext4 discard: %ld -> %ld blocks\n", (long)before, (long)after);
	/* the hole was really punched: 512 KiB = 1024 sectors fewer */
	TAP_CHECK(before - after >= 1000);
	check_zeroing("/dev/shm", NVTCP_BIO_DISCARD, 512, 4096 * 3, &before, &after);
	check_zeroing("/tmp", NVTCP_BIO_DISCARD, 1024, 1536, &before, &after);
}

/* The file shrinks under the backend: a read straddling the new EOF gets a short read,
 * resubmits the rest from the middle of an iovec, hits EOF and fills zeroes. */
static void test_short_read(void)
{
	const uint64_t size = 65536;
	struct nvtcp_backend *be;
	struct nvtcp_backend_channel *ch = NULL;
	static char src[8192], dst[8192];
	struct iovec riov[3] = {{dst, 3000}, {dst + 3000, 3000}, {dst + 6000, 2192}};

	tmp_path("/tmp");
	be = open_file(size, false);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	bt_fill(src, sizeof(src), 11);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, size - 8192, src, 8192), 0);
	TAP_CHECK_EQ(truncate(path, size - 8192 + 4196), 0);
	memset(dst, 0xee, sizeof(dst));
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_READ, size - 8192, riov, 3, 8192, false), 0);
	TAP_CHECK_MEM(dst, src, 4196);
	TAP_CHECK(bt_is_zero(dst + 4196, 8192 - 4196));
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
	unlink(path);
}

/* RLIMIT_FSIZE cuts a write short at the limit; the resubmitted rest fails with EFBIG, which
 * must reach done. */
static void test_short_write_efbig(void)
{
	const uint64_t size = 65536, limit = size - 8192 + 5096;
	struct nvtcp_backend *be;
	struct nvtcp_backend_channel *ch = NULL;
	static char src[8192], raw[8192];
	struct rlimit old, lim;
	int fd;

	tmp_path("/tmp");
	be = open_file(size, false);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = limit;
	TAP_CHECK_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
	bt_fill(src, sizeof(src), 13);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, size - 8192, src, 8192), -EFBIG);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, src, 4096), 0); /* below the limit: fine */
	setrlimit(RLIMIT_FSIZE, &old);
	fd = open(path, O_RDONLY);
	TAP_CHECK_EQ(pread(fd, raw, 8192, size - 8192), 8192);
	TAP_CHECK_MEM(raw, src, 5096); /* the short part landed */
	TAP_CHECK(bt_is_zero(raw + 5096, 8192 - 5096));
	close(fd);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
	unlink(path);
}

/* /dev/full: every write fails with ENOSPC, reads return zeroes. */
static void test_enospc(void)
{
	struct nvtcp_backend_conf conf = {
		.type = NVTCP_BACKEND_FILE, .path = "/dev/full", .size = 1 << 20};
	struct nvtcp_backend *be = NULL;
	struct nvtcp_backend_channel *ch = NULL;
	static char buf[4096];
	char err[200];

	/* not a regular file: refused by the public open */
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	TAP_CHECK_EQ(uring_backend_open(&conf, URING_OPEN_ANY_FILE, &be, err, sizeof(err)), 0);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	memset(buf, 1, sizeof(buf));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, buf, 4096), -ENOSPC);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 0, buf, 4096), 0);
	TAP_CHECK(bt_is_zero(buf, sizeof(buf)));
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

/* Completions are only reaped after the channel fd polls readable, and reaping clears it. */
static void test_completion_fd(void)
{
	struct nvtcp_backend *be;
	struct nvtcp_backend_channel *ch = NULL;
	static char buf[4096];
	struct bt_done d = {0, 0};
	struct nvtcp_bio bio = {.op = NVTCP_BIO_WRITE,
				.offset = 0,
				.length = 4096,
				.iov = &(struct iovec){buf, 4096},
				.iovcnt = 1,
				.done = bt_done_fn,
				.priv = &d};
	struct pollfd p = {.events = POLLIN};

	tmp_path("/tmp");
	be = open_file(1 << 20, false);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	p.fd = nvtcp_backend_channel_fd(ch);
	TAP_CHECK_EQ(poll(&p, 1, 0), 0);
	TAP_CHECK_EQ(nvtcp_backend_submit(ch, &bio), 0);
	TAP_CHECK_EQ(d.calls, 0); /* never inline */
	TAP_CHECK_EQ(nvtcp_backend_channel_inflight(ch), 1);
	TAP_CHECK_EQ(poll(&p, 1, 5000), 1);
	TAP_CHECK_EQ(d.calls, 0); /* not before polling the channel */
	TAP_CHECK_EQ(nvtcp_backend_channel_poll(ch), 1);
	TAP_CHECK_EQ(d.calls, 1);
	TAP_CHECK_EQ(d.status, 0);
	TAP_CHECK_EQ(nvtcp_backend_channel_inflight(ch), 0);
	TAP_CHECK_EQ(poll(&p, 1, 0), 0);
	TAP_CHECK_EQ(nvtcp_backend_channel_poll(ch), 0);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
	unlink(path);
}

#define MANY 700 /* well over the ring's depth of 256 */

struct many {
	struct nvtcp_bio bio[MANY];
	struct bt_done done[MANY];
	char buf[MANY][512];
	struct iovec iov[MANY];
};

static void many_prepare(struct many *m, enum nvtcp_bio_op op, unsigned seed)
{
	for (unsigned i = 0; i < MANY; i++) {
		if (op == NVTCP_BIO_WRITE)
			bt_fill(m->buf[i], 512, seed + i);
		else
			memset(m->buf[i], 0xee, 512);
		m->iov[i] = (struct iovec){m->buf[i], 512};
		m->done[i] = (struct bt_done){0, 0};
		m->bio[i] = (struct nvtcp_bio){.op = op,
					       .offset = (uint64_t)i * 512,
					       .length = 512,
					       .iov = &m->iov[i],
					       .iovcnt = 1,
					       .done = bt_done_fn,
					       .priv = &m->done[i]};
	}
}

static int many_count(const struct many *m, int *bad)
{
	int calls = 0;

	*bad = 0;
	for (unsigned i = 0; i < MANY; i++) {
		calls += m->done[i].calls;
		if (m->done[i].calls != 1 || m->done[i].status)
			(*bad)++;
	}
	return calls;
}

static void test_more_than_depth(void)
{
	static struct many w, r;
	struct nvtcp_backend *be;
	struct nvtcp_backend_channel *ch = NULL;
	int ret = 0, bad;

	tmp_path("/tmp");
	be = open_file(1 << 20, false);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	many_prepare(&w, NVTCP_BIO_WRITE, 100);
	for (unsigned i = 0; i < MANY; i++)
		ret |= nvtcp_backend_submit(ch, &w.bio[i]);
	TAP_CHECK_EQ(ret, 0); /* no -EBUSY: the extra ones wait inside the channel */
	TAP_CHECK_EQ(nvtcp_backend_channel_inflight(ch), MANY);
	TAP_CHECK_EQ(bt_wait(ch), 0);
	TAP_CHECK_EQ(many_count(&w, &bad), MANY);
	TAP_CHECK_EQ(bad, 0);
	many_prepare(&r, NVTCP_BIO_READ, 0);
	for (unsigned i = 0; i < MANY; i++)
		ret |= nvtcp_backend_submit(ch, &r.bio[i]);
	TAP_CHECK_EQ(bt_wait(ch), 0);
	TAP_CHECK_EQ(many_count(&r, &bad), MANY);
	TAP_CHECK_EQ(bad, 0);
	TAP_CHECK_MEM(r.buf, w.buf, sizeof(w.buf));
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
	unlink(path);
}

static struct nvtcp_backend_channel *closing_ch;
static int resubmit_ret = 1;

static void done_then_resubmit(struct nvtcp_bio *bio, int status)
{
	bt_done_fn(bio, status);
	/* close has started: new work is refused */
	if (resubmit_ret == 1)
		resubmit_ret = nvtcp_backend_submit(closing_ch, bio);
}

/* channel_close without any polling: it must wait for every bio, queued ones included. */
static void test_close_waits(void)
{
	static struct many w, r;
	struct nvtcp_backend *be;
	struct nvtcp_backend_channel *ch = NULL;
	int ret = 0, bad;

	tmp_path("/tmp");
	be = open_file(1 << 20, false);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	many_prepare(&w, NVTCP_BIO_WRITE, 300);
	w.bio[0].done = done_then_resubmit;
	closing_ch = ch;
	for (unsigned i = 0; i < MANY; i++)
		ret |= nvtcp_backend_submit(ch, &w.bio[i]);
	TAP_CHECK_EQ(ret, 0);
	nvtcp_backend_channel_close(ch);
	TAP_CHECK_EQ(many_count(&w, &bad), MANY);
	TAP_CHECK_EQ(bad, 0);
	TAP_CHECK_EQ(resubmit_ret, -ESHUTDOWN);
	/* everything landed */
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	many_prepare(&r, NVTCP_BIO_READ, 0);
	for (unsigned i = 0; i < MANY; i++)
		ret |= nvtcp_backend_submit(ch, &r.bio[i]);
	TAP_CHECK_EQ(bt_wait(ch), 0);
	TAP_CHECK_MEM(r.buf, w.buf, sizeof(w.buf));
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
	unlink(path);
}

/* A done callback that submits the next bio on the same channel, from inside poll. */
struct chain {
	struct nvtcp_backend_channel *ch;
	struct nvtcp_bio bio;
	struct iovec iov;
	char buf[512];
	unsigned next, errors;
};

static void chain_done(struct nvtcp_bio *bio, int status)
{
	struct chain *c = bio->priv;

	if (status)
		c->errors++;
	if (++c->next == 50)
		return;
	memset(c->buf, (int)c->next, sizeof(c->buf));
	bio->offset = (uint64_t)c->next * 512;
	if (nvtcp_backend_submit(c->ch, bio))
		c->errors++;
}

static void test_resubmit_from_done(void)
{
	static struct chain c;
	struct nvtcp_backend *be;
	static char dst[50 * 512];

	tmp_path("/tmp");
	be = open_file(1 << 20, false);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &c.ch), 0);
	c.iov = (struct iovec){c.buf, 512};
	memset(c.buf, 0, sizeof(c.buf));
	c.bio = (struct nvtcp_bio){.op = NVTCP_BIO_WRITE,
				   .offset = 0,
				   .length = 512,
				   .iov = &c.iov,
				   .iovcnt = 1,
				   .done = chain_done,
				   .priv = &c};
	TAP_CHECK_EQ(nvtcp_backend_submit(c.ch, &c.bio), 0);
	TAP_CHECK_EQ(bt_wait(c.ch), 0);
	TAP_CHECK_EQ(c.next, 50);
	TAP_CHECK_EQ(c.errors, 0);
	TAP_CHECK_EQ(bt_io(c.ch, NVTCP_BIO_READ, 0, dst, sizeof(dst)), 0);
	for (unsigned i = 0; i < 50; i++)
		TAP_CHECK((unsigned char)dst[i * 512] == i &&
			  (unsigned char)dst[i * 512 + 511] == i);
	nvtcp_backend_channel_close(c.ch);
	nvtcp_backend_close(be);
	unlink(path);
}

int main(void)
{
	TAP_RUN(test_open_and_size);
	TAP_RUN(test_read_after_write);
	TAP_RUN(test_fua_and_flush);
	TAP_RUN(test_write_zeroes);
	TAP_RUN(test_write_zeroes_fallback);
	TAP_RUN(test_discard);
	TAP_RUN(test_short_read);
	TAP_RUN(test_short_write_efbig);
	TAP_RUN(test_enospc);
	TAP_RUN(test_completion_fd);
	TAP_RUN(test_more_than_depth);
	TAP_RUN(test_close_waits);
	TAP_RUN(test_resubmit_from_done);
	return tap_done();
}
