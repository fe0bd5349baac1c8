/* Unit tests for the target connection (src/target/conn.c, pool.c) against a small fake of
 * the core (tgt_req_parse_sgl, tgt_req_init, ... compiled into this test only), over a real
 * socketpair: the test thread plays the host with blocking I/O, the loop runs on a thread.
 * Layer: tests. Fake core: opcode 01h writes into a 2 MiB "disk" at CDW10 * 512, 02h reads
 * from it, 7Fh/01h is Connect (sets qid, sqsize, SQ flow control), 80h is held by the core
 * until the test releases it, anything else fails with Invalid Opcode. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/le.h"
#include "net/loop.h"
#include "proto/crc32c.h"
#include "proto/pdu.h"
#include "tap.h"
#include "target/conn.h"

#define DISK_SIZE (2u << 20)
#define OPC_HOLD  0x80

/* ---- fake core -------------------------------------------------------------------------- */

static uint8_t disk[DISK_SIZE];
static atomic_int destroyed, touched;
static struct tgt_req *held;

uint16_t tgt_req_parse_sgl(struct tgt_req *req, uint32_t incapsule_len, uint32_t max_incapsule)
{
	uint32_t len = le32_get(req->sqe.sgl1.length);

	switch (req->sqe.sgl1.type) {
	case WIRE_SGL_TYPE_DATA_BLOCK_OFFSET:
		if (len > max_incapsule || len > incapsule_len)
			return NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_SGL_INVALID_DATA);
		req->incapsule = true;
		break;
	case WIRE_SGL_TYPE_TRANSPORT_DATA:
		if (incapsule_len)
			return NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_SGL_INVALID_DATA);
		req->incapsule = false;
		break;
	default:
		return NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_SGL_INVALID_TYPE);
	}
	req->data_len = len;
	return 0;
}

void tgt_req_complete(struct tgt_req *req)
{
	memcpy(req->cqe.cid, req->sqe.cid, 2);
	le16_put(req->cqe.sqid, req->queue->qid);
	req->queue->ops->complete(req);
}

void tgt_req_complete_status(struct tgt_req *req, uint16_t status, bool dnr)
{
	le16_put(req->cqe.status, (uint16_t)(status | (dnr ? NVME_STATUS_DNR : 0)));
	tgt_req_complete(req);
}

/* the fake core never lends a Read's bytes, so conn.c's digests never come from a backend */
uint32_t nvtcp_backend_crc_update(struct nvtcp_backend *be, uint32_t crc, const void *p, size_t len)
{
	(void)be;
	return crc32c_update(crc, p, len);
}

static uint64_t fake_offset(struct tgt_req *req)
{
	return (uint64_t)le32_get(req->sqe.cdw10) * 512;
}

static void fake_copy(struct tgt_req *req, bool to_disk)
{
	uint64_t off = fake_offset(req);

	for (int i = 0; i < req->iovcnt; i++) {
		if (to_disk)
			memcpy(disk + off, req->iov[i].iov_base, req->iov[i].iov_len);
		else
			memcpy(req->iov[i].iov_base, disk + off, req->iov[i].iov_len);
		off += req->iov[i].iov_len;
	}
	tgt_req_complete(req);
}

static void fake_write(struct tgt_req *req)
{
	fake_copy(req, true);
}

static void fake_read(struct tgt_req *req)
{
	fake_copy(req, false);
}

static void fake_connect(struct tgt_req *req)
{
	const struct wire_connect_cmd *c = (const void *)&req->sqe;

	req->queue->qid = le16_get(c->qid);
	req->queue->sqsize = (uint16_t)(le16_get(c->sqsize) + 1);
	req->queue->sqfc_disabled = c->cattr & WIRE_CONNECT_CATTR_DISABLE_SQFC;
	req->queue->connected = true;
	le32_put(req->cqe.dw0, 1);
	tgt_req_complete(req);
}

static void fake_hold(struct tgt_req *req)
{
	held = req;
}

int tgt_req_init(struct tgt_req *req)
{
	switch (req->sqe.opc) {
	case NVME_IO_WRITE:
	case NVME_FABRICS_OPC:
		req->xfer = TGT_XFER_TO_CTRL;
		req->execute = req->sqe.opc == NVME_IO_WRITE ? fake_write : fake_connect;
		break;
	case NVME_IO_READ:
		req->xfer = TGT_XFER_FROM_CTRL;
		req->execute = fake_read;
		break;
	case OPC_HOLD:
		req->xfer = TGT_XFER_NONE;
		req->execute = fake_hold;
		return 0;
	default:
		le16_put(req->cqe.status,
			 NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INVALID_OPCODE) | NVME_STATUS_DNR);
		return -EINVAL;
	}
	if (req->sqe.opc != NVME_FABRICS_OPC && fake_offset(req) + req->data_len > DISK_SIZE) {
		le16_put(req->cqe.status, NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_LBA_RANGE));
		return -EINVAL;
	}
	return 0;
}

void tgt_queue_destroy(struct tgt_queue *q)
{
	atomic_fetch_add(&destroyed, 1);
}

void tgt_queue_touch(struct tgt_queue *q)
{
	atomic_fetch_add(&touched, 1);
}

/* ---- harness: target loop on a thread, host side on the test thread --------------------- */

static struct tgt tgt;
static struct tgt_thread th;
static pthread_t loop_tid;
static int hfd = -1;	     /* host end */
static int tfd = -1;	     /* target end of the connection start() made (owned by it) */
static struct pdu_params hp; /* host view of the negotiated parameters */

static void *loop_main(void *arg)
{
	loop_run(th.loop);
	return NULL;
}

static struct tgt_conn *tconn; /* the connection under test */
static bool busy_poll;	       /* start() makes a busy-polling loop */

