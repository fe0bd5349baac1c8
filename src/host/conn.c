/* Host side of one NVMe/TCP queue connection: ICReq/ICResp, command capsules, R2T answers,
 * C2HData placement into the caller's buffer, CapsuleResp matching, H2CTermReq on bad input.
 * Layer: host. Same receive architecture as the target: stream callbacks see each header in
 * the ring, name the request's own buffer as the payload destination (digest computed while
 * the bytes are hot), and complete requests; nothing is allocated per command. */
#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/le.h"
#include "../common/log.h"
#include "../net/sock.h"
#include "../proto/crc32c.h"
#include "../proto/nvme.h"
#include "../proto/pdu.h"

#define HOST_RECV_BUDGET 64

uint64_t host_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t host_now_coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Describe [off, off + len) of iov as at most max iovecs in out. Returns the count, or -1 if
 * the range does not fit. */
static int host_iov_slice(const struct iovec *iov, int iovcnt, size_t off, size_t len,
			  struct iovec *out, int max)
{
	int n = 0;

	for (int i = 0; i < iovcnt && len > 0; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		if (n == max)
			return -1;
		size_t take = MIN(iov[i].iov_len - off, len);

		out[n].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[n].iov_len = take;
		n++;
		len -= take;
		off = 0;
	}
	return len ? -1 : n;
}

/* Copy n iovecs. Most commands have one: a plain assignment, where a memcpy of a variable
 * size is inlined as "rep movsq", whose start-up cost is several times the copy's. */
static inline void host_iov_copy(struct iovec *dst, const struct iovec *src, int n)
{
	if (n == 1)
		dst[0] = src[0];
	else if (n > 1)
		memcpy(dst, src, (size_t)n * sizeof(*src));
}

/* ---- request completion ------------------------------------------------------------------ */

static void host_req_release(struct host_conn *c, struct host_req *req)
{
	req->busy = false;
	c->free_cids[c->nr_free++] = req->cid;
	c->outstanding--;
	c->completions++;
}

/* Complete req if its protocol exchange is over and the stream owns none of its buffers.
 * While the queue is failed but the stream not yet torn down, wait: the stream may still be
 * writing from (or reading into) the request's buffers. */
static void host_req_try_complete(struct host_req *req)
{
	struct host_conn *c = req->conn;
	struct nvtcp_cpl cpl;
	nvtcp_cb cb;
	void *arg;

	if (!req->busy || req->sends > 0 || c->state == HOST_CONN_FAILED)
		return;
	if (c->state == HOST_CONN_CLOSED && !req->resp_done) {
		if (c->opts.hold_on_fail && !req->timed_out)
			return; /* left for host_conn_harvest() */
		req->cpl.err = req->timed_out ? -ETIMEDOUT : c->err ? c->err : -ECONNABORTED;
		req->cpl.status = HOST_STATUS_PATH_ERROR;
		req->cpl.dw0 = req->cpl.dw1 = 0;
	} else if (!req->resp_done) {
		return;
	}
	cpl = req->cpl;
	cb = req->cb;
	arg = req->arg;
	/* Free the slot first: the callback may submit the next command into it. */
	host_req_release(c, req);
	if (cb)
		cb(arg, &cpl);
}

/* Queue transitions (anything else is a bug of ours):
 *   NEW     -> IC_WAIT  [host_conn_start]     ICReq queued
 *   IC_WAIT -> LIVE     [host_on_icresp]      ICResp accepted
 *   NEW, IC_WAIT, LIVE -> FAILED [host_conn_fail] bad PDU, EOF, timeout, send error
 *   any     -> CLOSED   [host_conn_teardown]  stream gone, outstanding commands completed */
static const bool host_conn_allowed[HOST_CONN_STATE_COUNT][HOST_CONN_STATE_COUNT] = {
	[HOST_CONN_NEW] =
		{[HOST_CONN_IC_WAIT] = true, [HOST_CONN_FAILED] = true, [HOST_CONN_CLOSED] = true},
	[HOST_CONN_IC_WAIT] =
		{[HOST_CONN_LIVE] = true, [HOST_CONN_FAILED] = true, [HOST_CONN_CLOSED] = true},
	[HOST_CONN_LIVE] = {[HOST_CONN_FAILED] = true, [HOST_CONN_CLOSED] = true},
	[HOST_CONN_FAILED] = {[HOST_CONN_CLOSED] = true},
	[HOST_CONN_CLOSED] = {[HOST_CONN_CLOSED] = true},
};

static void host_conn_set_state(struct host_conn *c, enum host_conn_state to)
{
	assert(host_conn_allowed[c->state][to]);
	c->state = to;
	c->transitions++;
}

