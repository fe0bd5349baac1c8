/* Host queue connection (src/host/conn.c) against a scripted fake controller over a
 * socketpair: the controller side is written here with the proto builders, one PDU at a time,
 * single-threaded (a reply the host has not asked for yet simply waits in the socket). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "common/le.h"
#include "fake_ctrl.h"
#include "host/conn.h"
#include "proto/crc32c.h"
#include "proto/nvme.h"
#include "proto/pdu.h"

struct fake {
	int fd;			/* controller end */
	struct host_conn *conn; /* host end */
	struct pdu_params p;	/* what the fake controller uses to build PDUs */
};

/* A PDU the host sent, parsed. */
struct fake_pdu {
	uint8_t buf[65536 + 256];
	uint32_t plen;
	uint8_t type, flags, hlen, pdo;
	const uint8_t *data;
	uint32_t datal;
};

static int fake_recv(struct fake *f, struct fake_pdu *pdu)
{
	int r = fake_ctrl_read_full(f->fd, pdu->buf, 8, 2000);

	if (r < 0)
		return r;
	pdu->type = pdu->buf[0];
	pdu->flags = pdu->buf[1];
	pdu->hlen = pdu->buf[2];
	pdu->pdo = pdu->buf[3];
	pdu->plen = le32_get(pdu->buf + 4);
	if (pdu->plen < 8 || pdu->plen > sizeof(pdu->buf))
		return -EPROTO;
	r = fake_ctrl_read_full(f->fd, pdu->buf + 8, pdu->plen - 8, 2000);
	if (r < 0)
		return r;
	pdu->data = NULL;
	pdu->datal = 0;
	if (pdu->pdo) {
		pdu->data = pdu->buf + pdu->pdo;
		pdu->datal = pdu->plen - pdu->pdo - (pdu->flags & WIRE_FLAG_DDGSTF ? 4 : 0);
	}
	return 0;
}

static void fake_send(struct fake *f, const void *buf, size_t len)
{
	TAP_CHECK(write(f->fd, buf, len) == (ssize_t)len);
}

static void fake_send_icresp(struct fake *f, uint8_t cpda, bool hd, bool dd, uint32_t maxh2c)
{
	uint8_t b[sizeof(union wire_pdu)];
	size_t n = pdu_build_icresp(b, cpda, hd, dd, maxh2c);

	fake_send(f, b, n);
}

static void fake_send_resp(struct fake *f, uint16_t cid, uint16_t status, uint32_t dw0)
{
	uint8_t b[sizeof(union wire_pdu)];

	fake_send(f, b, fake_ctrl_build_resp(b, &f->p, cid, status, dw0));
}

static void fake_send_c2h(struct fake *f, uint16_t cid, uint32_t datao, const void *data,
			  uint32_t len, bool last, bool success, bool corrupt_ddgst)
{
	uint8_t b[WIRE_PDO_MAX + 4];
	uint8_t dg[4];
	size_t n = pdu_build_c2h_data(b, cid, datao, len, last, success, &f->p);

	fake_send(f, b, n);
	fake_send(f, data, len);
	if (f->p.ddgst) {
		pdu_ddgst_put(dg, crc32c(data, len) ^ (corrupt_ddgst ? 1u : 0u));
		fake_send(f, dg, 4);
	}
}

static void fake_send_r2t(struct fake *f, uint16_t cid, uint16_t ttag, uint32_t r2to, uint32_t r2tl)
{
	uint8_t b[sizeof(union wire_pdu)];
	size_t n = pdu_build_r2t(b, cid, ttag, r2to, r2tl, &f->p);

	fake_send(f, b, n);
}

/* Open a host connection on a socketpair and, unless icresp is false, complete ICReq/ICResp. */
static int fake_open(struct fake *f, bool hd, bool dd, uint32_t incap, bool icresp)
{
	struct host_conn_opts o = {.qid = 1,
				   .nr_slots = 15,
				   .hdgst = hd,
				   .ddgst = dd,
				   .incapsule_max = incap,
				   .name = "test q1"};
	int hfd = -1;

	memset(f, 0, sizeof(*f));
	if (fake_ctrl_socketpair(&hfd, &f->fd, &f->p) < 0)
		return -errno;
	f->p.hdgst = hd;
	f->p.ddgst = dd;
	if (host_conn_open(hfd, &o, &f->conn) < 0)
		return -ENOMEM;
	if (!icresp)
		return 0;
	fake_send_icresp(f, 0, hd, dd, 8192);
	int r = host_conn_connect(f->conn, 2000);
	struct fake_pdu *ic = malloc(sizeof(*ic));

	if (r == 0 && fake_recv(f, ic) == 0) {
		TAP_CHECK_EQ(ic->type, WIRE_PDU_ICREQ);
		TAP_CHECK_EQ(ic->plen, 128);
		TAP_CHECK_EQ(le16_get(ic->buf + 8), 0); /* PFV */
		TAP_CHECK_EQ(ic->buf[10], 0);		/* HPDA */
		TAP_CHECK_EQ(ic->buf[11], (hd ? 1 : 0) | (dd ? 2 : 0));
	} else {
		r = r ? r : -EIO;
	}
	free(ic);
	return r;
}

