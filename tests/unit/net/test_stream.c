/* Unit tests for src/net/stream.c over socketpair(): batched small PDUs, direct placement of a
 * large payload, budgets, partial writes with a tiny send buffer, TermReq, EOF, teardown; zero-copy
 * sends over a TCP connection on 127.0.0.1. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/le.h"
#include "net/stream.h"
#include "proto/crc32c.h"
#include "tap.h"

static const struct pdu_params params_dgst = {
	.hdgst = true,
	.ddgst = true,
	.cpda = 0,
	.hpda = 0,
	.maxh2cdata = 1 << 20,
	.max_incapsule = 8192,
	.ic_done = true,
};

struct owner {
	int headers, pdus;
	uint16_t cids[256];
	uint8_t *dst;
	size_t dst_len;
	bool ddgst_ok;
	int fail_with; /* on_header returns this when non-zero */
};

static int owner_on_header(struct stream *s, void *ctx)
{
	struct owner *o = ctx;

	o->headers++;
	if (o->fail_with) {
		s->err.fes = WIRE_FES_DATA_OUT_OF_RANGE;
		s->err.fei = 0;
		return o->fail_with;
	}
	if (s->rx.hdr.ch.pdu_type == WIRE_PDU_C2H_DATA && o->dst) {
		size_t half = s->rx.data_len / 2;
		struct iovec iov[2] = {{o->dst, half}, {o->dst + half, o->dst_len - half}};
		return pdu_rx_set_dst(&s->rx, iov, 2);
	}
	return 0;
}

static int owner_on_pdu(struct stream *s, void *ctx)
{
	struct owner *o = ctx;

	if (s->rx.hdr.ch.pdu_type == WIRE_PDU_CAPSULE_RESP && o->pdus < 256)
		o->cids[o->pdus] = le16_get(s->rx.hdr.rsp.cqe.cid);
	if (s->rx.hdr.ch.pdu_type == WIRE_PDU_C2H_DATA)
		o->ddgst_ok = s->rx.ddgst_ok;
	o->pdus++;
	return 0;
}

static const struct stream_cbs owner_cbs = {.on_header = owner_on_header, .on_pdu = owner_on_pdu};

static void make_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
}

static void write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EAGAIN) {
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};
				poll(&pfd, 1, 100);
				continue;
			}
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
}

static void wait_in(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	poll(&pfd, 1, 1000);
}

/* n CapsuleResps with cids first_cid, first_cid + 1, ... into buf; returns their length. */
static size_t build_resps(uint8_t *buf, int n, uint16_t first_cid)
{
	size_t len = 0;

	for (int i = 0; i < n; i++) {
		struct wire_cqe cqe = {0};

		le16_put(cqe.cid, (uint16_t)(first_cid + i));
		len += pdu_build_capsule_resp(buf + len, &cqe, &params_dgst);
	}
	return len;
}

static void test_small_pdus_batched(void)
{
	static uint8_t buf[100 * 28];
	struct owner o = {0};
	struct stream s;
	size_t len = build_resps(buf, 100, 1000);
	int sv[2];

	make_pair(sv);
	write_all(sv[1], buf, len);
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_HOST, 0, &owner_cbs, &o), 0);
	stream_set_params(&s, &params_dgst);
	/* budget caps the PDUs per call; the rest waits in the ring */
	TAP_CHECK_EQ(stream_recv(&s, 30), 30);
	TAP_CHECK_EQ(stream_recv(&s, 1000), 70);
	TAP_CHECK_EQ(o.pdus, 100);
	int order_bad = 0;
	for (int i = 0; i < 100; i++)
		order_bad += o.cids[i] != 1000 + i;
	TAP_CHECK_EQ(order_bad, 0);
	/* one read carried all 2800 bytes; then one more returned EAGAIN */
	TAP_CHECK(s.rx_syscalls <= 3);
	TAP_CHECK_EQ(s.rx_bytes, len);
	close(sv[1]);
	TAP_CHECK_EQ(stream_recv(&s, 10), -ECONNRESET);
	stream_fini(&s);
}

struct peer_buf {
	int fd;
	const uint8_t *buf;
	size_t len;
	size_t chunk;
};

static void *peer_writer(void *arg)
{
	struct peer_buf *pb = arg;

	for (size_t off = 0; off < pb->len; off += pb->chunk) {
		write_all(pb->fd, pb->buf + off, MIN(pb->chunk, pb->len - off));
		usleep(200);
	}
	return NULL;
}

