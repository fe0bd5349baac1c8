/* Target internals shared by the transport (conn.c: PDUs, R2T/H2CData, C2HData) and the core
 * (fabrics.c, admin.c, discovery.c, io.c, ctrl.c, subsys.c, config.c). Like the kernel's
 * nvmet: the core never sees PDUs, the transport never interprets commands.
 * Layer: target.
 *
 * Command flow (transport side in [T], core side in [C]):
 *   [T] CapsuleCmd arrives: take a free struct tgt_req of the queue, copy the SQE, parse the
 *       SGL (tgt_req_parse_sgl) -> req->data_len, req->incapsule.
 *   [C] tgt_req_init(req): decode the command, check the transfer length and direction,
 *       set req->xfer and req->execute, or fill req->cqe with an error status (returns < 0).
 *   [T] give the request a data buffer (req->iov: req->data_len bytes, from the queue's pool),
 *       receive in-capsule data or run R2T/H2CData for writes, then call req->execute(req).
 *       If tgt_req_init failed, drain any in-capsule data and complete without executing.
 *   [C] execute, possibly asynchronously (backend), then tgt_req_complete(req).
 *   [T] queue->ops->complete(req): send C2HData for reads that succeeded, then CapsuleResp
 *       (or the SUCCESS flag when SQ flow control is off), free the request when sent.
 * A request belongs to the transport while free, to the core between req->execute and
 * tgt_req_complete, and back to the transport after. */
#ifndef NVTCP_TARGET_TGT_H
#define NVTCP_TARGET_TGT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nvtcp/backend.h"
#include "../common/list.h"
#include "../net/loop.h"
#include "../proto/nvme.h"
#include "../proto/wire.h"

#define TGT_MAX_THREADS	      64
#define TGT_MDTS	      7 /* 2^7 * 4 KiB = 512 KiB largest transfer */
#define TGT_MAX_XFER	      (4096u << TGT_MDTS)
#define TGT_MAX_QUEUES	      128    /* I/O queues per controller */
#define TGT_MAX_QUEUE_DEPTH   128    /* MQES + 1 */
#define TGT_DISC_KATO_MS      120000 /* discovery controllers connected with KATO 0 */
#define TGT_ADMIN_QUEUE_DEPTH 32
/* In-capsule data on I/O queues: IOCCSZ = (64 + this) / 16. */
#define TGT_INCAPSULE_IO    (128 * 1024)
#define TGT_INCAPSULE_ADMIN 8192
#define TGT_MAXH2CDATA	    (128 * 1024)
#define TGT_AERL	    3 /* 0's based: 4 outstanding AERs */
#define TGT_KATO_DEFAULT_MS 120000

struct tgt;
struct tgt_thread;
struct tgt_port;
struct tgt_subsys;
struct tgt_ns;
struct tgt_ctrl;
struct tgt_queue;
struct tgt_req;

enum tgt_xfer {
	TGT_XFER_NONE,
	TGT_XFER_TO_CTRL,   /* host to controller (write, Connect data, DSM ranges) */
	TGT_XFER_FROM_CTRL, /* controller to host (read, identify, log page) */
	TGT_XFER_COUNT
};

/* Callbacks from the core into the transport that owns a queue. Run on the queue's thread. */
struct tgt_queue_ops {
	/* The core finished req (req->cqe filled): send data/response; the transport frees it. */
	void (*complete)(struct tgt_req *req);
	/* The core wants this queue gone (keep-alive timeout, controller reset/shutdown, fatal
	 * controller error): close the connection; outstanding requests complete first or are
	 * dropped by the transport. */
	void (*disconnect)(struct tgt_queue *q);
	/* Optional: the TLS PSK identity the host presented ("NVMe0R01 hostnqn subnqn" ...), or
	 * NULL on a plaintext connection. Connect checks it against the NQNs in its data. */
	const char *(*tls_identity)(struct tgt_queue *q);
};