void host_conn_fail(struct host_conn *c, int err)
{
	if (c->state >= HOST_CONN_FAILED)
		return;
	c->err = err;
	host_conn_set_state(c, HOST_CONN_FAILED);
	if (err != -ECONNABORTED)
		log_warn("%s: queue failed: %s", c->name, strerror(-err));
}

static int host_conn_proto_err(struct host_conn *c, enum wire_fes fes, uint32_t fei,
			       const char *why)
{
	log_warn("%s: bad controller PDU (%s): sending H2CTermReq FES %#x FEI %u", c->name, why,
		 fes, fei);
	c->stream.err.fes = fes;
	c->stream.err.fei = fei;
	return -EPROTO;
}

/* Tear the stream down (outside any stream callback) and complete everything outstanding. */
static void host_conn_teardown(struct host_conn *c)
{
	if (c->stream_live) {
		if (c->term_pending)
			stream_send_term_req(&c->stream);
		c->term_pending = false;
		c->stream_live = false;
		/* Queued sends fail here; their done callbacks drop req->sends. */
		stream_fini(&c->stream);
	}
	host_conn_set_state(c, HOST_CONN_CLOSED);
	for (unsigned i = 0; i < c->opts.nr_slots; i++)
		host_req_try_complete(&c->reqs[i]);
}

/* ---- sends ------------------------------------------------------------------------------- */

static void host_h2c_pump(struct host_req *req);

static void host_cmd_tx_done(struct stream_tx *tx, int status)
{
	struct host_req *req = tx->ctx;

	req->sends--;
	if (status < 0)
		host_conn_fail(req->conn, status);
	host_req_try_complete(req);
}

static void host_data_tx_done(struct stream_tx *tx, int status)
{
	struct host_req *req = tx->ctx;

	req->sends--;
	req->data_busy = false;
	if (status < 0)
		host_conn_fail(req->conn, status);
	else
		host_h2c_pump(req);
	host_req_try_complete(req);
}

/* Send the next H2CData of the R2T being answered, one PDU in flight per request. With data
 * digests each R2T is answered by exactly one H2CData when it fits MAXH2CDATA (the Linux
 * target digests the whole R2T as one unit). */
static void host_h2c_pump(struct host_req *req)
{
	struct host_conn *c = req->conn;
	struct stream_tx *tx = &req->data_tx;
	uint32_t chunk;
	size_t hl;
	bool last;
	int n;

	if (req->data_busy)
		return; /* the previous H2CData is still the stream's */
	if (!req->r2t_active || req->resp_done || c->state != HOST_CONN_LIVE)
		return;
	chunk = MIN(req->r2t_end - req->h2c_sent, c->params.maxh2cdata);
	last = req->h2c_sent + chunk == req->r2t_end;
	hl = pdu_build_h2c_data(req->data_hdr, req->cid, req->ttag, req->h2c_sent, chunk, last,
				&c->params);
	tx->iov[0].iov_base = req->data_hdr;
	tx->iov[0].iov_len = hl;
	n = host_iov_slice(req->iov, req->iovcnt, req->h2c_sent, chunk, &tx->iov[1], NVTCP_IOV_MAX);
	if (n < 0) { /* cannot happen: the R2T range was checked against data_len */
		host_conn_fail(c, -EIO);
		return;
	}
	tx->iovcnt = 1 + n;
	if (c->params.ddgst) {
		pdu_ddgst_put(req->data_ddgst, crc32c_iov(&tx->iov[1], n, chunk));
		tx->iov[tx->iovcnt].iov_base = req->data_ddgst;
		tx->iov[tx->iovcnt].iov_len = WIRE_DIGEST_LEN;
		tx->iovcnt++;
	}
	tx->done = host_data_tx_done;
	tx->ctx = req;
	req->h2c_sent += chunk;
	if (last)
		req->r2t_active = false;
	req->sends++;
	req->data_busy = true;
	c->h2c_pdus++;
	stream_queue(&c->stream, tx);
}

/* Commands submitted from completion callbacks wait for the end of host_conn_poll, to leave in
 * one sendmsg. After a sleep in host_conn_wait (interrupt mode, so the controller probably
 * sleeps too), the first STREAM_EARLY_CMDS of them (or STREAM_EARLY_BYTES) leave at once, once
 * per poll: the controller starts on them while this side completes the rest. The target does
 * the same with its responses (tgt_conn_flush_early, which has the measurements); the host's
 * half alone took 4K randwrite QD32 in interrupt mode from 312-331K to 510-548K IOPS. Without
 * a sleep (busy-poll) the controller is awake: only the first command of a poll that carries
 * STREAM_EARLY_LARGE_BYTES (a 64 KiB or larger Write) leaves at once. Busy-poll, 3 s runs,
 * medians of 5: 128K write QD8 32.3K -> 38.9K IOPS, 64K randwrite QD16 57.3K -> 71.4K; 32K
 * randwrite QD16 and 4K randwrite QD32 unchanged. Counting bytes per poll instead (128 KiB,
 * reached after four 32K writes) took 32K randwrite QD16 from 146K to 106K. */