static void test_direct_placement(void)
{
	const uint32_t datal = 256 * 1024;
	size_t cap = 256 + datal + 64;
	uint8_t *wire = malloc(cap), *data = malloc(datal), *dst = calloc(1, datal);
	struct owner o = {.dst = dst, .dst_len = datal};
	struct stream s;
	size_t len;
	int sv[2];

	for (uint32_t i = 0; i < datal; i++)
		data[i] = (uint8_t)(i * 13 + (i >> 9));
	len = pdu_build_c2h_data(wire, 3, 0, datal, true, false, &params_dgst);
	memcpy(wire + len, data, datal);
	len += datal;
	pdu_ddgst_put(wire + len, crc32c(data, datal));
	len += 4;
	struct wire_cqe cqe = {0};
	le16_put(cqe.cid, 3);
	len += pdu_build_capsule_resp(wire + len, &cqe, &params_dgst);

	make_pair(sv);
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_HOST, 16384, &owner_cbs, &o), 0);
	stream_set_params(&s, &params_dgst);
	struct peer_buf pb = {.fd = sv[1], .buf = wire, .len = len, .chunk = 24 * 1024};
	pthread_t th;
	pthread_create(&th, NULL, peer_writer, &pb);
	int loops = 0;
	while (o.pdus < 2 && loops++ < 10000) {
		int ret = stream_recv(&s, 64);
		TAP_CHECK(ret >= 0);
		if (ret < 0)
			break;
		if (o.pdus < 2)
			wait_in(sv[0]);
	}
	pthread_join(th, NULL);
	TAP_CHECK_EQ(o.pdus, 2);
	TAP_CHECK(o.ddgst_ok);
	TAP_CHECK(s.rx_direct_bytes > 0);
	TAP_CHECK(s.rx_direct_bytes <= datal);
	TAP_CHECK_MEM(dst, data, datal);
	TAP_CHECK_EQ(o.cids[1], 3);
	TAP_CHECK_EQ(s.rx_bytes, len);
	printf("# direct bytes %llu of %u, %llu reads\n", (unsigned long long)s.rx_direct_bytes,
	       datal, (unsigned long long)s.rx_syscalls);
	stream_fini(&s);
	close(sv[1]);
	free(wire);
	free(data);
	free(dst);
}

/* Large PDUs back to back, all already waiting in the socket (a 256 KiB ring would take the
 * next header and most of its payload in one read): once a large payload has been seen, the
 * ring reads at most STREAM_RING_BIG_READ bytes, so each later payload is read straight
 * into its destination and at most that much of it is copied out of the ring. */
static void test_big_payloads_stay_direct(void)
{
	enum { NPDU = 6 };
	const uint32_t datal = 128 * 1024;
	size_t per = 8 + 24 + 8 + datal + 8 + 24 + 8, cap = NPDU * per;
	uint8_t *wire = malloc(cap), *data = malloc(datal), *dst = calloc(1, datal);
	struct owner o = {.dst = dst, .dst_len = datal};
	struct stream s;
	size_t len = 0;
	int sv[2], sz = 4 << 20;

	for (uint32_t i = 0; i < datal; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 11));
	for (int k = 0; k < NPDU; k++) {
		struct wire_cqe cqe = {0};

		len += pdu_build_c2h_data(wire + len, (uint16_t)k, 0, datal, true, false,
					  &params_dgst);
		memcpy(wire + len, data, datal);
		len += datal;
		pdu_ddgst_put(wire + len, crc32c(data, datal));
		len += 4;
		le16_put(cqe.cid, (uint16_t)k);
		len += pdu_build_capsule_resp(wire + len, &cqe, &params_dgst);
	}
	make_pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_HOST, 256 * 1024, &owner_cbs, &o), 0);
	stream_set_params(&s, &params_dgst);
	struct peer_buf pb = {.fd = sv[1], .buf = wire, .len = len, .chunk = len};
	pthread_t th;
	pthread_create(&th, NULL, peer_writer, &pb);
	usleep(20000); /* let as much as fits pile up in the socket */
	for (int loops = 0; o.pdus < 2 * NPDU && loops < 10000; loops++) {
		int ret = stream_recv(&s, 64);
		TAP_CHECK(ret >= 0);
		if (ret < 0)
			break;
		if (o.pdus < 2 * NPDU)
			wait_in(sv[0]);
	}
	pthread_join(th, NULL);
	TAP_CHECK_EQ(o.pdus, 2 * NPDU);
	TAP_CHECK(o.ddgst_ok);
	TAP_CHECK_MEM(dst, data, datal);
	TAP_CHECK_EQ(s.rx_bytes, len);
	/* the first full-ring read may take the first two payloads almost whole; from then on
	 * every payload is read straight into place but for at most STREAM_RING_BIG_READ bytes */
	TAP_CHECK(s.rx_direct_bytes >= (uint64_t)(NPDU - 2) * (datal - STREAM_RING_BIG_READ));
	printf("# direct bytes %llu of %u, %llu reads\n", (unsigned long long)s.rx_direct_bytes,
	       NPDU * datal, (unsigned long long)s.rx_syscalls);
	stream_fini(&s);
	close(sv[1]);
	free(wire);
	free(data);
	free(dst);
}

/* An io ops table that hands out at most 3 bytes per read, like a TLS layer returning one
 * small record at a time: every split point goes through the stream and the direct path. */
static ssize_t tiny_readv(struct stream *s, const struct iovec *iov, int iovcnt)
{
	struct iovec one = iov[0];

	if (one.iov_len > 3)
		one.iov_len = 3;
	return stream_plain_io.readv(s, &one, 1);
}

static const struct stream_io_ops tiny_io = {.readv = tiny_readv, .writev = NULL};

