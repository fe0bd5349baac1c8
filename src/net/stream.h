/* One NVMe/TCP byte stream: a non-blocking socket (later TLS) with a receive ring feeding the
 * PDU decoder, direct placement of large payloads, and a send queue of iovec batches.
 * Layer: net. Used by both the target connection and the host queue; knows nothing of them.
 *
 * Receive: stream_recv() reads into the per-stream ring (one recv can carry many small PDUs)
 * and feeds the decoder. Headers are reported to cbs->on_header with rx->hdr valid until the
 * callback returns; a data PDU's owner names the destination there (pdu_rx_set_dst). Payload
 * already in the ring is copied once into the destination; when the ring is drained and more
 * than STREAM_DIRECT_MIN payload bytes remain, the stream readv()s straight into the
 * destination plus the ring (to catch the next header), so large data is never copied twice.
 *
 * Send: the owner fills a struct stream_tx (iovecs pointing to memory it owns) and queues it;
 * the memory stays untouched and owned by the stream until tx->done runs. stream_flush()
 * writes as many queued iovecs as fit into one writev/sendmsg and resumes partial writes.
 *
 * Raw I/O goes through s->io (plain socket now; TLS plugs in a different ops table), so the
 * decoder never sees whether the bytes were encrypted. */
#ifndef NVTCP_NET_STREAM_H
#define NVTCP_NET_STREAM_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../proto/pdu.h"

#define STREAM_RING_DEFAULT (256 * 1024)
#define STREAM_DIRECT_MIN   4096 /* payload left above this is read straight into place */
/* Ring bytes per read while large payloads flow (rx_big): room for the next header and many
 * small PDUs, but at most this much of a large payload lands in the ring to be copied. */
#define STREAM_RING_BIG_READ 4096
#define STREAM_TX_IOV_MAX    (PDU_RX_DST_MAX + 2) /* header + data pieces + digest */
/* iovecs gathered into one sendmsg: a whole turn of 4K reads (header + data + CapsuleResp,
 * 3 per I/O, 4 with a data digest) up to the deepest queue leaves in one call. At 64, QD32
 * needed two sendmsg per turn and nvtcpd spent ~5-10% more CPU per I/O. */
#define STREAM_WRITEV_MAX 512
/* stream_queue_ddgst payloads CRC'd ahead of one sendmsg, at most (beyond the first): what
 * the socket does not take is CRC'd again at the next flush */
#define STREAM_DDGST_AHEAD_MAX (1024 * 1024)
/* Interrupt mode (the peer sleeps between bursts): each side sends the first commands or
 * responses of a turn as soon as STREAM_EARLY_CMDS of them or STREAM_EARLY_BYTES are queued,
 * once per turn, and the rest at the end of the turn. The woken peer then works on the first
 * ones while this side handles the rest, instead of the two taking turns. See
 * stream_flush_early; its callers tgt_conn_flush_early and host_conn_flush_early have the
 * measurements. */
#define STREAM_EARLY_CMDS  4
#define STREAM_EARLY_BYTES (16 * 1024)
/* A large transfer, for stream_flush_early. Busy-poll mode (the peer is awake): only a command
 * or response that queued this many bytes is sent early, the first of a turn, so that the peer
 * works on it while this side copies the rest of the turn (0.5-1 MiB of 128 KiB transfers)
 * into the socket; sent in one sendmsg, less of that overlapped (measured; see
 * host_conn_flush_early). Turns of small transfers keep their one sendmsg (an extra one per
 * turn cost 4K randread QD32 5-25%). Interrupt mode: a command that brought this much data in
 * its capsule (a large Write, received) has its response sent at once, every time (see
 * tgt_conn_flush_early). */
#define STREAM_EARLY_LARGE_BYTES (64 * 1024)
#define STREAM_EARLY_SENT	 UINT_MAX /* *turn_cmds of stream_flush_early: done this turn */
/* Zero-copy sends (stream_queue_zc): the pipe payload pages pass through, sized for a few
 * 128 KiB payloads (the default 64 KiB pipe would take two rounds per payload). */
#define STREAM_ZC_PIPE_SIZE (1024 * 1024)

struct stream;

/* Continues a running CRC32C over n bytes at p, like crc32c_update (which is what the stream
 * uses unless told otherwise), possibly from what it knows of those bytes. */
typedef uint32_t (*stream_crc_fn)(void *ctx, uint32_t crc, const void *p, size_t n);

/* A queued send. The owner fills iov/iovcnt/done/ctx and keeps the memory the iovecs point
 * to alive and unmodified until done(tx, status) is called (status 0, or -errno when the
 * stream failed or was closed). The tx itself is owned by the stream until done. */
