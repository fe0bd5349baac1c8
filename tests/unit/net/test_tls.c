/* Unit tests for src/net/tls_psk.c (interchange format, derivations, identities) and
 * src/net/tls.c over socketpair(): handshakes with both cipher suites and both identity forms,
 * PDUs both ways through streams and the real decoder, KeyUpdates from each side in the middle
 * of a large transfer, wrong keys, close_notify, optional/required ports and plain peers.
 *
 * Independent vectors: the interchange string of libnvme's test/psk.c; keys printed by
 * nvme-cli 2.3 `nvme gen-tls-key`; derivations computed with the openssl(1) command line, whose
 * TLS13-KDF implements HKDF-Expand-Label itself:
 *   PRK=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt mode:EXTRACT_ONLY \
 *         -kdfopt hexkey:$KEY -binary HKDF | xxd -p -c 200)
 *   openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt mode:EXPAND_ONLY -kdfopt hexkey:$PRK \
 *         -kdfopt "prefix:tls13 " -kdfopt label:HostNQN -kdfopt "data:$HOSTNQN" TLS13-KDF
 *   (then label nvme-tls-psk with data "$IDENTITY" (v0) or "01 $DIGEST" (v1); the digest is
 *   `openssl mac -digest SHA256 -macopt hexkey:$RETAINED HMAC` over
 *   "$HOSTNQN $SUBNQN NVMe-over-Fabrics", base64). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/le.h"
#include "net/stream.h"
#include "net/tls.h"
#include "net/tls_psk.h"
#include "proto/crc32c.h"
#include "tap.h"

#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
#define SUBNQN	"nqn.2014-08.org.nvmexpress:uuid:36ebf5a9-1df9-47b3-a6d0-e9ba32e428a2"
/* libnvme test/psk.c; also the key SPDK's tls tests use with the spec's NQNs */
#define SPEC_KEY "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:"
#define KEY_384                                                                             \
	"NVMeTLSkey-1:02:MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5f+" \
	"ENbJA==:"

