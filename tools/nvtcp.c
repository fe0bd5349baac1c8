/* nvtcp: command-line NVMe/TCP host. Subcommands discover, identify, read, write, perf, help.
 * Layer: tools (uses only include/nvtcp/host.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli_util.h"

static void usage_main(FILE *f)
{
	fprintf(f,
		"Usage: nvtcp COMMAND [OPTIONS]\n"
		"\n"
		"A user-space NVMe over TCP host.\n"
		"\n"
		"Commands:\n"
		"  discover   list the subsystems a discovery controller knows (log page 70h)\n"
		"  identify   show Identify Controller and Identify Namespace data\n"
		"  read       read logical blocks to a file or stdout\n"
		"  write      write logical blocks from a file or stdin\n"
		"  perf       measure IOPS, bandwidth and latency (like spdk_nvme_perf)\n"
		"  help [CMD] show this text or a command's manual\n"
		"\n"
		"Run 'nvtcp COMMAND --help' for a command's options.\n"
		"Examples:\n"
		"  nvtcp discover -a 127.0.0.1 -s 4420\n"
		"  nvtcp identify -a 127.0.0.1 -n nqn.2024-01.io.nvtcp:mem0 --nsid 1\n"
		"  nvtcp read -a 127.0.0.1 -n NQN --start-block 0 --block-count 8 > blocks.bin\n");
}

static void usage_discover(void)
{
	printf("NAME\n  nvtcp discover - read the Discovery Log Page of an NVMe/TCP target\n\n"
	       "SYNOPSIS\n  nvtcp discover -a ADDR [-s PORT] [-n NQN] [--hostnqn NQN]\n"
	       "                 [--hdr-digest] [--data-digest] [--json]\n\n"
	       "DESCRIPTION\n"
	       "  Connects to the discovery controller (NQN %s unless -n\n"
	       "  names another), reads log page 70h consistently (re-reading while its "
	       "generation\n"
	       "  counter changes) and prints one record per subsystem port.\n\n%s"
	       "  --json                print the records as JSON\n\n"
	       "EXIT STATUS\n  0 on success, 1 on any error (the message says what to check).\n",
	       NVTCP_DISCOVERY_NQN, CLI_TRANSPORT_HELP);
}

static void usage_identify(void)
{
	printf("NAME\n  nvtcp identify - show Identify Controller / Namespace data\n\n"
	       "SYNOPSIS\n  nvtcp identify -a ADDR [-s PORT] -n NQN [--nsid N] [--json] ...\n\n"
	       "DESCRIPTION\n"
	       "  Prints the Identify Controller structure field by field (as nvme id-ctrl does)\n"
	       "  and, with --nsid, the Identify Namespace structure (as nvme id-ns does). "
	       "Without\n"
	       "  -n the discovery controller is identified.\n\n%s"
	       "  -N, --nsid N          also identify namespace N (0 = controller only; default)\n"
	       "      --json            print JSON instead of text\n",
	       CLI_TRANSPORT_HELP);
}

static void usage_rw(const char *cmd)
{
	bool rd = strcmp(cmd, "read") == 0;

	printf("NAME\n  nvtcp %s - %s logical blocks\n\n"
	       "SYNOPSIS\n  nvtcp %s -a ADDR -n NQN --start-block SLBA --block-count N [--nsid N]\n"
	       "             [--data FILE|-]%s ...\n\n"
	       "DESCRIPTION\n"
	       "  %s\n"
	       "  The transfer is split at the controller's maximum transfer size.\n\n%s"
	       "  -N, --nsid N          namespace (default 1)\n"
	       "  -b, --start-block L   first logical block (default 0)\n"
	       "  -c, --block-count N   number of logical blocks (default 1)\n"
	       "  -d, --data FILE       %s (default '-': %s)\n"
	       "%s",
	       cmd, rd ? "read" : "write", cmd, rd ? "" : " [--fua]",
	       rd ? "Reads N blocks starting at SLBA and writes them to FILE or stdout."
		  : "Writes N blocks starting at SLBA from FILE or stdin; the input must hold\n"
		    "  exactly N * block size bytes.",
	       CLI_TRANSPORT_HELP, rd ? "where to put the data" : "where the data comes from",
	       rd ? "stdout" : "stdin", rd ? "" : "      --fua             Force Unit Access\n");
}

/* ---- discover ---------------------------------------------------------------------------- */

