/* Admin command set of I/O controllers: Identify, Get Log Page (error, SMART, changed
 * namespaces), Get/Set Features, Keep Alive, Asynchronous Event Request, Abort.
 * Layer: target (core). Runs on the admin queue's thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/le.h"
#include "../common/log.h"
#include "core.h"

#define ADMIN_IDENTIFY_LEN 4096

static uint32_t cdw(const uint8_t *p)
{
	return le32_get(p);
}

static void admin_complete(struct tgt_req *req, uint16_t status)
{
	tgt_req_complete_status(req, status, false);
}

/* Space-padded, not NUL-terminated, as Identify wants its strings. */
static void admin_pad(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len);

	memset(dst, ' ', len);
	memcpy(dst, src, n);
}

/* ---- Identify --------------------------------------------------------------------------- */

static bool admin_subsys_has_vwc(struct tgt_subsys *s)
{
	struct list_head *p;

	list_for_each (p, &s->namespaces) {
		struct tgt_ns *ns = list_entry(p, struct tgt_ns, entry);

		if (ns->backend && nvtcp_backend_has_volatile_cache(ns->backend))
			return true;
	}
	return false;
}

void tgt_admin_identify_ctrl(struct tgt_req *req)
{
	struct tgt_ctrl *ctrl = req->queue->ctrl;
	struct tgt_subsys *s = ctrl->subsys;
	struct nvme_id_ctrl *id = calloc(1, sizeof(*id));
	bool disc = s->is_discovery;

	if (!id) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INTERNAL));
		return;
	}
	admin_pad(id->sn, sizeof(id->sn), s->serial);
	admin_pad(id->mn, sizeof(id->mn), s->model[0] ? s->model : TGT_DEFAULT_MODEL);
	admin_pad(id->fr, sizeof(id->fr), TGT_FIRMWARE_REV);
	id->cmic = disc ? 0 : 0x03; /* multiple ports, multiple controllers */
	id->mdts = TGT_MDTS;
	le16_put(id->cntlid, ctrl->cntlid);
	le32_put(id->ver, NVME_VS(1, 3, 0));
	le32_put(id->oaes, disc ? NVME_OAES_DISC_LOG_CHANGE : NVME_OAES_NS_ATTR);
	le32_put(id->ctratt, NVME_CTRATT_128BIT_HOSTID);
	id->cntrltype = disc ? NVME_CNTRLTYPE_DISCOVERY : NVME_CNTRLTYPE_IO;
	id->acl = 3;
	id->aerl = TGT_AERL;
	/* The firmware slot log's one slot: number of slots 1 (bits 3:1), slot 1 read-only. */
	id->frmw = disc ? 0 : 1u << 1 | 1u << 0;
	id->lpa = NVME_LPA_EXTENDED_DATA | (disc ? 0 : 1u << 0); /* per-namespace SMART */
	id->elpe = TGT_ERR_LOG_ENTRIES - 1;
	le16_put(id->kas, 10); /* 100 ms units: the timer is checked with 1 s granularity */
	le16_put(id->maxcmd, TGT_MAX_QUEUE_DEPTH);
	le32_put(id->sgls, NVME_SGLS_SUPPORTED | NVME_SGLS_OFFSET);
	snprintf(id->subnqn, sizeof(id->subnqn), "%s", s->nqn);
	le32_put(id->ioccsz, (64 + TGT_INCAPSULE_IO) / 16);
	le32_put(id->iorcsz, 1);
	id->msdbd = 1;
	if (!disc) {
		id->sqes = 0x66;
		id->cqes = 0x44;
		le32_put(id->nn, TGT_MAX_NSID);
		le32_put(id->mnan, TGT_MAX_NSID);
		le16_put(id->oncs, NVME_ONCS_DSM | NVME_ONCS_WRITE_ZEROES);
		/* Present, and Flush with NSID FFFFFFFFh flushes every namespace (bits 2:1). */
		if (admin_subsys_has_vwc(s))
			id->vwc = NVME_VWC_PRESENT | 0x6;
		le16_put(id->psd[0].bytes, 2500); /* max power, 0.01 W units */
	}
	tgt_req_fill(req, id, sizeof(*id), 0);
	free(id);
	admin_complete(req, 0);
}

