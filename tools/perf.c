/* nvtcp perf: queue-depth driven I/O benchmark over libnvtcp, in the manner of spdk_nvme_perf.
 * One thread per I/O queue (optionally pinned), a progress line each second, a final table
 * with IOPS, MiB/s and latency percentiles from a log-linear histogram (no per-I/O allocation),
 * and --verify: blocks stamped with their LBA and a per-run generation, read back and checked.
 * Layer: tools (uses only include/nvtcp/host.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli_util.h"

#define PERF_SUB_BITS	    5 /* 32 linear sub-buckets per power of two: <= 3.1% error */
#define PERF_SUBS	    (1u << PERF_SUB_BITS)
#define PERF_BUCKETS	    (64 * PERF_SUBS)
#define PERF_VERIFY_REGION  (4ull << 20) /* bytes per worker in --verify */
#define PERF_VERIFY_GRACE_S 60		 /* --verify runs past -t until every queue read back */

/* perf's own long options, numbered after the shared ones (cli_util.h). */
enum { PERF_OPT_NO_SQFC = CLI_OPT_COUNT + 1 };

enum perf_pattern { PERF_READ, PERF_WRITE, PERF_RANDREAD, PERF_RANDWRITE, PERF_RW, PERF_RANDRW };

struct perf_hist {
	uint64_t bucket[PERF_BUCKETS];
	uint64_t count, sum_ns, min_ns, max_ns;
};

struct perf_cfg {
	unsigned depth, seconds, nr_queues, read_pct;
	uint32_t io_size, nsid, lba_size;
	enum perf_pattern pattern;
	bool random, busy_poll, verify, json;
	int cpus[256];
	unsigned nr_cpus;
	uint64_t nsze, gen;
	uint64_t drain_ms; /* how long to wait for in-flight I/O at the end (covers a reconnect) */
};

struct perf_worker;

struct perf_io {
	struct perf_worker *w;
	uint8_t *buf;
	uint64_t slba;
	uint64_t start_ns;
	bool read;
};

struct perf_worker {
	const struct perf_cfg *cfg;
	struct nvtcp_io_queue *q;
	pthread_t thread;
	unsigned idx;
	struct perf_io *ios;
	uint64_t region_start, region_blocks; /* in LBAs */
	uint64_t slots;			      /* I/O-sized slots in the region */
	uint32_t nblocks;		      /* LBAs per I/O */
	uint64_t next_seq;		      /* next sequential block offset in the region */
	uint64_t rng;
	int phase; /* verify: 0 write pass, 1 read passes */
	uint64_t verify_written;
	uint64_t turn_ns; /* clock of this poll turn's completions; 0 until the first one */
	_Atomic uint64_t done_ios, done_bytes; /* successful completions only */
	_Atomic uint64_t completed;	       /* every completion, failed ones too */
	uint64_t errors, mismatches, verified;
	uint64_t reads, writes; /* successful ones, for the summary */
	int fatal;
	struct perf_hist hist;
};

static atomic_bool perf_stop;

static uint64_t perf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t perf_rand(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Uniform in [0, n) without a division: the high half of a 64x64-bit product. */
static uint64_t perf_rand_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)perf_rand(s) * n) >> 64);
}

/* ---- histogram --------------------------------------------------------------------------- */

static unsigned perf_hist_index(uint64_t v)
{
	if (v < PERF_SUBS)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - PERF_SUB_BITS;

	return (shift + 1) * PERF_SUBS + (unsigned)((v >> shift) & (PERF_SUBS - 1));
}

/* Lower bound of bucket i (the value reported for percentiles falling in it). */
static uint64_t perf_hist_value(unsigned i)
{
	if (i < PERF_SUBS)
		return i;
	unsigned shift = i / PERF_SUBS - 1;

	return ((uint64_t)PERF_SUBS + (i % PERF_SUBS)) << shift;
}