static void hex2bin(const char *hex, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

/* ---- PSK format and derivation ---------------------------------------------------------- */

static void test_psk_parse(void)
{
	static const uint8_t spec[32] = {0x55, 0x12, 0xDB, 0xB6, 0x73, 0x7D, 0x01, 0x06,
					 0xF6, 0x59, 0x75, 0xB7, 0x73, 0xDF, 0xB0, 0x11,
					 0xFF, 0xC3, 0x44, 0xBC, 0xF4, 0x42, 0xE2, 0xDD,
					 0x6D, 0x8B, 0xC4, 0x87, 0x0B, 0x5D, 0x5B, 0x03};
	struct tls_psk_key k;
	char out[TLS_PSK_INTERCHANGE_MAX], bad[128];

	TAP_CHECK_EQ(tls_psk_parse(SPEC_KEY, &k), 0);
	TAP_CHECK_EQ(k.len, 32);
	TAP_CHECK_EQ(k.hmac, TLS_PSK_HASH_SHA256);
	TAP_CHECK_MEM(k.key, spec, 32);
	TAP_CHECK(tls_psk_format(&k, out, sizeof(out)) > 0);
	TAP_CHECK(strcmp(out, SPEC_KEY) == 0);
	/* a key file's trailing newline is fine */
	TAP_CHECK_EQ(tls_psk_parse("  " SPEC_KEY "\n", &k), 0);
	/* printed by nvme-cli 2.3 gen-tls-key (random keys, CRC by libnvme) */
	TAP_CHECK_EQ(
		tls_psk_parse("NVMeTLSkey-1:01:NcaiDakZHbs8XWq5/phuwUmjrYqxWK8y332sSkcm3We9aYKB:",
			      &k),
		0);
	TAP_CHECK_EQ(
		tls_psk_parse("NVMeTLSkey-1:02:bxw9sTsZU3ghXSNWzSzDNB2U+yORUcgrm3v9QwlEay3eiaLgX8"
			      "PH0D6EutLvjYrk5ai6KQ==:",
			      &k),
		0);
	TAP_CHECK_EQ(k.len, 48);
	TAP_CHECK_EQ(k.hmac, TLS_PSK_HASH_SHA384);
	/* damaged: one base64 character changed -> CRC */
	snprintf(bad, sizeof(bad), "%s", SPEC_KEY);
	bad[20] = bad[20] == 'A' ? 'B' : 'A';
	TAP_CHECK_EQ(tls_psk_parse(bad, &k), -EBADMSG);
	/* hh 02 needs 48 bytes */
	snprintf(bad, sizeof(bad), "%s", SPEC_KEY);
	bad[14] = '2';
	TAP_CHECK_EQ(tls_psk_parse(bad, &k), -ERANGE);
	TAP_CHECK_EQ(
		tls_psk_parse("NVMeTLSkey-1:03:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:",
			      &k),
		-EINVAL);
	TAP_CHECK_EQ(
		tls_psk_parse("DHHC-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:", &k),
		-EINVAL);
	TAP_CHECK_EQ(
		tls_psk_parse("NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ",
			      &k),
		-EINVAL);
	TAP_CHECK_EQ(
		tls_psk_parse("NVMeTLSkey-1:01:VRLb*nN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:",
			      &k),
		-EINVAL);
	TAP_CHECK_EQ(tls_psk_parse("NVMeTLSkey-1:00:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLd:", &k),
		     -ERANGE);
	TAP_CHECK(strstr(tls_psk_parse_strerror(-EBADMSG), "CRC") != NULL);
}

static void test_psk_derive_sha256(void)
{
	uint8_t retained[48], exp[48], psk[48];
	char digest[TLS_PSK_DIGEST_MAX], id[TLS_PSK_IDENTITY_MAX];
	struct tls_psk_key k;
	size_t len = 0;

	TAP_CHECK_EQ(tls_psk_parse(SPEC_KEY, &k), 0);
	TAP_CHECK_EQ(tls_psk_retained(&k, HOSTNQN, retained), 32);
	hex2bin("f0af1bc718d4f23bdd7c1683a3d79bd953ea789d106a0f5207bb574bbe5446ce", exp, 32);
	TAP_CHECK_MEM(retained, exp, 32);
	TAP_CHECK_EQ(tls_psk_digest(TLS_PSK_HASH_SHA256, retained, 32, HOSTNQN, SUBNQN, digest,
				    sizeof(digest)),
		     44);
	TAP_CHECK(strcmp(digest, "E7SfPmB1H5RQCPDO/jPElNLoNkv7agzvJauAf6yCO9E=") == 0);

	TAP_CHECK_EQ(tls_psk_derive(&k, HOSTNQN, SUBNQN, 0, id, sizeof(id), psk, &len), 0);
	TAP_CHECK(strcmp(id, "NVMe0R01 " HOSTNQN " " SUBNQN) == 0);
	TAP_CHECK_EQ(len, 32);
	hex2bin("8e981666c96a88ef69f6e6a0460ff77ba9039e3d38cbdeee264c4de09d75d246", exp, 32);
	TAP_CHECK_MEM(psk, exp, 32);

	TAP_CHECK_EQ(tls_psk_derive(&k, HOSTNQN, SUBNQN, 1, id, sizeof(id), psk, &len), 0);
	TAP_CHECK(strcmp(id, "NVMe1R01 " HOSTNQN " " SUBNQN
			     " E7SfPmB1H5RQCPDO/jPElNLoNkv7agzvJauAf6yCO9E=") == 0);
	hex2bin("5a21fd02f19a9eaec7b166edabff907304b7625b7927d7398f9d654dff4087f7", exp, 32);
	TAP_CHECK_MEM(psk, exp, 32);
	TAP_CHECK_EQ(tls_psk_derive(&k, HOSTNQN, SUBNQN, 2, id, sizeof(id), psk, &len), -EINVAL);
	/* hh 00: the configured PSK is the retained PSK */
	k.hmac = TLS_PSK_HASH_NONE;
	TAP_CHECK_EQ(tls_psk_retained(&k, HOSTNQN, retained), 32);
	TAP_CHECK_MEM(retained, k.key, 32);
	TAP_CHECK_EQ(tls_psk_key_hash(&k), TLS_PSK_HASH_SHA256);
}

static void test_psk_derive_sha384(void)
{
	uint8_t retained[48], exp[48], psk[48];
	char id[TLS_PSK_IDENTITY_MAX];
	struct tls_psk_key k;
	size_t len = 0;

	TAP_CHECK_EQ(tls_psk_parse(KEY_384, &k), 0);
	TAP_CHECK_EQ(k.len, 48);
	for (int i = 0; i < 48; i++)
		TAP_CHECK_EQ(k.key[i], 0x30 + i);
	TAP_CHECK_EQ(tls_psk_retained(&k, HOSTNQN, retained), 48);
	hex2bin("89f3c612ff2616cda17cb376561238dac6774ccfaffad623eeaef9aab7666844ae054ccdb8a1e75cbb"
		"e53e0e6c2c9e93",
		exp, 48);
	TAP_CHECK_MEM(retained, exp, 48);
	TAP_CHECK_EQ(tls_psk_derive(&k, HOSTNQN, SUBNQN, 0, id, sizeof(id), psk, &len), 0);
	TAP_CHECK_EQ(len, 48);
	TAP_CHECK(strncmp(id, "NVMe0R02 ", 9) == 0);
	hex2bin("c97c47abdf180f7b40df4bab5b4fe5943d8936e46730de030d0f180ccd455803f91edac89eb4e78fdf"
		"d689d6c7c4c15d",
		exp, 48);
	TAP_CHECK_MEM(psk, exp, 48);
	TAP_CHECK_EQ(tls_psk_derive(&k, HOSTNQN, SUBNQN, 1, id, sizeof(id), psk, &len), 0);
	TAP_CHECK(strcmp(id,
			 "NVMe1R02 " HOSTNQN " " SUBNQN
			 " JdJ6bdpPQkz/92XXTAEbc/Y+Y0hS4a6Z6NRp33omCZF9NGQDHD3CZvMj52BNUzPp") == 0);
	hex2bin("f4be9c04e43c1d45ca4b0ec47205552601e3eb49cb419aedef15d2eb1f2df45b518d08fe0dd2b833"
		"6fb596632aa7ba0c",
		exp, 48);
	TAP_CHECK_MEM(psk, exp, 48);
}

static void test_identity_parse(void)
{
	static const char v0[] = "NVMe0R01 " HOSTNQN " " SUBNQN;
	static const char v1[] = "NVMe1R02 nqn.h nqn.s abc=";
	struct tls_psk_identity id;

	/* with the specification's trailing NUL too */
	TAP_CHECK_EQ(tls_psk_identity_parse((const uint8_t *)v0, sizeof(v0), &id), 0);
	TAP_CHECK_EQ(tls_psk_identity_parse((const uint8_t *)v0, strlen(v0), &id), 0);
	TAP_CHECK_EQ(id.version, 0);
	TAP_CHECK_EQ(id.hash, TLS_PSK_HASH_SHA256);
	TAP_CHECK(strcmp(id.hostnqn, HOSTNQN) == 0 && strcmp(id.subnqn, SUBNQN) == 0);
	TAP_CHECK_EQ(tls_psk_identity_parse((const uint8_t *)v1, strlen(v1), &id), 0);
	TAP_CHECK_EQ(id.version, 1);
	TAP_CHECK_EQ(id.hash, TLS_PSK_HASH_SHA384);
	TAP_CHECK(strcmp(id.digest, "abc=") == 0);
	static const char *const bad[] = {
		"NVMe1R01 nqn.h nqn.s",	 "NVMe0R01 nqn.h nqn.s extra", "NVMe0R03 nqn.h nqn.s",
		"NVMe0G01 nqn.h nqn.s",	 "NVMe2R01 nqn.h nqn.s",       "NVMe0R01 nqn.h",
		"NVMe0R01 nqn.h nqn.s ", "NVMe0R01  nqn.h nqn.s",      "psk-identity",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = tls_psk_identity_parse((const uint8_t *)bad[i], strlen(bad[i]), &id);

		if (r != -EINVAL)
			printf("# accepted \"%s\"\n", bad[i]);
		TAP_CHECK_EQ(r, -EINVAL);
	}
}

/* ---- TLS over socketpair ---------------------------------------------------------------- */

static const struct pdu_params params = {
	.hdgst = true,
	.ddgst = true,
	.maxh2cdata = 1 << 20,
	.max_incapsule = 8192,
	.ic_done = true,
};

#define BIG_PDUS 64
#define BIG_LEN	 (128 * 1024)
#define CMD_PDUS 512
#define CMD_LEN	 4096

/* One side's owner: places C2HData (host) or in-capsule data (ctrl) at cid * size. */
struct side {
	struct stream s;
	uint8_t *dst;
	size_t unit;
	int pdus;
	int bad_digest;
	int lookups;
};

static int side_on_header(struct stream *s, void *ctx)
{
	struct side *d = ctx;
	uint16_t cid;
	struct iovec iov;

	if (!d->dst || s->rx.data_len == 0)
		return 0;
	if (s->rx.hdr.ch.pdu_type == WIRE_PDU_C2H_DATA)
		cid = le16_get(s->rx.hdr.c2h.cccid);
	else
		cid = le16_get(s->rx.hdr.cmd.sqe.cid);
	iov.iov_base = d->dst + (size_t)cid * d->unit;
	iov.iov_len = s->rx.data_len;
	return pdu_rx_set_dst(&s->rx, &iov, 1);
}

static int side_on_pdu(struct stream *s, void *ctx)
{
	struct side *d = ctx;

	d->pdus++;
	if (s->rx.data_len && !s->rx.ddgst_ok)
		d->bad_digest++;
	return 0;
}

static const struct stream_cbs side_cbs = {.on_header = side_on_header, .on_pdu = side_on_pdu};

struct server_keys {
	const char *hostnqn;
	const char *key;
	int lookups;
};

static int lookup_key(void *arg, const char *hostnqn, const char *subnqn, struct tls_psk_key *key)
{
	struct server_keys *k = arg;

	k->lookups++;
	if (strcmp(hostnqn, k->hostnqn) != 0 || strcmp(subnqn, SUBNQN) != 0)
		return -ENOKEY;
	return tls_psk_parse(k->key, key) == 0 ? 0 : -ENOKEY;
}

static void pair_init(struct side *srv, struct side *cli)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	stream_init(&srv->s, sv[0], PDU_ROLE_CTRL, 0, &side_cbs, srv);
	stream_init(&cli->s, sv[1], PDU_ROLE_HOST, 0, &side_cbs, cli);
	stream_set_params(&srv->s, &params);
	stream_set_params(&cli->s, &params);
}

