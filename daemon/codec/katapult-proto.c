/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codec/katapult-proto.h"
#include "util/macros.h"

uint16_t katapult_crc16(uint16_t crc, const void *data, size_t size)
{
        const uint8_t *p = data;

        /* CRC-16/MCRF4XX, bytewise form of the reflected 0x1021 polynomial
         * as Klipper's and Katapult's firmware compute it. */
        for (size_t i = 0; i < size; i++) {
                uint8_t d = p[i] ^ (crc & 0xff);
                d ^= (uint8_t)(d << 4);
                crc = (uint16_t)(((uint16_t)d << 8) | (crc >> 8)) ^ (uint16_t)(d >> 4) ^
                      (uint16_t)((uint16_t)d << 3);
        }
        return crc;
}

bool katapult_block_size_valid(uint32_t block_size)
{
        return block_size >= KATAPULT_BLOCK_SIZE_MIN && block_size <= KATAPULT_BLOCK_SIZE_MAX &&
               (block_size & (block_size - 1)) == 0;
}

const char *katapult_command_to_string(uint8_t cmd)
{
        switch (cmd) {
        case KATAPULT_CMD_CONNECT:
                return "CONNECT";
        case KATAPULT_CMD_SEND_BLOCK:
                return "SEND_BLOCK";
        case KATAPULT_CMD_EOF:
                return "EOF";
        case KATAPULT_CMD_REQUEST_BLOCK:
                return "REQUEST_BLOCK";
        case KATAPULT_CMD_COMPLETE:
                return "COMPLETE";
        case KATAPULT_CMD_GET_CANBUS_ID:
                return "GET_CANBUS_ID";
        case KATAPULT_REPLY_ACK:
                return "ACK";
        case KATAPULT_REPLY_NACK:
                return "NACK";
        case KATAPULT_REPLY_ERROR:
                return "ERROR";
        case KATAPULT_REPLY_BUSY:
                return "BUSY";
        }
        return "unknown";
}

int katapult_frame_encode(uint8_t cmd, const void *payload, size_t size, void *buf, size_t buf_size)
{
        uint8_t *out = buf;

        if (size % 4 != 0 || size > KATAPULT_PAYLOAD_MAX)
                return -EINVAL;
        if (buf_size < KATAPULT_FRAME_OVERHEAD + size)
                return -ENOBUFS;

        out[0] = KATAPULT_HEADER_0;
        out[1] = KATAPULT_HEADER_1;
        out[2] = cmd;
        out[3] = (uint8_t)(size / 4);
        if (size > 0)
                memmove(out + 4, payload, size);
        uint16_t crc = katapult_crc16(KATAPULT_CRC16_INIT, out + 2, 2 + size);
        out[4 + size] = crc & 0xff;
        out[5 + size] = crc >> 8;
        out[6 + size] = KATAPULT_TRAILER_0;
        out[7 + size] = KATAPULT_TRAILER_1;
        return (int)(KATAPULT_FRAME_OVERHEAD + size);
}

int katapult_ack_encode(uint8_t acked_cmd, const void *data, size_t size, void *buf, size_t buf_size)
{
        uint8_t *out = buf;

        if (size % 4 != 0 || size + 4 > KATAPULT_PAYLOAD_MAX)
                return -EINVAL;
        if (buf_size < KATAPULT_FRAME_OVERHEAD + 4 + size)
                return -ENOBUFS;
        /* Build the payload in place (data may not overlap buf). */
        katapult_put_le32(out + 4, acked_cmd);
        if (size > 0)
                memcpy(out + 8, data, size);
        return katapult_frame_encode(KATAPULT_REPLY_ACK, out + 4, size + 4, buf, buf_size);
}

void katapult_decoder_init(KatapultDecoder *d)
{
        *d = (KatapultDecoder){};
}

void katapult_decoder_reset(KatapultDecoder *d)
{
        d->len = 0;
        d->consumed = 0;
}

