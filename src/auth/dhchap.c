/* DH-HMAC-CHAP: secrets, transformation, FFDHE, responses and the two per-queue state machines
 * (controller and host). Every computation names the Linux function it reproduces.
 * Layer: auth. OpenSSL 3 only; no I/O. */
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/dh.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/le.h"
#include "../common/secret.h"
#include "dhchap.h"

uint32_t dhchap_crc32(const uint8_t *buf, size_t len)
{
	/* the kernel computes ~crc32(~0, key, len) in nvme_auth_extract_key: zlib's crc32() */
	return secret_crc32(buf, len);
}

/* ---- secrets ---------------------------------------------------------------------------- */

int dhchap_key_parse(const char *secret, struct dhchap_key *key)
{
	uint8_t buf[DHCHAP_MAX_KEY_LEN + 4 + 2];
	const char *b64, *end;
	size_t b64_len;
	int n;

	memset(key, 0, sizeof(*key));
	if (!secret || strncmp(secret, "DHHC-1:", 7) != 0)
		return -EINVAL;
	if (secret[7] < '0' || secret[7] > '9' || secret[8] < '0' || secret[8] > '9' ||
	    secret[9] != ':')
		return -EINVAL;
	key->hh = (uint8_t)((secret[7] - '0') * 10 + (secret[8] - '0'));
	/* nvmet_auth_set_key: hash ids above 3 are refused. */
	if (key->hh >= DHCHAP_HASH_COUNT)
		return -EINVAL;
	b64 = secret + 10;
	end = strchr(b64, ':');
	if (end && end[1] != '\0')
		return -EINVAL;
	b64_len = end ? (size_t)(end - b64) : strlen(b64);
	/* nvme_auth_extract_key checks the length before the CRC: 36, 52 or 68 bytes encoded. */
	if (b64_len != 48 && b64_len != 72 && b64_len != 92)
		return -EINVAL;
	n = secret_decode(b64, b64_len, buf, sizeof(buf));
	if (n < 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return n;
	}
	/* nvme_auth_extract_key: 32, 48 or 64 key bytes plus the CRC. */
	if (n != 32 && n != 48 && n != 64) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return -EINVAL;
	}
	memcpy(key->key, buf, (size_t)n);
	key->len = (uint8_t)n;
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

int dhchap_key_format(const struct dhchap_key *key, char *out, size_t outlen)
{
	char b64[96];
	size_t n;
	int ret;

	if (key->len != 32 && key->len != 48 && key->len != 64)
		return -EINVAL;
	if (key->hh >= DHCHAP_HASH_COUNT)
		return -EINVAL;
	ret = secret_encode(key->key, key->len, b64, sizeof(b64));
	if (ret < 0)
		return ret;
	n = (size_t)ret;
	if (10 + n + 2 > outlen)
		return -ENOSPC;
	snprintf(out, outlen, "DHHC-1:%02u:%s:", key->hh, b64);
	OPENSSL_cleanse(b64, sizeof(b64));
	return (int)(10 + n + 1);
}

/* ---- algorithms ------------------------------------------------------------------------- */

static const struct {
	const char *name;
	size_t len;
} dhchap_hashes[DHCHAP_HASH_COUNT] = {
	[DHCHAP_HASH_SHA256] = {"sha256", 32},
	[DHCHAP_HASH_SHA384] = {"sha384", 48},
	[DHCHAP_HASH_SHA512] = {"sha512", 64},
};

static const struct {
	const char *name;
	size_t len;
} dhchap_groups[DHCHAP_DHGROUP_COUNT] = {
	[DHCHAP_DHGROUP_NULL] = {"null", 0},	    [DHCHAP_DHGROUP_2048] = {"ffdhe2048", 256},
	[DHCHAP_DHGROUP_3072] = {"ffdhe3072", 384}, [DHCHAP_DHGROUP_4096] = {"ffdhe4096", 512},
	[DHCHAP_DHGROUP_6144] = {"ffdhe6144", 768}, [DHCHAP_DHGROUP_8192] = {"ffdhe8192", 1024},
};

size_t dhchap_hash_len(unsigned hash)
{
	return hash < DHCHAP_HASH_COUNT ? dhchap_hashes[hash].len : 0;
}

const char *dhchap_hash_name(unsigned hash)
{
	return hash < DHCHAP_HASH_COUNT ? dhchap_hashes[hash].name : NULL;
}

int dhchap_hash_from_name(const char *name)
{
	for (unsigned i = DHCHAP_HASH_SHA256; i < DHCHAP_HASH_COUNT; i++) {
		char hmac[32];

		snprintf(hmac, sizeof(hmac), "hmac(%s)", dhchap_hashes[i].name);
		if (strcmp(name, dhchap_hashes[i].name) == 0 || strcmp(name, hmac) == 0)
			return (int)i;
	}
	return -EINVAL;
}

const char *dhchap_dhgroup_name(unsigned group)
{
	return group < DHCHAP_DHGROUP_COUNT ? dhchap_groups[group].name : NULL;
}

