/* NVMe base and NVMe-oF definitions both roles need: opcodes, status codes, registers,
 * Identify structures, log pages (error, SMART, changed namespaces, discovery), features.
 * Layer: proto (pure). Byte-array structs, accessed through src/common/le.h. */
#ifndef NVTCP_PROTO_NVME_H
#define NVTCP_PROTO_NVME_H

#include <stdint.h>

#include "../common/compiler.h"

#define NVME_DISCOVERY_NQN  "nqn.2014-08.org.nvmexpress.discovery"
#define NVME_NQN_MAX	    256 /* including the NUL */
#define NVME_PORT_IO	    4420
#define NVME_PORT_DISC	    8009
#define NVME_TRTYPE_TCP	    3
#define NVME_ADRFAM_IPV4    1
#define NVME_ADRFAM_IPV6    2
#define NVME_CNTLID_DYNAMIC 0xffff
#define NVME_NSID_ALL	    0xffffffffu

/* ---- opcodes ---------------------------------------------------------------------------- */

enum nvme_admin_opc {
	NVME_ADMIN_DELETE_SQ = 0x00,
	NVME_ADMIN_CREATE_SQ = 0x01,
	NVME_ADMIN_GET_LOG_PAGE = 0x02,
	NVME_ADMIN_DELETE_CQ = 0x04,
	NVME_ADMIN_CREATE_CQ = 0x05,
	NVME_ADMIN_IDENTIFY = 0x06,
	NVME_ADMIN_ABORT = 0x08,
	NVME_ADMIN_SET_FEATURES = 0x09,
	NVME_ADMIN_GET_FEATURES = 0x0a,
	NVME_ADMIN_ASYNC_EVENT = 0x0c,
	NVME_ADMIN_KEEP_ALIVE = 0x18,
	NVME_ADMIN_FABRICS = 0x7f,
};

enum nvme_io_opc {
	NVME_IO_FLUSH = 0x00,
	NVME_IO_WRITE = 0x01,
	NVME_IO_READ = 0x02,
	NVME_IO_WRITE_ZEROES = 0x08,
	NVME_IO_DSM = 0x09,
};

#define NVME_FABRICS_OPC 0x7f

enum nvme_fctype {
	NVME_FCTYPE_PROPERTY_SET = 0x00,
	NVME_FCTYPE_CONNECT = 0x01,
	NVME_FCTYPE_PROPERTY_GET = 0x04,
	NVME_FCTYPE_AUTH_SEND = 0x05,
	NVME_FCTYPE_AUTH_RECV = 0x06,
	NVME_FCTYPE_DISCONNECT = 0x08,
};

/* Read/Write CDW12 */
#define NVME_RW_NLB_MASK 0xffffu /* bits 15:0, 0's based */
#define NVME_RW_FUA	 (1u << 30)
#define NVME_RW_LR	 (1u << 31)
#define NVME_WZ_DEAC	 (1u << 25) /* Write Zeroes: deallocate */
/* DSM CDW11 attributes */
#define NVME_DSM_IDR (1u << 0)
#define NVME_DSM_IDW (1u << 1)
#define NVME_DSM_AD  (1u << 2) /* deallocate */

/* DSM range (16 bytes) */
struct nvme_dsm_range {
	uint8_t cattr[4];
	uint8_t nlb[4]; /* not 0's based */
	uint8_t slba[8];
};

/* ---- status ----------------------------------------------------------------------------- */

enum nvme_sct {
	NVME_SCT_GENERIC = 0x0,
	NVME_SCT_CMD_SPECIFIC = 0x1,
	NVME_SCT_MEDIA = 0x2,
	NVME_SCT_PATH = 0x3,
	NVME_SCT_VENDOR = 0x7,
};