static void test_tiny_reads(void)
{
	const uint32_t datal = 10000;
	static uint8_t wire[11000], data[10000], dst[10000];
	struct owner o = {.dst = dst, .dst_len = datal};
	struct stream s;
	size_t len;
	int sv[2];

	for (uint32_t i = 0; i < datal; i++)
		data[i] = (uint8_t)(i * 5 + 1);
	len = pdu_build_c2h_data(wire, 9, 0, datal, true, false, &params_dgst);
	memcpy(wire + len, data, datal);
	len += datal;
	pdu_ddgst_put(wire + len, crc32c(data, datal));
	len += 4;
	struct wire_cqe cqe;
	memset(&cqe, 0, sizeof(cqe));
	le16_put(cqe.cid, 9);
	len += pdu_build_capsule_resp(wire + len, &cqe, &params_dgst);
	make_pair(sv);
	write_all(sv[1], wire, len);
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_HOST, 0, &owner_cbs, &o), 0);
	s.io = &tiny_io;
	stream_set_params(&s, &params_dgst);
	TAP_CHECK_EQ(stream_recv(&s, 64), 2);
	TAP_CHECK(o.ddgst_ok);
	TAP_CHECK_MEM(dst, data, datal);
	TAP_CHECK_EQ(o.cids[1], 9);
	TAP_CHECK(s.rx_direct_bytes > 0);
	TAP_CHECK_EQ(s.rx_bytes, len);
	TAP_CHECK(s.rx_syscalls >= len / 3);
	stream_fini(&s);
	close(sv[1]);
}

/* ---- send side ---- */

#define NTX	64
#define TX_DATA 20000

struct sink {
	int fd;
	uint8_t *buf;
	size_t len, want;
};

static void *peer_reader(void *arg)
{
	struct sink *k = arg;

	while (k->len < k->want) {
		ssize_t n = read(k->fd, k->buf + k->len, MIN((size_t)3000, k->want - k->len));
		if (n <= 0)
			break;
		k->len += (size_t)n;
		usleep(50);
	}
	return NULL;
}

static int done_order[NTX], done_count, done_status_bad;

static void tx_done(struct stream_tx *tx, int status)
{
	done_order[done_count++ % NTX] = (int)(intptr_t)tx->ctx;
	done_status_bad += status != 0;
}

/* A plain read that returned less than asked means the socket was empty: stream_recv returns
 * after it without a read that could only fail with EAGAIN; what arrives later is read by the
 * next call. An io layer like TLS (records, reads shorter than asked) keeps reading. */
static void test_short_read_stops(void)
{
	static uint8_t buf[5 * 28];
	struct owner o = {0};
	struct stream s;
	int sv[2];

	build_resps(buf, 5, 0);
	make_pair(sv);
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_HOST, 0, &owner_cbs, &o), 0);
	stream_set_params(&s, &params_dgst);
	write_all(sv[1], buf, 3 * 28);
	TAP_CHECK_EQ(stream_recv(&s, 100), 3);
	TAP_CHECK_EQ(s.rx_syscalls, 1);
	write_all(sv[1], buf + 3 * 28, 2 * 28);
	TAP_CHECK_EQ(stream_recv(&s, 100), 2);
	TAP_CHECK_EQ(s.rx_syscalls, 2);
	TAP_CHECK_EQ(o.pdus, 5);
	/* nothing there: one read, EAGAIN, no error */
	TAP_CHECK_EQ(stream_recv(&s, 100), 0);
	TAP_CHECK_EQ(s.rx_syscalls, 3);
	stream_fini(&s);
	close(sv[1]);

	/* a record-at-a-time io layer: every read is short, the stream reads on to EAGAIN */
	memset(&o, 0, sizeof(o));
	make_pair(sv);
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_HOST, 0, &owner_cbs, &o), 0);
	s.io = &tiny_io;
	stream_set_params(&s, &params_dgst);
	write_all(sv[1], buf, 5 * 28);
	TAP_CHECK_EQ(stream_recv(&s, 100), 5);
	TAP_CHECK_EQ(s.rx_syscalls, (5 * 28 + 2) / 3 + 1);
	stream_fini(&s);
	close(sv[1]);
}

/* Flush until everything left (EAGAIN: wait for room); returns the last stream_flush result. */
static int flush_all(struct stream *s, int *eagain)
{
	int ret, loops = 0;

	while ((ret = stream_flush(s)) == -EAGAIN && loops++ < 100000) {
		struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};

		(*eagain)++;
		poll(&pfd, 1, 1000);
	}
	return ret;
}

/* Flush everything queued to a slow reader on peer_fd (the send buffer fills: at least one
 * EAGAIN); the peer must get exactly expect[0..want), every one of ntx tx complete in order
 * with status 0, and nothing be left to send. Returns the EAGAIN count. */
static int flush_to_reader(struct stream *s, int peer_fd, const uint8_t *expect, size_t want,
			   int ntx)
{
	struct sink k = {.fd = peer_fd, .buf = malloc(want), .want = want};
	int order_bad = 0, eagain = 0;
	pthread_t th;

	pthread_create(&th, NULL, peer_reader, &k);
	TAP_CHECK_EQ(flush_all(s, &eagain), 0);
	pthread_join(th, NULL);
	TAP_CHECK(eagain > 0);
	TAP_CHECK_EQ(k.len, want);
	TAP_CHECK_MEM(k.buf, expect, want);
	free(k.buf);
	TAP_CHECK_EQ(done_count, ntx);
	TAP_CHECK_EQ(done_status_bad, 0);
	for (int i = 0; i < ntx; i++)
		order_bad += done_order[i] != i;
	TAP_CHECK_EQ(order_bad, 0);
	TAP_CHECK_EQ(s->tx_bytes, want);
	TAP_CHECK_EQ(s->tx_queued_bytes, 0);
	TAP_CHECK(!stream_tx_pending(s));
	return eagain;
}