static const char *disc_subtype(uint8_t t)
{
	switch (t) {
	case 1:
		return "referral";
	case 2:
		return "nvme subsystem";
	case 3:
		return "current discovery subsystem";
	default:
		return "unknown";
	}
}

static int cmd_discover(int argc, char **argv)
{
	static const struct option lo[] = {CLI_TRANSPORT_LONGOPTS, {0}};
	struct nvtcp_ctrl_opts o = {0};
	struct nvtcp_disc_entry *e = NULL;
	size_t n = 0;
	uint64_t gen = 0;
	bool json = false;
	char err[512];
	int opt, r;

	while ((opt = getopt_long(argc, argv, "a:s:n:", lo, NULL)) != -1) {
		if (opt == CLI_OPT_HELP) {
			usage_discover();
			return 0;
		}
		if (!cli_transport_opt(opt, optarg, &o, &json))
			cli_die("discover", "unknown option; see 'nvtcp discover --help'");
	}
	if (!o.traddr)
		cli_die("discover", "no target address: add -a ADDR (e.g. -a 127.0.0.1)");
	r = nvtcp_discover(&o, &e, &n, &gen, err, sizeof(err));
	cli_forget_key(&o);
	if (r)
		cli_die("discover", "%s", err);
	if (json) {
		struct json_object *root = json_object_new_object(), *arr = json_object_new_array();

		json_object_object_add(root, "genctr", json_object_new_int64((int64_t)gen));
		for (size_t i = 0; i < n; i++) {
			struct json_object *j = json_object_new_object();

			json_object_object_add(
				j, "trtype",
				json_object_new_string(e[i].trtype == 3 ? "tcp" : "other"));
			json_object_object_add(
				j, "adrfam",
				json_object_new_string(e[i].adrfam == 2 ? "ipv6" : "ipv4"));
			json_object_object_add(j, "subtype",
					       json_object_new_string(disc_subtype(e[i].subtype)));
			json_object_object_add(j, "treq", json_object_new_int(e[i].treq));
			json_object_object_add(j, "portid", json_object_new_int(e[i].portid));
			json_object_object_add(j, "trsvcid", json_object_new_string(e[i].trsvcid));
			json_object_object_add(j, "subnqn", json_object_new_string(e[i].subnqn));
			json_object_object_add(j, "traddr", json_object_new_string(e[i].traddr));
			json_object_object_add(j, "sectype", json_object_new_int(e[i].sectype));
			json_object_array_add(arr, j);
		}
		json_object_object_add(root, "records", arr);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	} else {
		printf("Discovery Log Number of Records %zu, Generation counter %" PRIu64 "\n", n,
		       gen);
		for (size_t i = 0; i < n; i++) {
			printf("=====Discovery Log Entry %zu======\n", i);
			printf("trtype:  %s\n", e[i].trtype == 3 ? "tcp" : "other");
			printf("adrfam:  %s\n", e[i].adrfam == 2 ? "ipv6" : "ipv4");
			printf("subtype: %s\n", disc_subtype(e[i].subtype));
			printf("treq:    %#x\n", e[i].treq);
			printf("portid:  %u\n", e[i].portid);
			printf("trsvcid: %s\n", e[i].trsvcid);
			printf("subnqn:  %s\n", e[i].subnqn);
			printf("traddr:  %s\n", e[i].traddr);
			printf("sectype: %s\n", e[i].sectype == 0 ? "none" : "tls");
		}
	}
	free(e);
	return 0;
}

/* ---- identify ---------------------------------------------------------------------------- */

enum fld_kind { FLD_NUM, FLD_HEX, FLD_STR, FLD_VER };

struct fld {
	const char *name;
	uint16_t off, len;
	enum fld_kind kind;
};

