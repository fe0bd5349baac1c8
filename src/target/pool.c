/* Per-thread data buffer pool: fixed-size 4 KiB-aligned chunks handed out as iovecs, so a
 * request's data buffer costs no allocation once the pool has grown to the working set.
 * Layer: target (transport side). One pool per event-loop thread; not thread-safe. */
#include <errno.h>
#include <stdlib.h>

#include "conn.h"

#define TGT_POOL_ALIGN 4096 /* O_DIRECT file backends need aligned buffers */

static int tgt_pool_grow(struct tgt_pool *p)
{
	void *chunk;

	if (p->total >= p->max)
		return -ENOMEM;
	if (posix_memalign(&chunk, TGT_POOL_ALIGN, p->chunk_size) != 0)
		return -ENOMEM;
	p->free[p->nfree++] = chunk;
	p->total++;
	return 0;
}

int tgt_pool_init(struct tgt_pool *p, size_t chunk_size, unsigned prealloc, unsigned max)
{
	p->chunk_size = chunk_size;
	p->max = max;
	p->total = 0;
	p->nfree = 0;
	/* the stack is sized for the limit up front: put never allocates */
	p->free = calloc(max, sizeof(*p->free));
	if (!p->free)
		return -ENOMEM;
	for (unsigned i = 0; i < prealloc && i < max; i++) {
		if (tgt_pool_grow(p) < 0) {
			tgt_pool_fini(p);
			return -ENOMEM;
		}
	}
	return 0;
}

void tgt_pool_fini(struct tgt_pool *p)
{
	if (!p->free)
		return;
	for (unsigned i = 0; i < p->nfree; i++)
		free(p->free[i]);
	free(p->free);
	p->free = NULL;
	p->nfree = p->total = 0;
}

int tgt_pool_get(struct tgt_pool *p, size_t len, struct iovec *iov, int max_iov)
{
	size_t n = (len + p->chunk_size - 1) / p->chunk_size;

	if (len == 0 || n > (size_t)max_iov)
		return -E2BIG;
	while (p->nfree < n) {
		if (tgt_pool_grow(p) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = p->free[--p->nfree];
		iov[i].iov_len = MIN(p->chunk_size, len - i * p->chunk_size);
	}
	return (int)n;
}

void tgt_pool_put(struct tgt_pool *p, const struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt; i++)
		p->free[p->nfree++] = iov[i].iov_base;
}
