/* JSON configuration (json-c): ports, subsystems, allowed hosts and namespaces, in a format
 * modeled on nvmetcli's saveconfig.json (docs/config.md). Every error names the file and the
 * JSON path of the offending value; unknown keys are errors. The built-in default is a JSON
 * text parsed by the same code.
 * Layer: target (core). Configuration time only, main thread. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "core.h"
#include "tls_keys.h"

#define CFG_MAX_FILE (16u << 20)
#define CFG_NQN_MAX  223
#define CFG_PATH_MAX 160

static const char cfg_default_json[] =
	"{\"ports\": [{\"addr\": \"127.0.0.1\", \"port\": 4420},"
	"            {\"addr\": \"127.0.0.1\", \"port\": 8009}],"
	" \"subsystems\": [{\"nqn\": \"nqn.2024-01.io.nvtcp:mem0\", \"allow_any_host\": true,"
	"                   \"namespaces\": [{\"nsid\": 1, \"backend\": \"memory\","
	"                                     \"size\": \"1G\"}]}]}";

struct cfg {
	struct tgt *t;
	const char *name;
	bool open_backends;
	char *err;
	size_t errlen;
};

static int cfg_err(struct cfg *c, const char *path, const char *fmt, ...) PRINTF_FMT(3, 4);
static int cfg_err(struct cfg *c, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->errlen)
		snprintf(c->err, c->errlen, "%s: %s%s%s", c->name, path, path[0] ? ": " : "", msg);
	return -EINVAL;
}

/* Reject keys not in allowed (NULL-terminated). */
static int cfg_check_keys(struct cfg *c, json_object *obj, const char *path,
			  const char *const *allowed)
{
	struct json_object_iterator it = json_object_iter_begin(obj);
	struct json_object_iterator end = json_object_iter_end(obj);

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *key = json_object_iter_peek_name(&it);
		bool ok = false;
		char list[256] = "";

		for (const char *const *a = allowed; *a; a++) {
			ok |= strcmp(*a, key) == 0;
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 a == allowed ? "" : ", ", *a);
		}
		if (!ok)
			return cfg_err(c, path, "unknown key \"%s\" (expected one of: %s)", key,
				       list);
	}
	return 0;
}

/* Paths are for messages: a path cut at CFG_PATH_MAX is still useful, so truncation is fine
 * (the result is checked only to say so to the compiler). */
#define cfg_fmt(buf, ...)                                                     \
	do {                                                                  \
		if (snprintf(buf, CFG_PATH_MAX, __VA_ARGS__) >= CFG_PATH_MAX) \
			(buf)[CFG_PATH_MAX - 1] = '\0';                       \
	} while (0)

static void cfg_path(char *out, const char *base, const char *key)
{
	cfg_fmt(out, "%s%s%s", base, base[0] ? "." : "", key);
}

/* Member key of obj: 0 and *out, 1 if absent, < 0 on the wrong type. */
static int cfg_member(struct cfg *c, json_object *obj, const char *path, const char *key,
		      json_type type, const char *what, json_object **out)
{
	char p[CFG_PATH_MAX];

	if (!json_object_object_get_ex(obj, key, out) || !*out)
		return 1;
	if (!json_object_is_type(*out, type)) {
		cfg_path(p, path, key);
		return cfg_err(c, p, "expected %s", what);
	}
	return 0;
}

static int cfg_string(struct cfg *c, json_object *obj, const char *path, const char *key,
		      bool required, const char **out)
{
	json_object *v;
	int ret = cfg_member(c, obj, path, key, json_type_string, "a string", &v);
	char p[CFG_PATH_MAX];

	if (ret < 0)
		return ret;
	if (ret == 1) {
		if (!required)
			return 1;
		return cfg_err(c, path, "missing required key \"%s\"", key);
	}
	*out = json_object_get_string(v);
	if (strlen(*out) != (size_t)json_object_get_string_len(v)) {
		cfg_path(p, path, key);
		return cfg_err(c, p, "string contains a NUL byte");
	}
	return 0;
}

