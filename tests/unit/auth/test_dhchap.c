/* Unit tests of src/auth/dhchap.c: DHHC-1 secrets (CRC, bad inputs), the key transformation
 * against vectors printed by nvme-cli 2.3 (libnvme, an independent implementation), FFDHE key
 * agreement for every group, and complete host <-> controller exchanges in memory for every
 * hash x {NULL, ffdhe2048} x {unidirectional, bidirectional}, wrong keys and bad messages. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "auth/dhchap.h"
#include "common/le.h"
#include "tap.h"

#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
#define SUBNQN	"nqn.2024-01.io.nvtcp:auth-test"

/* `nvme gen-dhchap-key -n HOSTNQN -m M -l L -s <bytes 00 01 02 ...>`: nvme-cli 2.3 prints the
 * key already transformed with HMAC-M(secret, HOSTNQN || "NVMe-over-Fabrics"). */
static const char *const nvme_cli_plain32 =
	"DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";
static const char *const nvme_cli_m1 =
	"DHHC-1:01:bOHk6jHoMxpP5YJr/eF6XNOGuPAzh0iRniebpsVb9ydqVuR5:";
static const char *const nvme_cli_m2 =
	"DHHC-1:02:JzgkyQ7IBRNgZgoVJQTRqDZ62Hnj5/kZ+vrrqjiE4TzoZZv5ycVS5cOLCiZ1bQfVVxJqow==:";
static const char *const nvme_cli_m3 =
	"DHHC-1:03:D+Ucidhr9Oh00yaKCrMLB2s2c/hsojlyxwni12p59UZ78f4YQ6UMpEcQG4yaPnLJFkljK+euytry"
	"vvQe2rYShiu0Vv0=:";

static void counting_key(struct dhchap_key *k, unsigned len, unsigned hh)
{
	memset(k, 0, sizeof(*k));
	for (unsigned i = 0; i < len; i++)
		k->key[i] = (uint8_t)i;
	k->len = (uint8_t)len;
	k->hh = (uint8_t)hh;
}

static void test_crc32(void)
{
	/* The CRC-32 check value ("123456789" -> CBF43926) of the IEEE polynomial. */
	TAP_CHECK_EQ(dhchap_crc32((const uint8_t *)"123456789", 9), 0xcbf43926u);
	TAP_CHECK_EQ(dhchap_crc32(NULL, 0), 0);
}

static void test_parse_plain(void)
{
	struct dhchap_key k;
	char out[DHCHAP_SECRET_MAX];

	TAP_CHECK_EQ(dhchap_key_parse(nvme_cli_plain32, &k), 0);
	TAP_CHECK_EQ(k.len, 32);
	TAP_CHECK_EQ(k.hh, 0);
	for (unsigned i = 0; i < 32; i++)
		TAP_CHECK_EQ(k.key[i], i);
	/* Round trip through our encoder gives nvme-cli's string back. */
	TAP_CHECK_EQ(dhchap_key_format(&k, out, sizeof(out)), (int)strlen(nvme_cli_plain32));
	TAP_CHECK(strcmp(out, nvme_cli_plain32) == 0);
	/* The kernel accepts the secret without its final ':'. */
	snprintf(out, sizeof(out), "%.*s", (int)strlen(nvme_cli_plain32) - 1, nvme_cli_plain32);
	TAP_CHECK_EQ(dhchap_key_parse(out, &k), 0);
	TAP_CHECK_EQ(k.len, 32);
}

static void test_parse_lengths(void)
{
	for (unsigned len = 32; len <= 64; len += 16) {
		struct dhchap_key k, back;
		char s[DHCHAP_SECRET_MAX];

		counting_key(&k, len, len / 16 - 1);
		TAP_CHECK(dhchap_key_format(&k, s, sizeof(s)) > 0);
		TAP_CHECK_EQ(dhchap_key_parse(s, &back), 0);
		TAP_CHECK_EQ(back.len, len);
		TAP_CHECK_EQ(back.hh, len / 16 - 1);
		TAP_CHECK_MEM(back.key, k.key, len);
	}
}

