/* nvtcp host library (libnvtcp): connect to an NVMe/TCP controller, run admin commands
 * (identify, log pages, features, discovery) and I/O on per-queue TCP connections.
 * Public API. Poll-driven, no internal threads: completions run inside nvtcp_queue_poll()
 * (or the synchronous wrappers) on the caller's thread.
 *
 * Threading: one thread at a time per I/O queue. Admin calls (identify, log pages, features,
 * nvtcp_ctrl_process_admin) are serialised by the library with a lock, so any thread may make
 * them. Keep-alive is sent at KATO/2 from nvtcp_ctrl_process_admin(), from the synchronous
 * wrappers and opportunistically from nvtcp_queue_poll(). */
#ifndef NVTCP_HOST_H
#define NVTCP_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nvtcp_ctrl;
struct nvtcp_io_queue;

#define NVTCP_DISCOVERY_NQN "nqn.2014-08.org.nvmexpress.discovery"
#define NVTCP_IOV_MAX	    8 /* iovecs one command's data may be scattered over */

/* Connection options. Strings are copied by nvtcp_ctrl_connect(). */
struct nvtcp_ctrl_opts {
	const char *traddr;	     /* IPv4/IPv6 address or host name (required) */
	const char *trsvcid;	     /* TCP port; NULL = "4420" */
	const char *subnqn;	     /* subsystem NQN; NULL = the discovery NQN */
	const char *hostnqn;	     /* NULL = nvtcp_default_hostnqn() */
	const uint8_t *hostid;	     /* 16 bytes; NULL = derived from the host NQN's UUID */
	bool hdr_digest;	     /* ask for CRC32C header digests */
	bool data_digest;	     /* ask for CRC32C data digests */
	unsigned nr_io_queues;	     /* I/O queues to create; 0 = admin queue only */
	unsigned queue_size;	     /* entries per I/O queue; 0 = 128 (capped by CAP.MQES) */
	unsigned kato_ms;	     /* keep-alive timeout; 0 = 5000 */
	unsigned connect_timeout_ms; /* TCP connect + ICResp + each admin command; 0 = 10000 */
	/* An I/O command not completed this long after submission fails its connection (the
	 * controller can no longer write into its buffer) and completes with -ETIMEDOUT; the
	 * others outstanding on that queue are sent again after the reconnect, or fail with it.
	 * 0 = 30000 (at least connect_timeout_ms). */
	unsigned io_timeout_ms;
	bool disable_sqflow; /* Connect CATTR: ask the controller to skip SQ flow control */
	/* Reconnection after the controller was reached once (see "Reconnect" below).
	 * ctrl_loss_tmo_ms: how long to keep trying before failing the held commands;
	 * 0 = NVTCP_CTRL_LOSS_TMO_DEFAULT, NVTCP_NO_RECONNECT = fail at once (no reconnect).
	 * reconnect_delay_ms: wait after a failed attempt, doubled after each failure up to 8x;
	 * 0 = NVTCP_RECONNECT_DELAY_DEFAULT. The first attempt is made at once. */
	int ctrl_loss_tmo_ms;
	unsigned reconnect_delay_ms;
	/* TLS 1.3 with a PSK (NVMe/TCP secure channel) on every queue, before ICReq. tls_psk is
	 * the configured PSK in interchange format "NVMeTLSkey-1:hh:<base64>:" (nvme
	 * gen-tls-key); hh 02 or a 48-byte key selects TLS_AES_256_GCM_SHA384, otherwise
	 * TLS_AES_128_GCM_SHA256. tls_identity_version: 0 "NVMe0R.." (SPDK, kernel) or 1
	 * "NVMe1R.." with the PSK digest (nvme-cli). The key is copied, never logged. */
	bool tls;
	const char *tls_psk;
	int tls_identity_version;
	/* DH-HMAC-CHAP in-band authentication, run on every queue (admin and each I/O queue, also
	 * after a reconnect) right after its Connect, when the controller asks for it (AUTHREQ)
	 * or dhchap_secret is set. dhchap_secret: the host secret "DHHC-1:hh:<base64>:" (nvme
	 * gen-dhchap-key), bound to the host NQN. dhchap_ctrl_secret (optional): the controller
	 * secret; the controller must then prove it too (bidirectional). dhchap_hashes /
	 * dhchap_dhgroups: comma-separated lists to offer ("sha256,sha512", "null,ffdhe2048");
	 * NULL = every hash and every group including null, as the Linux host offers. A refusal
	 * either way fails the connect. Secrets are copied, never logged. */
	const char *dhchap_secret;
	const char *dhchap_ctrl_secret;
	const char *dhchap_hashes;
	const char *dhchap_dhgroups;
	/* TCP congestion control of every queue's connection ("cubic", "bbr", "dctcp", ...);
	 * NULL or "" = the system's default (net.ipv4.tcp_congestion_control). The name is
	 * copied (reconnects use it too). */
	const char *tcp_congestion;
};