/* Generic command status (SCT 0) */
enum nvme_sc_generic {
	NVME_SC_SUCCESS = 0x00,
	NVME_SC_INVALID_OPCODE = 0x01,
	NVME_SC_INVALID_FIELD = 0x02,
	NVME_SC_CID_CONFLICT = 0x03,
	NVME_SC_DATA_XFER_ERROR = 0x04,
	NVME_SC_INTERNAL = 0x06,
	NVME_SC_ABORT_REQ = 0x07,
	NVME_SC_ABORT_SQ_DELETED = 0x08,
	NVME_SC_INVALID_NS = 0x0b,
	NVME_SC_CMD_SEQ_ERROR = 0x0c,
	NVME_SC_SGL_INVALID_LAST = 0x0d,
	NVME_SC_SGL_INVALID_COUNT = 0x0e,
	NVME_SC_SGL_INVALID_DATA = 0x0f, /* Data SGL Length Invalid */
	NVME_SC_SGL_INVALID_TYPE = 0x11,
	NVME_SC_SGL_INVALID_OFFSET = 0x16,
	NVME_SC_KA_TIMEOUT_EXPIRED = 0x1d,
	NVME_SC_TRANSIENT_TRANSPORT = 0x22,
	NVME_SC_LBA_RANGE = 0x80,
	NVME_SC_CAP_EXCEEDED = 0x81,
	NVME_SC_NS_NOT_READY = 0x82,
};

/* Command specific status (SCT 1) */
enum nvme_sc_specific {
	NVME_SC_CQ_INVALID = 0x00,
	NVME_SC_QID_INVALID = 0x01,
	NVME_SC_QUEUE_SIZE = 0x02,
	NVME_SC_ABORT_LIMIT = 0x03,
	NVME_SC_AER_LIMIT = 0x05,
	NVME_SC_INVALID_LOG_PAGE = 0x09,
	NVME_SC_FEATURE_NOT_SAVEABLE = 0x0d,
	NVME_SC_FEATURE_NOT_CHANGEABLE = 0x0e,
	NVME_SC_FEATURE_NOT_PER_NS = 0x0f,
	NVME_SC_CONFLICTING_ATTRS = 0x80, /* I/O command set */
	NVME_SC_READ_ONLY = 0x82,	  /* Attempted Write to Read Only Range */
	/* Fabrics (SCT 1 on Fabrics commands) */
	NVME_SC_CONNECT_FORMAT = 0x80,
	NVME_SC_CONNECT_CTRL_BUSY = 0x81,
	NVME_SC_CONNECT_INVALID_PARAM = 0x82,
	NVME_SC_CONNECT_RESTART_DISC = 0x83,
	NVME_SC_CONNECT_INVALID_HOST = 0x84,
	NVME_SC_AUTH_REQUIRED = 0x91,
};

/* Media and data integrity errors (SCT 2) */
enum nvme_sc_media {
	NVME_SC_WRITE_FAULT = 0x80,
	NVME_SC_READ_ERROR = 0x81,
	NVME_SC_ACCESS_DENIED = 0x86,
};

#define NVME_STATUS_DNR	 (1u << 15)
#define NVME_STATUS_MORE (1u << 14)
/* Build the 16-bit CQE status word (phase bit 0 is always 0 on fabrics). */
#define NVME_STATUS(sct, sc)	((uint16_t)(((unsigned)(sct) << 9) | ((unsigned)(sc) << 1)))
#define NVME_STATUS_SCT(status) (((status) >> 9) & 0x7)
#define NVME_STATUS_SC(status)	(((status) >> 1) & 0xff)

/* Connect "invalid parameters" DW0: IPO bits 15:0 (byte offset of the field), IATTR bits 23:16
 * (bit 16: 1 = in the Connect data, 0 = in the SQE), as Linux nvmet and SPDK send it and the
 * Linux host decodes it */
#define NVME_CONNECT_IPO_IATTR(in_data, offset) \
	(((in_data) ? 1u << 16 : 0u) | ((uint32_t)(offset)&0xffffu))
#define NVME_CONNECT_RSP_AUTH_REQUIRED (1u << 17)

/* ---- controller registers (properties) -------------------------------------------------- */

enum nvme_prop {
	NVME_REG_CAP = 0x00,
	NVME_REG_VS = 0x08,
	NVME_REG_INTMS = 0x0c,
	NVME_REG_INTMC = 0x10,
	NVME_REG_CC = 0x14,
	NVME_REG_CSTS = 0x1c,
	NVME_REG_NSSR = 0x20,
};

