/* DH-HMAC-CHAP (NVMe in-band authentication) message layouts, carried as the data of the
 * Fabrics Authentication Send / Receive commands (SECP E9h, SPSP0 01h, SPSP1 01h).
 * Layer: auth (pure wire definitions). Byte arrays plus LE helpers, like src/proto/wire.h.
 * Layouts follow NVMe Base 2.0 section 8.13.5 and Linux include/linux/nvme.h
 * (struct nvmf_auth_dhchap_*_data). */
#ifndef NVTCP_AUTH_AUTH_WIRE_H
#define NVTCP_AUTH_AUTH_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_SECP_DHCHAP 0xe9 /* Security Protocol: NVMe authentication */
#define AUTH_SPSP0	 0x01
#define AUTH_SPSP1	 0x01

/* AUTH_Type */
enum auth_type {
	AUTH_TYPE_COMMON = 0x00, /* Negotiate, Failure1/2 */
	AUTH_TYPE_DHCHAP = 0x01, /* Challenge, Reply, Success1/2 */
};

/* AUTH_Id (message id) */
enum auth_msg {
	AUTH_MSG_NEGOTIATE = 0x00,
	AUTH_MSG_CHALLENGE = 0x01,
	AUTH_MSG_REPLY = 0x02,
	AUTH_MSG_SUCCESS1 = 0x03,
	AUTH_MSG_SUCCESS2 = 0x04,
	AUTH_MSG_FAILURE2 = 0xf0,
	AUTH_MSG_FAILURE1 = 0xf1,
};

#define AUTH_DHCHAP_AUTH_ID 0x01 /* protocol descriptor AUTHID for DH-HMAC-CHAP */
#define AUTH_MAX_HASH_IDS   30	 /* idlist[0..29] */
#define AUTH_MAX_DH_IDS	    30	 /* idlist[30..59] */
#define AUTH_REASON_FAILED  0x01 /* Failure reason code: authentication failed */
#define AUTH_SC_C_NONE	    0x00 /* secure channel concatenation: none */

/* Failure reason code explanations */
enum auth_fail {
	AUTH_FAIL_NONE = 0x00,
	AUTH_FAIL_FAILED = 0x01,	    /* authentication failed */
	AUTH_FAIL_NOT_USABLE = 0x02,	    /* authentication protocol not usable */
	AUTH_FAIL_CONCAT_MISMATCH = 0x03,   /* secure channel concatenation mismatch */
	AUTH_FAIL_HASH_UNUSABLE = 0x04,	    /* hash function not usable */
	AUTH_FAIL_DHGROUP_UNUSABLE = 0x05,  /* DH group not usable */
	AUTH_FAIL_INCORRECT_PAYLOAD = 0x06, /* incorrect payload */
	AUTH_FAIL_INCORRECT_MESSAGE = 0x07, /* incorrect protocol message */
};

/* Every message starts with these four bytes plus T_ID. */
struct auth_hdr {
	uint8_t auth_type;
	uint8_t auth_id;
	uint8_t rsvd[2];
	uint8_t t_id[2];
};

struct auth_protocol_desc {
	uint8_t authid; /* AUTH_DHCHAP_AUTH_ID */
	uint8_t rsvd;
	uint8_t halen; /* hash ids in idlist[0..halen) */
	uint8_t dhlen; /* DH group ids in idlist[30..30+dhlen) */
	uint8_t idlist[60];
};

/* AUTH_Negotiate (host to controller), followed by napd protocol descriptors. */
struct auth_negotiate {
	uint8_t auth_type; /* AUTH_TYPE_COMMON */
	uint8_t auth_id;   /* AUTH_MSG_NEGOTIATE */
	uint8_t rsvd[2];
	uint8_t t_id[2];
	uint8_t sc_c;
	uint8_t napd;
	struct auth_protocol_desc desc[];
};

/* DH-HMAC-CHAP_Challenge (controller to host): hl bytes C1, then dhvlen bytes g^y mod p. */
struct auth_challenge {
	uint8_t auth_type; /* AUTH_TYPE_DHCHAP */
	uint8_t auth_id;   /* AUTH_MSG_CHALLENGE */
	uint8_t rsvd1[2];
	uint8_t t_id[2];
	uint8_t hl;
	uint8_t rsvd2;
	uint8_t hashid;
	uint8_t dhgid;
	uint8_t dhvlen[2];
	uint8_t seqnum[4];
	uint8_t cval[];
};

