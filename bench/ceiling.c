/* ceiling: the loopback speed limit nvtcp is measured against (bench layer, uses no nvtcp code).
 * A client thread keeps Q I/Os outstanding over one TCP connection on 127.0.0.1 to a server
 * thread and moves exactly the bytes NVMe/TCP moves per I/O without digests: a 72-byte command;
 * a read answered by 24 + data + 24 bytes (C2HData header, data, CapsuleResp); a write carried as
 * 72 + data bytes and answered by 24. No NVMe logic, every socket trick: whatever this reaches,
 * nvtcp cannot beat with the same kernel TCP stack, pinning and mode (blocking or busy-poll). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/errqueue.h> /* after time.h: it uses struct timespec */

#include <liburing.h>

#include "common/copy.h"
#include "common/le.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

/* Byte counts of NVMe/TCP without digests (NVMe/TCP 1.0: CapsuleCmd 8 + 64, C2HData and
 * CapsuleResp 24), and the type codes, so a packet capture of this program reads like NVMe/TCP. */
#define CEIL_CMD_LEN	    72
#define CEIL_SHORT_LEN	    24
#define CEIL_CH_LEN	    8
#define CEIL_T_CAPSULE_CMD  0x04
#define CEIL_T_CAPSULE_RESP 0x05
#define CEIL_T_C2H_DATA	    0x07
#define CEIL_OPC_WRITE	    0x01
#define CEIL_OPC_READ	    0x02

#define CEIL_MAX_QD	      4096
#define CEIL_MAX_IO	      (8u << 20)
#define CEIL_GRACE_S	      10 /* a run may overrun its --seconds by this much, then it fails */
#define CEIL_LOWAT_MIN	      (32u << 10) /* payload bytes left that make SO_RCVLOWAT worth a call */
#define CEIL_ZC_REAP_AT	      32 /* zero-copy sends in flight before reaping notifications */
#define CEIL_EARLY_BYTES      (16u << 10) /* see ceil_early() */
#define CEIL_EARLY_POLL_BYTES (64u << 10)

enum ceil_mode {
	CEIL_MODE_BLOCK, /* blocking sockets: threads sleep in recv and are woken by the stack */
	CEIL_MODE_POLL,	 /* non-blocking sockets, threads spin on recv (SO_BUSY_POLL if allowed) */
	CEIL_MODE_COUNT
};

enum ceil_rw { CEIL_RW_READ, CEIL_RW_WRITE, CEIL_RW_COUNT };

struct ceil_opts {
	enum ceil_mode mode;
	enum ceil_rw rw;
	uint32_t io_size;
	uint32_t qd;
	double seconds;
	int server_cpu; /* -1: do not pin */
	int client_cpu;
	bool zerocopy;	     /* MSG_ZEROCOPY for sends carrying at least zc_min bytes */
	bool splice;	     /* send through vmsplice() + splice(): TCP takes our pages, no copy */
	uint32_t splice_min; /* I/O size from which splice is on */
	uint32_t zc_min;
	int sockbuf;	/* SO_SNDBUF/SO_RCVBUF bytes; 0 leaves kernel autotuning on */
	uint32_t rxbuf; /* bytes asked of one recv() */
	bool json;
	bool tap;
	bool verify;	/* check every payload byte against the pattern */
	bool thp;	/* transparent huge pages for the receive area and the payload */
	bool rcvlowat;	/* blocking mode: SO_RCVLOWAT to the rest of a large payload */
	bool uring;	/* server: recv and sendmsg through io_uring, one io_uring_enter a turn */
	unsigned early; /* blocking mode: the first this many responses/commands of a turn (or
			   CEIL_EARLY_BYTES) leave at once, the rest at its end; 0: off */
	bool random;	/* randread/randwrite: --span offsets are random, else sequential */
	uint64_t span;	/* server's read payloads come from this many bytes (0: io_size) */
	const char *cc; /* TCP congestion control; NULL: the system's default */
};

/* The congestion control the connection used (read back after connecting), for the report. */
static char ceil_cc_used[16] = "unknown";

/* Incremental receiver: many PDUs per recv(); headers split across two recvs are staged,
 * payload bytes are consumed where they landed (one kernel-to-user copy, nothing more). */
struct ceil_rx {
	uint8_t *buf; /* owned: the recv() target */
	size_t cap;
	uint8_t stage[CEIL_CMD_LEN];
	size_t stage_have;
	uint64_t data_left; /* payload bytes of the current PDU not yet received */
	uint64_t data_off;
	uint8_t cur_type;
	uint8_t cur_opc;
	uint16_t cur_cid;
	uint32_t max_data;
	bool verify;
	uint64_t bytes;
	uint64_t verify_errors;
};

/* Send queue: iovecs over a scratch area for headers and over the (never written) data buffer.
 * Everything queued in one loop turn leaves in one sendmsg(). */
struct ceil_tx {
	struct iovec *iov; /* owned */
	unsigned iov_cnt, iov_head, iov_cap;
	uint8_t *scratch; /* owned: headers, referenced by iov until sent */
	size_t scratch_used, scratch_cap;
	bool zerocopy;
	uint32_t zc_min;
	int pipe[2]; /* splice mode: pipe holding references to our pages, else -1 */
	size_t pipe_fill;
	uint64_t zc_inflight;
	uint64_t zc_sends, zc_copied;
	uint64_t bytes;
	uint64_t sendmsgs;
};

struct ceil_side {
	const struct ceil_opts *opts;
	int fd;
	struct ceil_rx rx;
	struct ceil_tx tx;
	uint8_t *slots; /* owned, zero-copy only: per-cid PDU headers, see ceil_side_add_hdr() */
	uint64_t recvs;
	int lowat; /* SO_RCVLOWAT in force */
	double cpu_s;
	int err;	     /* 0 or -errno: why this side stopped early */
	unsigned turn_count; /* PDUs answered (server) or commands issued (client) this turn */
	bool early_done;     /* this turn's first part has left */
	uint8_t *store_at;   /* server: where the current write's payload goes (--span) */
	uint64_t span_next;  /* server: next payload offset in the span (sequential) */
	uint64_t span_rng;   /* server: xorshift state for random span offsets */
	bool stopping;	     /* client: no new commands */
	/* client only */
	uint16_t *free_cids;
	unsigned nfree;
	uint64_t *issue_ns;
	uint8_t *busy;
	uint64_t ios, lat_sum_ns, lat_max_ns;
	uint64_t t_start, t_end;
};

/* Payload pattern: read-only after start, so zero-copy sends never race with writers. */
static uint8_t *ceil_data;
/* --span with writes: the server stores each write payload here, at a block like a namespace
 * of that size would (non-temporal copy out of the receive area, as nvtcpd does) */
static uint8_t *ceil_store;
static uint64_t ceil_hard_deadline_ns;

static uint64_t ceil_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double ceil_thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t ceil_pattern(uint64_t off)
{
	return (uint8_t)(off * 131 + 7);
}

static void ceil_on_alarm(int sig)
{
	static const char msg[] = "ceiling: run overran its time limit, giving up\n";
	ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);

	(void)sig;
	(void)r;
	_exit(3);
}

static int ceil_pin(int cpu)
{
	cpu_set_t set;
	int r;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (r)
		fprintf(stderr, "ceiling: cannot pin to CPU %d (%s), running unpinned\n", cpu,
			strerror(r));
	return -r;
}

/* --- receive ---------------------------------------------------------------------------- */

/* Large buffer, 2 MiB aligned so huge pages can back it: fewer TLB misses in the copies. */
static void *ceil_big_alloc(size_t len, bool thp)
{
	size_t align = thp && len >= (1u << 20) ? 2u << 20 : 4096;
	void *p = aligned_alloc(align, (len + align - 1) & ~(align - 1));

	if (p && align > 4096)
		madvise(p, (len + align - 1) & ~(align - 1), MADV_HUGEPAGE);
	return p;
}

