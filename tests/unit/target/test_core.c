/* Target core without a network: a fake transport (struct tgt_queue_ops recording CQEs, data
 * buffers owned by the test) drives Connect, properties, Identify, log pages, features,
 * keep-alive, AERs, discovery and every I/O command against memory backends on a real loop,
 * like the kernel target's loop transport. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

#define SUBNQN	     "nqn.2024-01.io.nvtcp:t1"
#define RESTNQN	     "nqn.2024-01.io.nvtcp:restricted"
#define HOSTNQN	     "nqn.2014-08.org.nvmexpress:uuid:host-one"
#define HOSTA	     "nqn.2024-01.io.nvtcp:hostA"
#define FT_BUF_SIZE  (64 * 1024)
#define FT_PEER_ADDR "127.0.0.1:5555"

#include "fake_transport.h"

static const char core_json[] =
	"{\"ports\":[{\"addr\":\"127.0.0.1\",\"port\":4420},"
	"{\"addr\":\"::1\",\"port\":4421,\"secure\":\"required\"}],"
	"\"subsystems\":[{\"nqn\":\"" SUBNQN "\",\"serial\":\"SN1\",\"model\":\"M1\","
	"\"allow_any_host\":true,\"namespaces\":["
	"{\"nsid\":1,\"backend\":\"memory\",\"size\":\"1M\"},"
	"{\"nsid\":3,\"backend\":\"memory\",\"size\":\"64K\",\"block_size\":4096,"
	"\"readonly\":true}]},"
	"{\"nqn\":\"" RESTNQN "\",\"hosts\":[{\"nqn\":\"" HOSTA "\"}],"
	"\"namespaces\":[{\"nsid\":1,\"backend\":\"null\",\"size\":\"1M\"}]}]}";

/* A queue whose connection came in over TLS with this PSK identity. */
static const char *f_tls_id;
static const char *f_tls_identity(struct tgt_queue *q)
{
	return f_tls_id;
}
static const struct tgt_queue_ops f_tls_ops = {
	.complete = f_complete, .disconnect = f_disconnect, .tls_identity = f_tls_identity};

static uint32_t dw0(void)
{
	return le32_get(R->req.cqe.dw0);
}

static uint16_t connect_q(struct fconn *c, uint16_t qid, uint16_t cntlid, uint32_t kato)
{
	return connect_ex(c, qid, qid ? 127 : 31, cntlid, SUBNQN, HOSTNQN, kato, 0, 0, 1024);
}

#define CC_ENABLE (NVME_CC_EN | 6u << NVME_CC_IOSQES_SHIFT | 4u << NVME_CC_IOCQES_SHIFT)

/* Admin queue connected and enabled; returns the cntlid. */
static uint16_t admin_up(struct fconn *a, uint32_t kato)
{
	uint16_t cntlid;

	conn_init(a);
	if (connect_q(a, 0, NVME_CNTLID_DYNAMIC, kato) != 0)
		return 0;
	cntlid = (uint16_t)dw0();
	if (prop_ex(a, true, NVME_REG_CC, false, CC_ENABLE) != 0)
		return 0;
	return cntlid;
}

static uint16_t admin_cmd(struct fconn *a, uint8_t opc, uint32_t nsid, uint32_t cdw10,
			  uint32_t cdw11, uint32_t len)
{
	struct wire_sqe s = sqe_new(opc, 7, nsid);

	le32_put(s.cdw10, cdw10);
	le32_put(s.cdw11, cdw11);
	return exec(a, &s, NULL, len);
}

static uint16_t get_log(struct fconn *a, uint8_t lid, uint32_t nsid, uint32_t len, uint64_t lpo,
			bool rae)
{
	struct wire_sqe s = sqe_new(NVME_ADMIN_GET_LOG_PAGE, 8, nsid);
	uint32_t numd = len / 4 - 1;

	le32_put(s.cdw10, lid | (rae ? 1u << 15 : 0) | (numd & 0xffff) << 16);
	le32_put(s.cdw11, numd >> 16);
	le32_put(s.cdw12, (uint32_t)lpo);
	le32_put(s.cdw13, (uint32_t)(lpo >> 32));
	return exec(a, &s, NULL, len);
}

static uint16_t rw(struct fconn *c, struct freq *f, uint8_t opc, uint32_t nsid, uint64_t slba,
		   uint32_t nlb, uint32_t flags, const void *data, uint32_t len)
{
	struct wire_sqe s = sqe_new(opc, 9, nsid);

	le64_put(s.cdw10, slba);
	le32_put(s.cdw12, (nlb - 1) | flags);
	return exec_on(c, f, &s, data, len);
}

#define GEN(sc)	 TGT_GENERIC(sc)
#define SPEC(sc) TGT_SPECIFIC(sc)

/* ---- tests ------------------------------------------------------------------------------ */

static void test_parse_sgl(void)
{
	struct tgt_req req;

	memset(&req, 0, sizeof(req));
	req.sqe.sgl1.type = WIRE_SGL_TYPE_DATA_BLOCK_OFFSET;
	le32_put(req.sqe.sgl1.length, 1024);
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 1024, 8192), 0);
	TAP_CHECK(req.incapsule && req.data_len == 1024);
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 512, 8192), GEN(NVME_SC_SGL_INVALID_DATA));
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 1024, 512), GEN(NVME_SC_SGL_INVALID_DATA));
	/* an offset: the data is the capsule's last 1024 bytes */
	le64_put(req.sqe.sgl1.addr, 8);
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 1032, 8192), 0);
	TAP_CHECK(req.incapsule && req.data_len == 1024 && req.incap_off == 8);
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 1024, 8192), GEN(NVME_SC_SGL_INVALID_DATA));
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 1040, 8192), GEN(NVME_SC_SGL_INVALID_DATA));
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 1032, 1028), GEN(NVME_SC_SGL_INVALID_DATA));
	le64_put(req.sqe.sgl1.addr, 8192); /* beyond what the queue takes in a capsule */
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 9216, 8192), GEN(NVME_SC_SGL_INVALID_OFFSET));
	le64_put(req.sqe.sgl1.addr, 1024); /* past the data the capsule carries */
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 1024, 8192), GEN(NVME_SC_SGL_INVALID_OFFSET));
	le64_put(req.sqe.sgl1.addr, 1ull << 63); /* no wrap-around */
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 1024, 8192), GEN(NVME_SC_SGL_INVALID_OFFSET));
	le64_put(req.sqe.sgl1.addr, 0);
	req.sqe.sgl1.type = WIRE_SGL_TYPE_TRANSPORT_DATA;
	le32_put(req.sqe.sgl1.length, 131072);
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 0, 8192), 0);
	TAP_CHECK(!req.incapsule && req.data_len == 131072);
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 16, 8192), GEN(NVME_SC_SGL_INVALID_DATA));
	req.sqe.sgl1.type = 0x02; /* segment */
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 0, 8192), GEN(NVME_SC_SGL_INVALID_TYPE));
	req.sqe.sgl1.type = 0x00; /* plain data block with an address: keyed transports only */
	TAP_CHECK_EQ(tgt_req_parse_sgl(&req, 0, 8192), GEN(NVME_SC_SGL_INVALID_TYPE));
}

static void test_before_connect(void)
{
	struct fconn c;

	conn_init(&c);
	TAP_CHECK_EQ(admin_cmd(&c, NVME_ADMIN_IDENTIFY, 0, 1, 0, 4096), GEN(NVME_SC_CMD_SEQ_ERROR));
	TAP_CHECK_EQ(prop_ex(&c, false, NVME_REG_CAP, true, 0), GEN(NVME_SC_CMD_SEQ_ERROR));
	/* The CQE still carries cid and sqid. */
	TAP_CHECK_EQ(le16_get(R->req.cqe.cid), 2);
	TAP_CHECK_EQ(c.completions, 2);
}

