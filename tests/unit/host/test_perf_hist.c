/* nvtcp perf's latency histogram (tools/perf.c, included: its helpers are static) against known
 * distributions: bucket bounds and the p50/p99/p99.9/p99.99 the summary prints. Test layer. */
#include "../../../tools/perf.c"

#include "tap.h"

static struct perf_hist *hist_new(void)
{
	struct perf_hist *h = calloc(1, sizeof(*h));

	TAP_CHECK(h != NULL);
	return h;
}

/* Every bucket a 64-bit value can reach starts at a value that maps back to it. */
static void test_bucket_bounds(void)
{
	TAP_CHECK_EQ(perf_hist_index(UINT64_MAX), (65 - PERF_SUB_BITS) * PERF_SUBS - 1);
	for (unsigned i = 0; i < (65 - PERF_SUB_BITS) * PERF_SUBS; i++)
		TAP_CHECK_EQ(perf_hist_index(perf_hist_value(i)), i);
	TAP_CHECK_EQ(perf_hist_index(8192 + 255), perf_hist_index(8192));
	TAP_CHECK(perf_hist_index(8192 + 256) != perf_hist_index(8192));
}

/* n - k samples of fast, k of slow: the percentile p is fast while the rank ceil(p% n) <= n - k. */
static void check_split(uint64_t n, uint64_t k, double pct, uint64_t expect)
{
	const uint64_t fast = 8192, slow = 1048576; /* bucket lower bounds: reported exactly */
	struct perf_hist *h = hist_new();

	for (uint64_t i = 0; i < n; i++)
		perf_hist_add(h, i < n - k ? fast : slow);
	TAP_CHECK_EQ(h->count, n);
	TAP_CHECK_EQ(perf_hist_pct(h, pct), (expect == 0 ? fast : slow));
	free(h);
}

static void test_percentiles_known(void)
{
	/* 999 of 1000 at 8 us and one at 1 ms: p99.9 is the 999th value (8 us), p99.99 the max. */
	check_split(1000, 1, 99.9, 0);
	check_split(1000, 1, 99.99, 1);
	check_split(1000, 2, 99.9, 1);
	check_split(10000, 10, 99.9, 0);
	check_split(10000, 11, 99.9, 1);
	check_split(100000, 100, 99.9, 0);
	check_split(1000000, 1000, 99.9, 0);
	check_split(100, 1, 99, 0);
	check_split(100, 2, 99, 1);
	check_split(100, 50, 50, 0);
	check_split(100, 51, 50, 1);
	check_split(10000, 1, 99.99, 0);
	check_split(10000, 2, 99.99, 1);
}

static void test_uniform(void)
{
	struct perf_hist *h = hist_new();

	/* 0..31 ns are exact buckets: p50 of 1..32 is 16, p100 32 (capped at max). */
	for (uint64_t v = 1; v <= 32; v++)
		perf_hist_add(h, v);
	TAP_CHECK_EQ(perf_hist_pct(h, 50), 16);
	TAP_CHECK_EQ(perf_hist_pct(h, 100), 32);
	TAP_CHECK_EQ(h->min_ns, 1);
	TAP_CHECK_EQ(h->max_ns, 32);
	TAP_CHECK_EQ(h->sum_ns, 32 * 33 / 2);
	free(h);
}

/* Failed completions (transport error or NVMe status) are counted as errors only: IOPS, MiB/s
 * and the latency histogram hold successful I/O alone. */
static void test_errors_not_throughput(void)
{
	struct perf_cfg cfg = {.io_size = 4096, .lba_size = 512};
	struct perf_worker *w = calloc(1, sizeof(*w));
	struct perf_io io = {.slba = 8, .read = true};
	const struct nvtcp_cpl ok = {0}, bad_status = {.status = 0x0281}, bad_err = {.err = -EIO};

	TAP_CHECK(w != NULL);
	w->cfg = &cfg;
	io.w = w;
	atomic_store(&perf_stop, true); /* no resubmission from the callback */
	io.start_ns = perf_now_ns();
	perf_done(&io, &ok);
	perf_done(&io, &bad_status);
	perf_done(&io, &bad_err);
	perf_done(&io, &ok);
	TAP_CHECK_EQ(w->errors, 2);
	TAP_CHECK_EQ(atomic_load(&w->completed), 4);
	TAP_CHECK_EQ(atomic_load(&w->done_ios), 2);
	TAP_CHECK_EQ(atomic_load(&w->done_bytes), 2 * 4096);
	TAP_CHECK_EQ(w->hist.count, 2);
	atomic_store(&perf_stop, false);
	free(w);
}

int main(void)
{
	TAP_RUN(test_bucket_bounds);
	TAP_RUN(test_percentiles_known);
	TAP_RUN(test_uniform);
	TAP_RUN(test_errors_not_throughput);
	return tap_done();
}