static void wait_both(struct stream *a, struct stream *b, int ms)
{
	struct pollfd p[2] = {{.fd = a->fd, .events = POLLIN}, {.fd = b->fd, .events = POLLIN}};

	if (stream_tx_pending(a))
		p[0].events |= POLLOUT;
	if (stream_tx_pending(b))
		p[1].events |= POLLOUT;
	poll(p, 2, ms);
}

/* Run both handshakes to the end; each side.s result goes to rs and rc. */
static void handshake_pair(struct side *srv, struct side *cli, int *rs, int *rc)
{
	bool ww;

	*rs = *rc = -EAGAIN;
	for (int i = 0; i < 500 && (*rs == -EAGAIN || *rc == -EAGAIN); i++) {
		if (*rc == -EAGAIN)
			*rc = tls_handshake(&cli->s, &ww);
		if (*rs == -EAGAIN)
			*rs = tls_handshake(&srv->s, &ww);
		if (*rs == -EAGAIN || *rc == -EAGAIN)
			wait_both(&srv->s, &cli->s, 10);
		/* one side failed: the other sees the alert or EOF on its next try */
		if (*rs < 0 && *rs != -EAGAIN && *rc == -EAGAIN)
			shutdown(srv->s.fd, SHUT_RDWR);
		if (*rc < 0 && *rc != -EAGAIN && *rs == -EAGAIN)
			shutdown(cli->s.fd, SHUT_RDWR);
	}
}

