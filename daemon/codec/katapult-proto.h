/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Katapult bootloader wire protocol (Arksine/katapult protocol.md):
 *
 *   01 88 | cmd | len_words | payload (len_words * 4 bytes) | crc16 LE | 99 03
 *
 * CRC-16/MCRF4XX (Klipper's "crc16_ccitt": poly 0x1021 reflected, init
 * 0xFFFF, no final xor) over cmd, len_words and payload. Integers in the
 * payload are little endian. A pure codec: no I/O, no logging. Used by the
 * host session (daemon/serial/katapult-session.c) and by the virtual board's
 * bootloader model (tests/vboard/katapult-model.c).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
        KATAPULT_CMD_CONNECT = 0x11,
        KATAPULT_CMD_SEND_BLOCK = 0x12,
        KATAPULT_CMD_EOF = 0x13,
        KATAPULT_CMD_REQUEST_BLOCK = 0x14,
        KATAPULT_CMD_COMPLETE = 0x15,
        KATAPULT_CMD_GET_CANBUS_ID = 0x16,

        KATAPULT_REPLY_ACK = 0xa0,
        KATAPULT_REPLY_NACK = 0xf1,  /* frame not understood (CRC, sync): resend */
        KATAPULT_REPLY_ERROR = 0xf2, /* command failed or unknown */
        KATAPULT_REPLY_BUSY = 0xf3,  /* try again later */
};

#define KATAPULT_HEADER_0  0x01
#define KATAPULT_HEADER_1  0x88
#define KATAPULT_TRAILER_0 0x99
#define KATAPULT_TRAILER_1 0x03
/* header (2) + cmd + len + crc (2) + trailer (2) */
#define KATAPULT_FRAME_OVERHEAD 8u
/* len_words is one byte */
#define KATAPULT_PAYLOAD_MAX (255u * 4u)
#define KATAPULT_FRAME_MAX   (KATAPULT_FRAME_OVERHEAD + KATAPULT_PAYLOAD_MAX)
/* Block sizes the protocol allows (flashtool.py refuses others). */
#define KATAPULT_BLOCK_SIZE_MIN 64u
#define KATAPULT_BLOCK_SIZE_MAX 512u
/* The protocol version that added the software version after the MCU. */
#define KATAPULT_PROTO_1_1_0 0x00010100u

/* CRC-16/MCRF4XX; pass 0xffff as `crc` to start, or a previous result to continue. */
uint16_t katapult_crc16(uint16_t crc, const void *data, size_t size);
#define KATAPULT_CRC16_INIT 0xffffu

bool katapult_block_size_valid(uint32_t block_size);
const char *katapult_command_to_string(uint8_t cmd);

/*
 * Encode one frame into `buf` (at least KATAPULT_FRAME_OVERHEAD + size bytes).
 * Returns the frame length, -EINVAL when `size` is not a multiple of 4 or
 * exceeds KATAPULT_PAYLOAD_MAX, -ENOBUFS when `buf_size` is too small.
 */
int katapult_frame_encode(uint8_t cmd, const void *payload, size_t size, void *buf, size_t buf_size);

/* Encode an ACK reply: payload = acked command (u32 LE) followed by `data`. */
int katapult_ack_encode(uint8_t acked_cmd, const void *data, size_t size, void *buf, size_t buf_size);

typedef struct KatapultFrame {
        uint8_t cmd;            /* command or reply code */
        const uint8_t *payload; /* points into the decoder; valid until its next call */
        size_t size;            /* bytes, a multiple of 4 */
} KatapultFrame;

/*
 * Incremental decoder with resynchronisation: garbage before a header is
 * skipped; a candidate frame whose trailer or CRC does not match is dropped
 * by one byte only and the scan goes on, so a real frame that starts inside
 * the broken one is still found. A candidate that is still incomplete
 * (e.g. a stray 01 88 whose "length" swallows what follows) is given up as
 * soon as a complete valid frame sits after it in the buffer. The price: a
 * payload that itself contains a complete valid frame, delivered in pieces,
 * can be mis-framed; the session then resends (replies are idempotent).
 */
typedef struct KatapultDecoder {
        uint8_t buf[2 * KATAPULT_FRAME_MAX];
        size_t len;
        size_t consumed; /* bytes of the frame last returned, dropped on the next call */
        uint64_t n_frames;
        uint64_t n_skipped; /* bytes dropped while searching for a header */
        uint64_t n_bad;     /* candidates dropped for a bad trailer or CRC */
} KatapultDecoder;

void katapult_decoder_init(KatapultDecoder *d);
/* Drop everything buffered (e.g. before resending a command). */
void katapult_decoder_reset(KatapultDecoder *d);
/* Take up to `size` bytes; returns how many were taken (less when full: call _next()). */
size_t katapult_decoder_feed(KatapultDecoder *d, const void *data, size_t size);
/* 1 and a frame, or 0 when more input is needed. */
int katapult_decoder_next(KatapultDecoder *d, KatapultFrame *ret);

static inline uint32_t katapult_get_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void katapult_put_le32(uint8_t *p, uint32_t v)
{
        p[0] = v & 0xff;
        p[1] = (v >> 8) & 0xff;
        p[2] = (v >> 16) & 0xff;
        p[3] = (v >> 24) & 0xff;
}

/*
 * Check that `f` is an ACK of `cmd`; on success return the data after the
 * echoed command word. Returns -EAGAIN for NACK and BUSY (resend),
 * -EREMOTEIO for ERROR, -EBADMSG for an ACK of another command or a
 * payload shorter than one word, -EPROTO for any other reply code.
 */
int katapult_ack_parse(const KatapultFrame *f, uint8_t cmd, const uint8_t **ret_data, size_t *ret_size);

#define KATAPULT_MCU_MAX     64
#define KATAPULT_VERSION_MAX 96

typedef struct KatapultConnectInfo {
        uint32_t proto_version; /* 0x00MMmmpp: 0x00010100 = 1.1.0 */
        uint32_t start_address; /* application start */
        uint32_t block_size;
        char mcu[KATAPULT_MCU_MAX];                  /* "stm32f446xx" */
        char software_version[KATAPULT_VERSION_MAX]; /* "" before protocol 1.1.0 */
} KatapultConnectInfo;

/*
 * Parse the ACK of CONNECT: proto version, start address, block size (u32 LE
 * each), then the MCU string padded with NULs, and since protocol 1.1.0 a NUL
 * word and the software version (Katapult src/flashcmd.c command_connect).
 * Returns -EBADMSG for a short payload, -ERANGE for a block size outside
 * 64..512 or not a power of two, -EILSEQ for a MCU string with control bytes,
 * or katapult_ack_parse()'s errors.
 */
int katapult_connect_parse(const KatapultFrame *f, KatapultConnectInfo *ret);

/* Encode the CONNECT ACK payload (the model's side); returns length or -ENOBUFS. */
int katapult_connect_encode(const KatapultConnectInfo *info, void *buf, size_t buf_size);

/* "1.1.0" into buf (at least 12 bytes). */
const char *katapult_proto_version_format(uint32_t v, char *buf, size_t size);
