/* Unit tests for src/net/loop.c: fd dispatch, timers, deferred work, posts, stop, busy poll.
 * Layer: tests. Uses pipes and a second thread only; no sockets. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <unistd.h>

#include "net/loop.h"
#include "tap.h"

static struct loop *make_loop(bool busy)
{
	struct loop_opts o = {.busy_poll = busy, .cpu = -1};
	struct loop *l = NULL;

	TAP_CHECK_EQ(loop_create(&l, &o), 0);
	return l;
}

/* ---- timers fire in deadline order and a cancelled one never fires ---- */

static int fired[8], nfired;
static struct loop *cur_loop;

static void timer_record(struct loop_timer *t)
{
	fired[nfired++] = (int)(long)t->ctx;
	if (nfired == 3)
		loop_stop(cur_loop);
}

static void test_timer_order(void)
{
	struct loop_timer t[4] = {0};
	uint64_t start;

	cur_loop = make_loop(false);
	nfired = 0;
	for (int i = 0; i < 4; i++) {
		t[i].fn = timer_record;
		t[i].ctx = (void *)(long)i;
	}
	loop_timer_arm(cur_loop, &t[0], 30);
	loop_timer_arm(cur_loop, &t[1], 10);
	loop_timer_arm(cur_loop, &t[2], 20);
	loop_timer_arm(cur_loop, &t[3], 15);
	loop_timer_cancel(cur_loop, &t[3]);
	start = loop_now_ms(cur_loop);
	TAP_CHECK_EQ(loop_run(cur_loop), 0);
	TAP_CHECK_EQ(nfired, 3);
	TAP_CHECK_EQ(fired[0], 1);
	TAP_CHECK_EQ(fired[1], 2);
	TAP_CHECK_EQ(fired[2], 0);
	TAP_CHECK(loop_now_ms(cur_loop) - start >= 30);
	TAP_CHECK(!t[3].armed);
	loop_destroy(cur_loop);
}

/* ---- re-arming moves a timer; arming twice keeps one entry ---- */

static void test_timer_rearm(void)
{
	struct loop_timer a = {.fn = timer_record, .ctx = (void *)7L};
	struct loop_timer b = {.fn = timer_record, .ctx = (void *)8L};
	struct loop_timer c = {.fn = timer_record, .ctx = (void *)9L};

	cur_loop = make_loop(false);
	nfired = 0;
	loop_timer_arm(cur_loop, &a, 5);
	loop_timer_arm(cur_loop, &b, 10);
	loop_timer_arm(cur_loop, &a, 20); /* now after b */
	loop_timer_arm(cur_loop, &c, 25);
	TAP_CHECK_EQ(loop_run(cur_loop), 0);
	TAP_CHECK_EQ(nfired, 3);
	TAP_CHECK_EQ(fired[0], 8);
	TAP_CHECK_EQ(fired[1], 7);
	TAP_CHECK_EQ(fired[2], 9);
	loop_destroy(cur_loop);
}

/* ---- deferred work runs once per turn even if deferred twice, after fd callbacks ---- */

static int work_runs, fd_runs, order_ok;

static void work_fn(struct loop_work *w)
{
	work_runs++;
	order_ok = fd_runs > 0;
	loop_stop(cur_loop);
}

static void pipe_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct loop_work *w = ctx;
	char buf[16];

	TAP_CHECK(events & EPOLLIN);
	TAP_CHECK(read(fd, buf, sizeof(buf)) > 0);
	fd_runs++;
	loop_defer(l, w);
	loop_defer(l, w);
	TAP_CHECK(loop_current() == l);
}