static void host_conn_flush_early(struct host_conn *c)
{
	stream_flush_early(&c->stream, &c->turn_cmds, !c->woke, 0);
}

int host_conn_check_data(const struct iovec *iov, int iovcnt)
{
	uint64_t len = 0;

	if (iovcnt < 0 || iovcnt > NVTCP_IOV_MAX)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		len += iov[i].iov_len;
		if (len > UINT32_MAX)
			return -EINVAL;
	}
	return 0;
}

static int host_conn_submit_slot(struct host_conn *c, const struct wire_sqe *sqe,
				 const struct iovec *iov, int iovcnt, bool write, nvtcp_cb cb,
				 void *arg, unsigned keep_free);

int host_conn_submit(struct host_conn *c, const struct wire_sqe *sqe, const struct iovec *iov,
		     int iovcnt, bool write, nvtcp_cb cb, void *arg)
{
	return host_conn_submit_slot(c, sqe, iov, iovcnt, write, cb, arg, c->exec_waiting);
}

/* Submit into a free slot, leaving keep_free of them unused (-EBUSY otherwise). */
static int host_conn_submit_slot(struct host_conn *c, const struct wire_sqe *sqe,
				 const struct iovec *iov, int iovcnt, bool write, nvtcp_cb cb,
				 void *arg, unsigned keep_free)
{
	struct host_req *req;
	struct wire_sqe cmd = *sqe;
	struct stream_tx *tx;
	uint32_t incap = 0;
	size_t len = 0, hl;

	if (c->state != HOST_CONN_LIVE)
		return c->err ? c->err : -ENOTCONN;
	if (host_conn_check_data(iov, iovcnt) < 0)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (c->nr_free <= keep_free)
		return -EBUSY;

	req = &c->reqs[c->free_cids[--c->nr_free]];
	req->busy = true;
	req->timed_out = false;
	req->tmo_scans = 0;
	c->outstanding++;
	req->write = write && len > 0;
	req->resp_done = false;
	req->r2t_active = false;
	req->sends = 0;
	req->iovcnt = iovcnt;
	host_iov_copy(req->iov, iov, iovcnt); /* iov may be NULL for commands without data */
	req->data_len = (uint32_t)len;
	req->c2h_done = 0;
	req->h2c_sent = 0;
	req->r2t_end = 0;
	memset(&req->cpl, 0, sizeof(req->cpl));
	req->cb = cb;
	req->arg = arg;
	req->data_busy = false;
	req->sqe = *sqe;

	le16_put(cmd.cid, req->cid);
	cmd.flags = (uint8_t)((cmd.flags & ~WIRE_SQE_PSDT_MASK) | WIRE_SQE_PSDT_SGL);
	memset(&cmd.sgl1, 0, sizeof(cmd.sgl1));
	le32_put(cmd.sgl1.length, (uint32_t)len);
	req->incapsule = req->write && len <= c->opts.incapsule_max;
	if (req->incapsule) {
		/* The Linux target never sends R2T for small writes without in-capsule data. */
		cmd.sgl1.type = WIRE_SGL_TYPE_DATA_BLOCK_OFFSET;
		incap = (uint32_t)len;
	} else {
		cmd.sgl1.type = WIRE_SGL_TYPE_TRANSPORT_DATA;
	}

	tx = &req->cmd_tx;
	hl = pdu_build_capsule_cmd(req->cmd_hdr, &cmd, incap, &c->params);
	tx->iov[0].iov_base = req->cmd_hdr;
	tx->iov[0].iov_len = hl;
	tx->iovcnt = 1;
	if (incap) {
		host_iov_copy(&tx->iov[1], iov, iovcnt);
		tx->iovcnt += iovcnt;
		if (c->params.ddgst) {
			pdu_ddgst_put(req->cmd_ddgst, crc32c_iov(iov, iovcnt, len));
			tx->iov[tx->iovcnt].iov_base = req->cmd_ddgst;
			tx->iov[tx->iovcnt].iov_len = WIRE_DIGEST_LEN;
			tx->iovcnt++;
		}
	}
	tx->done = host_cmd_tx_done;
	tx->ctx = req;
	req->sends = 1;
	stream_queue(&c->stream, tx);
	if (!c->in_poll) {
		int r = stream_flush(&c->stream);

		if (r < 0 && r != -EAGAIN)
			host_conn_fail(c, r);
	} else {
		host_conn_flush_early(c);
	}
	return 0;
}

