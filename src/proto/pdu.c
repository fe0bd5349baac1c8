/* NVMe/TCP PDU validation (common header, then the whole header) and PDU builders.
 * Layer: proto (pure): no syscalls, no allocation, no globals. Every rule below follows
 * docs nvme-tcp-wire.md; where the spec leaves room, the comment next to the check says whose
 * behaviour (Linux drivers/nvme/{host,target}/tcp.c, SPDK lib/nvmf/tcp.c) we follow.
 * FEI is always the byte offset of the offending field, computed with offsetof. */
#include "pdu.h"

#include <errno.h>
#include <string.h>

#include "../common/le.h"
#include "crc32c.h"

/* Exact HLEN of each PDU type; 0 marks an unassigned type. */
static const uint8_t pdu_hlen_of[WIRE_PDU_TYPE_COUNT] = {
	[WIRE_PDU_ICREQ] = sizeof(struct wire_icreq),
	[WIRE_PDU_ICRESP] = sizeof(struct wire_icresp),
	[WIRE_PDU_H2C_TERM_REQ] = sizeof(struct wire_term_req),
	[WIRE_PDU_C2H_TERM_REQ] = sizeof(struct wire_term_req),
	[WIRE_PDU_CAPSULE_CMD] = sizeof(struct wire_capsule_cmd),
	[WIRE_PDU_CAPSULE_RESP] = sizeof(struct wire_capsule_resp),
	[WIRE_PDU_H2C_DATA] = sizeof(struct wire_h2c_data),
	[WIRE_PDU_C2H_DATA] = sizeof(struct wire_c2h_data),
	[WIRE_PDU_R2T] = sizeof(struct wire_r2t),
};

static const char *const pdu_names[WIRE_PDU_TYPE_COUNT] = {
	[WIRE_PDU_ICREQ] = "ICReq",
	[WIRE_PDU_ICRESP] = "ICResp",
	[WIRE_PDU_H2C_TERM_REQ] = "H2CTermReq",
	[WIRE_PDU_C2H_TERM_REQ] = "C2HTermReq",
	[WIRE_PDU_CAPSULE_CMD] = "CapsuleCmd",
	[WIRE_PDU_CAPSULE_RESP] = "CapsuleResp",
	[WIRE_PDU_H2C_DATA] = "H2CData",
	[WIRE_PDU_C2H_DATA] = "C2HData",
	[WIRE_PDU_R2T] = "R2T",
};

const char *pdu_type_name(uint8_t type)
{
	if (type < WIRE_PDU_TYPE_COUNT && pdu_names[type])
		return pdu_names[type];
	return "unknown";
}

static bool pdu_type_known(uint8_t type)
{
	return type < WIRE_PDU_TYPE_COUNT && pdu_hlen_of[type] != 0;
}

/* Types that carry a header digest when it was negotiated. */
static bool pdu_type_has_hdgst(uint8_t type)
{
	switch (type) {
	case WIRE_PDU_CAPSULE_CMD:
	case WIRE_PDU_CAPSULE_RESP:
	case WIRE_PDU_H2C_DATA:
	case WIRE_PDU_C2H_DATA:
	case WIRE_PDU_R2T:
		return true;
	default:
		return false;
	}
}

/* Types whose payload sits at PDO and is covered by the data digest. */
static bool pdu_type_has_data(uint8_t type)
{
	return type == WIRE_PDU_CAPSULE_CMD || type == WIRE_PDU_H2C_DATA ||
	       type == WIRE_PDU_C2H_DATA;
}

static bool pdu_type_is_term(uint8_t type)
{
	return type == WIRE_PDU_H2C_TERM_REQ || type == WIRE_PDU_C2H_TERM_REQ;
}

static bool pdu_type_allowed(uint8_t type, enum pdu_role role)
{
	static const bool ctrl_rx[WIRE_PDU_TYPE_COUNT] = {
		[WIRE_PDU_ICREQ] = true,
		[WIRE_PDU_H2C_TERM_REQ] = true,
		[WIRE_PDU_CAPSULE_CMD] = true,
		[WIRE_PDU_H2C_DATA] = true,
	};
	static const bool host_rx[WIRE_PDU_TYPE_COUNT] = {
		[WIRE_PDU_ICRESP] = true,	[WIRE_PDU_C2H_TERM_REQ] = true,
		[WIRE_PDU_CAPSULE_RESP] = true, [WIRE_PDU_C2H_DATA] = true,
		[WIRE_PDU_R2T] = true,
	};
	return role == PDU_ROLE_CTRL ? ctrl_rx[type] : host_rx[type];
}

