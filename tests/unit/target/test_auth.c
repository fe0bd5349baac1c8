/* DH-HMAC-CHAP on the target core, without a network: a fake transport (as in test_core.c)
 * carries Connect, Authentication Send/Receive and ordinary commands, and the host side of the
 * exchange is src/auth's struct dhchap_host. Checks AUTHREQ.ATR in the Connect response, that
 * nothing but authentication runs before success (admin and I/O queues), hash/group selection
 * from the subsystem's allow-lists, uni- and bidirectional authentication, wrong keys (Failure1
 * with reason "failed", Failure2 from the host), re-authentication, and the configuration. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth/dhchap.h"
#include "tap.h"

#define SUBNQN	     "nqn.2024-01.io.nvtcp:auth"
#define DEFNQN	     "nqn.2024-01.io.nvtcp:auth-defaults"
#define HOST_UNI     "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000000a"
#define HOST_BIDI    "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000000b"
#define HOST_PLAIN   "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000000c"
#define FT_BUF_SIZE  8192
#define FT_PEER_ADDR "127.0.0.1:6666"

#include "fake_transport.h"

/* Secrets generated at startup (dhchap_key_format), so the JSON is built at run time. */
static char key_uni[DHCHAP_SECRET_MAX], key_bidi[DHCHAP_SECRET_MAX], key_ctrl[DHCHAP_SECRET_MAX];
static char key_wrong[DHCHAP_SECRET_MAX];

static uint16_t do_connect(struct fconn *c, uint16_t qid, uint16_t cntlid, const char *subnqn,
			   const char *hostnqn)
{
	return connect_ex(c, qid, qid ? 127 : 31, cntlid, subnqn, hostnqn, 0, 0, 0,
			  sizeof(struct wire_connect_data));
}

static uint16_t prop(struct fconn *c, bool set, uint32_t ofst, uint64_t value)
{
	return prop_ex(c, set, ofst, ofst == NVME_REG_CAP, value);
}

static uint16_t identify_ctrl(struct fconn *c)
{
	struct wire_sqe s = sqe_new(NVME_ADMIN_IDENTIFY, 3, 0);

	le32_put(s.cdw10, 1);
	return exec(c, &s, NULL, 4096);
}

static uint16_t read1(struct fconn *c)
{
	struct wire_sqe s = sqe_new(NVME_IO_READ, 4, 1);

	return exec(c, &s, NULL, 512);
}

/* Authentication Send (tl = len) or Receive (al = len) with explicit protocol fields. */
static uint16_t auth_cmd(struct fconn *c, bool send, uint8_t secp, uint8_t spsp0, uint32_t tl,
			 const void *data, uint32_t len)
{
	struct wire_sqe s = sqe_new(NVME_FABRICS_OPC, 5, 0);
	struct wire_auth_cmd *a = (struct wire_auth_cmd *)&s;

	a->fctype = send ? NVME_FCTYPE_AUTH_SEND : NVME_FCTYPE_AUTH_RECV;
	a->secp = secp;
	a->spsp0 = spsp0;
	a->spsp1 = AUTH_SPSP1;
	le32_put(a->tl_al, tl);
	return exec(c, &s, data, len);
}

#define GEN(sc)	      TGT_GENERIC(sc)
#define SPEC(sc)      TGT_SPECIFIC(sc)
#define AUTH_REQUIRED SPEC(NVME_SC_AUTH_REQUIRED)
#define CC_ENABLE     (NVME_CC_EN | 6u << NVME_CC_IOSQES_SHIFT | 4u << NVME_CC_IOCQES_SHIFT)

struct host_opts {
	const char *hostnqn;
	const char *subnqn;
	const char *secret;
	const char *ctrl_secret; /* NULL: unidirectional */
	uint16_t tid;
};

/* Run the host side of one transaction over Authentication Send/Receive. Returns the host's
 * final state; *h_out (if given) gets a copy of the finished host object. */
static enum dhchap_host_state authenticate(struct fconn *c, const struct host_opts *o,
					   struct dhchap_host *h_out)
{
	struct dhchap_key hk, ck;
	struct dhchap_params p = {.hostnqn = o->hostnqn, .subnqn = o->subnqn};
	struct dhchap_host h;
	uint8_t msg[DHCHAP_MAX_MSG_LEN];
	enum dhchap_host_state st;

