/* Unit tests for src/proto/pdu.c: builders produce headers that validate, and each validation
 * rule rejects with the FES/FEI the wire document prescribes. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/le.h"
#include "proto/crc32c.h"
#include "proto/pdu.h"
#include "tap.h"

static const struct pdu_params params_plain = {
	.cpda = 0,
	.hpda = 0,
	.maxh2cdata = 131072,
	.max_incapsule = 8192,
	.ic_done = true,
};
static const struct pdu_params params_dgst = {
	.hdgst = true,
	.ddgst = true,
	.cpda = 3,
	.hpda = 1,
	.maxh2cdata = 131072,
	.max_incapsule = 8192,
	.ic_done = true,
};

static union wire_pdu hdr;

/* Run pdu_check_header and return FES*1000 + FEI, or 0 when valid. */
static long check(enum pdu_role role, const struct pdu_params *p)
{
	struct pdu_err err = {0};
	int ret = pdu_check_header(&hdr, role, p, &err);

	if (ret == 0)
		return 0;
	if (ret != -EPROTO)
		return -1;
	return (long)err.fes * 1000 + err.fei;
}

static void test_builders_validate(void)
{
	const struct pdu_params *ps[2] = {&params_plain, &params_dgst};
	struct wire_sqe sqe = {.opc = 0x01};
	struct wire_cqe cqe = {.cid = {7, 0}};

	for (int i = 0; i < 2; i++) {
		const struct pdu_params *p = ps[i];
		uint32_t hd = p->hdgst ? 4 : 0, dd = p->ddgst ? 4 : 0;
		size_t n;

		n = pdu_build_capsule_cmd(hdr.raw, &sqe, 0, p);
		TAP_CHECK_EQ(n, 72 + hd);
		TAP_CHECK_EQ(check(PDU_ROLE_CTRL, p), 0);
		TAP_CHECK_EQ(pdu_data_len(&hdr), 0);

		uint8_t big[256];
		n = pdu_build_capsule_cmd(big, &sqe, 4096, p);
		memcpy(hdr.raw, big, sizeof(hdr.raw));
		TAP_CHECK_EQ(n, hdr.ch.pdo);
		TAP_CHECK_EQ(hdr.ch.pdo % ((p->cpda + 1) * 4), 0);
		TAP_CHECK_EQ(le32_get(hdr.ch.plen), hdr.ch.pdo + 4096 + dd);
		TAP_CHECK_EQ(check(PDU_ROLE_CTRL, p), 0);
		TAP_CHECK_EQ(pdu_data_len(&hdr), 4096);

		n = pdu_build_capsule_resp(hdr.raw, &cqe, p);
		TAP_CHECK_EQ(n, 24 + hd);
		TAP_CHECK_EQ(check(PDU_ROLE_HOST, p), 0);

		n = pdu_build_h2c_data(big, 1, 2, 0, 512, true, p);
		memcpy(hdr.raw, big, sizeof(hdr.raw));
		TAP_CHECK_EQ(check(PDU_ROLE_CTRL, p), 0);
		TAP_CHECK_EQ(pdu_data_len(&hdr), 512);
		TAP_CHECK(hdr.ch.flags & WIRE_FLAG_LAST_PDU);

		n = pdu_build_c2h_data(big, 1, 0, 100, true, true, p);
		memcpy(hdr.raw, big, sizeof(hdr.raw));
		TAP_CHECK_EQ(n, hdr.ch.pdo);
		TAP_CHECK_EQ(check(PDU_ROLE_HOST, p), 0);
		TAP_CHECK_EQ(pdu_data_len(&hdr), 100);

		n = pdu_build_r2t(hdr.raw, 1, 2, 0, 8192, p);
		TAP_CHECK_EQ(n, 24 + hd);
		TAP_CHECK_EQ(check(PDU_ROLE_HOST, p), 0);
		if (p->hdgst)
			TAP_CHECK_EQ(le32_get(hdr.raw + 24), crc32c(hdr.raw, 24));
	}
}