int dhchap_dhgroup_from_name(const char *name)
{
	for (unsigned i = 0; i < DHCHAP_DHGROUP_COUNT; i++) {
		if (strcmp(name, dhchap_groups[i].name) == 0)
			return (int)i;
	}
	return -EINVAL;
}

size_t dhchap_dhgroup_len(unsigned group)
{
	return group < DHCHAP_DHGROUP_COUNT ? dhchap_groups[group].len : 0;
}

static const EVP_MD *dhchap_md(unsigned hash)
{
	switch (hash) {
	case DHCHAP_HASH_SHA256:
		return EVP_sha256();
	case DHCHAP_HASH_SHA384:
		return EVP_sha384();
	case DHCHAP_HASH_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

static int dhchap_hmac(unsigned hash, const uint8_t *key, size_t key_len, const uint8_t *data,
		       size_t len, uint8_t *out)
{
	const EVP_MD *md = dhchap_md(hash);
	unsigned out_len = 0;

	if (!md || key_len > INT32_MAX)
		return -EINVAL;
	if (!HMAC(md, key, (int)key_len, data, len, out, &out_len))
		return -EIO;
	return out_len == dhchap_hash_len(hash) ? 0 : -EIO;
}

int dhchap_key_transform(const struct dhchap_key *key, const char *nqn, uint8_t *out,
			 size_t *out_len)
{
	uint8_t data[DHCHAP_NQN_MAX + 17];
	size_t nqn_len = strlen(nqn);
	int ret;

	/* nvme_auth_transform_key: hash 0 uses the secret as is; otherwise
	 * HMAC-hh(secret, NQN || "NVMe-over-Fabrics"), as long as hh's digest. */
	if (key->hh == DHCHAP_HASH_NONE) {
		memcpy(out, key->key, key->len);
		*out_len = key->len;
		return 0;
	}
	if (nqn_len >= DHCHAP_NQN_MAX)
		return -EINVAL;
	memcpy(data, nqn, nqn_len);
	memcpy(data + nqn_len, "NVMe-over-Fabrics", 17);
	ret = dhchap_hmac(key->hh, key->key, key->len, data, nqn_len + 17, out);
	*out_len = ret ? 0 : dhchap_hash_len(key->hh);
	return ret;
}

int dhchap_augmented_challenge(unsigned hash, const uint8_t *skey, size_t skey_len,
			       const uint8_t *challenge, uint8_t *out)
{
	const EVP_MD *md = dhchap_md(hash);
	uint8_t hashed[DHCHAP_MAX_HASH_LEN];
	size_t hlen = dhchap_hash_len(hash);
	int ret;

	if (!md)
		return -EINVAL;
	/* nvme_auth_augmented_challenge: HMAC keyed with H(g^xy mod p), over the challenge. */
	if (!EVP_Digest(skey, skey_len, hashed, NULL, md, NULL))
		return -EIO;
	ret = dhchap_hmac(hash, hashed, hlen, challenge, hlen, out);
	OPENSSL_cleanse(hashed, sizeof(hashed));
	return ret;
}

int dhchap_response(unsigned hash, const uint8_t *tkey, size_t tkey_len, const uint8_t *challenge,
		    uint32_t seqnum, uint16_t tid, bool controller, const char *hostnqn,
		    const char *subnqn, uint8_t *out)
{
	uint8_t data[DHCHAP_MAX_HASH_LEN + 4 + 2 + 1 + 10 + 2 * DHCHAP_NQN_MAX + 1];
	const char *first = controller ? subnqn : hostnqn;
	const char *second = controller ? hostnqn : subnqn;
	size_t hlen = dhchap_hash_len(hash), l1 = strlen(first), l2 = strlen(second), n = 0;

	if (!hlen || l1 >= DHCHAP_NQN_MAX || l2 >= DHCHAP_NQN_MAX)
		return -EINVAL;
	/* Host (nvmet_auth_host_hash, nvme_auth_dhchap_setup_host_response):
	 *   C1 || LE32(S1) || LE16(T_ID) || 00h || "HostHost" || NQNh || 00h || NQNc
	 * Controller (nvmet_auth_ctrl_hash, nvme_auth_dhchap_setup_ctrl_response):
	 *   C2 || LE32(S2) || LE16(T_ID) || 00h || "Controller" || NQNc || 00h || NQNh */
	memcpy(data, challenge, hlen);
	n = hlen;
	le32_put(data + n, seqnum);
	n += 4;
	le16_put(data + n, tid);
	n += 2;
	data[n++] = 0;
	if (controller) {
		memcpy(data + n, "Controller", 10);
		n += 10;
	} else {
		memcpy(data + n, "HostHost", 8);
		n += 8;
	}
	memcpy(data + n, first, l1);
	n += l1;
	data[n++] = 0;
	memcpy(data + n, second, l2);
	n += l2;
	return dhchap_hmac(hash, tkey, tkey_len, data, n, out);
}

/* ---- key agreement ---------------------------------------------------------------------- */

struct dhchap_dh {
	EVP_PKEY *pkey;
	unsigned group;
};

int dhchap_dh_generate(unsigned group, struct dhchap_dh **out)
{
	struct dhchap_dh *dh;
	EVP_PKEY_CTX *ctx;
	OSSL_PARAM params[2];
	int ret = -EIO;

	*out = NULL;
	if (group == DHCHAP_DHGROUP_NULL || group >= DHCHAP_DHGROUP_COUNT)
		return -EINVAL;
	dh = calloc(1, sizeof(*dh));
	if (!dh)
		return -ENOMEM;
	dh->group = group;
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
	if (!ctx)
		goto free_dh;
	/* RFC 7919 named groups, as the kernel's "ffdheNNNN(dh)" kpp templates. */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
						     (char *)dhchap_groups[group].name, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_CTX_set_params(ctx, params) <= 0 ||
	    EVP_PKEY_generate(ctx, &dh->pkey) <= 0)
		goto free_ctx;
	ret = 0;
	*out = dh;
free_ctx:
	EVP_PKEY_CTX_free(ctx);
free_dh:
	if (ret)
		free(dh);
	return ret;
}

int dhchap_dh_public(const struct dhchap_dh *dh, uint8_t *buf, size_t len)
{
	BIGNUM *pub = NULL;
	int ret = -EIO;

	if (len != dhchap_groups[dh->group].len || len > INT32_MAX)
		return -EINVAL;
	if (EVP_PKEY_get_bn_param(dh->pkey, OSSL_PKEY_PARAM_PUB_KEY, &pub) <= 0)
		return -EIO;
	if (BN_bn2binpad(pub, buf, (int)len) == (int)len)
		ret = 0;
	BN_free(pub);
	return ret;
}

int dhchap_dh_shared(const struct dhchap_dh *dh, const uint8_t *peer, size_t peer_len, uint8_t *out,
		     size_t len)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL, *dctx = NULL;
	EVP_PKEY *peer_key = NULL;
	BIGNUM *pub = NULL;
	size_t out_len = len;
	int ret = -EIO;

	if (len != dhchap_groups[dh->group].len || peer_len != len || len > INT32_MAX)
		return -EINVAL;
	pub = BN_bin2bn(peer, (int)peer_len, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!pub || !bld)
		goto out;
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					     dhchap_groups[dh->group].name, 0) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, pub))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	pctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
	if (!params || !pctx || EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, &peer_key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	dctx = EVP_PKEY_CTX_new_from_pkey(NULL, dh->pkey, NULL);
	if (!dctx || EVP_PKEY_derive_init(dctx) <= 0)
		goto out;
	/* The kernel's dh writes g^xy mod p left-padded to the size of p (mpi_write_to_sgl);
	 * OpenSSL strips leading zeroes unless asked to pad. */
	if (EVP_PKEY_CTX_set_dh_pad(dctx, 1) <= 0)
		goto out;
	/* Validate the peer's value (1 < y < p - 1, y^q = 1), as the kernel's dh does. */
	if (EVP_PKEY_derive_set_peer_ex(dctx, peer_key, 1) <= 0) {
		ret = -EINVAL;
		goto out;
	}
	if (EVP_PKEY_derive(dctx, out, &out_len) <= 0 || out_len != len)
		goto out;
	ret = 0;
out:
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(peer_key);
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(pub);
	return ret;
}

