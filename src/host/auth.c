/* Host side of DH-HMAC-CHAP in-band authentication: secrets and offered algorithms per
 * controller, one preallocated transaction slot per queue, and the exchange itself
 * (Authentication Send / Receive, FCTYPE 05h / 06h) driven by src/auth's host state machine.
 * Layer: host. Blocking (bounded per command), on the thread that owns the queue. */
#include "auth.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "../auth/dhchap.h"
#include "../common/compiler.h"
#include "../common/le.h"
#include "../common/log.h"
#include "../common/errbuf.h"
#include "../proto/nvme.h"

#define HOST_AUTH_AL	    4096 /* Receive allocation length, as the Linux host (CHAP_BUF_SIZE) */
#define HOST_AUTH_MAX_STEPS 8	 /* Negotiate, Challenge, Reply, Success1, Success2: 5 at most */
#define HOST_AUTH_ATR	    (1u << 17) /* Connect response DW0: AUTHREQ.ATR */
#define HOST_AUTH_ASCR	    (1u << 18) /* AUTHREQ.ASCR: secure channel concatenation */

_Static_assert(HOST_AUTH_AL >= DHCHAP_MAX_MSG_LEN, "largest DH-HMAC-CHAP message");

/* One queue's transaction: owned by the queue's thread while it runs. */
struct host_auth_slot {
	struct dhchap_host h;
	uint8_t buf[HOST_AUTH_AL] __attribute__((aligned(8)));
};

struct host_auth {
	char hostnqn[DHCHAP_NQN_MAX];
	char subnqn[DHCHAP_NQN_MAX];
	struct dhchap_key host_key;
	struct dhchap_key ctrl_key;
	struct dhchap_params params; /* points at the fields above */
	atomic_uint tid;	     /* transaction ids, shared by every queue */
	atomic_ulong successes;
	unsigned nr_slots;
	struct host_auth_slot *slots; /* nr_slots, indexed by qid */
};

static const char *host_auth_reason_str(uint8_t why)
{
	switch (why) {
	case AUTH_FAIL_FAILED:
		return "authentication failed";
	case AUTH_FAIL_NOT_USABLE:
		return "authentication protocol not usable";
	case AUTH_FAIL_CONCAT_MISMATCH:
		return "secure channel concatenation mismatch";
	case AUTH_FAIL_HASH_UNUSABLE:
		return "hash function not usable";
	case AUTH_FAIL_DHGROUP_UNUSABLE:
		return "DH group not usable";
	case AUTH_FAIL_INCORRECT_PAYLOAD:
		return "incorrect payload";
	case AUTH_FAIL_INCORRECT_MESSAGE:
		return "incorrect protocol message";
	default:
		return "unknown reason";
	}
}

/* Parse a comma-separated list of names into ids; from_name returns an id or -EINVAL. */
static int host_auth_parse_list(const char *s, int (*from_name)(const char *), uint8_t *ids,
				uint8_t *nr, unsigned max, const char **bad)
{
	char name[32];

	*nr = 0;
	while (s && *s) {
		size_t n = strcspn(s, ",");
		int id;

		if (n == 0 || n >= sizeof(name) || *nr >= max) {
			*bad = s;
			return -EINVAL;
		}
		memcpy(name, s, n);
		name[n] = '\0';
		id = from_name(name);
		if (id < 0 || (from_name == dhchap_hash_from_name && id == DHCHAP_HASH_NONE)) {
			*bad = s;
			return -EINVAL;
		}
		for (unsigned i = 0; i < *nr; i++) {
			if (ids[i] == id)
				goto next; /* listed twice: once is enough */
		}
		ids[(*nr)++] = (uint8_t)id;
	next:
		s += n;
		if (*s == ',')
			s++;
	}
	return 0;
}

static const char *host_auth_key_strerror(int r)
{
	return r == -EBADMSG ? "its CRC does not match (mistyped?)"
			     : "malformed (expected \"DHHC-1:hh:<base64 of a 32, 48 or 64-byte "
			       "key and its CRC>:\", as nvme gen-dhchap-key prints)";
}

