/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "codec/stk500v2-proto.h"

uint8_t stk500v2_checksum(const void *data, size_t len)
{
        const uint8_t *p = data;
        uint8_t sum = 0;

        for (size_t i = 0; i < len; i++)
                sum ^= p[i];
        return sum;
}

int stk500v2_encode(uint8_t seq, const void *body, size_t body_len, uint8_t *buf, size_t buf_size)
{
        if (!body || body_len == 0 || body_len > STK500V2_BODY_MAX)
                return -EINVAL;
        if (buf_size < body_len + STK500V2_OVERHEAD)
                return -ENOBUFS;

        buf[0] = STK500V2_MESSAGE_START;
        buf[1] = seq;
        buf[2] = (uint8_t)(body_len >> 8);
        buf[3] = (uint8_t)body_len;
        buf[4] = STK500V2_TOKEN;
        memcpy(buf + 5, body, body_len);
        buf[5 + body_len] = stk500v2_checksum(buf, 5 + body_len);
        return (int)(body_len + STK500V2_OVERHEAD);
}

int stk500v2_body_sign_on(uint8_t *buf)
{
        buf[0] = STK500V2_CMD_SIGN_ON;
        return 1;
}

int stk500v2_body_enter_progmode(uint8_t *buf)
{
        /* AVR068 §6.1 parameters as avrdude sends them for the m2560
         * (timeout, stabDelay, cmdexeDelay, synchLoops, byteDelay,
         * pollValue, pollIndex, the 4-byte Programming Enable
         * instruction); bootloaders ignore them. */
        static const uint8_t body[] = {
                STK500V2_CMD_ENTER_PROGMODE_ISP, 200, 100, 25, 32, 0, 0x53, 3, 0xAC, 0x53, 0x00, 0x00
        };
        memcpy(buf, body, sizeof(body));
        return (int)sizeof(body);
}

int stk500v2_body_leave_progmode(uint8_t *buf)
{
        buf[0] = STK500V2_CMD_LEAVE_PROGMODE_ISP;
        buf[1] = 1; /* preDelay ms */
        buf[2] = 1; /* postDelay ms */
        return 3;
}

int stk500v2_body_load_address(uint8_t *buf, uint32_t byte_address, bool extended)
{
        uint32_t word;

        if (byte_address & 1u)
                return -EINVAL;
        word = byte_address >> 1;
        if (extended)
                word |= STK500V2_ADDRESS_EXTENDED;
        buf[0] = STK500V2_CMD_LOAD_ADDRESS;
        buf[1] = (uint8_t)(word >> 24);
        buf[2] = (uint8_t)(word >> 16);
        buf[3] = (uint8_t)(word >> 8);
        buf[4] = (uint8_t)word;
        return 5;
}

int stk500v2_body_program_flash(uint8_t *buf, const void *data, size_t len)
{
        if (!data || len == 0 || len > STK500V2_PAGE_MAX || (len & 1u))
                return -EINVAL;
        buf[0] = STK500V2_CMD_PROGRAM_FLASH_ISP;
        buf[1] = (uint8_t)(len >> 8);
        buf[2] = (uint8_t)len;
        /* AVR068 §6.4: page mode with write-page and the ISP instructions
         * (load page low, write page, read low); the bootloader writes by
         * its own SPM and ignores them */
        buf[3] = 0xC1;
        buf[4] = 10;
        buf[5] = 0x40;
        buf[6] = 0x4C;
        buf[7] = 0x20;
        buf[8] = 0x00;
        buf[9] = 0x00;
        memcpy(buf + STK500V2_PROGRAM_HEADER, data, len);
        return (int)(len + STK500V2_PROGRAM_HEADER);
}

int stk500v2_body_read_flash(uint8_t *buf, size_t len)
{
        if (len == 0 || len > STK500V2_PAGE_MAX || (len & 1u))
                return -EINVAL;
        buf[0] = STK500V2_CMD_READ_FLASH_ISP;
        buf[1] = (uint8_t)(len >> 8);
        buf[2] = (uint8_t)len;
        buf[3] = 0x20; /* read program memory, low byte */
        return 4;
}

int stk500v2_body_read_signature(uint8_t *buf, unsigned index)
{
        if (index > 2)
                return -EINVAL;
        /* pollIndex 4, then the ISP "read signature byte" instruction
         * 0x30 0x00 <index> 0x00 */
        buf[0] = STK500V2_CMD_READ_SIGNATURE_ISP;
        buf[1] = 4;
        buf[2] = 0x30;
        buf[3] = 0x00;
        buf[4] = (uint8_t)index;
        buf[5] = 0x00;
        return 6;
}

