/* Incremental NVMe/TCP PDU decoder: a resumable state machine fed arbitrary byte splits.
 * Layer: proto (pure). One function per state, driven by pdu_rx_feed() until the state stops
 * changing or an event is due; every transition goes through pdu_rx_set_state(), which checks
 * it against the table below. The decoder never reads past the bytes it is given; payload goes
 * to the caller's iovecs (or is skipped) and is CRC'd as it lands. */
#include "pdu.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "../common/copy.h"
#include "../common/le.h"
#include "crc32c.h"

#define BIT(s) (1u << (s))

/* FROM -> allowed TO states:
 *
 *   DONE -> CH -> PSH -> HEADER -+-> (no data) ---------------------------> DONE
 *            |      |            +-> PAD -> DATA -+-> (DDGSTF) DDGST -----> DONE
 *            +------+--> ERROR (sticky)           +-> (no DDGSTF) --------> DONE
 *
 *   CH     -> PSH     [pdu_rx_do_ch: 8 bytes in, pdu_check_ch passed]
 *   CH     -> ERROR   [pdu_rx_do_ch: pdu_check_ch failed]
 *   PSH    -> HEADER  [pdu_rx_do_psh: HLEN+HDGST in, digest and pdu_check_header passed]
 *   PSH    -> ERROR   [pdu_rx_do_psh: HDGST mismatch (FES 03h) or a field check failed]
 *   HEADER -> PAD     [pdu_rx_set_dst / pdu_rx_discard]
 *   HEADER -> DONE    [pdu_rx_do_header: PDU without data]
 *   PAD    -> DATA    [pdu_rx_do_pad: PDO reached]
 *   DATA   -> DDGST   [pdu_rx_do_data: payload complete, DDGSTF]
 *   DATA   -> DONE    [pdu_rx_do_data: payload complete, no data digest]
 *   DDGST  -> DONE    [pdu_rx_do_ddgst: 4 digest bytes in, ddgst_ok set]
 *   DONE   -> CH      [pdu_rx_feed: next PDU starts (pdu_rx_start)] */
static const uint32_t pdu_rx_next[PDU_RX_STATE_COUNT] = {
	[PDU_RX_CH] = BIT(PDU_RX_PSH) | BIT(PDU_RX_ERROR),
	[PDU_RX_PSH] = BIT(PDU_RX_HEADER) | BIT(PDU_RX_ERROR),
	[PDU_RX_HEADER] = BIT(PDU_RX_PAD) | BIT(PDU_RX_DONE),
	[PDU_RX_PAD] = BIT(PDU_RX_DATA),
	[PDU_RX_DATA] = BIT(PDU_RX_DDGST) | BIT(PDU_RX_DONE),
	[PDU_RX_DDGST] = BIT(PDU_RX_DONE),
	[PDU_RX_DONE] = BIT(PDU_RX_CH),
	[PDU_RX_ERROR] = 0,
};

static void pdu_rx_set_state(struct pdu_rx *rx, enum pdu_rx_state to)
{
	assert(pdu_rx_next[rx->state] & BIT(to));
	rx->state = to;
	rx->transitions++;
}

static size_t pdu_rx_fail(struct pdu_rx *rx, enum pdu_ev *ev)
{
	pdu_rx_set_state(rx, PDU_RX_ERROR);
	*ev = PDU_EV_ERROR;
	return 0;
}

static bool pdu_rx_has_ddgst(const struct pdu_rx *rx)
{
	/* pdu_check_ch made DDGSTF equal "data digest negotiated and data present". */
	return (rx->hdr.ch.flags & WIRE_FLAG_DDGSTF) != 0;
}

/* Entry action of DONE: the PDU is complete. */
static void pdu_rx_complete(struct pdu_rx *rx, enum pdu_ev *ev)
{
	pdu_rx_set_state(rx, PDU_RX_DONE);
	rx->pdus++;
	*ev = PDU_EV_PDU;
}

/* Entry action of CH: forget the previous PDU. */
static void pdu_rx_start(struct pdu_rx *rx)
{
	pdu_rx_set_state(rx, PDU_RX_CH);
	rx->hdr_have = 0;
	rx->hdr_need = sizeof(struct wire_ch);
	rx->pad_left = 0;
	rx->data_len = 0;
	rx->data_done = 0;
	rx->dst_cnt = 0;
	rx->dst_idx = 0;
	rx->dst_off = 0;
	rx->discard = false;
	rx->ddgst_crc = CRC32C_INIT;
	rx->ddgst_verified = false;
	rx->ddgst_have = 0;
	rx->ddgst_ok = false;
}

void pdu_rx_init(struct pdu_rx *rx, enum pdu_role role, const struct pdu_params *p)
{
	memset(rx, 0, sizeof(*rx));
	rx->role = role;
	rx->params = *p;
	rx->state = PDU_RX_DONE;
	pdu_rx_start(rx);
	rx->transitions = 0;
}

void pdu_rx_set_params(struct pdu_rx *rx, const struct pdu_params *p)
{
	rx->params = *p;
}