#define NVTCP_CTRL_LOSS_TMO_DEFAULT   60000 /* ms */
#define NVTCP_RECONNECT_DELAY_DEFAULT 1000  /* ms; doubles to 8000 */
#define NVTCP_NO_RECONNECT	      (-1)

/* Reconnect: when any queue of a connected controller fails (target restarted, connection
 * reset, malformed PDU, command timeout in a synchronous wrapper), the library tears down
 * every queue and connects again (new admin queue Connect, so a new CNTLID, then each I/O
 * queue), trying at once and then every reconnect_delay_ms (doubling up to 8x). I/O commands
 * the controller had not answered are kept, with their buffers still the caller's, and
 * resubmitted on the new connection; commands submitted meanwhile are held too. A write may
 * thus execute twice, as with the Linux host. Only when ctrl_loss_tmo_ms passes without
 * success is the controller given up: held commands complete with err -ETIMEDOUT, polls and
 * submissions return -ETIMEDOUT from then on. Admin calls in progress are retried once the
 * admin queue is back. Reconnect attempts run inside nvtcp_queue_poll()/nvtcp_queue_wait()
 * and nvtcp_ctrl_process_admin() and may block for one attempt (connect_timeout_ms bounded);
 * nvtcp_queue_fd() changes after a reconnect (-1 while disconnected). */

/* What was negotiated and identified at connect time. */
struct nvtcp_ctrl_info {
	uint16_t cntlid;
	uint32_t vs;		/* NVMe version (major << 16 | minor << 8 | tertiary) */
	uint64_t cap;		/* CAP property */
	uint32_t max_xfer;	/* largest data transfer of one command in bytes (from MDTS) */
	uint32_t incapsule_max; /* largest write sent in-capsule on I/O queues */
	uint32_t maxh2cdata;	/* from the admin queue's ICResp */
	unsigned nr_io_queues;	/* queues granted and connected */
	unsigned queue_size;	/* entries per I/O queue */
	uint32_t kato_ms;	/* 0 = no keep-alive */
	uint32_t nn;		/* number of namespaces (Identify NN) */
	uint8_t cntrltype;	/* 1 I/O, 2 discovery, 3 admin (0 = not reported) */
	bool hdr_digest, data_digest;
	char subnqn[257];
	char hostnqn[257];
};

/* Completion of one command. status is the CQE status field shifted right by one (phase bit
 * dropped): SC 7:0, SCT 10:8, CRD 12:11, M 13, DNR 14; 0 is success. err is 0, or a negative
 * errno when the command never completed on the wire (queue failed, -ETIMEDOUT, ...) in which
 * case status is a Host Pathing Error. */
struct nvtcp_cpl {
	int err;
	uint16_t status;
	uint32_t dw0;
	uint32_t dw1;
};

#define NVTCP_STATUS_SC(s)  ((s)&0xff)
#define NVTCP_STATUS_SCT(s) (((s) >> 8) & 0x7)
#define NVTCP_STATUS_DNR(s) (((s) >> 14) & 0x1)

/* Completion callback: runs on the thread that polls the queue, inside nvtcp_queue_poll() or a
 * synchronous wrapper. It may submit new commands on the same queue, but not poll or wait on it:
 * nvtcp_queue_poll(), nvtcp_queue_wait(), nvtcp_read() and nvtcp_write() on that queue return
 * -EDEADLK there. cpl is valid only during the call. The data buffer given at submission is the
 * caller's again once this runs. */
typedef void (*nvtcp_cb)(void *arg, const struct nvtcp_cpl *cpl);