static int cfg_bool(struct cfg *c, json_object *obj, const char *path, const char *key, bool *out)
{
	json_object *v;
	int ret = cfg_member(c, obj, path, key, json_type_boolean, "true or false", &v);

	if (ret == 0)
		*out = json_object_get_boolean(v);
	return ret < 0 ? ret : 0;
}

/* Integer in [min, max]; 1 if absent and not required. */
static int cfg_uint(struct cfg *c, json_object *obj, const char *path, const char *key,
		    bool required, uint64_t min, uint64_t max, uint64_t *out)
{
	json_object *v;
	char p[CFG_PATH_MAX];
	int64_t n;
	int ret;

	cfg_path(p, path, key);
	ret = cfg_member(c, obj, path, key, json_type_int, "an integer", &v);
	if (ret < 0)
		return ret;
	if (ret == 1)
		return required ? cfg_err(c, path, "missing required key \"%s\"", key) : 1;
	n = json_object_get_int64(v);
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return cfg_err(c, p, "expected an integer from %" PRIu64 " to %" PRIu64, min, max);
	*out = (uint64_t)n;
	return 0;
}

/* "1G", "512M", "4KiB", "1048576" or a JSON integer: bytes. */
static int cfg_size(struct cfg *c, json_object *obj, const char *path, const char *key,
		    uint64_t *out)
{
	static const char expected[] = "expected a size like \"1G\" or a number of bytes";
	json_object *v;
	char p[CFG_PATH_MAX];
	const char *s;
	char *end;
	uint64_t n, mult = 1;

	cfg_path(p, path, key);
	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return 1;
	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) <= 0)
			return cfg_err(c, p, "%s", expected);
		*out = (uint64_t)json_object_get_int64(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return cfg_err(c, p, "%s", expected);
	s = json_object_get_string(v);
	if (*s < '0' || *s > '9')
		return cfg_err(c, p, "%s", expected);
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno)
		return cfg_err(c, p, "%s", expected);
	switch (*end) {
	case 'K':
	case 'k':
		mult = 1ull << 10;
		end++;
		break;
	case 'M':
	case 'm':
		mult = 1ull << 20;
		end++;
		break;
	case 'G':
	case 'g':
		mult = 1ull << 30;
		end++;
		break;
	case 'T':
	case 't':
		mult = 1ull << 40;
		end++;
		break;
	case 'P':
	case 'p':
		mult = 1ull << 50;
		end++;
		break;
	default:
		break;
	}
	if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	if (*end || n == 0 || n > UINT64_MAX / mult)
		return cfg_err(c, p, "%s", expected);
	*out = n * mult;
	return 0;
}

static int cfg_hex(const char *s, uint8_t *out, size_t n, bool dashes_as_uuid)
{
	static const int uuid_dash[] = {8, 13, 18, 23};
	size_t len = strlen(s), pos = 0, d = 0;

	if (len != (dashes_as_uuid ? 36 : n * 2))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (dashes_as_uuid && d < 4 && (int)pos == uuid_dash[d]) {
			if (s[pos] != '-')
				return -EINVAL;
			pos++;
			d++;
		}
		if (sscanf(s + pos, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", s[pos]) ||
		    !strchr("0123456789abcdefABCDEF", s[pos + 1]))
			return -EINVAL;
		out[i] = (uint8_t)v;
		pos += 2;
	}
	return 0;
}

static bool cfg_nqn_valid(const char *nqn)
{
	size_t len = strlen(nqn);

	if (len > CFG_NQN_MAX || strncmp(nqn, "nqn.", 4) != 0 || len == 4)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (nqn[i] <= ' ' || nqn[i] > '~')
			return false;
	}
	return true;
}

static bool cfg_ascii(const char *s)
{
	for (; *s; s++) {
		if (*s < ' ' || *s > '~')
			return false;
	}
	return true;
}

/* ---- namespaces ------------------------------------------------------------------------- */

/* "inject": {"op": "write", "errno": "EIO", "count": 3}: the namespace's backend fails the
 * next count bios of that op (for fault tests; see nvtcp_backend_inject_error). Returns 0 and
 * fills mask/count/status, 1 if absent, or < 0 on an error. */
