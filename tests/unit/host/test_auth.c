/* Host side of DH-HMAC-CHAP (src/host/auth.c) against a fake controller over a socketpair: a
 * thread answers the host's Authentication Send / Receive capsules with src/auth's controller
 * state machine (struct dhchap_ctrl), Receive data in C2HData. Cases: uni- and bidirectional
 * success over every hash with the null group and ffdhe2048, what the Negotiate offers, host
 * lists, a wrong host key (Failure1), a wrong controller key (our Failure2, also when the
 * controller closes the queue instead of taking it), a controller that never asks
 * (authenticated anyway; one that does not support it: accepted only without a controller
 * key), a controller that closes the connection instead of answering, re-authentication,
 * AUTHREQ without a secret, and secret/list parsing. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "tap.h"
#include "auth/dhchap.h"
#include "common/le.h"
#include "fake_ctrl.h"
#include "host/auth.h"
#include "host/conn.h"
#include "proto/nvme.h"
#include "proto/pdu.h"

#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5"
#define SUBNQN	"nqn.2024-01.io.nvtcp:hostauth"
#define ATR	(1u << 17)
#define ASCR	(1u << 18)

static char key_host[DHCHAP_SECRET_MAX], key_ctrl[DHCHAP_SECRET_MAX];
static char key_wrong[DHCHAP_SECRET_MAX], key_host01[DHCHAP_SECRET_MAX];

enum fctl_mode {
	FCTL_AUTH,	     /* run the controller state machine */
	FCTL_REJECT,	     /* Authentication Send/Receive: Invalid Command Opcode */
	FCTL_CLOSE_REPLY,    /* close the connection instead of completing the Reply */
	FCTL_CLOSE_FAILURE2, /* close the connection instead of completing our Failure2 */
	FCTL_MODE_COUNT
};

/* The fake controller: one thread, one queue. Fields below "observed" are written by the
 * thread and read by the test after pthread_join. */
struct fctl {
	int fd;
	struct host_conn *conn;
	struct pdu_params p;
	enum fctl_mode mode;
	struct dhchap_ctrl c;
	pthread_t th;
	/* observed */
	int sends, recvs;
	bool bad_cmd;	       /* a capsule with wrong fields, or not in-capsule */
	uint32_t al;	       /* last allocation length */
	uint8_t hash, dhgroup; /* what the controller selected (saved before the wipe) */
	uint16_t tid;
	uint8_t negotiate[DHCHAP_NEGOTIATE_LEN];
	bool got_negotiate;
	uint8_t pdu[8192];
	uint8_t out[8192];
};

static bool fctl_write(struct fctl *f, const void *buf, size_t len)
{
	return write(f->fd, buf, len) == (ssize_t)len;
}

static void fctl_resp(struct fctl *f, uint16_t cid, uint16_t status)
{
	uint8_t b[sizeof(union wire_pdu)];

	fctl_write(f, b, fake_ctrl_build_resp(b, &f->p, cid, status, 0));
}

