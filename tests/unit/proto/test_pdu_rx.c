/* Unit tests for src/proto/pdu_rx.c: a stream of PDUs decoded whole and byte by byte, payload
 * scattered over iovecs, padding, digests (good, bad, while discarding), direct placement,
 * fatal errors and API misuse. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/le.h"
#include "proto/crc32c.h"
#include "proto/pdu.h"
#include "tap.h"

static const struct pdu_params params_dgst = {
	.hdgst = true,
	.ddgst = true,
	.cpda = 3,
	.hpda = 0,
	.maxh2cdata = 131072,
	.max_incapsule = 8192,
	.ic_done = true,
};

static uint8_t wire[65536];
static size_t wire_len;
static uint8_t payload[3][5000];

/* Append a data PDU built with the builders, its payload and data digest. */
static void add_data_pdu(size_t hdr_len, const uint8_t *data, uint32_t len, bool ddgst)
{
	wire_len += hdr_len;
	memcpy(wire + wire_len, data, len);
	wire_len += len;
	if (ddgst) {
		pdu_ddgst_put(wire + wire_len, crc32c(data, len));
		wire_len += 4;
	}
}

static void build_stream(void)
{
	struct wire_sqe sqe = {.opc = 0x01, .cid = {5, 0}};

	wire_len = 0;
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 5000; j++)
			payload[i][j] = (uint8_t)(i * 31 + j * 7);
	/* CapsuleCmd without data, CapsuleCmd with 1000 in-capsule bytes, H2CData 5000, TermReq */
	wire_len += pdu_build_capsule_cmd(wire + wire_len, &sqe, 0, &params_dgst);
	add_data_pdu(pdu_build_capsule_cmd(wire + wire_len, &sqe, 1000, &params_dgst), payload[0],
		     1000, true);
	add_data_pdu(pdu_build_h2c_data(wire + wire_len, 5, 1, 0, 5000, true, &params_dgst),
		     payload[1], 5000, true);
	struct pdu_err e = {.fes = 1, .fei = 2};
	wire_len += pdu_build_term_req(wire + wire_len, WIRE_PDU_H2C_TERM_REQ, &e, payload[2], 40);
}

struct result {
	int headers, pdus, errors;
	uint8_t types[8];
	bool ddgst_ok[8];
	uint8_t got[3][5000];
	struct pdu_err err;
	size_t consumed;
};

/* Decode wire[0..len) in chunks of `chunk` bytes (0 = all at once). Data PDUs are scattered
 * over three iovecs; discard_type's payload is skipped. */
static void decode(struct result *r, const uint8_t *buf, size_t len, size_t chunk, int discard_type)
{
	struct pdu_rx rx;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	pdu_rx_init(&rx, PDU_ROLE_CTRL, &params_dgst);
	while (off < len || rx.state == PDU_RX_HEADER) {
		size_t n = chunk ? MIN(chunk, len - off) : len - off;
		enum pdu_ev ev;
		size_t used = pdu_rx_feed(&rx, buf + off, n, &ev);

		TAP_CHECK(used <= n);
		off += used;
		r->consumed += used;
		if (ev == PDU_EV_ERROR) {
			r->errors++;
			r->err = rx.err;
			return;
		}
		if (ev == PDU_EV_HEADER) {
			int slot = r->headers < 3 ? r->headers : 2;
			uint8_t *g = r->got[slot];
			uint32_t dl = rx.data_len;
			struct iovec iov[4] = {
				{g, dl / 3},
				{g + dl / 3, 0},
				{g + dl / 3, dl / 3},
				{g + 2 * (dl / 3), 5000},
			};
			r->types[r->headers++ & 7] = rx.hdr.ch.pdu_type;
			if (dl) {
				if (rx.hdr.ch.pdu_type == discard_type)
					pdu_rx_discard(&rx);
				else
					TAP_CHECK_EQ(pdu_rx_set_dst(&rx, iov, 4), 0);
			}
		}
		if (ev == PDU_EV_PDU) {
			r->ddgst_ok[r->pdus & 7] = rx.ddgst_ok;
			r->pdus++;
		}
		if (ev == PDU_EV_NONE && used == 0)
			break;
	}
}