/* One NVMe queue pair = one TCP connection. Embedded in the transport's connection. */
struct tgt_queue {
	struct tgt *tgt;
	struct tgt_thread *thread; /* loop thread that owns the connection */
	struct tgt_port *port;	   /* listener it arrived on */
	const struct tgt_queue_ops *ops;
	struct tgt_ctrl *ctrl; /* set by Connect; NULL before */
	uint16_t qid;
	uint16_t sqsize;	     /* entries (1's based), from Connect */
	uint16_t sqhd;		     /* SQ head pointer reported in CQEs */
	bool sqfc_disabled;	     /* Connect CATTR bit 2: C2HData SUCCESS allowed */
	bool connected;		     /* Connect succeeded */
	char name[96];		     /* for logs: "127.0.0.1:45678 q1 ctrl 3" */
	char peer_addr[64];	     /* host address (for the access list and logs) */
	struct list_head ctrl_entry; /* in ctrl->queues (ctrl->lock) */
};

/* One command. Preallocated per queue slot by the transport (no allocation per I/O). */
struct tgt_req {
	struct wire_sqe sqe; /* command as received */
	struct wire_cqe cqe; /* response, filled by the core (status, dw0/dw1) */
	struct tgt_queue *queue;
	uint32_t data_len;  /* SGL length: bytes to transfer */
	bool incapsule;	    /* data comes in the CapsuleCmd */
	uint32_t incap_off; /* in-capsule: where the data starts in the capsule's data (SGL
			     * Offset subtype address; bytes before it are ignored) */
	enum tgt_xfer xfer; /* set by tgt_req_init */
	struct iovec *iov;  /* data buffer, req->data_len bytes, owned by the transport */
	int iovcnt;
	void (*execute)(struct tgt_req *req); /* set by tgt_req_init */
	struct tgt_ns *ns;		      /* I/O commands: resolved namespace */
	struct nvtcp_bio bio;		      /* backend request for I/O commands */
	/* transport: the backend's own memory may be used in place of a buffer. lend_ok: a Read
	 * may send the backend's bytes instead of a copy (the transport must cope with them
	 * changing under later Writes while queued). place_ok: a Write may be received straight
	 * into the namespace (with a data digest only if checked before any byte lands: bytes
	 * it would reject must not land). */
	bool lend_ok;
	bool place_ok;
	/* core: a Read whose backend lent its bytes (bio.lend) has req->iov pointing here, at
	 * memory the backend owns; the transport's own buffer (if any) stays its own. A Write
	 * set up for in-place data (bio.in_place) by tgt_req_init has req->iov pointing here
	 * before the transport allocates anything: the transport receives the data there. */
	struct iovec lent_iov;
	uint32_t sub_pending;	     /* core: outstanding sub-operations (DSM ranges) */
	int sub_status;		     /* core: first error of the sub-operations */
	struct list_head core_entry; /* core: pending AER list */
	void *transport;	     /* the transport's per-request state */
};

/* ---- core API used by the transport ----------------------------------------------------- */

/* Parse the SQE's SGL1 for NVMe/TCP: in-capsule (type 01h; the address is the offset of the
 * data within the capsule's, which must end with it) or transport data block (5Ah, address 0);
 * sets req->data_len, req->incapsule, req->incap_off. incapsule_len is how many data bytes
 * the CapsuleCmd actually carries; max_incapsule the queue's limit. Returns 0, or an NVMe
 * status (NVME_STATUS(...)) for a bad SGL (the command fails, the connection lives). */
uint16_t tgt_req_parse_sgl(struct tgt_req *req, uint32_t incapsule_len, uint32_t max_incapsule);

/* Decode req->sqe for req->queue: set req->xfer and req->execute, check data_len. Returns 0,
 * or -EINVAL with req->cqe holding the error status (complete without executing). */
int tgt_req_init(struct tgt_req *req);

/* Core finished a request: fill sqhd/sqid/cid in the CQE and hand it to the transport. */
void tgt_req_complete(struct tgt_req *req);
/* Convenience: set status (NVME_STATUS(sct, sc), DNR added when dnr) and complete. */
void tgt_req_complete_status(struct tgt_req *req, uint16_t status, bool dnr);

/* A queue's connection closed (any reason): detach from its controller. The transport has
 * already finished or dropped all requests of the queue that were executing... except requests
 * the core holds (AERs), which this call completes/drops. Call on the queue's thread. */
void tgt_queue_destroy(struct tgt_queue *q);

