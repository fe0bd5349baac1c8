/* Shared pieces of the nvtcp command-line tool: transport options, number parsing, errors.
 * Layer: tools (uses only include/nvtcp/). */
#include "cli_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The --tls-key-file key, held only until the library has parsed it: cli_connect() wipes it. */
static char cli_key_buf[256];

static void cli_key_wipe(void)
{
	explicit_bzero(cli_key_buf, sizeof(cli_key_buf));
}

void cli_forget_key(struct nvtcp_ctrl_opts *o)
{
	if (o->tls_psk == cli_key_buf) {
		cli_key_wipe();
		o->tls_psk = NULL;
	}
}

/* --tls-key-file: the key must stay private to its owner, as ssh insists for its keys. */
static const char *cli_read_key_file(const char *path)
{
	char *buf = cli_key_buf;
	struct stat st;
	size_t n;
	FILE *f = fopen(path, "re");

	if (!f)
		cli_die("tls-key-file", "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077))
		cli_die("tls-key-file", "%s must be owned by you with mode 0600 or 0400", path);
	setvbuf(f, NULL, _IONBF, 0); /* no copy of the key left in a stdio buffer */
	n = fread(buf, 1, sizeof(cli_key_buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* --dhchap-secret-file / --dhchap-ctrl-secret-file: owner-only, like the TLS key file; one
 * buffer per option (the secret stays referenced by the options). Trailing white space is
 * dropped. */
static const char *cli_read_secret_file(const char *what, const char *path, char *buf, size_t size)
{
	struct stat st;
	size_t n;
	FILE *f = fopen(path, "re");

	if (!f)
		cli_die(what, "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
		fclose(f);
		cli_die(what, "%s must be owned by you with mode 0600 or 0400 (it holds a secret)",
			path);
	}
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
			 buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	if (n == 0)
		cli_die(what, "%s is empty", path);
	return buf;
}

/* A timeout in seconds (decimals ok) as milliseconds, at least 10 ms (0 would mean the
 * default to the library). */
static unsigned cli_parse_timeout_ms(const char *what, const char *arg)
{
	double v = cli_parse_seconds(what, arg);

	if (v < 0.01)
		cli_die(what, "'%s': must be at least 0.01 s", arg);
	return (unsigned)(v * 1000 + 0.5);
}

bool cli_transport_opt(int opt, const char *arg, struct nvtcp_ctrl_opts *o, bool *json)
{
	static char host_secret[256], ctrl_secret[256];

	switch (opt) {
	case 'a':
		o->traddr = arg;
		return true;
	case 's':
		o->trsvcid = arg;
		return true;
	case 'n':
		o->subnqn = arg;
		return true;
	case CLI_OPT_HOSTNQN:
		o->hostnqn = arg;
		return true;
	case CLI_OPT_HDGST:
		o->hdr_digest = true;
		return true;
	case CLI_OPT_DDGST:
		o->data_digest = true;
		return true;
	case CLI_OPT_LOSS_TMO: {
		double v = cli_parse_seconds("ctrl-loss-tmo", arg);

		o->ctrl_loss_tmo_ms = v == 0 ? NVTCP_NO_RECONNECT : (int)(v * 1000 + 0.5);
		return true;
	}
	case CLI_OPT_RECONNECT_DELAY:
		o->reconnect_delay_ms =
			(unsigned)(cli_parse_seconds("reconnect-delay", arg) * 1000);
		if (!o->reconnect_delay_ms)
			o->reconnect_delay_ms = 1;
		return true;
	case CLI_OPT_TCP_CC:
		o->tcp_congestion = arg;
		return true;
	case CLI_OPT_JSON:
		if (json)
			*json = true;
		return true;
	case CLI_OPT_TLS:
		o->tls = true;
		return true;
	case CLI_OPT_TLS_KEY:
		o->tls = true;
		o->tls_psk = arg;
		return true;
	case CLI_OPT_TLS_KEY_FILE:
		o->tls = true;
		o->tls_psk = cli_read_key_file(arg);
		return true;
	case CLI_OPT_TLS_IDENTITY:
		if (strcmp(arg, "v0") == 0 || strcmp(arg, "0") == 0)
			o->tls_identity_version = 0;
		else if (strcmp(arg, "v1") == 0 || strcmp(arg, "1") == 0)
			o->tls_identity_version = 1;
		else
			cli_die("tls-identity", "expected v0 or v1, not \"%s\"", arg);
		return true;
	case CLI_OPT_DHCHAP_SECRET:
		o->dhchap_secret = arg;
		return true;
	case CLI_OPT_DHCHAP_SECRET_FILE:
		o->dhchap_secret = cli_read_secret_file("dhchap-secret-file", arg, host_secret,
							sizeof(host_secret));
		return true;
	case CLI_OPT_DHCHAP_CTRL_SECRET:
		o->dhchap_ctrl_secret = arg;
		return true;
	case CLI_OPT_DHCHAP_CTRL_SECRET_FILE:
		o->dhchap_ctrl_secret = cli_read_secret_file("dhchap-ctrl-secret-file", arg,
							     ctrl_secret, sizeof(ctrl_secret));
		return true;
	case CLI_OPT_DHCHAP_HASH:
		o->dhchap_hashes = arg;
		return true;
	case CLI_OPT_DHCHAP_DHGROUP:
		o->dhchap_dhgroups = arg;
		return true;
	case CLI_OPT_KATO:
		o->kato_ms = cli_parse_timeout_ms("kato", arg);
		return true;
	case CLI_OPT_IO_TIMEOUT:
		o->io_timeout_ms = cli_parse_timeout_ms("io-timeout", arg);
		return true;
	case CLI_OPT_CONNECT_TIMEOUT: {
		double v = cli_parse_seconds("connect-timeout", arg);

		o->connect_timeout_ms = v > 0 && v < 0.001 ? 1 : (unsigned)(v * 1000 + 0.5);
		return true;
	}
	default:
		return false;
	}
}

/* The controller cli_connect() made, disconnected by cli_die() before exiting. */
static struct nvtcp_ctrl *cli_ctrl;

void cli_die(const char *cmd, const char *fmt, ...)
{
	struct nvtcp_ctrl *ctrl = cli_ctrl;
	va_list ap;

	fprintf(stderr, "nvtcp %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cli_key_wipe();
	cli_ctrl = NULL;
	if (ctrl)
		nvtcp_ctrl_disconnect(ctrl);
	exit(1);
}

void cli_disconnect(struct nvtcp_ctrl *ctrl)
{
	if (ctrl == cli_ctrl)
		cli_ctrl = NULL;
	nvtcp_ctrl_disconnect(ctrl);
}

double cli_parse_seconds(const char *what, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 86400)
		cli_die(what, "'%s' is not a number of seconds between 0 and 86400", s);
	return v;
}

uint64_t cli_parse_u64(const char *what, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		cli_die(what, "'%s' is not a valid number", s);
	return v;
}

uint64_t cli_parse_size(const char *what, const char *s)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		cli_die(what, "'%s' is not a valid size", s);
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'b' || *end == 'B')
		end++;
	if (*end)
		cli_die(what, "'%s' is not a valid size (use e.g. 4096, 4k, 1m)", s);
	if (v > UINT64_MAX >> shift)
		cli_die(what, "'%s' is more than %" PRIu64 " bytes", s, (uint64_t)UINT64_MAX);
	return (uint64_t)v << shift;
}

uint64_t cli_parse_max(const char *cmd, const char *opt, const char *s, bool size, uint64_t max)
{
	uint64_t v = size ? cli_parse_size(cmd, s) : cli_parse_u64(cmd, s);

	if (v > max)
		cli_die(cmd, "%s: %" PRIu64 " is more than %" PRIu64, opt, v, max);
	return v;
}

struct nvtcp_ctrl *cli_connect(const char *cmd, struct nvtcp_ctrl_opts *o)
{
	struct nvtcp_ctrl *ctrl;
	char err[512];
	int r;

	if (!o->traddr)
		cli_die(cmd, "no target address: add -a ADDR (see 'nvtcp %s --help')", cmd);
	r = nvtcp_ctrl_connect(o, &ctrl, err, sizeof(err));
	cli_forget_key(o);
	if (r < 0)
		cli_die(cmd, "%s", err);
	cli_ctrl = ctrl;
	return ctrl;
}