static void test_stream_whole_and_bytewise(void)
{
	static struct result a, b, c;

	build_stream();
	decode(&a, wire, wire_len, 0, -1);
	TAP_CHECK_EQ(a.headers, 4);
	TAP_CHECK_EQ(a.pdus, 4);
	TAP_CHECK_EQ(a.errors, 0);
	TAP_CHECK_EQ(a.consumed, wire_len);
	TAP_CHECK_EQ(a.types[1], WIRE_PDU_CAPSULE_CMD);
	TAP_CHECK_EQ(a.types[2], WIRE_PDU_H2C_DATA);
	TAP_CHECK_EQ(a.types[3], WIRE_PDU_H2C_TERM_REQ);
	for (int i = 0; i < 4; i++)
		TAP_CHECK(a.ddgst_ok[i]);
	TAP_CHECK_MEM(a.got[1], payload[0], 1000);
	TAP_CHECK_MEM(a.got[2], payload[2], 40); /* TermReq's header copy landed last */
	decode(&b, wire, wire_len, 1, -1);
	decode(&c, wire, wire_len, 7, -1);
	TAP_CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	TAP_CHECK(memcmp(&a, &c, sizeof(a)) == 0);
}

static void test_h2c_payload_placed(void)
{
	static struct result a;

	build_stream();
	/* stop before the TermReq so slot 2 holds the H2CData payload */
	decode(&a, wire, wire_len - 64, 13, -1);
	TAP_CHECK_EQ(a.pdus, 3);
	TAP_CHECK_MEM(a.got[2], payload[1], 5000);
}

static void test_data_digest_bad(void)
{
	static struct result a, b;

	build_stream();
	size_t at = 76 + 80 + 500; /* second PDU: header 76, PDO 80, payload */
	wire[at] ^= 1;
	decode(&a, wire, wire_len, 3, -1);
	TAP_CHECK_EQ(a.errors, 0);
	TAP_CHECK_EQ(a.pdus, 4);
	TAP_CHECK(a.ddgst_ok[0]);
	TAP_CHECK(!a.ddgst_ok[1]);
	TAP_CHECK(a.ddgst_ok[2]);
	/* the digest is also computed when the payload is discarded */
	decode(&b, wire, wire_len, 5, WIRE_PDU_CAPSULE_CMD);
	TAP_CHECK_EQ(b.pdus, 4);
	TAP_CHECK(!b.ddgst_ok[1]);
}

static void test_header_digest_bad(void)
{
	static struct result a;

	build_stream();
	wire[76 + 10] ^= 0x80; /* inside the second CapsuleCmd's SQE */
	decode(&a, wire, wire_len, 1, -1);
	TAP_CHECK_EQ(a.pdus, 1);
	TAP_CHECK_EQ(a.errors, 1);
	TAP_CHECK_EQ(a.err.fes, WIRE_FES_HDGST);
	TAP_CHECK_EQ(a.consumed, 76 + 76);
}

static void test_ch_error_sticky(void)
{
	struct pdu_rx rx;
	enum pdu_ev ev;
	uint8_t bad[8] = {0x08, 0, 24, 0, 24, 0, 0, 0};

	pdu_rx_init(&rx, PDU_ROLE_CTRL, &params_dgst);
	TAP_CHECK_EQ(pdu_rx_feed(&rx, bad, 5, &ev), 5);
	TAP_CHECK_EQ(ev, PDU_EV_NONE);
	TAP_CHECK_EQ(pdu_rx_feed(&rx, bad + 5, 3, &ev), 3);
	TAP_CHECK_EQ(ev, PDU_EV_ERROR);
	TAP_CHECK_EQ(rx.err.fes, WIRE_FES_INVALID_HEADER_FIELD);
	TAP_CHECK_EQ(rx.err.fei, 0);
	TAP_CHECK_EQ(pdu_rx_feed(&rx, bad, 8, &ev), 0);
	TAP_CHECK_EQ(ev, PDU_EV_ERROR);
	TAP_CHECK_EQ(rx.state, PDU_RX_ERROR);
}