uint32_t pdu_hdgst_len(uint8_t pdu_type, const struct pdu_params *p)
{
	return p->hdgst && pdu_type_has_hdgst(pdu_type) ? WIRE_DIGEST_LEN : 0;
}

/* Data alignment in bytes for data travelling to the receiver of `role`. */
static uint32_t pdu_data_align(enum pdu_role role, const struct pdu_params *p)
{
	/* A controller receives host-to-controller data (CPDA); a host receives C2H data (HPDA). */
	return ((uint32_t)(role == PDU_ROLE_CTRL ? p->cpda : p->hpda) + 1) * 4;
}

uint32_t pdu_data_len(const union wire_pdu *pdu)
{
	uint8_t type = pdu->ch.pdu_type;
	uint32_t plen = le32_get(pdu->ch.plen);

	/* TermReq: the offending header copy after HLEN is handed out as the PDU's data. */
	if (pdu_type_is_term(type))
		return plen > pdu->ch.hlen ? plen - pdu->ch.hlen : 0;
	if (!pdu_type_has_data(type) || pdu->ch.pdo == 0)
		return 0;
	uint32_t dd = pdu->ch.flags & WIRE_FLAG_DDGSTF ? WIRE_DIGEST_LEN : 0;
	if (plen < (uint32_t)pdu->ch.pdo + dd)
		return 0;
	return plen - pdu->ch.pdo - dd;
}

static int pdu_fail(struct pdu_err *err, enum wire_fes fes, uint32_t fei)
{
	err->fes = fes;
	err->fei = fei;
	return -EPROTO;
}

#define CH_FEI(field) ((uint32_t)offsetof(struct wire_ch, field))

int pdu_check_ch(const struct wire_ch *ch, enum pdu_role role, const struct pdu_params *p,
		 struct pdu_err *err)
{
	uint8_t type = ch->pdu_type;
	uint32_t plen = le32_get(ch->plen);