static int ceil_rx_init(struct ceil_rx *rx, size_t cap, uint32_t max_data, bool verify, bool thp)
{
	memset(rx, 0, sizeof(*rx));
	rx->buf = ceil_big_alloc(cap, thp);
	if (!rx->buf)
		return -ENOMEM;
	rx->cap = cap;
	rx->max_data = max_data;
	rx->verify = verify;
	return 0;
}

/* Checks one PDU header; returns its payload length or -EPROTO. */
static int64_t ceil_rx_header(struct ceil_rx *rx, const uint8_t *h)
{
	uint8_t type = h[0], hlen = h[2];
	uint32_t plen = le32_get(h + 4);

	switch (type) {
	case CEIL_T_CAPSULE_CMD:
		if (hlen != CEIL_CMD_LEN || plen < CEIL_CMD_LEN)
			return -EPROTO;
		rx->cur_opc = h[8];
		rx->cur_cid = le16_get(h + 10);
		break;
	case CEIL_T_CAPSULE_RESP:
		if (hlen != CEIL_SHORT_LEN || plen != CEIL_SHORT_LEN)
			return -EPROTO;
		rx->cur_cid = le16_get(h + 8 + 12);
		break;
	case CEIL_T_C2H_DATA:
		if (hlen != CEIL_SHORT_LEN || plen < CEIL_SHORT_LEN ||
		    le32_get(h + 16) != plen - CEIL_SHORT_LEN)
			return -EPROTO;
		rx->cur_cid = le16_get(h + 8);
		break;
	default:
		return -EPROTO;
	}
	if (plen - hlen > rx->max_data)
		return -EPROTO;
	rx->cur_type = type;
	return plen - hlen;
}

static int ceil_deliver(struct ceil_side *s, uint64_t now);
static uint64_t ceil_span_offset(struct ceil_side *s);

static int ceil_rx_start_pdu(struct ceil_side *s, const uint8_t *h, uint64_t now)
{
	int64_t dlen = ceil_rx_header(&s->rx, h);

	if (dlen < 0)
		return (int)dlen;
	s->rx.data_left = (uint64_t)dlen;
	s->rx.data_off = 0;
	/* server, a write's payload follows: where it is stored (the header checked its size) */
	s->store_at = ceil_store && dlen && !s->issue_ns ? ceil_store + ceil_span_offset(s) : NULL;
	return dlen ? 0 : ceil_deliver(s, now);
}

/* Feeds n received bytes; calls ceil_deliver() for each complete PDU. Returns 0 or -EPROTO. */
static int ceil_rx_feed(struct ceil_side *s, const uint8_t *p, size_t n, uint64_t now)
{
	struct ceil_rx *rx = &s->rx;
	int r;

	rx->bytes += n;
	while (n) {
		if (rx->data_left) {
			size_t take = n < rx->data_left ? n : (size_t)rx->data_left;

			if (rx->verify) {
				for (size_t i = 0; i < take; i++)
					rx->verify_errors += p[i] != ceil_pattern(rx->data_off + i);
			}
			if (s->store_at)
				copy_cold(s->store_at + rx->data_off, p, take);
			rx->data_off += take;
			rx->data_left -= take;
			p += take;
			n -= take;
			if (!rx->data_left && (r = ceil_deliver(s, now)) < 0)
				return r;
			continue;
		}
		if (!rx->stage_have && n >= CEIL_CH_LEN && n >= p[2]) {
			/* whole header in this recv: parse it where it landed */
			size_t hlen = p[2];

			if (hlen < CEIL_CH_LEN)
				return -EPROTO;
			if ((r = ceil_rx_start_pdu(s, p, now)) < 0)
				return r;
			p += hlen;
			n -= hlen;
			continue;
		}
		/* header split across recvs: stage the first 8 bytes, then the rest of hlen */
		size_t need = rx->stage_have < CEIL_CH_LEN ? CEIL_CH_LEN : rx->stage[2];
		size_t take = need - rx->stage_have;

		if (take > n)
			take = n;
		memcpy(rx->stage + rx->stage_have, p, take);
		rx->stage_have += take;
		p += take;
		n -= take;
		if (rx->stage_have < CEIL_CH_LEN)
			continue;
		if (rx->stage[2] < CEIL_CH_LEN || rx->stage[2] > sizeof(rx->stage))
			return -EPROTO;
		if (rx->stage_have == rx->stage[2]) {
			rx->stage_have = 0;
			if ((r = ceil_rx_start_pdu(s, rx->stage, now)) < 0)
				return r;
		}
	}
	return 0;
}

/* --- send ------------------------------------------------------------------------------- */

static int ceil_tx_init(struct ceil_tx *tx, unsigned iov_cap, size_t scratch_cap,
			const struct ceil_opts *o)
{
	memset(tx, 0, sizeof(*tx));
	tx->iov = calloc(iov_cap, sizeof(*tx->iov));
	tx->scratch = aligned_alloc(64, (scratch_cap + 63) & ~(size_t)63);
	if (!tx->iov || !tx->scratch)
		return -ENOMEM;
	tx->iov_cap = iov_cap;
	tx->scratch_cap = scratch_cap;
	tx->zerocopy = o->zerocopy;
	tx->zc_min = o->zc_min;
	tx->pipe[0] = tx->pipe[1] = -1;
	if (o->splice) {
		/* room for a whole batch, or the splice loop turns once per pipe-full */
		int want = (int)(2 * (size_t)o->qd * (o->io_size + 2 * CEIL_CMD_LEN));

		if (pipe2(tx->pipe, O_CLOEXEC) < 0)
			return -errno;
		if (want < (1 << 20))
			want = 1 << 20;
		if (want > (64 << 20))
			want = 64 << 20;
		while (fcntl(tx->pipe[1], F_SETPIPE_SZ, want) < 0 && want > 65536)
			want /= 2;
	}
	return 0;
}

/* Moves the unsent tail to the front so a queue that never fully drains stays bounded. */
static void ceil_tx_compact(struct ceil_tx *tx)
{
	uint8_t *lo = tx->scratch + tx->scratch_used;
	size_t shift;

	for (unsigned i = tx->iov_head; i < tx->iov_cnt; i++) {
		uint8_t *b = tx->iov[i].iov_base;

		if (b >= tx->scratch && b < tx->scratch + tx->scratch_cap && b < lo)
			lo = b;
	}
	shift = (size_t)(lo - tx->scratch);
	memmove(tx->scratch, lo, tx->scratch_used - shift);
	tx->scratch_used -= shift;
	for (unsigned i = tx->iov_head; i < tx->iov_cnt; i++) {
		uint8_t *b = tx->iov[i].iov_base;

		if (b >= tx->scratch && b < tx->scratch + tx->scratch_cap)
			tx->iov[i].iov_base = b - shift;
		tx->iov[i - tx->iov_head] = tx->iov[i];
	}
	tx->iov_cnt -= tx->iov_head;
	tx->iov_head = 0;
}

static int ceil_tx_room(struct ceil_tx *tx, size_t bytes)
{
	if (tx->iov_cnt + 1 <= tx->iov_cap && tx->scratch_used + bytes <= tx->scratch_cap)
		return 0;
	ceil_tx_compact(tx);
	if (tx->iov_cnt + 1 <= tx->iov_cap && tx->scratch_used + bytes <= tx->scratch_cap)
		return 0;
	return -ENOBUFS;
}

/* Queues a copy of len header bytes, merged with the previous iovec when contiguous. */
static int ceil_tx_add_copy(struct ceil_tx *tx, const void *src, size_t len)
{
	uint8_t *dst;
	int r = ceil_tx_room(tx, len);

	if (r)
		return r;
	dst = tx->scratch + tx->scratch_used;
	memcpy(dst, src, len);
	tx->scratch_used += len;
	if (tx->iov_cnt > tx->iov_head) {
		struct iovec *last = &tx->iov[tx->iov_cnt - 1];

		if ((uint8_t *)last->iov_base >= tx->scratch &&
		    (uint8_t *)last->iov_base + last->iov_len == dst) {
			last->iov_len += len;
			return 0;
		}
	}
	tx->iov[tx->iov_cnt++] = (struct iovec){.iov_base = dst, .iov_len = len};
	return 0;
}

