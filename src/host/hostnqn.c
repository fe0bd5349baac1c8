/* Host identity (host NQN and host ID: given, read from /etc/nvme or generated and persisted
 * under $XDG_CONFIG_HOME/nvtcp) and readable NVMe status text.
 * Layer: host. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nvtcp/host.h"
#include "../common/compiler.h"
#include "../proto/nvme.h"

#define HOSTNQN_UUID_PREFIX "nqn.2014-08.org.nvmexpress:uuid:"

/* Read the first line of path into buf; 0, or -errno. */
static int hostnqn_read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		return -ENODATA;
	}
	fclose(f);
	n = strcspn(buf, "\r\n \t");
	buf[n] = '\0';
	return n ? 0 : -ENODATA;
}

static int hostnqn_config_dir(char *dir, size_t len)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");

	if (xdg && *xdg)
		snprintf(dir, len, "%s/nvtcp", xdg);
	else if (home && *home)
		snprintf(dir, len, "%s/.config/nvtcp", home);
	else
		return -ENOENT;
	return 0;
}

/* Write line to dir/name atomically (temp file + rename), creating dir. */
static int hostnqn_persist(const char *dir, const char *name, const char *line)
{
	char path[512], tmp[540];
	char parent[512];
	char *slash;
	FILE *f;

	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		mkdir(parent, 0755); /* ~/.config may not exist yet */
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", line);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		int r = -errno;

		unlink(tmp);
		return r;
	}
	return 0;
}

static int hostnqn_random_uuid(char *out, size_t len, uint8_t raw[16])
{
	uint8_t u[16];

	if (getrandom(u, sizeof(u), 0) != (ssize_t)sizeof(u))
		return -EIO;
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, len, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
	if (raw)
		memcpy(raw, u, sizeof(u));
	return 0;
}

static int hostnqn_parse_uuid(const char *s, uint8_t out[16])
{
	int n = 0;

	for (const char *p = s; *p && n < 32; p++) {
		int v;

		if (*p == '-')
			continue;
		if (*p >= '0' && *p <= '9')
			v = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			v = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			v = *p - 'A' + 10;
		else
			return -EINVAL;
		if (n % 2 == 0)
			out[n / 2] = (uint8_t)(v << 4);
		else
			out[n / 2] |= (uint8_t)v;
		n++;
	}
	return n == 32 ? 0 : -EINVAL;
}

NVTCP_EXPORT int nvtcp_default_hostnqn(char *buf, size_t len)
{
	char dir[448], path[512], uuid[40];
	int r;

	/* The system identity first, so ACLs written for nvme-cli apply to us too. */
	if (hostnqn_read_line("/etc/nvme/hostnqn", buf, len) == 0)
		return 0;
	r = hostnqn_config_dir(dir, sizeof(dir));
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/hostnqn", dir);
	if (hostnqn_read_line(path, buf, len) == 0)
		return 0;
	r = hostnqn_random_uuid(uuid, sizeof(uuid), NULL);
	if (r < 0)
		return r;
	snprintf(buf, len, HOSTNQN_UUID_PREFIX "%s", uuid);
	/* Not being able to save it only costs a stable identity: go on. */
	hostnqn_persist(dir, "hostnqn", buf);
	return 0;
}

NVTCP_EXPORT int nvtcp_hostid_for(const char *hostnqn, uint8_t hostid[16])
{
	const char *u = strstr(hostnqn, ":uuid:");
	char dir[448] = "", path[512], line[64], uuid[40]; /* dir stays "" without HOME */
	int r;

	if (u && hostnqn_parse_uuid(u + 6, hostid) == 0)
		return 0;
	if (hostnqn_read_line("/etc/nvme/hostid", line, sizeof(line)) == 0 &&
	    hostnqn_parse_uuid(line, hostid) == 0)
		return 0;
	r = hostnqn_config_dir(dir, sizeof(dir));
	if (r == 0) {
		snprintf(path, sizeof(path), "%s/hostid", dir);
		if (hostnqn_read_line(path, line, sizeof(line)) == 0 &&
		    hostnqn_parse_uuid(line, hostid) == 0)
			return 0;
	}
	r = hostnqn_random_uuid(uuid, sizeof(uuid), hostid);
	if (r < 0)
		return r;
	if (dir[0])
		hostnqn_persist(dir, "hostid", uuid);
	return 0;
}

/* ---- status text ------------------------------------------------------------------------- */

