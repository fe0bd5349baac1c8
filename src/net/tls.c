/* TLS 1.3 with NVMe/TCP external PSKs beneath struct stream: handshake driven non-blocking
 * from the stream's reads or by the caller, then readv/writev over SSL_read_ex/SSL_write_ex.
 * Layer: net. One process-wide SSL_CTX per role (created once, thread-safe); per connection
 * one SSL with its own socket BIO (send with MSG_NOSIGNAL: a vanished peer must not raise
 * SIGPIPE in the daemon or in an application linking libnvtcp) and a 16 KiB staging buffer
 * that gathers small iovecs (PDU headers, digests) into one record. */
#include "tls.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../common/compiler.h"
#include "../common/log.h"

#define TLS_STAGE_SIZE 16384	   /* one full TLS record of plaintext */
#define TLS_DIRECT_MAX (64 * 1024) /* largest single SSL_write from the caller's memory */
/* room for one largest write's records plus a reserve for what OpenSSL writes while reading
 * (KeyUpdate answers, alerts) */
#define TLS_OUT_SIZE	   (TLS_DIRECT_MAX + 16 * 1024)
#define TLS_RECORD_TYPE_HS 0x16 /* first byte of a ClientHello record */
#define TLS_CIPHERSUITES   "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"

enum tls_role { TLS_ROLE_SERVER, TLS_ROLE_CLIENT };

struct tls_conn {
	SSL *ssl;
	enum tls_role role;
	enum tls_server_mode mode;
	int fd;
	bool peeked;	  /* optional server: first byte seen */
	bool established; /* handshake complete */
	bool failed;	  /* fatal error: no close_notify, no further I/O */
	/* The last SSL_read wanted more from the socket: what OpenSSL holds (read-ahead) is at
	 * most part of a record, so nothing is pending until the socket says more came. */
	bool rx_starved;
	tls_psk_lookup_fn lookup;
	void *lookup_arg;
	char name[96];
	const char *fail_reason; /* set by our callbacks for a clearer handshake error */
	/* client: derived identity and TLS PSK (wiped at fini) */
	enum tls_psk_hash hash;
	char identity[TLS_PSK_IDENTITY_MAX];
	uint8_t psk[TLS_PSK_MAX];
	size_t psk_len;
	/* Encrypted bytes not yet accepted by the socket. OpenSSL writes into this buffer and
	 * never sees a blocked socket, so no write is ever left pending inside it: a KeyUpdate
	 * answer OpenSSL sends from within SSL_read cannot collide with a half-done
	 * SSL_write. */
	size_t out_head, out_tail;
	int out_err; /* a send error, reported at the next write */
	unsigned key_update_every;
	uint64_t records_since_update;
	uint64_t key_updates_sent, key_updates_received;
	uint8_t stage[TLS_STAGE_SIZE];
	uint8_t out[TLS_OUT_SIZE];
};

static SSL_CTX *tls_ctx[2];
static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static struct tls_conn *tls_of(const struct stream *s)
{
	return s->io_ctx;
}

/* ---- socket BIO -------------------------------------------------------------------------- */

/* Send what t->out holds. Returns 0 when empty, -EAGAIN when the socket is full, -errno. */
static int tls_out_flush(struct tls_conn *t, int fd)
{
	while (t->out_head < t->out_tail) {
		ssize_t n = send(fd, t->out + t->out_head, t->out_tail - t->out_head, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -EAGAIN;
			t->out_err = -errno;
			return t->out_err;
		}
		t->out_head += (size_t)n;
	}
	t->out_head = t->out_tail = 0;
	return 0;
}

static int tls_bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
	struct tls_conn *t = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (t->out_head > 0 && t->out_head == t->out_tail)
		t->out_head = t->out_tail = 0;
	if (len > sizeof(t->out) - t->out_tail && t->out_head > 0) {
		memmove(t->out, t->out + t->out_head, t->out_tail - t->out_head);
		t->out_tail -= t->out_head;
		t->out_head = 0;
	}
	if (len > sizeof(t->out) - t->out_tail) {
		/* cannot happen: writes are sized to fit; refuse rather than overflow */
		BIO_set_retry_write(b);
		return 0;
	}
	memcpy(t->out + t->out_tail, data, len);
	t->out_tail += len;
	*written = len;
	return 1;
}

