/* Target connection: one TCP connection carrying one NVMe queue. Runs the NVMe/TCP controller
 * side on top of struct stream: ICReq/ICResp, CapsuleCmd (in-capsule data placed straight into
 * the request's pool buffer), R2T/H2CData for other writes, C2HData and CapsuleResp, TermReq on
 * fatal errors. Commands are handed to the core through tgt.h and never interpreted here.
 * Layer: target (transport side). Everything runs on the connection's loop thread.
 *
 * Request slots (struct tgt_creq) are preallocated per connection, indexed by TTAG: the admin
 * depth at accept, grown to the Connect SQSIZE on the first command that needs it. A slot is
 * free again only once its protocol exchange is over and its last send has completed. */
#include "conn.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/le.h"
#include "../common/log.h"
#include "../net/stream.h"
#include "../net/tls.h"
#include "../proto/crc32c.h"
#include "tls_keys.h"

#define TGT_CONN_RX_BUDGET  64		 /* PDUs per connection per loop turn */
#define TGT_CONN_C2H_MAX    (128 * 1024) /* largest C2HData we send */
#define TGT_CREQ_TX_MAX	    (TGT_MAX_XFER / TGT_CONN_C2H_MAX + 1) /* C2HData PDUs + CapsuleResp */
#define TGT_CREQ_TX_RESP    (TGT_CREQ_TX_MAX - 1)
#define TGT_CONN_MAX_BLOCKS 8

_Static_assert(TGT_MAX_XFER % TGT_CONN_C2H_MAX == 0, "C2HData split");
_Static_assert(TGT_CONN_C2H_MAX <= TGT_MAXH2CDATA, "one PDU size for both directions");
_Static_assert(TGT_CONN_C2H_MAX / TGT_POOL_CHUNK + 1 <= STREAM_TX_IOV_MAX - 2, "C2H iovecs");
_Static_assert(TGT_MAXH2CDATA / TGT_POOL_CHUNK + 1 <= PDU_RX_DST_MAX, "H2C iovecs");

enum tgt_conn_state {
	TGT_CONN_IC_WAIT, /* accepted; only ICReq is valid */
	TGT_CONN_LIVE,	  /* ICResp queued: commands flow */
	TGT_CONN_CLOSING, /* socket closed; waiting for requests the core still holds */
	TGT_CONN_STATE_COUNT
};

enum tgt_creq_state {
	TGT_CREQ_FREE,	  /* on conn->free_reqs */
	TGT_CREQ_CAPSULE, /* CapsuleCmd header seen, its in-capsule data still arriving */
	TGT_CREQ_H2C,	  /* R2T sent (or queued), H2CData arriving */
	TGT_CREQ_EXEC,	  /* owned by the core: between req->execute and tgt_req_complete */
	TGT_CREQ_SEND,	  /* data and response queued; freed when the last send completes */
	TGT_CREQ_STATE_COUNT
};

/* Transport state of one request slot; req.transport points back here. */
struct tgt_creq {
	struct tgt_req req;
	struct tgt_conn *conn;
	enum tgt_creq_state state;
	uint16_t ttag;		/* slot index */
	uint16_t xport_status;	/* status decided by the transport (digest error, no buffer) */
	bool xport_dnr;		/* ... with DNR */
	bool init_failed;	/* tgt_req_init filled req.cqe with an error */
	uint32_t h2c_done;	/* bytes received through H2CData so far */
	int tx_pending;		/* stream_tx queued and not yet done */
	int nchunks;		/* pool chunks in iov[] */
	struct list_head entry; /* free list or R2T wait list */
	struct iovec iov[TGT_REQ_CHUNKS_MAX];
	/* outgoing PDUs: R2T in tx[0]; C2HData in tx[0..]; CapsuleResp in tx[TGT_CREQ_TX_RESP] */
	struct stream_tx tx[TGT_CREQ_TX_MAX];
	uint8_t hdr[TGT_CREQ_TX_MAX][WIRE_PDO_MAX + WIRE_DIGEST_LEN];
	uint8_t ddgst[TGT_CREQ_TX_MAX][WIRE_DIGEST_LEN];
};

struct tgt_conn {
	struct tgt_queue queue; /* first: tgt_queue <-> tgt_conn */
	struct stream stream;
	struct tgt_thread *thread;
	struct tgt_conn_thread *ct;
	struct loop *loop;
	struct tgt_conn_opts opts;
	enum tgt_conn_state state;
	struct pdu_params params;

	/* request slots */
	struct tgt_creq *slots[TGT_MAX_QUEUE_DEPTH];
	unsigned nr_slots;
	struct tgt_creq *blocks[TGT_CONN_MAX_BLOCKS];
	unsigned nr_blocks;
	struct list_head free_reqs;
	unsigned nr_core;	 /* requests in TGT_CREQ_EXEC */
	unsigned nr_busy;	 /* slots not free */
	uint64_t transitions;	 /* request state changes (statistics) */
	struct tgt_creq *rx_req; /* request whose data the PDU being received carries */
	uint8_t *incap_skip; /* where bytes before an in-capsule offset land; made on first use */

	struct loop_work flush_work; /* send what was queued this turn */
	unsigned turn_cmds;	     /* commands this turn: see tgt_conn_flush_early */
	struct loop_work rx_work;    /* receive again: budget ran out or reading resumed */
	struct loop_work close_work; /* the core asked for a disconnect */
	struct loop_work reap_work;  /* free once closed and the core gave everything back */
	struct loop_timer tick;	     /* timeouts */
	uint64_t created_ms, last_rx_ms, last_tx_ms;
	uint64_t tx_bytes_seen;
	bool fd_registered;
	bool want_out;	/* EPOLLOUT registered: the socket was full */
	bool rx_paused; /* too much queued to send: not reading commands */
	bool zc_tried;	/* stream_zc_enable was called (its result: stream.zc_on) */
	uint8_t icresp[sizeof(struct wire_icresp)];
	struct stream_tx icresp_tx;
	struct list_head entry; /* in ct->conns */
};

/* Request transitions (anything else is a bug of ours, not of the peer):
 *   FREE     -> CAPSULE   [tgt_conn_capsule_header]  CapsuleCmd header received
 *   CAPSULE  -> H2C       [tgt_creq_send_r2t]        write needing data from the host
 *   CAPSULE  -> EXEC      [tgt_creq_execute/fail]    data complete, or the command failed
 *   H2C      -> EXEC      [tgt_conn_h2c_done]        last H2CData byte received
 *   EXEC     -> SEND      [tgt_conn_req_complete]    the core completed it
 *   SEND     -> FREE      [tgt_creq_tx_done]         last send completed
 *   CAPSULE, H2C -> FREE [tgt_conn_close]            connection closed, nothing in flight */