static void test_parse_bad(void)
{
	struct dhchap_key k;
	char s[DHCHAP_SECRET_MAX];
	size_t n;

	/* CRC: flip one base64 character of the key part. */
	snprintf(s, sizeof(s), "%s", nvme_cli_plain32);
	s[12] = s[12] == 'A' ? 'B' : 'A';
	TAP_CHECK_EQ(dhchap_key_parse(s, &k), -EBADMSG);
	/* Prefix, version, hash id, separators. */
	TAP_CHECK_EQ(
		dhchap_key_parse("DHHC-2:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:", &k),
		-EINVAL);
	TAP_CHECK_EQ(
		dhchap_key_parse("DHHC-1:04:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:", &k),
		-EINVAL);
	TAP_CHECK_EQ(
		dhchap_key_parse("DHHC-1:0x:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:", &k),
		-EINVAL);
	TAP_CHECK_EQ(
		dhchap_key_parse("DHHC-1:00;AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:", &k),
		-EINVAL);
	TAP_CHECK_EQ(dhchap_key_parse(
			     "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:x", &k),
		     -EINVAL);
	TAP_CHECK_EQ(dhchap_key_parse("", &k), -EINVAL);
	TAP_CHECK_EQ(dhchap_key_parse(NULL, &k), -EINVAL);
	/* Not base64, bad padding, truncated. */
	TAP_CHECK_EQ(
		dhchap_key_parse("DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh*KfiaR:", &k),
		-EINVAL);
	TAP_CHECK_EQ(
		dhchap_key_parse("DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+Kfi=R:", &k),
		-EINVAL);
	snprintf(s, sizeof(s), "%s", nvme_cli_plain32);
	n = strlen(s);
	s[n - 5] = ':';
	s[n - 4] = '\0';
	TAP_CHECK_EQ(dhchap_key_parse(s, &k), -EINVAL);
	/* A valid CRC over a length that is not 32/48/64 (16 bytes). */
	{
		struct dhchap_key small;
		uint8_t buf[20];
		char b[64];

		counting_key(&small, 32, 0);
		memcpy(buf, small.key, 16);
		le32_put(buf + 16, dhchap_crc32(buf, 16));
		/* base64 of 20 bytes by hand through a 32-byte format then cut is awkward: use
		 * EVP's encoder (independent of ours). */
		EVP_EncodeBlock((unsigned char *)b, buf, 20);
		snprintf(s, sizeof(s), "DHHC-1:00:%s:", b);
		TAP_CHECK_EQ(dhchap_key_parse(s, &k), -EINVAL);
	}
}

static void check_transform(const char *cli, unsigned hh, unsigned len)
{
	struct dhchap_key secret, printed;
	uint8_t out[DHCHAP_MAX_KEY_LEN];
	size_t out_len = 0;

	counting_key(&secret, len, hh);
	TAP_CHECK_EQ(dhchap_key_parse(cli, &printed), 0);
	TAP_CHECK_EQ(printed.hh, hh);
	TAP_CHECK_EQ(dhchap_key_transform(&secret, HOSTNQN, out, &out_len), 0);
	TAP_CHECK_EQ(out_len, dhchap_hash_len(hh));
	TAP_CHECK_EQ(printed.len, out_len);
	TAP_CHECK_MEM(out, printed.key, out_len);
}

static void test_transform_nvme_cli(void)
{
	struct dhchap_key k;
	uint8_t out[DHCHAP_MAX_KEY_LEN];
	size_t out_len;

	check_transform(nvme_cli_m1, 1, 32);
	check_transform(nvme_cli_m2, 2, 48);
	check_transform(nvme_cli_m3, 3, 64);
	/* hh 00: the secret itself. */
	counting_key(&k, 48, 0);
	TAP_CHECK_EQ(dhchap_key_transform(&k, HOSTNQN, out, &out_len), 0);
	TAP_CHECK_EQ(out_len, 48);
	TAP_CHECK_MEM(out, k.key, 48);
	/* The NQN matters. */
	counting_key(&k, 32, 1);
	TAP_CHECK_EQ(dhchap_key_transform(&k, SUBNQN, out, &out_len), 0);
	{
		struct dhchap_key printed;

		TAP_CHECK_EQ(dhchap_key_parse(nvme_cli_m1, &printed), 0);
		TAP_CHECK(memcmp(out, printed.key, 32) != 0);
	}
}