static void test_connect_errors(void)
{
	struct fconn c;

	conn_init(&c);
	TAP_CHECK_EQ(connect_ex(&c, 0, 31, 0xffff, SUBNQN, HOSTNQN, 0, 0, 1, 1024),
		     SPEC(NVME_SC_CONNECT_FORMAT));
	TAP_CHECK_EQ(connect_ex(&c, 0, 31, 0xffff, SUBNQN, HOSTNQN, 0, 0, 0, 512),
		     GEN(NVME_SC_SGL_INVALID_DATA));
	TAP_CHECK_EQ(
		connect_ex(&c, 0, 31, 0xffff, "nqn.2024-01.io.nvtcp:nope", HOSTNQN, 0, 0, 0, 1024),
		SPEC(NVME_SC_CONNECT_INVALID_PARAM));
	TAP_CHECK_EQ(dw0(), 1u << 16 | 256) /* IATTR data, IPO 256 */;
	TAP_CHECK_EQ(connect_ex(&c, 0, 31, 0xffff, RESTNQN, HOSTNQN, 0, 0, 0, 1024),
		     SPEC(NVME_SC_CONNECT_INVALID_HOST));
	TAP_CHECK_EQ(dw0(), 1u << 16 | 512) /* IATTR data, IPO 512 */;
	TAP_CHECK_EQ(connect_ex(&c, 0, 31, 5, SUBNQN, HOSTNQN, 0, 0, 0, 1024),
		     SPEC(NVME_SC_CONNECT_INVALID_PARAM));
	TAP_CHECK_EQ(dw0(), 1u << 16 | 16) /* IATTR data, IPO 16 */;
	TAP_CHECK_EQ(connect_ex(&c, 0, 0, 0xffff, SUBNQN, HOSTNQN, 0, 0, 0, 1024),
		     SPEC(NVME_SC_CONNECT_INVALID_PARAM));
	TAP_CHECK_EQ(dw0(), 44); /* IATTR SQE, IPO 44 */
	TAP_CHECK_EQ(
		connect_ex(&c, 0, TGT_ADMIN_QUEUE_DEPTH, 0xffff, SUBNQN, HOSTNQN, 0, 0, 0, 1024),
		SPEC(NVME_SC_CONNECT_INVALID_PARAM));
	TAP_CHECK_EQ(dw0(), 44); /* IATTR SQE, IPO 44 */
	TAP_CHECK(!c.q.connected && !c.q.ctrl);
	/* Over TLS, the Connect NQNs must be the ones bound into the PSK identity: host A's key
	 * does not let it connect as host B, nor reach another subsystem. */
	c.q.ops = &f_tls_ops;
	f_tls_id = "NVMe0R01 " HOSTNQN " " SUBNQN;
	TAP_CHECK_EQ(connect_ex(&c, 0, 31, 0xffff, RESTNQN, HOSTA, 0, 0, 0, 1024),
		     SPEC(NVME_SC_CONNECT_INVALID_HOST));
	f_tls_id = "NVMe0R01 " HOSTA " " SUBNQN;
	TAP_CHECK_EQ(connect_ex(&c, 0, 31, 0xffff, RESTNQN, HOSTA, 0, 0, 0, 1024),
		     SPEC(NVME_SC_CONNECT_INVALID_HOST));
	f_tls_id = "not an identity";
	TAP_CHECK_EQ(connect_ex(&c, 0, 31, 0xffff, RESTNQN, HOSTA, 0, 0, 0, 1024),
		     SPEC(NVME_SC_CONNECT_INVALID_HOST));
	TAP_CHECK(!c.q.connected);
	f_tls_id = "NVMe0R01 " HOSTA " " RESTNQN;
	/* The allowed host gets in (over TLS with its own identity here). */
	TAP_CHECK_EQ(connect_ex(&c, 0, 31, 0xffff, RESTNQN, HOSTA, 0, 0, 0, 1024), 0);
	c.q.ops = &f_ops;
	TAP_CHECK(c.q.connected);
	/* A second Connect on a connected queue is out of sequence. */
	TAP_CHECK_EQ(connect_ex(&c, 0, 31, 0xffff, RESTNQN, HOSTA, 0, 0, 0, 1024),
		     GEN(NVME_SC_CMD_SEQ_ERROR));
	conn_close(&c);
	drain();
}

static void test_properties(void)
{
	struct fconn a;
	uint64_t cap;

	conn_init(&a);
	TAP_CHECK_EQ(connect_q(&a, 0, NVME_CNTLID_DYNAMIC, 0), 0);
	TAP_CHECK(dw0() >= TGT_CNTLID_MIN && dw0() <= TGT_CNTLID_MAX);
	TAP_CHECK_EQ(le16_get(R->req.cqe.sqhd), 1);
	/* Admin commands before CC.EN = 1 */
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, 1, 0, 4096), GEN(NVME_SC_CMD_SEQ_ERROR));
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CAP, true, 0), 0);
	cap = le64_get(R->req.cqe.dw0);
	TAP_CHECK_EQ(NVME_CAP_MQES(cap), TGT_MAX_QUEUE_DEPTH - 1);
	TAP_CHECK(cap & NVME_CAP_CQR);
	TAP_CHECK_EQ((cap >> NVME_CAP_TO_SHIFT) & 0xff, 15);
	TAP_CHECK(cap & NVME_CAP_CSS_NVM);
	TAP_CHECK_EQ((cap >> NVME_CAP_MPSMIN_SHIFT) & 0xf, 0);
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CAP, false, 0), GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_VS, false, 0), 0);
	TAP_CHECK_EQ(dw0(), NVME_VS(1, 3, 0));
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_VS, true, 0), GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(prop_ex(&a, false, 0x40, false, 0), GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CSTS, false, 0), 0);
	TAP_CHECK_EQ(dw0(), 0);
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CSTS, false, 1), GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, true, CC_ENABLE), GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE), 0);
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CSTS, false, 0), 0);
	TAP_CHECK_EQ(dw0(), NVME_CSTS_RDY);
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CC, false, 0), 0);
	TAP_CHECK_EQ(dw0(), CC_ENABLE);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, 1, 0, 4096), 0);
	/* Normal shutdown: memory flushes complete inline, so SHST is complete at once. */
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE | NVME_CC_SHN_NORMAL), 0);
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CSTS, false, 0), 0);
	TAP_CHECK_EQ(dw0() & NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_CMPLT);
	/* Reset clears RDY. */
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, 0), 0);
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CSTS, false, 0), 0);
	TAP_CHECK_EQ(dw0(), 0);
	/* Bad CC (IOSQES 0 on an I/O controller): fatal status instead of ready. */
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, NVME_CC_EN), 0);
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CSTS, false, 0), 0);
	TAP_CHECK_EQ(dw0(), NVME_CSTS_CFS);
	conn_close(&a);
	drain();
}

