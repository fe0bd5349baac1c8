/* Target transport: one TCP connection = one NVMe queue (struct tgt_queue), its PDU state
 * machines (ICReq/ICResp, CapsuleCmd, R2T/H2CData, C2HData, CapsuleResp), the per-thread data
 * buffer pool and the per-thread transport state.
 * Layer: target (transport side; the core never sees PDUs, see tgt.h). */
#ifndef NVTCP_TARGET_CONN_H
#define NVTCP_TARGET_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../common/list.h"
#include "tgt.h"

/* ---- data buffer pool (pool.c) ---------------------------------------------------------- */

#define TGT_POOL_CHUNK	    (32 * 1024) /* a 128 KiB PDU spans at most 5 chunks */
#define TGT_POOL_PREALLOC   64		/* chunks allocated at thread start (2 MiB) */
#define TGT_POOL_MAX_CHUNKS 8192	/* 256 MiB per thread, then commands fail */
#define TGT_REQ_CHUNKS_MAX  (TGT_MAX_XFER / TGT_POOL_CHUNK)

/* Per-thread pool of fixed-size, 4 KiB-aligned data chunks. Grows on demand up to
 * TGT_POOL_MAX_CHUNKS and never shrinks, so the steady state allocates nothing. Not
 * thread-safe: used only by its thread. */
struct tgt_pool {
	void **free;	/* stack of free chunks */
	unsigned nfree; /* chunks on the stack */
	unsigned total; /* chunks allocated */
	unsigned max;	/* allocation limit */
	size_t chunk_size;
};

/* Set up a pool and preallocate `prealloc` chunks of chunk_size bytes (at most max chunks).
 * Returns 0 or -ENOMEM. */
int tgt_pool_init(struct tgt_pool *p, size_t chunk_size, unsigned prealloc, unsigned max);
/* Free every chunk; all chunks must have been returned. */
void tgt_pool_fini(struct tgt_pool *p);
/* Take enough chunks for len bytes (len > 0, at most max_iov chunks) and describe them in
 * iov[]: every entry is chunk_size long except the last. The caller owns the chunks until
 * tgt_pool_put. Returns the iovec count, -E2BIG if len needs more than max_iov chunks, or
 * -ENOMEM when the pool is at its limit (nothing taken). */
int tgt_pool_get(struct tgt_pool *p, size_t len, struct iovec *iov, int max_iov);
/* Give back chunks taken by tgt_pool_get (iov_base of each entry is the chunk start). */
void tgt_pool_put(struct tgt_pool *p, const struct iovec *iov, int iovcnt);

/* ---- per-thread transport state (th->transport) ---------------------------------------- */

struct tgt_conn_thread {
	struct tgt_pool pool;
	struct list_head conns; /* struct tgt_conn on this thread */
	unsigned nr_conns;
	bool draining; /* closing everything: new connections are refused */
	/* target-wide count of accepted connections (NULL: not counted): the acceptor adds one
	 * before handing a socket over, tgt_conn_create's failure or tgt_conn_free takes it back */
	atomic_uint *live_conns;
	/* called (on the thread) when draining and the last connection is gone */
	void (*on_drained)(struct tgt_thread *th);
};

/* ---- connections ------------------------------------------------------------------------ */

/* Timeouts and limits of a connection; tgt_conn_opts_default() gives the production values. */
struct tgt_conn_opts {
	uint32_t ic_timeout_ms;	  /* ICReq must arrive within this (10 s) */
	uint32_t idle_timeout_ms; /* a PDU started but not finished for this long closes (30 s) */
	uint32_t tx_stall_ms;	  /* queued sends making no progress for this long close (30 s) */
	uint32_t tick_ms;	  /* how often the timeouts are checked */
	size_t tx_max_bytes;	  /* stop reading commands while this much is queued to send */
	uint32_t c2h_max;	  /* largest C2HData DATAL we send */
	bool zero_copy_reads;	  /* large lent Reads by reference (tgt_conn_zc_ready) */
};

void tgt_conn_opts_default(struct tgt_conn_opts *o);

struct tgt_conn;

/* Adopt an accepted, connected socket on thread th (call on th's loop thread, after
 * tgt_conn_thread_init). fd must be non-blocking; it belongs to the connection from now on,
 * even on failure (closed, and ct->live_conns decremented). port may be NULL (tests).
 * opts NULL = defaults.
 * Returns 0 (and *out if out is not NULL) or -errno. */
int tgt_conn_create(struct tgt_thread *th, struct tgt_port *port, int fd,
		    const struct tgt_conn_opts *opts, struct tgt_conn **out);

/* Start closing a connection (thread context of the connection; not from inside its own stream
 * callbacks: those return errors instead). Sends are dropped, requests still held by the
 * core are waited for, then the queue is destroyed and the memory freed from deferred work. */
void tgt_conn_close(struct tgt_conn *c, const char *reason);

/* sendmsg calls (or TLS writes) the connection has made so far. Its thread only. */
uint64_t tgt_conn_tx_syscalls(const struct tgt_conn *c);

/* Per-thread transport state: set up th->transport (pool, connection list). Returns 0 or
 * -errno. Call on or before the thread's start; tgt_conn_thread_fini after its last
 * connection is gone. */
int tgt_conn_thread_init(struct tgt_thread *th);
void tgt_conn_thread_fini(struct tgt_thread *th);

/* Close every connection of th and refuse new ones; when the last one is freed,
 * ct->on_drained(th) runs (at once if there are none). Call on th's thread. */
void tgt_conn_thread_drain(struct tgt_thread *th, void (*on_drained)(struct tgt_thread *th));

#endif