	TAP_CHECK_EQ(dhchap_key_parse(o->secret, &hk), 0);
	p.host_key = &hk;
	if (o->ctrl_secret) {
		TAP_CHECK_EQ(dhchap_key_parse(o->ctrl_secret, &ck), 0);
		p.ctrl_key = &ck;
	}
	TAP_CHECK_EQ(dhchap_host_init(&h, &p, o->tid), 0);
	for (int i = 0; i < 8 && !dhchap_host_finished(&h); i++) {
		if (dhchap_host_wants_send(&h)) {
			int n = dhchap_host_send(&h, msg, sizeof(msg));

			TAP_CHECK(n > 0);
			if (n <= 0)
				break;
			TAP_CHECK_EQ(auth_cmd(c, true, AUTH_SECP_DHCHAP, AUTH_SPSP0, (uint32_t)n,
					      msg, (uint32_t)n),
				     0);
		} else {
			/* The kernel host receives into a 4096-byte buffer. */
			TAP_CHECK_EQ(
				auth_cmd(c, false, AUTH_SECP_DHCHAP, AUTH_SPSP0, 4096, NULL, 4096),
				0);
			TAP_CHECK_EQ(dhchap_host_recv(&h, R->buf, 4096), 0);
		}
	}
	st = h.state;
	if (h_out)
		*h_out = h;
	else
		dhchap_host_fini(&h);
	return st;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_uni_admin_and_io(void)
{
	struct host_opts o = {HOST_UNI, SUBNQN, key_uni, NULL, 1};
	struct fconn a, io;
	struct dhchap_host h;
	uint16_t cntlid;

	conn_init(&a);
	TAP_CHECK_EQ(do_connect(&a, 0, NVME_CNTLID_DYNAMIC, SUBNQN, HOST_UNI), 0);
	cntlid = (uint16_t)le32_get(R->req.cqe.dw0);
	TAP_CHECK(le32_get(R->req.cqe.dw0) & NVME_CONNECT_RSP_AUTH_REQUIRED);
	/* Nothing before authentication: properties, admin commands, keep-alive. */
	TAP_CHECK_EQ(prop(&a, false, NVME_REG_CAP, 0), AUTH_REQUIRED);
	TAP_CHECK_EQ(prop(&a, true, NVME_REG_CC, CC_ENABLE), AUTH_REQUIRED);
	TAP_CHECK_EQ(identify_ctrl(&a), AUTH_REQUIRED);
	{
		struct wire_sqe ka = sqe_new(NVME_ADMIN_KEEP_ALIVE, 6, 0);

		TAP_CHECK_EQ(exec(&a, &ka, NULL, 0), AUTH_REQUIRED);
	}
	TAP_CHECK_EQ(authenticate(&a, &o, &h), DHCHAP_HOST_DONE);
	/* The subsystem prefers sha384 then ffdhe2048; the host offers everything. */
	TAP_CHECK_EQ(h.s.hash, DHCHAP_HASH_SHA384);
	TAP_CHECK_EQ(h.s.dhgroup, DHCHAP_DHGROUP_2048);
	dhchap_host_fini(&h);
	TAP_CHECK_EQ(prop(&a, false, NVME_REG_CAP, 0), 0);
	TAP_CHECK_EQ(prop(&a, true, NVME_REG_CC, CC_ENABLE), 0);
	TAP_CHECK_EQ(identify_ctrl(&a), 0);

	/* Each I/O queue authenticates on its own. */
	conn_init(&io);
	TAP_CHECK_EQ(do_connect(&io, 1, cntlid, SUBNQN, HOST_UNI), 0);
	TAP_CHECK(le32_get(R->req.cqe.dw0) & NVME_CONNECT_RSP_AUTH_REQUIRED);
	TAP_CHECK_EQ(read1(&io), AUTH_REQUIRED);
	o.tid = 2;
	TAP_CHECK_EQ(authenticate(&io, &o, NULL), DHCHAP_HOST_DONE);
	TAP_CHECK_EQ(read1(&io), 0);
	TAP_CHECK_EQ(a.disconnects + io.disconnects, 0);
	conn_close(&io);
	conn_close(&a);
	drain();
}

static void test_bidi(void)
{
	struct host_opts o = {HOST_BIDI, SUBNQN, key_bidi, key_ctrl, 3};
	struct fconn a;

	conn_init(&a);
	TAP_CHECK_EQ(do_connect(&a, 0, NVME_CNTLID_DYNAMIC, SUBNQN, HOST_BIDI), 0);
	TAP_CHECK(le32_get(R->req.cqe.dw0) & NVME_CONNECT_RSP_AUTH_REQUIRED);
	TAP_CHECK_EQ(authenticate(&a, &o, NULL), DHCHAP_HOST_DONE);
	TAP_CHECK_EQ(prop(&a, false, NVME_REG_CAP, 0), 0);
	conn_close(&a);
	drain();
}

static void test_defaults(void)
{
	struct host_opts o = {HOST_UNI, DEFNQN, key_uni, NULL, 4};
	struct fconn a;
	struct dhchap_host h;

	/* No allow-lists: the first offered in our default order, sha256 and null (nvmet's). */
	conn_init(&a);
	TAP_CHECK_EQ(do_connect(&a, 0, NVME_CNTLID_DYNAMIC, DEFNQN, HOST_UNI), 0);
	TAP_CHECK_EQ(authenticate(&a, &o, &h), DHCHAP_HOST_DONE);
	TAP_CHECK_EQ(h.s.hash, DHCHAP_HASH_SHA256);
	TAP_CHECK_EQ(h.s.dhgroup, DHCHAP_DHGROUP_NULL);
	dhchap_host_fini(&h);
	conn_close(&a);
	drain();
}

static void test_wrong_host_key(void)
{
	struct host_opts o = {HOST_UNI, SUBNQN, key_wrong, NULL, 5};
	struct fconn a;
	struct dhchap_host h;

	conn_init(&a);
	TAP_CHECK_EQ(do_connect(&a, 0, NVME_CNTLID_DYNAMIC, SUBNQN, HOST_UNI), 0);
	TAP_CHECK_EQ(authenticate(&a, &o, &h), DHCHAP_HOST_FAILED);
	/* DH-HMAC-CHAP_Failure1, reason "authentication failed". */
	TAP_CHECK(h.peer_failure);
	TAP_CHECK_EQ(h.status, AUTH_FAIL_FAILED);
	TAP_CHECK_EQ(R->buf[0], AUTH_TYPE_COMMON);
	TAP_CHECK_EQ(R->buf[1], AUTH_MSG_FAILURE1);
	TAP_CHECK_EQ(R->buf[6], AUTH_REASON_FAILED);
	TAP_CHECK_EQ(R->buf[7], AUTH_FAIL_FAILED);
	dhchap_host_fini(&h);
	/* The queue stays unusable. */
	TAP_CHECK_EQ(prop(&a, false, NVME_REG_CAP, 0), AUTH_REQUIRED);
	TAP_CHECK_EQ(identify_ctrl(&a), AUTH_REQUIRED);
	/* A host that authenticates as someone else with the right key of another host fails
	 * too (the response covers NQNh). */
	o.secret = key_bidi;
	o.tid = 6;
	TAP_CHECK_EQ(authenticate(&a, &o, NULL), DHCHAP_HOST_FAILED);
	TAP_CHECK_EQ(identify_ctrl(&a), AUTH_REQUIRED);
	/* ...and a correct retry on the same queue succeeds. */
	o.secret = key_uni;
	o.tid = 7;
	TAP_CHECK_EQ(authenticate(&a, &o, NULL), DHCHAP_HOST_DONE);
	TAP_CHECK_EQ(prop(&a, false, NVME_REG_CAP, 0), 0);
	conn_close(&a);
	drain();
}

static void test_wrong_ctrl_key(void)
{
	struct host_opts o = {HOST_BIDI, SUBNQN, key_bidi, key_wrong, 8};
	struct fconn a;
	struct dhchap_host h;

	conn_init(&a);
	TAP_CHECK_EQ(do_connect(&a, 0, NVME_CNTLID_DYNAMIC, SUBNQN, HOST_BIDI), 0);
	/* The host cannot verify the controller: it sends Failure2 and the queue stays locked. */
	TAP_CHECK_EQ(authenticate(&a, &o, &h), DHCHAP_HOST_FAILED);
	TAP_CHECK(!h.peer_failure);
	dhchap_host_fini(&h);
	TAP_CHECK_EQ(identify_ctrl(&a), AUTH_REQUIRED);
	/* Asking for controller authentication of a host without a controller key fails. */
	conn_close(&a);
	drain();
	conn_init(&a);
	TAP_CHECK_EQ(do_connect(&a, 0, NVME_CNTLID_DYNAMIC, SUBNQN, HOST_UNI), 0);
	o.hostnqn = HOST_UNI;
	o.secret = key_uni;
	o.ctrl_secret = key_ctrl;
	TAP_CHECK_EQ(authenticate(&a, &o, &h), DHCHAP_HOST_FAILED);
	TAP_CHECK(h.peer_failure);
	dhchap_host_fini(&h);
	TAP_CHECK_EQ(identify_ctrl(&a), AUTH_REQUIRED);
	conn_close(&a);
	drain();
}

static void test_reauth(void)
{
	struct host_opts o = {HOST_BIDI, SUBNQN, key_bidi, key_ctrl, 9};
	struct fconn a;

	conn_init(&a);
	TAP_CHECK_EQ(do_connect(&a, 0, NVME_CNTLID_DYNAMIC, SUBNQN, HOST_BIDI), 0);
	TAP_CHECK_EQ(authenticate(&a, &o, NULL), DHCHAP_HOST_DONE);
	TAP_CHECK_EQ(prop(&a, false, NVME_REG_CAP, 0), 0);
	/* Re-authentication on request: a new Negotiate on an authenticated queue. */
	o.tid = 10;
	TAP_CHECK_EQ(authenticate(&a, &o, NULL), DHCHAP_HOST_DONE);
	TAP_CHECK_EQ(prop(&a, false, NVME_REG_CAP, 0), 0);
	/* A failed re-authentication locks the queue again. */
	o.tid = 11;
	o.secret = key_wrong;
	TAP_CHECK_EQ(authenticate(&a, &o, NULL), DHCHAP_HOST_FAILED);
	TAP_CHECK_EQ(identify_ctrl(&a), AUTH_REQUIRED);
	conn_close(&a);
	drain();
}

static void test_no_key_host(void)
{
	struct fconn a, d;

	/* A listed host without a key: no authentication, and the commands are unknown. */
	conn_init(&a);
	TAP_CHECK_EQ(do_connect(&a, 0, NVME_CNTLID_DYNAMIC, SUBNQN, HOST_PLAIN), 0);
	TAP_CHECK(!(le32_get(R->req.cqe.dw0) & NVME_CONNECT_RSP_AUTH_REQUIRED));
	TAP_CHECK_EQ(prop(&a, false, NVME_REG_CAP, 0), 0);
	TAP_CHECK_EQ(auth_cmd(&a, false, AUTH_SECP_DHCHAP, AUTH_SPSP0, 4096, NULL, 4096),
		     GEN(NVME_SC_INVALID_OPCODE));
	conn_close(&a);
	/* Discovery is never authenticated, even for a host with a key. */
	conn_init(&d);
	TAP_CHECK_EQ(do_connect(&d, 0, NVME_CNTLID_DYNAMIC, NVME_DISCOVERY_NQN, HOST_UNI), 0);
	TAP_CHECK(!(le32_get(R->req.cqe.dw0) & NVME_CONNECT_RSP_AUTH_REQUIRED));
	TAP_CHECK_EQ(prop(&d, false, NVME_REG_CAP, 0), 0);
	conn_close(&d);
	drain();
}

static void test_bad_commands(void)
{
	struct fconn a, idle;
	uint8_t junk[64];

	memset(junk, 0, sizeof(junk));
	junk[0] = AUTH_TYPE_DHCHAP; /* a Reply out of sequence */
	junk[1] = AUTH_MSG_REPLY;
	/* Before Connect: sequence error, as for every command but Connect. */
	conn_init(&idle);
	TAP_CHECK_EQ(auth_cmd(&idle, true, AUTH_SECP_DHCHAP, AUTH_SPSP0, 64, junk, 64),
		     GEN(NVME_SC_CMD_SEQ_ERROR));
	conn_init(&a);
	TAP_CHECK_EQ(do_connect(&a, 0, NVME_CNTLID_DYNAMIC, SUBNQN, HOST_UNI), 0);
	/* Wrong SECP / SPSP0, zero length, SGL length differing from TL, too long. */
	TAP_CHECK_EQ(auth_cmd(&a, true, 0xea, AUTH_SPSP0, 64, junk, 64),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(auth_cmd(&a, true, AUTH_SECP_DHCHAP, 0x02, 64, junk, 64),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(auth_cmd(&a, true, AUTH_SECP_DHCHAP, AUTH_SPSP0, 0, NULL, 0),
		     GEN(NVME_SC_INVALID_FIELD));
	TAP_CHECK_EQ(auth_cmd(&a, true, AUTH_SECP_DHCHAP, AUTH_SPSP0, 64, junk, 32),
		     GEN(NVME_SC_SGL_INVALID_DATA));
	TAP_CHECK_EQ(auth_cmd(&a, true, AUTH_SECP_DHCHAP, AUTH_SPSP0, 8000, NULL, 8000),
		     GEN(NVME_SC_INVALID_FIELD));
	/* Garbage is not a command error: the protocol answers with Failure1. */
	TAP_CHECK_EQ(auth_cmd(&a, true, AUTH_SECP_DHCHAP, AUTH_SPSP0, 64, junk, 64), 0);
	/* An allocation length too short for the message fails the command... */
	TAP_CHECK_EQ(auth_cmd(&a, false, AUTH_SECP_DHCHAP, AUTH_SPSP0, 4, NULL, 4),
		     GEN(NVME_SC_INVALID_FIELD));
	/* ...and the Failure1 is still there for a proper Receive. */
	TAP_CHECK_EQ(auth_cmd(&a, false, AUTH_SECP_DHCHAP, AUTH_SPSP0, 64, NULL, 64), 0);
	TAP_CHECK_EQ(R->buf[1], AUTH_MSG_FAILURE1);
	TAP_CHECK_EQ(R->buf[7], AUTH_FAIL_INCORRECT_MESSAGE);
	TAP_CHECK_EQ(R->buf[8], 0); /* zero past the message */
	TAP_CHECK_EQ(identify_ctrl(&a), AUTH_REQUIRED);
	TAP_CHECK_EQ(a.disconnects, 0);
	conn_close(&a);
	drain();
}

static int parse(const char *json, char *err, size_t errlen)
{
	struct tgt t;
	int ret;

	if (tgt_init(&t))
		return -ENOMEM;
	ret = tgt_config_parse(&t, "bad.json", json, strlen(json), false, err, errlen);
	tgt_fini(&t);
	return ret;
}

static void test_config_errors(void)
{
	char json[1024], err[512], bad_crc[DHCHAP_SECRET_MAX];

#define CFG(hostkeys, subextra)                                                               \
	snprintf(json, sizeof(json),                                                          \
		 "{\"subsystems\":[{\"nqn\":\"" SUBNQN "\",%s\"hosts\":[{\"nqn\":\"" HOST_UNI \
		 "\"%s}]}]}",                                                                 \
		 subextra, hostkeys)
	char hk[256];

	snprintf(hk, sizeof(hk), ",\"dhchap_key\":\"%s\"", key_uni);
	CFG(hk, "\"dhchap_hashes\":[\"sha512\"],\"dhchap_dhgroups\":[\"ffdhe3072\",\"null\"],");
	TAP_CHECK_EQ(parse(json, err, sizeof(err)), 0);
	snprintf(bad_crc, sizeof(bad_crc), "%s", key_uni);
	bad_crc[11] = bad_crc[11] == 'A' ? 'B' : 'A';
	snprintf(hk, sizeof(hk), ",\"dhchap_key\":\"%s\"", bad_crc);
	CFG(hk, "");
	TAP_CHECK_EQ(parse(json, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "hosts[0].dhchap_key") && strstr(err, "CRC"));
	TAP_CHECK(!strstr(err, bad_crc)); /* never echo the secret */
	CFG(",\"dhchap_key\":\"DHHC-1:00:short:\"", "");
	TAP_CHECK_EQ(parse(json, err, sizeof(err)), -EINVAL);
	snprintf(hk, sizeof(hk), ",\"dhchap_ctrl_key\":\"%s\"", key_ctrl);
	CFG(hk, "");
	TAP_CHECK_EQ(parse(json, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "needs a \"dhchap_key\"") != NULL);
	CFG("", "\"dhchap_hashes\":[\"md5\"],");
	TAP_CHECK_EQ(parse(json, err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "dhchap_hashes") && strstr(err, "md5"));
	CFG("", "\"dhchap_dhgroups\":[\"null\",\"null\"],");
	TAP_CHECK_EQ(parse(json, err, sizeof(err)), -EINVAL);
	CFG("", "\"dhchap_dhgroups\":[],");
	TAP_CHECK_EQ(parse(json, err, sizeof(err)), -EINVAL);
	CFG("", "\"dhchap_hashes\":\"sha256\",");
	TAP_CHECK_EQ(parse(json, err, sizeof(err)), -EINVAL);
#undef CFG
}

static void make_secret(char *out, unsigned seed, unsigned len, unsigned hh)
{
	struct dhchap_key k;

	memset(&k, 0, sizeof(k));
	for (unsigned i = 0; i < len; i++)
		k.key[i] = (uint8_t)(seed * 17 + i * 29);
	k.len = (uint8_t)len;
	k.hh = (uint8_t)hh;
	dhchap_key_format(&k, out, DHCHAP_SECRET_MAX);
}

int main(void)
{
	char json[2048], err[512];

	R = calloc(1, sizeof(*R));
	make_secret(key_uni, 1, 32, 1);
	make_secret(key_bidi, 2, 48, 2);
	make_secret(key_ctrl, 3, 64, 3);
	make_secret(key_wrong, 4, 32, 0);
	snprintf(json, sizeof(json),
		 "{\"ports\":[{\"addr\":\"127.0.0.1\",\"port\":4420}],"
		 "\"subsystems\":[{\"nqn\":\"" SUBNQN "\","
		 "\"dhchap_hashes\":[\"sha384\",\"sha256\"],"
		 "\"dhchap_dhgroups\":[\"ffdhe2048\",\"null\"],"
		 "\"hosts\":[{\"nqn\":\"" HOST_UNI "\",\"dhchap_key\":\"%s\"},"
		 "{\"nqn\":\"" HOST_BIDI "\",\"dhchap_key\":\"%s\",\"dhchap_ctrl_key\":\"%s\"},"
		 "{\"nqn\":\"" HOST_PLAIN "\"}],"
		 "\"namespaces\":[{\"nsid\":1,\"backend\":\"memory\",\"size\":\"1M\"}]},"
		 "{\"nqn\":\"" DEFNQN "\",\"hosts\":[{\"nqn\":\"" HOST_UNI "\","
		 "\"dhchap_key\":\"%s\"}]}]}",
		 key_uni, key_bidi, key_ctrl, key_uni);
	if (tgt_init(&T) ||
	    tgt_config_parse(&T, "auth.json", json, strlen(json), true, err, sizeof(err))) {
		printf("# setup failed: %s\n", err);
		return 1;
	}
	if (ft_start())
		return 1;
	TAP_RUN(test_uni_admin_and_io);
	TAP_RUN(test_bidi);
	TAP_RUN(test_defaults);
	TAP_RUN(test_wrong_host_key);
	TAP_RUN(test_wrong_ctrl_key);
	TAP_RUN(test_reauth);
	TAP_RUN(test_no_key_host);
	TAP_RUN(test_bad_commands);
	TAP_RUN(test_config_errors);
	ft_stop();
	ft_free();
	return tap_done();
}