struct stream_tx {
	struct iovec iov[STREAM_TX_IOV_MAX];
	int iovcnt;
	void (*done)(struct stream_tx *tx, int status);
	void *ctx;
	/* private to the stream */
	struct stream_tx *next;
	int iov_idx;
	size_t iov_off;
	/* queued with stream_queue_zc: the payload goes by reference (vmsplice + splice) */
	bool zerocopy;
	/* queued with stream_queue_ddgst: the stream fills in the data digest itself */
	bool ddgst_late;
	uint32_t ddgst_crc; /* CRC32C state over the payload bytes the I/O layer has taken */
	stream_crc_fn ddgst_fn;
	void *ddgst_fn_ctx;
};

/* Callbacks into the owner (target connection or host queue). Return 0 to go on, or a
 * negative errno to stop receiving (the stream reports it from stream_recv). To make the
 * stream send a TermReq for a protocol error found by the owner (bad TTAG, ...), return
 * -EPROTO after filling s->err. Callbacks must not call stream_fini(): the stream is still
 * walking its ring; return an error and tear down after stream_recv returns. */
struct stream_cbs {
	/* A complete, validated header in s->rx.hdr. For a PDU with data, call
	 * pdu_rx_set_dst() or pdu_rx_discard() on &s->rx before returning. */
	int (*on_header)(struct stream *s, void *ctx);
	/* The PDU is complete: payload placed, digests checked (s->rx.ddgst_ok). */
	int (*on_pdu)(struct stream *s, void *ctx);
};

/* Raw byte I/O beneath the stream: plain socket or TLS. Both follow readv/writev semantics
 * on a non-blocking fd: >0 bytes, 0 for EOF (read), -EAGAIN, or -errno. pending and fini are
 * optional (NULL for plain sockets). */
struct stream_io_ops {
	ssize_t (*readv)(struct stream *s, const struct iovec *iov, int iovcnt);
	ssize_t (*writev)(struct stream *s, const struct iovec *iov, int iovcnt, bool more);
	/* Most bytes one writev takes (0: as many as the socket does); see stream_queue_ddgst */
	size_t writev_max;
	/* Bytes already read from the socket but not yet returned by readv (TLS records
	 * decrypted or buffered): epoll cannot see them, so the owner must read again. */
	bool (*pending)(const struct stream *s);
	/* Send bytes the layer holds itself (TLS records encrypted but not yet accepted by the
	 * socket): 0 when none are left, -EAGAIN, or -errno. tx_buffered says if any are. */
	int (*flush)(struct stream *s);
	bool (*tx_buffered)(const struct stream *s);
	/* Release s->io_ctx (best-effort orderly close, e.g. TLS close_notify); before close. */
	void (*fini)(struct stream *s);
};

extern const struct stream_io_ops stream_plain_io;

struct stream {
	int fd;
	const struct stream_io_ops *io;
	void *io_ctx; /* TLS session, unused for plain sockets */
	struct pdu_rx rx;
	const struct stream_cbs *cbs;
	void *ctx;
	uint8_t *ring; /* receive ring (owned by the stream) */
	size_t ring_size;
	size_t ring_head; /* first unconsumed byte */
	size_t ring_tail; /* one past the last received byte */
	struct stream_tx *tx_head, *tx_tail;
	size_t tx_queued_bytes;
	struct pdu_err err; /* set when stream_recv fails with -EPROTO */
	uint8_t term_type;  /* TermReq type we send: H2C (host role) or C2H (ctrl role) */
	bool closed;
	/* The last PDU with data carried more than STREAM_DIRECT_MIN bytes: the ring takes at
	 * most STREAM_RING_BIG_READ bytes per read, so that the next large payload is read
	 * straight into its destination instead of into the ring (and copied again). */
	bool rx_big;
	uint64_t early_mark; /* tx_bytes + tx_queued_bytes at the last stream_flush_early */
	/* Zero-copy sends (stream_zc_enable): a pipe whose buffers reference payload pages
	 * vmspliced from memory; zc_pipe_bytes of them are not yet spliced into the socket and
	 * go before anything else. Counted in tx_bytes when they enter the pipe. */
	bool zc_on;
	int zc_pipe[2];
	size_t zc_pipe_bytes;
	/* statistics */
	uint64_t rx_bytes, tx_bytes, rx_syscalls, tx_syscalls, rx_direct_bytes;
	uint64_t tx_zc_bytes; /* of tx_bytes, sent by reference through the pipe */
};

/* Set up a stream on a connected non-blocking fd. On success the fd is the stream's (closed by
 * stream_fini); on failure it stays the caller's. role picks which PDUs are accepted; ring_size 0
 * means the default. Returns 0 or -ENOMEM. */
int stream_init(struct stream *s, int fd, enum pdu_role role, size_t ring_size,
		const struct stream_cbs *cbs, void *ctx);
/* Fail every queued tx with -ECONNABORTED, free the ring, close the fd. */
void stream_fini(struct stream *s);

/* Negotiated parameters took effect (after ICReq/ICResp). */
void stream_set_params(struct stream *s, const struct pdu_params *p);

