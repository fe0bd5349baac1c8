/* Target object model: the target, its ports, subsystems with their host access lists and
 * namespaces, per-thread backend channels, and the discovery generation counter.
 * Layer: target (core). Built at configuration time on the main thread; channels are opened
 * and closed on each loop thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "../common/log.h"
#include "core.h"
#include "tls_keys.h"

int tgt_init(struct tgt *t)
{
	struct tgt_subsys *disc;

	memset(t, 0, sizeof(*t));
	if (pthread_mutex_init(&t->lock, NULL))
		return -ENOMEM;
	list_init(&t->ports);
	list_init(&t->subsystems);
	t->next_cntlid = TGT_CNTLID_MIN;
	t->first_cpu = -1;
	t->nr_threads = 1;
	for (unsigned i = 0; i < TGT_MAX_THREADS; i++) {
		t->threads[i].index = i;
		t->threads[i].tgt = t;
	}
	disc = tgt_subsys_alloc(NVME_DISCOVERY_NQN);
	if (!disc) {
		pthread_mutex_destroy(&t->lock);
		return -ENOMEM;
	}
	disc->is_discovery = true;
	disc->allow_any_host = true;
	snprintf(disc->model, sizeof(disc->model), "%s", "nvtcp discovery");
	list_add_tail(&disc->entry, &t->subsystems);
	t->discovery = disc;
	return 0;
}

void tgt_fini(struct tgt *t)
{
	struct list_head *p, *tmp;

	tgt_ports_clear(t);
	list_for_each_safe (p, tmp, &t->subsystems) {
		list_del(p);
		tgt_subsys_free(list_entry(p, struct tgt_subsys, entry));
	}
	t->discovery = NULL;
	pthread_mutex_destroy(&t->lock);
}

/* ---- subsystems ------------------------------------------------------------------------- */

