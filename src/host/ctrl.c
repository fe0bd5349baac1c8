/* Host controller: Fabrics Connect of the admin queue then each I/O queue (each its own TCP
 * connection), CAP/VS, CC.EN and CSTS.RDY, Identify, Number of Queues, keep-alive at KATO/2,
 * admin commands, discovery log reading, and the public I/O API over struct host_conn.
 * Layer: host. Admin work is serialised by admin_lock; each I/O queue belongs to one thread. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvtcp/host.h"
#include "conn.h"
#include "auth.h"
#include "../common/le.h"
#include "../common/log.h"
#include "../common/errbuf.h"
#include "../proto/nvme.h"
#include "../net/sock.h"
#include "../net/tls.h"

#define CTRL_ADMIN_QSIZE      32
#define CTRL_DEFAULT_QSIZE    128
#define CTRL_DEFAULT_KATO     5000
#define CTRL_DEFAULT_TIMEOUT  10000
#define CTRL_IO_TIMEOUT_MIN   30000
#define CTRL_SHUTDOWN_TIMEOUT 5000
#define CTRL_MAX_XFER_DEFAULT (1u << 20) /* MDTS 0 means "no limit": stay well below 4 MiB */
#define CTRL_DISC_RETRIES     10
#define CTRL_DISC_MAX_RECORDS 4096

/* A command held while its queue reconnects (the caller's buffers, borrowed). */
struct ioq_held {
	struct wire_sqe sqe;
	struct iovec iov[NVTCP_IOV_MAX];
	int iovcnt;
	bool write;
	nvtcp_cb cb;
	void *arg;
};

struct nvtcp_io_queue {
	struct nvtcp_ctrl *ctrl;
	struct host_conn *conn; /* NULL while reconnecting */
	uint16_t qid;
	unsigned gen;	       /* controller generation conn was connected under */
	struct ioq_held *held; /* nr_slots entries, allocated at connect */
	unsigned nr_held;
	uint64_t next_attempt_ms;
	unsigned auth_gen; /* last ctrl->auth_gen this queue (re-)authenticated for */
	bool polling;	   /* inside nvtcp_queue_poll/wait or a sync call: callbacks may run */
};

/* Controller state for reconnection. */
enum ctrl_state {
	CTRL_LIVE,	/* every queue connected under the current generation */
	CTRL_RESETTING, /* a queue failed: admin queue being reconnected (with back-off) */
	CTRL_DEAD,	/* controller-loss timeout passed: everything fails */
	CTRL_STATE_COUNT
};

struct nvtcp_ctrl {
	char traddr[256];
	char tcp_cc[SOCK_CC_NAME_MAX + 1]; /* congestion control; "" = the system's */
	char trsvcid[32];
	uint8_t hostid[16];
	bool disable_sqflow;
	int timeout_ms;
	int io_timeout_ms;
	struct host_conn *admin;
	pthread_mutex_t admin_lock;
	struct nvtcp_io_queue *ioqs;
	unsigned nr_ioqs;
	struct nvtcp_ctrl_info info;
	uint32_t cc; /* last CC written */
	uint64_t ka_interval_ms;
	_Atomic uint64_t ka_next_ms;
	bool ka_outstanding;
	uint64_t ka_sent_ms; /* when the outstanding Keep Alive left (coarse clock) */
	/* reconnection: state and gen are read lock-free by I/O threads; the rest under rc_lock */
	struct nvtcp_ctrl_opts conn_opts; /* digests, queue count for reconnects */
	struct tls_psk_key tls_key;	  /* conn_opts.tls: the parsed PSK, wiped at free */
	struct host_auth *auth;		  /* DH-HMAC-CHAP secrets and per-queue slots; NULL: none */
	_Atomic unsigned auth_gen;	  /* bumped by nvtcp_ctrl_reauthenticate() */
	int loss_tmo_ms;		  /* < 0: no reconnect */
	unsigned delay_min_ms, delay_ms;
	_Atomic int state;
	_Atomic unsigned gen;
	pthread_mutex_t rc_lock;
	uint64_t loss_deadline_ms, next_attempt_ms;
	uint64_t reconnects;
};

static uint64_t ctrl_now_coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ctrl_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static int ctrl_connect_queue(struct nvtcp_ctrl *ctrl, uint16_t qid, unsigned qsize,
			      const struct nvtcp_ctrl_opts *opts, bool hold, struct host_conn **out,
			      char *err, size_t errlen);
static int ctrl_enable(struct nvtcp_ctrl *ctrl, char *err, size_t errlen);
static int ctrl_set_nr_queues(struct nvtcp_ctrl *ctrl, unsigned want, unsigned *granted, char *err,
			      size_t errlen);

/* ---- reconnection ------------------------------------------------------------------------ */

static bool ctrl_can_reconnect(const struct nvtcp_ctrl *ctrl)
{
	return ctrl->loss_tmo_ms >= 0;
}

/* A queue connected under generation gen failed: start resetting the controller, once per
 * generation (every queue of that generation fails at about the same time). */
static void ctrl_mark_failed(struct nvtcp_ctrl *ctrl, unsigned gen, int err)
{
	uint64_t now = host_now_ms();

	if (!ctrl_can_reconnect(ctrl))
		return;
	pthread_mutex_lock(&ctrl->rc_lock);
	if (atomic_load(&ctrl->state) == CTRL_LIVE && atomic_load(&ctrl->gen) == gen) {
		ctrl->loss_deadline_ms = now + (uint64_t)ctrl->loss_tmo_ms;
		ctrl->next_attempt_ms = now;
		ctrl->delay_ms = ctrl->delay_min_ms;
		atomic_store(&ctrl->state, CTRL_RESETTING);
		log_warn("%s:%s: connection to the controller lost (%s): reconnecting for up to %d "
			 "ms",
			 ctrl->traddr, ctrl->trsvcid, strerror(err < 0 ? -err : EIO),
			 ctrl->loss_tmo_ms);
	}
	pthread_mutex_unlock(&ctrl->rc_lock);
}

/* The controller's state, turning RESETTING into DEAD once the loss timeout has passed. */
static enum ctrl_state ctrl_state_check(struct nvtcp_ctrl *ctrl)
{
	enum ctrl_state st = atomic_load(&ctrl->state);

	if (st != CTRL_RESETTING)
		return st;
	pthread_mutex_lock(&ctrl->rc_lock);
	st = atomic_load(&ctrl->state);
	if (st == CTRL_RESETTING && host_now_ms() >= ctrl->loss_deadline_ms) {
		st = CTRL_DEAD;
		atomic_store(&ctrl->state, st);
		log_err("%s:%s: controller lost: no reconnect within the controller-loss timeout "
			"(%d ms); failing its commands",
			ctrl->traddr, ctrl->trsvcid, ctrl->loss_tmo_ms);
	}
	pthread_mutex_unlock(&ctrl->rc_lock);
	return st;
}

/* With admin_lock held: one attempt to bring the admin queue back if one is due (new
 * Connect, CC.EN, Number of Queues). On success the generation moves on; each I/O queue
 * then reconnects from its own polling thread (ioq_recover). */
static void ctrl_recover_locked(struct nvtcp_ctrl *ctrl)
{
	struct host_conn *admin = NULL;
	unsigned granted = 0;
	char err[320] = "";
	bool due;
	int r;

	if (ctrl_state_check(ctrl) != CTRL_RESETTING)
		return;
	pthread_mutex_lock(&ctrl->rc_lock);
	due = host_now_ms() >= ctrl->next_attempt_ms;
	pthread_mutex_unlock(&ctrl->rc_lock);
	if (!due)
		return;
	/* Outstanding admin commands (a Keep Alive) fail here. */
	host_conn_close(ctrl->admin);
	ctrl->admin = NULL;
	ctrl->ka_outstanding = false;
	r = ctrl_connect_queue(ctrl, 0, CTRL_ADMIN_QSIZE, &ctrl->conn_opts, false, &admin, err,
			       sizeof(err));
	if (r == 0) {
		ctrl->admin = admin;
		r = ctrl_enable(ctrl, err, sizeof(err));
	}
	if (r == 0 && ctrl->nr_ioqs) {
		r = ctrl_set_nr_queues(ctrl, ctrl->nr_ioqs, &granted, err, sizeof(err));
		if (r == 0 && granted < ctrl->nr_ioqs) {
			snprintf(err, sizeof(err), "only %u of %u I/O queues granted", granted,
				 ctrl->nr_ioqs);
			r = -EBUSY;
		}
	}
	if (r < 0) {
		host_conn_close(ctrl->admin);
		ctrl->admin = NULL;
	}
	pthread_mutex_lock(&ctrl->rc_lock);
	if (r < 0) {
		ctrl->next_attempt_ms = host_now_ms() + ctrl->delay_ms;
		log_info("%s:%s: reconnect failed (%s); next attempt in %u ms", ctrl->traddr,
			 ctrl->trsvcid, err, ctrl->delay_ms);
		ctrl->delay_ms = MIN(ctrl->delay_ms * 2, ctrl->delay_min_ms * 8);
	} else {
		ctrl->reconnects++;
		atomic_store(&ctrl->ka_next_ms, ctrl_now_coarse_ms() + ctrl->ka_interval_ms);
		atomic_fetch_add(&ctrl->gen, 1);
		atomic_store(&ctrl->state, CTRL_LIVE);
		log_warn("%s:%s: admin queue reconnected (cntlid %u); I/O queues follow",
			 ctrl->traddr, ctrl->trsvcid, ctrl->info.cntlid);
	}
	pthread_mutex_unlock(&ctrl->rc_lock);
}