#define NVME_CAP_MQES(cap)    ((uint32_t)((cap)&0xffff)) /* 0's based */
#define NVME_CAP_CQR	      (1ull << 16)
#define NVME_CAP_TO_SHIFT     24 /* 500 ms units, 8 bits */
#define NVME_CAP_CSS_NVM      (1ull << 37)
#define NVME_CAP_MPSMIN_SHIFT 48
#define NVME_CAP_MPSMAX_SHIFT 52

#define NVME_CC_EN	     (1u << 0)
#define NVME_CC_CSS_SHIFT    4
#define NVME_CC_MPS_SHIFT    7
#define NVME_CC_AMS_SHIFT    11
#define NVME_CC_SHN_SHIFT    14
#define NVME_CC_SHN_MASK     (3u << 14)
#define NVME_CC_SHN_NORMAL   (1u << 14)
#define NVME_CC_SHN_ABRUPT   (2u << 14)
#define NVME_CC_IOSQES_SHIFT 16
#define NVME_CC_IOCQES_SHIFT 20

#define NVME_CSTS_RDY	      (1u << 0)
#define NVME_CSTS_CFS	      (1u << 1)
#define NVME_CSTS_SHST_MASK   (3u << 2)
#define NVME_CSTS_SHST_NORMAL (0u << 2)
#define NVME_CSTS_SHST_OCCUR  (1u << 2)
#define NVME_CSTS_SHST_CMPLT  (2u << 2)

#define NVME_VS(maj, min, ter) (((uint32_t)(maj) << 16) | ((uint32_t)(min) << 8) | (uint32_t)(ter))

/* ---- Identify --------------------------------------------------------------------------- */

enum nvme_cns {
	NVME_CNS_NS = 0x00,
	NVME_CNS_CTRL = 0x01,
	NVME_CNS_NS_ACTIVE_LIST = 0x02,
	NVME_CNS_NS_DESC_LIST = 0x03,
};

enum nvme_nidt {
	NVME_NIDT_EUI64 = 0x01,
	NVME_NIDT_NGUID = 0x02,
	NVME_NIDT_UUID = 0x03,
	NVME_NIDT_CSI = 0x04,
};

struct nvme_ns_id_desc {
	uint8_t nidt;
	uint8_t nidl;
	uint8_t rsvd[2];
	/* nidl bytes of identifier follow */
};

struct nvme_id_power_state {
	uint8_t bytes[32];
};

