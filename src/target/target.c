/* The nvtcp target engine behind include/nvtcp/target.h: builds struct tgt through the core
 * (config, ports), opens the listeners, runs one event loop per thread (thread 0 on the
 * caller), spreads accepted connections round-robin and shuts everything down cleanly.
 * Layer: target (transport side). */
#include "nvtcp/target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../net/sock.h"
#include "conn.h"
#include "tgt.h"

#define TARGET_ACCEPT_BUDGET 64 /* connections accepted per listener event */
#define TARGET_BACKLOG	     128

struct nvtcp_target {
	struct tgt tgt;
	atomic_bool stop_requested;
	unsigned next_thread;  /* round-robin cursor (thread 0 only) */
	unsigned workers_left; /* worker threads still running (thread 0 only) */
	bool tgt_ready;
	atomic_uint live_conns;		/* connections accepted and not yet freed (all threads) */
	unsigned max_conns;		/* limit on live_conns */
	struct tgt_conn_opts conn_opts; /* timeouts and limits of every connection */
	uint64_t refused;		/* connections refused over the limit (thread 0) */
	uint64_t refused_log_ms;	/* when the last refusal was logged (thread 0) */
	struct target_listener *listeners;
	unsigned nr_listeners;
	/* worker start-up handshake */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned attached;
	int attach_err;
};

/* Context of one listening socket (thread 0). */
struct target_listener {
	struct nvtcp_target *t;
	struct tgt_port *port;
	struct loop_timer resume; /* out of fds: the listener rests, then is watched again */
};

#define TARGET_EMFILE_REST_MS 100

struct target_adopt {
	struct tgt_thread *th;
	struct tgt_port *port;
	int fd;
};

static struct nvtcp_target *target_of(struct tgt_thread *th)
{
	return container_of(th->tgt, struct nvtcp_target, tgt);
}

/* ---- listeners -------------------------------------------------------------------------- */

static int target_listen(struct tgt_port *port, const char *tcp_cc, char *err, size_t errlen)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int fd, one = 1, ret;
	unsigned long pnum = strtoul(port->trsvcid, NULL, 10);

	if (port->adrfam == NVME_ADRFAM_IPV6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)pnum);
		ret = inet_pton(AF_INET6, port->traddr, &s6->sin6_addr);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)pnum);
		ret = inet_pton(AF_INET, port->traddr, &s4->sin_addr);
		sl = sizeof(*s4);
	}
	if (ret != 1 || pnum == 0 || pnum > 65535) {
		snprintf(err, errlen, "port %s:%s: not a numeric address and port", port->traddr,
			 port->trsvcid);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto err;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* accepted connections inherit the listener's congestion control */
	if (tcp_cc && *tcp_cc) {
		char why[384];

		ret = sock_set_congestion(fd, tcp_cc, why, sizeof(why));
		if (ret < 0) {
			close(fd);
			snprintf(err, errlen, "port %s:%s: %s", port->traddr, port->trsvcid, why);
			return ret;
		}
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, TARGET_BACKLOG) < 0) {
		ret = -errno;
		close(fd);
		goto err;
	}
	port->listen_fd = fd;
	return 0;
err:
	snprintf(err, errlen, "cannot listen on %s%s%s:%s: %s",
		 port->adrfam == NVME_ADRFAM_IPV6 ? "[" : "", port->traddr,
		 port->adrfam == NVME_ADRFAM_IPV6 ? "]" : "", port->trsvcid, strerror(-ret));
	return ret;
}

static void target_unlisten(struct nvtcp_target *t, bool registered)
{
	struct list_head *p;

	for (unsigned i = 0; registered && i < t->nr_listeners; i++)
		loop_timer_cancel(t->tgt.threads[0].loop, &t->listeners[i].resume);
	list_for_each (p, &t->tgt.ports) {
		struct tgt_port *port = list_entry(p, struct tgt_port, entry);

		if (port->listen_fd < 0)
			continue;
		if (registered)
			loop_del_fd(t->tgt.threads[0].loop, port->listen_fd);
		close(port->listen_fd);
		port->listen_fd = -1;
	}
}