/* ---- keep-alive -------------------------------------------------------------------------- */

static void ctrl_ka_done(void *arg, const struct nvtcp_cpl *cpl)
{
	struct nvtcp_ctrl *ctrl = arg;

	ctrl->ka_outstanding = false;
	if (cpl->err || cpl->status)
		log_warn("%s:%s: Keep Alive failed: %s", ctrl->traddr, ctrl->trsvcid,
			 cpl->err ? strerror(-cpl->err) : nvtcp_status_str(cpl->status));
}

/* With admin_lock held: send a Keep Alive if one is due. */
static void ctrl_ka_tick_locked(struct nvtcp_ctrl *ctrl)
{
	struct wire_sqe sqe = {.opc = NVME_ADMIN_KEEP_ALIVE};
	uint64_t now = ctrl_now_coarse_ms();

	if (!ctrl->admin || !ctrl->ka_interval_ms)
		return;
	/* Unanswered for a whole KATO (two intervals): the controller is gone, or no longer
	 * processing commands, even if the connection still stands. As Linux does, treat it as
	 * a failed connection: reconnect, or fail what is outstanding. */
	if (ctrl->ka_outstanding && !host_conn_is_failed(ctrl->admin) &&
	    now - ctrl->ka_sent_ms >= 2ull * ctrl->ka_interval_ms) {
		log_warn("%s:%s: Keep Alive unanswered after %llu ms: controller lost",
			 ctrl->traddr, ctrl->trsvcid, (unsigned long long)(now - ctrl->ka_sent_ms));
		host_conn_fail(ctrl->admin, -ETIMEDOUT);
		return;
	}
	if (ctrl->ka_outstanding || now < atomic_load(&ctrl->ka_next_ms))
		return;
	if (host_conn_submit(ctrl->admin, &sqe, NULL, 0, false, ctrl_ka_done, ctrl) == 0) {
		ctrl->ka_outstanding = true;
		ctrl->ka_sent_ms = now;
		atomic_store(&ctrl->ka_next_ms, now + ctrl->ka_interval_ms);
	}
}

/* With admin_lock held: poll the admin queue, send a due Keep Alive, notice a failure and
 * make a reconnect attempt when one is due. Returns 0, or -errno once the controller is
 * unusable (admin queue failed without reconnect, or the loss timeout passed). */
static int ctrl_admin_service_locked(struct nvtcp_ctrl *ctrl)
{
	int r = 0;

	if (ctrl->admin && atomic_load(&ctrl->state) == CTRL_LIVE) {
		unsigned gen = atomic_load(&ctrl->gen);

		r = host_conn_poll(ctrl->admin, 0);
		if (r >= 0) {
			ctrl_ka_tick_locked(ctrl);
			r = host_conn_poll(ctrl->admin, 0);
		}
		if (r < 0)
			ctrl_mark_failed(ctrl, gen, r);
	}
	if (!ctrl_can_reconnect(ctrl))
		return r < 0 ? r : 0;
	ctrl_recover_locked(ctrl);
	return ctrl_state_check(ctrl) == CTRL_DEAD ? -ETIMEDOUT : 0;
}

NVTCP_EXPORT int nvtcp_ctrl_reauthenticate(struct nvtcp_ctrl *ctrl, char *err, size_t errlen)
{
	char buf[320];
	unsigned gen;
	int r;

	if (!err || !errlen) {
		err = buf;
		errlen = sizeof(buf);
	}
	if (!ctrl->auth) {
		errbuf_set(err, errlen, "no DH-HMAC-CHAP secret configured");
		return -EINVAL;
	}
	pthread_mutex_lock(&ctrl->admin_lock);
	gen = atomic_load(&ctrl->gen);
	if (!ctrl->admin || atomic_load(&ctrl->state) != CTRL_LIVE ||
	    host_conn_is_failed(ctrl->admin)) {
		errbuf_set(err, errlen,
			   "the admin queue is not connected (queues authenticate again when "
			   "they reconnect)");
		r = -ENOTCONN;
	} else {
		r = host_auth_run(ctrl->auth, ctrl->admin, 0, ctrl->timeout_ms, err, errlen);
		if (r < 0) {
			/* The controller locks a queue that failed to re-authenticate. */
			host_conn_fail(ctrl->admin, r);
			ctrl_mark_failed(ctrl, gen, r);
		}
	}
	atomic_fetch_add(&ctrl->auth_gen, 1); /* I/O queues follow on their own threads */
	pthread_mutex_unlock(&ctrl->admin_lock);
	return r;
}

NVTCP_EXPORT int nvtcp_ctrl_process_admin(struct nvtcp_ctrl *ctrl)
{
	int r;

	pthread_mutex_lock(&ctrl->admin_lock);
	r = ctrl_admin_service_locked(ctrl);
	pthread_mutex_unlock(&ctrl->admin_lock);
	return r;
}

/* From I/O polling threads: cheap time check, and only if the admin queue is free. */
static void ctrl_ka_maybe(struct nvtcp_ctrl *ctrl)
{
	if (!ctrl->ka_interval_ms || ctrl_now_coarse_ms() < atomic_load(&ctrl->ka_next_ms))
		return;
	if (pthread_mutex_trylock(&ctrl->admin_lock) != 0)
		return;
	ctrl_admin_service_locked(ctrl);
	pthread_mutex_unlock(&ctrl->admin_lock);
}

/* ---- admin command helpers --------------------------------------------------------------- */

#define CTRL_ADMIN_TRIES 3 /* an admin command is retried on at most 2 new connections */

static int ctrl_admin_exec(struct nvtcp_ctrl *ctrl, const struct wire_sqe *sqe, void *buf,
			   size_t len, bool write, struct nvtcp_cpl *cpl)
{
	enum ctrl_state st;
	unsigned gen;
	int r = -ENOTCONN;

	pthread_mutex_lock(&ctrl->admin_lock);
	for (unsigned tries = 0; tries < CTRL_ADMIN_TRIES; tries++) {
		/* While reconnecting, wait (lock released) for the admin queue to come back. */
		while (ctrl_can_reconnect(ctrl) && (st = ctrl_state_check(ctrl)) != CTRL_LIVE) {
			if (st == CTRL_DEAD) {
				r = -ETIMEDOUT;
				goto out;
			}
			ctrl_recover_locked(ctrl);
			if (atomic_load(&ctrl->state) == CTRL_RESETTING) {
				pthread_mutex_unlock(&ctrl->admin_lock);
				ctrl_sleep_ms(20);
				pthread_mutex_lock(&ctrl->admin_lock);
			}
		}
		gen = atomic_load(&ctrl->gen);
		ctrl_ka_tick_locked(ctrl);
		r = host_conn_exec(ctrl->admin, sqe, buf, len, write, ctrl->timeout_ms, cpl);
		if (r >= 0 || !ctrl_can_reconnect(ctrl) || !host_conn_is_failed(ctrl->admin))
			break;
		ctrl_mark_failed(ctrl, gen, r);
	}
out:
	pthread_mutex_unlock(&ctrl->admin_lock);
	return r;
}

static int ctrl_prop_get(struct host_conn *conn, uint32_t ofst, bool wide, int timeout_ms,
			 uint64_t *val)
{
	struct wire_sqe sqe = {.opc = NVME_FABRICS_OPC};
	struct wire_prop_cmd *p = (struct wire_prop_cmd *)&sqe;
	struct nvtcp_cpl cpl;
	int r;

	p->fctype = NVME_FCTYPE_PROPERTY_GET;
	p->attrib = wide ? 1 : 0;
	le32_put(p->ofst, ofst);
	r = host_conn_exec(conn, &sqe, NULL, 0, false, timeout_ms, &cpl);
	if (r == 0)
		*val = (uint64_t)cpl.dw0 | (wide ? (uint64_t)cpl.dw1 << 32 : 0);
	return r;
}

