/* libFuzzer target for the host queue connection (src/host/conn.c over src/net/stream.c):
 * arbitrary controller bytes arrive on a socketpair after the host sent its ICReq. Once the
 * queue is live, five commands are outstanding (reads into split buffers, an in-capsule and an
 * R2T write, a flush) so C2HData, R2T and CapsuleResp have somewhere to land.
 * Input: 1 flag byte (bit 0 header digest, bit 1 data digest, bit 2 hold_on_fail: unanswered
 * commands are harvested as for a reconnect, bits 3-7 chunking seed), then the controller's
 * byte stream. Invariants: every command's callback (or harvest) runs exactly once, nothing
 * is left outstanding, nothing leaks (ASan).
 * Seeds: built with -DFUZZ_HOST_CONN_SEEDS as a program writing tests/fuzz/corpus/host_conn. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/le.h"
#include "common/log.h"
#include "host/conn.h"
#include "proto/crc32c.h"
#include "proto/nvme.h"
#include "proto/pdu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(c)           \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

/* The commands submitted once the queue is live; their CIDs are 0.. in this order. */
enum fuzz_cmd {
	FUZZ_READ8K,
	FUZZ_WRITE2K,
	FUZZ_WRITE64K,
	FUZZ_READ512,
	FUZZ_FLUSH,
	FUZZ_CMD_COUNT
};

#define FUZZ_INCAPSULE	4096
#define FUZZ_MAXH2CDATA 16384
#define FUZZ_MAX_INPUT	(256 * 1024)

static uint8_t fuzz_rd8k[8192], fuzz_wr2k[2048], fuzz_wr64k[65536], fuzz_rd512[512];
static unsigned fuzz_done[FUZZ_CMD_COUNT];

static void fuzz_cb(void *arg, const struct nvtcp_cpl *cpl)
{
	unsigned i = (unsigned)(uintptr_t)arg;

	FUZZ_ASSERT(i < FUZZ_CMD_COUNT);
	fuzz_done[i]++;
	FUZZ_ASSERT(fuzz_done[i] == 1);
	/* A transport failure is always reported as a Host Pathing Error. */
	FUZZ_ASSERT(!cpl->err || cpl->status == HOST_STATUS_PATH_ERROR);
}

/* A held command handed back: what a reconnect would resubmit. Its data must still be ours. */
static void fuzz_harvest(void *ctx, const struct wire_sqe *sqe, const struct iovec *iov, int iovcnt,
			 bool write, nvtcp_cb cb, void *arg)
{
	struct nvtcp_cpl cpl = {.err = -ECONNABORTED, .status = HOST_STATUS_PATH_ERROR};

	FUZZ_ASSERT(iovcnt >= 0 && iovcnt <= NVTCP_IOV_MAX);
	for (int i = 0; i < iovcnt; i++)
		FUZZ_ASSERT(iov[i].iov_base != NULL);
	FUZZ_ASSERT(sqe->opc == NVME_IO_READ || sqe->opc == NVME_IO_WRITE ||
		    sqe->opc == NVME_IO_FLUSH);
	FUZZ_ASSERT(!write || sqe->opc == NVME_IO_WRITE);
	cb(arg, &cpl);
}

static void fuzz_submit_all(struct host_conn *c)
{
	struct wire_sqe sqe;
	struct iovec iov[2];
	int r;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = NVME_IO_READ;
	le32_put(sqe.nsid, 1);
	le32_put(sqe.cdw12, 15);
	iov[0] = (struct iovec){fuzz_rd8k, 3000};
	iov[1] = (struct iovec){fuzz_rd8k + 3000, sizeof(fuzz_rd8k) - 3000};
	r = host_conn_submit(c, &sqe, iov, 2, false, fuzz_cb, (void *)(uintptr_t)FUZZ_READ8K);
	FUZZ_ASSERT(r == 0);

	sqe.opc = NVME_IO_WRITE;
	le32_put(sqe.cdw12, 3);
	iov[0] = (struct iovec){fuzz_wr2k, sizeof(fuzz_wr2k)};
	r = host_conn_submit(c, &sqe, iov, 1, true, fuzz_cb, (void *)(uintptr_t)FUZZ_WRITE2K);
	FUZZ_ASSERT(r == 0);

	le32_put(sqe.cdw12, 127);
	iov[0] = (struct iovec){fuzz_wr64k, 20000};
	iov[1] = (struct iovec){fuzz_wr64k + 20000, sizeof(fuzz_wr64k) - 20000};
	r = host_conn_submit(c, &sqe, iov, 2, true, fuzz_cb, (void *)(uintptr_t)FUZZ_WRITE64K);
	FUZZ_ASSERT(r == 0);

	sqe.opc = NVME_IO_READ;
	le32_put(sqe.cdw12, 0);
	iov[0] = (struct iovec){fuzz_rd512, sizeof(fuzz_rd512)};
	r = host_conn_submit(c, &sqe, iov, 1, false, fuzz_cb, (void *)(uintptr_t)FUZZ_READ512);
	FUZZ_ASSERT(r == 0);

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = NVME_IO_FLUSH;
	le32_put(sqe.nsid, 1);
	r = host_conn_submit(c, &sqe, NULL, 0, false, fuzz_cb, (void *)(uintptr_t)FUZZ_FLUSH);
	FUZZ_ASSERT(r == 0);
}

