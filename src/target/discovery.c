/* Discovery controller: the commands it accepts (Identify Controller, the discovery log page,
 * keep-alive and event features, Keep Alive, AER) and the discovery log page itself.
 * Layer: target (core). Runs on the admin queue's thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/le.h"
#include "../common/log.h"
#include "core.h"

static uint8_t disc_treq(const struct tgt_port *port)
{
	uint8_t treq = NVME_DISC_TREQ_DISABLE_SQFLOW;

	if (port->secure == TGT_SECURE_REQUIRED)
		treq |= NVME_DISC_TREQ_REQUIRED;
	else if (port->secure == TGT_SECURE_OPTIONAL)
		treq |= NVME_DISC_TREQ_NOT_REQUIRED;
	return treq;
}

static void disc_fill_entry(struct nvme_disc_log_entry *e, const struct tgt_port *port,
			    const char *nqn, uint8_t subtype)
{
	memset(e, 0, sizeof(*e));
	e->trtype = NVME_TRTYPE_TCP;
	e->adrfam = (uint8_t)port->adrfam;
	e->subtype = subtype;
	e->treq = disc_treq(port);
	le16_put(e->portid, port->portid);
	le16_put(e->cntlid, NVME_CNTLID_DYNAMIC);
	le16_put(e->asqsz, TGT_ADMIN_QUEUE_DEPTH);
	/* The current discovery subsystem supports explicit persistent connections. */
	le16_put(e->eflags, subtype == NVME_DISC_SUBTYPE_CURRENT ? NVME_DISC_EFLAGS_EPCSD : 0);
	/* NUL-padded like the Linux target's entries. */
	snprintf(e->trsvcid, sizeof(e->trsvcid), "%s", port->trsvcid);
	snprintf(e->traddr, sizeof(e->traddr), "%s", port->traddr);
	snprintf(e->subnqn, sizeof(e->subnqn), "%s", nqn);
	e->tsas[0] =
		port->secure == TGT_SECURE_NONE ? NVME_TCP_SECTYPE_NONE : NVME_TCP_SECTYPE_TLS13;
}

void *tgt_disc_log_build(struct tgt_ctrl *ctrl, size_t *len)
{
	struct tgt *t = ctrl->tgt;
	struct list_head *pp, *sp;
	struct nvme_disc_log_hdr *hdr;
	size_t n = 0, max = 0;
	uint8_t *page;

	pthread_mutex_lock(&t->lock);
	list_for_each (pp, &t->ports) {
		max++;
		list_for_each (sp, &t->subsystems)
			max++;
	}
	page = calloc(1, sizeof(*hdr) + max * sizeof(struct nvme_disc_log_entry));
	if (!page) {
		pthread_mutex_unlock(&t->lock);
		return NULL;
	}
	hdr = (struct nvme_disc_log_hdr *)page;
	list_for_each (pp, &t->ports) {
		struct tgt_port *port = list_entry(pp, struct tgt_port, entry);
		struct nvme_disc_log_entry *e = (struct nvme_disc_log_entry *)(page + sizeof(*hdr));

		disc_fill_entry(&e[n++], port, NVME_DISCOVERY_NQN, NVME_DISC_SUBTYPE_CURRENT);
		list_for_each (sp, &t->subsystems) {
			struct tgt_subsys *s = list_entry(sp, struct tgt_subsys, entry);

			if (s->is_discovery || !tgt_subsys_host_allowed(s, ctrl->hostnqn))
				continue;
			disc_fill_entry(&e[n++], port, s->nqn, NVME_DISC_SUBTYPE_NVME);
		}
	}
	le64_put(hdr->genctr, t->disc_genctr);
	pthread_mutex_unlock(&t->lock);
	le64_put(hdr->numrec, n);
	le16_put(hdr->recfmt, 0);
	*len = sizeof(*hdr) + n * sizeof(struct nvme_disc_log_entry);
	return page;
}

void tgt_disc_get_log_page(struct tgt_req *req)
{
	struct tgt_ctrl *ctrl = req->queue->ctrl;
	uint32_t cdw10 = le32_get(req->sqe.cdw10);
	uint64_t lpo = le32_get(req->sqe.cdw12) | (uint64_t)le32_get(req->sqe.cdw13) << 32;
	size_t len = 0;
	void *page;

	if ((cdw10 & 0xff) != NVME_LOG_DISCOVERY) {
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INVALID_FIELD), false);
		return;
	}
	page = tgt_disc_log_build(ctrl, &len);
	if (!page) {
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INTERNAL), false);
		return;
	}
	/* Hosts read the header, then the entries, then the header again to check genctr:
	 * any dword-aligned offset inside the page is fine. */
	if (lpo > len || (lpo & 3)) {
		free(page);
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INVALID_FIELD), false);
		return;
	}
	tgt_req_fill(req, page, len, (size_t)lpo);
	free(page);
	tgt_ctrl_clear_aen(ctrl, TGT_AEN_DISC_CHANGE, cdw10 & (1u << 15));
	tgt_req_complete_status(req, 0, false);
}

static void disc_identify(struct tgt_req *req)
{
	if ((le32_get(req->sqe.cdw10) & 0xff) != NVME_CNS_CTRL) {
		tgt_req_complete_status(req, TGT_GENERIC(NVME_SC_INVALID_FIELD), false);
		return;
	}
	tgt_admin_identify_ctrl(req);
}

int tgt_disc_parse(struct tgt_req *req)
{
	if (!tgt_admin_ctrl_ready(req->queue->ctrl))
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_CMD_SEQ_ERROR));

	switch (req->sqe.opc) {
	case NVME_ADMIN_IDENTIFY:
		return tgt_admin_expect(req, TGT_XFER_FROM_CTRL, 4096, disc_identify);
	case NVME_ADMIN_GET_LOG_PAGE:
		return tgt_admin_expect(req, TGT_XFER_FROM_CTRL, tgt_log_page_len(req),
					tgt_disc_get_log_page);
	case NVME_ADMIN_SET_FEATURES:
		return tgt_admin_expect(req, TGT_XFER_NONE, 0, tgt_admin_set_features);
	case NVME_ADMIN_GET_FEATURES:
		return tgt_admin_expect(req, TGT_XFER_NONE, 0, tgt_admin_get_features);
	case NVME_ADMIN_KEEP_ALIVE:
		return tgt_admin_expect(req, TGT_XFER_NONE, 0, tgt_admin_keep_alive);
	case NVME_ADMIN_ASYNC_EVENT:
		return tgt_admin_expect(req, TGT_XFER_NONE, 0, tgt_admin_async_event);
	default:
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_INVALID_OPCODE));
	}
}