/* Where the server's next read payload starts in ceil_data: 0 without --span, else the next
 * io_size-aligned block of the span, random or sequential like nvtcp perf's workload. */
static uint64_t ceil_span_offset(struct ceil_side *s)
{
	const struct ceil_opts *o = s->opts;
	uint64_t blocks = o->span / o->io_size, b;

	if (blocks <= 1)
		return 0;
	if (o->random) {
		s->span_rng ^= s->span_rng << 13;
		s->span_rng ^= s->span_rng >> 7;
		s->span_rng ^= s->span_rng << 17;
		b = s->span_rng % blocks;
	} else {
		b = s->span_next;
		s->span_next = (b + 1) % blocks;
	}
	return b * o->io_size;
}

/* Queues a reference to bytes that stay untouched until sent (the payload pattern). */
static int ceil_tx_add_ref(struct ceil_tx *tx, const void *src, size_t len)
{
	int r = ceil_tx_room(tx, 0);

	if (r)
		return r;
	tx->iov[tx->iov_cnt++] = (struct iovec){.iov_base = (void *)src, .iov_len = len};
	return 0;
}

/* Frees kernel notification state of completed zero-copy sends; the data buffer is never
 * written, so there is nothing to wait for beyond that. */
static void ceil_tx_reap_zc(struct ceil_tx *tx, int fd)
{
	for (int guard = 0; guard < 1024 && tx->zc_inflight; guard++) {
		char cbuf[128];
		struct msghdr m = {.msg_control = cbuf, .msg_controllen = sizeof(cbuf)};

		if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			struct sock_extended_err ee;

			if (!((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
			      (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)))
				continue;
			memcpy(&ee, CMSG_DATA(c), sizeof(ee));
			if (ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY)
				continue;
			uint64_t n = (uint64_t)(ee.ee_data - ee.ee_info) + 1;

			tx->zc_inflight -= n < tx->zc_inflight ? n : tx->zc_inflight;
			if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				tx->zc_copied += n;
		}
	}
}

/* Drops the first n queued bytes (sent, or in the pipe) from the iovecs. */
static void ceil_tx_advance(struct ceil_tx *tx, size_t n)
{
	while (n > 0) {
		struct iovec *v = &tx->iov[tx->iov_head];

		if (n >= v->iov_len) {
			n -= v->iov_len;
			tx->iov_head++;
		} else {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			n = 0;
		}
	}
}

/* Splice mode: vmsplice() hands the pipe references to our pages, splice() moves them into the
 * socket, and TCP sends from them without a copy; on loopback the receiver copies straight out
 * of them. Safe only because payload pages are never written and headers sit in per-cid slots
 * (ceil_side_add_hdr()). Same contract as ceil_tx_flush(). */
static int ceil_tx_flush_splice(struct ceil_tx *tx, int fd, bool wait)
{
	for (uint64_t guard = 0; guard < 10000000; guard++) {
		bool moved = false;
		ssize_t n;

		if (tx->iov_head < tx->iov_cnt) {
			unsigned cnt = tx->iov_cnt - tx->iov_head;

			n = vmsplice(tx->pipe[1], &tx->iov[tx->iov_head],
				     cnt > IOV_MAX ? IOV_MAX : cnt, SPLICE_F_NONBLOCK);
			if (n > 0) {
				tx->pipe_fill += (size_t)n;
				ceil_tx_advance(tx, (size_t)n);
				moved = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				return -errno;
			}
		}
		if (tx->pipe_fill) {
			unsigned flags = wait ? 0 : SPLICE_F_NONBLOCK;

			if (tx->iov_head < tx->iov_cnt)
				flags |= SPLICE_F_MORE;
			n = splice(tx->pipe[0], NULL, fd, NULL, tx->pipe_fill, flags);
			if (n > 0) {
				tx->pipe_fill -= (size_t)n;
				tx->bytes += (uint64_t)n;
				tx->sendmsgs++;
				moved = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				return -errno;
			}
		}
		if (tx->iov_head == tx->iov_cnt && !tx->pipe_fill) {
			tx->iov_head = tx->iov_cnt = 0;
			tx->scratch_used = 0;
			return 0;
		}
		if (!moved && !wait)
			return 0;
	}
	return -EIO;
}

/* Sends what is queued. wait: block until all is gone (blocking mode); otherwise send what the
 * socket takes now. Returns 0 or -errno. */
static int ceil_tx_flush(struct ceil_tx *tx, int fd, bool wait)
{
	uint64_t guard = 0;

	/* stored write payloads reach memory before their completions leave */
	if (ceil_store)
		copy_cold_fence();

	if (tx->pipe[1] >= 0)
		return ceil_tx_flush_splice(tx, fd, wait);

	while (tx->iov_head < tx->iov_cnt) {
		unsigned cnt = tx->iov_cnt - tx->iov_head;
		struct msghdr m = {.msg_iov = &tx->iov[tx->iov_head]};
		int flags = MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT);
		size_t total = 0;
		ssize_t sent;

		if (cnt > IOV_MAX)
			cnt = IOV_MAX;
		m.msg_iovlen = cnt;
		if (tx->zerocopy) {
			for (unsigned i = 0; i < cnt; i++)
				total += m.msg_iov[i].iov_len;
			if (total >= tx->zc_min)
				flags |= MSG_ZEROCOPY;
		}
		sent = sendmsg(fd, &m, flags);
		if (sent < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS && (flags & MSG_ZEROCOPY)) {
				/* out of optmem for notifications: reap, then send by copy */
				ceil_tx_reap_zc(tx, fd);
				tx->zerocopy = tx->zc_inflight < CEIL_ZC_REAP_AT;
				if (++guard > 1000000)
					return -ENOBUFS;
				continue;
			}
			if (errno == EAGAIN && !wait)
				return 0;
			return -errno;
		}
		tx->sendmsgs++;
		tx->bytes += (uint64_t)sent;
		if (flags & MSG_ZEROCOPY) {
			tx->zc_sends++;
			if (++tx->zc_inflight >= CEIL_ZC_REAP_AT)
				ceil_tx_reap_zc(tx, fd);
		}
		ceil_tx_advance(tx, (size_t)sent);
		if (!wait)
			break;
	}
	if (tx->iov_head == tx->iov_cnt) {
		tx->iov_head = tx->iov_cnt = 0;
		tx->scratch_used = 0;
	}
	return 0;
}

/* --- PDUs ------------------------------------------------------------------------------- */

static void ceil_short_hdr(uint8_t *h, uint8_t type, uint32_t plen)
{
	memset(h, 0, CEIL_SHORT_LEN);
	h[0] = type;
	h[2] = CEIL_SHORT_LEN;
	h[3] = type == CEIL_T_C2H_DATA ? CEIL_SHORT_LEN : 0;
	le32_put(h + 4, plen);
}

/* Queues a header of the PDU exchange of cid. Copying sends queue a copy in the scratch area.
 * Zero-copy and spliced sends reference the pages until the peer has the bytes, so the header
 * goes to a
 * per-cid slot instead: a slot is rewritten only when cid is reused, and cid is reused only
 * after the peer has received everything sent for its previous use. */
static int ceil_side_add_hdr(struct ceil_side *s, uint16_t cid, unsigned idx, const uint8_t *h,
			     size_t len)
{
	uint8_t *slot;

	if (!s->opts->zerocopy && !s->opts->splice)
		return ceil_tx_add_copy(&s->tx, h, len);
	slot = s->slots + (size_t)cid * CEIL_CMD_LEN + idx * CEIL_SHORT_LEN;
	memcpy(slot, h, len);
	return ceil_tx_add_ref(&s->tx, slot, len);
}