static void admin_identify_ns(struct tgt_req *req)
{
	struct tgt_subsys *s = req->queue->ctrl->subsys;
	uint32_t nsid = le32_get(req->sqe.nsid);
	struct nvme_id_ns *id;
	struct tgt_ns *ns;

	if (nsid == 0 || nsid > TGT_MAX_NSID) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_NS));
		return;
	}
	id = calloc(1, sizeof(*id));
	if (!id) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INTERNAL));
		return;
	}
	ns = tgt_subsys_ns(s, nsid);
	/* An inactive but valid NSID reads as zeroes (Linux does the same). */
	if (ns) {
		uint32_t per4k = ns->block_size < 4096 ? 4096 / ns->block_size - 1 : 0;

		uint64_t used;

		le64_put(id->nsze, ns->nblocks);
		le64_put(id->ncap, ns->nblocks);
		id->nsfeat = 1u << 4; /* NPWG..NOWS valid */
		/* Thin provisioning where the backend can tell what its data occupies (memory,
		 * file): NUSE in blocks, rounded up; otherwise all of it is in use. */
		if (ns->backend && nvtcp_backend_usage(ns->backend, &used) == 0) {
			id->nsfeat |= NVME_NSFEAT_THIN;
			le64_put(id->nuse,
				 MIN(ns->nblocks, (used + ns->block_size - 1) / ns->block_size));
		} else {
			le64_put(id->nuse, ns->nblocks);
		}
		id->nlbaf = 0;
		id->flbas = 0;
		id->nmic = 1; /* may be attached to several controllers */
		if (tgt_core_ns(ns)->dealloc_reads_zeroes)
			id->dlfeat = NVME_DLFEAT_READ_ZEROES | NVME_DLFEAT_WZ_DEAC;
		le16_put(id->npwg, (uint16_t)per4k);
		le16_put(id->npwa, (uint16_t)per4k);
		le16_put(id->npdg, (uint16_t)per4k);
		le16_put(id->npda, (uint16_t)per4k);
		le16_put(id->nows, (uint16_t)per4k);
		le64_put(id->nvmcap, ns->nblocks * ns->block_size);
		memcpy(id->nguid, ns->nguid, sizeof(id->nguid));
		memcpy(id->eui64, ns->eui64, sizeof(id->eui64));
		id->lbaf[0].lbads = ns->lbads;
	}
	tgt_req_fill(req, id, sizeof(*id), 0);
	free(id);
	admin_complete(req, 0);
}

static void admin_identify_active_list(struct tgt_req *req)
{
	struct tgt_subsys *s = req->queue->ctrl->subsys;
	uint32_t start = le32_get(req->sqe.nsid);
	uint8_t list[4096] = {0};
	unsigned n = 0;
	struct list_head *p;

	if (start >= 0xfffffffeu) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_NS));
		return;
	}
	list_for_each (p, &s->namespaces) {
		struct tgt_ns *ns = list_entry(p, struct tgt_ns, entry);

		if (ns->nsid > start && n < sizeof(list) / 4)
			le32_put(list + 4 * n++, ns->nsid);
	}
	tgt_req_fill(req, list, sizeof(list), 0);
	admin_complete(req, 0);
}

static size_t admin_put_desc(uint8_t *buf, size_t pos, uint8_t nidt, const void *id, uint8_t len)
{
	buf[pos] = nidt;
	buf[pos + 1] = len;
	memcpy(buf + pos + 4, id, len);
	return pos + 4 + len;
}

static void admin_identify_desc_list(struct tgt_req *req)
{
	struct tgt_ns *ns = tgt_subsys_ns(req->queue->ctrl->subsys, le32_get(req->sqe.nsid));
	static const uint8_t zero_eui[8];
	uint8_t list[4096] = {0};
	uint8_t csi = 0; /* NVM command set */
	size_t pos = 0;

	if (!ns) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_NS));
		return;
	}
	if (memcmp(ns->eui64, zero_eui, 8) != 0)
		pos = admin_put_desc(list, pos, NVME_NIDT_EUI64, ns->eui64, 8);
	pos = admin_put_desc(list, pos, NVME_NIDT_NGUID, ns->nguid, 16);
	pos = admin_put_desc(list, pos, NVME_NIDT_UUID, ns->uuid, 16);
	admin_put_desc(list, pos, NVME_NIDT_CSI, &csi, 1);
	tgt_req_fill(req, list, sizeof(list), 0);
	admin_complete(req, 0);
}

/* CNS 05h/06h for the NVM command set (CSI 0): every field 0, "no limit reported", as the
 * Linux target answers. Linux hosts ask for 06h on controllers reporting 1.3 or later. */
