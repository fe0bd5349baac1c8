/* One NVMe/TCP byte stream: receive ring -> PDU decoder -> owner callbacks, direct placement of
 * large payloads, and a send queue flushed with gathered sendmsg calls.
 * Layer: net. All functions run on the thread that owns the stream (its loop); nothing here
 * allocates after stream_init. Raw I/O goes through s->io (plain socket here, TLS elsewhere). */
#include "stream.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/compiler.h"
#include "../common/copy.h"
#include "../common/log.h"
#include "../proto/crc32c.h"

/* ---- plain socket I/O ------------------------------------------------------------------- */

static ssize_t stream_plain_readv(struct stream *s, const struct iovec *iov, int iovcnt)
{
	for (;;) {
		ssize_t n = readv(s->fd, iov, iovcnt);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static ssize_t stream_plain_writev(struct stream *s, const struct iovec *iov, int iovcnt, bool more)
{
	struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
	/* MSG_NOSIGNAL: a peer that went away must give EPIPE, not kill the daemon. */
	int flags = MSG_NOSIGNAL | (more ? MSG_MORE : 0);

	for (;;) {
		ssize_t n = sendmsg(s->fd, &msg, flags);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

const struct stream_io_ops stream_plain_io = {
	.readv = stream_plain_readv,
	.writev = stream_plain_writev,
};

/* ---- setup ------------------------------------------------------------------------------ */

int stream_init(struct stream *s, int fd, enum pdu_role role, size_t ring_size,
		const struct stream_cbs *cbs, void *ctx)
{
	/* Until ICReq/ICResp only the IC PDUs (and TermReq) are valid; no digests yet. */
	static const struct pdu_params initial = {.ic_done = false};

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->io = &stream_plain_io;
	s->cbs = cbs;
	s->ctx = ctx;
	s->ring_size = ring_size ? ring_size : STREAM_RING_DEFAULT;
	/* The ring must hold at least one largest header plus its pad. */
	if (s->ring_size < 2 * (WIRE_PDO_MAX + WIRE_DIGEST_LEN))
		s->ring_size = 2 * (WIRE_PDO_MAX + WIRE_DIGEST_LEN);
	s->ring = malloc(s->ring_size);
	if (!s->ring)
		return -ENOMEM;
	s->zc_pipe[0] = s->zc_pipe[1] = -1;
	s->term_type = role == PDU_ROLE_CTRL ? WIRE_PDU_C2H_TERM_REQ : WIRE_PDU_H2C_TERM_REQ;
	pdu_rx_init(&s->rx, role, &initial);
	return 0;
}

/* Pop the head tx and report its status; the owner gets the tx and its memory back. */
static void stream_tx_pop(struct stream *s, int status)
{
	struct stream_tx *tx = s->tx_head;

	s->tx_head = tx->next;
	if (!s->tx_head)
		s->tx_tail = NULL;
	tx->next = NULL;
	if (tx->done)
		tx->done(tx, status);
}

void stream_fini(struct stream *s)
{
	s->closed = true;
	while (s->tx_head)
		stream_tx_pop(s, -ECONNABORTED);
	s->tx_queued_bytes = 0;
	if (s->zc_on) {
		close(s->zc_pipe[0]);
		close(s->zc_pipe[1]);
		s->zc_pipe[0] = s->zc_pipe[1] = -1;
		s->zc_on = false;
	}
	s->zc_pipe_bytes = 0;
	free(s->ring);
	s->ring = NULL;
	if (s->io && s->io->fini)
		s->io->fini(s);
	s->io_ctx = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

void stream_set_params(struct stream *s, const struct pdu_params *p)
{
	pdu_rx_set_params(&s->rx, p);
}

/* ---- receive ---------------------------------------------------------------------------- */

/* Feed what the ring holds to the decoder and run the callbacks. Stops when the ring is
 * drained (returns 0), the budget is reached (returns 0), or on an error (-errno). */
static int stream_process(struct stream *s, unsigned budget, unsigned *done)
{
	while (*done < budget) {
		size_t avail = s->ring_tail - s->ring_head;
		enum pdu_ev ev;
		size_t n = pdu_rx_feed(&s->rx, s->ring + s->ring_head, avail, &ev);
		int ret = 0;

		s->ring_head += n;
		switch (ev) {
		case PDU_EV_NONE:
			/* Everything consumed (or nothing to do): the socket must speak next. */
			return 0;
		case PDU_EV_HEADER:
			if (s->rx.data_len > 0)
				s->rx_big = s->rx.data_len > STREAM_DIRECT_MIN;
			if (s->cbs && s->cbs->on_header)
				ret = s->cbs->on_header(s, s->ctx);
			if (ret < 0)
				return ret;
			/* An owner that named no destination does not want the payload. */
			if (s->rx.state == PDU_RX_HEADER && s->rx.data_len > 0)
				pdu_rx_discard(&s->rx);
			break;
		case PDU_EV_PDU:
			(*done)++;
			if (s->cbs && s->cbs->on_pdu)
				ret = s->cbs->on_pdu(s, s->ctx);
			if (ret < 0)
				return ret;
			break;
		case PDU_EV_ERROR:
		default:
			s->err = s->rx.err;
			return -EPROTO;
		}
	}
	return 0;
}

bool stream_rx_ddgst_verify_ahead(struct stream *s)
{
	/* stream_process advanced ring_head past the header before calling on_header */
	return pdu_rx_ddgst_verify_ahead(&s->rx, s->ring + s->ring_head,
					 s->ring_tail - s->ring_head);
}

/* Make room at the ring's end: reset when empty, slide the unread bytes down otherwise. */
static void stream_ring_compact(struct stream *s)
{
	size_t unread = s->ring_tail - s->ring_head;

	if (unread == 0) {
		s->ring_head = s->ring_tail = 0;
	} else if (s->ring_head > 0 && s->ring_size - s->ring_tail < s->ring_size / 4) {
		memmove(s->ring, s->ring + s->ring_head, unread);
		s->ring_head = 0;
		s->ring_tail = unread;
	}
}

/* One read from the socket. Large payloads left in the current PDU are read straight into the
 * destination, with the ring after them so the digest and next headers come in the same call.
 * Returns bytes read, 0 on EOF, or -errno; *empty says the socket had no more (see below). */
static ssize_t stream_read(struct stream *s, bool *empty)
{
	struct iovec iov[PDU_RX_DST_MAX + 1];
	size_t direct = 0;
	int cnt = 0;
	ssize_t n;

	stream_ring_compact(s);
	if (s->ring_head == s->ring_tail && s->rx.state == PDU_RX_DATA && !s->rx.discard &&
	    pdu_rx_data_left(&s->rx) > STREAM_DIRECT_MIN) {
		cnt = pdu_rx_data_iov(&s->rx, iov, PDU_RX_DST_MAX);
		for (int i = 0; i < cnt; i++)
			direct += iov[i].iov_len;
	}
	iov[cnt].iov_base = s->ring + s->ring_tail;
	iov[cnt].iov_len = s->ring_size - s->ring_tail;
	/* Large payloads flowing: take the next header(s) into the ring but leave the bulk of
	 * the next payload in the socket, to be read straight into place once its header is in
	 * (one more read per large PDU instead of a copy of it). */
	if (s->rx_big && iov[cnt].iov_len > STREAM_RING_BIG_READ)
		iov[cnt].iov_len = STREAM_RING_BIG_READ;
	cnt++;
	/* stream_process drains the ring unless stopped, so this is our bug: a zero-length read
	 * would look like EOF. */
	if (direct == 0 && iov[0].iov_len == 0)
		return -ENOBUFS;

	n = s->io->readv(s, iov, cnt);
	s->rx_syscalls++;
	if (n <= 0)
		return n;
	/* A plain socket that gave less than asked had no more at that moment: stream_recv stops
	 * after this read instead of making one more that would only fail with EAGAIN (level-
	 * triggered readiness reports anything that arrives later). Not while large payloads
	 * stream in (more is on its way), and not under TLS, whose reads return a record at a
	 * time. */
	*empty = s->io == &stream_plain_io && !direct && !s->rx_big && (size_t)n < iov[0].iov_len;
	s->rx_bytes += (uint64_t)n;
	if (direct) {
		size_t landed = MIN((size_t)n, direct);

		pdu_rx_data_landed(&s->rx, landed);
		s->rx_direct_bytes += landed;
		s->ring_tail += (size_t)n - landed;
	} else {
		s->ring_tail += (size_t)n;
	}
	return n;
}

int stream_recv(struct stream *s, unsigned budget)
{
	unsigned done = 0;
	int ret;

	if (s->closed)
		return -ENOTCONN;
	for (;;) {
		ret = stream_process(s, budget, &done);
		if (ret < 0)
			return ret;
		if (done >= budget)
			return (int)done;
		bool empty = false;
		ssize_t n = stream_read(s, &empty);
		if (n == -EAGAIN)
			return (int)done;
		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return (int)n;
		if (empty) {
			/* the socket is empty: process what came and let the caller send */
			ret = stream_process(s, budget, &done);
			return ret < 0 ? ret : (int)done;
		}
	}
}

/* ---- send ------------------------------------------------------------------------------- */

static void stream_queue_tail(struct stream *s, struct stream_tx *tx)
{
	tx->next = NULL;
	tx->iov_idx = 0;
	tx->iov_off = 0;
	for (int i = 0; i < tx->iovcnt; i++)
		s->tx_queued_bytes += tx->iov[i].iov_len;
	if (s->tx_tail)
		s->tx_tail->next = tx;
	else
		s->tx_head = tx;
	s->tx_tail = tx;
}

void stream_queue(struct stream *s, struct stream_tx *tx)
{
	tx->ddgst_late = false;
	tx->zerocopy = false;
	stream_queue_tail(s, tx);
}

int stream_zc_enable(struct stream *s)
{
	int p[2];

	if (s->zc_on)
		return 0;
	if (s->io != &stream_plain_io)
		return -EOPNOTSUPP;
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	/* best effort: a smaller pipe only takes more rounds */
	(void)fcntl(p[1], F_SETPIPE_SZ, STREAM_ZC_PIPE_SIZE);
	s->zc_pipe[0] = p[0];
	s->zc_pipe[1] = p[1];
	s->zc_on = true;
	return 0;
}

void stream_queue_zc(struct stream *s, struct stream_tx *tx)
{
	tx->ddgst_late = false;
	tx->zerocopy = tx->iovcnt > 1;
	stream_queue_tail(s, tx);
}

/* tx's payload goes through the pipe */
static bool stream_tx_zc(const struct stream *s, const struct stream_tx *tx)
{
	return tx->zerocopy && s->zc_on;
}

static uint32_t stream_crc_plain(void *ctx, uint32_t crc, const void *p, size_t n)
{
	(void)ctx;
	return crc32c_update(crc, p, n);
}

void stream_queue_ddgst(struct stream *s, struct stream_tx *tx, stream_crc_fn crc, void *crc_ctx)
{
	assert(tx->iovcnt >= 2 && tx->iov[tx->iovcnt - 1].iov_len == WIRE_DIGEST_LEN);
	tx->ddgst_late = true;
	tx->zerocopy = false;
	tx->ddgst_crc = CRC32C_INIT;
	tx->ddgst_fn = crc ? crc : stream_crc_plain;
	tx->ddgst_fn_ctx = crc_ctx;
	stream_queue_tail(s, tx);
}

/* A late-digest tx's payload is iov[1..iovcnt-2]: its first iovec at or after index idx. */
static int stream_tx_payload_from(int idx)
{
	return idx < 1 ? 1 : idx;
}

/* CRC32C update over the payload bytes of a late-digest tx from position (idx, off) up to
 * position (end_idx, end_off). */
static uint32_t stream_tx_crc_span(const struct stream_tx *tx, uint32_t crc, int end_idx,
				   size_t end_off, int idx, size_t off)
{
	for (int i = stream_tx_payload_from(idx); i <= tx->iovcnt - 2 && i <= end_idx; i++) {
		size_t from = i == idx ? off : 0;
		size_t to = i == end_idx ? end_off : tx->iov[i].iov_len;

		if (to > from)
			crc = tx->ddgst_fn(tx->ddgst_fn_ctx, crc,
					   (const uint8_t *)tx->iov[i].iov_base + from, to - from);
	}
	return crc;
}

/* The I/O layer took a late-digest tx's bytes from (idx, off) up to its current position:
 * fold them into the CRC now, before anything can change them, and once the whole payload
 * was taken, fill in the digest (unless part of it already went out: then it was filled in
 * by stream_tx_gather from these same bytes). */
static void stream_tx_ddgst_taken(struct stream_tx *tx, int idx, size_t off)
{
	uint8_t *dgst = tx->iov[tx->iovcnt - 1].iov_base;

	tx->ddgst_crc = stream_tx_crc_span(tx, tx->ddgst_crc, tx->iov_idx, tx->iov_off, idx, off);
	if (tx->iov_idx == tx->iovcnt - 1 && tx->iov_off == 0)
		pdu_ddgst_put(dgst, crc32c_final(tx->ddgst_crc));
}

/* Payload bytes of a late-digest tx not yet taken by the I/O layer. */
static size_t stream_tx_ddgst_rest(const struct stream_tx *tx)
{
	size_t rest = 0;

	for (int i = stream_tx_payload_from(tx->iov_idx); i <= tx->iovcnt - 2; i++)
		rest += tx->iov[i].iov_len - (i == tx->iov_idx ? tx->iov_off : 0);
	return rest;
}

/* Before gathering a late-digest tx whose payload is not all taken yet: CRC the rest now and
 * fill in the digest, so that one sendmsg carries both; the kernel's copy then finds the bytes
 * in cache. If the I/O layer takes only part, stream_tx_ddgst_taken recomputes the CRC of
 * what it took. (CRC'ing after the send instead, from cache, needs the digest in a second
 * sendmsg: on loopback that cost more in wakeups than it saved.) */
static void stream_tx_ddgst_prepare(const struct stream_tx *tx)
{
	pdu_ddgst_put(tx->iov[tx->iovcnt - 1].iov_base,
		      crc32c_final(stream_tx_crc_span(tx, tx->ddgst_crc, tx->iovcnt - 1, 0,
						      tx->iov_idx, tx->iov_off)));
}

/* Account n written bytes against the queue; complete every tx that is fully sent (in order).
 * A done callback may queue more: it is appended behind and picked up by the next gather. */
static void stream_tx_advance(struct stream *s, size_t n)
{
	s->tx_queued_bytes -= n;
	while (s->tx_head) {
		struct stream_tx *tx = s->tx_head;
		int idx0 = tx->iov_idx;
		size_t off0 = tx->iov_off;

		while (tx->iov_idx < tx->iovcnt) {
			size_t rem = tx->iov[tx->iov_idx].iov_len - tx->iov_off;

			if (rem > n) {
				tx->iov_off += n;
				if (tx->ddgst_late)
					stream_tx_ddgst_taken(tx, idx0, off0);
				return;
			}
			n -= rem;
			tx->iov_idx++;
			tx->iov_off = 0;
		}
		stream_tx_pop(s, 0);
	}
}

/* The unsent, non-empty parts of tx's iovecs before index end, into out (at most max).
 * Returns the count; *all says whether every one fit. */
static int stream_tx_unsent(const struct stream_tx *tx, int end, struct iovec *out, int max,
			    bool *all)
{
	int cnt = 0;

	*all = true;
	for (int i = tx->iov_idx; i < end; i++) {
		size_t off = i == tx->iov_idx ? tx->iov_off : 0;

		if (tx->iov[i].iov_len == off)
			continue;
		if (cnt == max) {
			*all = false;
			break;
		}
		out[cnt].iov_base = (uint8_t *)tx->iov[i].iov_base + off;
		out[cnt].iov_len = tx->iov[i].iov_len - off;
		cnt++;
	}
	return cnt;
}

/* Gather the unsent iovecs of the queue, at most max; *more tells if some were left out. */
static int stream_tx_gather(struct stream *s, struct iovec *iov, int max, bool *more)
{
	size_t ahead = 0; /* late-digest payload bytes CRC'd for this sendmsg */
	int cnt = 0;

	*more = false;
	for (struct stream_tx *tx = s->tx_head; tx; tx = tx->next) {
		int end = tx->iovcnt;
		bool all;

		if (stream_tx_zc(s, tx)) {
			/* its header, then stop: the payload goes through the pipe */
			cnt += stream_tx_unsent(tx, 1, iov + cnt, max - cnt, &all);
			*more = true;
			return cnt;
		}

		if (tx->ddgst_late && tx->iov_idx < tx->iovcnt - 1) {
			size_t rest = stream_tx_ddgst_rest(tx);

			if (cnt > 0 && ahead + rest > STREAM_DDGST_AHEAD_MAX) {
				*more = true;
				return cnt;
			}
			ahead += rest;
			if (s->io->writev_max && rest > s->io->writev_max)
				end = tx->iovcnt - 1; /* digest once the payload was taken */
			else
				stream_tx_ddgst_prepare(tx);
		}
		cnt += stream_tx_unsent(tx, end, iov + cnt, max - cnt, &all);
		if (!all || end < tx->iovcnt) {
			*more = true;
			return cnt;
		}
	}
	return cnt;
}

/* Splice what the pipe holds into the socket. Returns the bytes moved (> 0), -EAGAIN when the
 * socket is full, or -errno. */
static ssize_t stream_zc_drain(struct stream *s)
{
	unsigned flags = SPLICE_F_NONBLOCK | (s->tx_head ? SPLICE_F_MORE : 0);

	for (;;) {
		ssize_t n = splice(s->zc_pipe[0], NULL, s->fd, NULL, s->zc_pipe_bytes, flags);

		if (n > 0) {
			s->zc_pipe_bytes -= (size_t)n;
			s->tx_syscalls++;
			return n;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

/* The head tx's header went out: vmsplice its payload (from where it stands) into the empty
 * pipe. The bytes count as sent: the pipe holds references to their pages, and the tx may
 * complete. If the kernel refuses, zero-copy is turned off and the payload is copied. */
static void stream_zc_fill(struct stream *s, struct stream_tx *tx)
{
	struct iovec iov[STREAM_TX_IOV_MAX];
	bool all;
	int cnt = stream_tx_unsent(tx, tx->iovcnt, iov, STREAM_TX_IOV_MAX, &all);
	ssize_t n;

	do {
		n = cnt ? vmsplice(s->zc_pipe[1], iov, (unsigned long)cnt, SPLICE_F_NONBLOCK) : 0;
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		log_warn("stream fd %d: vmsplice: %s; sending by copy from now on", s->fd,
			 strerror(errno));
		s->zc_on = false; /* the pipe is empty: nothing is lost by closing it */
		close(s->zc_pipe[0]);
		close(s->zc_pipe[1]);
		s->zc_pipe[0] = s->zc_pipe[1] = -1;
		return;
	}
	s->tx_syscalls++;
	s->zc_pipe_bytes = (size_t)n;
	s->tx_bytes += (uint64_t)n;
	s->tx_zc_bytes += (uint64_t)n;
	stream_tx_advance(s, (size_t)n);
}

int stream_flush(struct stream *s)
{
	struct iovec iov[STREAM_WRITEV_MAX];
	bool more;

	if (s->closed)
		return s->tx_head ? -ENOTCONN : 0;
	/* a completion among what goes out may stand for payload this thread stored with
	 * copy_cold(): make that visible to every CPU before the peer can hear of it */
	if (s->tx_head)
		copy_cold_fence();
	while (s->tx_head || s->zc_pipe_bytes > 0) {
		if (s->zc_pipe_bytes > 0) {
			/* before anything else: these bytes come next on the wire */
			ssize_t n = stream_zc_drain(s);

			if (n < 0)
				return (int)n;
			continue;
		}
		if (stream_tx_zc(s, s->tx_head) && s->tx_head->iov_idx > 0) {
			stream_zc_fill(s, s->tx_head);
			continue;
		}
		int cnt = stream_tx_gather(s, iov, STREAM_WRITEV_MAX, &more);

		if (cnt == 0) {
			/* only empty tx left */
			stream_tx_advance(s, 0);
			continue;
		}
		ssize_t n = s->io->writev(s, iov, cnt, more);
		s->tx_syscalls++;
		if (n < 0)
			return (int)n;
		s->tx_bytes += (uint64_t)n;
		stream_tx_advance(s, (size_t)n);
	}
	/* what the I/O layer took may still wait beneath it (TLS records) */
	return s->io->flush ? s->io->flush(s) : 0;
}

void stream_flush_early(struct stream *s, unsigned *turn_cmds, bool busy_poll, size_t data_in)
{
	/* bytes this command or response queued: everything ever queued, minus the last mark */
	uint64_t total = s->tx_bytes + s->tx_queued_bytes;
	uint64_t added = total - s->early_mark;
	bool now;

	s->early_mark = total;
	if (!busy_poll && data_in >= STREAM_EARLY_LARGE_BYTES) {
		(void)stream_flush(s); /* every time, not once per turn */
		return;
	}
	if (*turn_cmds == STREAM_EARLY_SENT)
		return;
	if (*turn_cmds < STREAM_EARLY_CMDS)
		++*turn_cmds;
	if (busy_poll)
		now = added >= STREAM_EARLY_LARGE_BYTES;
	else
		now = *turn_cmds == STREAM_EARLY_CMDS || s->tx_queued_bytes >= STREAM_EARLY_BYTES;
	if (!now)
		return;
	*turn_cmds = STREAM_EARLY_SENT;
	(void)stream_flush(s);
}

/* ---- fatal errors ----------------------------------------------------------------------- */

/* Room in the socket within max_waits x 100 ms from t0 (bounded: the connection is being torn
 * down anyway). Returns 0 to try again, -EAGAIN if max_waits is 0 (never wait), or
 * -ETIMEDOUT. */
static int stream_wait_out(struct stream *s, const struct timespec *t0, int max_waits)
{
	struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};
	struct timespec t;
	long left;

	if (max_waits == 0)
		return -EAGAIN;
	clock_gettime(CLOCK_MONOTONIC, &t);
	left = max_waits * 100L -
	       ((t.tv_sec - t0->tv_sec) * 1000L + (t.tv_nsec - t0->tv_nsec) / 1000000L);
	if (left <= 0 || poll(&pfd, 1, (int)left) < 0)
		return -ETIMEDOUT;
	return 0;
}

/* Write what the zero-copy pipe holds, then all of iov, then what the I/O layer buffers,
 * within max_waits x 100 ms (0: never wait, what does not fit now is dropped; a payload can
 * take many rounds through a small send buffer). Returns 0 or -errno (-EAGAIN when it did
 * not fit). */
static int stream_write_bounded(struct stream *s, struct iovec *iov, int cnt, int max_waits)
{
	struct timespec t0;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (s->zc_pipe_bytes > 0) {
		ssize_t n = stream_zc_drain(s);

		if (n > 0)
			continue;
		if (n != -EAGAIN)
			return (int)n;
		if ((r = stream_wait_out(s, &t0, max_waits)) < 0)
			return r;
	}
	while (cnt > 0) {
		ssize_t n = s->io->writev(s, iov, cnt, false);

		if (n == -EAGAIN) {
			if ((r = stream_wait_out(s, &t0, max_waits)) < 0)
				return r;
			continue;
		}
		if (n < 0)
			return (int)n;
		s->tx_bytes += (uint64_t)n;
		size_t left = (size_t)n;
		while (cnt > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	while (s->io->flush) {
		int ret = s->io->flush(s);

		if (ret != -EAGAIN)
			return ret;
		if ((r = stream_wait_out(s, &t0, max_waits)) < 0)
			return r;
	}
	return 0;
}

static void stream_term_req(struct stream *s, int max_waits)
{
	uint8_t buf[PDU_TERM_REQ_MAX];
	struct iovec iov[STREAM_TX_IOV_MAX + 1];
	int cnt = 0;
	/* The offending header as far as it was received (SPDK copies HLEN bytes). */
	size_t bad_len = s->rx.hdr_have;

	if (s->closed || s->fd < 0)
		return;
	if (bad_len > sizeof(struct wire_ch) && bad_len > s->rx.hdr.ch.hlen)
		bad_len = s->rx.hdr.ch.hlen;
	size_t len = pdu_build_term_req(buf, s->term_type, &s->err, s->rx.hdr.raw, bad_len);

	/* A tx cut in the middle (and the zero-copy pipe before it) must be finished first, or
	 * the TermReq would land inside another PDU; whole tx still queued are simply not sent. */
	struct stream_tx *tx = s->tx_head;
	if (tx && (tx->iov_idx > 0 || tx->iov_off > 0)) {
		bool all;

		cnt = stream_tx_unsent(tx, tx->iovcnt, iov, STREAM_TX_IOV_MAX, &all);
	}
	iov[cnt].iov_base = buf;
	iov[cnt].iov_len = len;
	cnt++;
	int ret = stream_write_bounded(s, iov, cnt, max_waits);
	if (ret < 0)
		log_warn("stream fd %d: TermReq (FES %02xh) not sent: %s", s->fd, s->err.fes,
			 ret == -EAGAIN ? "socket full, peer not reading" : strerror(-ret));
	shutdown(s->fd, SHUT_WR);
}

void stream_send_term_req(struct stream *s)
{
	/* at most ~300 ms */
	stream_term_req(s, 3);
}

void stream_send_term_req_nowait(struct stream *s)
{
	/* On a shared loop a peer that stopped reading must not stall every other connection;
	 * if the TermReq does not fit now, that peer would not read it anyway. */
	stream_term_req(s, 0);
}
