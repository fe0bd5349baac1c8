/* Shared pieces of the nvtcp command-line tool: transport options, number parsing, errors.
 * Layer: tools (uses only include/nvtcp/). */
#include "cli_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_transport_opt(int opt, const char *arg, struct nvtcp_ctrl_opts *o, bool *json)
{
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
		o->reconnect_delay_ms = (unsigned)(cli_parse_seconds("reconnect-delay", arg) * 1000);
		if (!o->reconnect_delay_ms)
			o->reconnect_delay_ms = 1;
		return true;
	case CLI_OPT_JSON:
		if (json)
			*json = true;
		return true;
	default:
		return false;
	}
}

void cli_die(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "nvtcp %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
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
	return (uint64_t)v << shift;
}

struct nvtcp_ctrl *cli_connect(const char *cmd, struct nvtcp_ctrl_opts *o)
{
	struct nvtcp_ctrl *ctrl;
	char err[512];
	int r;

	if (!o->traddr)
		cli_die(cmd, "no target address: add -a ADDR (see 'nvtcp %s --help')", cmd);
	r = nvtcp_ctrl_connect(o, &ctrl, err, sizeof(err));
	if (r < 0)
		cli_die(cmd, "%s", err);
	return ctrl;
}
