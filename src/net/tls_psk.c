/* NVMe/TCP TLS PSKs: interchange format, retained PSK, identities and TLS PSK derivation.
 * Layer: net. The HkdfLabel is built as RFC 8446 section 7.1 defines it (big-endian length,
 * length-prefixed "tls13 "-label and context), which is what the Linux kernel, SPDK and libnvme
 * (since its "compat" fix) compute. Key material lives on the caller's stack and is wiped. */
#include "../common/secret.h"
#include "tls_psk.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#define TLS_PSK_PREFIX "NVMeTLSkey-1:"

void tls_psk_wipe(void *p, size_t len)
{
	volatile uint8_t *b = p;

	while (len--)
		*b++ = 0;
}

size_t tls_psk_hash_len(enum tls_psk_hash h)
{
	return h == TLS_PSK_HASH_SHA256 ? 32 : h == TLS_PSK_HASH_SHA384 ? 48 : 0;
}

static const char *tls_psk_md_name(enum tls_psk_hash h)
{
	return h == TLS_PSK_HASH_SHA256 ? "SHA256" : h == TLS_PSK_HASH_SHA384 ? "SHA384" : NULL;
}

enum tls_psk_hash tls_psk_key_hash(const struct tls_psk_key *k)
{
	if (k->hmac != TLS_PSK_HASH_NONE)
		return k->hmac;
	return k->len == 48 ? TLS_PSK_HASH_SHA384 : TLS_PSK_HASH_SHA256;
}

/* ---- interchange format ------------------------------------------------------------------ */

const char *tls_psk_parse_strerror(int err)
{
	switch (err) {
	case 0:
		return "valid";
	case -EBADMSG:
		return "CRC-32 mismatch (key damaged or mistyped)";
	case -ERANGE:
		return "key length must be 32 or 48 bytes (32 for hh 01, 48 for hh 02)";
	default:
		return "not a PSK in interchange format \"NVMeTLSkey-1:hh:<base64>:\" with hh 00, "
		       "01 or 02";
	}
}

int tls_psk_parse(const char *str, struct tls_psk_key *out)
{
	uint8_t raw[TLS_PSK_MAX];
	const char *b64, *end;
	size_t n, plen = strlen(TLS_PSK_PREFIX);
	int hh, dec;

	memset(out, 0, sizeof(*out));
	while (isspace((unsigned char)*str))
		str++;
	end = str + strlen(str);
	while (end > str && isspace((unsigned char)end[-1]))
		end--;
	if ((size_t)(end - str) < plen + 4 || strncmp(str, TLS_PSK_PREFIX, plen) != 0)
		return -EINVAL;
	if (!isdigit((unsigned char)str[plen]) || !isdigit((unsigned char)str[plen + 1]) ||
	    str[plen + 2] != ':' || end[-1] != ':')
		return -EINVAL;
	hh = (str[plen] - '0') * 10 + (str[plen + 1] - '0');
	if (hh >= TLS_PSK_HASH_COUNT)
		return -EINVAL;
	b64 = str + plen + 3;
	n = (size_t)(end - 1 - b64);
	/* 36 bytes encode to 48 characters, 52 bytes to 72 */
	if (n != 48 && n != 72)
		return n % 4 == 0 && n > 0 && n < 4 * sizeof(raw) / 3 ? -ERANGE : -EINVAL;
	dec = secret_decode(b64, n, raw, sizeof(raw));
	if (dec < 0)
		return dec;
	n = (size_t)dec;
	if (n != 32 && n != 48) {
		tls_psk_wipe(raw, sizeof(raw));
		return -ERANGE;
	}
	if ((hh == TLS_PSK_HASH_SHA256 && n != 32) || (hh == TLS_PSK_HASH_SHA384 && n != 48)) {
		tls_psk_wipe(raw, sizeof(raw));
		return -ERANGE;
	}
	memcpy(out->key, raw, n);
	out->len = n;
	out->hmac = (enum tls_psk_hash)hh;
	tls_psk_wipe(raw, sizeof(raw));
	return 0;
}

