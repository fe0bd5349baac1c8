/* JSON configuration: a good file (loaded from disk, backends opened), the documented example
 * (validated without opening its backends), the built-in default, and one bad document per
 * error class with the message it must produce (file name, JSON path, what is wrong). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "target/core.h"

static const char good_json[] =
	"{\n"
	"  \"ports\": [{\"addr\": \"127.0.0.1\", \"port\": 4420, \"secure\": \"none\"},\n"
	"            {\"addr\": \"::1\", \"port\": 8009}],\n"
	"  \"subsystems\": [{\n"
	"    \"nqn\": \"nqn.2024-01.io.nvtcp:good\", \"serial\": \"S123\", \"model\": \"Model "
	"X\",\n"
	"    \"allow_any_host\": false,\n"
	"    \"hosts\": [{\"nqn\": \"nqn.2024-01.io.nvtcp:h1\"}, {\"nqn\": "
	"\"nqn.2024-01.io.nvtcp:h2\"}],\n"
	"    \"namespaces\": [\n"
	"      {\"nsid\": 2, \"backend\": \"memory\", \"size\": \"2M\", \"block_size\": 4096,\n"
	"       \"nguid\": \"00112233445566778899aabbccddeeff\",\n"
	"       \"uuid\": \"0f7c1e2a-8d3b-4c5e-9a6f-112233445566\", \"eui64\": "
	"\"0102030405060708\"},\n"
	"      {\"nsid\": 1, \"backend\": \"null\", \"size\": 1048576, \"readonly\": true},\n"
	"      {\"nsid\": 3, \"backend\": \"file\", \"path\": \"@FILE@\", \"size\": \"1MiB\"}\n"
	"    ]}]\n"
	"}\n";

static char tmpdir[] = "/tmp/nvtcp-test-config-XXXXXX";

static void test_good_file(void)
{
	char path[256], img[256], err[512] = "";
	char *text = NULL;
	struct tgt t;
	struct tgt_subsys *s;
	struct tgt_ns *ns;
	struct tgt_port *p;
	FILE *f;
	const char *at;

	snprintf(path, sizeof(path), "%s/good.json", tmpdir);
	snprintf(img, sizeof(img), "%s/disk.img", tmpdir);
	at = strstr(good_json, "@FILE@");
	if (asprintf(&text, "%.*s%s%s", (int)(at - good_json), good_json, img, at + 6) < 0)
		return;
	f = fopen(path, "w");
	TAP_CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
	free(text);

	TAP_CHECK_EQ(tgt_init(&t), 0);
	TAP_CHECK_EQ(tgt_config_load(&t, path, err, sizeof(err)), 0);
	if (err[0])
		printf("# %s\n", err);
	s = tgt_subsys_find(&t, "nqn.2024-01.io.nvtcp:good");
	TAP_CHECK(s != NULL);
	if (!s)
		goto out;
	TAP_CHECK(strcmp(s->serial, "S123") == 0 && strcmp(s->model, "Model X") == 0);
	TAP_CHECK(!s->allow_any_host);
	TAP_CHECK(tgt_subsys_host_allowed(s, "nqn.2024-01.io.nvtcp:h2"));
	TAP_CHECK(!tgt_subsys_host_allowed(s, "nqn.2024-01.io.nvtcp:h3"));
	/* Sorted by NSID whatever the file order. */
	ns = list_first_entry(&s->namespaces, struct tgt_ns, entry);
	TAP_CHECK_EQ(ns->nsid, 1);
	TAP_CHECK(nvtcp_backend_is_readonly(ns->backend));
	ns = tgt_subsys_ns(s, 2);
	TAP_CHECK(ns != NULL);
	if (ns) {
		TAP_CHECK_EQ(ns->block_size, 4096);
		TAP_CHECK_EQ(ns->nblocks, 512);
		TAP_CHECK_EQ(ns->nguid[0], 0x00);
		TAP_CHECK_EQ(ns->nguid[15], 0xff);
		TAP_CHECK_EQ(ns->uuid[0], 0x0f);
		TAP_CHECK_EQ(ns->uuid[15], 0x66);
		TAP_CHECK_EQ(ns->eui64[7], 0x08);
	}
	ns = tgt_subsys_ns(s, 3);
	TAP_CHECK(ns != NULL && ns->nblocks == 2048);
	TAP_CHECK(access(img, F_OK) == 0);
	p = list_first_entry(&t.ports, struct tgt_port, entry);
	TAP_CHECK(strcmp(p->traddr, "127.0.0.1") == 0 && strcmp(p->trsvcid, "4420") == 0);
	p = list_entry(t.ports.prev, struct tgt_port, entry);
	TAP_CHECK(p->adrfam == NVME_ADRFAM_IPV6 && strcmp(p->trsvcid, "8009") == 0);