static int ctrl_prop_set(struct host_conn *conn, uint32_t ofst, uint32_t val, int timeout_ms)
{
	struct wire_sqe sqe = {.opc = NVME_FABRICS_OPC};
	struct wire_prop_cmd *p = (struct wire_prop_cmd *)&sqe;

	p->fctype = NVME_FCTYPE_PROPERTY_SET;
	p->attrib = 0;
	le32_put(p->ofst, ofst);
	le64_put(p->value, val);
	return host_conn_exec(conn, &sqe, NULL, 0, false, timeout_ms, NULL);
}

static const char *ctrl_connect_status_str(uint16_t status)
{
	if (NVTCP_STATUS_SCT(status) != NVME_SCT_CMD_SPECIFIC)
		return nvtcp_status_str(status);
	switch (NVTCP_STATUS_SC(status)) {
	case NVME_SC_CONNECT_FORMAT:
		return "incompatible Connect format";
	case NVME_SC_CONNECT_CTRL_BUSY:
		return "controller busy";
	case NVME_SC_CONNECT_INVALID_PARAM:
		return "invalid Connect parameters: check the subsystem NQN (-n) and host NQN";
	case NVME_SC_CONNECT_RESTART_DISC:
		return "restart discovery";
	case NVME_SC_CONNECT_INVALID_HOST:
		return "this host NQN is not allowed to connect to the subsystem";
	case NVME_SC_AUTH_REQUIRED:
		return "DH-HMAC-CHAP authentication required: give --dhchap-secret";
	default:
		return nvtcp_status_str(status);
	}
}

/* TLS handshake on a fresh queue connection, before ICReq (the PSK identity names our host NQN
 * and the subsystem). */
static int ctrl_tls_start(struct nvtcp_ctrl *ctrl, struct host_conn *conn, int version,
			  const char *name, char *err, size_t errlen)
{
	struct tls_client_params p = {
		.key = &ctrl->tls_key,
		.hostnqn = ctrl->info.hostnqn,
		.subnqn = ctrl->info.subnqn,
		.identity_version = version,
	};
	int r = tls_client_start(&conn->stream, &p, name);

	if (r == 0)
		r = tls_handshake_sync(&conn->stream, ctrl->timeout_ms);
	if (r == -EACCES)
		errbuf_set(err, errlen,
			   "%s:%s refused the TLS PSK (wrong key, or no key for host %s there)",
			   ctrl->traddr, ctrl->trsvcid, ctrl->info.hostnqn);
	else if (r == -ECONNREFUSED)
		errbuf_set(err, errlen, "%s:%s does not speak TLS (a port without \"secure\"?)",
			   ctrl->traddr, ctrl->trsvcid);
	else if (r < 0)
		errbuf_set(err, errlen, "TLS handshake with %s:%s failed: %s", ctrl->traddr,
			   ctrl->trsvcid, strerror(-r));
	return r;
}

/* Dial, ICReq/ICResp and Fabrics Connect one queue. */
static int ctrl_connect_queue(struct nvtcp_ctrl *ctrl, uint16_t qid, unsigned qsize,
			      const struct nvtcp_ctrl_opts *opts, bool hold, struct host_conn **out,
			      char *err, size_t errlen)
{
	struct host_conn_opts co = {
		.qid = qid,
		.nr_slots = qsize - 1,
		.hdgst = opts->hdr_digest,
		.ddgst = opts->data_digest,
		/* Connect data (1 KiB) travels in-capsule on every queue. */
		.incapsule_max = HOST_ADMIN_INCAPSULE,
		.hold_on_fail = hold,
	};
	struct wire_sqe sqe = {.opc = NVME_FABRICS_OPC};
	struct wire_connect_cmd *cc = (struct wire_connect_cmd *)&sqe;
	struct wire_connect_data data;
	struct host_conn *conn;
	struct nvtcp_cpl cpl;
	char name[320];
	int fd, r;

	snprintf(name, sizeof(name), "%s:%s q%u", ctrl->traddr, ctrl->trsvcid, qid);
	co.name = name;
	fd = host_dial(ctrl->traddr, ctrl->trsvcid, ctrl->timeout_ms, ctrl->tcp_cc, err, errlen);
	if (fd < 0)
		return fd;
	r = host_conn_open(fd, &co, &conn);
	if (r < 0) {
		errbuf_set(err, errlen, "queue %u: %s", qid, strerror(-r));
		return r;
	}
	if (opts->tls) {
		r = ctrl_tls_start(ctrl, conn, opts->tls_identity_version, name, err, errlen);
		if (r < 0)
			goto err_close;
	}
	r = host_conn_connect(conn, ctrl->timeout_ms);
	if (r < 0) {
		if (r == -ETIMEDOUT)
			errbuf_set(err, errlen,
				   "%s:%s accepted TCP but sent no ICResp within %d ms: is it an "
				   "NVMe/TCP target?",
				   ctrl->traddr, ctrl->trsvcid, ctrl->timeout_ms);
		else if (r == -EPROTO)
			errbuf_set(err, errlen,
				   "%s:%s sent an invalid ICResp (see the log above); try without "
				   "--hdr-digest/--data-digest",
				   ctrl->traddr, ctrl->trsvcid);
		else
			errbuf_set(err, errlen,
				   "%s:%s closed the connection during ICReq/ICResp (%s): is it an "
				   "NVMe/TCP target, and does it support the digests asked for?",
				   ctrl->traddr, ctrl->trsvcid, strerror(-r));
		goto err_close;
	}

	cc->fctype = NVME_FCTYPE_CONNECT;
	le16_put(cc->qid, qid);
	le16_put(cc->sqsize, (uint16_t)(qsize - 1));
	cc->cattr = ctrl->disable_sqflow ? WIRE_CONNECT_CATTR_DISABLE_SQFC : 0;
	le32_put(cc->kato, qid == 0 ? ctrl->info.kato_ms : 0);
	memset(&data, 0, sizeof(data));
	memcpy(data.hostid, ctrl->hostid, sizeof(data.hostid));
	le16_put(data.cntlid, qid == 0 ? NVME_CNTLID_DYNAMIC : ctrl->info.cntlid);
	/* NUL-terminated within the 256 bytes (data was zeroed). */
	memcpy(data.subnqn, ctrl->info.subnqn, strnlen(ctrl->info.subnqn, NVME_NQN_MAX - 1));
	memcpy(data.hostnqn, ctrl->info.hostnqn, strnlen(ctrl->info.hostnqn, NVME_NQN_MAX - 1));
	r = host_conn_exec(conn, &sqe, &data, sizeof(data), true, ctrl->timeout_ms, &cpl);
	if (r < 0) {
		errbuf_set(err, errlen, "queue %u: Connect failed: %s", qid, strerror(-r));
		goto err_close;
	}
	if (r > 0) {
		errbuf_set(err, errlen, "queue %u: Connect to %s rejected: %s", qid,
			   ctrl->info.subnqn, ctrl_connect_status_str((uint16_t)r));
		r = -ECONNREFUSED;
		goto err_close;
	}
	/* DH-HMAC-CHAP before anything else on the queue. */
	r = host_auth_queue_connected(ctrl->auth, conn, qid, cpl.dw0, ctrl->timeout_ms, err,
				      errlen);
	if (r < 0)
		goto err_close;
	if (qid == 0)
		ctrl->info.cntlid = (uint16_t)cpl.dw0;
	*out = conn;
	return 0;

err_close:
	host_conn_close(conn);
	return r;
}

/* CC.EN = 1 and wait for CSTS.RDY within CAP.TO. */
static int ctrl_enable(struct nvtcp_ctrl *ctrl, char *err, size_t errlen)
{
	uint64_t cap, vs, csts;
	uint64_t deadline;
	unsigned mpsmin;
	int r;

	r = ctrl_prop_get(ctrl->admin, NVME_REG_CAP, true, ctrl->timeout_ms, &cap);
	if (r == 0)
		r = ctrl_prop_get(ctrl->admin, NVME_REG_VS, false, ctrl->timeout_ms, &vs);
	if (r) {
		errbuf_set(err, errlen, "Property Get CAP/VS failed: %s",
			   r < 0 ? strerror(-r) : nvtcp_status_str((uint16_t)r));
		return r < 0 ? r : -EIO;
	}
	ctrl->info.cap = cap;
	ctrl->info.vs = (uint32_t)vs;
	mpsmin = (unsigned)(cap >> NVME_CAP_MPSMIN_SHIFT) & 0xf;
	ctrl->cc = NVME_CC_EN | (6u << NVME_CC_IOSQES_SHIFT) | (4u << NVME_CC_IOCQES_SHIFT) |
		   (mpsmin << NVME_CC_MPS_SHIFT);
	r = ctrl_prop_set(ctrl->admin, NVME_REG_CC, ctrl->cc, ctrl->timeout_ms);
	if (r) {
		errbuf_set(err, errlen, "Property Set CC.EN failed: %s",
			   r < 0 ? strerror(-r) : nvtcp_status_str((uint16_t)r));
		return r < 0 ? r : -EIO;
	}
	/* CAP.TO is in 500 ms units. */
	deadline = host_now_ms() + MAX(500u, ((cap >> NVME_CAP_TO_SHIFT) & 0xff) * 500u);
	for (;;) {
		r = ctrl_prop_get(ctrl->admin, NVME_REG_CSTS, false, ctrl->timeout_ms, &csts);
		if (r) {
			errbuf_set(err, errlen, "Property Get CSTS failed: %s",
				   r < 0 ? strerror(-r) : nvtcp_status_str((uint16_t)r));
			return r < 0 ? r : -EIO;
		}
		if (csts & NVME_CSTS_CFS) {
			errbuf_set(err, errlen,
				   "controller fatal status (CSTS.CFS) while enabling");
			return -EIO;
		}
		if (csts & NVME_CSTS_RDY)
			return 0;
		if (host_now_ms() >= deadline) {
			errbuf_set(err, errlen, "controller not ready within CAP.TO (%u ms)",
				   (unsigned)((cap >> NVME_CAP_TO_SHIFT) & 0xff) * 500u);
			return -ETIMEDOUT;
		}
		ctrl_sleep_ms(10);
	}
}