static void start(const struct tgt_conn_opts *opts)
{
	struct timeval tv = {.tv_sec = 3};
	struct loop_opts lo = {.busy_poll = busy_poll, .cpu = -1};
	int sv[2];

	memset(&th, 0, sizeof(th));
	th.tgt = &tgt;
	TAP_CHECK_EQ(loop_create(&th.loop, &lo), 0);
	TAP_CHECK_EQ(tgt_conn_thread_init(&th), 0);
	TAP_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	hfd = sv[0];
	/* host side blocking, with a receive timeout so a broken target fails, not hangs */
	setsockopt(hfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	tfd = sv[1];
	TAP_CHECK_EQ(tgt_conn_create(&th, NULL, sv[1], opts, &tconn), 0);
	atomic_store(&destroyed, 0);
	memset(&hp, 0, sizeof(hp));
	pthread_create(&loop_tid, NULL, loop_main, NULL);
}

static void on_drained(struct tgt_thread *t)
{
	loop_stop(t->loop);
}

static void drain_fn(void *arg)
{
	tgt_conn_thread_drain(&th, on_drained);
}

static void stop(void)
{
	loop_post(th.loop, drain_fn, NULL);
	pthread_join(loop_tid, NULL);
	TAP_CHECK_EQ(((struct tgt_conn_thread *)th.transport)->nr_conns, 0);
	TAP_CHECK_EQ(((struct tgt_conn_thread *)th.transport)->pool.nfree,
		     ((struct tgt_conn_thread *)th.transport)->pool.total);
	tgt_conn_thread_fini(&th);
	loop_destroy(th.loop);
	if (hfd >= 0)
		close(hfd);
	hfd = -1;
}

static int send_all(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(hfd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_exact(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = recv(hfd, p, len, 0);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static uint8_t rbuf[TGT_MAXH2CDATA + 512];

/* Receive one PDU into rbuf; returns its type or -1. */
static int recv_pdu(void)
{
	uint32_t plen;

	if (recv_exact(rbuf, 8) < 0)
		return -1;
	plen = le32_get(rbuf + 4);
	if (plen < 8 || plen > sizeof(rbuf) || recv_exact(rbuf + 8, plen - 8) < 0)
		return -1;
	return rbuf[0];
}

/* True if the target closed: EOF after at most the PDUs it still had to send. */
static bool peer_closed(void)
{
	uint8_t b[256];

	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(hfd, b, sizeof(b), 0);

		/* closing with our bytes unread makes the kernel report a reset instead of EOF */
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0)
			return false;
	}
	return false;
}

/* Nothing arrives within ms. */
static bool quiet_for(int ms)
{
	struct pollfd p = {.fd = hfd, .events = POLLIN};

	return poll(&p, 1, ms) == 0;
}

static void icreq(uint8_t hpda, bool hdgst, bool ddgst, uint32_t maxr2t)
{
	uint8_t b[128];

	pdu_build_icreq(b, hpda, hdgst, ddgst, maxr2t);
	TAP_CHECK_EQ(send_all(b, sizeof(b)), 0);
	TAP_CHECK_EQ(recv_pdu(), WIRE_PDU_ICRESP);
	TAP_CHECK_EQ(le32_get(rbuf + 4), 128);
	TAP_CHECK_EQ(le16_get(rbuf + 8), 0);			   /* PFV */
	TAP_CHECK_EQ(rbuf[10], 0);				   /* CPDA */
	TAP_CHECK_EQ(rbuf[11], (hdgst ? 1 : 0) | (ddgst ? 2 : 0)); /* digests echoed */
	TAP_CHECK_EQ(le32_get(rbuf + 12), TGT_MAXH2CDATA);
	hp.hdgst = hdgst;
	hp.ddgst = ddgst;
	hp.hpda = hpda;
	hp.cpda = 0;
	hp.maxh2cdata = TGT_MAXH2CDATA;
	hp.ic_done = true;
}

static void sqe_rw(struct wire_sqe *sqe, uint8_t opc, uint16_t cid, uint32_t lba, uint32_t len,
		   bool incapsule)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opc = opc;
	sqe->flags = WIRE_SQE_PSDT_SGL;
	le16_put(sqe->cid, cid);
	le32_put(sqe->nsid, 1);
	le32_put(sqe->sgl1.length, len);
	sqe->sgl1.type = incapsule ? WIRE_SGL_TYPE_DATA_BLOCK_OFFSET : WIRE_SGL_TYPE_TRANSPORT_DATA;
	le32_put(sqe->cdw10, lba);
}

/* Send a CapsuleCmd with optional in-capsule data; bad_ddgst corrupts its data digest. */
static void send_cmd(const struct wire_sqe *sqe, const void *data, uint32_t len, bool bad_ddgst)
{
	uint8_t h[WIRE_PDO_MAX + 4], dg[4];
	size_t n = pdu_build_capsule_cmd(h, sqe, len, &hp);

	TAP_CHECK_EQ(send_all(h, n), 0);
	if (len) {
		TAP_CHECK_EQ(send_all(data, len), 0);
		if (hp.ddgst) {
			pdu_ddgst_put(dg, crc32c(data, len) ^ (bad_ddgst ? 1u : 0u));
			TAP_CHECK_EQ(send_all(dg, 4), 0);
		}
	}
}

static void send_h2c(uint16_t cccid, uint16_t ttag, uint32_t datao, const uint8_t *data,
		     uint32_t datal, bool last)
{
	/* one send: a target that rejects the header must not race a half-sent payload */
	static uint8_t pdu[WIRE_PDO_MAX + TGT_MAXH2CDATA + 8];
	size_t n = pdu_build_h2c_data(pdu, cccid, ttag, datao, datal, last, &hp);

	memcpy(pdu + n, data, datal);
	n += datal;
	if (hp.ddgst) {
		pdu_ddgst_put(pdu + n, crc32c(data, datal));
		n += 4;
	}
	TAP_CHECK_EQ(send_all(pdu, n), 0);
}

/* Expect a CapsuleResp for cid; returns its status word. */
static int expect_resp(uint16_t cid)
{
	int t = recv_pdu();

	TAP_CHECK_EQ(t, WIRE_PDU_CAPSULE_RESP);
	if (t != WIRE_PDU_CAPSULE_RESP)
		return -1;
	if (hp.hdgst)
		TAP_CHECK_EQ(le32_get(rbuf + 24), crc32c(rbuf, 24));
	TAP_CHECK_EQ(le16_get(rbuf + 8 + 12), cid);
	return le16_get(rbuf + 8 + 14);
}

static void expect_term(uint16_t fes, uint32_t fei)
{
	int t = recv_pdu();

	TAP_CHECK_EQ(t, WIRE_PDU_C2H_TERM_REQ);
	if (t == WIRE_PDU_C2H_TERM_REQ) {
		TAP_CHECK_EQ(le16_get(rbuf + 8), fes);
		TAP_CHECK_EQ(le32_get(rbuf + 10), fei);
	}
	TAP_CHECK(peer_closed());
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 9));
}