/* Read/write flags */
#define NVTCP_IO_FUA (1u << 0) /* Force Unit Access */

/* ---- controller ------------------------------------------------------------------------- */

/* Connect: admin queue (ICReq, Fabrics Connect, CAP/VS, CC.EN, wait CSTS.RDY, Identify
 * Controller, Set Features Number of Queues), then each I/O queue on its own connection.
 * Blocking (bounded by opts->connect_timeout_ms per step). Returns 0 with *out set, or -errno
 * with a one-line human-readable reason (saying what to check) in err (errlen bytes). */
int nvtcp_ctrl_connect(const struct nvtcp_ctrl_opts *opts, struct nvtcp_ctrl **out, char *err,
		       size_t errlen);
/* Orderly shutdown: CC.SHN = normal and wait for CSTS.SHST complete (bounded), then close
 * every queue (outstanding commands complete with -ECONNABORTED) and free ctrl. */
void nvtcp_ctrl_disconnect(struct nvtcp_ctrl *ctrl);
/* Negotiated and identified parameters; valid until disconnect. A reconnect rewrites cntlid,
 * cap and vs (a new controller) under the library's admin lock, on whichever thread runs it:
 * read them from the pointer only where no reconnect can run meanwhile, or take a consistent
 * copy with nvtcp_ctrl_info_copy() (any thread). */
const struct nvtcp_ctrl_info *nvtcp_ctrl_get_info(const struct nvtcp_ctrl *ctrl);
void nvtcp_ctrl_info_copy(struct nvtcp_ctrl *ctrl, struct nvtcp_ctrl_info *out);

/* Poll the admin queue and send a Keep Alive when KATO/2 has passed since the last one. Call
 * this periodically (at least every KATO/2) if the application is otherwise idle. Thread-safe.
 * Returns 0, or -errno when the admin queue failed (the controller is then unusable). */
int nvtcp_ctrl_process_admin(struct nvtcp_ctrl *ctrl);

/* DH-HMAC-CHAP re-authentication (a new transaction with the configured secrets). The admin
 * queue is re-authenticated before this returns (thread-safe, like the admin calls); each I/O
 * queue at the start of its next nvtcp_queue_poll()/nvtcp_queue_wait(), on its own thread
 * (blocking that call for the exchange; commands already submitted go on meanwhile, as the
 * controller allows). A queue whose re-authentication fails is failed (and reconnected, which
 * authenticates again, if reconnection is enabled). Returns 0, -EINVAL when no secret is
 * configured, or the admin queue's -errno (-EKEYREJECTED when refused either way) with a
 * reason in err (errlen bytes; may be NULL). */
int nvtcp_ctrl_reauthenticate(struct nvtcp_ctrl *ctrl, char *err, size_t errlen);

/* ---- admin commands (synchronous, thread-safe) ------------------------------------------ */
/* Each returns 0 on success, a positive NVMe status (see struct nvtcp_cpl) when the controller
 * failed the command, or -errno on a transport failure or timeout. Buffers are the caller's. */

/* Identify with any CNS: 4096 bytes into buf. */
int nvtcp_identify(struct nvtcp_ctrl *ctrl, uint8_t cns, uint32_t nsid, void *buf);
/* Identify Controller (CNS 01h), 4096 bytes, NVMe layout (little-endian). */
int nvtcp_identify_ctrl(struct nvtcp_ctrl *ctrl, void *buf);
/* Identify Namespace (CNS 00h), 4096 bytes, NVMe layout. */
int nvtcp_identify_ns(struct nvtcp_ctrl *ctrl, uint32_t nsid, void *buf);

/* Namespace geometry decoded from Identify Namespace. */
struct nvtcp_ns_info {
	uint64_t nsze; /* size in logical blocks */
	uint64_t ncap;
	uint32_t lba_size; /* bytes per logical block */
	uint16_t ms;	   /* metadata bytes per block */
};
int nvtcp_ns_get_info(struct nvtcp_ctrl *ctrl, uint32_t nsid, struct nvtcp_ns_info *info);

/* Get Log Page: len bytes (multiple of 4) at byte offset off of log lid, split into transfers
 * the controller accepts. */