static const bool tgt_creq_allowed[TGT_CREQ_STATE_COUNT][TGT_CREQ_STATE_COUNT] = {
	[TGT_CREQ_FREE] = {[TGT_CREQ_CAPSULE] = true},
	[TGT_CREQ_CAPSULE] =
		{[TGT_CREQ_H2C] = true, [TGT_CREQ_EXEC] = true, [TGT_CREQ_FREE] = true},
	[TGT_CREQ_H2C] = {[TGT_CREQ_EXEC] = true, [TGT_CREQ_FREE] = true},
	[TGT_CREQ_EXEC] = {[TGT_CREQ_SEND] = true},
	[TGT_CREQ_SEND] = {[TGT_CREQ_FREE] = true},
};

static void tgt_creq_set_state(struct tgt_creq *r, enum tgt_creq_state to)
{
	assert(tgt_creq_allowed[r->state][to]);
	r->conn->transitions++;
	r->state = to;
}

static void tgt_conn_req_complete(struct tgt_req *req);
static void tgt_conn_disconnect(struct tgt_queue *q);

static const char *tgt_conn_tls_identity(struct tgt_queue *q)
{
	struct tgt_conn *c = container_of(q, struct tgt_conn, queue);

	return tls_stream_identity(&c->stream);
}

static const struct tgt_queue_ops tgt_conn_queue_ops = {
	.complete = tgt_conn_req_complete,
	.disconnect = tgt_conn_disconnect,
	.tls_identity = tgt_conn_tls_identity,
};

void tgt_conn_opts_default(struct tgt_conn_opts *o)
{
	o->ic_timeout_ms = 10000;
	o->idle_timeout_ms = 30000;
	o->tx_stall_ms = 30000;
	o->tick_ms = 1000;
	o->tx_max_bytes = 8u << 20;
}

static inline struct tgt_conn *tgt_conn_of(struct tgt_queue *q)
{
	return container_of(q, struct tgt_conn, queue);
}

static const char *tgt_conn_name(const struct tgt_conn *c)
{
	return c->queue.name;
}

/* ---- request slots ---------------------------------------------------------------------- */

/* Commands the host may have outstanding: SQSIZE once connected (the Linux host keeps that
 * many tags), the admin depth before Connect. */
static unsigned tgt_conn_depth_limit(const struct tgt_conn *c)
{
	unsigned limit = TGT_ADMIN_QUEUE_DEPTH;

	if (c->queue.connected && c->queue.sqsize)
		limit = c->queue.sqsize;
	return MIN(limit, (unsigned)TGT_MAX_QUEUE_DEPTH);
}

/* Allocate the slots up to the queue's current depth limit (connection setup or just after
 * Connect: not on the I/O path). */
static int tgt_conn_grow_slots(struct tgt_conn *c)
{
	unsigned limit = tgt_conn_depth_limit(c), n;
	struct tgt_creq *block;

	if (c->nr_slots >= limit || c->nr_blocks == TGT_CONN_MAX_BLOCKS)
		return -ENOSPC;
	n = limit - c->nr_slots;
	block = calloc(n, sizeof(*block));
	if (!block)
		return -ENOMEM;
	c->blocks[c->nr_blocks++] = block;
	for (unsigned i = 0; i < n; i++) {
		struct tgt_creq *r = &block[i];

		r->conn = c;
		r->ttag = (uint16_t)c->nr_slots;
		r->state = TGT_CREQ_FREE;
		r->req.transport = r;
		r->req.queue = &c->queue;
		list_init(&r->req.core_entry);
		c->slots[c->nr_slots++] = r;
		list_add_tail(&r->entry, &c->free_reqs);
	}
	return 0;
}

static struct tgt_creq *tgt_creq_get(struct tgt_conn *c)
{
	struct tgt_creq *r;

	if (c->nr_busy >= tgt_conn_depth_limit(c))
		return NULL;
	if (list_empty(&c->free_reqs) && tgt_conn_grow_slots(c) < 0)
		return NULL;
	r = list_first_entry(&c->free_reqs, struct tgt_creq, entry);
	list_del(&r->entry);
	c->nr_busy++;
	r->xport_status = 0;
	r->xport_dnr = false;
	r->init_failed = false;
	r->h2c_done = 0;
	r->tx_pending = 0;
	r->nchunks = 0;
	memset(&r->req.cqe, 0, sizeof(r->req.cqe));
	r->req.data_len = 0;
	r->req.incapsule = false;
	r->req.xfer = TGT_XFER_NONE;
	r->req.iov = NULL;
	r->req.iovcnt = 0;
	/* A Read's C2HData may be sent from a memory namespace's own bytes: with a data digest
	 * too when this is the target's only event loop, since the stream CRCs the bytes as it
	 * hands them to the socket (stream_queue_ddgst) and only another thread could change
	 * them in between. A Write lands in place without a data digest, or with one that was
	 * checked before any byte landed (tgt_conn_capsule_header): bytes a digest would reject
	 * must never reach the namespace. */
	r->req.lend_ok = !c->params.ddgst || c->thread->tgt->nr_threads == 1;
	r->req.place_ok = !c->params.ddgst;
	r->req.execute = NULL;
	r->req.ns = NULL;
	r->req.sub_pending = 0;
	r->req.sub_status = 0;
	return r;
}

static void tgt_creq_release_buf(struct tgt_creq *r)
{
	if (r->nchunks > 0)
		tgt_pool_put(&r->conn->ct->pool, r->iov, r->nchunks);
	r->nchunks = 0;
	r->req.iov = NULL;
	r->req.iovcnt = 0;
}

static void tgt_creq_free(struct tgt_creq *r)
{
	struct tgt_conn *c = r->conn;

	tgt_creq_release_buf(r);
	tgt_creq_set_state(r, TGT_CREQ_FREE);
	list_add(&r->entry, &c->free_reqs);
	c->nr_busy--;
	if (c->state == TGT_CONN_CLOSING)
		loop_defer(c->loop, &c->reap_work);
}

/* Free r if nothing of it is in flight any more. */
static void tgt_creq_try_free(struct tgt_creq *r)
{
	if (r->tx_pending > 0 || r->state == TGT_CREQ_FREE || r->state == TGT_CREQ_EXEC)
		return;
	if (r->state == TGT_CREQ_SEND || r->conn->state == TGT_CONN_CLOSING)
		tgt_creq_free(r);
}