/* Over the connection limit: close at once. The log line is limited to one a second so a
 * flood cannot fill the disk; it says how many were refused since the last one. */
static void target_refuse(struct target_listener *ls, int cfd)
{
	struct nvtcp_target *t = ls->t;
	struct loop *l = t->tgt.threads[0].loop;
	uint64_t now = loop_now_ms(l);

	close(cfd);
	t->refused++;
	if (t->refused_log_ms && now - t->refused_log_ms < 1000)
		return;
	log_warn("listener %s:%s: %u connections open (the limit): %llu connection(s) refused",
		 ls->port->traddr, ls->port->trsvcid, t->max_conns, (unsigned long long)t->refused);
	t->refused = 0;
	t->refused_log_ms = now ? now : 1;
}

/* On the chosen thread: the connection is born there. */
static void target_adopt_fn(void *arg)
{
	struct target_adopt *a = arg;

	struct nvtcp_target *t = container_of(a->th->tgt, struct nvtcp_target, tgt);

	tgt_conn_create(a->th, a->port, a->fd, &t->conn_opts, NULL);
	free(a);
}

static void target_accept_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct target_listener *ls = ctx;
	struct nvtcp_target *t = ls->t;

	for (int i = 0; i < TARGET_ACCEPT_BUDGET; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct tgt_thread *th;
		struct target_adopt *a;

		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* the pending connection stays queued and the listener stays
				 * readable: stop watching it for a while instead of spinning on
				 * accept */
				log_warn("listener %s:%s: accept: %s; pausing %d ms",
					 ls->port->traddr, ls->port->trsvcid, strerror(errno),
					 TARGET_EMFILE_REST_MS);
				loop_mod_fd(l, fd, 0, target_accept_cb, ls);
				loop_timer_arm(l, &ls->resume, TARGET_EMFILE_REST_MS);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				log_warn("listener %s:%s: accept: %s", ls->port->traddr,
					 ls->port->trsvcid, strerror(errno));
			}
			return;
		}
		if (atomic_fetch_add(&t->live_conns, 1) >= t->max_conns) {
			atomic_fetch_sub(&t->live_conns, 1);
			target_refuse(ls, cfd);
			continue;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		th = &t->tgt.threads[t->next_thread++ % t->tgt.nr_threads];
		if (th->index == 0) {
			tgt_conn_create(th, ls->port, cfd, &t->conn_opts, NULL);
			continue;
		}
		/* one small message per connection, not per I/O */
		a = malloc(sizeof(*a));
		if (a) {
			a->th = th;
			a->port = ls->port;
			a->fd = cfd;
		}
		if (!a || loop_post(th->loop, target_adopt_fn, a) < 0) {
			log_warn("listener %s:%s: out of memory, connection dropped",
				 ls->port->traddr, ls->port->trsvcid);
			free(a);
			close(cfd);
			atomic_fetch_sub(&t->live_conns, 1);
		}
	}
}

static void target_accept_resume(struct loop_timer *timer)
{
	struct target_listener *ls = timer->ctx;

	if (ls->port->listen_fd >= 0)
		loop_mod_fd(ls->t->tgt.threads[0].loop, ls->port->listen_fd, EPOLLIN,
			    target_accept_cb, ls);
}

/* ---- threads ---------------------------------------------------------------------------- */

static void target_th0_drained(struct tgt_thread *th)
{
	loop_stop(th->loop);
}

/* Thread 0: a worker has finished (drained, detached); once all have, drain thread 0. */
static void target_worker_exited(void *arg)
{
	struct nvtcp_target *t = arg;

	if (--t->workers_left == 0)
		tgt_conn_thread_drain(&t->tgt.threads[0], target_th0_drained);
}

static void target_worker_drained(struct tgt_thread *th)
{
	loop_stop(th->loop);
}

