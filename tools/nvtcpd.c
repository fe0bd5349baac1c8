/* nvtcpd: the nvtcp NVMe/TCP target daemon. Parses the command line, builds the target from a
 * JSON config (or the built-in default: one 1 GiB memory namespace), prints how to reach it with
 * nvme-cli, and runs until SIGINT/SIGTERM. Layer: tools; uses include/nvtcp/ only. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "nvtcp/target.h"

#define NVTCPD_MAX_LISTEN 32

static struct nvtcp_target *nvtcpd_target;

static void nvtcpd_usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [-c CONFIG.json] [--listen ADDR:PORT]... [--cores N] [--busy-poll]\n"
		"          [--cpu FIRST] [--max-connections N] [--io-timeout SECONDS]\n"
		"          [--tcp-congestion NAME] [--zero-copy-reads]\n"
		"          [--log-level error|warn|info|debug] [-h]\n"
		"\n"
		"  -c, --config FILE    JSON configuration (default: built-in, one 1 GiB memory\n"
		"                       namespace in nqn.2024-01.io.nvtcp:mem0 on 127.0.0.1:4420\n"
		"                       and discovery on 127.0.0.1:8009)\n"
		"  -l, --listen SPEC    listen on ADDR:PORT or [IPV6]:PORT instead of the "
		"configured\n"
		"                       ports (repeatable)\n"
		"  -n, --cores N        event loop threads (default 1)\n"
		"  -b, --busy-poll      spin instead of sleeping in epoll (lower latency, 100%% "
		"CPU)\n"
		"      --cpu FIRST      pin loop i to CPU FIRST + i\n"
		"      --max-connections N\n"
		"                       connections open at once, all queues (default %u); more\n"
		"                       are accepted and closed at once\n"
		"      --io-timeout S   close a connection whose PDU stays half-received, or\n"
		"                       whose host stops reading its responses, for S seconds\n"
		"                       (default 30)\n"
		"      --tcp-congestion NAME\n"
		"                       TCP congestion control of every connection (cubic, bbr,\n"
		"                       dctcp, reno, ...; default: "
		"net.ipv4.tcp_congestion_control)\n"
		"      --zero-copy-reads\n"
		"                       send Reads of 64 KiB or more from memory namespaces by\n"
		"                       reference (vmsplice + splice; no data digest, no TLS)\n"
		"  -L, --log-level L    error, warn, info (default) or debug\n"
		"  -h, --help           this help\n",
		argv0, NVTCP_TARGET_MAX_CONNECTIONS);
}

static void nvtcpd_on_signal(int sig)
{
	(void)sig;
	if (nvtcpd_target)
		nvtcp_target_stop(nvtcpd_target);
}

static int nvtcpd_parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* One fd per connection: let the soft limit go as high as the hard one allows, so the
 * connection limit, not RLIMIT_NOFILE (often 1024), is what bounds the target. */
static void nvtcpd_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		fprintf(stderr, "nvtcpd: cannot raise the open file limit: %s\n", strerror(errno));
}

/* "0.0.0.0" and "::" accept anything; nvme-cli on this machine reaches them on loopback. */
static const char *nvtcpd_reach_addr(const char *addr)
{
	if (strcmp(addr, "0.0.0.0") == 0)
		return "127.0.0.1";
	if (strcmp(addr, "::") == 0)
		return "::1";
	return addr;
}