static void perf_hist_add(struct perf_hist *h, uint64_t ns)
{
	h->bucket[perf_hist_index(ns)]++;
	h->count++;
	h->sum_ns += ns;
	if (!h->min_ns || ns < h->min_ns)
		h->min_ns = ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

static void perf_hist_merge(struct perf_hist *d, const struct perf_hist *s)
{
	for (unsigned i = 0; i < PERF_BUCKETS; i++)
		d->bucket[i] += s->bucket[i];
	if (s->count && (!d->min_ns || s->min_ns < d->min_ns))
		d->min_ns = s->min_ns;
	d->max_ns = d->max_ns > s->max_ns ? d->max_ns : s->max_ns;
	d->count += s->count;
	d->sum_ns += s->sum_ns;
}

static uint64_t perf_hist_pct(const struct perf_hist *h, double pct)
{
	/* Rank ceil(pct% of count) in integers: in doubles 99.9 / 100 * 1000 is 999.0000000000001
	 * and would name the 1000th value. pct is taken to 1/10000 of a percent. */
	uint64_t ppm = (uint64_t)llround(pct * 10000.0), seen = 0;
	uint64_t want = (ppm * h->count + 999999) / 1000000;

	if (!h->count)
		return 0;
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < PERF_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= want)
			return perf_hist_value(i) > h->max_ns ? h->max_ns : perf_hist_value(i);
	}
	return h->max_ns;
}

/* ---- verify pattern ---------------------------------------------------------------------- */

static void perf_stamp(uint8_t *buf, uint64_t slba, uint32_t nblocks, uint32_t bs, uint64_t gen)
{
	for (uint32_t b = 0; b < nblocks; b++) {
		uint64_t *w = (uint64_t *)(buf + (size_t)b * bs);
		uint64_t lba = slba + b;

		w[0] = lba;
		w[1] = gen;
		for (uint32_t i = 2; i < bs / 8; i++)
			w[i] = lba * 0x9e3779b97f4a7c15ull ^ gen ^ i;
	}
}

/* Returns the number of bad blocks. */
static unsigned perf_check(const uint8_t *buf, uint64_t slba, uint32_t nblocks, uint32_t bs,
			   uint64_t gen)
{
	unsigned bad = 0;

	for (uint32_t b = 0; b < nblocks; b++) {
		const uint64_t *w = (const uint64_t *)(buf + (size_t)b * bs);
		uint64_t lba = slba + b;
		bool ok = w[0] == lba && w[1] == gen;

		for (uint32_t i = 2; ok && i < bs / 8; i++)
			ok = w[i] == (lba * 0x9e3779b97f4a7c15ull ^ gen ^ i);
		if (!ok) {
			if (bad == 0)
				fprintf(stderr,
					"perf: verify mismatch at LBA %" PRIu64
					": found lba %" PRIu64 " gen %#" PRIx64
					", expected gen %#" PRIx64 "\n",
					lba, w[0], w[1], gen);
			bad++;
		}
	}
	return bad;
}

/* ---- workers ----------------------------------------------------------------------------- */

static int perf_submit(struct perf_io *io, uint64_t now);

/* Counters only the worker's thread writes, read by the main thread for progress: a relaxed
 * load and store (plain moves on x86) instead of a locked read-modify-write per I/O. */