static void target_worker_drain(void *arg)
{
	struct tgt_thread *th = arg;

	tgt_conn_thread_drain(th, target_worker_drained);
}

static void *target_worker_main(void *arg)
{
	struct tgt_thread *th = arg;
	struct nvtcp_target *t = target_of(th);
	int ret = tgt_thread_attach(th);

	pthread_mutex_lock(&t->lock);
	t->attached++;
	if (ret < 0 && !t->attach_err)
		t->attach_err = ret;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (ret == 0) {
		ret = loop_run(th->loop);
		if (ret < 0)
			log_err("thread %u: event loop failed: %s", th->index, strerror(-ret));
		tgt_thread_detach(th);
		if (atomic_load(&t->stop_requested))
			loop_post(t->tgt.threads[0].loop, target_worker_exited, t);
	}
	return NULL;
}

static int target_start_workers(struct nvtcp_target *t, unsigned *started)
{
	unsigned n = t->tgt.nr_threads;
	int ret = 0;

	for (unsigned i = 1; i < n; i++) {
		struct tgt_thread *th = &t->tgt.threads[i];

		ret = -pthread_create(&th->tid, NULL, target_worker_main, th);
		if (ret < 0)
			break;
		(*started)++;
	}
	/* the workers' backend channels must be open before connections reach them */
	pthread_mutex_lock(&t->lock);
	while (t->attached < *started)
		pthread_cond_wait(&t->cond, &t->lock);
	if (!ret)
		ret = t->attach_err;
	pthread_mutex_unlock(&t->lock);
	return ret;
}

static void target_stop_workers(struct nvtcp_target *t, unsigned started)
{
	for (unsigned i = 1; i <= started; i++)
		loop_stop(t->tgt.threads[i].loop);
	for (unsigned i = 1; i <= started; i++)
		pthread_join(t->tgt.threads[i].tid, NULL);
}

static void target_log_ports(struct nvtcp_target *t)
{
	for (unsigned i = 0; i < t->nr_listeners; i++) {
		struct tgt_port *p = t->listeners[i].port;
		bool v6 = p->adrfam == NVME_ADRFAM_IPV6;

		log_info("listening on %s%s%s:%s (port id %u)", v6 ? "[" : "", p->traddr,
			 v6 ? "]" : "", p->trsvcid, p->portid);
	}
}

/* After every worker has exited: run what was posted to a loop after its last turn (thread 0
 * posting a controller's teardown to itself, or to a worker that had just drained). Those
 * messages hold controller references; dropped, the controllers would leak. No other thread
 * runs now, so thread 0 may turn every loop. Bounded: a pass that runs nothing ends it. */
static void target_flush_posts(struct nvtcp_target *t)
{
	for (int pass = 0; pass < 8; pass++) {
		int events = 0;

		for (unsigned i = 0; i < t->tgt.nr_threads; i++) {
			struct loop *l = t->tgt.threads[i].loop;
			int n = l ? loop_run_once(l, 0) : 0;

			events += n > 0 ? n : 0;
		}
		if (!events)
			break;
	}
}

/* ---- public API ------------------------------------------------------------------------- */

