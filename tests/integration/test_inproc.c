/* Host and target in one process: nvtcp_target (include/nvtcp/target.h) runs on a thread,
 * listening on a free 127.0.0.1 port, and libnvtcp (include/nvtcp/host.h) connects to it.
 * Exercises async submission with completion callbacks over several queues (reads, in-capsule
 * and R2T writes, FUA, Flush, Write Zeroes, DSM), the synchronous wrappers, admin calls,
 * queue-full handling, and a clean stop of both sides. Layer: integration test. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nvtcp/host.h"
#include "nvtcp/target.h"
#include "tap.h"

#define INPROC_NQN    "nqn.2024-01.io.nvtcp:mem0"
#define INPROC_BS     512
#define INPROC_DEPTH  32
#define INPROC_QUEUES 2
#define INPROC_IO     (256 * 1024) /* bytes per async I/O: above the in-capsule size (R2T) */

static struct nvtcp_target *inproc_tgt;
static pthread_t inproc_thread;
static int inproc_run_rc = -1;
static char inproc_port[16];
static struct nvtcp_ctrl *inproc_ctrl;

static void *inproc_target_main(void *arg)
{
	inproc_run_rc = nvtcp_target_run(inproc_tgt);
	return NULL;
}

/* A port nobody listens on right now (bound then released). */
static int inproc_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void test_start_target(void)
{
	char listen[64], err[256] = "", addr[64];
	const char *l[1] = {listen};
	struct nvtcp_target_opts o = {.listen = l, .nlisten = 1, .cores = 1, .first_cpu = -1};
	unsigned port = 0;
	int p = inproc_free_port();

	TAP_CHECK(p > 0);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", p);
	nvtcp_target_set_log_level("warn");
	TAP_CHECK_EQ(nvtcp_target_create(&o, &inproc_tgt, err, sizeof(err)), 0);
	if (!inproc_tgt) {
		fprintf(stderr, "# target: %s\n", err);
		return;
	}
	TAP_CHECK_EQ(nvtcp_target_listener(inproc_tgt, 0, addr, sizeof(addr), &port), 0);
	TAP_CHECK_EQ((int)port, p);
	TAP_CHECK(strcmp(nvtcp_target_subsystem_nqn(inproc_tgt, 0), INPROC_NQN) == 0);
	snprintf(inproc_port, sizeof(inproc_port), "%u", port);
	TAP_CHECK_EQ(pthread_create(&inproc_thread, NULL, inproc_target_main, NULL), 0);
}

static void test_connect(void)
{
	struct nvtcp_ctrl_opts o = {.traddr = "127.0.0.1",
				    .trsvcid = inproc_port,
				    .subnqn = INPROC_NQN,
				    .hostnqn = "nqn.2014-08.org.nvmexpress:uuid:"
					       "0b9c3c52-6a3e-4c55-9f1c-3e1d2c7a4b11",
				    .nr_io_queues = INPROC_QUEUES,
				    .queue_size = INPROC_DEPTH + 1,
				    .hdr_digest = true,
				    .data_digest = true};
	const struct nvtcp_ctrl_info *info;
	char err[256] = "";

	if (!inproc_tgt)
		return;
	TAP_CHECK_EQ(nvtcp_ctrl_connect(&o, &inproc_ctrl, err, sizeof(err)), 0);
	if (!inproc_ctrl) {
		fprintf(stderr, "# connect: %s\n", err);
		return;
	}
	info = nvtcp_ctrl_get_info(inproc_ctrl);
	TAP_CHECK_EQ(info->nr_io_queues, INPROC_QUEUES);
	TAP_CHECK(info->max_xfer >= INPROC_IO);
	TAP_CHECK(info->incapsule_max > 0 && info->incapsule_max < INPROC_IO);
	TAP_CHECK(info->hdr_digest && info->data_digest);
	TAP_CHECK(strcmp(info->subnqn, INPROC_NQN) == 0);
	{ /* the locked copy says the same */
		struct nvtcp_ctrl_info c;

		memset(&c, 0, sizeof(c));
		nvtcp_ctrl_info_copy(inproc_ctrl, &c);
		TAP_CHECK(c.cntlid == info->cntlid && c.cntlid != 0);
		TAP_CHECK(c.cap == info->cap && c.vs == info->vs);
		TAP_CHECK(c.nr_io_queues == info->nr_io_queues && c.max_xfer == info->max_xfer);
		TAP_CHECK(strcmp(c.subnqn, info->subnqn) == 0);
	}
	TAP_CHECK_EQ(nvtcp_queue_depth(nvtcp_ctrl_io_queue(inproc_ctrl, 0)), INPROC_DEPTH);
	TAP_CHECK(nvtcp_ctrl_io_queue(inproc_ctrl, INPROC_QUEUES) == NULL);
}

