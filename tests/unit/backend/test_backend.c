/* Unit tests for backend.c: type names, configuration checks, the common bio checks (range,
 * alignment, read-only, iovec coverage) and error injection, on the memory backend (inline)
 * and a file backend (completions through the ring). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bt.h"
#include "tap.h"

static void test_type_parse(void)
{
	enum nvtcp_backend_type t = NVTCP_BACKEND_TYPE_COUNT;

	TAP_CHECK_EQ(nvtcp_backend_type_parse("memory", &t), 0);
	TAP_CHECK_EQ(t, NVTCP_BACKEND_MEMORY);
	TAP_CHECK_EQ(nvtcp_backend_type_parse("file", &t), 0);
	TAP_CHECK_EQ(t, NVTCP_BACKEND_FILE);
	TAP_CHECK_EQ(nvtcp_backend_type_parse("block", &t), 0);
	TAP_CHECK_EQ(t, NVTCP_BACKEND_BLOCK);
	t = NVTCP_BACKEND_MEMORY;
	TAP_CHECK_EQ(nvtcp_backend_type_parse("bdev", &t), 0);
	TAP_CHECK_EQ(t, NVTCP_BACKEND_BLOCK);
	TAP_CHECK_EQ(nvtcp_backend_type_parse("null", &t), 0);
	TAP_CHECK_EQ(t, NVTCP_BACKEND_NULL);
	t = NVTCP_BACKEND_NULL;
	TAP_CHECK_EQ(nvtcp_backend_type_parse("disk", &t), -EINVAL);
	TAP_CHECK_EQ(nvtcp_backend_type_parse("", &t), -EINVAL);
	TAP_CHECK_EQ(nvtcp_backend_type_parse(NULL, &t), -EINVAL);
	TAP_CHECK_EQ(t, NVTCP_BACKEND_NULL); /* untouched on failure */
	for (int i = 0; i < NVTCP_BACKEND_TYPE_COUNT; i++) {
		enum nvtcp_backend_type back;

		TAP_CHECK_EQ(nvtcp_backend_type_parse(nvtcp_backend_type_name(i), &back), 0);
		TAP_CHECK_EQ(back, i);
	}
	TAP_CHECK(!strcmp(nvtcp_backend_type_name(NVTCP_BACKEND_TYPE_COUNT), "unknown"));
}

static void test_open_rejects_bad_conf(void)
{
	struct nvtcp_backend_conf conf = {.type = NVTCP_BACKEND_MEMORY, .size = 1 << 20};
	struct nvtcp_backend *be = NULL;
	char err[200];

	conf.block_size = 1000;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "1000") != NULL);
	conf.block_size = 256;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	conf.block_size = 4096;
	conf.size = 4096 * 3 + 512;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "size") != NULL);
	conf.size = 0;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	conf.type = NVTCP_BACKEND_TYPE_COUNT;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	conf.type = NVTCP_BACKEND_FILE; /* no path */
	conf.size = 1 << 20;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "path") != NULL);
	TAP_CHECK(be == NULL);

	conf.type = NVTCP_BACKEND_MEMORY;
	conf.block_size = 0;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), 0);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_block_size(be), 512); /* the default */
	TAP_CHECK_EQ(nvtcp_backend_size(be), 1 << 20);
	TAP_CHECK_EQ(nvtcp_backend_type(be), NVTCP_BACKEND_MEMORY);
	TAP_CHECK(!nvtcp_backend_is_readonly(be));
	nvtcp_backend_close(be);
}