static void test_names(void)
{
	TAP_CHECK_EQ(dhchap_hash_from_name("sha256"), DHCHAP_HASH_SHA256);
	TAP_CHECK_EQ(dhchap_hash_from_name("hmac(sha384)"), DHCHAP_HASH_SHA384);
	TAP_CHECK_EQ(dhchap_hash_from_name("sha512"), DHCHAP_HASH_SHA512);
	TAP_CHECK_EQ(dhchap_hash_from_name("md5"), -EINVAL);
	TAP_CHECK_EQ(dhchap_dhgroup_from_name("null"), DHCHAP_DHGROUP_NULL);
	TAP_CHECK_EQ(dhchap_dhgroup_from_name("ffdhe8192"), DHCHAP_DHGROUP_8192);
	TAP_CHECK_EQ(dhchap_dhgroup_from_name("ffdhe1024"), -EINVAL);
	TAP_CHECK_EQ(dhchap_hash_len(DHCHAP_HASH_SHA384), 48);
	TAP_CHECK_EQ(dhchap_hash_len(0), 0);
	TAP_CHECK_EQ(dhchap_hash_len(4), 0);
	TAP_CHECK_EQ(dhchap_dhgroup_len(DHCHAP_DHGROUP_3072), 384);
	TAP_CHECK(strcmp(dhchap_dhgroup_name(DHCHAP_DHGROUP_6144), "ffdhe6144") == 0);
}

/* The response computed independently with OpenSSL's HMAC over the byte string the kernel
 * hashes (nvmet_auth_host_hash), compared with dhchap_response. */
static void test_response_layout(void)
{
	uint8_t key[32], chal[32], ours[64], ref[64], data[600];
	unsigned ref_len = 0;
	size_t n = 0;

	for (unsigned i = 0; i < 32; i++) {
		key[i] = (uint8_t)(0x40 + i);
		chal[i] = (uint8_t)(0x80 + i);
	}
	TAP_CHECK_EQ(dhchap_response(DHCHAP_HASH_SHA256, key, 32, chal, 0x01020304, 0x0506, false,
				     HOSTNQN, SUBNQN, ours),
		     0);
	memcpy(data, chal, 32);
	n = 32;
	memcpy(data + n, "\x04\x03\x02\x01\x06\x05\x00HostHost", 15);
	n += 15;
	memcpy(data + n, HOSTNQN, strlen(HOSTNQN) + 1);
	n += strlen(HOSTNQN) + 1;
	memcpy(data + n, SUBNQN, strlen(SUBNQN));
	n += strlen(SUBNQN);
	HMAC(EVP_sha256(), key, 32, data, n, ref, &ref_len);
	TAP_CHECK_EQ(ref_len, 32);
	TAP_CHECK_MEM(ours, ref, 32);

	/* Controller variant with a SHA-512 (64-byte) challenge. */
	memset(data, 0, sizeof(data));
	{
		uint8_t c64[64];

		for (unsigned i = 0; i < 64; i++)
			c64[i] = (uint8_t)i;
		TAP_CHECK_EQ(dhchap_response(DHCHAP_HASH_SHA512, key, 32, c64, 7, 9, true, HOSTNQN,
					     SUBNQN, ours),
			     0);
		memcpy(data, c64, 64);
		n = 64;
		memcpy(data + n,
		       "\x07\x00\x00\x00\x09\x00\x00"
		       "Controller",
		       17);
		n += 17;
		memcpy(data + n, SUBNQN, strlen(SUBNQN) + 1);
		n += strlen(SUBNQN) + 1;
		memcpy(data + n, HOSTNQN, strlen(HOSTNQN));
		n += strlen(HOSTNQN);
		HMAC(EVP_sha512(), key, 32, data, n, ref, &ref_len);
		TAP_CHECK_EQ(ref_len, 64);
		TAP_CHECK_MEM(ours, ref, 64);
	}
}

