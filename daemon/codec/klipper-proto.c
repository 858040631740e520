/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/image-check.h"
#include "codec/katapult-proto.h"
#include "codec/klipper-proto.h"
#include "util/macros.h"

uint16_t klipper_crc16(const void *data, size_t size)
{
        /* Klipper's crc16_ccitt is the same CRC Katapult frames carry. */
        return katapult_crc16(KATAPULT_CRC16_INIT, data, size);
}

int klipper_vlq_encode(int64_t v, uint8_t *buf, size_t size)
{
        uint8_t tmp[5];
        size_t n = 0;

        /* msgproto.py PT_uint32.encode: the groups above the last are sent
         * only when the value (or its sign) needs them. */
        if (v >= 0xc000000 || v < -0x4000000)
                tmp[n++] = (uint8_t)(((v >> 28) & 0x7f) | 0x80);
        if (v >= 0x180000 || v < -0x80000)
                tmp[n++] = (uint8_t)(((v >> 21) & 0x7f) | 0x80);
        if (v >= 0x3000 || v < -0x1000)
                tmp[n++] = (uint8_t)(((v >> 14) & 0x7f) | 0x80);
        if (v >= 0x60 || v < -0x20)
                tmp[n++] = (uint8_t)(((v >> 7) & 0x7f) | 0x80);
        tmp[n++] = (uint8_t)(v & 0x7f);
        if (n > size)
                return -ENOBUFS;
        memcpy(buf, tmp, n);
        return (int)n;
}

int klipper_vlq_decode(const uint8_t *buf, size_t len, size_t *pos, uint32_t *ret)
{
        size_t p = *pos;
        uint32_t v;
        uint8_t c;

        if (p >= len)
                return -EBADMSG;
        c = buf[p++];
        v = c & 0x7f;
        if ((c & 0x60) == 0x60)
                v |= ~(uint32_t)0x1f; /* negative: sign-extend */
        for (unsigned n = 1; c & 0x80; n++) {
                if (n >= 5 || p >= len)
                        return -EBADMSG;
                c = buf[p++];
                v = (v << 7) | (c & 0x7f);
        }
        *pos = p;
        *ret = v;
        return 0;
}

int klipper_block_encode(uint8_t seq, const uint8_t *content, size_t size, uint8_t *buf, size_t buf_size)
{
        size_t n = size + KLIPPER_MSG_OVERHEAD;
        uint16_t crc;

        if (size > KLIPPER_MSG_CONTENT_MAX)
                return -EMSGSIZE;
        if (buf_size < n)
                return -ENOBUFS;
        buf[0] = (uint8_t)n;
        buf[1] = (uint8_t)(KLIPPER_MSG_DEST | (seq & KLIPPER_MSG_SEQ_MASK));
        if (size > 0)
                memmove(buf + 2, content, size);
        crc = klipper_crc16(buf, size + 2);
        buf[size + 2] = (uint8_t)(crc >> 8);
        buf[size + 3] = (uint8_t)(crc & 0xff);
        buf[size + 4] = KLIPPER_MSG_SYNC;
        return (int)n;
}

int klipper_block_check(const uint8_t *buf, size_t len)
{
        size_t n;
        uint16_t crc;

        if (len < KLIPPER_MSG_MIN)
                return 0;
        n = buf[0];
        if (n < KLIPPER_MSG_MIN || n > KLIPPER_MSG_MAX)
                return -EBADMSG;
        if ((buf[1] & ~KLIPPER_MSG_SEQ_MASK) != KLIPPER_MSG_DEST)
                return -EBADMSG;
        if (len < n)
                return 0;
        if (buf[n - 1] != KLIPPER_MSG_SYNC)
                return -EBADMSG;
        crc = klipper_crc16(buf, n - 3);
        if (buf[n - 3] != (crc >> 8) || buf[n - 2] != (crc & 0xff))
                return -EBADMSG;
        return (int)n;
}

size_t klipper_block_resync(const uint8_t *buf, size_t len)
{
        const uint8_t *sync = len > 0 ? memchr(buf, KLIPPER_MSG_SYNC, len) : NULL;

        return sync ? (size_t)(sync - buf) + 1 : len;
}

int klipper_identify_encode(uint8_t seq, uint32_t offset, uint8_t count, uint8_t *buf, size_t buf_size)
{
        uint8_t content[KLIPPER_MSG_CONTENT_MAX];
        size_t n = 0;
        int r;

        r = klipper_vlq_encode(KLIPPER_MSGID_IDENTIFY, content + n, sizeof(content) - n);
        if (r < 0)
                return r;
        n += r;
        r = klipper_vlq_encode(offset, content + n, sizeof(content) - n);
        if (r < 0)
                return r;
        n += r;
        r = klipper_vlq_encode(count, content + n, sizeof(content) - n);
        if (r < 0)
                return r;
        n += r;
        return klipper_block_encode(seq, content, n, buf, buf_size);
}