static void start_pair(struct side *srv, struct side *cli, struct server_keys *sk,
		       const char *cli_key, int version, unsigned ku_every,
		       enum tls_server_mode mode)
{
	struct tls_psk_key k;
	struct tls_client_params p = {
		.key = &k,
		.hostnqn = HOSTNQN,
		.subnqn = SUBNQN,
		.identity_version = version,
		.key_update_every = ku_every,
	};

	pair_init(srv, cli);
	TAP_CHECK_EQ(tls_psk_parse(cli_key, &k), 0);
	TAP_CHECK_EQ(tls_server_start(&srv->s, mode, lookup_key, sk, "srv"), 0);
	TAP_CHECK_EQ(tls_client_start(&cli->s, &p, "cli"), 0);
	tls_psk_wipe(&k, sizeof(k));
}

static void queue_big(struct stream *s, struct stream_tx *tx, uint8_t (*hdr)[WIRE_PDO_MAX + 4],
		      uint8_t (*dg)[4], const uint8_t *data, int count, size_t unit, bool c2h)
{
	for (int i = 0; i < count; i++) {
		const uint8_t *d = data + (size_t)i * unit;

		if (c2h) {
			tx[i].iov[0].iov_len = pdu_build_c2h_data(
				hdr[i], (uint16_t)i, 0, (uint32_t)unit, true, false, &params);
		} else {
			struct wire_sqe sqe = {.opc = 1};

			le16_put(sqe.cid, (uint16_t)i);
			tx[i].iov[0].iov_len =
				pdu_build_capsule_cmd(hdr[i], &sqe, (uint32_t)unit, &params);
		}
		tx[i].iov[0].iov_base = hdr[i];
		tx[i].iov[1].iov_base = (void *)d;
		tx[i].iov[1].iov_len = unit;
		pdu_ddgst_put(dg[i], crc32c(d, unit));
		tx[i].iov[2].iov_base = dg[i];
		tx[i].iov[2].iov_len = 4;
		tx[i].iovcnt = 3;
		tx[i].done = NULL;
		stream_queue(s, &tx[i]);
	}
}