static void test_augmented(void)
{
	uint8_t skey[256], chal[48], ours[48], hashed[48], ref[48];
	unsigned ref_len = 0;

	for (unsigned i = 0; i < sizeof(skey); i++)
		skey[i] = (uint8_t)(i * 7);
	for (unsigned i = 0; i < sizeof(chal); i++)
		chal[i] = (uint8_t)(i ^ 0x5a);
	TAP_CHECK_EQ(dhchap_augmented_challenge(DHCHAP_HASH_SHA384, skey, sizeof(skey), chal, ours),
		     0);
	EVP_Digest(skey, sizeof(skey), hashed, NULL, EVP_sha384(), NULL);
	HMAC(EVP_sha384(), hashed, 48, chal, 48, ref, &ref_len);
	TAP_CHECK_MEM(ours, ref, 48);
}

static void test_dh_groups(void)
{
	for (unsigned g = DHCHAP_DHGROUP_2048; g < DHCHAP_DHGROUP_COUNT; g++) {
		struct dhchap_dh *a = NULL, *b = NULL;
		size_t len = dhchap_dhgroup_len(g);
		uint8_t *pa = calloc(1, len), *pb = calloc(1, len), *sa = calloc(1, len),
			*sb = calloc(1, len);

		TAP_CHECK_EQ(dhchap_dh_generate(g, &a), 0);
		TAP_CHECK_EQ(dhchap_dh_generate(g, &b), 0);
		if (a && b) {
			TAP_CHECK_EQ(dhchap_dh_public(a, pa, len), 0);
			TAP_CHECK_EQ(dhchap_dh_public(b, pb, len), 0);
			TAP_CHECK(memcmp(pa, pb, len) != 0);
			TAP_CHECK_EQ(dhchap_dh_shared(a, pb, len, sa, len), 0);
			TAP_CHECK_EQ(dhchap_dh_shared(b, pa, len, sb, len), 0);
			TAP_CHECK_MEM(sa, sb, len);
			/* Wrong sizes and degenerate peer values are refused. */
			TAP_CHECK_EQ(dhchap_dh_public(a, pa, len - 1), -EINVAL);
			TAP_CHECK_EQ(dhchap_dh_shared(a, pb, len - 1, sa, len), -EINVAL);
			memset(pb, 0, len);
			pb[len - 1] = 1;
			TAP_CHECK(dhchap_dh_shared(a, pb, len, sa, len) < 0);
			memset(pb, 0xff, len); /* > p */
			TAP_CHECK(dhchap_dh_shared(a, pb, len, sa, len) < 0);
		}
		dhchap_dh_free(a);
		dhchap_dh_free(b);
		free(pa);
		free(pb);
		free(sa);
		free(sb);
	}
	{
		struct dhchap_dh *n = NULL;

		TAP_CHECK_EQ(dhchap_dh_generate(DHCHAP_DHGROUP_NULL, &n), -EINVAL);
		TAP_CHECK_EQ(dhchap_dh_generate(9, &n), -EINVAL);
	}
}

/* ---- full exchanges --------------------------------------------------------------------- */

struct xcfg {
	unsigned hash, group;
	bool bidi;
	bool wrong_host_key;  /* host uses a different secret than the controller expects */
	bool wrong_ctrl_key;  /* controller proves a different key than the host expects */
	bool ctrl_has_no_key; /* host asks for bidirectional, controller has no key */
};

struct xresult {
	enum dhchap_host_state host_state;
	uint8_t host_status;
	bool host_peer_failure;
	bool ctrl_authenticated;
	enum dhchap_ctrl_state ctrl_state;
	uint8_t ctrl_status;
	unsigned sends, recvs;
};

