/* Controllers: creation with a unique CNTLID, lifetime across queues on several threads,
 * keep-alive, controller configuration (CC enable, reset, shutdown), asynchronous events and
 * the error log.
 * Layer: target (core). A controller is freed when its last reference (queue, posted work,
 * pending flush) is dropped; the admin queue's loss tears down the I/O queues. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/le.h"
#include "../common/log.h"
#include "core.h"

static bool ctrl_cntlid_in_use(struct tgt *t, uint16_t cntlid)
{
	struct list_head *sp, *cp;

	list_for_each (sp, &t->subsystems) {
		struct tgt_subsys *s = list_entry(sp, struct tgt_subsys, entry);

		list_for_each (cp, &s->ctrls) {
			if (list_entry(cp, struct tgt_ctrl, entry)->cntlid == cntlid)
				return true;
		}
	}
	return false;
}

static void ctrl_ka_fire(struct loop_timer *timer);

struct tgt_ctrl *tgt_ctrl_create(struct tgt *t, struct tgt_subsys *subsys, struct tgt_port *port,
				 const char *hostnqn, const uint8_t hostid[16])
{
	struct tgt_ctrl *ctrl = calloc(1, sizeof(*ctrl));
	unsigned tries;

	if (!ctrl)
		return NULL;
	ctrl->tgt = t;
	ctrl->subsys = subsys;
	ctrl->port = port;
	snprintf(ctrl->hostnqn, sizeof(ctrl->hostnqn), "%s", hostnqn);
	memcpy(ctrl->hostid, hostid, 16);
	pthread_mutex_init(&ctrl->lock, NULL);
	ctrl->refs = 1;
	ctrl->nr_io_queues = subsys->is_discovery ? 0 : TGT_MAX_QUEUES;
	ctrl->aen_enabled = subsys->is_discovery ? NVME_OAES_DISC_LOG_CHANGE : NVME_OAES_NS_ATTR;
	atomic_init(&ctrl->vwc_enabled, true);
	atomic_init(&ctrl->last_activity_ms, tgt_now_ms());
	ctrl->ka_timer.fn = ctrl_ka_fire;
	ctrl->ka_timer.ctx = ctrl;
	list_init(&ctrl->ka_timer.entry);
	list_init(&ctrl->aer_reqs);
	for (unsigned i = 0; i < 9; i++)
		ctrl->temp_thresh[i][0] = 0xffff; /* over: never; under: 0 K */

	/* Dynamic controller IDs, unique target-wide, never reused while the old one lives. */
	pthread_mutex_lock(&t->lock);
	for (tries = 0; tries <= TGT_CNTLID_MAX; tries++) {
		uint16_t id = t->next_cntlid;

		if (id < TGT_CNTLID_MIN || id > TGT_CNTLID_MAX)
			id = TGT_CNTLID_MIN;
		t->next_cntlid = (uint16_t)(id + 1);
		if (!ctrl_cntlid_in_use(t, id)) {
			ctrl->cntlid = id;
			break;
		}
	}
	if (ctrl->cntlid)
		list_add_tail(&ctrl->entry, &subsys->ctrls);
	pthread_mutex_unlock(&t->lock);
	if (!ctrl->cntlid) {
		pthread_mutex_destroy(&ctrl->lock);
		free(ctrl);
		return NULL;
	}
	return ctrl;
}