/* Identify Controller (4096 bytes) */
struct nvme_id_ctrl {
	uint8_t vid[2];
	uint8_t ssvid[2];
	char sn[20];
	char mn[40];
	char fr[8];
	uint8_t rab;
	uint8_t ieee[3];
	uint8_t cmic;
	uint8_t mdts;
	uint8_t cntlid[2];
	uint8_t ver[4];
	uint8_t rtd3r[4];
	uint8_t rtd3e[4];
	uint8_t oaes[4];
	uint8_t ctratt[4];
	uint8_t rrls[2];
	uint8_t rsvd102[9];
	uint8_t cntrltype; /* 1 I/O, 2 discovery, 3 admin */
	uint8_t fguid[16];
	uint8_t crdt1[2];
	uint8_t crdt2[2];
	uint8_t crdt3[2];
	uint8_t rsvd134[122];
	uint8_t oacs[2];
	uint8_t acl;
	uint8_t aerl;
	uint8_t frmw;
	uint8_t lpa;
	uint8_t elpe;
	uint8_t npss;
	uint8_t avscc;
	uint8_t apsta;
	uint8_t wctemp[2];
	uint8_t cctemp[2];
	uint8_t mtfa[2];
	uint8_t hmpre[4];
	uint8_t hmmin[4];
	uint8_t tnvmcap[16];
	uint8_t unvmcap[16];
	uint8_t rpmbs[4];
	uint8_t edstt[2];
	uint8_t dsto;
	uint8_t fwug;
	uint8_t kas[2]; /* keep alive granularity, 100 ms units */
	uint8_t hctma[2];
	uint8_t mntmt[2];
	uint8_t mxtmt[2];
	uint8_t sanicap[4];
	uint8_t hmminds[4];
	uint8_t hmmaxd[2];
	uint8_t nsetidmax[2];
	uint8_t endgidmax[2];
	uint8_t anatt;
	uint8_t anacap;
	uint8_t anagrpmax[4];
	uint8_t nanagrpid[4];
	uint8_t pels[4];
	uint8_t rsvd356[156];
	uint8_t sqes;
	uint8_t cqes;
	uint8_t maxcmd[2];
	uint8_t nn[4];
	uint8_t oncs[2];
	uint8_t fuses[2];
	uint8_t fna;
	uint8_t vwc;
	uint8_t awun[2];
	uint8_t awupf[2];
	uint8_t icsvscc;
	uint8_t nwpc;
	uint8_t acwu[2];
	uint8_t rsvd534[2];
	uint8_t sgls[4];
	uint8_t mnan[4];
	uint8_t rsvd544[224];
	char subnqn[256];
	uint8_t rsvd1024[768];
	/* Fabrics */
	uint8_t ioccsz[4]; /* 16-byte units */
	uint8_t iorcsz[4];
	uint8_t icdoff[2];
	uint8_t fcatt;
	uint8_t msdbd;
	uint8_t ofcs[2];
	uint8_t rsvd1806[242];
	struct nvme_id_power_state psd[32];
	uint8_t vs[1024];
};

/* OACS, ONCS, LPA, OAES, SGLS bits used here */
#define NVME_ONCS_DSM		  (1u << 2)
#define NVME_ONCS_WRITE_ZEROES	  (1u << 3)
#define NVME_ONCS_FEATURES_SAVE	  (1u << 4)
#define NVME_LPA_EXTENDED_DATA	  (1u << 2)
#define NVME_OAES_NS_ATTR	  (1u << 8)
#define NVME_OAES_DISC_LOG_CHANGE (1u << 31)
#define NVME_SGLS_SUPPORTED	  (1u << 0) /* byte-aligned contiguous */
#define NVME_SGLS_KEYED		  (1u << 2)
#define NVME_SGLS_OFFSET	  (1u << 20) /* in-capsule data with offset addressing */
#define NVME_CTRATT_128BIT_HOSTID (1u << 0)
#define NVME_VWC_PRESENT	  (1u << 0)
#define NVME_CNTRLTYPE_IO	  1
#define NVME_CNTRLTYPE_DISCOVERY  2

/* LBA format (4 bytes) */
struct nvme_lbaf {
	uint8_t ms[2];
	uint8_t lbads; /* log2 of the LBA data size */
	uint8_t rp;
};

/* Identify Namespace (4096 bytes) */
struct nvme_id_ns {
	uint8_t nsze[8];
	uint8_t ncap[8];
	uint8_t nuse[8];
	uint8_t nsfeat;
	uint8_t nlbaf; /* 0's based */
	uint8_t flbas;
	uint8_t mc;
	uint8_t dpc;
	uint8_t dps;
	uint8_t nmic;
	uint8_t rescap;
	uint8_t fpi;
	uint8_t dlfeat;
	uint8_t nawun[2];
	uint8_t nawupf[2];
	uint8_t nacwu[2];
	uint8_t nabsn[2];
	uint8_t nabo[2];
	uint8_t nabspf[2];
	uint8_t noiob[2];
	uint8_t nvmcap[16];
	uint8_t npwg[2];
	uint8_t npwa[2];
	uint8_t npdg[2];
	uint8_t npda[2];
	uint8_t nows[2];
	uint8_t rsvd74[18];
	uint8_t anagrpid[4];
	uint8_t rsvd96[3];
	uint8_t nsattr;
	uint8_t nvmsetid[2];
	uint8_t endgid[2];
	uint8_t nguid[16];
	uint8_t eui64[8];
	struct nvme_lbaf lbaf[16];
	uint8_t rsvd192[192];
	uint8_t vs[3712];
};

