/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "codec/stk500v1-proto.h"

int stk500v1_cmd_get_sync(uint8_t *buf)
{
        buf[0] = STK500V1_GET_SYNC;
        buf[1] = STK500V1_CRC_EOP;
        return 2;
}

int stk500v1_cmd_enter_progmode(uint8_t *buf)
{
        buf[0] = STK500V1_ENTER_PROGMODE;
        buf[1] = STK500V1_CRC_EOP;
        return 2;
}

int stk500v1_cmd_leave_progmode(uint8_t *buf)
{
        buf[0] = STK500V1_LEAVE_PROGMODE;
        buf[1] = STK500V1_CRC_EOP;
        return 2;
}

int stk500v1_cmd_load_address(uint8_t *buf, uint32_t byte_address)
{
        uint32_t word = byte_address >> 1;

        if ((byte_address & 1u) || word > 0xffffu)
                return -EINVAL;
        buf[0] = STK500V1_LOAD_ADDRESS;
        buf[1] = (uint8_t)word;
        buf[2] = (uint8_t)(word >> 8);
        buf[3] = STK500V1_CRC_EOP;
        return 4;
}

int stk500v1_cmd_prog_page(uint8_t *buf, const void *data, size_t len)
{
        if (!data || len == 0 || len > STK500V1_PAGE_MAX)
                return -EINVAL;
        buf[0] = STK500V1_PROG_PAGE;
        buf[1] = (uint8_t)(len >> 8);
        buf[2] = (uint8_t)len;
        buf[3] = 'F';
        memcpy(buf + 4, data, len);
        buf[4 + len] = STK500V1_CRC_EOP;
        return (int)len + 5;
}

int stk500v1_cmd_read_page(uint8_t *buf, size_t len)
{
        if (len == 0 || len > STK500V1_PAGE_MAX)
                return -EINVAL;
        buf[0] = STK500V1_READ_PAGE;
        buf[1] = (uint8_t)(len >> 8);
        buf[2] = (uint8_t)len;
        buf[3] = 'F';
        buf[4] = STK500V1_CRC_EOP;
        return 5;
}

int stk500v1_cmd_read_sign(uint8_t *buf)
{
        buf[0] = STK500V1_READ_SIGN;
        buf[1] = STK500V1_CRC_EOP;
        return 2;
}

int stk500v1_reply_init(Stk500v1Reply *r, size_t expect)
{
        if (expect > STK500V1_PAGE_MAX)
                return -EINVAL;
        memset(r, 0, sizeof(*r));
        r->expect = expect;
        return 0;
}

int stk500v1_reply_push(Stk500v1Reply *r, uint8_t byte)
{
        switch (r->state) {
        case 0:
                if (byte != STK500V1_INSYNC) {
                        r->state = -EPROTO;
                        return r->state;
                }
                r->state = r->expect > 0 ? 1 : 2;
                return 0;
        case 1:
                r->data[r->have++] = byte;
                if (r->have == r->expect)
                        r->state = 2;
                return 0;
        case 2:
                r->state = byte == STK500V1_OK ? 3 : -EIO;
                return r->state == 3 ? 1 : r->state;
        case 3:
                return 1;
        default:
                return r->state;
        }
}
