/* Target TLS glue: per-host PSKs from the configuration and the handshake's PSK lookup.
 * Layer: target. The lookup runs on connection threads during handshakes; it only reads the
 * subsystem and host lists, which do not change after the configuration is loaded. */
#include "tls_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../net/tls.h"
#include "../net/tls_psk.h"

static int tgt_tls_read_file(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open PSK file %s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "PSK file %s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	/* a key others can read is no longer a secret: refuse it, as ssh does */
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		snprintf(err, errlen,
			 "PSK file %s must be owned by uid %u and have mode 0600 or 0400 (it has "
			 "owner %u, mode %04o)",
			 path, (unsigned)geteuid(), (unsigned)st.st_uid,
			 (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read PSK file %s: %s", path, strerror(errno));
		return -EIO;
	}
	buf[n] = '\0';
	return 0;
}

int tgt_tls_host_set_psk(struct tgt_host *h, const char *psk, const char *psk_file, char *err,
			 size_t errlen)
{
	char buf[256];
	struct tls_psk_key *k;
	int ret;

	if (psk && psk_file) {
		snprintf(err, errlen, "give either \"psk\" or \"psk_file\", not both");
		return -EINVAL;
	}
	if (psk_file) {
		ret = tgt_tls_read_file(psk_file, buf, sizeof(buf), err, errlen);
		if (ret < 0)
			return ret;
		psk = buf;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = tls_psk_parse(psk, k);
	tls_psk_wipe(buf, sizeof(buf));
	if (ret < 0) {
		snprintf(err, errlen, "%s%s%s", psk_file ? psk_file : "", psk_file ? ": " : "",
			 tls_psk_parse_strerror(ret));
		tls_psk_wipe(k, sizeof(*k));
		free(k);
		return ret;
	}
	tgt_tls_host_free(h);
	h->tls_psk = k;
	return 0;
}

void tgt_tls_host_free(struct tgt_host *h)
{
	if (h->tls_psk) {
		tls_psk_wipe(h->tls_psk, sizeof(*h->tls_psk));
		free(h->tls_psk);
		h->tls_psk = NULL;
	}
}

static const struct tgt_host *tgt_tls_find_host(const struct tgt_subsys *s, const char *hostnqn)
{
	struct list_head *pos;

	list_for_each (pos, &s->hosts) {
		const struct tgt_host *h = list_entry(pos, struct tgt_host, entry);

		if (h->tls_psk && strcmp(h->nqn, hostnqn) == 0)
			return h;
	}
	return NULL;
}

/* The key of hostnqn in subsystem subnqn; for the discovery subsystem (which lists no hosts)
 * the host's key of any subsystem, as a host uses one PSK per target. */
static int tgt_tls_lookup(void *arg, const char *hostnqn, const char *subnqn,
			  struct tls_psk_key *key)
{
	struct tgt *t = arg;
	bool discovery = strcmp(subnqn, NVME_DISCOVERY_NQN) == 0;
	struct list_head *pos;

	list_for_each (pos, &t->subsystems) {
		const struct tgt_subsys *s = list_entry(pos, struct tgt_subsys, entry);
		const struct tgt_host *h;

		if (!discovery && strcmp(s->nqn, subnqn) != 0)
			continue;
		h = tgt_tls_find_host(s, hostnqn);
		if (h) {
			*key = *h->tls_psk;
			return 0;
		}
	}
	return -ENOKEY;
}

int tgt_tls_conn_start(struct stream *s, struct tgt *t, const struct tgt_port *port,
		       const char *name)
{
	if (!port || port->secure == TGT_SECURE_NONE)
		return 0;
	return tls_server_start(
		s, port->secure == TGT_SECURE_REQUIRED ? TLS_SERVER_REQUIRED : TLS_SERVER_OPTIONAL,
		tgt_tls_lookup, t, name);
}