/* ---- receive callbacks ------------------------------------------------------------------- */

static struct host_req *host_conn_lookup(struct host_conn *c, uint16_t cid)
{
	if (cid >= c->opts.nr_slots || !c->reqs[cid].busy)
		return NULL;
	return &c->reqs[cid];
}

static int host_on_c2h_header(struct host_conn *c, const struct wire_c2h_data *h)
{
	struct pdu_rx *rx = &c->stream.rx;
	struct iovec dst[PDU_RX_DST_MAX];
	struct host_req *req = host_conn_lookup(c, le16_get(h->cccid));
	uint32_t datao = le32_get(h->datao);
	uint32_t datal = rx->data_len;
	int n;

	if (!req || req->write || req->resp_done)
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_c2h_data, cccid),
					   "C2HData for an unknown command");
	if ((h->ch.flags & WIRE_FLAG_SUCCESS) && !(h->ch.flags & WIRE_FLAG_LAST_PDU))
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_ch, flags),
					   "C2HData SUCCESS without LAST_PDU");
	if ((uint64_t)datao + datal > req->data_len)
		return host_conn_proto_err(c, WIRE_FES_DATA_OUT_OF_RANGE, 0,
					   "C2HData beyond the command's buffer");
	if (datao != req->c2h_done)
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_c2h_data, datao),
					   "C2HData offset not contiguous");
	if (datal == 0)
		return 0;
	n = host_iov_slice(req->iov, req->iovcnt, datao, datal, dst, PDU_RX_DST_MAX);
	if (n < 0 || pdu_rx_set_dst(rx, dst, n) < 0)
		return host_conn_proto_err(c, WIRE_FES_DATA_OUT_OF_RANGE, 0,
					   "C2HData does not fit the buffer");
	return 0;
}

static int host_on_header(struct stream *s, void *ctx)
{
	struct host_conn *c = ctx;
	const union wire_pdu *pdu = &s->rx.hdr;

	switch (pdu->ch.pdu_type) {
	case WIRE_PDU_C2H_DATA:
		if (c->state != HOST_CONN_LIVE)
			break;
		return host_on_c2h_header(c, &pdu->c2h);
	default:
		break;
	}
	/* Anything else carrying bytes (a TermReq's copy of our header) is discarded by the
	 * stream since no destination is named. */
	return 0;
}

static int host_on_icresp(struct host_conn *c, const struct wire_icresp *ic)
{
	uint8_t want = (uint8_t)((c->opts.hdgst ? WIRE_DGST_HDR : 0) |
				 (c->opts.ddgst ? WIRE_DGST_DATA : 0));
	uint32_t maxh2cdata = le32_get(ic->maxh2cdata);
	struct pdu_params p = c->params;

	if (c->state != HOST_CONN_IC_WAIT)
		return host_conn_proto_err(c, WIRE_FES_PDU_SEQUENCE, 0, "unexpected ICResp");
	if (le16_get(ic->pfv) != 0)
		return host_conn_proto_err(c, WIRE_FES_UNSUPPORTED_PARAM,
					   offsetof(struct wire_icresp, pfv), "ICResp PFV not 0");
	if (ic->cpda > 31)
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_icresp, cpda),
					   "ICResp CPDA above 31");
	if ((ic->dgst & (WIRE_DGST_HDR | WIRE_DGST_DATA)) != want)
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_icresp, dgst),
					   "ICResp digests differ from what we asked");
	if (maxh2cdata < WIRE_MAXH2CDATA_MIN || maxh2cdata % 4)
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_icresp, maxh2cdata),
					   "ICResp MAXH2CDATA below 4096 or not a multiple of 4");
	p.hdgst = c->opts.hdgst;
	p.ddgst = c->opts.ddgst;
	p.cpda = ic->cpda;
	p.hpda = 0;
	p.maxh2cdata = maxh2cdata;
	p.ic_done = true;
	c->params = p;
	stream_set_params(&c->stream, &p);
	host_conn_set_state(c, HOST_CONN_LIVE);
	log_debug("%s: ICResp cpda %u dgst %#x maxh2cdata %u", c->name, ic->cpda, ic->dgst,
		  maxh2cdata);
	return 0;
}

