/* Fabrics commands: Connect (admin and I/O queues), Property Get/Set (CAP, VS, CC, CSTS) and
 * Disconnect. Connect is the only command a queue accepts before it belongs to a controller.
 * Layer: target (core). Runs on the queue's thread. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "../common/le.h"
#include "../common/log.h"
#include "../net/tls_psk.h"
#include "core.h"

#define FABRICS_VS NVME_VS(1, 3, 0)

static uint8_t fabrics_fctype(const struct tgt_req *req)
{
	return ((const struct wire_fabrics_cmd *)&req->sqe)->fctype;
}

/* Connect Invalid Parameters, pointing at the bad field (in the data or the SQE). */
static void fabrics_connect_invalid(struct tgt_req *req, bool in_data, size_t offset)
{
	le32_put(req->cqe.dw0, NVME_CONNECT_IPO_IATTR(in_data, offset));
	tgt_req_complete_status(req, TGT_SPECIFIC(NVME_SC_CONNECT_INVALID_PARAM), false);
}

static void fabrics_queue_name(struct tgt_queue *q)
{
	snprintf(q->name, sizeof(q->name), "%s q%u ctrl %u", q->peer_addr[0] ? q->peer_addr : "?",
		 q->qid, q->ctrl ? q->ctrl->cntlid : 0);
}

/* Connect succeeded: CNTLID in DW0, and AUTHREQ.ATR (bit 17) when the queue must authenticate
 * first. Without memory for the queue's authentication state the bit is still set: every
 * command then fails with Authentication Required (fail closed). */
static void fabrics_connect_done(struct tgt_req *req)
{
	struct tgt_queue *q = req->queue;
	uint32_t dw0 = q->ctrl->cntlid;

	if (q->ctrl->auth) {
		if (tgt_auth_queue_setup(q) < 0)
			log_err("%s: no memory for the authentication state", q->name);
		dw0 |= NVME_CONNECT_RSP_AUTH_REQUIRED;
	}
	le32_put(req->cqe.dw0, dw0);
	tgt_req_complete_status(req, 0, false);
}

static void fabrics_connect_admin(struct tgt_req *req, struct tgt_subsys *s,
				  const struct wire_connect_cmd *c,
				  const struct wire_connect_data *d)
{
	struct tgt_queue *q = req->queue;
	struct tgt_ctrl *ctrl;
	uint16_t sqsize = le16_get(c->sqsize);

	if (le16_get(d->cntlid) != NVME_CNTLID_DYNAMIC) {
		fabrics_connect_invalid(req, true, offsetof(struct wire_connect_data, cntlid));
		return;
	}
	if (sqsize == 0 || sqsize > TGT_ADMIN_QUEUE_DEPTH - 1) {
		fabrics_connect_invalid(req, false, offsetof(struct wire_connect_cmd, sqsize));
		return;
	}
	ctrl = tgt_ctrl_create(q->tgt, s, q->port, d->hostnqn, d->hostid);
	if (!ctrl) {
		tgt_req_complete_status(req, TGT_SPECIFIC(NVME_SC_CONNECT_CTRL_BUSY), false);
		return;
	}
	if (tgt_auth_ctrl_setup(ctrl) < 0) {
		tgt_ctrl_put(ctrl);
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INTERNAL), false);
		return;
	}
	ctrl->admin_thread = q->thread;
	ctrl->kato_ms = le32_get(c->kato);
	/* A discovery controller without keep-alive (nvme discover connects with KATO 0) still
	 * goes after two idle minutes, as Linux's does: a host that vanished without a FIN must
	 * not hold its connection, and a --max-connections slot, forever. */
	if (!ctrl->kato_ms && ctrl->subsys->is_discovery)
		ctrl->kato_ms = TGT_DISC_KATO_MS;
	ctrl->sq[0] = q;
	q->ctrl = ctrl;
	q->qid = 0;
	q->sqsize = (uint16_t)(sqsize + 1);
	q->sqhd = 0;
	q->sqfc_disabled = (c->cattr & WIRE_CONNECT_CATTR_DISABLE_SQFC) != 0;
	q->connected = true;
	fabrics_queue_name(q);
	tgt_ctrl_ka_arm(ctrl);
	log_info("%s: %s controller for %s, host %s, kato %u ms%s", q->name,
		 s->is_discovery ? "discovery" : "I/O", s->nqn, ctrl->hostnqn, ctrl->kato_ms,
		 ctrl->auth ? ", with DH-HMAC-CHAP" : "");
	fabrics_connect_done(req);
}