static void admin_identify_csi(struct tgt_req *req, bool ns)
{
	static const uint8_t zero[4096];
	uint32_t nsid = le32_get(req->sqe.nsid);

	if ((cdw(req->sqe.cdw11) >> 24) != 0) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
		return;
	}
	if (ns && !tgt_subsys_ns(req->queue->ctrl->subsys, nsid)) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_NS));
		return;
	}
	tgt_req_fill(req, zero, sizeof(zero), 0);
	admin_complete(req, 0);
}

static void admin_identify(struct tgt_req *req)
{
	switch (cdw(req->sqe.cdw10) & 0xff) {
	case 0x05:
		admin_identify_csi(req, true);
		break;
	case 0x06:
		admin_identify_csi(req, false);
		break;
	case NVME_CNS_NS:
		admin_identify_ns(req);
		break;
	case NVME_CNS_CTRL:
		tgt_admin_identify_ctrl(req);
		break;
	case NVME_CNS_NS_ACTIVE_LIST:
		admin_identify_active_list(req);
		break;
	case NVME_CNS_NS_DESC_LIST:
		admin_identify_desc_list(req);
		break;
	default:
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
	}
}

/* ---- Get Log Page ----------------------------------------------------------------------- */

uint32_t tgt_log_page_len(const struct tgt_req *req)
{
	uint32_t numd = (cdw(req->sqe.cdw10) >> 16) | (cdw(req->sqe.cdw11) & 0xffff) << 16;
	uint64_t len = ((uint64_t)numd + 1) * 4;

	/* Up to 16 GiB: saturate rather than wrap to a length a short SGL would match. */
	return len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
}

static uint64_t admin_log_offset(const struct tgt_req *req)
{
	return cdw(req->sqe.cdw12) | (uint64_t)cdw(req->sqe.cdw13) << 32;
}

static bool admin_log_rae(const struct tgt_req *req)
{
	return cdw(req->sqe.cdw10) & (1u << 15);
}

/* Copy page[lpo..] to the host; offsets past the page are a bad field. */
static void admin_log_send(struct tgt_req *req, const void *page, size_t len)
{
	uint64_t lpo = admin_log_offset(req);

	if (lpo > len || (lpo & 3)) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
		return;
	}
	tgt_req_fill(req, page, len, (size_t)lpo);
	admin_complete(req, 0);
}

static void admin_log_error(struct tgt_req *req)
{
	struct tgt_ctrl *ctrl = req->queue->ctrl;
	struct nvme_error_log *page = calloc(TGT_ERR_LOG_ENTRIES, sizeof(*page));
	uint64_t count;

	if (!page) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INTERNAL));
		return;
	}
	pthread_mutex_lock(&ctrl->lock);
	count = MIN(ctrl->err_count, TGT_ERR_LOG_ENTRIES);
	/* Newest first. */
	for (uint64_t i = 0; i < count; i++)
		page[i] = ctrl->err_log[(ctrl->err_count - 1 - i) % TGT_ERR_LOG_ENTRIES];
	pthread_mutex_unlock(&ctrl->lock);
	admin_log_send(req, page, TGT_ERR_LOG_ENTRIES * sizeof(*page));
	free(page);
}

static void admin_put128(uint8_t *p, uint64_t v)
{
	memset(p, 0, 16);
	le64_put(p, v);
}

/* Totals of the SMART traffic counters (summed from the per-thread shares). */
struct admin_stats_sum {
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t reads;
	uint64_t writes;
	uint64_t media_errors;
};

static void admin_stats_add(struct admin_stats_sum *sum, struct tgt_ns *ns)
{
	struct tgt_io_stats *st = &tgt_core_ns(ns)->stats;

	for (unsigned i = 0; i < TGT_MAX_THREADS; i++) {
		struct tgt_io_thread_stats *t = &st->thread[i];

		sum->bytes_read += atomic_load_explicit(&t->bytes_read, memory_order_relaxed);
		sum->bytes_written += atomic_load_explicit(&t->bytes_written, memory_order_relaxed);
		sum->reads += atomic_load_explicit(&t->reads, memory_order_relaxed);
		sum->writes += atomic_load_explicit(&t->writes, memory_order_relaxed);
	}
	sum->media_errors += atomic_load_explicit(&st->media_errors, memory_order_relaxed);
}

