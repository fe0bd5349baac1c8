/* libFuzzer target for the PDU decoder and validators (src/proto/pdu_rx.c, pdu.c).
 * Input: 4 parameter bytes (role, digests, IC phase, payload mode, CPDA/HPDA, MAXH2CDATA,
 * chunking seed), then the byte stream, fed in chunks of varying size. Headers are also given
 * raw to pdu_check_header; the digest is sometimes checked ahead over the buffered input
 * (pdu_rx_ddgst_verify_ahead) and copies sometimes go cold. Invariants of the decoder abort
 * on violation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "proto/crc32c.h"
#include "proto/pdu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fuzz_dst[65536];

static uint32_t fuzz_next(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

#define FUZZ_ASSERT(c)           \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pdu_params p = {0};
	struct pdu_rx rx;
	struct pdu_err err;
	union wire_pdu raw;

	if (size < 4)
		return 0;
	enum pdu_role role = data[0] & 1 ? PDU_ROLE_HOST : PDU_ROLE_CTRL;
	p.hdgst = data[0] & 2;
	p.ddgst = data[0] & 4;
	p.ic_done = !(data[0] & 8);
	unsigned mode = (data[0] >> 4) & 3; /* 0 copy, 1 discard, 2 direct, 3 mixed */
	p.max_c2h_data = data[0] & 0x40 ? 0 : 32768;
	p.cpda = data[1] & 31;
	p.hpda = data[2] & 31;
	p.maxh2cdata = 4096u << (data[1] >> 5);
	p.max_incapsule = 8192u << (data[2] >> 6);
	uint32_t seed = data[3] | 0x9e3700u;
	data += 4;
	size -= 4;

	/* the validators alone, on the raw bytes */
	memset(&raw, 0, sizeof(raw));
	memcpy(raw.raw, data, size < sizeof(raw) ? size : sizeof(raw));
	if (pdu_check_header(&raw, role, &p, &err) == 0) {
		FUZZ_ASSERT(pdu_check_ch(&raw.ch, role, &p, &err) == 0);
		FUZZ_ASSERT(pdu_data_len(&raw) <= le32_get(raw.ch.plen));
	}
	(void)pdu_type_name(raw.ch.pdu_type);

	pdu_rx_init(&rx, role, &p);
	size_t off = 0, pdu_start = 0;
	for (int guard = 0; guard < 100000; guard++) {
		uint32_t r = fuzz_next(&seed);
		size_t chunk = r & 0x100 ? (r & 7) + 1 : (r & 0x3ff) + 1;
		size_t n = size - off < chunk ? size - off : chunk;
		enum pdu_ev ev;

		if (rx.state == PDU_RX_DATA && !rx.discard &&
		    (mode == 2 || (mode == 3 && (r & 1)))) {
			/* direct placement: "readv" straight into the destination */
			struct iovec out[PDU_RX_DST_MAX];
			int cnt = pdu_rx_data_iov(&rx, out, PDU_RX_DST_MAX);
			size_t landed = 0;
			for (int i = 0; i < cnt && off < size; i++) {
				size_t k =
					out[i].iov_len < size - off ? out[i].iov_len : size - off;
				memcpy(out[i].iov_base, data + off, k);
				off += k;
				landed += k;
			}
			FUZZ_ASSERT(landed <= pdu_rx_data_left(&rx));
			pdu_rx_data_landed(&rx, landed);
			n = size - off < chunk ? size - off : chunk;
		}
		size_t used = pdu_rx_feed(&rx, data + off, n, &ev);
		FUZZ_ASSERT(used <= n);
		off += used;
		if (ev == PDU_EV_ERROR) {
			FUZZ_ASSERT(rx.err.fes > WIRE_FES_NONE && rx.err.fes < WIRE_FES_COUNT);
			FUZZ_ASSERT(pdu_rx_feed(&rx, data, size, &ev) == 0 && ev == PDU_EV_ERROR);
			break;
		}
		if (ev == PDU_EV_HEADER) {
			FUZZ_ASSERT(pdu_check_header(&rx.hdr, role, &p, &err) == 0);
			if (rx.data_len && (r & 4)) {
				/* checking the digest over buffered bytes before placement: only
				 * ever true for a whole payload with a matching digest */
				size_t left = size - off;
				bool ok = pdu_rx_ddgst_verify_ahead(&rx, data + off, left);
				size_t pad = rx.pad_left;

				FUZZ_ASSERT(ok == rx.ddgst_verified);
				if (ok) {
					FUZZ_ASSERT((rx.hdr.ch.flags & WIRE_FLAG_DDGSTF) &&
						    left >= pad + rx.data_len + 4);
					FUZZ_ASSERT(crc32c(data + off + pad, rx.data_len) ==
						    le32_get(data + off + pad + rx.data_len));
				}
			}
			if (rx.data_len) {
				bool drop = mode == 1 || (mode == 3 && (r & 2)) ||
					    rx.data_len > sizeof(fuzz_dst);
				if (drop) {
					pdu_rx_discard(&rx);
				} else {
					uint32_t a = rx.data_len / 3;
					struct iovec iov[3] = {
						{fuzz_dst, a},
						{fuzz_dst + a, 0},
						{fuzz_dst + a, sizeof(fuzz_dst) - a}};
					FUZZ_ASSERT(pdu_rx_set_dst(&rx, iov, 3) == 0);
					if (r & 8)
						pdu_rx_set_dst_cold(&rx);
				}
				FUZZ_ASSERT(rx.state == PDU_RX_PAD);
			}
			continue;
		}
		if (ev == PDU_EV_PDU) {
			FUZZ_ASSERT(rx.data_done == rx.data_len);
			/* Oracle: the PDU spans [pdu_start, off); its payload sits at PDO (after
			 * HLEN for a TermReq) and must have landed unchanged; the digest verdict
			 * must match a CRC computed here over the input bytes. */
			uint32_t at = rx.hdr.ch.pdo ? rx.hdr.ch.pdo : rx.hdr.ch.hlen;
			bool dd = rx.hdr.ch.flags & WIRE_FLAG_DDGSTF;
			FUZZ_ASSERT(off - pdu_start == le32_get(rx.hdr.ch.plen));
			if (rx.data_len) {
				const uint8_t *payload = data + pdu_start + at;
				if (!rx.discard)
					FUZZ_ASSERT(memcmp(fuzz_dst, payload, rx.data_len) == 0);
				if (dd)
					FUZZ_ASSERT(rx.ddgst_ok ==
						    (crc32c(payload, rx.data_len) ==
						     le32_get(payload + rx.data_len)));
			}
			if (!dd)
				FUZZ_ASSERT(rx.ddgst_ok);
			pdu_start = off;
			continue;
		}
		if (off >= size)
			break;
	}
	return 0;
}
