/* libFuzzer target for the JSON configuration parser: arbitrary bytes as a config file,
 * validated without opening backends (so sizes in the input allocate nothing). Any crash,
 * leak or sanitizer report is a bug; an error message must always name the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "target/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	struct tgt t;
	int ret;

	if (tgt_init(&t))
		return 0;
	ret = tgt_config_parse(&t, "fuzz.json", (const char *)data, size, false, err, sizeof(err));
	if (ret < 0 && strncmp(err, "fuzz.json: ", 11) != 0)
		abort();
	tgt_fini(&t);
	return 0;
}