void dhchap_dh_free(struct dhchap_dh *dh)
{
	if (!dh)
		return;
	EVP_PKEY_free(dh->pkey);
	free(dh);
}

/* ---- sessions (shared by both roles) ---------------------------------------------------- */

static int session_init(struct dhchap_session *s, const struct dhchap_params *p)
{
	memset(s, 0, sizeof(*s));
	if (!p->host_key || !p->hostnqn || !p->subnqn || strlen(p->hostnqn) >= DHCHAP_NQN_MAX ||
	    strlen(p->subnqn) >= DHCHAP_NQN_MAX || p->nr_hashes > DHCHAP_HASH_COUNT ||
	    p->nr_dhgroups > DHCHAP_DHGROUP_COUNT)
		return -EINVAL;
	snprintf(s->hostnqn, sizeof(s->hostnqn), "%s", p->hostnqn);
	snprintf(s->subnqn, sizeof(s->subnqn), "%s", p->subnqn);
	s->host_key = *p->host_key;
	if (p->ctrl_key) {
		s->ctrl_key = *p->ctrl_key;
		s->has_ctrl_key = true;
	}
	for (unsigned i = 0; i < p->nr_hashes; i++) {
		if (!dhchap_hash_len(p->hashes[i]))
			return -EINVAL;
		s->hashes[s->nr_hashes++] = p->hashes[i];
	}
	for (unsigned i = 0; i < p->nr_dhgroups; i++) {
		if (p->dhgroups[i] >= DHCHAP_DHGROUP_COUNT)
			return -EINVAL;
		s->dhgroups[s->nr_dhgroups++] = p->dhgroups[i];
	}
	if (!s->nr_hashes) {
		for (unsigned i = DHCHAP_HASH_SHA256; i < DHCHAP_HASH_COUNT; i++)
			s->hashes[s->nr_hashes++] = (uint8_t)i;
	}
	if (!s->nr_dhgroups) {
		for (unsigned i = 0; i < DHCHAP_DHGROUP_COUNT; i++)
			s->dhgroups[s->nr_dhgroups++] = (uint8_t)i;
	}
	return 0;
}