static void fake_close(struct fake *f)
{
	host_conn_close(f->conn);
	close(f->fd);
}

struct result {
	int calls;
	struct nvtcp_cpl cpl;
};

static void result_cb(void *arg, const struct nvtcp_cpl *cpl)
{
	struct result *res = arg;

	res->calls++;
	res->cpl = *cpl;
}

static int submit_read(struct fake *f, void *buf, uint32_t len, struct result *res)
{
	struct wire_sqe sqe = {.opc = NVME_IO_READ};
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	le32_put(sqe.nsid, 1);
	return host_conn_submit(f->conn, &sqe, &iov, 1, false, result_cb, res);
}

/* Submit a read and take its CapsuleCmd off the wire; returns the command's cid. */
static uint16_t submit_read_cid(struct fake *f, struct fake_pdu *pdu, void *buf, uint32_t len,
				struct result *res)
{
	TAP_CHECK_EQ(submit_read(f, buf, len, res), 0);
	TAP_CHECK_EQ(fake_recv(f, pdu), 0);
	return le16_get(pdu->buf + 10);
}

static int submit_write(struct fake *f, const void *buf, uint32_t len, struct result *res)
{
	struct wire_sqe sqe = {.opc = NVME_IO_WRITE};
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	le32_put(sqe.nsid, 1);
	return host_conn_submit(f->conn, &sqe, &iov, 1, true, result_cb, res);
}

/* Poll the host until res has a completion (or the queue fails and stays failed). */
static void host_drive(struct fake *f, struct result *res)
{
	for (int i = 0; i < 200 && res->calls == 0; i++)
		host_conn_wait(f->conn, 10);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 + seed);
}

/* ---- cases ------------------------------------------------------------------------------- */

static void test_read_c2h_placement(void)
{
	struct fake f;
	struct fake_pdu *cmd = malloc(sizeof(*cmd));
	uint8_t src[8192], dst[8192] = {0};
	struct result res = {0};

	TAP_CHECK_EQ(fake_open(&f, false, false, 16384, true), 0);
	fill(src, sizeof(src), 3);
	TAP_CHECK_EQ(submit_read(&f, dst, sizeof(dst), &res), 0);
	TAP_CHECK_EQ(fake_recv(&f, cmd), 0);
	TAP_CHECK_EQ(cmd->type, WIRE_PDU_CAPSULE_CMD);
	const struct wire_sqe *sqe = (const struct wire_sqe *)(cmd->buf + 8);
	uint16_t cid = le16_get(sqe->cid);
	TAP_CHECK_EQ(sqe->flags & WIRE_SQE_PSDT_MASK, WIRE_SQE_PSDT_SGL);
	TAP_CHECK_EQ(sqe->sgl1.type, WIRE_SGL_TYPE_TRANSPORT_DATA);
	TAP_CHECK_EQ(le32_get(sqe->sgl1.length), sizeof(dst));
	TAP_CHECK_EQ(cmd->datal, 0);
	/* two C2HData, then a CapsuleResp */
	fake_send_c2h(&f, cid, 0, src, 4096, false, false, false);
	fake_send_c2h(&f, cid, 4096, src + 4096, 4096, true, false, false);
	fake_send_resp(&f, cid, 0, 0x1234);
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.calls, 1);
	TAP_CHECK_EQ(res.cpl.err, 0);
	TAP_CHECK_EQ(res.cpl.status, 0);
	TAP_CHECK_EQ(res.cpl.dw0, 0x1234);
	TAP_CHECK_MEM(dst, src, sizeof(src));
	TAP_CHECK_EQ(f.conn->outstanding, 0);
	fake_close(&f);
	free(cmd);
}

static void test_read_success_flag(void)
{
	struct fake f;
	struct fake_pdu *cmd = malloc(sizeof(*cmd));
	uint8_t src[4096], dst[4096] = {0};
	struct result res = {0};

	TAP_CHECK_EQ(fake_open(&f, false, false, 16384, true), 0);
	fill(src, sizeof(src), 9);
	TAP_CHECK_EQ(submit_read(&f, dst, sizeof(dst), &res), 0);
	TAP_CHECK_EQ(fake_recv(&f, cmd), 0);
	uint16_t cid = le16_get(cmd->buf + 8 + 2);
	fake_send_c2h(&f, cid, 0, src, sizeof(src), true, true, false);
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.calls, 1);
	TAP_CHECK_EQ(res.cpl.status, 0);
	TAP_CHECK_EQ(res.cpl.err, 0);
	TAP_CHECK_MEM(dst, src, sizeof(src));
	/* the queue still works: a second command completes normally */
	struct result res2 = {0};
	TAP_CHECK_EQ(submit_read(&f, dst, 512, &res2), 0);
	TAP_CHECK_EQ(fake_recv(&f, cmd), 0);
	cid = le16_get(cmd->buf + 8 + 2);
	fake_send_c2h(&f, cid, 0, src, 512, true, false, false);
	fake_send_resp(&f, cid, NVME_SC_LBA_RANGE, 0);
	host_drive(&f, &res2);
	TAP_CHECK_EQ(res2.calls, 1);
	TAP_CHECK_EQ(res2.cpl.status, NVME_SC_LBA_RANGE);
	fake_close(&f);
	free(cmd);
}