static int tls_bio_read(BIO *b, char *data, size_t len, size_t *readbytes)
{
	struct tls_conn *t = BIO_get_data(b);
	int fd = t->fd;

	BIO_clear_retry_flags(b);
	for (;;) {
		ssize_t n = recv(fd, data, len, 0);

		if (n > 0) {
			*readbytes = (size_t)n;
			return 1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			BIO_set_retry_read(b);
		else if (n == 0)
			errno = 0; /* EOF */
		return 0;
	}
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int tls_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* ---- contexts ---------------------------------------------------------------------------- */

static int tls_psk_find_session_cb(SSL *ssl, const unsigned char *identity, size_t identity_len,
				   SSL_SESSION **sess);
static int tls_psk_use_session_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id,
				  size_t *idlen, SSL_SESSION **sess);

static SSL_CTX *tls_ctx_new(enum tls_role role)
{
	SSL_CTX *ctx =
		SSL_CTX_new(role == TLS_ROLE_SERVER ? TLS_server_method() : TLS_client_method());

	if (!ctx)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* No resumption tickets (NVMe/TCP uses the external PSK every time); a socket closed
	 * without close_notify is an EOF like any other; a retried write may come from the same
	 * data at the same address only, but say so explicitly. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_clear_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	/* read as much as the socket has: one recv for several records */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (role == TLS_ROLE_SERVER)
		SSL_CTX_set_psk_find_session_callback(ctx, tls_psk_find_session_cb);
	return ctx;
}

static void tls_init_once(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nvtcp socket");

	if (m && BIO_meth_set_write_ex(m, tls_bio_write) == 1 &&
	    BIO_meth_set_read_ex(m, tls_bio_read) == 1 && BIO_meth_set_ctrl(m, tls_bio_ctrl) == 1 &&
	    BIO_meth_set_create(m, tls_bio_create) == 1)
		tls_bio_method = m;
	else
		BIO_meth_free(m);
	tls_ctx[TLS_ROLE_SERVER] = tls_ctx_new(TLS_ROLE_SERVER);
	tls_ctx[TLS_ROLE_CLIENT] = tls_ctx_new(TLS_ROLE_CLIENT);
}

/* ---- errors and logging ------------------------------------------------------------------ */

/* Log the reason of a failed TLS call (OpenSSL's error queue, else errno) and map it. */
static int tls_fail(struct tls_conn *t, const char *what, int ssl_err)
{
	unsigned long e = ERR_peek_last_error();
	int reason = ERR_GET_REASON(e);
	char buf[256] = "";
	int ret = -ECONNABORTED;

	t->failed = true;
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	if (t->fail_reason) {
		log_warn("%s: TLS %s failed: %s", t->name, what, t->fail_reason);
		ret = -EACCES;
	} else if (ssl_err == SSL_ERROR_ZERO_RETURN ||
		   (ssl_err == SSL_ERROR_SYSCALL && !e && errno == 0)) {
		log_info("%s: TLS %s: peer closed the connection", t->name, what);
		ret = -ECONNRESET;
	} else if (ssl_err == SSL_ERROR_SYSCALL && !e) {
		log_warn("%s: TLS %s failed: %s", t->name, what, strerror(errno));
		ret = errno ? -errno : -ECONNRESET;
	} else if (reason == SSL_R_BINDER_DOES_NOT_VERIFY ||
		   reason == SSL_R_TLSV1_ALERT_DECRYPT_ERROR ||
		   reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE ||
		   reason == SSL_R_TLSV1_ALERT_UNKNOWN_PSK_IDENTITY ||
		   (reason == SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER && !t->established)) {
		log_warn("%s: TLS %s failed: PSK rejected (host and target keys or identity "
			 "differ): "
			 "%s",
			 t->name, what, buf);
		ret = -EACCES;
	} else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
		   reason == SSL_R_RECORD_LENGTH_MISMATCH || reason == SSL_R_HTTP_REQUEST ||
		   reason == SSL_R_UNSUPPORTED_PROTOCOL) {
		log_warn("%s: TLS %s failed: the peer does not speak TLS 1.3 (plaintext NVMe/TCP "
			 "port?): %s",
			 t->name, what, buf);
		ret = -ECONNREFUSED;
	} else {
		log_warn("%s: TLS %s failed: %s", t->name, what, buf[0] ? buf : "unknown error");
	}
	ERR_clear_error();
	return ret;
}