	if (!pdu_type_known(type))
		return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(pdu_type));
	/* A PDU meant for the other direction, or not valid in this phase, is a sequence error
	 * (SPDK: FES 02h for anything but ICReq/ICResp before IC and for a second IC PDU).
	 * TermReq is accepted in both phases, unlike SPDK: a peer rejecting our ICReq sends
	 * one before any ICResp, and reading it tells the user why. */
	if (!pdu_type_allowed(type, role))
		return pdu_fail(err, WIRE_FES_PDU_SEQUENCE, 0);
	if (!pdu_type_is_term(type)) {
		bool is_ic = type == WIRE_PDU_ICREQ || type == WIRE_PDU_ICRESP;
		if (is_ic == p->ic_done)
			return pdu_fail(err, WIRE_FES_PDU_SEQUENCE, 0);
	}
	if (ch->hlen != pdu_hlen_of[type])
		return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(hlen));

	uint32_t hd = pdu_hdgst_len(type, p);
	uint32_t hdr_len = ch->hlen + hd;
	bool has_data = plen > hdr_len;

	/* Digest flags must match what was negotiated, both ways (SPDK and Linux size the PDU
	 * from the negotiated digests; a flag that disagrees would shift every later field).
	 * DDGSTF goes with data only: Linux and SPDK hosts never set it on a PDU without data.
	 * Other flag bits are ignored where they mean nothing (reserved: be liberal). */
	bool want_hdgstf = hd != 0;
	bool want_ddgstf = p->ddgst && pdu_type_has_data(type) && has_data;
	if (!!(ch->flags & WIRE_FLAG_HDGSTF) != want_hdgstf ||
	    !!(ch->flags & WIRE_FLAG_DDGSTF) != want_ddgstf)
		return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(flags));
	uint32_t dd = want_ddgstf ? WIRE_DIGEST_LEN : 0;

	/* PDO: 0 without data; with data at or after the header digest, aligned to the
	 * receiver's PDA (a multiple of it, as SPDK checks: extra padding is legal) and <= 128. */
	if (!has_data || !pdu_type_has_data(type)) {
		if (ch->pdo != 0)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(pdo));
	} else {
		if (ch->pdo < hdr_len || ch->pdo % pdu_data_align(role, p) != 0 ||
		    ch->pdo > WIRE_PDO_MAX || ch->pdo > plen)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(pdo));
	}

	switch (type) {
	case WIRE_PDU_ICREQ:
	case WIRE_PDU_ICRESP:
		if (plen != sizeof(struct wire_icreq))
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(plen));
		break;
	case WIRE_PDU_H2C_TERM_REQ:
	case WIRE_PDU_C2H_TERM_REQ:
		if (plen < sizeof(struct wire_term_req) ||
		    plen > sizeof(struct wire_term_req) + WIRE_TERM_HDR_MAX)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(plen));
		break;
	case WIRE_PDU_CAPSULE_RESP:
	case WIRE_PDU_R2T:
		if (plen != hdr_len)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(plen));
		break;
	case WIRE_PDU_CAPSULE_CMD:
	case WIRE_PDU_H2C_DATA:
	case WIRE_PDU_C2H_DATA:
		if (plen < hdr_len)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(plen));
		/* Data needs at least one byte between PDO and the digest. */
		if (has_data && plen <= (uint64_t)ch->pdo + dd)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(plen));
		/* The caller sets max_incapsule per queue: >= 8 KiB on the admin queue, where
		 * Connect data travels in-capsule whatever IOCCSZ says. */
		if (type == WIRE_PDU_CAPSULE_CMD && has_data &&
		    plen - ch->pdo - dd > p->max_incapsule)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(plen));
		break;
	default:
		break;
	}
	return 0;
}

/* The type-specific part of the header, once CH passed pdu_check_ch. */
static int pdu_check_psh(const union wire_pdu *pdu, enum pdu_role role, const struct pdu_params *p,
			 struct pdu_err *err)
{
	uint32_t datal;

	switch (pdu->ch.pdu_type) {
	case WIRE_PDU_ICREQ:
		/* Linux target and SPDK both refuse PFV != 0; the spec calls it an
		 * unsupported parameter. */
		if (le16_get(pdu->icreq.pfv) != 0)
			return pdu_fail(err, WIRE_FES_UNSUPPORTED_PARAM,
					offsetof(struct wire_icreq, pfv));
		/* HPDA is 0..31; any value in range is honoured (Linux rejects != 0, we pad). */
		if (pdu->icreq.hpda > 31)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD,
					offsetof(struct wire_icreq, hpda));
		break;
	case WIRE_PDU_ICRESP:
		if (le16_get(pdu->icresp.pfv) != 0)
			return pdu_fail(err, WIRE_FES_UNSUPPORTED_PARAM,
					offsetof(struct wire_icresp, pfv));
		if (pdu->icresp.cpda > 31)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD,
					offsetof(struct wire_icresp, cpda));
		/* Linux hosts require MAXH2CDATA >= 4096 and a multiple of 4. */
		datal = le32_get(pdu->icresp.maxh2cdata);
		if (datal < WIRE_MAXH2CDATA_MIN || datal % 4 != 0)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD,
					offsetof(struct wire_icresp, maxh2cdata));
		break;
	case WIRE_PDU_H2C_DATA:
		datal = le32_get(pdu->h2c.datal);
		if (datal == 0 || datal != pdu_data_len(pdu))
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD,
					offsetof(struct wire_h2c_data, datal));
		/* more than the ICResp allowed: Data Transfer Limit Exceeded (FEI reserved) */
		if (datal > p->maxh2cdata)
			return pdu_fail(err, WIRE_FES_R2T_LIMIT, 0);
		break;
	case WIRE_PDU_C2H_DATA:
		/* A host treats SUCCESS without LAST_PDU as an error (Linux host, SPDK). */
		if ((pdu->ch.flags & WIRE_FLAG_SUCCESS) && !(pdu->ch.flags & WIRE_FLAG_LAST_PDU))
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD, CH_FEI(flags));
		datal = le32_get(pdu->c2h.datal);
		if (datal == 0 || datal != pdu_data_len(pdu) ||
		    (p->max_c2h_data != 0 && datal > p->max_c2h_data))
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD,
					offsetof(struct wire_c2h_data, datal));
		break;
	case WIRE_PDU_R2T:
		/* Linux host: an R2T of length 0 is invalid. Range vs. the command: caller. */
		if (le32_get(pdu->r2t.r2tl) == 0)
			return pdu_fail(err, WIRE_FES_INVALID_HEADER_FIELD,
					offsetof(struct wire_r2t, r2tl));
		break;
	default:
		/* CapsuleCmd: the SQE is the command layer's; TermReq: FES/FEI are informational.
		 */
		break;
	}
	(void)role;
	return 0;
}