struct tgt_ctrl *tgt_ctrl_find_get(struct tgt *t, struct tgt_subsys *subsys, uint16_t cntlid,
				   const char *hostnqn)
{
	struct tgt_ctrl *found = NULL;
	struct list_head *p;

	pthread_mutex_lock(&t->lock);
	list_for_each (p, &subsys->ctrls) {
		struct tgt_ctrl *c = list_entry(p, struct tgt_ctrl, entry);

		if (c->cntlid == cntlid && strcmp(c->hostnqn, hostnqn) == 0) {
			tgt_ctrl_get(c);
			found = c;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return found;
}

void tgt_ctrl_get(struct tgt_ctrl *ctrl)
{
	pthread_mutex_lock(&ctrl->lock);
	ctrl->refs++;
	pthread_mutex_unlock(&ctrl->lock);
}

static void ctrl_unlist_locked(struct tgt_ctrl *ctrl)
{
	if (ctrl->entry.next && !list_empty(&ctrl->entry))
		list_del(&ctrl->entry);
}

static void ctrl_unlist(struct tgt_ctrl *ctrl)
{
	pthread_mutex_lock(&ctrl->tgt->lock);
	ctrl_unlist_locked(ctrl);
	pthread_mutex_unlock(&ctrl->tgt->lock);
}

void tgt_ctrl_put(struct tgt_ctrl *ctrl)
{
	struct tgt *t = ctrl->tgt;
	unsigned refs;

	/* Under tgt->lock: tgt_ctrl_find_get must not revive a controller being freed. */
	pthread_mutex_lock(&t->lock);
	pthread_mutex_lock(&ctrl->lock);
	refs = --ctrl->refs;
	pthread_mutex_unlock(&ctrl->lock);
	if (!refs)
		ctrl_unlist_locked(ctrl);
	pthread_mutex_unlock(&t->lock);
	if (refs)
		return;
	log_debug("ctrl %u (%s): freed", ctrl->cntlid, ctrl->subsys->nqn);
	tgt_auth_ctrl_free(ctrl);
	pthread_mutex_destroy(&ctrl->lock);
	free(ctrl);
}

/* ---- keep-alive ------------------------------------------------------------------------- */

static struct loop *ctrl_admin_loop(struct tgt_ctrl *ctrl)
{
	return ctrl->admin_thread ? ctrl->admin_thread->loop : NULL;
}

void tgt_ctrl_ka_arm(struct tgt_ctrl *ctrl)
{
	struct loop *l = ctrl_admin_loop(ctrl);

	if (!l)
		return;
	if (ctrl->kato_ms)
		loop_timer_arm(l, &ctrl->ka_timer, ctrl->kato_ms);
	else if (ctrl->ka_timer.armed)
		loop_timer_cancel(l, &ctrl->ka_timer);
}

/* Any command on any queue counts as keep-alive traffic (as the Linux target does), so the
 * timer only fires after a whole KATO without a command. */
static void ctrl_ka_fire(struct loop_timer *timer)
{
	struct tgt_ctrl *ctrl = timer->ctx;
	uint64_t now = tgt_now_ms();
	uint64_t last = atomic_load_explicit(&ctrl->last_activity_ms, memory_order_relaxed);

	if (!ctrl->kato_ms || ctrl->admin_gone)
		return;
	/* From a shutdown on the keep-alive timer is off (the spec's "shall disable"): a host
	 * may leave a shut-down controller connected and silent. Clearing SHN (or a reset)
	 * turns it back on. (cc is written on this thread.) */
	if (ctrl->cc & NVME_CC_SHN_MASK)
		last = now;
	if (now - last < ctrl->kato_ms) {
		loop_timer_arm(ctrl_admin_loop(ctrl), &ctrl->ka_timer,
			       ctrl->kato_ms - (now - last));
		return;
	}
	tgt_ctrl_ka_expired(ctrl);
}

void tgt_ctrl_ka_expired(struct tgt_ctrl *ctrl)
{
	log_warn("ctrl %u (%s, host %s): keep-alive timeout (%u ms)", ctrl->cntlid,
		 ctrl->subsys->nqn, ctrl->hostnqn, ctrl->kato_ms);
	tgt_ctrl_fatal(ctrl);
}

void tgt_ctrl_fatal(struct tgt_ctrl *ctrl)
{
	pthread_mutex_lock(&ctrl->lock);
	ctrl->csts |= NVME_CSTS_CFS;
	pthread_mutex_unlock(&ctrl->lock);
	tgt_ctrl_disconnect_queues(ctrl, 0);
}

/* ---- queue teardown --------------------------------------------------------------------- */

struct ctrl_disconnect_work {
	struct tgt_ctrl *ctrl;
	struct loop *loop;
	uint16_t first_qid;
	uint16_t last_qid;
};

/* On one queue thread: disconnect the controller's queues that live here. Collected under the
 * lock, called without it: the transport may destroy the queue from inside disconnect. */
static void ctrl_disconnect_here(void *arg)
{
	struct ctrl_disconnect_work *w = arg;
	struct tgt_ctrl *ctrl = w->ctrl;
	struct tgt_queue *todo[TGT_MAX_QUEUES + 1];
	unsigned n = 0;

	pthread_mutex_lock(&ctrl->lock);
	for (unsigned qid = w->first_qid; qid <= w->last_qid; qid++) {
		struct tgt_queue *q = ctrl->sq[qid];

		if (q && q->thread && q->thread->loop == w->loop)
			todo[n++] = q;
	}
	pthread_mutex_unlock(&ctrl->lock);
	for (unsigned i = 0; i < n; i++) {
		bool live;

		pthread_mutex_lock(&ctrl->lock);
		live = ctrl->sq[todo[i]->qid] == todo[i];
		pthread_mutex_unlock(&ctrl->lock);
		if (live)
			todo[i]->ops->disconnect(todo[i]);
	}
	free(w);
	tgt_ctrl_put(ctrl);
}

static void ctrl_disconnect_range(struct tgt_ctrl *ctrl, uint16_t first_qid, uint16_t last_qid)
{
	struct loop *loops[TGT_MAX_QUEUES + 1];
	unsigned nloops = 0;

	pthread_mutex_lock(&ctrl->lock);
	for (unsigned qid = first_qid; qid <= last_qid; qid++) {
		struct tgt_queue *q = ctrl->sq[qid];
		bool seen = false;

		if (!q || !q->thread)
			continue;
		for (unsigned i = 0; i < nloops; i++)
			seen |= loops[i] == q->thread->loop;
		if (!seen)
			loops[nloops++] = q->thread->loop;
	}
	pthread_mutex_unlock(&ctrl->lock);

	/* Always posted, even to this thread: the caller may be inside the queue's own command. */
	for (unsigned i = 0; i < nloops; i++) {
		struct ctrl_disconnect_work *w = malloc(sizeof(*w));

		if (!w) {
			log_err("ctrl %u: no memory to disconnect queues", ctrl->cntlid);
			continue;
		}
		w->ctrl = ctrl;
		w->loop = loops[i];
		w->first_qid = first_qid;
		w->last_qid = last_qid;
		tgt_ctrl_get(ctrl);
		if (loop_post(loops[i], ctrl_disconnect_here, w) < 0) {
			log_err("ctrl %u: cannot post a disconnect", ctrl->cntlid);
			free(w);
			tgt_ctrl_put(ctrl);
		}
	}
}

void tgt_ctrl_disconnect_queues(struct tgt_ctrl *ctrl, uint16_t first_qid)
{
	ctrl_disconnect_range(ctrl, first_qid, TGT_MAX_QUEUES);
}

void tgt_ctrl_disconnect_queue(struct tgt_ctrl *ctrl, uint16_t qid)
{
	ctrl_disconnect_range(ctrl, qid, qid);
}

void tgt_queue_destroy(struct tgt_queue *q)
{
	struct tgt_ctrl *ctrl = q->ctrl;
	struct list_head *p, *tmp;
	bool was_admin;

	if (!ctrl)
		return;
	was_admin = q->qid == 0;
	pthread_mutex_lock(&ctrl->lock);
	if (ctrl->sq[q->qid] == q)
		ctrl->sq[q->qid] = NULL;
	if (was_admin) {
		ctrl->admin_gone = true;
		/* Held AERs belong to this connection, which is going: the transport reclaims
		 * them with the connection, so they are dropped, not completed. */
		list_for_each_safe (p, tmp, &ctrl->aer_reqs)
			list_del(p);
		ctrl->nr_aer = 0;
	}
	pthread_mutex_unlock(&ctrl->lock);
	tgt_auth_queue_destroy(q);
	q->ctrl = NULL;
	q->connected = false;

	if (was_admin) {
		struct loop *l = ctrl_admin_loop(ctrl);

		if (l && ctrl->ka_timer.armed)
			loop_timer_cancel(l, &ctrl->ka_timer);
		/* No new I/O queue may join a controller without an admin queue. */
		ctrl_unlist(ctrl);
		tgt_ctrl_disconnect_queues(ctrl, 1);
		log_info("ctrl %u (%s, host %s): admin queue closed", ctrl->cntlid,
			 ctrl->subsys->nqn, ctrl->hostnqn);
	}
	tgt_ctrl_put(ctrl);
}

/* ---- controller configuration ----------------------------------------------------------- */

static void ctrl_shutdown_next(struct tgt_ctrl *ctrl);

static void ctrl_shutdown_flush_done(struct nvtcp_bio *bio, int status)
{
	struct tgt_ctrl *ctrl = bio->priv;

	if (status)
		log_warn("ctrl %u: flush of nsid %u at shutdown failed: %d", ctrl->cntlid,
			 ctrl->shutdown_ns->nsid, status);
	ctrl_shutdown_next(ctrl);
	tgt_ctrl_put(ctrl);
}

/* Flush the namespaces one after the other with one bio, then report SHST complete. */
static void ctrl_shutdown_next(struct tgt_ctrl *ctrl)
{
	struct tgt_subsys *s = ctrl->subsys;
	struct list_head *p =
		ctrl->shutdown_ns ? ctrl->shutdown_ns->entry.next : s->namespaces.next;
	unsigned idx = ctrl->admin_thread ? ctrl->admin_thread->index : 0;

	for (; p != &s->namespaces; p = p->next) {
		struct tgt_ns *ns = list_entry(p, struct tgt_ns, entry);
		struct nvtcp_backend_channel *ch = ns->channels[idx];

		if (!ch || !ns->backend)
			continue;
		ctrl->shutdown_ns = ns;
		memset(&ctrl->shutdown_bio, 0, sizeof(ctrl->shutdown_bio));
		ctrl->shutdown_bio.op = NVTCP_BIO_FLUSH;
		ctrl->shutdown_bio.done = ctrl_shutdown_flush_done;
		ctrl->shutdown_bio.priv = ctrl;
		tgt_ctrl_get(ctrl);
		if (nvtcp_backend_submit(ch, &ctrl->shutdown_bio) == 0)
			return;
		tgt_ctrl_put(ctrl);
		log_warn("ctrl %u: cannot flush nsid %u at shutdown", ctrl->cntlid, ns->nsid);
	}
	pthread_mutex_lock(&ctrl->lock);
	/* A reset during the flushes already cleared CSTS: nothing to report then. SHN cleared
	 * meanwhile: back to normal operation (SHST 00b), not "shutdown processing" for ever. */
	if (ctrl->cc & NVME_CC_SHN_MASK)
		ctrl->csts = (ctrl->csts & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_CMPLT;
	else
		ctrl->csts &= ~NVME_CSTS_SHST_MASK;
	ctrl->shutdown_ns = NULL;
	ctrl->shutdown_running = false;
	pthread_mutex_unlock(&ctrl->lock);
}

static bool ctrl_cc_valid(const struct tgt_ctrl *ctrl, uint32_t cc)
{
	if ((cc >> NVME_CC_MPS_SHIFT & 0xf) != 0 || (cc >> NVME_CC_AMS_SHIFT & 0x7) != 0 ||
	    (cc >> NVME_CC_CSS_SHIFT & 0x7) != 0)
		return false;
	/* Discovery controllers have no I/O queues; Linux hosts still set the sizes there. */
	if (ctrl->subsys->is_discovery)
		return true;
	return (cc >> NVME_CC_IOSQES_SHIFT & 0xf) == 6 && (cc >> NVME_CC_IOCQES_SHIFT & 0xf) == 4;
}

/* Admin thread, ctrl->lock not held: I/O-queue Connects read these under it. */
static void ctrl_reset_features(struct tgt_ctrl *ctrl)
{
	pthread_mutex_lock(&ctrl->lock);
	ctrl->nr_io_queues = ctrl->subsys->is_discovery ? 0 : TGT_MAX_QUEUES;
	ctrl->queues_set = false;
	pthread_mutex_unlock(&ctrl->lock);
	atomic_store(&ctrl->vwc_enabled, true);
}

void tgt_ctrl_write_cc(struct tgt_ctrl *ctrl, uint32_t cc)
{
	uint32_t old;
	bool reset = false, start_shutdown = false;

	pthread_mutex_lock(&ctrl->lock);
	old = ctrl->cc;
	ctrl->cc = cc;
	if ((cc & NVME_CC_EN) && !(old & NVME_CC_EN)) {
		if (ctrl_cc_valid(ctrl, cc))
			ctrl->csts = NVME_CSTS_RDY;
		else
			ctrl->csts = NVME_CSTS_CFS;
	} else if (!(cc & NVME_CC_EN) && (old & NVME_CC_EN)) {
		ctrl->csts = 0;
		ctrl->cc = cc & ~NVME_CC_SHN_MASK;
		reset = true;
	}
	if ((cc & NVME_CC_SHN_MASK) && !(old & NVME_CC_SHN_MASK) && !reset) {
		ctrl->csts = (ctrl->csts & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_OCCUR;
		start_shutdown = true;
	} else if (!(cc & NVME_CC_SHN_MASK) && (old & NVME_CC_SHN_MASK) && !ctrl->shutdown_ns) {
		ctrl->csts &= ~NVME_CSTS_SHST_MASK;
	}
	pthread_mutex_unlock(&ctrl->lock);

	if (reset) {
		log_info("ctrl %u (%s): reset by the host", ctrl->cntlid, ctrl->subsys->nqn);
		ctrl_reset_features(ctrl);
		tgt_ctrl_disconnect_queues(ctrl, 1);
	}
	/* One flush chain at a time: its bio is the controller's. */
	if (start_shutdown && !ctrl->shutdown_running) {
		log_info("ctrl %u (%s): shutdown", ctrl->cntlid, ctrl->subsys->nqn);
		ctrl->shutdown_running = true;
		ctrl->shutdown_ns = NULL;
		ctrl_shutdown_next(ctrl);
	}
}

/* ---- asynchronous events ---------------------------------------------------------------- */

static uint32_t ctrl_aen_oaes_bit(enum tgt_aen_bit bit)
{
	return bit == TGT_AEN_NS_ATTR ? NVME_OAES_NS_ATTR : NVME_OAES_DISC_LOG_CHANGE;
}

void tgt_ctrl_process_events(struct tgt_ctrl *ctrl)
{
	for (;;) {
		struct tgt_req *req = NULL;
		uint32_t dw0 = 0;

		pthread_mutex_lock(&ctrl->lock);
		if (ctrl->nr_events && !list_empty(&ctrl->aer_reqs)) {
			req = list_first_entry(&ctrl->aer_reqs, struct tgt_req, core_entry);
			list_del(&req->core_entry);
			ctrl->nr_aer--;
			dw0 = ctrl->events[0];
			memmove(ctrl->events, ctrl->events + 1,
				--ctrl->nr_events * sizeof(ctrl->events[0]));
		}
		pthread_mutex_unlock(&ctrl->lock);
		if (!req)
			return;
		le32_put(req->cqe.dw0, dw0);
		tgt_req_complete_status(req, 0, false);
	}
}

static void ctrl_process_events_posted(void *arg)
{
	struct tgt_ctrl *ctrl = arg;

	if (!ctrl->admin_gone)
		tgt_ctrl_process_events(ctrl);
	tgt_ctrl_put(ctrl);
}

void tgt_ctrl_add_event(struct tgt_ctrl *ctrl, enum tgt_aen_bit bit, uint32_t dw0)
{
	struct loop *l = ctrl_admin_loop(ctrl);
	bool queued = false;

	pthread_mutex_lock(&ctrl->lock);
	/* A masked event was already reported: the host reads the log page to re-arm it. */
	if (!ctrl->admin_gone && (ctrl->aen_enabled & ctrl_aen_oaes_bit(bit)) &&
	    !(ctrl->aen_masked & (1u << bit)) && ctrl->nr_events < TGT_MAX_EVENTS) {
		ctrl->events[ctrl->nr_events++] = dw0;
		ctrl->aen_masked |= 1u << bit;
		queued = true;
	}
	pthread_mutex_unlock(&ctrl->lock);
	if (!queued)
		return;
	if (!l || loop_current() == l) {
		tgt_ctrl_process_events(ctrl);
		return;
	}
	tgt_ctrl_get(ctrl);
	if (loop_post(l, ctrl_process_events_posted, ctrl) < 0)
		tgt_ctrl_put(ctrl);
}

void tgt_ctrl_clear_aen(struct tgt_ctrl *ctrl, enum tgt_aen_bit bit, bool rae)
{
	if (rae)
		return;
	pthread_mutex_lock(&ctrl->lock);
	ctrl->aen_masked &= ~(1u << bit);
	pthread_mutex_unlock(&ctrl->lock);
}

void tgt_ctrl_ns_changed(struct tgt_ctrl *ctrl, uint32_t nsid)
{
	bool present = false;

	pthread_mutex_lock(&ctrl->lock);
	for (unsigned i = 0; i < MIN(ctrl->nr_changed_ns, TGT_MAX_CHANGED_NS); i++)
		present |= ctrl->changed_ns[i] == nsid;
	if (!present) {
		if (ctrl->nr_changed_ns < TGT_MAX_CHANGED_NS)
			ctrl->changed_ns[ctrl->nr_changed_ns] = nsid;
		if (ctrl->nr_changed_ns <= TGT_MAX_CHANGED_NS)
			ctrl->nr_changed_ns++;
	}
	pthread_mutex_unlock(&ctrl->lock);
	tgt_ctrl_add_event(ctrl, TGT_AEN_NS_ATTR,
			   NVME_AER_DW0(NVME_AER_TYPE_NOTICE, NVME_AER_NOTICE_NS_CHANGED,
					NVME_LOG_CHANGED_NS));
}

/* ---- error log -------------------------------------------------------------------------- */

void tgt_ctrl_log_error(struct tgt_ctrl *ctrl, const struct tgt_req *req, uint16_t status)
{
	struct nvme_error_log *e;

	pthread_mutex_lock(&ctrl->lock);
	ctrl->err_count++;
	e = &ctrl->err_log[(ctrl->err_count - 1) % TGT_ERR_LOG_ENTRIES];
	memset(e, 0, sizeof(*e));
	le64_put(e->error_count, ctrl->err_count);
	le16_put(e->sqid, req->queue->qid);
	memcpy(e->cmdid, req->sqe.cid, 2);
	le16_put(e->status_field, status);
	le16_put(e->param_error_location, 0xffff);
	memcpy(e->nsid, req->sqe.nsid, 4);
	if (req->sqe.opc == NVME_IO_READ || req->sqe.opc == NVME_IO_WRITE)
		memcpy(e->lba, req->sqe.cdw10, 8);
	e->trtype = NVME_TRTYPE_TCP;
	pthread_mutex_unlock(&ctrl->lock);
}