static void test_direct_placement(void)
{
	struct pdu_rx rx;
	enum pdu_ev ev;
	uint8_t dst[5000];
	struct iovec iov[2] = {{dst, 1000}, {dst + 1000, 4000}}, out[4];

	build_stream();
	size_t h2c = 76 + 80 + 1000 + 4; /* offset of the H2CData PDU */
	size_t pdo = wire[h2c + 3];
	pdu_rx_init(&rx, PDU_ROLE_CTRL, &params_dgst);
	TAP_CHECK_EQ(pdu_rx_feed(&rx, wire + h2c, pdo + 100, &ev), 28);
	TAP_CHECK_EQ(ev, PDU_EV_HEADER);
	TAP_CHECK_EQ(rx.data_len, 5000);
	TAP_CHECK_EQ(pdu_rx_data_iov(&rx, out, 4), 0); /* not in DATA yet */
	TAP_CHECK_EQ(pdu_rx_set_dst(&rx, iov, 2), 0);
	TAP_CHECK_EQ(pdu_rx_feed(&rx, wire + h2c + 28, pdo - 28 + 100, &ev), pdo - 28 + 100);
	TAP_CHECK_EQ(ev, PDU_EV_NONE);
	TAP_CHECK_EQ(pdu_rx_data_left(&rx), 4900);
	int cnt = pdu_rx_data_iov(&rx, out, 4);
	TAP_CHECK_EQ(cnt, 2);
	TAP_CHECK(out[0].iov_base == dst + 100 && out[0].iov_len == 900);
	TAP_CHECK(out[1].iov_base == dst + 1000 && out[1].iov_len == 4000);
	TAP_CHECK_EQ(pdu_rx_data_iov(&rx, out, 1), 1);
	/* "readv" the rest straight into place in two steps */
	memcpy(dst + 100, wire + h2c + pdo + 100, 2000);
	pdu_rx_data_landed(&rx, 2000);
	memcpy(dst + 2100, wire + h2c + pdo + 2100, 2900);
	pdu_rx_data_landed(&rx, 2900);
	TAP_CHECK_EQ(pdu_rx_data_left(&rx), 0);
	TAP_CHECK_EQ(pdu_rx_feed(&rx, wire + h2c + pdo + 5000, 4, &ev), 4);
	TAP_CHECK_EQ(ev, PDU_EV_PDU);
	TAP_CHECK(rx.ddgst_ok);
	TAP_CHECK_MEM(dst, payload[1], 5000);
	TAP_CHECK_EQ(rx.pdus, 1);
}

/* pdu_rx_set_dst_cold: payload copied with non-temporal stores lands exactly as with memcpy,
 * whatever the destination's alignment and the split of the feed; the hint ends with its PDU
 * and is refused for a discarded payload. */