int nvtcp_get_log_page(struct nvtcp_ctrl *ctrl, uint32_t nsid, uint8_t lid, uint8_t lsp,
		       uint64_t off, void *buf, size_t len);
/* Get/Set Features; *dw0 (may be NULL) receives completion DW0. buf/len: feature data
 * (NULL/0 for none). */
int nvtcp_get_features(struct nvtcp_ctrl *ctrl, uint8_t fid, uint32_t nsid, uint32_t cdw11,
		       void *buf, size_t len, uint32_t *dw0);
int nvtcp_set_features(struct nvtcp_ctrl *ctrl, uint8_t fid, uint32_t nsid, uint32_t cdw11,
		       uint32_t cdw12, bool save, const void *buf, size_t len, uint32_t *dw0);
/* Any admin command: sqe is the 64-byte submission entry (CID, PSDT and SGL are filled in by
 * the library); data flows controller-to-host unless write is true. cpl may be NULL. */
int nvtcp_admin_passthru(struct nvtcp_ctrl *ctrl, const uint8_t sqe[64], void *buf, size_t len,
			 bool write, struct nvtcp_cpl *cpl);

/* ---- discovery -------------------------------------------------------------------------- */

/* One Discovery Log Page entry, decoded. */
struct nvtcp_disc_entry {
	uint8_t trtype;	 /* 3 = TCP */
	uint8_t adrfam;	 /* 1 IPv4, 2 IPv6 */
	uint8_t subtype; /* 1 referral, 2 NVM subsystem, 3 current discovery subsystem */
	uint8_t treq;
	uint16_t portid;
	uint16_t cntlid;
	uint16_t asqsz;
	uint16_t eflags;
	uint8_t sectype; /* TCP TSAS: 0 none, 1 TLS 1.2, 2 TLS 1.3 */
	char trsvcid[33];
	char traddr[257];
	char subnqn[257];
};

/* Connect to the discovery controller at opts (subnqn NULL = the well-known discovery NQN;
 * nr_io_queues is ignored), read the Discovery Log Page (70h) consistently (header, all
 * entries, header again: retry while the generation counter changed), disconnect.
 * On success *entries is a malloc'd array of *count entries (free() it) and *genctr (may be
 * NULL) the generation counter. Returns 0, a positive NVMe status, or -errno with a reason
 * in err. */
int nvtcp_discover(const struct nvtcp_ctrl_opts *opts, struct nvtcp_disc_entry **entries,
		   size_t *count, uint64_t *genctr, char *err, size_t errlen);

/* ---- I/O queues ------------------------------------------------------------------------- */

/* I/O queue i (0-based, < info.nr_io_queues) or NULL. Owned by ctrl. */
struct nvtcp_io_queue *nvtcp_ctrl_io_queue(struct nvtcp_ctrl *ctrl, unsigned i);

/* Submit commands. The data buffers (iov, at most NVTCP_IOV_MAX entries; their total length
 * is the transfer length) stay the caller's property but must not be touched until cb runs.
 * Writes up to info.incapsule_max travel in the command capsule, larger ones on R2T.
 * Returns 0 (cb will run exactly once from a later poll), -EBUSY when every queue slot is
 * in use (poll, then retry), -EINVAL, or -errno when the queue has failed (cb does not run).
 * Thread context: the queue's polling thread. */
int nvtcp_submit_readv(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba, uint32_t nlb,
		       const struct iovec *iov, int iovcnt, unsigned flags, nvtcp_cb cb, void *arg);
int nvtcp_submit_writev(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba, uint32_t nlb,
			const struct iovec *iov, int iovcnt, unsigned flags, nvtcp_cb cb,
			void *arg);
int nvtcp_submit_read(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba, uint32_t nlb,
		      void *buf, size_t len, unsigned flags, nvtcp_cb cb, void *arg);
int nvtcp_submit_write(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba, uint32_t nlb,
		       const void *buf, size_t len, unsigned flags, nvtcp_cb cb, void *arg);
int nvtcp_submit_flush(struct nvtcp_io_queue *q, uint32_t nsid, nvtcp_cb cb, void *arg);
/* Write Zeroes; deallocate asks the controller to deallocate the blocks too. */
int nvtcp_submit_write_zeroes(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba, uint32_t nlb,
			      bool deallocate, nvtcp_cb cb, void *arg);

