/* Target core internals: controllers, the core's wrappers around namespaces and subsystems, and
 * the helpers the command-set files (fabrics.c, admin.c, discovery.c, io.c) share.
 * Layer: target (core). The transport never includes this file; it uses tgt.h only.
 *
 * Threads: a controller's admin commands, keep-alive timer and AERs live on the admin queue's
 * thread; its I/O queues may sit on other threads. ctrl->lock guards what crosses threads
 * (queue table, CC/CSTS, events); lock order is tgt->lock, then ctrl->lock. */
#ifndef NVTCP_TARGET_CORE_H
#define NVTCP_TARGET_CORE_H

#include <stdatomic.h>

#include "../auth/dhchap.h"
#include "tgt.h"

#define TGT_MAX_NSID	    1024 /* NN and MNAN */
#define TGT_ERR_LOG_ENTRIES 64	 /* ELPE + 1 */
#define TGT_MAX_EVENTS	    8	 /* pending asynchronous events not yet reported */
#define TGT_MAX_CHANGED_NS  1024 /* changed namespace list capacity */
#define TGT_FIRMWARE_REV    "0.1.0"
#define TGT_DEFAULT_MODEL   "nvtcp"
#define TGT_CNTLID_MIN	    1
#define TGT_CNTLID_MAX	    0xffef

/* NVMe-oF Disconnect submitted on the admin queue: Invalid Queue Type (SCT 1). */
#define NVME_SC_INVALID_QUEUE_TYPE 0x85 /* (90h is Discover Restart) */

#define TGT_CACHE_LINE 64

/* One thread's share of a namespace's traffic counters. Only the thread with that index writes
 * it (relaxed load + store: no locked instruction on the I/O path); the SMART log sums the
 * shares with relaxed loads. A cache line each, so I/O threads never share one. */
struct tgt_io_thread_stats {
	_Alignas(TGT_CACHE_LINE) atomic_uint_least64_t bytes_read;
	atomic_uint_least64_t bytes_written;
	atomic_uint_least64_t reads;
	atomic_uint_least64_t writes;
};

/* Per-namespace traffic counters (SMART). */
struct tgt_io_stats {
	struct tgt_io_thread_stats thread[TGT_MAX_THREADS]; /* by tgt_thread.index */
	atomic_uint_least64_t media_errors; /* rare: one shared counter, any thread */
};

