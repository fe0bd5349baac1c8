/* Copies into memory that nobody reads soon.
 * Layer: common. copy_cold() writes with non-temporal stores: destination lines go to memory
 * without being read first (no read-for-ownership) and without evicting cached data. For
 * payload landing in a namespace held in memory; a 4K random write copied this way cost nvtcpd
 * 17% less CPU per I/O. Never for data read back at once (a CRC over it, a reply built from
 * it): those reads would then miss.
 *
 * Ordering: non-temporal stores are weakly ordered, and copy_cold() does not fence them (a
 * fence after every 4 KiB stalled the thread until they reached memory; without it they drain
 * while the thread parses the next command). This thread's own later loads, and the kernel's on
 * this thread's behalf, always see them. Before anything that could let another thread or the
 * peer learn of them, call copy_cold_fence(): the stream does so before every send
 * (stream_flush), so a completion never leaves before its data is visible to all CPUs. */
#ifndef NVTCP_COMMON_COPY_H
#define NVTCP_COMMON_COPY_H

#include <stddef.h>

/* Below this plain memcpy: the few lines are not worth the write-combining buffers. */
#define COPY_COLD_MIN 1024

/* Copy n bytes to dst with non-temporal stores (32-byte stores where the CPU has AVX2: half as
 * many store-buffer entries as 16-byte ones, which is what lets them drain in the background).
 * Not fenced: see above. */
void copy_cold(void *dst, const void *src, size_t n);

/* Make every earlier copy_cold() of this thread visible to all CPUs (a store fence). */
void copy_cold_fence(void);

/* The variants copy_cold() picks from, for tests: each is a complete copy_cold(). */
void copy_cold_sse2(void *dst, const void *src, size_t n);
void copy_cold_avx2(void *dst, const void *src, size_t n); /* only where AVX2 runs */
int copy_cold_have_avx2(void);

#endif
