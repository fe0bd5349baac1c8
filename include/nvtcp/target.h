/* nvtcp target (nvtcpd's engine): configure from JSON or the built-in default, run one event
 * loop per core until stopped. Public API. */
#ifndef NVTCP_TARGET_H
#define NVTCP_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nvtcp_target;

struct nvtcp_target_opts {
	const char *config_path;   /* JSON config; NULL = built-in default */
	const char *const *listen; /* "ADDR:PORT" / "[IPV6]:PORT"; replaces configured ports */
	int nlisten;
	unsigned cores; /* event loops (threads); 0 = 1 */
	bool busy_poll; /* spin instead of sleeping in epoll */
	int first_cpu;	/* pin loop i to CPU first_cpu + i; -1 = no pinning */
	/* connections open at once (all ports, all queues); beyond it new connections are
	 * accepted and closed at once, with a log line. 0 = NVTCP_TARGET_MAX_CONNECTIONS */
	unsigned max_connections;
	/* a connection whose PDU stays half-received, or whose queued sends make no progress
	 * (the host stopped reading), for this long is closed. 0 = 30000 ms */
	unsigned io_timeout_ms;
	/* TCP congestion control of every connection ("cubic", "bbr", "dctcp", ...), set on the
	 * listeners; NULL or "" = the system's default (net.ipv4.tcp_congestion_control) */
	const char *tcp_congestion;
	/* Reads of 64 KiB or more from a memory namespace, without a data digest, on plain TCP:
	 * send the namespace's pages by reference (vmsplice + splice) instead of copying them
	 * into the socket. Less nvtcpd CPU per Read; see docs/BENCHMARKS.md for when it wins. */
	bool zero_copy_reads;
};

#define NVTCP_TARGET_MAX_CONNECTIONS 4096

/* Build a target: load config, open backends, bind listeners. Returns 0, or -errno with a
 * human-readable message in err. */
int nvtcp_target_create(const struct nvtcp_target_opts *opts, struct nvtcp_target **out, char *err,
			size_t errlen);
/* Run the event loops on the calling thread plus cores-1 more; returns after
 * nvtcp_target_stop once every connection is closed. Returns 0 or -errno. */
int nvtcp_target_run(struct nvtcp_target *t);
/* Async-signal-safe: ask nvtcp_target_run to return. */
void nvtcp_target_stop(struct nvtcp_target *t);
/* Listener i (0-based, after nvtcp_target_create): numeric address into addr and the port
 * number into *port. Returns 0, or -ENOENT past the last listener. */
int nvtcp_target_listener(const struct nvtcp_target *t, unsigned i, char *addr, size_t addrlen,
			  unsigned *port);
/* NQN of NVM subsystem i (the discovery subsystem is not counted), or NULL past the last.
 * The string lives as long as the target. */
const char *nvtcp_target_subsystem_nqn(const struct nvtcp_target *t, unsigned i);
/* Set the library's log threshold: "error", "warn", "info" or "debug" (default info, or the
 * NVTCP_LOG environment variable). Returns 0 or -EINVAL. */
int nvtcp_target_set_log_level(const char *level);
/* Close backends (flushing file data) and free everything. */
void nvtcp_target_destroy(struct nvtcp_target *t);

#ifdef __cplusplus
}
#endif
#endif
