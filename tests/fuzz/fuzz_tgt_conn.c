/* libFuzzer target for the target connection (src/target/conn.c over src/net/stream.c, with the
 * real core and a 1 MiB memory namespace): arbitrary host bytes arrive on a socketpair, driven
 * step by step with loop_run_once on the calling thread (no threads, no sleeps).
 * Input: 1 flag byte, then the host's byte stream. Flag bits 1:0 pick the phase the fuzzed
 * bytes start in, the harness sending the valid prefix first:
 *   0 raw (nothing sent yet)          1 after ICReq/ICResp
 *   2 admin queue live: ICReq, Connect (qid 0, in-capsule data), Property Set CC.EN = 1
 *   3 I/O queue live: phase 2 on a first connection, then ICReq and Connect (qid 1) on the
 *     fuzzed one
 * bit 2 asks for header digests, bit 3 for data digests in the fuzzed connection's ICReq,
 * bits 7:4 seed the write chunking; bit 4 also turns on zero-copy Reads (--zero-copy-reads:
 * Reads of 64 KiB or more without a data digest go through the stream's pipe). Invariants: every
 * byte the target sends decodes as valid controller-to-host PDUs with correct digests; after EOF
 * every connection and controller is freed within a bounded number of loop turns; nothing leaks
 * (ASan). Seeds: built with -DFUZZ_TGT_CONN_SEEDS as a program writing tests/fuzz/corpus/tgt_conn.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/le.h"
#include "common/log.h"
#include "net/loop.h"
#include "proto/crc32c.h"
#include "proto/nvme.h"
#include "proto/pdu.h"
#include "target/conn.h"
#include "target/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(c)                                                                         \
	do {                                                                                   \
		if (!(c)) {                                                                    \
			fprintf(stderr, "fuzz_tgt_conn: %s:%d: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                               \
		}                                                                              \
	} while (0)

#define FUZZ_MAX_INPUT	 (256 * 1024)
#define FUZZ_SUBNQN	 "nqn.2024-01.io.nvtcp:fuzz"
#define FUZZ_HOSTNQN	 "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000f0"
#define FUZZ_CC_ENABLE	 (NVME_CC_EN | 6u << 16 | 4u << 20) /* IOSQES 64, IOCQES 16, NVM */
#define FUZZ_DRAIN_TURNS 2000

enum fuzz_phase {
	FUZZ_PHASE_RAW,
	FUZZ_PHASE_IC,
	FUZZ_PHASE_ADMIN,
	FUZZ_PHASE_IO,
	FUZZ_PHASE_COUNT
};

static const char fuzz_config[] =
	"{\"ports\": [{\"addr\": \"127.0.0.1\", \"port\": 4420}],"
	" \"subsystems\": [{\"nqn\": \"" FUZZ_SUBNQN "\", \"allow_any_host\": true,"
	" \"namespaces\": [{\"nsid\": 1, \"backend\": \"memory\", \"size\": \"1M\"}]}]}";

/* The target, built once per process: one thread (index 0) driven by the harness. */
static struct tgt fuzz_tgt;
static struct tgt_thread *fuzz_th;
static struct tgt_port *fuzz_port;

/* ---- building host PDUs (harness prefixes and the seed generator) ----------------------- */

struct fuzz_buf {
	uint8_t b[FUZZ_MAX_INPUT + 8192];
	size_t len;
	struct pdu_params p; /* what the host negotiated: digests for the next PDUs */
};

static void fuzz_put(struct fuzz_buf *f, const void *b, size_t n)
{
	FUZZ_ASSERT(f->len + n <= sizeof(f->b));
	memcpy(f->b + f->len, b, n);
	f->len += n;
}

static void fuzz_icreq(struct fuzz_buf *f, bool hdgst, bool ddgst)
{
	uint8_t h[sizeof(union wire_pdu)];

	fuzz_put(f, h, pdu_build_icreq(h, 0, hdgst, ddgst, 3));
	f->p.hdgst = hdgst;
	f->p.ddgst = ddgst;
	f->p.ic_done = true;
}

