/* In-band authentication on the target: Authentication Send / Receive (Fabrics FCTYPE 05h/06h)
 * running the controller side of DH-HMAC-CHAP (src/auth) for every queue, admin and I/O, of a
 * controller whose host has a "dhchap_key". Until a queue has authenticated, every command on it
 * other than Connect and Authentication Send/Receive fails with Authentication Required, as
 * nvmet_check_auth_status does.
 * Layer: target (core). Runs on the queue's thread; each queue touches only its own slot. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/le.h"
#include "../common/log.h"
#include "core.h"

/* Largest Authentication Send we accept: a Reply with SHA-512 and ffdhe8192 is 1168 bytes. */
#define AUTH_MAX_SEND 4096
/* Largest Authentication Receive buffer (the kernel host asks for 4096). */
#define AUTH_MAX_RECV 65536

struct tgt_auth {
	struct dhchap_key host_key;
	struct dhchap_key ctrl_key;
	bool has_ctrl_key;
	struct dhchap_params params;
	struct dhchap_ctrl *queues[TGT_MAX_QUEUES + 1]; /* [qid], owned by that queue's thread */
};

static const struct tgt_host *auth_find_host(const struct tgt_subsys *s, const char *hostnqn)
{
	const struct list_head *p;

	list_for_each (p, &s->hosts) {
		const struct tgt_host *h = list_entry(p, struct tgt_host, entry);

		if (strcmp(h->nqn, hostnqn) == 0)
			return h;
	}
	return NULL;
}

int tgt_auth_ctrl_setup(struct tgt_ctrl *ctrl)
{
	struct tgt_core_subsys *cs = tgt_core_subsys(ctrl->subsys);
	const struct tgt_host *host;
	struct tgt_auth *a;

	if (ctrl->subsys->is_discovery)
		return 0;
	host = auth_find_host(ctrl->subsys, ctrl->hostnqn);
	if (!host || !host->dhchap_key)
		return 0;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	/* Validated when the configuration was loaded; checked again rather than trusted. */
	if (dhchap_key_parse(host->dhchap_key, &a->host_key) ||
	    (host->dhchap_ctrl_key && dhchap_key_parse(host->dhchap_ctrl_key, &a->ctrl_key))) {
		log_err("ctrl %u (%s): host %s has an invalid DH-HMAC-CHAP key", ctrl->cntlid,
			ctrl->subsys->nqn, ctrl->hostnqn);
		explicit_bzero(a, sizeof(*a)); /* the host key may have parsed */
		free(a);
		return -EINVAL;
	}
	a->has_ctrl_key = host->dhchap_ctrl_key != NULL;
	a->params.hostnqn = ctrl->hostnqn;
	a->params.subnqn = ctrl->subsys->nqn;
	a->params.host_key = &a->host_key;
	a->params.ctrl_key = a->has_ctrl_key ? &a->ctrl_key : NULL;
	memcpy(a->params.hashes, cs->dhchap_hashes, sizeof(a->params.hashes));
	a->params.nr_hashes = cs->nr_dhchap_hashes;
	memcpy(a->params.dhgroups, cs->dhchap_dhgroups, sizeof(a->params.dhgroups));
	a->params.nr_dhgroups = cs->nr_dhchap_dhgroups;
	ctrl->auth = a;
	return 0;
}

void tgt_auth_ctrl_free(struct tgt_ctrl *ctrl)
{
	struct tgt_auth *a = ctrl->auth;

	if (!a)
		return;
	for (unsigned i = 0; i <= TGT_MAX_QUEUES; i++) {
		if (a->queues[i]) {
			dhchap_ctrl_fini(a->queues[i]);
			free(a->queues[i]);
		}
	}
	explicit_bzero(a, sizeof(*a));
	free(a);
	ctrl->auth = NULL;
}

int tgt_auth_queue_setup(struct tgt_queue *q)
{
	struct tgt_auth *a = q->ctrl->auth;
	struct dhchap_ctrl *c;

	if (!a)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (dhchap_ctrl_init(c, &a->params)) {
		free(c);
		return -EINVAL;
	}
	if (a->queues[q->qid]) {
		dhchap_ctrl_fini(a->queues[q->qid]);
		free(a->queues[q->qid]);
	}
	a->queues[q->qid] = c;
	return (int)NVME_CONNECT_RSP_AUTH_REQUIRED;
}

static struct dhchap_ctrl *auth_queue(const struct tgt_queue *q)
{
	return q->ctrl && q->ctrl->auth ? q->ctrl->auth->queues[q->qid] : NULL;
}

bool tgt_auth_queue_ok(const struct tgt_queue *q)
{
	const struct dhchap_ctrl *c;

	if (!q->ctrl || !q->ctrl->auth)
		return true;
	c = auth_queue(q);
	return c && c->authenticated;
}