/* Dataset Management range in wire layout (little-endian fields). Use
 * nvtcp_dsm_range_set() to fill one. */
struct nvtcp_dsm_range {
	uint8_t bytes[16];
};
void nvtcp_dsm_range_set(struct nvtcp_dsm_range *r, uint64_t slba, uint32_t nlb, uint32_t cattr);
/* Dataset Management (deallocate when attrs has NVTCP_DSM_DEALLOCATE) over nr (1..256)
 * ranges; the ranges array is the caller's until cb. */
#define NVTCP_DSM_DEALLOCATE (1u << 2)
int nvtcp_submit_dsm(struct nvtcp_io_queue *q, uint32_t nsid, const struct nvtcp_dsm_range *r,
		     unsigned nr, uint32_t attrs, nvtcp_cb cb, void *arg);

/* Send what is queued, receive and complete what arrived (callbacks run here), up to max
 * PDUs (0 = default budget). Never blocks. Returns the number of commands completed, or
 * -errno when the queue has failed for good (every outstanding command was completed with an
 * error). With reconnects on, a failed queue returns 0 while it reconnects (its commands are
 * held and sent again) and -errno only once the controller-loss timeout has passed; the
 * completions counted are those of the last poll that ran without a failure. */
int nvtcp_queue_poll(struct nvtcp_io_queue *q, unsigned max);
/* Sleep in poll(2) until the queue's socket is readable (or writable while sends are
 * pending) or timeout_ms passes (-1 = forever), then nvtcp_queue_poll(). Same return. */
int nvtcp_queue_wait(struct nvtcp_io_queue *q, int timeout_ms);
/* The socket to watch for integration into an external event loop: wait for POLLIN, and for
 * POLLOUT when nvtcp_queue_needs_write(); then call nvtcp_queue_poll(), and call it again
 * without waiting while nvtcp_queue_has_input(): a poll stops at its budget (max PDUs) with
 * the rest already received, where the socket will not report it again (a TLS connection may
 * also hold decrypted records). -1 once failed or while reconnecting (then call
 * nvtcp_queue_poll() every few ms); it changes on reconnect. */
int nvtcp_queue_fd(const struct nvtcp_io_queue *q);
bool nvtcp_queue_needs_write(const struct nvtcp_io_queue *q);
bool nvtcp_queue_has_input(const struct nvtcp_io_queue *q);
/* Commands submitted and not yet completed (including those held while reconnecting). */
unsigned nvtcp_queue_outstanding(const struct nvtcp_io_queue *q);
/* Commands the queue can hold at once (queue size - 1). */
unsigned nvtcp_queue_depth(const struct nvtcp_io_queue *q);

/* Synchronous I/O on queue q: submit, then poll until done (splitting at info.max_xfer).
 * len must be nlb * the namespace's block size. Returns 0, a positive NVMe status, or -errno. */
int nvtcp_read(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba, uint32_t nlb, void *buf,
	       size_t len);
int nvtcp_write(struct nvtcp_io_queue *q, uint32_t nsid, uint64_t slba, uint32_t nlb,
		const void *buf, size_t len, unsigned flags);

/* ---- identity and errors ---------------------------------------------------------------- */

/* The default host NQN: /etc/nvme/hostnqn if present, else $XDG_CONFIG_HOME/nvtcp/hostnqn
 * (~/.config/nvtcp/hostnqn), generated (nqn.2014-08.org.nvmexpress:uuid:<random UUID>) and
 * saved there on first use. Returns 0 or -errno. */
int nvtcp_default_hostnqn(char *buf, size_t len);
/* Host ID for a host NQN: its UUID when it has the uuid form, else a UUID persisted next to
 * the generated NQN. Returns 0 or -errno. */
int nvtcp_hostid_for(const char *hostnqn, uint8_t hostid[16]);

/* Readable text for an NVMe status (as in struct nvtcp_cpl): "Invalid Field in Command",
 * "LBA Out of Range", ... Static storage. */
const char *nvtcp_status_str(uint16_t status);
/* One line for a synchronous call's result (0, positive NVMe status, -errno) into buf. */
const char *nvtcp_result_str(int rc, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