static void test_io_connect(void)
{
	struct fconn a, q1, q2, q3;
	uint16_t cntlid;

	conn_init(&a);
	conn_init(&q1);
	TAP_CHECK_EQ(connect_q(&a, 0, NVME_CNTLID_DYNAMIC, 0), 0);
	cntlid = (uint16_t)dw0();
	/* Not enabled yet. */
	TAP_CHECK_EQ(connect_q(&q1, 1, cntlid, 0), GEN(NVME_SC_CMD_SEQ_ERROR));
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE), 0);
	/* Grant two queues: 0's based 1 in both halves. */
	TAP_CHECK_EQ(
		admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_NUM_QUEUES, 1 | 1u << 16, 0),
		0);
	TAP_CHECK_EQ(dw0(), 1 | 1u << 16);
	TAP_CHECK_EQ(connect_q(&q1, 1, cntlid, 0), 0);
	TAP_CHECK_EQ(dw0(), cntlid);
	TAP_CHECK(q1.q.ctrl == a.q.ctrl && q1.q.qid == 1);
	conn_init(&q2);
	TAP_CHECK_EQ(connect_q(&q2, 1, cntlid, 0), GEN(NVME_SC_CMD_SEQ_ERROR)); /* qid taken */
	TAP_CHECK_EQ(connect_q(&q2, 3, cntlid, 0), SPEC(NVME_SC_CONNECT_INVALID_PARAM));
	TAP_CHECK_EQ(dw0(), 42); /* IATTR SQE, IPO 42 */
	TAP_CHECK_EQ(connect_q(&q2, 2, (uint16_t)(cntlid + 100), 0),
		     SPEC(NVME_SC_CONNECT_INVALID_PARAM));
	TAP_CHECK_EQ(dw0(), 1u << 16 | 16) /* IATTR data, IPO 16 */;
	TAP_CHECK_EQ(connect_ex(&q2, 2, 127, cntlid, SUBNQN, HOSTA, 0, 0, 0, 1024),
		     SPEC(NVME_SC_CONNECT_INVALID_PARAM)); /* another host's controller */
	TAP_CHECK_EQ(connect_ex(&q2, 2, 128, cntlid, SUBNQN, HOSTNQN, 0, 0, 0, 1024),
		     SPEC(NVME_SC_CONNECT_INVALID_PARAM));
	TAP_CHECK_EQ(dw0(), 44); /* IATTR SQE, IPO 44 */
	TAP_CHECK_EQ(connect_ex(&q2, 2, 3, cntlid, SUBNQN, HOSTNQN, 0,
				WIRE_CONNECT_CATTR_DISABLE_SQFC, 0, 1024),
		     0);
	TAP_CHECK(q2.q.sqfc_disabled && q2.q.sqsize == 4);
	/* Number of queues cannot change while I/O queues exist. */
	TAP_CHECK_EQ(
		admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_NUM_QUEUES, 7 | 7u << 16, 0),
		GEN(NVME_SC_CMD_SEQ_ERROR));

	/* SQ head: q1 (sqsize 128) advanced once by Connect; q2 keeps 0 with SQFC disabled. */
	TAP_CHECK_EQ(rw(&q1, R, NVME_IO_FLUSH, 1, 0, 1, 0, NULL, 0), 0);
	TAP_CHECK_EQ(le16_get(R->req.cqe.sqhd), 2);
	TAP_CHECK_EQ(le16_get(R->req.cqe.sqid), 1);
	TAP_CHECK_EQ(rw(&q2, R, NVME_IO_FLUSH, 1, 0, 1, 0, NULL, 0), 0);
	TAP_CHECK_EQ(le16_get(R->req.cqe.sqhd), 0);

	/* Disconnect: not on the admin queue; on an I/O queue, after the response. */
	{
		struct wire_sqe s = sqe_new(NVME_FABRICS_OPC, 3, 0);

		((struct wire_fabrics_cmd *)&s)->fctype = NVME_FCTYPE_DISCONNECT;
		TAP_CHECK_EQ(exec(&a, &s, NULL, 0), SPEC(NVME_SC_INVALID_QUEUE_TYPE));
		TAP_CHECK_EQ(exec(&q2, &s, NULL, 0), 0);
		TAP_CHECK_EQ(q2.disconnects, 0);
		drain();
		TAP_CHECK_EQ(q2.disconnects, 1);
		TAP_CHECK_EQ(q1.disconnects, 0);
	}
	/* Reset (EN 1 -> 0) drops the remaining I/O queue, keeps the admin queue. */
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, 0), 0);
	drain();
	TAP_CHECK_EQ(q1.disconnects, 1);
	TAP_CHECK_EQ(a.disconnects, 0);
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE), 0);
	conn_init(&q3);
	TAP_CHECK_EQ(connect_q(&q3, 1, cntlid, 0), 0);
	/* Losing the admin queue tears the I/O queues down. */
	conn_close(&a);
	drain();
	TAP_CHECK_EQ(q3.disconnects, 1);
	conn_init(&q2);
	TAP_CHECK_EQ(connect_q(&q2, 2, cntlid, 0), SPEC(NVME_SC_CONNECT_INVALID_PARAM));
}

static void test_cntlid_unique(void)
{
	struct fconn a, b;
	uint16_t ca, cb;

	ca = admin_up(&a, 0);
	cb = admin_up(&b, 0);
	TAP_CHECK(ca && cb && ca != cb);
	conn_close(&a);
	drain();
	/* A new controller never takes the ID of one still alive. */
	ca = admin_up(&a, 0);
	TAP_CHECK(ca && ca != cb);
	conn_close(&a);
	conn_close(&b);
	drain();
}

