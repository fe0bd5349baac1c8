/* TLS 1.3 with external PSKs beneath a struct stream (NVMe/TCP secure channel), OpenSSL 3.
 * Layer: net. tls_server_start()/tls_client_start() replace s->io with TLS ops: the handshake
 * runs non-blocking inside the stream's reads (the target's event loop drives it through
 * stream_recv) or through tls_handshake() / tls_handshake_sync() (the host, before ICReq);
 * afterwards the decoder sees the decrypted bytes exactly as plain ones. Only
 * TLS_AES_128_GCM_SHA256 and TLS_AES_256_GCM_SHA384, no certificates, no session tickets.
 * KeyUpdate is handled in band; close_notify reads as EOF; other alerts fail the stream with a
 * log line naming the connection. Keys never appear in logs. All calls on the stream's thread. */
#ifndef NVTCP_NET_TLS_H
#define NVTCP_NET_TLS_H

#include <stdbool.h>
#include <stdint.h>

#include "stream.h"
#include "tls_psk.h"

/* Server side: find the configured PSK for a host connecting to a subsystem (from the PSK
 * identity of its ClientHello). Fill *key and return 0, or return -ENOKEY. Runs on the
 * stream's thread during the handshake. */
typedef int (*tls_psk_lookup_fn)(void *arg, const char *hostnqn, const char *subnqn,
				 struct tls_psk_key *key);

enum tls_server_mode {
	TLS_SERVER_REQUIRED, /* a TLS handshake must come first; plaintext is refused */
	TLS_SERVER_OPTIONAL, /* the first byte decides: 0x16 TLS, anything else plaintext */
	TLS_SERVER_MODE_COUNT
};

struct tls_client_params {
	const struct tls_psk_key *key; /* configured PSK (copied) */
	const char *hostnqn;
	const char *subnqn;
	int identity_version;	   /* 0: "NVMe0R.." (SPDK, kernel), 1: "NVMe1R..<digest>" */
	unsigned key_update_every; /* testing: request a KeyUpdate every N records sent; 0 off.
				    * tls_client_start() also reads NVTCP_TLS_KEYUPDATE_EVERY. */
};

/* Make s (just initialised, nothing sent or received) the server end of a TLS session. name
 * prefixes log lines. Returns 0 or -errno (-ENOMEM, -EIO if OpenSSL cannot be set up). */
int tls_server_start(struct stream *s, enum tls_server_mode mode, tls_psk_lookup_fn lookup,
		     void *arg, const char *name);
/* Make s the client end; derives the identity and TLS PSK from p. Returns 0 or -errno
 * (-EINVAL for a bad version, -ERANGE when the key cannot serve its cipher suite). */
int tls_client_start(struct stream *s, const struct tls_client_params *p, const char *name);

/* Advance the handshake. Returns 0 when established, -EAGAIN to wait for readability (or
 * writability when *want_write), or -errno on failure (logged): -ECONNREFUSED plaintext on a
 * TLS-only server or not TLS from the server, -EACCES PSK rejected or unknown identity,
 * -ECONNRESET the peer closed, -ECONNABORTED other TLS errors. */
int tls_handshake(struct stream *s, bool *want_write);
/* Client: run the handshake with poll() for at most timeout_ms (-ETIMEDOUT after). */
int tls_handshake_sync(struct stream *s, int timeout_ms);

/* Is s running TLS (established or handshaking)? False for optional ports that saw plaintext. */
bool tls_stream_active(const struct stream *s);
/* Negotiated cipher suite name, or NULL before the handshake / without TLS. */
const char *tls_stream_cipher(const struct stream *s);
/* The peer's PSK identity (server side) or ours (client), or NULL. */
const char *tls_stream_identity(const struct stream *s);
/* KeyUpdates we sent (requested) and received, for tests and statistics. */
void tls_stream_key_updates(const struct stream *s, uint64_t *sent, uint64_t *received);

/* Request a KeyUpdate (update_requested: the peer answers with its own); it is sent before the
 * next application data. Returns 0, -ENOTCONN before the handshake or without TLS. */
int tls_key_update(struct stream *s);

#endif