static int host_on_capsule_resp(struct host_conn *c, const struct wire_cqe *cqe)
{
	struct host_req *req = host_conn_lookup(c, le16_get(cqe->cid));
	uint16_t status;

	if (!req || req->resp_done)
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_capsule_resp, cqe.cid),
					   "CapsuleResp for an unknown command");
	status = le16_get(cqe->status) >> 1;
	/* NVMe has no short read: success with data missing is a transfer error. */
	if (status == 0 && !req->write && req->c2h_done != req->data_len)
		status = NVME_SC_DATA_XFER_ERROR;
	if (status == 0 && req->cpl.status)
		status = req->cpl.status; /* data digest error seen on this command */
	req->cpl.status = status;
	req->cpl.dw0 = le32_get(cqe->dw0);
	req->cpl.dw1 = le32_get(cqe->dw1);
	req->resp_done = true;
	host_req_try_complete(req);
	return 0;
}

static int host_on_c2h_done(struct host_conn *c, const struct wire_c2h_data *h)
{
	struct pdu_rx *rx = &c->stream.rx;
	struct host_req *req = host_conn_lookup(c, le16_get(h->cccid));

	if (!req) /* checked at the header; keeps the invariant explicit */
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_c2h_data, cccid), "stale C2HData");
	req->c2h_done += rx->data_len;
	c->c2h_pdus++;
	if (!rx->ddgst_ok) {
		/* Fail the command, keep the queue (as SPDK): the caller may retry. */
		c->ddgst_errors++;
		log_warn("%s: data digest error on cid %u", c->name, req->cid);
		req->cpl.status = NVME_SC_TRANSIENT_TRANSPORT;
	}
	if (h->ch.flags & WIRE_FLAG_SUCCESS) {
		/* SUCCESS = status 0, accepted even though we kept SQ flow control on. */
		if (req->c2h_done != req->data_len && !req->cpl.status)
			req->cpl.status = NVME_SC_DATA_XFER_ERROR;
		req->resp_done = true;
		host_req_try_complete(req);
	}
	return 0;
}

static int host_on_r2t(struct host_conn *c, const struct wire_r2t *r)
{
	struct host_req *req = host_conn_lookup(c, le16_get(r->cccid));
	uint32_t r2to = le32_get(r->r2to), r2tl = le32_get(r->r2tl);

	if (!req || !req->write || req->incapsule || req->resp_done)
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_r2t, cccid),
					   "R2T for a command not waiting for one");
	if (req->r2t_active)
		return host_conn_proto_err(c, WIRE_FES_R2T_LIMIT, 0, "second R2T outstanding");
	if (r2tl == 0 || (uint64_t)r2to + r2tl > req->data_len)
		return host_conn_proto_err(c, WIRE_FES_DATA_OUT_OF_RANGE, 0,
					   "R2T beyond the command's data");
	if (r2to != req->h2c_sent)
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_r2t, r2to),
					   "R2T offset not contiguous");
	req->ttag = le16_get(r->ttag);
	req->r2t_end = r2to + r2tl;
	req->r2t_active = true;
	c->r2t_count++;
	host_h2c_pump(req);
	return 0;
}

static int host_on_pdu_dispatch(struct stream *s, struct host_conn *c)
{
	const union wire_pdu *pdu = &s->rx.hdr;

	if (pdu->ch.pdu_type == WIRE_PDU_ICRESP)
		return host_on_icresp(c, &pdu->icresp);
	if (pdu->ch.pdu_type == WIRE_PDU_C2H_TERM_REQ) {
		log_warn("%s: controller terminated the connection: C2HTermReq FES %#x FEI %u",
			 c->name, le16_get(pdu->term.fes), le32_get(pdu->term.fei));
		host_conn_fail(c, -ECONNRESET);
		return -ECONNRESET;
	}
	if (c->state != HOST_CONN_LIVE)
		return host_conn_proto_err(c, WIRE_FES_PDU_SEQUENCE, 0, "PDU before ICResp");

	switch (pdu->ch.pdu_type) {
	case WIRE_PDU_CAPSULE_RESP:
		return host_on_capsule_resp(c, &pdu->rsp.cqe);
	case WIRE_PDU_C2H_DATA:
		return host_on_c2h_done(c, &pdu->c2h);
	case WIRE_PDU_R2T:
		return host_on_r2t(c, &pdu->r2t);
	default:
		return host_conn_proto_err(c, WIRE_FES_INVALID_HEADER_FIELD,
					   offsetof(struct wire_ch, pdu_type),
					   "PDU type a controller does not send");
	}
}

/* True once every command outstanding when host_conn_poll began has completed. */
static bool host_conn_rx_drained(const struct host_conn *c)
{
	return c->rx_until && c->completions >= c->rx_until;
}

static int host_on_pdu(struct stream *s, void *ctx)
{
	struct host_conn *c = ctx;
	int r = host_on_pdu_dispatch(s, c);

	if (r == 0 && host_conn_rx_drained(c))
		return -EINTR; /* stops stream_recv; host_conn_poll knows it is no error */
	return r;
}