static void admin_log_smart(struct tgt_req *req)
{
	struct tgt_ctrl *ctrl = req->queue->ctrl;
	struct tgt_subsys *s = ctrl->subsys;
	uint32_t nsid = le32_get(req->sqe.nsid);
	struct admin_stats_sum sum = {0};
	struct nvme_smart_log log = {0};
	uint64_t hours;

	if (nsid == 0 || nsid == NVME_NSID_ALL) {
		struct list_head *p;

		list_for_each (p, &s->namespaces)
			admin_stats_add(&sum, list_entry(p, struct tgt_ns, entry));
	} else {
		struct tgt_ns *ns = tgt_subsys_ns(s, nsid);

		if (!ns) {
			admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_NS));
			return;
		}
		admin_stats_add(&sum, ns);
	}
	/* Data units: thousands of 512-byte units, rounded up. */
	admin_put128(log.data_units_read, (sum.bytes_read / 512 + 999) / 1000);
	admin_put128(log.data_units_written, (sum.bytes_written / 512 + 999) / 1000);
	admin_put128(log.host_reads, sum.reads);
	admin_put128(log.host_writes, sum.writes);
	hours = (tgt_now_ms() - tgt_core_subsys(s)->created_ms) / 3600000;
	admin_put128(log.power_on_hours, hours);
	admin_put128(log.power_cycles, 1);
	admin_put128(log.media_errors, sum.media_errors);
	pthread_mutex_lock(&ctrl->lock);
	admin_put128(log.num_err_log_entries, ctrl->err_count);
	pthread_mutex_unlock(&ctrl->lock);
	log.avail_spare = 100;
	log.spare_thresh = 10;
	admin_log_send(req, &log, sizeof(log));
}

/* Changed Namespace List. Reading it clears it and the event, but only a read that succeeds
 * and reaches the end of the page: a bad offset changes nothing, and a host reading it in
 * pieces gets every piece of the same list. */
static void admin_log_changed_ns(struct tgt_req *req)
{
	struct tgt_ctrl *ctrl = req->queue->ctrl;
	const size_t len = TGT_MAX_CHANGED_NS * sizeof(uint32_t);
	uint64_t lpo = admin_log_offset(req);
	uint32_t *page;
	bool to_end;
	unsigned n;

	if (lpo > len || (lpo & 3)) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
		return;
	}
	to_end = lpo + req->data_len >= len;
	page = calloc(TGT_MAX_CHANGED_NS, sizeof(uint32_t));
	if (!page) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INTERNAL));
		return;
	}
	pthread_mutex_lock(&ctrl->lock);
	n = ctrl->nr_changed_ns;
	if (n > TGT_MAX_CHANGED_NS) {
		le32_put((uint8_t *)page, 0xffffffffu); /* more changed than the list holds */
	} else {
		for (unsigned i = 0; i < n; i++)
			le32_put((uint8_t *)&page[i], ctrl->changed_ns[i]);
	}
	if (to_end)
		ctrl->nr_changed_ns = 0;
	pthread_mutex_unlock(&ctrl->lock);
	if (to_end)
		tgt_ctrl_clear_aen(ctrl, TGT_AEN_NS_ATTR, admin_log_rae(req));
	admin_log_send(req, page, len);
	free(page);
}

/* Firmware slot information: one read-only slot, active, holding the nvtcp version. */
static void admin_log_fw_slot(struct tgt_req *req)
{
	uint8_t log[512] = {0};

	log[0] = 1; /* AFI: slot 1 active */
	admin_pad((char *)&log[8], 8, TGT_FIRMWARE_REV);
	admin_log_send(req, log, sizeof(log));
}

static void admin_get_log_page(struct tgt_req *req)
{
	switch (cdw(req->sqe.cdw10) & 0xff) {
	case NVME_LOG_ERROR:
		admin_log_error(req);
		break;
	case NVME_LOG_SMART:
		admin_log_smart(req);
		break;
	case NVME_LOG_CHANGED_NS:
		admin_log_changed_ns(req);
		break;
	case NVME_LOG_FW_SLOT:
		admin_log_fw_slot(req);
		break;
	default:
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
	}
}

/* ---- Features --------------------------------------------------------------------------- */

enum admin_feat_sel {
	ADMIN_SEL_CURRENT,
	ADMIN_SEL_DEFAULT,
	ADMIN_SEL_SAVED,
	ADMIN_SEL_SUPPORTED,
	ADMIN_SEL_COUNT
};