static inline void perf_count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void perf_done(void *arg, const struct nvtcp_cpl *cpl)
{
	struct perf_io *io = arg;
	struct perf_worker *w = io->w;
	const struct perf_cfg *cfg = w->cfg;
	uint64_t now;

	/* One clock read per poll turn, at its first completion: the completions of a turn and
	 * the submissions they make share it. An I/O's start and end are thus both early by its
	 * place in its turn; those errors cancel on average and stay under one turn's length. */
	if (!w->turn_ns)
		w->turn_ns = perf_now_ns();
	now = w->turn_ns;

	/* A failed I/O is an error, not throughput: it stays out of IOPS, MiB/s and latency. */
	perf_count(&w->completed, 1);
	if (cpl->err || cpl->status) {
		char msg[160];

		if (w->errors++ < 5)
			fprintf(stderr, "perf: queue %u: %s at LBA %" PRIu64 " failed: %s\n",
				w->idx, io->read ? "read" : "write", io->slba,
				nvtcp_result_str(cpl->err ? cpl->err : cpl->status, msg,
						 sizeof(msg)));
	} else {
		perf_hist_add(&w->hist, now - io->start_ns);
		if (cfg->verify && io->read) {
			uint32_t nblocks = cfg->io_size / cfg->lba_size;
			unsigned bad =
				perf_check(io->buf, io->slba, nblocks, cfg->lba_size, cfg->gen);

			w->mismatches += bad;
			__atomic_fetch_add(&w->verified, nblocks - bad, __ATOMIC_RELAXED);
		}
		perf_count(&w->done_ios, 1);
		perf_count(&w->done_bytes, cfg->io_size);
		if (io->read)
			w->reads++;
		else
			w->writes++;
	}
	if (!atomic_load_explicit(&perf_stop, memory_order_relaxed) && !w->fatal)
		perf_submit(io, now);
}

/* The workload's next slot of the worker's region: random, or the next in order. */
static uint64_t perf_next_slot(struct perf_worker *w)
{
	if (w->cfg->random)
		return perf_rand_below(&w->rng, w->slots);
	if (w->next_seq >= w->slots)
		w->next_seq = 0;
	return w->next_seq++;
}

/* Whether the workload's next operation is a read (-M decides for rw and randrw). */
static bool perf_pick_read(struct perf_worker *w)
{
	switch (w->cfg->pattern) {
	case PERF_READ:
	case PERF_RANDREAD:
		return true;
	case PERF_WRITE:
	case PERF_RANDWRITE:
		return false;
	default:
		return perf_rand(&w->rng) % 100 < w->cfg->read_pct;
	}
}

/* Choose the next operation for io and submit it; now is its start time. */
static int perf_submit(struct perf_io *io, uint64_t now)
{
	struct perf_worker *w = io->w;
	const struct perf_cfg *cfg = w->cfg;
	uint32_t nblocks = w->nblocks;
	uint64_t slots = w->slots, slot;
	int r;

	if (cfg->verify) {
		/* Write pass over the region once, then the workload (-w: read, randread, rw,
		 * randrw) until time is up. Its writes stamp what the pass stamped, so every read
		 * must find the pass's pattern whatever it races with. */
		if (w->phase == 0 && w->next_seq >= slots) {
			if (w->verify_written < slots)
				return 0; /* wait for the write pass to finish before reading */
			w->phase = 1;
			w->next_seq = 0;
		}
		if (w->phase == 0) {
			slot = w->next_seq++;
			io->read = false;
		} else {
			slot = perf_next_slot(w);
			io->read = perf_pick_read(w);
		}
	} else {
		slot = perf_next_slot(w);
		io->read = perf_pick_read(w);
	}
	io->slba = w->region_start + slot * nblocks;
	if (!io->read && cfg->verify)
		perf_stamp(io->buf, io->slba, nblocks, cfg->lba_size, cfg->gen);
	/* --verify spends time stamping and checking blocks: keep it out of the latency. */
	io->start_ns = cfg->verify ? perf_now_ns() : now;
	if (io->read)
		r = nvtcp_submit_read(w->q, cfg->nsid, io->slba, nblocks, io->buf, cfg->io_size, 0,
				      perf_done, io);
	else
		r = nvtcp_submit_write(w->q, cfg->nsid, io->slba, nblocks, io->buf, cfg->io_size, 0,
				       perf_done, io);
	if (r < 0) {
		w->fatal = r;
		return r;
	}
	return 0;
}

static void perf_verify_wdone(struct perf_worker *w)
{
	/* Failed writes end the pass too (they are reported, and fail the run). */
	w->verify_written = atomic_load(&w->completed);
}