static void test_partial_writes(void)
{
	static struct stream_tx tx[NTX];
	static uint8_t hdrs[NTX][32], payload[TX_DATA], expect[NTX * (32 + TX_DATA)];
	struct stream s;
	int sv[2], sndbuf = 4096, eagain;
	size_t want = 0;

	make_pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_CTRL, 0, &owner_cbs, NULL), 0);
	for (int i = 0; i < TX_DATA; i++)
		payload[i] = (uint8_t)(i * 3);
	done_count = done_status_bad = 0;
	for (int i = 0; i < NTX; i++) {
		memset(hdrs[i], i, sizeof(hdrs[i]));
		/* vary the shape: empty iovecs, header only, header + data in two pieces */
		tx[i].iovcnt = 0;
		tx[i].iov[tx[i].iovcnt++] = (struct iovec){hdrs[i], 32};
		tx[i].iov[tx[i].iovcnt++] = (struct iovec){payload, 0};
		if (i % 3) {
			tx[i].iov[tx[i].iovcnt++] = (struct iovec){payload, 7000};
			tx[i].iov[tx[i].iovcnt++] = (struct iovec){payload + 7000, TX_DATA - 7000};
		}
		tx[i].done = tx_done;
		tx[i].ctx = (void *)(intptr_t)i;
		for (int j = 0; j < tx[i].iovcnt; j++) {
			memcpy(expect + want, tx[i].iov[j].iov_base, tx[i].iov[j].iov_len);
			want += tx[i].iov[j].iov_len;
		}
		stream_queue(&s, &tx[i]);
	}
	TAP_CHECK_EQ(s.tx_queued_bytes, want);
	eagain = flush_to_reader(&s, sv[1], expect, want, NTX);
	printf("# %d EAGAIN, %llu sendmsg for %d tx\n", eagain, (unsigned long long)s.tx_syscalls,
	       NTX);
	stream_fini(&s);
	close(sv[1]);
}

/* stream_queue_ddgst: the stream computes a data digest from the bytes as they leave, so a
 * payload that changes while queued (a Read lent from a memory namespace, overwritten by a
 * later Write of the same loop) still goes out with a matching digest. Between flushes the
 * test rewrites every payload byte; the peer checks each PDU's digest against the bytes it
 * received, which mix several versions. With writev_max (TLS takes at most 64 KiB per call)
 * large payloads are CRC'd piece by piece after each call instead. */
#define LD_NTX 12
static size_t ld_cap; /* bytes per writev, 0 = whatever sendmsg takes */

static ssize_t capped_writev(struct stream *s, const struct iovec *iov, int iovcnt, bool more)
{
	struct iovec v[STREAM_WRITEV_MAX];
	size_t left = ld_cap;
	int n = 0;

	for (int i = 0; i < iovcnt && left > 0; i++, n++) {
		v[n] = iov[i];
		v[n].iov_len = MIN(v[n].iov_len, left);
		left -= v[n].iov_len;
	}
	return stream_plain_io.writev(s, v, n, more);
}

static const struct stream_io_ops capped_io = {
	.readv = NULL, .writev = capped_writev, .writev_max = 8192};

/* The owner's CRC function (stream_queue_ddgst's crc): counts the bytes it is given. */
static uint32_t counting_crc(void *ctx, uint32_t crc, const void *p, size_t n)
{
	*(size_t *)ctx += n;
	return crc32c_update(crc, p, n);
}