static void test_identify(void)
{
	struct fconn a;
	struct nvme_id_ctrl *ic;
	struct nvme_id_ns *in;
	uint8_t nguid[16], uuid[16], zero[4096] = {0};
	uint16_t cntlid = admin_up(&a, 0);

	TAP_CHECK(cntlid != 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, NVME_CNS_CTRL, 0, 4096), 0);
	ic = (struct nvme_id_ctrl *)R->buf;
	TAP_CHECK_MEM(ic->sn, "SN1                 ", 20);
	TAP_CHECK_MEM(ic->mn, "M1  ", 4);
	TAP_CHECK_MEM(ic->fr, TGT_FIRMWARE_REV, strlen(TGT_FIRMWARE_REV));
	TAP_CHECK_EQ(le16_get(ic->cntlid), cntlid);
	TAP_CHECK_EQ(ic->mdts, TGT_MDTS);
	TAP_CHECK_EQ(le32_get(ic->ver), NVME_VS(1, 3, 0));
	TAP_CHECK_EQ(ic->sqes, 0x66);
	TAP_CHECK_EQ(ic->cqes, 0x44);
	TAP_CHECK_EQ(le32_get(ic->nn), TGT_MAX_NSID);
	TAP_CHECK_EQ(le16_get(ic->oncs), NVME_ONCS_DSM | NVME_ONCS_WRITE_ZEROES);
	TAP_CHECK_EQ(le32_get(ic->sgls), NVME_SGLS_SUPPORTED | NVME_SGLS_OFFSET);
	TAP_CHECK_EQ(le32_get(ic->ioccsz), (64 + TGT_INCAPSULE_IO) / 16);
	TAP_CHECK_EQ(le32_get(ic->iorcsz), 1);
	TAP_CHECK_EQ(ic->msdbd, 1);
	TAP_CHECK_EQ(ic->cntrltype, NVME_CNTRLTYPE_IO);
	TAP_CHECK_EQ(ic->aerl, TGT_AERL);
	TAP_CHECK_EQ(ic->frmw, 0x3); /* as the firmware slot log: one slot, read-only */
	TAP_CHECK_EQ(ic->elpe, TGT_ERR_LOG_ENTRIES - 1);
	TAP_CHECK_EQ(le16_get(ic->kas), 10);
	TAP_CHECK_EQ(le16_get(ic->maxcmd), TGT_MAX_QUEUE_DEPTH);
	TAP_CHECK(le32_get(ic->oaes) & NVME_OAES_NS_ATTR);
	TAP_CHECK(le32_get(ic->ctratt) & NVME_CTRATT_128BIT_HOSTID);
	TAP_CHECK(ic->lpa & NVME_LPA_EXTENDED_DATA);
	TAP_CHECK(strcmp(ic->subnqn, SUBNQN) == 0);
	/* Memory backends have no volatile cache to report. */
	TAP_CHECK_EQ(ic->vwc & NVME_VWC_PRESENT, 0);

	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 1, NVME_CNS_NS, 0, 4096), 0);
	in = (struct nvme_id_ns *)R->buf;
	TAP_CHECK_EQ(le64_get(in->nsze), 2048);
	TAP_CHECK_EQ(le64_get(in->ncap), 2048);
	TAP_CHECK_EQ(in->nlbaf, 0);
	TAP_CHECK_EQ(in->lbaf[0].lbads, 9);
	TAP_CHECK(in->nsfeat & NVME_NSFEAT_THIN);
	TAP_CHECK(in->dlfeat & NVME_DLFEAT_READ_ZEROES);
	TAP_CHECK_EQ(le16_get(in->nows), 7);
	tgt_ns_derive_ids(SUBNQN, 1, nguid, uuid);
	TAP_CHECK_MEM(in->nguid, nguid, 16);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 3, NVME_CNS_NS, 0, 4096), 0);
	TAP_CHECK_EQ(in->lbaf[0].lbads, 12);
	TAP_CHECK_EQ(le64_get(in->nsze), 16);
	/* Inactive NSID: zeroes; invalid NSIDs: Invalid Namespace. */
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 2, NVME_CNS_NS, 0, 4096), 0);
	TAP_CHECK_MEM(R->buf, zero, 4096);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, NVME_CNS_NS, 0, 4096),
		     GEN(NVME_SC_INVALID_NS));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, NVME_NSID_ALL, NVME_CNS_NS, 0, 4096),
		     GEN(NVME_SC_INVALID_NS));

	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, NVME_CNS_NS_ACTIVE_LIST, 0, 4096), 0);
	TAP_CHECK_EQ(le32_get(R->buf), 1);
	TAP_CHECK_EQ(le32_get(R->buf + 4), 3);
	TAP_CHECK_EQ(le32_get(R->buf + 8), 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 1, NVME_CNS_NS_ACTIVE_LIST, 0, 4096), 0);
	TAP_CHECK_EQ(le32_get(R->buf), 3);
	TAP_CHECK_EQ(le32_get(R->buf + 4), 0);
	TAP_CHECK_EQ(
		admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0xfffffffe, NVME_CNS_NS_ACTIVE_LIST, 0, 4096),
		GEN(NVME_SC_INVALID_NS));

	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 1, NVME_CNS_NS_DESC_LIST, 0, 4096), 0);
	TAP_CHECK_EQ(R->buf[0], NVME_NIDT_NGUID);
	TAP_CHECK_EQ(R->buf[1], 16);
	TAP_CHECK_MEM(R->buf + 4, nguid, 16);
	TAP_CHECK_EQ(R->buf[20], NVME_NIDT_UUID);
	TAP_CHECK_MEM(R->buf + 24, uuid, 16);
	TAP_CHECK_EQ(R->buf[40], NVME_NIDT_CSI);
	TAP_CHECK_EQ(R->buf[41], 1);
	TAP_CHECK_EQ(R->buf[44], 0);
	TAP_CHECK_EQ(R->buf[45], 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 2, NVME_CNS_NS_DESC_LIST, 0, 4096),
		     GEN(NVME_SC_INVALID_NS));
	/* Command-set specific structures of the NVM command set: zeroes. */
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, 0x06, 0, 4096), 0);
	TAP_CHECK_MEM(R->buf, zero, 4096);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 1, 0x05, 0, 4096), 0);
	TAP_CHECK_MEM(R->buf, zero, 4096);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 2, 0x05, 0, 4096), GEN(NVME_SC_INVALID_NS));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, 0x06, 2u << 24, 4096),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, 0x10, 0, 4096),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, NVME_CNS_CTRL, 0, 512),
		     GEN(NVME_SC_SGL_INVALID_DATA));
	/* Returning data in the capsule is the wrong direction. */
	{
		struct wire_sqe s = sqe_new(NVME_ADMIN_IDENTIFY, 1, 0);

		le32_put(s.cdw10, NVME_CNS_CTRL);
		memset(&R->req, 0, sizeof(R->req));
		R->req.sqe = s;
		R->req.queue = &a.q;
		R->req.data_len = 4096;
		R->req.incapsule = true;
		TAP_CHECK(tgt_req_init(&R->req) < 0);
		TAP_CHECK_EQ(le16_get(R->req.cqe.status), GEN(NVME_SC_INVALID_FIELD));
	}
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_CREATE_SQ, 0, 0, 0, 0), GEN(NVME_SC_INVALID_OPCODE));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_ABORT, 0, 5, 0, 0), 0);
	TAP_CHECK_EQ(dw0() & 1, 1);
	conn_close(&a);
	drain();
}

static void test_features(void)
{
	struct fconn a;

	TAP_CHECK(admin_up(&a, 0) != 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_NUM_QUEUES, 0xffff, 0),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_NUM_QUEUES,
			       999 | 999u << 16, 0),
		     0);
	TAP_CHECK_EQ(dw0(), (TGT_MAX_QUEUES - 1) | (TGT_MAX_QUEUES - 1) << 16);
	TAP_CHECK_EQ(
		admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_NUM_QUEUES, 3 | 5u << 16, 0),
		0);
	TAP_CHECK_EQ(dw0(), 3 | 3u << 16);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_NUM_QUEUES, 0, 0), 0);
	TAP_CHECK_EQ(dw0(), 3 | 3u << 16);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_KATO, 5000, 0), 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_KATO, 0, 0), 0);
	TAP_CHECK_EQ(dw0(), 5000);
	TAP_CHECK(a.q.ctrl->ka_timer.armed);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_KATO, 0, 0), 0);
	TAP_CHECK(!a.q.ctrl->ka_timer.armed);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_ASYNC_EVENT,
			       NVME_OAES_DISC_LOG_CHANGE, 0),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_ASYNC_EVENT, 0, 0), 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_ASYNC_EVENT, 0, 0), 0);
	TAP_CHECK_EQ(dw0(), 0);
	/* Memory namespaces report no volatile write cache, so the feature is not supported. */
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_VOLATILE_WC, 0, 0),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_VOLATILE_WC, 0, 0),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(
		admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_ARBITRATION, 0x03020107, 0), 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_ARBITRATION, 0, 0), 0);
	TAP_CHECK_EQ(dw0(), 0x03020107);
	TAP_CHECK_EQ(
		admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_ARBITRATION | 1u << 8, 0, 0),
		0);
	TAP_CHECK_EQ(dw0(), 0); /* default */
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_POWER_MGMT, 1, 0),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_TEMP_THRESH, 350, 0), 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_TEMP_THRESH, 0, 0), 0);
	TAP_CHECK_EQ(dw0() & 0xffff, 350);
	/* TMPSEL 1111b sets every sensor's threshold */
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_TEMP_THRESH,
			       340 | 0xfu << 16, 0),
		     0);
	for (uint32_t sel = 0; sel <= 8; sel++) {
		TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_TEMP_THRESH,
				       sel << 16, 0),
			     0);
		TAP_CHECK_EQ(dw0() & 0xffff, 340);
	}
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_TEMP_THRESH,
			       340 | 0x9u << 16, 0),
		     GEN(NVME_SC_INVALID_FIELD)); /* 1001b-1110b reserved */
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_ERR_RECOVERY, 20, 0), 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_ERR_RECOVERY, 0, 0), 0);
	TAP_CHECK_EQ(dw0(), 20);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, 0x7e, 0, 0),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, 0x7e, 0, 0),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(
		admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_ARBITRATION | 1u << 31, 0, 0),
		SPEC(NVME_SC_FEATURE_NOT_SAVEABLE));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_HOST_ID, 1, 16), 0);
	TAP_CHECK_EQ(R->buf[0], 0x42);
	TAP_CHECK_EQ(R->buf[15], 0x42);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_HOST_ID, 0, 16),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_HOST_ID, 1, 0),
		     GEN(NVME_SC_CMD_SEQ_ERROR));
	conn_close(&a);
	drain();
}

static struct freq aer[TGT_AERL + 2];