/* Describe [off, off + len) of the request's buffer (req.iov: the pool chunks, or a Read's bytes
 * lent by the backend) in out[] (at most max entries).
 * Returns the count, or -1 if the range needs more entries or exceeds the buffer. */
static int tgt_creq_slice(const struct tgt_creq *r, uint32_t off, uint32_t len, struct iovec *out,
			  int max)
{
	const struct iovec *iov = r->req.iov;
	int n = 0;

	for (int i = 0; i < r->req.iovcnt && len > 0; i++) {
		size_t il = iov[i].iov_len;

		if (off >= il) {
			off -= (uint32_t)il;
			continue;
		}
		if (n == max)
			return -1;
		out[n].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[n].iov_len = MIN(il - off, (size_t)len);
		len -= (uint32_t)out[n].iov_len;
		off = 0;
		n++;
	}
	return len == 0 ? n : -1;
}

/* ---- sending ---------------------------------------------------------------------------- */

static void tgt_creq_tx_done(struct stream_tx *tx, int status)
{
	struct tgt_creq *r = tx->ctx;

	r->tx_pending--;
	tgt_creq_try_free(r);
}

static uint32_t tgt_creq_crc_lent(void *backend, uint32_t crc, const void *p, size_t n)
{
	return nvtcp_backend_crc_update(backend, crc, p, n);
}

/* --zero-copy-reads: Reads of 64 KiB or more lent by a memory namespace leave by reference
 * (stream_queue_zc): TCP sends from the namespace's pages and, on loopback, the host copies
 * straight out of them; nvtcpd's copy of the payload is gone. Only without a data digest (a
 * Write racing the Read could change the bytes after the digest was computed) and only on
 * plain TCP (TLS encrypts a copy). Opt-in, because on loopback it moves the DRAM read of a
 * cold namespace to the host. Measured, 128K read QD8, 3 s runs, medians of 3-4, cubic:
 * 1 GiB namespace busy-poll 45.2K -> 46.5K IOPS, interrupt mode 42.9K -> 35.7K (nvtcpd 23.0 ->
 * 10.5 us per I/O, host 17.2 -> 24.3); 8 MiB namespace busy-poll 54.3K -> 67.6K, interrupt
 * 51.8K -> 52.3K (nvtcpd 19.0 -> 12.0 us). With BBR: busy-poll 40.1K -> 27.5K. */
#define TGT_CONN_ZC_MIN (64 * 1024)

static bool tgt_conn_zc_ready(struct tgt_conn *c)
{
	if (!c->opts.zero_copy_reads)
		return false;
	if (!c->zc_tried) {
		int r = stream_zc_enable(&c->stream);

		c->zc_tried = true;
		if (r < 0 && r != -EOPNOTSUPP)
			log_info("%s: zero-copy Reads off: %s", tgt_conn_name(c), strerror(-r));
	}
	return c->stream.zc_on;
}

/* How a tx is handed to the stream */
enum tgt_tx_kind {
	TGT_TX_COPY,  /* stream_queue */
	TGT_TX_DDGST, /* a C2HData whose data digest the stream fills in (stream_queue_ddgst) */
	TGT_TX_ZC,    /* a C2HData whose payload goes by reference (stream_queue_zc) */
};

static void tgt_creq_queue(struct tgt_creq *r, struct stream_tx *tx, enum tgt_tx_kind kind)
{
	struct tgt_conn *c = r->conn;

	tx->done = tgt_creq_tx_done;
	tx->ctx = r;
	r->tx_pending++;
	if (kind == TGT_TX_ZC)
		stream_queue_zc(&c->stream, tx);
	else if (kind == TGT_TX_DDGST && r->req.iov == &r->req.lent_iov)
		/* a memory namespace's own bytes: its cached block CRCs (one event loop) */
		stream_queue_ddgst(&c->stream, tx, tgt_creq_crc_lent, r->req.ns->backend);
	else if (kind == TGT_TX_DDGST)
		stream_queue_ddgst(&c->stream, tx, NULL, NULL);
	else
		stream_queue(&c->stream, tx);
	/* one flush per turn: responses completed in the same turn leave in one writev */
	loop_defer(c->loop, &c->flush_work);
}

static void tgt_conn_fd_cb(struct loop *l, int fd, uint32_t events, void *ctx);

static void tgt_conn_set_events(struct tgt_conn *c)
{
	uint32_t ev = 0;

	if (!c->rx_paused)
		ev |= EPOLLIN;
	if (c->want_out)
		ev |= EPOLLOUT;
	loop_mod_fd(c->loop, c->stream.fd, ev, tgt_conn_fd_cb, c);
}

static void tgt_conn_flush(struct tgt_conn *c)
{
	bool out, paused;
	int ret;

	if (c->state == TGT_CONN_CLOSING)
		return;
	ret = stream_flush(&c->stream);
	if (ret < 0 && ret != -EAGAIN) {
		log_info("%s: send failed: %s", tgt_conn_name(c), strerror(-ret));
		tgt_conn_close(c, "send failed");
		return;
	}
	out = ret == -EAGAIN;
	/* a peer that does not read must not make us queue without bound */
	paused = c->stream.tx_queued_bytes > c->opts.tx_max_bytes;
	if (out != c->want_out || paused != c->rx_paused) {
		bool resumed = c->rx_paused && !paused;

		c->want_out = out;
		c->rx_paused = paused;
		tgt_conn_set_events(c);
		if (resumed)
			loop_defer(c->loop, &c->rx_work);
	}
}

uint64_t tgt_conn_tx_syscalls(const struct tgt_conn *c)
{
	return c->stream.tx_syscalls;
}

static void tgt_conn_flush_work(struct loop_work *w)
{
	struct tgt_conn *c = w->ctx;

	c->turn_cmds = 0;
	tgt_conn_flush(c);
}