static void test_write_incapsule(void)
{
	struct fake f;
	struct fake_pdu *cmd = malloc(sizeof(*cmd));
	uint8_t src[8192];
	struct result res = {0};

	TAP_CHECK_EQ(fake_open(&f, false, false, 16384, true), 0);
	fill(src, sizeof(src), 5);
	TAP_CHECK_EQ(submit_write(&f, src, sizeof(src), &res), 0);
	TAP_CHECK_EQ(fake_recv(&f, cmd), 0);
	const struct wire_sqe *sqe = (const struct wire_sqe *)(cmd->buf + 8);
	TAP_CHECK_EQ(sqe->sgl1.type, WIRE_SGL_TYPE_DATA_BLOCK_OFFSET);
	TAP_CHECK_EQ(le32_get(sqe->sgl1.length), sizeof(src));
	TAP_CHECK_EQ(cmd->datal, sizeof(src));
	if (cmd->datal == sizeof(src))
		TAP_CHECK_MEM(cmd->data, src, sizeof(src));
	fake_send_resp(&f, le16_get(sqe->cid), 0, 0);
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.calls, 1);
	TAP_CHECK_EQ(res.cpl.status, 0);
	fake_close(&f);
	free(cmd);
}

/* Write beyond the in-capsule limit: no data in the capsule, then R2T answered by H2CData of at
 * most MAXH2CDATA (8192 here) at the right offsets with the R2T's TTAG. */
static void test_write_r2t(void)
{
	struct fake f;
	struct fake_pdu *pdu = malloc(sizeof(*pdu));
	static uint8_t src[20480], got[20480];
	struct result res = {0};
	uint32_t off = 0;
	int pdus = 0;

	TAP_CHECK_EQ(fake_open(&f, false, false, 16384, true), 0);
	fill(src, sizeof(src), 11);
	TAP_CHECK_EQ(submit_write(&f, src, sizeof(src), &res), 0);
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	const struct wire_sqe *sqe = (const struct wire_sqe *)(pdu->buf + 8);
	uint16_t cid = le16_get(sqe->cid);
	TAP_CHECK_EQ(sqe->sgl1.type, WIRE_SGL_TYPE_TRANSPORT_DATA);
	TAP_CHECK_EQ(pdu->datal, 0);
	fake_send_r2t(&f, cid, 0x77, 0, sizeof(src));
	for (int i = 0; i < 20 && off < sizeof(src); i++) {
		host_conn_wait(f.conn, 10);
		if (fake_recv(&f, pdu) < 0)
			break;
		TAP_CHECK_EQ(pdu->type, WIRE_PDU_H2C_DATA);
		TAP_CHECK_EQ(le16_get(pdu->buf + 8), cid);
		TAP_CHECK_EQ(le16_get(pdu->buf + 10), 0x77);
		TAP_CHECK_EQ(le32_get(pdu->buf + 12), off);
		TAP_CHECK(pdu->datal <= 8192);
		if (off + pdu->datal > sizeof(src))
			break;
		memcpy(got + off, pdu->data, pdu->datal);
		off += pdu->datal;
		pdus++;
		TAP_CHECK_EQ(!!(pdu->flags & WIRE_FLAG_LAST_PDU), off == sizeof(src));
	}
	TAP_CHECK_EQ(off, sizeof(src));
	TAP_CHECK_EQ(pdus, 3);
	TAP_CHECK_MEM(got, src, sizeof(src));
	fake_send_resp(&f, cid, 0, 0);
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.calls, 1);
	TAP_CHECK_EQ(res.cpl.status, 0);
	fake_close(&f);
	free(pdu);
}

/* Header and data digests: in-capsule data digest, one H2CData per R2T with its digest,
 * C2HData digest checked; a bad data digest fails only that command. */