/* Read len bytes at lba, expecting C2HData (SUCCESS if success) and a CapsuleResp unless
 * SUCCESS; compares with disk. */
static void do_read(uint16_t cid, uint32_t lba, uint32_t len, bool success)
{
	static uint8_t got[1u << 20];
	struct wire_sqe sqe;
	uint32_t have = 0;
	bool last = false;

	sqe_rw(&sqe, NVME_IO_READ, cid, lba, len, false);
	send_cmd(&sqe, NULL, 0, false);
	while (!last) {
		int t = recv_pdu();
		uint8_t flags = rbuf[1], pdo = rbuf[3];
		uint32_t datao = le32_get(rbuf + 12), datal = le32_get(rbuf + 16);

		TAP_CHECK_EQ(t, WIRE_PDU_C2H_DATA);
		if (t != WIRE_PDU_C2H_DATA)
			return;
		TAP_CHECK_EQ(le16_get(rbuf + 8), cid);
		TAP_CHECK_EQ(datao, have);
		TAP_CHECK(datal <= 128 * 1024);
		TAP_CHECK_EQ(pdo % ((hp.hpda + 1) * 4), 0);
		TAP_CHECK(pdo >= 24 + (hp.hdgst ? 4 : 0));
		if (hp.hdgst)
			TAP_CHECK_EQ(le32_get(rbuf + 24), crc32c(rbuf, 24));
		if (hp.ddgst)
			TAP_CHECK_EQ(le32_get(rbuf + pdo + datal), crc32c(rbuf + pdo, datal));
		if (datao + datal > len)
			return;
		memcpy(got + datao, rbuf + pdo, datal);
		have += datal;
		last = flags & WIRE_FLAG_LAST_PDU;
		TAP_CHECK_EQ(last, have == len);
		TAP_CHECK_EQ(!!(flags & WIRE_FLAG_SUCCESS), last && success);
	}
	TAP_CHECK_MEM(got, disk + lba * 512u, len);
	if (!success)
		TAP_CHECK_EQ(expect_resp(cid), 0);
}

static void do_r2t_write(uint16_t cid, uint32_t lba, const uint8_t *data, uint32_t len,
			 uint32_t piece)
{
	struct wire_sqe sqe;
	uint16_t ttag;

	sqe_rw(&sqe, NVME_IO_WRITE, cid, lba, len, false);
	send_cmd(&sqe, NULL, 0, false);
	TAP_CHECK_EQ(recv_pdu(), WIRE_PDU_R2T);
	TAP_CHECK_EQ(le16_get(rbuf + 8), cid);
	TAP_CHECK_EQ(le32_get(rbuf + 12), 0);
	TAP_CHECK_EQ(le32_get(rbuf + 16), len);
	ttag = le16_get(rbuf + 10);
	for (uint32_t off = 0; off < len; off += piece) {
		uint32_t n = MIN(piece, len - off);

		send_h2c(cid, ttag, off, data + off, n, off + n == len);
	}
	TAP_CHECK_EQ(expect_resp(cid), 0);
}

/* ---- tests ------------------------------------------------------------------------------ */

static uint8_t wbuf[1u << 20];

static void test_icreq_icresp(void)
{
	start(NULL);
	icreq(0, false, false, 0);
	stop();
	TAP_CHECK_EQ(atomic_load(&destroyed), 1);
}

static void test_incapsule_write_and_read(void)
{
	struct wire_sqe sqe;

	start(NULL);
	icreq(0, false, false, 0);
	fill(wbuf, 4096, 1);
	sqe_rw(&sqe, NVME_IO_WRITE, 7, 8, 4096, true);
	send_cmd(&sqe, wbuf, 4096, false);
	TAP_CHECK_EQ(expect_resp(7), 0);
	TAP_CHECK_MEM(disk + 8 * 512, wbuf, 4096);
	do_read(8, 8, 4096, false);
	TAP_CHECK(atomic_load(&touched) >= 2);
	stop();
}

static void test_r2t_write(void)
{
	start(NULL);
	icreq(0, false, false, 0);
	fill(wbuf, 65536, 2);
	do_r2t_write(3, 100, wbuf, 65536, 32768);
	TAP_CHECK_MEM(disk + 100 * 512, wbuf, 65536);
	/* 300 KiB in MAXH2CDATA pieces, and in odd pieces crossing pool chunks */
	fill(wbuf, 300 * 1024, 3);
	do_r2t_write(4, 1000, wbuf, 300 * 1024, TGT_MAXH2CDATA);
	TAP_CHECK_MEM(disk + 1000 * 512, wbuf, 300 * 1024);
	fill(wbuf, 200 * 1024, 4);
	do_r2t_write(5, 2000, wbuf, 200 * 1024, 5000);
	TAP_CHECK_MEM(disk + 2000 * 512, wbuf, 200 * 1024);
	stop();
}