static void make_key(struct dhchap_key *k, unsigned seed, unsigned len, unsigned hh)
{
	memset(k, 0, sizeof(*k));
	for (unsigned i = 0; i < len; i++)
		k->key[i] = (uint8_t)(seed * 31 + i * 13);
	k->len = (uint8_t)len;
	k->hh = (uint8_t)hh;
}

/* Drive both machines through Authentication Send/Receive like the transport would. */
static void run_exchange_on(struct dhchap_ctrl *c, const struct xcfg *x, uint16_t tid,
			    struct xresult *r)
{
	struct dhchap_key hk, ck, hk_wrong, ck_wrong;
	struct dhchap_params hp = {.hostnqn = HOSTNQN, .subnqn = SUBNQN};
	struct dhchap_host h;
	uint8_t *buf = malloc(4096);

	make_key(&hk, 1, 32, DHCHAP_HASH_SHA256);
	make_key(&ck, 2, 48, DHCHAP_HASH_SHA384);
	make_key(&hk_wrong, 3, 32, DHCHAP_HASH_SHA256);
	make_key(&ck_wrong, 4, 48, DHCHAP_HASH_SHA384);
	hp.host_key = x->wrong_host_key ? &hk_wrong : &hk;
	hp.ctrl_key = x->bidi ? (x->wrong_ctrl_key ? &ck_wrong : &ck) : NULL;
	/* The host offers everything, like the kernel host. */
	TAP_CHECK_EQ(dhchap_host_init(&h, &hp, tid), 0);
	memset(r, 0, sizeof(*r));
	for (int step = 0; step < 10 && !dhchap_host_finished(&h); step++) {
		if (dhchap_host_wants_send(&h)) {
			int n = dhchap_host_send(&h, buf, 4096);

			TAP_CHECK(n > 0);
			if (n <= 0)
				break;
			TAP_CHECK_EQ(dhchap_ctrl_send(c, buf, (size_t)n), 0);
			r->sends++;
		} else {
			int n;

			memset(buf, 0, 4096);
			n = dhchap_ctrl_recv(c, buf, 4096);
			TAP_CHECK(n > 0);
			if (n <= 0)
				break;
			/* The host sees the whole allocation length, zero-padded. */
			TAP_CHECK_EQ(dhchap_host_recv(&h, buf, 4096), 0);
			r->recvs++;
		}
	}
	r->host_state = h.state;
	r->host_status = h.status;
	r->host_peer_failure = h.peer_failure;
	r->ctrl_authenticated = c->authenticated;
	r->ctrl_state = c->state;
	r->ctrl_status = c->status;
	dhchap_host_fini(&h);
	free(buf);
}

static void ctrl_setup(struct dhchap_ctrl *c, const struct xcfg *x)
{
	struct dhchap_key hk, ck;
	struct dhchap_params cp = {.hostnqn = HOSTNQN, .subnqn = SUBNQN};

	make_key(&hk, 1, 32, DHCHAP_HASH_SHA256);
	make_key(&ck, 2, 48, DHCHAP_HASH_SHA384);
	cp.host_key = &hk;
	cp.ctrl_key = x->ctrl_has_no_key ? NULL : &ck;
	cp.hashes[cp.nr_hashes++] = (uint8_t)x->hash;
	cp.dhgroups[cp.nr_dhgroups++] = (uint8_t)x->group;
	TAP_CHECK_EQ(dhchap_ctrl_init(c, &cp), 0);
}

static void run_exchange(const struct xcfg *x, struct xresult *r)
{
	struct dhchap_ctrl c;

	ctrl_setup(&c, x);
	run_exchange_on(&c, x, 7, r);
	dhchap_ctrl_fini(&c);
}