static int ceil_client_issue(struct ceil_side *s, uint64_t now);

static size_t ceil_tx_queued(const struct ceil_tx *tx)
{
	size_t n = 0;

	for (unsigned i = tx->iov_head; i < tx->iov_cnt; i++)
		n += tx->iov[i].iov_len;
	return n;
}

/* After each command answered (server) or completed (client, which issues its replacement at
 * once). Blocking mode: the first --early of a turn (or CEIL_EARLY_BYTES) leave right away,
 * the rest with the turn's one sendmsg. The peer, asleep in recv, wakes on the first ones and
 * works on them while this side goes on, instead of the two taking turns. Busy-poll mode:
 * only the first of a turn that carries a payload of CEIL_EARLY_POLL_BYTES or more (server:
 * read data, client: write data) leaves at once, so that the peer works on it while this side
 * copies the rest of the turn. nvtcp does the same (stream_flush_early), so the ceiling must
 * too. --early 0 turns both off. */
static int ceil_early(struct ceil_side *s, uint64_t now)
{
	const struct ceil_opts *o = s->opts;
	bool carries = (o->rw == CEIL_RW_READ) == !s->issue_ns; /* server: reads; client: writes */
	int r;

	if (!o->early || s->early_done)
		return 0;
	if (o->mode != CEIL_MODE_BLOCK && (!carries || o->io_size < CEIL_EARLY_POLL_BYTES))
		return 0;
	if (s->issue_ns) {
		if (s->stopping)
			return 0;
		if ((r = ceil_client_issue(s, now)) < 0)
			return r;
	}
	if (o->mode == CEIL_MODE_BLOCK && ++s->turn_count < o->early &&
	    ceil_tx_queued(&s->tx) < CEIL_EARLY_BYTES)
		return 0;
	s->early_done = true;
	return ceil_tx_flush(&s->tx, s->fd, o->mode == CEIL_MODE_BLOCK);
}

/* Server: one complete PDU arrived. Client: likewise. Returns 0 or -errno. */
static int ceil_deliver(struct ceil_side *s, uint64_t now)
{
	const struct ceil_opts *o = s->opts;
	struct ceil_rx *rx = &s->rx;
	uint8_t h[2 * CEIL_SHORT_LEN];
	int r;

	switch (rx->cur_type) {
	case CEIL_T_CAPSULE_CMD: /* server side */
		if (s->issue_ns || rx->cur_cid >= o->qd)
			return -EPROTO;
		if (rx->cur_opc == CEIL_OPC_READ) {
			if (rx->data_off)
				return -EPROTO;
			ceil_short_hdr(h, CEIL_T_C2H_DATA, CEIL_SHORT_LEN + o->io_size);
			le16_put(h + 8, rx->cur_cid);
			le32_put(h + 16, o->io_size);
			if ((r = ceil_side_add_hdr(s, rx->cur_cid, 0, h, CEIL_SHORT_LEN)) < 0 ||
			    (r = ceil_tx_add_ref(&s->tx, ceil_data + ceil_span_offset(s),
						 o->io_size)) < 0)
				return r;
		} else if (rx->cur_opc != CEIL_OPC_WRITE || rx->data_off != o->io_size) {
			return -EPROTO;
		}
		ceil_short_hdr(h, CEIL_T_CAPSULE_RESP, CEIL_SHORT_LEN);
		le16_put(h + 8 + 12, rx->cur_cid);
		if ((r = ceil_side_add_hdr(s, rx->cur_cid, 1, h, CEIL_SHORT_LEN)) < 0)
			return r;
		return ceil_early(s, now);
	case CEIL_T_C2H_DATA:
		if (!s->issue_ns || rx->cur_cid >= o->qd || !s->busy[rx->cur_cid] ||
		    rx->data_off != o->io_size)
			return -EPROTO;
		return 0;
	case CEIL_T_CAPSULE_RESP: {
		uint16_t cid = rx->cur_cid;
		uint64_t lat;

		if (!s->issue_ns || cid >= o->qd || !s->busy[cid])
			return -EPROTO;
		s->busy[cid] = 0;
		lat = now - s->issue_ns[cid];
		s->lat_sum_ns += lat;
		if (lat > s->lat_max_ns)
			s->lat_max_ns = lat;
		s->ios++;
		s->free_cids[s->nfree++] = cid;
		s->t_end = now;
		return ceil_early(s, now);
	}
	default:
		return -EPROTO;
	}
}

/* --- sides ------------------------------------------------------------------------------ */

static int ceil_side_init(struct ceil_side *s, const struct ceil_opts *o, bool client)
{
	unsigned iov_cap = 4 * o->qd + 8;
	size_t scratch = (size_t)o->qd * (CEIL_CMD_LEN + 2 * CEIL_SHORT_LEN) + 256;
	int r;

	memset(s, 0, sizeof(*s));
	s->opts = o;
	s->fd = -1;
	s->tx.pipe[0] = s->tx.pipe[1] = -1;
	s->span_rng = 0x9e3779b97f4a7c15ull;
	r = ceil_rx_init(&s->rx, o->rxbuf, o->io_size, o->verify, o->thp);
	if (!r)
		r = ceil_tx_init(&s->tx, iov_cap, scratch, o);
	if (!r && (o->zerocopy || o->splice) && !(s->slots = calloc(o->qd, CEIL_CMD_LEN)))
		r = -ENOMEM;
	if (r || !client)
		return r;
	s->free_cids = calloc(o->qd, sizeof(*s->free_cids));
	s->issue_ns = calloc(o->qd, sizeof(*s->issue_ns));
	s->busy = calloc(o->qd, 1);
	if (!s->free_cids || !s->issue_ns || !s->busy)
		return -ENOMEM;
	for (unsigned i = 0; i < o->qd; i++)
		s->free_cids[i] = (uint16_t)(o->qd - 1 - i);
	s->nfree = o->qd;
	return 0;
}

static void ceil_side_free(struct ceil_side *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->rx.buf);
	free(s->tx.iov);
	free(s->tx.scratch);
	free(s->free_cids);
	free(s->issue_ns);
	free(s->busy);
	free(s->slots);
	for (int i = 0; i < 2; i++)
		if (s->tx.pipe[i] >= 0)
			close(s->tx.pipe[i]);
}

/* One recv into the receive area, then parse. Returns bytes read (0 at EOF) or -errno;
 * -EAGAIN in poll mode when nothing was there. */
