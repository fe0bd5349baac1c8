/* Target side of NVMe/TCP TLS: per-host PSKs from the configuration ("psk" interchange string
 * or "psk_file") and the PSK lookup the TLS layer calls during a handshake; starts TLS on
 * connections accepted on "optional"/"required" ports. Layer: target (core config + transport
 * glue over net/tls). */
#ifndef NVTCP_TARGET_TLS_KEYS_H
#define NVTCP_TARGET_TLS_KEYS_H

#include <stddef.h>

#include "tgt.h"

struct stream;

/* Give host h its TLS PSK from exactly one of psk (an "NVMeTLSkey-1:..." string) or psk_file
 * (a file holding one, owned by us and not readable by group/others, i.e. 0600 or 0400).
 * Returns 0, or -errno with a message in err that never contains key material. */
int tgt_tls_host_set_psk(struct tgt_host *h, const char *psk, const char *psk_file, char *err,
			 size_t errlen);
/* Wipe and free h's PSK (subsystem teardown). */
void tgt_tls_host_free(struct tgt_host *h);

/* On a new connection accepted on port: start TLS as the port's "secure" asks (nothing for
 * "none"). name prefixes log lines. Returns 0 or -errno. */
int tgt_tls_conn_start(struct stream *s, struct tgt *t, const struct tgt_port *port,
		       const char *name);

#endif