static void test_defer_once(void)
{
	struct loop_work w = {.fn = work_fn};
	int p[2];

	cur_loop = make_loop(false);
	work_runs = fd_runs = order_ok = 0;
	TAP_CHECK_EQ(pipe(p), 0);
	TAP_CHECK_EQ(loop_add_fd(cur_loop, p[0], EPOLLIN, pipe_cb, &w), 0);
	TAP_CHECK_EQ(loop_add_fd(cur_loop, p[0], EPOLLIN, pipe_cb, &w), -EEXIST);
	TAP_CHECK_EQ(write(p[1], "x", 1), 1);
	TAP_CHECK(loop_current() == NULL);
	TAP_CHECK_EQ(loop_run(cur_loop), 0);
	TAP_CHECK_EQ(work_runs, 1);
	TAP_CHECK_EQ(fd_runs, 1);
	TAP_CHECK(order_ok);
	TAP_CHECK(loop_current() == NULL);
	TAP_CHECK_EQ(loop_del_fd(cur_loop, p[0]), 0);
	TAP_CHECK_EQ(loop_del_fd(cur_loop, p[0]), -ENOENT);
	close(p[0]);
	close(p[1]);
	loop_destroy(cur_loop);
}

/* ---- a cancelled work item does not run ---- */

static void work_never(struct loop_work *w)
{
	work_runs += 100;
}

static void timer_stop(struct loop_timer *t)
{
	loop_stop(cur_loop);
}

static void test_work_cancel(void)
{
	struct loop_work w = {.fn = work_never};
	struct loop_timer t = {.fn = timer_stop};

	cur_loop = make_loop(false);
	work_runs = 0;
	loop_defer(cur_loop, &w);
	loop_work_cancel(cur_loop, &w);
	loop_timer_arm(cur_loop, &t, 5);
	TAP_CHECK_EQ(loop_run(cur_loop), 0);
	TAP_CHECK_EQ(work_runs, 0);
	loop_destroy(cur_loop);
}

/* ---- an fd deleted by an earlier callback of the same batch is not dispatched ---- */

static int pa[2], pb[2], a_runs, b_runs;

static void del_other_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	int other = (int)(long)ctx;
	char buf[8];

	(void)!read(fd, buf, sizeof(buf));
	if (fd == pa[0])
		a_runs++;
	else
		b_runs++;
	loop_del_fd(l, other);
	loop_del_fd(l, fd);
	loop_stop(l);
}

static void test_stale_event(void)
{
	cur_loop = make_loop(false);
	a_runs = b_runs = 0;
	TAP_CHECK_EQ(pipe(pa), 0);
	TAP_CHECK_EQ(pipe(pb), 0);
	TAP_CHECK_EQ(loop_add_fd(cur_loop, pa[0], EPOLLIN, del_other_cb, (void *)(long)pb[0]), 0);
	TAP_CHECK_EQ(loop_add_fd(cur_loop, pb[0], EPOLLIN, del_other_cb, (void *)(long)pa[0]), 0);
	TAP_CHECK_EQ(write(pa[1], "x", 1), 1);
	TAP_CHECK_EQ(write(pb[1], "x", 1), 1);
	TAP_CHECK_EQ(loop_run(cur_loop), 0);
	TAP_CHECK_EQ(a_runs + b_runs, 1);
	close(pa[0]);
	close(pa[1]);
	close(pb[0]);
	close(pb[1]);
	loop_destroy(cur_loop);
}

/* ---- posts from another thread run on the loop thread, in order; stop from a thread ---- */

static int post_seen[100], post_n;
static pthread_t loop_thread_id;
static int post_wrong_thread;

static void post_fn(void *arg)
{
	if (!pthread_equal(pthread_self(), loop_thread_id))
		post_wrong_thread++;
	post_seen[post_n++] = (int)(long)arg;
}

static void *poster(void *arg)
{
	struct loop *l = arg;

	for (long i = 0; i < 100; i++)
		loop_post(l, post_fn, (void *)i);
	usleep(20000);
	loop_stop(l);
	return NULL;
}

