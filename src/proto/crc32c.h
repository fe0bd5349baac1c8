/* CRC32C (Castagnoli) for NVMe/TCP header and data digests, through ISA-L's crc32_iscsi.
 * Layer: proto (pure). Seed 0xFFFFFFFF, final XOR 0xFFFFFFFF, stored little-endian.
 * Incremental use: c = CRC32C_INIT; c = crc32c_update(c, a, n); ...; digest = crc32c_final(c). */
#ifndef NVTCP_PROTO_CRC32C_H
#define NVTCP_PROTO_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define CRC32C_INIT 0xffffffffu

/* Continue a running CRC (not finalised) over len bytes. */
uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);

/* Finish a running CRC: the value to put on the wire (little-endian). */
static inline uint32_t crc32c_final(uint32_t crc)
{
	return crc ^ 0xffffffffu;
}

/* One-shot CRC32C of a buffer (CRC32C("123456789") == 0xE3069283). */
uint32_t crc32c(const void *buf, size_t len);

/* One-shot CRC32C over an iovec array, first len bytes. */
uint32_t crc32c_iov(const struct iovec *iov, int iovcnt, size_t len);

/* Appending a block whose CRC is already known. The running value is linear in its bytes, so
 * for every block D of exactly len bytes:
 *     crc32c_update(crc, D, len) == crc32c_shift(sh, crc) ^ crc32c_update(0, D, len)
 * where sh was set up by crc32c_shift_init(sh, len): it holds the effect of len zero bytes on
 * the running value, byte by byte (4 tables, 4 KiB). A block's crc32c_update(0, ...) can thus
 * be kept and reused while the block does not change. */
struct crc32c_shift {
	uint32_t t[4][256];
};

void crc32c_shift_init(struct crc32c_shift *sh, size_t len);

static inline uint32_t crc32c_shift(const struct crc32c_shift *sh, uint32_t crc)
{
	return sh->t[0][crc & 0xff] ^ sh->t[1][(crc >> 8) & 0xff] ^ sh->t[2][(crc >> 16) & 0xff] ^
	       sh->t[3][crc >> 24];
}

#endif