int pdu_check_header(const union wire_pdu *pdu, enum pdu_role role, const struct pdu_params *p,
		     struct pdu_err *err)
{
	int ret = pdu_check_ch(&pdu->ch, role, p, err);

	if (ret)
		return ret;
	return pdu_check_psh(pdu, role, p, err);
}

/* ---- builders --------------------------------------------------------------------------- */

void pdu_ddgst_put(uint8_t *out, uint32_t digest)
{
	le32_put(out, digest);
}

static void pdu_ch_put(uint8_t *buf, uint8_t type, uint8_t flags, uint8_t pdo, uint32_t plen)
{
	buf[0] = type;
	buf[1] = flags;
	buf[2] = pdu_hlen_of[type];
	buf[3] = pdo;
	le32_put(buf + 4, plen);
}

/* Finish a header built in buf: header digest when negotiated for the type, zero pad up to
 * PDO. Returns the bytes to send before the data. */
static size_t pdu_hdr_finish(uint8_t *buf, const struct pdu_params *p)
{
	uint8_t type = buf[0];
	size_t len = pdu_hlen_of[type];

	if (pdu_hdgst_len(type, p)) {
		le32_put(buf + len, crc32c(buf, len));
		len += WIRE_DIGEST_LEN;
	}
	if (buf[3] > len) {
		memset(buf + len, 0, buf[3] - len);
		len = buf[3];
	}
	return len;
}

/* Build a CH for a data PDU with datal bytes for the receiver whose PDA is `pda`. */
static void pdu_data_ch_put(uint8_t *buf, uint8_t type, uint8_t flags, uint32_t datal, uint8_t pda,
			    const struct pdu_params *p)
{
	uint32_t hdr_len = pdu_hlen_of[type] + pdu_hdgst_len(type, p);
	uint32_t pdo = 0, plen = hdr_len;

	if (p->hdgst)
		flags |= WIRE_FLAG_HDGSTF;
	if (datal) {
		pdo = ALIGN_UP(hdr_len, ((uint32_t)pda + 1) * 4);
		plen = pdo + datal;
		if (p->ddgst) {
			flags |= WIRE_FLAG_DDGSTF;
			plen += WIRE_DIGEST_LEN;
		}
	}
	pdu_ch_put(buf, type, flags, (uint8_t)pdo, plen);
}

size_t pdu_build_icreq(uint8_t *buf, uint8_t hpda, bool hdgst, bool ddgst, uint32_t maxr2t)
{
	struct wire_icreq *r = (struct wire_icreq *)buf;

	memset(buf, 0, sizeof(*r));
	pdu_ch_put(buf, WIRE_PDU_ICREQ, 0, 0, sizeof(*r));
	r->hpda = hpda;
	r->dgst = (hdgst ? WIRE_DGST_HDR : 0) | (ddgst ? WIRE_DGST_DATA : 0);
	le32_put(r->maxr2t, maxr2t);
	return sizeof(*r);
}