#define NVME_NSFEAT_THIN	(1u << 0)
#define NVME_NSFEAT_DEALLOC_ERR (1u << 2)
#define NVME_DLFEAT_READ_ZEROES 0x01 /* deallocated blocks read as zeroes */
#define NVME_DLFEAT_WZ_DEAC	(1u << 3)

/* ---- log pages -------------------------------------------------------------------------- */

enum nvme_log_id {
	NVME_LOG_ERROR = 0x01,
	NVME_LOG_SMART = 0x02,
	NVME_LOG_FW_SLOT = 0x03,
	NVME_LOG_CHANGED_NS = 0x04,
	NVME_LOG_CMD_EFFECTS = 0x05,
	NVME_LOG_DISCOVERY = 0x70,
};

/* Get Log Page: CDW10 LID 7:0, LSP 14:8, RAE 15, NUMDL 31:16; CDW11 NUMDU 15:0; CDW12/13 LPO */

struct nvme_error_log {
	uint8_t error_count[8];
	uint8_t sqid[2];
	uint8_t cmdid[2];
	uint8_t status_field[2];
	uint8_t param_error_location[2];
	uint8_t lba[8];
	uint8_t nsid[4];
	uint8_t vs;
	uint8_t trtype;
	uint8_t rsvd30[2];
	uint8_t cs[8];
	uint8_t trtype_spec_info[2];
	uint8_t rsvd42[22];
};

struct nvme_smart_log {
	uint8_t critical_warning;
	uint8_t temperature[2];
	uint8_t avail_spare;
	uint8_t spare_thresh;
	uint8_t percent_used;
	uint8_t endu_grp_crit_warn;
	uint8_t rsvd7[25];
	uint8_t data_units_read[16];
	uint8_t data_units_written[16];
	uint8_t host_reads[16];
	uint8_t host_writes[16];
	uint8_t ctrl_busy_time[16];
	uint8_t power_cycles[16];
	uint8_t power_on_hours[16];
	uint8_t unsafe_shutdowns[16];
	uint8_t media_errors[16];
	uint8_t num_err_log_entries[16];
	uint8_t warning_temp_time[4];
	uint8_t critical_comp_time[4];
	uint8_t temp_sensor[8][2];
	uint8_t rsvd216[296];
};

struct nvme_disc_log_hdr {
	uint8_t genctr[8];
	uint8_t numrec[8];
	uint8_t recfmt[2];
	uint8_t rsvd[1006];
};

#define NVME_DISC_SUBTYPE_REFERRAL    1
#define NVME_DISC_SUBTYPE_NVME	      2
#define NVME_DISC_SUBTYPE_CURRENT     3
#define NVME_DISC_TREQ_NOT_SPECIFIED  0x00
#define NVME_DISC_TREQ_REQUIRED	      0x01
#define NVME_DISC_TREQ_NOT_REQUIRED   0x02
#define NVME_DISC_TREQ_DISABLE_SQFLOW 0x04
#define NVME_DISC_EFLAGS_DUPRETINFO   (1u << 0)
#define NVME_DISC_EFLAGS_EPCSD	      (1u << 1)
#define NVME_TCP_SECTYPE_NONE	      0
#define NVME_TCP_SECTYPE_TLS12	      1
#define NVME_TCP_SECTYPE_TLS13	      2

struct nvme_disc_log_entry {
	uint8_t trtype;
	uint8_t adrfam;
	uint8_t subtype;
	uint8_t treq;
	uint8_t portid[2];
	uint8_t cntlid[2];
	uint8_t asqsz[2];
	uint8_t eflags[2];
	uint8_t rsvd12[20];
	char trsvcid[32];
	uint8_t rsvd64[192];
	char subnqn[256];
	char traddr[256];
	uint8_t tsas[256]; /* TCP: byte 0 SECTYPE */
};

/* ---- features --------------------------------------------------------------------------- */