static void test_cold_destination(void)
{
	static const struct pdu_params plain = {
		.maxh2cdata = 131072, .max_incapsule = 8192, .ic_done = true};
	static uint8_t src[6000], dst[6100];
	static uint8_t w[16384];
	static const size_t chunks[] = {0, 1, 700, 1500, 4099};
	size_t wl = 0;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 13 + 5);
	wl += pdu_build_h2c_data(w + wl, 5, 1, 0, 5000, true, &plain);
	memcpy(w + wl, src, 5000);
	wl += 5000;
	wl += pdu_build_h2c_data(w + wl, 5, 1, 5000, 1000, true, &plain);
	memcpy(w + wl, src + 5000, 1000);
	wl += 1000;
	for (size_t ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++) {
		for (size_t align = 0; align < 3; align++) {
			struct pdu_rx rx;
			size_t off = 0;
			int pdus = 0, hdrs = 0;

			memset(dst, 0xee, sizeof(dst));
			pdu_rx_init(&rx, PDU_ROLE_CTRL, &plain);
			while (off < wl) {
				size_t n = chunks[ci] ? MIN(chunks[ci], wl - off) : wl - off;
				enum pdu_ev ev;

				off += pdu_rx_feed(&rx, w + off, n, &ev);
				TAP_CHECK(ev != PDU_EV_ERROR);
				if (ev == PDU_EV_HEADER) {
					uint32_t o = le32_get(rx.hdr.h2c.datao);
					struct iovec v = {dst + align * 7 + o, rx.data_len};

					TAP_CHECK_EQ(pdu_rx_set_dst(&rx, &v, 1), 0);
					TAP_CHECK(!rx.dst_cold); /* set_dst starts every PDU warm */
					if (hdrs++ == 0)
						pdu_rx_set_dst_cold(&rx);
					TAP_CHECK_EQ(rx.dst_cold, hdrs == 1);
				}
				if (ev == PDU_EV_PDU)
					pdus++;
			}
			TAP_CHECK_EQ(pdus, 2);
			TAP_CHECK_MEM(dst + align * 7, src, 6000);
			TAP_CHECK_EQ(dst[align * 7 + 6000], 0xee);
			if (align)
				TAP_CHECK_EQ(dst[align * 7 - 1], 0xee);
		}
	}
	/* a discarded payload has no destination to be cold */
	{
		struct pdu_rx rx;
		enum pdu_ev ev;

		pdu_rx_init(&rx, PDU_ROLE_CTRL, &plain);
		pdu_rx_feed(&rx, w, wl, &ev);
		TAP_CHECK_EQ(ev, PDU_EV_HEADER);
		pdu_rx_discard(&rx);
		pdu_rx_set_dst_cold(&rx);
		TAP_CHECK(!rx.dst_cold);
	}
}

static void test_set_dst_misuse(void)
{
	struct pdu_rx rx;
	enum pdu_ev ev;
	uint8_t dst[5000];
	struct iovec small = {dst, 999}, many[PDU_RX_DST_MAX + 1];

	build_stream();
	pdu_rx_init(&rx, PDU_ROLE_CTRL, &params_dgst);
	struct iovec ok = {dst, 1000};
	TAP_CHECK_EQ(pdu_rx_set_dst(&rx, &ok, 1), -EINVAL); /* no header yet */
	TAP_CHECK_EQ(pdu_rx_feed(&rx, wire, wire_len, &ev), 76);
	TAP_CHECK_EQ(ev, PDU_EV_HEADER);
	TAP_CHECK_EQ(pdu_rx_set_dst(&rx, &ok, 1), -EINVAL); /* PDU has no data */
	TAP_CHECK_EQ(pdu_rx_feed(&rx, wire + 76, wire_len, &ev), 0);
	TAP_CHECK_EQ(ev, PDU_EV_PDU);
	TAP_CHECK_EQ(pdu_rx_feed(&rx, wire + 76, wire_len, &ev), 76);
	TAP_CHECK_EQ(ev, PDU_EV_HEADER);
	TAP_CHECK_EQ(pdu_rx_set_dst(&rx, &small, 1), -EINVAL);
	for (int i = 0; i < PDU_RX_DST_MAX + 1; i++)
		many[i] = ok;
	TAP_CHECK_EQ(pdu_rx_set_dst(&rx, many, PDU_RX_DST_MAX + 1), -EINVAL);
	/* without a destination the decoder waits instead of consuming payload */
	TAP_CHECK_EQ(pdu_rx_feed(&rx, wire + 152, wire_len, &ev), 0);
	TAP_CHECK_EQ(ev, PDU_EV_NONE);
	TAP_CHECK_EQ(pdu_rx_set_dst(&rx, many, PDU_RX_DST_MAX), 0);
}

/* pdu_rx_ddgst_verify_ahead: an in-capsule payload whole in the caller's buffer is checked
 * before it lands. Good digest: true, placed without a second CRC, cold copies allowed,
 * ddgst_ok. Bad digest, a byte short, or no data digest: false, nothing changes, and a bad
 * digest is still reported at the end. A digest fed later that differs from the one checked
 * fails the PDU. Padding (CPDA 3 -> PDO 16-byte units) is skipped. */