/* Add v to a counter only the calling thread writes. */
static inline void tgt_stat_add(atomic_uint_least64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* The core allocates every namespace inside this wrapper (container_of from struct tgt_ns),
 * aligned to TGT_CACHE_LINE (aligned_alloc: the per-thread counters need it). */
struct tgt_core_ns {
	struct tgt_ns ns;
	struct tgt_io_stats stats;
	bool dealloc_reads_zeroes;	     /* DLFEAT: deallocated blocks read back as zeroes */
	bool fd_registered[TGT_MAX_THREADS]; /* channel fd added to that thread's loop */
};

/* The core allocates every subsystem inside this wrapper. */
struct tgt_core_subsys {
	struct tgt_subsys subsys;
	struct tgt_ns *ns_by_id[TGT_MAX_NSID + 1]; /* I/O path lookup, NULL = inactive */
	uint64_t created_ms;			   /* for SMART power-on hours */
	/* DH-HMAC-CHAP allow-lists in order of preference ("dhchap_hashes"/"dhchap_dhgroups");
	 * empty = every hash / group (sha256 first, null first). */
	uint8_t dhchap_hashes[DHCHAP_HASH_COUNT];
	uint8_t nr_dhchap_hashes;
	uint8_t dhchap_dhgroups[DHCHAP_DHGROUP_COUNT];
	uint8_t nr_dhchap_dhgroups;
};

/* Pending events, one bit each, masked after being reported until the log page is read. */
enum tgt_aen_bit { TGT_AEN_NS_ATTR, TGT_AEN_DISC_CHANGE, TGT_AEN_COUNT };

struct tgt_ctrl {
	struct tgt *tgt;
	struct tgt_subsys *subsys;
	struct tgt_port *port;
	uint16_t cntlid;
	char hostnqn[NVME_NQN_MAX];
	uint8_t hostid[16];
	struct list_head entry; /* in subsys->ctrls (tgt->lock); empty once the admin queue left */

	pthread_mutex_t lock;
	unsigned refs;				  /* queues, posted work, pending flushes */
	struct tgt_queue *sq[TGT_MAX_QUEUES + 1]; /* [0] admin; ctrl->lock */
	struct tgt_thread *admin_thread;
	bool admin_gone; /* admin queue destroyed: no new queues, no events */

	/* registers (written on the admin thread under ctrl->lock) */
	uint32_t cc;
	uint32_t csts;
	bool shutdown_running;	    /* flush chain in progress (admin thread) */
	struct tgt_ns *shutdown_ns; /* namespace being flushed */
	struct nvtcp_bio shutdown_bio;

	/* keep-alive (admin thread) */
	uint32_t kato_ms;
	struct loop_timer ka_timer;
	atomic_uint_least64_t last_activity_ms;

	/* features (nr_io_queues, queues_set, aen_enabled: written on the admin thread under
	 * ctrl->lock, read under it elsewhere) */
	uint16_t nr_io_queues; /* granted by Set Features Number of Queues */
	bool queues_set;
	uint32_t aen_enabled; /* Asynchronous Event Configuration */
	atomic_bool vwc_enabled;
	uint32_t arbitration;
	uint32_t power_mgmt;
	uint32_t err_recovery;
	uint16_t temp_thresh[9][2]; /* [TMPSEL][THSEL: 0 over, 1 under] */

	/* asynchronous events (admin thread; ctrl->lock for posting) */
	struct list_head aer_reqs; /* held AER requests */
	unsigned nr_aer;
	uint32_t events[TGT_MAX_EVENTS]; /* completion DW0 values waiting for an AER */
	unsigned nr_events;
	unsigned aen_masked; /* 1 << enum tgt_aen_bit */
	uint32_t changed_ns[TGT_MAX_CHANGED_NS];
	unsigned nr_changed_ns; /* > TGT_MAX_CHANGED_NS means overflow */

	/* in-band authentication (auth.c): NULL if the host has no DH-HMAC-CHAP key */
	struct tgt_auth *auth;

	/* error log ring (ctrl->lock) */
	struct nvme_error_log err_log[TGT_ERR_LOG_ENTRIES];
	uint64_t err_count;
};

/* ---- helpers shared by the command files ------------------------------------------------ */

static inline struct tgt_core_ns *tgt_core_ns(struct tgt_ns *ns)
{
	return container_of(ns, struct tgt_core_ns, ns);
}

static inline struct tgt_core_subsys *tgt_core_subsys(struct tgt_subsys *s)
{
	return container_of(s, struct tgt_core_subsys, subsys);
}

/* Error status with DNR (the usual case for bad commands). */
#define TGT_ERR(sct, sc) ((uint16_t)(NVME_STATUS(sct, sc) | NVME_STATUS_DNR))
#define TGT_GENERIC(sc)	 TGT_ERR(NVME_SCT_GENERIC, sc)
#define TGT_SPECIFIC(sc) TGT_ERR(NVME_SCT_CMD_SPECIFIC, sc)

/* Monotonic milliseconds (any thread). */
uint64_t tgt_now_ms(void);

/* req.c: copy between the request's data buffer (req->iov) and flat memory. Return the bytes
 * copied (less than len only if the buffer is shorter). */
size_t tgt_req_copy_to(struct tgt_req *req, size_t offset, const void *src, size_t len);
size_t tgt_req_copy_from(struct tgt_req *req, size_t offset, void *dst, size_t len);
/* Fill the whole data buffer from page[offset..page_len), zero past its end. */
void tgt_req_fill(struct tgt_req *req, const void *page, size_t page_len, size_t offset);
/* Set the status (NVME_STATUS incl. DNR) without completing. */
void tgt_req_set_status(struct tgt_req *req, uint16_t status);
/* Fail tgt_req_init: set status, return -EINVAL. */
int tgt_req_fail(struct tgt_req *req, uint16_t status);

/* Parsers: set req->execute/xfer or fail. */
int tgt_fabrics_parse(struct tgt_req *req);
int tgt_admin_parse(struct tgt_req *req);
int tgt_disc_parse(struct tgt_req *req);
int tgt_io_parse(struct tgt_req *req);
/* Expected data length of a Get Log Page command. */
uint32_t tgt_log_page_len(const struct tgt_req *req);
/* Commands shared by admin.c and discovery.c. */
int tgt_admin_expect(struct tgt_req *req, enum tgt_xfer xfer, uint32_t len,
		     void (*fn)(struct tgt_req *));
bool tgt_admin_ctrl_ready(struct tgt_ctrl *ctrl);
void tgt_admin_identify_ctrl(struct tgt_req *req);
void tgt_admin_keep_alive(struct tgt_req *req);
void tgt_admin_async_event(struct tgt_req *req);
void tgt_admin_get_features(struct tgt_req *req);
void tgt_admin_set_features(struct tgt_req *req);
/* discovery.c: the discovery log page for req's controller and port, or NULL on -ENOMEM. */
void *tgt_disc_log_build(struct tgt_ctrl *ctrl, size_t *len);
void tgt_disc_get_log_page(struct tgt_req *req);

/* ---- controllers (ctrl.c) --------------------------------------------------------------- */

/* Create a controller for subsys/host; cntlid allocated, listed in subsys->ctrls, one ref held
 * for the admin queue. Returns NULL on -ENOMEM or when no cntlid is free. */
struct tgt_ctrl *tgt_ctrl_create(struct tgt *t, struct tgt_subsys *subsys, struct tgt_port *port,
				 const char *hostnqn, const uint8_t hostid[16]);
/* Find a live controller of subsys by cntlid for hostnqn; takes a ref (tgt_ctrl_put). */
struct tgt_ctrl *tgt_ctrl_find_get(struct tgt *t, struct tgt_subsys *subsys, uint16_t cntlid,
				   const char *hostnqn);
void tgt_ctrl_get(struct tgt_ctrl *ctrl);
/* Drop a ref; the last one frees the controller (any thread). */
void tgt_ctrl_put(struct tgt_ctrl *ctrl);
/* Keep-alive: (re)arm on the admin thread for ctrl->kato_ms (0 cancels). */
void tgt_ctrl_ka_arm(struct tgt_ctrl *ctrl);
/* The keep-alive timer found no traffic for KATO: fatal status, every queue disconnected. */
void tgt_ctrl_ka_expired(struct tgt_ctrl *ctrl);
/* Fatal error: CSTS.CFS, every queue disconnected. */
void tgt_ctrl_fatal(struct tgt_ctrl *ctrl);
/* Ask the transport to close every queue from first_qid on, each on its own thread. */
void tgt_ctrl_disconnect_queues(struct tgt_ctrl *ctrl, uint16_t first_qid);
/* The same for one queue (Disconnect command). */
void tgt_ctrl_disconnect_queue(struct tgt_ctrl *ctrl, uint16_t qid);
/* Property Set CC on the admin thread: enable, reset, shutdown. */
void tgt_ctrl_write_cc(struct tgt_ctrl *ctrl, uint32_t cc);
/* Post an asynchronous event (DW0 from NVME_AER_DW0) for bit; any thread. */
void tgt_ctrl_add_event(struct tgt_ctrl *ctrl, enum tgt_aen_bit bit, uint32_t dw0);
/* Admin thread: complete held AERs with pending events. */
void tgt_ctrl_process_events(struct tgt_ctrl *ctrl);
/* Namespace nsid changed (attributes, added, removed): changed list + AEN; any thread. */
void tgt_ctrl_ns_changed(struct tgt_ctrl *ctrl, uint32_t nsid);
/* Log page was read: unmask bit unless RAE (retain asynchronous event). */
void tgt_ctrl_clear_aen(struct tgt_ctrl *ctrl, enum tgt_aen_bit bit, bool rae);
/* Record a failed command in the error log (any thread). */
void tgt_ctrl_log_error(struct tgt_ctrl *ctrl, const struct tgt_req *req, uint16_t status);

/* ---- in-band authentication (auth.c) --------------------------------------------------- */

/* Admin Connect: if the subsystem lists ctrl's host with a "dhchap_key", set up ctrl->auth
 * (keys, allow-lists, one state per queue). Returns 0 or -ENOMEM / -EINVAL. */
int tgt_auth_ctrl_setup(struct tgt_ctrl *ctrl);
/* Last controller reference gone: wipe and free ctrl->auth. */
void tgt_auth_ctrl_free(struct tgt_ctrl *ctrl);
/* Connect of q (admin or I/O) succeeded: give it its own DH-HMAC-CHAP state, unauthenticated.
 * Returns the Connect response DW0 bits to add (AUTHREQ.ATR when authentication is required),
 * or -ENOMEM. On q's thread. */
int tgt_auth_queue_setup(struct tgt_queue *q);
/* May q run commands other than Connect and Authentication Send/Receive? */
bool tgt_auth_queue_ok(const struct tgt_queue *q);
/* q is going (tgt_queue_destroy): free its state. */
void tgt_auth_queue_destroy(struct tgt_queue *q);
/* Parse Authentication Send / Receive (FCTYPE 05h / 06h) on a connected queue. */
int tgt_auth_parse(struct tgt_req *req);

/* ---- subsystems (subsys.c) -------------------------------------------------------------- */

/* Allocate an empty subsystem (caller lists it in t->subsystems). */
struct tgt_subsys *tgt_subsys_alloc(const char *nqn);
/* Free a subsystem, its hosts and namespaces (closing backends). */
void tgt_subsys_free(struct tgt_subsys *s);
struct tgt_subsys *tgt_subsys_find(struct tgt *t, const char *nqn);
bool tgt_subsys_host_allowed(const struct tgt_subsys *s, const char *hostnqn);
static inline struct tgt_ns *tgt_subsys_ns(struct tgt_subsys *s, uint32_t nsid)
{
	if (nsid == 0 || nsid > TGT_MAX_NSID)
		return NULL;
	return tgt_core_subsys(s)->ns_by_id[nsid];
}
/* Allocate a namespace and add it to s (sorted); -EEXIST if nsid is taken. The backend (may be
 * NULL for a dry run) is owned by the namespace from here on. */
int tgt_subsys_add_ns(struct tgt_subsys *s, uint32_t nsid, struct nvtcp_backend *be,
		      uint32_t block_size, uint64_t size, struct tgt_ns **out);
/* Stable identifiers derived from (subsystem NQN, nsid). */
void tgt_ns_derive_ids(const char *subnqn, uint32_t nsid, uint8_t nguid[16], uint8_t uuid[16]);
/* Discovery information changed: bump the generation counter, notify discovery controllers. */
void tgt_disc_changed(struct tgt *t);

/* ---- configuration (config.c) ----------------------------------------------------------- */

/* Parse a JSON config held in buf (len bytes; name used in messages) into t. With
 * open_backends false nothing is opened (validation only, for the fuzzer). */
int tgt_config_parse(struct tgt *t, const char *name, const char *buf, size_t len,
		     bool open_backends, char *err, size_t errlen);

#endif