static bool admin_feat_allowed(const struct tgt_ctrl *ctrl, uint8_t fid)
{
	if (ctrl->subsys->is_discovery)
		return fid == NVME_FEAT_KATO || fid == NVME_FEAT_ASYNC_EVENT;
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
	case NVME_FEAT_POWER_MGMT:
	case NVME_FEAT_TEMP_THRESH:
	case NVME_FEAT_ERR_RECOVERY:
	case NVME_FEAT_VOLATILE_WC:
	case NVME_FEAT_NUM_QUEUES:
	case NVME_FEAT_ASYNC_EVENT:
	case NVME_FEAT_KATO:
	case NVME_FEAT_HOST_ID:
		return true;
	default:
		return false;
	}
}

/* Events the controller reports (OAES) */
static uint32_t admin_aen_supported(const struct tgt_ctrl *ctrl)
{
	return ctrl->subsys->is_discovery ? NVME_OAES_DISC_LOG_CHANGE : NVME_OAES_NS_ATTR;
}

/* What Async Event Configuration accepts: the OAES events, and on an I/O controller the SMART /
 * Health critical warning bits 7:0, which every controller defines (the SPDK host sets bits 0-4
 * and submits no AER at all when that fails; Linux nvmet accepts them too). nvtcp's backends
 * raise none of those warnings, so the bits are stored and reported back, nothing more. */
#define ADMIN_AEC_CRIT_WARN 0xffu
static uint32_t admin_aec_settable(const struct tgt_ctrl *ctrl)
{
	return admin_aen_supported(ctrl) | (ctrl->subsys->is_discovery ? 0 : ADMIN_AEC_CRIT_WARN);
}

void tgt_admin_set_features(struct tgt_req *req)
{
	struct tgt_ctrl *ctrl = req->queue->ctrl;
	uint32_t cdw10 = cdw(req->sqe.cdw10), cdw11 = cdw(req->sqe.cdw11);
	uint8_t fid = cdw10 & 0xff;
	uint16_t status = 0;

	if (!admin_feat_allowed(ctrl, fid)) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
		return;
	}
	if (cdw10 & (1u << 31)) {
		admin_complete(req, TGT_SPECIFIC(NVME_SC_FEATURE_NOT_SAVEABLE));
		return;
	}
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
		ctrl->arbitration = cdw11;
		break;
	case NVME_FEAT_POWER_MGMT:
		if ((cdw11 & 0x1f) != 0) /* one power state: PS 0 */
			status = TGT_GENERIC(NVME_SC_INVALID_FIELD);
		else
			ctrl->power_mgmt = cdw11 & 0xff;
		break;
	case NVME_FEAT_TEMP_THRESH: {
		unsigned tmpsel = (cdw11 >> 16) & 0xf, thsel = (cdw11 >> 20) & 0x3;

		if (tmpsel == 0xf && thsel <= 1) { /* 1111b: every sensor (Set only) */
			for (unsigned i = 0; i < ARRAY_SIZE(ctrl->temp_thresh); i++)
				ctrl->temp_thresh[i][thsel] = cdw11 & 0xffff;
		} else if (tmpsel > 8 || thsel > 1) {
			status = TGT_GENERIC(NVME_SC_INVALID_FIELD);
		} else {
			ctrl->temp_thresh[tmpsel][thsel] = cdw11 & 0xffff;
		}
		break;
	}
	case NVME_FEAT_ERR_RECOVERY:
		if (cdw11 & (1u << 16)) /* DULBE: deallocated blocks are not errors here */
			status = TGT_GENERIC(NVME_SC_INVALID_FIELD);
		else
			ctrl->err_recovery = cdw11 & 0xffff;
		break;
	case NVME_FEAT_VOLATILE_WC:
		/* Only a controller that reports a volatile write cache supports the feature. */
		if (!admin_subsys_has_vwc(ctrl->subsys))
			status = TGT_GENERIC(NVME_SC_INVALID_FIELD);
		else
			atomic_store(&ctrl->vwc_enabled, (cdw11 & 1) != 0);
		break;
	case NVME_FEAT_NUM_QUEUES: {
		uint32_t nsq = (cdw11 & 0xffff) + 1, ncq = (cdw11 >> 16) + 1;
		uint16_t granted;
		bool io_queues = false;

		if (nsq == 0x10000 || ncq == 0x10000) {
			status = TGT_GENERIC(NVME_SC_INVALID_FIELD);
			break;
		}
		granted = (uint16_t)MIN(MIN(nsq, ncq), TGT_MAX_QUEUES);
		pthread_mutex_lock(&ctrl->lock);
		for (unsigned i = 1; i <= TGT_MAX_QUEUES; i++)
			io_queues |= ctrl->sq[i] != NULL;
		if (!io_queues) {
			ctrl->nr_io_queues = granted;
			ctrl->queues_set = true;
		}
		pthread_mutex_unlock(&ctrl->lock);
		if (io_queues) {
			status = TGT_GENERIC(NVME_SC_CMD_SEQ_ERROR);
			break;
		}
		le32_put(req->cqe.dw0, (uint32_t)(granted - 1) | (uint32_t)(granted - 1) << 16);
		break;
	}
	case NVME_FEAT_ASYNC_EVENT:
		if (cdw11 & ~admin_aec_settable(ctrl)) {
			status = TGT_GENERIC(NVME_SC_INVALID_FIELD);
			break;
		}
		/* tgt_ctrl_add_event() reads it under the lock, from any thread. */
		pthread_mutex_lock(&ctrl->lock);
		ctrl->aen_enabled = cdw11;
		pthread_mutex_unlock(&ctrl->lock);
		break;
	case NVME_FEAT_KATO:
		ctrl->kato_ms = cdw11;
		atomic_store(&ctrl->last_activity_ms, tgt_now_ms());
		tgt_ctrl_ka_arm(ctrl);
		break;
	case NVME_FEAT_HOST_ID:
		/* Fabrics hosts give their ID in Connect. */
		status = TGT_GENERIC(NVME_SC_CMD_SEQ_ERROR);
		break;
	}
	admin_complete(req, status);
}