static int ctrl_identify_setup(struct nvtcp_ctrl *ctrl, char *err, size_t errlen)
{
	struct nvme_id_ctrl *id = malloc(sizeof(*id));
	struct wire_sqe sqe = {.opc = NVME_ADMIN_IDENTIFY};
	uint32_t ioccsz, mps;
	int r;

	if (!id)
		return -ENOMEM;
	le32_put(sqe.cdw10, NVME_CNS_CTRL);
	r = host_conn_exec(ctrl->admin, &sqe, id, sizeof(*id), false, ctrl->timeout_ms, NULL);
	if (r) {
		errbuf_set(err, errlen, "Identify Controller failed: %s",
			   r < 0 ? strerror(-r) : nvtcp_status_str((uint16_t)r));
		free(id);
		return r < 0 ? r : -EIO;
	}
	mps = 4096u << ((ctrl->info.cap >> NVME_CAP_MPSMIN_SHIFT) & 0xf);
	/* In 64 bits: MPSMIN up to 128 MiB shifted by MDTS would wrap 32 (to 0 for 1 MiB << 12). */
	if (id->mdts && id->mdts < 16)
		ctrl->info.max_xfer = (uint32_t)MIN((uint64_t)mps << id->mdts, 32u << 20);
	else
		ctrl->info.max_xfer = CTRL_MAX_XFER_DEFAULT;
	ioccsz = le32_get(id->ioccsz);
	ctrl->info.incapsule_max = ioccsz >= 4 ? MIN(ioccsz * 16 - 64, 1u << 20) : 0;
	ctrl->info.nn = le32_get(id->nn);
	ctrl->info.cntrltype = id->cntrltype;
	free(id);
	return 0;
}

static int ctrl_set_nr_queues(struct nvtcp_ctrl *ctrl, unsigned want, unsigned *granted, char *err,
			      size_t errlen)
{
	struct wire_sqe sqe = {.opc = NVME_ADMIN_SET_FEATURES};
	struct nvtcp_cpl cpl;
	uint32_t n = want - 1;
	int r;

	le32_put(sqe.cdw10, NVME_FEAT_NUM_QUEUES);
	le32_put(sqe.cdw11, n | n << 16);
	r = host_conn_exec(ctrl->admin, &sqe, NULL, 0, false, ctrl->timeout_ms, &cpl);
	if (r) {
		errbuf_set(err, errlen, "Set Features Number of Queues failed: %s",
			   r < 0 ? strerror(-r) : nvtcp_status_str((uint16_t)r));
		return r < 0 ? r : -EIO;
	}
	*granted = MIN(want, MIN((cpl.dw0 & 0xffff) + 1, (cpl.dw0 >> 16) + 1));
	return 0;
}

static void ioq_fail_held(struct nvtcp_io_queue *q, int err);

static void ctrl_free(struct nvtcp_ctrl *ctrl)
{
	/* Callbacks run below; what they submit now fails instead of being held. */
	atomic_store(&ctrl->state, CTRL_DEAD);
	for (unsigned i = 0; ctrl->ioqs && i < ctrl->info.nr_io_queues; i++) {
		host_conn_close(ctrl->ioqs[i].conn);
		ctrl->ioqs[i].conn = NULL;
		ioq_fail_held(&ctrl->ioqs[i], -ECONNABORTED);
		free(ctrl->ioqs[i].held);
	}
	free(ctrl->ioqs);
	host_conn_close(ctrl->admin);
	pthread_mutex_destroy(&ctrl->rc_lock);
	pthread_mutex_destroy(&ctrl->admin_lock);
	tls_psk_wipe(&ctrl->tls_key, sizeof(ctrl->tls_key));
	host_auth_free(ctrl->auth);
	free(ctrl);
}