static void fabrics_connect_io(struct tgt_req *req, struct tgt_subsys *s,
			       const struct wire_connect_cmd *c, const struct wire_connect_data *d)
{
	struct tgt_queue *q = req->queue;
	uint16_t qid = le16_get(c->qid);
	uint16_t sqsize = le16_get(c->sqsize);
	struct tgt_ctrl *ctrl;
	uint16_t status = 0;
	size_t bad_sqe_field = 0;

	ctrl = tgt_ctrl_find_get(q->tgt, s, le16_get(d->cntlid), d->hostnqn);
	if (!ctrl) {
		fabrics_connect_invalid(req, true, offsetof(struct wire_connect_data, cntlid));
		return;
	}
	pthread_mutex_lock(&ctrl->lock);
	if (qid > ctrl->nr_io_queues)
		bad_sqe_field = offsetof(struct wire_connect_cmd, qid);
	else if (sqsize == 0 || sqsize > TGT_MAX_QUEUE_DEPTH - 1)
		bad_sqe_field = offsetof(struct wire_connect_cmd, sqsize);
	else if (ctrl->sq[qid] || ctrl->admin_gone)
		status = TGT_GENERIC(NVME_SC_CMD_SEQ_ERROR);
	else if (!(ctrl->cc & NVME_CC_EN) || !(ctrl->csts & NVME_CSTS_RDY) ||
		 (ctrl->cc & NVME_CC_SHN_MASK) || (ctrl->csts & NVME_CSTS_CFS))
		status = TGT_GENERIC(NVME_SC_CMD_SEQ_ERROR);
	else
		ctrl->sq[qid] = q;
	pthread_mutex_unlock(&ctrl->lock);

	if (bad_sqe_field || status) {
		tgt_ctrl_put(ctrl);
		if (bad_sqe_field)
			fabrics_connect_invalid(req, false, bad_sqe_field);
		else
			tgt_req_complete_status(req, status, false);
		return;
	}
	/* The reference taken by find_get is the queue's from here on. */
	q->ctrl = ctrl;
	q->qid = qid;
	q->sqsize = (uint16_t)(sqsize + 1);
	q->sqhd = 0;
	q->sqfc_disabled = (c->cattr & WIRE_CONNECT_CATTR_DISABLE_SQFC) != 0;
	q->connected = true;
	fabrics_queue_name(q);
	log_debug("%s: I/O queue connected, sqsize %u", q->name, q->sqsize);
	fabrics_connect_done(req);
}

/* A host that authenticated with a TLS PSK may only connect as the host NQN bound into that
 * PSK's identity, and (except to the discovery subsystem, which accepts any of the host's keys)
 * only to the subsystem it names: otherwise host A's key would open host B's namespaces. */
static bool fabrics_tls_identity_matches(struct tgt_queue *q, const struct tgt_subsys *s,
					 const struct wire_connect_data *d)
{
	const char *id = q->ops->tls_identity ? q->ops->tls_identity(q) : NULL;
	struct tls_psk_identity pid;

	if (!id)
		return true;
	if (tls_psk_identity_parse((const uint8_t *)id, strlen(id), &pid) != 0)
		return false;
	if (strcmp(pid.hostnqn, d->hostnqn) != 0)
		return false;
	return s->is_discovery || strcmp(pid.subnqn, d->subnqn) == 0;
}

static void fabrics_connect(struct tgt_req *req)
{
	const struct wire_connect_cmd *c = (const struct wire_connect_cmd *)&req->sqe;
	struct tgt_queue *q = req->queue;
	struct wire_connect_data d;
	struct tgt_subsys *s;

	if (tgt_req_copy_from(req, 0, &d, sizeof(d)) != sizeof(d)) {
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_SGL_INVALID_DATA), false);
		return;
	}
	d.subnqn[sizeof(d.subnqn) - 1] = '\0';
	d.hostnqn[sizeof(d.hostnqn) - 1] = '\0';

	if (le16_get(c->recfmt) != 0) {
		tgt_req_complete_status(req, TGT_SPECIFIC(NVME_SC_CONNECT_FORMAT), false);
		return;
	}
	s = tgt_subsys_find(q->tgt, d.subnqn);
	if (!s) {
		log_info("%s: connect to unknown subsystem %s", q->peer_addr, d.subnqn);
		fabrics_connect_invalid(req, true, offsetof(struct wire_connect_data, subnqn));
		return;
	}
	if (!tgt_subsys_host_allowed(s, d.hostnqn)) {
		log_info("%s: host %s not allowed on %s", q->peer_addr, d.hostnqn, s->nqn);
		le32_put(req->cqe.dw0,
			 NVME_CONNECT_IPO_IATTR(true, offsetof(struct wire_connect_data, hostnqn)));
		tgt_req_complete_status(req, TGT_SPECIFIC(NVME_SC_CONNECT_INVALID_HOST), false);
		return;
	}
	if (!fabrics_tls_identity_matches(q, s, &d)) {
		log_warn("%s: TLS identity does not match Connect host %s / subsystem %s",
			 q->peer_addr, d.hostnqn, d.subnqn);
		le32_put(req->cqe.dw0,
			 NVME_CONNECT_IPO_IATTR(true, offsetof(struct wire_connect_data, hostnqn)));
		tgt_req_complete_status(req, TGT_SPECIFIC(NVME_SC_CONNECT_INVALID_HOST), false);
		return;
	}
	if (le16_get(c->qid) == 0)
		fabrics_connect_admin(req, s, c, &d);
	else
		fabrics_connect_io(req, s, c, &d);
}