static int cfg_inject(struct cfg *c, json_object *obj, const char *path, unsigned *mask,
		      unsigned *count, int *status)
{
	static const char *const keys[] = {"op", "errno", "count", NULL};
	static const struct {
		const char *name;
		unsigned mask;
	} ops[] = {
		{"read", 1u << NVTCP_BIO_READ},
		{"write", 1u << NVTCP_BIO_WRITE},
		{"flush", 1u << NVTCP_BIO_FLUSH},
		{"write_zeroes", 1u << NVTCP_BIO_WRITE_ZEROES},
		{"discard", 1u << NVTCP_BIO_DISCARD},
		{"any", (1u << NVTCP_BIO_OP_COUNT) - 1},
	};
	static const struct {
		const char *name;
		int err;
	} errs[] = {{"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EROFS", EROFS}, {"ENOMEM", ENOMEM}};
	json_object *v;
	const char *op, *err = "EIO";
	char p[CFG_PATH_MAX], q[CFG_PATH_MAX];
	uint64_t n = 1;
	int ret = cfg_member(c, obj, path, "inject", json_type_object, "an object", &v);
	size_t i;

	if (ret)
		return ret;
	cfg_path(p, path, "inject");
	if ((ret = cfg_check_keys(c, v, p, keys)) < 0)
		return ret;
	if ((ret = cfg_string(c, v, p, "op", true, &op)) < 0)
		return ret;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]) && strcmp(op, ops[i].name); i++)
		;
	if (i == sizeof(ops) / sizeof(ops[0])) {
		cfg_path(q, p, "op");
		return cfg_err(c, q, "expected read, write, flush, write_zeroes, discard or any");
	}
	*mask = ops[i].mask;
	if ((ret = cfg_string(c, v, p, "errno", false, &err)) < 0)
		return ret;
	for (i = 0; i < sizeof(errs) / sizeof(errs[0]) && strcmp(err, errs[i].name); i++)
		;
	if (i == sizeof(errs) / sizeof(errs[0])) {
		cfg_path(q, p, "errno");
		return cfg_err(c, q, "expected EIO, ENOSPC, EROFS or ENOMEM");
	}
	*status = -errs[i].err;
	if ((ret = cfg_uint(c, v, p, "count", false, 1, 1u << 30, &n)) < 0)
		return ret;
	*count = (unsigned)n;
	return 0;
}