static size_t pdu_rx_gather(struct pdu_rx *rx, const uint8_t *buf, size_t len)
{
	size_t n = MIN(len, (size_t)(rx->hdr_need - rx->hdr_have));

	memcpy(rx->hdr.raw + rx->hdr_have, buf, n);
	rx->hdr_have += (uint32_t)n;
	return n;
}

static size_t pdu_rx_do_ch(struct pdu_rx *rx, const uint8_t *buf, size_t len, enum pdu_ev *ev)
{
	size_t n = pdu_rx_gather(rx, buf, len);

	if (rx->hdr_have < sizeof(struct wire_ch))
		return n;
	if (pdu_check_ch(&rx->hdr.ch, rx->role, &rx->params, &rx->err)) {
		pdu_rx_fail(rx, ev);
		return n;
	}
	rx->hdr_need = rx->hdr.ch.hlen + pdu_hdgst_len(rx->hdr.ch.pdu_type, &rx->params);
	pdu_rx_set_state(rx, PDU_RX_PSH);
	return n;
}

static size_t pdu_rx_do_psh(struct pdu_rx *rx, const uint8_t *buf, size_t len, enum pdu_ev *ev)
{
	size_t n = pdu_rx_gather(rx, buf, len);
	uint32_t hlen = rx->hdr.ch.hlen;

	if (rx->hdr_have < rx->hdr_need)
		return n;
	/* Digest before fields, as the Linux target does: a corrupted header is a digest error,
	 * not whatever field the corruption happened to hit. */
	if (rx->hdr_need > hlen && le32_get(rx->hdr.raw + hlen) != crc32c(rx->hdr.raw, hlen)) {
		rx->err.fes = WIRE_FES_HDGST;
		rx->err.fei = 0;
		pdu_rx_fail(rx, ev);
		return n;
	}
	if (pdu_check_header(&rx->hdr, rx->role, &rx->params, &rx->err)) {
		pdu_rx_fail(rx, ev);
		return n;
	}
	rx->data_len = pdu_data_len(&rx->hdr);
	rx->pad_left = rx->hdr.ch.pdo ? rx->hdr.ch.pdo - rx->hdr_need : 0;
	pdu_rx_set_state(rx, PDU_RX_HEADER);
	*ev = PDU_EV_HEADER;
	return n;
}

/* Waiting for pdu_rx_set_dst/discard; a PDU without data completes here. */
static size_t pdu_rx_do_header(struct pdu_rx *rx, enum pdu_ev *ev)
{
	if (rx->data_len == 0) {
		rx->ddgst_ok = true;
		pdu_rx_complete(rx, ev);
	}
	return 0;
}

static size_t pdu_rx_do_pad(struct pdu_rx *rx, size_t len)
{
	size_t n = MIN(len, (size_t)rx->pad_left);

	rx->pad_left -= (uint32_t)n;
	if (rx->pad_left == 0)
		pdu_rx_set_state(rx, PDU_RX_DATA);
	return n;
}

/* Advance the destination cursor by n payload bytes; src (may be NULL) is copied in first.
 * The CRC runs over what landed, piece by piece, while it is in cache. */
static void pdu_rx_place(struct pdu_rx *rx, const uint8_t *src, size_t n)
{
	bool crc = pdu_rx_has_ddgst(rx) && !rx->ddgst_verified;

	rx->data_done += (uint32_t)n;
	if (rx->discard) {
		if (crc && src)
			rx->ddgst_crc = crc32c_update(rx->ddgst_crc, src, n);
		return;
	}
	while (n > 0) {
		struct iovec *v = &rx->dst[rx->dst_idx];
		size_t k = MIN(n, v->iov_len - rx->dst_off);
		uint8_t *d = (uint8_t *)v->iov_base + rx->dst_off;

		if (src) {
			if (rx->dst_cold)
				copy_cold(d, src, k);
			else
				memcpy(d, src, k);
			src += k;
		}
		if (crc)
			rx->ddgst_crc = crc32c_update(rx->ddgst_crc, d, k);
		rx->dst_off += k;
		n -= k;
		if (rx->dst_off == v->iov_len) {
			rx->dst_idx++;
			rx->dst_off = 0;
		}
	}
}

static size_t pdu_rx_do_data(struct pdu_rx *rx, const uint8_t *buf, size_t len, enum pdu_ev *ev)
{
	size_t n = MIN(len, (size_t)pdu_rx_data_left(rx));

	if (n)
		pdu_rx_place(rx, buf, n);
	if (pdu_rx_data_left(rx) > 0)
		return n;
	if (pdu_rx_has_ddgst(rx)) {
		pdu_rx_set_state(rx, PDU_RX_DDGST);
	} else {
		rx->ddgst_ok = true;
		pdu_rx_complete(rx, ev);
	}
	return n;
}

static size_t pdu_rx_do_ddgst(struct pdu_rx *rx, const uint8_t *buf, size_t len, enum pdu_ev *ev)
{
	size_t n = MIN(len, (size_t)(WIRE_DIGEST_LEN - rx->ddgst_have));

	memcpy(rx->ddgst + rx->ddgst_have, buf, n);
	rx->ddgst_have += (uint32_t)n;
	if (rx->ddgst_have == WIRE_DIGEST_LEN) {
		/* A mismatch is not fatal here: the owner decides (SPDK completes the command
		 * with a transient transport error and keeps the connection). */
		rx->ddgst_ok = le32_get(rx->ddgst) == crc32c_final(rx->ddgst_crc);
		pdu_rx_complete(rx, ev);
	}
	return n;
}

