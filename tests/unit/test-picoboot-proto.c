/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/picoboot-proto.h"
#include "codec/rp2040-image.h"
#include "util/macros.h"
#include "tests.h"

static void test_encode(void)
{
        uint8_t c[PICOBOOT_CMD_SIZE];
        /* magic 0x431fd10b, token 0x1234, WRITE, 8 bytes of args, transfer 256, addr, size */
        static const uint8_t write_cmd[PICOBOOT_CMD_SIZE] = {
                0x0b, 0xd1, 0x1f, 0x43, 0x34, 0x12, 0, 0, 0x05, 8, 0, 0, 0x00, 0x01, 0, 0,
                0x00, 0x10, 0x00, 0x10, 0x00, 0x01, 0, 0, 0,    0, 0, 0, 0,    0,    0, 0,
        };
        PicobootCmd d;

        picoboot_encode_range(c, 0x1234, PICOBOOT_WRITE, 0x10001000, 256);
        CHECK(memcmp(c, write_cmd, sizeof(c)) == 0);
        CHECK_INT(picoboot_cmd_decode(c, sizeof(c), &d), PICOBOOT_OK);
        CHECK_INT(d.token, 0x1234);
        CHECK_INT(d.id, PICOBOOT_WRITE);
        CHECK_INT(d.addr, 0x10001000);
        CHECK_INT(d.size, 256);
        CHECK_INT(d.transfer_length, 256);

        picoboot_encode_range(c, 1, PICOBOOT_FLASH_ERASE, 0x10000000, 4096);
        CHECK_INT(picoboot_cmd_decode(c, sizeof(c), &d), PICOBOOT_OK);
        CHECK_INT(d.transfer_length, 0);

        picoboot_encode_reboot(c, 2, 0, 0x20042000, 500);
        CHECK_INT(picoboot_cmd_decode(c, sizeof(c), &d), PICOBOOT_OK);
        CHECK_INT(d.size, 0x20042000);
        CHECK_INT(d.delay_ms, 500);
        CHECK_INT(c[9], 12);

        picoboot_encode_exclusive(c, 3, PICOBOOT_EXCLUSIVE_AND_EJECT);
        CHECK_INT(picoboot_cmd_decode(c, sizeof(c), &d), PICOBOOT_OK);
        CHECK_INT(d.exclusive, 2);

        picoboot_encode_simple(c, 4, PICOBOOT_EXIT_XIP);
        CHECK_INT(picoboot_cmd_decode(c, sizeof(c), &d), PICOBOOT_OK);
}

static void test_decode_errors(void)
{
        static const struct {
                const char *what;
                size_t offset; /* byte to change, 32: length 31 */
                uint8_t value;
                int expected;
        } cases[] = {
                { "bad magic", 0, 0x0c, -EBADMSG },
                { "short packet", 32, 0, -EBADMSG },
                { "unknown id", 8, 0x0a, PICOBOOT_UNKNOWN_CMD },
                { "IN bit on a write", 8, 0x85, PICOBOOT_UNKNOWN_CMD },
                { "arg size 4 for a range", 9, 4, PICOBOOT_INVALID_CMD_LENGTH },
                { "transfer length != size", 13, 2, PICOBOOT_INVALID_TRANSFER_LENGTH },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t c[PICOBOOT_CMD_SIZE];
                PicobootCmd d;
                size_t len = sizeof(c);

                picoboot_encode_range(c, 9, PICOBOOT_WRITE, 0x10000000, 256);
                if (cases[i].offset == 32)
                        len = 31;
                else
                        c[cases[i].offset] = cases[i].value;
                CHECK_INT(picoboot_cmd_decode(c, len, &d), cases[i].expected);
        }

        /* an erase with a data phase */
        uint8_t c[PICOBOOT_CMD_SIZE];
        PicobootCmd d;
        picoboot_encode_range(c, 9, PICOBOOT_FLASH_ERASE, 0x10000000, 4096);
        c[12] = 1;
        CHECK_INT(picoboot_cmd_decode(c, sizeof(c), &d), PICOBOOT_INVALID_TRANSFER_LENGTH);
}

static void test_status(void)
{
        uint8_t b[PICOBOOT_STATUS_SIZE];
        PicobootCmdStatus s = { .token = 0xabcdef01, .status = PICOBOOT_BAD_ALIGNMENT, .cmd_id = 3 }, t;

        picoboot_status_encode(b, &s);
        CHECK_INT(b[4], 5);
        CHECK_INT(picoboot_status_decode(b, sizeof(b), &t), 0);
        CHECK_INT(t.token, 0xabcdef01);
        CHECK_INT(t.status, PICOBOOT_BAD_ALIGNMENT);
        CHECK_INT(t.cmd_id, 3);
        CHECK(!t.in_progress);
        CHECK_INT(picoboot_status_decode(b, 15, &t), -EBADMSG);
        CHECK_STR(picoboot_status_to_string(PICOBOOT_BAD_ALIGNMENT), "bad-alignment");
        CHECK(!picoboot_status_to_string(_PICOBOOT_STATUS_MAX));
}

static void test_crc(void)
{
        /* CRC-32/MPEG-2 check value (Greg Cook's CRC catalogue) */
        CHECK_INT(rp2040_boot2_crc("123456789", 9), 0x0376e6e7);
        CHECK_INT(rp2040_boot2_crc("", 0), 0xffffffff);
}