static void run_post_test(bool busy)
{
	pthread_t th;
	bool in_order = true;

	cur_loop = make_loop(busy);
	post_n = post_wrong_thread = 0;
	loop_thread_id = pthread_self();
	TAP_CHECK_EQ(pthread_create(&th, NULL, poster, cur_loop), 0);
	TAP_CHECK_EQ(loop_run(cur_loop), 0);
	pthread_join(th, NULL);
	TAP_CHECK_EQ(post_n, 100);
	TAP_CHECK_EQ(post_wrong_thread, 0);
	for (int i = 0; i < post_n; i++)
		in_order = in_order && post_seen[i] == i;
	TAP_CHECK(in_order);
	loop_destroy(cur_loop);
}

static void test_post_interrupt(void)
{
	run_post_test(false);
}

static void test_post_busy_poll(void)
{
	run_post_test(true);
}

/* ---- a timer still fires in busy-poll mode ---- */

static void test_busy_timer(void)
{
	struct loop_timer t = {.fn = timer_stop};
	uint64_t start;

	cur_loop = make_loop(true);
	loop_timer_arm(cur_loop, &t, 15);
	start = loop_now_ms(cur_loop);
	TAP_CHECK_EQ(loop_run(cur_loop), 0);
	TAP_CHECK(loop_now_ms(cur_loop) - start >= 15);
	loop_destroy(cur_loop);
}

/* ---- loop_stop from a signal handler ends loop_run ---- */

static void on_alarm(int sig)
{
	loop_stop(cur_loop);
}

static void test_stop_from_signal(void)
{
	struct sigaction sa = {0};
	struct itimerval it = {0};

	cur_loop = make_loop(false);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	it.it_value.tv_usec = 20000;
	setitimer(ITIMER_REAL, &it, NULL);
	TAP_CHECK_EQ(loop_run(cur_loop), 0); /* no timer, no fd: only the signal can end it */
	signal(SIGALRM, SIG_DFL);
	loop_destroy(cur_loop);
}

/* ---- a stop issued before run makes run return at once; the flag then resets ---- */

static void test_stop_before_run(void)
{
	struct loop_timer t = {.fn = timer_record, .ctx = (void *)5L};

	cur_loop = make_loop(false);
	nfired = 0;
	loop_stop(cur_loop);
	loop_timer_arm(cur_loop, &t, 10000);
	TAP_CHECK_EQ(loop_run(cur_loop), 0);
	TAP_CHECK_EQ(nfired, 0);
	loop_timer_cancel(cur_loop, &t);
	t.fn = timer_stop;
	loop_timer_arm(cur_loop, &t, 1);
	TAP_CHECK_EQ(loop_run(cur_loop), 0); /* returns only through the timer */
	loop_destroy(cur_loop);
}

/* ---- loop_run pins its thread to opts.cpu ---- */

static int pinned_ok;

static void timer_check_pin(struct loop_timer *t)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	pinned_ok = sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1 &&
		    CPU_ISSET(0, &set);
	loop_stop(cur_loop);
}

static void *pin_thread(void *arg)
{
	struct loop_opts o = {.busy_poll = false, .cpu = 0};
	struct loop_timer t = {.fn = timer_check_pin};

	if (loop_create(&cur_loop, &o) != 0)
		return NULL;
	loop_timer_arm(cur_loop, &t, 1);
	loop_run(cur_loop);
	loop_destroy(cur_loop);
	return NULL;
}

static void test_cpu_pinning(void)
{
	pthread_t th;

	pinned_ok = 0;
	/* on a thread of its own: pinning the test's main thread would outlive the case */
	TAP_CHECK_EQ(pthread_create(&th, NULL, pin_thread, NULL), 0);
	pthread_join(th, NULL);
	TAP_CHECK(pinned_ok);
}

int main(void)
{
	TAP_RUN(test_timer_order);
	TAP_RUN(test_timer_rearm);
	TAP_RUN(test_defer_once);
	TAP_RUN(test_work_cancel);
	TAP_RUN(test_stale_event);
	TAP_RUN(test_post_interrupt);
	TAP_RUN(test_post_busy_poll);
	TAP_RUN(test_busy_timer);
	TAP_RUN(test_stop_from_signal);
	TAP_RUN(test_stop_before_run);
	TAP_RUN(test_cpu_pinning);
	return tap_done();
}
