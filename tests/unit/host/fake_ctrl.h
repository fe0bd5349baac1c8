/* Pieces of the fake NVMe/TCP controllers in the host unit tests (test_conn.c, test_auth.c):
 * the socketpair a host queue is opened on, bounded blocking reads on the controller end, and
 * the capsule response builder. Test layer; header-only so each test stays one file. */
#ifndef NVTCP_TESTS_HOST_FAKE_CTRL_H
#define NVTCP_TESTS_HOST_FAKE_CTRL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/le.h"
#include "proto/pdu.h"

/* Read exactly len bytes from the controller end, waiting at most timeout_ms for each chunk.
 * Returns 0, -ETIMEDOUT, -ECONNRESET on EOF, or -errno. */
static inline int fake_ctrl_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		n = read(fd, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			return n == 0 ? -ECONNRESET : -errno;
		got += (size_t)n;
	}
	return 0;
}

/* Build a CapsuleResp for cid with status (the NVMe status field, without the phase bit) and
 * dw0 into b (sizeof(union wire_pdu) bytes). Returns its length. */
static inline size_t fake_ctrl_build_resp(uint8_t *b, const struct pdu_params *p, uint16_t cid,
					  uint16_t status, uint32_t dw0)
{
	struct wire_cqe cqe = {0};

	le16_put(cqe.cid, cid);
	le16_put(cqe.status, (uint16_t)(status << 1));
	le32_put(cqe.dw0, dw0);
	return pdu_build_capsule_resp(b, &cqe, p);
}

/* A socketpair: *host_fd (non-blocking) for host_conn_open, *ctrl_fd (blocking, reads bounded
 * by poll) for the fake controller, whose PDU parameters p get the post-ICResp limits.
 * Returns 0 or -errno. */
static inline int fake_ctrl_socketpair(int *host_fd, int *ctrl_fd, struct pdu_params *p)
{
	int sv[2];

	*host_fd = -1;
	*ctrl_fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -errno;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	*host_fd = sv[0];
	*ctrl_fd = sv[1];
	p->maxh2cdata = 65536;
	p->max_incapsule = 65536;
	p->ic_done = true;
	return 0;
}

#endif