static void test_digests(void)
{
	struct fake f;
	struct fake_pdu *pdu = malloc(sizeof(*pdu));
	static uint8_t src[32768], dst[32768];
	struct result res = {0};

	TAP_CHECK_EQ(fake_open(&f, true, true, 4096, true), 0);
	fill(src, sizeof(src), 1);
	/* R2T write, MAXH2CDATA 8192 < 32 KiB would split; use a 8 KiB write: exactly one PDU */
	TAP_CHECK_EQ(submit_write(&f, src, 8192, &res), 0);
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	TAP_CHECK(pdu->flags & WIRE_FLAG_HDGSTF);
	TAP_CHECK_EQ(le32_get(pdu->buf + 72), crc32c(pdu->buf, 72));
	uint16_t cid = le16_get(pdu->buf + 8 + 2);
	fake_send_r2t(&f, cid, 3, 0, 8192);
	host_conn_wait(f.conn, 10);
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	TAP_CHECK_EQ(pdu->type, WIRE_PDU_H2C_DATA);
	TAP_CHECK_EQ(pdu->datal, 8192);
	TAP_CHECK(pdu->flags & WIRE_FLAG_LAST_PDU);
	TAP_CHECK(pdu->flags & WIRE_FLAG_DDGSTF);
	TAP_CHECK_EQ(le32_get(pdu->buf + 24), crc32c(pdu->buf, 24));
	TAP_CHECK_EQ(le32_get(pdu->buf + pdu->plen - 4), crc32c(src, 8192));
	fake_send_resp(&f, cid, 0, 0);
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.calls, 1);
	TAP_CHECK_EQ(res.cpl.status, 0);

	/* in-capsule write carries a data digest */
	memset(&res, 0, sizeof(res));
	TAP_CHECK_EQ(submit_write(&f, src, 4096, &res), 0);
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	TAP_CHECK_EQ(pdu->datal, 4096);
	TAP_CHECK_EQ(le32_get(pdu->buf + pdu->plen - 4), crc32c(src, 4096));
	fake_send_resp(&f, le16_get(pdu->buf + 10), 0, 0);
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.cpl.status, 0);

	/* read with digests, 32 KiB straight into place */
	memset(&res, 0, sizeof(res));
	TAP_CHECK_EQ(submit_read(&f, dst, sizeof(dst), &res), 0);
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	cid = le16_get(pdu->buf + 10);
	fake_send_c2h(&f, cid, 0, src, sizeof(src), true, false, false);
	fake_send_resp(&f, cid, 0, 0);
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.cpl.status, 0);
	TAP_CHECK_MEM(dst, src, sizeof(src));

	/* corrupted data digest: that command fails (transient transport error), queue lives */
	memset(&res, 0, sizeof(res));
	TAP_CHECK_EQ(submit_read(&f, dst, 4096, &res), 0);
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	cid = le16_get(pdu->buf + 10);
	fake_send_c2h(&f, cid, 0, src, 4096, true, false, true);
	fake_send_resp(&f, cid, 0, 0);
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.calls, 1);
	TAP_CHECK_EQ(res.cpl.status, NVME_SC_TRANSIENT_TRANSPORT);
	TAP_CHECK(!host_conn_is_failed(f.conn));
	fake_close(&f);
	free(pdu);
}

/* Responses in reverse order reach the right callbacks and buffers. */
static void test_cid_matching(void)
{
	struct fake f;
	struct fake_pdu *pdu = malloc(sizeof(*pdu));
	uint8_t a[512], b[512], sa[512], sb[512];
	struct result ra = {0}, rb = {0};

	TAP_CHECK_EQ(fake_open(&f, false, false, 16384, true), 0);
	fill(sa, sizeof(sa), 21);
	fill(sb, sizeof(sb), 77);
	uint16_t ca = submit_read_cid(&f, pdu, a, sizeof(a), &ra);
	uint16_t cb = submit_read_cid(&f, pdu, b, sizeof(b), &rb);
	TAP_CHECK(ca != cb);
	fake_send_c2h(&f, cb, 0, sb, sizeof(sb), true, false, false);
	fake_send_resp(&f, cb, 0, 0xbb);
	fake_send_c2h(&f, ca, 0, sa, sizeof(sa), true, false, false);
	fake_send_resp(&f, ca, 0, 0xaa);
	for (int i = 0; i < 100 && (ra.calls == 0 || rb.calls == 0); i++)
		host_conn_wait(f.conn, 10);
	TAP_CHECK_EQ(ra.calls, 1);
	TAP_CHECK_EQ(rb.calls, 1);
	TAP_CHECK_EQ(ra.cpl.dw0, 0xaa);
	TAP_CHECK_EQ(rb.cpl.dw0, 0xbb);
	TAP_CHECK_MEM(a, sa, sizeof(a));
	TAP_CHECK_MEM(b, sb, sizeof(b));
	fake_close(&f);
	free(pdu);
}

/* Once every command outstanding at the start of a poll has completed, the controller has
 * nothing more to send: the poll stops receiving without another read (that could only say
 * EAGAIN). What does arrive anyway (here a C2HTermReq behind the last CapsuleResp) stays in
 * the ring and is handled by the next wait without blocking. */
