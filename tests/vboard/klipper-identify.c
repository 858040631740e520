/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/image-check.h"
#include "codec/klipper-proto.h"
#include "klipper-identify.h"
#include "tty-port.h"

struct KlipperIdentify {
        uint8_t *dict; /* zlib-compressed JSON */
        size_t dict_size;
        uint8_t rx[256];
        size_t rx_len;
        uint8_t next_seq;
        uint64_t identifies;
        KlipperIdentifyWrite write;
        void *userdata;
};

static void write_tty(void *userdata, VBoard *b, const uint8_t *data, size_t len)
{
        tty_port_write(b, data, len);
}

void klipper_identify_set_writer(KlipperIdentify *k, KlipperIdentifyWrite write, void *userdata)
{
        if (!k)
                return;
        k->write = write ?: write_tty;
        k->userdata = userdata;
}

static void out(KlipperIdentify *k, VBoard *b, const uint8_t *data, size_t len)
{
        (k->write ?: write_tty)(k->userdata, b, data, len);
}

int klipper_identify_new(KlipperIdentify **ret, VBoard *b)
{
        const BoardVariant *v = b->variant;
        FlashModel *f = b->flash;
        KlipperIdentify *k;
        char *json = NULL;
        uLongf zlen;
        uint32_t start;

        *ret = NULL;
        if (!v || !f)
                return 0;
        start = v->flash_base + v->app_offset;
        if (start < f->base || start >= f->base + f->size)
                return 0;
        if (klipper_dictionary_extract(f->data + (start - f->base), f->base + f->size - start, &json, NULL) <
            0)
                return 0;
        k = calloc(1, sizeof(*k));
        zlen = compressBound(strlen(json));
        if (!k || !(k->dict = malloc(zlen))) {
                free(k);
                free(json);
                return -ENOMEM;
        }
        /* The firmware sends its dictionary exactly as embedded; inflating
         * and compressing again gives the same JSON to the host. */
        if (compress(k->dict, &zlen, (const Bytef *)json, strlen(json)) != Z_OK) {
                free(json);
                klipper_identify_free(k);
                return -ENOMEM;
        }
        free(json);
        k->dict_size = zlen;
        *ret = k;
        return 0;
}

KlipperIdentify *klipper_identify_free(KlipperIdentify *k)
{
        if (k) {
                free(k->dict);
                free(k);
        }
        return NULL;
}

static void answer(KlipperIdentify *k, VBoard *b, const KlipperIdentifyMsg *m)
{
        uint8_t buf[KLIPPER_MSG_MAX];
        size_t off = MIN((size_t)m->offset, k->dict_size);
        /* the response must fit one block: 59 bytes of content, 7 of header */
        size_t n = MIN(MIN((size_t)m->count, k->dict_size - off), (size_t)KLIPPER_MSG_CONTENT_MAX - 7);
        int r;

        r = klipper_identify_response_encode(k->next_seq, m->offset, k->dict + off, n, buf, sizeof(buf));
        if (r > 0)
                out(k, b, buf, r);
        if (m->offset == 0)
                k->identifies++;
        if (m->offset == 0 && k->identifies == 1)
                vboard_event(b, "klipper-identify", "dictionary of %zu bytes", k->dict_size);
}

void klipper_identify_on_data(KlipperIdentify *k, VBoard *b, const uint8_t *data, size_t len)
{
        while (k && len > 0) {
                size_t n = MIN(len, sizeof(k->rx) - k->rx_len);
                memcpy(k->rx + k->rx_len, data, n);
                k->rx_len += n;
                data += n;
                len -= n;
                for (;;) {
                        int r = klipper_block_check(k->rx, k->rx_len);
                        size_t drop;
                        if (r == 0)
                                break;
                        if (r < 0) {
                                drop = klipper_block_resync(k->rx, k->rx_len);
                        } else {
                                KlipperIdentifyMsg m;
                                /* src/command.c: a block out of sequence is lost traffic: NAK
                                 * it with an empty block carrying the sequence expected */
                                if ((k->rx[1] & KLIPPER_MSG_SEQ_MASK) != k->next_seq) {
                                        uint8_t nak[KLIPPER_MSG_MIN];
                                        if (klipper_block_encode(k->next_seq, NULL, 0, nak, sizeof(nak)) > 0)
                                                out(k, b, nak, sizeof(nak));
                                } else {
                                        k->next_seq = (k->next_seq + 1) & KLIPPER_MSG_SEQ_MASK;
                                        if (klipper_identify_msg_decode(k->rx + 2, r - KLIPPER_MSG_OVERHEAD,
                                                                        &m) == 0 &&
                                            m.msgid == KLIPPER_MSGID_IDENTIFY)
                                                answer(k, b, &m);
                                }
                                drop = r;
                        }
                        memmove(k->rx, k->rx + drop, k->rx_len - drop);
                        k->rx_len -= drop;
                }
                /* a full buffer without a block start: nothing in it can be a block */
                if (k->rx_len == sizeof(k->rx))
                        k->rx_len = 0;
        }
}
