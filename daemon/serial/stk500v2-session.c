/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The STK500v2 side of avr-session.c, as the Arduino Mega's stk500boot
 * answers it (AVR068 framing, stk500v2-proto.c). Every command carries the
 * next sequence number; an answer with another number (a late answer to
 * an earlier try) is dropped.
 */
#include <errno.h>
#include <string.h>

#include "serial/avr-session-internal.h"

typedef struct Wait {
        uint8_t seq;
        Stk500v2Message msg;
} Wait;

static int on_byte(AvrSession *s, uint8_t byte, void *userdata)
{
        Wait *w = userdata;
        Stk500v2Message m;

        if (stk500v2_decoder_push(&s->v2, byte, &m) <= 0)
                return 0;
        if (m.seq != w->seq)
                return 0;
        w->msg = m;
        return 1;
}

/* Send one body and wait for the answer with the same sequence number. */
static int transact(AvrSession *s, const uint8_t *body, size_t len, uint64_t timeout_usec,
                    Stk500v2Message *ret)
{
        uint8_t msg[STK500V2_MSG_MAX];
        Wait w = { .seq = s->seq };
        int n, r;

        n = stk500v2_encode(s->seq, body, len, msg, sizeof(msg));
        if (n < 0)
                return n;
        s->seq++;
        r = serial_transport_write(s->transport, msg, (size_t)n, timeout_usec);
        if (r < 0)
                return r;
        r = avr_session_receive(s, timeout_usec, on_byte, &w);
        if (r < 0)
                return r;
        *ret = w.msg;
        return 0;
}

static void v2_begin(AvrSession *s)
{
        stk500v2_decoder_init(&s->v2);
        s->seq = 1;
}

static int v2_sync(AvrSession *s, uint64_t timeout_usec)
{
        Stk500v2Message m;
        int r;

        r = transact(s, (const uint8_t[]){ STK500V2_CMD_SIGN_ON }, 1, timeout_usec, &m);
        if (r < 0)
                return r;
        return stk500v2_sign_on_parse(&m, s->stats.programmer, sizeof(s->stats.programmer));
}

static int v2_signature(AvrSession *s, uint8_t ret[3])
{
        uint8_t body[STK500V2_BODY_MAX];
        Stk500v2Message m;
        int n, r;

        for (unsigned i = 0; i < 3; i++) {
                n = stk500v2_body_read_signature(body, i);
                if (n < 0)
                        return n;
                r = transact(s, body, (size_t)n, s->timeouts.reply_usec, &m);
                if (r < 0)
                        return r;
                r = stk500v2_signature_parse(&m, &ret[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load_address(AvrSession *s, uint32_t address)
{
        uint8_t body[STK500V2_BODY_MAX];
        Stk500v2Message m;
        int n, r;

        /* bit 31 on parts with more than 64 Ki words, as avrdude does */
        n = stk500v2_body_load_address(body, address, s->opts.chip.flash_size > 128u * 1024u);
        if (n < 0)
                return n;
        r = transact(s, body, (size_t)n, s->timeouts.reply_usec, &m);
        if (r < 0)
                return r;
        return stk500v2_reply_check(&m, STK500V2_CMD_LOAD_ADDRESS, 2, NULL);
}

static int v2_read_flash(AvrSession *s, uint8_t *buf, size_t len)
{
        uint8_t body[STK500V2_BODY_MAX];
        Stk500v2Message m;
        const uint8_t *data;
        int n, r;

        n = stk500v2_body_read_flash(body, len);
        if (n < 0)
                return n;
        r = transact(s, body, (size_t)n, s->timeouts.reply_usec, &m);
        if (r < 0)
                return r;
        r = stk500v2_read_flash_parse(&m, len, &data);
        if (r < 0)
                return r;
        memcpy(buf, data, len);
        return 0;
}

static int v2_program_flash(AvrSession *s, const uint8_t *data, size_t len)
{
        uint8_t body[STK500V2_BODY_MAX];
        Stk500v2Message m;
        int n, r;

        n = stk500v2_body_program_flash(body, data, len);
        if (n < 0)
                return n;
        r = transact(s, body, (size_t)n, s->timeouts.reply_usec, &m);
        if (r < 0)
                return r;
        return stk500v2_reply_check(&m, STK500V2_CMD_PROGRAM_FLASH_ISP, 2, NULL);
}

static int v2_leave(AvrSession *s)
{
        uint8_t body[STK500V2_BODY_MAX];
        Stk500v2Message m;
        int n, r;

        n = stk500v2_body_leave_progmode(body);
        r = transact(s, body, (size_t)n, s->timeouts.reply_usec, &m);
        if (r < 0)
                return r;
        return stk500v2_reply_check(&m, STK500V2_CMD_LEAVE_PROGMODE_ISP, 2, NULL);
}

const AvrProtocolOps stk500v2_session_ops = {
        .erase = AVR_ERASE_SEQUENTIAL,
        .begin = v2_begin,
        .sync = v2_sync,
        .signature = v2_signature,
        .load_address = load_address,
        .read_flash = v2_read_flash,
        .program_flash = v2_program_flash,
        .leave = v2_leave,
};
