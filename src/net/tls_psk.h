/* NVMe/TCP TLS pre-shared keys: the PSK interchange format ("NVMeTLSkey-1:hh:<base64>:"), the
 * retained PSK, PSK identities (v0 "NVMe0Rhh <hostnqn> <subnqn>", v1 adds a PSK digest) and the
 * TLS PSK, derived as the NVMe TCP transport specification (TP 8011/8018), libnvme and the Linux
 * kernel do: RFC 5869 HKDF with RFC 8446 HkdfLabel info. Layer: net. Pure apart from OpenSSL's
 * KDF/MAC primitives; no I/O, no allocation kept, thread-safe. Keys are never logged. */
#ifndef NVTCP_NET_TLS_PSK_H
#define NVTCP_NET_TLS_PSK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_PSK_MAX		48  /* bytes of a configured, retained or TLS PSK */
#define TLS_PSK_DIGEST_MAX	65  /* base64 of a SHA-384 HMAC (64) + NUL */
#define TLS_PSK_NQN_MAX		256 /* an NQN with its NUL (NVME_NQN_MAX) */
#define TLS_PSK_IDENTITY_MAX	(9 + 2 * TLS_PSK_NQN_MAX + TLS_PSK_DIGEST_MAX)
#define TLS_PSK_INTERCHANGE_MAX 96 /* "NVMeTLSkey-1:02:" + 72 base64 + ":" + NUL */

/* Hash specifier "hh": in the interchange format the transform of the configured PSK into the
 * retained PSK (NONE = used as is); in an identity the hash of the TLS cipher suite. */
enum tls_psk_hash {
	TLS_PSK_HASH_NONE = 0,
	TLS_PSK_HASH_SHA256 = 1, /* TLS_AES_128_GCM_SHA256, 32-byte PSKs */
	TLS_PSK_HASH_SHA384 = 2, /* TLS_AES_256_GCM_SHA384, 48-byte PSKs */
	TLS_PSK_HASH_COUNT
};

/* A configured PSK as read from its interchange string. Holds key material: callers wipe it
 * (tls_psk_wipe) when done. */
struct tls_psk_key {
	uint8_t key[TLS_PSK_MAX];
	size_t len;		/* 32 or 48 */
	enum tls_psk_hash hmac; /* the hh field */
};

/* A PSK identity split into its fields (pointers into nothing: copies). */
struct tls_psk_identity {
	int version;		/* 0 or 1 */
	enum tls_psk_hash hash; /* 01 or 02 */
	char hostnqn[TLS_PSK_NQN_MAX];
	char subnqn[TLS_PSK_NQN_MAX];
	char digest[TLS_PSK_DIGEST_MAX]; /* v1 only, "" for v0 */
};

/* Parse and validate an interchange string (CRC-32, hh, length; leading/trailing whitespace
 * such as a key file's newline is ignored). Returns 0, -EINVAL (not the format, or bad
 * base64), -EBADMSG (CRC mismatch), -ERANGE (length not 32/48 or not matching hh). */
int tls_psk_parse(const char *str, struct tls_psk_key *out);
/* A one-line explanation of a tls_psk_parse error, for messages naming the key's origin. */
const char *tls_psk_parse_strerror(int err);
/* Write k in the interchange format into buf. Returns the length or -ENOSPC. */
int tls_psk_format(const struct tls_psk_key *k, char *buf, size_t buflen);

/* Hash of the TLS cipher suite a key is used with: its hh, or by length when hh is 00. */
enum tls_psk_hash tls_psk_key_hash(const struct tls_psk_key *k);
/* 32 for SHA-256, 48 for SHA-384, 0 otherwise. */
size_t tls_psk_hash_len(enum tls_psk_hash h);

/* Retained PSK = HKDF-Expand-Label(HKDF-Extract(0, configured), "HostNQN", hostnqn, len) with
 * the hh hash, or the configured PSK itself for hh 00. out gets k->len bytes. Returns the
 * length or -errno. */
int tls_psk_retained(const struct tls_psk_key *k, const char *hostnqn, uint8_t *out);
/* PSK digest for v1 identities: base64(HMAC-hash(retained, hostnqn " " subnqn
 * " NVMe-over-Fabrics")). Returns the string length or -errno. */
int tls_psk_digest(enum tls_psk_hash h, const uint8_t *retained, size_t len, const char *hostnqn,
		   const char *subnqn, char *out, size_t outlen);
/* TLS PSK = HKDF-Expand-Label(HKDF-Extract(0, retained), "nvme-tls-psk", context, len) where
 * context is the identity (v0) or "hh <digest>" (v1). Returns the length or -errno. */
int tls_psk_tls_key(enum tls_psk_hash h, const uint8_t *retained, size_t len, int version,
		    const char *identity, const char *digest, uint8_t *out);

/* Everything a host needs for one connection: identity (NUL-terminated) and TLS PSK (*psk_len
 * bytes, the cipher suite's hash length) for key k between hostnqn and subnqn. Returns 0 or
 * -errno (-EINVAL for a version other than 0/1 or over-long NQNs). */
int tls_psk_derive(const struct tls_psk_key *k, const char *hostnqn, const char *subnqn,
		   int version, char *identity, size_t idlen, uint8_t *psk, size_t *psk_len);

/* Split an identity as received in a ClientHello (len bytes, maybe with a trailing NUL).
 * Returns 0 or -EINVAL. */
int tls_psk_identity_parse(const uint8_t *id, size_t len, struct tls_psk_identity *out);

/* Overwrite key material (not optimised away). */
void tls_psk_wipe(void *p, size_t len);

#endif