static void test_rx_stops_when_all_done(void)
{
	struct fake f;
	struct fake_pdu *pdu = malloc(sizeof(*pdu));
	uint8_t a[512], b[512], c[512], src[512], term[PDU_TERM_REQ_MAX];
	struct result ra = {0}, rb = {0}, rc = {0};
	struct pdu_err err = {.fes = WIRE_FES_INVALID_HEADER_FIELD, .fei = 0};
	uint64_t reads;

	TAP_CHECK_EQ(fake_open(&f, false, false, 16384, true), 0);
	fill(src, sizeof(src), 5);
	uint16_t ca = submit_read_cid(&f, pdu, a, sizeof(a), &ra);
	uint16_t cb = submit_read_cid(&f, pdu, b, sizeof(b), &rb);
	/* a completes by C2HData SUCCESS, b by CapsuleResp; one wait sees both, one read */
	fake_send_c2h(&f, ca, 0, src, sizeof(src), true, true, false);
	fake_send_c2h(&f, cb, 0, src, sizeof(src), true, false, false);
	fake_send_resp(&f, cb, 0, 0);
	reads = f.conn->stream.rx_syscalls;
	TAP_CHECK_EQ(host_conn_wait(f.conn, 2000), 2);
	TAP_CHECK_EQ(ra.calls, 1);
	TAP_CHECK_EQ(rb.calls, 1);
	TAP_CHECK_EQ(ra.cpl.status, 0);
	TAP_CHECK_EQ(rb.cpl.status, 0);
	TAP_CHECK_EQ(f.conn->stream.rx_syscalls - reads, 1);
	TAP_CHECK_EQ(f.conn->outstanding, 0);
	TAP_CHECK_MEM(a, src, sizeof(a));
	TAP_CHECK_MEM(b, src, sizeof(b));
	/* a third read's answer with a C2HTermReq right behind it */
	uint16_t cc = submit_read_cid(&f, pdu, c, sizeof(c), &rc);
	fake_send_c2h(&f, cc, 0, src, sizeof(src), true, true, false);
	fake_send(&f, term, pdu_build_term_req(term, WIRE_PDU_C2H_TERM_REQ, &err, NULL, 0));
	TAP_CHECK_EQ(host_conn_wait(f.conn, 2000), 1);
	TAP_CHECK_EQ(rc.calls, 1);
	TAP_CHECK_EQ(rc.cpl.status, 0);
	TAP_CHECK(!host_conn_is_failed(f.conn));
	uint64_t t0 = host_now_ms();
	TAP_CHECK_EQ(host_conn_wait(f.conn, 2000), -ECONNRESET); /* from the ring, no sleep */
	TAP_CHECK(host_now_ms() - t0 < 1000);
	fake_close(&f);
	free(pdu);
}

/* ---- bad controller replies -------------------------------------------------------------- */

enum bad_kind {
	BAD_PDU_TYPE,
	BAD_HLEN,
	BAD_UNKNOWN_CCCID,
	BAD_DATAO_RANGE,
	BAD_HDGST,
	BAD_SUCCESS_NO_LAST,
	BAD_R2T_RANGE,
	BAD_RESP_UNKNOWN_CID,
	BAD_KIND_COUNT
};

static const struct {
	const char *name;
	bool hdgst;
	uint16_t fes;
	uint32_t fei;
} bad_cases[BAD_KIND_COUNT] = {
	[BAD_PDU_TYPE] = {"bad PDU type", false, WIRE_FES_INVALID_HEADER_FIELD, 0},
	[BAD_HLEN] = {"bad HLEN", false, WIRE_FES_INVALID_HEADER_FIELD, 2},
	[BAD_UNKNOWN_CCCID] = {"C2HData for an unknown CCCID", false, WIRE_FES_INVALID_HEADER_FIELD,
			       8},
	[BAD_DATAO_RANGE] = {"DATAO out of range", false, WIRE_FES_DATA_OUT_OF_RANGE, 0},
	[BAD_HDGST] = {"header digest error", true, WIRE_FES_HDGST, 0},
	[BAD_SUCCESS_NO_LAST] = {"SUCCESS without LAST_PDU", false, WIRE_FES_INVALID_HEADER_FIELD,
				 1},
	[BAD_R2T_RANGE] = {"R2T beyond the write", false, WIRE_FES_DATA_OUT_OF_RANGE, 0},
	[BAD_RESP_UNKNOWN_CID] = {"CapsuleResp for an unknown CID", false,
				  WIRE_FES_INVALID_HEADER_FIELD, 20},
};