static void *perf_worker_main(void *arg)
{
	struct perf_worker *w = arg;
	const struct perf_cfg *cfg = w->cfg;
	int r = 0;

	if (cfg->nr_cpus) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cfg->cpus[w->idx % cfg->nr_cpus], &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	for (unsigned i = 0; i < cfg->depth; i++)
		if (perf_submit(&w->ios[i], perf_now_ns()) < 0)
			break;
	while (!atomic_load(&perf_stop) && !w->fatal) {
		w->turn_ns = 0;
		r = cfg->busy_poll ? nvtcp_queue_poll(w->q, 0) : nvtcp_queue_wait(w->q, 100);
		if (r < 0) {
			w->fatal = r;
			break;
		}
		if (cfg->verify && w->phase == 0) {
			perf_verify_wdone(w);
			/* The write pass is complete: refill the pipeline with reads. */
			if (w->verify_written >= w->slots && nvtcp_queue_outstanding(w->q) == 0)
				for (unsigned i = 0; i < cfg->depth; i++)
					perf_submit(&w->ios[i], perf_now_ns());
		}
	}
	/* Drain what is in flight so buffers are ours again (through a reconnect, if one is
	 * under way; the library fails held I/O once the controller-loss timeout passes). */
	uint64_t deadline = perf_now_ns() + cfg->drain_ms * 1000000ull;

	while (nvtcp_queue_outstanding(w->q) > 0 && perf_now_ns() < deadline) {
		w->turn_ns = 0;
		r = nvtcp_queue_wait(w->q, 10);
		if (r < 0) {
			if (!w->fatal)
				w->fatal = r;
			break;
		}
	}
	return NULL;
}

/* ---- CLI --------------------------------------------------------------------------------- */

void perf_usage(void)
{
	printf("NAME\n  nvtcp perf - measure IOPS, bandwidth and latency of an NVMe/TCP "
	       "namespace\n\n"
	       "SYNOPSIS\n  nvtcp perf -a ADDR -n NQN [-q DEPTH] [-o SIZE] [-w PATTERN] [-M PCT]\n"
	       "             [-t SECONDS] [--queues N | -c CPUS] [--busy-poll] [--verify]\n"
	       "             [--json] [--hdr-digest] [--data-digest] [--disable-sqflow]\n\n"
	       "DESCRIPTION\n"
	       "  Keeps DEPTH commands in flight on each I/O queue (one thread per queue) for the\n"
	       "  given time, prints a progress line every second and a summary with IOPS, MiB/s\n"
	       "  and average/min/max latency and p50/p99/p99.9/p99.99 percentiles.\n\n%s"
	       "  -q, --depth N         commands in flight per queue (default 32)\n"
	       "  -o, --io-size SIZE    bytes per I/O, a multiple of the block size (default 4k)\n"
	       "  -w, --workload P      read, write, randread, randwrite, rw, randrw (default\n"
	       "                        randread)\n"
	       "  -M, --read-pct PCT    share of reads for rw/randrw (default 50)\n"
	       "  -t, --time SECONDS    duration (default 10)\n"
	       "      --queues N        I/O queues and threads (default 1)\n"
	       "  -c, --cores LIST      CPUs to pin the threads to, e.g. 0,1; one queue per CPU\n"
	       "  -N, --nsid N          namespace (default 1)\n"
	       "      --busy-poll       spin on the sockets instead of sleeping in poll(2)\n"
	       "      --verify          write a pattern (LBA + run generation in every block) "
	       "over\n"
	       "                        4 MiB per queue, then run -w over it (read, randread, rw,\n"
	       "                        randrw; writes stamp the same pattern) and compare every\n"
	       "                        block read\n"
	       "      --disable-sqflow  ask the controller to skip SQ flow control (Connect\n"
	       "                        CATTR bit 2): reads then complete with their last\n"
	       "                        C2HData (SUCCESS flag), without a CapsuleResp\n"
	       "      --json            print the summary as JSON\n\n"
	       "EXIT STATUS\n  0 when every I/O succeeded (and verified), 1 otherwise.\n",
	       CLI_TRANSPORT_HELP);
}

static int perf_parse_pattern(const char *s, struct perf_cfg *c)
{
	static const char *const names[] = {"read",	 "write", "randread",
					    "randwrite", "rw",	  "randrw"};

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			c->pattern = (enum perf_pattern)i;
			c->random = c->pattern == PERF_RANDREAD || c->pattern == PERF_RANDWRITE ||
				    c->pattern == PERF_RANDRW;
			return 0;
		}
	}
	return -EINVAL;
}

