/* TCP socket settings shared by the target's listeners and the host's dialer. */
#include "sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "../common/errbuf.h"

/* First line of a /proc/sys file into buf ("" if it cannot be read). */
static void sock_read_sysctl(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

int sock_congestion_name_ok(const char *name, char *err, size_t errlen)
{
	size_t n = name ? strlen(name) : 0;

	if (n > 0 && n <= SOCK_CC_NAME_MAX)
		return 0;
	errbuf_set(err, errlen,
		   "TCP congestion control \"%s\": expected a name of 1..%d characters",
		   name ? name : "", SOCK_CC_NAME_MAX);
	return -EINVAL;
}

int sock_set_congestion(int fd, const char *name, char *err, size_t errlen)
{
	char avail[256];
	int r = sock_congestion_name_ok(name, err, errlen);

	if (r < 0)
		return r;
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)strlen(name)) == 0)
		return 0;
	r = -errno;
	if (r == -EPERM) {
		sock_read_sysctl("/proc/sys/net/ipv4/tcp_allowed_congestion_control", avail,
				 sizeof(avail));
		errbuf_set(err, errlen,
			   "TCP congestion control \"%s\" is not allowed for this process "
			   "(net.ipv4.tcp_allowed_congestion_control: %s)",
			   name, avail[0] ? avail : "unknown");
	} else if (r == -ENOENT) {
		sock_read_sysctl("/proc/sys/net/ipv4/tcp_available_congestion_control", avail,
				 sizeof(avail));
		errbuf_set(err, errlen,
			   "TCP congestion control \"%s\" is not available (this kernel has: %s; "
			   "modprobe tcp_%s may add it)",
			   name, avail[0] ? avail : "unknown", name);
	} else {
		errbuf_set(err, errlen, "TCP congestion control \"%s\": %s", name, strerror(-r));
	}
	return r;
}

int sock_get_congestion(int fd, char *buf, size_t len)
{
	char name[SOCK_CC_NAME_MAX + 1] = "";
	socklen_t sl = sizeof(name) - 1;

	if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &sl) < 0)
		return -errno;
	name[sl < sizeof(name) ? sl : sizeof(name) - 1] = '\0';
	snprintf(buf, len, "%s", name);
	return 0;
}
