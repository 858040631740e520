/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The identify session over a socketpair against a small MCU on a thread
 * that answers as Klipper's src/command.c does: blocks out of sequence are
 * NAKed with the expected sequence, good ones answered with the next.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "codec/klipper-proto.h"
#include "util/macros.h"
#include "serial/klipper-identify.h"
#include "serial/serial-port.h"
#include "tests.h"

typedef struct Mcu {
        int fd;
        uint8_t next_seq;
        const uint8_t *dict;
        size_t dict_size;
        unsigned drop_first; /* ignore this many good identify commands (lost on the line) */
        unsigned naks, answers;
        bool silent;
        pthread_t thread;
} Mcu;

static void *mcu_run(void *p)
{
        Mcu *m = p;
        uint8_t rx[512];
        size_t len = 0;

        for (;;) {
                ssize_t n = read(m->fd, rx + len, sizeof(rx) - len);
                if (n <= 0)
                        return NULL;
                len += n;
                for (;;) {
                        int r = klipper_block_check(rx, len);
                        size_t drop;
                        if (r == 0)
                                break;
                        if (r < 0)
                                drop = klipper_block_resync(rx, len);
                        else {
                                uint8_t out[KLIPPER_MSG_MAX];
                                KlipperIdentifyMsg msg;
                                drop = r;
                                if (m->silent) {
                                } else if ((rx[1] & KLIPPER_MSG_SEQ_MASK) != m->next_seq) {
                                        m->naks++;
                                        klipper_block_encode(m->next_seq, NULL, 0, out, sizeof(out));
                                        (void)!write(m->fd, out, KLIPPER_MSG_MIN);
                                } else {
                                        m->next_seq = (m->next_seq + 1) & KLIPPER_MSG_SEQ_MASK;
                                        if (klipper_identify_msg_decode(rx + 2, r - KLIPPER_MSG_OVERHEAD,
                                                                        &msg) == 0 &&
                                            msg.msgid == KLIPPER_MSGID_IDENTIFY) {
                                                if (m->drop_first > 0) {
                                                        m->drop_first--;
                                                } else {
                                                        size_t off = MIN(msg.offset, m->dict_size);
                                                        size_t c =
                                                                MIN(MIN(msg.count, m->dict_size - off), 40u);
                                                        int k = klipper_identify_response_encode(
                                                                m->next_seq, msg.offset, m->dict + off, c,
                                                                out, sizeof(out));
                                                        m->answers++;
                                                        /* a stray garbage byte first: the host must resync
                                                         */
                                                        (void)!write(m->fd, "\x7e", 1);
                                                        (void)!write(m->fd, out, k);
                                                }
                                        }
                                }
                        }
                        memmove(rx, rx + drop, len - drop);
                        len -= drop;
                }
        }
}

static void run_case(uint8_t start_seq, unsigned drop_first, bool silent, int expected)
{
        static const char json[] =
                "{\"app\":\"Klipper\",\"version\":\"v0.12.0-7-gfeedbee\",\"config\":{\"MCU\":"
                "\"stm32f446xx\",\"CLOCK_FREQ\":180000000},\"pad\":\"0123456789012345678901234"
                "56789012345678901234567890123456789\"}";
        uint8_t z[512];
        uLongf zlen = sizeof(z);
        int sv[2];
        SerialPort *port = NULL;
        KlipperDictInfo info = {};
        Mcu m = { .next_seq = start_seq, .drop_first = drop_first, .silent = silent };

        CHECK_INT(compress(z, &zlen, (const Bytef *)json, sizeof(json) - 1), Z_OK);
        m.dict = z;
        m.dict_size = zlen;
        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        m.fd = sv[1];
        CHECK_INT(serial_port_new_from_fd(&port, sv[0]), 0);
        CHECK_INT(pthread_create(&m.thread, NULL, mcu_run, &m), 0);

        int r = klipper_identify_run(serial_port_get_transport(port), 2U * 1000U * 1000U, NULL, &info);
        CHECK_INT(r, expected);
        if (expected == 0) {
                CHECK_STR(info.version, "v0.12.0-7-gfeedbee");
                CHECK_STR(info.mcu, "stm32f446xx");
                CHECK_INT(info.clock_freq, 180000000);
                /* more than one chunk was needed */
                CHECK(m.answers >= 3);
        }
        CHECK_INT(m.naks, start_seq != 0 ? 1 : 0);
        klipper_dict_info_clear(&info);
        serial_port_free(port); /* closes sv[0]: the MCU thread sees EOF */
        pthread_join(m.thread, NULL);
        close(sv[1]);
}

int main(void)
{
        run_case(0, 0, false, 0);         /* a fresh board */
        run_case(9, 0, false, 0);         /* klippy talked to it before: NAK, follow its sequence */
        run_case(0, 1, false, 0);         /* the first request lost: resend */
        run_case(0, 0, true, -ETIMEDOUT); /* no Klipper on the line */
        TESTS_EXIT();
}
