/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Klipper's MCU protocol, as much as it takes to identify a board (Klipper
 * docs/Protocol.md, klippy/msgproto.py). A pure codec: no I/O, no logging.
 *
 * Message block: | len | seq | content ... | crc16 hi | crc16 lo | 0x7e |
 *   len   the whole block, 5..64 bytes
 *   seq   0x10 | (sequence & 0x0f)
 *   crc   CRC-16/MCRF4XX (Klipper's crc16_ccitt) over len, seq and the
 *         content, sent big-endian
 * Content: messages, each a command id (VLQ) and its parameters: integers
 * as VLQ, strings and buffers as a length byte and the bytes.
 *
 * Before the data dictionary is known two ids are fixed:
 *   1  identify offset=%u count=%c             (host -> MCU)
 *   0  identify_response offset=%u data=%.*s   (MCU -> host)
 * The dictionary is read in chunks until an empty one; it is a zlib stream
 * of JSON with version, build_versions, app, config (MCU, CLOCK_FREQ, ...).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KLIPPER_MSG_MIN         5u
#define KLIPPER_MSG_MAX         64u
#define KLIPPER_MSG_OVERHEAD    5u /* len, seq, crc (2), sync */
#define KLIPPER_MSG_CONTENT_MAX (KLIPPER_MSG_MAX - KLIPPER_MSG_OVERHEAD)
#define KLIPPER_MSG_SYNC        0x7eu
#define KLIPPER_MSG_DEST        0x10u
#define KLIPPER_MSG_SEQ_MASK    0x0fu

#define KLIPPER_MSGID_IDENTIFY_RESPONSE 0u
#define KLIPPER_MSGID_IDENTIFY          1u
/* What klippy asks for per identify command. */
#define KLIPPER_IDENTIFY_CHUNK 40u

/* CRC-16/MCRF4XX over `size` bytes from init 0xffff. */
uint16_t klipper_crc16(const void *data, size_t size);

/*
 * VLQ as msgproto.py's PT_uint32: 7 bits per byte, most significant group
 * first, bit 7 = more follows; the first byte's bits 5-6 both set mean a
 * negative number. Encode returns the bytes written (1..5) or -ENOBUFS.
 * Decode reads at *pos, advances it, returns 0 or -EBADMSG (truncated or
 * longer than 5 bytes).
 */
int klipper_vlq_encode(int64_t v, uint8_t *buf, size_t size);
/* The 32 bits as sent: cast to int32_t for signed parameters. */
int klipper_vlq_decode(const uint8_t *buf, size_t len, size_t *pos, uint32_t *ret);

/* Wrap `content` into a block with sequence `seq`. Returns the block length,
 * -EMSGSIZE when content exceeds KLIPPER_MSG_CONTENT_MAX, -ENOBUFS. */
int klipper_block_encode(uint8_t seq, const uint8_t *content, size_t size, uint8_t *buf, size_t buf_size);

/*
 * Look at the start of a receive buffer as msgproto.py's check_packet does:
 * > 0 a valid block of that length starts here, 0 more bytes are needed,
 * -EBADMSG no valid block starts here: drop klipper_block_resync() bytes.
 */
int klipper_block_check(const uint8_t *buf, size_t len);
/* Bytes to drop after a bad block: up to and including the next sync byte
 * (at least one byte), as the host's serialqueue resynchronises. */
size_t klipper_block_resync(const uint8_t *buf, size_t len);

/* A whole block with one identify command. */
int klipper_identify_encode(uint8_t seq, uint32_t offset, uint8_t count, uint8_t *buf, size_t buf_size);
/* A whole block with one identify_response (size <= KLIPPER_MSG_CONTENT_MAX - 7). */
int klipper_identify_response_encode(uint8_t seq, uint32_t offset, const uint8_t *data, size_t size,
                                     uint8_t *buf, size_t buf_size);

/*
 * The first message of a valid block's content (block without framing:
 * pass buf + 2, len - 5). Returns 0 with the message id; -EBADMSG when
 * malformed. For identify and identify_response the parameters are decoded
 * too (others: *ret_offset etc. untouched; unknown ids cannot be skipped
 * without a dictionary).
 */
typedef struct KlipperIdentifyMsg {
        uint32_t msgid;
        uint32_t offset;
        uint32_t count;      /* identify */
        const uint8_t *data; /* identify_response: points into the content */
        size_t size;
} KlipperIdentifyMsg;

int klipper_identify_msg_decode(const uint8_t *content, size_t size, KlipperIdentifyMsg *ret);

/* What the data dictionary says about the firmware (every field may be NULL / 0). */
typedef struct KlipperDictInfo {
        char *app;            /* "Klipper" */
        char *version;        /* git describe of the tree it was built from */
        char *build_versions; /* "gcc: ... binutils: ..." */
        char *mcu;            /* config.MCU: "stm32f446xx" */
        uint64_t clock_freq;  /* config.CLOCK_FREQ */
} KlipperDictInfo;

void klipper_dict_info_clear(KlipperDictInfo *info);
/* From the dictionary's JSON text: -EBADMSG when it is no JSON object. */
int klipper_dict_info_from_json(const char *json, size_t len, KlipperDictInfo *ret);
/* From the assembled identify data (a zlib stream of the JSON): -EBADMSG
 * when it does not inflate to a JSON object, -EFBIG above
 * KLIPPER_DICT_MAX_SIZE. *ret_json (optional) gets the JSON text. */
int klipper_dict_info_from_zlib(const uint8_t *data, size_t len, KlipperDictInfo *ret, char **ret_json);