static void test_admin(void)
{
	struct nvtcp_ns_info ns;
	uint8_t *id = calloc(1, 4096);

	if (!inproc_ctrl || !id) {
		TAP_CHECK(inproc_ctrl != NULL);
		free(id);
		return;
	}
	TAP_CHECK_EQ(nvtcp_identify_ctrl(inproc_ctrl, id), 0);
	TAP_CHECK(memcmp(id + 768, INPROC_NQN, strlen(INPROC_NQN)) == 0); /* SUBNQN */
	TAP_CHECK_EQ(nvtcp_ns_get_info(inproc_ctrl, 1, &ns), 0);
	TAP_CHECK_EQ(ns.lba_size, INPROC_BS);
	TAP_CHECK_EQ(ns.nsze, (1ull << 30) / INPROC_BS);
	TAP_CHECK_EQ(nvtcp_ns_get_info(inproc_ctrl, 77, &ns) != 0, 1); /* inactive namespace */
	TAP_CHECK_EQ(nvtcp_ctrl_process_admin(inproc_ctrl), 0);
	free(id);
}

/* ---- async I/O: every slot busy, callbacks chain the next command ---------------------- */

struct inproc_io {
	struct inproc_q *q;
	uint8_t *buf;
	uint64_t slba;
	unsigned step; /* 0 write, 1 read back */
};

struct inproc_q {
	struct nvtcp_io_queue *ioq;
	struct inproc_io ios[INPROC_DEPTH];
	unsigned submitted, completed, errors, mismatches, rounds_left;
	uint64_t base;
};

static void inproc_fill(uint8_t *buf, uint64_t slba, unsigned len)
{
	for (unsigned i = 0; i < len; i += 8) {
		uint64_t v = (slba + i / INPROC_BS) * 0x9e3779b97f4a7c15ull ^ i;

		memcpy(buf + i, &v, 8);
	}
}

static void inproc_cb(void *arg, const struct nvtcp_cpl *cpl);

static int inproc_submit(struct inproc_io *io)
{
	struct nvtcp_io_queue *q = io->q->ioq;
	uint32_t nlb = INPROC_IO / INPROC_BS;
	int r;

	if (io->step == 0) {
		inproc_fill(io->buf, io->slba, INPROC_IO);
		r = nvtcp_submit_write(q, 1, io->slba, nlb, io->buf, INPROC_IO, NVTCP_IO_FUA,
				       inproc_cb, io);
	} else {
		/* Split the read buffer over two iovecs to exercise scattered placement. */
		struct iovec iov[2] = {{io->buf, 1000}, {io->buf + 1000, INPROC_IO - 1000}};

		memset(io->buf, 0, INPROC_IO);
		r = nvtcp_submit_readv(q, 1, io->slba, nlb, iov, 2, 0, inproc_cb, io);
	}
	if (r == 0)
		io->q->submitted++;
	return r;
}

