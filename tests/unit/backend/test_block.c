/* Unit tests for the block device backend. The O_DIRECT engine runs first on a regular file
 * opened through the internal hook (aligned buffers go straight through, unaligned ones use
 * bounce buffers); then, when losetup works (root), on a real loop device through the public
 * open. Without losetup that case is reported as skipped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend_impl.h"
#include "bt.h"
#include "tap.h"

#define SIZE (8u << 20)

static char path[64];

static int make_file(void)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/nvtcp-test-block-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, SIZE) < 0) {
		close(fd);
		return -errno;
	}
	close(fd);
	return 0;
}

/* Does this process hold file open with O_DIRECT? (fdinfo flags are octal.) */
static bool has_odirect_fd(const char *file)
{
	char link[PATH_MAX], target[PATH_MAX], info[PATH_MAX], line[128];
	bool found = false;
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");

	while (d && !found && (de = readdir(d))) {
		ssize_t n;
		FILE *f;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = 0;
		if (strcmp(target, file))
			continue;
		snprintf(info, sizeof(info), "/proc/self/fdinfo/%s", de->d_name);
		f = fopen(info, "r");
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long flags;

			if (sscanf(line, "flags: %lo", &flags) == 1 && (flags & O_DIRECT))
				found = true;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/* The I/O every block-like backend must get right; file is the path read back with pread. */
static void check_block_io(struct nvtcp_backend *be, const char *file)
{
	struct nvtcp_backend_channel *ch = NULL;
	char *abuf = NULL, *ubuf = malloc(65536 + 64), *raw = malloc(65536);
	char *pat = malloc(65536);
	struct iovec uiov[3];
	int fd;

	if (posix_memalign((void **)&abuf, 4096, 65536) || !ubuf || !raw || !pat)
		goto out;
	TAP_CHECK_EQ(nvtcp_backend_channel_open(be, &ch), 0);
	if (!ch)
		goto out;
	/* aligned: straight from the caller's memory */
	bt_fill(pat, 65536, 21);
	memcpy(abuf, pat, 65536);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE, 1 << 20, abuf, 65536), 0);
	memset(abuf, 0, 65536);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 1 << 20, abuf, 65536), 0);
	TAP_CHECK_MEM(abuf, pat, 65536);

	/* unaligned addresses and odd segment lengths: through the bounce buffer, FUA too */
	bt_fill(pat, 65536, 22);
	memcpy(ubuf + 1, pat, 65536);
	uiov[0] = (struct iovec){ubuf + 1, 1000};
	uiov[1] = (struct iovec){ubuf + 1001, 30000};
	uiov[2] = (struct iovec){ubuf + 31001, 40000}; /* longer than needed */
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_WRITE, 2 << 20, uiov, 3, 65536, true), 0);
	memset(ubuf, 0xee, 65536 + 64);
	TAP_CHECK_EQ(bt_iov(ch, NVTCP_BIO_READ, 2 << 20, uiov, 3, 65536, false), 0);
	TAP_CHECK_MEM(ubuf + 1, pat, 65536);
	TAP_CHECK((unsigned char)ubuf[0] == 0xee && (unsigned char)ubuf[65537] == 0xee);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_FLUSH, 0, NULL, 0), 0);

	/* what the device holds */
	fd = open(file, O_RDONLY);
	TAP_CHECK_EQ(pread(fd, raw, 65536, 2 << 20), 65536);
	TAP_CHECK_MEM(raw, pat, 65536);

	/* write zeroes and discard read back as zeroes, neighbours untouched */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_WRITE_ZEROES, (2 << 20) + 4096, NULL, 8192), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_DISCARD, (2 << 20) + 32768, NULL, 16384 + 512), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, 2 << 20, abuf, 65536), 0);
	memset(pat + 4096, 0, 8192);
	memset(pat + 32768, 0, 16384 + 512);
	TAP_CHECK_MEM(abuf, pat, 65536);
	TAP_CHECK_EQ(pread(fd, raw, 65536, 2 << 20), 65536);
	TAP_CHECK_MEM(raw, pat, 65536);
	close(fd);

	/* whole device, last block */
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, nvtcp_backend_size(be) - 4096, abuf, 4096), 0);
	TAP_CHECK_EQ(bt_io(ch, NVTCP_BIO_READ, nvtcp_backend_size(be), abuf, 4096), -ERANGE);
	nvtcp_backend_channel_close(ch);
out:
	free(abuf);
	free(ubuf);
	free(raw);
	free(pat);
}

