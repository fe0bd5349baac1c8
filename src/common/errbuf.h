/* Error messages for callers that pass a buffer (char *err, size_t errlen) to be told why.
 * Layer: common. */
#ifndef NVTCP_COMMON_ERRBUF_H
#define NVTCP_COMMON_ERRBUF_H

#include <stddef.h>

#include "compiler.h"

/* printf into err (errlen bytes, always NUL-terminated); does nothing when err is NULL or
 * errlen is 0, so callers may pass no buffer. */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...) PRINTF_FMT(3, 4);

#endif