static void test_exchanges(void)
{
	for (unsigned hash = DHCHAP_HASH_SHA256; hash < DHCHAP_HASH_COUNT; hash++) {
		for (unsigned gi = 0; gi < 2; gi++) {
			for (unsigned bidi = 0; bidi < 2; bidi++) {
				struct xcfg x = {.hash = hash,
						 .group = gi ? DHCHAP_DHGROUP_2048
							     : DHCHAP_DHGROUP_NULL,
						 .bidi = bidi};
				struct xresult r;
				char name[96];
				bool ok;

				tap_begin();
				run_exchange(&x, &r);
				ok = r.host_state == DHCHAP_HOST_DONE && r.ctrl_authenticated &&
				     r.ctrl_state == DHCHAP_CTRL_DONE &&
				     r.sends == (bidi ? 3u : 2u) && r.recvs == 2;
				snprintf(name, sizeof(name), "exchange %s %s %s",
					 dhchap_hash_name(hash), dhchap_dhgroup_name(x.group),
					 bidi ? "bidirectional" : "unidirectional");
				tap_case_failed |= !ok;
				tap_end(name);
			}
		}
	}
}

static void test_wrong_host_key(void)
{
	for (unsigned gi = 0; gi < 2; gi++) {
		struct xcfg x = {.hash = DHCHAP_HASH_SHA256,
				 .group = gi ? DHCHAP_DHGROUP_2048 : DHCHAP_DHGROUP_NULL,
				 .wrong_host_key = true};
		struct xresult r;

		run_exchange(&x, &r);
		/* Controller answers Failure1 "authentication failed"; host gives up. */
		TAP_CHECK_EQ(r.host_state, DHCHAP_HOST_FAILED);
		TAP_CHECK(r.host_peer_failure);
		TAP_CHECK_EQ(r.host_status, AUTH_FAIL_FAILED);
		TAP_CHECK(!r.ctrl_authenticated);
		TAP_CHECK_EQ(r.ctrl_state, DHCHAP_CTRL_DONE);
		TAP_CHECK_EQ(r.ctrl_status, AUTH_FAIL_FAILED);
	}
}

static void test_wrong_ctrl_key(void)
{
	struct xcfg x = {.hash = DHCHAP_HASH_SHA384,
			 .group = DHCHAP_DHGROUP_2048,
			 .bidi = true,
			 .wrong_ctrl_key = true};
	struct xresult r;

	run_exchange(&x, &r);
	/* The host rejects R2 and sends Failure2; the controller ends unauthenticated. */
	TAP_CHECK_EQ(r.host_state, DHCHAP_HOST_FAILED);
	TAP_CHECK(!r.host_peer_failure);
	TAP_CHECK_EQ(r.host_status, AUTH_FAIL_FAILED);
	TAP_CHECK(!r.ctrl_authenticated);
	TAP_CHECK_EQ(r.ctrl_state, DHCHAP_CTRL_DONE);
	TAP_CHECK_EQ(r.ctrl_status, AUTH_FAIL_FAILED);
	TAP_CHECK_EQ(r.sends, 3);
}

static void test_ctrl_without_key(void)
{
	struct xcfg x = {.hash = DHCHAP_HASH_SHA256,
			 .group = DHCHAP_DHGROUP_NULL,
			 .bidi = true,
			 .ctrl_has_no_key = true};
	struct xresult r;

	run_exchange(&x, &r);
	TAP_CHECK_EQ(r.host_state, DHCHAP_HOST_FAILED);
	TAP_CHECK(r.host_peer_failure);
	TAP_CHECK(!r.ctrl_authenticated);
}

static void test_reauth(void)
{
	struct xcfg x = {.hash = DHCHAP_HASH_SHA512, .group = DHCHAP_DHGROUP_2048, .bidi = true};
	struct xcfg bad = x;
	struct dhchap_ctrl c;
	struct xresult r;

	ctrl_setup(&c, &x);
	run_exchange_on(&c, &x, 1, &r);
	TAP_CHECK(r.ctrl_authenticated);
	/* A new Negotiate with a new transaction id: authenticated again, twice in total. */
	run_exchange_on(&c, &x, 2, &r);
	TAP_CHECK(r.ctrl_authenticated);
	TAP_CHECK_EQ(r.host_state, DHCHAP_HOST_DONE);
	TAP_CHECK_EQ(c.transactions_ok, 2);
	/* A failed re-authentication revokes the queue's authentication. */
	bad.wrong_host_key = true;
	run_exchange_on(&c, &bad, 3, &r);
	TAP_CHECK(!r.ctrl_authenticated);
	dhchap_ctrl_fini(&c);
}

