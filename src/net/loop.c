/* Event loop: epoll readiness dispatch, one-shot timers kept in a deadline-sorted list, work
 * deferred to the end of the turn (send batching), and cross-thread posts through an eventfd.
 * Layer: net. One loop per thread; everything but loop_post/loop_stop runs on that thread.
 *
 * A turn: epoll_wait (timeout = next timer, 0 when busy-polling or work is pending) -> fd
 * callbacks -> expired timers -> posted messages -> deferred work. */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_EVENTS_MAX	      64
#define LOOP_DEFER_PASSES     4 /* work deferred by deferred work runs this many times per turn */
#define LOOP_FD_DATA(fd, gen) ((uint64_t)(uint32_t)(fd) | (uint64_t)(gen) << 32)

/* Registration of one fd; indexed by fd number. gen tells a stale epoll event (fd deleted, or
 * deleted and re-added, earlier in the same batch) from a live one. */
struct loop_fd {
	loop_fd_fn fn;
	void *ctx;
	uint32_t gen;
	bool used;
};

struct loop_msg {
	void (*fn)(void *arg);
	void *arg;
	struct list_head entry;
};

struct loop {
	int epfd;
	int evfd; /* wakes the loop for posts and loop_stop */
	bool busy_poll;
	int cpu;
	atomic_bool stop;
	uint64_t now_ms;
	struct loop_fd *fds; /* indexed by fd */
	int nfds;
	uint32_t next_gen;
	struct list_head timers; /* armed struct loop_timer, sorted by deadline */
	struct list_head work;	 /* queued struct loop_work */
	pthread_mutex_t post_lock;
	struct list_head posts; /* struct loop_msg, under post_lock */
};

static _Thread_local struct loop *loop_tls_current;

static uint64_t loop_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void loop_evfd_drain(struct loop *l)
{
	uint64_t v;

	while (read(l->evfd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

static void loop_run_posts(struct loop *l)
{
	struct list_head local;
	struct list_head *pos, *tmp;

	list_init(&local);
	pthread_mutex_lock(&l->post_lock);
	if (!list_empty(&l->posts)) {
		/* splice the whole list so callbacks may post again without deadlock */
		local.next = l->posts.next;
		local.prev = l->posts.prev;
		local.next->prev = &local;
		local.prev->next = &local;
		list_init(&l->posts);
	}
	pthread_mutex_unlock(&l->post_lock);
	list_for_each_safe (pos, tmp, &local) {
		struct loop_msg *m = list_entry(pos, struct loop_msg, entry);

		list_del(&m->entry);
		m->fn(m->arg);
		free(m);
	}
}

static void loop_evfd_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	loop_evfd_drain(l);
	loop_run_posts(l);
}

int loop_create(struct loop **out, const struct loop_opts *opts)
{
	struct loop *l;
	int ret;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->busy_poll = opts ? opts->busy_poll : false;
	l->cpu = opts ? opts->cpu : -1;
	atomic_init(&l->stop, false);
	list_init(&l->timers);
	list_init(&l->work);
	list_init(&l->posts);
	pthread_mutex_init(&l->post_lock, NULL);
	l->now_ms = loop_clock_ms();
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		ret = -errno;
		goto err_free;
	}
	l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->evfd < 0) {
		ret = -errno;
		goto err_epoll;
	}
	ret = loop_add_fd(l, l->evfd, EPOLLIN, loop_evfd_cb, NULL);
	if (ret < 0)
		goto err_evfd;
	*out = l;
	return 0;

err_evfd:
	close(l->evfd);
err_epoll:
	close(l->epfd);
err_free:
	pthread_mutex_destroy(&l->post_lock);
	free(l);
	return ret;
}

bool loop_is_busy_poll(const struct loop *l)
{
	return l->busy_poll;
}

void loop_destroy(struct loop *l)
{
	struct list_head *pos, *tmp;

	if (!l)
		return;
	/* posts never run: free their messages (their args are the poster's problem) */
	list_for_each_safe (pos, tmp, &l->posts) {
		list_del(pos);
		free(list_entry(pos, struct loop_msg, entry));
	}
	close(l->evfd);
	close(l->epfd);
	pthread_mutex_destroy(&l->post_lock);
	free(l->fds);
	free(l);
}

static int loop_fd_slot(struct loop *l, int fd)
{
	struct loop_fd *n;
	int cap;

	if (fd < 0)
		return -EBADF;
	if (fd < l->nfds)
		return 0;
	cap = l->nfds ? l->nfds : 64;
	while (cap <= fd)
		cap *= 2;
	n = realloc(l->fds, (size_t)cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	memset(n + l->nfds, 0, (size_t)(cap - l->nfds) * sizeof(*n));
	l->fds = n;
	l->nfds = cap;
	return 0;
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *ctx)
{
	struct epoll_event ev = {0};
	struct loop_fd *f;
	int ret;

	ret = loop_fd_slot(l, fd);
	if (ret < 0)
		return ret;
	f = &l->fds[fd];
	if (f->used)
		return -EEXIST;
	f->fn = fn;
	f->ctx = ctx;
	f->gen = ++l->next_gen;
	ev.events = events;
	ev.data.u64 = LOOP_FD_DATA(fd, f->gen);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	f->used = true;
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *ctx)
{
	struct epoll_event ev = {0};
	struct loop_fd *f;

	if (fd < 0 || fd >= l->nfds || !l->fds[fd].used)
		return -ENOENT;
	f = &l->fds[fd];
	ev.events = events;
	ev.data.u64 = LOOP_FD_DATA(fd, f->gen);
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	f->fn = fn;
	f->ctx = ctx;
	return 0;
}

int loop_del_fd(struct loop *l, int fd)
{
	int ret = 0;

	if (fd < 0 || fd >= l->nfds || !l->fds[fd].used)
		return -ENOENT;
	if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0)
		ret = -errno;
	l->fds[fd].used = false;
	l->fds[fd].fn = NULL;
	l->fds[fd].ctx = NULL;
	return ret;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (!t->armed)
		return;
	list_del(&t->entry);
	t->armed = false;
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t delay_ms)
{
	struct list_head *pos;

	loop_timer_cancel(l, t);
	t->deadline_ms = loop_now_ms(l) + delay_ms;
	t->armed = true;
	/* Most timers are re-armed with the same delay, so the new one usually goes last:
	 * search from the tail. */
	for (pos = l->timers.prev; pos != &l->timers; pos = pos->prev) {
		struct loop_timer *o = list_entry(pos, struct loop_timer, entry);

		if (o->deadline_ms <= t->deadline_ms)
			break;
	}
	list_insert_between(&t->entry, pos, pos->next);
}