/* The common checks, which every type shares. */
static void check_bio_rules(enum nvtcp_backend_type type, const char *path)
{
	struct nvtcp_backend_conf conf = {
		.type = type, .path = path, .size = 1 << 20, .block_size = 4096};
	struct nvtcp_backend_channel *ch = NULL;
	struct nvtcp_backend *be = NULL;
	struct bt_done d = {0, 0};
	struct nvtcp_bio bio = {.done = bt_done_fn, .priv = &d};
	char err[200], buf[8192];
	struct iovec iov[2] = {{buf, 4096}, {buf + 4096, 2048}};

	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), 0);
	if (!be)
		return;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	memset(buf, 0x5a, sizeof(buf));
	/* the last block is fine, one past it is not */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, (1 << 20) - 4096, buf, 4096), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 1 << 20, buf, 4096), -ERANGE);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, (1 << 20) - 4096, buf, 8192), -ERANGE);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE_ZEROES, 4096, NULL, 1 << 20), -ERANGE);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_DISCARD, UINT64_MAX - 4095, NULL, 8192), -ERANGE);
	/* offset + length wraps around: must not pass as in range */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 4096, buf, UINT64_MAX - 4095), -ERANGE);
	/* block alignment */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 512, buf, 4096), -EINVAL);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 0, buf, 512), -EINVAL);
	/* iovecs must cover the length */
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_READ, 0, iov, 2, 8192, false), -EINVAL);
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_READ, 0, iov, 1, 8192, false), -EINVAL);
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_READ, 0, NULL, 1, 4096, false), -EINVAL);
	/* bad op, missing callback */
	bio.op = NVTCP_BIO_OP_COUNT;
	TAP_CHECK_EQ(nvtcp_backend_submit(ch, &bio), -EINVAL);
	bio.op = NVTCP_BIO_FLUSH;
	bio.done = NULL;
	TAP_CHECK_EQ(nvtcp_backend_submit(ch, &bio), -EINVAL);
	/* FLUSH ignores offset/length */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_FLUSH, UINT64_MAX, NULL, 12345), 0);
	TAP_CHECK_EQ(d.calls, 0); /* rejected bios never call done */
	TAP_CHECK_EQ(nvtcp_backend_channel_inflight(ch), 0);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);

	/* read-only: data-changing ops are refused, reads and flushes work */
	conf.readonly = true;
	conf.size = 0; /* file: take the file's size */
	if (type == NVTCP_BACKEND_MEMORY)
		conf.size = 1 << 20;
	be = NULL;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), 0);
	if (!be)
		return;
	TAP_CHECK(nvtcp_backend_is_readonly(be));
	TAP_CHECK_EQ(nvtcp_backend_size(be), 1 << 20);
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, buf, 4096), -EROFS);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE_ZEROES, 0, NULL, 4096), -EROFS);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_DISCARD, 0, NULL, 4096), -EROFS);
	memset(buf, 0, sizeof(buf));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, (1 << 20) - 4096, buf, 4096), 0);
	if (type == NVTCP_BACKEND_FILE)
		TAP_CHECK(buf[0] == 0x5a && buf[4095] == 0x5a); /* what the writable open wrote */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_FLUSH, 0, NULL, 0), 0);
	nvtcp_backend_channel_close(ch);
	nvtcp_backend_close(be);
}

static void test_bio_rules_memory(void)
{
	check_bio_rules(NVTCP_BACKEND_MEMORY, NULL);
}

static void test_bio_rules_file(void)
{
	char path[] = "/tmp/nvtcp-test-backend-XXXXXX";
	int fd = mkstemp(path);

	TAP_CHECK(fd >= 0);
	if (fd < 0)
		return;
	close(fd);
	check_bio_rules(NVTCP_BACKEND_FILE, path);
	unlink(path);
}

static void check_injection(struct nvtcp_backend *be)
{
	struct nvtcp_backend_channel *ch = NULL;
	char buf[4096];

	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	if (!ch)
		return;
	memset(buf, 1, sizeof(buf));
	nvtcp_backend_inject_error(be, 1u << NVTCP_BIO_READ | 1u << NVTCP_BIO_FLUSH, 3, -EIO);
	/* writes are not in the mask */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, buf, 4096), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 0, buf, 4096), -EIO);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_FLUSH, 0, NULL, 0), -EIO);
	/* rejected bios do not use up an injection */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 1 << 30, buf, 4096), -ERANGE);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 0, buf, 4096), -EIO);
	/* count used up */
	memset(buf, 0, sizeof(buf));
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 0, buf, 4096), 0);
	TAP_CHECK(buf[0] == 1 && buf[4095] == 1);
	nvtcp_backend_inject_error(be, 1u << NVTCP_BIO_WRITE, 1, -ENOSPC);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, buf, 4096), -ENOSPC);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 0, buf, 4096), 0);
	TAP_CHECK_EQ(nvtcp_backend_channel_inflight(ch), 0);
	nvtcp_backend_channel_close(ch);
}

static void test_inject_memory(void)
{
	struct nvtcp_backend_conf conf = {.type = NVTCP_BACKEND_MEMORY, .size = 1 << 20};
	struct nvtcp_backend *be = NULL;

	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, NULL, 0), 0);
	if (!be)
		return;
	check_injection(be);
	nvtcp_backend_close(be);
}

static void test_inject_file(void)
{
	char path[] = "/tmp/nvtcp-test-backend-XXXXXX";
	int fd = mkstemp(path);
	struct nvtcp_backend_conf conf = {
		.type = NVTCP_BACKEND_FILE, .path = path, .size = 1 << 20};
	struct nvtcp_backend *be = NULL;

	TAP_CHECK(fd >= 0);
	if (fd < 0)
		return;
	close(fd);
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, NULL, 0), 0);
	if (be) {
		check_injection(be);
		nvtcp_backend_close(be);
	}
	unlink(path);
}

int main(void)
{
	TAP_RUN(test_type_parse);
	TAP_RUN(test_open_rejects_bad_conf);
	TAP_RUN(test_bio_rules_memory);
	TAP_RUN(test_bio_rules_file);
	TAP_RUN(test_inject_memory);
	TAP_RUN(test_inject_file);
	return tap_done();
}
