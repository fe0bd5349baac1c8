/* Request entry and exit for the target core: SGL parsing, command dispatch by queue and
 * opcode, completion (SQ head, error log), and copies to and from the request's data buffer.
 * Layer: target (core). Runs on the queue's thread. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "../common/le.h"
#include "../common/log.h"
#include "core.h"

uint64_t tgt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint16_t tgt_req_parse_sgl(struct tgt_req *req, uint32_t incapsule_len, uint32_t max_incapsule)
{
	const struct wire_sgl *sgl = &req->sqe.sgl1;
	uint32_t len = le32_get(sgl->length);
	uint64_t addr = le64_get(sgl->addr);

	/* The first core call for a command: a slot's previous response must not leak into
	 * this one when the SGL fails and tgt_req_init is skipped. */
	memset(&req->cqe, 0, sizeof(req->cqe));
	req->data_len = 0;
	req->incapsule = false;
	req->incap_off = 0;
	/* No data: Linux nvmet ignores a zero-length SGL whatever its type, and some hosts send
	 * all zeroes for commands without data (Keep Alive, Flush). */
	if (len == 0 && incapsule_len == 0)
		return 0;
	switch (sgl->type) {
	case WIRE_SGL_TYPE_DATA_BLOCK_OFFSET:
		/* The address is where the data starts within the in-capsule data (SGLS bit 20);
		 * the capsule carries exactly up to its end, within what IOCCSZ allows. */
		if (addr >= max_incapsule || (addr != 0 && addr >= incapsule_len))
			return TGT_GENERIC(NVME_SC_SGL_INVALID_OFFSET);
		if (addr + len != incapsule_len || len > max_incapsule - addr)
			return TGT_GENERIC(NVME_SC_SGL_INVALID_DATA);
		req->data_len = len;
		req->incap_off = (uint32_t)addr;
		req->incapsule = true;
		return 0;
	case WIRE_SGL_TYPE_TRANSPORT_DATA:
		if (addr != 0)
			return TGT_GENERIC(NVME_SC_SGL_INVALID_OFFSET);
		/* Data in the capsule but the SGL says it comes later: the lengths disagree. */
		if (incapsule_len != 0)
			return TGT_GENERIC(NVME_SC_SGL_INVALID_DATA);
		req->data_len = len;
		return 0;
	default:
		return TGT_GENERIC(NVME_SC_SGL_INVALID_TYPE);
	}
}

void tgt_req_set_status(struct tgt_req *req, uint16_t status)
{
	le16_put(req->cqe.status, status);
}

int tgt_req_fail(struct tgt_req *req, uint16_t status)
{
	tgt_req_set_status(req, status);
	req->execute = NULL;
	return -EINVAL;
}

int tgt_req_init(struct tgt_req *req)
{
	struct tgt_queue *q = req->queue;
	int ret;

	memset(&req->cqe, 0, sizeof(req->cqe));
	req->xfer = TGT_XFER_NONE;
	req->execute = NULL;
	req->ns = NULL;
	req->sub_pending = 0;
	req->sub_status = 0;
	list_init(&req->core_entry);
	tgt_queue_touch(q);

	if (req->sqe.flags & WIRE_SQE_FUSE_MASK)
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
	if (req->data_len > TGT_MAX_XFER)
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_SGL_INVALID_DATA));

	if (req->sqe.opc == NVME_FABRICS_OPC)
		ret = tgt_fabrics_parse(req);
	else if (!q->connected || !q->ctrl)
		ret = tgt_req_fail(req, TGT_GENERIC(NVME_SC_CMD_SEQ_ERROR));
	else if (!tgt_auth_queue_ok(q))
		ret = tgt_req_fail(req, TGT_SPECIFIC(NVME_SC_AUTH_REQUIRED));
	else if (q->qid == 0)
		ret = q->ctrl->subsys->is_discovery ? tgt_disc_parse(req) : tgt_admin_parse(req);
	else
		ret = tgt_io_parse(req);
	if (ret < 0)
		return ret;

	/* Direction and length: data the command does not move is a length error; in-capsule
	 * data on a command that returns data is a bad field (as the Linux target answers). */
	if (req->xfer == TGT_XFER_NONE && req->data_len != 0)
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_SGL_INVALID_DATA));
	if (req->xfer == TGT_XFER_FROM_CTRL && req->incapsule && req->data_len != 0)
		return tgt_req_fail(req, TGT_GENERIC(NVME_SC_INVALID_FIELD));
	return 0;
}

