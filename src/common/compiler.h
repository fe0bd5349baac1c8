/* Compiler attributes and small helper macros.
 * Layer: common. */
#ifndef NVTCP_COMMON_COMPILER_H
#define NVTCP_COMMON_COMPILER_H

#include <stddef.h>

#define NVTCP_EXPORT			__attribute__((visibility("default")))
#define likely(x)			__builtin_expect(!!(x), 1)
#define unlikely(x)			__builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a)			(sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)			((a) < (b) ? (a) : (b))
#define MAX(a, b)			((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a)			(((x) + (a)-1) / (a) * (a))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define UNUSED				__attribute__((unused))
#define PRINTF_FMT(a, b)		__attribute__((format(printf, a, b)))

/* Assert a wire struct's size and a field's offset at compile time. */
#define WIRE_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " size")
#define WIRE_OFFSET(type, field, off) \
	_Static_assert(offsetof(type, field) == (off), #type "." #field)

#endif