static void decoder_drop(KatapultDecoder *d, size_t n)
{
        n = MIN(n, d->len);
        memmove(d->buf, d->buf + n, d->len - n);
        d->len -= n;
}

size_t katapult_decoder_feed(KatapultDecoder *d, const void *data, size_t size)
{
        if (d->consumed > 0) {
                decoder_drop(d, d->consumed);
                d->consumed = 0;
        }
        size_t n = MIN(size, sizeof(d->buf) - d->len);
        memcpy(d->buf + d->len, data, n);
        d->len += n;
        return n;
}

/* Whether a complete frame with a good trailer and CRC starts at `off`. */
static bool frame_valid_at(const KatapultDecoder *d, size_t off)
{
        const uint8_t *b = d->buf + off;
        size_t avail = d->len - off;

        if (avail < KATAPULT_FRAME_OVERHEAD || b[0] != KATAPULT_HEADER_0 || b[1] != KATAPULT_HEADER_1)
                return false;
        size_t size = (size_t)b[3] * 4;
        if (avail < KATAPULT_FRAME_OVERHEAD + size)
                return false;
        const uint8_t *t = b + 4 + size;
        return t[2] == KATAPULT_TRAILER_0 && t[3] == KATAPULT_TRAILER_1 &&
               katapult_crc16(KATAPULT_CRC16_INIT, b + 2, 2 + size) == (uint16_t)(t[0] | t[1] << 8);
}

/* Offset >= from of the first complete valid frame in the buffer, 0 if none. */
static size_t find_complete_frame(const KatapultDecoder *d, size_t from)
{
        for (size_t off = from; off + KATAPULT_FRAME_OVERHEAD <= d->len; off++) {
                const uint8_t *h = memchr(d->buf + off, KATAPULT_HEADER_0, d->len - off);
                if (!h)
                        return 0;
                off = (size_t)(h - d->buf);
                if (frame_valid_at(d, off))
                        return off;
        }
        return 0;
}

int katapult_decoder_next(KatapultDecoder *d, KatapultFrame *ret)
{
        if (d->consumed > 0) {
                decoder_drop(d, d->consumed);
                d->consumed = 0;
        }

        for (;;) {
                /* Skip to the next possible header byte. */
                const uint8_t *h = memchr(d->buf, KATAPULT_HEADER_0, d->len);
                size_t skip = h ? (size_t)(h - d->buf) : d->len;
                if (skip > 0) {
                        d->n_skipped += skip;
                        decoder_drop(d, skip);
                }
                if (d->len < 2)
                        return 0;
                if (d->buf[1] != KATAPULT_HEADER_1) {
                        d->n_skipped++;
                        decoder_drop(d, 1);
                        continue;
                }
                if (d->len < 4)
                        return 0;

                size_t frame = KATAPULT_FRAME_OVERHEAD + (size_t)d->buf[3] * 4;
                if (d->len < frame) {
                        /* The candidate is incomplete. If its header was
                         * noise (a stray 01 88 whose "length" swallows what
                         * follows), a complete valid frame may already sit
                         * after it: resync to that instead of waiting for
                         * bytes that may never come. */
                        size_t later = find_complete_frame(d, 1);
                        if (later == 0)
                                return 0;
                        d->n_bad++;
                        decoder_drop(d, later);
                        continue;
                }

                if (!frame_valid_at(d, 0)) {
                        /* Not a frame after all (or a corrupted one): a real
                         * frame may start anywhere after this header byte. */
                        d->n_bad++;
                        decoder_drop(d, 1);
                        continue;
                }

                d->consumed = frame;
                d->n_frames++;
                *ret = (KatapultFrame){
                        .cmd = d->buf[2],
                        .payload = d->buf + 4,
                        .size = frame - KATAPULT_FRAME_OVERHEAD,
                };
                return 1;
        }
}