/* Interrupt mode: the first STREAM_EARLY_CMDS commands' responses of a loop turn (or its first
 * STREAM_EARLY_BYTES) leave at once, the rest in one sendmsg at the end of the turn. The host
 * is likely asleep in poll; woken by the first responses, it completes them and sends new
 * commands while this loop works through the rest of the batch. Measured with the host doing
 * the same (host_conn_flush_early), 4 s runs, 1 GiB namespace, interrupt mode: 4K randread
 * QD32 215-266K -> 484-512K IOPS, 4K randwrite QD32 231-265K -> 510-555K, QD128 randread
 * 478-603K -> 697K, 128K write QD8 20.8K -> 27.2K; 128K read and QD1 within noise. Flushing
 * at every 16 KiB instead of once per turn made 128K reads 45% slower. Busy-poll mode: only the
 * first response of a turn that carries STREAM_EARLY_LARGE_BYTES (a 64 KiB or larger Read)
 * leaves at once; 3 s runs, medians of 5: 128K read QD8 32.5K -> 34.2K IOPS (28-40K, noisy),
 * 4K randread QD32 unchanged. The interrupt-mode rule there, an extra sendmsg every turn, made
 * 4K randread QD32 25% slower. In interrupt mode a command that brought 64 KiB or more of
 * in-capsule data (data_in: a large Write) has its response sent at once, every time: a turn
 * that reads a queue's worth of 128 KiB Writes took so long that the host, waiting for the
 * first four responses, sent in large batches and the two sides took turns (nvtcpd woke 3.2K
 * times a second for 47K Writes). 128K write QD8, 3 s, 7 pairs: 19.3-32.4K (median 27.9K) ->
 * 26.7-36.7K (34.7K) IOPS; 32K randwrite QD16 unchanged. */
static void tgt_conn_flush_early(struct tgt_conn *c, size_t data_in)
{
	stream_flush_early(&c->stream, &c->turn_cmds, loop_is_busy_poll(c->loop), data_in);
}

static void tgt_creq_send_r2t(struct tgt_creq *r)
{
	struct tgt_conn *c = r->conn;
	struct stream_tx *tx = &r->tx[0];
	size_t n;

	tgt_creq_set_state(r, TGT_CREQ_H2C);
	/* one R2T for the whole transfer (as SPDK does); the host splits it by MAXH2CDATA */
	n = pdu_build_r2t(r->hdr[0], le16_get(r->req.sqe.cid), r->ttag, 0, r->req.data_len,
			  &c->params);
	tx->iov[0].iov_base = r->hdr[0];
	tx->iov[0].iov_len = n;
	tx->iovcnt = 1;
	log_debug("%s: R2T cid %u ttag %u r2tl %u", tgt_conn_name(c), le16_get(r->req.sqe.cid),
		  r->ttag, r->req.data_len);
	tgt_creq_queue(r, tx, TGT_TX_COPY);
}

/* Queue C2HData PDUs carrying the whole buffer. Returns 1 if the last one carries SUCCESS (no
 * CapsuleResp follows), 0 if a CapsuleResp must follow, -1 if the buffer could not be described
 * (some PDUs may be queued, none with LAST_PDU): the command must then fail. */
static int tgt_creq_send_data(struct tgt_creq *r)
{
	struct tgt_conn *c = r->conn;
	const struct wire_cqe *cqe = &r->req.cqe;
	bool success = c->queue.sqfc_disabled && le16_get(cqe->status) == 0 &&
		       le32_get(cqe->dw0) == 0 && le32_get(cqe->dw1) == 0;
	uint16_t cid = le16_get(r->req.sqe.cid);
	uint32_t len = r->req.data_len;
	int i = 0;

	for (uint32_t off = 0; off < len; off += TGT_CONN_C2H_MAX, i++) {
		struct stream_tx *tx = &r->tx[i];
		uint32_t datal = MIN(len - off, (uint32_t)TGT_CONN_C2H_MAX);
		bool last = off + datal == len;
		int k;

		tx->iov[0].iov_base = r->hdr[i];
		tx->iov[0].iov_len = pdu_build_c2h_data(r->hdr[i], cid, off, datal, last,
							last && success, &c->params);
		k = tgt_creq_slice(r, off, datal, &tx->iov[1], STREAM_TX_IOV_MAX - 2);
		/* chunks are TGT_POOL_CHUNK-aligned in the buffer: a C2HData spans few of them */
		if (k < 0) {
			log_err("%s: cid %u: read buffer layout", tgt_conn_name(c), cid);
			return -1;
		}
		tx->iovcnt = 1 + k;
		/* the digest is computed as the stream sends the data: the bytes may be the
		 * namespace's own (lent), which later commands of this loop may overwrite */
		if (c->params.ddgst) {
			tx->iov[tx->iovcnt].iov_base = r->ddgst[i];
			tx->iov[tx->iovcnt].iov_len = WIRE_DIGEST_LEN;
			tx->iovcnt++;
		}
		log_debug("%s: C2HData cid %u datao %u datal %u%s%s", tgt_conn_name(c), cid, off,
			  datal, last ? " last" : "", last && success ? " success" : "");
		if (c->params.ddgst)
			tgt_creq_queue(r, tx, TGT_TX_DDGST);
		else if (r->req.iov == &r->req.lent_iov && datal >= TGT_CONN_ZC_MIN &&
			 tgt_conn_zc_ready(c))
			tgt_creq_queue(r, tx, TGT_TX_ZC);
		else
			tgt_creq_queue(r, tx, TGT_TX_COPY);
	}
	return success ? 1 : 0;
}

/* queue->ops->complete: the core is done with the request (req->cqe filled). */
static void tgt_conn_req_complete(struct tgt_req *req)
{
	struct tgt_creq *r = req->transport;
	struct tgt_conn *c = r->conn;
	struct stream_tx *tx = &r->tx[TGT_CREQ_TX_RESP];

	if (r->state == TGT_CREQ_EXEC)
		c->nr_core--;
	tgt_creq_set_state(r, TGT_CREQ_SEND);
	if (c->state == TGT_CONN_CLOSING) {
		tgt_creq_try_free(r);
		return;
	}
	if (req->xfer == TGT_XFER_FROM_CTRL && le16_get(req->cqe.status) == 0 &&
	    req->data_len > 0 && r->nchunks > 0) {
		int sent = tgt_creq_send_data(r);

		if (sent > 0) {
			tgt_creq_try_free(r);
			return;
		}
		if (sent < 0) /* never a success for data that did not all go out */
			le16_put(req->cqe.status, NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL));
	}
	tx->iov[0].iov_base = r->hdr[TGT_CREQ_TX_RESP];
	tx->iov[0].iov_len =
		pdu_build_capsule_resp(r->hdr[TGT_CREQ_TX_RESP], &req->cqe, &c->params);
	tx->iovcnt = 1;
	log_debug("%s: CapsuleResp cid %u status %#x", tgt_conn_name(c), le16_get(req->cqe.cid),
		  le16_get(req->cqe.status));
	tgt_creq_queue(r, tx, TGT_TX_COPY);
}

