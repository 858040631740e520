/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "codec/codec-util.h"
#include "codec/flash-image.h"
#include "codec/image-check.h"
#include "codec/avr-image.h"
#include "codec/rp2040-image.h"
#include "codec/uf2.h"
#include "jobs/job-check.h"

JobPayload *job_payload_free(JobPayload *p)
{
        if (!p)
                return NULL;
        free(p->mcu);
        flash_image_free(p->image);
        free(p);
        return NULL;
}

static JobError job_error_from_check(ImageCheck c)
{
        switch (c) {
        case IMAGE_CHECK_FIT:
                return JOB_ERROR_CHECK_FIT;
        case IMAGE_CHECK_VECTOR_TABLE:
                return JOB_ERROR_CHECK_VECTOR_TABLE;
        case IMAGE_CHECK_BOOTLOADER_REGION:
                return JOB_ERROR_CHECK_BOOTLOADER_REGION;
        case IMAGE_CHECK_MCU:
                return JOB_ERROR_CHECK_MCU;
        case _IMAGE_CHECK_MAX:
        case _IMAGE_CHECK_INVALID:
                break;
        }
        return JOB_ERROR_INTERNAL;
}

/* Replace the image's first two words (a vector table's stack pointer and
 * reset vector), where a refusal quotes them, by "0x........". */
static void redact_leading_words(const FlashImage *img, char *message)
{
        const uint8_t *v = message && img ? flash_image_find(img, flash_image_get_address(img), 8) : NULL;

        for (size_t w = 0; v && w < 2; w++) {
                char hex[11];
                snprintf(hex, sizeof(hex), "0x%08" PRIx32, codec_le32(v + 4 * w));
                for (char *p = strstr(message, hex); p; p = strstr(p + 10, hex))
                        memcpy(p + 2, "........", 8);
        }
}

static int refuse(JobError e, char *message, JobError *ret_error, char **ret_message)
{
        *ret_error = e;
        *ret_message = message;
        return -EINVAL;
}

/* Whether a would-be raw image is text (a log, a config, a source file):
 * firmware starts with a vector table, whose stack pointer and handler
 * addresses hold bytes no text has. */
static bool looks_like_text(const uint8_t *data, size_t size)
{
        size_t n = MIN(size, (size_t)512);

        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((data[i] >= 0x20 && data[i] < 0x7f) || data[i] == '\n' || data[i] == '\r' ||
                      data[i] == '\t'))
                        return false;
        return true;
}