static void test_read_multi_c2h(void)
{
	start(NULL);
	icreq(0, false, false, 0);
	fill(disk + 50 * 512, 512 * 1024, 5);
	do_read(9, 50, 200 * 1024, false);
	do_read(10, 50, 512 * 1024, false);
	stop();
}

static void connect_cmd(uint16_t cid, uint16_t qid, uint16_t sqsize, bool disable_sqfc)
{
	struct wire_connect_cmd c = {0};
	static uint8_t data[1024];

	c.opc = NVME_FABRICS_OPC;
	le16_put(c.cid, cid);
	c.fctype = NVME_FCTYPE_CONNECT;
	le32_put(c.sgl1.length, sizeof(data));
	c.sgl1.type = WIRE_SGL_TYPE_DATA_BLOCK_OFFSET;
	le16_put(c.qid, qid);
	le16_put(c.sqsize, (uint16_t)(sqsize - 1));
	c.cattr = disable_sqfc ? WIRE_CONNECT_CATTR_DISABLE_SQFC : 0;
	send_cmd((const struct wire_sqe *)&c, data, sizeof(data), false);
	TAP_CHECK_EQ(expect_resp(cid), 0);
	TAP_CHECK_EQ(le32_get(rbuf + 8), 1); /* dw0 passed through */
}

static void test_read_success_flag(void)
{
	start(NULL);
	icreq(0, false, false, 0);
	connect_cmd(1, 1, 64, true);
	fill(disk, 8192, 6);
	do_read(2, 0, 8192, true);	 /* SUCCESS, no CapsuleResp */
	do_read(3, 4, 300 * 1024, true); /* the next PDU is this command's: none was left */
	stop();
}

/* The connection's sendmsg count, read on its own thread. */
static atomic_int syscalls_ready;
static uint64_t syscalls_seen;

static void read_syscalls(void *arg)
{
	(void)arg;
	syscalls_seen = tgt_conn_tx_syscalls(tconn);
	atomic_store(&syscalls_ready, 1);
}

static uint64_t tx_syscalls(void)
{
	atomic_store(&syscalls_ready, 0);
	loop_post(th.loop, read_syscalls, NULL);
	for (int i = 0; i < 5000 && !atomic_load(&syscalls_ready); i++)
		usleep(1000);
	TAP_CHECK(atomic_load(&syscalls_ready));
	return syscalls_seen;
}

/* `count` Reads of io_size bytes arriving in one piece (one loop turn). Interrupt mode, twelve
 * 4 KiB Reads: the responses of the first STREAM_EARLY_CMDS leave at once and the rest at the
 * end of the turn, two sendmsg in all (not one per STREAM_EARLY_CMDS). Busy-poll mode: one
 * (49 KiB, under STREAM_EARLY_LARGE_BYTES; test_stream's test_flush_early has the larger
 * turns, where the socket here could take less than asked). Either way every Read completes
 * with the right data. */
static void early_flush_run(bool poll, uint32_t io_size, uint16_t count, uint64_t want_sendmsgs)
{
	static uint8_t cmds[12 * 72];
	size_t n = 0;
	uint64_t before;

	busy_poll = poll;
	start(NULL);
	busy_poll = false;
	icreq(0, false, false, 0);
	connect_cmd(1, 1, 64, true);
	fill(disk, (size_t)count * io_size, 9);
	for (uint16_t i = 0; i < count; i++) {
		struct wire_sqe sqe;

		sqe_rw(&sqe, NVME_IO_READ, (uint16_t)(10 + i), (uint64_t)i * io_size / 512, io_size,
		       false);
		n += pdu_build_capsule_cmd(cmds + n, &sqe, 0, &hp);
	}
	before = tx_syscalls();
	TAP_CHECK_EQ(send_all(cmds, n), 0);
	for (uint16_t i = 0; i < count; i++) {
		TAP_CHECK_EQ(recv_pdu(), WIRE_PDU_C2H_DATA);
		TAP_CHECK_EQ(le16_get(rbuf + 8), 10 + i);
		TAP_CHECK(rbuf[1] & WIRE_FLAG_SUCCESS);
		TAP_CHECK_MEM(rbuf + rbuf[3], disk + (size_t)i * io_size, io_size);
	}
	TAP_CHECK_EQ(tx_syscalls() - before, want_sendmsgs);
	stop();
}

/* Interrupt mode: four 64 KiB in-capsule Writes sent in one piece. Each response leaves as
 * soon as its Write is done (four sendmsg), however the target's turns cut the stream: with
 * only the once-per-turn rule, Writes read in the same turn share a sendmsg. */
static void early_flush_big_writes(void)
{
	static uint8_t cmds[4 * (72 + 64 * 1024)];
	size_t n = 0;
	uint64_t before;

	start(NULL);
	icreq(0, false, false, 0);
	connect_cmd(1, 1, 64, true);
	fill(wbuf, 64 * 1024, 5);
	for (uint16_t i = 0; i < 4; i++) {
		struct wire_sqe sqe;

		sqe_rw(&sqe, NVME_IO_WRITE, (uint16_t)(20 + i), (uint32_t)i * 128, 64 * 1024, true);
		n += pdu_build_capsule_cmd(cmds + n, &sqe, 64 * 1024, &hp);
		memcpy(cmds + n, wbuf, 64 * 1024);
		n += 64 * 1024;
	}
	before = tx_syscalls();
	TAP_CHECK_EQ(send_all(cmds, n), 0);
	for (uint16_t i = 0; i < 4; i++)
		TAP_CHECK_EQ(expect_resp((uint16_t)(20 + i)), 0);
	TAP_CHECK_MEM(disk + 3 * 128 * 512, wbuf, 64 * 1024);
	TAP_CHECK_EQ(tx_syscalls() - before, 4);
	stop();
}

