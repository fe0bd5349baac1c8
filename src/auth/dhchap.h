/* DH-HMAC-CHAP for NVMe in-band authentication: DHHC-1 secrets, key transformation, FFDHE key
 * agreement, the HMAC responses, and one state machine object per queue for each role (the
 * controller answering Authentication Send/Receive, the host driving them).
 * Layer: auth. Pure apart from OpenSSL 3 (hashes, HMAC, DH, random numbers): no sockets, no
 * threads, no globals. The computations follow the Linux kernel byte for byte
 * (drivers/nvme/common/auth.c, host/auth.c, target/auth.c, target/fabrics-cmd-auth.c).
 *
 * Typical use, controller side (one struct dhchap_ctrl per queue, on the queue's thread):
 *   dhchap_ctrl_init(&c, &params);            once the queue is connected
 *   Authentication Send:    dhchap_ctrl_send(&c, data, tl)
 *   Authentication Receive: n = dhchap_ctrl_recv(&c, buf, al)
 *   c.authenticated says whether commands other than authentication may run.
 * Host side (one struct dhchap_host per queue and transaction):
 *   dhchap_host_init(&h, &params, tid);
 *   while (!dhchap_host_finished(&h)):
 *       if dhchap_host_wants_send(&h): n = dhchap_host_send(&h, buf, cap) -> Authentication Send
 *       else: Authentication Receive into buf, dhchap_host_recv(&h, buf, len)
 *   h.state == DHCHAP_HOST_DONE on success, DHCHAP_HOST_FAILED (h.status) otherwise. */
#ifndef NVTCP_AUTH_DHCHAP_H
#define NVTCP_AUTH_DHCHAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth_wire.h"

/* Hash function identifiers (HashID). */
enum dhchap_hash {
	DHCHAP_HASH_NONE = 0, /* in a DHHC-1 secret: key used untransformed */
	DHCHAP_HASH_SHA256 = 1,
	DHCHAP_HASH_SHA384 = 2,
	DHCHAP_HASH_SHA512 = 3,
	DHCHAP_HASH_COUNT
};

/* Diffie-Hellman group identifiers (DHGID), RFC 7919 groups. */
enum dhchap_dhgroup {
	DHCHAP_DHGROUP_NULL = 0, /* no key agreement */
	DHCHAP_DHGROUP_2048 = 1,
	DHCHAP_DHGROUP_3072 = 2,
	DHCHAP_DHGROUP_4096 = 3,
	DHCHAP_DHGROUP_6144 = 4,
	DHCHAP_DHGROUP_8192 = 5,
	DHCHAP_DHGROUP_COUNT
};

#define DHCHAP_MAX_HASH_LEN 64	 /* SHA-512 */
#define DHCHAP_MAX_KEY_LEN  64	 /* DHHC-1 keys are 32, 48 or 64 bytes */
#define DHCHAP_MAX_DH_LEN   1024 /* ffdhe8192 public value */
#define DHCHAP_NQN_MAX	    224	 /* 223 characters and the NUL */
#define DHCHAP_SECRET_MAX   128	 /* "DHHC-1:03:" + base64 of 68 bytes (92) + ":" + NUL */
/* Largest messages, for buffer sizing. */
#define DHCHAP_NEGOTIATE_LEN (sizeof(struct auth_negotiate) + sizeof(struct auth_protocol_desc))
#define DHCHAP_MAX_MSG_LEN   (sizeof(struct auth_reply) + 2 * DHCHAP_MAX_HASH_LEN + DHCHAP_MAX_DH_LEN)

/* A decoded DHHC-1 secret. */
struct dhchap_key {
	uint8_t key[DHCHAP_MAX_KEY_LEN];
	uint8_t len; /* 32, 48 or 64 */
	uint8_t hh;  /* transformation hash: enum dhchap_hash (0 = none) */
};

/* ---- secrets ---------------------------------------------------------------------------- */

/* Parse "DHHC-1:hh:base64(key || CRC-32(key) LE):" (the final ':' may be missing, as the kernel
 * accepts). Returns 0, -EINVAL for a malformed string or length, -EBADMSG for a CRC mismatch. */
int dhchap_key_parse(const char *secret, struct dhchap_key *key);
/* Encode key as a DHHC-1 secret into out (DHCHAP_SECRET_MAX bytes suffice). Returns the string
 * length, or -EINVAL / -ENOSPC. */
int dhchap_key_format(const struct dhchap_key *key, char *out, size_t outlen);
/* The key the responses use: the secret itself for hh 0, else HMAC-hh(secret, nqn ||
 * "NVMe-over-Fabrics") (nvme_auth_transform_key). out holds DHCHAP_MAX_KEY_LEN bytes; *out_len
 * is set. The host key is transformed with the host NQN, the controller key with the subsystem
 * NQN. Returns 0 or -EINVAL. */