static int cfg_namespace(struct cfg *c, struct tgt_subsys *s, json_object *obj, const char *path)
{
	static const char *const keys[] = {"nsid",	 "backend",  "path",  "size",
					   "block_size", "readonly", "nguid", "uuid",
					   "eui64",	 "inject",   NULL};
	struct nvtcp_backend_conf conf = {0};
	struct nvtcp_backend *be = NULL;
	const char *type_name, *file = NULL, *id;
	uint64_t nsid, size = 0, bs = 0;
	char p[CFG_PATH_MAX], berr[256];
	uint8_t nguid[16], uuid[16], eui64[8] = {0};
	bool has_nguid = false, has_uuid = false, readonly = false;
	unsigned inj_mask = 0, inj_count = 0;
	int inj_status = 0;
	struct tgt_ns *ns;
	int ret;

	if (!json_object_is_type(obj, json_type_object))
		return cfg_err(c, path, "expected an object");
	if ((ret = cfg_check_keys(c, obj, path, keys)) < 0)
		return ret;
	if ((ret = cfg_uint(c, obj, path, "nsid", true, 1, TGT_MAX_NSID, &nsid)) < 0)
		return ret;
	if (tgt_subsys_ns(s, (uint32_t)nsid)) {
		cfg_path(p, path, "nsid");
		return cfg_err(c, p, "duplicate nsid %" PRIu64, nsid);
	}
	if ((ret = cfg_string(c, obj, path, "backend", true, &type_name)) < 0)
		return ret;
	if (nvtcp_backend_type_parse(type_name, &conf.type) < 0) {
		cfg_path(p, path, "backend");
		return cfg_err(c, p,
			       "unknown backend \"%s\" (expected memory, file, block or null)",
			       type_name);
	}
	if ((ret = cfg_string(c, obj, path, "path", false, &file)) < 0)
		return ret;
	cfg_path(p, path, "path");
	if ((conf.type == NVTCP_BACKEND_FILE || conf.type == NVTCP_BACKEND_BLOCK) && !file)
		return cfg_err(c, path, "missing required key \"path\" for backend \"%s\"",
			       type_name);
	if ((conf.type == NVTCP_BACKEND_MEMORY || conf.type == NVTCP_BACKEND_NULL) && file)
		return cfg_err(c, p, "not used by backend \"%s\"", type_name);
	if (file && !file[0])
		return cfg_err(c, p, "expected a file or device path");
	if ((ret = cfg_size(c, obj, path, "size", &size)) < 0)
		return ret;
	if (ret == 1 && (conf.type == NVTCP_BACKEND_MEMORY || conf.type == NVTCP_BACKEND_NULL))
		return cfg_err(c, path, "missing required key \"size\" for backend \"%s\"",
			       type_name);
	if (ret == 0 && conf.type == NVTCP_BACKEND_BLOCK) {
		cfg_path(p, path, "size");
		return cfg_err(c, p, "a block device has its own size");
	}
	if ((ret = cfg_uint(c, obj, path, "block_size", false, 0, 4096, &bs)) < 0)
		return ret;
	if (ret == 0 && bs != 512 && bs != 4096) {
		cfg_path(p, path, "block_size");
		return cfg_err(c, p, "expected 512 or 4096");
	}
	if (size && size % (bs ? bs : 512)) {
		cfg_path(p, path, "size");
		return cfg_err(c, p,
			       "%" PRIu64 " bytes is not a multiple of the block size %" PRIu64,
			       size, bs ? bs : 512);
	}
	if ((ret = cfg_bool(c, obj, path, "readonly", &readonly)) < 0)
		return ret;
	if ((ret = cfg_string(c, obj, path, "nguid", false, &id)) < 0)
		return ret;
	if (ret == 0) {
		cfg_path(p, path, "nguid");
		if (cfg_hex(id, nguid, 16, false) < 0)
			return cfg_err(c, p, "expected 32 hexadecimal digits");
		has_nguid = true;
	}
	if ((ret = cfg_string(c, obj, path, "uuid", false, &id)) < 0)
		return ret;
	if (ret == 0) {
		cfg_path(p, path, "uuid");
		if (cfg_hex(id, uuid, 16, true) < 0)
			return cfg_err(c, p,
				       "expected a UUID like "
				       "\"0f7c1e2a-8d3b-4c5e-9a6f-112233445566\"");
		has_uuid = true;
	}
	if ((ret = cfg_string(c, obj, path, "eui64", false, &id)) < 0)
		return ret;
	if (ret == 0) {
		cfg_path(p, path, "eui64");
		if (cfg_hex(id, eui64, 8, false) < 0)
			return cfg_err(c, p, "expected 16 hexadecimal digits");
	}
	if ((ret = cfg_inject(c, obj, path, &inj_mask, &inj_count, &inj_status)) < 0)
		return ret;

	conf.path = file;
	conf.size = size;
	conf.block_size = (uint32_t)bs;
	conf.readonly = readonly;
	if (c->open_backends) {
		berr[0] = '\0';
		ret = nvtcp_backend_open(&conf, &be, berr, sizeof(berr));
		if (ret < 0)
			return cfg_err(c, path, "cannot open the %s backend: %s", type_name,
				       berr[0] ? berr : strerror(-ret));
		size = nvtcp_backend_size(be);
		bs = nvtcp_backend_block_size(be);
		if (inj_count)
			nvtcp_backend_inject_error(be, inj_mask, inj_count, inj_status);
	} else if (!bs) {
		bs = 512;
	}
	ret = tgt_subsys_add_ns(s, (uint32_t)nsid, be, (uint32_t)bs, size, &ns);
	if (ret < 0) {
		if (be)
			nvtcp_backend_close(be);
		return cfg_err(c, path, "cannot add the namespace: %s", strerror(-ret));
	}
	if (has_nguid)
		memcpy(ns->nguid, nguid, 16);
	if (has_uuid)
		memcpy(ns->uuid, uuid, 16);
	memcpy(ns->eui64, eui64, 8);
	return 0;
}