/* Forget the transaction's secrets (keys and lists stay). */
static void session_clear(struct dhchap_session *s)
{
	dhchap_dh_free(s->dh);
	s->dh = NULL;
	OPENSSL_cleanse(s->c1, sizeof(s->c1));
	OPENSSL_cleanse(s->c2, sizeof(s->c2));
	OPENSSL_cleanse(s->skey, sizeof(s->skey));
	s->skey_len = 0;
	s->bidi = false;
	s->s1 = s->s2 = 0;
}

static void session_fini(struct dhchap_session *s)
{
	session_clear(s);
	OPENSSL_cleanse(s, sizeof(*s));
}

static bool session_has(const uint8_t *list, unsigned n, uint8_t id)
{
	for (unsigned i = 0; i < n; i++) {
		if (list[i] == id)
			return true;
	}
	return false;
}

static uint32_t session_seqnum(void)
{
	uint32_t v = 0;

	/* Any non-zero value: 0 in the Reply means "no controller authentication". */
	while (v == 0) {
		if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
			return 1;
	}
	return v;
}

/* Response to challenge (C1 or C2, augmented with the session key if a DH group is used). */
static int session_response(const struct dhchap_session *s, bool controller, uint8_t *out)
{
	uint8_t tkey[DHCHAP_MAX_KEY_LEN], aug[DHCHAP_MAX_HASH_LEN];
	const struct dhchap_key *key = controller ? &s->ctrl_key : &s->host_key;
	const uint8_t *challenge = controller ? s->c2 : s->c1;
	size_t tkey_len;
	int ret;

	/* The host key is transformed with NQNh, the controller key with NQNc
	 * (nvmet_auth_host_hash / nvmet_auth_ctrl_hash). */
	ret = dhchap_key_transform(key, controller ? s->subnqn : s->hostnqn, tkey, &tkey_len);
	if (ret)
		return ret;
	if (s->dhgroup != DHCHAP_DHGROUP_NULL) {
		ret = dhchap_augmented_challenge(s->hash, s->skey, s->skey_len, challenge, aug);
		if (ret)
			goto out;
		challenge = aug;
	}
	ret = dhchap_response(s->hash, tkey, tkey_len, challenge, controller ? s->s2 : s->s1,
			      s->tid, controller, s->hostnqn, s->subnqn, out);
out:
	OPENSSL_cleanse(tkey, sizeof(tkey));
	OPENSSL_cleanse(aug, sizeof(aug));
	return ret;
}

/* ---- controller role -------------------------------------------------------------------- */

int dhchap_ctrl_init(struct dhchap_ctrl *c, const struct dhchap_params *p)
{
	int ret;

	memset(c, 0, sizeof(*c));
	ret = session_init(&c->s, p);
	c->state = DHCHAP_CTRL_NEGOTIATE;
	return ret;
}

void dhchap_ctrl_fini(struct dhchap_ctrl *c)
{
	session_fini(&c->s);
}

static void ctrl_fail(struct dhchap_ctrl *c, uint8_t why)
{
	c->status = why;
	c->authenticated = false;
	c->state = DHCHAP_CTRL_FAILURE1;
	session_clear(&c->s);
}

/* nvmet_auth_negotiate: one DH-HMAC-CHAP descriptor; pick the first hash and group of our
 * preference lists that the host offers. */
static uint8_t ctrl_negotiate(struct dhchap_ctrl *c, const uint8_t *msg, size_t len)
{
	const struct auth_negotiate *n = (const struct auth_negotiate *)msg;
	const struct auth_protocol_desc *d;
	struct dhchap_session *s = &c->s;
	bool found = false;

	if (len < sizeof(*n) + sizeof(*d))
		return AUTH_FAIL_INCORRECT_PAYLOAD;
	d = &n->desc[0];
	s->tid = le16_get(n->t_id);
	/* Secure channel concatenation needs TLS: not offered. */
	if (n->sc_c != AUTH_SC_C_NONE)
		return AUTH_FAIL_CONCAT_MISMATCH;
	if (n->napd != 1)
		return AUTH_FAIL_HASH_UNUSABLE;
	if (d->authid != AUTH_DHCHAP_AUTH_ID)
		return AUTH_FAIL_INCORRECT_PAYLOAD;
	if (d->halen > AUTH_MAX_HASH_IDS || d->dhlen > AUTH_MAX_DH_IDS)
		return AUTH_FAIL_INCORRECT_PAYLOAD;
	for (unsigned i = 0; i < s->nr_hashes && !found; i++) {
		if (session_has(d->idlist, d->halen, s->hashes[i])) {
			s->hash = s->hashes[i];
			found = true;
		}
	}
	if (!found)
		return AUTH_FAIL_HASH_UNUSABLE;
	found = false;
	for (unsigned i = 0; i < s->nr_dhgroups && !found; i++) {
		if (session_has(d->idlist + AUTH_MAX_HASH_IDS, d->dhlen, s->dhgroups[i])) {
			s->dhgroup = s->dhgroups[i];
			found = true;
		}
	}
	if (!found)
		return AUTH_FAIL_DHGROUP_UNUSABLE;
	return AUTH_FAIL_NONE;
}

