/* Key payloads of the NVMe secret interchange formats: DHHC-1 (DH-HMAC-CHAP) and NVMeTLSkey-1
 * (TLS PSK) both carry base64(key || CRC-32(key) little-endian). One decoder for both.
 * Layer: common. CRC-32 is zlib's (the kernel and libnvme use the same), base64 is OpenSSL's. */
#ifndef NVTCP_COMMON_SECRET_H
#define NVTCP_COMMON_SECRET_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 (IEEE 802.3, reflected, pre- and post-inverted): crc32("123456789") = 0xCBF43926. */
uint32_t secret_crc32(const uint8_t *buf, size_t len);

/* Decode len characters of strict, padded base64 holding key || CRC-32 LE into key (cap
 * bytes). Returns the key length (without the CRC), -EINVAL for bad base64 or a payload that
 * does not fit, -EBADMSG for a CRC mismatch. Scratch copies of the key are wiped. */
int secret_decode(const char *b64, size_t len, uint8_t *key, size_t cap);

/* Encode key || CRC-32 LE as base64 (NUL-terminated) into out. Returns the number of
 * characters written (without the NUL) or -ENOSPC. */
int secret_encode(const uint8_t *key, size_t len, char *out, size_t outlen);

#endif