/* Count the queue's traffic for keep-alive purposes (any command received). */
void tgt_queue_touch(struct tgt_queue *q);

/* ---- target object model (core) -------------------------------------------------------- */

enum tgt_secure { TGT_SECURE_NONE, TGT_SECURE_OPTIONAL, TGT_SECURE_REQUIRED, TGT_SECURE_COUNT };

struct tgt_port {
	uint16_t portid;
	int adrfam;	  /* NVME_ADRFAM_IPV4 / IPV6 */
	char traddr[64];  /* numeric address */
	char trsvcid[16]; /* port number as text */
	enum tgt_secure secure;
	struct list_head entry; /* in tgt->ports */
	int listen_fd;		/* transport */
};

struct tls_psk_key;

struct tgt_host {
	char nqn[NVME_NQN_MAX];
	char *dhchap_key;	     /* optional, for later */
	char *dhchap_ctrl_key;	     /* optional */
	struct tls_psk_key *tls_psk; /* optional TLS PSK ("psk"/"psk_file"), tls_keys.c owns it */
	struct list_head entry;
};

struct tgt_ns {
	uint32_t nsid;
	struct tgt_subsys *subsys;
	struct nvtcp_backend *backend;
	struct nvtcp_backend_channel *channels[TGT_MAX_THREADS]; /* one per thread index */
	uint32_t block_size;
	uint8_t lbads; /* log2(block_size) */
	uint64_t nblocks;
	uint8_t nguid[16];
	uint8_t uuid[16];
	uint8_t eui64[8];
	struct list_head entry; /* in subsys->namespaces, sorted by nsid */
};

struct tgt_subsys {
	char nqn[NVME_NQN_MAX];
	char serial[21];
	char model[41];
	bool allow_any_host;
	bool is_discovery;
	struct list_head hosts;	     /* struct tgt_host */
	struct list_head namespaces; /* struct tgt_ns */
	struct list_head ctrls;	     /* struct tgt_ctrl (tgt->lock) */
	struct list_head entry;	     /* in tgt->subsystems */
};

struct tgt_thread {
	unsigned index;
	struct tgt *tgt;
	struct loop *loop;
	pthread_t tid;
	/* per-thread data buffer pool etc. belong to the transport */
	void *transport;
};

struct tgt {
	pthread_mutex_t lock; /* subsystems' controller lists, cntlid allocation, genctr */
	struct list_head ports;
	struct list_head subsystems; /* NVM subsystems, plus the discovery one */
	struct tgt_subsys *discovery;
	uint64_t disc_genctr;
	unsigned nr_threads;
	struct tgt_thread threads[TGT_MAX_THREADS];
	uint16_t next_cntlid;
	bool busy_poll;
	int first_cpu; /* pin thread i to CPU first_cpu + i; -1 no pinning */
};

/* ---- core lifecycle (config.c, subsys.c), called by the transport's target.c ------------ */

/* Initialise t: lock, empty lists, the discovery subsystem. Returns 0 or -errno. */
int tgt_init(struct tgt *t);
/* Load a JSON config (path) or, with path NULL, the built-in default: one subsystem
 * "nqn.2024-01.io.nvtcp:mem0" with a 1 GiB memory namespace, ports 127.0.0.1:4420 and
 * 127.0.0.1:8009. Opens the backends. Returns 0, or -errno with a message naming the file,
 * the JSON path and what is wrong in err. */
int tgt_config_load(struct tgt *t, const char *path, char *err, size_t errlen);
/* Drop every configured port (for --listen, which replaces them). */
void tgt_ports_clear(struct tgt *t);
/* Add a port from "ADDR:PORT" or "[IPV6]:PORT". Returns 0 or -EINVAL with a message. */
int tgt_port_add(struct tgt *t, const char *spec, char *err, size_t errlen);
/* On thread th, before its loop runs: open a backend channel per namespace and register the
 * channels' completion fds on th->loop. Returns 0 or -errno. */
int tgt_thread_attach(struct tgt_thread *th);
/* On thread th, after its connections are gone: close its channels. */
void tgt_thread_detach(struct tgt_thread *th);
/* Free subsystems, namespaces (closing backends: file data flushed) and ports. */
void tgt_fini(struct tgt *t);

#endif