static void late_ddgst_run(size_t cap, bool own_crc)
{
	size_t counted = 0, payload_bytes = 0;
	static const size_t sizes[LD_NTX] = {100,   4096, 20000, 200000, 1,	 4096,
					     70000, 512,  8192,	 8193,	 300000, 16};
	static struct stream_tx tx[LD_NTX];
	static uint8_t hdrs[LD_NTX][32], dgst[LD_NTX][4];
	uint8_t *payload[LD_NTX];
	struct stream s;
	int sv[2], sndbuf = 4096, flushes = 0, ret;
	size_t want = 0;

	make_pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_CTRL, 0, &owner_cbs, NULL), 0);
	ld_cap = cap;
	if (cap)
		s.io = &capped_io;
	done_count = done_status_bad = 0;
	for (int i = 0; i < LD_NTX; i++) {
		payload[i] = malloc(sizes[i]);
		for (size_t j = 0; j < sizes[i]; j++)
			payload[i][j] = (uint8_t)(j * 7 + (size_t)i);
		memset(hdrs[i], i, sizeof(hdrs[i]));
		memset(dgst[i], 0xee, 4);
		tx[i].iovcnt = 0;
		tx[i].iov[tx[i].iovcnt++] = (struct iovec){hdrs[i], 32};
		if (i % 2) { /* payload in two pieces, one of them empty for i % 4 == 3 */
			size_t h = i % 4 == 3 ? 0 : sizes[i] / 3;
			tx[i].iov[tx[i].iovcnt++] = (struct iovec){payload[i], h};
			tx[i].iov[tx[i].iovcnt++] = (struct iovec){payload[i] + h, sizes[i] - h};
		} else {
			tx[i].iov[tx[i].iovcnt++] = (struct iovec){payload[i], sizes[i]};
		}
		tx[i].iov[tx[i].iovcnt++] = (struct iovec){dgst[i], 4};
		tx[i].done = tx_done;
		tx[i].ctx = (void *)(intptr_t)i;
		want += 32 + sizes[i] + 4;
		payload_bytes += sizes[i];
		if (own_crc)
			stream_queue_ddgst(&s, &tx[i], counting_crc, &counted);
		else
			stream_queue_ddgst(&s, &tx[i], NULL, NULL);
	}
	TAP_CHECK_EQ(s.tx_queued_bytes, want);
	struct sink k = {.fd = sv[1], .buf = malloc(want), .want = want};
	pthread_t th;
	pthread_create(&th, NULL, peer_reader, &k);
	while ((ret = stream_flush(&s)) == -EAGAIN && flushes++ < 1000000) {
		struct pollfd pfd = {.fd = sv[0], .events = POLLOUT};

		/* allowed: the payload changes between flushes */
		for (int i = 0; i < LD_NTX; i++)
			for (size_t j = 0; j < sizes[i]; j++)
				payload[i][j] ^= (uint8_t)(0x5a + flushes);
		poll(&pfd, 1, 1000);
	}
	TAP_CHECK_EQ(ret, 0);
	pthread_join(th, NULL);
	TAP_CHECK(flushes > 10);
	TAP_CHECK_EQ(k.len, want);
	TAP_CHECK_EQ(done_count, LD_NTX);
	TAP_CHECK_EQ(done_status_bad, 0);
	size_t off = 0;
	int bad_dgst = 0, bad_hdr = 0, changed = 0;
	for (int i = 0; i < LD_NTX && off + 36 <= k.len; i++) {
		uint8_t expect[4];

		bad_hdr += memcmp(k.buf + off, hdrs[i], 32) != 0;
		off += 32;
		pdu_ddgst_put(expect, crc32c(k.buf + off, sizes[i]));
		bad_dgst += memcmp(k.buf + off + sizes[i], expect, 4) != 0;
		for (size_t j = 0; j < sizes[i]; j++)
			changed += k.buf[off + j] != (uint8_t)(j * 7 + (size_t)i);
		off += sizes[i] + 4;
	}
	TAP_CHECK_EQ(off, want);
	TAP_CHECK_EQ(bad_hdr, 0);
	TAP_CHECK_EQ(bad_dgst, 0);
	/* every CRC went through the owner's function: each payload byte at least once */
	if (own_crc)
		TAP_CHECK(counted >= payload_bytes);
	TAP_CHECK(changed > 0); /* the payload did change while it was being sent */
	printf("# cap %zu: %d flushes, %llu writev, %d bytes sent changed\n", cap, flushes,
	       (unsigned long long)s.tx_syscalls, changed);
	stream_fini(&s);
	close(sv[1]);
	free(k.buf);
	for (int i = 0; i < LD_NTX; i++)
		free(payload[i]);
}

static void test_late_ddgst(void)
{
	late_ddgst_run(0, false);
	late_ddgst_run(5000,
		       false); /* each writev takes at most 5000 bytes; above 8192 CRC after */
	late_ddgst_run(0, true);
	late_ddgst_run(5000, true);
}

static uint8_t early_hdr[32], early_big[64 * 1024];

/* test_flush_early: queue a tx of 32 header bytes and len payload bytes, then apply the rule */
static void early_one(struct stream *s, struct stream_tx *tx, size_t len, unsigned *turn, bool poll,
		      size_t data_in, size_t *want)
{
	tx->iovcnt = 2;
	tx->iov[0] = (struct iovec){early_hdr, sizeof(early_hdr)};
	tx->iov[1] = (struct iovec){early_big, len};
	tx->done = tx_done;
	*want += sizeof(early_hdr) + len;
	stream_queue(s, tx);
	stream_flush_early(s, turn, poll, data_in);
}

/* stream_flush_early, counted in sendmsg calls (the socket takes everything: no partial
 * writes). Busy-poll mode: the first 64 KiB response of a turn leaves at once, once per turn;
 * a turn of smaller ones never, however many bytes they add up to. Interrupt mode: the fourth
 * small response or the first 16 KiB, once per turn, and every response to a command that
 * brought 64 KiB of in-capsule data. Every byte arrives. */