size_t pdu_build_icresp(uint8_t *buf, uint8_t cpda, bool hdgst, bool ddgst, uint32_t maxh2cdata)
{
	struct wire_icresp *r = (struct wire_icresp *)buf;

	memset(buf, 0, sizeof(*r));
	pdu_ch_put(buf, WIRE_PDU_ICRESP, 0, 0, sizeof(*r));
	r->cpda = cpda;
	r->dgst = (hdgst ? WIRE_DGST_HDR : 0) | (ddgst ? WIRE_DGST_DATA : 0);
	le32_put(r->maxh2cdata, maxh2cdata);
	return sizeof(*r);
}

size_t pdu_build_term_req(uint8_t *buf, uint8_t type, const struct pdu_err *err, const uint8_t *bad,
			  size_t bad_len)
{
	struct wire_term_req *t = (struct wire_term_req *)buf;

	if (bad_len > WIRE_TERM_HDR_MAX)
		bad_len = WIRE_TERM_HDR_MAX;
	if (!bad)
		bad_len = 0;
	memset(buf, 0, sizeof(*t));
	pdu_ch_put(buf, type, 0, 0, (uint32_t)(sizeof(*t) + bad_len));
	le16_put(t->fes, (uint16_t)err->fes);
	le32_put(t->fei, err->fei);
	if (bad_len)
		memcpy(buf + sizeof(*t), bad, bad_len);
	return sizeof(*t) + bad_len;
}

size_t pdu_build_capsule_cmd(uint8_t *buf, const struct wire_sqe *sqe, uint32_t incapsule_len,
			     const struct pdu_params *p)
{
	pdu_data_ch_put(buf, WIRE_PDU_CAPSULE_CMD, 0, incapsule_len, p->cpda, p);
	memcpy(buf + offsetof(struct wire_capsule_cmd, sqe), sqe, sizeof(*sqe));
	return pdu_hdr_finish(buf, p);
}

size_t pdu_build_capsule_resp(uint8_t *buf, const struct wire_cqe *cqe, const struct pdu_params *p)
{
	pdu_data_ch_put(buf, WIRE_PDU_CAPSULE_RESP, 0, 0, 0, p);
	memcpy(buf + offsetof(struct wire_capsule_resp, cqe), cqe, sizeof(*cqe));
	return pdu_hdr_finish(buf, p);
}

size_t pdu_build_h2c_data(uint8_t *buf, uint16_t cccid, uint16_t ttag, uint32_t datao,
			  uint32_t datal, bool last, const struct pdu_params *p)
{
	struct wire_h2c_data *d = (struct wire_h2c_data *)buf;

	memset(buf, 0, sizeof(*d));
	pdu_data_ch_put(buf, WIRE_PDU_H2C_DATA, last ? WIRE_FLAG_LAST_PDU : 0, datal, p->cpda, p);
	le16_put(d->cccid, cccid);
	le16_put(d->ttag, ttag);
	le32_put(d->datao, datao);
	le32_put(d->datal, datal);
	return pdu_hdr_finish(buf, p);
}

size_t pdu_build_c2h_data(uint8_t *buf, uint16_t cccid, uint32_t datao, uint32_t datal, bool last,
			  bool success, const struct pdu_params *p)
{
	struct wire_c2h_data *d = (struct wire_c2h_data *)buf;
	uint8_t flags = (last ? WIRE_FLAG_LAST_PDU : 0) | (success ? WIRE_FLAG_SUCCESS : 0);

	memset(buf, 0, sizeof(*d));
	pdu_data_ch_put(buf, WIRE_PDU_C2H_DATA, flags, datal, p->hpda, p);
	le16_put(d->cccid, cccid);
	le32_put(d->datao, datao);
	le32_put(d->datal, datal);
	return pdu_hdr_finish(buf, p);
}

size_t pdu_build_r2t(uint8_t *buf, uint16_t cccid, uint16_t ttag, uint32_t r2to, uint32_t r2tl,
		     const struct pdu_params *p)
{
	struct wire_r2t *r = (struct wire_r2t *)buf;

	memset(buf, 0, sizeof(*r));
	pdu_data_ch_put(buf, WIRE_PDU_R2T, 0, 0, 0, p);
	le16_put(r->cccid, cccid);
	le16_put(r->ttag, ttag);
	le32_put(r->r2to, r2to);
	le32_put(r->r2tl, r2tl);
	return pdu_hdr_finish(buf, p);
}