/* CapsuleCmd, with len bytes of in-capsule data when data is not NULL. */
/* A CapsuleCmd for sqe whose data (len bytes) is in the capsule (data given) or comes later;
 * in the capsule it starts off bytes into data (the SGL's offset address). */
static void fuzz_capsule_at(struct fuzz_buf *f, struct wire_sqe *sqe, const void *data,
			    uint32_t len, uint32_t off)
{
	uint8_t h[WIRE_PDO_MAX + WIRE_DIGEST_LEN], dg[WIRE_DIGEST_LEN];
	uint32_t incap = data ? off + len : 0;

	sqe->flags = WIRE_SQE_PSDT_SGL;
	le32_put(sqe->sgl1.length, len);
	le64_put(sqe->sgl1.addr, data ? off : 0);
	sqe->sgl1.type = data ? WIRE_SGL_TYPE_DATA_BLOCK_OFFSET : WIRE_SGL_TYPE_TRANSPORT_DATA;
	fuzz_put(f, h, pdu_build_capsule_cmd(h, sqe, incap, &f->p));
	if (!incap)
		return;
	fuzz_put(f, data, incap);
	if (f->p.ddgst) {
		pdu_ddgst_put(dg, crc32c(data, incap));
		fuzz_put(f, dg, sizeof(dg));
	}
}

static void fuzz_capsule(struct fuzz_buf *f, struct wire_sqe *sqe, const void *data, uint32_t len)
{
	fuzz_capsule_at(f, sqe, data, len, 0);
}

static void fuzz_connect(struct fuzz_buf *f, uint16_t cid, uint16_t qid, uint16_t cntlid)
{
	struct wire_connect_data d;
	struct wire_sqe sqe;
	struct wire_connect_cmd *cmd = (struct wire_connect_cmd *)&sqe;

	memset(&sqe, 0, sizeof(sqe));
	memset(&d, 0, sizeof(d));
	cmd->opc = NVME_FABRICS_OPC;
	cmd->fctype = NVME_FCTYPE_CONNECT;
	le16_put(cmd->cid, cid);
	le16_put(cmd->qid, qid);
	le16_put(cmd->sqsize, 31);
	memset(d.hostid, 0xf0, sizeof(d.hostid));
	le16_put(d.cntlid, cntlid);
	snprintf(d.subnqn, sizeof(d.subnqn), "%s", FUZZ_SUBNQN);
	snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", FUZZ_HOSTNQN);
	fuzz_capsule(f, &sqe, &d, sizeof(d));
}

static void fuzz_prop_set(struct fuzz_buf *f, uint16_t cid, uint32_t ofst, uint64_t value)
{
	struct wire_sqe sqe;
	struct wire_prop_cmd *cmd = (struct wire_prop_cmd *)&sqe;

	memset(&sqe, 0, sizeof(sqe));
	cmd->opc = NVME_FABRICS_OPC;
	cmd->fctype = NVME_FCTYPE_PROPERTY_SET;
	le16_put(cmd->cid, cid);
	le32_put(cmd->ofst, ofst);
	le64_put(cmd->value, value);
	fuzz_capsule(f, &sqe, NULL, 0);
}

/* ---- checking what the target sends ------------------------------------------------------ */

/* A host-role decoder over everything the target wrote to one connection. */
struct fuzz_peer {
	int fd;
	struct pdu_rx rx;
	bool term;	  /* C2HTermReq seen: nothing may follow */
	bool eof;	  /* the target closed */
	uint32_t cntlid;  /* DW0 of the last Connect response (CID 0xc0): the CNTLID */
	uint64_t nr_pdus; /* complete PDUs received */
};

static void fuzz_peer_init(struct fuzz_peer *pr, int fd)
{
	static const struct pdu_params initial = {.ic_done = false};

	memset(pr, 0, sizeof(*pr));
	pr->fd = fd;
	pdu_rx_init(&pr->rx, PDU_ROLE_HOST, &initial);
}

