/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The byte-stream boundary the bootloader sessions talk to. A session
 * (katapult-session.c) never sees termios or a file descriptor: it reads
 * and writes bytes with timeouts through these operations. serial-port.c
 * implements them for a tty (and for any stream fd, e.g. a socketpair in
 * tests); a Katapult-over-CAN transport (admin id 0x3f0, replies 0x3f1,
 * 8-byte CAN frames carrying the same byte stream) would be one new file
 * implementing the same three operations, not a rewrite of the session.
 *
 * Opening and closing belong to the concrete transport's constructor and
 * destructor (serial_port_open() / serial_port_free()).
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct SerialTransport SerialTransport;

typedef struct SerialTransportOps {
        const char *kind; /* "tty", "fd", "can", ... for messages */
        /*
         * Read what is available, waiting up to timeout_usec for the first
         * byte. Returns > 0 bytes read, -ETIMEDOUT when nothing arrived,
         * -ENODEV when the device went away (hangup, EOF, EIO).
         */
        ssize_t (*read)(SerialTransport *t, void *buf, size_t size, uint64_t timeout_usec);
        /* Write everything within timeout_usec: 0, -ETIMEDOUT or -ENODEV. */
        int (*write)(SerialTransport *t, const void *buf, size_t size, uint64_t timeout_usec);
        /* Drop input received but not yet read (stale replies before a resend). */
        int (*flush_input)(SerialTransport *t);
} SerialTransportOps;

struct SerialTransport {
        const SerialTransportOps *ops;
};

static inline ssize_t serial_transport_read(SerialTransport *t, void *buf, size_t size,
                                            uint64_t timeout_usec)
{
        return t->ops->read(t, buf, size, timeout_usec);
}

static inline int serial_transport_write(SerialTransport *t, const void *buf, size_t size,
                                         uint64_t timeout_usec)
{
        return t->ops->write(t, buf, size, timeout_usec);
}

static inline int serial_transport_flush_input(SerialTransport *t)
{
        return t->ops->flush_input ? t->ops->flush_input(t) : 0;
}