/* nvmet_auth_reply: check the host's response, take C2 and S2 for controller authentication. */
static uint8_t ctrl_reply(struct dhchap_ctrl *c, const uint8_t *msg, size_t len)
{
	const struct auth_reply *r = (const struct auth_reply *)msg;
	struct dhchap_session *s = &c->s;
	uint8_t expected[DHCHAP_MAX_HASH_LEN];
	size_t hlen = dhchap_hash_len(s->hash), dhvlen;
	int ret;

	if (len < sizeof(*r))
		return AUTH_FAIL_INCORRECT_PAYLOAD;
	dhvlen = le16_get(r->dhvlen);
	if (r->hl != hlen || sizeof(*r) + 2 * hlen + dhvlen > len)
		return AUTH_FAIL_INCORRECT_PAYLOAD;
	if (dhvlen != dhchap_dhgroup_len(s->dhgroup))
		return AUTH_FAIL_INCORRECT_PAYLOAD;
	if (dhvlen) {
		s->skey_len = dhvlen;
		ret = dhchap_dh_shared(s->dh, r->rval + 2 * hlen, dhvlen, s->skey, s->skey_len);
		if (ret)
			return AUTH_FAIL_DHGROUP_UNUSABLE;
	}
	if (session_response(s, false, expected))
		return AUTH_FAIL_FAILED;
	ret = CRYPTO_memcmp(expected, r->rval, hlen);
	OPENSSL_cleanse(expected, sizeof(expected));
	if (ret)
		return AUTH_FAIL_FAILED;
	s->s2 = le32_get(r->seqnum);
	s->bidi = r->cvalid && s->s2 != 0;
	if (s->bidi) {
		/* The host asks us to prove our key: we need one. */
		if (!s->has_ctrl_key)
			return AUTH_FAIL_FAILED;
		memcpy(s->c2, r->rval + hlen, hlen);
	}
	return AUTH_FAIL_NONE;
}

int dhchap_ctrl_send(struct dhchap_ctrl *c, const void *msg, size_t len)
{
	const struct auth_hdr *h = msg;
	uint8_t why;

	if (len < sizeof(*h)) {
		ctrl_fail(c, AUTH_FAIL_INCORRECT_PAYLOAD);
		return 0;
	}
	if (h->auth_type == AUTH_TYPE_COMMON && h->auth_id == AUTH_MSG_NEGOTIATE) {
		/* Always allowed: a new Negotiate starts (or restarts) a transaction, which is
		 * how the host asks for re-authentication. */
		session_clear(&c->s);
		c->status = 0;
		why = ctrl_negotiate(c, msg, len);
		if (why) {
			ctrl_fail(c, why);
			return 0;
		}
		c->state = DHCHAP_CTRL_CHALLENGE;
		return 0;
	}
	if (h->auth_type == AUTH_TYPE_COMMON && h->auth_id == AUTH_MSG_FAILURE2) {
		/* The host rejected us (controller authentication failed): the transaction is
		 * over and the queue is not authenticated. */
		c->status = len >= sizeof(struct auth_failure)
				    ? ((const struct auth_failure *)msg)->rescode_exp
				    : AUTH_FAIL_FAILED;
		c->authenticated = false;
		c->state = DHCHAP_CTRL_DONE;
		session_clear(&c->s);
		return 0;
	}
	if (h->auth_type != AUTH_TYPE_DHCHAP ||
	    !((h->auth_id == AUTH_MSG_REPLY && c->state == DHCHAP_CTRL_REPLY) ||
	      (h->auth_id == AUTH_MSG_SUCCESS2 && c->state == DHCHAP_CTRL_SUCCESS2))) {
		ctrl_fail(c, AUTH_FAIL_INCORRECT_MESSAGE);
		return 0;
	}
	if (le16_get(h->t_id) != c->s.tid) {
		ctrl_fail(c, AUTH_FAIL_INCORRECT_PAYLOAD);
		return 0;
	}
	if (h->auth_id == AUTH_MSG_SUCCESS2) {
		c->authenticated = true;
		c->transactions_ok++;
		c->state = DHCHAP_CTRL_DONE;
		session_clear(&c->s);
		return 0;
	}
	why = ctrl_reply(c, msg, len);
	if (why) {
		ctrl_fail(c, why);
		return 0;
	}
	c->state = DHCHAP_CTRL_SUCCESS1;
	return 0;
}