static void loop_run_timers(struct loop *l)
{
	while (!list_empty(&l->timers)) {
		struct loop_timer *t = list_first_entry(&l->timers, struct loop_timer, entry);

		if (t->deadline_ms > l->now_ms)
			break;
		list_del(&t->entry);
		t->armed = false;
		t->fn(t); /* may free t or re-arm it */
	}
}

void loop_defer(struct loop *l, struct loop_work *w)
{
	if (w->queued)
		return;
	w->queued = true;
	list_add_tail(&w->entry, &l->work);
}

void loop_work_cancel(struct loop *l, struct loop_work *w)
{
	if (!w->queued)
		return;
	list_del(&w->entry);
	w->queued = false;
}

static void loop_run_work(struct loop *l)
{
	for (int pass = 0; pass < LOOP_DEFER_PASSES && !list_empty(&l->work); pass++) {
		struct list_head *last = l->work.prev;
		bool done = false;

		/* run what was queued when this pass began; later additions wait for the next */
		while (!done && !list_empty(&l->work)) {
			struct loop_work *w = list_first_entry(&l->work, struct loop_work, entry);

			done = &w->entry == last;
			list_del(&w->entry);
			w->queued = false;
			w->fn(w); /* may free w's owner: w is not touched after this */
		}
	}
}

int loop_post(struct loop *l, void (*fn)(void *arg), void *arg)
{
	struct loop_msg *m = malloc(sizeof(*m));
	uint64_t one = 1;

	if (!m)
		return -ENOMEM;
	m->fn = fn;
	m->arg = arg;
	pthread_mutex_lock(&l->post_lock);
	list_add_tail(&m->entry, &l->posts);
	pthread_mutex_unlock(&l->post_lock);
	/* EAGAIN means the counter is already huge: the loop is awake anyway */
	(void)!write(l->evfd, &one, sizeof(one));
	return 0;
}

void loop_stop(struct loop *l)
{
	uint64_t one = 1;
	int saved = errno;

	atomic_store(&l->stop, true);
	(void)!write(l->evfd, &one, sizeof(one));
	errno = saved;
}

static int loop_timeout(struct loop *l)
{
	uint64_t deadline;

	if (l->busy_poll || !list_empty(&l->work))
		return 0;
	if (list_empty(&l->timers))
		return -1;
	deadline = list_first_entry(&l->timers, struct loop_timer, entry)->deadline_ms;
	l->now_ms = loop_clock_ms();
	if (deadline <= l->now_ms)
		return 0;
	/* +1 ms: epoll rounds down and we would otherwise wake just before the deadline */
	return (int)MIN(deadline - l->now_ms + 1, (uint64_t)60000);
}

static void loop_pin(struct loop *l)
{
	cpu_set_t set;

	if (l->cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(l->cpu, &set);
	/* best effort: a missing CPU only costs locality */
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* One turn: wait for events (at most timeout_ms, -1 without limit), then dispatch fds,
 * expired timers and deferred work. Returns the number of fd events, or -errno. */
static int loop_turn(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_EVENTS_MAX];
	int n = epoll_wait(l->epfd, evs, LOOP_EVENTS_MAX, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	l->now_ms = loop_clock_ms();
	for (int i = 0; i < n; i++) {
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		struct loop_fd *f;

		if (fd >= l->nfds)
			continue;
		f = &l->fds[fd];
		if (!f->used || f->gen != gen)
			continue; /* deleted earlier in this batch */
		f->fn(l, fd, evs[i].events, f->ctx);
	}
	loop_run_timers(l);
	loop_run_work(l);
	return n;
}

int loop_run(struct loop *l)
{
	struct loop *prev = loop_tls_current;
	int ret = 0;

	loop_tls_current = l;
	loop_pin(l);
	while (!atomic_load(&l->stop)) {
		int n = loop_turn(l, loop_timeout(l));

		if (n < 0) {
			ret = n;
			break;
		}
	}
	atomic_store(&l->stop, false);
	loop_tls_current = prev;
	return ret;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct loop *prev = loop_tls_current;
	int t = loop_timeout(l), n;

	/* never sleep past the next timer or while work is pending */
	if (t >= 0 && (timeout_ms < 0 || t < timeout_ms))
		timeout_ms = t;
	loop_tls_current = l;
	n = loop_turn(l, timeout_ms);
	loop_tls_current = prev;
	return n;
}

uint64_t loop_now_ms(struct loop *l)
{
	return l->now_ms;
}

struct loop *loop_current(void)
{
	return loop_tls_current;
}