static void test_odirect_on_regular_file(void)
{
	struct nvtcp_backend_conf conf = {.type = NVTCP_BACKEND_BLOCK, .path = path};
	struct nvtcp_backend *be = NULL;
	char err[300];

	TAP_CHECK_EQ(make_file(), 0);
	/* the public open wants a real block device */
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "not a block device") != NULL);
	TAP_CHECK_EQ(uring_backend_open(&conf, URING_OPEN_DIRECT | URING_OPEN_ANY_FILE, &be, err,
					sizeof(err)),
		     0);
	if (!be) {
		printf("# %s\n", err);
		goto out;
	}
	TAP_CHECK(has_odirect_fd(path));
	TAP_CHECK_EQ(nvtcp_backend_size(be), SIZE);
	TAP_CHECK_EQ(nvtcp_backend_type(be), NVTCP_BACKEND_BLOCK);
	TAP_CHECK(nvtcp_backend_block_size(be) >= 512);
	check_block_io(be, path);
	nvtcp_backend_close(be);
out:
	unlink(path);
}

static int loop_attach(const char *file, char *dev, size_t devlen)
{
	char cmd[256];
	FILE *p;
	int ok;

	snprintf(cmd, sizeof(cmd), "losetup --find --show %s 2>/dev/null", file);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	ok = fgets(dev, (int)devlen, p) != NULL;
	if (pclose(p) != 0 || !ok)
		return -1;
	dev[strcspn(dev, "\n")] = 0;
	return strncmp(dev, "/dev/loop", 9) ? -1 : 0;
}

/* Write mode ("write back" / "write through") into dev's sysfs queue/write_cache. */
static int set_write_cache(const char *dev, const char *mode)
{
	char p[128];
	FILE *f;
	int ok;

	snprintf(p, sizeof(p), "/sys/block/%s/queue/write_cache", dev + 5); /* past "/dev/" */
	f = fopen(p, "we");
	if (!f)
		return -1;
	ok = fputs(mode, f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static void test_loop_device(void)
{
	struct nvtcp_backend_conf conf = {.type = NVTCP_BACKEND_BLOCK};
	struct nvtcp_backend *be = NULL;
	char dev[64], cmd[128], err[300];

	if (make_file() < 0) {
		tap_case("test_loop_device", 0);
		return;
	}
	if (geteuid() != 0 || loop_attach(path, dev, sizeof(dev)) < 0) {
		unlink(path);
		tap_case("test_loop_device # SKIP losetup unavailable", 1);
		return;
	}
	printf("# using %s\n", dev);
	tap_begin();
	conf.path = dev;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), 0);
	if (be) {
		TAP_CHECK(has_odirect_fd(dev));
		TAP_CHECK_EQ(nvtcp_backend_size(be), SIZE);
		TAP_CHECK_EQ(nvtcp_backend_block_size(be), 512); /* BLKSSZGET of a loop device */
		TAP_CHECK(nvtcp_backend_has_volatile_cache(be)); /* a loop device: write back */
		check_block_io(be, dev);
		nvtcp_backend_close(be);
		be = NULL;
	} else {
		printf("# %s\n", err);
	}
	/* the device's cache as sysfs reports it: no volatile cache once it writes through */
	if (set_write_cache(dev, "write through") == 0) {
		TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), 0);
		if (be)
			TAP_CHECK(!nvtcp_backend_has_volatile_cache(be));
		nvtcp_backend_close(be);
		be = NULL;
		TAP_CHECK_EQ(set_write_cache(dev, "write back"), 0);
		TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), 0);
		if (be)
			TAP_CHECK(nvtcp_backend_has_volatile_cache(be));
		nvtcp_backend_close(be);
		be = NULL;
	} else {
		TAP_CHECK(!"cannot set the loop device's queue/write_cache");
	}
	/* size limits, block size, and the type must match the node */
	conf.size = SIZE + 4096;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "exceeds") != NULL);
	conf.size = SIZE / 2;
	conf.block_size = 4096;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), 0);
	if (be) {
		TAP_CHECK_EQ(nvtcp_backend_size(be), SIZE / 2);
		TAP_CHECK_EQ(nvtcp_backend_block_size(be), 4096);
		nvtcp_backend_close(be);
		be = NULL;
	}
	conf.type = NVTCP_BACKEND_FILE;
	TAP_CHECK_EQ(nvtcp_backend_open(&conf, &be, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "block device") != NULL);

	snprintf(cmd, sizeof(cmd), "losetup -d %s", dev);
	TAP_CHECK_EQ(system(cmd), 0);
	unlink(path);
	tap_end("test_loop_device");
}

int main(void)
{
	TAP_RUN(test_odirect_on_regular_file);
	test_loop_device();
	return tap_done();
}
