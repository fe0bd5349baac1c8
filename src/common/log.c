/* Logging to stderr with a timestamp and level; one write(2) per line so threads don't mix.
 * Layer: common. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_LEVEL_INFO;

static const char *const log_names[LOG_LEVEL_COUNT] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

int log_parse_level(const char *name, enum log_level *out)
{
	for (int i = 0; i < LOG_LEVEL_COUNT; i++) {
		if (strcasecmp(name, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

__attribute__((constructor)) static void log_init_from_env(void)
{
	const char *env = getenv("NVTCP_LOG");
	enum log_level level;

	if (env && log_parse_level(env, &level) == 0)
		log_threshold = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_threshold)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %-5s ", tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, log_names[level]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}