/* DH-HMAC-CHAP_Reply (host to controller): hl bytes response R1, hl bytes C2 (valid if
 * cvalid), then dhvlen bytes g^x mod p. */
struct auth_reply {
	uint8_t auth_type; /* AUTH_TYPE_DHCHAP */
	uint8_t auth_id;   /* AUTH_MSG_REPLY */
	uint8_t rsvd1[2];
	uint8_t t_id[2];
	uint8_t hl;
	uint8_t rsvd2;
	uint8_t cvalid;
	uint8_t rsvd3;
	uint8_t dhvlen[2];
	uint8_t seqnum[4]; /* S2; 0 = no controller authentication */
	uint8_t rval[];
};

/* DH-HMAC-CHAP_Success1 (controller to host): hl bytes response R2 (valid if rvalid). */
struct auth_success1 {
	uint8_t auth_type; /* AUTH_TYPE_DHCHAP */
	uint8_t auth_id;   /* AUTH_MSG_SUCCESS1 */
	uint8_t rsvd1[2];
	uint8_t t_id[2];
	uint8_t hl;
	uint8_t rsvd2;
	uint8_t rvalid;
	uint8_t rsvd3[7];
	uint8_t rval[];
};

/* DH-HMAC-CHAP_Success2 (host to controller, bidirectional only). */
struct auth_success2 {
	uint8_t auth_type; /* AUTH_TYPE_DHCHAP */
	uint8_t auth_id;   /* AUTH_MSG_SUCCESS2 */
	uint8_t rsvd1[2];
	uint8_t t_id[2];
	uint8_t rsvd2[10];
};

/* AUTH_Failure1 (controller to host) / AUTH_Failure2 (host to controller). */
struct auth_failure {
	uint8_t auth_type; /* AUTH_TYPE_COMMON */
	uint8_t auth_id;   /* AUTH_MSG_FAILURE1 / AUTH_MSG_FAILURE2 */
	uint8_t rsvd1[2];
	uint8_t t_id[2];
	uint8_t rescode;     /* AUTH_REASON_FAILED */
	uint8_t rescode_exp; /* enum auth_fail */
};

#define AUTH_WIRE_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " size")
#define AUTH_WIRE_OFFSET(type, field, off) \
	_Static_assert(offsetof(type, field) == (off), #type "." #field " offset")

AUTH_WIRE_SIZE(struct auth_hdr, 6);
AUTH_WIRE_SIZE(struct auth_protocol_desc, 64);
AUTH_WIRE_SIZE(struct auth_negotiate, 8);
AUTH_WIRE_OFFSET(struct auth_negotiate, t_id, 4);
AUTH_WIRE_OFFSET(struct auth_negotiate, napd, 7);
AUTH_WIRE_SIZE(struct auth_challenge, 16);
AUTH_WIRE_OFFSET(struct auth_challenge, hl, 6);
AUTH_WIRE_OFFSET(struct auth_challenge, hashid, 8);
AUTH_WIRE_OFFSET(struct auth_challenge, dhgid, 9);
AUTH_WIRE_OFFSET(struct auth_challenge, dhvlen, 10);
AUTH_WIRE_OFFSET(struct auth_challenge, seqnum, 12);
AUTH_WIRE_SIZE(struct auth_reply, 16);
AUTH_WIRE_OFFSET(struct auth_reply, cvalid, 8);
AUTH_WIRE_OFFSET(struct auth_reply, dhvlen, 10);
AUTH_WIRE_OFFSET(struct auth_reply, seqnum, 12);
AUTH_WIRE_SIZE(struct auth_success1, 16);
AUTH_WIRE_OFFSET(struct auth_success1, rvalid, 8);
AUTH_WIRE_SIZE(struct auth_success2, 16);
AUTH_WIRE_SIZE(struct auth_failure, 8);
AUTH_WIRE_OFFSET(struct auth_failure, rescode, 6);
AUTH_WIRE_OFFSET(struct auth_failure, rescode_exp, 7);

#endif
