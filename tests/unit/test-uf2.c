/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/uf2.h"
#include "util/macros.h"
#include "tests.h"

static void put32(uint8_t *p, uint32_t v)
{
        p[0] = v & 0xff, p[1] = (v >> 8) & 0xff, p[2] = (v >> 16) & 0xff, p[3] = v >> 24;
}

/* n blocks of 256 bytes from 0x10000000, byte i of the data = (i * 7) & 0xff */
static uint8_t *make(size_t n, uint32_t family)
{
        uint8_t *buf = calloc(n, UF2_BLOCK_SIZE);
        for (size_t k = 0; k < n; k++) {
                uint8_t *b = buf + k * UF2_BLOCK_SIZE;
                put32(b, UF2_MAGIC_START0);
                put32(b + 4, UF2_MAGIC_START1);
                put32(b + 8, UF2_FLAG_FAMILY_ID);
                put32(b + 12, 0x10000000U + (uint32_t)k * 256);
                put32(b + 16, 256);
                put32(b + 20, (uint32_t)k);
                put32(b + 24, (uint32_t)n);
                put32(b + 28, family);
                for (size_t i = 0; i < 256; i++)
                        b[32 + i] = (uint8_t)(((k * 256 + i) * 7) & 0xff);
                put32(b + 508, UF2_MAGIC_END);
        }
        return buf;
}

enum {
        MUT_NONE,
        MUT_FAMILY,
        MUT_NO_FAMILY_FLAG,
        MUT_MAGIC_END,
        MUT_PAYLOAD_476,
        MUT_UNALIGNED,
        MUT_NUMBERING,
        MUT_NOT_MAIN,
        MUT_TRUNCATE,
        MUT_DUP_ADDR,
        MUT_CONTAINER,
        MUT_SHORT_COUNT
};