static void test_early_flush(void)
{
	early_flush_big_writes();
	early_flush_run(false, 4096, 12, 2);
	early_flush_run(true, 4096, 12, 1);
}

static void test_digests_and_hpda(void)
{
	struct wire_sqe sqe;

	start(NULL);
	icreq(7, true, true, 3);
	fill(wbuf, 8192, 7);
	sqe_rw(&sqe, NVME_IO_WRITE, 1, 16, 8192, true);
	send_cmd(&sqe, wbuf, 8192, false);
	TAP_CHECK_EQ(expect_resp(1), 0);
	TAP_CHECK_MEM(disk + 16 * 512, wbuf, 8192);
	fill(wbuf, 100000, 8);
	do_r2t_write(2, 300, wbuf, 100000, 40000);
	TAP_CHECK_MEM(disk + 300 * 512, wbuf, 100000);
	do_read(3, 300, 100000, false); /* C2HData PDO aligned to 32 bytes, digests checked */
	stop();
}

static void test_ddgst_error_keeps_connection(void)
{
	struct wire_sqe sqe;
	uint16_t ttag;
	uint8_t h[WIRE_PDO_MAX + 4], dg[4];
	size_t n;

	start(NULL);
	icreq(0, false, true, 0);
	memset(disk + 40 * 512, 0xee, 4096);
	fill(wbuf, 4096, 9);
	sqe_rw(&sqe, NVME_IO_WRITE, 11, 40, 4096, true);
	send_cmd(&sqe, wbuf, 4096, true);
	TAP_CHECK_EQ(expect_resp(11), NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_TRANSIENT_TRANSPORT));
	TAP_CHECK_EQ(disk[40 * 512], 0xee); /* not executed */
	/* same through H2CData */
	sqe_rw(&sqe, NVME_IO_WRITE, 12, 40, 4096, false);
	send_cmd(&sqe, NULL, 0, false);
	TAP_CHECK_EQ(recv_pdu(), WIRE_PDU_R2T);
	ttag = le16_get(rbuf + 10);
	n = pdu_build_h2c_data(h, 12, ttag, 0, 4096, true, &hp);
	TAP_CHECK_EQ(send_all(h, n), 0);
	TAP_CHECK_EQ(send_all(wbuf, 4096), 0);
	pdu_ddgst_put(dg, ~crc32c(wbuf, 4096));
	TAP_CHECK_EQ(send_all(dg, 4), 0);
	TAP_CHECK_EQ(expect_resp(12), NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_TRANSIENT_TRANSPORT));
	TAP_CHECK_EQ(disk[40 * 512], 0xee);
	/* the connection still works */
	send_cmd((sqe_rw(&sqe, NVME_IO_WRITE, 13, 40, 4096, true), &sqe), wbuf, 4096, false);
	TAP_CHECK_EQ(expect_resp(13), 0);
	TAP_CHECK_MEM(disk + 40 * 512, wbuf, 4096);
	stop();
}

static void test_command_errors_keep_connection(void)
{
	struct wire_sqe sqe;

	start(NULL);
	icreq(0, false, false, 0);
	sqe_rw(&sqe, 0x55, 1, 0, 0, false); /* unknown opcode */
	send_cmd(&sqe, NULL, 0, false);
	TAP_CHECK_EQ(expect_resp(1),
		     NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INVALID_OPCODE) | NVME_STATUS_DNR);
	/* unknown opcode carrying in-capsule data: the data is skipped */
	sqe_rw(&sqe, 0x55, 2, 0, 512, true);
	send_cmd(&sqe, wbuf, 512, false);
	TAP_CHECK_EQ(expect_resp(2),
		     NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INVALID_OPCODE) | NVME_STATUS_DNR);
	/* in-capsule beyond the admin limit before Connect: SGL error from the core */
	sqe_rw(&sqe, NVME_IO_WRITE, 3, 0, 12288, true);
	send_cmd(&sqe, wbuf, 12288, false);
	TAP_CHECK_EQ(expect_resp(3),
		     NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_SGL_INVALID_DATA) | NVME_STATUS_DNR);
	/* larger than the largest transfer */
	sqe_rw(&sqe, NVME_IO_READ, 4, 0, TGT_MAX_XFER + 4096, false);
	send_cmd(&sqe, NULL, 0, false);
	TAP_CHECK_EQ(expect_resp(4),
		     NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_SGL_INVALID_DATA) | NVME_STATUS_DNR);
	do_read(5, 0, 4096, false);
	stop();
}

/* MAXR2T counts R2Ts per command: with MAXR2T 0 (the Linux host's) every Write waiting for
 * data still gets its R2T at once, and their data may come in any order. */
static void test_r2t_per_command(void)
{
	struct wire_sqe sqe;
	uint16_t ttag[3];

	start(NULL);
	icreq(0, false, false, 0);
	fill(wbuf, 3 * 8192, 10);
	for (uint16_t cid = 1; cid <= 3; cid++) {
		sqe_rw(&sqe, NVME_IO_WRITE, cid, 16u * (cid - 1), 8192, false);
		send_cmd(&sqe, NULL, 0, false);
	}
	for (uint16_t cid = 1; cid <= 3; cid++) {
		TAP_CHECK_EQ(recv_pdu(), WIRE_PDU_R2T);
		TAP_CHECK_EQ(le16_get(rbuf + 8), cid);
		ttag[cid - 1] = le16_get(rbuf + 10);
		TAP_CHECK_EQ(le32_get(rbuf + 12), 0);	 /* R2TO */
		TAP_CHECK_EQ(le32_get(rbuf + 16), 8192); /* R2TL: the whole transfer */
	}
	TAP_CHECK(ttag[0] != ttag[1] && ttag[1] != ttag[2] && ttag[0] != ttag[2]);
	for (uint16_t cid = 3; cid >= 1; cid--) {
		send_h2c(cid, ttag[cid - 1], 0, wbuf + 8192u * (cid - 1), 8192, true);
		TAP_CHECK_EQ(expect_resp(cid), 0);
	}
	TAP_CHECK_MEM(disk, wbuf, 3 * 8192);
	stop();
}