enum nvme_feat {
	NVME_FEAT_ARBITRATION = 0x01,
	NVME_FEAT_POWER_MGMT = 0x02,
	NVME_FEAT_TEMP_THRESH = 0x04,
	NVME_FEAT_ERR_RECOVERY = 0x05,
	NVME_FEAT_VOLATILE_WC = 0x06,
	NVME_FEAT_NUM_QUEUES = 0x07,
	NVME_FEAT_IRQ_COALESCE = 0x08,
	NVME_FEAT_IRQ_CONFIG = 0x09,
	NVME_FEAT_WRITE_ATOMIC = 0x0a,
	NVME_FEAT_ASYNC_EVENT = 0x0b,
	NVME_FEAT_KATO = 0x0f,
	NVME_FEAT_HOST_ID = 0x81,
};

/* Asynchronous event completion DW0: type 2:0, info 15:8, log page 23:16 */
#define NVME_AER_TYPE_NOTICE	     2
#define NVME_AER_NOTICE_NS_CHANGED   0x00
#define NVME_AER_NOTICE_DISC_CHANGED 0xf0
#define NVME_AER_DW0(type, info, lid) \
	((uint32_t)(type) | ((uint32_t)(info) << 8) | ((uint32_t)(lid) << 16))

WIRE_SIZE(struct nvme_dsm_range, 16);
WIRE_SIZE(struct nvme_id_ctrl, 4096);
WIRE_OFFSET(struct nvme_id_ctrl, mdts, 77);
WIRE_OFFSET(struct nvme_id_ctrl, cntlid, 78);
WIRE_OFFSET(struct nvme_id_ctrl, ver, 80);
WIRE_OFFSET(struct nvme_id_ctrl, cntrltype, 111);
WIRE_OFFSET(struct nvme_id_ctrl, oacs, 256);
WIRE_OFFSET(struct nvme_id_ctrl, kas, 320);
WIRE_OFFSET(struct nvme_id_ctrl, sqes, 512);
WIRE_OFFSET(struct nvme_id_ctrl, nn, 516);
WIRE_OFFSET(struct nvme_id_ctrl, oncs, 520);
WIRE_OFFSET(struct nvme_id_ctrl, vwc, 525);
WIRE_OFFSET(struct nvme_id_ctrl, sgls, 536);
WIRE_OFFSET(struct nvme_id_ctrl, subnqn, 768);
WIRE_OFFSET(struct nvme_id_ctrl, ioccsz, 1792);
WIRE_OFFSET(struct nvme_id_ctrl, msdbd, 1803);
WIRE_OFFSET(struct nvme_id_ctrl, psd, 2048);
WIRE_SIZE(struct nvme_id_ns, 4096);
WIRE_OFFSET(struct nvme_id_ns, nlbaf, 25);
WIRE_OFFSET(struct nvme_id_ns, dlfeat, 33);
WIRE_OFFSET(struct nvme_id_ns, nvmcap, 48);
WIRE_OFFSET(struct nvme_id_ns, anagrpid, 92);
WIRE_OFFSET(struct nvme_id_ns, nguid, 104);
WIRE_OFFSET(struct nvme_id_ns, eui64, 120);
WIRE_OFFSET(struct nvme_id_ns, lbaf, 128);
WIRE_SIZE(struct nvme_error_log, 64);
WIRE_SIZE(struct nvme_smart_log, 512);
WIRE_OFFSET(struct nvme_smart_log, data_units_read, 32);
WIRE_OFFSET(struct nvme_smart_log, power_on_hours, 128);
WIRE_OFFSET(struct nvme_smart_log, temp_sensor, 200);
WIRE_SIZE(struct nvme_disc_log_hdr, 1024);
WIRE_SIZE(struct nvme_disc_log_entry, 1024);
WIRE_OFFSET(struct nvme_disc_log_entry, trsvcid, 32);
WIRE_OFFSET(struct nvme_disc_log_entry, subnqn, 256);
WIRE_OFFSET(struct nvme_disc_log_entry, traddr, 512);
WIRE_OFFSET(struct nvme_disc_log_entry, tsas, 768);

#endif