int dhchap_key_transform(const struct dhchap_key *key, const char *nqn, uint8_t *out,
			 size_t *out_len);
/* CRC-32 (IEEE 802.3, as zlib's crc32) of buf, as carried in DHHC-1 secrets. */
uint32_t dhchap_crc32(const uint8_t *buf, size_t len);

/* ---- algorithm identifiers -------------------------------------------------------------- */

/* Digest length of hash (1..3), 0 if unknown. */
size_t dhchap_hash_len(unsigned hash);
/* "sha256", "sha384", "sha512"; NULL if unknown. */
const char *dhchap_hash_name(unsigned hash);
/* Id of "sha256"/"hmac(sha256)"/..., or -EINVAL. */
int dhchap_hash_from_name(const char *name);
/* "null", "ffdhe2048", ... "ffdhe8192"; NULL if unknown. */
const char *dhchap_dhgroup_name(unsigned group);
/* Id of "null"/"ffdhe2048"/..., or -EINVAL. */
int dhchap_dhgroup_from_name(const char *name);
/* Public value length (size of p) of group: 0 for NULL, 256 for ffdhe2048, ... */
size_t dhchap_dhgroup_len(unsigned group);

/* ---- key agreement ---------------------------------------------------------------------- */

struct dhchap_dh; /* an ephemeral FFDHE key pair (OpenSSL) */

/* Generate a key pair in group (not NULL). Returns 0 and *out (free with dhchap_dh_free), or
 * -EINVAL / -ENOMEM / -EIO. */
int dhchap_dh_generate(unsigned group, struct dhchap_dh **out);
/* Our public value g^x mod p, big-endian, left-padded with zeroes to len (= group length). */
int dhchap_dh_public(const struct dhchap_dh *dh, uint8_t *buf, size_t len);
/* Shared secret (peer)^x mod p, big-endian, left-padded to len (= group length) as the kernel's
 * mpi_write_to_sgl does. The peer value is validated (range and subgroup). Returns 0, -EINVAL
 * for a bad peer value, -EIO. */
int dhchap_dh_shared(const struct dhchap_dh *dh, const uint8_t *peer, size_t peer_len, uint8_t *out,
		     size_t len);
void dhchap_dh_free(struct dhchap_dh *dh);

/* ---- responses -------------------------------------------------------------------------- */

/* C' = HMAC-hash(H(skey), C) over hash_len(hash) bytes of challenge
 * (nvme_auth_augmented_challenge). Returns 0 or -EINVAL. */
int dhchap_augmented_challenge(unsigned hash, const uint8_t *skey, size_t skey_len,
			       const uint8_t *challenge, uint8_t *out);
/* The response value, with tkey the transformed key:
 *   host:       HMAC(tkey, C || LE32(seq) || LE16(tid) || 00h || "HostHost" || NQNh || 00h || NQNc)
 *   controller: HMAC(tkey, C || LE32(seq) || LE16(tid) || 00h || "Controller" || NQNc || 00h ||
 * NQNh) where C is the (augmented, if a DH group is used) challenge. out gets hash_len(hash) bytes.
 * Returns 0 or -EINVAL. */
int dhchap_response(unsigned hash, const uint8_t *tkey, size_t tkey_len, const uint8_t *challenge,
		    uint32_t seqnum, uint16_t tid, bool controller, const char *hostnqn,
		    const char *subnqn, uint8_t *out);

/* ---- per-queue state machines ----------------------------------------------------------- */

/* What both roles are configured with. Strings and keys are copied by the init functions. */
struct dhchap_params {
	const char *hostnqn;
	const char *subnqn;
	const struct dhchap_key *host_key; /* required */
	const struct dhchap_key *ctrl_key; /* NULL: no controller authentication */
	/* Controller: allowed, in order of preference. Host: offered. Empty = all, in the order
	 * sha256, sha384, sha512 / null, ffdhe2048 .. ffdhe8192. */
	uint8_t hashes[DHCHAP_HASH_COUNT];
	uint8_t nr_hashes;
	uint8_t dhgroups[DHCHAP_DHGROUP_COUNT];
	uint8_t nr_dhgroups;
};

/* What a transaction agreed on and computed; shared by both roles. */
struct dhchap_session {
	char hostnqn[DHCHAP_NQN_MAX];
	char subnqn[DHCHAP_NQN_MAX];
	struct dhchap_key host_key;
	struct dhchap_key ctrl_key;
	bool has_ctrl_key;
	uint8_t hashes[DHCHAP_HASH_COUNT];
	uint8_t nr_hashes;
	uint8_t dhgroups[DHCHAP_DHGROUP_COUNT];
	uint8_t nr_dhgroups;