/* ---- fatal errors: C2HTermReq with FES/FEI, then the socket closes ---- */

static void test_term_not_icreq_first(void)
{
	struct wire_sqe sqe;
	uint8_t h[80];

	start(NULL);
	sqe_rw(&sqe, NVME_IO_READ, 1, 0, 512, false);
	struct pdu_params p0 = {.ic_done = true};
	TAP_CHECK_EQ(send_all(h, pdu_build_capsule_cmd(h, &sqe, 0, &p0)), 0);
	expect_term(WIRE_FES_PDU_SEQUENCE, 0);
	stop();
}

static void test_term_pfv(void)
{
	uint8_t b[128];

	start(NULL);
	pdu_build_icreq(b, 0, false, false, 0);
	le16_put(b + 8, 1);
	TAP_CHECK_EQ(send_all(b, sizeof(b)), 0);
	expect_term(WIRE_FES_UNSUPPORTED_PARAM, 8);
	stop();
}

static void test_term_second_icreq(void)
{
	uint8_t b[128];

	start(NULL);
	icreq(0, false, false, 0);
	pdu_build_icreq(b, 0, false, false, 0);
	TAP_CHECK_EQ(send_all(b, sizeof(b)), 0);
	expect_term(WIRE_FES_PDU_SEQUENCE, 0);
	stop();
}

static void test_term_unknown_type(void)
{
	uint8_t b[8] = {0x0f, 0, 8, 0, 8, 0, 0, 0};

	start(NULL);
	icreq(0, false, false, 0);
	TAP_CHECK_EQ(send_all(b, sizeof(b)), 0);
	expect_term(WIRE_FES_INVALID_HEADER_FIELD, 0);
	stop();
}

static void test_term_hdgst(void)
{
	struct wire_sqe sqe;
	uint8_t h[80];
	size_t n;

	start(NULL);
	icreq(0, true, false, 0);
	sqe_rw(&sqe, NVME_IO_READ, 1, 0, 512, false);
	n = pdu_build_capsule_cmd(h, &sqe, 0, &hp);
	h[n - 1] ^= 0x40;
	TAP_CHECK_EQ(send_all(h, n), 0);
	expect_term(WIRE_FES_HDGST, 0);
	stop();
}

/* Start a write needing an R2T and return the TTAG. */
static uint16_t r2t_for(uint16_t cid, uint32_t len)
{
	struct wire_sqe sqe;

	sqe_rw(&sqe, NVME_IO_WRITE, cid, 0, len, false);
	send_cmd(&sqe, NULL, 0, false);
	TAP_CHECK_EQ(recv_pdu(), WIRE_PDU_R2T);
	return le16_get(rbuf + 10);
}

static void test_term_unsolicited_h2c(void)
{
	start(NULL);
	icreq(0, false, false, 0);
	send_h2c(1, 0, 0, wbuf, 4096, true); /* no command at all */
	expect_term(WIRE_FES_INVALID_HEADER_FIELD, 10);
	stop();

	start(NULL);
	icreq(0, false, false, 0);
	send_h2c(1, 5000, 0, wbuf, 4096, true); /* TTAG beyond the slots */
	expect_term(WIRE_FES_INVALID_HEADER_FIELD, 10);
	stop();
}

static void test_term_h2c_bad_cccid(void)
{
	uint16_t ttag;

	start(NULL);
	icreq(0, false, false, 0);
	ttag = r2t_for(1, 8192);
	send_h2c(2, ttag, 0, wbuf, 4096, false);
	expect_term(WIRE_FES_INVALID_HEADER_FIELD, 8);
	stop();
}

static void test_term_h2c_out_of_range(void)
{
	uint16_t ttag;

	start(NULL);
	icreq(0, false, false, 0);
	ttag = r2t_for(1, 8192);
	send_h2c(1, ttag, 4096, wbuf, 4096, true); /* DATAO skips ahead */
	expect_term(WIRE_FES_DATA_OUT_OF_RANGE, 0);
	stop();

	start(NULL);
	icreq(0, false, false, 0);
	ttag = r2t_for(1, 8192);
	send_h2c(1, ttag, 0, wbuf, 4096, false);
	send_h2c(1, ttag, 4096, wbuf, 8192, true); /* past the end */
	expect_term(WIRE_FES_DATA_OUT_OF_RANGE, 0);
	stop();

	start(NULL);
	icreq(0, false, false, 0);
	ttag = r2t_for(1, 8192);
	send_h2c(1, ttag, 0, wbuf, 8192, true);
	TAP_CHECK_EQ(expect_resp(1), 0);
	send_h2c(1, ttag, 0, wbuf, 4096, true); /* R2T already satisfied */
	expect_term(WIRE_FES_INVALID_HEADER_FIELD, 10);
	stop();
}

static void test_term_queue_depth(void)
{
	struct wire_sqe sqe;

	start(NULL);
	icreq(0, false, false, 0);
	/* writes waiting for data hold their slots; one more than the admin depth */
	for (int i = 0; i <= TGT_ADMIN_QUEUE_DEPTH; i++) {
		sqe_rw(&sqe, NVME_IO_WRITE, (uint16_t)i, 0, 4096, false);
		send_cmd(&sqe, NULL, 0, false);
	}
	for (int i = 0; i < TGT_ADMIN_QUEUE_DEPTH; i++) /* one R2T for each that fits */
		TAP_CHECK_EQ(recv_pdu(), WIRE_PDU_R2T);
	expect_term(WIRE_FES_PDU_SEQUENCE, 0);
	stop();
}

