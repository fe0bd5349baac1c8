/* Minimal TAP producer for nvtcp's tests: one "ok N - name" line per case, "1..N" plan at the
 * end, exit status 1 if any case failed. meson runs test binaries with protocol 'tap' and
 * tests/run.sh counts the cases into the closing "N passed, N skipped, N failed" line.
 *
 *   static void test_foo(void) { TAP_CHECK(1 + 1 == 2); TAP_CHECK_EQ(x, 3); }
 *   int main(void) { TAP_RUN(test_foo); return tap_done(); }
 *
 * A case fails if any check inside it fails; checks print a diagnostic with file and line.
 * A case that cannot run here calls tap_skip("reason") and returns: it is reported as
 * "ok N - name # SKIP reason" (still "not ok" if a check failed before), never as a pass. */
#ifndef NVTCP_TESTS_TAP_H
#define NVTCP_TESTS_TAP_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int tap_cases, tap_failed_cases, tap_case_failed;
static const char *tap_skip_reason; /* set by tap_skip() for the current case */

#define TAP_CHECK(cond)                                                          \
	do {                                                                     \
		if (!(cond)) {                                                   \
			tap_case_failed = 1;                                     \
			printf("# FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                \
	} while (0)

#define TAP_CHECK_EQ(a, b)                                                                        \
	do {                                                                                      \
		long long tap_a_ = (long long)(a), tap_b_ = (long long)(b);                       \
		if (tap_a_ != tap_b_) {                                                           \
			tap_case_failed = 1;                                                      \
			printf("# FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, \
			       #b, tap_a_, tap_b_);                                               \
		}                                                                                 \
	} while (0)

#define TAP_CHECK_MEM(a, b, n)                                                                   \
	do {                                                                                     \
		if (memcmp((a), (b), (n)) != 0) {                                                \
			tap_case_failed = 1;                                                     \
			printf("# FAIL %s:%d: memcmp(%s, %s, %s)\n", __FILE__, __LINE__, #a, #b, \
			       #n);                                                              \
		}                                                                                \
	} while (0)

static inline void tap_begin(void)
{
	tap_case_failed = 0;
	tap_skip_reason = NULL;
}

/* The current case cannot run here: report it as a TAP SKIP with reason (a string literal or
 * anything that outlives the case). */
static inline void tap_skip(const char *reason)
{
	tap_skip_reason = reason;
}

static inline void tap_end(const char *name)
{
	tap_cases++;
	if (tap_case_failed)
		tap_failed_cases++;
	if (tap_skip_reason && !tap_case_failed)
		printf("ok %d - %s # SKIP %s\n", tap_cases, name, tap_skip_reason);
	else
		printf("%sok %d - %s\n", tap_case_failed ? "not " : "", tap_cases, name);
	fflush(stdout);
}

/* Run a void(void) test function as one case. */
#define TAP_RUN(fn)           \
	do {                  \
		tap_begin();  \
		fn();         \
		tap_end(#fn); \
	} while (0)

/* Record a case whose pass/fail the caller computed (for table-driven tests). */
static inline void tap_case(const char *name, int passed)
{
	tap_begin();
	tap_case_failed = !passed;
	tap_end(name);
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_cases);
	return tap_failed_cases ? 1 : 0;
}

#endif
