/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/image-check.h"
#include "util/macros.h"
#include "serial/klipper-identify.h"
#include "serial/serial-port.h"
#include "util/time-util.h"

/* klippy gives a board about this long per request before resending. */
#define IDENTIFY_RESEND_USEC (250U * 1000U)

typedef struct Rx {
        uint8_t buf[512];
        size_t len;
} Rx;

/* The next valid block into blk (returns its length), -ETIMEDOUT, -ENODEV. */
static int next_block(SerialTransport *t, Rx *rx, uint64_t deadline, uint8_t *blk)
{
        for (;;) {
                int r = klipper_block_check(rx->buf, rx->len);
                if (r > 0) {
                        memcpy(blk, rx->buf, r);
                        memmove(rx->buf, rx->buf + r, rx->len - r);
                        rx->len -= r;
                        return r;
                }
                if (r < 0) {
                        size_t drop = klipper_block_resync(rx->buf, rx->len);
                        memmove(rx->buf, rx->buf + drop, rx->len - drop);
                        rx->len -= drop;
                        continue;
                }
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= deadline)
                        return -ETIMEDOUT;
                ssize_t n = serial_transport_read(t, rx->buf + rx->len, sizeof(rx->buf) - rx->len,
                                                  deadline - now);
                if (n < 0)
                        return (int)n;
                rx->len += (size_t)n;
        }
}

int klipper_identify_run(SerialTransport *t, uint64_t timeout_usec, const atomic_bool *cancel,
                         KlipperDictInfo *ret)
{
        _cleanup_free_ uint8_t *dict = NULL;
        size_t have = 0, cap = 0;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        uint8_t seq = 0;
        Rx rx = {};
        int r;

        if (!t || !ret)
                return -EINVAL;
        (void)serial_transport_flush_input(t);
        for (;;) {
                uint8_t out[KLIPPER_MSG_MAX], blk[KLIPPER_MSG_MAX];
                uint64_t resend;
                bool got = false;

                if (cancel && atomic_load(cancel))
                        return -ECANCELED;
                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return -ETIMEDOUT;
                r = klipper_identify_encode(seq, (uint32_t)have, KLIPPER_IDENTIFY_CHUNK, out, sizeof(out));
                if (r < 0)
                        return r;
                r = serial_transport_write(t, out, (size_t)r, IDENTIFY_RESEND_USEC);
                if (r < 0)
                        return r;
                resend = MIN(now_usec(CLOCK_MONOTONIC) + IDENTIFY_RESEND_USEC, deadline);
                while (!got) {
                        KlipperIdentifyMsg m;
                        uint8_t expected;
                        int n = next_block(t, &rx, resend, blk);
                        if (n == -ETIMEDOUT) {
                                /* Resend as a new block: if the board got the first and only
                                 * its answer was lost, it expects seq + 1 and would NAK a
                                 * repeat; if it never got it, its NAK names the one to use. */
                                seq = (seq + 1) & KLIPPER_MSG_SEQ_MASK;
                                break;
                        }
                        if (n < 0)
                                return n;
                        expected = blk[1] & KLIPPER_MSG_SEQ_MASK;
                        if (n == (int)KLIPPER_MSG_MIN) {
                                /* an empty block: an ACK, or a NAK naming the sequence to use */
                                if (expected != ((seq + 1) & KLIPPER_MSG_SEQ_MASK)) {
                                        seq = expected;
                                        break;
                                }
                                continue;
                        }
                        if (klipper_identify_msg_decode(blk + 2, n - KLIPPER_MSG_OVERHEAD, &m) < 0 ||
                            m.msgid != KLIPPER_MSGID_IDENTIFY_RESPONSE || m.offset != have)
                                continue; /* stale answer to an earlier resend */
                        seq = expected;
                        got = true;
                        if (m.size == 0) {
                                if (have == 0)
                                        return -EBADMSG;
                                return klipper_dict_info_from_zlib(dict, have, ret, NULL);
                        }
                        if (have + m.size > KLIPPER_DICT_MAX_SIZE)
                                return -EFBIG;
                        if (have + m.size > cap) {
                                size_t ncap = MAX(cap * 2, (size_t)4096);
                                uint8_t *p = realloc(dict, ncap);
                                if (!p)
                                        return -ENOMEM;
                                dict = p;
                                cap = ncap;
                        }
                        memcpy(dict + have, m.data, m.size);
                        have += m.size;
                }
        }
}

int klipper_identify_tty(const char *tty, unsigned baud, uint64_t timeout_usec, const atomic_bool *cancel,
                         KlipperDictInfo *ret)
{
        _cleanup_(serial_port_freep) SerialPort *p = NULL;
        int r;

        r = serial_port_open(&p, tty, baud ?: 250000);
        if (r < 0)
                return r;
        return klipper_identify_run(serial_port_get_transport(p), timeout_usec, cancel, ret);
}