/* One capsule; returns false to stop. */
static bool fctl_step(struct fctl *f)
{
	struct wire_sqe *sqe = (struct wire_sqe *)(f->pdu + 8);
	struct wire_auth_cmd *a = (struct wire_auth_cmd *)sqe;
	uint32_t plen, datal, tl;
	uint8_t b[WIRE_PDO_MAX];
	uint16_t cid;

	if (fake_ctrl_read_full(f->fd, f->pdu, 8, 20000) < 0)
		return false;
	plen = le32_get(f->pdu + 4);
	if (f->pdu[0] != WIRE_PDU_CAPSULE_CMD || plen < 72 || plen > sizeof(f->pdu) ||
	    fake_ctrl_read_full(f->fd, f->pdu + 8, plen - 8, 20000) < 0) {
		f->bad_cmd = true;
		return false;
	}
	datal = f->pdu[3] ? plen - f->pdu[3] : 0;
	cid = le16_get(sqe->cid);
	tl = le32_get(a->tl_al);
	if (sqe->opc != NVME_FABRICS_OPC ||
	    (a->fctype != NVME_FCTYPE_AUTH_SEND && a->fctype != NVME_FCTYPE_AUTH_RECV)) {
		fctl_resp(f, cid, 0x4001); /* Invalid Command Opcode, DNR */
		return true;
	}
	if (a->secp != AUTH_SECP_DHCHAP || a->spsp0 != AUTH_SPSP0 || a->spsp1 != AUTH_SPSP1)
		f->bad_cmd = true;
	if (f->mode == FCTL_REJECT) {
		fctl_resp(f, cid, 0x4001);
		return true;
	}
	if (a->fctype == NVME_FCTYPE_AUTH_SEND) {
		const uint8_t *data = f->pdu + f->pdu[3];

		f->sends++;
		if (datal != tl || tl == 0) { /* must come in-capsule */
			f->bad_cmd = true;
			return false;
		}
		if (data[0] == AUTH_TYPE_COMMON && data[1] == AUTH_MSG_NEGOTIATE &&
		    tl >= DHCHAP_NEGOTIATE_LEN) {
			memcpy(f->negotiate, data, DHCHAP_NEGOTIATE_LEN);
			f->got_negotiate = true;
		}
		if (dhchap_ctrl_send(&f->c, data, tl) < 0)
			return false;
		if ((f->mode == FCTL_CLOSE_REPLY && data[1] == AUTH_MSG_REPLY) ||
		    (f->mode == FCTL_CLOSE_FAILURE2 && data[1] == AUTH_MSG_FAILURE2)) {
			/* As nvmet tearing the controller down before completing the command. */
			shutdown(f->fd, SHUT_RDWR);
			return false;
		}
		fctl_resp(f, cid, 0);
		return true;
	}
	f->recvs++;
	f->al = tl;
	if (tl == 0 || tl > sizeof(f->out)) {
		f->bad_cmd = true;
		return false;
	}
	memset(f->out, 0, tl);
	if (dhchap_ctrl_recv(&f->c, f->out, tl) < 0) {
		fctl_resp(f, cid, 0x4002); /* Invalid Field */
		return true;
	}
	fctl_write(f, b, pdu_build_c2h_data(b, cid, 0, tl, true, false, &f->p));
	fctl_write(f, f->out, tl);
	fctl_resp(f, cid, 0);
	return true;
}

static void *fctl_main(void *arg)
{
	struct fctl *f = arg;

	while (fctl_step(f))
		;
	return NULL;
}

/* Controller side: its keys (ctrl_secret NULL = unidirectional), allowed hash and group
 * (0 = any). Host side: a live queue qid on the other end of the socketpair. */
static int fctl_start(struct fctl *f, enum fctl_mode mode, const char *host_secret,
		      const char *ctrl_secret, unsigned hash, int group, uint16_t qid)
{
	struct host_conn_opts o = {.qid = qid,
				   .nr_slots = 31,
				   .incapsule_max = HOST_ADMIN_INCAPSULE,
				   .name = "test q0"};
	struct dhchap_key hk, ck;
	struct dhchap_params p = {.hostnqn = HOSTNQN, .subnqn = SUBNQN};
	uint8_t ic[sizeof(union wire_pdu)];
	int hfd, r;

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	TAP_CHECK_EQ(dhchap_key_parse(host_secret, &hk), 0);
	p.host_key = &hk;
	if (ctrl_secret) {
		TAP_CHECK_EQ(dhchap_key_parse(ctrl_secret, &ck), 0);
		p.ctrl_key = &ck;
	}
	if (hash) {
		p.hashes[0] = (uint8_t)hash;
		p.nr_hashes = 1;
	}
	if (group >= 0) {
		p.dhgroups[0] = (uint8_t)group;
		p.nr_dhgroups = 1;
	}
	TAP_CHECK_EQ(dhchap_ctrl_init(&f->c, &p), 0);
	r = fake_ctrl_socketpair(&hfd, &f->fd, &f->p);
	if (r < 0)
		return r;
	r = host_conn_open(hfd, &o, &f->conn);
	if (r < 0)
		return r;
	/* ICResp first (it waits in the socket), then the host's ICReq is read and dropped. */
	TAP_CHECK(fctl_write(f, ic, pdu_build_icresp(ic, 0, false, false, 65536)));
	r = host_conn_connect(f->conn, 5000);
	TAP_CHECK_EQ(r, 0);
	TAP_CHECK_EQ(fake_ctrl_read_full(f->fd, ic, 128, 20000), 0);
	TAP_CHECK_EQ(ic[0], WIRE_PDU_ICREQ);
	if (pthread_create(&f->th, NULL, fctl_main, f) != 0)
		return -EAGAIN;
	return r;
}