static void nvtcpd_print_hints(struct nvtcp_target *t)
{
	char addr[64], io_addr[64] = "";
	unsigned port, io_port = 0;
	const char *nqn;

	for (unsigned i = 0; nvtcp_target_listener(t, i, addr, sizeof(addr), &port) == 0; i++) {
		printf("nvtcpd: listening on %s port %u\n", addr, port);
		/* prefer a non-discovery port for the connect hint */
		if (!io_port || (io_port == 8009 && port != 8009)) {
			snprintf(io_addr, sizeof(io_addr), "%s", nvtcpd_reach_addr(addr));
			io_port = port;
		}
	}
	for (unsigned i = 0; nvtcp_target_listener(t, i, addr, sizeof(addr), &port) == 0; i++)
		printf("  discover: nvme discover -t tcp -a %s -s %u\n", nvtcpd_reach_addr(addr),
		       port);
	for (unsigned i = 0; (nqn = nvtcp_target_subsystem_nqn(t, i)) != NULL; i++)
		printf("  connect:  nvme connect -t tcp -a %s -s %u -n %s\n", io_addr, io_port,
		       nqn);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"cores", required_argument, NULL, 'n'},
		{"busy-poll", no_argument, NULL, 'b'},
		{"cpu", required_argument, NULL, 'C'},
		{"log-level", required_argument, NULL, 'L'},
		{"max-connections", required_argument, NULL, 'M'},
		{"io-timeout", required_argument, NULL, 'T'},
		{"tcp-congestion", required_argument, NULL, 'G'},
		{"zero-copy-reads", no_argument, NULL, 'Z'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *listen[NVTCPD_MAX_LISTEN];
	struct nvtcp_target_opts opts = {.first_cpu = -1};
	struct sigaction sa = {0};
	char err[512] = "";
	unsigned v;
	int c, ret;

	while ((c = getopt_long(argc, argv, "c:l:n:bL:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opts.config_path = optarg;
			break;
		case 'l':
			if (opts.nlisten == NVTCPD_MAX_LISTEN) {
				fprintf(stderr, "nvtcpd: at most %d --listen\n", NVTCPD_MAX_LISTEN);
				return 2;
			}
			listen[opts.nlisten++] = optarg;
			break;
		case 'n':
			if (nvtcpd_parse_uint(optarg, 64, &v) < 0 || v == 0) {
				fprintf(stderr, "nvtcpd: --cores: expected 1..64, got \"%s\"\n",
					optarg);
				return 2;
			}
			opts.cores = v;
			break;
		case 'b':
			opts.busy_poll = true;
			break;
		case 'C':
			if (nvtcpd_parse_uint(optarg, 4095, &v) < 0) {
				fprintf(stderr,
					"nvtcpd: --cpu: expected a CPU number, got \"%s\"\n",
					optarg);
				return 2;
			}
			opts.first_cpu = (int)v;
			break;
		case 'M':
			if (nvtcpd_parse_uint(optarg, 1u << 20, &v) < 0 || v == 0) {
				fprintf(stderr,
					"nvtcpd: --max-connections: expected 1..1048576, got "
					"\"%s\"\n",
					optarg);
				return 2;
			}
			opts.max_connections = v;
			break;
		case 'T':
			if (nvtcpd_parse_uint(optarg, 3600, &v) < 0 || v == 0) {
				fprintf(stderr,
					"nvtcpd: --io-timeout: expected 1..3600 seconds, got "
					"\"%s\"\n",
					optarg);
				return 2;
			}
			opts.io_timeout_ms = v * 1000;
			break;
		case 'G':
			opts.tcp_congestion = optarg;
			break;
		case 'Z':
			opts.zero_copy_reads = true;
			break;
		case 'L':
			if (nvtcp_target_set_log_level(optarg) < 0) {
				fprintf(stderr,
					"nvtcpd: --log-level: expected error, warn, info or "
					"debug, got \"%s\"\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			nvtcpd_usage(stdout, argv[0]);
			return 0;
		default:
			nvtcpd_usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "nvtcpd: unexpected argument \"%s\"\n", argv[optind]);
		nvtcpd_usage(stderr, argv[0]);
		return 2;
	}
	opts.listen = listen;
	nvtcpd_raise_nofile();

	ret = nvtcp_target_create(&opts, &nvtcpd_target, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "nvtcpd: %s\n", err[0] ? err : strerror(-ret));
		return 1;
	}
	sa.sa_handler = nvtcpd_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	nvtcpd_print_hints(nvtcpd_target);

	ret = nvtcp_target_run(nvtcpd_target);
	{
		struct nvtcp_target *t = nvtcpd_target;

		/* a late signal must not reach a freed target */
		nvtcpd_target = NULL;
		nvtcp_target_destroy(t);
	}
	if (ret < 0) {
		fprintf(stderr, "nvtcpd: %s\n", strerror(-ret));
		return 1;
	}
	return 0;
}