/* Count KeyUpdates, report alerts the peer sent (with their description). */
static void tls_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
		       SSL *ssl, void *arg)
{
	struct tls_conn *t = SSL_get_app_data(ssl);
	const uint8_t *b = buf;

	if (!t || len < 1)
		return;
	if (content_type == SSL3_RT_HANDSHAKE && b[0] == SSL3_MT_KEY_UPDATE) {
		if (write_p)
			t->key_updates_sent++;
		else
			t->key_updates_received++;
	} else if (content_type == SSL3_RT_ALERT && len >= 2 && !write_p) {
		if (b[1] == SSL3_AD_CLOSE_NOTIFY)
			log_debug("%s: TLS close_notify received", t->name);
		else
			log_warn("%s: TLS alert from peer: %s (%s)", t->name,
				 SSL_alert_desc_string_long(b[1]),
				 b[0] == SSL3_AL_FATAL ? "fatal" : "warning");
	}
}

/* ---- PSK callbacks ----------------------------------------------------------------------- */

static const SSL_CIPHER *tls_cipher_for(SSL *ssl, enum tls_psk_hash h)
{
	static const unsigned char aes128[2] = {0x13, 0x01}, aes256[2] = {0x13, 0x02};

	return SSL_CIPHER_find(ssl, h == TLS_PSK_HASH_SHA384 ? aes256 : aes128);
}

static SSL_SESSION *tls_psk_session(SSL *ssl, enum tls_psk_hash h, const uint8_t *psk, size_t len)
{
	const SSL_CIPHER *cipher = tls_cipher_for(ssl, h);
	SSL_SESSION *sess = SSL_SESSION_new();

	if (!sess || !cipher || SSL_SESSION_set1_master_key(sess, psk, len) != 1 ||
	    SSL_SESSION_set_cipher(sess, cipher) != 1 ||
	    SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION) != 1) {
		SSL_SESSION_free(sess);
		return NULL;
	}
	return sess;
}

/* Server: the client offered identity; find its key, check the identity is the one that key
 * gives (for v1 this checks the PSK digest), and hand OpenSSL the TLS PSK. Returning 1 with no
 * session makes OpenSSL ignore the PSK, so the handshake fails (we have no certificate). */
static int tls_psk_find_session_cb(SSL *ssl, const unsigned char *identity, size_t identity_len,
				   SSL_SESSION **sess)
{
	struct tls_conn *t = SSL_get_app_data(ssl);
	struct tls_psk_identity id;
	struct tls_psk_key key;
	char expect[TLS_PSK_IDENTITY_MAX];
	uint8_t psk[TLS_PSK_MAX];
	size_t psk_len = 0;
	int ret;

	*sess = NULL;
	if (tls_psk_identity_parse(identity, identity_len, &id) < 0) {
		t->fail_reason = "PSK identity is not an NVMe identity (NVMe0Rhh/NVMe1Rhh ...)";
		return 1;
	}
	if (!t->lookup || t->lookup(t->lookup_arg, id.hostnqn, id.subnqn, &key) < 0) {
		t->fail_reason = "no PSK configured for the host NQN of the PSK identity";
		log_warn("%s: TLS: no PSK for host %s (subsystem %s)", t->name, id.hostnqn,
			 id.subnqn);
		return 1;
	}
	if (tls_psk_key_hash(&key) != id.hash) {
		t->fail_reason = "the identity's hash does not match the configured key's";
		goto out;
	}
	ret = tls_psk_derive(&key, id.hostnqn, id.subnqn, id.version, expect, sizeof(expect), psk,
			     &psk_len);
	if (ret < 0) {
		t->fail_reason = "cannot derive the TLS PSK from the configured key";
		goto out;
	}
	if (strlen(expect) != (identity[identity_len - 1] ? identity_len : identity_len - 1) ||
	    memcmp(expect, identity, strlen(expect)) != 0) {
		t->fail_reason = "PSK digest in the v1 identity does not match the configured key "
				 "(wrong key)";
		goto out;
	}
	*sess = tls_psk_session(ssl, id.hash, psk, psk_len);
	if (*sess) {
		snprintf(t->identity, sizeof(t->identity), "%s", expect);
		t->hash = id.hash;
	}
out:
	tls_psk_wipe(psk, sizeof(psk));
	tls_psk_wipe(&key, sizeof(key));
	return 1;
}