void tgt_req_complete(struct tgt_req *req)
{
	struct tgt_queue *q = req->queue;
	uint16_t status = le16_get(req->cqe.status);

	/* The head advances per completed command; with SQ flow control disabled it stays put
	 * and the host ignores it. */
	if (!q->sqfc_disabled && q->sqsize)
		q->sqhd = (uint16_t)((q->sqhd + 1) % q->sqsize);
	le16_put(req->cqe.sqhd, q->sqhd);
	le16_put(req->cqe.sqid, q->qid);
	memcpy(req->cqe.cid, req->sqe.cid, sizeof(req->cqe.cid));
	if (status && q->ctrl && req->sqe.opc != NVME_FABRICS_OPC)
		tgt_ctrl_log_error(q->ctrl, req, status);
	q->ops->complete(req);
}

void tgt_req_complete_status(struct tgt_req *req, uint16_t status, bool dnr)
{
	if (dnr && status)
		status |= NVME_STATUS_DNR;
	tgt_req_set_status(req, status);
	tgt_req_complete(req);
}

void tgt_queue_touch(struct tgt_queue *q)
{
	struct tgt_ctrl *ctrl = q->ctrl;
	uint64_t now, last;

	if (!ctrl)
		return;
	/* Every I/O thread touches the same controller: write the shared line only when the
	 * value moves by more than the timer could notice (KAS is 1 s). */
	/* The loop's clock is read once per turn: no clock_gettime per command. */
	now = q->thread && q->thread->loop ? loop_now_ms(q->thread->loop) : tgt_now_ms();
	last = atomic_load_explicit(&ctrl->last_activity_ms, memory_order_relaxed);
	if (now - last >= 10)
		atomic_store_explicit(&ctrl->last_activity_ms, now, memory_order_relaxed);
}

size_t tgt_req_copy_to(struct tgt_req *req, size_t offset, const void *src, size_t len)
{
	const uint8_t *s = src;
	size_t done = 0;

	for (int i = 0; i < req->iovcnt && done < len; i++) {
		size_t l = req->iov[i].iov_len;

		if (offset >= l) {
			offset -= l;
			continue;
		}
		size_t n = MIN(l - offset, len - done);
		memcpy((uint8_t *)req->iov[i].iov_base + offset, s + done, n);
		done += n;
		offset = 0;
	}
	return done;
}

size_t tgt_req_copy_from(struct tgt_req *req, size_t offset, void *dst, size_t len)
{
	uint8_t *d = dst;
	size_t done = 0;

	for (int i = 0; i < req->iovcnt && done < len; i++) {
		size_t l = req->iov[i].iov_len;

		if (offset >= l) {
			offset -= l;
			continue;
		}
		size_t n = MIN(l - offset, len - done);
		memcpy(d + done, (const uint8_t *)req->iov[i].iov_base + offset, n);
		done += n;
		offset = 0;
	}
	return done;
}

void tgt_req_fill(struct tgt_req *req, const void *page, size_t page_len, size_t offset)
{
	static const uint8_t zeroes[512];
	size_t pos = 0;

	if (offset < page_len)
		pos = tgt_req_copy_to(req, 0, (const uint8_t *)page + offset,
				      MIN(page_len - offset, req->data_len));
	while (pos < req->data_len) {
		size_t n =
			tgt_req_copy_to(req, pos, zeroes, MIN(sizeof(zeroes), req->data_len - pos));
		if (!n)
			break;
		pos += n;
	}
}