static void test_aer_and_changed_ns(void)
{
	struct fconn a;
	struct wire_sqe s = sqe_new(NVME_ADMIN_ASYNC_EVENT, 20, 0);
	struct tgt_ctrl *ctrl;

	TAP_CHECK(admin_up(&a, 0) != 0);
	ctrl = a.q.ctrl;
	for (unsigned i = 0; i <= TGT_AERL; i++)
		TAP_CHECK_EQ(exec_on(&a, &aer[i], &s, NULL, 0), 0xffff);
	TAP_CHECK_EQ(exec_on(&a, &aer[TGT_AERL + 1], &s, NULL, 0), SPEC(NVME_SC_AER_LIMIT));
	tgt_ctrl_ns_changed(ctrl, 3);
	drain();
	TAP_CHECK(aer[0].done);
	TAP_CHECK_EQ(le32_get(aer[0].req.cqe.dw0),
		     NVME_AER_DW0(NVME_AER_TYPE_NOTICE, NVME_AER_NOTICE_NS_CHANGED,
				  NVME_LOG_CHANGED_NS));
	/* Masked until the log is read: no second completion. */
	tgt_ctrl_ns_changed(ctrl, 1);
	drain();
	TAP_CHECK(!aer[1].done);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_CHANGED_NS, 0, 4096, 0, true), 0);
	TAP_CHECK_EQ(le32_get(R->buf), 3);
	TAP_CHECK_EQ(le32_get(R->buf + 4), 1);
	TAP_CHECK_EQ(le32_get(R->buf + 8), 0);
	/* RAE kept the event masked. */
	tgt_ctrl_ns_changed(ctrl, 1);
	drain();
	TAP_CHECK(!aer[1].done);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_CHANGED_NS, 0, 4096, 0, false), 0);
	TAP_CHECK_EQ(le32_get(R->buf), 1);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_CHANGED_NS, 0, 4096, 0, false), 0);
	TAP_CHECK_EQ(le32_get(R->buf), 0);
	tgt_ctrl_ns_changed(ctrl, 3);
	drain();
	TAP_CHECK(aer[1].done);
	/* Overflow: the list reports FFFFFFFFh first. */
	for (uint32_t i = 1; i <= TGT_MAX_CHANGED_NS + 1; i++)
		tgt_ctrl_ns_changed(ctrl, i + 10);
	drain();
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_CHANGED_NS, 0, 4096, 0, false), 0);
	TAP_CHECK_EQ(le32_get(R->buf), 0xffffffffu);
	/* Only a read that succeeds and reaches the end of the page clears the list: a bad
	 * offset and a read of the first entries leave it, the rest of it then clears it. */
	tgt_ctrl_ns_changed(ctrl, 5);
	tgt_ctrl_ns_changed(ctrl, 6);
	drain();
	TAP_CHECK(aer[2].done); /* the event, once */
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_CHANGED_NS, 0, 4, 4100, false),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_CHANGED_NS, 0, 4, 0, false), 0);
	TAP_CHECK_EQ(le32_get(R->buf), 5);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_CHANGED_NS, 0, 4092, 4, false), 0);
	TAP_CHECK_EQ(le32_get(R->buf), 6);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_CHANGED_NS, 0, 4096, 0, false), 0);
	TAP_CHECK_EQ(le32_get(R->buf), 0);
	/* The admin queue going away drops the held AERs without completing them. */
	conn_close(&a);
	drain();
	TAP_CHECK(!aer[3].done);
}

static void test_log_pages(void)
{
	struct fconn a, q;
	struct nvme_smart_log *sl;
	struct nvme_error_log *el;
	static uint8_t data[8192];
	uint16_t cntlid = admin_up(&a, 0);

	conn_init(&q);
	TAP_CHECK_EQ(connect_q(&q, 1, cntlid, 0), 0);
	memset(data, 0x5a, sizeof(data));
	for (int i = 0; i < 3; i++)
		TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE, 1, 8, 16, 0, data, 8192), 0);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 8, 2, 0, NULL, 1024), 0);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_SMART, NVME_NSID_ALL, 512, 0, false), 0);
	sl = (struct nvme_smart_log *)R->buf;
	TAP_CHECK(le64_get(sl->host_writes) >= 3);
	TAP_CHECK(le64_get(sl->host_reads) >= 1);
	TAP_CHECK(le64_get(sl->data_units_written) >= 1);
	TAP_CHECK(le64_get(sl->data_units_read) >= 1);
	{
		uint64_t w_all = le64_get(sl->host_writes);

		TAP_CHECK_EQ(get_log(&a, NVME_LOG_SMART, 3, 512, 0, false), 0);
		TAP_CHECK_EQ(le64_get(sl->host_writes), 0);
		TAP_CHECK_EQ(get_log(&a, NVME_LOG_SMART, 1, 512, 0, false), 0);
		TAP_CHECK_EQ(le64_get(sl->host_writes), w_all);
	}
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_SMART, 2, 512, 0, false), GEN(NVME_SC_INVALID_NS));
	/* Partial read at an offset. */
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_SMART, NVME_NSID_ALL, 16, 80, false), 0);
	TAP_CHECK(le64_get(R->buf) >= 3); /* host write commands start at byte 80 */
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_SMART, NVME_NSID_ALL, 16, 2, false),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_SMART, NVME_NSID_ALL, 16, 4096, false),
		     GEN(NVME_SC_INVALID_FIELD));

	/* Error log: an out-of-range read, newest first. */
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 4000, 1, 0, NULL, 512), GEN(NVME_SC_LBA_RANGE));
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 9, 0, 1, 0, NULL, 512), GEN(NVME_SC_INVALID_NS));
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_ERROR, 0, 128, 0, false), 0);
	el = (struct nvme_error_log *)R->buf;
	TAP_CHECK_EQ(le16_get(el[0].status_field), GEN(NVME_SC_INVALID_NS));
	TAP_CHECK_EQ(le16_get(el[1].status_field), GEN(NVME_SC_LBA_RANGE));
	TAP_CHECK_EQ(le64_get(el[0].error_count), le64_get(el[1].error_count) + 1);
	TAP_CHECK_EQ(le16_get(el[1].sqid), 1);
	TAP_CHECK_EQ(le64_get(el[1].lba), 4000);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_DISCOVERY, 0, 1024, 0, false),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(get_log(&a, 0x55, 0, 512, 0, false), GEN(NVME_SC_INVALID_FIELD));
	/* NUMD says 512 bytes, the SGL 256. */
	{
		struct wire_sqe s = sqe_new(NVME_ADMIN_GET_LOG_PAGE, 8, NVME_NSID_ALL);

		le32_put(s.cdw10, NVME_LOG_SMART | 127u << 16);
		TAP_CHECK_EQ(exec(&a, &s, NULL, 256), GEN(NVME_SC_SGL_INVALID_DATA));
		/* NUMD 3FFFFFFFh is 4 GiB: it must not wrap to a zero-length transfer. */
		le32_put(s.cdw10, NVME_LOG_SMART | 0xffffu << 16);
		le32_put(s.cdw11, 0x3fff);
		TAP_CHECK_EQ(exec(&a, &s, NULL, 0), GEN(NVME_SC_SGL_INVALID_DATA));
		/* NUMD 40000000h (4 GiB + 4 bytes) must not wrap to 4 bytes. */
		le32_put(s.cdw10, NVME_LOG_SMART);
		le32_put(s.cdw11, 0x4000);
		TAP_CHECK_EQ(exec(&a, &s, NULL, 4), GEN(NVME_SC_SGL_INVALID_DATA));
	}
	conn_close(&a);
	drain();
}