/* Client: offer our one identity with the TLS PSK of the cipher suite its hash names. */
static int tls_psk_use_session_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id,
				  size_t *idlen, SSL_SESSION **sess)
{
	struct tls_conn *t = SSL_get_app_data(ssl);
	const SSL_CIPHER *cipher = tls_cipher_for(ssl, t->hash);

	*sess = NULL;
	/* after a HelloRetryRequest md is the suite's hash: offer nothing if it differs */
	if (md && cipher && md != SSL_CIPHER_get_handshake_digest(cipher))
		return 1;
	*sess = tls_psk_session(ssl, t->hash, t->psk, t->psk_len);
	if (!*sess)
		return 0;
	*id = (const unsigned char *)t->identity;
	*idlen = strlen(t->identity);
	return 1;
}

/* ---- stream I/O ops ---------------------------------------------------------------------- */

static ssize_t tls_io_readv(struct stream *s, const struct iovec *iov, int iovcnt);
static ssize_t tls_io_writev(struct stream *s, const struct iovec *iov, int iovcnt, bool more);
static bool tls_io_pending(const struct stream *s);
static int tls_io_flush(struct stream *s);
static bool tls_io_tx_buffered(const struct stream *s);
static void tls_io_fini(struct stream *s);

static const struct stream_io_ops stream_tls_io = {
	.readv = tls_io_readv,
	.writev = tls_io_writev,
	.writev_max = TLS_DIRECT_MAX,
	.pending = tls_io_pending,
	.flush = tls_io_flush,
	.tx_buffered = tls_io_tx_buffered,
	.fini = tls_io_fini,
};

static void tls_free(struct tls_conn *t)
{
	SSL_free(t->ssl);
	tls_psk_wipe(t->psk, sizeof(t->psk));
	tls_psk_wipe(t->stage, sizeof(t->stage));
	free(t);
}

static void tls_io_fini(struct stream *s)
{
	struct tls_conn *t = tls_of(s);

	if (!t)
		return;
	if (t->key_updates_sent || t->key_updates_received)
		log_info("%s: TLS closing after %llu KeyUpdates received, %llu sent", t->name,
			 (unsigned long long)t->key_updates_received,
			 (unsigned long long)t->key_updates_sent);
	/* best effort, never waits: the peer reads EOF either way */
	if (t->established && !t->failed) {
		(void)SSL_shutdown(t->ssl);
		(void)tls_out_flush(t, s->fd);
		ERR_clear_error();
	}
	tls_free(t);
	s->io_ctx = NULL;
}

static bool tls_io_pending(const struct stream *s)
{
	struct tls_conn *t = tls_of(s);

	return t && t->established && !t->failed && !t->rx_starved && SSL_has_pending(t->ssl);
}

/* Optional server: look at the first byte without consuming it. 0x16 starts a TLS
 * handshake record; an ICReq starts with PDU type 0x00. Returns 1 TLS, 0 plain, -EAGAIN, or
 * -ECONNRESET on EOF. */
