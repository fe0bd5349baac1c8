/* PDU validation, incremental decoding and building for NVMe/TCP.
 * Layer: proto (pure): no syscalls, no allocation, no globals. Fed bytes, it reports what it
 * decoded; the caller (src/net/stream.c) owns sockets and buffers.
 *
 * Receive side: struct pdu_rx is a resumable state machine (CH -> PSH(+HDGST) -> PAD -> DATA ->
 * DDGST -> DONE). Header bytes are gathered into rx->hdr (aligned, owned by the decoder). When a
 * header is complete it is validated against the negotiated parameters and PDU_EV_HEADER is
 * reported; for a PDU with data the caller then names the destination with pdu_rx_set_dst()
 * (the request's own buffer: payload bytes are copied there once, or read straight into it
 * via pdu_rx_data_iov()/pdu_rx_data_landed()), or asks to discard it with pdu_rx_discard().
 * The data digest is computed chunk by chunk as bytes land. */
#ifndef NVTCP_PROTO_PDU_H
#define NVTCP_PROTO_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wire.h"

/* Which end this decoder/validator serves: a controller receives H2C PDUs, a host C2H. */
enum pdu_role {
	PDU_ROLE_CTRL, /* we are the controller (target): accept ICReq, H2CTermReq, CapsuleCmd,
			  H2CData */
	PDU_ROLE_HOST, /* we are the host: accept ICResp, C2HTermReq, CapsuleResp, C2HData, R2T */
	PDU_ROLE_COUNT
};

/* Parameters negotiated by ICReq/ICResp, used to validate and build PDUs. */
struct pdu_params {
	bool hdgst;		/* header digests on */
	bool ddgst;		/* data digests on */
	uint8_t cpda;		/* controller PDU data alignment (H2C data), 0's based dwords */
	uint8_t hpda;		/* host PDU data alignment (C2H data), 0's based dwords */
	uint32_t maxh2cdata;	/* max DATAL of one H2CData PDU */
	uint32_t max_incapsule; /* max in-capsule data bytes accepted in a CapsuleCmd (ctrl role) */
	uint32_t max_c2h_data;	/* max DATAL of one C2HData the host accepts (host role; 0 = any) */
	bool ic_done;		/* ICReq/ICResp exchanged: before it only ICReq/ICResp is valid */
};

/* A fatal transport error: what goes into the TermReq. */
struct pdu_err {
	enum wire_fes fes;
	uint32_t fei; /* byte offset of the bad field for FES 01h/06h, else 0 */
};

/* ---- validation ------------------------------------------------------------------------- */

/* Check the 8-byte common header of a PDU received in `role` (type allowed for the direction
 * and phase, HLEN exact for the type, flags, PDO, PLEN bounds). Runs before the rest of the
 * header is read, since HLEN decides how much that is. Returns 0 or -EPROTO with *err set. */
int pdu_check_ch(const struct wire_ch *ch, enum pdu_role role, const struct pdu_params *p,
		 struct pdu_err *err);

/* Check a complete header (CH + PSH, digest not included) received in `role`: the specific
 * fields (PFV/HPDA/maxr2t of ICReq, DATAL against PLEN/MAXH2CDATA, PDO alignment for data,
 * digest flags against negotiated digests, ...). Returns 0 or -EPROTO with *err set.
 * Checks that need request state (TTAG, CCCID, DATAO continuity) belong to the caller. */
int pdu_check_header(const union wire_pdu *pdu, enum pdu_role role, const struct pdu_params *p,
		     struct pdu_err *err);

/* Header digest length for this PDU type under p (0 or 4); ICReq/ICResp/TermReq never have one. */
uint32_t pdu_hdgst_len(uint8_t pdu_type, const struct pdu_params *p);
/* Data length (DATAL) implied by a validated header: PLEN - PDO - DDGST for data PDUs; for a
 * TermReq the length of the offending-header copy after HLEN (the decoder hands it out as the
 * PDU's data); else 0. */
uint32_t pdu_data_len(const union wire_pdu *pdu);

/* ---- incremental decoder ---------------------------------------------------------------- */