static void fctl_stop(struct fctl *f)
{
	host_conn_close(f->conn); /* EOF ends the thread */
	pthread_join(f->th, NULL);
	close(f->fd);
	f->hash = f->c.s.hash;
	f->dhgroup = f->c.s.dhgroup;
	f->tid = f->c.s.tid;
	dhchap_ctrl_fini(&f->c);
}

static struct host_auth *auth_new(const char *secret, const char *ctrl_secret, const char *hashes,
				  const char *groups)
{
	struct nvtcp_ctrl_opts o = {.dhchap_secret = secret,
				    .dhchap_ctrl_secret = ctrl_secret,
				    .dhchap_hashes = hashes,
				    .dhchap_dhgroups = groups};
	struct host_auth *a = NULL;
	char err[256] = "";
	int r = host_auth_create(&o, HOSTNQN, SUBNQN, 4, &a, err, sizeof(err));

	TAP_CHECK_EQ(r, 0);
	if (r)
		printf("# host_auth_create: %s\n", err);
	return a;
}

static bool has(const char *s, const char *what)
{
	bool ok = strstr(s, what) != NULL;

	if (!ok)
		printf("# \"%s\" not in \"%s\"\n", what, s);
	return ok;
}

/* ---- cases ------------------------------------------------------------------------------ */

/* Success for each hash x {null, ffdhe2048}, uni- or bidirectional, on queue 0 or an I/O
 * queue, with the controller picking the one allowed hash and group. */
static void run_success(unsigned hash, int group, bool bidi)
{
	struct host_auth *a = auth_new(key_host, bidi ? key_ctrl : NULL, NULL, NULL);
	struct fctl f;
	char err[256] = "";
	uint16_t qid = (uint16_t)(bidi ? 2 : 0);

	if (!a || fctl_start(&f, FCTL_AUTH, key_host, bidi ? key_ctrl : NULL, hash, group, qid)) {
		TAP_CHECK(0);
		host_auth_free(a);
		return;
	}
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, qid, ATR, 5000, err, sizeof(err)), 0);
	fctl_stop(&f);
	TAP_CHECK(!f.bad_cmd);
	TAP_CHECK(f.c.authenticated);
	TAP_CHECK_EQ(f.c.transactions_ok, 1u);
	TAP_CHECK_EQ(f.hash, hash);
	TAP_CHECK_EQ(f.dhgroup, (unsigned)group);
	/* Negotiate, Reply (+ Success2) / Challenge, Success1. */
	TAP_CHECK_EQ(f.sends, bidi ? 3 : 2);
	TAP_CHECK_EQ(f.recvs, 2);
	TAP_CHECK_EQ(f.al, 4096u);
	TAP_CHECK_EQ(host_auth_successes(a), 1ul);
	host_auth_free(a);
}

/* The default Negotiate offers every hash and every group (null first), as Linux does; host
 * lists narrow it, and an hh 01 (transformed) key works the same. */
static void test_negotiate_offer(void)
{
	const struct auth_protocol_desc *d;
	struct host_auth *a = auth_new(key_host01, NULL, NULL, NULL);
	struct fctl f;
	char err[256] = "";

	TAP_CHECK_EQ(fctl_start(&f, FCTL_AUTH, key_host01, NULL, 0, -1, 0), 0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 0, ATR, 5000, err, sizeof(err)), 0);
	fctl_stop(&f);
	host_auth_free(a);
	TAP_CHECK(f.got_negotiate);
	d = (const struct auth_protocol_desc *)(f.negotiate + sizeof(struct auth_negotiate));
	TAP_CHECK_EQ(f.negotiate[7], 1); /* napd */
	TAP_CHECK_EQ(d->authid, AUTH_DHCHAP_AUTH_ID);
	TAP_CHECK_EQ(d->halen, 3);
	TAP_CHECK_EQ(d->dhlen, 6);
	TAP_CHECK_EQ(d->idlist[0], DHCHAP_HASH_SHA256);
	TAP_CHECK_EQ(d->idlist[30], DHCHAP_DHGROUP_NULL);
	TAP_CHECK_EQ(d->idlist[35], DHCHAP_DHGROUP_8192);
	/* No controller preference: its first (sha256, null). */
	TAP_CHECK_EQ(f.hash, DHCHAP_HASH_SHA256);

	/* Host offers sha512 and ffdhe3072 only. */
	a = auth_new(key_host, NULL, "sha512", "ffdhe3072");
	TAP_CHECK_EQ(fctl_start(&f, FCTL_AUTH, key_host, NULL, 0, -1, 0), 0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 0, ATR, 5000, err, sizeof(err)), 0);
	fctl_stop(&f);
	host_auth_free(a);
	d = (const struct auth_protocol_desc *)(f.negotiate + sizeof(struct auth_negotiate));
	TAP_CHECK_EQ(d->halen, 1);
	TAP_CHECK_EQ(d->dhlen, 1);
	TAP_CHECK_EQ(f.hash, DHCHAP_HASH_SHA512);
	TAP_CHECK_EQ(f.dhgroup, DHCHAP_DHGROUP_3072);
	TAP_CHECK(f.c.authenticated);

	/* Nothing in common: the controller refuses with Failure1 "hash not usable". */
	a = auth_new(key_host, NULL, "sha256", NULL);
	TAP_CHECK_EQ(fctl_start(&f, FCTL_AUTH, key_host, NULL, DHCHAP_HASH_SHA384, -1, 0), 0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 0, ATR, 5000, err, sizeof(err)),
		     -EKEYREJECTED);
	fctl_stop(&f);
	host_auth_free(a);
	TAP_CHECK(has(err, "controller refused the exchange (reason 0x4"));
	TAP_CHECK(!f.c.authenticated);
}