/* FNV-1a, 64 bits; two seeds give the 128 bits of an identifier. */
static uint64_t subsys_fnv(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void subsys_derive(const char *tag, const char *subnqn, uint32_t nsid, uint8_t out[16])
{
	uint8_t id[4] = {(uint8_t)nsid, (uint8_t)(nsid >> 8), (uint8_t)(nsid >> 16),
			 (uint8_t)(nsid >> 24)};

	for (int half = 0; half < 2; half++) {
		uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(half + 1) * 0x9e3779b97f4a7c15ull;

		h = subsys_fnv(h, tag, strlen(tag));
		h = subsys_fnv(h, subnqn, strlen(subnqn));
		h = subsys_fnv(h, id, sizeof(id));
		/* Final avalanche so nearby NSIDs differ in every byte. */
		h ^= h >> 33;
		h *= 0xff51afd7ed558ccdull;
		h ^= h >> 33;
		for (int i = 0; i < 8; i++)
			out[half * 8 + i] = (uint8_t)(h >> (8 * i));
	}
}

void tgt_ns_derive_ids(const char *subnqn, uint32_t nsid, uint8_t nguid[16], uint8_t uuid[16])
{
	subsys_derive("nguid", subnqn, nsid, nguid);
	subsys_derive("uuid", subnqn, nsid, uuid);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x80); /* version 8: custom */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

struct tgt_subsys *tgt_subsys_alloc(const char *nqn)
{
	struct tgt_core_subsys *cs = calloc(1, sizeof(*cs));
	struct tgt_subsys *s;

	if (!cs)
		return NULL;
	s = &cs->subsys;
	snprintf(s->nqn, sizeof(s->nqn), "%s", nqn);
	list_init(&s->hosts);
	list_init(&s->namespaces);
	list_init(&s->ctrls);
	list_init(&s->entry);
	cs->created_ms = tgt_now_ms();
	return s;
}

static void subsys_free_secret(char *secret)
{
	if (secret)
		explicit_bzero(secret, strlen(secret));
	free(secret);
}

void tgt_subsys_free(struct tgt_subsys *s)
{
	struct list_head *p, *tmp;

	list_for_each_safe (p, tmp, &s->hosts) {
		struct tgt_host *h = list_entry(p, struct tgt_host, entry);

		list_del(p);
		/* the DHHC-1 secrets, wiped as the TLS keys are */
		subsys_free_secret(h->dhchap_key);
		subsys_free_secret(h->dhchap_ctrl_key);
		tgt_tls_host_free(h);
		free(h);
	}
	list_for_each_safe (p, tmp, &s->namespaces) {
		struct tgt_ns *ns = list_entry(p, struct tgt_ns, entry);

		list_del(p);
		for (unsigned i = 0; i < TGT_MAX_THREADS; i++) {
			if (ns->channels[i])
				nvtcp_backend_channel_close(ns->channels[i]);
		}
		if (ns->backend) {
			struct nvtcp_backend_stats st;

			/* (after the channels: every bio has completed) */
			nvtcp_backend_get_stats(ns->backend, &st);
			if (st.dsync_writes || st.syncs)
				log_info(
					"%s ns %u: %llu FUA writes stored durably, %llu data syncs",
					s->nqn, ns->nsid, (unsigned long long)st.dsync_writes,
					(unsigned long long)st.syncs);
			nvtcp_backend_close(ns->backend);
		}
		free(tgt_core_ns(ns));
	}
	free(tgt_core_subsys(s));
}

struct tgt_subsys *tgt_subsys_find(struct tgt *t, const char *nqn)
{
	struct list_head *p;

	list_for_each (p, &t->subsystems) {
		struct tgt_subsys *s = list_entry(p, struct tgt_subsys, entry);

		if (strcmp(s->nqn, nqn) == 0)
			return s;
	}
	return NULL;
}

bool tgt_subsys_host_allowed(const struct tgt_subsys *s, const char *hostnqn)
{
	const struct list_head *p;

	if (s->allow_any_host || s->is_discovery)
		return true;
	list_for_each (p, &s->hosts) {
		if (strcmp(list_entry(p, struct tgt_host, entry)->nqn, hostnqn) == 0)
			return true;
	}
	return false;
}

int tgt_subsys_add_ns(struct tgt_subsys *s, uint32_t nsid, struct nvtcp_backend *be,
		      uint32_t block_size, uint64_t size, struct tgt_ns **out)
{
	struct tgt_core_subsys *cs = tgt_core_subsys(s);
	struct tgt_core_ns *cns;
	struct tgt_ns *ns;
	struct list_head *pos;

	if (nsid == 0 || nsid > TGT_MAX_NSID || !block_size || (block_size & (block_size - 1)))
		return -EINVAL;
	if (cs->ns_by_id[nsid])
		return -EEXIST;
	/* over-aligned (per-thread counters on their own cache lines): calloc would not do */
	cns = aligned_alloc(_Alignof(struct tgt_core_ns), sizeof(*cns));
	if (!cns)
		return -ENOMEM;
	memset(cns, 0, sizeof(*cns));
	ns = &cns->ns;
	ns->nsid = nsid;
	ns->subsys = s;
	ns->backend = be;
	ns->block_size = block_size;
	ns->lbads = (uint8_t)__builtin_ctz(block_size);
	ns->nblocks = size / block_size;
	tgt_ns_derive_ids(s->nqn, nsid, ns->nguid, ns->uuid);
	cns->dealloc_reads_zeroes = !be || nvtcp_backend_type(be) != NVTCP_BACKEND_BLOCK;
	/* Sorted by NSID: the active list and flush-all walk it in order. */
	list_for_each (pos, &s->namespaces) {
		if (list_entry(pos, struct tgt_ns, entry)->nsid > nsid)
			break;
	}
	list_add_tail(&ns->entry, pos);
	cs->ns_by_id[nsid] = ns;
	if (out)
		*out = ns;
	return 0;
}

void tgt_disc_changed(struct tgt *t)
{
	struct tgt_ctrl *ctrls[64];
	unsigned n = 0;
	struct list_head *p;

	pthread_mutex_lock(&t->lock);
	t->disc_genctr++;
	if (t->discovery) {
		list_for_each (p, &t->discovery->ctrls) {
			struct tgt_ctrl *c = list_entry(p, struct tgt_ctrl, entry);

			if (n == ARRAY_SIZE(ctrls))
				break;
			tgt_ctrl_get(c);
			ctrls[n++] = c;
		}
	}
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < n; i++) {
		tgt_ctrl_add_event(ctrls[i], TGT_AEN_DISC_CHANGE,
				   NVME_AER_DW0(NVME_AER_TYPE_NOTICE, NVME_AER_NOTICE_DISC_CHANGED,
						NVME_LOG_DISCOVERY));
		tgt_ctrl_put(ctrls[i]);
	}
}

/* ---- ports ------------------------------------------------------------------------------ */

void tgt_ports_clear(struct tgt *t)
{
	struct list_head *p, *tmp;
	bool any;

	pthread_mutex_lock(&t->lock);
	any = !list_empty(&t->ports);
	list_for_each_safe (p, tmp, &t->ports) {
		list_del(p);
		free(list_entry(p, struct tgt_port, entry));
	}
	pthread_mutex_unlock(&t->lock);
	if (any)
		tgt_disc_changed(t);
}