enum pdu_rx_state {
	PDU_RX_CH,     /* gathering the 8-byte common header */
	PDU_RX_PSH,    /* gathering the rest of the header and its digest */
	PDU_RX_HEADER, /* header complete and valid; waiting for pdu_rx_set_dst/discard */
	PDU_RX_PAD,    /* skipping padding between header and data (PDO) */
	PDU_RX_DATA,   /* payload into the destination iovec */
	PDU_RX_DDGST,  /* gathering the 4-byte data digest */
	PDU_RX_DONE,   /* PDU complete; next feed starts a new PDU */
	PDU_RX_ERROR,  /* fatal error recorded in rx->err; feeding stops */
	PDU_RX_STATE_COUNT
};

enum pdu_ev {
	PDU_EV_NONE,   /* all given bytes consumed, need more */
	PDU_EV_HEADER, /* header complete and valid: rx->hdr is the header; set the dst */
	PDU_EV_PDU,    /* PDU complete (data placed, digest checked: see rx->ddgst_ok) */
	PDU_EV_ERROR,  /* fatal: rx->err says FES/FEI; send a TermReq and close */
	PDU_EV_COUNT
};

#define PDU_RX_DST_MAX 8 /* destination iovecs a PDU's payload may be scattered over */

struct pdu_rx {
	enum pdu_rx_state state;
	enum pdu_role role;
	struct pdu_params params; /* copy; update with pdu_rx_set_params() after ICReq/ICResp */
	union wire_pdu hdr;	  /* the current header (owned by the decoder) */
	uint32_t hdr_have;	  /* header bytes gathered (including HDGST) */
	uint32_t hdr_need;	  /* HLEN + HDGST once CH is known */
	uint32_t pad_left;	  /* pad bytes still to skip */
	uint32_t data_len;	  /* DATAL of this PDU */
	uint32_t data_done;	  /* payload bytes placed so far */
	struct iovec dst[PDU_RX_DST_MAX]; /* destination (borrowed from the caller) */
	int dst_cnt;
	int dst_idx;	    /* iovec being filled */
	size_t dst_off;	    /* offset into dst[dst_idx] */
	bool discard;	    /* payload is skipped, not stored (digest still computed) */
	bool dst_cold;	    /* pdu_rx_set_dst_cold took: copies into dst bypass the cache */
	uint32_t ddgst_crc; /* running CRC over the payload */
	/* pdu_rx_ddgst_verify_ahead matched the digest over the caller's buffered bytes and left
	 * ddgst_crc covering the whole payload: placement computes no second CRC */
	bool ddgst_verified;
	uint8_t ddgst[4]; /* received data digest */
	uint32_t ddgst_have;
	bool ddgst_ok; /* valid at PDU_EV_PDU: true if no data digest or it matched */
	struct pdu_err err;
	uint64_t pdus;	      /* PDUs completed (statistics) */
	uint64_t transitions; /* state changes since init (statistics) */
};

void pdu_rx_init(struct pdu_rx *rx, enum pdu_role role, const struct pdu_params *p);
void pdu_rx_set_params(struct pdu_rx *rx, const struct pdu_params *p);

/* Feed up to len bytes. Consumes bytes and stops at the first event: returns the number of
 * bytes consumed (possibly 0 with an event) and sets *ev. Never reads past len. After
 * PDU_EV_HEADER for a PDU with data, the caller must call pdu_rx_set_dst() or
 * pdu_rx_discard() before feeding again. After PDU_EV_ERROR every call returns 0/ERROR. */
size_t pdu_rx_feed(struct pdu_rx *rx, const uint8_t *buf, size_t len, enum pdu_ev *ev);

/* Name where the payload of the current PDU goes: iov (copied, at most PDU_RX_DST_MAX entries)
 * must cover rx->data_len bytes. The memory stays the caller's; the decoder writes into it until
 * PDU_EV_PDU. Returns 0 or -EINVAL (too small, too many entries, wrong state). */
int pdu_rx_set_dst(struct pdu_rx *rx, const struct iovec *iov, int iovcnt);
/* After pdu_rx_set_dst: nobody reads the destination soon (a namespace held in memory), so
 * payload copied in from the caller's buffers (the receive ring) goes there with
 * non-temporal stores: no read-for-ownership of cold lines and no eviction of hot ones.
 * Ignored with a data digest not verified ahead (the CRC reads the landed bytes back, so
 * they had better be cached) and for a discarded payload. Reset by the next pdu_rx_set_dst. */