static void test_ic(void)
{
	struct pdu_params pre = params_plain;

	pre.ic_done = false;
	TAP_CHECK_EQ(pdu_build_icreq(hdr.raw, 0, true, false, 0), 128);
	TAP_CHECK_EQ(hdr.icreq.dgst, WIRE_DGST_HDR);
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &pre), 0);
	/* a second ICReq, and ICReq to a host, are sequence errors */
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_plain), 2000);
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &pre), 2000);
	le16_put(hdr.icreq.pfv, 1);
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &pre), 6008);
	le16_put(hdr.icreq.pfv, 0);
	hdr.icreq.hpda = 32;
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &pre), 1010);
	hdr.icreq.hpda = 31;
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &pre), 0);
	le32_put(hdr.ch.plen, 129);
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &pre), 1004);

	TAP_CHECK_EQ(pdu_build_icresp(hdr.raw, 0, true, true, 65536), 128);
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &pre), 0);
	le32_put(hdr.icresp.maxh2cdata, 4095);
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &pre), 1012);
	/* commands before IC are sequence errors */
	struct wire_sqe sqe = {0};
	pdu_build_capsule_cmd(hdr.raw, &sqe, 0, &params_plain);
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &pre), 2000);
}

static void test_common_header_rules(void)
{
	struct wire_sqe sqe = {0};
	uint8_t big[256];

	hdr.ch.pdu_type = 0x08; /* unassigned */
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_plain), 1000);
	hdr.ch.pdu_type = 0x0a;
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &params_plain), 1000);

	pdu_build_capsule_cmd(hdr.raw, &sqe, 0, &params_plain);
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &params_plain), 2000); /* wrong direction */
	hdr.ch.hlen = 71;
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_plain), 1002);
	hdr.ch.hlen = 72;
	hdr.ch.pdo = 72; /* no data, PDO must be 0 */
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_plain), 1003);
	hdr.ch.pdo = 0;
	/* digest flags against negotiation */
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_dgst), 1001);
	hdr.ch.flags = WIRE_FLAG_DDGSTF;
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_plain), 1001);

	/* in-capsule data: limit, PDO alignment and placement */
	pdu_build_capsule_cmd(big, &sqe, 8192, &params_dgst);
	memcpy(hdr.raw, big, sizeof(hdr.raw));
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_dgst), 0);
	le32_put(hdr.ch.plen, le32_get(hdr.ch.plen) + 4);
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_dgst), 1004);
	pdu_build_capsule_cmd(big, &sqe, 512, &params_dgst);
	memcpy(hdr.raw, big, sizeof(hdr.raw));
	hdr.ch.pdo = 76 + 4; /* >= HLEN+HDGST and 16-aligned: extra padding accepted */
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_dgst), 0);
	hdr.ch.pdo = 84; /* not a multiple of (CPDA+1)*4 = 16 */
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_dgst), 1003);
	hdr.ch.pdo = 64; /* inside the header */
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_dgst), 1003);
	hdr.ch.pdo = 144; /* > 128 */
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_dgst), 1003);

	/* CapsuleResp and R2T: PLEN exact */
	struct wire_cqe cqe = {0};
	pdu_build_capsule_resp(hdr.raw, &cqe, &params_plain);
	le32_put(hdr.ch.plen, 28);
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &params_plain), 1004);
	pdu_build_r2t(hdr.raw, 1, 1, 0, 0, &params_plain);
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &params_plain), 1016); /* R2TL 0 */
}

