/* Unit tests for src/net/sock.c: congestion control set on a socket, inherited by the
 * connections a listener accepts, and refused with a message naming what the kernel offers.
 * Layer: tests. Uses one TCP connection over 127.0.0.1. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/sock.h"
#include "tap.h"

/* A congestion control other than the system's default, so that reading it back proves the
 * setting (reno is built into every kernel). */
static const char *other_cc(void)
{
	char def[32] = "";
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_congestion_control", "r");

	if (f) {
		if (!fgets(def, sizeof(def), f))
			def[0] = '\0';
		fclose(f);
	}
	def[strcspn(def, "\n")] = '\0';
	return strcmp(def, "reno") == 0 ? "cubic" : "reno";
}

/* ---- a listener's setting reaches the connections it accepts; the dialer's its own ---- */

static void test_inherited(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	const char *cc = other_cc();
	char err[256] = "", got[SOCK_CC_NAME_MAX + 1] = "";
	int lfd, cfd, afd;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	TAP_CHECK(lfd >= 0);
	TAP_CHECK_EQ(sock_set_congestion(lfd, cc, err, sizeof(err)), 0);
	TAP_CHECK_EQ(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	TAP_CHECK_EQ(listen(lfd, 1), 0);
	TAP_CHECK_EQ(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	TAP_CHECK(cfd >= 0);
	TAP_CHECK_EQ(sock_set_congestion(cfd, cc, err, sizeof(err)), 0);
	TAP_CHECK_EQ(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
	afd = accept(lfd, NULL, NULL);
	TAP_CHECK(afd >= 0);
	TAP_CHECK_EQ(sock_get_congestion(afd, got, sizeof(got)), 0);
	TAP_CHECK(strcmp(got, cc) == 0);
	got[0] = '\0';
	TAP_CHECK_EQ(sock_get_congestion(cfd, got, sizeof(got)), 0);
	TAP_CHECK(strcmp(got, cc) == 0);
	if (strcmp(got, cc) != 0)
		printf("# expected %s, got %s\n", cc, got);
	close(afd);
	close(cfd);
	close(lfd);
}

/* ---- unknown, empty and over-long names fail with a message ---- */

static void test_refused(void)
{
	char err[256] = "";
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	TAP_CHECK(fd >= 0);
	TAP_CHECK_EQ(sock_set_congestion(fd, "nvtcp-nosuch", err, sizeof(err)), -ENOENT);
	TAP_CHECK(strstr(err, "\"nvtcp-nosuch\" is not available") != NULL);
	TAP_CHECK(strstr(err, "reno") != NULL); /* the list of what the kernel has */
	err[0] = '\0';
	TAP_CHECK_EQ(sock_set_congestion(fd, "", err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "expected a name") != NULL);
	err[0] = '\0';
	TAP_CHECK_EQ(sock_set_congestion(fd, "abcdefghijklmnop", err, sizeof(err)), -EINVAL);
	TAP_CHECK(strstr(err, "expected a name") != NULL);
	TAP_CHECK_EQ(sock_set_congestion(fd, NULL, err, sizeof(err)), -EINVAL);
	close(fd);
}

int main(void)
{
	TAP_RUN(test_inherited);
	TAP_RUN(test_refused);
	return tap_done();
}