static ssize_t ceil_side_recv(struct ceil_side *s, bool wait)
{
	ssize_t n;

	if (wait && s->opts->rcvlowat) {
		/* Sleep until the rest of a large payload is in rather than waking per segment.
		 * The peer is bound to send data_left more bytes, so this cannot wait forever. */
		int lowat = s->rx.data_left >= CEIL_LOWAT_MIN ? (int)s->rx.data_left : 1;

		if (lowat > (int)s->opts->rxbuf)
			lowat = (int)s->opts->rxbuf;
		if (lowat != s->lowat &&
		    setsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) == 0)
			s->lowat = lowat;
	}
	do {
		n = recv(s->fd, s->rx.buf, s->rx.cap, wait ? 0 : MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	s->recvs++;
	s->turn_count = 0;
	s->early_done = false;
	if (n > 0) {
		int r = ceil_rx_feed(s, s->rx.buf, (size_t)n, s->issue_ns ? ceil_now_ns() : 0);

		if (r < 0)
			return r;
	}
	return n;
}

/* The server's loop with io_uring instead of recv() + sendmsg(): a recv is always submitted,
 * the turn's responses go out as one IORING_OP_SENDMSG, and one io_uring_enter per turn
 * submits both and reaps what completed (DEFER_TASKRUN: completions are processed only there).
 * Blocking mode waits in it with the recv armed; poll mode's non-blocking sockets make an
 * empty recv complete at once with -EAGAIN, so it is submitted again each turn. What an io_uring
 * socket path in nvtcpd could save at best: the syscalls per turn go from two to one. A recv
 * completing while a send is in flight is parsed only after the send completed (parsing queues
 * responses, which may move the iovecs the send still reads). Returns 0 at EOF or -errno. */
static int ceil_server_uring(struct ceil_side *s, bool wait)
{
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER |
					     IORING_SETUP_DEFER_TASKRUN};
	struct io_uring ring;
	struct ceil_tx *tx = &s->tx;
	struct msghdr m;
	bool recv_armed = false, send_inflight = false;
	int got = -EAGAIN; /* a completed recv not parsed yet */
	int r = io_uring_queue_init_params(8, &ring, &p);

	if (r < 0)
		return r;
	for (uint64_t turn = 0;; turn++) {
		struct io_uring_cqe *cqe;
		struct io_uring_sqe *sqe;
		unsigned head, seen = 0;

		if (!recv_armed && got == -EAGAIN && (sqe = io_uring_get_sqe(&ring))) {
			io_uring_prep_recv(sqe, s->fd, s->rx.buf, s->rx.cap, 0);
			io_uring_sqe_set_data64(sqe, 1);
			recv_armed = true;
		}
		if (!send_inflight && tx->iov_head < tx->iov_cnt &&
		    (sqe = io_uring_get_sqe(&ring))) {
			unsigned cnt = tx->iov_cnt - tx->iov_head;

			memset(&m, 0, sizeof(m));
			m.msg_iov = &tx->iov[tx->iov_head];
			m.msg_iovlen = cnt > IOV_MAX ? IOV_MAX : cnt;
			io_uring_prep_sendmsg(sqe, s->fd, &m, MSG_NOSIGNAL);
			io_uring_sqe_set_data64(sqe, 2);
			send_inflight = true;
		}
		r = wait ? io_uring_submit_and_wait(&ring, 1)
			 : io_uring_submit_and_get_events(&ring);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			break;
		r = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			if (cqe->user_data == 1) {
				recv_armed = false;
				got = cqe->res;
			} else if (cqe->res < 0) {
				/* poll mode's sockets are non-blocking: io_uring then reports a
				 * full socket (or an empty one, for the recv) instead of waiting */
				send_inflight = false;
				if (cqe->res != -EAGAIN)
					r = cqe->res;
			} else {
				send_inflight = false;
				tx->sendmsgs++;
				tx->bytes += (uint64_t)cqe->res;
				ceil_tx_advance(tx, (size_t)cqe->res);
			}
		}
		io_uring_cq_advance(&ring, seen);
		if (r < 0)
			break;
		if (got != -EAGAIN && !send_inflight) {
			if (got <= 0) {
				r = got;
				break;
			}
			s->recvs++;
			if ((r = ceil_rx_feed(s, s->rx.buf, (size_t)got, 0)) < 0)
				break;
			got = -EAGAIN;
		}
		if (!send_inflight && tx->iov_head == tx->iov_cnt) {
			tx->iov_head = tx->iov_cnt = 0;
			tx->scratch_used = 0;
		}
		if (!wait && (turn & 1023) == 0 && ceil_now_ns() > ceil_hard_deadline_ns) {
			r = -ETIMEDOUT;
			break;
		}
	}
	io_uring_queue_exit(&ring);
	return r;
}

static void *ceil_server_main(void *arg)
{
	struct ceil_side *s = arg;
	bool wait = s->opts->mode == CEIL_MODE_BLOCK;
	double cpu0;
	int r = 0;

	ceil_pin(s->opts->server_cpu);
	cpu0 = ceil_thread_cpu_s();
	if (s->opts->uring)
		r = ceil_server_uring(s, wait);
	for (uint64_t turn = 0; !s->opts->uring; turn++) {
		ssize_t n = ceil_side_recv(s, wait);

		if (n == 0)
			break;
		if (n < 0 && n != -EAGAIN) {
			r = (int)n;
			break;
		}
		if ((r = ceil_tx_flush(&s->tx, s->fd, wait)) < 0)
			break;
		if (!wait && (turn & 1023) == 0 && ceil_now_ns() > ceil_hard_deadline_ns) {
			r = -ETIMEDOUT;
			break;
		}
	}
	/* the client half-closed after its last completion: nothing can be left to send */
	if (!r && s->tx.iov_head != s->tx.iov_cnt)
		r = -EPROTO;
	s->cpu_s = ceil_thread_cpu_s() - cpu0;
	s->err = r;
	shutdown(s->fd, SHUT_WR);
	return NULL;
}

static int ceil_client_issue(struct ceil_side *s, uint64_t now)
{
	const struct ceil_opts *o = s->opts;
	uint8_t cmd[CEIL_CMD_LEN] = {0};
	bool write = o->rw == CEIL_RW_WRITE;
	int r;

	cmd[0] = CEIL_T_CAPSULE_CMD;
	cmd[2] = CEIL_CMD_LEN;
	cmd[3] = write ? CEIL_CMD_LEN : 0;
	le32_put(cmd + 4, CEIL_CMD_LEN + (write ? o->io_size : 0));
	cmd[8] = write ? CEIL_OPC_WRITE : CEIL_OPC_READ;
	le32_put(cmd + 8 + 48, (o->io_size + 511) / 512 - 1); /* NLB, for the look of it */
	while (s->nfree) {
		uint16_t cid = s->free_cids[s->nfree - 1];

		le16_put(cmd + 10, cid);
		if ((r = ceil_side_add_hdr(s, cid, 0, cmd, sizeof(cmd))) < 0)
			return r;
		if (write && (r = ceil_tx_add_ref(&s->tx, ceil_data, o->io_size)) < 0)
			return r;
		s->nfree--;
		s->busy[cid] = 1;
		s->issue_ns[cid] = now;
	}
	return 0;
}

static void *ceil_client_main(void *arg)
{
	struct ceil_side *s = arg;
	const struct ceil_opts *o = s->opts;
	bool wait = o->mode == CEIL_MODE_BLOCK;
	uint64_t deadline;
	bool stopping = false;
	double cpu0;
	int r = 0;

	ceil_pin(o->client_cpu);
	cpu0 = ceil_thread_cpu_s();
	s->t_start = s->t_end = ceil_now_ns();
	deadline = s->t_start + (uint64_t)(o->seconds * 1e9);
	for (;;) {
		uint64_t now = ceil_now_ns();
		ssize_t n;

		if (now >= deadline)
			stopping = s->stopping = true;
		if (stopping && s->nfree == o->qd)
			break;
		if (now > ceil_hard_deadline_ns) {
			r = -ETIMEDOUT;
			break;
		}
		if (!stopping && s->nfree && (r = ceil_client_issue(s, now)) < 0)
			break;
		if ((r = ceil_tx_flush(&s->tx, s->fd, wait)) < 0)
			break;
		n = ceil_side_recv(s, wait);
		if (n == 0) {
			r = -ECONNRESET; /* the server must not close first */
			break;
		}
		if (n < 0 && n != -EAGAIN) {
			r = (int)n;
			break;
		}
		r = 0;
	}
	s->cpu_s = ceil_thread_cpu_s() - cpu0;
	s->err = r;
	shutdown(s->fd, SHUT_WR);
	return NULL;
}

/* --- setup ------------------------------------------------------------------------------ */

static int ceil_sock_tune(int fd, const struct ceil_opts *o, bool *busy_poll_ok)
{
	int one = 1;

	if (o->sockbuf > 0) {
		/* FORCE variants pass rmem_max/wmem_max when we have CAP_NET_ADMIN */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &o->sockbuf, sizeof(int)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sockbuf, sizeof(int));
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &o->sockbuf, sizeof(int)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->sockbuf, sizeof(int));
	}
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	if (o->cc &&
	    setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, o->cc, (socklen_t)strlen(o->cc)) < 0)
		return -errno;
	if (o->zerocopy && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0)
		return -errno;
	if (o->mode == CEIL_MODE_POLL) {
		int usec = 50;

		*busy_poll_ok = setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &usec, sizeof(usec)) == 0;
	}
	return 0;
}