static void test_io(void)
{
	struct fconn a, q;
	static uint8_t data[8192], zero[8192];
	uint16_t cntlid = admin_up(&a, 0);
	struct tgt_ns *ns1 = tgt_subsys_ns(a.q.ctrl->subsys, 1);
	uint8_t ranges[3 * 16] = {0};

	conn_init(&q);
	TAP_CHECK_EQ(connect_q(&q, 1, cntlid, 0), 0);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE, 1, 100, 16, NVME_RW_FUA, data, 8192), 0);
	TAP_CHECK(R->req.bio.fua);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 100, 16, 0, NULL, 8192), 0);
	TAP_CHECK_MEM(R->buf, data, 8192);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 2047, 1, 0, NULL, 512), 0);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 2047, 2, 0, NULL, 1024), GEN(NVME_SC_LBA_RANGE));
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, UINT64_MAX, 2, 0, NULL, 1024),
		     GEN(NVME_SC_LBA_RANGE));
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 0, 2, 0, NULL, 512), GEN(NVME_SC_SGL_INVALID_DATA));
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE, 1, 0, 2, 0, data, 2048),
		     GEN(NVME_SC_SGL_INVALID_DATA));
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 2, 0, 1, 0, NULL, 512), GEN(NVME_SC_INVALID_NS));
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 0, 0, 1, 0, NULL, 512), GEN(NVME_SC_INVALID_NS));
	TAP_CHECK_EQ(rw(&q, R, 0x7e, 1, 0, 1, 0, NULL, 0), GEN(NVME_SC_INVALID_OPCODE));
	/* Read-only namespace (4 KiB blocks). */
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE, 3, 0, 1, 0, data, 4096), SPEC(NVME_SC_READ_ONLY));
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE_ZEROES, 3, 0, 1, 0, NULL, 0), SPEC(NVME_SC_READ_ONLY));
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 3, 0, 1, 0, NULL, 4096), 0);
	/* Flush one and all. */
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_FLUSH, 1, 0, 1, 0, NULL, 0), 0);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_FLUSH, NVME_NSID_ALL, 0, 1, 0, NULL, 0), 0);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_FLUSH, 7, 0, 1, 0, NULL, 0), GEN(NVME_SC_INVALID_NS));
	/* Write Zeroes, plain and with DEAC. */
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE_ZEROES, 1, 100, 4, 0, NULL, 0), 0);
	TAP_CHECK_EQ(R->req.bio.op, NVTCP_BIO_WRITE_ZEROES);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE_ZEROES, 1, 104, 4, NVME_WZ_DEAC, NULL, 0), 0);
	TAP_CHECK_EQ(R->req.bio.op, NVTCP_BIO_DISCARD);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 100, 16, 0, NULL, 8192), 0);
	TAP_CHECK_MEM(R->buf, zero, 4096);
	TAP_CHECK_MEM(R->buf + 4096, data + 4096, 4096);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE_ZEROES, 1, 2040, 9, 0, NULL, 0),
		     GEN(NVME_SC_LBA_RANGE));
	/* DSM: deallocate two ranges (and an empty one). */
	le32_put(ranges + 4, 4);
	le64_put(ranges + 8, 108);
	le32_put(ranges + 16 + 4, 0);
	le32_put(ranges + 32 + 4, 2);
	le64_put(ranges + 32 + 8, 114);
	{
		struct wire_sqe s = sqe_new(NVME_IO_DSM, 11, 1);

		le32_put(s.cdw10, 2);
		le32_put(s.cdw11, NVME_DSM_AD);
		TAP_CHECK_EQ(exec(&q, &s, ranges, sizeof(ranges)), 0);
		TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 100, 16, 0, NULL, 8192), 0);
		TAP_CHECK_MEM(R->buf, zero, 6144);
		TAP_CHECK_MEM(R->buf + 6144, data + 6144, 1024);
		TAP_CHECK_MEM(R->buf + 7168, zero, 1024);
		/* Length must match NR. */
		TAP_CHECK_EQ(exec(&q, &s, ranges, 32), GEN(NVME_SC_SGL_INVALID_DATA));
		/* A range past the end: nothing is deallocated. */
		TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE, 1, 100, 16, 0, data, 8192), 0);
		le64_put(ranges + 32 + 8, 2047);
		TAP_CHECK_EQ(exec(&q, &s, ranges, sizeof(ranges)), GEN(NVME_SC_LBA_RANGE));
		TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 100, 16, 0, NULL, 8192), 0);
		TAP_CHECK_MEM(R->buf, data, 8192);
		/* Without AD: a hint, nothing happens. */
		le32_put(s.cdw11, NVME_DSM_IDR);
		TAP_CHECK_EQ(exec(&q, &s, ranges, sizeof(ranges)), 0);
		le32_put(s.nsid, 3);
		le32_put(s.cdw11, NVME_DSM_AD);
		le64_put(ranges + 32 + 8, 0);
		le64_put(ranges + 8, 0);
		TAP_CHECK_EQ(exec(&q, &s, ranges, sizeof(ranges)), SPEC(NVME_SC_READ_ONLY));
	}
	/* Backend errors become media / generic statuses. */
	nvtcp_backend_inject_error(ns1->backend, 1u << NVTCP_BIO_READ, 1, -EIO);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 0, 1, 0, NULL, 512),
		     TGT_ERR(NVME_SCT_MEDIA, NVME_SC_READ_ERROR));
	nvtcp_backend_inject_error(ns1->backend, 1u << NVTCP_BIO_WRITE, 1, -EIO);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE, 1, 0, 1, 0, data, 512),
		     TGT_ERR(NVME_SCT_MEDIA, NVME_SC_WRITE_FAULT));
	nvtcp_backend_inject_error(ns1->backend, 1u << NVTCP_BIO_WRITE, 1, -ENOSPC);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_WRITE, 1, 0, 1, 0, data, 512), GEN(NVME_SC_CAP_EXCEEDED));
	nvtcp_backend_inject_error(ns1->backend, 1u << NVTCP_BIO_FLUSH, 1, -EINVAL);
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_FLUSH, NVME_NSID_ALL, 0, 1, 0, NULL, 0),
		     GEN(NVME_SC_INTERNAL));
	TAP_CHECK_EQ(rw(&q, R, NVME_IO_READ, 1, 0, 1, 0, NULL, 512), 0);
	TAP_CHECK(atomic_load(&tgt_core_ns(ns1)->stats.media_errors) >= 2);
	/* Fabrics commands other than Disconnect are refused on I/O queues. */
	TAP_CHECK_EQ(prop_ex(&q, false, NVME_REG_CAP, true, 0), GEN(NVME_SC_INVALID_OPCODE));
	conn_close(&a);
	drain();
	TAP_CHECK_EQ(q.disconnects, 1);
}

static void test_keep_alive(void)
{
	struct fconn a, q;
	uint16_t cntlid = admin_up(&a, 150);
	struct tgt_ctrl *ctrl = a.q.ctrl;

	conn_init(&q);
	TAP_CHECK_EQ(connect_q(&q, 1, cntlid, 0), 0);
	TAP_CHECK(ctrl->ka_timer.armed);
	/* Traffic keeps the controller alive. */
	for (int i = 0; i < 4; i++) {
		run_for_ms(60);
		TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_KEEP_ALIVE, 0, 0, 0, 0), 0);
	}
	TAP_CHECK_EQ(a.disconnects, 0);
	/* Silence: the timer fires, every queue is disconnected. */
	run_for_ms(400);
	TAP_CHECK_EQ(a.disconnects, 1);
	TAP_CHECK_EQ(q.disconnects, 1);

	/* Shut down, the controller does not expire however long the host stays silent;
	 * clearing SHN turns the timer back on. */
	cntlid = admin_up(&a, 150);
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE | NVME_CC_SHN_NORMAL), 0);
	run_for_ms(400);
	TAP_CHECK_EQ(a.disconnects, 0);
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE), 0);
	run_for_ms(400);
	TAP_CHECK_EQ(a.disconnects, 1);

	/* The expiry itself sets CSTS.CFS before the queues go. */
	cntlid = admin_up(&a, 0);
	ctrl = a.q.ctrl;
	tgt_ctrl_ka_expired(ctrl);
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CSTS, false, 0), 0);
	TAP_CHECK(dw0() & NVME_CSTS_CFS);
	drain();
	TAP_CHECK_EQ(a.disconnects, 1);
}