	uint16_t tid;	 /* transaction id from the Negotiate */
	uint8_t hash;	 /* selected hash */
	uint8_t dhgroup; /* selected DH group */
	uint32_t s1, s2; /* sequence numbers (s2 = 0: unidirectional) */
	uint8_t c1[DHCHAP_MAX_HASH_LEN];
	uint8_t c2[DHCHAP_MAX_HASH_LEN];
	bool bidi; /* C2 valid: controller authentication requested */
	struct dhchap_dh *dh;
	uint8_t skey[DHCHAP_MAX_DH_LEN]; /* shared secret g^xy mod p */
	size_t skey_len;
};

enum dhchap_ctrl_state {
	DHCHAP_CTRL_NEGOTIATE, /* waiting for AUTH_Negotiate */
	DHCHAP_CTRL_CHALLENGE, /* negotiated: the next Receive returns the Challenge */
	DHCHAP_CTRL_REPLY,     /* waiting for the Reply */
	DHCHAP_CTRL_SUCCESS1,  /* host verified: the next Receive returns Success1 */
	DHCHAP_CTRL_SUCCESS2,  /* bidirectional: waiting for Success2 (or Failure2) */
	DHCHAP_CTRL_FAILURE1,  /* the next Receive returns Failure1 */
	DHCHAP_CTRL_DONE,      /* transaction over; a new Negotiate starts another */
	DHCHAP_CTRL_COUNT
};

struct dhchap_ctrl {
	enum dhchap_ctrl_state state;
	bool authenticated; /* the host proved its key (kept through a re-authentication) */
	uint8_t status;	    /* enum auth_fail of the last failure, 0 if none */
	unsigned transactions_ok;
	struct dhchap_session s;
};

/* Set up c for one queue. Returns 0 or -EINVAL (no host key, NQN too long, bad lists). */
int dhchap_ctrl_init(struct dhchap_ctrl *c, const struct dhchap_params *p);
/* Authentication Send data from the host (msg, len = TL bytes). Protocol errors do not fail the
 * command: they lead to Failure1 on the next Receive (or end the transaction for Failure2), as
 * in nvmet. Returns 0, or -ENOMEM / -EIO (internal errors: fail the command). */
int dhchap_ctrl_send(struct dhchap_ctrl *c, const void *msg, size_t len);
/* Authentication Receive: write the next message into buf (al bytes; the caller zeroes the
 * rest). Returns its length, or -ENOSPC if al is too small (state unchanged), -EIO. */
int dhchap_ctrl_recv(struct dhchap_ctrl *c, void *buf, size_t al);
/* Free the DH key pair and wipe the secrets. */
void dhchap_ctrl_fini(struct dhchap_ctrl *c);

enum dhchap_host_state {
	DHCHAP_HOST_NEGOTIATE, /* send AUTH_Negotiate */
	DHCHAP_HOST_CHALLENGE, /* receive the Challenge */
	DHCHAP_HOST_REPLY,     /* send the Reply */
	DHCHAP_HOST_SUCCESS1,  /* receive Success1 */
	DHCHAP_HOST_SUCCESS2,  /* send Success2 (controller verified), then done */
	DHCHAP_HOST_FAILURE2,  /* send Failure2, then failed */
	DHCHAP_HOST_DONE,      /* authenticated */
	DHCHAP_HOST_FAILED,    /* status says why */
	DHCHAP_HOST_COUNT
};

struct dhchap_host {
	enum dhchap_host_state state;
	uint8_t status;	   /* enum auth_fail: ours, or the controller's Failure1 */
	bool peer_failure; /* status came from the controller's Failure1 */
	struct dhchap_session s;
};

/* Start a transaction with id tid. Returns 0 or -EINVAL. */
int dhchap_host_init(struct dhchap_host *h, const struct dhchap_params *p, uint16_t tid);
/* The next step is an Authentication Send (true) or Receive (false). */
bool dhchap_host_wants_send(const struct dhchap_host *h);
/* DONE or FAILED. */
bool dhchap_host_finished(const struct dhchap_host *h);
/* Build the message to send into buf (cap bytes; DHCHAP_MAX_MSG_LEN suffice). Returns its
 * length (the TL), -ENOSPC, -EINVAL if no message is due, -EIO. */
int dhchap_host_send(struct dhchap_host *h, void *buf, size_t cap);
/* Process a received message (len bytes, may be padded). Returns 0 (check h->state),
 * -EINVAL if no message was expected, -EIO. */
int dhchap_host_recv(struct dhchap_host *h, const void *msg, size_t len);
void dhchap_host_fini(struct dhchap_host *h);

#endif
