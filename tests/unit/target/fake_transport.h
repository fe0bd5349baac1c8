/* Fake transport for the target-core unit tests (test_core.c, test_auth.c): a struct
 * tgt_queue_ops that records completions, requests whose data buffers the test owns, and the
 * helpers that submit commands the way src/target/conn.c does and drive the loop. Test layer.
 * Include after defining FT_BUF_SIZE (bytes per request buffer) and FT_PEER_ADDR. */
#ifndef NVTCP_TESTS_FAKE_TRANSPORT_H
#define NVTCP_TESTS_FAKE_TRANSPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "target/core.h"

#ifndef FT_BUF_SIZE
#error "define FT_BUF_SIZE before including fake_transport.h"
#endif
#ifndef FT_PEER_ADDR
#error "define FT_PEER_ADDR before including fake_transport.h"
#endif

static struct tgt T;
static struct loop *L;

struct fconn {
	struct tgt_queue q;
	int completions;
	int disconnects;
	bool destroyed;
};

struct freq {
	struct tgt_req req;
	struct iovec iov;
	uint8_t buf[FT_BUF_SIZE];
	bool done;
};

static struct freq *R; /* the request used for synchronous commands */

static inline void f_complete(struct tgt_req *req)
{
	struct freq *f = container_of(req, struct freq, req);
	struct fconn *c = container_of(req->queue, struct fconn, q);

	f->done = true;
	c->completions++;
}

static inline void f_disconnect(struct tgt_queue *q)
{
	struct fconn *c = container_of(q, struct fconn, q);

	c->disconnects++;
	if (!c->destroyed) {
		c->destroyed = true;
		tgt_queue_destroy(q);
	}
}

static const struct tgt_queue_ops f_ops = {.complete = f_complete, .disconnect = f_disconnect};

static inline void conn_init(struct fconn *c)
{
	memset(c, 0, sizeof(*c));
	c->q.tgt = &T;
	c->q.thread = &T.threads[0];
	c->q.port = list_first_entry(&T.ports, struct tgt_port, entry);
	c->q.ops = &f_ops;
	snprintf(c->q.peer_addr, sizeof(c->q.peer_addr), "%s", FT_PEER_ADDR);
	list_init(&c->q.ctrl_entry);
}

static inline void conn_close(struct fconn *c)
{
	if (!c->destroyed) {
		c->destroyed = true;
		tgt_queue_destroy(&c->q);
	}
}

static inline void stop_cb(void *arg)
{
	loop_stop(arg);
}

/* Run the posted work (disconnects, events) queued so far. */
static inline void drain(void)
{
	loop_post(L, stop_cb, L);
	loop_run(L);
}

static inline void stop_timer_cb(struct loop_timer *t)
{
	loop_stop(t->ctx);
}

static inline void run_for_ms(uint64_t ms)
{
	struct loop_timer t = {.fn = stop_timer_cb, .ctx = L};

	list_init(&t.entry);
	loop_timer_arm(L, &t, ms);
	loop_run(L);
	loop_timer_cancel(L, &t);
}

/* Submit like the transport does; returns the status, or 0xffff while still pending. */
static inline uint16_t exec_on(struct fconn *c, struct freq *f, const struct wire_sqe *sqe,
			       const void *data, uint32_t len)
{
	memset(&f->req, 0, sizeof(f->req));
	f->req.sqe = *sqe;
	f->req.queue = &c->q;
	f->iov.iov_base = f->buf;
	f->iov.iov_len = len;
	f->req.iov = &f->iov;
	f->req.iovcnt = 1;
	f->req.data_len = len;
	f->done = false;
	memset(f->buf, 0xa5, sizeof(f->buf));
	if (data)
		memcpy(f->buf, data, len);
	if (tgt_req_init(&f->req) < 0)
		tgt_req_complete(&f->req);
	else
		f->req.execute(&f->req);
	return f->done ? le16_get(f->req.cqe.status) : 0xffff;
}

static inline uint16_t exec(struct fconn *c, const struct wire_sqe *sqe, const void *data,
			    uint32_t len)
{
	return exec_on(c, R, sqe, data, len);
}

static inline struct wire_sqe sqe_new(uint8_t opc, uint16_t cid, uint32_t nsid)
{
	struct wire_sqe s;

	memset(&s, 0, sizeof(s));
	s.opc = opc;
	s.flags = WIRE_SQE_PSDT_SGL;
	le16_put(s.cid, cid);
	le32_put(s.nsid, nsid);
	return s;
}

/* Fabrics Connect with every field the tests vary; len is the data length sent. */
static inline uint16_t connect_ex(struct fconn *c, uint16_t qid, uint16_t sqsize, uint16_t cntlid,
				  const char *subnqn, const char *hostnqn, uint32_t kato,
				  uint8_t cattr, uint16_t recfmt, uint32_t len)
{
	struct wire_sqe s = sqe_new(NVME_FABRICS_OPC, 1, 0);
	struct wire_connect_cmd *cc = (struct wire_connect_cmd *)&s;
	struct wire_connect_data d;

	cc->fctype = NVME_FCTYPE_CONNECT;
	le16_put(cc->recfmt, recfmt);
	le16_put(cc->qid, qid);
	le16_put(cc->sqsize, sqsize);
	cc->cattr = cattr;
	le32_put(cc->kato, kato);
	memset(&d, 0, sizeof(d));
	memset(d.hostid, 0x42, sizeof(d.hostid));
	le16_put(d.cntlid, cntlid);
	snprintf(d.subnqn, sizeof(d.subnqn), "%s", subnqn);
	snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", hostnqn);
	return exec(c, &s, &d, len);
}

/* Property Get/Set; size8 selects the 8-byte form. */
static inline uint16_t prop_ex(struct fconn *c, bool set, uint32_t ofst, bool size8, uint64_t value)
{
	struct wire_sqe s = sqe_new(NVME_FABRICS_OPC, 2, 0);
	struct wire_prop_cmd *p = (struct wire_prop_cmd *)&s;

	p->fctype = set ? NVME_FCTYPE_PROPERTY_SET : NVME_FCTYPE_PROPERTY_GET;
	p->attrib = size8 ? 1 : 0;
	le32_put(p->ofst, ofst);
	le64_put(p->value, value);
	return exec(c, &s, NULL, 0);
}

/* After T is configured: create L and attach T's first thread to it. Returns 0, or
 * 1 after printing a TAP comment. */
static inline int ft_start(void)
{
	struct loop_opts opts = {.busy_poll = false, .cpu = -1};

	if (loop_create(&L, &opts)) {
		printf("# loop_create failed\n");
		return 1;
	}
	T.threads[0].loop = L;
	if (tgt_thread_attach(&T.threads[0])) {
		printf("# attach failed\n");
		return 1;
	}
	return 0;
}

/* Runs what is still posted, detaches the thread and frees T (tgt_fini). */
static inline void ft_stop(void)
{
	drain();
	tgt_thread_detach(&T.threads[0]);
	tgt_fini(&T);
}

/* Last: after anything that still needed T's backends is gone. */
static inline void ft_free(void)
{
	loop_destroy(L);
	free(R);
}

#endif
