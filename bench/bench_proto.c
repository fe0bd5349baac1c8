/* Protocol micro-benchmarks: decode + validate cost per PDU for the common PDU kinds, fed from
 * one large buffer of back-to-back PDUs, and CRC32C throughput next to memcpy measured in the
 * same run (the ratio is what carries across machines).
 * Layer: bench. Usage: bench_proto [seconds-per-case, default 0.5] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/crc32c.h"
#include "proto/pdu.h"

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint8_t bench_dst[4096];
static volatile uint32_t bench_sink;

/* Decode buf (count PDUs) repeatedly for about `secs`; returns the best ns per PDU. */
static double bench_decode(const uint8_t *buf, size_t len, size_t count, enum pdu_role role,
			   const struct pdu_params *p, double secs)
{
	double best = 1e30, start = bench_now();
	struct iovec iov = {bench_dst, sizeof(bench_dst)};

	do {
		struct pdu_rx rx;
		size_t off = 0, pdus = 0;
		double t0 = bench_now();

		pdu_rx_init(&rx, role, p);
		while (off < len || rx.state == PDU_RX_HEADER) {
			enum pdu_ev ev;
			off += pdu_rx_feed(&rx, buf + off, len - off, &ev);
			if (ev == PDU_EV_HEADER && rx.data_len)
				pdu_rx_set_dst(&rx, &iov, 1);
			else if (ev == PDU_EV_PDU)
				pdus += rx.ddgst_ok;
			else if (ev == PDU_EV_ERROR)
				abort();
		}
		double ns = (bench_now() - t0) * 1e9 / (double)count;
		if (pdus != count)
			abort();
		if (ns < best)
			best = ns;
	} while (bench_now() - start < secs);
	return best;
}

/* GB/s of fn over a buffer of size n, best of repeated runs for about secs. */
static double bench_rate(int crc, uint8_t *src, uint8_t *dst, size_t n, double secs)
{
	double best = 0, start = bench_now();
	size_t reps = (64u << 20) / n;

	do {
		double t0 = bench_now();
		for (size_t r = 0; r < reps; r++) {
			if (crc) {
				bench_sink += crc32c(src, n);
			} else {
				memcpy(dst, src, n);
				bench_sink += dst[r % n];
			}
		}
		double gbs = (double)n * (double)reps / (bench_now() - t0) / 1e9;
		if (gbs > best)
			best = gbs;
	} while (bench_now() - start < secs);
	return best;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 0.5;
	const size_t count = 20000;
	const struct pdu_params plain = {
		.maxh2cdata = 1 << 20, .max_incapsule = 8192, .ic_done = true};
	const struct pdu_params dgst = {.hdgst = true,
					.ddgst = true,
					.maxh2cdata = 1 << 20,
					.max_incapsule = 8192,
					.ic_done = true};
	uint8_t *buf = malloc(count * (4096 + 160));
	uint8_t *data = malloc(4096);
	struct wire_sqe sqe = {.opc = 0x02};
	struct wire_cqe cqe;
	size_t len;

	memset(&cqe, 0, sizeof(cqe));
	if (!buf || !data)
		return 1;
	for (int i = 0; i < 4096; i++)
		data[i] = (uint8_t)(i * 7);
	uint32_t dcrc = crc32c(data, 4096);

	printf("Protocol micro-benchmarks (decode + validate, %zu back-to-back PDUs per pass)\n",
	       count);
	printf("%-34s %10s\n", "case", "ns/PDU");

	len = 0;
	for (size_t i = 0; i < count; i++)
		len += pdu_build_capsule_cmd(buf + len, &sqe, 0, &plain);
	printf("%-34s %10.1f\n", "CapsuleCmd (no data, no digests)",
	       bench_decode(buf, len, count, PDU_ROLE_CTRL, &plain, secs));

	len = 0;
	for (size_t i = 0; i < count; i++)
		len += pdu_build_capsule_cmd(buf + len, &sqe, 0, &dgst);
	printf("%-34s %10.1f\n", "CapsuleCmd (HDGST)",
	       bench_decode(buf, len, count, PDU_ROLE_CTRL, &dgst, secs));

	len = 0;
	for (size_t i = 0; i < count; i++) {
		len += pdu_build_h2c_data(buf + len, 1, 1, 0, 4096, true, &dgst);
		memcpy(buf + len, data, 4096);
		len += 4096;
		pdu_ddgst_put(buf + len, dcrc);
		len += 4;
	}
	double h2c = bench_decode(buf, len, count, PDU_ROLE_CTRL, &dgst, secs);
	printf("%-34s %10.1f\n", "H2CData 4 KiB (HDGST+DDGST)", h2c);

	len = 0;
	for (size_t i = 0; i < count; i++) {
		len += pdu_build_c2h_data(buf + len, 1, 0, 4096, true, false, &plain);
		memcpy(buf + len, data, 4096);
		len += 4096;
	}
	double c2h = bench_decode(buf, len, count, PDU_ROLE_HOST, &plain, secs);
	printf("%-34s %10.1f\n", "C2HData 4 KiB (no digests)", c2h);

	len = 0;
	for (size_t i = 0; i < count; i++)
		len += pdu_build_capsule_resp(buf + len, &cqe, &plain);
	printf("%-34s %10.1f\n", "CapsuleResp (no digests)",
	       bench_decode(buf, len, count, PDU_ROLE_HOST, &plain, secs));

	printf("\n%-10s %12s %12s %10s\n", "buffer", "CRC32C GB/s", "memcpy GB/s", "CRC/memcpy");
	size_t sizes[2] = {4096, 128 * 1024};
	uint8_t *src = malloc(sizes[1]), *dst = malloc(sizes[1]);
	if (!src || !dst)
		return 1;
	memset(src, 0x5a, sizes[1]);
	for (int i = 0; i < 2; i++) {
		double c = bench_rate(1, src, dst, sizes[i], secs);
		double m = bench_rate(0, src, dst, sizes[i], secs);
		printf("%-10s %12.2f %12.2f %10.2f\n", i ? "128 KiB" : "4 KiB", c, m, c / m);
	}
	printf("\nH2CData 4 KiB with digests costs %.2fx a plain C2HData 4 KiB decode "
	       "(copy into place included in both)\n",
	       h2c / c2h);
	free(src);
	free(dst);
	free(buf);
	free(data);
	return 0;
}