static const struct stream_cbs host_stream_cbs = {
	.on_header = host_on_header,
	.on_pdu = host_on_pdu,
};

/* ---- polling ----------------------------------------------------------------------------- */

static void host_conn_recv_error(struct host_conn *c, int r)
{
	if (r == -EPROTO) {
		log_warn("%s: rejecting controller PDU (%s): H2CTermReq FES %#x FEI %u", c->name,
			 pdu_type_name(c->stream.rx.hdr.ch.pdu_type), c->stream.err.fes,
			 c->stream.err.fei);
		c->term_pending = true;
		host_conn_fail(c, -EPROTO);
	} else if (r == -ECONNRESET) {
		host_conn_fail(c, c->state == HOST_CONN_IC_WAIT ? -ECONNREFUSED : -ECONNRESET);
	} else {
		host_conn_fail(c, r);
	}
}

int host_conn_poll(struct host_conn *c, unsigned budget)
{
	uint64_t before = c->completions;
	int r;

	if (c->state == HOST_CONN_CLOSED)
		return c->err;
	if (c->state != HOST_CONN_FAILED) {
		c->in_poll = true;
		c->turn_cmds = 0;
		c->rx_until = c->state == HOST_CONN_LIVE && c->outstanding
				      ? c->completions + c->outstanding
				      : 0;
		r = stream_flush(&c->stream);
		if (r < 0 && r != -EAGAIN)
			host_conn_fail(c, r);
		if (c->state < HOST_CONN_FAILED) {
			r = stream_recv(&c->stream, budget ? budget : HOST_RECV_BUDGET);
			if (r < 0 && !(r == -EINTR && host_conn_rx_drained(c)))
				host_conn_recv_error(c, r);
		}
		c->rx_until = 0;
		if (c->state < HOST_CONN_FAILED) {
			/* Commands submitted by callbacks and H2CData answering R2Ts. */
			r = stream_flush(&c->stream);
			if (r < 0 && r != -EAGAIN)
				host_conn_fail(c, r);
		}
		c->in_poll = false;
	}
	if (c->state == HOST_CONN_FAILED) {
		host_conn_teardown(c);
		return c->err;
	}
	return (int)(c->completions - before);
}

int host_conn_wait(struct host_conn *c, int timeout_ms)
{
	struct pollfd pfd;
	int ret;

	if (c->state >= HOST_CONN_FAILED)
		return host_conn_poll(c, 0);
	pfd.fd = c->stream.fd;
	pfd.events = POLLIN | (stream_tx_pending(&c->stream) ? POLLOUT : 0);
	pfd.revents = 0;
	/* Bytes already in the ring (budget ran out) or decrypted by TLS need no wait. */
	if (stream_rx_pending(&c->stream))
		timeout_ms = 0;
	if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
		return -errno;
	c->woke = timeout_ms != 0;
	ret = host_conn_poll(c, 0);
	c->woke = false;
	return ret;
}

int host_conn_run_until(struct host_conn *c, const bool *flag, int timeout_ms)
{
	uint64_t deadline = host_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	int r;

	while (!*flag) {
		uint64_t now = host_now_ms();

		if (c->state >= HOST_CONN_FAILED)
			return host_conn_poll(c, 0);
		if (now >= deadline) {
			log_warn("%s: command timed out after %d ms", c->name, timeout_ms);
			host_conn_fail(c, -ETIMEDOUT);
			host_conn_poll(c, 0);
			return -ETIMEDOUT;
		}
		r = host_conn_wait(c, (int)MIN(deadline - now, 100));
		if (r < 0 && !*flag)
			return r;
	}
	return 0;
}

struct host_exec_ctx {
	bool done;
	struct nvtcp_cpl cpl;
};

static void host_exec_cb(void *arg, const struct nvtcp_cpl *cpl)
{
	struct host_exec_ctx *x = arg;

	x->cpl = *cpl;
	x->done = true;
}

void host_conn_abandon(struct host_conn *c, nvtcp_cb cb, void *arg, int err)
{
	if (c->state < HOST_CONN_FAILED)
		host_conn_fail(c, err);
	host_conn_poll(c, 0); /* teardown: the stream lets go of every buffer */
	for (unsigned i = 0; i < c->opts.nr_slots; i++) {
		struct host_req *req = &c->reqs[i];

		if (req->busy && req->cb == cb && req->arg == arg && !req->sends)
			host_req_release(c, req);
	}
}

/* host_conn_exec gives up on its command: x and the caller's buffer die when it returns, so
 * the command must not stay in flight (fail the queue) nor be held for host_conn_harvest()
 * with hold_on_fail (drop it: its callback would write into a dead stack frame). */
