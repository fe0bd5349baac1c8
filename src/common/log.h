/* Logging: one line per event, to stderr, with a level and a subject (usually a connection).
 * Layer: common. Thread-safe (one write(2) per line). */
#ifndef NVTCP_COMMON_LOG_H
#define NVTCP_COMMON_LOG_H

#include "compiler.h"

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_COUNT
};

/* Global threshold; messages above it are dropped. Default INFO, NVTCP_LOG=debug overrides. */
extern enum log_level log_threshold;

void log_set_level(enum log_level level);
/* Parse "error", "warn", "info", "debug"; returns -EINVAL on anything else. */
int log_parse_level(const char *name, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...) PRINTF_FMT(2, 3);

#define log_err(...)  log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                          \
	do {                                                    \
		if (unlikely(log_threshold >= LOG_LEVEL_DEBUG)) \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);  \
	} while (0)

#endif
