/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <zlib.h>

#include "codec/avr-image.h"
#include "util/macros.h"
#include "tests.h"

#define MEGA_FLASH (256u * 1024u)
#define MEGA_BOOT  8192u

/* An AVR image at `address`: reset vector word, filler, optionally Klipper's
 * compressed data dictionary naming `mcu`. */
static FlashImage *make(uint32_t address, uint16_t vector, size_t size, const char *mcu)
{
        FlashImage *img = NULL;
        uint8_t *buf = calloc(1, size);
        size_t at = 64;

        buf[0] = (uint8_t)vector;
        buf[1] = (uint8_t)(vector >> 8);
        for (size_t i = 2; i < size; i++)
                buf[i] = (uint8_t)(i * 7u);
        if (mcu) {
                char json[256];
                uint8_t z[512];
                uLongf zlen = sizeof(z);
                int n = snprintf(json, sizeof(json), "{\"app\": \"Klipper\", \"config\": {\"MCU\": \"%s\"}}",
                                 mcu);
                CHECK(compress2(z, &zlen, (const Bytef *)json, (uLong)n, 9) == Z_OK);
                CHECK(at + zlen <= size);
                memcpy(buf + at, z, zlen);
        }
        CHECK_INT(flash_image_new(&img, FLASH_IMAGE_FORMAT_IHEX), 0);
        CHECK_INT(flash_image_add(img, address, buf, size), 0);
        free(buf);
        return img;
}

static void test_checks(void)
{
        static const struct {
                uint32_t address;
                uint16_t vector;
                size_t size;
                const char *mcu;
                unsigned force;
                int ret;
                ImageCheck failed;
        } cases[] = {
                /* jmp at 0, Klipper for the 2560 */
                { 0, 0x940c, 4096, "atmega2560", 0, 0, 0 },
                /* rjmp at 0, no dictionary */
                { 0, 0xc0ff, 4096, NULL, 0, 0, 0 },
                /* a Cortex-M vector table's first half-word (an STM32 image) */
                { 0, 0x0000, 4096, NULL, 0, -ENOEXEC, IMAGE_CHECK_VECTOR_TABLE },
                { 0, 0x0000, 4096, NULL, 1u << IMAGE_CHECK_VECTOR_TABLE, 0, 0 },
                /* not at 0 */
                { 0x100, 0x940c, 4096, NULL, 0, -ENOEXEC, IMAGE_CHECK_VECTOR_TABLE },
                /* built for another AVR */
                { 0, 0x940c, 4096, "atmega1280", 0, -EMEDIUMTYPE, IMAGE_CHECK_MCU },
                { 0, 0x940c, 4096, "atmega1280", 1u << IMAGE_CHECK_MCU, 0, 0 },
                /* up to the boot section is fine, one byte into it is not, even forced */
                { 0, 0x940c, MEGA_FLASH - MEGA_BOOT, NULL, 0, 0, 0 },
                { 0, 0x940c, MEGA_FLASH - MEGA_BOOT + 1, NULL, 0, -EPERM, IMAGE_CHECK_BOOTLOADER_REGION },
                { 0, 0x940c, MEGA_FLASH - MEGA_BOOT + 1, NULL, 1u << IMAGE_CHECK_BOOTLOADER_REGION, -EPERM,
                  IMAGE_CHECK_BOOTLOADER_REGION },
                /* past the end of flash */
                { 0, 0x940c, MEGA_FLASH + 2, NULL, 1u << IMAGE_CHECK_BOOTLOADER_REGION, -ENOSPC,
                  IMAGE_CHECK_FIT },
        };
        ImageCheckTarget t = { .flash_base = 0, .flash_size = MEGA_FLASH, .mcu = "atmega2560" };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                FlashImage *img = make(cases[i].address, cases[i].vector, cases[i].size, cases[i].mcu);
                ImageCheck failed = _IMAGE_CHECK_INVALID;
                char *msg = NULL;
                int r = avr_check_all(img, &t, MEGA_BOOT, cases[i].force, &failed, &msg, NULL);
                if (r != cases[i].ret)
                        fprintf(stderr, "case %zu: %d %s\n", i, r, strna(msg));
                CHECK_INT(r, cases[i].ret);
                if (cases[i].ret < 0) {
                        CHECK_INT(failed, cases[i].failed);
                        CHECK(msg && strlen(msg) > 10);
                }
                free(msg);
                flash_image_free(img);
        }
        /* only flash from 0 */
        ImageCheckTarget arm = { .flash_base = 0x08000000, .flash_size = MEGA_FLASH };
        FlashImage *img = make(0, 0x940c, 16, NULL);
        CHECK_INT(avr_check_all(img, &arm, MEGA_BOOT, 0, NULL, NULL, NULL), -EINVAL);
        flash_image_free(img);
}

int main(void)
{
        test_checks();
        TESTS_EXIT();
}