NVTCP_EXPORT int nvtcp_ctrl_connect(const struct nvtcp_ctrl_opts *opts, struct nvtcp_ctrl **out,
				    char *err, size_t errlen)
{
	struct nvtcp_ctrl *ctrl;
	unsigned qsize, granted = 0;
	int r;

	errbuf_set(err, errlen, "unknown error");
	if (!opts || !opts->traddr || !*opts->traddr) {
		errbuf_set(err, errlen, "no target address given (-a ADDR)");
		return -EINVAL;
	}
	ctrl = calloc(1, sizeof(*ctrl));
	if (!ctrl)
		return -ENOMEM;
	pthread_mutex_init(&ctrl->admin_lock, NULL);
	pthread_mutex_init(&ctrl->rc_lock, NULL);
	ctrl->conn_opts = *opts;
	/* Only the digest and queue settings are used again; the strings are not kept. */
	ctrl->conn_opts.traddr = ctrl->conn_opts.trsvcid = ctrl->conn_opts.subnqn = NULL;
	ctrl->conn_opts.hostnqn = NULL;
	ctrl->conn_opts.hostid = NULL;
	ctrl->conn_opts.tls_psk = NULL;
	ctrl->conn_opts.dhchap_secret = ctrl->conn_opts.dhchap_ctrl_secret = NULL;
	ctrl->conn_opts.dhchap_hashes = ctrl->conn_opts.dhchap_dhgroups = NULL;
	ctrl->loss_tmo_ms = opts->ctrl_loss_tmo_ms < 0 ? -1
			    : opts->ctrl_loss_tmo_ms   ? opts->ctrl_loss_tmo_ms
						       : NVTCP_CTRL_LOSS_TMO_DEFAULT;
	ctrl->delay_min_ms =
		opts->reconnect_delay_ms ? opts->reconnect_delay_ms : NVTCP_RECONNECT_DELAY_DEFAULT;
	ctrl->delay_ms = ctrl->delay_min_ms;
	/* checked before it is copied: a truncated name could be another one */
	if (opts->tcp_congestion && *opts->tcp_congestion) {
		r = sock_congestion_name_ok(opts->tcp_congestion, err, errlen);
		if (r < 0)
			goto err_free;
	}
	snprintf(ctrl->tcp_cc, sizeof(ctrl->tcp_cc), "%s",
		 opts->tcp_congestion ? opts->tcp_congestion : "");
	ctrl->conn_opts.tcp_congestion = NULL;
	snprintf(ctrl->traddr, sizeof(ctrl->traddr), "%s", opts->traddr);
	snprintf(ctrl->trsvcid, sizeof(ctrl->trsvcid), "%s",
		 opts->trsvcid && *opts->trsvcid ? opts->trsvcid : "4420");
	snprintf(ctrl->info.subnqn, sizeof(ctrl->info.subnqn), "%s",
		 opts->subnqn && *opts->subnqn ? opts->subnqn : NVME_DISCOVERY_NQN);
	if (opts->hostnqn && *opts->hostnqn) {
		snprintf(ctrl->info.hostnqn, sizeof(ctrl->info.hostnqn), "%s", opts->hostnqn);
	} else {
		r = nvtcp_default_hostnqn(ctrl->info.hostnqn, sizeof(ctrl->info.hostnqn));
		if (r < 0) {
			errbuf_set(err, errlen, "cannot determine a host NQN (%s): pass --hostnqn",
				   strerror(-r));
			goto err_free;
		}
	}
	if (opts->hostid) {
		memcpy(ctrl->hostid, opts->hostid, sizeof(ctrl->hostid));
	} else {
		r = nvtcp_hostid_for(ctrl->info.hostnqn, ctrl->hostid);
		if (r < 0) {
			errbuf_set(err, errlen, "cannot determine a host ID: %s", strerror(-r));
			goto err_free;
		}
	}
	if (opts->tls) {
		r = opts->tls_psk ? tls_psk_parse(opts->tls_psk, &ctrl->tls_key) : -EINVAL;
		if (r == 0 && (opts->tls_identity_version < 0 || opts->tls_identity_version > 1))
			r = -EDOM;
		if (r < 0) {
			errbuf_set(err, errlen, "TLS key: %s",
				   !opts->tls_psk ? "none given (--tls-key or --tls-key-file)"
				   : r == -EDOM	  ? "the identity version must be 0 or 1"
						  : tls_psk_parse_strerror(r));
			goto err_free;
		}
	}
	r = host_auth_create(opts, ctrl->info.hostnqn, ctrl->info.subnqn, opts->nr_io_queues + 1,
			     &ctrl->auth, err, errlen);
	if (r < 0)
		goto err_free;
	ctrl->info.hdr_digest = opts->hdr_digest;
	ctrl->info.data_digest = opts->data_digest;
	ctrl->disable_sqflow = opts->disable_sqflow;
	ctrl->timeout_ms =
		opts->connect_timeout_ms ? (int)opts->connect_timeout_ms : CTRL_DEFAULT_TIMEOUT;
	ctrl->io_timeout_ms = opts->io_timeout_ms ? (int)opts->io_timeout_ms
						  : MAX(ctrl->timeout_ms, CTRL_IO_TIMEOUT_MIN);
	ctrl->info.kato_ms = opts->kato_ms ? opts->kato_ms : CTRL_DEFAULT_KATO;

	r = ctrl_connect_queue(ctrl, 0, CTRL_ADMIN_QSIZE, opts, false, &ctrl->admin, err, errlen);
	if (r < 0)
		goto err_free;
	ctrl->info.maxh2cdata = ctrl->admin->params.maxh2cdata;
	r = ctrl_enable(ctrl, err, errlen);
	if (r < 0)
		goto err_free;
	r = ctrl_identify_setup(ctrl, err, errlen);
	if (r < 0)
		goto err_free;
	ctrl->ka_interval_ms = ctrl->info.kato_ms / 2;
	atomic_store(&ctrl->ka_next_ms, ctrl_now_coarse_ms() + ctrl->ka_interval_ms);

	if (opts->nr_io_queues && ctrl->info.cntrltype != NVME_CNTRLTYPE_DISCOVERY) {
		r = ctrl_set_nr_queues(ctrl, opts->nr_io_queues, &granted, err, errlen);
		if (r < 0)
			goto err_free;
		qsize = opts->queue_size ? opts->queue_size : CTRL_DEFAULT_QSIZE;
		qsize = MIN(qsize, NVME_CAP_MQES(ctrl->info.cap) + 1);
		qsize = MAX(qsize, 2u);
		ctrl->info.queue_size = qsize;
		ctrl->ioqs = calloc(granted, sizeof(*ctrl->ioqs));
		if (!ctrl->ioqs) {
			r = -ENOMEM;
			goto err_free;
		}
		ctrl->info.nr_io_queues = granted; /* queues ctrl_free() looks at */
		for (unsigned i = 0; i < granted; i++) {
			struct nvtcp_io_queue *q = &ctrl->ioqs[i];

			q->ctrl = ctrl;
			q->qid = (uint16_t)(i + 1);
			q->held = calloc(qsize - 1, sizeof(*q->held));
			if (!q->held) {
				r = -ENOMEM;
				goto err_free;
			}
			r = ctrl_connect_queue(ctrl, q->qid, qsize, opts, ctrl_can_reconnect(ctrl),
					       &q->conn, err, errlen);
			if (r < 0)
				goto err_free;
			q->conn->opts.incapsule_max = ctrl->info.incapsule_max;
			ctrl->nr_ioqs++;
		}
	}
	ctrl->info.nr_io_queues = ctrl->nr_ioqs;
	log_debug("%s:%s: connected cntlid %u, %u I/O queues of %u, max_xfer %u, in-capsule %u",
		  ctrl->traddr, ctrl->trsvcid, ctrl->info.cntlid, ctrl->nr_ioqs,
		  ctrl->info.queue_size, ctrl->info.max_xfer, ctrl->info.incapsule_max);
	*out = ctrl;
	return 0;

err_free:
	ctrl_free(ctrl);
	return r;
}

NVTCP_EXPORT void nvtcp_ctrl_disconnect(struct nvtcp_ctrl *ctrl)
{
	uint64_t csts, deadline;

	if (!ctrl)
		return;
	pthread_mutex_lock(&ctrl->admin_lock);
	if (ctrl->admin && !host_conn_is_failed(ctrl->admin) && (ctrl->cc & NVME_CC_EN)) {
		uint32_t cc = (ctrl->cc & ~NVME_CC_SHN_MASK) | NVME_CC_SHN_NORMAL;

		if (ctrl_prop_set(ctrl->admin, NVME_REG_CC, cc, ctrl->timeout_ms) == 0) {
			deadline = host_now_ms() + CTRL_SHUTDOWN_TIMEOUT;
			while (ctrl_prop_get(ctrl->admin, NVME_REG_CSTS, false, ctrl->timeout_ms,
					     &csts) == 0 &&
			       (csts & NVME_CSTS_SHST_MASK) != NVME_CSTS_SHST_CMPLT &&
			       host_now_ms() < deadline)
				ctrl_sleep_ms(10);
		}
	}
	pthread_mutex_unlock(&ctrl->admin_lock);
	ctrl_free(ctrl);
}

NVTCP_EXPORT const struct nvtcp_ctrl_info *nvtcp_ctrl_get_info(const struct nvtcp_ctrl *ctrl)
{
	return &ctrl->info;
}

NVTCP_EXPORT void nvtcp_ctrl_info_copy(struct nvtcp_ctrl *ctrl, struct nvtcp_ctrl_info *out)
{
	pthread_mutex_lock(&ctrl->admin_lock); /* what a reconnect rewrites, it does under it */
	*out = ctrl->info;
	pthread_mutex_unlock(&ctrl->admin_lock);
}

/* ---- admin API --------------------------------------------------------------------------- */

NVTCP_EXPORT int nvtcp_identify(struct nvtcp_ctrl *ctrl, uint8_t cns, uint32_t nsid, void *buf)
{
	struct wire_sqe sqe = {.opc = NVME_ADMIN_IDENTIFY};

	le32_put(sqe.nsid, nsid);
	le32_put(sqe.cdw10, cns);
	return ctrl_admin_exec(ctrl, &sqe, buf, 4096, false, NULL);
}

NVTCP_EXPORT int nvtcp_identify_ctrl(struct nvtcp_ctrl *ctrl, void *buf)
{
	return nvtcp_identify(ctrl, NVME_CNS_CTRL, 0, buf);
}

NVTCP_EXPORT int nvtcp_identify_ns(struct nvtcp_ctrl *ctrl, uint32_t nsid, void *buf)
{
	return nvtcp_identify(ctrl, NVME_CNS_NS, nsid, buf);
}

NVTCP_EXPORT int nvtcp_ns_get_info(struct nvtcp_ctrl *ctrl, uint32_t nsid,
				   struct nvtcp_ns_info *info)
{
	struct nvme_id_ns *ns = malloc(sizeof(*ns));
	unsigned fmt;
	int r;

	if (!ns)
		return -ENOMEM;
	r = nvtcp_identify_ns(ctrl, nsid, ns);
	if (r == 0) {
		fmt = (ns->flbas & 0xf) | ((ns->flbas >> 1) & 0x30);
		info->nsze = le64_get(ns->nsze);
		info->ncap = le64_get(ns->ncap);
		if (fmt >= ARRAY_SIZE(ns->lbaf) || ns->lbaf[fmt].lbads < 9 ||
		    ns->lbaf[fmt].lbads > 24) {
			r = -EINVAL;
		} else {
			info->lba_size = 1u << ns->lbaf[fmt].lbads;
			info->ms = le16_get(ns->lbaf[fmt].ms);
		}
		if (r == 0 && info->nsze == 0)
			r = -ENOENT; /* inactive namespace: Identify returns zeroes */
	}
	free(ns);
	return r;
}