struct hostnqn_status_name {
	uint16_t code; /* SCT << 8 | SC */
	const char *text;
};

static const struct hostnqn_status_name hostnqn_status_names[] = {
	{0x000, "Successful Completion"},
	{0x001, "Invalid Command Opcode"},
	{0x002, "Invalid Field in Command"},
	{0x003, "Command ID Conflict"},
	{0x004, "Data Transfer Error"},
	{0x005, "Commands Aborted due to Power Loss Notification"},
	{0x006, "Internal Error"},
	{0x007, "Command Abort Requested"},
	{0x008, "Command Aborted due to SQ Deletion"},
	{0x009, "Command Aborted due to Failed Fused Command"},
	{0x00a, "Command Aborted due to Missing Fused Command"},
	{0x00b, "Invalid Namespace or Format"},
	{0x00c, "Command Sequence Error"},
	{0x00d, "Invalid SGL Segment Descriptor"},
	{0x00e, "Invalid Number of SGL Descriptors"},
	{0x00f, "Data SGL Length Invalid"},
	{0x010, "Metadata SGL Length Invalid"},
	{0x011, "SGL Descriptor Type Invalid"},
	{0x016, "SGL Offset Invalid"},
	{0x01d, "Keep Alive Timer Expired"},
	{0x020, "Namespace is Write Protected"},
	{0x022, "Transient Transport Error"},
	{0x080, "LBA Out of Range"},
	{0x081, "Capacity Exceeded"},
	{0x082, "Namespace Not Ready"},
	{0x083, "Reservation Conflict"},
	{0x100, "Completion Queue Invalid"},
	{0x101, "Invalid Queue Identifier"},
	{0x102, "Invalid Queue Size"},
	{0x103, "Abort Command Limit Exceeded"},
	{0x105, "Asynchronous Event Request Limit Exceeded"},
	{0x109, "Invalid Log Page"},
	{0x10d, "Feature Identifier Not Saveable"},
	{0x10e, "Feature Not Changeable"},
	{0x10f, "Feature Not Namespace Specific"},
	{0x180, "Conflicting Attributes (or Connect: Incompatible Format)"},
	{0x181, "Invalid Protection Information (or Connect: Controller Busy)"},
	{0x182, "Attempted Write to Read Only Range (or Connect: Invalid Parameters)"},
	{0x183, "Connect: Restart Discovery"},
	{0x184, "Connect: Invalid Host"},
	{0x191, "Authentication Required"},
	{0x280, "Write Fault"},
	{0x281, "Unrecovered Read Error"},
	{0x282, "End-to-end Guard Check Error"},
	{0x285, "Compare Failure"},
	{0x286, "Access Denied"},
	{0x287, "Deallocated or Unwritten Logical Block"},
	{0x300, "Internal Path Error"},
	{0x301, "Asymmetric Access Persistent Loss"},
	{0x302, "Asymmetric Access Inaccessible"},
	{0x303, "Asymmetric Access Transition"},
	{0x360, "Controller Pathing Error"},
	{0x370, "Host Pathing Error (the command did not complete on the wire)"},
	{0x371, "Command Aborted by Host"},
};

NVTCP_EXPORT const char *nvtcp_status_str(uint16_t status)
{
	uint16_t code = status & 0x7ff;

	for (size_t i = 0; i < ARRAY_SIZE(hostnqn_status_names); i++)
		if (hostnqn_status_names[i].code == code)
			return hostnqn_status_names[i].text;
	switch (NVTCP_STATUS_SCT(status)) {
	case NVME_SCT_GENERIC:
		return "Generic Command Status (unknown code)";
	case NVME_SCT_CMD_SPECIFIC:
		return "Command Specific Status (unknown code)";
	case NVME_SCT_MEDIA:
		return "Media and Data Integrity Error (unknown code)";
	case NVME_SCT_PATH:
		return "Path Related Status (unknown code)";
	case NVME_SCT_VENDOR:
		return "Vendor Specific Status";
	default:
		return "Unknown Status Code Type";
	}
}

NVTCP_EXPORT const char *nvtcp_result_str(int rc, char *buf, size_t len)
{
	if (rc == 0)
		snprintf(buf, len, "success");
	else if (rc < 0)
		snprintf(buf, len, "%s", strerror(-rc));
	else
		snprintf(buf, len, "NVMe status %#x: %s%s", rc, nvtcp_status_str((uint16_t)rc),
			 NVTCP_STATUS_DNR(rc) ? " (do not retry)" : "");
	return buf;
}
