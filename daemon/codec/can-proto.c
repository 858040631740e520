/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codec/can-proto.h"
#include "codec/codec-util.h"
#include "util/macros.h"

static const char *const can_app_table[_CAN_APP_MAX] = {
        [CAN_APP_UNKNOWN] = "unknown",
        [CAN_APP_KLIPPER] = "klipper",
        [CAN_APP_KATAPULT] = "katapult",
};

const char *can_app_to_string(CanApp a)
{
        return a >= 0 && a < _CAN_APP_MAX ? can_app_table[a] : NULL;
}

int can_uuid_parse(const char *s, CanUuid *ret)
{
        CanUuid u;

        if (!s)
                return -EINVAL;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                s += 2;
        if (strlen(s) != 2 * CAN_UUID_SIZE)
                return -EINVAL;
        for (size_t i = 0; i < CAN_UUID_SIZE; i++) {
                int hi = codec_unhex(s[2 * i]), lo = codec_unhex(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                u.b[i] = (uint8_t)(hi << 4 | lo);
        }
        *ret = u;
        return 0;
}

char *can_uuid_format(const CanUuid *u, char buf[static 13])
{
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < CAN_UUID_SIZE; i++) {
                buf[2 * i] = digits[u->b[i] >> 4];
                buf[2 * i + 1] = digits[u->b[i] & 0xf];
        }
        buf[12] = 0;
        return buf;
}

bool can_uuid_equal(const CanUuid *a, const CanUuid *b)
{
        return memcmp(a->b, b->b, CAN_UUID_SIZE) == 0;
}

static uint64_t fasthash_mix(uint64_t h)
{
        h ^= h >> 23;
        h *= UINT64_C(0x2127599bf4325c37);
        h ^= h >> 47;
        return h;
}

uint64_t can_fasthash64(const void *data, size_t size, uint64_t seed)
{
        const uint64_t m = UINT64_C(0x880355f21e6d1965);
        const uint8_t *p = data;
        uint64_t h = seed ^ (size * m);
        size_t i;

        /* whole 8-byte words, little endian, then the tail the same way */
        for (i = 0; i + 8 <= size; i += 8) {
                uint64_t v = 0;
                for (size_t k = 0; k < 8; k++)
                        v |= (uint64_t)p[i + k] << (8 * k);
                h ^= fasthash_mix(v);
                h *= m;
        }
        if (i < size) {
                uint64_t v = 0;
                for (size_t k = 0; i + k < size; k++)
                        v |= (uint64_t)p[i + k] << (8 * k);
                h ^= fasthash_mix(v);
                h *= m;
        }
        return fasthash_mix(h);
}