/* Connects client to server over 127.0.0.1 (and nothing else). Returns 0 or -errno. */
static int ceil_connect(struct ceil_side *cl, struct ceil_side *sv, const struct ceil_opts *o,
			bool *busy_poll_ok)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	struct pollfd pfd;
	int lfd, r, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* buffer sizes must be set before the handshake to get the window scale */
	if ((r = ceil_sock_tune(lfd, o, busy_poll_ok)) < 0)
		goto close_listen;
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		r = -errno;
		goto close_listen;
	}
	cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cl->fd < 0) {
		r = -errno;
		goto close_listen;
	}
	if ((r = ceil_sock_tune(cl->fd, o, busy_poll_ok)) < 0)
		goto close_listen;
	if (connect(cl->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = -errno;
		goto close_listen;
	}
	pfd = (struct pollfd){.fd = lfd, .events = POLLIN};
	if (poll(&pfd, 1, 5000) != 1) {
		r = -ETIMEDOUT;
		goto close_listen;
	}
	sv->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (sv->fd < 0) {
		r = -errno;
		goto close_listen;
	}
	/* accepted sockets inherit buffers and options except these */
	r = ceil_sock_tune(sv->fd, o, busy_poll_ok);
	if (r == 0) {
		socklen_t cl_len = sizeof(ceil_cc_used) - 1;

		if (getsockopt(cl->fd, IPPROTO_TCP, TCP_CONGESTION, ceil_cc_used, &cl_len) == 0)
			ceil_cc_used[cl_len] = '\0';
	}
close_listen:
	close(lfd);
	return r;
}

/* --- options and report ----------------------------------------------------------------- */

static void ceil_usage(FILE *f)
{
	fprintf(f,
		"usage: ceiling [options]\n"
		"  -w, --rw read|write|randread|randwrite   workload (default randread)\n"
		"  -o, --io-size BYTES   I/O size, suffix k/m allowed (default 4096)\n"
		"  -q, --qd N            I/Os outstanding, 1..%d (default 32)\n"
		"  -t, --seconds S       run time, fractions allowed (default 10)\n"
		"  -m, --mode block|poll blocking sockets, or non-blocking spinning (default "
		"block)\n"
		"      --busy-poll       same as --mode poll\n"
		"      --zerocopy        MSG_ZEROCOPY for sends of at least --zc-min bytes\n"
		"      --zc-min BYTES    (default 65536)\n"
		"      --splice-min BYTES  send I/Os of this size or more through vmsplice() + "
		"splice()\n"
		"                        from our pages, no copy (default 128k; measured: wins at\n"
		"                        128k, loses up to 2x at 4k)\n"
		"      --splice, --no-splice  same as --splice-min 0, or never\n"
		"      --sockbuf BYTES   SO_SNDBUF/SO_RCVBUF, 0 = kernel autotuning (default 4m)\n"
		"      --rxbuf BYTES     bytes per recv() (default: 256k, or 2 x QD x I/O size\n"
		"                        unless --span stores writes)\n"
		"      --server-cpu N    pin the server thread (default 0, -1 = no pinning)\n"
		"      --client-cpu N    pin the client thread (default 1, -1 = no pinning)\n"
		"      --no-thp          no huge pages for the receive area and payload\n"
		"      --rcvlowat        blocking mode: SO_RCVLOWAT to the rest of large payloads\n"
		"                        (off by default: no gain measured, and 128k reads hung\n"
		"                        in about 1 run of 10 with it on kernel 6.18)\n"
		"      --no-rcvlowat     wake on every segment of large payloads (the default)\n"
		"      --uring           server: recv/sendmsg through io_uring, one "
		"io_uring_enter\n"
		"                        per turn (copying sends only)\n"
		"      --early N         blocking mode: the first N responses or commands of a\n"
		"                        turn (or 16 KiB) leave at once, the rest at its end;\n"
		"                        busy-poll: the first carrying 64 KiB or more; as nvtcp\n"
		"                        does (default 4, 0 = off)\n"
		"      --verify          check every payload byte\n"
		"      --span BYTES      server: send read payloads from, and store write\n"
		"                        payloads into (non-temporal copy), io-size blocks of a\n"
		"                        buffer this large (suffix k/m/g), random (randread,\n"
		"                        randwrite) or in order: the memory traffic of a\n"
		"                        namespace that size (default: one cache-hot block)\n"
		"      --cc NAME         TCP congestion control of both ends (cubic, bbr, reno,\n"
		"                        ...; default: net.ipv4.tcp_congestion_control)\n"
		"      --json            one JSON object on stdout\n"
		"      --tap             TAP smoke-test result on stdout (implies --verify)\n",
		CEIL_MAX_QD);
}

