/* Unit tests for src/common/copy.c: every non-temporal copy variant lands exactly the bytes a
 * memcpy would, for every alignment of source and destination and lengths around the
 * thresholds, and touches nothing around the destination. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/copy.h"
#include "tap.h"

typedef void (*copy_fn)(void *, const void *, size_t);

static const size_t lens[] = {0,    1,	  15,	31,   63,   64,	  65,	1023,  1024,
			      1025, 1056, 4095, 4096, 4097, 5000, 8191, 131075};

enum { GUARD = 96 };

static void check_variant(copy_fn fn)
{
	size_t cap = 131075 + 2 * GUARD + 64;
	uint8_t *src = malloc(cap), *dst = malloc(cap), *want = malloc(cap);

	TAP_CHECK(src && dst && want);
	if (!src || !dst || !want)
		goto out;
	for (size_t i = 0; i < cap; i++)
		src[i] = (uint8_t)(i * 31 + 7);
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		for (size_t da = 0; da < 64; da += (lens[li] > 8192 ? 13 : 1)) {
			size_t sa = (da * 7 + li) % 64;

			memset(dst, 0xa5, cap);
			memset(want, 0xa5, cap);
			memcpy(want + GUARD + da, src + sa, lens[li]);
			fn(dst + GUARD + da, src + sa, lens[li]);
			copy_cold_fence();
			if (memcmp(dst, want, cap) != 0) {
				TAP_CHECK_MEM(dst, want, cap);
				printf("# len %zu dst align %zu src align %zu\n", lens[li], da, sa);
				goto out;
			}
		}
	}
out:
	free(src);
	free(dst);
	free(want);
}

static void test_sse2(void)
{
	check_variant(copy_cold_sse2);
}

/* Reported as a TAP SKIP where the CPU has no AVX2: copy_cold() never calls it there. */
static void test_avx2(void)
{
	if (copy_cold_have_avx2())
		check_variant(copy_cold_avx2);
	else
		tap_skip("no AVX2 on this CPU: variant not used");
}

static void test_dispatch(void)
{
	check_variant(copy_cold);
}

int main(void)
{
	TAP_RUN(test_sse2);
	TAP_RUN(test_avx2);
	TAP_RUN(test_dispatch);
	return tap_done();
}