/* Both directions at once, KeyUpdates requested by each side half-way through, and the
 * client forcing one every ku_every records; every byte checked (digests and content). */
static void transfer_both_ways(const char *key, int version, unsigned ku_every,
			       const char *expect_cipher)
{
	struct side srv = {.unit = CMD_LEN}, cli = {.unit = BIG_LEN};
	struct server_keys sk = {.hostnqn = HOSTNQN, .key = key};
	uint8_t *c2h = malloc((size_t)BIG_PDUS * BIG_LEN), *h2c = malloc(CMD_PDUS * CMD_LEN);
	struct stream_tx *stx = calloc(BIG_PDUS, sizeof(*stx)),
			 *ctx = calloc(CMD_PDUS, sizeof(*ctx));
	uint8_t(*shdr)[WIRE_PDO_MAX + 4] = calloc(BIG_PDUS, WIRE_PDO_MAX + 4);
	uint8_t(*chdr)[WIRE_PDO_MAX + 4] = calloc(CMD_PDUS, WIRE_PDO_MAX + 4);
	uint8_t(*sdg)[4] = calloc(BIG_PDUS, 4), (*cdg)[4] = calloc(CMD_PDUS, 4);
	bool srv_ku = false, cli_ku = false;
	uint64_t s_sent, s_recv, c_sent, c_recv;
	int rc = -EAGAIN, loops = 0;

	srv.dst = calloc(CMD_PDUS, CMD_LEN);
	cli.dst = calloc(BIG_PDUS, BIG_LEN);
	for (size_t i = 0; i < (size_t)BIG_PDUS * BIG_LEN; i++)
		c2h[i] = (uint8_t)(i * 7 + (i >> 13));
	for (size_t i = 0; i < CMD_PDUS * CMD_LEN; i++)
		h2c[i] = (uint8_t)(i * 11 + (i >> 12));
	start_pair(&srv, &cli, &sk, key, version, ku_every, TLS_SERVER_REQUIRED);
	/* the client handshakes first (as the host does), the server inside its reads */
	while (rc == -EAGAIN && loops++ < 500) {
		bool ww;

		rc = tls_handshake(&cli.s, &ww);
		TAP_CHECK(stream_recv(&srv.s, 64) >= 0);
		if (rc == -EAGAIN)
			wait_both(&srv.s, &cli.s, 10);
	}
	TAP_CHECK_EQ(rc, 0);
	TAP_CHECK(tls_stream_cipher(&cli.s) &&
		  strcmp(tls_stream_cipher(&cli.s), expect_cipher) == 0);
	queue_big(&srv.s, stx, shdr, sdg, c2h, BIG_PDUS, BIG_LEN, true);
	queue_big(&cli.s, ctx, chdr, cdg, h2c, CMD_PDUS, CMD_LEN, false);
	loops = 0;
	while ((cli.pdus < BIG_PDUS || srv.pdus < CMD_PDUS) && loops++ < 20000) {
		int a, b, f1, f2;

		f1 = stream_flush(&srv.s);
		f2 = stream_flush(&cli.s);
		a = stream_recv(&srv.s, 16);
		b = stream_recv(&cli.s, 16);
		if (a < 0 || b < 0 || (f1 < 0 && f1 != -EAGAIN) || (f2 < 0 && f2 != -EAGAIN)) {
			printf("# recv %d %d flush %d %d\n", a, b, f1, f2);
			break;
		}
		if (!srv_ku && cli.pdus >= BIG_PDUS / 2) {
			TAP_CHECK_EQ(tls_key_update(&srv.s), 0);
			srv_ku = true;
		}
		if (!cli_ku && srv.pdus >= CMD_PDUS / 2) {
			TAP_CHECK_EQ(tls_key_update(&cli.s), 0);
			cli_ku = true;
		}
		/* never sleep on bytes TLS already holds: epoll/poll cannot see them */
		if (!stream_rx_pending(&srv.s) && !stream_rx_pending(&cli.s))
			wait_both(&srv.s, &cli.s, 50);
	}
	TAP_CHECK_EQ(cli.pdus, BIG_PDUS);
	TAP_CHECK_EQ(srv.pdus, CMD_PDUS);
	TAP_CHECK_EQ(cli.bad_digest + srv.bad_digest, 0);
	TAP_CHECK_MEM(cli.dst, c2h, (size_t)BIG_PDUS * BIG_LEN);
	TAP_CHECK_MEM(srv.dst, h2c, CMD_PDUS * CMD_LEN);
	TAP_CHECK(cli.s.rx_direct_bytes > 0);
	tls_stream_key_updates(&srv.s, &s_sent, &s_recv);
	tls_stream_key_updates(&cli.s, &c_sent, &c_recv);
	printf("# %s v%d: key updates srv sent %llu recv %llu, cli sent %llu recv %llu\n",
	       expect_cipher, version, (unsigned long long)s_sent, (unsigned long long)s_recv,
	       (unsigned long long)c_sent, (unsigned long long)c_recv);
	TAP_CHECK(s_sent >= 1 && c_recv >= 1);
	TAP_CHECK(c_sent >= 1 && s_recv >= 1);
	if (ku_every)
		TAP_CHECK(c_sent >= (CMD_PDUS * CMD_LEN / 16384) / ku_every / 2);
	TAP_CHECK_EQ(sk.lookups, 1);
	/* orderly close: close_notify then EOF at the other end */
	stream_fini(&cli.s);
	loops = 0;
	do {
		rc = stream_recv(&srv.s, 16);
		if (rc >= 0)
			wait_both(&srv.s, &srv.s, 10);
	} while (rc >= 0 && loops++ < 100);
	TAP_CHECK_EQ(rc, -ECONNRESET);
	stream_fini(&srv.s);
	free(c2h), free(h2c), free(stx), free(ctx), free(shdr), free(chdr), free(sdg), free(cdg);
	free(srv.dst), free(cli.dst);
}