static int tls_peek_first(struct stream *s, uint8_t *first)
{
	for (;;) {
		ssize_t n = recv(s->fd, first, 1, MSG_PEEK);

		if (n == 1)
			return *first == TLS_RECORD_TYPE_HS;
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

int tls_handshake(struct stream *s, bool *want_write)
{
	struct tls_conn *t = tls_of(s);
	int r, err, fr;

	if (want_write)
		*want_write = false;
	if (!t || s->io != &stream_tls_io)
		return -ENOTCONN;
	if (t->failed)
		return -ECONNABORTED;
	if (t->established)
		return 0;
	if (t->role == TLS_ROLE_SERVER && !t->peeked) {
		uint8_t first = 0;

		r = tls_peek_first(s, &first);
		if (r < 0)
			return r;
		t->peeked = true;
		if (r == 0 && t->mode == TLS_SERVER_OPTIONAL) {
			/* plaintext NVMe/TCP on an optional port: the TLS layer steps aside */
			log_info("%s: plaintext connection on a TLS-optional port", t->name);
			s->io = &stream_plain_io;
			s->io_ctx = NULL;
			tls_free(t);
			return 0;
		}
		if (r == 0) {
			log_warn("%s: refused: plaintext NVMe/TCP (first byte %02xh, not a TLS "
				 "handshake) on a port that requires TLS",
				 t->name, first);
			t->failed = true;
			return -ECONNREFUSED;
		}
	}
	ERR_clear_error();
	r = SSL_do_handshake(t->ssl);
	err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
	/* our flight (or an alert) sits in t->out */
	fr = tls_out_flush(t, s->fd);
	if (r == 1) {
		t->established = true;
		log_info("%s: TLS 1.3 established: %s, PSK identity %.8s", t->name,
			 SSL_get_cipher_name(t->ssl), t->identity);
		return 0;
	}
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		if (fr == -EAGAIN && want_write)
			*want_write = true;
		if (fr < 0 && fr != -EAGAIN)
			return tls_fail(t, "handshake", SSL_ERROR_SYSCALL);
		return -EAGAIN;
	}
	return tls_fail(t, "handshake", err);
}

int tls_handshake_sync(struct stream *s, int timeout_ms)
{
	struct timespec ts;
	uint64_t start, now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	start = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (;;) {
		bool want_write;
		int r = tls_handshake(s, &want_write);
		struct pollfd pfd = {.fd = s->fd, .events = want_write ? POLLOUT : POLLIN};

		if (r != -EAGAIN)
			return r;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
		if (now - start >= (uint64_t)timeout_ms) {
			log_warn("%s: TLS handshake: no answer within %d ms", tls_of(s)->name,
				 timeout_ms);
			return -ETIMEDOUT;
		}
		if (poll(&pfd, 1, (int)MIN((uint64_t)timeout_ms - (now - start), 100)) < 0 &&
		    errno != EINTR)
			return -errno;
	}
}

/* The server's handshake runs inside the reads the event loop makes on readability. A write
 * that would block during it cannot wait for EPOLLOUT there: give it a short bounded wait (the
 * server's flight is a few hundred bytes on a fresh socket, so this does not happen). */
static int tls_handshake_in_read(struct stream *s)
{
	for (int tries = 0;; tries++) {
		bool want_write;
		int r = tls_handshake(s, &want_write);
		struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};

		if (r != -EAGAIN || !want_write || tries == 3)
			return r;
		(void)poll(&pfd, 1, 100);
	}
}