int host_auth_create(const struct nvtcp_ctrl_opts *opts, const char *hostnqn, const char *subnqn,
		     unsigned nr_queues, struct host_auth **out, char *err, size_t errlen)
{
	struct host_auth *a;
	const char *bad = NULL;
	int r;

	*out = NULL;
	if (!opts->dhchap_secret || !*opts->dhchap_secret) {
		if (opts->dhchap_ctrl_secret && *opts->dhchap_ctrl_secret) {
			errbuf_set(err, errlen,
				   "a DH-HMAC-CHAP controller secret needs a host secret too "
				   "(--dhchap-secret)");
			return -EINVAL;
		}
		return 0;
	}
	if (strlen(hostnqn) >= DHCHAP_NQN_MAX || strlen(subnqn) >= DHCHAP_NQN_MAX) {
		errbuf_set(err, errlen, "DH-HMAC-CHAP: NQN longer than %d characters",
			   DHCHAP_NQN_MAX - 1);
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->nr_slots = nr_queues ? nr_queues : 1;
	a->slots = calloc(a->nr_slots, sizeof(*a->slots));
	if (!a->slots) {
		r = -ENOMEM;
		goto err_free;
	}
	snprintf(a->hostnqn, sizeof(a->hostnqn), "%s", hostnqn);
	snprintf(a->subnqn, sizeof(a->subnqn), "%s", subnqn);
	a->params.hostnqn = a->hostnqn;
	a->params.subnqn = a->subnqn;
	r = dhchap_key_parse(opts->dhchap_secret, &a->host_key);
	if (r < 0) {
		errbuf_set(err, errlen, "DH-HMAC-CHAP host secret: %s", host_auth_key_strerror(r));
		goto err_free;
	}
	a->params.host_key = &a->host_key;
	if (opts->dhchap_ctrl_secret && *opts->dhchap_ctrl_secret) {
		r = dhchap_key_parse(opts->dhchap_ctrl_secret, &a->ctrl_key);
		if (r < 0) {
			errbuf_set(err, errlen, "DH-HMAC-CHAP controller secret: %s",
				   host_auth_key_strerror(r));
			goto err_free;
		}
		a->params.ctrl_key = &a->ctrl_key;
	}
	r = host_auth_parse_list(opts->dhchap_hashes, dhchap_hash_from_name, a->params.hashes,
				 &a->params.nr_hashes, DHCHAP_HASH_COUNT, &bad);
	if (r < 0) {
		errbuf_set(err, errlen,
			   "DH-HMAC-CHAP hashes: bad entry at \"%s\" (use sha256, sha384, "
			   "sha512, comma-separated)",
			   bad);
		goto err_free;
	}
	r = host_auth_parse_list(opts->dhchap_dhgroups, dhchap_dhgroup_from_name,
				 a->params.dhgroups, &a->params.nr_dhgroups, DHCHAP_DHGROUP_COUNT,
				 &bad);
	if (r < 0) {
		errbuf_set(err, errlen,
			   "DH-HMAC-CHAP DH groups: bad entry at \"%s\" (use null, ffdhe2048 .. "
			   "ffdhe8192, comma-separated)",
			   bad);
		goto err_free;
	}
	atomic_init(&a->tid, 1);
	*out = a;
	return 0;

err_free:
	host_auth_free(a);
	return r;
}

void host_auth_free(struct host_auth *a)
{
	if (!a)
		return;
	for (unsigned i = 0; a->slots && i < a->nr_slots; i++)
		dhchap_host_fini(&a->slots[i].h);
	if (a->slots)
		OPENSSL_cleanse(a->slots, a->nr_slots * sizeof(*a->slots));
	free(a->slots);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

unsigned long host_auth_successes(const struct host_auth *a)
{
	return a ? atomic_load(&a->successes) : 0;
}

/* One Authentication Send (buf, len = TL, in-capsule) or Receive (len = AL, C2HData). */
static int host_auth_cmd(struct host_conn *conn, bool send, void *buf, uint32_t len, int timeout_ms)
{
	struct wire_sqe sqe = {.opc = NVME_FABRICS_OPC};
	struct wire_auth_cmd *c = (struct wire_auth_cmd *)&sqe;

	c->fctype = send ? NVME_FCTYPE_AUTH_SEND : NVME_FCTYPE_AUTH_RECV;
	c->secp = AUTH_SECP_DHCHAP;
	c->spsp0 = AUTH_SPSP0;
	c->spsp1 = AUTH_SPSP1;
	le32_put(c->tl_al, len);
	return host_conn_exec(conn, &sqe, buf, len, send, timeout_ms, NULL);
}

/* The transaction on one queue. probing: the controller did not ask (AUTHREQ.ATR clear), so
 * an error status on the first Send means it does not do in-band authentication
 * (-EOPNOTSUPP, no message). */
static int host_auth_transaction(struct host_auth *a, struct host_conn *conn, uint16_t qid,
				 int timeout_ms, bool probing, char *err, size_t errlen)
{
	struct host_auth_slot *slot;
	struct dhchap_host *h;
	bool ctrl_mismatch = false;
	uint16_t tid;
	int r = 0;

	if (qid >= a->nr_slots) {
		errbuf_set(err, errlen, "queue %u: no authentication slot", qid);
		return -EINVAL;
	}
	slot = &a->slots[qid];
	h = &slot->h;
	dhchap_host_fini(h); /* wipe what a previous transaction left */
	tid = (uint16_t)atomic_fetch_add(&a->tid, 1);
	r = dhchap_host_init(h, &a->params, tid);
	if (r < 0) {
		errbuf_set(err, errlen, "queue %u: DH-HMAC-CHAP setup failed: %s", qid,
			   strerror(-r));
		return r;
	}
	for (unsigned step = 0; !dhchap_host_finished(h); step++) {
		bool send = dhchap_host_wants_send(h);

		if (step == HOST_AUTH_MAX_STEPS) {
			r = -EPROTO;
			break;
		}
		if (send) {
			int n = dhchap_host_send(h, slot->buf, sizeof(slot->buf));

			if (n < 0) {
				errbuf_set(err, errlen,
					   "queue %u: DH-HMAC-CHAP message build failed: %s", qid,
					   strerror(-n));
				r = n;
				goto out;
			}
			r = host_auth_cmd(conn, true, slot->buf, (uint32_t)n, timeout_ms);
		} else {
			enum dhchap_host_state before = h->state;

			memset(slot->buf, 0, sizeof(slot->buf));
			r = host_auth_cmd(conn, false, slot->buf, sizeof(slot->buf), timeout_ms);
			if (r == 0)
				r = dhchap_host_recv(h, slot->buf, sizeof(slot->buf));
			/* Our check of the controller's response R2 failed. */
			if (r == 0 && before == DHCHAP_HOST_SUCCESS1 &&
			    h->state == DHCHAP_HOST_FAILURE2 && h->status == AUTH_FAIL_FAILED)
				ctrl_mismatch = true;
		}
		if (r > 0 && step == 0 && probing) {
			r = -EOPNOTSUPP;
			goto out;
		}
		if (r != 0 && ctrl_mismatch) {
			/* Our Failure2 did not get through: the controller may close the queue
			 * once it sent Success1 (nvmet does, at times). The cause stays the
			 * controller's response, not the lost message. */
			errbuf_set(err, errlen,
				   "DH-HMAC-CHAP authentication failed: controller failed to "
				   "authenticate itself (its response does not match "
				   "--dhchap-ctrl-secret) on queue %u; telling it so failed: %s",
				   qid, r < 0 ? strerror(-r) : nvtcp_status_str((uint16_t)r));
			r = -EKEYREJECTED;
			goto out;
		}
		if (r > 0) {
			errbuf_set(err, errlen,
				   "DH-HMAC-CHAP authentication failed on queue %u: the controller "
				   "failed Authentication %s: %s",
				   qid, send ? "Send" : "Receive", nvtcp_status_str((uint16_t)r));
			r = -EPROTO;
			goto out;
		}
		if (r < 0) {
			errbuf_set(err, errlen,
				   "DH-HMAC-CHAP authentication failed on queue %u: %s during "
				   "Authentication %s (a controller that refuses the key may "
				   "also just close the connection)",
				   qid, strerror(-r), send ? "Send" : "Receive");
			goto out;
		}
	}
	if (h->state == DHCHAP_HOST_DONE) {
		atomic_fetch_add(&a->successes, 1);
		/* As the Linux host: the admin queue at info level, I/O queues at debug. */
		log_msg(qid ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO,
			"%s: authenticated with hash %s dhgroup %s%s", conn->name,
			dhchap_hash_name(h->s.hash), dhchap_dhgroup_name(h->s.dhgroup),
			a->params.ctrl_key ? ", controller authenticated" : "");
		r = 0;
	} else if (h->peer_failure && h->status != AUTH_FAIL_FAILED) {
		errbuf_set(err, errlen,
			   "DH-HMAC-CHAP authentication failed: controller refused the exchange "
			   "(reason %#x: %s) on queue %u; check --dhchap-hash/--dhchap-dhgroup",
			   h->status, host_auth_reason_str(h->status), qid);
		r = -EKEYREJECTED;
	} else if (h->peer_failure) {
		errbuf_set(err, errlen,
			   "DH-HMAC-CHAP authentication failed: controller rejected our key "
			   "(reason %#x: %s) on queue %u; check --dhchap-secret and --hostnqn",
			   h->status, host_auth_reason_str(h->status), qid);
		r = -EKEYREJECTED;
	} else if (ctrl_mismatch) {
		errbuf_set(err, errlen,
			   "DH-HMAC-CHAP authentication failed: controller failed to "
			   "authenticate itself (its response does not match "
			   "--dhchap-ctrl-secret) on queue %u",
			   qid);
		r = -EKEYREJECTED;
	} else {
		errbuf_set(err, errlen,
			   "DH-HMAC-CHAP authentication failed on queue %u: %s (reason %#x: %s)",
			   qid, r == -EPROTO ? "too many messages" : "protocol error", h->status,
			   host_auth_reason_str(h->status));
		r = -EPROTO;
	}
out:
	dhchap_host_fini(h);
	return r;
}

int host_auth_queue_connected(struct host_auth *a, struct host_conn *conn, uint16_t qid,
			      uint32_t connect_dw0, int timeout_ms, char *err, size_t errlen)
{
	bool required = connect_dw0 & HOST_AUTH_ATR;
	int r;

	if (connect_dw0 & HOST_AUTH_ASCR) {
		errbuf_set(err, errlen,
			   "queue %u: the controller requires secure channel concatenation "
			   "(AUTHREQ.ASCR), which nvtcp does not support",
			   qid);
		return -EOPNOTSUPP;
	}
	if (!a) {
		if (!required)
			return 0;
		errbuf_set(err, errlen,
			   "queue %u: the controller requires DH-HMAC-CHAP authentication: give "
			   "the host secret (--dhchap-secret or --dhchap-secret-file)",
			   qid);
		return -EACCES;
	}
	/* The discovery controller is never authenticated unless it asks. */
	if (!required && strcmp(a->subnqn, NVME_DISCOVERY_NQN) == 0)
		return 0;
	r = host_auth_transaction(a, conn, qid, timeout_ms, !required, err, errlen);
	if (r != -EOPNOTSUPP)
		return r;
	if (a->params.ctrl_key) {
		errbuf_set(err, errlen,
			   "DH-HMAC-CHAP authentication failed: controller failed to authenticate "
			   "itself (it does not do in-band authentication, but "
			   "--dhchap-ctrl-secret was given) on queue %u",
			   qid);
		return -EKEYREJECTED;
	}
	log_info("%s: the controller does not use DH-HMAC-CHAP: continuing without it", conn->name);
	return 0;
}

int host_auth_run(struct host_auth *a, struct host_conn *conn, uint16_t qid, int timeout_ms,
		  char *err, size_t errlen)
{
	if (!a) {
		errbuf_set(err, errlen, "no DH-HMAC-CHAP secret configured");
		return -EINVAL;
	}
	return host_auth_transaction(a, conn, qid, timeout_ms, false, err, errlen);
}