int tls_psk_format(const struct tls_psk_key *k, char *buf, size_t buflen)
{
	char b64[80];
	int n, len;

	if (k->len != 32 && k->len != 48)
		return -EINVAL;
	n = secret_encode(k->key, k->len, b64, sizeof(b64));
	if (n < 0)
		return n;
	len = snprintf(buf, buflen, "%s%02d:%.*s:", TLS_PSK_PREFIX, (int)k->hmac, n, b64);
	tls_psk_wipe(b64, sizeof(b64));
	return len < 0 || (size_t)len >= buflen ? -ENOSPC : len;
}

/* ---- HKDF ------------------------------------------------------------------------------- */

/* out = HKDF-Expand-Label(HKDF-Extract(salt 0, key), label, ctx1 || ctx2, outlen): the salt
 * left out means a hash-length string of zeros (RFC 5869 2.2), as the specification asks. */
static int tls_psk_hkdf_label(enum tls_psk_hash h, const uint8_t *key, size_t keylen,
			      const char *label, const char *ctx1, const char *ctx2, uint8_t *out,
			      size_t outlen)
{
	/* struct { uint16 length; opaque label<7..255>; opaque context<0..255>; } HkdfLabel */
	uint8_t info[2 + 1 + 255 + 1 + 255];
	size_t llen = 6 + strlen(label), c1 = strlen(ctx1), c2 = ctx2 ? strlen(ctx2) : 0, pos = 0;
	const char *md = tls_psk_md_name(h);
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[4];
	int ret = -EIO;

	if (!md || llen > 255 || c1 + c2 > 255 || outlen > 0xffff)
		return -EINVAL;
	info[pos++] = (uint8_t)(outlen >> 8);
	info[pos++] = (uint8_t)outlen;
	info[pos++] = (uint8_t)llen;
	memcpy(info + pos, "tls13 ", 6);
	memcpy(info + pos + 6, label, llen - 6);
	pos += llen;
	info[pos++] = (uint8_t)(c1 + c2);
	memcpy(info + pos, ctx1, c1);
	pos += c1;
	if (c2)
		memcpy(info + pos, ctx2, c2);
	pos += c2;

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return -ENOSYS;
	kctx = EVP_KDF_CTX_new(kdf);
	if (!kctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, keylen);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, pos);
	params[3] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, outlen, params) == 1)
		ret = (int)outlen;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ret;
}

int tls_psk_retained(const struct tls_psk_key *k, const char *hostnqn, uint8_t *out)
{
	if (k->len != 32 && k->len != 48)
		return -EINVAL;
	if (k->hmac == TLS_PSK_HASH_NONE) {
		memcpy(out, k->key, k->len);
		return (int)k->len;
	}
	return tls_psk_hkdf_label(k->hmac, k->key, k->len, "HostNQN", hostnqn, NULL, out, k->len);
}

int tls_psk_digest(enum tls_psk_hash h, const uint8_t *retained, size_t len, const char *hostnqn,
		   const char *subnqn, char *out, size_t outlen)
{
	static const char seed[] = "NVMe-over-Fabrics";
	uint8_t mac[64];
	size_t maclen = 0;
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[2];
	const char *md = tls_psk_md_name(h);
	int ret = -EIO;

	if (!md) {
		ret = -EINVAL;
		goto out;
	}
	if (!ctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, retained, len, params) != 1 ||
	    EVP_MAC_update(ctx, (const uint8_t *)hostnqn, strlen(hostnqn)) != 1 ||
	    EVP_MAC_update(ctx, (const uint8_t *)" ", 1) != 1 ||
	    EVP_MAC_update(ctx, (const uint8_t *)subnqn, strlen(subnqn)) != 1 ||
	    EVP_MAC_update(ctx, (const uint8_t *)" ", 1) != 1 ||
	    EVP_MAC_update(ctx, (const uint8_t *)seed, strlen(seed)) != 1 ||
	    EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) != 1)
		goto out;
	if (outlen < 4 * ((maclen + 2) / 3) + 1) {
		ret = -ENOSPC;
		goto out;
	}
	ret = EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
out:
	tls_psk_wipe(mac, sizeof(mac));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	return ret;
}

