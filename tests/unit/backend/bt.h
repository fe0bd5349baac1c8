/* Helpers shared by the backend tests: synchronous bio submission that waits for completion
 * through the channel's fd and poll(2), as the event loop would. */
#ifndef NVTCP_TESTS_BACKEND_BT_H
#define NVTCP_TESTS_BACKEND_BT_H

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nvtcp/backend.h"

struct bt_done {
	int calls;
	int status;
};

static inline void bt_done_fn(struct nvtcp_bio *bio, int status)
{
	struct bt_done *d = bio->priv;

	d->calls++;
	d->status = status;
}

/* Reap until nothing is in flight. Returns 0, or -ETIMEDOUT if the fd stays quiet 5 s. */
static inline int bt_wait(struct nvtcp_backend_channel *ch)
{
	while (nvtcp_backend_channel_inflight(ch)) {
		struct pollfd p = {.fd = nvtcp_backend_channel_fd(ch), .events = POLLIN};

		if (p.fd < 0)
			return -EINVAL; /* inline channels never leave anything in flight */
		if (poll(&p, 1, 5000) <= 0)
			return -ETIMEDOUT;
		if (nvtcp_backend_channel_poll(ch) < 0)
			return -EIO;
	}
	return 0;
}

/* Submit bio (its done and priv are set here) and wait. Returns the submit error, or the
 * completion status; 1000 + calls if done ran other than once. */
static inline int bt_submit(struct nvtcp_backend_channel *ch, struct nvtcp_bio *bio)
{
	struct bt_done d = {0, 0};
	int ret;

	bio->done = bt_done_fn;
	bio->priv = &d;
	ret = nvtcp_backend_submit(ch, bio);
	if (ret < 0)
		return ret;
	ret = bt_wait(ch);
	if (ret < 0)
		return ret;
	return d.calls == 1 ? d.status : 1000 + d.calls;
}

/* Submit one bio over iov and wait; returns like bt_submit. */
static inline int bt_iov(struct nvtcp_backend_channel *ch, enum nvtcp_bio_op op, uint64_t off,
			 const struct iovec *iov, int iovcnt, uint64_t len, bool fua)
{
	struct nvtcp_bio bio = {
		.op = op, .offset = off, .length = len, .iov = iov, .iovcnt = iovcnt, .fua = fua};

	return bt_submit(ch, &bio);
}

static inline int bt_io(struct nvtcp_backend_channel *ch, enum nvtcp_bio_op op, uint64_t off,
			void *buf, uint64_t len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return bt_iov(ch, op, off, &iov, buf ? 1 : 0, len, false);
}

static inline void bt_fill(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 9));
}

static inline bool bt_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

#endif