static void test_negotiate_errors(void)
{
	struct xcfg x = {.hash = DHCHAP_HASH_SHA384, .group = DHCHAP_DHGROUP_4096};
	struct dhchap_key hk;
	struct dhchap_params hp = {.hostnqn = HOSTNQN, .subnqn = SUBNQN};
	struct dhchap_ctrl c;
	struct dhchap_host h;
	uint8_t buf[256], out[64];
	int n;

	/* The host offers only sha256 / null: the controller allows sha384 / ffdhe4096. */
	make_key(&hk, 1, 32, DHCHAP_HASH_SHA256);
	hp.host_key = &hk;
	hp.hashes[hp.nr_hashes++] = DHCHAP_HASH_SHA256;
	TAP_CHECK_EQ(dhchap_host_init(&h, &hp, 5), 0);
	n = dhchap_host_send(&h, buf, sizeof(buf));
	TAP_CHECK_EQ(n, (int)DHCHAP_NEGOTIATE_LEN);
	ctrl_setup(&c, &x);
	TAP_CHECK_EQ(dhchap_ctrl_send(&c, buf, (size_t)n), 0);
	TAP_CHECK_EQ(c.state, DHCHAP_CTRL_FAILURE1);
	TAP_CHECK_EQ(c.status, AUTH_FAIL_HASH_UNUSABLE);
	/* Too small a Receive leaves the state alone. */
	TAP_CHECK_EQ(dhchap_ctrl_recv(&c, out, 4), -ENOSPC);
	TAP_CHECK_EQ(dhchap_ctrl_recv(&c, out, sizeof(out)), 8);
	TAP_CHECK_EQ(out[0], AUTH_TYPE_COMMON);
	TAP_CHECK_EQ(out[1], AUTH_MSG_FAILURE1);
	TAP_CHECK_EQ(le16_get(out + 4), 5);
	TAP_CHECK_EQ(out[6], AUTH_REASON_FAILED);
	TAP_CHECK_EQ(out[7], AUTH_FAIL_HASH_UNUSABLE);
	dhchap_host_fini(&h);

	/* Groups: hash fine, no common DH group. */
	hp.nr_hashes = 0;
	hp.dhgroups[hp.nr_dhgroups++] = DHCHAP_DHGROUP_NULL;
	TAP_CHECK_EQ(dhchap_host_init(&h, &hp, 6), 0);
	n = dhchap_host_send(&h, buf, sizeof(buf));
	TAP_CHECK_EQ(dhchap_ctrl_send(&c, buf, (size_t)n), 0);
	TAP_CHECK_EQ(c.status, AUTH_FAIL_DHGROUP_UNUSABLE);
	/* Truncated Negotiate, secure channel concatenation. */
	TAP_CHECK_EQ(dhchap_ctrl_send(&c, buf, 20), 0);
	TAP_CHECK_EQ(c.status, AUTH_FAIL_INCORRECT_PAYLOAD);
	buf[6] = 1;
	TAP_CHECK_EQ(dhchap_ctrl_send(&c, buf, (size_t)n), 0);
	TAP_CHECK_EQ(c.status, AUTH_FAIL_CONCAT_MISMATCH);
	dhchap_host_fini(&h);
	dhchap_ctrl_fini(&c);
}

