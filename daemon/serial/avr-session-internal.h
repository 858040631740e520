/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What avr-session.c's flow needs from a protocol file. */

#include "codec/stk500v2-proto.h"
#include "serial/avr-session.h"

typedef struct AvrProtocolOps {
        AvrErase erase;
        /* a fresh bootloader after a reset: protocol state back to its start */
        void (*begin)(AvrSession *s);
        /* one sync attempt within timeout_usec: 0, -ETIMEDOUT, -ENODEV, ... */
        int (*sync)(AvrSession *s, uint64_t timeout_usec);
        int (*signature)(AvrSession *s, uint8_t ret[3]);
        /* a page is read or programmed at the address loaded before:
         * avr-session.c pairs the two (page_read(), page_write()) */
        int (*load_address)(AvrSession *s, uint32_t address);
        int (*read_flash)(AvrSession *s, uint8_t *buf, size_t len);
        int (*program_flash)(AvrSession *s, const uint8_t *data, size_t len);
        int (*leave)(AvrSession *s);
} AvrProtocolOps;

extern const AvrProtocolOps stk500v2_session_ops;
extern const AvrProtocolOps stk500v1_session_ops;

struct AvrSession {
        SerialTransport *transport;
        const AvrProtocolOps *ops;
        AvrProtocol protocol;
        AvrTimeouts timeouts;
        FlashCallbacks cb;
        AvrFlashOptions opts;
        AvrFlashStats stats;
        char error[512];
        /* STK500v2 */
        Stk500v2Decoder v2;
        uint8_t seq;
        uint8_t buf[STK500V2_MSG_MAX];
};

/* Read into buf until `done` says so: the transport's read with the cancel
 * flag polled; -ETIMEDOUT when `timeout_usec` passes first. */
typedef int (*AvrByteFn)(AvrSession *s, uint8_t byte, void *userdata);
int avr_session_receive(AvrSession *s, uint64_t timeout_usec, AvrByteFn fn, void *userdata);