static void test_discovery(void)
{
	struct fconn a, b;
	struct nvme_id_ctrl *ic;
	struct nvme_disc_log_hdr *h;
	struct nvme_disc_log_entry *e;
	static uint8_t full[7 * 1024];
	struct wire_sqe s = sqe_new(NVME_ADMIN_ASYNC_EVENT, 21, 0);
	uint64_t gen;
	uint16_t dcntlid;

	conn_init(&a);
	TAP_CHECK_EQ(connect_ex(&a, 0, 31, 0xffff, NVME_DISCOVERY_NQN, HOSTNQN, 0, 0, 0, 1024), 0);
	dcntlid = (uint16_t)dw0();
	/* KATO 0 (as nvme discover connects): the discovery controller still expires */
	TAP_CHECK_EQ(a.q.ctrl->kato_ms, TGT_DISC_KATO_MS);
	TAP_CHECK(a.q.ctrl->ka_timer.armed);
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, NVME_CC_EN), 0);
	TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CSTS, false, 0), 0);
	TAP_CHECK_EQ(dw0(), NVME_CSTS_RDY);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 0, NVME_CNS_CTRL, 0, 4096), 0);
	ic = (struct nvme_id_ctrl *)R->buf;
	TAP_CHECK_EQ(ic->cntrltype, NVME_CNTRLTYPE_DISCOVERY);
	TAP_CHECK(strcmp(ic->subnqn, NVME_DISCOVERY_NQN) == 0);
	TAP_CHECK_EQ(le32_get(ic->nn), 0);
	TAP_CHECK(le32_get(ic->oaes) & NVME_OAES_DISC_LOG_CHANGE);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_IDENTIFY, 1, NVME_CNS_NS, 0, 4096),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_NUM_QUEUES, 0, 0),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_KATO, 10000, 0), 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_KEEP_ALIVE, 0, 0, 0, 0), 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_ABORT, 0, 0, 0, 0), GEN(NVME_SC_INVALID_OPCODE));
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_SMART, 0, 512, 0, false), GEN(NVME_SC_INVALID_FIELD));

	/* Two ports x (current discovery + the two subsystems this host may see) = 6 records. */
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_DISCOVERY, 0, sizeof(full), 0, false), 0);
	memcpy(full, R->buf, sizeof(full));
	h = (struct nvme_disc_log_hdr *)full;
	e = (struct nvme_disc_log_entry *)(full + 1024);
	gen = le64_get(h->genctr);
	TAP_CHECK_EQ(gen, T.disc_genctr);
	TAP_CHECK_EQ(le64_get(h->numrec), 6);
	TAP_CHECK_EQ(le16_get(h->recfmt), 0);
	TAP_CHECK_EQ(e[0].subtype, NVME_DISC_SUBTYPE_CURRENT);
	TAP_CHECK(strcmp(e[0].subnqn, NVME_DISCOVERY_NQN) == 0);
	TAP_CHECK_EQ(e[1].subtype, NVME_DISC_SUBTYPE_NVME);
	TAP_CHECK(strcmp(e[1].subnqn, SUBNQN) == 0);
	TAP_CHECK(strcmp(e[1].traddr, "127.0.0.1") == 0);
	TAP_CHECK(strcmp(e[1].trsvcid, "4420") == 0);
	TAP_CHECK_EQ(e[1].trtype, NVME_TRTYPE_TCP);
	TAP_CHECK_EQ(e[1].adrfam, NVME_ADRFAM_IPV4);
	TAP_CHECK_EQ(e[1].treq, NVME_DISC_TREQ_DISABLE_SQFLOW);
	TAP_CHECK_EQ(le16_get(e[1].cntlid), 0xffff);
	TAP_CHECK_EQ(le16_get(e[1].asqsz), TGT_ADMIN_QUEUE_DEPTH);
	TAP_CHECK_EQ(e[1].tsas[0], NVME_TCP_SECTYPE_NONE);
	TAP_CHECK_EQ(e[3].subtype, NVME_DISC_SUBTYPE_CURRENT);
	TAP_CHECK_EQ(e[4].adrfam, NVME_ADRFAM_IPV6);
	TAP_CHECK(strcmp(e[4].traddr, "::1") == 0);
	TAP_CHECK_EQ(e[4].treq, NVME_DISC_TREQ_DISABLE_SQFLOW | NVME_DISC_TREQ_REQUIRED);
	TAP_CHECK_EQ(e[4].tsas[0], NVME_TCP_SECTYPE_TLS13);
	TAP_CHECK(le16_get(e[3].portid) != le16_get(e[0].portid));
	/* Partial reads: header only, then an entry at its offset, then a tail past the end. */
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_DISCOVERY, 0, 16, 0, false), 0);
	TAP_CHECK_MEM(R->buf, full, 16);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_DISCOVERY, 0, 1024, 2048, false), 0);
	TAP_CHECK_MEM(R->buf, full + 2048, 1024);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_DISCOVERY, 0, 1024, 6144 + 512, false), 0);
	TAP_CHECK_MEM(R->buf, full + 6144 + 512, 512);
	TAP_CHECK_EQ(R->buf[512], 0);
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_DISCOVERY, 0, 16, 8 * 1024, false),
		     GEN(NVME_SC_INVALID_FIELD));

	/* A host allowed on the restricted subsystem sees it too. */
	conn_init(&b);
	TAP_CHECK_EQ(connect_ex(&b, 0, 31, 0xffff, NVME_DISCOVERY_NQN, HOSTA, 0, 0, 0, 1024), 0);
	TAP_CHECK_EQ(prop_ex(&b, true, NVME_REG_CC, false, NVME_CC_EN), 0);
	TAP_CHECK_EQ(get_log(&b, NVME_LOG_DISCOVERY, 0, 1024, 0, false), 0);
	TAP_CHECK_EQ(le64_get(R->buf + 8), 8);

	/* A change completes the held AER and bumps genctr. */
	TAP_CHECK_EQ(exec_on(&a, &aer[0], &s, NULL, 0), 0xffff);
	TAP_CHECK_EQ(tgt_port_add(&T, "127.0.0.1:4499", (char[128]){0}, 128), 0);
	TAP_CHECK(!aer[0].done); /* posted to the admin queue's thread */
	drain();
	TAP_CHECK(aer[0].done);
	TAP_CHECK_EQ(le32_get(aer[0].req.cqe.dw0),
		     NVME_AER_DW0(NVME_AER_TYPE_NOTICE, NVME_AER_NOTICE_DISC_CHANGED,
				  NVME_LOG_DISCOVERY));
	TAP_CHECK_EQ(get_log(&a, NVME_LOG_DISCOVERY, 0, 1024, 0, false), 0);
	TAP_CHECK_EQ(le64_get(R->buf), gen + 1);
	TAP_CHECK_EQ(le64_get(R->buf + 8), 9);
	/* I/O queues do not exist on a discovery controller. */
	{
		struct fconn q;

		conn_init(&q);
		TAP_CHECK_EQ(
			connect_ex(&q, 1, 31, dcntlid, NVME_DISCOVERY_NQN, HOSTNQN, 0, 0, 0, 1024),
			SPEC(NVME_SC_CONNECT_INVALID_PARAM));
		TAP_CHECK_EQ(dw0(), 42); /* IATTR SQE, IPO 42 */
	}
	conn_close(&a);
	conn_close(&b);
	drain();
}

#define FILENQN "nqn.2024-01.io.nvtcp:file"

static bool wait_done(struct freq *f)
{
	for (int i = 0; i < 400 && !f->done; i++)
		run_for_ms(5);
	return f->done;
}