size_t pdu_rx_feed(struct pdu_rx *rx, const uint8_t *buf, size_t len, enum pdu_ev *ev)
{
	size_t used = 0;

	*ev = PDU_EV_NONE;
	while (*ev == PDU_EV_NONE) {
		enum pdu_rx_state before = rx->state;
		const uint8_t *p = buf + used;
		size_t left = len - used, n = 0;

		switch (rx->state) {
		case PDU_RX_DONE:
			pdu_rx_start(rx);
			break;
		case PDU_RX_CH:
			n = pdu_rx_do_ch(rx, p, left, ev);
			break;
		case PDU_RX_PSH:
			n = pdu_rx_do_psh(rx, p, left, ev);
			break;
		case PDU_RX_HEADER:
			n = pdu_rx_do_header(rx, ev);
			break;
		case PDU_RX_PAD:
			n = pdu_rx_do_pad(rx, left);
			break;
		case PDU_RX_DATA:
			n = pdu_rx_do_data(rx, p, left, ev);
			break;
		case PDU_RX_DDGST:
			n = pdu_rx_do_ddgst(rx, p, left, ev);
			break;
		case PDU_RX_ERROR:
		default:
			*ev = PDU_EV_ERROR;
			break;
		}
		used += n;
		if (n == 0 && rx->state == before)
			break;
	}
	return used;
}

int pdu_rx_set_dst(struct pdu_rx *rx, const struct iovec *iov, int iovcnt)
{
	size_t total = 0;

	if (rx->state != PDU_RX_HEADER || rx->data_len == 0 || iovcnt <= 0 ||
	    iovcnt > PDU_RX_DST_MAX)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total < rx->data_len)
		return -EINVAL;
	memcpy(rx->dst, iov, sizeof(*iov) * (size_t)iovcnt);
	rx->dst_cnt = iovcnt;
	rx->dst_idx = 0;
	rx->dst_off = 0;
	rx->discard = false;
	rx->dst_cold = false;
	/* Skip zero-length entries up front so dst[dst_idx] always has room. */
	while (rx->dst[rx->dst_idx].iov_len == 0)
		rx->dst_idx++;
	pdu_rx_set_state(rx, PDU_RX_PAD);
	return 0;
}

bool pdu_rx_ddgst_verify_ahead(struct pdu_rx *rx, const uint8_t *buf, size_t len)
{
	size_t pad = rx->pad_left;
	uint32_t crc;

	if (rx->state != PDU_RX_HEADER || rx->data_len == 0 || !pdu_rx_has_ddgst(rx) ||
	    len < pad + rx->data_len + WIRE_DIGEST_LEN)
		return false;
	crc = crc32c_update(CRC32C_INIT, buf + pad, rx->data_len);
	if (le32_get(buf + pad + rx->data_len) != crc32c_final(crc))
		return false;
	/* the running CRC is complete: pdu_rx_do_ddgst checks the digest fed later against it */
	rx->ddgst_crc = crc;
	rx->ddgst_verified = true;
	return true;
}

void pdu_rx_discard(struct pdu_rx *rx)
{
	if (rx->state != PDU_RX_HEADER || rx->data_len == 0)
		return;
	rx->discard = true;
	rx->dst_cnt = 0;
	pdu_rx_set_state(rx, PDU_RX_PAD);
}

int pdu_rx_data_iov(const struct pdu_rx *rx, struct iovec *out, int max)
{
	size_t left = pdu_rx_data_left(rx);
	size_t off = rx->dst_off;
	int cnt = 0;

	if (rx->state != PDU_RX_DATA || rx->discard)
		return 0;
	for (int i = rx->dst_idx; i < rx->dst_cnt && left > 0 && cnt < max; i++) {
		size_t k = MIN(left, rx->dst[i].iov_len - off);

		if (k) {
			out[cnt].iov_base = (uint8_t *)rx->dst[i].iov_base + off;
			out[cnt].iov_len = k;
			cnt++;
		}
		left -= k;
		off = 0;
	}
	return cnt;
}

void pdu_rx_data_landed(struct pdu_rx *rx, size_t n)
{
	assert(rx->state == PDU_RX_DATA && !rx->discard && n <= pdu_rx_data_left(rx));
	/* The next pdu_rx_feed (even with 0 bytes) moves on to the digest or completes. */
	pdu_rx_place(rx, NULL, n);
}

void pdu_rx_set_dst_cold(struct pdu_rx *rx)
{
	/* with a data digest the CRC reads the landed bytes back: they stay cached (unless it
	 * was checked ahead, in the caller's buffer) */
	if (!rx->discard && rx->dst_cnt > 0 && (!pdu_rx_has_ddgst(rx) || rx->ddgst_verified))
		rx->dst_cold = true;
}