static void fuzz_peer_feed(struct fuzz_peer *pr, const uint8_t *b, size_t len)
{
	/* a PDU without data completes on the feed after its header: go on until NONE */
	for (;;) {
		enum pdu_ev ev;
		size_t n = pdu_rx_feed(&pr->rx, b, len, &ev);
		const union wire_pdu *h = &pr->rx.hdr;

		b += n;
		len -= n;
		/* the target must never send anything a host would have to reject */
		FUZZ_ASSERT(ev != PDU_EV_ERROR);
		FUZZ_ASSERT(ev == PDU_EV_NONE || !pr->term);
		if (ev == PDU_EV_HEADER) {
			pdu_rx_discard(&pr->rx);
		} else if (ev == PDU_EV_PDU) {
			FUZZ_ASSERT(pr->rx.ddgst_ok);
			pr->nr_pdus++;
			if (h->ch.pdu_type == WIRE_PDU_ICRESP) {
				struct pdu_params p = {
					.hdgst = h->icresp.dgst & WIRE_DGST_HDR,
					.ddgst = h->icresp.dgst & WIRE_DGST_DATA,
					.cpda = h->icresp.cpda,
					.maxh2cdata = le32_get(h->icresp.maxh2cdata),
					.ic_done = true,
				};
				pdu_rx_set_params(&pr->rx, &p);
			} else if (h->ch.pdu_type == WIRE_PDU_C2H_TERM_REQ) {
				pr->term = true;
			} else if (h->ch.pdu_type == WIRE_PDU_CAPSULE_RESP &&
				   le16_get(h->rsp.cqe.cid) == 0xc0 &&
				   le16_get(h->rsp.cqe.status) == 0) {
				pr->cntlid = le32_get(h->rsp.cqe.dw0) & 0xffff;
			}
		} else {
			break; /* PDU_EV_NONE: every byte consumed */
		}
	}
}

static void fuzz_peer_drain(struct fuzz_peer *pr)
{
	static uint8_t sink[65536];
	ssize_t n;

	if (pr->fd < 0 || pr->eof)
		return;
	while ((n = read(pr->fd, sink, sizeof(sink))) > 0)
		fuzz_peer_feed(pr, sink, (size_t)n);
	if (n == 0)
		pr->eof = true;
	else
		FUZZ_ASSERT(errno == EAGAIN || errno == ECONNRESET);
}

static void fuzz_turn(struct fuzz_peer *a, struct fuzz_peer *b)
{
	FUZZ_ASSERT(loop_run_once(fuzz_th->loop, 0) >= 0);
	if (a)
		fuzz_peer_drain(a);
	if (b)
		fuzz_peer_drain(b);
}

/* Write all of buf (the harness's own valid prefix) and let the target answer. */
static void fuzz_send_all(struct fuzz_peer *pr, const uint8_t *b, size_t len, uint64_t want_pdus)
{
	for (unsigned turn = 0; turn < FUZZ_DRAIN_TURNS; turn++) {
		if (len > 0) {
			ssize_t n = send(pr->fd, b, len, MSG_NOSIGNAL);

			if (n > 0) {
				b += n;
				len -= (size_t)n;
			}
		}
		fuzz_turn(pr, NULL);
		if (len == 0 && pr->nr_pdus >= want_pdus)
			return;
	}
	fprintf(stderr, "fuzz_tgt_conn: prefix: %zu bytes unsent, %llu of %llu PDUs answered\n",
		len, (unsigned long long)pr->nr_pdus, (unsigned long long)want_pdus);
	FUZZ_ASSERT(!"valid prefix not answered");
}

/* ---- setup ------------------------------------------------------------------------------- */