void pdu_rx_set_dst_cold(struct pdu_rx *rx);
/* Right after PDU_EV_HEADER of a PDU with a data digest, before pdu_rx_set_dst: buf holds
 * the next len bytes the caller will feed (its receive ring). If they contain the whole
 * padding, payload and digest and the digest matches, returns true: the payload is known
 * good before it lands anywhere (so it may go where a bad one must never land, e.g. a
 * namespace), is placed without a second CRC, and pdu_rx_set_dst_cold applies. The digest
 * fed later must still be the one checked here. Otherwise returns false and changes
 * nothing (a mismatch is then reported as usual at PDU_EV_PDU). */
bool pdu_rx_ddgst_verify_ahead(struct pdu_rx *rx, const uint8_t *buf, size_t len);
/* Skip the payload of the current PDU (e.g. a command that already failed). */
void pdu_rx_discard(struct pdu_rx *rx);

/* Direct placement: in state PDU_RX_DATA (not discarding), fill out[] with the remaining
 * destination ranges (at most max entries); returns their count. The caller reads into them
 * (readv), then reports how many bytes landed with pdu_rx_data_landed(), which advances and
 * CRCs those bytes while they are hot. */
int pdu_rx_data_iov(const struct pdu_rx *rx, struct iovec *out, int max);
void pdu_rx_data_landed(struct pdu_rx *rx, size_t n);
/* Payload bytes still expected in state PDU_RX_DATA. */
static inline uint32_t pdu_rx_data_left(const struct pdu_rx *rx)
{
	return rx->data_len - rx->data_done;
}

/* ---- builders --------------------------------------------------------------------------- */
/* Each builder writes a complete header into buf (at least WIRE_PDO_MAX + 4 bytes for data
 * PDUs, sizeof(union wire_pdu) otherwise), including the header digest when p->hdgst and the
 * zeroed pad up to PDO for data PDUs, and returns the number of bytes to send before the data.
 * For data PDUs the caller sends the data next, then the data digest (pdu_ddgst_put) if
 * p->ddgst. PLEN accounts for all of it. */

size_t pdu_build_icreq(uint8_t *buf, uint8_t hpda, bool hdgst, bool ddgst, uint32_t maxr2t);
size_t pdu_build_icresp(uint8_t *buf, uint8_t cpda, bool hdgst, bool ddgst, uint32_t maxh2cdata);
/* TermReq: type WIRE_PDU_H2C_TERM_REQ or WIRE_PDU_C2H_TERM_REQ; copies up to 128 bytes of
 * the offending header (bad, bad_len) after the 24-byte header: buf needs PDU_TERM_REQ_MAX. */
#define PDU_TERM_REQ_MAX (sizeof(struct wire_term_req) + WIRE_TERM_HDR_MAX)
size_t pdu_build_term_req(uint8_t *buf, uint8_t type, const struct pdu_err *err, const uint8_t *bad,
			  size_t bad_len);
/* CapsuleCmd with incapsule_len bytes of in-capsule data to follow (0 for none). */
size_t pdu_build_capsule_cmd(uint8_t *buf, const struct wire_sqe *sqe, uint32_t incapsule_len,
			     const struct pdu_params *p);
size_t pdu_build_capsule_resp(uint8_t *buf, const struct wire_cqe *cqe, const struct pdu_params *p);
size_t pdu_build_h2c_data(uint8_t *buf, uint16_t cccid, uint16_t ttag, uint32_t datao,
			  uint32_t datal, bool last, const struct pdu_params *p);
size_t pdu_build_c2h_data(uint8_t *buf, uint16_t cccid, uint32_t datao, uint32_t datal, bool last,
			  bool success, const struct pdu_params *p);
size_t pdu_build_r2t(uint8_t *buf, uint16_t cccid, uint16_t ttag, uint32_t r2to, uint32_t r2tl,
		     const struct pdu_params *p);

/* Store a data digest (finalised CRC32C of the data) little-endian into out[4]. */
void pdu_ddgst_put(uint8_t *out, uint32_t digest);

/* Human-readable PDU type name ("CapsuleCmd", ...), or "unknown". */
const char *pdu_type_name(uint8_t type);

#endif
