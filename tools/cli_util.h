/* Shared pieces of the nvtcp command-line tool: transport options, help text, errors.
 * Layer: tools (uses only include/nvtcp/). */
#ifndef NVTCP_TOOLS_CLI_UTIL_H
#define NVTCP_TOOLS_CLI_UTIL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "nvtcp/host.h"

/* Long-option ids of the shared transport options (beyond single letters). */
enum cli_opt {
	CLI_OPT_HOSTNQN = 1000,
	CLI_OPT_HDGST,
	CLI_OPT_DDGST,
	CLI_OPT_JSON,
	CLI_OPT_HELP,
	CLI_OPT_BUSY_POLL,
	CLI_OPT_VERIFY,
	CLI_OPT_QUEUES,
	CLI_OPT_KATO,
	CLI_OPT_IO_TIMEOUT,
	CLI_OPT_LOSS_TMO,
	CLI_OPT_RECONNECT_DELAY,
	CLI_OPT_TLS,
	CLI_OPT_TLS_KEY,
	CLI_OPT_TLS_KEY_FILE,
	CLI_OPT_TLS_IDENTITY,
	CLI_OPT_DHCHAP_SECRET,
	CLI_OPT_DHCHAP_SECRET_FILE,
	CLI_OPT_DHCHAP_CTRL_SECRET,
	CLI_OPT_DHCHAP_CTRL_SECRET_FILE,
	CLI_OPT_DHCHAP_HASH,
	CLI_OPT_DHCHAP_DHGROUP,
	CLI_OPT_CONNECT_TIMEOUT,
	CLI_OPT_TCP_CC,
	CLI_OPT_COUNT
};

#define CLI_TRANSPORT_LONGOPTS                                                               \
	{"traddr", required_argument, NULL, 'a'}, {"trsvcid", required_argument, NULL, 's'}, \
		{"nqn", required_argument, NULL, 'n'},                                       \
		{"hostnqn", required_argument, NULL, CLI_OPT_HOSTNQN},                       \
		{"hdr-digest", no_argument, NULL, CLI_OPT_HDGST},                            \
		{"data-digest", no_argument, NULL, CLI_OPT_DDGST},                           \
		{"help", no_argument, NULL, CLI_OPT_HELP},                                   \
		{"ctrl-loss-tmo", required_argument, NULL, CLI_OPT_LOSS_TMO},                \
		{"reconnect-delay", required_argument, NULL, CLI_OPT_RECONNECT_DELAY},       \
		{"tls", no_argument, NULL, CLI_OPT_TLS},                                     \
		{"tls-key", required_argument, NULL, CLI_OPT_TLS_KEY},                       \
		{"tls-key-file", required_argument, NULL, CLI_OPT_TLS_KEY_FILE},             \
		{"tls-identity", required_argument, NULL, CLI_OPT_TLS_IDENTITY},             \
		{"dhchap-secret", required_argument, NULL, CLI_OPT_DHCHAP_SECRET},           \
		{"dhchap-secret-file", required_argument, NULL, CLI_OPT_DHCHAP_SECRET_FILE}, \
		{"dhchap-ctrl-secret", required_argument, NULL, CLI_OPT_DHCHAP_CTRL_SECRET}, \
		{"dhchap-ctrl-secret-file", required_argument, NULL,                         \
		 CLI_OPT_DHCHAP_CTRL_SECRET_FILE},                                           \
		{"dhchap-hash", required_argument, NULL, CLI_OPT_DHCHAP_HASH},               \
		{"dhchap-dhgroup", required_argument, NULL, CLI_OPT_DHCHAP_DHGROUP},         \
		{"connect-timeout", required_argument, NULL, CLI_OPT_CONNECT_TIMEOUT},       \
		{"kato", required_argument, NULL, CLI_OPT_KATO},                             \
		{"io-timeout", required_argument, NULL, CLI_OPT_IO_TIMEOUT},                 \
		{"tcp-congestion", required_argument, NULL, CLI_OPT_TCP_CC},                 \
	{                                                                                    \
		"json", no_argument, NULL, CLI_OPT_JSON                                      \
	}