out:
	tgt_fini(&t);
	unlink(img);
	unlink(path);
}

static void test_default(void)
{
	char err[512] = "";
	struct tgt t;
	struct tgt_subsys *s;
	struct tgt_ns *ns;

	TAP_CHECK_EQ(tgt_init(&t), 0);
	TAP_CHECK_EQ(tgt_config_load(&t, NULL, err, sizeof(err)), 0);
	s = tgt_subsys_find(&t, "nqn.2024-01.io.nvtcp:mem0");
	TAP_CHECK(s != NULL && s->allow_any_host);
	ns = s ? tgt_subsys_ns(s, 1) : NULL;
	TAP_CHECK(ns != NULL && ns->nblocks * ns->block_size == 1ull << 30);
	TAP_CHECK(s && strlen(s->serial) == 20);
	TAP_CHECK(tgt_subsys_find(&t, NVME_DISCOVERY_NQN) == t.discovery);
	TAP_CHECK_EQ(strcmp(list_entry(t.ports.prev, struct tgt_port, entry)->trsvcid, "8009"), 0);
	tgt_fini(&t);
}

static void test_example(void)
{
	const char *root = getenv("SOURCE_ROOT");
	char path[512], err[512] = "", *buf;
	struct tgt t;
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/docs/examples/nvtcpd.json", root ? root : ".");
	f = fopen(path, "r");
	TAP_CHECK(f != NULL);
	if (!f)
		return;
	buf = malloc(1 << 20);
	len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	TAP_CHECK_EQ(tgt_init(&t), 0);
	TAP_CHECK_EQ(tgt_config_parse(&t, path, buf, len, false, err, sizeof(err)), 0);
	if (err[0])
		printf("# %s\n", err);
	TAP_CHECK(!list_empty(&t.ports));
	tgt_fini(&t);
	free(buf);
}

static void test_nguid_stable(void)
{
	uint8_t a[16], b[16], c[16], u[16];

	tgt_ns_derive_ids("nqn.2024-01.io.nvtcp:x", 1, a, u);
	tgt_ns_derive_ids("nqn.2024-01.io.nvtcp:x", 1, b, u);
	TAP_CHECK_MEM(a, b, 16);
	tgt_ns_derive_ids("nqn.2024-01.io.nvtcp:x", 2, c, u);
	TAP_CHECK(memcmp(a, c, 16) != 0);
	TAP_CHECK_EQ(u[6] >> 4, 8);
	TAP_CHECK_EQ(u[8] >> 6, 2);
}

struct bad_case {
	const char *name;
	const char *json;
	const char *expect; /* substring of the message */
};

#define SUB(x) \
	"{\"subsystems\":[{\"nqn\":\"nqn.2024-01.io.nvtcp:a\",\"allow_any_host\":true," x "}]}"
#define NS(x) SUB("\"namespaces\":[{\"nsid\":1,\"backend\":\"memory\",\"size\":\"1M\"}," x "]")

