/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/avr-image.h"
#include "util/macros.h"

static int message(char **ret, const char *format, ...) _printf_(2, 3);
static int message(char **ret, const char *format, ...)
{
        va_list ap;
        int r;

        if (!ret)
                return 0;
        va_start(ap, format);
        r = vasprintf(ret, format, ap);
        va_end(ap);
        if (r < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

int avr_check_vector_table(const FlashImage *img, char **ret_message)
{
        const FlashSegment *s;
        uint16_t w;

        if (!img || img->n_segments == 0)
                return -EINVAL;
        s = &img->segments[0];
        if (s->address != 0 || s->size < 2) {
                message(ret_message,
                        "the image starts at 0x%05" PRIx32 ", not at 0: an AVR starts its application at "
                        "address 0 (Klipper's klipper.elf.hex)",
                        s->address);
                return -ENOEXEC;
        }
        w = (uint16_t)(s->data[0] | s->data[1] << 8);
        /* JMP k: 1001 010k kkkk 110k; RJMP k: 1100 kkkk kkkk kkkk */
        if ((w & 0xfe0e) == 0x940c || (w & 0xf000) == 0xc000)
                return 0;
        message(ret_message,
                "the first word 0x%04x is no JMP or RJMP: not an AVR application's reset vector (an image "
                "for another MCU?)",
                w);
        return -ENOEXEC;
}

int avr_check_boot_section(const FlashImage *img, uint32_t flash_size, uint32_t boot_size,
                           char **ret_message)
{
        uint32_t boot = flash_size - boot_size;

        if (!img || boot_size >= flash_size)
                return -EINVAL;
        for (size_t i = 0; i < img->n_segments; i++) {
                const FlashSegment *s = &img->segments[i];
                if ((uint64_t)s->address + s->size > boot) {
                        message(ret_message,
                                "the image reaches 0x%05" PRIx64
                                ", into the bootloader section at 0x%05" PRIx32 " (the top %" PRIu32
                                " bytes of flash): the bootloader cannot be overwritten "
                                "through itself; build the image for this board",
                                (uint64_t)s->address + s->size - 1, boot, boot_size);
                        return -EPERM;
                }
        }
        return 0;
}

static int avr_check_one(ImageCheck c, const FlashImage *img, const ImageCheckTarget *t, void *userdata,
                         char **ret_message)
{
        const uint32_t *boot_size = userdata;

        switch (c) {
        case IMAGE_CHECK_VECTOR_TABLE:
                return avr_check_vector_table(img, ret_message);
        case IMAGE_CHECK_BOOTLOADER_REGION:
                return avr_check_boot_section(img, t->flash_size, *boot_size, ret_message);
        case IMAGE_CHECK_FIT:
        case IMAGE_CHECK_MCU:
                return image_check_one(c, img, t, ret_message);
        case _IMAGE_CHECK_MAX:
        case _IMAGE_CHECK_INVALID:
                break;
        }
        return -EINVAL;
}

int avr_check_all(const FlashImage *img, const ImageCheckTarget *t, uint32_t boot_size, unsigned force,
                  ImageCheck *ret_failed, char **ret_message, ImageCheckResult *results)
{
        if (!img || !t || t->flash_base != 0)
                return -EINVAL;
        /* No force for the boot section: the bootloader cannot write over
         * itself, whatever the user asks. */
        return image_check_run(img, t, avr_check_one, &boot_size,
                               force & ~(1U << IMAGE_CHECK_BOOTLOADER_REGION), ret_failed, ret_message,
                               results);
}