static void test_aes128_v0_keyupdates(void)
{
	transfer_both_ways(SPEC_KEY, 0, 0, "TLS_AES_128_GCM_SHA256");
}

static void test_aes128_v1_forced_keyupdates(void)
{
	transfer_both_ways(SPEC_KEY, 1, 8, "TLS_AES_128_GCM_SHA256");
}

static void test_aes256_v0(void)
{
	transfer_both_ways(KEY_384, 0, 0, "TLS_AES_256_GCM_SHA384");
}

static void test_aes256_v1_forced_keyupdates(void)
{
	transfer_both_ways(KEY_384, 1, 3, "TLS_AES_256_GCM_SHA384");
}

static void test_wrong_key(void)
{
	/* the same key but for hh 00 (no retained-key transform): a different TLS PSK */
	static const char other[] =
		"NVMeTLSkey-1:00:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:";
	for (int version = 0; version < 2; version++) {
		struct side srv = {0}, cli = {0};
		struct server_keys sk = {.hostnqn = HOSTNQN, .key = SPEC_KEY};
		int rs, rc;

		start_pair(&srv, &cli, &sk, other, version, 0, TLS_SERVER_REQUIRED);
		handshake_pair(&srv, &cli, &rs, &rc);
		printf("# wrong key v%d: server %d client %d\n", version, rs, rc);
		TAP_CHECK_EQ(rs, -EACCES);
		TAP_CHECK(rc < 0 && rc != -EAGAIN);
		TAP_CHECK(tls_stream_cipher(&cli.s) == NULL);
		stream_fini(&srv.s);
		stream_fini(&cli.s);
	}
}

static void test_unknown_host(void)
{
	struct side srv = {0}, cli = {0};
	struct server_keys sk = {.hostnqn = "nqn.2014-08.org.nvmexpress:uuid:other",
				 .key = SPEC_KEY};
	int rs, rc;

	start_pair(&srv, &cli, &sk, SPEC_KEY, 0, 0, TLS_SERVER_REQUIRED);
	handshake_pair(&srv, &cli, &rs, &rc);
	TAP_CHECK_EQ(rs, -EACCES);
	TAP_CHECK(rc < 0 && rc != -EAGAIN);
	TAP_CHECK_EQ(sk.lookups, 1);
	stream_fini(&srv.s);
	stream_fini(&cli.s);
}