static void fuzz_setup(void)
{
	char err[512];

	enum log_level lvl = LOG_LEVEL_ERROR;
	const char *env = getenv("FUZZ_TGT_CONN_LOG"); /* e.g. "debug" to watch one input */

	if (env)
		log_parse_level(env, &lvl);
	log_set_level(lvl);
	FUZZ_ASSERT(tgt_init(&fuzz_tgt) == 0);
	if (tgt_config_parse(&fuzz_tgt, "fuzz.json", fuzz_config, strlen(fuzz_config), true, err,
			     sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_tgt_conn: %s\n", err);
		abort();
	}
	fuzz_tgt.nr_threads = 1;
	fuzz_th = &fuzz_tgt.threads[0];
	fuzz_th->index = 0;
	fuzz_th->tgt = &fuzz_tgt;
	FUZZ_ASSERT(loop_create(&fuzz_th->loop, NULL) == 0);
	FUZZ_ASSERT(tgt_conn_thread_init(fuzz_th) == 0);
	FUZZ_ASSERT(tgt_thread_attach(fuzz_th) == 0);
	fuzz_port = list_first_entry(&fuzz_tgt.ports, struct tgt_port, entry);
}

static bool fuzz_no_ctrls(void)
{
	struct list_head *p;
	bool none = true;

	pthread_mutex_lock(&fuzz_tgt.lock);
	list_for_each (p, &fuzz_tgt.subsystems) {
		if (!list_empty(&list_entry(p, struct tgt_subsys, entry)->ctrls))
			none = false;
	}
	pthread_mutex_unlock(&fuzz_tgt.lock);
	return none;
}

/* A new connection on the target; *peer gets the host end. zc: --zero-copy-reads. */
static void fuzz_open(struct fuzz_peer *peer, bool zc)
{
	struct tgt_conn_opts o;
	int sv[2];

	FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	tgt_conn_opts_default(&o);
	/* a peer that does not read is the harness's fault, not the target's: never time out */
	o.tx_stall_ms = o.idle_timeout_ms = o.ic_timeout_ms = 3600 * 1000;
	o.zero_copy_reads = zc;
	FUZZ_ASSERT(tgt_conn_create(fuzz_th, fuzz_port, sv[0], &o, NULL) == 0);
	fuzz_peer_init(peer, sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_buf pre;
	struct tgt_conn_thread *ct;
	struct fuzz_peer admin = {.fd = -1}, fz;
	enum fuzz_phase phase;
	bool hdgst, ddgst, zc;
	size_t off = 0;
	uint32_t seed;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	if (!fuzz_th)
		fuzz_setup();
	ct = fuzz_th->transport;
	phase = (enum fuzz_phase)(data[0] & 3);
	hdgst = data[0] & 4;
	ddgst = data[0] & 8;
	zc = data[0] & 16;
	seed = (uint32_t)(data[0] >> 4) * 2654435761u | 1;
	data++;
	size--;

	/* Phase 3: a live admin queue on a first connection gives the CNTLID */
	if (phase == FUZZ_PHASE_IO) {
		fuzz_open(&admin, false);
		memset(&pre.p, 0, sizeof(pre.p));
		pre.len = 0;
		fuzz_icreq(&pre, false, false);
		fuzz_connect(&pre, 0xc0, 0, NVME_CNTLID_DYNAMIC);
		fuzz_prop_set(&pre, 0xc1, NVME_REG_CC, FUZZ_CC_ENABLE);
		fuzz_send_all(&admin, pre.b, pre.len, 3);
		FUZZ_ASSERT(admin.cntlid != 0 && !admin.term);
	}
	fuzz_open(&fz, zc);
	memset(&pre.p, 0, sizeof(pre.p));
	pre.len = 0;
	if (phase != FUZZ_PHASE_RAW)
		fuzz_icreq(&pre, hdgst, ddgst);
	if (phase == FUZZ_PHASE_ADMIN) {
		fuzz_connect(&pre, 0xc0, 0, NVME_CNTLID_DYNAMIC);
		fuzz_prop_set(&pre, 0xc1, NVME_REG_CC, FUZZ_CC_ENABLE);
	} else if (phase == FUZZ_PHASE_IO) {
		fuzz_connect(&pre, 0xc0, 1, (uint16_t)admin.cntlid);
	}
	if (pre.len)
		fuzz_send_all(&fz, pre.b, pre.len, phase == FUZZ_PHASE_ADMIN ? 3 : 1 + (phase > 1));

	/* The fuzzed bytes, in chunks of varying size, a loop turn after each. Bounded: each
	 * turn writes at least one byte unless the target stopped reading. */
	for (unsigned turn = 0; turn < 4 * FUZZ_MAX_INPUT && off <= size; turn++) {
		if (off < size) {
			size_t chunk;
			ssize_t n;

			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			chunk = 1 + seed % (seed & 0x100 ? 64 : 8192);
			chunk = chunk < size - off ? chunk : size - off;
			n = send(fz.fd, data + off, chunk, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (errno != EAGAIN)
				off = size; /* the target closed its end */
		} else {
			shutdown(fz.fd, SHUT_WR); /* EOF: the target closes the connection */
			off++;
		}
		fuzz_turn(&fz, &admin);
	}
	if (admin.fd >= 0)
		shutdown(admin.fd, SHUT_WR);

	/* Everything must be gone in a bounded number of turns: connections, controllers. */
	for (unsigned turn = 0; turn < FUZZ_DRAIN_TURNS; turn++) {
		fuzz_turn(&fz, &admin);
		if (ct->nr_conns == 0 && fuzz_no_ctrls())
			break;
	}
	FUZZ_ASSERT(ct->nr_conns == 0);
	FUZZ_ASSERT(fuzz_no_ctrls());
	close(fz.fd);
	if (admin.fd >= 0)
		close(admin.fd);
	return 0;
}

#ifdef FUZZ_TGT_CONN_SEEDS
/* ---- seed generator: valid host exchanges built with the proto builders ------------------ */

static struct fuzz_buf fuzz_seed;

static void seed_begin(enum fuzz_phase phase, bool hdgst, bool ddgst, unsigned chunk_seed)
{
	struct fuzz_buf *s = &fuzz_seed;

	memset(&s->p, 0, sizeof(s->p));
	s->len = 0;
	s->b[s->len++] = (uint8_t)(phase | (hdgst ? 4 : 0) | (ddgst ? 8 : 0) | chunk_seed << 4);
	if (phase != FUZZ_PHASE_RAW) {
		/* the harness sent the ICReq: the PDUs below use what it negotiated */
		s->p.hdgst = hdgst;
		s->p.ddgst = ddgst;
		s->p.ic_done = true;
	}
}

static void seed_write_file(const char *dir, const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(fuzz_seed.b, 1, fuzz_seed.len, f) != fuzz_seed.len) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static void seed_admin(uint16_t cid, uint8_t opc, uint32_t nsid, uint32_t cdw10, uint32_t cdw11,
		       uint32_t len)
{
	struct wire_sqe sqe;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = opc;
	le16_put(sqe.cid, cid);
	le32_put(sqe.nsid, nsid);
	le32_put(sqe.cdw10, cdw10);
	le32_put(sqe.cdw11, cdw11);
	fuzz_capsule(&fuzz_seed, &sqe, NULL, len);
}

/* A Read or Write of nlb blocks at slba, len bytes; with data, in the capsule starting off
 * bytes into its data (data holds off + len bytes). */
static void seed_rw_at(uint16_t cid, uint8_t opc, uint64_t slba, uint32_t nlb, const uint8_t *data,
		       uint32_t len, bool fua, uint32_t off)
{
	struct wire_sqe sqe;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = opc;
	le16_put(sqe.cid, cid);
	le32_put(sqe.nsid, 1);
	le64_put(sqe.cdw10, slba);
	le32_put(sqe.cdw12, (nlb - 1) | (fua ? 1u << 30 : 0));
	fuzz_capsule_at(&fuzz_seed, &sqe, data, len, off);
}

static void seed_rw(uint16_t cid, uint8_t opc, uint64_t slba, uint32_t nlb, const uint8_t *data,
		    uint32_t len, bool fua)
{
	seed_rw_at(cid, opc, slba, nlb, data, len, fua, 0);
}

static void seed_h2c(uint16_t cid, uint16_t ttag, uint32_t datao, const uint8_t *d, uint32_t len,
		     bool last)
{
	uint8_t h[WIRE_PDO_MAX + WIRE_DIGEST_LEN], dg[WIRE_DIGEST_LEN];

	fuzz_put(&fuzz_seed, h, pdu_build_h2c_data(h, cid, ttag, datao, len, last, &fuzz_seed.p));
	fuzz_put(&fuzz_seed, d, len);
	if (fuzz_seed.p.ddgst) {
		pdu_ddgst_put(dg, crc32c(d, len));
		fuzz_put(&fuzz_seed, dg, sizeof(dg));
	}
}

int main(int argc, char **argv)
{
	static uint8_t blk[16384];
	const char *dir = argc > 1 ? argv[1] : ".";
	char name[64];

	for (size_t i = 0; i < sizeof(blk); i++)
		blk[i] = (uint8_t)(i * 7 + 3);
	for (unsigned dg = 0; dg < 4; dg++) {
		bool hd = dg & 1, dd = dg & 2;

		/* raw: the whole admin bring-up from the first byte */
		seed_begin(FUZZ_PHASE_RAW, false, false, dg);
		fuzz_icreq(&fuzz_seed, hd, dd);
		fuzz_connect(&fuzz_seed, 1, 0, NVME_CNTLID_DYNAMIC);
		fuzz_prop_set(&fuzz_seed, 2, NVME_REG_CC, FUZZ_CC_ENABLE);
		seed_admin(3, NVME_ADMIN_IDENTIFY, 0, NVME_CNS_CTRL, 0, 4096);
		snprintf(name, sizeof(name), "raw_bringup_dg%u", dg);
		seed_write_file(dir, name);

		/* after ICReq: Connect to the discovery subsystem, read its log */
		seed_begin(FUZZ_PHASE_IC, hd, dd, 3);
		{
			struct wire_connect_data d;
			struct wire_sqe sqe;
			struct wire_connect_cmd *cmd = (struct wire_connect_cmd *)&sqe;

			memset(&sqe, 0, sizeof(sqe));
			memset(&d, 0, sizeof(d));
			cmd->opc = NVME_FABRICS_OPC;
			cmd->fctype = NVME_FCTYPE_CONNECT;
			le16_put(cmd->sqsize, 31);
			le16_put(d.cntlid, NVME_CNTLID_DYNAMIC);
			snprintf(d.subnqn, sizeof(d.subnqn), "%s", NVME_DISCOVERY_NQN);
			snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", FUZZ_HOSTNQN);
			fuzz_capsule(&fuzz_seed, &sqe, &d, sizeof(d));
		}
		fuzz_prop_set(&fuzz_seed, 2, NVME_REG_CC, FUZZ_CC_ENABLE);
		seed_admin(3, NVME_ADMIN_GET_LOG_PAGE, 0, NVME_LOG_DISCOVERY | (1023u << 16), 0,
			   4096);
		snprintf(name, sizeof(name), "ic_discovery_dg%u", dg);
		seed_write_file(dir, name);

		/* admin live: identify, log pages, features, keep alive, AER, queues */
		seed_begin(FUZZ_PHASE_ADMIN, hd, dd, 5);
		seed_admin(1, NVME_ADMIN_IDENTIFY, 0, NVME_CNS_CTRL, 0, 4096);
		seed_admin(2, NVME_ADMIN_IDENTIFY, 1, NVME_CNS_NS, 0, 4096);
		seed_admin(3, NVME_ADMIN_GET_LOG_PAGE, NVME_NSID_ALL, NVME_LOG_SMART | (127u << 16),
			   0, 512);
		seed_admin(4, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_NUM_QUEUES, 0x00030003, 0);
		seed_admin(5, NVME_ADMIN_SET_FEATURES, 0, NVME_FEAT_KATO, 5000, 0);
		seed_admin(6, NVME_ADMIN_KEEP_ALIVE, 0, 0, 0, 0);
		seed_admin(7, NVME_ADMIN_ASYNC_EVENT, 0, 0, 0, 0);
		seed_admin(8, NVME_ADMIN_IDENTIFY, 0, NVME_CNS_NS_ACTIVE_LIST, 0, 4096);
		seed_admin(9, NVME_ADMIN_GET_FEATURES, 0, NVME_FEAT_NUM_QUEUES, 0, 0);
		snprintf(name, sizeof(name), "admin_cmds_dg%u", dg);
		seed_write_file(dir, name);

		/* I/O: in-capsule write, read back, FUA write, flush */
		seed_begin(FUZZ_PHASE_IO, hd, dd, 7);
		seed_rw(1, NVME_IO_WRITE, 8, 8, blk, 4096, false);
		seed_rw(2, NVME_IO_READ, 8, 8, NULL, 4096, false);
		seed_rw(3, NVME_IO_WRITE, 16, 1, blk, 512, true);
		seed_admin(4, NVME_IO_FLUSH, 1, 0, 0, 0);
		seed_rw(5, NVME_IO_READ, 0, 64, NULL, 32768, false);
		snprintf(name, sizeof(name), "io_incapsule_dg%u", dg);
		seed_write_file(dir, name);

		/* I/O: a write through R2T (the first command after Connect gets TTAG 0) answered
		 * by two H2CData, then another through R2T answered in one */
		seed_begin(FUZZ_PHASE_IO, hd, dd, 9);
		seed_rw(1, NVME_IO_WRITE, 32, 32, NULL, 16384, false);
		seed_h2c(1, 0, 0, blk, 8192, false);
		seed_h2c(1, 0, 8192, blk + 8192, 8192, true);
		seed_rw(2, NVME_IO_READ, 32, 32, NULL, 16384, false);
		seed_rw(3, NVME_IO_WRITE, 100, 8, NULL, 4096, true);
		seed_h2c(3, 2, 0, blk, 4096, true); /* TTAG 2: reads 2 still holds slot 0 */
		seed_admin(4, NVME_IO_WRITE_ZEROES, 1, 100, 7, 0);
		snprintf(name, sizeof(name), "io_r2t_dg%u", dg);
		seed_write_file(dir, name);

		/* I/O: Reads of 128 KiB and 64 KiB from the memory namespace; the odd chunk seed
		 * sets bit 4, so without a data digest they go by reference (zero-copy) */
		seed_begin(FUZZ_PHASE_IO, hd, dd, 13);
		seed_rw(1, NVME_IO_READ, 0, 256, NULL, 131072, false);
		seed_rw(2, NVME_IO_READ, 512, 128, NULL, 65536, false);
		seed_rw(3, NVME_IO_READ, 1000, 8, NULL, 4096, false);
		snprintf(name, sizeof(name), "io_large_reads_dg%u", dg);
		seed_write_file(dir, name);

		/* I/O: in-capsule data at offsets (SGL address): 4 KiB (into the memory namespace
		 * itself), 8 KiB (through a pool buffer), then one whose offset is past the data
		 * (SGL Offset Invalid) */
		seed_begin(FUZZ_PHASE_IO, hd, dd, 5);
		seed_rw_at(1, NVME_IO_WRITE, 200, 8, blk, 4096, false, 64);
		seed_rw_at(2, NVME_IO_WRITE, 300, 16, blk, 8192, false, 512);
		seed_rw(3, NVME_IO_READ, 200, 8, NULL, 4096, false);
		seed_rw_at(4, NVME_IO_WRITE, 400, 1, blk, 0, false, 512);
		snprintf(name, sizeof(name), "io_incap_offset_dg%u", dg);
		seed_write_file(dir, name);

		/* I/O: a host TermReq after a command */
		seed_begin(FUZZ_PHASE_IO, hd, dd, 11);
		seed_rw(1, NVME_IO_READ, 0, 1, NULL, 512, false);
		{
			uint8_t h[PDU_TERM_REQ_MAX];
			struct pdu_err e = {.fes = WIRE_FES_INVALID_HEADER_FIELD, .fei = 2};

			fuzz_put(&fuzz_seed, h,
				 pdu_build_term_req(h, WIRE_PDU_H2C_TERM_REQ, &e, NULL, 0));
		}
		snprintf(name, sizeof(name), "io_term_req_dg%u", dg);
		seed_write_file(dir, name);
	}
	return 0;
}
#endif