static uint64_t fabrics_cap(void)
{
	return (uint64_t)(TGT_MAX_QUEUE_DEPTH - 1) | NVME_CAP_CQR |
	       (uint64_t)15 << NVME_CAP_TO_SHIFT | NVME_CAP_CSS_NVM;
}

static void fabrics_property_get(struct tgt_req *req)
{
	const struct wire_prop_cmd *c = (const struct wire_prop_cmd *)&req->sqe;
	struct tgt_ctrl *ctrl = req->queue->ctrl;
	bool size8 = (c->attrib & 7) == 1;
	uint64_t val;

	switch (le32_get(c->ofst)) {
	case NVME_REG_CAP:
		if (!size8)
			goto invalid;
		val = fabrics_cap();
		break;
	case NVME_REG_VS:
		val = FABRICS_VS;
		goto four;
	case NVME_REG_CC:
		pthread_mutex_lock(&ctrl->lock);
		val = ctrl->cc;
		pthread_mutex_unlock(&ctrl->lock);
		goto four;
	case NVME_REG_CSTS:
		pthread_mutex_lock(&ctrl->lock);
		val = ctrl->csts;
		pthread_mutex_unlock(&ctrl->lock);
		goto four;
	default:
		goto invalid;
	}
	le64_put(req->cqe.dw0, val);
	tgt_req_complete_status(req, 0, false);
	return;
four:
	if (size8)
		goto invalid;
	le32_put(req->cqe.dw0, (uint32_t)val);
	tgt_req_complete_status(req, 0, false);
	return;
invalid:
	tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INVALID_FIELD), false);
}

static void fabrics_property_set(struct tgt_req *req)
{
	const struct wire_prop_cmd *c = (const struct wire_prop_cmd *)&req->sqe;

	/* Only CC is writable, and it is 4 bytes. */
	if (le32_get(c->ofst) != NVME_REG_CC || (c->attrib & 7) != 0) {
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INVALID_FIELD), false);
		return;
	}
	tgt_ctrl_write_cc(req->queue->ctrl, le32_get(c->value));
	tgt_req_complete_status(req, 0, false);
}

static void fabrics_disconnect(struct tgt_req *req)
{
	struct tgt_queue *q = req->queue;

	struct tgt_ctrl *ctrl = q->ctrl;

	tgt_req_complete_status(req, 0, false);
	/* Posted, so the response goes out before the transport closes the connection. */
	tgt_ctrl_disconnect_queue(ctrl, q->qid);
}

int tgt_fabrics_parse(struct tgt_req *req)
{
	struct tgt_queue *q = req->queue;
	uint8_t fctype = fabrics_fctype(req);

	if (fctype == NVME_FCTYPE_CONNECT) {
		if (q->connected)
			return tgt_req_fail(req, TGT_GENERIC(NVME_SC_CMD_SEQ_ERROR));
		if (req->data_len != sizeof(struct wire_connect_data))
			return tgt_req_fail(req, TGT_GENERIC(NVME_SC_SGL_INVALID_DATA));
		req->xfer = TGT_XFER_TO_CTRL;
		req->execute = fabrics_connect;
		return 0;
	}
	if (!q->connected || !q->ctrl)
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_CMD_SEQ_ERROR));
	if (fctype == NVME_FCTYPE_AUTH_SEND || fctype == NVME_FCTYPE_AUTH_RECV)
		return tgt_auth_parse(req);
	/* Nothing but authentication before the queue has authenticated (nvmet answers
	 * Authentication Required; the NVMe base specification says the same). */
	if (!tgt_auth_queue_ok(q))
		return tgt_req_fail(req, TGT_SPECIFIC(NVME_SC_AUTH_REQUIRED));

	switch (fctype) {
	case NVME_FCTYPE_PROPERTY_GET:
	case NVME_FCTYPE_PROPERTY_SET:
		if (q->qid != 0)
			return tgt_req_fail(req, TGT_GENERIC(NVME_SC_INVALID_OPCODE));
		req->execute = fctype == NVME_FCTYPE_PROPERTY_GET ? fabrics_property_get
								  : fabrics_property_set;
		return 0;
	case NVME_FCTYPE_DISCONNECT:
		if (q->qid == 0)
			return tgt_req_fail(req, TGT_SPECIFIC(NVME_SC_INVALID_QUEUE_TYPE));
		req->execute = fabrics_disconnect;
		return 0;
	default:
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_INVALID_OPCODE));
	}
}