int katapult_ack_parse(const KatapultFrame *f, uint8_t cmd, const uint8_t **ret_data, size_t *ret_size)
{
        switch (f->cmd) {
        case KATAPULT_REPLY_ACK:
                break;
        case KATAPULT_REPLY_NACK:
        case KATAPULT_REPLY_BUSY:
                return -EAGAIN;
        case KATAPULT_REPLY_ERROR:
                return -EREMOTEIO;
        default:
                return -EPROTO;
        }
        if (f->size < 4 || katapult_get_le32(f->payload) != cmd)
                return -EBADMSG;
        if (ret_data)
                *ret_data = f->payload + 4;
        if (ret_size)
                *ret_size = f->size - 4;
        return 0;
}

static int copy_string(char *dst, size_t dst_size, const uint8_t *src, size_t n)
{
        /* Printable ASCII only: these strings end up in messages and JSON. */
        for (size_t i = 0; i < n; i++)
                if (src[i] < 0x20 || src[i] > 0x7e)
                        return -EILSEQ;
        n = MIN(n, dst_size - 1);
        memcpy(dst, src, n);
        dst[n] = 0;
        return 0;
}

int katapult_connect_parse(const KatapultFrame *f, KatapultConnectInfo *ret)
{
        KatapultConnectInfo info = {};
        const uint8_t *p;
        size_t n;
        int r;

        r = katapult_ack_parse(f, KATAPULT_CMD_CONNECT, &p, &n);
        if (r < 0)
                return r;
        if (n < 12)
                return -EBADMSG;

        info.proto_version = katapult_get_le32(p);
        info.start_address = katapult_get_le32(p + 4);
        info.block_size = katapult_get_le32(p + 8);
        if (!katapult_block_size_valid(info.block_size))
                return -ERANGE;
        p += 12;
        n -= 12;

        /* Trailing NUL padding belongs to no string. */
        while (n > 0 && p[n - 1] == 0)
                n--;

        const uint8_t *nul = memchr(p, 0, n);
        size_t mcu_len = nul ? (size_t)(nul - p) : n;
        if (info.proto_version < KATAPULT_PROTO_1_1_0)
                /* Before 1.1.0 everything after the numbers is the MCU. */
                mcu_len = n;
        if (mcu_len == 0)
                return -EBADMSG;
        r = copy_string(info.mcu, sizeof(info.mcu), p, mcu_len);
        if (r < 0)
                return r;

        if (mcu_len < n) {
                /* The MCU string is NUL padded to a word, then a NUL word,
                 * then the version. */
                const uint8_t *v = p + mcu_len;
                size_t vn = n - mcu_len;
                while (vn > 0 && *v == 0) {
                        v++;
                        vn--;
                }
                r = copy_string(info.software_version, sizeof(info.software_version), v, vn);
                if (r < 0)
                        return r;
        }

        *ret = info;
        return 0;
}

int katapult_connect_encode(const KatapultConnectInfo *info, void *buf, size_t buf_size)
{
        uint8_t *out = buf;
        size_t mcu = strnlen(info->mcu, sizeof(info->mcu));
        size_t ver = strnlen(info->software_version, sizeof(info->software_version));
        size_t mcu_words = DIV_ROUND_UP(mcu, 4), ver_words = DIV_ROUND_UP(ver, 4);
        size_t size = 12 + 4 * mcu_words;

        if (info->proto_version >= KATAPULT_PROTO_1_1_0)
                size += 4 + 4 * ver_words;
        if (buf_size < size)
                return -ENOBUFS;

        memset(out, 0, size);
        katapult_put_le32(out, info->proto_version);
        katapult_put_le32(out + 4, info->start_address);
        katapult_put_le32(out + 8, info->block_size);
        memcpy(out + 12, info->mcu, mcu);
        if (info->proto_version >= KATAPULT_PROTO_1_1_0)
                memcpy(out + 12 + 4 * mcu_words + 4, info->software_version, ver);
        return (int)size;
}

const char *katapult_proto_version_format(uint32_t v, char *buf, size_t size)
{
        snprintf(buf, size, "%u.%u.%u", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
        return buf;
}