static void notef(JobCheckNote note, void *userdata, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static void notef(JobCheckNote note, void *userdata, const char *format, ...)
{
        char line[1024];
        va_list ap;

        if (!note)
                return;
        va_start(ap, format);
        vsnprintf(line, sizeof(line), format, ap);
        va_end(ap);
        note(userdata, line);
}

int job_check_image(const JobCheckInput *in, JobCheckNote note, void *userdata, JobPayload **ret_payload,
                    JobError *ret_error, char **ret_message)
{
        _cleanup_(flash_image_freep) FlashImage *img = NULL;
        const DfuseLayout *layout = in->layout;
        _cleanup_(job_payload_freep) JobPayload *p = NULL;
        _cleanup_free_ char *error = NULL;
        ImageCheckResult results[_IMAGE_CHECK_MAX] = {};
        FlashImageFormat format = _FLASH_IMAGE_FORMAT_INVALID;
        const JobFlowBoard *b = in->board;
        ImageCheckTarget t = {};
        ImageCheck failed = _IMAGE_CHECK_INVALID;
        bool has_address = in->has_address;
        uint32_t address = in->address;
        bool rp2040 = b && b->mcu && strcasecmp(b->mcu, "rp2040") == 0;
        bool uf2 = in->format ? streq(in->format, "uf2") : uf2_detect(in->data, in->size);
        char *text = NULL;
        int r;

        if (uf2) {
                /* UF2 carries its addresses and family; the RP2040's ROM
                 * takes 256-byte pages of its own family only */
                if (b && !rp2040) {
                        (void)asprintf(&text, "UF2 images are flashed to RP2040 boards only; %s has an %s",
                                       strna(b->name), strna(b->mcu));
                        return refuse(JOB_ERROR_IMAGE_INVALID, text, ret_error, ret_message);
                }
                r = uf2_parse(in->data, in->size, UF2_FAMILY_RP2040, UF2_RP2040_PAYLOAD, &img, &error);
                if (r < 0) {
                        (void)asprintf(&text, "%s%s",
                                       r == -EMEDIUMTYPE ? "refused before anything was erased: "
                                                         : "the image cannot be read: ",
                                       error ? error : strerror(-r));
                        return refuse(r == -EMEDIUMTYPE ? JOB_ERROR_CHECK_MCU : JOB_ERROR_IMAGE_INVALID,
                                      text, ret_error, ret_message);
                }
                if (has_address && address != flash_image_get_address(img)) {
                        (void)asprintf(&text,
                                       "the UF2 image starts at 0x%08" PRIx32 ", not at the address given "
                                       "(0x%08" PRIx32 ")",
                                       flash_image_get_address(img), address);
                        return refuse(JOB_ERROR_IMAGE_INVALID, text, ret_error, ret_message);
                }
        } else if (in->format) {
                format = flash_image_format_from_string(in->format);
                if (format < 0) {
                        (void)asprintf(&text, "unknown image format \"%s\": use bin, hex or dfu",
                                       in->format);
                        return refuse(JOB_ERROR_IMAGE_INVALID, text, ret_error, ret_message);
                }
        } else
                format = flash_image_detect(in->data, in->size, NULL);

        /* Flash is programmed in whole words, and the sessions assume an
         * aligned start; an odd address left a board stuck in DFU. Not a
         * check that can be forced: no target wants it. */
        if (has_address && address % 4 != 0) {
                if (b && b->flash_size > 0)
                        (void)asprintf(&text,
                                       "refused before anything was erased: the address 0x%08" PRIx32
                                       " is not a multiple of 4; flash is programmed in whole words and a "
                                       "firmware image starts on an aligned address (this board's "
                                       "application start is 0x%08" PRIx32 ")",
                                       address, b->flash_base + b->app_offset);
                else
                        (void)asprintf(&text,
                                       "refused before anything was erased: the address 0x%08" PRIx32
                                       " is not a multiple of 4; flash is programmed in whole words and a "
                                       "firmware image starts on an aligned address",
                                       address);
                return refuse(JOB_ERROR_CHECK_VECTOR_TABLE, text, ret_error, ret_message);
        }

        /* A mass erase clears the whole flash, the bootloader below the
         * application offset included. Only a board known to keep no
         * bootloader in its flash (application offset 0: the ROM
         * bootloader lives in system memory) is spared the question. */
        if (in->mass_erase && !(in->force & (1u << IMAGE_CHECK_BOOTLOADER_REGION)) &&
            !(b && b->flash_size > 0 && b->app_offset == 0)) {
                if (b && b->flash_size > 0)
                        (void)asprintf(&text,
                                       "refused before anything was erased: a mass erase erases the whole "
                                       "flash, the board's bootloader at 0x%08" PRIx32 "-0x%08" PRIx32
                                       " (%" PRIu32 " KiB) included; leave out --mass-erase (changed "
                                       "sectors are erased anyway), or add --force bootloader-region to "
                                       "wipe the bootloader too",
                                       b->flash_base, b->flash_base + b->app_offset - 1,
                                       b->app_offset / 1024);
                else
                        (void)asprintf(&text,
                                       "refused before anything was erased: a mass erase erases the whole "
                                       "flash, a bootloader in it included, and this board's bootloader "
                                       "region is unknown; leave out --mass-erase (changed sectors are "
                                       "erased anyway), or add --force bootloader-region to wipe it too");
                return refuse(JOB_ERROR_CHECK_BOOTLOADER_REGION, text, ret_error, ret_message);
        }

        if (format == FLASH_IMAGE_FORMAT_BIN && looks_like_text(in->data, in->size)) {
                char start[25];
                size_t n = MIN(in->size, sizeof(start) - 1);
                for (size_t i = 0; i < n; i++)
                        start[i] = in->data[i] < 0x20 ? ' ' : (char)in->data[i];
                while (n > 0 && start[n - 1] == ' ')
                        n--;
                start[n] = 0;
                if (in->hide_bytes)
                        text = strdup("the image is a text file, not firmware");
                else
                        (void)asprintf(&text, "the image is a text file, not firmware (it begins \"%s%s\")",
                                       start, in->size > sizeof(start) ? "..." : "");
                return refuse(JOB_ERROR_IMAGE_INVALID, text, ret_error, ret_message);
        }

        /* A raw image goes to the board's application start unless told otherwise. */
        if (!has_address && (format == FLASH_IMAGE_FORMAT_BIN || format == FLASH_IMAGE_FORMAT_DFU_RAW)) {
                if (!b || b->flash_size == 0) {
                        (void)asprintf(&text,
                                       "a raw image needs an address (--address), and the board is not "
                                       "in the board database");
                        return refuse(JOB_ERROR_IMAGE_INVALID, text, ret_error, ret_message);
                }
                address = b->flash_base + b->app_offset;
                notef(note, userdata,
                      "raw image: writing at 0x%08" PRIx32 " (the board's application start, %s)", address,
                      strna(klipper_offset_to_string(b->app_offset)));
        }
        r = uf2 ? 0
                : flash_image_parse(in->data, in->size, format, NULL,
                                    has_address || format == FLASH_IMAGE_FORMAT_BIN ||
                                            format == FLASH_IMAGE_FORMAT_DFU_RAW,
                                    address, &img, &error);
        if (r == -EFBIG) {
                (void)asprintf(&text, "%s%s%s%s", error ? error : strerror(-r),
                               b && b->flash_size > 0 ? " (the board's whole flash is " : "",
                               b && b->flash_size > 0
                                       ? codec_format_size((char[CODEC_SIZE_MAX]){}, b->flash_size)
                                       : "",
                               b && b->flash_size > 0 ? ")" : "");
                return refuse(JOB_ERROR_IMAGE_TOO_LARGE, text, ret_error, ret_message);
        }
        if (r < 0) {
                (void)asprintf(&text, "the image cannot be read: %s", error ? error : strerror(-r));
                return refuse(JOB_ERROR_IMAGE_INVALID, text, ret_error, ret_message);
        }

        if (!layout && b)
                layout = b->layout; /* the database's, checked when it was loaded */
        t.layout = layout;
        if (b) {
                t.flash_base = b->flash_base;
                t.flash_size = b->flash_size;
                t.app_offset = b->app_offset;
                t.ram_start = b->ram_start;
                t.ram_size = b->ram_size;
                t.mcu = b->mcu;
        } else if (layout && layout->n_regions > 0) {
                t.flash_base = layout->regions[0].address;
                t.flash_size = (uint32_t)dfuse_layout_total_size(layout);
        }
        t.app_offset_unknown = !b || b->flash_size == 0;
        if (in->device_mcu)
                t.mcu = in->device_mcu;

        /* More data than the whole flash: no address or --force makes it fit. */
        if (t.flash_size > 0 && flash_image_get_size(img) > t.flash_size) {
                char have[CODEC_SIZE_MAX], flash[CODEC_SIZE_MAX];
                (void)asprintf(&text, "the image holds %s, more than the board's whole flash (%s)",
                               codec_format_size(have, flash_image_get_size(img)),
                               codec_format_size(flash, t.flash_size));
                return refuse(JOB_ERROR_IMAGE_TOO_LARGE, text, ret_error, ret_message);
        }

        /* Nothing known about the flash yet (a board not identified, still
         * running its application): `fit` can only be checked against the
         * layout its bootloader reports, which the flow does before erasing. */
        unsigned force = in->force;
        bool deferred_fit = !layout && t.flash_size == 0 && !(force & (1u << IMAGE_CHECK_FIT));
        if (deferred_fit) {
                force |= 1u << IMAGE_CHECK_FIT;
                notef(note, userdata, "check fit: deferred until the bootloader reports its flash layout");
        }
        /* RP2040: boot2 and the vector table behind it instead of a
         * Cortex-M vector table at the start */
        if (b && b->avr)
                r = avr_check_all(img, &t, b->avr_boot_size, force, &failed, &error, results);
        else
                r = rp2040 ? rp2040_check_all(img, &t, force, &failed, &error, results)
                           : image_check_all(img, &t, force, &failed, &error, results);
        for (int c = 0; c < _IMAGE_CHECK_MAX; c++)
                if (results[c].forced && !(deferred_fit && c == IMAGE_CHECK_FIT))
                        notef(note, userdata, "check %s FAILED but is forced by the user: %s",
                              image_check_to_string(c), strna(results[c].message));
                else if (results[c].result == IMAGE_CHECK_SKIPPED)
                        notef(note, userdata, "check %s skipped: %s", image_check_to_string(c),
                              strna(results[c].message));
        image_check_results_clear(results);
        if (r < 0) {
                if (in->hide_bytes)
                        redact_leading_words(img, error);
                (void)asprintf(&text, "refused before anything was erased: %s", strna(error));
                return refuse(job_error_from_check(failed), text, ret_error, ret_message);
        }

        p = calloc(1, sizeof(JobPayload));
        if (!p)
                return -ENOMEM;
        p->format = uf2 ? "uf2" : flash_image_format_to_string(flash_image_get_format(img));
        p->address = flash_image_get_address(img);
        p->size = flash_image_get_size(img);
        (void)klipper_dictionary_find(img, &p->mcu, NULL);
        p->image = TAKE_PTR(img);
        *ret_payload = TAKE_PTR(p);
        return 0;
}