static void test_out_of_order(void)
{
	struct xcfg x = {.hash = DHCHAP_HASH_SHA256, .group = DHCHAP_DHGROUP_NULL};
	struct dhchap_key hk;
	struct dhchap_params hp = {.hostnqn = HOSTNQN, .subnqn = SUBNQN};
	struct dhchap_ctrl c;
	struct dhchap_host h;
	uint8_t neg[256], chal[256], reply[512];
	int n, nr;

	make_key(&hk, 1, 32, DHCHAP_HASH_SHA256);
	hp.host_key = &hk;
	ctrl_setup(&c, &x);
	/* A Reply before any Negotiate: Failure1, incorrect message. */
	TAP_CHECK_EQ(dhchap_host_init(&h, &hp, 9), 0);
	n = dhchap_host_send(&h, neg, sizeof(neg));
	TAP_CHECK_EQ(dhchap_ctrl_send(&c, neg, (size_t)n), 0);
	nr = dhchap_ctrl_recv(&c, chal, sizeof(chal));
	TAP_CHECK_EQ(dhchap_host_recv(&h, chal, (size_t)nr), 0);
	nr = dhchap_host_send(&h, reply, sizeof(reply));
	TAP_CHECK(nr > 0);
	/* Wrong transaction id in the Reply. */
	le16_put(reply + 4, 10);
	TAP_CHECK_EQ(dhchap_ctrl_send(&c, reply, (size_t)nr), 0);
	TAP_CHECK_EQ(c.state, DHCHAP_CTRL_FAILURE1);
	TAP_CHECK_EQ(c.status, AUTH_FAIL_INCORRECT_PAYLOAD);
	TAP_CHECK(!c.authenticated);
	/* The same Reply again now is out of sequence. */
	le16_put(reply + 4, 9);
	TAP_CHECK_EQ(dhchap_ctrl_send(&c, reply, (size_t)nr), 0);
	TAP_CHECK_EQ(c.status, AUTH_FAIL_INCORRECT_MESSAGE);
	/* A tampered response byte fails. */
	TAP_CHECK_EQ(dhchap_ctrl_send(&c, neg, (size_t)n), 0);
	nr = dhchap_ctrl_recv(&c, chal, sizeof(chal));
	dhchap_host_fini(&h);
	TAP_CHECK_EQ(dhchap_host_init(&h, &hp, 9), 0);
	h.state = DHCHAP_HOST_CHALLENGE;
	TAP_CHECK_EQ(dhchap_host_recv(&h, chal, (size_t)nr), 0);
	nr = dhchap_host_send(&h, reply, sizeof(reply));
	reply[16] ^= 1;
	TAP_CHECK_EQ(dhchap_ctrl_send(&c, reply, (size_t)nr), 0);
	TAP_CHECK_EQ(c.status, AUTH_FAIL_FAILED);
	/* A Receive when nothing is due is a Failure1 too. */
	TAP_CHECK_EQ(dhchap_ctrl_recv(&c, chal, sizeof(chal)), 8);
	TAP_CHECK_EQ(dhchap_ctrl_recv(&c, chal, sizeof(chal)), 8);
	TAP_CHECK_EQ(chal[1], AUTH_MSG_FAILURE1);
	TAP_CHECK_EQ(chal[7], AUTH_FAIL_INCORRECT_MESSAGE);
	dhchap_host_fini(&h);
	dhchap_ctrl_fini(&c);
}

int main(void)
{
	TAP_RUN(test_crc32);
	TAP_RUN(test_parse_plain);
	TAP_RUN(test_parse_lengths);
	TAP_RUN(test_parse_bad);
	TAP_RUN(test_transform_nvme_cli);
	TAP_RUN(test_names);
	TAP_RUN(test_response_layout);
	TAP_RUN(test_augmented);
	TAP_RUN(test_dh_groups);
	test_exchanges();
	TAP_RUN(test_wrong_host_key);
	TAP_RUN(test_wrong_ctrl_key);
	TAP_RUN(test_ctrl_without_key);
	TAP_RUN(test_reauth);
	TAP_RUN(test_negotiate_errors);
	TAP_RUN(test_out_of_order);
	return tap_done();
}