static void host_exec_abandon(struct host_conn *c, struct host_exec_ctx *x, int err)
{
	host_conn_abandon(c, host_exec_cb, x, err);
}

int host_conn_exec(struct host_conn *c, const struct wire_sqe *sqe, void *buf, size_t len,
		   bool write, int timeout_ms, struct nvtcp_cpl *cpl)
{
	struct host_exec_ctx x = {0};
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	uint64_t deadline = host_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	int r;

	/* Every slot busy (e.g. re-authentication on a full I/O queue): wait for a completion
	 * to free one, which other submissions meanwhile may not take. */
	c->exec_waiting++;
	while (c->nr_free == 0 && c->state == HOST_CONN_LIVE && host_now_ms() < deadline) {
		r = host_conn_wait(c, (int)MIN(deadline - host_now_ms(), 100));
		if (r < 0)
			break;
	}
	c->exec_waiting--;
	r = host_conn_submit_slot(c, sqe, &iov, len ? 1 : 0, write, host_exec_cb, &x, 0);
	if (r == -EBUSY)
		log_warn("%s: no free slot for an internal command within %d ms", c->name,
			 timeout_ms);
	if (r < 0)
		return r == -EBUSY ? -ETIMEDOUT : r;
	r = host_conn_run_until(c, &x.done, timeout_ms);
	if (!x.done) {
		host_exec_abandon(c, &x, r < 0 ? r : -EIO);
		return r < 0 ? r : -EIO;
	}
	if (cpl)
		*cpl = x.cpl;
	if (x.cpl.err)
		return x.cpl.err;
	return x.cpl.status;
}

/* ---- setup and teardown ------------------------------------------------------------------ */