NVTCP_EXPORT int nvtcp_get_log_page(struct nvtcp_ctrl *ctrl, uint32_t nsid, uint8_t lid,
				    uint8_t lsp, uint64_t off, void *buf, size_t len)
{
	size_t done = 0;
	uint32_t chunk_max = ctrl->info.max_xfer & ~3u;

	if (len == 0 || len % 4 || off % 4)
		return -EINVAL;
	while (done < len) {
		struct wire_sqe sqe = {.opc = NVME_ADMIN_GET_LOG_PAGE};
		size_t chunk = MIN(len - done, (size_t)chunk_max);
		uint32_t numd = (uint32_t)(chunk / 4 - 1);
		uint64_t lpo = off + done;
		int r;

		le32_put(sqe.nsid, nsid);
		le32_put(sqe.cdw10, lid | (uint32_t)(lsp & 0x7f) << 8 | (numd & 0xffff) << 16);
		le32_put(sqe.cdw11, numd >> 16);
		le32_put(sqe.cdw12, (uint32_t)lpo);
		le32_put(sqe.cdw13, (uint32_t)(lpo >> 32));
		r = ctrl_admin_exec(ctrl, &sqe, (uint8_t *)buf + done, chunk, false, NULL);
		if (r)
			return r;
		done += chunk;
	}
	return 0;
}

NVTCP_EXPORT int nvtcp_get_features(struct nvtcp_ctrl *ctrl, uint8_t fid, uint32_t nsid,
				    uint32_t cdw11, void *buf, size_t len, uint32_t *dw0)
{
	struct wire_sqe sqe = {.opc = NVME_ADMIN_GET_FEATURES};
	struct nvtcp_cpl cpl = {0};
	int r;

	le32_put(sqe.nsid, nsid);
	le32_put(sqe.cdw10, fid);
	le32_put(sqe.cdw11, cdw11);
	r = ctrl_admin_exec(ctrl, &sqe, buf, buf ? len : 0, false, &cpl);
	if (r == 0 && dw0)
		*dw0 = cpl.dw0;
	return r;
}

NVTCP_EXPORT int nvtcp_set_features(struct nvtcp_ctrl *ctrl, uint8_t fid, uint32_t nsid,
				    uint32_t cdw11, uint32_t cdw12, bool save, const void *buf,
				    size_t len, uint32_t *dw0)
{
	struct wire_sqe sqe = {.opc = NVME_ADMIN_SET_FEATURES};
	struct nvtcp_cpl cpl = {0};
	int r;

	le32_put(sqe.nsid, nsid);
	le32_put(sqe.cdw10, fid | (save ? 1u << 31 : 0));
	le32_put(sqe.cdw11, cdw11);
	le32_put(sqe.cdw12, cdw12);
	r = ctrl_admin_exec(ctrl, &sqe, (void *)buf, buf ? len : 0, true, &cpl);
	if (r == 0 && dw0)
		*dw0 = cpl.dw0;
	return r;
}

NVTCP_EXPORT int nvtcp_admin_passthru(struct nvtcp_ctrl *ctrl, const uint8_t sqe_bytes[64],
				      void *buf, size_t len, bool write, struct nvtcp_cpl *cpl)
{
	struct wire_sqe sqe;

	memcpy(&sqe, sqe_bytes, sizeof(sqe));
	return ctrl_admin_exec(ctrl, &sqe, buf, buf ? len : 0, write, cpl);
}

/* ---- discovery --------------------------------------------------------------------------- */

static void ctrl_disc_copy(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t n = strnlen(src, srclen);

	n = MIN(n, dstlen - 1);
	memcpy(dst, src, n);
	/* Fields are space-padded ASCII. */
	while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
		n--;
	dst[n] = '\0';
}

static void ctrl_disc_decode(const struct nvme_disc_log_entry *e, struct nvtcp_disc_entry *d)
{
	memset(d, 0, sizeof(*d));
	d->trtype = e->trtype;
	d->adrfam = e->adrfam;
	d->subtype = e->subtype;
	d->treq = e->treq;
	d->portid = le16_get(e->portid);
	d->cntlid = le16_get(e->cntlid);
	d->asqsz = le16_get(e->asqsz);
	d->eflags = le16_get(e->eflags);
	d->sectype = e->tsas[0];
	ctrl_disc_copy(d->trsvcid, sizeof(d->trsvcid), e->trsvcid, sizeof(e->trsvcid));
	ctrl_disc_copy(d->traddr, sizeof(d->traddr), e->traddr, sizeof(e->traddr));
	ctrl_disc_copy(d->subnqn, sizeof(d->subnqn), e->subnqn, sizeof(e->subnqn));
}

NVTCP_EXPORT int nvtcp_discover(const struct nvtcp_ctrl_opts *opts,
				struct nvtcp_disc_entry **entries, size_t *count, uint64_t *genctr,
				char *err, size_t errlen)
{
	struct nvtcp_ctrl_opts o = *opts;
	struct nvme_disc_log_hdr *hdr = NULL;
	struct nvme_disc_log_entry *recs = NULL;
	struct nvtcp_disc_entry *out = NULL;
	struct nvtcp_ctrl *ctrl;
	uint64_t gen = 0, numrec = 0;
	int r, tries;

	o.nr_io_queues = 0;
	if (!o.subnqn || !*o.subnqn)
		o.subnqn = NVME_DISCOVERY_NQN;
	r = nvtcp_ctrl_connect(&o, &ctrl, err, errlen);
	if (r < 0)
		return r;
	hdr = malloc(sizeof(*hdr));
	if (!hdr) {
		r = -ENOMEM;
		goto out;
	}
	for (tries = 0; tries < CTRL_DISC_RETRIES; tries++) {
		r = nvtcp_get_log_page(ctrl, 0, NVME_LOG_DISCOVERY, 0, 0, hdr, sizeof(*hdr));
		if (r)
			goto log_err;
		gen = le64_get(hdr->genctr);
		numrec = le64_get(hdr->numrec);
		if (numrec > CTRL_DISC_MAX_RECORDS) {
			errbuf_set(err, errlen, "discovery log claims %" PRIu64 " records", numrec);
			r = -E2BIG;
			goto out;
		}
		free(recs);
		recs = numrec ? malloc(numrec * sizeof(*recs)) : NULL;
		if (numrec && !recs) {
			r = -ENOMEM;
			goto out;
		}
		if (numrec) {
			r = nvtcp_get_log_page(ctrl, 0, NVME_LOG_DISCOVERY, 0, sizeof(*hdr), recs,
					       numrec * sizeof(*recs));
			if (r)
				goto log_err;
		}
		/* The log changed while we read it if the generation counter moved. */
		r = nvtcp_get_log_page(ctrl, 0, NVME_LOG_DISCOVERY, 0, 0, hdr, sizeof(*hdr));
		if (r)
			goto log_err;
		if (le64_get(hdr->genctr) == gen)
			break;
	}
	if (tries == CTRL_DISC_RETRIES) {
		errbuf_set(err, errlen, "discovery log kept changing while being read (%d tries)",
			   tries);
		r = -EAGAIN;
		goto out;
	}
	out = calloc(numrec ? numrec : 1, sizeof(*out));
	if (!out) {
		r = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < numrec; i++)
		ctrl_disc_decode(&recs[i], &out[i]);
	*entries = out;
	*count = numrec;
	if (genctr)
		*genctr = gen;
	r = 0;
	goto out;

log_err:
	errbuf_set(err, errlen, "Get Log Page (discovery) failed: %s",
		   r < 0 ? strerror(-r) : nvtcp_status_str((uint16_t)r));
out:
	free(recs);
	free(hdr);
	nvtcp_ctrl_disconnect(ctrl);
	return r;
}

/* ---- I/O --------------------------------------------------------------------------------- */

NVTCP_EXPORT struct nvtcp_io_queue *nvtcp_ctrl_io_queue(struct nvtcp_ctrl *ctrl, unsigned i)
{
	return i < ctrl->nr_ioqs ? &ctrl->ioqs[i] : NULL;
}

static unsigned ioq_slots(const struct nvtcp_io_queue *q)
{
	return q->ctrl->info.queue_size - 1;
}

/* Keep a command for resubmission (host_harvest_fn, and submissions while disconnected).
 * The caller checked there is room: held + outstanding never exceed the queue's slots. */
static void ioq_hold(void *ctx, const struct wire_sqe *sqe, const struct iovec *iov, int iovcnt,
		     bool write, nvtcp_cb cb, void *arg)
{
	struct nvtcp_io_queue *q = ctx;
	struct ioq_held *h = &q->held[q->nr_held++];

	h->sqe = *sqe;
	if (iovcnt > 0)
		memcpy(h->iov, iov, (size_t)iovcnt * sizeof(*iov));
	h->iovcnt = iovcnt;
	h->write = write;
	h->cb = cb;
	h->arg = arg;
}

/* Complete every held command with err (callbacks run here). */
static void ioq_fail_held(struct nvtcp_io_queue *q, int err)
{
	struct nvtcp_cpl cpl = {.err = err, .status = HOST_STATUS_PATH_ERROR};

	while (q->nr_held > 0) {
		struct ioq_held h = q->held[--q->nr_held];

		if (h.cb)
			h.cb(h.arg, &cpl);
	}
}