static const struct fld id_ctrl_flds[] = {
	{"vid", 0, 2, FLD_HEX},		{"ssvid", 2, 2, FLD_HEX},     {"sn", 4, 20, FLD_STR},
	{"mn", 24, 40, FLD_STR},	{"fr", 64, 8, FLD_STR},	      {"rab", 72, 1, FLD_NUM},
	{"ieee", 73, 3, FLD_HEX},	{"cmic", 76, 1, FLD_HEX},     {"mdts", 77, 1, FLD_NUM},
	{"cntlid", 78, 2, FLD_HEX},	{"ver", 80, 4, FLD_VER},      {"rtd3r", 84, 4, FLD_HEX},
	{"rtd3e", 88, 4, FLD_HEX},	{"oaes", 92, 4, FLD_HEX},     {"ctratt", 96, 4, FLD_HEX},
	{"cntrltype", 111, 1, FLD_NUM}, {"oacs", 256, 2, FLD_HEX},    {"acl", 258, 1, FLD_NUM},
	{"aerl", 259, 1, FLD_NUM},	{"frmw", 260, 1, FLD_HEX},    {"lpa", 261, 1, FLD_HEX},
	{"elpe", 262, 1, FLD_NUM},	{"npss", 263, 1, FLD_NUM},    {"kas", 320, 2, FLD_NUM},
	{"sqes", 512, 1, FLD_HEX},	{"cqes", 513, 1, FLD_HEX},    {"maxcmd", 514, 2, FLD_NUM},
	{"nn", 516, 4, FLD_NUM},	{"oncs", 520, 2, FLD_HEX},    {"fuses", 522, 2, FLD_HEX},
	{"fna", 524, 1, FLD_HEX},	{"vwc", 525, 1, FLD_HEX},     {"awun", 526, 2, FLD_NUM},
	{"awupf", 528, 2, FLD_NUM},	{"sgls", 536, 4, FLD_HEX},    {"mnan", 540, 4, FLD_NUM},
	{"subnqn", 768, 256, FLD_STR},	{"ioccsz", 1792, 4, FLD_NUM}, {"iorcsz", 1796, 4, FLD_NUM},
	{"icdoff", 1800, 2, FLD_NUM},	{"fcatt", 1802, 1, FLD_HEX},  {"msdbd", 1803, 1, FLD_NUM},
	{"ofcs", 1804, 2, FLD_HEX},
};

static const struct fld id_ns_flds[] = {
	{"nsze", 0, 8, FLD_NUM},       {"ncap", 8, 8, FLD_NUM},	     {"nuse", 16, 8, FLD_NUM},
	{"nsfeat", 24, 1, FLD_HEX},    {"nlbaf", 25, 1, FLD_NUM},    {"flbas", 26, 1, FLD_HEX},
	{"mc", 27, 1, FLD_HEX},	       {"dpc", 28, 1, FLD_HEX},	     {"dps", 29, 1, FLD_HEX},
	{"nmic", 30, 1, FLD_HEX},      {"rescap", 31, 1, FLD_HEX},   {"fpi", 32, 1, FLD_HEX},
	{"dlfeat", 33, 1, FLD_NUM},    {"nawun", 34, 2, FLD_NUM},    {"nawupf", 36, 2, FLD_NUM},
	{"nacwu", 38, 2, FLD_NUM},     {"noiob", 46, 2, FLD_NUM},    {"npwg", 64, 2, FLD_NUM},
	{"npwa", 66, 2, FLD_NUM},      {"npdg", 68, 2, FLD_NUM},     {"npda", 70, 2, FLD_NUM},
	{"nows", 72, 2, FLD_NUM},      {"anagrpid", 92, 4, FLD_NUM}, {"nsattr", 99, 1, FLD_NUM},
	{"nvmsetid", 100, 2, FLD_NUM}, {"endgid", 102, 2, FLD_NUM},  {"nguid", 104, 16, FLD_HEX},
	{"eui64", 120, 8, FLD_HEX},
};

static uint64_t fld_num(const uint8_t *p, unsigned len)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < len && i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Render a field as text: numbers decimal, HEX little-endian numbers as 0x.., byte strings
 * (ieee, nguid, eui64) as hex digits in wire order, strings trimmed. */