/* ---- subsystems ------------------------------------------------------------------------- */

/* A DH-HMAC-CHAP secret: parsed now so a typo stops the daemon; the message never shows it. */
static int cfg_dhchap_secret(struct cfg *c, json_object *obj, const char *path, const char *key,
			     char **out)
{
	struct dhchap_key k;
	const char *secret;
	char p[CFG_PATH_MAX];
	int ret = cfg_string(c, obj, path, key, false, &secret);

	if (ret)
		return ret < 0 ? ret : 0;
	cfg_path(p, path, key);
	ret = dhchap_key_parse(secret, &k);
	explicit_bzero(&k, sizeof(k));
	if (ret == -EBADMSG)
		return cfg_err(c, p, "the secret's CRC does not match (mistyped?)");
	if (ret)
		return cfg_err(c, p,
			       "expected a secret \"DHHC-1:hh:<base64 of a 32, 48 or 64-byte key "
			       "and its CRC-32>:\" with hh 00 to 03 (nvme gen-dhchap-key)");
	*out = strdup(secret);
	return *out ? 0 : cfg_err(c, p, "out of memory");
}

/* TLS PSK of a host: "psk" (interchange string) or "psk_file" (tls_keys.c checks the file is
 * private); a bad key stops the daemon, the message never shows it. */
static int cfg_tls_psk(struct cfg *c, json_object *obj, const char *path, struct tgt_host *host)
{
	const char *psk = NULL, *file = NULL;
	char p[CFG_PATH_MAX], msg[256];
	int ret;

	if ((ret = cfg_string(c, obj, path, "psk", false, &psk)) < 0 ||
	    (ret = cfg_string(c, obj, path, "psk_file", false, &file)) < 0)
		return ret;
	if (!psk && !file)
		return 0;
	cfg_path(p, path, psk ? "psk" : "psk_file");
	if (tgt_tls_host_set_psk(host, psk, file, msg, sizeof(msg)) < 0)
		return cfg_err(c, p, "%s", msg);
	return 0;
}

/* "dhchap_hashes" / "dhchap_dhgroups": a list of names, kept in order of preference. */
static int cfg_dhchap_list(struct cfg *c, json_object *obj, const char *path, const char *key,
			   bool groups, uint8_t *ids, uint8_t *nr)
{
	size_t max = groups ? DHCHAP_DHGROUP_COUNT : DHCHAP_HASH_COUNT - 1;
	json_object *arr;
	char p[CFG_PATH_MAX];
	int ret = cfg_member(c, obj, path, key, json_type_array, "an array of names", &arr);

	if (ret)
		return ret < 0 ? ret : 0;
	cfg_path(p, path, key);
	if (json_object_array_length(arr) == 0 || json_object_array_length(arr) > max)
		return cfg_err(c, p, "expected 1 to %zu names", max);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		const char *name =
			json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
		int id = groups ? dhchap_dhgroup_from_name(name) : dhchap_hash_from_name(name);

		if (id < 0)
			return cfg_err(c, p,
				       groups ? "\"%s\" is not a DH group (null, ffdhe2048, "
						"ffdhe3072, ffdhe4096, ffdhe6144, ffdhe8192)"
					      : "\"%s\" is not a hash (sha256, sha384, sha512)",
				       name);
		for (unsigned j = 0; j < *nr; j++) {
			if (ids[j] == id)
				return cfg_err(c, p, "\"%s\" is listed twice", name);
		}
		ids[(*nr)++] = (uint8_t)id;
	}
	return 0;
}

