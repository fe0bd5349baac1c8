/* Host side of one NVMe/TCP queue: one TCP connection carrying one NVMe queue (admin or I/O).
 * Layer: host. ICReq/ICResp, CapsuleCmd building (in-capsule data or R2T-driven H2CData),
 * C2HData placed straight into the caller's buffer, CapsuleResp matched by CID, fatal errors
 * answered with H2CTermReq. Poll-driven over src/net/stream.c; no threads, no allocation per
 * command: every request slot and PDU header buffer is allocated at open. */
#ifndef NVTCP_HOST_CONN_H
#define NVTCP_HOST_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nvtcp/host.h"
#include "../net/stream.h"
#include "../proto/wire.h"

/* Host Pathing Error (SCT 3h, SC 70h) in struct nvtcp_cpl status form: what commands that
 * never completed on the wire report. */
#define HOST_STATUS_PATH_ERROR ((uint16_t)(0x3 << 8 | 0x70))
#define HOST_ADMIN_INCAPSULE   8192 /* admin and Fabrics commands may carry 8 KiB in-capsule */

enum host_conn_state {
	HOST_CONN_NEW,	   /* socket connected, ICReq not sent */
	HOST_CONN_IC_WAIT, /* ICReq sent, waiting for ICResp */
	HOST_CONN_LIVE,	   /* ICResp accepted: commands may flow */
	HOST_CONN_FAILED,  /* fatal error recorded; stream torn down at the next poll */
	HOST_CONN_CLOSED,  /* stream closed, every request completed */
	HOST_CONN_STATE_COUNT
};

struct host_conn_opts {
	uint16_t qid;
	unsigned nr_slots;	/* commands outstanding at once (queue size - 1) */
	bool hdgst, ddgst;	/* digests to ask for in ICReq */
	uint32_t incapsule_max; /* writes up to this travel in-capsule (set later for I/O) */
	const char *name;	/* for log lines ("10.0.0.1:4420 q1") */
	/* On queue failure keep commands the controller never answered in their slots (callback
	 * not run) for host_conn_harvest(), so they can be resubmitted on a new connection. */
	bool hold_on_fail;
};

struct host_conn;

/* One command slot; its index is the CID. Owned by the connection. */
struct host_req {
	struct host_conn *conn;
	uint16_t cid;
	bool busy;
	bool write;	/* data flows host -> controller */
	bool incapsule; /* write data sent in the capsule */
	bool resp_done; /* CapsuleResp (or C2HData SUCCESS) received */
	bool r2t_active;
	bool data_busy; /* data_tx is the stream's */
	unsigned sends; /* stream_tx of this request still owned by the stream */
	/* caller's data buffer (borrowed until the callback) */
	struct iovec iov[NVTCP_IOV_MAX];
	int iovcnt;
	uint32_t data_len;
	uint32_t c2h_done; /* read bytes placed */
	uint32_t h2c_sent; /* write bytes handed to the stream as H2CData */
	uint32_t r2t_end;  /* end offset of the R2T being answered */
	uint16_t ttag;
	struct nvtcp_cpl cpl;
	struct wire_sqe sqe; /* as the caller gave it (for resubmission after a reconnect) */
	uint8_t tmo_scans;   /* timeout scans it has been outstanding through (no clock per I/O) */
	bool timed_out;	     /* completes with -ETIMEDOUT, never held for a resubmission */
	nvtcp_cb cb;
	void *arg;
	struct stream_tx cmd_tx, data_tx;
	uint8_t cmd_ddgst[WIRE_DIGEST_LEN], data_ddgst[WIRE_DIGEST_LEN];
	uint8_t cmd_hdr[WIRE_PDO_MAX + WIRE_DIGEST_LEN] __attribute__((aligned(8)));
	uint8_t data_hdr[WIRE_PDO_MAX + WIRE_DIGEST_LEN] __attribute__((aligned(8)));
};

struct host_conn {
	enum host_conn_state state;
	uint64_t transitions; /* state changes (statistics, tests) */
	struct host_conn_opts opts;
	char name[320];
	struct stream stream;
	bool stream_live;
	bool in_poll;
	/* host_conn_exec is waiting for a free slot (the queue was full): submissions through
	 * host_conn_submit leave that many free, so that completions make room for it */
	unsigned exec_waiting;
	uint64_t next_tmo_check_ms; /* host_conn_check_timeouts: next look at the slots */
	bool woke;		    /* this host_conn_poll follows a sleep in host_conn_wait */
	unsigned turn_cmds;	    /* commands submitted in this poll: see host_conn_flush_early */
	/* Within host_conn_poll: the completion count at which every command outstanding when it
	 * began has completed (0: no limit). Then the controller has nothing more to send until
	 * the commands submitted meanwhile leave, so receiving stops without another read that
	 * could only return EAGAIN. */
	uint64_t rx_until;
	int err;	   /* first fatal error (-errno) */
	bool term_pending; /* send an H2CTermReq from stream.err before closing */
	struct pdu_params params;
	uint8_t icreq_buf[sizeof(union wire_pdu)] __attribute__((aligned(8)));
	struct stream_tx icreq_tx;
	struct host_req *reqs; /* nr_slots entries */
	uint16_t *free_cids;   /* stack of free slots */
	unsigned nr_free;
	unsigned outstanding;
	uint64_t completions;
	/* statistics */
	uint64_t r2t_count, h2c_pdus, c2h_pdus, ddgst_errors;
};