static void test_flush_early(void)
{
	static struct stream_tx tx[12];
	static uint8_t out[64 * 1024];
	struct stream s;
	int sv[2], sndbuf = 4 << 20, k = 0;
	unsigned turn;
	size_t want = 0, got = 0;

	make_pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_CTRL, 0, &owner_cbs, NULL), 0);
	done_count = done_status_bad = 0;

	turn = 0; /* busy-poll, a small one, then 64 KiB ones */
	early_one(&s, &tx[k++], 100, &turn, true, 0, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 0);
	early_one(&s, &tx[k++], sizeof(early_big), &turn, true, 0, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 1); /* a large one: sent at once */
	early_one(&s, &tx[k++], sizeof(early_big), &turn, true, 0, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 1); /* once per turn */
	TAP_CHECK_EQ(stream_flush(&s), 0);
	TAP_CHECK_EQ(s.tx_syscalls, 2);
	turn = 0; /* busy-poll, a turn of 5 x 16 KiB: 80 KiB, none of them large */
	for (int i = 0; i < 5; i++)
		early_one(&s, &tx[k++], 16 * 1024, &turn, true, 0, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 2);
	TAP_CHECK_EQ(stream_flush(&s), 0);
	TAP_CHECK_EQ(s.tx_syscalls, 3);
	/* drain what arrived so far (the socket buffer stays far from full) */
	while (got < want) {
		ssize_t n = read(sv[1], out, sizeof(out));

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	turn = 0; /* interrupt mode: the fourth small one */
	early_one(&s, &tx[k++], 100, &turn, false, 0, &want);
	early_one(&s, &tx[k++], 100, &turn, false, 0, &want);
	early_one(&s, &tx[k++], 100, &turn, false, 0, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 3);
	early_one(&s, &tx[k++], 100, &turn, false, 0, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 4);
	TAP_CHECK_EQ(k, 12);
	k = 0;
	early_one(&s, &tx[k++], 100, &turn, false, 0, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 4); /* once per turn */
	TAP_CHECK_EQ(stream_flush(&s), 0);
	turn = 0; /* interrupt mode: 16 KiB at once */
	early_one(&s, &tx[k++], 16 * 1024, &turn, false, 0, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 6);
	/* interrupt mode: a command that brought 64 KiB in its capsule, even after the turn's
	 * early flush; in busy-poll mode what it brought does not count */
	early_one(&s, &tx[k++], 100, &turn, false, 64 * 1024, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 7);
	early_one(&s, &tx[k++], 100, &turn, false, 64 * 1024, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 8); /* every time */
	turn = 0;
	early_one(&s, &tx[k++], 100, &turn, true, 64 * 1024, &want);
	TAP_CHECK_EQ(s.tx_syscalls, 8);
	TAP_CHECK_EQ(stream_flush(&s), 0);
	TAP_CHECK_EQ(done_count, 17);
	TAP_CHECK_EQ(done_status_bad, 0);
	while (got < want) {
		ssize_t n = read(sv[1], out, sizeof(out));

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	TAP_CHECK_EQ(got, want);
	stream_fini(&s);
	close(sv[1]);
}

/* A connected TCP pair on 127.0.0.1 (splice needs a socket that takes pages); sv[0]
 * non-blocking. */
static void make_tcp_pair(int sv[2])
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
		abort();
	sv[1] = socket(AF_INET, SOCK_STREAM, 0);
	if (sv[1] < 0 || connect(sv[1], (struct sockaddr *)&a, sizeof(a)) < 0)
		abort();
	sv[0] = accept(lfd, NULL, NULL);
	if (sv[0] < 0)
		abort();
	close(lfd);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
}

/* stream_queue_zc: payloads go through the pipe, in order with copied sends around them,
 * through partial splices into a small send buffer and partial vmsplices; every tx completes
 * in order and the peer gets exactly the bytes queued. */
#define ZC_NTX	12
#define ZC_DATA (200 * 1024)

static void test_zero_copy_order(void)
{
	static struct stream_tx tx[ZC_NTX];
	static uint8_t hdrs[ZC_NTX][24], payload[ZC_DATA], expect[ZC_NTX * (24 + ZC_DATA)];
	struct stream s;
	int sv[2], sndbuf = 16384, eagain;
	size_t want = 0, zc_want = 0;

	make_tcp_pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_CTRL, 0, &owner_cbs, NULL), 0);
	TAP_CHECK_EQ(stream_zc_enable(&s), 0);
	for (int i = 0; i < ZC_DATA; i++)
		payload[i] = (uint8_t)(i * 7 + (i >> 12));
	done_count = done_status_bad = 0;
	for (int i = 0; i < ZC_NTX; i++) {
		size_t len = i % 3 == 0 ? ZC_DATA : i % 3 == 1 ? 0 : 65536 + 100;

		memset(hdrs[i], 0x40 + i, sizeof(hdrs[i]));
		tx[i].iovcnt = 0;
		tx[i].iov[tx[i].iovcnt++] = (struct iovec){hdrs[i], sizeof(hdrs[i])};
		if (len) {
			/* two pieces, unaligned */
			tx[i].iov[tx[i].iovcnt++] = (struct iovec){payload + 1, 5000};
			tx[i].iov[tx[i].iovcnt++] = (struct iovec){payload + 5001, len - 5000 - 1};
		}
		tx[i].done = tx_done;
		tx[i].ctx = (void *)(intptr_t)i;
		for (int j = 0; j < tx[i].iovcnt; j++) {
			memcpy(expect + want, tx[i].iov[j].iov_base, tx[i].iov[j].iov_len);
			want += tx[i].iov[j].iov_len;
		}
		if (i % 2 == 0) {
			stream_queue_zc(&s, &tx[i]);
			zc_want += len ? len - 1 : 0;
		} else {
			stream_queue(&s, &tx[i]);
		}
	}
	eagain = flush_to_reader(&s, sv[1], expect, want, ZC_NTX);
	TAP_CHECK_EQ(s.tx_zc_bytes, zc_want);
	TAP_CHECK_EQ(s.zc_pipe_bytes, 0);
	printf("# %d EAGAIN, %llu syscalls, %llu of %zu bytes by reference\n", eagain,
	       (unsigned long long)s.tx_syscalls, (unsigned long long)s.tx_zc_bytes, want);
	stream_fini(&s);
	close(sv[1]);
}