static void fld_text(const struct fld *f, const uint8_t *base, char *out, size_t len)
{
	const uint8_t *p = base + f->off;

	switch (f->kind) {
	case FLD_NUM:
		snprintf(out, len, "%" PRIu64, fld_num(p, f->len));
		break;
	case FLD_HEX:
		if (f->len <= 8 && strcmp(f->name, "eui64") != 0) {
			snprintf(out, len, "%#" PRIx64, fld_num(p, f->len));
		} else {
			size_t o = 0;

			for (unsigned i = 0; i < f->len && o + 3 < len; i++)
				o += (size_t)snprintf(out + o, len - o, "%02x", p[i]);
		}
		break;
	case FLD_VER: {
		uint32_t v = (uint32_t)fld_num(p, 4);

		snprintf(out, len, "%u.%u.%u (%#x)", v >> 16, (v >> 8) & 0xff, v & 0xff, v);
		break;
	}
	case FLD_STR: {
		size_t n = 0;

		while (n < f->len && p[n])
			n++;
		while (n > 0 && p[n - 1] == ' ')
			n--;
		n = n < len - 1 ? n : len - 1;
		memcpy(out, p, n);
		out[n] = '\0';
		break;
	}
	}
}

static void print_struct(const char *title, const struct fld *flds, size_t nf, const uint8_t *buf,
			 struct json_object *json)
{
	char val[300];

	if (!json)
		printf("%s\n", title);
	for (size_t i = 0; i < nf; i++) {
		fld_text(&flds[i], buf, val, sizeof(val));
		if (json) {
			if (flds[i].kind == FLD_NUM)
				json_object_object_add(json, flds[i].name,
						       json_object_new_int64((int64_t)fld_num(
							       buf + flds[i].off, flds[i].len)));
			else
				json_object_object_add(json, flds[i].name,
						       json_object_new_string(val));
		} else {
			printf("%-10s: %s\n", flds[i].name, val);
		}
	}
}

static int cmd_identify(int argc, char **argv)
{
	static const struct option lo[] = {
		CLI_TRANSPORT_LONGOPTS, {"nsid", required_argument, NULL, 'N'}, {0}};
	struct nvtcp_ctrl_opts o = {0};
	struct json_object *root = NULL;
	struct nvtcp_ctrl *ctrl;
	uint8_t *buf;
	uint32_t nsid = 0;
	bool json = false;
	char msg[256];
	int opt, r;

	while ((opt = getopt_long(argc, argv, "a:s:n:N:", lo, NULL)) != -1) {
		if (opt == CLI_OPT_HELP) {
			usage_identify();
			return 0;
		}
		if (opt == 'N')
			nsid = (uint32_t)cli_parse_max("identify", "--nsid", optarg, false,
						       UINT32_MAX);
		else if (!cli_transport_opt(opt, optarg, &o, &json))
			cli_die("identify", "unknown option; see 'nvtcp identify --help'");
	}
	ctrl = cli_connect("identify", &o);
	buf = aligned_alloc(4096, 4096);
	if (!buf)
		cli_die("identify", "out of memory");
	r = nvtcp_identify_ctrl(ctrl, buf);
	if (r)
		cli_die("identify", "Identify Controller failed: %s",
			nvtcp_result_str(r, msg, sizeof(msg)));
	if (json) {
		root = json_object_new_object();
		struct json_object *jc = json_object_new_object();

		print_struct("", id_ctrl_flds, sizeof(id_ctrl_flds) / sizeof(id_ctrl_flds[0]), buf,
			     jc);
		json_object_object_add(root, "controller", jc);
	} else {
		print_struct("NVME Identify Controller:", id_ctrl_flds,
			     sizeof(id_ctrl_flds) / sizeof(id_ctrl_flds[0]), buf, NULL);
	}
	if (nsid) {
		r = nvtcp_identify_ns(ctrl, nsid, buf);
		if (r)
			cli_die("identify", "Identify Namespace %u failed: %s", nsid,
				nvtcp_result_str(r, msg, sizeof(msg)));
		if (fld_num(buf, 8) == 0)
			cli_die("identify",
				"namespace %u is not active on this controller (nn=%u): try "
				"--nsid 1",
				nsid, nvtcp_ctrl_get_info(ctrl)->nn);
		struct json_object *jn = json ? json_object_new_object() : NULL;

		if (!json)
			printf("\n");
		snprintf(msg, sizeof(msg), "NVME Identify Namespace %u:", nsid);
		print_struct(msg, id_ns_flds, sizeof(id_ns_flds) / sizeof(id_ns_flds[0]), buf, jn);
		unsigned nlbaf = buf[25], cur = buf[26] & 0xf;
		struct json_object *jl = json ? json_object_new_array() : NULL;

		for (unsigned i = 0; i <= nlbaf && i < 16; i++) {
			const uint8_t *l = buf + 128 + 4 * i;
			unsigned ms = l[0] | l[1] << 8;

			if (json) {
				struct json_object *e = json_object_new_object();

				json_object_object_add(e, "ms", json_object_new_int((int)ms));
				json_object_object_add(e, "ds", json_object_new_int(l[2]));
				json_object_object_add(e, "rp", json_object_new_int(l[3] & 3));
				json_object_array_add(jl, e);
			} else {
				printf("lbaf %2u : ms:%-3u lbads:%-2u rp:%#x %s\n", i, ms, l[2],
				       l[3] & 3, i == cur ? "(in use)" : "");
			}
		}
		if (json) {
			json_object_object_add(jn, "lbafs", jl);
			json_object_object_add(root, "namespace", jn);
		}
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	}
	free(buf);
	cli_disconnect(ctrl);
	return 0;
}