int tgt_port_add(struct tgt *t, const char *spec, char *err, size_t errlen)
{
	char addr[64];
	const char *port_str, *colon;
	struct tgt_port *port;
	struct in6_addr a6;
	struct in_addr a4;
	unsigned long pnum;
	char *end;
	int adrfam;
	size_t alen;
	struct list_head *p;
	uint16_t portid = 1;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close[1] != ':') {
			snprintf(err, errlen, "%s: expected \"[IPV6]:PORT\"", spec);
			return -EINVAL;
		}
		alen = (size_t)(close - spec - 1);
		port_str = close + 2;
		if (alen >= sizeof(addr))
			goto bad_addr;
		memcpy(addr, spec + 1, alen);
		addr[alen] = '\0';
		if (inet_pton(AF_INET6, addr, &a6) != 1)
			goto bad_addr;
		adrfam = NVME_ADRFAM_IPV6;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || strchr(spec, ':') != colon) {
			snprintf(err, errlen, "%s: expected \"ADDR:PORT\" or \"[IPV6]:PORT\"",
				 spec);
			return -EINVAL;
		}
		alen = (size_t)(colon - spec);
		port_str = colon + 1;
		if (alen >= sizeof(addr))
			goto bad_addr;
		memcpy(addr, spec, alen);
		addr[alen] = '\0';
		if (inet_pton(AF_INET, addr, &a4) != 1)
			goto bad_addr;
		adrfam = NVME_ADRFAM_IPV4;
	}
	errno = 0;
	pnum = strtoul(port_str, &end, 10);
	if (!port_str[0] || *end || errno || pnum == 0 || pnum > 65535 || port_str[0] == '-' ||
	    port_str[0] == '+') {
		snprintf(err, errlen, "%s: port must be a number from 1 to 65535", spec);
		return -EINVAL;
	}
	port = calloc(1, sizeof(*port));
	if (!port) {
		snprintf(err, errlen, "%s: out of memory", spec);
		return -ENOMEM;
	}
	port->adrfam = adrfam;
	snprintf(port->traddr, sizeof(port->traddr), "%s", addr);
	snprintf(port->trsvcid, sizeof(port->trsvcid), "%lu", pnum);
	port->secure = TGT_SECURE_NONE;
	port->listen_fd = -1;
	pthread_mutex_lock(&t->lock);
	list_for_each (p, &t->ports) {
		struct tgt_port *o = list_entry(p, struct tgt_port, entry);

		if (strcmp(o->traddr, port->traddr) == 0 &&
		    strcmp(o->trsvcid, port->trsvcid) == 0) {
			pthread_mutex_unlock(&t->lock);
			free(port);
			snprintf(err, errlen, "%s: port listed twice", spec);
			return -EEXIST;
		}
		if (o->portid >= portid)
			portid = (uint16_t)(o->portid + 1);
	}
	port->portid = portid;
	list_add_tail(&port->entry, &t->ports);
	pthread_mutex_unlock(&t->lock);
	tgt_disc_changed(t);
	return 0;

bad_addr:
	snprintf(err, errlen, "%s: \"%.*s\" is not a numeric %s address", spec, (int)MIN(alen, 64),
		 spec[0] == '[' ? spec + 1 : spec, spec[0] == '[' ? "IPv6" : "IPv4");
	return -EINVAL;
}

/* ---- threads ---------------------------------------------------------------------------- */

static void subsys_channel_ready(struct loop *l, int fd, uint32_t events, void *ctx)
{
	int ret = nvtcp_backend_channel_poll(ctx);

	if (ret < 0)
		log_err("backend channel fd %d: poll failed: %d", fd, ret);
}

int tgt_thread_attach(struct tgt_thread *th)
{
	struct tgt *t = th->tgt;
	struct list_head *sp, *np;
	int ret;

	list_for_each (sp, &t->subsystems) {
		struct tgt_subsys *s = list_entry(sp, struct tgt_subsys, entry);

		list_for_each (np, &s->namespaces) {
			struct tgt_ns *ns = list_entry(np, struct tgt_ns, entry);
			struct nvtcp_backend_channel *ch;
			int fd;

			if (!ns->backend || ns->channels[th->index])
				continue;
			ret = nvtcp_backend_channel_open(ns->backend, &ch);
			if (ret < 0) {
				log_err("%s nsid %u: cannot open a channel for thread %u: %d",
					s->nqn, ns->nsid, th->index, ret);
				goto fail;
			}
			ns->channels[th->index] = ch;
			fd = nvtcp_backend_channel_fd(ch);
			if (fd >= 0 && th->loop) {
				ret = loop_add_fd(th->loop, fd, EPOLLIN, subsys_channel_ready, ch);
				if (ret < 0) {
					log_err("%s nsid %u: cannot watch channel fd: %d", s->nqn,
						ns->nsid, ret);
					goto fail;
				}
				tgt_core_ns(ns)->fd_registered[th->index] = true;
			}
		}
	}
	return 0;
fail:
	tgt_thread_detach(th);
	return ret;
}

void tgt_thread_detach(struct tgt_thread *th)
{
	struct tgt *t = th->tgt;
	struct list_head *sp, *np;

	list_for_each (sp, &t->subsystems) {
		struct tgt_subsys *s = list_entry(sp, struct tgt_subsys, entry);

		list_for_each (np, &s->namespaces) {
			struct tgt_ns *ns = list_entry(np, struct tgt_ns, entry);
			struct nvtcp_backend_channel *ch = ns->channels[th->index];

			if (!ch)
				continue;
			if (tgt_core_ns(ns)->fd_registered[th->index]) {
				loop_del_fd(th->loop, nvtcp_backend_channel_fd(ch));
				tgt_core_ns(ns)->fd_registered[th->index] = false;
			}
			nvtcp_backend_channel_close(ch);
			ns->channels[th->index] = NULL;
		}
	}
}