static int cfg_hosts(struct cfg *c, struct tgt_subsys *s, json_object *arr, const char *path)
{
	static const char *const keys[] = {"nqn", "dhchap_key", "dhchap_ctrl_key",
					   "psk", "psk_file",	NULL};
	size_t n = json_object_array_length(arr);

	for (size_t i = 0; i < n; i++) {
		json_object *h = json_object_array_get_idx(arr, i);
		char p[CFG_PATH_MAX], pn[CFG_PATH_MAX];
		struct tgt_host *host;
		struct list_head *pos;
		const char *nqn;
		int ret;

		cfg_fmt(p, "%s[%zu]", path, i);
		if (!json_object_is_type(h, json_type_object))
			return cfg_err(c, p, "expected an object like {\"nqn\": \"nqn....\"}");
		if ((ret = cfg_check_keys(c, h, p, keys)) < 0)
			return ret;
		if ((ret = cfg_string(c, h, p, "nqn", true, &nqn)) < 0)
			return ret;
		cfg_path(pn, p, "nqn");
		if (!cfg_nqn_valid(nqn))
			return cfg_err(c, pn,
				       "\"%s\" is not an NQN (\"nqn.\" followed by at most "
				       "219 printable characters)",
				       nqn);
		list_for_each (pos, &s->hosts) {
			if (strcmp(list_entry(pos, struct tgt_host, entry)->nqn, nqn) == 0)
				return cfg_err(c, pn, "duplicate host \"%s\"", nqn);
		}
		host = calloc(1, sizeof(*host));
		if (!host)
			return cfg_err(c, p, "out of memory");
		snprintf(host->nqn, sizeof(host->nqn), "%s", nqn);
		list_add_tail(&host->entry, &s->hosts);
		if ((ret = cfg_dhchap_secret(c, h, p, "dhchap_key", &host->dhchap_key)) < 0 ||
		    (ret = cfg_dhchap_secret(c, h, p, "dhchap_ctrl_key", &host->dhchap_ctrl_key)) <
			    0)
			return ret;
		if (host->dhchap_ctrl_key && !host->dhchap_key)
			return cfg_err(c, p,
				       "\"dhchap_ctrl_key\" needs a \"dhchap_key\": the controller "
				       "proves its key only to a host that authenticated");
		if ((ret = cfg_tls_psk(c, h, p, host)) < 0)
			return ret;
	}
	return 0;
}

