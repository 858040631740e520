/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The STK500v1 side of avr-session.c, as optiboot answers it
 * (stk500v1-proto.c). optiboot erases the page it writes, so unchanged
 * pages may be skipped. It gives up (watchdog reset into the application)
 * on a command without CRC_EOP, so nothing but whole commands is sent.
 */
#include <errno.h>
#include <string.h>

#include "codec/stk500v1-proto.h"
#include "serial/avr-session-internal.h"

static int on_byte(AvrSession *s, uint8_t byte, void *userdata)
{
        Stk500v1Reply *r = userdata;
        return stk500v1_reply_push(r, byte);
}

static int transact(AvrSession *s, const uint8_t *cmd, size_t len, size_t expect, uint64_t timeout_usec,
                    Stk500v1Reply *reply)
{
        int r;

        r = stk500v1_reply_init(reply, expect);
        if (r < 0)
                return r;
        r = serial_transport_write(s->transport, cmd, len, timeout_usec);
        if (r < 0)
                return r;
        return avr_session_receive(s, timeout_usec, on_byte, reply);
}

static void v1_begin(AvrSession *s)
{
}

static int v1_sync(AvrSession *s, uint64_t timeout_usec)
{
        uint8_t cmd[STK500V1_CMD_MAX];
        Stk500v1Reply reply;
        int n = stk500v1_cmd_get_sync(cmd);

        return transact(s, cmd, (size_t)n, 0, timeout_usec, &reply);
}

static int v1_signature(AvrSession *s, uint8_t ret[3])
{
        uint8_t cmd[STK500V1_CMD_MAX];
        Stk500v1Reply reply;
        int n = stk500v1_cmd_read_sign(cmd), r;

        r = transact(s, cmd, (size_t)n, 3, s->timeouts.reply_usec, &reply);
        if (r < 0)
                return r;
        memcpy(ret, reply.data, 3);
        return 0;
}

static int load_address(AvrSession *s, uint32_t address)
{
        uint8_t cmd[STK500V1_CMD_MAX];
        Stk500v1Reply reply;
        int n = stk500v1_cmd_load_address(cmd, address);

        if (n < 0)
                return n;
        return transact(s, cmd, (size_t)n, 0, s->timeouts.reply_usec, &reply);
}

static int v1_read_flash(AvrSession *s, uint8_t *buf, size_t len)
{
        uint8_t cmd[STK500V1_CMD_MAX];
        Stk500v1Reply reply;
        int n, r;

        n = stk500v1_cmd_read_page(cmd, len);
        if (n < 0)
                return n;
        r = transact(s, cmd, (size_t)n, len, s->timeouts.reply_usec, &reply);
        if (r < 0)
                return r;
        memcpy(buf, reply.data, len);
        return 0;
}

static int v1_program_flash(AvrSession *s, const uint8_t *data, size_t len)
{
        uint8_t cmd[STK500V1_CMD_MAX];
        Stk500v1Reply reply;
        int n;

        n = stk500v1_cmd_prog_page(cmd, data, len);
        if (n < 0)
                return n;
        return transact(s, cmd, (size_t)n, 0, s->timeouts.reply_usec, &reply);
}

static int v1_leave(AvrSession *s)
{
        uint8_t cmd[STK500V1_CMD_MAX];
        Stk500v1Reply reply;
        int n = stk500v1_cmd_leave_progmode(cmd);

        return transact(s, cmd, (size_t)n, 0, s->timeouts.reply_usec, &reply);
}

const AvrProtocolOps stk500v1_session_ops = {
        .erase = AVR_ERASE_PAGE,
        .begin = v1_begin,
        .sync = v1_sync,
        .signature = v1_signature,
        .load_address = load_address,
        .read_flash = v1_read_flash,
        .program_flash = v1_program_flash,
        .leave = v1_leave,
};