/* ---- command flow ----------------------------------------------------------------------- */

static void tgt_creq_execute(struct tgt_creq *r)
{
	tgt_creq_set_state(r, TGT_CREQ_EXEC);
	r->conn->nr_core++;
	r->req.execute(&r->req);
}

/* The command failed before execution: complete it through the core (CQE sqhd/cid). */
static void tgt_creq_fail(struct tgt_creq *r)
{
	tgt_creq_set_state(r, TGT_CREQ_EXEC); /* the core owns it until it calls complete */
	r->conn->nr_core++;
	if (r->xport_status)
		tgt_req_complete_status(&r->req, r->xport_status, r->xport_dnr);
	else
		tgt_req_complete(&r->req);
}

/* All data of the command is in (or there was none): run it, fail it, or ask for data. */
static void tgt_creq_dispatch(struct tgt_creq *r)
{
	if (r->xport_status || r->init_failed) {
		tgt_creq_fail(r);
	} else if (r->req.xfer == TGT_XFER_TO_CTRL && !r->req.incapsule && r->req.data_len > 0 &&
		   r->h2c_done < r->req.data_len) {
		/* Its R2T now, whatever else waits for data: MAXR2T limits the R2Ts outstanding
		 * for one command (the spec's "for a command", as Linux and SPDK hosts count it)
		 * and a command gets one, for its whole transfer. Holding a queue's next Write
		 * back until the previous one's data was in cost a round trip per Write above the
		 * in-capsule size. */
		tgt_creq_send_r2t(r);
	} else {
		tgt_creq_execute(r);
	}
}

static void tgt_creq_set_xport_status(struct tgt_creq *r, uint8_t sc, bool dnr)
{
	if (!r->xport_status && !r->init_failed) {
		r->xport_status = NVME_STATUS(NVME_SCT_GENERIC, sc);
		r->xport_dnr = dnr;
	}
}

static int tgt_conn_fatal(struct tgt_conn *c, enum wire_fes fes, uint32_t fei, const char *why)
{
	log_warn("%s: %s: fatal (FES %#x FEI %u)", tgt_conn_name(c), why, (unsigned)fes, fei);
	c->stream.err.fes = fes;
	c->stream.err.fei = fei;
	return -EPROTO;
}

/* Name the destination of the current PDU's payload: skip bytes the command does not use
 * (in-capsule data at an offset, an SGL Offset address: they land in the connection's scratch
 * buffer, made the first time a host does this; Linux and SPDK hosts never do), then bytes
 * [off, off + len) of r's data. Payloads headed straight into a memory namespace (in place;
 * only small ones are, see IO_PLACE_MAX) come whole through the receive ring, and the copy
 * from there bypasses the cache (random 4K writes: nvtcpd -17% CPU per I/O). Returns 0 or
 * -1. */
#define TGT_CONN_SKIP_MAX MAX(TGT_INCAPSULE_IO, TGT_INCAPSULE_ADMIN)
static int tgt_conn_place(struct tgt_conn *c, struct tgt_creq *r, uint32_t skip, uint32_t off,
			  uint32_t len)
{
	struct iovec dst[PDU_RX_DST_MAX];
	int n = 0, k;

	if (skip) {
		if (skip > TGT_CONN_SKIP_MAX ||
		    (!c->incap_skip && !(c->incap_skip = malloc(TGT_CONN_SKIP_MAX))))
			return -1;
		dst[n].iov_base = c->incap_skip;
		dst[n++].iov_len = skip;
	}
	k = tgt_creq_slice(r, off, len, dst + n, PDU_RX_DST_MAX - n);
	if (k <= 0 || pdu_rx_set_dst(&c->stream.rx, dst, n + k) < 0)
		return -1;
	if (r->req.bio.in_place)
		pdu_rx_set_dst_cold(&c->stream.rx);
	return 0;
}

static int tgt_conn_capsule_header(struct tgt_conn *c)
{
	const union wire_pdu *hdr = &c->stream.rx.hdr;
	uint32_t incap = c->stream.rx.data_len;
	uint32_t max_incap;
	struct tgt_creq *r;
	uint16_t st;
	int n;

	r = tgt_creq_get(c);
	if (!r) {
		/* More commands than the queue depth: SPDK and Linux both drop the connection;
		 * we say why first (sequence error). */
		return tgt_conn_fatal(c, WIRE_FES_PDU_SEQUENCE, 0, "command beyond queue depth");
	}
	memcpy(&r->req.sqe, &hdr->cmd.sqe, sizeof(r->req.sqe));
	tgt_creq_set_state(r, TGT_CREQ_CAPSULE);
	c->rx_req = r;
	tgt_queue_touch(&c->queue);
	log_debug("%s: CapsuleCmd cid %u opc %#x ttag %u incapsule %u", tgt_conn_name(c),
		  le16_get(r->req.sqe.cid), r->req.sqe.opc, r->ttag, incap);

	/* Admin and Fabrics commands may carry 8 KiB in-capsule whatever IOCCSZ says */
	max_incap =
		c->queue.connected && c->queue.qid != 0 ? TGT_INCAPSULE_IO : TGT_INCAPSULE_ADMIN;
	st = tgt_req_parse_sgl(&r->req, incap, max_incap);
	/* With a data digest, in-capsule data may still land in a memory namespace if it has
	 * all arrived (in the ring) and its digest matches: nothing unverified lands there. */
	if (!st && incap > 0 && c->params.ddgst)
		r->req.place_ok = stream_rx_ddgst_verify_ahead(&c->stream);
	if (st) {
		r->xport_status = st;
		r->xport_dnr = true;
	} else if (tgt_req_init(&r->req) < 0) {
		r->init_failed = true;
	} else if (r->req.incapsule ? r->req.incap_off + r->req.data_len != incap : incap != 0) {
		tgt_creq_set_xport_status(r, NVME_SC_SGL_INVALID_DATA, true);
	} else if (r->req.data_len > 0 && !r->req.iov) {
		/* (a Write that lands in the namespace itself already has req.iov) */
		n = tgt_pool_get(&c->ct->pool, r->req.data_len, r->iov, TGT_REQ_CHUNKS_MAX);
		if (n == -E2BIG) {
			tgt_creq_set_xport_status(r, NVME_SC_SGL_INVALID_DATA, true);
		} else if (n < 0) {
			log_warn("%s: data buffer pool exhausted", tgt_conn_name(c));
			tgt_creq_set_xport_status(r, NVME_SC_INTERNAL, false);
		} else {
			r->nchunks = n;
			r->req.iov = r->iov;
			r->req.iovcnt = n;
		}
	}

	if (incap == 0)
		return 0;
	if (r->req.iov && !r->xport_status && !r->init_failed) {
		if (tgt_conn_place(c, r, r->req.incap_off, 0, r->req.data_len) == 0)
			return 0;
		tgt_creq_set_xport_status(r, NVME_SC_INTERNAL, false);
	}
	/* the command already failed: its data goes nowhere (digest still checked) */
	pdu_rx_discard(&c->stream.rx);
	return 0;
}