/* By reference, really: a payload changed after the flush but before the peer reads it
 * arrives changed (what stream_queue_zc's contract says its callers must accept); the same
 * with stream_queue arrives as it was. */
static void test_zero_copy_by_reference(void)
{
	static uint8_t hdr[24], payload[128 * 1024], got[24 + sizeof(payload)];

	for (int zc = 0; zc <= 1; zc++) {
		struct stream_tx tx = {.iovcnt = 2, .done = tx_done};
		struct stream s;
		int sv[2], eagain = 0, big = 4 << 20;

		make_tcp_pair(sv);
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
		TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_CTRL, 0, &owner_cbs, NULL), 0);
		TAP_CHECK_EQ(stream_zc_enable(&s), 0);
		memset(hdr, 0x5a, sizeof(hdr));
		memset(payload, 0x11, sizeof(payload));
		tx.iov[0] = (struct iovec){hdr, sizeof(hdr)};
		tx.iov[1] = (struct iovec){payload, sizeof(payload)};
		done_count = done_status_bad = 0;
		if (zc)
			stream_queue_zc(&s, &tx);
		else
			stream_queue(&s, &tx);
		TAP_CHECK_EQ(flush_all(&s, &eagain), 0);
		TAP_CHECK_EQ(done_count, 1);
		memset(payload, 0x22,
		       sizeof(payload)); /* after done(): the peer has read nothing */
		size_t len = 0;
		while (len < sizeof(got)) {
			wait_in(sv[1]);
			ssize_t n = read(sv[1], got + len, sizeof(got) - len);
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		TAP_CHECK_EQ(len, sizeof(got));
		TAP_CHECK_EQ(got[0], 0x5a);
		TAP_CHECK_EQ(got[24], zc ? 0x22 : 0x11);
		TAP_CHECK_EQ(got[sizeof(got) - 1], zc ? 0x22 : 0x11);
		TAP_CHECK_EQ(s.tx_zc_bytes, zc ? sizeof(payload) : 0);
		stream_fini(&s);
		close(sv[1]);
	}
}

static void *fast_reader(void *arg)
{
	struct sink *k = arg;

	usleep(20000); /* let the writer find the socket full first */
	while (k->len < k->want) {
		ssize_t n = read(k->fd, k->buf + k->len, k->want - k->len);
		if (n <= 0)
			break;
		k->len += (size_t)n;
	}
	return NULL;
}

/* A TermReq after a payload half spliced: the payload's rest (in the pipe and still queued)
 * goes first, then the TermReq, nothing in between. */
static void test_zero_copy_term_req(void)
{
	static uint8_t hdr[24], payload[256 * 1024], got[24 + sizeof(payload) + 64];
	struct stream_tx tx = {.iovcnt = 2, .done = tx_done};
	struct stream s;
	int sv[2], sndbuf = 16384;

	make_tcp_pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_CTRL, 0, &owner_cbs, NULL), 0);
	TAP_CHECK_EQ(stream_zc_enable(&s), 0);
	memset(hdr, 0x5a, sizeof(hdr));
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i % 251);
	tx.iov[0] = (struct iovec){hdr, sizeof(hdr)};
	tx.iov[1] = (struct iovec){payload, sizeof(payload)};
	stream_queue_zc(&s, &tx);
	TAP_CHECK_EQ(stream_flush(&s), -EAGAIN); /* the peer is not reading yet */
	TAP_CHECK(stream_tx_pending(&s));
	TAP_CHECK(s.tx_zc_bytes > 0 && s.zc_pipe_bytes > 0); /* the pipe holds the rest */
	s.err.fes = WIRE_FES_INVALID_HEADER_FIELD;
	s.err.fei = 0;
	struct sink k = {.fd = sv[1], .buf = got, .want = sizeof(got)};
	pthread_t th;
	pthread_create(&th, NULL, fast_reader, &k);
	stream_send_term_req(&s);
	pthread_join(th, NULL); /* ends at EOF: the stream shut its write side down */
	TAP_CHECK_EQ(k.len, 24 + sizeof(payload) + 24);
	TAP_CHECK_MEM(k.buf, hdr, 24);
	TAP_CHECK_MEM(k.buf + 24, payload, sizeof(payload));
	TAP_CHECK_EQ(k.buf[24 + sizeof(payload)], WIRE_PDU_C2H_TERM_REQ);
	TAP_CHECK_EQ(le16_get(k.buf + 24 + sizeof(payload) + 8), WIRE_FES_INVALID_HEADER_FIELD);
	stream_fini(&s);
	close(sv[1]);
}