static bool ioq_needs_recover(const struct nvtcp_io_queue *q)
{
	return ctrl_can_reconnect(q->ctrl) &&
	       (!q->conn || host_conn_is_failed(q->conn) || q->gen != atomic_load(&q->ctrl->gen));
}

/* On the queue's polling thread: drop a failed (or older-generation) connection, keeping
 * the commands the controller never answered; once the admin queue is back, connect again
 * and resubmit them. Returns 0 (connected or still trying), or -ETIMEDOUT once the
 * controller was given up (held commands then fail with it). */
static int ioq_recover(struct nvtcp_io_queue *q)
{
	struct nvtcp_ctrl *ctrl = q->ctrl;
	struct host_conn *conn = NULL;
	enum ctrl_state st;
	unsigned gen, n;
	char err[320] = "";
	int r;

	if (q->conn) {
		bool failed = host_conn_is_failed(q->conn);
		int cerr = q->conn->err;

		if (!failed)
			host_conn_fail(q->conn, -ECONNABORTED); /* the controller was reset */
		host_conn_poll(q->conn, 0); /* teardown: answered commands complete here */
		host_conn_harvest(q->conn, ioq_hold, q);
		host_conn_close(q->conn);
		q->conn = NULL;
		if (failed)
			ctrl_mark_failed(ctrl, q->gen, cerr);
	}
	st = ctrl_state_check(ctrl);
	if (st == CTRL_RESETTING && pthread_mutex_trylock(&ctrl->admin_lock) == 0) {
		ctrl_recover_locked(ctrl);
		pthread_mutex_unlock(&ctrl->admin_lock);
		st = ctrl_state_check(ctrl);
	}
	if (st == CTRL_DEAD) {
		ioq_fail_held(q, -ETIMEDOUT);
		return -ETIMEDOUT;
	}
	if (st != CTRL_LIVE || host_now_ms() < q->next_attempt_ms)
		return 0;

	pthread_mutex_lock(&ctrl->admin_lock); /* cntlid and generation stay put meanwhile */
	gen = atomic_load(&ctrl->gen);
	if (atomic_load(&ctrl->state) == CTRL_LIVE) {
		r = ctrl_connect_queue(ctrl, q->qid, ctrl->info.queue_size, &ctrl->conn_opts, true,
				       &conn, err, sizeof(err));
		if (r < 0) {
			log_warn("%s:%s q%u: reconnect failed: %s", ctrl->traddr, ctrl->trsvcid,
				 q->qid, err);
			q->next_attempt_ms = host_now_ms() + ctrl->delay_min_ms;
			ctrl_mark_failed(ctrl, gen, r);
		}
	}
	pthread_mutex_unlock(&ctrl->admin_lock);
	if (!conn)
		return 0;
	conn->opts.incapsule_max = ctrl->info.incapsule_max;
	q->conn = conn;
	q->gen = gen;
	q->auth_gen = atomic_load(&ctrl->auth_gen); /* the new connection just authenticated */
	n = q->nr_held;
	q->nr_held = 0;
	for (unsigned i = 0; i < n; i++) {
		struct ioq_held *h = &q->held[i];

		if (host_conn_submit(conn, &h->sqe, h->iov, h->iovcnt, h->write, h->cb, h->arg) < 0)
			q->held[q->nr_held++] = *h; /* failed again: kept for the next round */
	}
	log_info("%s:%s q%u: reconnected, %u command(s) resubmitted", ctrl->traddr, ctrl->trsvcid,
		 q->qid, n - q->nr_held);
	return 0;
}

static bool ioq_needs_reauth(const struct nvtcp_io_queue *q)
{
	return q->ctrl->auth && q->conn && q->auth_gen != atomic_load(&q->ctrl->auth_gen);
}

/* On the queue's thread: the re-authentication nvtcp_ctrl_reauthenticate() asked for. A
 * refusal fails the queue (the controller locked it). Returns 0 or the queue's -errno. */
static int ioq_reauth(struct nvtcp_io_queue *q)
{
	struct nvtcp_ctrl *ctrl = q->ctrl;
	char err[320];
	int r;

	q->auth_gen = atomic_load(&ctrl->auth_gen);
	if (host_conn_is_failed(q->conn))
		return 0; /* the caller's poll reports it */
	r = host_auth_run(ctrl->auth, q->conn, q->qid, ctrl->timeout_ms, err, sizeof(err));
	if (r == 0)
		return 0;
	log_warn("%s:%s q%u: re-authentication failed: %s", ctrl->traddr, ctrl->trsvcid, q->qid,
		 err);
	host_conn_fail(q->conn, r);
	if (ctrl_can_reconnect(ctrl))
		return MIN(ioq_recover(q), 0);
	return host_conn_poll(q->conn, 0); /* completes what was outstanding, returns r */
}

/* Submit on the live connection, or hold the command while the queue reconnects. */
static int ioq_submit(struct nvtcp_io_queue *q, const struct wire_sqe *sqe, const struct iovec *iov,
		      int iovcnt, bool write, nvtcp_cb cb, void *arg)
{
	if (!ioq_needs_recover(q))
		return host_conn_submit(q->conn, sqe, iov, iovcnt, write, cb, arg);
	if (ctrl_state_check(q->ctrl) == CTRL_DEAD)
		return -ETIMEDOUT;
	/* what the connection would refuse is refused now: a held command is resubmitted until
	 * it is accepted */
	if (host_conn_check_data(iov, iovcnt) < 0)
		return -EINVAL;
	if (q->nr_held + (q->conn ? q->conn->outstanding : 0) >= ioq_slots(q))
		return -EBUSY;
	ioq_hold(q, sqe, iov, iovcnt, write, cb, arg);
	return 0;
}

static int ioq_submit_rw(struct nvtcp_io_queue *q, uint8_t opc, uint32_t nsid, uint64_t slba,
			 uint32_t nlb, const struct iovec *iov, int iovcnt, unsigned flags,
			 nvtcp_cb cb, void *arg)
{
	struct wire_sqe sqe = {.opc = opc};

	if (nlb == 0 || nlb > 65536)
		return -EINVAL;
	le32_put(sqe.nsid, nsid);
	le64_put(sqe.cdw10, slba); /* CDW10-11 */
	le32_put(sqe.cdw12, (nlb - 1) | (flags & NVTCP_IO_FUA ? NVME_RW_FUA : 0));
	return ioq_submit(q, &sqe, iov, iovcnt, opc == NVME_IO_WRITE, cb, arg);
}

NVTCP_EXPORT int nvtcp_submit_readv(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba,
				    uint32_t nlb, const struct iovec *iov, int iovcnt,
				    unsigned flags, nvtcp_cb cb, void *arg)
{
	return ioq_submit_rw(q, NVME_IO_READ, nsid, slba, nlb, iov, iovcnt, flags, cb, arg);
}

NVTCP_EXPORT int nvtcp_submit_writev(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba,
				     uint32_t nlb, const struct iovec *iov, int iovcnt,
				     unsigned flags, nvtcp_cb cb, void *arg)
{
	return ioq_submit_rw(q, NVME_IO_WRITE, nsid, slba, nlb, iov, iovcnt, flags, cb, arg);
}

NVTCP_EXPORT int nvtcp_submit_read(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba,
				   uint32_t nlb, void *buf, size_t len, unsigned flags, nvtcp_cb cb,
				   void *arg)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return ioq_submit_rw(q, NVME_IO_READ, nsid, slba, nlb, &iov, 1, flags, cb, arg);
}

NVTCP_EXPORT int nvtcp_submit_write(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba,
				    uint32_t nlb, const void *buf, size_t len, unsigned flags,
				    nvtcp_cb cb, void *arg)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return ioq_submit_rw(q, NVME_IO_WRITE, nsid, slba, nlb, &iov, 1, flags, cb, arg);
}

NVTCP_EXPORT int nvtcp_submit_flush(struct nvtcp_io_queue *q, uint32_t nsid, nvtcp_cb cb, void *arg)
{
	struct wire_sqe sqe = {.opc = NVME_IO_FLUSH};

	le32_put(sqe.nsid, nsid);
	return ioq_submit(q, &sqe, NULL, 0, false, cb, arg);
}

NVTCP_EXPORT int nvtcp_submit_write_zeroes(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba,
					   uint32_t nlb, bool deallocate, nvtcp_cb cb, void *arg)
{
	struct wire_sqe sqe = {.opc = NVME_IO_WRITE_ZEROES};

	if (nlb == 0 || nlb > 65536)
		return -EINVAL;
	le32_put(sqe.nsid, nsid);
	le64_put(sqe.cdw10, slba);
	le32_put(sqe.cdw12, (nlb - 1) | (deallocate ? NVME_WZ_DEAC : 0));
	return ioq_submit(q, &sqe, NULL, 0, false, cb, arg);
}