/* A file namespace completes through io_uring and the channel fd registered on the loop. */
static void test_file_async(void)
{
	struct fconn a, q;
	static uint8_t data[4096];
	uint16_t cntlid;
	uint16_t st;

	conn_init(&a);
	TAP_CHECK_EQ(connect_ex(&a, 0, 31, 0xffff, FILENQN, HOSTNQN, 0, 0, 0, 1024), 0);
	cntlid = (uint16_t)dw0();
	/* The channel's completion fd is watched by the loop. */
	TAP_CHECK(tgt_core_ns(tgt_subsys_ns(a.q.ctrl->subsys, 1))->fd_registered[0]);
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE), 0);
	conn_init(&q);
	TAP_CHECK_EQ(connect_ex(&q, 1, 15, cntlid, FILENQN, HOSTNQN, 0, 0, 0, 1024), 0);
	memset(data, 0x3c, sizeof(data));
	st = rw(&q, R, NVME_IO_WRITE, 1, 8, 8, 0, data, 4096);
	printf("# file write %s\n", st == 0xffff ? "completed later from the loop" : "inline");
	if (st == 0xffff)
		TAP_CHECK(wait_done(R));
	TAP_CHECK_EQ(le16_get(R->req.cqe.status), 0);
	st = rw(&q, R, NVME_IO_READ, 1, 8, 8, 0, NULL, 4096);
	if (st == 0xffff)
		TAP_CHECK(wait_done(R));
	TAP_CHECK_EQ(le16_get(R->req.cqe.status), 0);
	TAP_CHECK_MEM(R->buf, data, 4096);
	/* A file has a volatile cache: the feature works, and with the cache off writes are FUA. */
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_VOLATILE_WC, 0, 0), 0);
	TAP_CHECK_EQ(dw0(), 1);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_VOLATILE_WC, 0, 0), 0);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_VOLATILE_WC, 0, 0), 0);
	TAP_CHECK_EQ(dw0(), 0);
	st = rw(&q, R, NVME_IO_WRITE, 1, 8, 8, 0, data, 4096);
	if (st == 0xffff)
		TAP_CHECK(wait_done(R));
	TAP_CHECK(R->req.bio.fua);
	/* ... and so is Write Zeroes: its completion must mean the zeroes are durable too. */
	st = rw(&q, R, NVME_IO_WRITE_ZEROES, 1, 16, 8, 0, NULL, 0);
	if (st == 0xffff)
		TAP_CHECK(wait_done(R));
	TAP_CHECK_EQ(le16_get(R->req.cqe.status), 0);
	TAP_CHECK(R->req.bio.fua);
	TAP_CHECK_EQ(admin_cmd(&a, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_VOLATILE_WC, 1, 0), 0);
	st = rw(&q, R, NVME_IO_FLUSH, NVME_NSID_ALL, 0, 1, 0, NULL, 0);
	if (st == 0xffff)
		TAP_CHECK(wait_done(R));
	TAP_CHECK_EQ(le16_get(R->req.cqe.status), 0);
	/* SHN cleared while the shutdown's flush is still running: CSTS.SHST goes back to 00b
	 * once it is done (it stayed at "shutdown processing occurring"). */
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE | NVME_CC_SHN_NORMAL), 0);
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE), 0);
	for (int i = 0; i < 400; i++) {
		TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CSTS, false, 0), 0);
		if ((dw0() & NVME_CSTS_SHST_MASK) == 0 && !a.q.ctrl->shutdown_running)
			break;
		run_for_ms(5);
	}
	TAP_CHECK_EQ(dw0() & NVME_CSTS_SHST_MASK, 0);
	TAP_CHECK(!a.q.ctrl->shutdown_running);
	/* Shutdown: SHST moves to complete once the flushes came back. */
	TAP_CHECK_EQ(prop_ex(&a, true, NVME_REG_CC, false, CC_ENABLE | NVME_CC_SHN_NORMAL), 0);
	for (int i = 0; i < 400; i++) {
		TAP_CHECK_EQ(prop_ex(&a, false, NVME_REG_CSTS, false, 0), 0);
		if ((dw0() & NVME_CSTS_SHST_MASK) == NVME_CSTS_SHST_CMPLT)
			break;
		TAP_CHECK_EQ(dw0() & NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_OCCUR);
		run_for_ms(5);
	}
	TAP_CHECK_EQ(dw0() & NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_CMPLT);
	/* A shut-down controller takes no new I/O queue. */
	{
		struct fconn q2;

		conn_init(&q2);
		TAP_CHECK_EQ(connect_ex(&q2, 2, 15, cntlid, FILENQN, HOSTNQN, 0, 0, 0, 1024),
			     GEN(NVME_SC_CMD_SEQ_ERROR));
	}
	conn_close(&q);
	conn_close(&a);
	drain();
}

static void test_ports(void)
{
	struct tgt t;
	char err[256];
	struct tgt_port *p;

	TAP_CHECK_EQ(tgt_init(&t), 0);
	TAP_CHECK_EQ(tgt_port_add(&t, "127.0.0.1:4420", err, sizeof(err)), 0);
	TAP_CHECK_EQ(tgt_port_add(&t, "[::1]:8009", err, sizeof(err)), 0);
	p = list_entry(t.ports.prev, struct tgt_port, entry);
	TAP_CHECK_EQ(p->adrfam, NVME_ADRFAM_IPV6);
	TAP_CHECK(strcmp(p->traddr, "::1") == 0 && strcmp(p->trsvcid, "8009") == 0);
	TAP_CHECK_EQ(p->portid, 2);
	TAP_CHECK_EQ(tgt_port_add(&t, "127.0.0.1:4420", err, sizeof(err)), -EEXIST);
	TAP_CHECK_EQ(tgt_port_add(&t, "127.0.0.1", err, sizeof(err)), -EINVAL);
	TAP_CHECK_EQ(tgt_port_add(&t, "localhost:4420", err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "not a numeric IPv4 address") != NULL);
	TAP_CHECK_EQ(tgt_port_add(&t, "127.0.0.1:0", err, sizeof(err)), -EINVAL);
	TAP_CHECK_EQ(tgt_port_add(&t, "127.0.0.1:65536", err, sizeof(err)), -EINVAL);
	TAP_CHECK_EQ(tgt_port_add(&t, "::1:4420", err, sizeof(err)), -EINVAL);
	TAP_CHECK_EQ(tgt_port_add(&t, "[::1:4420", err, sizeof(err)), -EINVAL);
	TAP_CHECK_EQ(tgt_port_add(&t, "[127.0.0.1]:4420", err, sizeof(err)), -EINVAL);
	TAP_CHECK(t.disc_genctr >= 2);
	tgt_ports_clear(&t);
	TAP_CHECK(list_empty(&t.ports));
	tgt_fini(&t);
}

int main(void)
{
	char err[512];
	static char dir[] = "/tmp/nvtcp-test-core-XXXXXX";
	char file_json[512], img[256];

	R = calloc(1, sizeof(*R));
	if (!mkdtemp(dir))
		return 1;
	snprintf(img, sizeof(img), "%s/ns.img", dir);
	snprintf(file_json, sizeof(file_json),
		 "{\"subsystems\":[{\"nqn\":\"" FILENQN "\",\"allow_any_host\":true,"
		 "\"namespaces\":[{\"nsid\":1,\"backend\":\"file\",\"path\":\"%s\","
		 "\"size\":\"1M\"}]}]}",
		 img);
	if (tgt_init(&T) ||
	    tgt_config_parse(&T, "core.json", core_json, strlen(core_json), true, err,
			     sizeof(err)) ||
	    tgt_config_parse(&T, "file.json", file_json, strlen(file_json), true, err,
			     sizeof(err))) {
		printf("# setup failed: %s\n", err);
		return 1;
	}
	if (ft_start())
		return 1;
	TAP_RUN(test_parse_sgl);
	TAP_RUN(test_before_connect);
	TAP_RUN(test_connect_errors);
	TAP_RUN(test_properties);
	TAP_RUN(test_io_connect);
	TAP_RUN(test_cntlid_unique);
	TAP_RUN(test_identify);
	TAP_RUN(test_features);
	TAP_RUN(test_aer_and_changed_ns);
	TAP_RUN(test_log_pages);
	TAP_RUN(test_io);
	TAP_RUN(test_keep_alive);
	TAP_RUN(test_discovery);
	TAP_RUN(test_file_async);
	TAP_RUN(test_ports);
	ft_stop();
	unlink(img);
	rmdir(dir);
	ft_free();
	return tap_done();
}