#define CLI_TRANSPORT_HELP                                                                         \
	"Transport options:\n"                                                                     \
	"  -a, --traddr ADDR     target address (IPv4, IPv6 or host name); required\n"             \
	"  -s, --trsvcid PORT    target TCP port (default 4420)\n"                                 \
	"  -n, --nqn NQN         subsystem NQN (required by read, write and perf; discover and\n"  \
	"                        identify default to the discovery NQN)\n"                         \
	"      --hostnqn NQN     host NQN (default: /etc/nvme/hostnqn, else generated once and\n"  \
	"                        kept in ~/.config/nvtcp/hostnqn)\n"                               \
	"      --hdr-digest      ask for CRC32C header digests\n"                                  \
	"      --data-digest     ask for CRC32C data digests\n"                                    \
	"      --ctrl-loss-tmo S seconds to keep reconnecting after the target went away before\n" \
	"                        failing I/O (default 60; 0 = never reconnect; decimals ok)\n"     \
	"      --reconnect-delay S  first delay between reconnect attempts, doubling up to 8x\n"   \
	"                        (default 1)\n"                                                    \
	"      --tls             TLS 1.3 with a pre-shared key (needs --tls-key or "               \
	"--tls-key-file)\n"                                                                        \
	"      --tls-key KEY     PSK \"NVMeTLSkey-1:hh:...:\" (nvme gen-tls-key); implies "        \
	"--tls;\n"                                                                                 \
	"                        hh 02 (48-byte key) selects TLS_AES_256_GCM_SHA384\n"             \
	"      --tls-key-file F  read the PSK from F (mode 0600 or 0400); implies --tls\n"         \
	"      --tls-identity v0|v1  PSK identity form (default v0; v1 adds the PSK digest)\n"     \
	"      --dhchap-secret S  DH-HMAC-CHAP host secret \"DHHC-1:hh:...:\" (from nvme\n"        \
	"                        gen-dhchap-key), bound to --hostnqn; used on every queue\n"       \
	"      --dhchap-secret-file F  read the host secret from F (mode 0600 or 0400)\n"          \
	"      --dhchap-ctrl-secret S  controller secret: the controller must authenticate too\n"  \
	"      --dhchap-ctrl-secret-file F  read the controller secret from F (0600 or 0400)\n"    \
	"      --dhchap-hash LIST     hashes to offer, e.g. sha256,sha512 (default: all)\n"        \
	"      --dhchap-dhgroup LIST  DH groups to offer: null, ffdhe2048..ffdhe8192 (default:\n"  \
	"                        all)\n"                                                           \
	"      --connect-timeout S  bound on connecting and on each admin command (default 10)\n"  \
	"      --kato S          keep-alive timeout: a Keep Alive every S/2 seconds, the\n"        \
	"                        controller counts as lost when one goes unanswered for S\n"       \
	"                        (default 5; decimals ok)\n"                                       \
	"      --io-timeout S    an I/O not completed after S seconds fails with a timeout;\n"     \
	"                        the queue reconnects for the others (default 30)\n"               \
	"      --tcp-congestion NAME  TCP congestion control (cubic, bbr, dctcp, reno, ...;\n"     \
	"                        default: net.ipv4.tcp_congestion_control)\n"

/* Wipe the --tls-key-file key read into o (if any) and clear o->tls_psk: call once the library
 * has parsed it (nvtcp_ctrl_connect() and nvtcp_discover() do not keep the string). */
void cli_forget_key(struct nvtcp_ctrl_opts *o);
/* Handle a transport option; returns true if opt was one. */
bool cli_transport_opt(int opt, const char *arg, struct nvtcp_ctrl_opts *o, bool *json);
/* Parse an unsigned number with an optional k/m/g (binary) suffix; exits with a message on
 * error. */
uint64_t cli_parse_size(const char *what, const char *s);
uint64_t cli_parse_u64(const char *what, const char *s);
/* cli_parse_u64() or cli_parse_size() (size true) for option opt of command cmd, refusing a
 * value above max with "nvtcp CMD: OPT: VALUE is more than MAX" (exits). */
uint64_t cli_parse_max(const char *cmd, const char *opt, const char *s, bool size, uint64_t max);
/* Seconds (decimals allowed, 0..86400); exits with a message on error. */
double cli_parse_seconds(const char *what, const char *s);
/* Print "nvtcp CMD: message" to stderr and exit(1). */
void cli_die(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Connect (with io queues) or die with the library's explanation. */
struct nvtcp_ctrl *cli_connect(const char *cmd, struct nvtcp_ctrl_opts *o);
/* Disconnect a controller from cli_connect() (cli_die() no longer touches it). */
void cli_disconnect(struct nvtcp_ctrl *ctrl);

int perf_main(int argc, char **argv);
void perf_usage(void);

#endif