/* Take a connected socket (ownership passes to the connection: closed at host_conn_close) and
 * allocate the slots. Returns 0 with *out set or -errno. */
int host_conn_open(int fd, const struct host_conn_opts *opts, struct host_conn **out);
/* Queue the ICReq (sent at the next poll) and wait for ICResp without blocking: the queue
 * turns HOST_CONN_LIVE inside a later host_conn_poll(). Returns 0 or -EINVAL if not new. */
int host_conn_start(struct host_conn *c);
/* Send ICReq and wait (blocking, poll(2)) up to timeout_ms for a valid ICResp. A bad ICResp
 * is answered with an H2CTermReq. Returns 0 or -errno (-EPROTO for a bad ICResp, -ETIMEDOUT). */
int host_conn_connect(struct host_conn *c, int timeout_ms);
/* The data a command may carry: 0..NVTCP_IOV_MAX iovecs, at most 4 GiB - 1 in all (the SGL's
 * length field). Returns 0 or -EINVAL; host_conn_submit checks it, and so must anything that
 * holds a command to submit it later. */
int host_conn_check_data(const struct iovec *iov, int iovcnt);
/* Submit one command. sqe: opcode, NSID and CDWs filled in by the caller; CID, PSDT and SGL1
 * are set here. iov (<= NVTCP_IOV_MAX entries, borrowed until cb) is the data; write says its
 * direction. Returns 0, -EBUSY (no free slot), -EINVAL, or the queue's error once failed. */
int host_conn_submit(struct host_conn *c, const struct wire_sqe *sqe, const struct iovec *iov,
		     int iovcnt, bool write, nvtcp_cb cb, void *arg);
/* Flush sends, receive up to budget PDUs, run completions. Returns completions (>= 0) or the
 * queue's error once it has failed (all outstanding commands were completed with it). */
int host_conn_poll(struct host_conn *c, unsigned budget);
/* poll(2) on the socket for up to timeout_ms, then host_conn_poll(). */
int host_conn_wait(struct host_conn *c, int timeout_ms);
/* Run until *flag becomes true, the queue fails or timeout_ms passes (-ETIMEDOUT; the queue
 * is then failed, since the controller may still write into the buffers). Returns 0 or -errno. */
int host_conn_run_until(struct host_conn *c, const bool *flag, int timeout_ms);
/* Record a fatal error: outstanding commands complete with err at the next poll. */
void host_conn_fail(struct host_conn *c, int err);
/* A command taken out of a closed queue by host_conn_harvest(): everything needed to submit
 * it again. iov points into the request slot: valid only during the callback. */
typedef void (*host_harvest_fn)(void *ctx, const struct wire_sqe *sqe, const struct iovec *iov,
				int iovcnt, bool write, nvtcp_cb cb, void *arg);
/* Once the queue is HOST_CONN_CLOSED with hold_on_fail: hand every held command (in CID order)
 * to fn and free its slot; their callbacks have not run and become fn's responsibility.
 * Returns the number harvested. */
unsigned host_conn_harvest(struct host_conn *c, host_harvest_fn fn, void *ctx);
/* A synchronous caller gives up on its command(s) (cb, arg) before returning: fail the queue
 * with err (if not failed yet), tear the stream down so it lets go of every buffer, and drop
 * those commands without running cb, held ones included: afterwards nothing writes into
 * their buffers or arg. Other commands complete (or are held) as usual. Queue's thread. */
void host_conn_abandon(struct host_conn *c, nvtcp_cb cb, void *arg, int err);
/* Tear down (fails what is outstanding with -ECONNABORTED, held commands too) and free. */
void host_conn_close(struct host_conn *c);

static inline bool host_conn_is_failed(const struct host_conn *c)
{
	return c->state >= HOST_CONN_FAILED;
}

/* Synchronous command helper: submit and run until completion or timeout. Returns 0,
 * a positive NVMe status, or -errno; *cpl (may be NULL) receives the completion. */
int host_conn_exec(struct host_conn *c, const struct wire_sqe *sqe, void *buf, size_t len,
		   bool write, int timeout_ms, struct nvtcp_cpl *cpl);

/* Dial traddr:trsvcid (TCP, non-blocking connect bounded by timeout_ms, TCP_NODELAY).
 * Returns the fd or -errno with a message in err. */
int host_dial(const char *traddr, const char *trsvcid, int timeout_ms, const char *tcp_cc,
	      char *err, size_t errlen);

/* Monotonic milliseconds. */
uint64_t host_now_ms(void);
/* CLOCK_MONOTONIC_COARSE in ms: a few ns, a tick (1-4 ms) of resolution. */
uint64_t host_now_coarse_ms(void);
/* Fail the queue (-ETIMEDOUT) if a command has waited timeout_ms or more for its completion;
 * that command then completes with -ETIMEDOUT while the others can be harvested for a new
 * connection. Looks at the slots at most every timeout_ms / 8 and counts the looks a command
 * stays outstanding through (no clock read per command): it times out after 9, i.e. after
 * timeout_ms to timeout_ms * 9 / 8 if the queue is polled often, later if not, never early.
 * Returns true if it failed the queue. */
bool host_conn_check_timeouts(struct host_conn *c, unsigned timeout_ms);

#endif
