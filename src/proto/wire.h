/* NVMe/TCP and NVMe-oF wire structures: the nine PDU headers, SQE/CQE, SGL, Fabrics commands.
 * Layer: proto (pure). Every struct is made of byte arrays (alignment 1, no padding) and is
 * accessed through src/common/le.h; sizes and the offsets peers depend on are asserted below.
 * Names follow the NVMe/TCP specification (hlen, pdo, plen, cpda, hpda, ttag, datao, ...). */
#ifndef NVTCP_PROTO_WIRE_H
#define NVTCP_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/compiler.h"

/* ---- PDU types and flags ---------------------------------------------------------------- */

enum wire_pdu_type {
	WIRE_PDU_ICREQ = 0x00,
	WIRE_PDU_ICRESP = 0x01,
	WIRE_PDU_H2C_TERM_REQ = 0x02,
	WIRE_PDU_C2H_TERM_REQ = 0x03,
	WIRE_PDU_CAPSULE_CMD = 0x04,
	WIRE_PDU_CAPSULE_RESP = 0x05,
	WIRE_PDU_H2C_DATA = 0x06,
	WIRE_PDU_C2H_DATA = 0x07,
	WIRE_PDU_R2T = 0x09,
	WIRE_PDU_TYPE_COUNT = 0x0a /* one past the highest type value (08h is unassigned) */
};

#define WIRE_FLAG_HDGSTF   0x01 /* header digest present */
#define WIRE_FLAG_DDGSTF   0x02 /* data digest present */
#define WIRE_FLAG_LAST_PDU 0x04 /* H2CData/C2HData: last PDU of the transfer */
#define WIRE_FLAG_SUCCESS  0x08 /* C2HData: command done, no CapsuleResp follows */

#define WIRE_DGST_HDR  0x01 /* ICReq/ICResp DGST byte bit 0: header digest */
#define WIRE_DGST_DATA 0x02 /* bit 1: data digest */

#define WIRE_DIGEST_LEN	    4
#define WIRE_PDO_MAX	    128 /* PDO is at most 128 bytes */
#define WIRE_TERM_HDR_MAX   128 /* TermReq carries at most 128 bytes of the offending header */
#define WIRE_HDR_MAX	    128 /* largest HLEN of any PDU (ICReq/ICResp) */
#define WIRE_MAXH2CDATA_MIN 4096

/* Fatal error status (TermReq FES). */
enum wire_fes {
	WIRE_FES_NONE = 0x00,
	WIRE_FES_INVALID_HEADER_FIELD = 0x01, /* FEI: byte offset of the bad field */
	WIRE_FES_PDU_SEQUENCE = 0x02,
	WIRE_FES_HDGST = 0x03,
	WIRE_FES_DATA_OUT_OF_RANGE = 0x04,
	WIRE_FES_R2T_LIMIT = 0x05, /* data transfer limit exceeded: H2CData over MAXH2CDATA, R2Ts */
	WIRE_FES_UNSUPPORTED_PARAM = 0x06, /* FEI: byte offset of the field */
	WIRE_FES_COUNT
};

/* ---- PDU headers ------------------------------------------------------------------------ */

/* Common header: 8 bytes at the start of every PDU. */
struct wire_ch {
	uint8_t pdu_type;
	uint8_t flags;
	uint8_t hlen;
	uint8_t pdo;
	uint8_t plen[4];
};

struct wire_icreq {
	struct wire_ch ch;
	uint8_t pfv[2];
	uint8_t hpda;
	uint8_t dgst;
	uint8_t maxr2t[4];
	uint8_t rsvd[112];
};

struct wire_icresp {
	struct wire_ch ch;
	uint8_t pfv[2];
	uint8_t cpda;
	uint8_t dgst;
	uint8_t maxh2cdata[4];
	uint8_t rsvd[112];
};

/* H2CTermReq and C2HTermReq share one layout; up to 128 bytes of the offending header follow. */
struct wire_term_req {
	struct wire_ch ch;
	uint8_t fes[2];
	uint8_t fei[4];
	uint8_t rsvd[10];
};

/* ---- NVMe command pieces ---------------------------------------------------------------- */

/* SGL descriptor (16 bytes). Byte 15: type in bits 7:4, subtype in bits 3:0. */
struct wire_sgl {
	uint8_t addr[8];
	uint8_t length[4];
	uint8_t rsvd[3];
	uint8_t type;
};

#define WIRE_SGL_TYPE_DATA_BLOCK_OFFSET 0x01 /* in-capsule data: Data Block, subtype Offset */
#define WIRE_SGL_TYPE_TRANSPORT_DATA	0x5a /* Transport SGL Data Block, transport specific */
#define WIRE_SQE_PSDT_SGL		0x40 /* SQE flags bits 7:6 = 01b: SGL for data */
#define WIRE_SQE_PSDT_MASK		0xc0
#define WIRE_SQE_FUSE_MASK		0x03