static void run_bad_case(enum bad_kind k)
{
	struct fake f;
	struct fake_pdu *pdu = malloc(sizeof(*pdu));
	uint8_t buf[65536], b[WIRE_PDO_MAX + 4];
	struct result res = {0};
	size_t n;
	int r;

	tap_begin();
	TAP_CHECK_EQ(fake_open(&f, bad_cases[k].hdgst, false, 4096, true), 0);
	fill(buf, sizeof(buf), 0);
	if (k == BAD_R2T_RANGE)
		r = submit_write(&f, buf, 8192, &res);
	else
		r = submit_read(&f, buf, 4096, &res);
	TAP_CHECK_EQ(r, 0);
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	uint16_t cid = le16_get(pdu->buf + 10);

	switch (k) {
	case BAD_PDU_TYPE:
		n = pdu_build_capsule_resp(b, &(struct wire_cqe){0}, &f.p);
		b[0] = 0x0f;
		fake_send(&f, b, n);
		break;
	case BAD_HLEN:
		n = pdu_build_capsule_resp(b, &(struct wire_cqe){0}, &f.p);
		b[2] = 20;
		fake_send(&f, b, n);
		break;
	case BAD_UNKNOWN_CCCID:
		fake_send_c2h(&f, (uint16_t)(cid + 5), 0, buf, 512, true, false, false);
		break;
	case BAD_DATAO_RANGE:
		fake_send_c2h(&f, cid, 4096 - 256, buf, 512, true, false, false);
		break;
	case BAD_HDGST:
		n = pdu_build_c2h_data(b, cid, 0, 512, true, false, &f.p);
		b[24] ^= 0xff; /* first digest byte */
		fake_send(&f, b, n);
		fake_send(&f, buf, 512);
		break;
	case BAD_SUCCESS_NO_LAST:
		n = pdu_build_c2h_data(b, cid, 0, 512, true, true, &f.p);
		b[1] &= (uint8_t)~WIRE_FLAG_LAST_PDU;
		fake_send(&f, b, n);
		fake_send(&f, buf, 512);
		break;
	case BAD_R2T_RANGE:
		fake_send_r2t(&f, cid, 1, 4096, 8192);
		break;
	case BAD_RESP_UNKNOWN_CID:
		fake_send_resp(&f, (uint16_t)(cid + 3), 0, 0);
		break;
	default:
		break;
	}
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.calls, 1);
	TAP_CHECK(res.cpl.err < 0);
	TAP_CHECK_EQ(res.cpl.status, HOST_STATUS_PATH_ERROR);
	TAP_CHECK(host_conn_is_failed(f.conn));
	/* new submissions are refused, with no callback */
	TAP_CHECK(submit_read(&f, buf, 512, &res) < 0);
	TAP_CHECK_EQ(res.calls, 1);
	/* the H2CTermReq */
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	TAP_CHECK_EQ(pdu->type, WIRE_PDU_H2C_TERM_REQ);
	TAP_CHECK_EQ(le16_get(pdu->buf + 8), bad_cases[k].fes);
	TAP_CHECK_EQ(le32_get(pdu->buf + 10), bad_cases[k].fei);
	fake_close(&f);
	free(pdu);
	{
		char name[96];

		snprintf(name, sizeof(name), "bad reply: %s", bad_cases[k].name);
		tap_end(name);
	}
}

/* ICResp the host must refuse: H2CTermReq with FES/FEI, connect fails. */
static void run_bad_icresp(const char *name, uint16_t pfv, uint8_t cpda, uint8_t dgst,
			   uint32_t maxh2c, bool ask_hd, uint16_t fes, uint32_t fei)
{
	struct fake f;
	struct fake_pdu *pdu = malloc(sizeof(*pdu));
	uint8_t b[sizeof(union wire_pdu)];
	char tname[96];

	tap_begin();
	TAP_CHECK_EQ(fake_open(&f, ask_hd, false, 4096, false), 0);
	pdu_build_icresp(b, cpda, dgst & 1, dgst & 2, maxh2c);
	le16_put(b + 8, pfv);
	fake_send(&f, b, 128);
	TAP_CHECK_EQ(host_conn_connect(f.conn, 2000), -EPROTO);
	TAP_CHECK(host_conn_is_failed(f.conn));
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	TAP_CHECK_EQ(pdu->type, WIRE_PDU_ICREQ);
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	TAP_CHECK_EQ(pdu->type, WIRE_PDU_H2C_TERM_REQ);
	TAP_CHECK_EQ(le16_get(pdu->buf + 8), fes);
	TAP_CHECK_EQ(le32_get(pdu->buf + 10), fei);
	fake_close(&f);
	free(pdu);
	snprintf(tname, sizeof(tname), "bad ICResp: %s", name);
	tap_end(tname);
}

/* A completion callback that submits another read, as nvtcp perf does. */
struct resubmit {
	struct fake *f;
	uint8_t buf[512];
	struct result again;
	int calls;
};

static void resubmit_cb(void *arg, const struct nvtcp_cpl *cpl)
{
	struct resubmit *r = arg;

	(void)cpl;
	r->calls++;
	TAP_CHECK_EQ(submit_read(r->f, r->buf, sizeof(r->buf), &r->again), 0);
}

/* Twelve completions in one receive, each submitting a new command from its callback: after a
 * sleep in host_conn_wait (interrupt mode) the first STREAM_EARLY_CMDS new commands leave at
 * once and the rest at the end of the poll, two sendmsg in all; host_conn_poll called directly
 * (busy polling) sends them in one. */
static void early_flush_run(bool wait, uint64_t want_sendmsgs)
{
	enum { N = 12 };
	struct fake f;
	struct fake_pdu *pdu = malloc(sizeof(*pdu));
	static struct resubmit rs[N];
	uint16_t cid[N];
	uint64_t sends;

	TAP_CHECK_EQ(fake_open(&f, false, false, 16384, true), 0);
	for (int i = 0; i < N; i++) {
		struct wire_sqe sqe = {.opc = NVME_IO_READ};
		struct iovec iov = {.iov_base = rs[i].buf, .iov_len = sizeof(rs[i].buf)};

		memset(&rs[i], 0, sizeof(rs[i]));
		rs[i].f = &f;
		le32_put(sqe.nsid, 1);
		TAP_CHECK_EQ(host_conn_submit(f.conn, &sqe, &iov, 1, false, resubmit_cb, &rs[i]),
			     0);
		TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
		cid[i] = le16_get(pdu->buf + 10);
	}
	for (int i = 0; i < N; i++)
		fake_send_resp(&f, cid[i], 0, 0);
	usleep(20000); /* all twelve in the socket before the host looks */
	sends = f.conn->stream.tx_syscalls;
	if (wait)
		TAP_CHECK_EQ(host_conn_wait(f.conn, 2000), N);
	else
		TAP_CHECK_EQ(host_conn_poll(f.conn, 0), N);
	TAP_CHECK_EQ(f.conn->stream.tx_syscalls - sends, want_sendmsgs);
	for (int i = 0; i < N; i++) {
		TAP_CHECK_EQ(rs[i].calls, 1);
		TAP_CHECK_EQ(fake_recv(&f, pdu), 0); /* the new commands all arrived */
		TAP_CHECK_EQ(pdu->type, WIRE_PDU_CAPSULE_CMD);
	}
	TAP_CHECK_EQ(f.conn->outstanding, N);
	fake_close(&f);
	free(pdu);
}