static const struct bad_case bad_cases[] = {
	{"syntax", "{\"ports\": [\n{\"addr\": }]}", "bad.json: line 2"},
	{"truncated", "{\"ports\": [", "unexpected end of JSON"},
	{"trailing", "{} {}", "text after the document"},
	{"top not object", "[1, 2]", "expected a JSON object at the top level"},
	{"unknown top key", "{\"portz\": []}", "unknown key \"portz\""},
	{"ports not array", "{\"ports\": {}}", "bad.json: ports: expected an array"},
	{"port missing addr", "{\"ports\":[{\"port\":4420}]}",
	 "ports[0]: missing required key \"addr\""},
	{"port bad addr", "{\"ports\":[{\"addr\":\"localhost\"}]}",
	 "ports[0].addr: localhost:4420: \"localhost\" is not a numeric IPv4 address"},
	{"port number", "{\"ports\":[{\"addr\":\"127.0.0.1\",\"port\":70000}]}",
	 "ports[0].port: expected an integer from 1 to 65535"},
	{"port type", "{\"ports\":[{\"addr\":\"127.0.0.1\",\"port\":\"4420\"}]}",
	 "ports[0].port: expected an integer"},
	{"port secure", "{\"ports\":[{\"addr\":\"127.0.0.1\",\"secure\":\"tls\"}]}",
	 "ports[0].secure: expected \"none\", \"optional\" or \"required\""},
	{"port duplicate",
	 "{\"ports\":[{\"addr\":\"127.0.0.1\"},{\"addr\":\"127.0.0.1\",\"port\":4420}]}",
	 "ports[1].port: 127.0.0.1:4420: port listed twice"},
	{"port unknown key", "{\"ports\":[{\"addr\":\"127.0.0.1\",\"tls\":1}]}",
	 "ports[0]: unknown key \"tls\""},
	{"nqn missing", "{\"subsystems\":[{\"allow_any_host\":true}]}",
	 "subsystems[0]: missing required key \"nqn\""},
	{"nqn prefix", "{\"subsystems\":[{\"nqn\":\"iqn.2024\",\"allow_any_host\":true}]}",
	 "subsystems[0].nqn: \"iqn.2024\" is not an NQN"},
	{"nqn too long",
	 "{\"subsystems\":[{\"nqn\":\"nqn."
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"allow_any_host\":true}]}",
	 "subsystems[0].nqn: \"nqn.aaaa"},
	{"nqn discovery",
	 "{\"subsystems\":[{\"nqn\":\"nqn.2014-08.org.nvmexpress.discovery\","
	 "\"allow_any_host\":true}]}",
	 "the discovery subsystem is built in"},
	{"nqn duplicate",
	 "{\"subsystems\":[{\"nqn\":\"nqn.2024-01.io.nvtcp:a\",\"allow_any_host\":true},"
	 "{\"nqn\":\"nqn.2024-01.io.nvtcp:a\",\"allow_any_host\":true}]}",
	 "subsystems[1].nqn: duplicate subsystem \"nqn.2024-01.io.nvtcp:a\""},
	{"no hosts", "{\"subsystems\":[{\"nqn\":\"nqn.2024-01.io.nvtcp:a\"}]}",
	 "subsystems[0]: no host may connect"},
	{"serial too long", SUB("\"serial\":\"123456789012345678901\""),
	 "subsystems[0].serial: expected 1 to 20 printable ASCII characters"},
	{"model type", SUB("\"model\":5"), "subsystems[0].model: expected a string"},
	{"allow_any_host type",
	 "{\"subsystems\":[{\"nqn\":\"nqn.2024-01.io.nvtcp:a\","
	 "\"allow_any_host\":\"yes\"}]}",
	 "subsystems[0].allow_any_host: expected true or false"},
	{"unknown subsystem key", SUB("\"namespace\":[]"),
	 "subsystems[0]: unknown key \"namespace\""},
	{"host bad nqn", SUB("\"hosts\":[{\"nqn\":\"host1\"}]"),
	 "subsystems[0].hosts[0].nqn: \"host1\" is not an NQN"},
	{"host duplicate",
	 SUB("\"hosts\":[{\"nqn\":\"nqn.2024-01.io.nvtcp:h\"},{\"nqn\":\"nqn.2024-01.io.nvtcp:h\"}"
	     "]"),
	 "subsystems[0].hosts[1].nqn: duplicate host"},
	{"host not object", SUB("\"hosts\":[\"nqn.2024-01.io.nvtcp:h\"]"),
	 "subsystems[0].hosts[0]: expected an object"},
	{"ns size", NS("{\"nsid\":2,\"backend\":\"memory\",\"size\":\"1X\"}"),
	 "subsystems[0].namespaces[1].size: expected a size like \"1G\" or a number of bytes"},
	{"ns size missing", NS("{\"nsid\":2,\"backend\":\"memory\"}"),
	 "subsystems[0].namespaces[1]: missing required key \"size\""},
	{"ns size alignment", NS("{\"nsid\":2,\"backend\":\"memory\",\"size\":1000}"),
	 "subsystems[0].namespaces[1].size: 1000 bytes is not a multiple of the block size 512"},
	{"ns duplicate nsid", NS("{\"nsid\":1,\"backend\":\"null\",\"size\":\"1M\"}"),
	 "subsystems[0].namespaces[1].nsid: duplicate nsid 1"},
	{"ns nsid range", NS("{\"nsid\":0,\"backend\":\"null\",\"size\":\"1M\"}"),
	 "subsystems[0].namespaces[1].nsid: expected an integer from 1 to 1024"},
	{"ns backend", NS("{\"nsid\":2,\"backend\":\"ramdisk\",\"size\":\"1M\"}"),
	 "subsystems[0].namespaces[1].backend: unknown backend \"ramdisk\""},
	{"ns file without path", NS("{\"nsid\":2,\"backend\":\"file\",\"size\":\"1M\"}"),
	 "subsystems[0].namespaces[1]: missing required key \"path\" for backend \"file\""},
	{"ns memory with path",
	 NS("{\"nsid\":2,\"backend\":\"memory\",\"size\":\"1M\",\"path\":\"/x\"}"),
	 "subsystems[0].namespaces[1].path: not used by backend \"memory\""},
	{"ns block size",
	 NS("{\"nsid\":2,\"backend\":\"memory\",\"size\":\"1M\",\"block_size\":1024}"),
	 "subsystems[0].namespaces[1].block_size: expected 512 or 4096"},
	{"ns nguid", NS("{\"nsid\":2,\"backend\":\"memory\",\"size\":\"1M\",\"nguid\":\"12\"}"),
	 "subsystems[0].namespaces[1].nguid: expected 32 hexadecimal digits"},
	{"ns uuid",
	 NS("{\"nsid\":2,\"backend\":\"memory\",\"size\":\"1M\","
	    "\"uuid\":\"0f7c1e2a08d3b-4c5e-9a6f-112233445566\"}"),
	 "subsystems[0].namespaces[1].uuid: expected a UUID"},
	{"ns unknown key", NS("{\"nsid\":2,\"backend\":\"memory\",\"size\":\"1M\",\"sise\":1}"),
	 "subsystems[0].namespaces[1]: unknown key \"sise\""},
	{"ns readonly type",
	 NS("{\"nsid\":2,\"backend\":\"memory\",\"size\":\"1M\",\"readonly\":1}"),
	 "subsystems[0].namespaces[1].readonly: expected true or false"},
	{"ns file unopenable",
	 NS("{\"nsid\":2,\"backend\":\"file\",\"path\":\"/nonexistent-dir/x.img\"}"),
	 "subsystems[0].namespaces[1]: cannot open the file backend"},
};

