/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * STK500v1 (Atmel AVR061) as optiboot answers it (`avrdude -c arduino`).
 * Pure: no I/O, no logging.
 *
 * A command is its id, its arguments and CRC_EOP 0x20; the answer is
 * STK_INSYNC 0x14, the command's data, STK_OK 0x10. A command without
 * CRC_EOP where expected gets STK_NOSYNC 0x15.
 */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

enum {
        STK500V1_CRC_EOP = 0x20,
        STK500V1_INSYNC = 0x14,
        STK500V1_NOSYNC = 0x15,
        STK500V1_OK = 0x10,
        STK500V1_FAILED = 0x11,

        STK500V1_GET_SYNC = 0x30,
        STK500V1_ENTER_PROGMODE = 0x50,
        STK500V1_LEAVE_PROGMODE = 0x51,
        STK500V1_LOAD_ADDRESS = 0x55,
        STK500V1_PROG_PAGE = 0x64,
        STK500V1_READ_PAGE = 0x74,
        STK500V1_READ_SIGN = 0x75,
};

#define STK500V1_PAGE_MAX 256u
#define STK500V1_CMD_MAX  (STK500V1_PAGE_MAX + 5u)

/* Commands into buf (at least STK500V1_CMD_MAX): their length or -EINVAL. */
int stk500v1_cmd_get_sync(uint8_t *buf);
int stk500v1_cmd_enter_progmode(uint8_t *buf);
int stk500v1_cmd_leave_progmode(uint8_t *buf);
/* Little-endian word address (AVR061): byte_address must be even and
 * below 128 KiB. */
int stk500v1_cmd_load_address(uint8_t *buf, uint32_t byte_address);
/* One flash page ('F'), 1..256 bytes. */
int stk500v1_cmd_prog_page(uint8_t *buf, const void *data, size_t len);
int stk500v1_cmd_read_page(uint8_t *buf, size_t len);
int stk500v1_cmd_read_sign(uint8_t *buf);

/* The answer to one command, byte by byte. */
typedef struct Stk500v1Reply {
        size_t expect; /* data bytes between INSYNC and OK */
        size_t have;
        int state; /* 0 wait INSYNC, 1 data, 2 wait OK, 3 done, < 0 error */
        uint8_t data[STK500V1_PAGE_MAX];
} Stk500v1Reply;

/* expect <= STK500V1_PAGE_MAX, else -EINVAL. */
int stk500v1_reply_init(Stk500v1Reply *r, size_t expect);
/*
 * Returns 1 when the answer is complete and good (r->data holds `expect`
 * bytes), 0 when more is needed, -EPROTO for NOSYNC or any other byte
 * where INSYNC belongs, -EIO for STK_FAILED or anything else where OK
 * belongs. Once complete or failed, further bytes give the same result.
 */
int stk500v1_reply_push(Stk500v1Reply *r, uint8_t byte);