NVTCP_EXPORT int nvtcp_target_create(const struct nvtcp_target_opts *opts,
				     struct nvtcp_target **out, char *err, size_t errlen)
{
	struct nvtcp_target *t;
	struct list_head *p;
	unsigned nports = 0, i;
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	atomic_init(&t->stop_requested, false);
	atomic_init(&t->live_conns, 0);
	t->max_conns = opts->max_connections ? opts->max_connections : NVTCP_TARGET_MAX_CONNECTIONS;
	tgt_conn_opts_default(&t->conn_opts);
	t->conn_opts.zero_copy_reads = opts->zero_copy_reads;
	if (opts->io_timeout_ms) {
		t->conn_opts.idle_timeout_ms = opts->io_timeout_ms;
		t->conn_opts.tx_stall_ms = opts->io_timeout_ms;
		/* check often enough that the timeout is kept to within a quarter */
		t->conn_opts.tick_ms = MIN(t->conn_opts.tick_ms, MAX(opts->io_timeout_ms / 4, 10u));
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	ret = tgt_init(&t->tgt);
	if (ret < 0) {
		snprintf(err, errlen, "cannot initialise the target: %s", strerror(-ret));
		goto err_free;
	}
	t->tgt_ready = true;
	ret = tgt_config_load(&t->tgt, opts->config_path, err, errlen);
	if (ret < 0)
		goto err_destroy;
	if (opts->nlisten > 0) {
		tgt_ports_clear(&t->tgt);
		for (int j = 0; j < opts->nlisten; j++) {
			ret = tgt_port_add(&t->tgt, opts->listen[j], err, errlen);
			if (ret < 0)
				goto err_destroy;
		}
	}
	if (opts->cores > 0)
		t->tgt.nr_threads = opts->cores;
	if (t->tgt.nr_threads == 0)
		t->tgt.nr_threads = 1;
	if (t->tgt.nr_threads > TGT_MAX_THREADS) {
		snprintf(err, errlen, "at most %d cores", TGT_MAX_THREADS);
		ret = -EINVAL;
		goto err_destroy;
	}
	t->tgt.busy_poll = t->tgt.busy_poll || opts->busy_poll;
	if (opts->first_cpu >= 0)
		t->tgt.first_cpu = opts->first_cpu;

	for (i = 0; i < t->tgt.nr_threads; i++) {
		struct tgt_thread *th = &t->tgt.threads[i];
		struct loop_opts lo = {
			.busy_poll = t->tgt.busy_poll,
			.cpu = t->tgt.first_cpu >= 0 ? t->tgt.first_cpu + (int)i : -1,
		};

		th->index = i;
		th->tgt = &t->tgt;
		ret = loop_create(&th->loop, &lo);
		if (ret == 0)
			ret = tgt_conn_thread_init(th);
		if (ret == 0)
			((struct tgt_conn_thread *)th->transport)->live_conns = &t->live_conns;
		if (ret < 0) {
			snprintf(err, errlen, "cannot create event loop %u: %s", i, strerror(-ret));
			goto err_destroy;
		}
	}

	list_for_each (p, &t->tgt.ports)
		nports++;
	if (nports == 0) {
		snprintf(err, errlen, "no port to listen on");
		ret = -EINVAL;
		goto err_destroy;
	}
	t->listeners = calloc(nports, sizeof(*t->listeners));
	if (!t->listeners) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto err_destroy;
	}
	list_for_each (p, &t->tgt.ports) {
		struct tgt_port *port = list_entry(p, struct tgt_port, entry);

		ret = target_listen(port, opts->tcp_congestion, err, errlen);
		if (ret < 0)
			goto err_destroy;
		t->listeners[t->nr_listeners].t = t;
		t->listeners[t->nr_listeners].port = port;
		t->listeners[t->nr_listeners].resume.fn = target_accept_resume;
		t->listeners[t->nr_listeners].resume.ctx = &t->listeners[t->nr_listeners];
		t->nr_listeners++;
	}
	*out = t;
	return 0;

err_destroy:
	nvtcp_target_destroy(t);
	return ret;
err_free:
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return ret;
}

