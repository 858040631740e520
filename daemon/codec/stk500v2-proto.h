/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * STK500v2 (Atmel AVR068) message framing and the commands the Arduino
 * Mega's bootloader (stk500boot) answers. Pure: no I/O, no logging.
 *
 * Message (AVR068 §3): MESSAGE_START 0x1B, sequence number, body size
 * (2 bytes, big-endian), TOKEN 0x0E, body, checksum = XOR of every byte
 * before it. The first body byte is the command id; an answer repeats it
 * and carries a status byte next (STATUS_CMD_OK 0x00).
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STK500V2_MESSAGE_START 0x1Bu
#define STK500V2_TOKEN         0x0Eu
#define STK500V2_OVERHEAD      6u /* start, seq, size x2, token, checksum */
/* stk500boot's receive buffer is 285 bytes: a 256-byte page plus the
 * 10-byte PROGRAM_FLASH_ISP header fits; more is refused. */
#define STK500V2_BODY_MAX       275u
#define STK500V2_MSG_MAX        (STK500V2_BODY_MAX + STK500V2_OVERHEAD)
#define STK500V2_PAGE_MAX       256u
#define STK500V2_PROGRAM_HEADER 10u

enum {
        STK500V2_CMD_SIGN_ON = 0x01,
        STK500V2_CMD_LOAD_ADDRESS = 0x06,
        STK500V2_CMD_ENTER_PROGMODE_ISP = 0x10,
        STK500V2_CMD_LEAVE_PROGMODE_ISP = 0x11,
        STK500V2_CMD_CHIP_ERASE_ISP = 0x12,
        STK500V2_CMD_PROGRAM_FLASH_ISP = 0x13,
        STK500V2_CMD_READ_FLASH_ISP = 0x14,
        STK500V2_CMD_READ_SIGNATURE_ISP = 0x1B,
};

enum {
        STK500V2_STATUS_CMD_OK = 0x00,
        STK500V2_STATUS_CMD_FAILED = 0xC0,
        STK500V2_STATUS_CKSUM_ERROR = 0xC1,
        STK500V2_STATUS_CMD_UNKNOWN = 0xC9,
};

/* LOAD_ADDRESS bit 31: the address is a word address beyond 64 Ki words
 * (AVR068; avrdude sets it for parts with more than 128 KiB of flash). */
#define STK500V2_ADDRESS_EXTENDED 0x80000000u

uint8_t stk500v2_checksum(const void *data, size_t len);

/* A whole message around `body`: its length, or -EINVAL (empty or larger
 * than STK500V2_BODY_MAX), -ENOBUFS (buf too small). */
int stk500v2_encode(uint8_t seq, const void *body, size_t body_len, uint8_t *buf, size_t buf_size);

/* Bodies of the commands (buf at least STK500V2_BODY_MAX): their length,
 * or -EINVAL. */
int stk500v2_body_sign_on(uint8_t *buf);
int stk500v2_body_enter_progmode(uint8_t *buf);
int stk500v2_body_leave_progmode(uint8_t *buf);
/* byte_address must be even; extended sets bit 31 (parts > 128 KiB). */
int stk500v2_body_load_address(uint8_t *buf, uint32_t byte_address, bool extended);
/* One page (2..256 bytes, even). */
int stk500v2_body_program_flash(uint8_t *buf, const void *data, size_t len);
int stk500v2_body_read_flash(uint8_t *buf, size_t len);
int stk500v2_body_read_signature(uint8_t *buf, unsigned index);

/* One decoded message; the body points into the decoder. */
typedef struct Stk500v2Message {
        uint8_t seq;
        const uint8_t *body;
        size_t len;
} Stk500v2Message;

typedef enum Stk500v2DecoderState {
        STK500V2_WAIT_START,
        STK500V2_WAIT_SEQ,
        STK500V2_WAIT_SIZE_HI,
        STK500V2_WAIT_SIZE_LO,
        STK500V2_WAIT_TOKEN,
        STK500V2_WAIT_BODY,
        STK500V2_WAIT_CHECKSUM,
        _STK500V2_DECODER_STATE_MAX,
} Stk500v2DecoderState;

typedef struct Stk500v2Decoder {
        Stk500v2DecoderState state;
        uint8_t seq;
        uint16_t size;
        uint16_t have;
        uint8_t sum;
        uint8_t body[STK500V2_BODY_MAX];
        /* observation */
        uint64_t n_messages, n_bad_checksum, n_bad_frame, n_skipped;
} Stk500v2Decoder;

void stk500v2_decoder_init(Stk500v2Decoder *d);
/*
 * One byte off the line. Returns 1 when it completed a message with a
 * good checksum (*ret valid until the next push), 0 otherwise. Bytes
 * outside a frame, bad sizes and bad checksums are counted and dropped;
 * the decoder then waits for the next MESSAGE_START.
 */
int stk500v2_decoder_push(Stk500v2Decoder *d, uint8_t byte, Stk500v2Message *ret);

/*
 * Check an answer to `cmd`: 0 when it echoes cmd with STATUS_CMD_OK and
 * has at least min_len bytes; -EPROTO for another command or too short,
 * -EIO for a failed status (*ret_status, optional, gets it).
 */
int stk500v2_reply_check(const Stk500v2Message *m, uint8_t cmd, size_t min_len, uint8_t *ret_status);
/* SIGN_ON: the programmer's name ("AVRISP_2"), NUL-terminated, into buf. */
int stk500v2_sign_on_parse(const Stk500v2Message *m, char *buf, size_t buf_size);
/* READ_SIGNATURE_ISP: one signature byte. */
int stk500v2_signature_parse(const Stk500v2Message *m, uint8_t *ret);
/* READ_FLASH_ISP of `len` bytes: the data (points into the message). */
int stk500v2_read_flash_parse(const Stk500v2Message *m, size_t len, const uint8_t **ret_data);