static void test_wrong_host_key(void)
{
	struct host_auth *a = auth_new(key_wrong, NULL, NULL, NULL);
	struct fctl f;
	char err[256] = "";

	TAP_CHECK_EQ(fctl_start(&f, FCTL_AUTH, key_host, NULL, DHCHAP_HASH_SHA256,
				DHCHAP_DHGROUP_2048, 0),
		     0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 0, ATR, 5000, err, sizeof(err)),
		     -EKEYREJECTED);
	fctl_stop(&f);
	TAP_CHECK(has(err, "DH-HMAC-CHAP authentication failed: controller rejected our key "
			   "(reason 0x1"));
	TAP_CHECK(!f.c.authenticated);
	TAP_CHECK_EQ(f.c.status, AUTH_FAIL_FAILED);
	TAP_CHECK_EQ(host_auth_successes(a), 0ul);
	host_auth_free(a);
}

/* The host expects key_wrong from the controller, which holds key_ctrl. With FCTL_AUTH the
 * controller takes our Failure2; with FCTL_CLOSE_FAILURE2 it closes the queue instead (nvmet
 * did in CI), and the error must still name the controller's response, not the lost message. */
static void run_wrong_ctrl_key(enum fctl_mode mode)
{
	struct host_auth *a = auth_new(key_host, key_wrong, NULL, NULL);
	struct fctl f;
	char err[256] = "";

	TAP_CHECK_EQ(fctl_start(&f, mode, key_host, key_ctrl, DHCHAP_HASH_SHA512,
				DHCHAP_DHGROUP_NULL, 0),
		     0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 0, ATR, 5000, err, sizeof(err)),
		     -EKEYREJECTED);
	fctl_stop(&f);
	TAP_CHECK(has(err, "controller failed to authenticate itself"));
	/* We told the controller with Failure2: its queue is not authenticated. */
	TAP_CHECK_EQ(f.sends, 3);
	TAP_CHECK(!f.c.authenticated);
	if (mode == FCTL_AUTH)
		TAP_CHECK_EQ(f.c.status, AUTH_FAIL_FAILED);
	else
		TAP_CHECK(has(err, "telling it so failed"));
	host_auth_free(a);
}

static void test_wrong_ctrl_key(void)
{
	run_wrong_ctrl_key(FCTL_AUTH);
}

static void test_wrong_ctrl_key_then_closed(void)
{
	run_wrong_ctrl_key(FCTL_CLOSE_FAILURE2);
}

/* AUTHREQ clear but a secret configured: authenticate anyway. */
static void test_never_asks(void)
{
	struct host_auth *a = auth_new(key_host, key_ctrl, NULL, NULL);
	struct fctl f;
	char err[256] = "";

	TAP_CHECK_EQ(fctl_start(&f, FCTL_AUTH, key_host, key_ctrl, 0, -1, 1), 0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 1, 0, 5000, err, sizeof(err)), 0);
	fctl_stop(&f);
	TAP_CHECK(f.c.authenticated);
	TAP_CHECK_EQ(f.sends, 3);
	host_auth_free(a);
}

/* A controller without in-band authentication (Invalid Opcode) that never asked: fine with a
 * host secret only, refused when we wanted the controller to prove itself. */