/* ---- read / write ------------------------------------------------------------------------ */

/* The data buffer, freed at exit too: cli_die() exits from the error paths. */
static uint8_t *rw_buf;

static void rw_free_buf(void)
{
	free(rw_buf);
	rw_buf = NULL;
}

/* Explain a failed read/write (NVMe status or transport error) and exit. */
static void rw_die(const char *cmd, int r, uint64_t slba, uint64_t nlb, uint32_t nsid,
		   const struct nvtcp_ns_info *ns) __attribute__((noreturn));
static void rw_die(const char *cmd, int r, uint64_t slba, uint64_t nlb, uint32_t nsid,
		   const struct nvtcp_ns_info *ns)
{
	char msg[256];

	nvtcp_result_str(r, msg, sizeof(msg));
	if (r > 0 && NVTCP_STATUS_SCT(r) == 0 && NVTCP_STATUS_SC(r) == 0x80)
		cli_die(cmd,
			"%s failed: %s: blocks %" PRIu64 "..%" PRIu64 " are beyond namespace %u "
			"(%" PRIu64 " blocks of %u bytes)",
			cmd, msg, slba, slba + nlb - 1, nsid, ns->nsze, ns->lba_size);
	cli_die(cmd, "%s failed: %s", cmd, msg);
}

static int cmd_rw(int argc, char **argv, bool is_write)
{
	static const struct option lo[] = {CLI_TRANSPORT_LONGOPTS,
					   {"nsid", required_argument, NULL, 'N'},
					   {"start-block", required_argument, NULL, 'b'},
					   {"block-count", required_argument, NULL, 'c'},
					   {"data", required_argument, NULL, 'd'},
					   {"fua", no_argument, NULL, 'F'},
					   {0}};
	const char *cmd = is_write ? "write" : "read";
	struct nvtcp_ctrl_opts o = {0};
	struct nvtcp_ns_info ns;
	struct nvtcp_ctrl *ctrl;
	const char *data = "-";
	uint32_t nsid = 1;
	uint64_t slba = 0, nlb = 1;
	unsigned flags = 0;
	size_t len, done = 0;
	uint8_t *buf;
	char msg[256];
	int opt, r, fd;

	while ((opt = getopt_long(argc, argv, "a:s:n:N:b:c:d:", lo, NULL)) != -1) {
		switch (opt) {
		case CLI_OPT_HELP:
			usage_rw(cmd);
			return 0;
		case 'N':
			nsid = (uint32_t)cli_parse_max(cmd, "--nsid", optarg, false, UINT32_MAX);
			break;
		case 'b':
			slba = cli_parse_u64(cmd, optarg);
			break;
		case 'c':
			nlb = cli_parse_max(cmd, "--block-count", optarg, false, UINT32_MAX);
			break;
		case 'd':
			data = optarg;
			break;
		case 'F':
			if (!is_write)
				cli_die(cmd, "--fua is only supported by write");
			flags |= NVTCP_IO_FUA;
			break;
		case CLI_OPT_JSON:
			cli_die(cmd, "--json is for discover, identify and perf; %s moves raw data",
				cmd);
		default:
			if (!cli_transport_opt(opt, optarg, &o, NULL))
				cli_die(cmd, "unknown option; see 'nvtcp %s --help'", cmd);
		}
	}
	if (nlb == 0 || nlb > UINT32_MAX)
		cli_die(cmd, "--block-count must be between 1 and %u", UINT32_MAX);
	if (!o.subnqn)
		cli_die(cmd, "no subsystem: add -n NQN (find it with 'nvtcp discover -a %s')",
			o.traddr ? o.traddr : "ADDR");
	o.nr_io_queues = 1;
	o.queue_size = 8;
	ctrl = cli_connect(cmd, &o);
	r = nvtcp_ns_get_info(ctrl, nsid, &ns);
	if (r)
		cli_die(cmd, "namespace %u: %s", nsid,
			r == -ENOENT ? "not active on this controller (try --nsid 1)"
				     : nvtcp_result_str(r, msg, sizeof(msg)));
	/* The range itself is the controller's to judge (its answer names the problem); only a
	 * count no namespace of this size could hold is refused before allocating for it. */
	if (nlb > ns.nsze)
		cli_die(cmd, "--block-count %" PRIu64 " exceeds namespace %u (%" PRIu64 " blocks)",
			nlb, nsid, ns.nsze);
	if (!nvtcp_ctrl_io_queue(ctrl, 0))
		cli_die(cmd, "the controller granted no I/O queue");
	len = (size_t)nlb * ns.lba_size;
	buf = rw_buf = aligned_alloc(4096, (len + 4095) / 4096 * 4096);
	atexit(rw_free_buf);
	if (!buf)
		cli_die(cmd, "cannot allocate %zu bytes", len);
	if (is_write) {
		fd = strcmp(data, "-") == 0 ? STDIN_FILENO : open(data, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			cli_die(cmd, "cannot open %s: %s", data, strerror(errno));
		while (done < len) {
			ssize_t n = read(fd, buf + done, len - done);

			if (n < 0)
				cli_die(cmd, "reading %s: %s", data, strerror(errno));
			if (n == 0)
				break;
			done += (size_t)n;
		}
		if (done != len)
			cli_die(cmd,
				"input has %zu bytes but %" PRIu64 " blocks of %u bytes need %zu",
				done, nlb, ns.lba_size, len);
		r = nvtcp_write(nvtcp_ctrl_io_queue(ctrl, 0), nsid, slba, (uint32_t)nlb, buf, len,
				flags);
		if (r)
			rw_die(cmd, r, slba, nlb, nsid, &ns);
	} else {
		r = nvtcp_read(nvtcp_ctrl_io_queue(ctrl, 0), nsid, slba, (uint32_t)nlb, buf, len);
		if (r)
			rw_die(cmd, r, slba, nlb, nsid, &ns);
		fd = strcmp(data, "-") == 0
			     ? STDOUT_FILENO
			     : open(data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			cli_die(cmd, "cannot create %s: %s", data, strerror(errno));
		while (done < len) {
			ssize_t n = write(fd, buf + done, len - done);

			if (n <= 0)
				cli_die(cmd, "writing %s: %s", data, strerror(errno));
			done += (size_t)n;
		}
	}
	if (fd > STDERR_FILENO)
		close(fd);
	rw_free_buf();
	cli_disconnect(ctrl);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "help";

	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		const char *what = argc > 2 ? argv[2] : NULL;

		if (!what)
			usage_main(stdout);
		else if (strcmp(what, "discover") == 0)
			usage_discover();
		else if (strcmp(what, "identify") == 0)
			usage_identify();
		else if (strcmp(what, "read") == 0 || strcmp(what, "write") == 0)
			usage_rw(what);
		else if (strcmp(what, "perf") == 0)
			perf_usage();
		else
			usage_main(stdout);
		return 0;
	}
	argc--;
	argv++;
	if (strcmp(cmd, "discover") == 0)
		return cmd_discover(argc, argv);
	if (strcmp(cmd, "identify") == 0)
		return cmd_identify(argc, argv);
	if (strcmp(cmd, "read") == 0)
		return cmd_rw(argc, argv, false);
	if (strcmp(cmd, "write") == 0)
		return cmd_rw(argc, argv, true);
	if (strcmp(cmd, "perf") == 0)
		return perf_main(argc, argv);
	fprintf(stderr, "nvtcp: unknown command '%s'\n\n", cmd);
	usage_main(stderr);
	return 1;
}