int can_uuid_from_usb_serial(const char *serial, CanUuid *ret)
{
        uint8_t chip[64];
        size_t n;
        uint64_t h;

        if (!serial)
                return -EINVAL;
        n = strlen(serial);
        if (n == 0 || n % 2 || n / 2 > sizeof(chip))
                return -EINVAL;
        for (size_t i = 0; i < n / 2; i++) {
                int hi = codec_unhex(serial[2 * i]), lo = codec_unhex(serial[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                chip[i] = (uint8_t)(hi << 4 | lo);
        }
        h = can_fasthash64(chip, n / 2, CAN_UUID_SEED);
        /* the firmware copies the hash's bytes in memory order (little endian) */
        for (size_t i = 0; i < CAN_UUID_SIZE; i++)
                ret->b[i] = (uint8_t)(h >> (8 * i));
        return 0;
}

size_t can_admin_encode_query(uint8_t data[static CAN_DATA_MAX])
{
        data[0] = CAN_ADMIN_QUERY_UNASSIGNED;
        return 1;
}

size_t can_admin_encode_clear(uint8_t data[static CAN_DATA_MAX])
{
        data[0] = CAN_ADMIN_CLEAR_NODEID;
        return 1;
}

size_t can_admin_encode_reboot(uint8_t data[static CAN_DATA_MAX], const CanUuid *u)
{
        data[0] = CAN_ADMIN_KLIPPER_REBOOT;
        memcpy(data + 1, u->b, CAN_UUID_SIZE);
        return 1 + CAN_UUID_SIZE;
}

static uint8_t set_nodeid_byte(CanApp app)
{
        return app == CAN_APP_KLIPPER ? CAN_ADMIN_KLIPPER_SET_NODEID : CAN_ADMIN_KATAPULT_SET_NODEID;
}

size_t can_admin_encode_set_nodeid(uint8_t data[static CAN_DATA_MAX], CanApp app, const CanUuid *u,
                                   uint8_t node_id)
{
        data[0] = set_nodeid_byte(app);
        memcpy(data + 1, u->b, CAN_UUID_SIZE);
        data[7] = node_id;
        return 8;
}

size_t can_admin_encode_query_answer(uint8_t data[static CAN_DATA_MAX], const CanUuid *u, CanApp app)
{
        data[0] = CAN_ADMIN_RESP_NEED_NODEID;
        memcpy(data + 1, u->b, CAN_UUID_SIZE);
        data[7] = set_nodeid_byte(app);
        return 8;
}

int can_admin_decode(const uint8_t *data, size_t size, CanAdminCmd *ret)
{
        CanAdminCmd c = {};

        if (size < 1 || size > CAN_DATA_MAX)
                return -EBADMSG;
        c.cmd = data[0];
        switch (c.cmd) {
        case CAN_ADMIN_QUERY_UNASSIGNED:
        case CAN_ADMIN_CLEAR_NODEID:
                break;
        case CAN_ADMIN_KLIPPER_REBOOT:
                if (size < 1 + CAN_UUID_SIZE)
                        return -EBADMSG;
                memcpy(c.uuid.b, data + 1, CAN_UUID_SIZE);
                break;
        case CAN_ADMIN_KLIPPER_SET_NODEID:
        case CAN_ADMIN_KATAPULT_SET_NODEID:
                if (size < 8)
                        return -EBADMSG;
                c.app = c.cmd == CAN_ADMIN_KLIPPER_SET_NODEID ? CAN_APP_KLIPPER : CAN_APP_KATAPULT;
                memcpy(c.uuid.b, data + 1, CAN_UUID_SIZE);
                c.node_id = data[7];
                break;
        default:
                return -EBADMSG;
        }
        *ret = c;
        return 0;
}

int can_admin_decode_answer(const uint8_t *data, size_t size, CanUuid *ret_uuid, CanApp *ret_app)
{
        CanApp app = CAN_APP_UNKNOWN;

        if (size < 1 + CAN_UUID_SIZE || size > CAN_DATA_MAX || data[0] != CAN_ADMIN_RESP_NEED_NODEID)
                return -EBADMSG;
        if (size > 7) {
                if (data[7] == CAN_ADMIN_KLIPPER_SET_NODEID)
                        app = CAN_APP_KLIPPER;
                else if (data[7] == CAN_ADMIN_KATAPULT_SET_NODEID)
                        app = CAN_APP_KATAPULT;
        }
        memcpy(ret_uuid->b, data + 1, CAN_UUID_SIZE);
        *ret_app = app;
        return 0;
}

size_t can_frames_count(size_t size)
{
        return DIV_ROUND_UP(size, CAN_DATA_MAX);
}

size_t can_frame_length(size_t size, size_t index)
{
        if (index >= can_frames_count(size))
                return 0;
        return MIN((size_t)CAN_DATA_MAX, size - index * CAN_DATA_MAX);
}

static const char *trim(char *s)
{
        char *e;
        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = 0;
        return s;
}

size_t klipper_cfg_can_mcus(const char *text, size_t len, KlipperCanMcu *ret, size_t max)
{
        KlipperCanMcu cur = {};
        bool in_mcu = false, has_uuid = false;
        size_t n = 0, pos = 0;

        for (;;) {
                char line[256];
                size_t end = pos, k;
                bool last = pos >= len;

                while (end < len && text[end] != '\n')
                        end++;
                k = MIN(end - pos, sizeof(line) - 1);
                memcpy(line, text + pos, k);
                line[k] = 0;
                pos = end + 1;
                if (strlen(line) != k)
                        k = strlen(line); /* a NUL inside: the rest of the line is not text */

                /* the end of a section (or the file) completes an [mcu] one */
                bool header = !last && line[0] == '[';
                if ((header || last) && in_mcu && has_uuid && n < max) {
                        if (!cur.iface[0])
                                snprintf(cur.iface, sizeof(cur.iface), "can0");
                        ret[n++] = cur;
                }
                if (last)
                        return n;
                if (header) {
                        char *close = strchr(line, ']');
                        const char *sect;
                        in_mcu = false;
                        has_uuid = false;
                        cur = (KlipperCanMcu){};
                        if (!close)
                                continue;
                        *close = 0;
                        sect = trim(line + 1);
                        if (streq(sect, "mcu")) {
                                in_mcu = true;
                                snprintf(cur.name, sizeof(cur.name), "mcu");
                        } else if (strncmp(sect, "mcu ", 4) == 0 && *trim((char *)sect + 4)) {
                                in_mcu = true;
                                snprintf(cur.name, sizeof(cur.name), "%s", trim((char *)sect + 4));
                        }
                        continue;
                }
                if (!in_mcu || line[0] == ' ' || line[0] == '\t')
                        continue; /* continuation lines belong to the key before */
                char *c = strpbrk(line, "#;");
                if (c)
                        *c = 0;
                char *sep = strpbrk(line, ":=");
                if (!sep)
                        continue;
                *sep = 0;
                const char *key = trim(line), *value = trim(sep + 1);
                if (streq(key, "canbus_uuid"))
                        has_uuid = can_uuid_parse(value, &cur.uuid) == 0;
                else if (streq(key, "canbus_interface") && strlen(value) > 0 &&
                         strlen(value) < sizeof(cur.iface))
                        snprintf(cur.iface, sizeof(cur.iface), "%s", value);
        }
}