static void test_not_supported(void)
{
	struct host_auth *a = auth_new(key_host, NULL, NULL, NULL);
	struct fctl f;
	char err[256] = "";

	TAP_CHECK_EQ(fctl_start(&f, FCTL_REJECT, key_host, NULL, 0, -1, 0), 0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 0, 0, 5000, err, sizeof(err)), 0);
	fctl_stop(&f);
	host_auth_free(a);
	TAP_CHECK(!f.bad_cmd);

	a = auth_new(key_host, key_ctrl, NULL, NULL);
	TAP_CHECK_EQ(fctl_start(&f, FCTL_REJECT, key_host, NULL, 0, -1, 0), 0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 0, 0, 5000, err, sizeof(err)),
		     -EKEYREJECTED);
	fctl_stop(&f);
	TAP_CHECK(has(err, "controller failed to authenticate itself"));

	/* It asked (ATR) but then fails the command: an error, not a silent success. */
	TAP_CHECK_EQ(fctl_start(&f, FCTL_REJECT, key_host, NULL, 0, -1, 0), 0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 0, ATR, 5000, err, sizeof(err)), -EPROTO);
	fctl_stop(&f);
	TAP_CHECK(has(err, "Authentication Send"));
	host_auth_free(a);
}

/* The controller drops the connection instead of answering (nvmet's Failure1 race): a prompt
 * error, not a hang. */
static void test_connection_closed(void)
{
	struct host_auth *a = auth_new(key_wrong, NULL, NULL, NULL);
	struct fctl f;
	char err[256] = "";
	uint64_t t0 = host_now_ms();
	int r;

	TAP_CHECK_EQ(fctl_start(&f, FCTL_CLOSE_REPLY, key_host, NULL, 0, -1, 0), 0);
	r = host_auth_queue_connected(a, f.conn, 0, ATR, 30000, err, sizeof(err));
	TAP_CHECK(r < 0 && r != -ETIMEDOUT);
	TAP_CHECK(host_now_ms() - t0 < 10000);
	TAP_CHECK(has(err, "DH-HMAC-CHAP authentication failed"));
	fctl_stop(&f);
	host_auth_free(a);
}

/* Re-authentication: a second transaction on the live queue, with a new transaction id. */
static void test_reauth(void)
{
	struct host_auth *a = auth_new(key_host, key_ctrl, NULL, NULL);
	struct fctl f;
	char err[256] = "";
	uint16_t tid1;

	TAP_CHECK_EQ(fctl_start(&f, FCTL_AUTH, key_host, key_ctrl, DHCHAP_HASH_SHA384,
				DHCHAP_DHGROUP_2048, 0),
		     0);
	TAP_CHECK_EQ(host_auth_queue_connected(a, f.conn, 0, ATR, 5000, err, sizeof(err)), 0);
	/* The thread is parked in read(): its transaction state is stable here. */
	tid1 = f.c.s.tid;
	TAP_CHECK_EQ(host_auth_run(a, f.conn, 0, 5000, err, sizeof(err)), 0);
	fctl_stop(&f);
	TAP_CHECK_EQ(f.c.transactions_ok, 2u);
	TAP_CHECK(f.tid != tid1);
	TAP_CHECK_EQ(host_auth_successes(a), 2ul);
	host_auth_free(a);
	TAP_CHECK_EQ(host_auth_run(NULL, NULL, 0, 5000, err, sizeof(err)), -EINVAL);
}

static void test_no_secret_and_ascr(void)
{
	struct host_auth *a = auth_new(key_host, NULL, NULL, NULL);
	char err[256] = "";

	/* No secret: fine unless asked; asked: a clear refusal without any exchange. */
	TAP_CHECK_EQ(host_auth_queue_connected(NULL, NULL, 0, 0, 5000, err, sizeof(err)), 0);
	TAP_CHECK_EQ(host_auth_queue_connected(NULL, NULL, 0, ATR, 5000, err, sizeof(err)),
		     -EACCES);
	TAP_CHECK(has(err, "requires DH-HMAC-CHAP authentication"));
	TAP_CHECK(has(err, "--dhchap-secret"));
	TAP_CHECK_EQ(host_auth_queue_connected(a, NULL, 0, ATR | ASCR, 5000, err, sizeof(err)),
		     -EOPNOTSUPP);
	TAP_CHECK(has(err, "secure channel concatenation"));
	host_auth_free(a);
}