static void tgt_conn_capsule_done(struct tgt_conn *c)
{
	struct tgt_creq *r = c->rx_req;

	c->rx_req = NULL;
	if (!c->stream.rx.ddgst_ok) {
		/* SPDK: Transient Transport Error and the connection lives (Linux resets it) */
		log_warn("%s: cid %u: in-capsule data digest error", tgt_conn_name(c),
			 le16_get(r->req.sqe.cid));
		r->xport_status = 0;
		r->init_failed = false;
		tgt_creq_set_xport_status(r, NVME_SC_TRANSIENT_TRANSPORT, false);
	}
	if (r->req.incapsule)
		r->h2c_done = r->req.data_len;
	tgt_creq_dispatch(r);
}

static int tgt_conn_h2c_header(struct tgt_conn *c)
{
	const struct wire_h2c_data *h = &c->stream.rx.hdr.h2c;
	uint16_t ttag = le16_get(h->ttag);
	uint32_t datao = le32_get(h->datao);
	uint32_t datal = c->stream.rx.data_len;
	struct tgt_creq *r;

	/* Unsolicited data (no R2T outstanding for the tag) once crashed the kernel target.
	 * SPDK: FES 01h with FEI at the TTAG field. */
	if (ttag >= c->nr_slots || c->slots[ttag]->state != TGT_CREQ_H2C)
		return tgt_conn_fatal(c, WIRE_FES_INVALID_HEADER_FIELD,
				      offsetof(struct wire_h2c_data, ttag), "H2CData without R2T");
	r = c->slots[ttag];
	if (le16_get(h->cccid) != le16_get(r->req.sqe.cid))
		return tgt_conn_fatal(c, WIRE_FES_INVALID_HEADER_FIELD,
				      offsetof(struct wire_h2c_data, cccid),
				      "H2CData CCCID does not match the TTAG");
	if (datao != r->h2c_done || (uint64_t)datao + datal > r->req.data_len)
		return tgt_conn_fatal(c, WIRE_FES_DATA_OUT_OF_RANGE, 0, "H2CData out of range");
	log_debug("%s: H2CData cid %u ttag %u datao %u datal %u", tgt_conn_name(c),
		  le16_get(h->cccid), ttag, datao, datal);
	if (tgt_conn_place(c, r, 0, datao, datal) < 0)
		return tgt_conn_fatal(c, WIRE_FES_DATA_OUT_OF_RANGE, 0, "H2CData placement");
	c->rx_req = r;
	return 0;
}

static void tgt_conn_h2c_done(struct tgt_conn *c)
{
	struct tgt_creq *r = c->rx_req;

	c->rx_req = NULL;
	r->h2c_done += c->stream.rx.data_len;
	if (!c->stream.rx.ddgst_ok) {
		log_warn("%s: cid %u: H2CData data digest error", tgt_conn_name(c),
			 le16_get(r->req.sqe.cid));
		tgt_creq_set_xport_status(r, NVME_SC_TRANSIENT_TRANSPORT, false);
	}
	/* LAST_PDU is informational: the byte count says when the transfer is complete */
	if (r->h2c_done < r->req.data_len)
		return;
	tgt_creq_dispatch(r);
}

static void tgt_conn_icresp_done(struct stream_tx *tx, int status)
{
}

static int tgt_conn_icreq(struct tgt_conn *c)
{
	const struct wire_icreq *icreq = &c->stream.rx.hdr.icreq;

	/* echo the host's digest choice; CPDA 0 (we accept data at any dword offset) */
	c->params.hdgst = icreq->dgst & WIRE_DGST_HDR;
	c->params.ddgst = icreq->dgst & WIRE_DGST_DATA;
	c->params.cpda = 0;
	c->params.hpda = icreq->hpda;
	c->params.maxh2cdata = TGT_MAXH2CDATA;
	c->params.max_incapsule = MAX(TGT_INCAPSULE_IO, TGT_INCAPSULE_ADMIN);
	c->params.max_c2h_data = 0;
	c->params.ic_done = true;

	c->icresp_tx.iov[0].iov_base = c->icresp;
	c->icresp_tx.iov[0].iov_len =
		pdu_build_icresp(c->icresp, 0, c->params.hdgst, c->params.ddgst, TGT_MAXH2CDATA);
	c->icresp_tx.iovcnt = 1;
	c->icresp_tx.done = tgt_conn_icresp_done;
	c->icresp_tx.ctx = c;
	stream_queue(&c->stream, &c->icresp_tx);
	loop_defer(c->loop, &c->flush_work);
	/* PDUs after the ICReq may already sit in the ring: validate them with the new params */
	stream_set_params(&c->stream, &c->params);
	c->state = TGT_CONN_LIVE;
	/* (MAXR2T counts R2Ts per command; each gets one, so nothing to enforce) */
	log_info("%s: ICReq: hdgst %d ddgst %d hpda %u maxr2t %llu", tgt_conn_name(c),
		 c->params.hdgst, c->params.ddgst, c->params.hpda,
		 (unsigned long long)le32_get(icreq->maxr2t) + 1);
	return 0;
}

/* ---- stream callbacks ------------------------------------------------------------------- */

static int tgt_conn_on_header(struct stream *s, void *ctx)
{
	struct tgt_conn *c = ctx;

	switch (s->rx.hdr.ch.pdu_type) {
	case WIRE_PDU_CAPSULE_CMD:
		return tgt_conn_capsule_header(c);
	case WIRE_PDU_H2C_DATA:
		return tgt_conn_h2c_header(c);
	default:
		return 0;
	}
}