static void test_queue_depth_follows_connect(void)
{
	struct wire_sqe sqe;

	start(NULL);
	icreq(0, false, false, 63);
	connect_cmd(1, 1, 64, false);
	for (int i = 0; i < 64; i++) {
		sqe_rw(&sqe, NVME_IO_WRITE, (uint16_t)(100 + i), 0, 4096, false);
		send_cmd(&sqe, NULL, 0, false);
	}
	for (int i = 0; i < 64; i++)
		TAP_CHECK_EQ(recv_pdu(), WIRE_PDU_R2T);
	TAP_CHECK(quiet_for(50));
	sqe_rw(&sqe, NVME_IO_WRITE, 999, 0, 4096, false);
	send_cmd(&sqe, NULL, 0, false);
	expect_term(WIRE_FES_PDU_SEQUENCE, 0);
	stop();

	/* a queue smaller than the preallocated admin depth is enforced too */
	start(NULL);
	icreq(0, false, false, 7);
	connect_cmd(1, 1, 4, false);
	for (int i = 0; i < 4; i++) {
		sqe_rw(&sqe, NVME_IO_WRITE, (uint16_t)(10 + i), 0, 4096, false);
		send_cmd(&sqe, NULL, 0, false);
		TAP_CHECK_EQ(recv_pdu(), WIRE_PDU_R2T);
	}
	sqe_rw(&sqe, NVME_IO_WRITE, 20, 0, 4096, false);
	send_cmd(&sqe, NULL, 0, false);
	expect_term(WIRE_FES_PDU_SEQUENCE, 0);
	stop();
}

/* ---- timeouts and teardown ---- */

static struct tgt_conn_opts fast_opts(void)
{
	struct tgt_conn_opts o;

	tgt_conn_opts_default(&o);
	o.ic_timeout_ms = 150;
	o.idle_timeout_ms = 150;
	o.tick_ms = 20;
	return o;
}

static void test_icreq_timeout(void)
{
	struct tgt_conn_opts o = fast_opts();

	start(&o);
	TAP_CHECK(peer_closed());
	stop();
	TAP_CHECK_EQ(atomic_load(&destroyed), 1);
}

static void test_half_header_timeout(void)
{
	struct tgt_conn_opts o = fast_opts();
	uint8_t b[128];

	start(&o);
	pdu_build_icreq(b, 0, false, false, 0);
	TAP_CHECK_EQ(send_all(b, 40), 0); /* the rest never comes */
	TAP_CHECK(peer_closed());
	stop();
}

static void test_idle_between_pdus_is_fine(void)
{
	struct tgt_conn_opts o = fast_opts();

	start(&o);
	icreq(0, false, false, 0);
	connect_cmd(2, 1, 32, false);
	usleep(400000); /* longer than the idle timeout, but no PDU is pending */
	do_read(1, 0, 512, false);
	stop();
}

/* ICReq, then no Connect: the queue would hold a connection slot forever. */
static void test_no_connect_closed(void)
{
	struct tgt_conn_opts o = fast_opts();

	start(&o);
	icreq(0, false, false, 0);
	for (int i = 0; i < 100 && atomic_load(&destroyed) == 0; i++)
		usleep(10000);
	TAP_CHECK_EQ(atomic_load(&destroyed), 1);
	stop();
}

static void test_host_eof(void)
{
	start(NULL);
	icreq(0, false, false, 0);
	close(hfd);
	hfd = -1;
	for (int i = 0; i < 100 && atomic_load(&destroyed) == 0; i++)
		usleep(10000);
	TAP_CHECK_EQ(atomic_load(&destroyed), 1);
	stop();
}