int tls_psk_tls_key(enum tls_psk_hash h, const uint8_t *retained, size_t len, int version,
		    const char *identity, const char *digest, uint8_t *out)
{
	char hh[4];

	if (version == 0)
		return tls_psk_hkdf_label(h, retained, len, "nvme-tls-psk", identity, NULL, out,
					  len);
	if (version != 1 || !digest)
		return -EINVAL;
	snprintf(hh, sizeof(hh), "%02d ", (int)h);
	return tls_psk_hkdf_label(h, retained, len, "nvme-tls-psk", hh, digest, out, len);
}

int tls_psk_derive(const struct tls_psk_key *k, const char *hostnqn, const char *subnqn,
		   int version, char *identity, size_t idlen, uint8_t *psk, size_t *psk_len)
{
	enum tls_psk_hash h = tls_psk_key_hash(k);
	uint8_t retained[TLS_PSK_MAX];
	char digest[TLS_PSK_DIGEST_MAX] = "";
	int n, ret;

	if ((version != 0 && version != 1) || strlen(hostnqn) >= TLS_PSK_NQN_MAX ||
	    strlen(subnqn) >= TLS_PSK_NQN_MAX)
		return -EINVAL;
	/* the cipher suite's hash must produce a PSK of the key's length */
	if (tls_psk_hash_len(h) != k->len)
		return -ERANGE;
	ret = tls_psk_retained(k, hostnqn, retained);
	if (ret < 0)
		goto out;
	if (version == 1) {
		ret = tls_psk_digest(h, retained, k->len, hostnqn, subnqn, digest, sizeof(digest));
		if (ret < 0)
			goto out;
		n = snprintf(identity, idlen, "NVMe1R%02d %s %s %s", (int)h, hostnqn, subnqn,
			     digest);
	} else {
		n = snprintf(identity, idlen, "NVMe0R%02d %s %s", (int)h, hostnqn, subnqn);
	}
	if (n < 0 || (size_t)n >= idlen) {
		ret = -ENOSPC;
		goto out;
	}
	ret = tls_psk_tls_key(h, retained, k->len, version, identity, digest, psk);
	if (ret >= 0) {
		*psk_len = (size_t)ret;
		ret = 0;
	}
out:
	tls_psk_wipe(retained, sizeof(retained));
	return ret;
}

/* ---- identities -------------------------------------------------------------------------- */

/* Copy the next space-separated field of [*p, end) into dst; NUL and control bytes refused. */
static int tls_psk_identity_field(const uint8_t **p, const uint8_t *end, char *dst, size_t max)
{
	size_t n = 0;

	while (*p < end && **p != ' ') {
		if (**p < 0x21 || **p > 0x7e || n + 1 >= max)
			return -EINVAL;
		dst[n++] = (char)*(*p)++;
	}
	dst[n] = '\0';
	if (n == 0)
		return -EINVAL;
	if (*p < end)
		(*p)++; /* the space */
	return 0;
}

int tls_psk_identity_parse(const uint8_t *id, size_t len, struct tls_psk_identity *out)
{
	const uint8_t *p = id + 9, *end;

	memset(out, 0, sizeof(*out));
	/* the specification ends the identity with a NUL; peers send it or not */
	if (len > 0 && id[len - 1] == '\0')
		len--;
	end = id + len;
	if (len < 9 + 3 || memcmp(id, "NVMe", 4) != 0 || (id[4] != '0' && id[4] != '1') ||
	    id[5] != 'R' || id[6] != '0' || (id[7] != '1' && id[7] != '2') || id[8] != ' ')
		return -EINVAL;
	out->version = id[4] - '0';
	out->hash = (enum tls_psk_hash)(id[7] - '0');
	if (tls_psk_identity_field(&p, end, out->hostnqn, sizeof(out->hostnqn)) < 0 ||
	    tls_psk_identity_field(&p, end, out->subnqn, sizeof(out->subnqn)) < 0)
		return -EINVAL;
	if (out->version == 1 &&
	    tls_psk_identity_field(&p, end, out->digest, sizeof(out->digest)) < 0)
		return -EINVAL;
	return p == end && end[-1] != ' ' ? 0 : -EINVAL;
}
