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

#endif
