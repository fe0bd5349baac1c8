/* TCP socket settings shared by the target's listeners and the host's dialer.
 * Layer: net. */
#ifndef NVTCP_NET_SOCK_H
#define NVTCP_NET_SOCK_H

#include <stddef.h>

/* Longest congestion control name the kernel takes (TCP_CA_NAME_MAX - 1). */
#define SOCK_CC_NAME_MAX 15

/* 0 if name can be a congestion control name (1..SOCK_CC_NAME_MAX characters), else -EINVAL
 * with a message in err. */
int sock_congestion_name_ok(const char *name, char *err, size_t errlen);
/* Use TCP congestion control `name` ("cubic", "bbr", "dctcp", "reno", ...) on fd instead of
 * the system's default (net.ipv4.tcp_congestion_control). Set on a listening socket, the
 * connections it accepts inherit it. Returns 0, or -errno with a message in err naming what
 * the kernel offers (ENOENT: not available; EPERM: not in
 * net.ipv4.tcp_allowed_congestion_control for an unprivileged process). */
int sock_set_congestion(int fd, const char *name, char *err, size_t errlen);
/* The congestion control fd uses, into buf (at least SOCK_CC_NAME_MAX + 1 bytes). Returns 0
 * or -errno. */
int sock_get_congestion(int fd, char *buf, size_t len);

#endif