static int ceil_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	else if (*end == 'g' || *end == 'G')
		v <<= 30, end++;
	if (*end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int ceil_parse_opts(int argc, char **argv, struct ceil_opts *o)
{
	enum {
		OPT_BUSY = 256,
		OPT_ZC,
		OPT_ZC_MIN,
		OPT_SOCKBUF,
		OPT_RXBUF,
		OPT_SCPU,
		OPT_CCPU,
		OPT_VERIFY,
		OPT_JSON,
		OPT_TAP,
		OPT_NO_THP,
		OPT_NO_LOWAT,
		OPT_LOWAT,
		OPT_SPLICE,
		OPT_NO_SPLICE,
		OPT_SPLICE_MIN,
		OPT_URING,
		OPT_EARLY,
		OPT_SPAN,
		OPT_CC,
	};
	static const struct option lo[] = {
		{"rw", required_argument, NULL, 'w'},
		{"io-size", required_argument, NULL, 'o'},
		{"qd", required_argument, NULL, 'q'},
		{"seconds", required_argument, NULL, 't'},
		{"mode", required_argument, NULL, 'm'},
		{"busy-poll", no_argument, NULL, OPT_BUSY},
		{"zerocopy", no_argument, NULL, OPT_ZC},
		{"splice", no_argument, NULL, OPT_SPLICE},
		{"no-splice", no_argument, NULL, OPT_NO_SPLICE},
		{"splice-min", required_argument, NULL, OPT_SPLICE_MIN},
		{"zc-min", required_argument, NULL, OPT_ZC_MIN},
		{"sockbuf", required_argument, NULL, OPT_SOCKBUF},
		{"rxbuf", required_argument, NULL, OPT_RXBUF},
		{"server-cpu", required_argument, NULL, OPT_SCPU},
		{"client-cpu", required_argument, NULL, OPT_CCPU},
		{"verify", no_argument, NULL, OPT_VERIFY},
		{"no-thp", no_argument, NULL, OPT_NO_THP},
		{"no-rcvlowat", no_argument, NULL, OPT_NO_LOWAT},
		{"rcvlowat", no_argument, NULL, OPT_LOWAT},
		{"json", no_argument, NULL, OPT_JSON},
		{"tap", no_argument, NULL, OPT_TAP},
		{"uring", no_argument, NULL, OPT_URING},
		{"early", required_argument, NULL, OPT_EARLY},
		{"span", required_argument, NULL, OPT_SPAN},
		{"cc", required_argument, NULL, OPT_CC},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v;
	char *end;
	int c;

	*o = (struct ceil_opts){.early = 4,
				.mode = CEIL_MODE_BLOCK,
				.rw = CEIL_RW_READ,
				.io_size = 4096,
				.qd = 32,
				.seconds = 10,
				.server_cpu = 0,
				.client_cpu = 1,
				.zc_min = 65536,
				.sockbuf = 4 << 20,
				.thp = true,
				.splice_min = 128u << 10,
				.rcvlowat = false,
				.random = true};
	while ((c = getopt_long(argc, argv, "w:o:q:t:m:h", lo, NULL)) != -1) {
		switch (c) {
		case 'w':
			o->random = !strncmp(optarg, "rand", 4);
			if (!strcmp(optarg, "read") || !strcmp(optarg, "randread"))
				o->rw = CEIL_RW_READ;
			else if (!strcmp(optarg, "write") || !strcmp(optarg, "randwrite"))
				o->rw = CEIL_RW_WRITE;
			else
				return -EINVAL;
			break;
		case 'o':
			if (ceil_parse_size(optarg, CEIL_MAX_IO, &v) || !v)
				return -EINVAL;
			o->io_size = (uint32_t)v;
			break;
		case 'q':
			if (ceil_parse_size(optarg, CEIL_MAX_QD, &v) || !v)
				return -EINVAL;
			o->qd = (uint32_t)v;
			break;
		case 't':
			o->seconds = strtod(optarg, &end);
			if (*end || !(o->seconds >= 0.01 && o->seconds <= 3600))
				return -EINVAL;
			break;
		case 'm':
			if (!strcmp(optarg, "block"))
				o->mode = CEIL_MODE_BLOCK;
			else if (!strcmp(optarg, "poll"))
				o->mode = CEIL_MODE_POLL;
			else
				return -EINVAL;
			break;
		case OPT_BUSY:
			o->mode = CEIL_MODE_POLL;
			break;
		case OPT_ZC:
			o->zerocopy = true;
			break;
		case OPT_SPLICE:
			o->splice_min = 0;
			break;
		case OPT_NO_SPLICE:
			o->splice_min = UINT32_MAX;
			break;
		case OPT_SPLICE_MIN:
			if (ceil_parse_size(optarg, UINT32_MAX, &v))
				return -EINVAL;
			o->splice_min = (uint32_t)v;
			break;
		case OPT_ZC_MIN:
			if (ceil_parse_size(optarg, UINT32_MAX, &v))
				return -EINVAL;
			o->zc_min = (uint32_t)v;
			break;
		case OPT_SOCKBUF:
			if (ceil_parse_size(optarg, 1u << 30, &v))
				return -EINVAL;
			o->sockbuf = (int)v;
			break;
		case OPT_RXBUF:
			if (ceil_parse_size(optarg, 1u << 30, &v) || v < 4096)
				return -EINVAL;
			o->rxbuf = (uint32_t)v;
			break;
		case OPT_SCPU:
		case OPT_CCPU:
			v = (uint64_t)strtol(optarg, &end, 10);
			if (*end || (int)v < -1 || (int)v >= CPU_SETSIZE)
				return -EINVAL;
			*(c == OPT_SCPU ? &o->server_cpu : &o->client_cpu) = (int)v;
			break;
		case OPT_VERIFY:
			o->verify = true;
			break;
		case OPT_NO_THP:
			o->thp = false;
			break;
		case OPT_NO_LOWAT:
			o->rcvlowat = false;
			break;
		case OPT_LOWAT:
			o->rcvlowat = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_TAP:
			o->tap = o->verify = true;
			break;
		case OPT_URING:
			o->uring = true;
			break;
		case OPT_EARLY:
			if (ceil_parse_size(optarg, CEIL_MAX_QD, &v) < 0)
				return -EINVAL;
			o->early = (unsigned)v;
			break;
		case OPT_SPAN:
			if (ceil_parse_size(optarg, UINT64_MAX, &v) < 0)
				return -EINVAL;
			o->span = v;
			break;
		case OPT_CC:
			if (!*optarg || strlen(optarg) >= sizeof(ceil_cc_used))
				return -EINVAL;
			o->cc = optarg;
			break;
		case 'h':
			ceil_usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (optind != argc)
		return -EINVAL;
	/* span offsets are io_size multiples: the pattern (period 256) must repeat with them */
	if (o->span && (o->span < o->io_size || o->io_size % 256))
		return -EINVAL;
	if (o->span > o->io_size && o->rw == CEIL_RW_WRITE && o->uring)
		return -EINVAL; /* the io_uring loop does not store payloads */
	if (o->span < o->io_size)
		o->span = o->io_size;
	o->splice = o->io_size >= o->splice_min && !o->uring; /* --uring: copying sends */
	if (o->uring)
		o->zerocopy = false, o->early = 0; /* its sends are io_uring's, not ours */
	/* Blocking mode stays deadlock-free if the small PDUs one side may queue while the
	 * other is blocked sending (Q commands, or Q responses) fit in the socket buffers. */
	if (o->sockbuf > 0 && o->sockbuf < (int)(2 * o->qd * CEIL_CMD_LEN))
		o->sockbuf = (int)(2 * o->qd * CEIL_CMD_LEN);
	if (!o->rxbuf) {
		uint64_t want = 2ull * o->qd * (o->io_size + 2 * CEIL_SHORT_LEN);

		o->rxbuf = want < (256u << 10) ? 256u << 10
			   : want > (4u << 20) ? 4u << 20
					       : (uint32_t)want;
		/* Stored write payloads are read again right after they land: a receive area
		 * that stays in cache (128K writes QD8 busy-poll: 2 MiB 27K IOPS, 256 KiB 40K) */
		if (o->rw == CEIL_RW_WRITE && o->span > o->io_size)
			o->rxbuf = 256u << 10;
	}
	return 0;
}

static const char *const ceil_mode_name[CEIL_MODE_COUNT] = {"block", "poll"};
static const char *const ceil_rw_name[CEIL_RW_COUNT] = {"read", "write"};

/* Checks the byte counts both ends saw against what NVMe/TCP would move for the I/Os done. */
static int ceil_check(const struct ceil_side *cl, const struct ceil_side *sv,
		      const struct ceil_opts *o, char *why, size_t whylen)
{
	bool rd = o->rw == CEIL_RW_READ;
	uint64_t c2s = cl->ios * (CEIL_CMD_LEN + (rd ? 0 : o->io_size));
	uint64_t s2c = cl->ios * (CEIL_SHORT_LEN + (rd ? CEIL_SHORT_LEN + o->io_size : 0));

	if (cl->err || sv->err)
		snprintf(why, whylen, "client: %s, server: %s", strerror(-cl->err),
			 strerror(-sv->err));
	else if (!cl->ios)
		snprintf(why, whylen, "no I/O completed");
	else if (cl->tx.bytes != c2s || sv->rx.bytes != c2s)
		snprintf(why, whylen,
			 "client->server bytes: sent %" PRIu64 ", received %" PRIu64
			 ", expected %" PRIu64,
			 cl->tx.bytes, sv->rx.bytes, c2s);
	else if (sv->tx.bytes != s2c || cl->rx.bytes != s2c)
		snprintf(why, whylen,
			 "server->client bytes: sent %" PRIu64 ", received %" PRIu64
			 ", expected %" PRIu64,
			 sv->tx.bytes, cl->rx.bytes, s2c);
	else if (cl->rx.verify_errors || sv->rx.verify_errors)
		snprintf(why, whylen, "%" PRIu64 " payload bytes differ from the pattern",
			 cl->rx.verify_errors + sv->rx.verify_errors);
	else
		return 0;
	return -EIO;
}

static void ceil_report(const struct ceil_side *cl, const struct ceil_side *sv,
			const struct ceil_opts *o, bool busy_poll_ok)
{
	double secs = (double)(cl->t_end - cl->t_start) / 1e9;
	double iops = secs > 0 ? (double)cl->ios / secs : 0;
	double mbps = iops * o->io_size / 1e6;
	double lat_us = cl->ios ? (double)cl->lat_sum_ns / (double)cl->ios / 1e3 : 0;
	double mio = (double)cl->ios / 1e6;
	double sv_per_mio = mio > 0 ? sv->cpu_s / mio : 0;
	double cl_per_mio = mio > 0 ? cl->cpu_s / mio : 0;
	/* On a shared machine the threads do not get whole cores; in blocking mode their CPU
	 * time is all useful work, so this is the rate if the busier one had its core alone.
	 * Spinning burns CPU by design, so poll mode has no such estimate. */
	double busiest = cl->cpu_s > sv->cpu_s ? cl->cpu_s : sv->cpu_s;
	double cpu_bound_iops = o->mode == CEIL_MODE_BLOCK && busiest > 0 ? cl->ios / busiest : 0;

	if (o->json) {
		printf("{\"tool\":\"ceiling\",\"mode\":\"%s\",\"rw\":\"%s\",\"io_size\":%" PRIu32
		       ",\"qd\":%" PRIu32 ",\"seconds\":%.3f,\"ios\":%" PRIu64
		       ",\"iops\":%.0f,\"mbps\":%.1f,\"cpu_bound_iops\":%.0f,\"avg_lat_us\":%.2f,"
		       "\"max_lat_us\":%.1f"
		       ",\"client_cpu_s\":%.3f,\"server_cpu_s\":%.3f"
		       ",\"server_cpu_s_per_mio\":%.3f,\"client_cpu_s_per_mio\":%.3f"
		       ",\"server_sendmsgs\":%" PRIu64 ",\"server_recvs\":%" PRIu64
		       ",\"client_sendmsgs\":%" PRIu64 ",\"client_recvs\":%" PRIu64
		       ",\"splice\":%s,\"zerocopy\":%s,\"zc_sends\":%" PRIu64
		       ",\"zc_copied\":%" PRIu64 ",\"sockbuf\":%d,\"rxbuf\":%" PRIu32
		       ",\"busy_poll_sockopt\":%s,\"uring\":%s,\"early\":%u,\"span\":%" PRIu64
		       ",\"server_cpu\":%d,\"client_cpu\":%d,\"tcp_congestion\":\"%s\"}\n",
		       ceil_mode_name[o->mode], ceil_rw_name[o->rw], o->io_size, o->qd, secs,
		       cl->ios, iops, mbps, cpu_bound_iops, lat_us, (double)cl->lat_max_ns / 1e3,
		       cl->cpu_s, sv->cpu_s, sv_per_mio, cl_per_mio, sv->tx.sendmsgs, sv->recvs,
		       cl->tx.sendmsgs, cl->recvs, o->splice ? "true" : "false",
		       o->zerocopy ? "true" : "false", sv->tx.zc_sends + cl->tx.zc_sends,
		       sv->tx.zc_copied + cl->tx.zc_copied, o->sockbuf, o->rxbuf,
		       busy_poll_ok ? "true" : "false", o->uring ? "true" : "false", o->early,
		       o->span, o->server_cpu, o->client_cpu, ceil_cc_used);
		return;
	}
	/* at QD1 the latency of an I/O is one round trip: command out, response back */
	printf("%sceiling %s %s %" PRIu32 " B QD%" PRIu32 ": %.0f IOPS, %.1f MB/s, avg %s%.2f us "
	       "(max %.1f us) over %.2f s\n",
	       o->tap ? "# " : "", ceil_mode_name[o->mode], ceil_rw_name[o->rw], o->io_size, o->qd,
	       iops, mbps, o->qd == 1 ? "round trip " : "", lat_us, (double)cl->lat_max_ns / 1e3,
	       secs);
	printf("%s  CPU: client %.3f s, server %.3f s (%.3f s per million I/Os); "
	       "sendmsg/recv: server %" PRIu64 "/%" PRIu64 ", client %" PRIu64 "/%" PRIu64
	       "; TCP congestion control %s\n",
	       o->tap ? "# " : "", cl->cpu_s, sv->cpu_s, sv_per_mio, sv->tx.sendmsgs, sv->recvs,
	       cl->tx.sendmsgs, cl->recvs, ceil_cc_used);
	if (cpu_bound_iops > 0)
		printf("%s  CPU-bound estimate: %.0f IOPS, %.1f MB/s with the busier thread alone "
		       "on "
		       "its core\n",
		       o->tap ? "# " : "", cpu_bound_iops, cpu_bound_iops * o->io_size / 1e6);
	if (o->zerocopy)
		printf("%s  zero-copy sends %" PRIu64 " (kernel copied %" PRIu64 ")\n",
		       o->tap ? "# " : "", sv->tx.zc_sends + cl->tx.zc_sends,
		       sv->tx.zc_copied + cl->tx.zc_copied);
}

int main(int argc, char **argv)
{
	struct ceil_opts o;
	struct ceil_side cl, sv;
	pthread_t tc, ts;
	bool busy_poll_ok = false;
	char why[256];
	uint64_t data_len;
	int r;

	memset(&cl, 0, sizeof(cl));
	memset(&sv, 0, sizeof(sv));
	cl.fd = sv.fd = -1;
	cl.tx.pipe[0] = cl.tx.pipe[1] = sv.tx.pipe[0] = sv.tx.pipe[1] = -1;
	if (ceil_parse_opts(argc, argv, &o) < 0) {
		ceil_usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, ceil_on_alarm);
	alarm((unsigned)o.seconds + 2 * CEIL_GRACE_S);
	ceil_hard_deadline_ns = ceil_now_ns() + (uint64_t)((o.seconds + CEIL_GRACE_S) * 1e9);

	/* reads come from the whole span; writes are sent from one block and stored in the span */
	data_len = o.rw == CEIL_RW_READ ? o.span : o.io_size;
	ceil_data = ceil_big_alloc(data_len, o.thp);
	r = ceil_data ? 0 : -ENOMEM;
	if (!r && o.rw == CEIL_RW_WRITE && o.span > o.io_size) {
		ceil_store = ceil_big_alloc(o.span, o.thp);
		r = ceil_store ? 0 : -ENOMEM;
		if (!r) /* written once, as the benchmark's namespace is before it is measured */
			memset(ceil_store, 0, o.span);
	}
	if (!r) {
		for (uint32_t i = 0; i < o.io_size; i++)
			ceil_data[i] = ceil_pattern(i);
		/* every block of a --span the same (the pattern's period divides io_size) */
		for (uint64_t off = o.io_size; off < data_len; off += o.io_size)
			memcpy(ceil_data + off, ceil_data, o.io_size);
	}
	if (!r)
		r = ceil_side_init(&cl, &o, true);
	if (!r)
		r = ceil_side_init(&sv, &o, false);
	if (!r)
		r = ceil_connect(&cl, &sv, &o, &busy_poll_ok);
	if (r) {
		fprintf(stderr, "ceiling: setup: %s\n", strerror(-r));
		goto out;
	}
	if ((r = -pthread_create(&ts, NULL, ceil_server_main, &sv)) < 0) {
		fprintf(stderr, "ceiling: thread: %s\n", strerror(-r));
		goto out;
	}
	if ((r = -pthread_create(&tc, NULL, ceil_client_main, &cl)) < 0) {
		fprintf(stderr, "ceiling: thread: %s\n", strerror(-r));
		shutdown(cl.fd, SHUT_RDWR);
		pthread_join(ts, NULL);
		goto out;
	}
	pthread_join(tc, NULL);
	pthread_join(ts, NULL);
	r = ceil_check(&cl, &sv, &o, why, sizeof(why));
	ceil_report(&cl, &sv, &o, busy_poll_ok);
	if (o.tap) {
		if (r)
			printf("# %s\n", why);
		printf("%sok 1 - ceiling smoke\n1..1\n", r ? "not " : "");
	} else if (r) {
		fprintf(stderr, "ceiling: %s\n", why);
	}
out:
	ceil_side_free(&cl);
	ceil_side_free(&sv);
	free(ceil_data);
	free(ceil_store);
	return r ? 1 : 0;
}