int klipper_identify_response_encode(uint8_t seq, uint32_t offset, const uint8_t *data, size_t size,
                                     uint8_t *buf, size_t buf_size)
{
        uint8_t content[KLIPPER_MSG_CONTENT_MAX];
        size_t n = 0;
        int r;

        r = klipper_vlq_encode(KLIPPER_MSGID_IDENTIFY_RESPONSE, content + n, sizeof(content) - n);
        if (r < 0)
                return r;
        n += r;
        r = klipper_vlq_encode(offset, content + n, sizeof(content) - n);
        if (r < 0)
                return r;
        n += r;
        /* %.*s: one length byte, then the bytes */
        if (size > 255 || n + 1 + size > sizeof(content))
                return -EMSGSIZE;
        content[n++] = (uint8_t)size;
        if (size > 0)
                memcpy(content + n, data, size);
        n += size;
        return klipper_block_encode(seq, content, n, buf, buf_size);
}

int klipper_identify_msg_decode(const uint8_t *content, size_t size, KlipperIdentifyMsg *ret)
{
        KlipperIdentifyMsg m = {};
        size_t pos = 0;
        uint32_t v;
        int r;

        r = klipper_vlq_decode(content, size, &pos, &m.msgid);
        if (r < 0)
                return r;
        switch (m.msgid) {
        case KLIPPER_MSGID_IDENTIFY:
                r = klipper_vlq_decode(content, size, &pos, &m.offset);
                if (r < 0)
                        return r;
                r = klipper_vlq_decode(content, size, &pos, &v);
                if (r < 0)
                        return r;
                m.count = v & 0xff; /* %c */
                break;
        case KLIPPER_MSGID_IDENTIFY_RESPONSE:
                r = klipper_vlq_decode(content, size, &pos, &m.offset);
                if (r < 0)
                        return r;
                if (pos >= size || content[pos] > size - pos - 1)
                        return -EBADMSG;
                m.size = content[pos++];
                m.data = content + pos;
                break;
        default:
                break;
        }
        *ret = m;
        return 0;
}

void klipper_dict_info_clear(KlipperDictInfo *info)
{
        if (!info)
                return;
        free(info->app);
        free(info->version);
        free(info->build_versions);
        free(info->mcu);
        *info = (KlipperDictInfo){};
}

static int dup_string(json_t *v, char **ret)
{
        if (!json_is_string(v))
                return 0;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

int klipper_dict_info_from_json(const char *json, size_t len, KlipperDictInfo *ret)
{
        _cleanup_(klipper_dict_info_clear) KlipperDictInfo info = {};
        json_auto_t *root = NULL;
        json_t *config, *freq;
        int r;

        root = json_loadb(json, len, JSON_DECODE_ANY, NULL);
        if (!json_is_object(root))
                return -EBADMSG;
        config = json_object_get(root, "config");
        if ((r = dup_string(json_object_get(root, "app"), &info.app)) < 0 ||
            (r = dup_string(json_object_get(root, "version"), &info.version)) < 0 ||
            (r = dup_string(json_object_get(root, "build_versions"), &info.build_versions)) < 0 ||
            (r = dup_string(json_object_get(config, "MCU"), &info.mcu)) < 0)
                return r;
        /* config values are numbers or strings ("CLOCK_FREQ": 180000000) */
        freq = json_object_get(config, "CLOCK_FREQ");
        if (json_is_integer(freq) && json_integer_value(freq) > 0)
                info.clock_freq = (uint64_t)json_integer_value(freq);
        else if (json_is_string(freq))
                info.clock_freq = strtoull(json_string_value(freq), NULL, 10);
        *ret = info;
        info = (KlipperDictInfo){};
        return 0;
}

int klipper_dict_info_from_zlib(const uint8_t *data, size_t len, KlipperDictInfo *ret, char **ret_json)
{
        _cleanup_free_ char *out = NULL;
        size_t cap = 16384, used = 0;
        z_stream zs = {};
        int zr, r;

        if (!data || len == 0 || len > UINT_MAX)
                return -EBADMSG;
        if (inflateInit(&zs) != Z_OK)
                return -ENOMEM;
        zs.next_in = (Bytef *)data;
        zs.avail_in = (uInt)len;
        for (;;) {
                if (cap - used < 2) {
                        char *n;
                        if (cap >= KLIPPER_DICT_MAX_SIZE) {
                                inflateEnd(&zs);
                                return -EFBIG;
                        }
                        cap *= 2;
                        n = realloc(out, cap);
                        if (!n) {
                                inflateEnd(&zs);
                                return -ENOMEM;
                        }
                        out = n;
                }
                if (!out && !(out = malloc(cap))) {
                        inflateEnd(&zs);
                        return -ENOMEM;
                }
                zs.next_out = (Bytef *)out + used;
                zs.avail_out = (uInt)(cap - used - 1);
                zr = inflate(&zs, Z_NO_FLUSH);
                used = cap - 1 - zs.avail_out;
                if (zr == Z_STREAM_END)
                        break;
                if (zr != Z_OK) {
                        inflateEnd(&zs);
                        return zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
                }
                if (zs.avail_in == 0 && zs.avail_out > 0) {
                        inflateEnd(&zs); /* truncated stream */
                        return -EBADMSG;
                }
        }
        inflateEnd(&zs);
        out[used] = '\0';
        r = klipper_dict_info_from_json(out, used, ret);
        if (r < 0)
                return r;
        if (ret_json)
                *ret_json = TAKE_PTR(out);
        return 0;
}