static ssize_t tls_io_readv(struct stream *s, const struct iovec *iov, int iovcnt)
{
	struct tls_conn *t = tls_of(s);
	size_t total = 0;

	if (!t->established) {
		int r = tls_handshake_in_read(s);

		if (r < 0)
			return r;
		if (s->io != &stream_tls_io) /* optional port, plaintext peer */
			return s->io->readv(s, iov, iovcnt);
	}
	if (t->failed)
		return -ECONNABORTED;
	for (int i = 0; i < iovcnt; i++) {
		size_t off = 0;

		while (off < iov[i].iov_len) {
			size_t n = 0;
			int r, err;

			ERR_clear_error();
			r = SSL_read_ex(t->ssl, (uint8_t *)iov[i].iov_base + off,
					iov[i].iov_len - off, &n);
			/* a KeyUpdate answer OpenSSL wrote while reading: send it now if it fits */
			if (t->out_tail > t->out_head)
				(void)tls_out_flush(t, s->fd);
			if (r == 1) {
				t->rx_starved = false;
				off += n;
				total += n;
				continue;
			}
			err = SSL_get_error(t->ssl, r);
			t->rx_starved = err == SSL_ERROR_WANT_READ;
			if (total > 0)
				return (ssize_t)total; /* report the error at the next read */
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
				return -EAGAIN;
			if (err == SSL_ERROR_ZERO_RETURN ||
			    (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)) {
				/* close_notify (or a plain TCP close): an orderly EOF */
				log_debug("%s: TLS: peer closed", t->name);
				return 0;
			}
			return tls_fail(t, "read", err);
		}
	}
	return (ssize_t)total;
}

/* Encrypt buf[0..len) into t->out (never blocks: t->out is empty and large enough) and try to
 * send it. Returns len (the bytes are the TLS layer's now) or -errno. */
static ssize_t tls_write_once(struct stream *s, struct tls_conn *t, const uint8_t *buf, size_t len)
{
	size_t n = 0;
	int r, err;

	ERR_clear_error();
	r = SSL_write_ex(t->ssl, buf, len, &n);
	if (r != 1) {
		err = SSL_get_error(t->ssl, r);
		return tls_fail(t, "write", err);
	}
	t->records_since_update += (len + TLS_STAGE_SIZE - 1) / TLS_STAGE_SIZE;
	if (t->key_update_every && t->records_since_update >= t->key_update_every) {
		/* rides in front of the next application data */
		if (SSL_key_update(t->ssl, SSL_KEY_UPDATE_REQUESTED) == 1)
			t->records_since_update = 0;
		ERR_clear_error();
	}
	r = tls_out_flush(t, s->fd);
	if (r < 0 && r != -EAGAIN) {
		t->failed = true;
		return r;
	}
	return (ssize_t)n;
}

static ssize_t tls_io_writev(struct stream *s, const struct iovec *iov, int iovcnt, bool more)
{
	struct tls_conn *t = tls_of(s);
	size_t staged = 0;
	int r;

	if (!t->established) {
		bool want_write;

		r = tls_handshake(s, &want_write);
		if (r < 0)
			return r;
		if (s->io != &stream_tls_io)
			return s->io->writev(s, iov, iovcnt, more);
	}
	if (t->failed)
		return t->out_err ? t->out_err : -ECONNABORTED;
	/* Records still waiting mean the socket is full: take nothing more until they left. */
	r = tls_out_flush(t, s->fd);
	if (r < 0) {
		if (r != -EAGAIN)
			t->failed = true;
		return r;
	}
	/* A large first piece is encrypted straight from the caller's memory. */
	if (iovcnt > 0 && iov[0].iov_len >= TLS_STAGE_SIZE)
		return tls_write_once(s, t, iov[0].iov_base, MIN(iov[0].iov_len, TLS_DIRECT_MAX));
	/* Gather small pieces (PDU headers, digests, 4 KiB data) into one record. */
	for (int i = 0; i < iovcnt && staged < TLS_STAGE_SIZE; i++) {
		size_t n = MIN(iov[i].iov_len, TLS_STAGE_SIZE - staged);

		memcpy(t->stage + staged, iov[i].iov_base, n);
		staged += n;
	}
	if (staged == 0)
		return 0;
	return tls_write_once(s, t, t->stage, staged);
}

static int tls_io_flush(struct stream *s)
{
	struct tls_conn *t = tls_of(s);
	int r;

	if (!t)
		return 0;
	if (t->out_err)
		return t->out_err;
	r = tls_out_flush(t, s->fd);
	if (r < 0 && r != -EAGAIN)
		t->failed = true;
	return r;
}