static void inproc_cb(void *arg, const struct nvtcp_cpl *cpl)
{
	struct inproc_io *io = arg;
	struct inproc_q *iq = io->q;

	iq->completed++;
	if (cpl->err || cpl->status) {
		iq->errors++;
		return;
	}
	if (io->step == 1) {
		uint8_t *want = malloc(INPROC_IO);

		if (want) {
			inproc_fill(want, io->slba, INPROC_IO);
			iq->mismatches += memcmp(want, io->buf, INPROC_IO) != 0;
			free(want);
		}
		if (iq->rounds_left == 0)
			return;
		iq->rounds_left--;
		io->slba += INPROC_DEPTH * (INPROC_IO / INPROC_BS);
	}
	io->step ^= 1;
	if (inproc_submit(io) != 0)
		iq->errors++;
}

static void test_async(void)
{
	struct inproc_q qs[INPROC_QUEUES];
	unsigned total_rounds = 4; /* per slot: write + read-back, then 4 more */
	bool busy = true;

	if (!inproc_ctrl) {
		TAP_CHECK(inproc_ctrl != NULL);
		return;
	}
	memset(qs, 0, sizeof(qs));
	for (unsigned qi = 0; qi < INPROC_QUEUES; qi++) {
		struct inproc_q *iq = &qs[qi];

		iq->ioq = nvtcp_ctrl_io_queue(inproc_ctrl, qi);
		iq->base = (uint64_t)qi * (256u << 20) / INPROC_BS;
		for (unsigned d = 0; d < INPROC_DEPTH; d++) {
			struct inproc_io *io = &iq->ios[d];

			io->q = iq;
			io->buf = aligned_alloc(4096, INPROC_IO);
			io->slba = iq->base + (uint64_t)d * (INPROC_IO / INPROC_BS);
			io->step = 0;
		}
		/* rounds_left counts re-arms across the queue's slots */
		iq->rounds_left = total_rounds * INPROC_DEPTH;
		for (unsigned d = 0; d < INPROC_DEPTH; d++)
			TAP_CHECK_EQ(inproc_submit(&iq->ios[d]), 0);
		/* Every slot is in use: one more is refused, not queued. */
		TAP_CHECK_EQ(nvtcp_submit_flush(iq->ioq, 1, inproc_cb, NULL), -EBUSY);
		TAP_CHECK_EQ(nvtcp_queue_outstanding(iq->ioq), INPROC_DEPTH);
	}
	for (unsigned spins = 0; busy && spins < 200000; spins++) {
		busy = false;
		for (unsigned qi = 0; qi < INPROC_QUEUES; qi++) {
			if (nvtcp_queue_outstanding(qs[qi].ioq) == 0)
				continue;
			busy = true;
			TAP_CHECK(nvtcp_queue_wait(qs[qi].ioq, 10) >= 0);
		}
	}
	for (unsigned qi = 0; qi < INPROC_QUEUES; qi++) {
		struct inproc_q *iq = &qs[qi];

		TAP_CHECK_EQ(nvtcp_queue_outstanding(iq->ioq), 0);
		TAP_CHECK_EQ(iq->errors, 0);
		TAP_CHECK_EQ(iq->mismatches, 0);
		/* 2 commands per slot, then 2 per re-arm */
		TAP_CHECK_EQ(iq->completed, 2 * INPROC_DEPTH + 2 * total_rounds * INPROC_DEPTH);
		TAP_CHECK_EQ(iq->submitted, iq->completed);
		for (unsigned d = 0; d < INPROC_DEPTH; d++)
			free(iq->ios[d].buf);
	}
}

/* ---- other commands, asynchronously --------------------------------------------------- */

struct inproc_done {
	bool done;
	struct nvtcp_cpl cpl;
};

static void inproc_done_cb(void *arg, const struct nvtcp_cpl *cpl)
{
	struct inproc_done *d = arg;

	d->done = true;
	d->cpl = *cpl;
}