void stk500v2_decoder_init(Stk500v2Decoder *d)
{
        memset(d, 0, sizeof(*d));
        d->state = STK500V2_WAIT_START;
}

int stk500v2_decoder_push(Stk500v2Decoder *d, uint8_t byte, Stk500v2Message *ret)
{
        switch (d->state) {
        case STK500V2_WAIT_START:
                if (byte != STK500V2_MESSAGE_START) {
                        d->n_skipped++;
                        return 0;
                }
                d->sum = byte;
                d->state = STK500V2_WAIT_SEQ;
                return 0;
        case STK500V2_WAIT_SEQ:
                d->seq = byte;
                d->sum ^= byte;
                d->state = STK500V2_WAIT_SIZE_HI;
                return 0;
        case STK500V2_WAIT_SIZE_HI:
                d->size = (uint16_t)(byte << 8);
                d->sum ^= byte;
                d->state = STK500V2_WAIT_SIZE_LO;
                return 0;
        case STK500V2_WAIT_SIZE_LO:
                d->size |= byte;
                d->sum ^= byte;
                if (d->size == 0 || d->size > STK500V2_BODY_MAX) {
                        d->n_bad_frame++;
                        d->state = STK500V2_WAIT_START;
                        return 0;
                }
                d->state = STK500V2_WAIT_TOKEN;
                return 0;
        case STK500V2_WAIT_TOKEN:
                if (byte != STK500V2_TOKEN) {
                        d->n_bad_frame++;
                        d->state = STK500V2_WAIT_START;
                        return 0;
                }
                d->sum ^= byte;
                d->have = 0;
                d->state = STK500V2_WAIT_BODY;
                return 0;
        case STK500V2_WAIT_BODY:
                d->body[d->have++] = byte;
                d->sum ^= byte;
                if (d->have == d->size)
                        d->state = STK500V2_WAIT_CHECKSUM;
                return 0;
        case STK500V2_WAIT_CHECKSUM:
                d->state = STK500V2_WAIT_START;
                if (byte != d->sum) {
                        d->n_bad_checksum++;
                        return 0;
                }
                d->n_messages++;
                if (ret)
                        *ret = (Stk500v2Message){ .seq = d->seq, .body = d->body, .len = d->size };
                return 1;
        case _STK500V2_DECODER_STATE_MAX:
                break;
        }
        d->state = STK500V2_WAIT_START;
        return 0;
}

int stk500v2_reply_check(const Stk500v2Message *m, uint8_t cmd, size_t min_len, uint8_t *ret_status)
{
        if (m->len < 2 || m->body[0] != cmd)
                return -EPROTO;
        if (m->body[1] != STK500V2_STATUS_CMD_OK) {
                if (ret_status)
                        *ret_status = m->body[1];
                return -EIO;
        }
        if (m->len < min_len)
                return -EPROTO;
        return 0;
}

int stk500v2_sign_on_parse(const Stk500v2Message *m, char *buf, size_t buf_size)
{
        size_t n;
        int r;

        /* cmd, status, name length, name */
        r = stk500v2_reply_check(m, STK500V2_CMD_SIGN_ON, 3, NULL);
        if (r < 0)
                return r;
        n = m->body[2];
        if (n == 0 || 3 + n > m->len || n >= buf_size)
                return -EPROTO;
        for (size_t i = 0; i < n; i++)
                if (m->body[3 + i] < 0x20 || m->body[3 + i] > 0x7e)
                        return -EPROTO;
        memcpy(buf, m->body + 3, n);
        buf[n] = 0;
        return 0;
}

int stk500v2_signature_parse(const Stk500v2Message *m, uint8_t *ret)
{
        int r;

        /* cmd, status, byte, status */
        r = stk500v2_reply_check(m, STK500V2_CMD_READ_SIGNATURE_ISP, 4, NULL);
        if (r < 0)
                return r;
        if (m->body[3] != STK500V2_STATUS_CMD_OK)
                return -EIO;
        *ret = m->body[2];
        return 0;
}

int stk500v2_read_flash_parse(const Stk500v2Message *m, size_t len, const uint8_t **ret_data)
{
        int r;

        /* cmd, status, data, status */
        r = stk500v2_reply_check(m, STK500V2_CMD_READ_FLASH_ISP, len + 3, NULL);
        if (r < 0)
                return r;
        if (m->len != len + 3)
                return -EPROTO;
        if (m->body[len + 2] != STK500V2_STATUS_CMD_OK)
                return -EIO;
        *ret_data = m->body + 2;
        return 0;
}