int host_conn_open(int fd, const struct host_conn_opts *opts, struct host_conn **out)
{
	struct host_conn *c;
	int r;

	if (opts->nr_slots == 0 || opts->nr_slots > 65535) {
		close(fd);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->opts = *opts;
	snprintf(c->name, sizeof(c->name), "%s", opts->name ? opts->name : "host");
	c->opts.name = c->name;
	c->reqs = calloc(opts->nr_slots, sizeof(*c->reqs));
	c->free_cids = calloc(opts->nr_slots, sizeof(*c->free_cids));
	if (!c->reqs || !c->free_cids) {
		r = -ENOMEM;
		goto err_free;
	}
	for (unsigned i = 0; i < opts->nr_slots; i++) {
		c->reqs[i].conn = c;
		c->reqs[i].cid = (uint16_t)i;
		/* Pop order: lowest CID first. */
		c->free_cids[opts->nr_slots - 1 - i] = (uint16_t)i;
	}
	c->nr_free = opts->nr_slots;
	r = stream_init(&c->stream, fd, PDU_ROLE_HOST, 0, &host_stream_cbs, c);
	if (r < 0)
		goto err_free; /* the fd is still ours: closed there */
	c->stream_live = true;
	c->state = HOST_CONN_NEW;
	*out = c;
	return 0;

err_free:
	if (fd >= 0)
		close(fd);
	free(c->free_cids);
	free(c->reqs);
	free(c);
	return r;
}

static void host_icreq_done(struct stream_tx *tx, int status)
{
	struct host_conn *c = tx->ctx;

	if (status < 0)
		host_conn_fail(c, status);
}

int host_conn_start(struct host_conn *c)
{
	if (c->state != HOST_CONN_NEW)
		return -EINVAL;
	c->icreq_tx.iov[0].iov_base = c->icreq_buf;
	c->icreq_tx.iov[0].iov_len =
		pdu_build_icreq(c->icreq_buf, 0, c->opts.hdgst, c->opts.ddgst, 0);
	c->icreq_tx.iovcnt = 1;
	c->icreq_tx.done = host_icreq_done;
	c->icreq_tx.ctx = c;
	host_conn_set_state(c, HOST_CONN_IC_WAIT);
	stream_queue(&c->stream, &c->icreq_tx);
	return 0;
}

int host_conn_connect(struct host_conn *c, int timeout_ms)
{
	bool live = false;
	uint64_t deadline = host_now_ms() + (uint64_t)timeout_ms;
	int r;

	r = host_conn_start(c);
	if (r < 0)
		return r;
	while (!live) {
		uint64_t now = host_now_ms();

		if (c->state >= HOST_CONN_FAILED)
			return host_conn_poll(c, 0);
		if (now >= deadline) {
			log_warn("%s: no ICResp within %d ms", c->name, timeout_ms);
			host_conn_fail(c, -ETIMEDOUT);
			host_conn_poll(c, 0);
			return -ETIMEDOUT;
		}
		r = host_conn_wait(c, (int)MIN(deadline - now, 100));
		live = c->state == HOST_CONN_LIVE;
		if (r < 0 && !live)
			return r;
	}
	return 0;
}

#define HOST_TMO_SCANS 8 /* looks per timeout */

bool host_conn_check_timeouts(struct host_conn *c, unsigned timeout_ms)
{
	uint64_t now = host_now_coarse_ms();
	struct host_req *late = NULL;

	if (!timeout_ms || c->state != HOST_CONN_LIVE || !c->outstanding ||
	    now < c->next_tmo_check_ms)
		return false;
	c->next_tmo_check_ms = now + MAX(timeout_ms / HOST_TMO_SCANS, 1u);
	for (unsigned i = 0; i < c->opts.nr_slots; i++) {
		struct host_req *req = &c->reqs[i];

		/* outstanding at this look and HOST_TMO_SCANS looks before: a whole timeout */
		if (req->busy && !req->resp_done && req->tmo_scans++ >= HOST_TMO_SCANS) {
			req->timed_out = true;
			late = late ? late : req;
		}
	}
	if (!late)
		return false;
	log_warn("%s: cid %u (opcode %#x) not completed after %u ms or more: failing the queue",
		 c->name, late->cid, late->sqe.opc, timeout_ms);
	host_conn_fail(c, -ETIMEDOUT);
	return true;
}

unsigned host_conn_harvest(struct host_conn *c, host_harvest_fn fn, void *ctx)
{
	unsigned n = 0;

	if (c->state != HOST_CONN_CLOSED)
		return 0;
	for (unsigned i = 0; i < c->opts.nr_slots; i++) {
		struct host_req *req = &c->reqs[i];

		if (!req->busy || req->resp_done || req->sends || req->timed_out)
			continue;
		fn(ctx, &req->sqe, req->iov, req->iovcnt, req->write, req->cb, req->arg);
		req->busy = false;
		c->free_cids[c->nr_free++] = req->cid;
		c->outstanding--;
		n++;
	}
	return n;
}

void host_conn_close(struct host_conn *c)
{
	if (!c)
		return;
	c->opts.hold_on_fail = false;
	if (c->state < HOST_CONN_FAILED)
		host_conn_fail(c, -ECONNABORTED);
	host_conn_teardown(c);
	free(c->free_cids);
	free(c->reqs);
	free(c);
}

/* ---- dialing ----------------------------------------------------------------------------- */

/* host_dial_one could not set the congestion control: no other address would do better */
#define HOST_DIAL_CC_FAILED INT_MIN

static int host_dial_one(const struct addrinfo *ai, int timeout_ms, const char *tcp_cc, char *err,
			 size_t errlen)
{
	struct pollfd pfd;
	int fd, one = 1, soerr = 0, r;
	socklen_t sl = sizeof(soerr);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (tcp_cc && *tcp_cc) {
		r = sock_set_congestion(fd, tcp_cc, err, errlen);
		if (r < 0) {
			close(fd);
			return HOST_DIAL_CC_FAILED;
		}
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto err_close;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do {
			r = poll(&pfd, 1, timeout_ms);
		} while (r < 0 && errno == EINTR);
		if (r == 0) {
			r = -ETIMEDOUT;
			goto err_close;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			r = soerr ? -soerr : -errno;
			goto err_close;
		}
	}
	return fd;

err_close:
	close(fd);
	return r;
}

int host_dial(const char *traddr, const char *trsvcid, int timeout_ms, const char *tcp_cc,
	      char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res, *ai;
	int r, fd = -ENOENT;

	r = getaddrinfo(traddr, trsvcid, &hints, &res);
	if (r) {
		snprintf(err, errlen, "cannot resolve %s port %s: %s", traddr, trsvcid,
			 gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = host_dial_one(ai, timeout_ms, tcp_cc, err, errlen);
		if (fd >= 0 || fd == HOST_DIAL_CC_FAILED)
			break;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		return fd;
	if (fd == HOST_DIAL_CC_FAILED)
		return -EINVAL; /* err says which name and what the kernel offers */
	if (fd == -ECONNREFUSED)
		snprintf(err, errlen,
			 "connection refused: is nvtcpd (or another NVMe/TCP target) running on "
			 "%s:%s?",
			 traddr, trsvcid);
	else if (fd == -ETIMEDOUT)
		snprintf(err, errlen,
			 "connecting to %s:%s timed out after %d ms: check the address and that no "
			 "firewall drops the port",
			 traddr, trsvcid, timeout_ms);
	else
		snprintf(err, errlen, "cannot connect to %s:%s: %s", traddr, trsvcid,
			 strerror(-fd));
	return fd;
}