static int inproc_wait(struct nvtcp_io_queue *q, struct inproc_done *d)
{
	for (int i = 0; i < 1000 && !d->done; i++)
		if (nvtcp_queue_wait(q, 10) < 0)
			break;
	return d->done ? (d->cpl.err ? d->cpl.err : d->cpl.status) : -ETIMEDOUT;
}

/* A completion callback may submit on its queue but not poll it: the nested calls return
 * -EDEADLK and nothing else happens (the queue stays usable). */
struct inproc_nested {
	struct nvtcp_io_queue *q;
	int poll_r, wait_r, read_r, write_r, submit_r;
	struct inproc_done again;
	bool ran;
};

static void inproc_nested_cb(void *arg, const struct nvtcp_cpl *cpl)
{
	struct inproc_nested *n = arg;
	static char blk[INPROC_BS];

	n->ran = true;
	n->poll_r = nvtcp_queue_poll(n->q, 0);
	n->wait_r = nvtcp_queue_wait(n->q, 0);
	n->read_r = nvtcp_read(n->q, 1, 0, 1, blk, sizeof(blk));
	n->write_r = nvtcp_write(n->q, 1, 0, 1, blk, sizeof(blk), 0);
	n->submit_r = nvtcp_submit_flush(n->q, 1, inproc_done_cb, &n->again);
}

static void test_no_poll_in_callback(void)
{
	struct inproc_nested n = {0};
	struct inproc_done d = {0};

	if (!inproc_ctrl) {
		TAP_CHECK(inproc_ctrl != NULL);
		return;
	}
	n.q = nvtcp_ctrl_io_queue(inproc_ctrl, 0);
	TAP_CHECK_EQ(nvtcp_submit_flush(n.q, 1, inproc_nested_cb, &n), 0);
	for (int i = 0; i < 1000 && !n.ran; i++)
		TAP_CHECK(nvtcp_queue_wait(n.q, 10) >= 0);
	TAP_CHECK(n.ran);
	TAP_CHECK_EQ(n.poll_r, -EDEADLK);
	TAP_CHECK_EQ(n.wait_r, -EDEADLK);
	TAP_CHECK_EQ(n.read_r, -EDEADLK);
	TAP_CHECK_EQ(n.write_r, -EDEADLK);
	TAP_CHECK_EQ(n.submit_r, 0);		     /* submitting is fine */
	TAP_CHECK_EQ(inproc_wait(n.q, &n.again), 0); /* and completes */
	TAP_CHECK_EQ(nvtcp_submit_flush(n.q, 1, inproc_done_cb, &d), 0);
	TAP_CHECK_EQ(inproc_wait(n.q, &d), 0);
}

/* An external event loop (nvtcp_queue_fd + poll(2)) polling with a small budget: the PDUs a
 * poll leaves in the receive buffer are announced by nvtcp_queue_has_input, not by the socket;
 * waiting on the socket alone would stall with them there. */
static void test_external_loop(void)
{
	struct nvtcp_io_queue *q;
	struct inproc_done d[INPROC_DEPTH];
	static char buf[INPROC_DEPTH][4096];
	unsigned done = 0, had_input = 0, stalls = 0;

	if (!inproc_ctrl) {
		TAP_CHECK(inproc_ctrl != NULL);
		return;
	}
	q = nvtcp_ctrl_io_queue(inproc_ctrl, 1);
	memset(d, 0, sizeof(d));
	for (int i = 0; i < INPROC_DEPTH; i++)
		TAP_CHECK_EQ(nvtcp_submit_read(q, 1, (uint64_t)i * 8, 8, buf[i], 4096, 0,
					       inproc_done_cb, &d[i]),
			     0);
	while (done < INPROC_DEPTH && stalls < 20) {
		struct pollfd p = {.fd = nvtcp_queue_fd(q), .events = POLLIN};

		if (nvtcp_queue_needs_write(q))
			p.events |= POLLOUT;
		if (poll(&p, 1, 100) == 0) {
			stalls++;
			continue;
		}
		do {
			int r = nvtcp_queue_poll(q, 1); /* one PDU per poll */

			TAP_CHECK(r >= 0);
			if (r < 0)
				return;
			done += (unsigned)r;
		} while (nvtcp_queue_has_input(q) && ++had_input);
	}
	printf("# %u polls found more input after a budget of 1, %u quiet waits\n", had_input,
	       stalls);
	TAP_CHECK_EQ(done, INPROC_DEPTH);
	TAP_CHECK(had_input > 0); /* the case the call is for did happen */
	for (int i = 0; i < INPROC_DEPTH; i++)
		TAP_CHECK(d[i].done && d[i].cpl.err == 0 && d[i].cpl.status == 0);
}