static int ctrl_challenge(struct dhchap_ctrl *c, uint8_t *buf, size_t al)
{
	struct auth_challenge *m = (struct auth_challenge *)buf;
	struct dhchap_session *s = &c->s;
	size_t hlen = dhchap_hash_len(s->hash), dhvlen = dhchap_dhgroup_len(s->dhgroup);
	size_t len = sizeof(*m) + hlen + dhvlen;
	int ret;

	if (al < len)
		return -ENOSPC;
	/* nvmet_auth_challenge: fresh S1 and C1 per transaction; a fresh DH key pair too. */
	if (s->dhgroup != DHCHAP_DHGROUP_NULL && !s->dh) {
		ret = dhchap_dh_generate(s->dhgroup, &s->dh);
		if (ret)
			return -EIO;
	}
	memset(m, 0, len);
	s->s1 = session_seqnum();
	if (RAND_bytes(s->c1, (int)hlen) != 1)
		return -EIO;
	m->auth_type = AUTH_TYPE_DHCHAP;
	m->auth_id = AUTH_MSG_CHALLENGE;
	le16_put(m->t_id, s->tid);
	m->hl = (uint8_t)hlen;
	m->hashid = s->hash;
	m->dhgid = s->dhgroup;
	le16_put(m->dhvlen, (uint16_t)dhvlen);
	le32_put(m->seqnum, s->s1);
	memcpy(m->cval, s->c1, hlen);
	if (dhvlen && dhchap_dh_public(s->dh, m->cval + hlen, dhvlen))
		return -EIO;
	return (int)len;
}

static int ctrl_success1(struct dhchap_ctrl *c, uint8_t *buf, size_t al)
{
	struct auth_success1 *m = (struct auth_success1 *)buf;
	struct dhchap_session *s = &c->s;
	size_t hlen = dhchap_hash_len(s->hash);
	size_t len = sizeof(*m) + hlen;

	/* nvmet_auth_success1 sends hl bytes of response space even when R2 is not valid (the
	 * kernel host sizes its check that way). */
	if (al < len)
		return -ENOSPC;
	memset(m, 0, len);
	m->auth_type = AUTH_TYPE_DHCHAP;
	m->auth_id = AUTH_MSG_SUCCESS1;
	le16_put(m->t_id, s->tid);
	m->hl = (uint8_t)hlen;
	if (s->bidi) {
		if (session_response(s, true, m->rval))
			return -EIO;
		m->rvalid = 1;
	}
	return (int)len;
}

static int ctrl_failure1(struct dhchap_ctrl *c, uint8_t *buf, size_t al)
{
	struct auth_failure *m = (struct auth_failure *)buf;

	if (al < sizeof(*m))
		return -ENOSPC;
	memset(m, 0, sizeof(*m));
	m->auth_type = AUTH_TYPE_COMMON;
	m->auth_id = AUTH_MSG_FAILURE1;
	le16_put(m->t_id, c->s.tid);
	m->rescode = AUTH_REASON_FAILED;
	m->rescode_exp = c->status ? c->status : AUTH_FAIL_FAILED;
	return (int)sizeof(*m);
}

int dhchap_ctrl_recv(struct dhchap_ctrl *c, void *buf, size_t al)
{
	int ret;

	switch (c->state) {
	case DHCHAP_CTRL_CHALLENGE:
		ret = ctrl_challenge(c, buf, al);
		if (ret > 0)
			c->state = DHCHAP_CTRL_REPLY;
		return ret;
	case DHCHAP_CTRL_SUCCESS1:
		ret = ctrl_success1(c, buf, al);
		if (ret <= 0)
			return ret;
		if (c->s.bidi) {
			c->state = DHCHAP_CTRL_SUCCESS2;
		} else {
			/* Unidirectional: done once the host has Success1. */
			c->authenticated = true;
			c->transactions_ok++;
			c->state = DHCHAP_CTRL_DONE;
			session_clear(&c->s);
		}
		return ret;
	case DHCHAP_CTRL_FAILURE1:
		ret = ctrl_failure1(c, buf, al);
		if (ret > 0)
			c->state = DHCHAP_CTRL_DONE;
		return ret;
	default:
		/* A Receive the protocol does not expect here (nvmet: "unhandled step"). */
		if (al < sizeof(struct auth_failure))
			return -ENOSPC;
		ctrl_fail(c, AUTH_FAIL_INCORRECT_MESSAGE);
		ret = ctrl_failure1(c, buf, al);
		c->state = DHCHAP_CTRL_DONE;
		return ret;
	}
}

/* ---- host role -------------------------------------------------------------------------- */

int dhchap_host_init(struct dhchap_host *h, const struct dhchap_params *p, uint16_t tid)
{
	int ret;

	memset(h, 0, sizeof(*h));
	ret = session_init(&h->s, p);
	h->s.tid = tid;
	h->state = DHCHAP_HOST_NEGOTIATE;
	return ret;
}