static int tgt_conn_on_pdu(struct stream *s, void *ctx)
{
	struct tgt_conn *c = ctx;
	const union wire_pdu *hdr = &s->rx.hdr;

	switch (hdr->ch.pdu_type) {
	case WIRE_PDU_ICREQ:
		return tgt_conn_icreq(c);
	case WIRE_PDU_CAPSULE_CMD: {
		size_t data_in = c->stream.rx.data_len; /* in-capsule data */

		tgt_conn_capsule_done(c);
		tgt_conn_flush_early(c, data_in);
		return 0;
	}
	case WIRE_PDU_H2C_DATA:
		tgt_conn_h2c_done(c);
		return 0;
	case WIRE_PDU_H2C_TERM_REQ:
		log_warn("%s: host sent TermReq: FES %#x FEI %u", tgt_conn_name(c),
			 le16_get(hdr->term.fes), le32_get(hdr->term.fei));
		return -ECONNRESET;
	default:
		/* the decoder only lets H2C PDUs through */
		return tgt_conn_fatal(c, WIRE_FES_INVALID_HEADER_FIELD, 0, "unexpected PDU");
	}
}

static const struct stream_cbs tgt_conn_stream_cbs = {
	.on_header = tgt_conn_on_header,
	.on_pdu = tgt_conn_on_pdu,
};

/* ---- receiving, timeouts, closing ------------------------------------------------------- */

static void tgt_conn_recv(struct tgt_conn *c)
{
	int ret;

	if (c->state == TGT_CONN_CLOSING || c->rx_paused)
		return;
	ret = stream_recv(&c->stream, TGT_CONN_RX_BUDGET);
	c->last_rx_ms = loop_now_ms(c->loop);
	if (ret >= TGT_CONN_RX_BUDGET) {
		/* bytes may be left in the ring where epoll cannot see them */
		loop_defer(c->loop, &c->rx_work);
	} else if (ret == -EPROTO) {
		log_warn("%s: protocol error: FES %#x FEI %u, sending TermReq", tgt_conn_name(c),
			 (unsigned)c->stream.err.fes, c->stream.err.fei);
		/* what this turn already answered goes first (best effort, never blocks) */
		(void)stream_flush(&c->stream);
		/* never waits: a host that stopped reading must not stall this loop */
		stream_send_term_req_nowait(&c->stream);
		tgt_conn_close(c, "protocol error");
	} else if (ret == -ECONNRESET) {
		tgt_conn_close(c, "closed by peer");
	} else if (ret < 0) {
		log_info("%s: receive failed: %s", tgt_conn_name(c), strerror(-ret));
		tgt_conn_close(c, "receive failed");
	}
}

static void tgt_conn_rx_work(struct loop_work *w)
{
	tgt_conn_recv(w->ctx);
}

static void tgt_conn_fd_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct tgt_conn *c = ctx;

	if (events & EPOLLOUT)
		tgt_conn_flush(c);
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		tgt_conn_recv(c);
}

/* Between two PDUs nothing is owed; inside one, the host owes us bytes. */
static bool tgt_conn_rx_mid_pdu(const struct tgt_conn *c)
{
	const struct pdu_rx *rx = &c->stream.rx;

	if (rx->state == PDU_RX_DONE)
		return false;
	return rx->state != PDU_RX_CH || rx->hdr_have > 0;
}

static void tgt_conn_tick(struct loop_timer *t)
{
	struct tgt_conn *c = t->ctx;
	uint64_t now = loop_now_ms(c->loop);

	if (c->state == TGT_CONN_IC_WAIT && now - c->created_ms >= c->opts.ic_timeout_ms) {
		tgt_conn_close(c, "no ICReq in time");
		return;
	}
	if (tgt_conn_rx_mid_pdu(c) && now - c->last_rx_ms >= c->opts.idle_timeout_ms) {
		tgt_conn_close(c, "PDU left unfinished");
		return;
	}
	/* A queue that never Connects would hold a connection slot (--max-connections) forever:
	 * keep-alive only starts with a controller. */
	if (c->state == TGT_CONN_LIVE && !c->queue.connected &&
	    now - c->created_ms >= c->opts.idle_timeout_ms) {
		tgt_conn_close(c, "no Connect in time");
		return;
	}
	if (c->stream.tx_bytes != c->tx_bytes_seen || !stream_tx_pending(&c->stream)) {
		c->tx_bytes_seen = c->stream.tx_bytes;
		c->last_tx_ms = now;
	} else if (now - c->last_tx_ms >= c->opts.tx_stall_ms) {
		tgt_conn_close(c, "peer stopped reading");
		return;
	}
	loop_timer_arm(c->loop, &c->tick, c->opts.tick_ms);
}

static void tgt_conn_free(struct tgt_conn *c)
{
	struct tgt_conn_thread *ct = c->ct;
	struct tgt_thread *th = c->thread;

	loop_work_cancel(c->loop, &c->flush_work);
	loop_work_cancel(c->loop, &c->rx_work);
	loop_work_cancel(c->loop, &c->close_work);
	loop_work_cancel(c->loop, &c->reap_work);
	loop_timer_cancel(c->loop, &c->tick);
	for (unsigned i = 0; i < c->nr_slots; i++)
		tgt_creq_release_buf(c->slots[i]);
	for (unsigned i = 0; i < c->nr_blocks; i++)
		free(c->blocks[i]);
	free(c->incap_skip);
	list_del(&c->entry);
	ct->nr_conns--;
	if (ct->live_conns)
		atomic_fetch_sub(ct->live_conns, 1);
	log_info("%s: closed", tgt_conn_name(c));
	free(c);
	if (ct->draining && ct->nr_conns == 0 && ct->on_drained)
		ct->on_drained(th);
}

/* Held by the core indefinitely: they do not delay the close, tgt_queue_destroy ends them. */
static bool tgt_creq_is_parked(const struct tgt_creq *r)
{
	return r->state == TGT_CREQ_EXEC && r->conn->queue.qid == 0 &&
	       r->req.sqe.opc == NVME_ADMIN_ASYNC_EVENT;
}

static void tgt_conn_reap_work(struct loop_work *w)
{
	struct tgt_conn *c = w->ctx;

	for (unsigned i = 0; i < c->nr_slots; i++) {
		struct tgt_creq *r = c->slots[i];

		if (r->state == TGT_CREQ_EXEC && !tgt_creq_is_parked(r))
			return; /* its completion defers us again */
	}
	tgt_queue_destroy(&c->queue);
	tgt_conn_free(c);
}