static void test_misc_cmds(void)
{
	struct nvtcp_io_queue *q;
	struct nvtcp_dsm_range r[2];
	struct inproc_done d;
	uint8_t *buf = calloc(1, 8192), *zero = calloc(1, 8192);

	if (!inproc_ctrl || !buf || !zero) {
		TAP_CHECK(inproc_ctrl != NULL);
		goto out;
	}
	q = nvtcp_ctrl_io_queue(inproc_ctrl, 1);
	memset(buf, 0x5a, 8192);
	TAP_CHECK_EQ(nvtcp_write(q, 1, 900000, 16, buf, 8192, 0), 0);
	d = (struct inproc_done){0};
	TAP_CHECK_EQ(nvtcp_submit_write_zeroes(q, 1, 900000, 16, false, inproc_done_cb, &d), 0);
	TAP_CHECK_EQ(inproc_wait(q, &d), 0);
	TAP_CHECK_EQ(nvtcp_read(q, 1, 900000, 16, buf, 8192), 0);
	TAP_CHECK_MEM(buf, zero, 8192);
	d = (struct inproc_done){0};
	TAP_CHECK_EQ(nvtcp_submit_flush(q, 1, inproc_done_cb, &d), 0);
	TAP_CHECK_EQ(inproc_wait(q, &d), 0);
	nvtcp_dsm_range_set(&r[0], 900000, 8, 0);
	nvtcp_dsm_range_set(&r[1], 900100, 8, 0);
	d = (struct inproc_done){0};
	TAP_CHECK_EQ(nvtcp_submit_dsm(q, 1, r, 2, NVTCP_DSM_DEALLOCATE, inproc_done_cb, &d), 0);
	TAP_CHECK_EQ(inproc_wait(q, &d), 0);
	/* NVMe errors come back as status, the queue lives on */
	d = (struct inproc_done){0};
	TAP_CHECK_EQ(nvtcp_submit_read(q, 1, (1ull << 30) / INPROC_BS, 1, buf, 512, 0,
				       inproc_done_cb, &d),
		     0);
	TAP_CHECK(inproc_wait(q, &d) > 0);
	TAP_CHECK_EQ(NVTCP_STATUS_SCT(d.cpl.status), 0);
	TAP_CHECK_EQ(NVTCP_STATUS_SC(d.cpl.status), 0x80); /* LBA Out of Range */
	TAP_CHECK(strstr(nvtcp_status_str(d.cpl.status), "LBA Out of Range") != NULL);
	TAP_CHECK_EQ(nvtcp_read(q, 7, 0, 1, buf, 512) > 0, 1); /* invalid namespace */
	TAP_CHECK_EQ(nvtcp_read(q, 1, 0, 16, buf, 8192), 0);
	/* sync wrapper splitting above MDTS: 1 MiB + 512 */
	{
		size_t big = (1u << 20) + 512;
		uint8_t *w = malloc(big), *rd = malloc(big);

		TAP_CHECK(w && rd);
		if (w && rd) {
			inproc_fill(w, 12345, (unsigned)big);
			TAP_CHECK_EQ(nvtcp_write(q, 1, 12345, (uint32_t)(big / 512), w, big, 0), 0);
			TAP_CHECK_EQ(nvtcp_read(q, 1, 12345, (uint32_t)(big / 512), rd, big), 0);
			TAP_CHECK_MEM(w, rd, big);
		}
		free(w);
		free(rd);
	}
out:
	free(buf);
	free(zero);
}