static bool tls_io_tx_buffered(const struct stream *s)
{
	struct tls_conn *t = tls_of(s);

	return t && t->out_head < t->out_tail && !t->out_err;
}

/* ---- setup ------------------------------------------------------------------------------- */

static int tls_setup(struct stream *s, struct tls_conn *t, enum tls_role role, const char *name)
{
	BIO *bio;

	pthread_once(&tls_once, tls_init_once);
	if (!tls_ctx[role] || !tls_bio_method)
		return -EIO;
	t->role = role;
	snprintf(t->name, sizeof(t->name), "%s", name ? name : "tls");
	t->ssl = SSL_new(tls_ctx[role]);
	bio = BIO_new(tls_bio_method);
	if (!t->ssl || !bio) {
		BIO_free(bio);
		return -ENOMEM;
	}
	t->fd = s->fd;
	BIO_set_data(bio, t);
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_app_data(t->ssl, t);
	SSL_set_msg_callback(t->ssl, tls_msg_cb);
	return 0;
}

int tls_server_start(struct stream *s, enum tls_server_mode mode, tls_psk_lookup_fn lookup,
		     void *arg, const char *name)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->mode = mode;
	t->lookup = lookup;
	t->lookup_arg = arg;
	r = tls_setup(s, t, TLS_ROLE_SERVER, name);
	if (r < 0) {
		tls_free(t);
		return r;
	}
	SSL_set_accept_state(t->ssl);
	s->io = &stream_tls_io;
	s->io_ctx = t;
	return 0;
}

int tls_client_start(struct stream *s, const struct tls_client_params *p, const char *name)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	const char *env = getenv("NVTCP_TLS_KEYUPDATE_EVERY");
	int r;

	if (!t)
		return -ENOMEM;
	r = tls_setup(s, t, TLS_ROLE_CLIENT, name);
	if (r < 0)
		goto err;
	t->hash = tls_psk_key_hash(p->key);
	r = tls_psk_derive(p->key, p->hostnqn, p->subnqn, p->identity_version, t->identity,
			   sizeof(t->identity), t->psk, &t->psk_len);
	if (r < 0)
		goto err;
	/* offer exactly the suite whose hash the key was made for */
	if (SSL_set_ciphersuites(t->ssl, t->hash == TLS_PSK_HASH_SHA384
						 ? "TLS_AES_256_GCM_SHA384"
						 : "TLS_AES_128_GCM_SHA256") != 1) {
		r = -EIO;
		goto err;
	}
	SSL_set_psk_use_session_callback(t->ssl, tls_psk_use_session_cb);
	SSL_set_connect_state(t->ssl);
	t->key_update_every = p->key_update_every;
	if (env && *env)
		t->key_update_every = (unsigned)strtoul(env, NULL, 10);
	s->io = &stream_tls_io;
	s->io_ctx = t;
	return 0;
err:
	tls_free(t);
	return r;
}

bool tls_stream_active(const struct stream *s)
{
	return s->io == &stream_tls_io && s->io_ctx;
}

const char *tls_stream_cipher(const struct stream *s)
{
	struct tls_conn *t = tls_stream_active(s) ? tls_of(s) : NULL;

	return t && t->established ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *tls_stream_identity(const struct stream *s)
{
	struct tls_conn *t = tls_stream_active(s) ? tls_of(s) : NULL;

	return t && t->identity[0] ? t->identity : NULL;
}

void tls_stream_key_updates(const struct stream *s, uint64_t *sent, uint64_t *received)
{
	struct tls_conn *t = tls_stream_active(s) ? tls_of(s) : NULL;

	*sent = t ? t->key_updates_sent : 0;
	*received = t ? t->key_updates_received : 0;
}

int tls_key_update(struct stream *s)
{
	struct tls_conn *t = tls_stream_active(s) ? tls_of(s) : NULL;

	if (!t || !t->established || t->failed)
		return -ENOTCONN;
	if (SSL_key_update(t->ssl, SSL_KEY_UPDATE_REQUESTED) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}