static void test_peer_stops_reading(void)
{
	struct tgt_conn_opts o = fast_opts();
	struct wire_sqe sqe;
	int sz = 64 * 1024;

	o.tx_stall_ms = 200;
	o.tx_max_bytes = 256 * 1024;
	start(&o);
	setsockopt(hfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	icreq(0, false, false, 0);
	for (uint16_t cid = 1; cid <= 8; cid++) {
		sqe_rw(&sqe, NVME_IO_READ, cid, 0, 512 * 1024, false);
		send_cmd(&sqe, NULL, 0, false);
	}
	/* we never read: the target must give up instead of queueing forever */
	for (int i = 0; i < 200 && atomic_load(&destroyed) == 0; i++)
		usleep(10000);
	TAP_CHECK_EQ(atomic_load(&destroyed), 1);
	stop();
}

static int second_fd;
static atomic_int second_created;

/* On the loop thread: a second connection on the same loop. */
static void create_second(void *arg)
{
	atomic_store(&second_created, tgt_conn_create(&th, NULL, second_fd, NULL, NULL) == 0);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A host that stopped reading sends a bad PDU: the TermReq must not hold the loop thread
 * (it used to wait up to 300 ms for socket space), other connections are served meanwhile. */
static void test_term_to_full_socket_does_not_stall_loop(void)
{
	struct timeval tv = {.tv_sec = 3};
	uint8_t bad[8] = {0x0f, 0, 8, 0, 8, 0, 0, 0};
	int small = 4096, sv[2], hfd_a, hfd_b;
	struct pdu_params hp_b;
	struct wire_sqe sqe;

	/* connection A: start() with a tiny target send buffer and host receive buffer */
	start(NULL);
	hfd_a = hfd;
	setsockopt(hfd_a, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(tfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	/* connection B on the same loop; the loop thread runs, so create it there */
	TAP_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	hfd_b = sv[0];
	setsockopt(hfd_b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	second_fd = sv[1];
	atomic_store(&second_created, 0);
	loop_post(th.loop, create_second, NULL);
	for (int i = 0; i < 100 && atomic_load(&second_created) == 0; i++)
		usleep(1000);
	TAP_CHECK_EQ(atomic_load(&second_created), 1);
	hfd = hfd_b;
	icreq(0, false, false, 0);
	hp_b = hp;
	do_read(1, 0, 512, false);

	/* A: reads that fill the target's socket, never read by the host */
	hfd = hfd_a;
	icreq(0, false, false, 0);
	for (uint16_t cid = 1; cid <= 2; cid++) {
		sqe_rw(&sqe, NVME_IO_READ, cid, 0, 256 * 1024, false);
		send_cmd(&sqe, NULL, 0, false);
	}
	/* the target's end of A stays unwritable: its send buffer is full */
	struct pollfd pa = {.fd = tfd, .events = POLLOUT};
	bool full = false;
	for (int i = 0; i < 200 && !full; i++) {
		usleep(5000);
		full = poll(&pa, 1, 0) == 0;
	}
	TAP_CHECK(full);
	TAP_CHECK_EQ(send_all(bad, sizeof(bad)), 0);
	usleep(5000); /* the loop thread takes A's bad PDU first */

	/* B is answered at once, not after a stall */
	hfd = hfd_b;
	hp = hp_b;
	uint64_t t0 = mono_ms();
	do_read(2, 8, 512, false);
	uint64_t dt = mono_ms() - t0;
	TAP_CHECK(dt < 100);
	printf("# second connection answered in %llu ms\n", (unsigned long long)dt);

	/* A is closed (its unread bytes make that a reset or an EOF) */
	for (int i = 0; i < 200 && atomic_load(&destroyed) == 0; i++)
		usleep(5000);
	TAP_CHECK_EQ(atomic_load(&destroyed), 1);
	close(hfd_a);
	stop(); /* closes hfd (B) */
}

static void release_held(void *arg)
{
	struct tgt_req *r = held;

	held = NULL;
	if (r)
		tgt_req_complete(r);
}

static void test_close_waits_for_core(void)
{
	struct wire_sqe sqe;

	start(NULL);
	icreq(0, false, false, 0);
	sqe_rw(&sqe, OPC_HOLD, 1, 0, 0, false);
	send_cmd(&sqe, NULL, 0, false);
	usleep(50000);
	close(hfd);
	hfd = -1;
	usleep(100000);
	TAP_CHECK_EQ(atomic_load(&destroyed), 0); /* the core still holds a request */
	loop_post(th.loop, release_held, NULL);
	for (int i = 0; i < 100 && atomic_load(&destroyed) == 0; i++)
		usleep(10000);
	TAP_CHECK_EQ(atomic_load(&destroyed), 1);
	stop();
}

static void test_pool(void)
{
	struct tgt_pool p;
	struct iovec iov[5];

	TAP_CHECK_EQ(tgt_pool_init(&p, 4096, 2, 5), 0);
	TAP_CHECK_EQ(p.total, 2);
	TAP_CHECK_EQ(tgt_pool_get(&p, 10000, iov, 4), 3);
	TAP_CHECK_EQ(iov[0].iov_len, 4096);
	TAP_CHECK_EQ(iov[2].iov_len, 10000 - 8192);
	TAP_CHECK_EQ((uintptr_t)iov[1].iov_base % 4096, 0);
	TAP_CHECK_EQ(tgt_pool_get(&p, 5 * 4096, iov, 4), -E2BIG);
	TAP_CHECK_EQ(tgt_pool_get(&p, 3 * 4096, iov + 3, 1), -E2BIG);
	TAP_CHECK_EQ(tgt_pool_get(&p, 3 * 4096, iov, 3), -ENOMEM); /* limit 5, 3 out */
	tgt_pool_put(&p, iov, 3);
	TAP_CHECK_EQ(p.total, 5); /* the failed get grew the pool to its limit */
	TAP_CHECK_EQ(p.nfree, 5);
	TAP_CHECK_EQ(tgt_pool_get(&p, 5 * 4096, iov, 5), 5);
	TAP_CHECK_EQ(p.nfree, 0);
	tgt_pool_put(&p, iov, 5);
	tgt_pool_fini(&p);
}

int main(void)
{
	TAP_RUN(test_pool);
	TAP_RUN(test_icreq_icresp);
	TAP_RUN(test_incapsule_write_and_read);
	TAP_RUN(test_r2t_write);
	TAP_RUN(test_read_multi_c2h);
	TAP_RUN(test_read_success_flag);
	TAP_RUN(test_early_flush);
	TAP_RUN(test_digests_and_hpda);
	TAP_RUN(test_ddgst_error_keeps_connection);
	TAP_RUN(test_command_errors_keep_connection);
	TAP_RUN(test_r2t_per_command);
	TAP_RUN(test_term_not_icreq_first);
	TAP_RUN(test_term_pfv);
	TAP_RUN(test_term_second_icreq);
	TAP_RUN(test_term_unknown_type);
	TAP_RUN(test_term_hdgst);
	TAP_RUN(test_term_unsolicited_h2c);
	TAP_RUN(test_term_h2c_bad_cccid);
	TAP_RUN(test_term_h2c_out_of_range);
	TAP_RUN(test_term_queue_depth);
	TAP_RUN(test_queue_depth_follows_connect);
	TAP_RUN(test_icreq_timeout);
	TAP_RUN(test_half_header_timeout);
	TAP_RUN(test_idle_between_pdus_is_fine);
	TAP_RUN(test_no_connect_closed);
	TAP_RUN(test_host_eof);
	TAP_RUN(test_peer_stops_reading);
	TAP_RUN(test_term_to_full_socket_does_not_stall_loop);
	TAP_RUN(test_close_waits_for_core);
	return tap_done();
}