static void test_fini_aborts_queued(void)
{
	static struct stream_tx tx[3];
	static uint8_t b[8];
	struct stream s;
	int sv[2];

	make_pair(sv);
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_CTRL, 0, &owner_cbs, NULL), 0);
	done_count = done_status_bad = 0;
	for (int i = 0; i < 3; i++) {
		tx[i] = (struct stream_tx){
			.iovcnt = 1, .done = tx_done, .ctx = (void *)(intptr_t)i};
		tx[i].iov[0] = (struct iovec){b, sizeof(b)};
		stream_queue(&s, &tx[i]);
	}
	stream_fini(&s);
	TAP_CHECK_EQ(done_count, 3);
	TAP_CHECK_EQ(done_status_bad, 3);
	TAP_CHECK_EQ(done_order[2], 2);
	TAP_CHECK_EQ(fcntl(sv[0], F_GETFD), -1); /* fd closed by the stream */
	close(sv[1]);
}

static void test_term_req_on_bad_pdu(void)
{
	struct owner o = {0};
	struct stream s;
	uint8_t bad[24] = {0x08, 0, 24, 0, 24, 0, 0, 0}, got[256];
	int sv[2];

	make_pair(sv);
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_CTRL, 0, &owner_cbs, &o), 0);
	stream_set_params(&s, &params_dgst);
	write_all(sv[1], bad, sizeof(bad));
	TAP_CHECK_EQ(stream_recv(&s, 16), -EPROTO);
	TAP_CHECK_EQ(s.err.fes, WIRE_FES_INVALID_HEADER_FIELD);
	TAP_CHECK_EQ(s.err.fei, 0);
	stream_send_term_req(&s);
	size_t len = 0;
	for (;;) {
		wait_in(sv[1]);
		ssize_t n = read(sv[1], got + len, sizeof(got) - len);
		if (n <= 0)
			break; /* EOF: the stream shut down its write side */
		len += (size_t)n;
	}
	TAP_CHECK_EQ(len, 24 + 8);
	TAP_CHECK_EQ(got[0], WIRE_PDU_C2H_TERM_REQ);
	TAP_CHECK_EQ(le32_get(got + 4), 32);
	TAP_CHECK_EQ(le16_get(got + 8), WIRE_FES_INVALID_HEADER_FIELD);
	TAP_CHECK_EQ(le32_get(got + 10), 0);
	TAP_CHECK_MEM(got + 24, bad, 8);
	stream_fini(&s);
	close(sv[1]);
}

static void test_owner_error_passes_through(void)
{
	struct owner o = {.fail_with = -EPROTO};
	struct stream s;
	uint8_t buf[64];
	int sv[2];

	make_pair(sv);
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_HOST, 0, &owner_cbs, &o), 0);
	stream_set_params(&s, &params_dgst);
	size_t len = pdu_build_r2t(buf, 1, 2, 0, 4096, &params_dgst);
	write_all(sv[1], buf, len);
	TAP_CHECK_EQ(stream_recv(&s, 16), -EPROTO);
	TAP_CHECK_EQ(s.err.fes, WIRE_FES_DATA_OUT_OF_RANGE);
	stream_send_term_req(&s);
	uint8_t got[256];
	wait_in(sv[1]);
	ssize_t n = read(sv[1], got, sizeof(got));
	/* H2CTermReq carrying the R2T header (HLEN 24 bytes, digest not included) */
	TAP_CHECK_EQ(n, 48);
	TAP_CHECK_EQ(got[0], WIRE_PDU_H2C_TERM_REQ);
	TAP_CHECK_EQ(le16_get(got + 8), WIRE_FES_DATA_OUT_OF_RANGE);
	TAP_CHECK_MEM(got + 24, buf, 24);
	stream_fini(&s);
	close(sv[1]);
}

static void test_ic_sequence(void)
{
	struct owner o = {0};
	struct stream s;
	uint8_t buf[256];
	int sv[2];

	make_pair(sv);
	TAP_CHECK_EQ(stream_init(&s, sv[0], PDU_ROLE_CTRL, 0, &owner_cbs, &o), 0);
	size_t len = pdu_build_icreq(buf, 0, true, true, 0);
	write_all(sv[1], buf, len);
	TAP_CHECK_EQ(stream_recv(&s, 16), 1);
	TAP_CHECK_EQ(s.rx.hdr.ch.pdu_type, WIRE_PDU_ICREQ);
	stream_set_params(&s, &params_dgst);
	write_all(sv[1], buf, len); /* a second ICReq */
	TAP_CHECK_EQ(stream_recv(&s, 16), -EPROTO);
	TAP_CHECK_EQ(s.err.fes, WIRE_FES_PDU_SEQUENCE);
	stream_fini(&s);
	close(sv[1]);
}

int main(void)
{
	TAP_RUN(test_small_pdus_batched);
	TAP_RUN(test_direct_placement);
	TAP_RUN(test_big_payloads_stay_direct);
	TAP_RUN(test_tiny_reads);
	TAP_RUN(test_short_read_stops);
	TAP_RUN(test_partial_writes);
	TAP_RUN(test_late_ddgst);
	TAP_RUN(test_flush_early);
	TAP_RUN(test_zero_copy_order);
	TAP_RUN(test_zero_copy_by_reference);
	TAP_RUN(test_zero_copy_term_req);
	TAP_RUN(test_fini_aborts_queued);
	TAP_RUN(test_term_req_on_bad_pdu);
	TAP_RUN(test_owner_error_passes_through);
	TAP_RUN(test_ic_sequence);
	return tap_done();
}