void tgt_admin_get_features(struct tgt_req *req)
{
	struct tgt_ctrl *ctrl = req->queue->ctrl;
	uint32_t cdw10 = cdw(req->sqe.cdw10), cdw11 = cdw(req->sqe.cdw11);
	uint8_t fid = cdw10 & 0xff;
	unsigned sel = (cdw10 >> 8) & 0x7;
	bool dflt = sel == ADMIN_SEL_DEFAULT || sel == ADMIN_SEL_SAVED;
	uint32_t val = 0;

	if (!admin_feat_allowed(ctrl, fid) || sel >= ADMIN_SEL_COUNT) {
		admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
		return;
	}
	if (sel == ADMIN_SEL_SUPPORTED) {
		/* Changeable, not saveable, not namespace specific; Host ID is fixed by Connect. */
		le32_put(req->cqe.dw0, fid == NVME_FEAT_HOST_ID ? 0 : 1u << 2);
		admin_complete(req, 0);
		return;
	}
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
		val = dflt ? 0 : ctrl->arbitration;
		break;
	case NVME_FEAT_POWER_MGMT:
		val = dflt ? 0 : ctrl->power_mgmt;
		break;
	case NVME_FEAT_TEMP_THRESH: {
		unsigned tmpsel = (cdw11 >> 16) & 0xf, thsel = (cdw11 >> 20) & 0x3;

		if (tmpsel > 8 || thsel > 1) {
			admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
			return;
		}
		val = dflt ? (thsel ? 0 : 0xffff) : ctrl->temp_thresh[tmpsel][thsel];
		val |= tmpsel << 16 | thsel << 20;
		break;
	}
	case NVME_FEAT_ERR_RECOVERY:
		val = dflt ? 0 : ctrl->err_recovery;
		break;
	case NVME_FEAT_VOLATILE_WC:
		if (!admin_subsys_has_vwc(ctrl->subsys)) {
			admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
			return;
		}
		val = dflt ? 1 : atomic_load(&ctrl->vwc_enabled);
		break;
	case NVME_FEAT_NUM_QUEUES: {
		uint32_t n = (dflt ? TGT_MAX_QUEUES : ctrl->nr_io_queues) - 1;

		val = n | n << 16;
		break;
	}
	case NVME_FEAT_ASYNC_EVENT:
		val = dflt ? admin_aen_supported(ctrl) : ctrl->aen_enabled;
		break;
	case NVME_FEAT_KATO:
		val = dflt ? TGT_KATO_DEFAULT_MS : ctrl->kato_ms;
		break;
	case NVME_FEAT_HOST_ID:
		if (!(cdw11 & 1)) { /* only the 128-bit host identifier exists */
			admin_complete(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
			return;
		}
		tgt_req_fill(req, ctrl->hostid, sizeof(ctrl->hostid), 0);
		break;
	}
	le32_put(req->cqe.dw0, val);
	admin_complete(req, 0);
}