/* Read and drop what the host sent (ICReq, capsules, H2CData, TermReq). */
static void fuzz_drain(int fd)
{
	static uint8_t sink[65536];

	while (read(fd, sink, sizeof(sink)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct host_conn_opts o = {
		.qid = 1, .nr_slots = 8, .incapsule_max = FUZZ_INCAPSULE, .name = "fuzz"};
	struct host_conn *c;
	bool submitted = false;
	size_t off = 0;
	uint32_t seed;
	int sv[2], r;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	log_set_level(LOG_LEVEL_ERROR);
	o.hdgst = data[0] & 1;
	o.ddgst = data[0] & 2;
	o.hold_on_fail = data[0] & 4;
	seed = (uint32_t)(data[0] >> 3) * 2654435761u | 1;
	data++;
	size--;
	memset(fuzz_done, 0, sizeof(fuzz_done));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	r = host_conn_open(sv[0], &o, &c);
	FUZZ_ASSERT(r == 0);
	FUZZ_ASSERT(host_conn_start(c) == 0);

	/* Bounded: each turn writes at least one byte or the queue has ended. */
	for (unsigned turn = 0; turn < 4 * FUZZ_MAX_INPUT; turn++) {
		if (off < size) {
			size_t chunk;
			ssize_t n;

			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			chunk = 1 + seed % (seed & 0x100 ? 64 : 8192);
			chunk = chunk < size - off ? chunk : size - off;
			n = write(sv[1], data + off, chunk);
			if (n > 0)
				off += (size_t)n;
		} else if (off == size) {
			shutdown(sv[1],
				 SHUT_WR); /* EOF: the queue fails and completes everything */
			off++;
		}
		/* Budget 1 so commands are submitted right after the ICResp. */
		r = host_conn_poll(c, submitted ? 0 : 1);
		if (!submitted && c->state == HOST_CONN_LIVE) {
			fuzz_submit_all(c);
			submitted = true;
		}
		fuzz_drain(sv[1]);
		if (r < 0 && c->state == HOST_CONN_CLOSED)
			break;
	}
	FUZZ_ASSERT(c->state == HOST_CONN_CLOSED);
	if (o.hold_on_fail)
		host_conn_harvest(c, fuzz_harvest, NULL);
	for (unsigned i = 0; i < FUZZ_CMD_COUNT; i++)
		FUZZ_ASSERT(fuzz_done[i] == (submitted ? 1u : 0u));
	FUZZ_ASSERT(c->outstanding == 0);
	host_conn_close(c);
	close(sv[1]);
	return 0;
}

#ifdef FUZZ_HOST_CONN_SEEDS
/* ---- seed generator: valid controller replies built with the proto builders ------------- */

struct seed {
	uint8_t buf[262144];
	size_t len;
	struct pdu_params p;
};

static void seed_put(struct seed *s, const void *b, size_t n)
{
	memcpy(s->buf + s->len, b, n);
	s->len += n;
}

static void seed_begin(struct seed *s, bool hdgst, bool ddgst)
{
	uint8_t h[sizeof(union wire_pdu)];

	memset(s, 0, sizeof(*s));
	s->buf[0] = (uint8_t)((hdgst ? 1 : 0) | (ddgst ? 2 : 0) | 0x54);
	s->len = 1;
	seed_put(s, h, pdu_build_icresp(h, 0, hdgst, ddgst, FUZZ_MAXH2CDATA));
	s->p.hdgst = hdgst;
	s->p.ddgst = ddgst;
	s->p.maxh2cdata = FUZZ_MAXH2CDATA;
	s->p.ic_done = true;
}

static void seed_resp(struct seed *s, uint16_t cid, uint16_t status)
{
	uint8_t h[sizeof(union wire_pdu)];
	struct wire_cqe cqe;

	memset(&cqe, 0, sizeof(cqe));
	le16_put(cqe.cid, cid);
	le16_put(cqe.status, (uint16_t)(status << 1));
	seed_put(s, h, pdu_build_capsule_resp(h, &cqe, &s->p));
}

static void seed_c2h(struct seed *s, uint16_t cid, uint32_t datao, uint32_t datal, bool last,
		     bool success)
{
	uint8_t h[WIRE_PDO_MAX + WIRE_DIGEST_LEN], d[8192], dg[4];

	memset(d, 0xa5 ^ (int)datao, datal);
	seed_put(s, h, pdu_build_c2h_data(h, cid, datao, datal, last, success, &s->p));
	seed_put(s, d, datal);
	if (s->p.ddgst) {
		pdu_ddgst_put(dg, crc32c(d, datal));
		seed_put(s, dg, 4);
	}
}

static void seed_r2t(struct seed *s, uint16_t cid, uint16_t ttag, uint32_t r2to, uint32_t r2tl)
{
	uint8_t h[sizeof(union wire_pdu)];

	seed_put(s, h, pdu_build_r2t(h, cid, ttag, r2to, r2tl, &s->p));
}

static void seed_write(const struct seed *s, const char *dir, const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(s->buf, 1, s->len, f) != s->len) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	static struct seed s;
	const char *dir = argc > 1 ? argv[1] : ".";
	char name[64];

	for (unsigned dg = 0; dg < 4; dg++) {
		bool hd = dg & 1, dd = dg & 2;

		seed_begin(&s, hd, dd);
		snprintf(name, sizeof(name), "icresp_only_dg%u", dg);
		seed_write(&s, dir, name);

		/* every command completes normally */
		seed_begin(&s, hd, dd);
		seed_c2h(&s, FUZZ_READ8K, 0, 4096, false, false);
		seed_c2h(&s, FUZZ_READ8K, 4096, 4096, true, false);
		seed_resp(&s, FUZZ_READ8K, 0);
		seed_resp(&s, FUZZ_WRITE2K, 0);
		/* One R2T at a time (MAXR2T 0): the whole range, answered in 4 H2CData. */
		seed_r2t(&s, FUZZ_WRITE64K, 7, 0, 65536);
		seed_resp(&s, FUZZ_WRITE64K, 0);
		seed_c2h(&s, FUZZ_READ512, 0, 512, true, true);
		seed_resp(&s, FUZZ_FLUSH, 0);
		snprintf(name, sizeof(name), "all_ok_dg%u", dg);
		seed_write(&s, dir, name);

		/* NVMe errors, a short read, a whole-range R2T */
		seed_begin(&s, hd, dd);
		seed_resp(&s, FUZZ_FLUSH, 0x0280); /* LBA out of range, DNR... */
		seed_c2h(&s, FUZZ_READ8K, 0, 2048, true, false);
		seed_resp(&s, FUZZ_READ8K, 0);
		seed_r2t(&s, FUZZ_WRITE64K, 1, 0, 16384);
		seed_resp(&s, FUZZ_WRITE64K, 0x4004); /* failed after the first R2T */
		seed_resp(&s, FUZZ_WRITE2K, 0x0002);
		seed_resp(&s, FUZZ_READ512, 0);
		snprintf(name, sizeof(name), "errors_dg%u", dg);
		seed_write(&s, dir, name);

		/* controller terminates the connection */
		seed_begin(&s, hd, dd);
		seed_resp(&s, FUZZ_WRITE2K, 0);
		{
			uint8_t h[PDU_TERM_REQ_MAX];
			struct pdu_err e = {.fes = WIRE_FES_INVALID_HEADER_FIELD, .fei = 10};

			seed_put(&s, h, pdu_build_term_req(h, WIRE_PDU_C2H_TERM_REQ, &e, NULL, 0));
		}
		snprintf(name, sizeof(name), "term_req_dg%u", dg);
		seed_write(&s, dir, name);
	}
	return 0;
}
#endif