NVTCP_EXPORT void nvtcp_dsm_range_set(struct nvtcp_dsm_range *r, uint64_t slba, uint32_t nlb,
				      uint32_t cattr)
{
	struct nvme_dsm_range *w = (struct nvme_dsm_range *)r->bytes;

	le32_put(w->cattr, cattr);
	le32_put(w->nlb, nlb);
	le64_put(w->slba, slba);
}

NVTCP_EXPORT int nvtcp_submit_dsm(struct nvtcp_io_queue *q, uint32_t nsid,
				  const struct nvtcp_dsm_range *r, unsigned nr, uint32_t attrs,
				  nvtcp_cb cb, void *arg)
{
	struct wire_sqe sqe = {.opc = NVME_IO_DSM};
	struct iovec iov = {.iov_base = (void *)r, .iov_len = nr * sizeof(*r)};

	if (nr == 0 || nr > 256)
		return -EINVAL;
	le32_put(sqe.nsid, nsid);
	le32_put(sqe.cdw10, nr - 1);
	le32_put(sqe.cdw11, attrs);
	return ioq_submit(q, &sqe, &iov, 1, true, cb, arg);
}

/* Due Keep Alive (if the admin queue is free) and I/O command timeouts; q->conn is set. */
static void ioq_timers(struct nvtcp_io_queue *q)
{
	ctrl_ka_maybe(q->ctrl);
	host_conn_check_timeouts(q->conn, (unsigned)q->ctrl->io_timeout_ms);
}

static int ioq_poll(struct nvtcp_io_queue *q, unsigned max)
{
	int r;

	if (ioq_needs_recover(q)) {
		r = ioq_recover(q);
		if (r < 0 || !q->conn)
			return r;
	}
	if (unlikely(ioq_needs_reauth(q))) {
		r = ioq_reauth(q);
		if (r < 0 || !q->conn)
			return r;
	}
	ioq_timers(q);
	r = host_conn_poll(q->conn, max);
	if (r < 0 && ctrl_can_reconnect(q->ctrl))
		return MIN(ioq_recover(q), 0);
	return r;
}

static int ioq_wait(struct nvtcp_io_queue *q, int timeout_ms)
{
	int r;

	if (ioq_needs_recover(q)) {
		r = ioq_recover(q);
		if (r < 0)
			return r;
		if (!q->conn) {
			/* Disconnected: nothing to wait on but the next attempt. */
			ctrl_sleep_ms(timeout_ms < 0 ? 20 : (unsigned)MIN(timeout_ms, 20));
			return 0;
		}
	}
	if (unlikely(ioq_needs_reauth(q))) {
		r = ioq_reauth(q);
		if (r < 0 || !q->conn)
			return r;
	}
	ioq_timers(q);
	r = host_conn_wait(q->conn, timeout_ms);
	if (r < 0 && ctrl_can_reconnect(q->ctrl))
		return MIN(ioq_recover(q), 0);
	return r;
}

/* Completion callbacks run inside the calls that poll a queue (nvtcp_queue_poll/wait and the
 * synchronous I/O); polling the same queue from there would run the receive path (and maybe
 * tear the connection down) under the caller's feet. Such a call enters with ioq_enter (false:
 * return -EDEADLK) and leaves with ioq_leave. */
static bool ioq_enter(struct nvtcp_io_queue *q)
{
	if (q->polling)
		return false;
	q->polling = true;
	return true;
}

static int ioq_leave(struct nvtcp_io_queue *q, int r)
{
	q->polling = false;
	return r;
}

NVTCP_EXPORT int nvtcp_queue_poll(struct nvtcp_io_queue *q, unsigned max)
{
	return ioq_enter(q) ? ioq_leave(q, ioq_poll(q, max)) : -EDEADLK;
}

NVTCP_EXPORT int nvtcp_queue_wait(struct nvtcp_io_queue *q, int timeout_ms)
{
	return ioq_enter(q) ? ioq_leave(q, ioq_wait(q, timeout_ms)) : -EDEADLK;
}

NVTCP_EXPORT int nvtcp_queue_fd(const struct nvtcp_io_queue *q)
{
	return !q->conn || host_conn_is_failed(q->conn) ? -1 : q->conn->stream.fd;
}

NVTCP_EXPORT bool nvtcp_queue_needs_write(const struct nvtcp_io_queue *q)
{
	return q->conn && !host_conn_is_failed(q->conn) && stream_tx_pending(&q->conn->stream);
}

NVTCP_EXPORT bool nvtcp_queue_has_input(const struct nvtcp_io_queue *q)
{
	return q->conn && !host_conn_is_failed(q->conn) && stream_rx_pending(&q->conn->stream);
}

NVTCP_EXPORT unsigned nvtcp_queue_outstanding(const struct nvtcp_io_queue *q)
{
	return (q->conn ? q->conn->outstanding : 0) + q->nr_held;
}

NVTCP_EXPORT unsigned nvtcp_queue_depth(const struct nvtcp_io_queue *q)
{
	return ioq_slots(q);
}

struct ctrl_sync {
	bool done;
	struct nvtcp_cpl cpl;
};

static void ctrl_sync_cb(void *arg, const struct nvtcp_cpl *cpl)
{
	struct ctrl_sync *s = arg;

	s->cpl = *cpl;
	s->done = true;
}

/* ctrl_sync_rw gives up on its command (s and the caller's buffer die when it returns): fail
 * the connection and drop the command from it, and from the commands held for a reconnect,
 * so that no callback and no data transfer happen after the return. */
static void ctrl_sync_abandon(struct nvtcp_io_queue *q, struct ctrl_sync *s, int err)
{
	unsigned n = q->nr_held;

	if (q->conn)
		host_conn_abandon(q->conn, ctrl_sync_cb, s, err);
	q->nr_held = 0;
	for (unsigned i = 0; i < n; i++)
		if (q->held[i].cb != ctrl_sync_cb || q->held[i].arg != s)
			q->held[q->nr_held++] = q->held[i];
}

/* Between ioq_enter and ioq_leave (see ctrl_sync_rw). */
static int ctrl_sync_rw_polling(struct nvtcp_io_queue *q, uint8_t opc, uint32_t nsid, uint64_t slba,
				uint32_t nlb, void *buf, size_t len, unsigned flags)
{
	struct nvtcp_ctrl *ctrl = q->ctrl;
	size_t bs, chunk_blocks;
	int r;

	if (nlb == 0 || len == 0 || len % nlb)
		return -EINVAL;
	bs = len / nlb;
	chunk_blocks = MAX((size_t)1, ctrl->info.max_xfer / bs);
	chunk_blocks = MIN(chunk_blocks, (size_t)65536);
	while (nlb > 0) {
		uint32_t n = (uint32_t)MIN((size_t)nlb, chunk_blocks);
		struct iovec iov = {.iov_base = buf, .iov_len = n * bs};
		struct ctrl_sync s = {0};

		/* Other commands may hold every slot: poll until one frees up. */
		while ((r = ioq_submit_rw(q, opc, nsid, slba, n, &iov, 1, flags, ctrl_sync_cb,
					  &s)) == -EBUSY) {
			r = ioq_wait(q, 10);
			if (r < 0)
				return r;
		}
		if (r < 0)
			return r;
		/* (a command not completed within io_timeout_ms fails the queue in ioq_wait and
		 * completes with -ETIMEDOUT) */
		while (!s.done) {
			r = ioq_wait(q, 100);
			if (r < 0 && !s.done) {
				ctrl_sync_abandon(q, &s, r);
				return r;
			}
		}
		if (s.cpl.err)
			return s.cpl.err;
		if (s.cpl.status)
			return s.cpl.status;
		nlb -= n;
		slba += n;
		buf = (uint8_t *)buf + n * bs;
	}
	return 0;
}

/* The synchronous calls poll the queue: not from its own completion callbacks (-EDEADLK). */
static int ctrl_sync_rw(struct nvtcp_io_queue *q, uint8_t opc, uint32_t nsid, uint64_t slba,
			uint32_t nlb, void *buf, size_t len, unsigned flags)
{
	if (!ioq_enter(q))
		return -EDEADLK;
	return ioq_leave(q, ctrl_sync_rw_polling(q, opc, nsid, slba, nlb, buf, len, flags));
}

NVTCP_EXPORT int nvtcp_read(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba, uint32_t nlb,
			    void *buf, size_t len)
{
	return ctrl_sync_rw(q, NVME_IO_READ, nsid, slba, nlb, buf, len, 0);
}

NVTCP_EXPORT int nvtcp_write(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba, uint32_t nlb,
			     const void *buf, size_t len, unsigned flags)
{
	return ctrl_sync_rw(q, NVME_IO_WRITE, nsid, slba, nlb, (void *)buf, len, flags);
}