/* Submission queue entry (64 bytes). */
struct wire_sqe {
	uint8_t opc;
	uint8_t flags; /* FUSE 1:0, PSDT 7:6 */
	uint8_t cid[2];
	uint8_t nsid[4];
	uint8_t cdw2[4];
	uint8_t cdw3[4];
	uint8_t mptr[8];
	struct wire_sgl sgl1; /* DPTR */
	uint8_t cdw10[4];
	uint8_t cdw11[4];
	uint8_t cdw12[4];
	uint8_t cdw13[4];
	uint8_t cdw14[4];
	uint8_t cdw15[4];
};

/* Completion queue entry (16 bytes). Status: P 0, SC 8:1, SCT 11:9, CRD 13:12, M 14, DNR 15. */
struct wire_cqe {
	uint8_t dw0[4];
	uint8_t dw1[4];
	uint8_t sqhd[2];
	uint8_t sqid[2];
	uint8_t cid[2];
	uint8_t status[2];
};

/* Fabrics command (opcode 7Fh) common layout; the last 24 bytes depend on FCTYPE. */
struct wire_fabrics_cmd {
	uint8_t opc;
	uint8_t rsvd1;
	uint8_t cid[2];
	uint8_t fctype;
	uint8_t rsvd2[19];
	struct wire_sgl sgl1;
	uint8_t specific[24];
};

struct wire_connect_cmd {
	uint8_t opc;
	uint8_t rsvd1;
	uint8_t cid[2];
	uint8_t fctype;
	uint8_t rsvd2[19];
	struct wire_sgl sgl1;
	uint8_t recfmt[2];
	uint8_t qid[2];
	uint8_t sqsize[2]; /* 0's based */
	uint8_t cattr;	   /* bit 2: disable SQ flow control */
	uint8_t rsvd3;
	uint8_t kato[4]; /* ms */
	uint8_t rsvd4[12];
};

#define WIRE_CONNECT_CATTR_DISABLE_SQFC 0x04

struct wire_prop_cmd {
	uint8_t opc;
	uint8_t rsvd1;
	uint8_t cid[2];
	uint8_t fctype;
	uint8_t rsvd2[35];
	uint8_t attrib; /* bits 2:0: 0 = 4 bytes, 1 = 8 bytes */
	uint8_t rsvd3[3];
	uint8_t ofst[4];
	uint8_t value[8]; /* Property Set only */
	uint8_t rsvd4[8];
};

/* Authentication Send / Receive (FCTYPE 05h / 06h). */
struct wire_auth_cmd {
	uint8_t opc;
	uint8_t rsvd1;
	uint8_t cid[2];
	uint8_t fctype;
	uint8_t rsvd2[19];
	struct wire_sgl sgl1;
	uint8_t rsvd3;
	uint8_t spsp0;
	uint8_t spsp1;
	uint8_t secp;
	uint8_t tl_al[4]; /* Send: transfer length; Receive: allocation length */
	uint8_t rsvd4[16];
};

/* Connect command data (1024 bytes). */
struct wire_connect_data {
	uint8_t hostid[16];
	uint8_t cntlid[2];
	uint8_t rsvd1[238];
	char subnqn[256];
	char hostnqn[256];
	uint8_t rsvd2[256];
};

/* ---- PDUs that carry NVMe pieces -------------------------------------------------------- */

struct wire_capsule_cmd {
	struct wire_ch ch;
	struct wire_sqe sqe;
};

struct wire_capsule_resp {
	struct wire_ch ch;
	struct wire_cqe cqe;
};

struct wire_h2c_data {
	struct wire_ch ch;
	uint8_t cccid[2];
	uint8_t ttag[2];
	uint8_t datao[4];
	uint8_t datal[4];
	uint8_t rsvd[4];
};

struct wire_c2h_data {
	struct wire_ch ch;
	uint8_t cccid[2];
	uint8_t rsvd1[2];
	uint8_t datao[4];
	uint8_t datal[4];
	uint8_t rsvd2[4];
};

struct wire_r2t {
	struct wire_ch ch;
	uint8_t cccid[2];
	uint8_t ttag[2];
	uint8_t r2to[4];
	uint8_t r2tl[4];
	uint8_t rsvd[4];
};

/* Any PDU header plus room for its header digest; aligned so decoders can keep one inline. */
union wire_pdu {
	struct wire_ch ch;
	struct wire_icreq icreq;
	struct wire_icresp icresp;
	struct wire_term_req term;
	struct wire_capsule_cmd cmd;
	struct wire_capsule_resp rsp;
	struct wire_h2c_data h2c;
	struct wire_c2h_data c2h;
	struct wire_r2t r2t;
	uint8_t raw[WIRE_HDR_MAX + WIRE_DIGEST_LEN];
} __attribute__((aligned(8)));