/* poll(2) itself fails (EINVAL: nfds above a soft RLIMIT_NOFILE of 0) while nvtcp_read()'s
 * command is in flight: the call returns the error, and nothing completes into its buffer (or
 * its stack frame) afterwards: the command was abandoned with the failed queue. */
static void test_sync_poll_failure(void)
{
	struct nvtcp_ctrl_opts o = {.traddr = "127.0.0.1",
				    .trsvcid = inproc_port,
				    .subnqn = INPROC_NQN,
				    .hostnqn = "nqn.2014-08.org.nvmexpress:uuid:"
					       "0b9c3c52-6a3e-4c55-9f1c-3e1d2c7a4b11",
				    .nr_io_queues = 1,
				    .queue_size = 8,
				    .ctrl_loss_tmo_ms = NVTCP_NO_RECONNECT};
	const size_t len = 64 * 1024;
	uint8_t *buf = malloc(len), *untouched = malloc(len);
	struct nvtcp_ctrl *ctrl = NULL;
	struct nvtcp_io_queue *q;
	struct rlimit old, none;
	char err[256] = "";
	int r;

	if (!inproc_tgt || !buf || !untouched) {
		TAP_CHECK(inproc_tgt && buf && untouched);
		goto out;
	}
	TAP_CHECK_EQ(nvtcp_ctrl_connect(&o, &ctrl, err, sizeof(err)), 0);
	if (!ctrl) {
		fprintf(stderr, "# connect: %s\n", err);
		goto out;
	}
	q = nvtcp_ctrl_io_queue(ctrl, 0);
	inproc_fill(buf, 4096, (unsigned)len);
	TAP_CHECK_EQ(nvtcp_write(q, 1, 4096, (uint32_t)(len / INPROC_BS), buf, len, 0), 0);

	TAP_CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	none = (struct rlimit){.rlim_cur = 0, .rlim_max = old.rlim_max};
	TAP_CHECK_EQ(setrlimit(RLIMIT_NOFILE, &none), 0);
	r = nvtcp_read(q, 1, 4096, (uint32_t)(len / INPROC_BS), buf, len);
	TAP_CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	TAP_CHECK_EQ(r, -EINVAL);

	/* The answer has arrived (or is on its way): polling on must not deliver it. */
	memset(buf, 0xa5, len);
	memset(untouched, 0xa5, len);
	for (int i = 0; i < 5; i++)
		nvtcp_queue_wait(q, 20);
	TAP_CHECK_MEM(buf, untouched, len);
	TAP_CHECK_EQ(nvtcp_queue_outstanding(q), 0);
	TAP_CHECK(nvtcp_queue_wait(q, 0) < 0); /* the queue was failed */
	nvtcp_ctrl_disconnect(ctrl);
out:
	free(buf);
	free(untouched);
}

static void test_stop(void)
{
	if (inproc_ctrl)
		nvtcp_ctrl_disconnect(inproc_ctrl);
	if (!inproc_tgt)
		return;
	nvtcp_target_stop(inproc_tgt);
	TAP_CHECK_EQ(pthread_join(inproc_thread, NULL), 0);
	TAP_CHECK_EQ(inproc_run_rc, 0);
	nvtcp_target_destroy(inproc_tgt);
}

int main(void)
{
	TAP_RUN(test_start_target);
	TAP_RUN(test_connect);
	TAP_RUN(test_admin);
	TAP_RUN(test_async);
	TAP_RUN(test_misc_cmds);
	TAP_RUN(test_no_poll_in_callback);
	TAP_RUN(test_external_loop);
	TAP_RUN(test_sync_poll_failure);
	TAP_RUN(test_stop);
	return tap_done();
}