static void test_data_rules(void)
{
	uint8_t big[256];

	pdu_build_h2c_data(big, 1, 2, 0, 4096, false, &params_plain);
	memcpy(hdr.raw, big, sizeof(hdr.raw));
	le32_put(hdr.h2c.datal, 4000); /* disagrees with PLEN */
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_plain), 1016);
	struct pdu_params small = params_plain;
	small.maxh2cdata = 2048;
	pdu_build_h2c_data(big, 1, 2, 0, 4096, false, &params_plain);
	memcpy(hdr.raw, big, sizeof(hdr.raw));
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &small), 5000); /* data transfer limit exceeded */
	/* H2CData without data */
	pdu_build_h2c_data(big, 1, 2, 0, 0, false, &params_plain);
	memcpy(hdr.raw, big, sizeof(hdr.raw));
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_plain), 1016);

	pdu_build_c2h_data(big, 1, 0, 100, false, true, &params_plain);
	memcpy(hdr.raw, big, sizeof(hdr.raw));
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &params_plain), 1001); /* SUCCESS without LAST_PDU */
	pdu_build_c2h_data(big, 1, 0, 100, true, false, &params_dgst);
	memcpy(hdr.raw, big, sizeof(hdr.raw));
	TAP_CHECK_EQ(hdr.ch.pdo, 32); /* 24 + 4 rounded up to (HPDA+1)*4 = 8 */
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &params_dgst), 0);
	le32_put(hdr.ch.plen, 32 + 2); /* less than PDO + DDGST + 1 */
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &params_dgst), 1004);
	struct pdu_params cap = params_dgst;
	cap.max_c2h_data = 64;
	pdu_build_c2h_data(big, 1, 0, 100, true, false, &params_dgst);
	memcpy(hdr.raw, big, sizeof(hdr.raw));
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &cap), 1016);
}

static void test_term_req(void)
{
	uint8_t buf[PDU_TERM_REQ_MAX + 8], bad[200];
	struct pdu_err err = {.fes = WIRE_FES_INVALID_HEADER_FIELD, .fei = 3};
	union wire_pdu *t = (union wire_pdu *)buf;

	for (size_t i = 0; i < sizeof(bad); i++)
		bad[i] = (uint8_t)i;
	TAP_CHECK_EQ(pdu_build_term_req(buf, WIRE_PDU_C2H_TERM_REQ, &err, bad, 200), 152);
	TAP_CHECK_EQ(le16_get(t->term.fes), 1);
	TAP_CHECK_EQ(le32_get(t->term.fei), 3);
	TAP_CHECK_MEM(buf + 24, bad, 128);
	TAP_CHECK_EQ(pdu_data_len(t), 128);
	memcpy(hdr.raw, buf, sizeof(hdr.raw));
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &params_plain), 0);
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_plain), 2000);
	struct pdu_params pre = params_plain;
	pre.ic_done = false; /* a TermReq may answer our ICReq */
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &pre), 0);
	le32_put(hdr.ch.plen, 153);
	TAP_CHECK_EQ(check(PDU_ROLE_HOST, &params_plain), 1004);
	TAP_CHECK_EQ(pdu_build_term_req(buf, WIRE_PDU_H2C_TERM_REQ, &err, NULL, 0), 24);
	memcpy(hdr.raw, buf, sizeof(hdr.raw));
	TAP_CHECK_EQ(check(PDU_ROLE_CTRL, &params_plain), 0);
}

static void test_names_and_lengths(void)
{
	TAP_CHECK(strcmp(pdu_type_name(WIRE_PDU_CAPSULE_CMD), "CapsuleCmd") == 0);
	TAP_CHECK(strcmp(pdu_type_name(WIRE_PDU_R2T), "R2T") == 0);
	TAP_CHECK(strcmp(pdu_type_name(8), "unknown") == 0);
	TAP_CHECK(strcmp(pdu_type_name(0xff), "unknown") == 0);
	TAP_CHECK_EQ(pdu_hdgst_len(WIRE_PDU_ICREQ, &params_dgst), 0);
	TAP_CHECK_EQ(pdu_hdgst_len(WIRE_PDU_H2C_TERM_REQ, &params_dgst), 0);
	TAP_CHECK_EQ(pdu_hdgst_len(WIRE_PDU_CAPSULE_CMD, &params_dgst), 4);
	TAP_CHECK_EQ(pdu_hdgst_len(WIRE_PDU_CAPSULE_CMD, &params_plain), 0);
}

int main(void)
{
	TAP_RUN(test_builders_validate);
	TAP_RUN(test_ic);
	TAP_RUN(test_common_header_rules);
	TAP_RUN(test_data_rules);
	TAP_RUN(test_term_req);
	TAP_RUN(test_names_and_lengths);
	return tap_done();
}
