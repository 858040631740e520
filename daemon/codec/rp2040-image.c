/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec-util.h"
#include "codec/picoboot-proto.h"
#include "codec/rp2040-image.h"
#include "util/macros.h"

uint32_t rp2040_boot2_crc(const void *buf, size_t len)
{
        const uint8_t *p = buf;
        uint32_t crc = 0xffffffffU;

        /* MSB first: zlib's crc32() is the reflected variant and cannot be used */
        for (size_t i = 0; i < len; i++) {
                crc ^= (uint32_t)p[i] << 24;
                for (int b = 0; b < 8; b++)
                        crc = (crc & 0x80000000U) ? (crc << 1) ^ 0x04C11DB7U : crc << 1;
        }
        return crc;
}

void rp2040_check_target(ImageCheckTarget *ret, uint32_t flash_size, uint32_t app_offset,
                         bool address_explicit)
{
        *ret = (ImageCheckTarget){
                .flash_base = RP2040_FLASH_BASE,
                .flash_size = flash_size,
                .app_offset = app_offset,
                .ram_start = RP2040_SRAM_BASE,
                .ram_size = RP2040_SRAM_SIZE,
                .mcu = "rp2040",
        };
}

static bool in_flash(const ImageCheckTarget *t, uint32_t a)
{
        return a >= t->flash_base && (uint64_t)a < (uint64_t)t->flash_base + t->flash_size;
}

static bool in_ram(uint32_t a, bool top_inclusive)
{
        uint64_t end = (uint64_t)RP2040_SRAM_BASE + RP2040_SRAM_SIZE;
        return a >= RP2040_SRAM_BASE && (top_inclusive ? a <= end : a < end);
}

int rp2040_check_vector_table(const FlashImage *img, const ImageCheckTarget *t, char **ret_message)
{
        uint32_t start, vt;
        const uint8_t *p;

        if (!img || !t)
                return -EINVAL;
        start = flash_image_get_address(img);

        if (start == t->flash_base) {
                uint32_t crc, stored;

                p = flash_image_find(img, start, RP2040_BOOT2_SIZE);
                if (!p)
                        return codec_message(ret_message, -ENOEXEC,
                                             "the image starts at 0x%08x but holds less than the 256-byte "
                                             "second-stage loader (boot2) the boot ROM needs there",
                                             start);
                crc = rp2040_boot2_crc(p, RP2040_BOOT2_SIZE - 4);
                stored = codec_le32(p + RP2040_BOOT2_SIZE - 4);
                if (crc != stored)
                        return codec_message(
                                ret_message, -ENOEXEC,
                                "the image has no valid second-stage loader (boot2) at 0x%08x: its "
                                "CRC is 0x%08" PRIx32 ", the boot ROM expects 0x%08" PRIx32
                                "; the board would stay in BOOTSEL. Is this a Klipper image built "
                                "for a bootloader (use its address, e.g. 0x10004000 for Katapult)?",
                                start, stored, crc);
                vt = start + RP2040_BOOT2_SIZE;
        } else
                vt = start;

        p = flash_image_find(img, vt, 8);
        if (!p)
                return codec_message(ret_message, -ENOEXEC, "the image has no vector table at 0x%08" PRIx32,
                                     vt);
        {
                uint32_t sp = codec_le32(p), reset = codec_le32(p + 4);

                if (!in_ram(sp, true) || (sp & 3) != 0)
                        return codec_message(
                                ret_message, -ENOEXEC,
                                "the vector table at 0x%08" PRIx32 " starts with 0x%08" PRIx32
                                ", not a stack pointer in the RP2040's SRAM: this is not an RP2040 "
                                "application for this address",
                                vt, sp);
                if (!(reset & 1) || !(in_flash(t, reset & ~1U) || in_ram(reset & ~1U, false)))
                        return codec_message(ret_message, -ENOEXEC,
                                             "the reset vector at 0x%08" PRIx32 " is 0x%08" PRIx32
                                             ", not a Thumb address in flash or SRAM: this is not an RP2040 "
                                             "application for this address",
                                             vt + 4, reset);
                if (in_flash(t, reset & ~1U) && (reset & ~1U) < vt)
                        return codec_message(
                                ret_message, -ENOEXEC,
                                "the reset vector 0x%08" PRIx32 " points below the image's vector "
                                "table at 0x%08" PRIx32 ": the image was built for another address",
                                reset, vt);
        }
        return 0;
}

static int rp2040_check_one(ImageCheck c, const FlashImage *img, const ImageCheckTarget *t, void *userdata,
                            char **ret_message)
{
        if (c == IMAGE_CHECK_VECTOR_TABLE)
                return rp2040_check_vector_table(img, t, ret_message);
        return image_check_one(c, img, t, ret_message);
}

int rp2040_check_all(const FlashImage *img, const ImageCheckTarget *t, unsigned force,
                     ImageCheck *ret_failed, char **ret_message, ImageCheckResult *results)
{
        return image_check_run(img, t, rp2040_check_one, NULL, force, ret_failed, ret_message, results);
}
