/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <zlib.h>

#include "codec/klipper-proto.h"
#include "util/macros.h"
#include "tests.h"

static size_t unhex(const char *hex, uint8_t *out, size_t size)
{
        size_t n = 0;
        for (; hex[0] && hex[1] && n < size; hex += 2) {
                unsigned v;
                sscanf(hex, "%2x", &v);
                out[n++] = (uint8_t)v;
        }
        return n;
}

/* Expected bytes computed with msgproto.py's PT_uint32.encode. */
static void test_vlq(void)
{
        static const struct {
                int64_t v;
                const char *hex;
        } cases[] = {
                { 0, "00" },
                { 1, "01" },
                { 95, "5f" },
                { 96, "8060" },
                { -1, "7f" },
                { -32, "60" },
                { -33, "ff5f" },
                { 12287, "df7f" },
                { 12288, "80e000" },
                { 1000, "8768" },
                { 2147483647, "87ffffff7f" },
                { 4294967295, "8fffffff7f" },
                { -2147483648LL, "f880808000" },
                { 180000000, "d5eaaa00" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t buf[8], want[8];
                size_t n = unhex(cases[i].hex, want, sizeof(want)), pos = 0;
                uint32_t v = 0;
                int r = klipper_vlq_encode(cases[i].v, buf, sizeof(buf));

                CHECK_INT(r, (int)n);
                CHECK(r > 0 && memcmp(buf, want, n) == 0);
                CHECK_INT(klipper_vlq_decode(want, n, &pos, &v), 0);
                CHECK_INT(pos, n);
                CHECK_INT(v, (uint32_t)cases[i].v);
                /* one byte short is a truncated number */
                pos = 0;
                if (n > 1)
                        CHECK_INT(klipper_vlq_decode(want, n - 1, &pos, &v), -EBADMSG);
        }
        /* six continuation groups are no 32-bit number */
        uint8_t six[] = { 0x81, 0x81, 0x81, 0x81, 0x81, 0x01 };
        size_t pos = 0;
        uint32_t v;
        CHECK_INT(klipper_vlq_decode(six, sizeof(six), &pos, &v), -EBADMSG);
        uint8_t small[2];
        CHECK_INT(klipper_vlq_encode(1000, small, 1), -ENOBUFS);
}

/* Blocks computed with msgproto.py's crc16_ccitt and framing. */
static void test_blocks(void)
{
        uint8_t buf[KLIPPER_MSG_MAX], want[KLIPPER_MSG_MAX];
        size_t n;
        int r;

        CHECK_INT(klipper_crc16("123456789", 9), 0x6f91);

        r = klipper_identify_encode(0, 0, 40, buf, sizeof(buf));
        n = unhex("08100100285e9f7e", want, sizeof(want));
        CHECK_INT(r, (int)n);
        CHECK(memcmp(buf, want, n) == 0);
        CHECK_INT(klipper_block_check(buf, n), (int)n);

        r = klipper_identify_encode(17, 40, 40, buf, sizeof(buf)); /* sequence wraps at 16 */
        n = unhex("0811012828afd77e", want, sizeof(want));
        CHECK_INT(r, (int)n);
        CHECK(memcmp(buf, want, n) == 0);

        r = klipper_identify_response_encode(2, 80, (const uint8_t *)"abc", 3, buf, sizeof(buf));
        n = unhex("0b1200500361626351d47e", want, sizeof(want));
        CHECK_INT(r, (int)n);
        CHECK(memcmp(buf, want, n) == 0);

        KlipperIdentifyMsg m;
        CHECK_INT(klipper_identify_msg_decode(buf + 2, n - KLIPPER_MSG_OVERHEAD, &m), 0);
        CHECK_INT(m.msgid, KLIPPER_MSGID_IDENTIFY_RESPONSE);
        CHECK_INT(m.offset, 80);
        CHECK_INT(m.size, 3);
        CHECK(m.data && memcmp(m.data, "abc", 3) == 0);
        /* a data length that runs past the content */
        buf[4] = 9;
        CHECK_INT(klipper_identify_msg_decode(buf + 2, n - KLIPPER_MSG_OVERHEAD, &m), -EBADMSG);

        static const struct {
                const char *hex;
                int expected;
        } checks[] = {
                { "08100100285e9f7e", 8 },
                { "08100100285e9f7eff", 8 },      /* trailing bytes belong to the next block */
                { "08100100285e9f", 0 },          /* incomplete */
                { "0810", 0 },                    /* shorter than the minimum */
                { "08100100285e9e7e", -EBADMSG }, /* crc */
                { "08100100285e9f7f", -EBADMSG }, /* sync */
                { "08200100285e9f7e", -EBADMSG }, /* seq without the 0x10 marker */
                { "04100100285e9f7e", -EBADMSG }, /* length below 5 */
                { "41100100285e9f7e", -EBADMSG }, /* length above 64 */
        };
        for (size_t i = 0; i < ELEMENTSOF(checks); i++) {
                n = unhex(checks[i].hex, want, sizeof(want));
                CHECK_INT(klipper_block_check(want, n), checks[i].expected);
        }
        n = unhex("0102037e0810", want, sizeof(want));
        CHECK_INT(klipper_block_resync(want, n), 4);
        CHECK_INT(klipper_block_resync(want, 3), 3);

        uint8_t big[KLIPPER_MSG_CONTENT_MAX + 1] = {};
        CHECK_INT(klipper_block_encode(0, big, sizeof(big), buf, sizeof(buf)), -EMSGSIZE);
        CHECK_INT(klipper_block_encode(0, big, 3, buf, 7), -ENOBUFS);
}

static void test_dict(void)
{
        static const char json[] =
                "{\"app\": \"Klipper\", \"version\": \"v0.12.0-300-gabcdef12\", \"build_versions\": "
                "\"gcc: 12.2 binutils: 2.40\", \"config\": {\"MCU\": \"stm32f446xx\", \"CLOCK_FREQ\": "
                "180000000}, \"commands\": {}, \"responses\": {}}";
        uint8_t z[1024];
        uLongf zlen = sizeof(z);
        KlipperDictInfo info = {};
        char *text = NULL;

        CHECK_INT(compress(z, &zlen, (const Bytef *)json, sizeof(json) - 1), Z_OK);
        CHECK_INT(klipper_dict_info_from_zlib(z, zlen, &info, &text), 0);
        CHECK_STR(info.app, "Klipper");
        CHECK_STR(info.version, "v0.12.0-300-gabcdef12");
        CHECK_STR(info.build_versions, "gcc: 12.2 binutils: 2.40");
        CHECK_STR(info.mcu, "stm32f446xx");
        CHECK_INT(info.clock_freq, 180000000);
        CHECK_STR(text, json);
        free(text);
        klipper_dict_info_clear(&info);

        /* truncated stream, garbage, JSON that is no object */
        CHECK_INT(klipper_dict_info_from_zlib(z, zlen - 6, &info, NULL), -EBADMSG);
        CHECK_INT(klipper_dict_info_from_zlib((const uint8_t *)"hello", 5, &info, NULL), -EBADMSG);
        zlen = sizeof(z);
        CHECK_INT(compress(z, &zlen, (const Bytef *)"[1]", 3), Z_OK);
        CHECK_INT(klipper_dict_info_from_zlib(z, zlen, &info, NULL), -EBADMSG);
        /* CLOCK_FREQ as a string, no MCU */
        CHECK_INT(klipper_dict_info_from_json("{\"config\":{\"CLOCK_FREQ\":\"48000000\"}}", 36, &info), 0);
        CHECK_INT(info.clock_freq, 48000000);
        CHECK(!info.mcu && !info.version);
        klipper_dict_info_clear(&info);
}

/* A dictionary bigger than one chunk, read the way klippy reads it. */
static void test_roundtrip(void)
{
        char json[4096];
        uint8_t z[4096], assembled[4096];
        uLongf zlen = sizeof(z);
        size_t have = 0;
        int len = snprintf(
                json, sizeof(json),
                "{\"app\":\"Klipper\",\"version\":\"v1\",\"config\":{\"MCU\":\"rp2040\"},\"pad\":\"");
        for (int i = 0; i < 2000; i++)
                json[len++] = (char)('a' + (i * 7919) % 26);
        len += snprintf(json + len, sizeof(json) - len, "\"}");

        CHECK_INT(compress(z, &zlen, (const Bytef *)json, len), Z_OK);
        for (unsigned seq = 0;; seq++) {
                uint8_t blk[KLIPPER_MSG_MAX];
                size_t chunk = MIN((size_t)KLIPPER_IDENTIFY_CHUNK, zlen - have);
                KlipperIdentifyMsg m;
                int r = klipper_identify_response_encode(seq, have, z + have, chunk, blk, sizeof(blk));

                CHECK(r > 0);
                if (r <= 0)
                        break;
                CHECK_INT(klipper_block_check(blk, r), r);
                CHECK_INT(klipper_identify_msg_decode(blk + 2, r - KLIPPER_MSG_OVERHEAD, &m), 0);
                CHECK_INT(m.offset, have);
                if (m.size == 0)
                        break;
                memcpy(assembled + have, m.data, m.size);
                have += m.size;
        }
        CHECK_INT(have, zlen);
        KlipperDictInfo info = {};
        CHECK_INT(klipper_dict_info_from_zlib(assembled, have, &info, NULL), 0);
        CHECK_STR(info.mcu, "rp2040");
        CHECK_STR(info.version, "v1");
        klipper_dict_info_clear(&info);
}

int main(void)
{
        test_vlq();
        test_blocks();
        test_dict();
        test_roundtrip();
        TESTS_EXIT();
}