/* Receive and decode until the socket would block or `budget` PDUs completed.
 * Returns the number of PDUs completed (>= 0), -ECONNRESET on EOF, -EPROTO on a protocol
 * error (s->err holds FES/FEI; call stream_send_term_req), or another -errno
 * (a callback's error is passed through). */
int stream_recv(struct stream *s, unsigned budget);

/* In on_header for a PDU with a data digest: pdu_rx_ddgst_verify_ahead over what the ring
 * already holds after the header. True: the whole payload arrived and its digest matches. */
bool stream_rx_ddgst_verify_ahead(struct stream *s);

/* Queue a send; it leaves at the next stream_flush. */
void stream_queue(struct stream *s, struct stream_tx *tx);

/* Zero-copy sends for stream_queue_zc on a plain socket: create the pipe they pass through
 * (two fds, closed by stream_fini). Returns 0 (also when already on), -EOPNOTSUPP under TLS,
 * or -errno. */
int stream_zc_enable(struct stream *s);
/* Queue a send whose payload, iov[1..iovcnt-1], goes by reference: vmspliced into the
 * stream's pipe and spliced into the socket, so TCP sends from these pages and (on loopback)
 * the peer copies straight out of them; the header iov[0] is copied as usual. The peer gets
 * the payload bytes as they are when the kernel copies them, which may be after done() ran:
 * only for memory whose later contents are as good as the present ones (a Read lent from a
 * memory namespace, without a data digest: a Write racing a Read may give either data).
 * The pages stay referenced, so unmapping the memory is safe. Without stream_zc_enable, or
 * if the kernel refuses, the payload is copied like stream_queue's. */
void stream_queue_zc(struct stream *s, struct stream_tx *tx);
/* Queue a data PDU whose digest the stream computes from the bytes as they are handed to the
 * I/O layer: iov[0] is the PDU header, iov[1..iovcnt-2] the payload and iov[iovcnt-1] four
 * writable bytes for the data digest (contents ignored, owned like the rest until done).
 * The payload may change while queued (a Read lent from a memory namespace that later
 * commands of the same event loop write); the digest then still matches the bytes that went
 * out. The one requirement: nothing writes the payload *during* stream_flush, i.e. no other
 * thread writes it. The payload is CRC'd right before the sendmsg that takes it (the kernel's
 * copy then finds it in cache), and the digest goes out in the same sendmsg. After a partial
 * send the CRC covers exactly the bytes taken and goes on from there at the next flush. When
 * the I/O layer takes less per call than the payload (io->writev_max: TLS), each piece is
 * CRC'd right after it was taken instead, once, and the digest follows the last one.
 * crc (NULL: crc32c_update) computes every CRC over the payload, with crc_ctx; for example
 * nvtcp_backend_crc_update, for a payload lent by a backend that caches its blocks' CRCs. */
void stream_queue_ddgst(struct stream *s, struct stream_tx *tx, stream_crc_fn crc, void *crc_ctx);
/* After the owner queued one more command or response of the current turn (*turn_cmds
 * counts them; the owner zeroes it when a turn starts; data_in: bytes of in-capsule data the
 * command brought, 0 on the host): in interrupt mode (busy_poll false) flush once
 * STREAM_EARLY_CMDS of them or STREAM_EARLY_BYTES are queued, once per turn, and for every
 * command with STREAM_EARLY_LARGE_BYTES of data_in; in busy-poll mode once one of them queued
 * STREAM_EARLY_LARGE_BYTES, once per turn. Errors and a full socket are left to the owner's
 * flush at the end of the turn. */
void stream_flush_early(struct stream *s, unsigned *turn_cmds, bool busy_poll, size_t data_in);
/* Write queued data. Returns 0 when everything queued was sent, -EAGAIN when the socket is
 * full (wait for writability), or -errno on failure (queued tx fail at stream_fini). */
int stream_flush(struct stream *s);
static inline bool stream_tx_pending(const struct stream *s)
{
	return s->tx_head != NULL || s->zc_pipe_bytes > 0 ||
	       (s->io->tx_buffered && s->io->tx_buffered(s));
}
/* Received bytes wait in the ring or beneath it (TLS): call stream_recv without waiting for
 * the fd to become readable. */
static inline bool stream_rx_pending(const struct stream *s)
{
	return s->ring_head != s->ring_tail || (s->io->pending && s->io->pending(s));
}

/* Best effort: build a TermReq from s->err and the current header, write it synchronously
 * (short bounded attempt, ignoring what is queued), then shut the socket down for writing. */
void stream_send_term_req(struct stream *s);
/* Same, but never waits: the TermReq (and the rest of a tx cut in the middle) is written only
 * as far as the socket takes it now; the remainder is dropped. For event loops shared by many
 * connections (the target), where a peer that stopped reading must not stall the others. */
void stream_send_term_req_nowait(struct stream *s);

#endif