NVTCP_EXPORT int nvtcp_target_run(struct nvtcp_target *t)
{
	struct tgt_thread *th0 = &t->tgt.threads[0];
	unsigned started = 0, i;
	int ret;

	ret = tgt_thread_attach(th0);
	if (ret < 0) {
		log_err("thread 0: cannot attach the namespaces: %s", strerror(-ret));
		return ret;
	}
	ret = target_start_workers(t, &started);
	if (ret < 0) {
		log_err("cannot start %u event loop threads: %s", t->tgt.nr_threads - 1,
			strerror(-ret));
		goto out_workers;
	}
	for (i = 0; i < t->nr_listeners; i++) {
		ret = loop_add_fd(th0->loop, t->listeners[i].port->listen_fd, EPOLLIN,
				  target_accept_cb, &t->listeners[i]);
		if (ret < 0) {
			log_err("cannot watch a listener: %s", strerror(-ret));
			goto out_listeners;
		}
	}
	target_log_ports(t);
	{
		char cc[SOCK_CC_NAME_MAX + 1] = "";

		if (t->nr_listeners > 0)
			sock_get_congestion(t->listeners[0].port->listen_fd, cc, sizeof(cc));
		log_info("target running: %u thread(s)%s, TCP congestion control %s",
			 t->tgt.nr_threads, t->tgt.busy_poll ? ", busy polling" : "",
			 cc[0] ? cc : "unknown");
	}

	ret = loop_run(th0->loop);
	if (ret < 0) {
		log_err("thread 0: event loop failed: %s", strerror(-ret));
		goto out_listeners;
	}
	log_info("target stopping");
	atomic_store(&t->stop_requested, true); /* workers now report their exit */

	/* Clean shutdown: no new connections; the workers drain first (thread 0 still serves
	 * the admin queues and the posts they send), then thread 0 drains and stops. */
	target_unlisten(t, true);
	t->workers_left = started;
	for (i = 1; i <= started; i++)
		loop_post(t->tgt.threads[i].loop, target_worker_drain, &t->tgt.threads[i]);
	if (started == 0)
		tgt_conn_thread_drain(th0, target_th0_drained);
	/* until thread 0 is drained too: workers report their exit through posts */
	loop_run(th0->loop);
	for (i = 1; i <= started; i++)
		pthread_join(t->tgt.threads[i].tid, NULL);
	target_flush_posts(t);
	tgt_thread_detach(th0);
	return ret;

out_listeners:
	target_unlisten(t, true);
out_workers:
	target_stop_workers(t, started);
	tgt_thread_detach(th0);
	return ret;
}

NVTCP_EXPORT void nvtcp_target_stop(struct nvtcp_target *t)
{
	/* async-signal-safe: a lock-free flag and an eventfd write */
	if (!atomic_exchange(&t->stop_requested, true))
		loop_stop(t->tgt.threads[0].loop);
}

NVTCP_EXPORT void nvtcp_target_destroy(struct nvtcp_target *t)
{
	if (!t)
		return;
	target_unlisten(t, false);
	for (unsigned i = 0; i < TGT_MAX_THREADS; i++) {
		struct tgt_thread *th = &t->tgt.threads[i];

		tgt_conn_thread_fini(th);
		if (th->loop)
			loop_destroy(th->loop);
		th->loop = NULL;
	}
	if (t->tgt_ready)
		tgt_fini(&t->tgt);
	free(t->listeners);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

NVTCP_EXPORT int nvtcp_target_listener(const struct nvtcp_target *t, unsigned i, char *addr,
				       size_t addrlen, unsigned *port)
{
	const struct tgt_port *p;

	if (i >= t->nr_listeners)
		return -ENOENT;
	p = t->listeners[i].port;
	snprintf(addr, addrlen, "%s", p->traddr);
	*port = (unsigned)strtoul(p->trsvcid, NULL, 10);
	return 0;
}

NVTCP_EXPORT const char *nvtcp_target_subsystem_nqn(const struct nvtcp_target *t, unsigned i)
{
	const struct list_head *p;

	list_for_each (p, &t->tgt.subsystems) {
		const struct tgt_subsys *s = list_entry(p, struct tgt_subsys, entry);

		if (s->is_discovery)
			continue;
		if (i-- == 0)
			return s->nqn;
	}
	return NULL;
}

NVTCP_EXPORT int nvtcp_target_set_log_level(const char *level)
{
	enum log_level l;

	if (log_parse_level(level, &l) < 0)
		return -EINVAL;
	log_set_level(l);
	return 0;
}