/* ---- Keep Alive, AER, Abort ------------------------------------------------------------- */

void tgt_admin_keep_alive(struct tgt_req *req)
{
	/* tgt_req_init already counted this command as traffic. */
	admin_complete(req, 0);
}

void tgt_admin_async_event(struct tgt_req *req)
{
	struct tgt_ctrl *ctrl = req->queue->ctrl;
	bool limit;

	pthread_mutex_lock(&ctrl->lock);
	limit = ctrl->nr_aer >= TGT_AERL + 1;
	if (!limit) {
		list_add_tail(&req->core_entry, &ctrl->aer_reqs);
		ctrl->nr_aer++;
	}
	pthread_mutex_unlock(&ctrl->lock);
	if (limit) {
		admin_complete(req, TGT_SPECIFIC(NVME_SC_AER_LIMIT));
		return;
	}
	/* The core holds the request until an event arrives or the admin queue goes. */
	tgt_ctrl_process_events(ctrl);
}

static void admin_abort(struct tgt_req *req)
{
	/* Commands are never aborted: DW0 bit 0 set says so (as the Linux target answers). */
	le32_put(req->cqe.dw0, 1);
	admin_complete(req, 0);
}

/* ---- dispatch --------------------------------------------------------------------------- */

/* Data a Get Features moves: only Host Identifier returns a buffer. */
static uint32_t admin_get_features_len(const struct tgt_req *req)
{
	return (cdw(req->sqe.cdw10) & 0xff) == NVME_FEAT_HOST_ID ? 16 : 0;
}

static int admin_expect(struct tgt_req *req, enum tgt_xfer xfer, uint32_t len,
			void (*fn)(struct tgt_req *))
{
	if (req->data_len != len)
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_SGL_INVALID_DATA));
	req->xfer = len ? xfer : TGT_XFER_NONE;
	req->execute = fn;
	return 0;
}

/* Linux answers commands before CC.EN = 1 and CSTS.RDY = 1 with Command Sequence Error. */
static bool admin_ctrl_ready(struct tgt_ctrl *ctrl)
{
	bool ready;

	pthread_mutex_lock(&ctrl->lock);
	ready = (ctrl->cc & NVME_CC_EN) && (ctrl->csts & NVME_CSTS_RDY);
	pthread_mutex_unlock(&ctrl->lock);
	return ready;
}

int tgt_admin_parse(struct tgt_req *req)
{
	if (!admin_ctrl_ready(req->queue->ctrl))
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_CMD_SEQ_ERROR));

	switch (req->sqe.opc) {
	case NVME_ADMIN_IDENTIFY:
		return admin_expect(req, TGT_XFER_FROM_CTRL, ADMIN_IDENTIFY_LEN, admin_identify);
	case NVME_ADMIN_GET_LOG_PAGE:
		return admin_expect(req, TGT_XFER_FROM_CTRL, tgt_log_page_len(req),
				    admin_get_log_page);
	case NVME_ADMIN_SET_FEATURES:
		return admin_expect(req, TGT_XFER_NONE, 0, tgt_admin_set_features);
	case NVME_ADMIN_GET_FEATURES:
		return admin_expect(req, TGT_XFER_FROM_CTRL, admin_get_features_len(req),
				    tgt_admin_get_features);
	case NVME_ADMIN_KEEP_ALIVE:
		return admin_expect(req, TGT_XFER_NONE, 0, tgt_admin_keep_alive);
	case NVME_ADMIN_ASYNC_EVENT:
		return admin_expect(req, TGT_XFER_NONE, 0, tgt_admin_async_event);
	case NVME_ADMIN_ABORT:
		return admin_expect(req, TGT_XFER_NONE, 0, admin_abort);
	default:
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_INVALID_OPCODE));
	}
}

int tgt_admin_expect(struct tgt_req *req, enum tgt_xfer xfer, uint32_t len,
		     void (*fn)(struct tgt_req *))
{
	return admin_expect(req, xfer, len, fn);
}

bool tgt_admin_ctrl_ready(struct tgt_ctrl *ctrl)
{
	return admin_ctrl_ready(ctrl);
}