/* Many small PDUs arrive in one TLS record; with a budget of 1 the rest must be visible to
 * the owner through stream_rx_pending although the socket itself has nothing more. */
static void test_pending_not_lost(void)
{
	struct side srv = {0}, cli = {0};
	struct server_keys sk = {.hostnqn = HOSTNQN, .key = SPEC_KEY};
	struct stream_tx tx[50];
	uint8_t hdr[50][WIRE_PDO_MAX + 4];
	int rs, rc, calls = 0;

	start_pair(&srv, &cli, &sk, SPEC_KEY, 0, 0, TLS_SERVER_REQUIRED);
	handshake_pair(&srv, &cli, &rs, &rc);
	TAP_CHECK(rs == 0 && rc == 0);
	for (int i = 0; i < 50; i++) {
		struct wire_cqe cqe = {0};

		le16_put(cqe.cid, (uint16_t)i);
		tx[i].iov[0].iov_base = hdr[i];
		tx[i].iov[0].iov_len = pdu_build_capsule_resp(hdr[i], &cqe, &params);
		tx[i].iovcnt = 1;
		tx[i].done = NULL;
		stream_queue(&srv.s, &tx[i]);
	}
	TAP_CHECK_EQ(stream_flush(&srv.s), 0);
	wait_both(&cli.s, &cli.s, 1000);
	while (cli.pdus < 50 && calls++ < 200) {
		TAP_CHECK(stream_recv(&cli.s, 1) >= 0);
		if (cli.pdus < 50)
			TAP_CHECK(stream_rx_pending(&cli.s));
	}
	TAP_CHECK_EQ(cli.pdus, 50);
	TAP_CHECK(!stream_rx_pending(&cli.s));
	stream_fini(&srv.s);
	stream_fini(&cli.s);
}

/* A record that has only partly arrived: OpenSSL's read-ahead holds its first bytes, but
 * nothing can be decrypted, so the stream must not report pending input (its owner would spin
 * on a zero-timeout poll until the rest came); the rest arriving delivers the PDU. */
static void test_partial_record_not_pending(void)
{
	struct side srv = {0}, cli = {0};
	struct server_keys sk = {.hostnqn = HOSTNQN, .key = SPEC_KEY};
	struct stream_tx tx = {0};
	uint8_t hdr[WIRE_PDO_MAX + 4], raw[4096];
	struct wire_cqe cqe = {0};
	ssize_t n = 0;
	int rs, rc;

	start_pair(&srv, &cli, &sk, SPEC_KEY, 0, 0, TLS_SERVER_REQUIRED);
	handshake_pair(&srv, &cli, &rs, &rc);
	TAP_CHECK(rs == 0 && rc == 0);
	tx.iov[0].iov_base = hdr;
	tx.iov[0].iov_len = pdu_build_capsule_resp(hdr, &cqe, &params);
	tx.iovcnt = 1;
	stream_queue(&srv.s, &tx);
	TAP_CHECK_EQ(stream_flush(&srv.s), 0);
	/* take the record out of the client's socket, put back all but its last 8 bytes (a
	 * write on the server's end arrives at the client's) */
	for (int i = 0; i < 100 && n <= 0; i++) {
		wait_both(&cli.s, &cli.s, 10);
		n = recv(cli.s.fd, raw, sizeof(raw), MSG_DONTWAIT);
	}
	TAP_CHECK(n > 8);
	if (n <= 8)
		goto out;
	TAP_CHECK_EQ(write(srv.s.fd, raw, (size_t)n - 8), n - 8);
	TAP_CHECK(stream_recv(&cli.s, 16) >= 0);
	TAP_CHECK_EQ(cli.pdus, 0);
	TAP_CHECK(!stream_rx_pending(&cli.s));
	TAP_CHECK_EQ(write(srv.s.fd, raw + n - 8, 8), 8);
	wait_both(&cli.s, &cli.s, 1000);
	TAP_CHECK(stream_recv(&cli.s, 16) >= 0);
	TAP_CHECK_EQ(cli.pdus, 1);
	TAP_CHECK(!stream_rx_pending(&cli.s));
out:
	stream_fini(&srv.s);
	stream_fini(&cli.s);
}

/* Optional port: a plaintext host (first byte 00h, an ICReq) goes on unencrypted; required
 * port: refused with a clear error. */