static void test_ddgst_verify_ahead(void)
{
	static uint8_t w[8192], dst[4096];
	static const struct pdu_params plain = {
		.maxh2cdata = 131072, .max_incapsule = 8192, .ic_done = true};
	struct wire_sqe sqe = {.opc = 0x01};
	uint8_t data[4096];
	size_t hl, wl;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 11 + 3);
	hl = pdu_build_capsule_cmd(w, &sqe, sizeof(data), &params_dgst);
	wl = hl + sizeof(data) + 4;
	TAP_CHECK(le32_get(w + 4) == wl); /* PLEN covers header, padding, data, digest */
	size_t pad = wl - 4 - sizeof(data);
	memcpy(w + pad, data, sizeof(data));
	pdu_ddgst_put(w + pad + sizeof(data), crc32c(data, sizeof(data)));

	for (int c = 0; c < 5; c++) {
		struct pdu_rx rx;
		enum pdu_ev ev;
		size_t hn, off;
		struct iovec v = {dst, sizeof(dst)};
		uint8_t wc[8192];
		bool want = c == 0 || c == 4;

		memcpy(wc, w, wl);
		if (c == 1)
			wc[pad + 100] ^= 1; /* payload corrupted */
		memset(dst, 0xee, sizeof(dst));
		pdu_rx_init(&rx, PDU_ROLE_CTRL, &params_dgst);
		hn = pdu_rx_feed(&rx, wc, wl, &ev);
		TAP_CHECK_EQ(ev, PDU_EV_HEADER);
		/* c == 2: the digest's last byte has not arrived yet; c == 3: not asked */
		if (c != 3)
			TAP_CHECK_EQ(pdu_rx_ddgst_verify_ahead(&rx, wc + hn, wl - hn - (c == 2)),
				     want);
		TAP_CHECK_EQ(rx.ddgst_verified, want);
		TAP_CHECK_EQ(pdu_rx_set_dst(&rx, &v, 1), 0);
		pdu_rx_set_dst_cold(&rx);
		TAP_CHECK_EQ(rx.dst_cold, want);
		if (c == 4)
			wc[wl - 1] ^= 0x80; /* the digest fed differs from the one checked */
		off = hn;
		while (off < wl) { /* fed in 1000-byte pieces */
			off += pdu_rx_feed(&rx, wc + off, MIN((size_t)1000, wl - off), &ev);
			TAP_CHECK(ev != PDU_EV_ERROR);
		}
		TAP_CHECK_EQ(ev, PDU_EV_PDU);
		TAP_CHECK_EQ(rx.ddgst_ok, c == 0 || c == 2 || c == 3);
		if (c != 1)
			TAP_CHECK_MEM(dst, data, sizeof(data));
	}
	/* no data digest negotiated: nothing to check ahead */
	{
		struct pdu_rx rx;
		enum pdu_ev ev;
		size_t hn;

		hl = pdu_build_capsule_cmd(w, &sqe, 512, &plain);
		memcpy(w + hl, data, 512);
		pdu_rx_init(&rx, PDU_ROLE_CTRL, &plain);
		hn = pdu_rx_feed(&rx, w, hl + 512, &ev);
		TAP_CHECK_EQ(ev, PDU_EV_HEADER);
		TAP_CHECK(!pdu_rx_ddgst_verify_ahead(&rx, w + hn, 512 + 4));
		/* and not before a header */
		pdu_rx_discard(&rx);
		TAP_CHECK(!pdu_rx_ddgst_verify_ahead(&rx, w + hn, 512 + 4));
	}
}

int main(void)
{
	TAP_RUN(test_stream_whole_and_bytewise);
	TAP_RUN(test_h2c_payload_placed);
	TAP_RUN(test_data_digest_bad);
	TAP_RUN(test_header_digest_bad);
	TAP_RUN(test_ch_error_sticky);
	TAP_RUN(test_direct_placement);
	TAP_RUN(test_set_dst_misuse);
	TAP_RUN(test_cold_destination);
	TAP_RUN(test_ddgst_verify_ahead);
	return tap_done();
}
