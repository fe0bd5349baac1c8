/* DH-HMAC-CHAP re-authentication, host and target in one process: nvtcp_target runs on a
 * thread with a subsystem whose host has a host and a controller key; libnvtcp connects with
 * 2 I/O queues, does I/O, then nvtcp_ctrl_reauthenticate() re-authenticates the admin queue at
 * once and each I/O queue at its next poll. Both sides' log lines (stderr, redirected to a
 * file) count the successful transactions per queue. Also: a wrong key fails the connect.
 * Layer: integration test. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "auth/dhchap.h"
#include "nvtcp/host.h"
#include "nvtcp/target.h"
#include "tap.h"

#define SUBNQN	"nqn.2024-01.io.nvtcp:reauth"
#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:77e1c3a2-0b4d-4f5e-8a6b-9c0d1e2f3a4b"

static struct nvtcp_target *tgt;
static pthread_t tgt_thread;
static char port[16], cfg_path[64] = "/tmp/nvtcp-reauth-XXXXXX", log_path[80];
static char key[DHCHAP_SECRET_MAX], ckey[DHCHAP_SECRET_MAX], wrong[DHCHAP_SECRET_MAX];
static FILE *log_file;
static int saved_stderr = -1;
static struct nvtcp_ctrl *ctrl;

static void *tgt_main(void *arg)
{
	nvtcp_target_run(tgt);
	return NULL;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		p = ntohs(a.sin_port);
	close(fd);
	return p;
}

static void make_key(char *out, uint8_t hh, uint8_t len)
{
	struct dhchap_key k = {.len = len, .hh = hh};

	TAP_CHECK_EQ(RAND_bytes(k.key, len), 1);
	TAP_CHECK(dhchap_key_format(&k, out, DHCHAP_SECRET_MAX) > 0);
}

/* Lines of the redirected log containing both a and b. */
static int log_count(const char *a, const char *b)
{
	char line[1024];
	int n = 0;

	fflush(stderr);
	rewind(log_file);
	while (fgets(line, sizeof(line), log_file))
		n += strstr(line, a) && strstr(line, b);
	fseek(log_file, 0, SEEK_END);
	return n;
}

static void test_start(void)
{
	char listen[64], err[256] = "";
	const char *l[1] = {listen};
	struct nvtcp_target_opts o = {.listen = l, .nlisten = 1, .cores = 1, .first_cpu = -1};
	int p = free_port(), fd;
	FILE *f;

	make_key(key, 1, 32);
	make_key(ckey, 3, 64);
	make_key(wrong, 1, 32);
	fd = mkstemp(cfg_path);
	TAP_CHECK(fd >= 0);
	f = fdopen(fd, "w");
	fprintf(f,
		"{\"subsystems\": [{\"nqn\": \"%s\", \"dhchap_hashes\": [\"sha384\"], "
		"\"dhchap_dhgroups\": [\"ffdhe2048\"], \"hosts\": [{\"nqn\": \"%s\", "
		"\"dhchap_key\": \"%s\", \"dhchap_ctrl_key\": \"%s\"}], \"namespaces\": "
		"[{\"nsid\": 1, \"backend\": \"memory\", \"size\": \"8M\"}]}]}\n",
		SUBNQN, HOSTNQN, key, ckey);
	fclose(f);
	/* Both sides log to stderr: keep it in a file to count the transactions. */
	snprintf(log_path, sizeof(log_path), "%s.log", cfg_path);
	log_file = fopen(log_path, "w+");
	TAP_CHECK(log_file != NULL);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fileno(log_file), STDERR_FILENO);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", p);
	snprintf(port, sizeof(port), "%d", p);
	o.config_path = cfg_path;
	nvtcp_target_set_log_level("debug");
	TAP_CHECK_EQ(nvtcp_target_create(&o, &tgt, err, sizeof(err)), 0);
	if (!tgt) {
		printf("# target: %s\n", err);
		return;
	}
	TAP_CHECK_EQ(pthread_create(&tgt_thread, NULL, tgt_main, NULL), 0);
}

static struct nvtcp_ctrl_opts opts(const char *secret)
{
	struct nvtcp_ctrl_opts o = {.traddr = "127.0.0.1",
				    .trsvcid = port,
				    .subnqn = SUBNQN,
				    .hostnqn = HOSTNQN,
				    .nr_io_queues = 2,
				    .queue_size = 16,
				    .ctrl_loss_tmo_ms = NVTCP_NO_RECONNECT,
				    .dhchap_secret = secret,
				    .dhchap_ctrl_secret = ckey};
	return o;
}