void dhchap_host_fini(struct dhchap_host *h)
{
	session_fini(&h->s);
}

bool dhchap_host_wants_send(const struct dhchap_host *h)
{
	return h->state == DHCHAP_HOST_NEGOTIATE || h->state == DHCHAP_HOST_REPLY ||
	       h->state == DHCHAP_HOST_SUCCESS2 || h->state == DHCHAP_HOST_FAILURE2;
}

bool dhchap_host_finished(const struct dhchap_host *h)
{
	return h->state == DHCHAP_HOST_DONE || h->state == DHCHAP_HOST_FAILED;
}

static void host_fail(struct dhchap_host *h, uint8_t why, bool send_failure2)
{
	h->status = why;
	h->state = send_failure2 ? DHCHAP_HOST_FAILURE2 : DHCHAP_HOST_FAILED;
}

static int host_negotiate(struct dhchap_host *h, uint8_t *buf, size_t cap)
{
	struct auth_negotiate *m = (struct auth_negotiate *)buf;
	struct auth_protocol_desc *d;
	const struct dhchap_session *s = &h->s;

	if (cap < DHCHAP_NEGOTIATE_LEN)
		return -ENOSPC;
	memset(buf, 0, DHCHAP_NEGOTIATE_LEN);
	d = &m->desc[0];
	/* nvme_auth_set_dhchap_negotiate_data: one descriptor, hashes then groups. */
	m->auth_type = AUTH_TYPE_COMMON;
	m->auth_id = AUTH_MSG_NEGOTIATE;
	le16_put(m->t_id, s->tid);
	m->sc_c = AUTH_SC_C_NONE;
	m->napd = 1;
	d->authid = AUTH_DHCHAP_AUTH_ID;
	d->halen = s->nr_hashes;
	memcpy(d->idlist, s->hashes, s->nr_hashes);
	d->dhlen = s->nr_dhgroups;
	memcpy(d->idlist + AUTH_MAX_HASH_IDS, s->dhgroups, s->nr_dhgroups);
	h->state = DHCHAP_HOST_CHALLENGE;
	return (int)DHCHAP_NEGOTIATE_LEN;
}

/* nvme_auth_process_dhchap_challenge: check what the controller chose, take C1, S1, g^y. */
static int host_challenge(struct dhchap_host *h, const uint8_t *msg, size_t len)
{
	const struct auth_challenge *m = (const struct auth_challenge *)msg;
	struct dhchap_session *s = &h->s;
	size_t hlen, dhvlen;

	if (len < sizeof(*m)) {
		host_fail(h, AUTH_FAIL_INCORRECT_PAYLOAD, true);
		return 0;
	}
	hlen = dhchap_hash_len(m->hashid);
	dhvlen = le16_get(m->dhvlen);
	if (!hlen || !session_has(s->hashes, s->nr_hashes, m->hashid) || m->hl != hlen) {
		host_fail(h, AUTH_FAIL_HASH_UNUSABLE, true);
		return 0;
	}
	if (m->dhgid >= DHCHAP_DHGROUP_COUNT ||
	    !session_has(s->dhgroups, s->nr_dhgroups, m->dhgid) ||
	    dhvlen != dhchap_dhgroup_len(m->dhgid)) {
		host_fail(h, AUTH_FAIL_DHGROUP_UNUSABLE, true);
		return 0;
	}
	if (sizeof(*m) + hlen + dhvlen > len) {
		host_fail(h, AUTH_FAIL_INCORRECT_PAYLOAD, true);
		return 0;
	}
	s->hash = m->hashid;
	s->dhgroup = m->dhgid;
	s->s1 = le32_get(m->seqnum);
	memcpy(s->c1, m->cval, hlen);
	if (dhvlen) {
		int ret = dhchap_dh_generate(s->dhgroup, &s->dh);

		if (ret)
			return -EIO;
		s->skey_len = dhvlen;
		if (dhchap_dh_shared(s->dh, m->cval + hlen, dhvlen, s->skey, s->skey_len)) {
			host_fail(h, AUTH_FAIL_DHGROUP_UNUSABLE, true);
			return 0;
		}
	}
	h->state = DHCHAP_HOST_REPLY;
	return 0;
}

static int host_reply(struct dhchap_host *h, uint8_t *buf, size_t cap)
{
	struct auth_reply *m = (struct auth_reply *)buf;
	struct dhchap_session *s = &h->s;
	size_t hlen = dhchap_hash_len(s->hash), dhvlen = dhchap_dhgroup_len(s->dhgroup);
	size_t len = sizeof(*m) + 2 * hlen + dhvlen;

	if (cap < len)
		return -ENOSPC;
	memset(buf, 0, len);
	m->auth_type = AUTH_TYPE_DHCHAP;
	m->auth_id = AUTH_MSG_REPLY;
	le16_put(m->t_id, s->tid);
	m->hl = (uint8_t)hlen;
	le16_put(m->dhvlen, (uint16_t)dhvlen);
	if (session_response(s, false, m->rval))
		return -EIO;
	/* nvme_auth_set_dhchap_reply_data: with a controller key, a fresh S2 and C2. */
	if (s->has_ctrl_key) {
		s->s2 = session_seqnum();
		if (RAND_bytes(s->c2, (int)hlen) != 1)
			return -EIO;
		s->bidi = true;
		m->cvalid = 1;
		memcpy(m->rval + hlen, s->c2, hlen);
	}
	le32_put(m->seqnum, s->s2);
	if (dhvlen && dhchap_dh_public(s->dh, m->rval + 2 * hlen, dhvlen))
		return -EIO;
	h->state = DHCHAP_HOST_SUCCESS1;
	return (int)len;
}

