/* Controller ID allocation over the target core (src/target/ctrl.c): dynamic CNTLIDs stay in
 * 1..FFEFh, wrap around after FFEFh, are recycled once their controller is freed, and are never
 * handed out twice while a controller holding one lives. 10,000 connect/disconnect cycles over
 * TCP (test_load.py) cannot reach the wrap in CI time; this drives the allocator directly
 * through more than a whole cycle of the ID space. TAP output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "target/core.h"

static const char cntlid_config[] =
	"{\"subsystems\": [{\"nqn\": \"nqn.2024-01.io.nvtcp:a\", \"allow_any_host\": true},"
	" {\"nqn\": \"nqn.2024-01.io.nvtcp:b\", \"allow_any_host\": true}]}";

#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000c1d0"

int main(void)
{
	static const uint8_t hostid[16] = {1};
	struct tgt_subsys *sa, *sb;
	struct tgt_ctrl *held, *held2, *c;
	char err[512] = "";
	struct tgt t;
	unsigned n = 0, out_of_range = 0, dup_held = 0, wraps = 0, fails = 0;
	unsigned cycles = 2 * (TGT_CNTLID_MAX - TGT_CNTLID_MIN + 1) + 100;
	uint16_t prev = 0;
	bool saw_max = false;

	tap_case("tgt_init", tgt_init(&t) == 0);
	if (tgt_config_parse(&t, "cntlid.json", cntlid_config, strlen(cntlid_config), false, err,
			     sizeof(err)) < 0) {
		printf("# %s\n", err);
		tap_case("config", 0);
		return tap_done();
	}
	sa = tgt_subsys_find(&t, "nqn.2024-01.io.nvtcp:a");
	sb = tgt_subsys_find(&t, "nqn.2024-01.io.nvtcp:b");
	tap_case("two subsystems", sa && sb);
	if (!sa || !sb)
		return tap_done();

	/* two long-lived controllers, one per subsystem: their IDs must be skipped after a wrap */
	held = tgt_ctrl_create(&t, sa, NULL, HOSTNQN, hostid);
	held2 = tgt_ctrl_create(&t, sb, NULL, HOSTNQN, hostid);
	tap_case("first controllers get IDs 1 and 2", held && held2 &&
							      held->cntlid == TGT_CNTLID_MIN &&
							      held2->cntlid == TGT_CNTLID_MIN + 1);
	if (!held || !held2)
		return tap_done();

	/* connect/disconnect, alternating subsystems (IDs are unique target-wide) */
	for (unsigned i = 0; i < cycles; i++) {
		c = tgt_ctrl_create(&t, i & 1 ? sb : sa, NULL, HOSTNQN, hostid);
		if (!c) {
			fails++;
			continue;
		}
		n++;
		if (c->cntlid < TGT_CNTLID_MIN || c->cntlid > TGT_CNTLID_MAX)
			out_of_range++;
		if (c->cntlid == held->cntlid || c->cntlid == held2->cntlid)
			dup_held++;
		if (c->cntlid == TGT_CNTLID_MAX)
			saw_max = true;
		if (prev && c->cntlid < prev)
			wraps++;
		prev = c->cntlid;
		tgt_ctrl_put(c);
	}
	printf("# %u controllers created and freed, %u wraps, last ID %#x\n", n, wraps, prev);
	tap_case("every create succeeded (IDs recycled)", fails == 0 && n == cycles);
	tap_case("IDs within 1..FFEFh", out_of_range == 0);
	tap_case("FFEFh handed out, then wrapped to the bottom", saw_max && wraps >= 2);
	tap_case("IDs of live controllers never reused", dup_held == 0);

	/* after the wrap the lowest free ID is 3 (1 and 2 held) */
	c = tgt_ctrl_create(&t, sa, NULL, HOSTNQN, hostid);
	tap_case("a new controller still gets an ID", c != NULL);
	if (c)
		tgt_ctrl_put(c);
	tgt_ctrl_put(held2);
	c = tgt_ctrl_create(&t, sb, NULL, HOSTNQN, hostid);
	tap_case("a freed controller's ID becomes available again", c != NULL);
	if (c)
		tgt_ctrl_put(c);
	tgt_ctrl_put(held);
	tgt_fini(&t);
	return tap_done();
}