static void test_parse(void)
{
        static const struct {
                const char *what;
                int mutation;
                uint32_t value;
                int expected;
                const char *message_part;
                size_t expected_size;
        } cases[] = {
                { "rp2040 image", MUT_NONE, 0, 0, NULL, 4 * 256 },
                { "rp2350 arm image", MUT_FAMILY, 0xe48bff59, -EMEDIUMTYPE, "RP2350-ARM-S", 0 },
                { "rp2350 riscv image", MUT_FAMILY, 0xe48bff5a, -EMEDIUMTYPE, "RP2350-RISCV", 0 },
                { "samd21 image", MUT_FAMILY, 0x68ed2b88, -EMEDIUMTYPE, "SAMD21", 0 },
                { "unknown family", MUT_FAMILY, 0x12345678, -EMEDIUMTYPE, "unknown family 0x12345678", 0 },
                { "no family flag", MUT_NO_FAMILY_FLAG, 0, -EBADMSG, "no family id", 0 },
                { "broken end magic", MUT_MAGIC_END, 0, -EBADMSG, "block 2 is broken", 0 },
                { "476-byte payload", MUT_PAYLOAD_476, 0, -EBADMSG, "256-byte aligned", 0 },
                { "unaligned target", MUT_UNALIGNED, 0, -EBADMSG, "256-byte aligned", 0 },
                { "block number past the count", MUT_NUMBERING, 0, -EBADMSG, "inconsistent", 0 },
                { "not-main-flash block skipped", MUT_NOT_MAIN, 0, 0, NULL, 3 * 256 },
                { "cut mid block", MUT_TRUNCATE, 0, -EBADMSG, "512-byte blocks", 0 },
                { "same address twice", MUT_DUP_ADDR, 0, -EEXIST, "overlapping", 0 },
                { "file container", MUT_CONTAINER, 0, -EBADMSG, "file container", 0 },
                { "count says more blocks", MUT_SHORT_COUNT, 0, -EBADMSG, "truncated", 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ uint8_t *buf = make(4, UF2_FAMILY_RP2040);
                _cleanup_(flash_image_freep) FlashImage *img = NULL;
                _cleanup_free_ char *msg = NULL;
                size_t len = 4 * UF2_BLOCK_SIZE;
                uint8_t *b2 = buf + 2 * UF2_BLOCK_SIZE;
                int r;

                switch (cases[i].mutation) {
                case MUT_FAMILY:
                        for (int k = 0; k < 4; k++)
                                put32(buf + k * UF2_BLOCK_SIZE + 28, cases[i].value);
                        break;
                case MUT_NO_FAMILY_FLAG:
                        put32(b2 + 8, 0);
                        break;
                case MUT_MAGIC_END:
                        b2[508] ^= 1;
                        break;
                case MUT_PAYLOAD_476:
                        put32(b2 + 16, 476);
                        break;
                case MUT_UNALIGNED:
                        put32(b2 + 12, 0x10000204);
                        break;
                case MUT_NUMBERING:
                        put32(b2 + 20, 7);
                        break;
                case MUT_NOT_MAIN:
                        put32(b2 + 8, UF2_FLAG_FAMILY_ID | UF2_FLAG_NOT_MAIN_FLASH);
                        break;
                case MUT_TRUNCATE:
                        len -= 100;
                        break;
                case MUT_DUP_ADDR:
                        put32(b2 + 12, 0x10000100);
                        break;
                case MUT_CONTAINER:
                        put32(b2 + 8, UF2_FLAG_FAMILY_ID | UF2_FLAG_FILE_CONTAINER);
                        break;
                case MUT_SHORT_COUNT:
                        for (int k = 0; k < 4; k++)
                                put32(buf + k * UF2_BLOCK_SIZE + 24, 5);
                        break;
                }
                r = uf2_parse(buf, len, UF2_FAMILY_RP2040, UF2_RP2040_PAYLOAD, &img, &msg);
                if (r != cases[i].expected)
                        fprintf(stderr, "case '%s': %d (%s)\n", cases[i].what, r, strna(msg));
                CHECK_INT(r, cases[i].expected);
                if (cases[i].message_part)
                        CHECK(msg && strstr(msg, cases[i].message_part));
                if (r == 0) {
                        CHECK_INT(flash_image_get_size(img), cases[i].expected_size);
                        CHECK_INT(flash_image_get_address(img), 0x10000000);
                        const uint8_t *p = flash_image_find(img, 0x10000000, 256);
                        CHECK(p && p[255] == (uint8_t)((255 * 7) & 0xff));
                }
        }
}

static void test_roundtrip(void)
{
        _cleanup_(flash_image_freep) FlashImage *img = NULL, *back = NULL;
        _cleanup_free_ uint8_t *enc = NULL;
        uint8_t data[3 * 256 + 100];
        size_t len = 0;

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(i * 13);
        CHECK_INT(flash_image_new(&img, FLASH_IMAGE_FORMAT_BIN), 0);
        CHECK_INT(flash_image_add(img, 0x10004000, data, sizeof(data)), 0);
        CHECK_INT(uf2_encode(img, UF2_FAMILY_RP2040, 256, &enc, &len), 0);
        CHECK_INT(len, 4 * UF2_BLOCK_SIZE);
        CHECK(uf2_detect(enc, len));
        CHECK(!uf2_detect(data, sizeof(data)));
        CHECK_INT(uf2_parse(enc, len, UF2_FAMILY_RP2040, 256, &back, NULL), 0);
        /* the last page is padded with erased-flash bytes */
        CHECK_INT(flash_image_get_size(back), 4 * 256);
        CHECK(memcmp(flash_image_find(back, 0x10004000, sizeof(data)), data, sizeof(data)) == 0);
        CHECK_INT(flash_image_find(back, 0x10004000 + sizeof(data), 1)[0], 0xff);
        /* the wrong family for the reader */
        CHECK_INT(uf2_parse(enc, len, 0x68ed2b88, 256, &back, NULL), -EMEDIUMTYPE);
        CHECK_INT(uf2_encode(img, UF2_FAMILY_RP2040, 477, &enc, &len), -EINVAL);
}

static void test_names(void)
{
        CHECK_STR(uf2_family_to_string(0xe48bff56), "RP2040");
        CHECK_STR(uf2_family_to_string(0x68ed2b88), "SAMD21");
        CHECK(!uf2_family_to_string(0));
}

int main(void)
{
        test_parse();
        test_roundtrip();
        test_names();
        TESTS_EXIT();
}