/* nvme_auth_process_dhchap_success1: with a controller key, R2 must be valid and match. */
static int host_success1(struct dhchap_host *h, const uint8_t *msg, size_t len)
{
	const struct auth_success1 *m = (const struct auth_success1 *)msg;
	struct dhchap_session *s = &h->s;
	uint8_t expected[DHCHAP_MAX_HASH_LEN];
	size_t hlen = dhchap_hash_len(s->hash);
	int diff;

	if (len < sizeof(*m) + (s->bidi ? hlen : 0) || m->hl != hlen) {
		host_fail(h, AUTH_FAIL_INCORRECT_PAYLOAD, true);
		return 0;
	}
	if (!s->bidi) {
		h->state = DHCHAP_HOST_DONE;
		session_clear(s);
		return 0;
	}
	if (!m->rvalid) {
		host_fail(h, AUTH_FAIL_FAILED, true);
		return 0;
	}
	if (session_response(s, true, expected))
		return -EIO;
	diff = CRYPTO_memcmp(expected, m->rval, hlen);
	OPENSSL_cleanse(expected, sizeof(expected));
	if (diff) {
		host_fail(h, AUTH_FAIL_FAILED, true);
		return 0;
	}
	h->state = DHCHAP_HOST_SUCCESS2;
	return 0;
}

int dhchap_host_send(struct dhchap_host *h, void *buf, size_t cap)
{
	switch (h->state) {
	case DHCHAP_HOST_NEGOTIATE:
		return host_negotiate(h, buf, cap);
	case DHCHAP_HOST_REPLY:
		return host_reply(h, buf, cap);
	case DHCHAP_HOST_SUCCESS2: {
		struct auth_success2 *m = buf;

		if (cap < sizeof(*m))
			return -ENOSPC;
		memset(m, 0, sizeof(*m));
		m->auth_type = AUTH_TYPE_DHCHAP;
		m->auth_id = AUTH_MSG_SUCCESS2;
		le16_put(m->t_id, h->s.tid);
		h->state = DHCHAP_HOST_DONE;
		session_clear(&h->s);
		return (int)sizeof(*m);
	}
	case DHCHAP_HOST_FAILURE2: {
		struct auth_failure *m = buf;

		if (cap < sizeof(*m))
			return -ENOSPC;
		memset(m, 0, sizeof(*m));
		m->auth_type = AUTH_TYPE_COMMON;
		m->auth_id = AUTH_MSG_FAILURE2;
		le16_put(m->t_id, h->s.tid);
		m->rescode = AUTH_REASON_FAILED;
		m->rescode_exp = h->status;
		h->state = DHCHAP_HOST_FAILED;
		session_clear(&h->s);
		return (int)sizeof(*m);
	}
	default:
		return -EINVAL;
	}
}

int dhchap_host_recv(struct dhchap_host *h, const void *msg, size_t len)
{
	const struct auth_hdr *hd = msg;

	if (h->state != DHCHAP_HOST_CHALLENGE && h->state != DHCHAP_HOST_SUCCESS1)
		return -EINVAL;
	if (len < sizeof(*hd)) {
		host_fail(h, AUTH_FAIL_INCORRECT_PAYLOAD, true);
		return 0;
	}
	/* nvme_auth_receive_validate: a Failure1 ends the transaction, nothing more is sent. */
	if (hd->auth_type == AUTH_TYPE_COMMON && hd->auth_id == AUTH_MSG_FAILURE1) {
		h->peer_failure = true;
		host_fail(h,
			  len >= sizeof(struct auth_failure)
				  ? ((const struct auth_failure *)msg)->rescode_exp
				  : AUTH_FAIL_FAILED,
			  false);
		session_clear(&h->s);
		return 0;
	}
	if (hd->auth_type != AUTH_TYPE_DHCHAP || le16_get(hd->t_id) != h->s.tid ||
	    hd->auth_id !=
		    (h->state == DHCHAP_HOST_CHALLENGE ? AUTH_MSG_CHALLENGE : AUTH_MSG_SUCCESS1)) {
		host_fail(h, AUTH_FAIL_INCORRECT_MESSAGE, true);
		return 0;
	}
	if (h->state == DHCHAP_HOST_CHALLENGE)
		return host_challenge(h, msg, len);
	return host_success1(h, msg, len);
}