static void put32(uint8_t *p, uint32_t v)
{
        p[0] = v & 0xff, p[1] = (v >> 8) & 0xff, p[2] = (v >> 16) & 0xff, p[3] = v >> 24;
}

/* A Klipper-like RP2040 image at `base`: boot2 when at 0x10000000, vector
 * table, code, and a compressed data dictionary naming `mcu`. */
static FlashImage *image(uint32_t base, const char *mcu, size_t size)
{
        FlashImage *img = NULL;
        uint8_t *buf = calloc(1, size);
        size_t vt = base == 0x10000000 ? 256 : 0;
        char json[256];
        uLongf zlen = 512;

        for (size_t i = 0; i < 252 && vt; i++)
                buf[i] = (uint8_t)(i ^ 0x5a);
        if (vt)
                put32(buf + 252, rp2040_boot2_crc(buf, 252));
        put32(buf + vt, 0x20042000);
        put32(buf + vt + 4, base + (uint32_t)vt + 0xc1);
        snprintf(json, sizeof(json),
                 "{\"app\": \"Klipper\", \"version\": \"v0.12.0\", \"config\": {\"MCU\": \"%s\"}}", mcu);
        compress2(buf + 0x400, &zlen, (const Bytef *)json, strlen(json), 9);
        flash_image_new(&img, FLASH_IMAGE_FORMAT_BIN);
        flash_image_add(img, base, buf, size);
        free(buf);
        return img;
}

static void test_checks(void)
{
        enum { NONE, BAD_CRC, SP_IN_FLASH, EVEN_RESET, RESET_BELOW };
        static const struct {
                const char *what;
                uint32_t base;
                uint32_t app_offset;
                const char *mcu;
                size_t size;
                int mutation;
                int expected;
                ImageCheck failed;
                const char *part;
        } cases[] = {
                { "klipper, no bootloader", 0x10000000, 0, "rp2040", 8192, NONE, 0, 0, NULL },
                { "klipper behind katapult", 0x10004000, 0x4000, "rp2040", 8192, NONE, 0, 0, NULL },
                { "bad boot2 crc", 0x10000000, 0, "rp2040", 8192, BAD_CRC, -ENOEXEC,
                  IMAGE_CHECK_VECTOR_TABLE, "boot2" },
                { "stm32 image", 0x10000000, 0, "stm32f446xx", 8192, NONE, -EMEDIUMTYPE, IMAGE_CHECK_MCU,
                  "stm32f446xx" },
                { "too big for 2 MiB", 0x10000000, 0, "rp2040", 2 * 1024 * 1024 + 4096, NONE, -ENOSPC,
                  IMAGE_CHECK_FIT, "does not fit" },
                { "sp in flash", 0x10004000, 0x4000, "rp2040", 8192, SP_IN_FLASH, -ENOEXEC,
                  IMAGE_CHECK_VECTOR_TABLE, "stack pointer" },
                { "arm reset vector", 0x10004000, 0x4000, "rp2040", 8192, EVEN_RESET, -ENOEXEC,
                  IMAGE_CHECK_VECTOR_TABLE, "Thumb" },
                { "built for 0x10000000, written at 0x10004000", 0x10004000, 0x4000, "rp2040", 8192,
                  RESET_BELOW, -ENOEXEC, IMAGE_CHECK_VECTOR_TABLE, "another address" },
                { "overwrites katapult", 0x10000000, 0x4000, "rp2040", 8192, NONE, -EPERM,
                  IMAGE_CHECK_BOOTLOADER_REGION, "bootloader" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(flash_image_freep) FlashImage *img =
                        image(cases[i].base, cases[i].mcu, cases[i].size);
                _cleanup_free_ char *msg = NULL;
                ImageCheckTarget t;
                ImageCheck failed = _IMAGE_CHECK_INVALID;
                uint8_t *p = img->segments[0].data;
                size_t vt = cases[i].base == 0x10000000 ? 256 : 0;
                int r;

                switch (cases[i].mutation) {
                case BAD_CRC:
                        p[17] ^= 0x40;
                        break;
                case SP_IN_FLASH:
                        put32(p + vt, 0x10001000);
                        break;
                case EVEN_RESET:
                        put32(p + vt + 4, cases[i].base + 0x200);
                        break;
                case RESET_BELOW:
                        put32(p + vt + 4, 0x100001c1);
                        break;
                }
                rp2040_check_target(&t, 2 * 1024 * 1024, cases[i].app_offset, false);
                r = rp2040_check_all(img, &t, 0, &failed, &msg, NULL);
                if (r != cases[i].expected)
                        fprintf(stderr, "case '%s': %d (%s)\n", cases[i].what, r, strna(msg));
                CHECK_INT(r, cases[i].expected);
                if (r < 0) {
                        CHECK_INT(failed, cases[i].failed);
                        CHECK(msg && strstr(msg, cases[i].part));
                        /* --force of the failed check lets it pass (others permitting) */
                        ImageCheck again = _IMAGE_CHECK_INVALID;
                        int r2 = rp2040_check_all(img, &t, 1U << failed, &again, NULL, NULL);
                        CHECK(r2 == 0 || again != failed);
                }
        }
}

int main(void)
{
        test_encode();
        test_decode_errors();
        test_status();
        test_crc();
        test_checks();
        TESTS_EXIT();
}