/* ---- sizes and offsets peers depend on -------------------------------------------------- */

WIRE_SIZE(struct wire_ch, 8);
WIRE_OFFSET(struct wire_ch, plen, 4);
WIRE_SIZE(struct wire_icreq, 128);
WIRE_OFFSET(struct wire_icreq, pfv, 8);
WIRE_OFFSET(struct wire_icreq, hpda, 10);
WIRE_OFFSET(struct wire_icreq, dgst, 11);
WIRE_OFFSET(struct wire_icreq, maxr2t, 12);
WIRE_SIZE(struct wire_icresp, 128);
WIRE_OFFSET(struct wire_icresp, cpda, 10);
WIRE_OFFSET(struct wire_icresp, dgst, 11);
WIRE_OFFSET(struct wire_icresp, maxh2cdata, 12);
WIRE_SIZE(struct wire_term_req, 24);
WIRE_OFFSET(struct wire_term_req, fes, 8);
WIRE_OFFSET(struct wire_term_req, fei, 10);
WIRE_SIZE(struct wire_sgl, 16);
WIRE_OFFSET(struct wire_sgl, length, 8);
WIRE_OFFSET(struct wire_sgl, type, 15);
WIRE_SIZE(struct wire_sqe, 64);
WIRE_OFFSET(struct wire_sqe, cid, 2);
WIRE_OFFSET(struct wire_sqe, nsid, 4);
WIRE_OFFSET(struct wire_sqe, sgl1, 24);
WIRE_OFFSET(struct wire_sqe, cdw10, 40);
WIRE_OFFSET(struct wire_sqe, cdw15, 60);
WIRE_SIZE(struct wire_cqe, 16);
WIRE_OFFSET(struct wire_cqe, sqhd, 8);
WIRE_OFFSET(struct wire_cqe, cid, 12);
WIRE_OFFSET(struct wire_cqe, status, 14);
WIRE_SIZE(struct wire_fabrics_cmd, 64);
WIRE_OFFSET(struct wire_fabrics_cmd, fctype, 4);
WIRE_OFFSET(struct wire_fabrics_cmd, sgl1, 24);
WIRE_SIZE(struct wire_connect_cmd, 64);
WIRE_OFFSET(struct wire_connect_cmd, recfmt, 40);
WIRE_OFFSET(struct wire_connect_cmd, qid, 42);
WIRE_OFFSET(struct wire_connect_cmd, sqsize, 44);
WIRE_OFFSET(struct wire_connect_cmd, cattr, 46);
WIRE_OFFSET(struct wire_connect_cmd, kato, 48);
WIRE_SIZE(struct wire_prop_cmd, 64);
WIRE_OFFSET(struct wire_prop_cmd, attrib, 40);
WIRE_OFFSET(struct wire_prop_cmd, ofst, 44);
WIRE_OFFSET(struct wire_prop_cmd, value, 48);
WIRE_SIZE(struct wire_auth_cmd, 64);
WIRE_OFFSET(struct wire_auth_cmd, spsp0, 41);
WIRE_OFFSET(struct wire_auth_cmd, secp, 43);
WIRE_OFFSET(struct wire_auth_cmd, tl_al, 44);
WIRE_SIZE(struct wire_connect_data, 1024);
WIRE_OFFSET(struct wire_connect_data, cntlid, 16);
WIRE_OFFSET(struct wire_connect_data, subnqn, 256);
WIRE_OFFSET(struct wire_connect_data, hostnqn, 512);
WIRE_SIZE(struct wire_capsule_cmd, 72);
WIRE_SIZE(struct wire_capsule_resp, 24);
WIRE_SIZE(struct wire_h2c_data, 24);
WIRE_OFFSET(struct wire_h2c_data, cccid, 8);
WIRE_OFFSET(struct wire_h2c_data, ttag, 10);
WIRE_OFFSET(struct wire_h2c_data, datao, 12);
WIRE_OFFSET(struct wire_h2c_data, datal, 16);
WIRE_SIZE(struct wire_c2h_data, 24);
WIRE_OFFSET(struct wire_c2h_data, datao, 12);
WIRE_OFFSET(struct wire_c2h_data, datal, 16);
WIRE_SIZE(struct wire_r2t, 24);
WIRE_OFFSET(struct wire_r2t, ttag, 10);
WIRE_OFFSET(struct wire_r2t, r2to, 12);
WIRE_OFFSET(struct wire_r2t, r2tl, 16);
WIRE_SIZE(union wire_pdu, 136);

#endif
