/* Host side of DH-HMAC-CHAP in-band authentication: after a queue's Fabrics Connect, drive the
 * src/auth host state machine over Authentication Send (data in-capsule) and Authentication
 * Receive (data in C2HData) until the queue is authenticated or refused.
 * Layer: host. Blocking, on the thread that owns the queue; one preallocated transaction slot
 * (state machine and message buffer) per queue, so nothing is allocated during an exchange. */
#ifndef NVTCP_HOST_AUTH_H
#define NVTCP_HOST_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvtcp/host.h"
#include "conn.h"

struct host_auth;

/* Set up authentication for one controller from opts (dhchap_secret, dhchap_ctrl_secret,
 * dhchap_hashes, dhchap_dhgroups) with slots for queues 0..nr_queues-1. The secrets are
 * parsed and copied (wiped at host_auth_free), never logged. *out is NULL when no secret is
 * configured (the queue hook then only checks that the controller does not require one).
 * Returns 0, or -EINVAL with a reason in err. */
int host_auth_create(const struct nvtcp_ctrl_opts *opts, const char *hostnqn, const char *subnqn,
		     unsigned nr_queues, struct host_auth **out, char *err, size_t errlen);
void host_auth_free(struct host_auth *a);

/* Hook after a successful Connect of queue qid (connect_dw0: the response's DW0). Runs a
 * transaction when the controller requires authentication (AUTHREQ.ATR) or a secret is
 * configured (then also when it was not asked for, as the Linux host does; a controller that
 * answers the first Authentication Send with an error status is accepted only without a
 * controller secret). a may be NULL (no secret). timeout_ms bounds each command.
 * Returns 0 when the queue may be used, -EKEYREJECTED (refused either way), -EACCES (the
 * controller requires a secret we do not have), -EOPNOTSUPP, -EPROTO or the queue's -errno,
 * with a one-line reason in err. Thread context: the queue's owner. */
int host_auth_queue_connected(struct host_auth *a, struct host_conn *conn, uint16_t qid,
			      uint32_t connect_dw0, int timeout_ms, char *err, size_t errlen);

/* Run a new transaction (re-authentication) on a live, authenticated queue. Same returns. */
int host_auth_run(struct host_auth *a, struct host_conn *conn, uint16_t qid, int timeout_ms,
		  char *err, size_t errlen);

/* Transactions completed successfully (all queues, for tests and statistics). */
unsigned long host_auth_successes(const struct host_auth *a);

#endif