static void test_early_flush(void)
{
	early_flush_run(true, 2);
	early_flush_run(false, 1);
}

/* What a command may carry, checked alike on the live connection and when a reconnecting
 * queue holds the command for later (a held command that could never be accepted was kept). */
static void test_check_data(void)
{
	struct iovec v[NVTCP_IOV_MAX + 1];

	for (int i = 0; i <= NVTCP_IOV_MAX; i++)
		v[i] = (struct iovec){NULL, 4096};
	TAP_CHECK_EQ(host_conn_check_data(NULL, 0), 0);
	TAP_CHECK_EQ(host_conn_check_data(v, NVTCP_IOV_MAX), 0);
	TAP_CHECK_EQ(host_conn_check_data(v, NVTCP_IOV_MAX + 1), -EINVAL);
	TAP_CHECK_EQ(host_conn_check_data(v, -1), -EINVAL);
	v[0].iov_len = UINT32_MAX - 4096;
	TAP_CHECK_EQ(host_conn_check_data(v, 2), 0); /* exactly 4 GiB - 1 */
	v[1].iov_len = 4097;
	TAP_CHECK_EQ(host_conn_check_data(v, 2), -EINVAL);
	v[0].iov_len = SIZE_MAX; /* no wrap-around */
	TAP_CHECK_EQ(host_conn_check_data(v, 2), -EINVAL);
}

/* host_conn_exec on a full queue (re-authentication under load): it waits for a completion
 * to free a slot, which submissions from completion callbacks meanwhile may not take, instead
 * of failing with -EBUSY (which failed the queue). */
struct full_q {
	struct host_conn *c;
	int done, busy, resubmitted;
};

static void full_cb(void *arg, const struct nvtcp_cpl *cpl)
{
	struct full_q *q = arg;
	struct wire_sqe s = {.opc = NVME_IO_FLUSH};
	int r;

	if (q->done++ > 0)
		return; /* only the first completion tries to take its slot back */
	r = host_conn_submit(q->c, &s, NULL, 0, false, full_cb, q);
	q->busy += r == -EBUSY;
	q->resubmitted += r == 0;
}

struct exec_ctrl {
	struct fake *f;
	int nr_user; /* user commands to expect first */
	int exec_opc, bad;
};

static void *exec_ctrl_main(void *arg)
{
	struct exec_ctrl *x = arg;
	struct fake_pdu *pdu = malloc(sizeof(*pdu));
	uint16_t cids[32];

	for (int i = 0; i < x->nr_user; i++) {
		if (fake_recv(x->f, pdu) < 0 || pdu->type != WIRE_PDU_CAPSULE_CMD) {
			x->bad++;
			goto out;
		}
		cids[i] = le16_get(pdu->buf + 8 + 2);
	}
	fake_send_resp(x->f, cids[0], 0, 0); /* frees one slot */
	if (fake_recv(x->f, pdu) < 0 || pdu->type != WIRE_PDU_CAPSULE_CMD) {
		x->bad++;
		goto out;
	}
	x->exec_opc = pdu->buf[8];
	fake_send_resp(x->f, le16_get(pdu->buf + 8 + 2), 0, 0x1234);
	for (int i = 1; i < x->nr_user; i++)
		fake_send_resp(x->f, cids[i], 0, 0);
out:
	free(pdu);
	return NULL;
}

static void test_exec_on_full_queue(void)
{
	struct fake f;
	struct full_q q = {0};
	struct exec_ctrl x = {.f = &f, .nr_user = 15};
	struct wire_sqe flush = {.opc = NVME_IO_FLUSH}, fab = {.opc = NVME_FABRICS_OPC};
	struct nvtcp_cpl cpl = {0};
	pthread_t t;

	TAP_CHECK_EQ(fake_open(&f, false, false, 4096, true), 0);
	q.c = f.conn;
	for (int i = 0; i < 15; i++)
		TAP_CHECK_EQ(host_conn_submit(f.conn, &flush, NULL, 0, false, full_cb, &q), 0);
	TAP_CHECK_EQ(host_conn_submit(f.conn, &flush, NULL, 0, false, full_cb, &q), -EBUSY);
	TAP_CHECK(host_conn_poll(f.conn, 0) >= 0); /* the 15 leave */
	TAP_CHECK_EQ(pthread_create(&t, NULL, exec_ctrl_main, &x), 0);
	TAP_CHECK_EQ(host_conn_exec(f.conn, &fab, NULL, 0, false, 2000, &cpl), 0);
	TAP_CHECK_EQ(cpl.dw0, 0x1234);
	for (int i = 0; i < 200 && f.conn->outstanding > 0; i++)
		TAP_CHECK(host_conn_wait(f.conn, 10) >= 0);
	pthread_join(t, NULL);
	TAP_CHECK_EQ(x.bad, 0);
	TAP_CHECK_EQ(x.exec_opc, NVME_FABRICS_OPC);
	TAP_CHECK_EQ(q.done, 15);
	TAP_CHECK_EQ(q.busy, 1); /* the freed slot was kept for the internal command */
	TAP_CHECK_EQ(q.resubmitted, 0);
	TAP_CHECK_EQ(f.conn->outstanding, 0);
	fake_close(&f);
}

