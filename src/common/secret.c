/* base64(key || CRC-32 LE) payloads of DHHC-1 and NVMeTLSkey-1 secrets.
 * Layer: common. */
#include "secret.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "le.h"

#define SECRET_RAW_MAX 128 /* key + CRC bytes we ever decode (64-byte keys are the largest) */

uint32_t secret_crc32(const uint8_t *buf, size_t len)
{
	return (uint32_t)crc32(0L, len ? buf : Z_NULL, (uInt)len);
}

int secret_decode(const char *b64, size_t len, uint8_t *key, size_t cap)
{
	uint8_t raw[SECRET_RAW_MAX + 3];
	size_t pad = 0;
	int n;

	if (len == 0 || len % 4 || len / 4 * 3 > SECRET_RAW_MAX)
		return -EINVAL;
	/* EVP_DecodeBlock skips whitespace and does not reject '=' in the middle: check first. */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)b64[i];

		if (ch == '=' && i >= len - 2)
			pad++;
		else if (pad || !(isalnum(ch) || ch == '+' || ch == '/'))
			return -EINVAL;
	}
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
	if (n < 0)
		return -EINVAL;
	n -= (int)pad;
	if (n < 4 || (size_t)n - 4 > cap) {
		OPENSSL_cleanse(raw, sizeof(raw));
		return -EINVAL;
	}
	n -= 4;
	if (le32_get(raw + n) != secret_crc32(raw, (size_t)n)) {
		OPENSSL_cleanse(raw, sizeof(raw));
		return -EBADMSG;
	}
	memcpy(key, raw, (size_t)n);
	OPENSSL_cleanse(raw, sizeof(raw));
	return n;
}

int secret_encode(const uint8_t *key, size_t len, char *out, size_t outlen)
{
	uint8_t raw[SECRET_RAW_MAX];
	int n;

	if (len + 4 > sizeof(raw) || outlen < (len + 4 + 2) / 3 * 4 + 1)
		return -ENOSPC;
	memcpy(raw, key, len);
	le32_put(raw + len, secret_crc32(key, len));
	n = EVP_EncodeBlock((unsigned char *)out, raw, (int)len + 4);
	OPENSSL_cleanse(raw, sizeof(raw));
	return n;
}