static void test_bad_cases(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *b = &bad_cases[i];
		char err[512] = "";
		struct tgt t;
		int ret;
		bool ok;

		if (tgt_init(&t)) {
			tap_case(b->name, 0);
			continue;
		}
		ret = tgt_config_parse(&t, "bad.json", b->json, strlen(b->json), true, err,
				       sizeof(err));
		ok = ret == -EINVAL && strstr(err, b->expect) != NULL &&
		     strncmp(err, "bad.json: ", 10) == 0;
		if (!ok)
			printf("# %s: ret %d, message: %s\n#   expected: %s\n", b->name, ret, err,
			       b->expect);
		tgt_fini(&t);
		tap_case(b->name, ok);
	}
}

static void test_missing_file(void)
{
	char err[256] = "";
	struct tgt t;

	TAP_CHECK_EQ(tgt_init(&t), 0);
	TAP_CHECK_EQ(tgt_config_load(&t, "/nonexistent/nvtcpd.json", err, sizeof(err)), -ENOENT);
	TAP_CHECK(strstr(err, "/nonexistent/nvtcpd.json: ") == err);
	tgt_fini(&t);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	TAP_RUN(test_good_file);
	TAP_RUN(test_default);
	TAP_RUN(test_example);
	TAP_RUN(test_nguid_stable);
	TAP_RUN(test_missing_file);
	test_bad_cases();
	rmdir(tmpdir);
	return tap_done();
}