static void test_connect_and_io(void)
{
	struct nvtcp_ctrl_opts o = opts(key);
	static uint8_t buf[4096], back[4096];
	char err[256] = "";
	int r = nvtcp_ctrl_connect(&o, &ctrl, err, sizeof(err));

	TAP_CHECK_EQ(r, 0);
	if (r) {
		printf("# connect: %s\n", err);
		return;
	}
	TAP_CHECK_EQ(nvtcp_ctrl_get_info(ctrl)->nr_io_queues, 2u);
	for (unsigned i = 0; i < 2; i++) {
		struct nvtcp_io_queue *q = nvtcp_ctrl_io_queue(ctrl, i);

		memset(buf, 0x30 + (int)i, sizeof(buf));
		TAP_CHECK_EQ(nvtcp_write(q, 1, 8 * i, 8, buf, sizeof(buf), 0), 0);
		TAP_CHECK_EQ(nvtcp_read(q, 1, 8 * i, 8, back, sizeof(back)), 0);
		TAP_CHECK_MEM(buf, back, sizeof(buf));
	}
	/* Target: every queue once, both directions; host: the same. */
	TAP_CHECK_EQ(log_count("authenticated host " HOSTNQN, "controller authenticated too"), 3);
	TAP_CHECK_EQ(log_count("q0: authenticated with hash sha384 dhgroup ffdhe2048",
			       "controller authenticated"),
		     1);
}

static void test_reauthenticate(void)
{
	static uint8_t buf[4096];
	char err[256] = "";

	if (!ctrl) {
		TAP_CHECK(0);
		return;
	}
	TAP_CHECK_EQ(nvtcp_ctrl_reauthenticate(ctrl, err, sizeof(err)), 0);
	/* The admin queue at once... */
	TAP_CHECK_EQ(log_count(" q0 ", "authenticated host " HOSTNQN), 2);
	TAP_CHECK_EQ(log_count(" q1 ", "authenticated host " HOSTNQN), 1);
	TAP_CHECK_EQ(nvtcp_identify_ctrl(ctrl, buf), 0);
	/* ...each I/O queue at its next use, then I/O goes on. */
	for (unsigned i = 0; i < 2; i++)
		TAP_CHECK_EQ(nvtcp_read(nvtcp_ctrl_io_queue(ctrl, i), 1, 0, 8, buf, sizeof(buf)),
			     0);
	TAP_CHECK_EQ(log_count(" q1 ", "authenticated host " HOSTNQN), 2);
	TAP_CHECK_EQ(log_count(" q2 ", "authenticated host " HOSTNQN), 2);
	TAP_CHECK_EQ(log_count("authenticated host " HOSTNQN, "controller authenticated too"), 6);
	/* Polling again does not re-authenticate again. */
	TAP_CHECK_EQ(nvtcp_read(nvtcp_ctrl_io_queue(ctrl, 0), 1, 0, 8, buf, sizeof(buf)), 0);
	TAP_CHECK_EQ(log_count("authenticated host " HOSTNQN, "controller authenticated too"), 6);
	nvtcp_ctrl_disconnect(ctrl);
	ctrl = NULL;
}

static void test_wrong_key(void)
{
	struct nvtcp_ctrl_opts o = opts(wrong);
	struct nvtcp_ctrl *c = NULL;
	char err[256] = "";

	TAP_CHECK_EQ(nvtcp_ctrl_connect(&o, &c, err, sizeof(err)), -EKEYREJECTED);
	TAP_CHECK(strstr(err, "controller rejected our key") != NULL);
	TAP_CHECK(c == NULL);
	o = opts(key);
	o.dhchap_ctrl_secret = wrong;
	TAP_CHECK_EQ(nvtcp_ctrl_connect(&o, &c, err, sizeof(err)), -EKEYREJECTED);
	TAP_CHECK(strstr(err, "controller failed to authenticate itself") != NULL);
}

static void test_stop(void)
{
	if (tgt) {
		nvtcp_target_stop(tgt);
		pthread_join(tgt_thread, NULL);
		nvtcp_target_destroy(tgt);
	}
	fflush(stderr);
	if (saved_stderr >= 0) {
		dup2(saved_stderr, STDERR_FILENO);
		close(saved_stderr);
	}
	fclose(log_file);
	unlink(log_path);
	unlink(cfg_path);
}

int main(void)
{
	TAP_RUN(test_start);
	TAP_RUN(test_connect_and_io);
	TAP_RUN(test_reauthenticate);
	TAP_RUN(test_wrong_key);
	TAP_RUN(test_stop);
	return tap_done();
}