static int cfg_subsystem(struct cfg *c, json_object *obj, const char *path)
{
	static const char *const keys[] = {
		"nqn",	 "serial",     "model",		"allow_any_host",
		"hosts", "namespaces", "dhchap_hashes", "dhchap_dhgroups",
		NULL};
	const char *nqn, *serial = NULL, *model = NULL;
	json_object *hosts = NULL, *nss = NULL;
	struct tgt_subsys *s;
	char p[CFG_PATH_MAX];
	bool any = false;
	int ret;

	if (!json_object_is_type(obj, json_type_object))
		return cfg_err(c, path, "expected an object");
	if ((ret = cfg_check_keys(c, obj, path, keys)) < 0)
		return ret;
	if ((ret = cfg_string(c, obj, path, "nqn", true, &nqn)) < 0)
		return ret;
	cfg_path(p, path, "nqn");
	if (!cfg_nqn_valid(nqn))
		return cfg_err(c, p,
			       "\"%s\" is not an NQN (\"nqn.\" followed by at most 219 "
			       "printable characters)",
			       nqn);
	if (strcmp(nqn, NVME_DISCOVERY_NQN) == 0)
		return cfg_err(c, p, "the discovery subsystem is built in");
	if (tgt_subsys_find(c->t, nqn))
		return cfg_err(c, p, "duplicate subsystem \"%s\"", nqn);
	if ((ret = cfg_string(c, obj, path, "serial", false, &serial)) < 0)
		return ret;
	cfg_path(p, path, "serial");
	if (serial && (strlen(serial) > 20 || !serial[0] || !cfg_ascii(serial)))
		return cfg_err(c, p, "expected 1 to 20 printable ASCII characters");
	if ((ret = cfg_string(c, obj, path, "model", false, &model)) < 0)
		return ret;
	cfg_path(p, path, "model");
	if (model && (strlen(model) > 40 || !model[0] || !cfg_ascii(model)))
		return cfg_err(c, p, "expected 1 to 40 printable ASCII characters");
	if ((ret = cfg_bool(c, obj, path, "allow_any_host", &any)) < 0)
		return ret;
	if ((ret = cfg_member(c, obj, path, "hosts", json_type_array, "an array", &hosts)) < 0)
		return ret;
	if ((ret = cfg_member(c, obj, path, "namespaces", json_type_array, "an array", &nss)) < 0)
		return ret;
	if (!any && (!hosts || json_object_array_length(hosts) == 0))
		return cfg_err(c, path,
			       "no host may connect: set \"allow_any_host\": true or list "
			       "\"hosts\"");

	s = tgt_subsys_alloc(nqn);
	if (!s)
		return cfg_err(c, path, "out of memory");
	s->allow_any_host = any;
	if (serial) {
		snprintf(s->serial, sizeof(s->serial), "%s", serial);
	} else {
		uint8_t a[16], b[16];

		tgt_ns_derive_ids(nqn, 0, a, b);
		for (int i = 0; i < 10; i++)
			snprintf(s->serial + 2 * i, 3, "%02x", a[i]);
	}
	snprintf(s->model, sizeof(s->model), "%s", model ? model : TGT_DEFAULT_MODEL);
	/* Listed now so tgt_fini frees it whatever fails below. */
	list_add_tail(&s->entry, &c->t->subsystems);

	if ((ret = cfg_dhchap_list(c, obj, path, "dhchap_hashes", false,
				   tgt_core_subsys(s)->dhchap_hashes,
				   &tgt_core_subsys(s)->nr_dhchap_hashes)) < 0 ||
	    (ret = cfg_dhchap_list(c, obj, path, "dhchap_dhgroups", true,
				   tgt_core_subsys(s)->dhchap_dhgroups,
				   &tgt_core_subsys(s)->nr_dhchap_dhgroups)) < 0)
		return ret;
	if (hosts) {
		cfg_path(p, path, "hosts");
		if ((ret = cfg_hosts(c, s, hosts, p)) < 0)
			return ret;
	}
	if (nss) {
		size_t n = json_object_array_length(nss);

		for (size_t i = 0; i < n; i++) {
			cfg_fmt(p, "%s.namespaces[%zu]", path, i);
			if ((ret = cfg_namespace(c, s, json_object_array_get_idx(nss, i), p)) < 0)
				return ret;
		}
	}
	return 0;
}

/* ---- ports ------------------------------------------------------------------------------ */

static int cfg_port(struct cfg *c, json_object *obj, const char *path)
{
	static const char *const keys[] = {"addr", "port", "secure", NULL};
	static const char *const secure_names[TGT_SECURE_COUNT] = {"none", "optional", "required"};
	const char *addr, *secure = "none";
	uint64_t port = NVME_PORT_IO;
	char spec[128], perr[256], p[CFG_PATH_MAX];
	enum tgt_secure sec = TGT_SECURE_COUNT;
	struct tgt_port *tp;
	int ret;

	if (!json_object_is_type(obj, json_type_object))
		return cfg_err(c, path, "expected an object");
	if ((ret = cfg_check_keys(c, obj, path, keys)) < 0)
		return ret;
	if ((ret = cfg_string(c, obj, path, "addr", true, &addr)) < 0)
		return ret;
	if ((ret = cfg_uint(c, obj, path, "port", false, 1, 65535, &port)) < 0)
		return ret;
	if ((ret = cfg_string(c, obj, path, "secure", false, &secure)) < 0)
		return ret;
	for (int i = 0; i < TGT_SECURE_COUNT; i++) {
		if (strcmp(secure, secure_names[i]) == 0)
			sec = (enum tgt_secure)i;
	}
	if (sec == TGT_SECURE_COUNT) {
		cfg_path(p, path, "secure");
		return cfg_err(c, p, "expected \"none\", \"optional\" or \"required\"");
	}
	snprintf(spec, sizeof(spec), strchr(addr, ':') ? "[%.64s]:%" PRIu64 : "%.64s:%" PRIu64,
		 addr, port);
	ret = tgt_port_add(c->t, spec, perr, sizeof(perr));
	if (ret < 0) {
		cfg_path(p, path, ret == -EEXIST ? "port" : "addr");
		return cfg_err(c, p, "%s", perr);
	}
	tp = list_entry(c->t->ports.prev, struct tgt_port, entry);
	tp->secure = sec;
	return 0;
}

