/* Event loop: one per core (thread), epoll-based, with timers, deferred work run at the end of
 * each turn (send batching), and a thread-safe post queue for cross-thread calls.
 * Layer: net. Interrupt mode sleeps in epoll_wait; busy-poll mode spins with a zero timeout. */
#ifndef NVTCP_NET_LOOP_H
#define NVTCP_NET_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/list.h"

struct loop;

/* fd readiness callback; events is an EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP mask. */
typedef void (*loop_fd_fn)(struct loop *l, int fd, uint32_t events, void *ctx);

/* A one-shot timer embedded in its owner's struct (no allocation). */
struct loop_timer {
	void (*fn)(struct loop_timer *t);
	void *ctx;
	/* private */
	uint64_t deadline_ms;
	bool armed;
	struct list_head entry;
};

/* Work run once at the end of the current loop turn (e.g. flush a connection's sends), embedded
 * in its owner. Deferring twice in one turn runs it once. */
struct loop_work {
	void (*fn)(struct loop_work *w);
	void *ctx;
	/* private */
	bool queued;
	struct list_head entry;
};

struct loop_opts {
	bool busy_poll; /* spin instead of sleeping */
	int cpu;	/* pin the thread running loop_run to this CPU; -1 = no pinning */
};

/* Create a loop (opts NULL: interrupt mode, no pinning). Returns 0 or -errno. The loop belongs
 * to the thread that calls loop_run; only loop_post and loop_stop may be called elsewhere. */
int loop_create(struct loop **out, const struct loop_opts *opts);
/* Closes the epoll fd; fds still registered are not closed. */
void loop_destroy(struct loop *l);
/* Whether the loop spins (busy-poll mode) rather than sleeping in epoll_wait. */
bool loop_is_busy_poll(const struct loop *l);

/* Register fd for events (EPOLLIN and/or EPOLLOUT; level-triggered). ctx is passed back. */
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *ctx);
int loop_mod_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *ctx);
int loop_del_fd(struct loop *l, int fd);

/* Arm (or re-arm) t to fire after delay_ms on this loop's thread. */
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t delay_ms);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/* Queue w to run at the end of this turn (or the next one if called from deferred work). */
void loop_defer(struct loop *l, struct loop_work *w);
/* Unqueue w if it is queued (before freeing its owner). */
void loop_work_cancel(struct loop *l, struct loop_work *w);

/* Thread-safe: run fn(arg) on l's thread soon. Allocates a small message; returns 0 or -ENOMEM.
 * Not for the I/O path. */
int loop_post(struct loop *l, void (*fn)(void *arg), void *arg);

/* Run until loop_stop(). Returns 0, or -errno if epoll fails. */
int loop_run(struct loop *l);
/* Run a single turn on the calling thread: wait at most timeout_ms (0 = poll, -1 = until
 * something happens; never past the next timer or while work is pending), then run fd
 * callbacks, expired timers, posts and deferred work. For tests and fuzzers that drive a loop
 * step by step instead of loop_run. Returns the number of fd events handled, or -errno. */
int loop_run_once(struct loop *l, int timeout_ms);
/* Thread-safe and async-signal-safe: make loop_run return after the current turn. */
void loop_stop(struct loop *l);

/* Monotonic milliseconds, cached per loop turn. */
uint64_t loop_now_ms(struct loop *l);
/* The loop running on the calling thread, or NULL. */
struct loop *loop_current(void);

#endif