static void test_icresp_ok(void)
{
	struct fake f;

	TAP_CHECK_EQ(fake_open(&f, true, true, 4096, true), 0);
	TAP_CHECK_EQ(f.conn->state, HOST_CONN_LIVE);
	TAP_CHECK_EQ(f.conn->params.maxh2cdata, 8192);
	TAP_CHECK(f.conn->params.hdgst && f.conn->params.ddgst);
	fake_close(&f);
}

/* Closing with commands outstanding completes them with an error, exactly once. */
static void test_close_outstanding(void)
{
	struct fake f;
	struct fake_pdu *pdu = malloc(sizeof(*pdu));
	uint8_t buf[4096];
	struct result res = {0};

	TAP_CHECK_EQ(fake_open(&f, false, false, 4096, true), 0);
	TAP_CHECK_EQ(submit_read(&f, buf, sizeof(buf), &res), 0);
	TAP_CHECK_EQ(fake_recv(&f, pdu), 0);
	close(f.fd); /* the controller goes away */
	host_drive(&f, &res);
	TAP_CHECK_EQ(res.calls, 1);
	TAP_CHECK_EQ(res.cpl.err, -ECONNRESET);
	host_conn_close(f.conn);
	TAP_CHECK_EQ(res.calls, 1);
	free(pdu);
}

static void count_held(void *ctx, const struct wire_sqe *sqe, const struct iovec *iov, int iovcnt,
		       bool write, nvtcp_cb cb, void *arg)
{
	(*(unsigned *)ctx)++;
}

/* A host_conn_exec that times out on a queue keeping unanswered commands (hold_on_fail, the I/O
 * queues with reconnect) must not leave its command held: its callback context is on
 * host_conn_exec's stack and its buffer is the caller's, both gone once it returned. */
static void test_exec_timeout_not_held(void)
{
	struct fake f;
	struct wire_sqe sqe = {.opc = NVME_FABRICS_OPC};
	uint8_t *buf = malloc(4096);
	unsigned held = 0;

	TAP_CHECK_EQ(fake_open(&f, false, false, 4096, true), 0);
	f.conn->opts.hold_on_fail = true;
	TAP_CHECK_EQ(host_conn_exec(f.conn, &sqe, buf, 4096, false, 50, NULL), -ETIMEDOUT);
	TAP_CHECK_EQ(f.conn->state, HOST_CONN_CLOSED);
	TAP_CHECK_EQ(f.conn->outstanding, 0);
	TAP_CHECK_EQ(host_conn_harvest(f.conn, count_held, &held), 0);
	TAP_CHECK_EQ(held, 0);
	fake_close(&f); /* no callback into the dead host_conn_exec frame */
	free(buf);
}

int main(void)
{
	TAP_RUN(test_check_data);
	TAP_RUN(test_exec_on_full_queue);
	TAP_RUN(test_icresp_ok);
	TAP_RUN(test_read_c2h_placement);
	TAP_RUN(test_read_success_flag);
	TAP_RUN(test_write_incapsule);
	TAP_RUN(test_write_r2t);
	TAP_RUN(test_digests);
	TAP_RUN(test_cid_matching);
	TAP_RUN(test_rx_stops_when_all_done);
	TAP_RUN(test_early_flush);
	TAP_RUN(test_close_outstanding);
	TAP_RUN(test_exec_timeout_not_held);
	for (int k = 0; k < BAD_KIND_COUNT; k++)
		run_bad_case((enum bad_kind)k);
	run_bad_icresp("PFV 1", 1, 0, 0, 8192, false, WIRE_FES_UNSUPPORTED_PARAM, 8);
	run_bad_icresp("CPDA 32", 0, 32, 0, 8192, false, WIRE_FES_INVALID_HEADER_FIELD, 10);
	run_bad_icresp("digest not granted", 0, 0, 0, 8192, true, WIRE_FES_INVALID_HEADER_FIELD,
		       11);
	run_bad_icresp("digest not asked", 0, 0, 1, 8192, false, WIRE_FES_INVALID_HEADER_FIELD, 11);
	run_bad_icresp("MAXH2CDATA 1024", 0, 0, 0, 1024, false, WIRE_FES_INVALID_HEADER_FIELD, 12);
	return tap_done();
}