static void test_create_errors(void)
{
	struct nvtcp_ctrl_opts o = {0};
	struct host_auth *a = (struct host_auth *)&o;
	char err[256] = "", bad[DHCHAP_SECRET_MAX];

	/* No secret: no state. */
	TAP_CHECK_EQ(host_auth_create(&o, HOSTNQN, SUBNQN, 2, &a, err, sizeof(err)), 0);
	TAP_CHECK(a == NULL);
	o.dhchap_ctrl_secret = key_ctrl;
	TAP_CHECK_EQ(host_auth_create(&o, HOSTNQN, SUBNQN, 2, &a, err, sizeof(err)), -EINVAL);
	TAP_CHECK(has(err, "needs a host secret"));
	o.dhchap_ctrl_secret = NULL;
	o.dhchap_secret = "DHHC-1:00:tooshort:";
	TAP_CHECK_EQ(host_auth_create(&o, HOSTNQN, SUBNQN, 2, &a, err, sizeof(err)), -EINVAL);
	TAP_CHECK(has(err, "host secret: malformed"));
	TAP_CHECK(!strstr(err, "tooshort")); /* never echo a secret */
	/* One base64 character changed: CRC mismatch. */
	snprintf(bad, sizeof(bad), "%s", key_host);
	bad[12] = bad[12] == 'A' ? 'B' : 'A';
	o.dhchap_secret = bad;
	TAP_CHECK(host_auth_create(&o, HOSTNQN, SUBNQN, 2, &a, err, sizeof(err)) < 0);
	TAP_CHECK(has(err, "CRC"));
	o.dhchap_secret = key_host;
	o.dhchap_hashes = "sha256,md5";
	TAP_CHECK_EQ(host_auth_create(&o, HOSTNQN, SUBNQN, 2, &a, err, sizeof(err)), -EINVAL);
	TAP_CHECK(has(err, "md5"));
	o.dhchap_hashes = "sha256,sha256,sha512";
	o.dhchap_dhgroups = "ffdhe1024";
	TAP_CHECK_EQ(host_auth_create(&o, HOSTNQN, SUBNQN, 2, &a, err, sizeof(err)), -EINVAL);
	TAP_CHECK(has(err, "ffdhe1024"));
	o.dhchap_dhgroups = "null,ffdhe8192";
	TAP_CHECK_EQ(host_auth_create(&o, HOSTNQN, SUBNQN, 2, &a, err, sizeof(err)), 0);
	TAP_CHECK(a != NULL);
	host_auth_free(a);
}

static void make_key(char *out, uint8_t hh, uint8_t len)
{
	struct dhchap_key k = {.len = len, .hh = hh};

	TAP_CHECK_EQ(RAND_bytes(k.key, len), 1);
	TAP_CHECK(dhchap_key_format(&k, out, DHCHAP_SECRET_MAX) > 0);
}

static void test_keys(void)
{
	make_key(key_host, 0, 32);
	make_key(key_ctrl, 2, 48);
	make_key(key_wrong, 0, 32);
	make_key(key_host01, 1, 32);
}

int main(void)
{
	static const int groups[] = {DHCHAP_DHGROUP_NULL, DHCHAP_DHGROUP_2048};

	TAP_RUN(test_keys);
	/* One case per hash x group x direction. */
	for (unsigned h = DHCHAP_HASH_SHA256; h < DHCHAP_HASH_COUNT; h++) {
		for (unsigned g = 0; g < ARRAY_SIZE(groups); g++) {
			for (int bidi = 0; bidi < 2; bidi++) {
				char name[96];

				snprintf(name, sizeof(name), "success %s %s %s",
					 dhchap_hash_name(h), dhchap_dhgroup_name(groups[g]),
					 bidi ? "bidirectional (I/O queue)" : "unidirectional");
				tap_begin();
				run_success(h, groups[g], bidi);
				tap_end(name);
			}
		}
	}
	TAP_RUN(test_negotiate_offer);
	TAP_RUN(test_wrong_host_key);
	TAP_RUN(test_wrong_ctrl_key);
	TAP_RUN(test_wrong_ctrl_key_then_closed);
	TAP_RUN(test_never_asks);
	TAP_RUN(test_not_supported);
	TAP_RUN(test_connection_closed);
	TAP_RUN(test_reauth);
	TAP_RUN(test_no_secret_and_ascr);
	TAP_RUN(test_create_errors);
	return tap_done();
}