static void test_optional_and_required_plaintext(void)
{
	for (int mode = 0; mode < TLS_SERVER_MODE_COUNT; mode++) {
		struct side srv = {0}, cli = {0};
		struct server_keys sk = {.hostnqn = HOSTNQN, .key = SPEC_KEY};
		static const struct pdu_params ic = {.ic_done = false};
		uint8_t buf[128];
		size_t len = pdu_build_icreq(buf, 0, false, false, 0);
		int r = 0;

		pair_init(&srv, &cli);
		stream_set_params(&srv.s, &ic);
		TAP_CHECK_EQ(tls_server_start(&srv.s, (enum tls_server_mode)mode, lookup_key, &sk,
					      "srv"),
			     0);
		TAP_CHECK_EQ(write(cli.s.fd, buf, len), (ssize_t)len);
		wait_both(&srv.s, &srv.s, 1000);
		r = stream_recv(&srv.s, 4);
		if (mode == TLS_SERVER_OPTIONAL) {
			TAP_CHECK_EQ(r, 1);
			TAP_CHECK_EQ(srv.pdus, 1);
			TAP_CHECK(!tls_stream_active(&srv.s));
		} else {
			TAP_CHECK_EQ(r, -ECONNREFUSED);
			TAP_CHECK_EQ(srv.pdus, 0);
		}
		stream_fini(&srv.s);
		stream_fini(&cli.s);
	}
}

/* Optional port with a TLS host: the handshake happens. */
static void test_optional_tls(void)
{
	struct side srv = {0}, cli = {0};
	struct server_keys sk = {.hostnqn = HOSTNQN, .key = KEY_384};
	int rs, rc;

	start_pair(&srv, &cli, &sk, KEY_384, 1, 0, TLS_SERVER_OPTIONAL);
	handshake_pair(&srv, &cli, &rs, &rc);
	TAP_CHECK(rs == 0 && rc == 0);
	TAP_CHECK(tls_stream_active(&srv.s));
	TAP_CHECK(tls_stream_identity(&srv.s) &&
		  strncmp(tls_stream_identity(&srv.s), "NVMe1R02", 8) == 0);
	stream_fini(&srv.s);
	stream_fini(&cli.s);
}

/* TLS host against a plaintext port: the plain decoder rejects the ClientHello (TermReq and
 * close, as the target does), the host's handshake fails cleanly. */
static void test_client_to_plain_port(void)
{
	struct side srv = {0}, cli = {0};
	static const struct pdu_params ic = {.ic_done = false};
	struct tls_psk_key k;
	struct tls_client_params p = {.key = &k, .hostnqn = HOSTNQN, .subnqn = SUBNQN};
	int r = -EAGAIN, rs = 0;
	bool ww;

	pair_init(&srv, &cli);
	stream_set_params(&srv.s, &ic);
	TAP_CHECK_EQ(tls_psk_parse(SPEC_KEY, &k), 0);
	TAP_CHECK_EQ(tls_client_start(&cli.s, &p, "cli"), 0);
	for (int i = 0; i < 200 && r == -EAGAIN; i++) {
		r = tls_handshake(&cli.s, &ww);
		if (rs >= 0) {
			rs = stream_recv(&srv.s, 4);
			if (rs == -EPROTO) {
				stream_send_term_req(&srv.s);
				stream_fini(&srv.s);
			}
		}
		wait_both(&cli.s, &cli.s, 10);
	}
	printf("# TLS client to plain port: server %d, client %d\n", rs, r);
	TAP_CHECK_EQ(rs, -EPROTO);
	TAP_CHECK(r == -ECONNREFUSED || r == -ECONNRESET);
	stream_fini(&cli.s);
}

int main(void)
{
	TAP_RUN(test_psk_parse);
	TAP_RUN(test_psk_derive_sha256);
	TAP_RUN(test_psk_derive_sha384);
	TAP_RUN(test_identity_parse);
	TAP_RUN(test_aes128_v0_keyupdates);
	TAP_RUN(test_aes128_v1_forced_keyupdates);
	TAP_RUN(test_aes256_v0);
	TAP_RUN(test_aes256_v1_forced_keyupdates);
	TAP_RUN(test_wrong_key);
	TAP_RUN(test_unknown_host);
	TAP_RUN(test_pending_not_lost);
	TAP_RUN(test_partial_record_not_pending);
	TAP_RUN(test_optional_and_required_plaintext);
	TAP_RUN(test_optional_tls);
	TAP_RUN(test_client_to_plain_port);
	return tap_done();
}