void tgt_conn_close(struct tgt_conn *c, const char *reason)
{
	if (c->state == TGT_CONN_CLOSING)
		return;
	if (c->stream.tx_zc_bytes)
		log_info("%s: closing: %s (%llu of %llu bytes sent by reference)", tgt_conn_name(c),
			 reason, (unsigned long long)c->stream.tx_zc_bytes,
			 (unsigned long long)c->stream.tx_bytes);
	else
		log_info("%s: closing: %s", tgt_conn_name(c), reason);
	c->state = TGT_CONN_CLOSING;
	loop_timer_cancel(c->loop, &c->tick);
	loop_work_cancel(c->loop, &c->flush_work);
	loop_work_cancel(c->loop, &c->rx_work);
	loop_work_cancel(c->loop, &c->close_work);
	if (c->fd_registered) {
		loop_del_fd(c->loop, c->stream.fd);
		c->fd_registered = false;
	}
	c->rx_req = NULL;
	/* fails the queued sends: their done callbacks free the requests they finish */
	stream_fini(&c->stream);
	/* requests the core does not own are dropped now */
	for (unsigned i = 0; i < c->nr_slots; i++) {
		struct tgt_creq *r = c->slots[i];

		tgt_creq_try_free(r);
	}
	loop_defer(c->loop, &c->reap_work);
}

static void tgt_conn_close_work(struct loop_work *w)
{
	tgt_conn_close(w->ctx, "disconnect requested by the controller");
}

/* queue->ops->disconnect: may run inside our own stream callbacks, so defer. */
static void tgt_conn_disconnect(struct tgt_queue *q)
{
	struct tgt_conn *c = tgt_conn_of(q);

	if (c->state != TGT_CONN_CLOSING)
		loop_defer(c->loop, &c->close_work);
}

static void tgt_conn_format_peer(struct tgt_conn *c, int fd)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
			port = ntohs(sin->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
			port = ntohs(sin6->sin6_port);
		} else {
			snprintf(addr, sizeof(addr), "local");
		}
	}
	snprintf(c->queue.peer_addr, sizeof(c->queue.peer_addr), "%s", addr);
	if (ss.ss_family == AF_INET6)
		snprintf(c->queue.name, sizeof(c->queue.name), "[%s]:%u", addr, port);
	else
		snprintf(c->queue.name, sizeof(c->queue.name), "%s:%u", addr, port);
}

int tgt_conn_create(struct tgt_thread *th, struct tgt_port *port, int fd,
		    const struct tgt_conn_opts *opts, struct tgt_conn **out)
{
	struct tgt_conn_thread *ct = th->transport;
	struct pdu_params p = {0};
	struct tgt_conn *c;
	int ret;

	if (ct->draining) {
		ret = -ESHUTDOWN;
		goto err_uncount;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		ret = -ENOMEM;
		goto err_uncount;
	}
	if (opts)
		c->opts = *opts;
	else
		tgt_conn_opts_default(&c->opts);
	c->thread = th;
	c->ct = ct;
	c->loop = th->loop;
	c->state = TGT_CONN_IC_WAIT;
	c->queue.tgt = th->tgt;
	c->queue.thread = th;
	c->queue.port = port;
	c->queue.ops = &tgt_conn_queue_ops;
	list_init(&c->queue.ctrl_entry);
	list_init(&c->free_reqs);
	c->flush_work.fn = tgt_conn_flush_work;
	c->flush_work.ctx = c;
	c->rx_work.fn = tgt_conn_rx_work;
	c->rx_work.ctx = c;
	c->close_work.fn = tgt_conn_close_work;
	c->close_work.ctx = c;
	c->reap_work.fn = tgt_conn_reap_work;
	c->reap_work.ctx = c;
	c->tick.fn = tgt_conn_tick;
	c->tick.ctx = c;
	tgt_conn_format_peer(c, fd);

	ret = tgt_conn_grow_slots(c);
	if (ret < 0)
		goto err_free;
	ret = stream_init(&c->stream, fd, PDU_ROLE_CTRL, 0, &tgt_conn_stream_cbs, c);
	if (ret < 0)
		goto err_free;
	/* secure ports: the TLS handshake runs inside the stream's first reads (IC timeout) */
	ret = tgt_tls_conn_start(&c->stream, th->tgt, port, tgt_conn_name(c));
	if (ret < 0)
		goto err_stream;
	/* before ICReq only the ICReq is valid; pdu_params below stay the validator's view */
	c->params = p;
	stream_set_params(&c->stream, &c->params);
	ret = loop_add_fd(c->loop, fd, EPOLLIN, tgt_conn_fd_cb, c);
	if (ret < 0)
		goto err_stream;
	c->fd_registered = true;
	c->created_ms = c->last_rx_ms = c->last_tx_ms = loop_now_ms(c->loop);
	loop_timer_arm(c->loop, &c->tick, c->opts.tick_ms);
	list_add_tail(&c->entry, &ct->conns);
	ct->nr_conns++;
	log_info("%s: connection opened on thread %u", tgt_conn_name(c), th->index);
	if (out)
		*out = c;
	return 0;

err_stream:
	stream_fini(&c->stream); /* closes fd */
	fd = -1;
err_free:
	for (unsigned i = 0; i < c->nr_blocks; i++)
		free(c->blocks[i]);
	free(c);
err_uncount:
	if (fd >= 0)
		close(fd);
	if (ct->live_conns)
		atomic_fetch_sub(ct->live_conns, 1);
	return ret;
}

/* ---- per-thread state ------------------------------------------------------------------- */

int tgt_conn_thread_init(struct tgt_thread *th)
{
	struct tgt_conn_thread *ct = calloc(1, sizeof(*ct));
	int ret;

	if (!ct)
		return -ENOMEM;
	ret = tgt_pool_init(&ct->pool, TGT_POOL_CHUNK, TGT_POOL_PREALLOC, TGT_POOL_MAX_CHUNKS);
	if (ret < 0) {
		free(ct);
		return ret;
	}
	list_init(&ct->conns);
	th->transport = ct;
	return 0;
}

void tgt_conn_thread_fini(struct tgt_thread *th)
{
	struct tgt_conn_thread *ct = th->transport;

	if (!ct)
		return;
	tgt_pool_fini(&ct->pool);
	free(ct);
	th->transport = NULL;
}

void tgt_conn_thread_drain(struct tgt_thread *th, void (*on_drained)(struct tgt_thread *th))
{
	struct tgt_conn_thread *ct = th->transport;
	struct list_head *pos, *tmp;

	ct->draining = true;
	ct->on_drained = on_drained;
	if (ct->nr_conns == 0) {
		if (on_drained)
			on_drained(th);
		return;
	}
	/* closing never frees synchronously (reap is deferred): the walk is safe */
	list_for_each_safe (pos, tmp, &ct->conns) {
		tgt_conn_close(list_entry(pos, struct tgt_conn, entry), "target shutting down");
	}
}