static void perf_parse_cpus(const char *s, struct perf_cfg *c)
{
	char *copy = strdup(s), *save = NULL;

	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (c->nr_cpus == sizeof(c->cpus) / sizeof(c->cpus[0]))
			break;
		c->cpus[c->nr_cpus++] =
			(int)cli_parse_max("perf", "--cores", tok, false, CPU_SETSIZE - 1);
	}
	free(copy);
}

int perf_main(int argc, char **argv)
{
	static const struct option lo[] = {CLI_TRANSPORT_LONGOPTS,
					   {"depth", required_argument, NULL, 'q'},
					   {"io-size", required_argument, NULL, 'o'},
					   {"workload", required_argument, NULL, 'w'},
					   {"read-pct", required_argument, NULL, 'M'},
					   {"time", required_argument, NULL, 't'},
					   {"cores", required_argument, NULL, 'c'},
					   {"nsid", required_argument, NULL, 'N'},
					   {"queues", required_argument, NULL, CLI_OPT_QUEUES},
					   {"busy-poll", no_argument, NULL, CLI_OPT_BUSY_POLL},
					   {"verify", no_argument, NULL, CLI_OPT_VERIFY},
					   {"disable-sqflow", no_argument, NULL, PERF_OPT_NO_SQFC},
					   {0}};
	struct perf_cfg cfg = {.depth = 32,
			       .seconds = 10,
			       .nr_queues = 1,
			       .read_pct = 50,
			       .io_size = 4096,
			       .nsid = 1,
			       .pattern = PERF_RANDREAD,
			       .random = true};
	struct nvtcp_ctrl_opts o = {0};
	struct nvtcp_ns_info ns;
	struct nvtcp_ctrl *ctrl;
	struct perf_worker *ws;
	struct perf_hist *total;
	uint64_t t0, last_ios = 0, last_bytes = 0, errors = 0, mismatches = 0, verified = 0,
		     reads = 0, writes = 0;
	bool queues_set = false;
	char msg[256];
	int opt, r, fatal = 0;

	while ((opt = getopt_long(argc, argv, "a:s:n:q:o:w:M:t:c:N:", lo, NULL)) != -1) {
		switch (opt) {
		case CLI_OPT_HELP:
			perf_usage();
			return 0;
		case 'q':
			cfg.depth = (unsigned)cli_parse_max("perf", "--depth", optarg, false, 4096);
			break;
		case 'o':
			cfg.io_size = (uint32_t)cli_parse_max("perf", "--io-size", optarg, true,
							      UINT32_MAX);
			break;
		case 'w':
			if (perf_parse_pattern(optarg, &cfg) < 0)
				cli_die("perf",
					"unknown workload '%s': use read, write, randread, "
					"randwrite, rw or randrw",
					optarg);
			break;
		case 'M':
			cfg.read_pct =
				(unsigned)cli_parse_max("perf", "--read-pct", optarg, false, 100);
			break;
		case 't':
			cfg.seconds =
				(unsigned)cli_parse_max("perf", "--time", optarg, false, 86400);
			break;
		case 'c':
			perf_parse_cpus(optarg, &cfg);
			break;
		case 'N':
			cfg.nsid = (uint32_t)cli_parse_max("perf", "--nsid", optarg, false,
							   UINT32_MAX);
			break;
		case CLI_OPT_QUEUES:
			cfg.nr_queues =
				(unsigned)cli_parse_max("perf", "--queues", optarg, false, 256);
			queues_set = true;
			break;
		case CLI_OPT_BUSY_POLL:
			cfg.busy_poll = true;
			break;
		case CLI_OPT_VERIFY:
			cfg.verify = true;
			break;
		case PERF_OPT_NO_SQFC:
			o.disable_sqflow = true;
			break;
		default:
			if (!cli_transport_opt(opt, optarg, &o, &cfg.json))
				cli_die("perf", "unknown option; see 'nvtcp perf --help'");
		}
	}
	if (cfg.nr_cpus && !queues_set)
		cfg.nr_queues = cfg.nr_cpus;
	if (cfg.depth == 0 || cfg.depth > 4096 || cfg.nr_queues == 0 || cfg.nr_queues > 256 ||
	    cfg.read_pct > 100 || cfg.seconds == 0 || cfg.io_size == 0)
		cli_die("perf", "bad -q/--queues/-M/-t/-o value; see 'nvtcp perf --help'");
	if (cfg.verify && (cfg.pattern == PERF_WRITE || cfg.pattern == PERF_RANDWRITE))
		cli_die("perf", "--verify reads back what it wrote: use -w read, randread, rw or "
				"randrw");
	if (!o.subnqn)
		cli_die("perf", "no subsystem: add -n NQN (find it with 'nvtcp discover')");
	o.nr_io_queues = cfg.nr_queues;
	o.queue_size = cfg.depth + 1;
	cfg.drain_ms = 10000 + (o.ctrl_loss_tmo_ms > 0	  ? (uint64_t)o.ctrl_loss_tmo_ms
				: o.ctrl_loss_tmo_ms == 0 ? NVTCP_CTRL_LOSS_TMO_DEFAULT
							  : 0);
	ctrl = cli_connect("perf", &o);
	r = nvtcp_ns_get_info(ctrl, cfg.nsid, &ns);
	if (r)
		cli_die("perf", "namespace %u: %s", cfg.nsid,
			r == -ENOENT ? "not active (try --nsid 1)"
				     : nvtcp_result_str(r, msg, sizeof(msg)));
	cfg.lba_size = ns.lba_size;
	cfg.nsze = ns.nsze;
	if (cfg.io_size % ns.lba_size)
		cli_die("perf", "-o %u is not a multiple of the block size %u", cfg.io_size,
			ns.lba_size);
	if (cfg.io_size > nvtcp_ctrl_get_info(ctrl)->max_xfer)
		cli_die("perf", "-o %u exceeds the controller's maximum transfer %u", cfg.io_size,
			nvtcp_ctrl_get_info(ctrl)->max_xfer);
	if (nvtcp_ctrl_get_info(ctrl)->nr_io_queues < cfg.nr_queues) {
		fprintf(stderr, "perf: the controller granted %u of %u queues\n",
			nvtcp_ctrl_get_info(ctrl)->nr_io_queues, cfg.nr_queues);
		cfg.nr_queues = nvtcp_ctrl_get_info(ctrl)->nr_io_queues;
	}
	if (cfg.depth > nvtcp_queue_depth(nvtcp_ctrl_io_queue(ctrl, 0))) {
		fprintf(stderr,
			"perf: -q %u lowered to %u: the controller's queues hold %u entries\n",
			cfg.depth, nvtcp_queue_depth(nvtcp_ctrl_io_queue(ctrl, 0)),
			nvtcp_ctrl_get_info(ctrl)->queue_size);
		cfg.depth = nvtcp_queue_depth(nvtcp_ctrl_io_queue(ctrl, 0));
	}
	if (getrandom(&cfg.gen, sizeof(cfg.gen), 0) != (ssize_t)sizeof(cfg.gen))
		cfg.gen = perf_now_ns();
	cfg.gen |= 1;

	ws = calloc(cfg.nr_queues, sizeof(*ws));
	total = calloc(1, sizeof(*total));
	if (!ws || !total)
		cli_die("perf", "out of memory");
	uint64_t per = cfg.nsze / cfg.nr_queues;
	uint32_t nblocks = cfg.io_size / cfg.lba_size;

	if (cfg.verify && per * cfg.lba_size > PERF_VERIFY_REGION)
		per = PERF_VERIFY_REGION / cfg.lba_size;
	if (per < nblocks)
		cli_die("perf", "namespace too small for %u queues of %u-byte I/O", cfg.nr_queues,
			cfg.io_size);
	for (unsigned i = 0; i < cfg.nr_queues; i++) {
		struct perf_worker *w = &ws[i];

		w->cfg = &cfg;
		w->idx = i;
		w->q = nvtcp_ctrl_io_queue(ctrl, i);
		w->region_start = (uint64_t)i * (cfg.nsze / cfg.nr_queues);
		w->region_blocks = per;
		w->nblocks = nblocks;
		w->slots = per / nblocks;
		w->rng = cfg.gen ^ (0x9e3779b97f4a7c15ull * (i + 1));
		w->ios = calloc(cfg.depth, sizeof(*w->ios));
		if (!w->ios)
			cli_die("perf", "out of memory");
		for (unsigned d = 0; d < cfg.depth; d++) {
			w->ios[d].w = w;
			w->ios[d].buf = aligned_alloc(4096, (cfg.io_size + 4095) / 4096 * 4096);
			if (!w->ios[d].buf)
				cli_die("perf", "out of memory");
			/* not zeros (a target may treat those specially), and different per
			 * slot: Writes of two slots to the same blocks change their contents */
			memset(w->ios[d].buf, (int)((d * 37 + i * 11 + 1) % 255 + 1), cfg.io_size);
		}
	}
	if (!cfg.json)
		printf("perf: %u queue(s) x QD %u, %u-byte %s%s, %u s, %s%s%s\n", cfg.nr_queues,
		       cfg.depth, cfg.io_size,
		       (const char *[]){"read", "write", "randread", "randwrite", "rw",
					"randrw"}[cfg.pattern],
		       cfg.verify ? " verified" : "", cfg.seconds,
		       cfg.busy_poll ? "busy-poll" : "poll(2)",
		       o.hdr_digest ? ", header digest" : "", o.data_digest ? ", data digest" : "");
	t0 = perf_now_ns();
	for (unsigned i = 0; i < cfg.nr_queues; i++)
		pthread_create(&ws[i].thread, NULL, perf_worker_main, &ws[i]);
	for (unsigned s = 1; s <= cfg.seconds; s++) {
		uint64_t tick = t0 + (uint64_t)s * 1000000000ull;

		while (perf_now_ns() < tick) {
			nvtcp_ctrl_process_admin(ctrl); /* keep-alive */
			usleep(50000);
		}
		uint64_t ios = 0, bytes = 0;
		int dead = 0;

		for (unsigned i = 0; i < cfg.nr_queues; i++) {
			ios += atomic_load(&ws[i].done_ios);
			bytes += atomic_load(&ws[i].done_bytes);
			dead += ws[i].fatal != 0;
		}
		if (!cfg.json)
			fprintf(stderr, "[%3u s] %10.0f IOPS %9.2f MiB/s\n", s,
				(double)(ios - last_ios), (double)(bytes - last_bytes) / 1048576.0);
		last_ios = ios;
		last_bytes = bytes;
		if (dead == (int)cfg.nr_queues)
			break;
	}
	/* --verify: a slow link may still be in the write pass; let every queue read back. */
	for (unsigned s = 0; cfg.verify && s < PERF_VERIFY_GRACE_S * 20; s++) {
		bool all = true;

		for (unsigned i = 0; i < cfg.nr_queues; i++)
			all &= ws[i].fatal != 0 ||
			       __atomic_load_n(&ws[i].verified, __ATOMIC_RELAXED) > 0;
		if (all)
			break;
		nvtcp_ctrl_process_admin(ctrl);
		usleep(50000);
	}
	atomic_store(&perf_stop, true);
	for (unsigned i = 0; i < cfg.nr_queues; i++) {
		pthread_join(ws[i].thread, NULL);
		perf_hist_merge(total, &ws[i].hist);
		errors += ws[i].errors;
		mismatches += ws[i].mismatches;
		verified += ws[i].verified;
		reads += ws[i].reads;
		writes += ws[i].writes;
		if (ws[i].fatal && !fatal)
			fatal = ws[i].fatal;
	}
	double secs = (double)(perf_now_ns() - t0) / 1e9;
	double iops = (double)total->count / secs;
	double mibs = iops * cfg.io_size / 1048576.0;
	double avg_us = total->count ? (double)total->sum_ns / (double)total->count / 1e3 : 0;
	const double pcts[] = {50, 99, 99.9, 99.99};

	if (cfg.json) {
		struct json_object *j = json_object_new_object(), *lat = json_object_new_object();

		json_object_object_add(j, "queues", json_object_new_int((int)cfg.nr_queues));
		json_object_object_add(j, "depth", json_object_new_int((int)cfg.depth));
		json_object_object_add(j, "io_size", json_object_new_int((int)cfg.io_size));
		json_object_object_add(j, "seconds", json_object_new_double(secs));
		json_object_object_add(j, "ios", json_object_new_int64((int64_t)total->count));
		json_object_object_add(j, "iops", json_object_new_double(iops));
		json_object_object_add(j, "mib_s", json_object_new_double(mibs));
		json_object_object_add(j, "errors", json_object_new_int64((int64_t)errors));
		json_object_object_add(j, "reads", json_object_new_int64((int64_t)reads));
		json_object_object_add(j, "writes", json_object_new_int64((int64_t)writes));
		if (cfg.verify) {
			json_object_object_add(j, "verified_blocks",
					       json_object_new_int64((int64_t)verified));
			json_object_object_add(j, "mismatched_blocks",
					       json_object_new_int64((int64_t)mismatches));
		}
		json_object_object_add(lat, "avg_us", json_object_new_double(avg_us));
		json_object_object_add(lat, "min_us",
				       json_object_new_double((double)total->min_ns / 1e3));
		json_object_object_add(lat, "max_us",
				       json_object_new_double((double)total->max_ns / 1e3));
		for (unsigned i = 0; i < 4; i++) {
			char k[32];

			snprintf(k, sizeof(k), "p%g_us", pcts[i]);
			json_object_object_add(
				lat, k,
				json_object_new_double((double)perf_hist_pct(total, pcts[i]) /
						       1e3));
		}
		json_object_object_add(j, "latency", lat);
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		printf("\n%-12s %12s %10s %10s %10s %10s\n", "", "IOPS", "MiB/s", "avg(us)",
		       "min(us)", "max(us)");
		printf("%-12s %12.0f %10.2f %10.1f %10.1f %10.1f\n", "Total", iops, mibs, avg_us,
		       (double)total->min_ns / 1e3, (double)total->max_ns / 1e3);
		printf("latency percentiles (us): p50 %.1f  p99 %.1f  p99.9 %.1f  p99.99 %.1f\n",
		       (double)perf_hist_pct(total, 50) / 1e3,
		       (double)perf_hist_pct(total, 99) / 1e3,
		       (double)perf_hist_pct(total, 99.9) / 1e3,
		       (double)perf_hist_pct(total, 99.99) / 1e3);
		printf("I/O errors: %" PRIu64 "\n", errors);
		if (cfg.verify)
			printf("verify: %" PRIu64 " blocks matched, %" PRIu64 " mismatched\n",
			       verified, mismatches);
	}
	if (fatal == -ETIMEDOUT)
		fprintf(stderr,
			"perf: the connection to the target was lost and could not be "
			"re-established "
			"within the controller-loss timeout (--ctrl-loss-tmo): is nvtcpd still "
			"running on %s:%s?\n",
			o.traddr, o.trsvcid ? o.trsvcid : "4420");
	else if (fatal)
		fprintf(stderr, "perf: a queue failed: %s\n", strerror(-fatal));
	/* Before freeing the buffers: anything still held completes (with an error) here. */
	cli_disconnect(ctrl);
	for (unsigned i = 0; i < cfg.nr_queues; i++) {
		for (unsigned d = 0; d < cfg.depth; d++)
			free(ws[i].ios[d].buf);
		free(ws[i].ios);
	}
	int bad =
		fatal || errors || mismatches || total->count == 0 || (cfg.verify && verified == 0);
	free(ws);
	free(total);
	return bad ? 1 : 0;
}