static int cfg_array(struct cfg *c, json_object *root, const char *key,
		     int (*fn)(struct cfg *, json_object *, const char *))
{
	json_object *arr;
	int ret = cfg_member(c, root, "", key, json_type_array, "an array", &arr);

	if (ret)
		return ret < 0 ? ret : 0;
	for (size_t i = 0, n = json_object_array_length(arr); i < n; i++) {
		char p[CFG_PATH_MAX];

		cfg_fmt(p, "%s[%zu]", key, i);
		if ((ret = fn(c, json_object_array_get_idx(arr, i), p)) < 0)
			return ret;
	}
	return 0;
}

int tgt_config_parse(struct tgt *t, const char *name, const char *buf, size_t len,
		     bool open_backends, char *err, size_t errlen)
{
	static const char *const keys[] = {"ports", "subsystems", NULL};
	struct cfg c = {
		.t = t, .name = name, .open_backends = open_backends, .err = err, .errlen = errlen};
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *root;
	int ret;

	if (len > INT32_MAX)
		return cfg_err(&c, "", "file too large");
	tok = json_tokener_new();
	if (!tok)
		return cfg_err(&c, "", "out of memory");
	root = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	if (!root || jerr != json_tokener_success || json_tokener_get_parse_end(tok) < len) {
		size_t end = MIN(json_tokener_get_parse_end(tok), len), line = 1, col = 1;
		bool trailing = root && jerr == json_tokener_success;

		for (size_t i = 0; i < end; i++, col++) {
			if (buf[i] == '\n') {
				line++;
				col = 0;
			}
		}
		/* Only whitespace may follow the document. */
		while (trailing && end < len && strchr(" \t\r\n", buf[end]))
			end++;
		if (trailing && end == len)
			goto parsed;
		json_object_put(root);
		json_tokener_free(tok);
		if (jerr == json_tokener_continue || (jerr == json_tokener_success && !trailing))
			return cfg_err(&c, "", "line %zu: unexpected end of JSON", line);
		return cfg_err(&c, "", "line %zu, column %zu: invalid JSON: %s", line, col,
			       trailing ? "text after the document"
					: json_tokener_error_desc(jerr));
	}
parsed:
	json_tokener_free(tok);
	if (!json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return cfg_err(&c, "", "expected a JSON object at the top level");
	}
	ret = cfg_check_keys(&c, root, "", keys);
	if (!ret)
		ret = cfg_array(&c, root, "ports", cfg_port);
	if (!ret)
		ret = cfg_array(&c, root, "subsystems", cfg_subsystem);
	json_object_put(root);
	return ret;
}

int tgt_config_load(struct tgt *t, const char *path, char *err, size_t errlen)
{
	FILE *f;
	char *buf;
	size_t len;
	int ret;

	if (!path)
		return tgt_config_parse(t, "built-in default", cfg_default_json,
					sizeof(cfg_default_json) - 1, true, err, errlen);
	f = fopen(path, "rb");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	buf = malloc(CFG_MAX_FILE + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	len = fread(buf, 1, CFG_MAX_FILE + 1, f);
	if (ferror(f) || len > CFG_MAX_FILE) {
		ret = ferror(f) ? -EIO : -EFBIG;
		snprintf(err, errlen, "%s: %s", path,
			 ret == -EIO ? "read error" : "larger than 16 MiB");
		fclose(f);
		free(buf);
		return ret;
	}
	fclose(f);
	ret = tgt_config_parse(t, path, buf, len, true, err, errlen);
	free(buf);
	if (ret == 0)
		log_info("%s: configuration loaded", path);
	return ret;
}