void tgt_auth_queue_destroy(struct tgt_queue *q)
{
	struct tgt_auth *a = q->ctrl ? q->ctrl->auth : NULL;

	if (!a || !a->queues[q->qid])
		return;
	dhchap_ctrl_fini(a->queues[q->qid]);
	free(a->queues[q->qid]);
	a->queues[q->qid] = NULL;
}

/* Say once per transaction how it ended (the kernel host's "authenticated with hash ..."). */
static void auth_log_transition(struct tgt_queue *q, const struct dhchap_ctrl *c,
				enum dhchap_ctrl_state before, unsigned ok_before, uint8_t hash,
				uint8_t group, bool bidi)
{
	if (c->transactions_ok != ok_before) {
		log_info("%s: authenticated host %s with hash %s dhgroup %s%s", q->name,
			 q->ctrl->hostnqn, dhchap_hash_name(hash), dhchap_dhgroup_name(group),
			 bidi ? ", controller authenticated too" : "");
		return;
	}
	if (before != DHCHAP_CTRL_FAILURE1 && c->state == DHCHAP_CTRL_FAILURE1)
		log_warn("%s: host %s authentication failed (reason %#x)", q->name,
			 q->ctrl->hostnqn, c->status);
	else if (before != DHCHAP_CTRL_DONE && before != DHCHAP_CTRL_FAILURE1 &&
		 c->state == DHCHAP_CTRL_DONE && !c->authenticated)
		log_warn("%s: host %s rejected the controller (Failure2, reason %#x)", q->name,
			 q->ctrl->hostnqn, c->status);
}

static void auth_send(struct tgt_req *req)
{
	struct tgt_queue *q = req->queue;
	struct dhchap_ctrl *c = auth_queue(q);
	enum dhchap_ctrl_state before;
	uint8_t *buf;
	unsigned ok_before;
	uint8_t hash, group;
	bool bidi;
	int ret;

	buf = malloc(req->data_len);
	if (!c || !buf) {
		free(buf);
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INTERNAL), false);
		return;
	}
	if (tgt_req_copy_from(req, 0, buf, req->data_len) != req->data_len) {
		free(buf);
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_SGL_INVALID_DATA), false);
		return;
	}
	before = c->state;
	ok_before = c->transactions_ok;
	hash = c->s.hash;
	group = c->s.dhgroup;
	bidi = c->s.bidi;
	ret = dhchap_ctrl_send(c, buf, req->data_len);
	explicit_bzero(buf, req->data_len);
	free(buf);
	auth_log_transition(q, c, before, ok_before, hash, group, bidi);
	tgt_req_complete_status(req, ret ? TGT_GENERIC(NVME_SC_INTERNAL) : 0, false);
}

static void auth_recv(struct tgt_req *req)
{
	struct tgt_queue *q = req->queue;
	struct dhchap_ctrl *c = auth_queue(q);
	enum dhchap_ctrl_state before;
	unsigned ok_before;
	uint8_t hash, group;
	bool bidi;
	uint8_t *buf;
	int n;

	buf = calloc(1, req->data_len);
	if (!c || !buf) {
		free(buf);
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INTERNAL), false);
		return;
	}
	before = c->state;
	ok_before = c->transactions_ok;
	hash = c->s.hash;
	group = c->s.dhgroup;
	bidi = c->s.bidi;
	n = dhchap_ctrl_recv(c, buf, req->data_len);
	auth_log_transition(q, c, before, ok_before, hash, group, bidi);
	if (n == -ENOSPC) {
		free(buf);
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INVALID_FIELD), false);
		return;
	}
	if (n < 0) {
		free(buf);
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INTERNAL), false);
		return;
	}
	/* The whole allocation length goes back, zero past the message (as nvmet). */
	tgt_req_fill(req, buf, req->data_len, 0);
	free(buf);
	tgt_req_complete_status(req, 0, false);
}

int tgt_auth_parse(struct tgt_req *req)
{
	const struct wire_auth_cmd *c = (const struct wire_auth_cmd *)&req->sqe;
	bool send = c->fctype == NVME_FCTYPE_AUTH_SEND;
	uint32_t len = le32_get(c->tl_al);

	/* No key for this host: authentication is not part of this controller. */
	if (!req->queue->ctrl->auth)
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_INVALID_OPCODE));
	/* nvmet_execute_auth_send / _receive: SECP E9h, SPSP0 = SPSP1 = 01h, non-zero length. */
	if (c->secp != AUTH_SECP_DHCHAP || c->spsp0 != AUTH_SPSP0 || c->spsp1 != AUTH_SPSP1 ||
	    len == 0 || len > (send ? AUTH_MAX_SEND : AUTH_MAX_RECV))
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
	/* nvmet_check_transfer_len: the SGL must describe exactly TL/AL bytes. */
	if (req->data_len != len)
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_SGL_INVALID_DATA));
	req->xfer = send ? TGT_XFER_TO_CTRL : TGT_XFER_FROM_CTRL;
	req->execute = send ? auth_send : auth_recv;
	return 0;
}
