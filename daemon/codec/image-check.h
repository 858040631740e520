/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Safety checks run before anything is erased. Pure functions: no I/O, no
 * logging. Each check has a stable name that `--force NAME` overrides:
 *   fit                the image lies in writeable sectors of the layout
 *   vector-table       start address aligned for a vector table, initial SP
 *                      in RAM, Thumb reset vector inside the image, and the
 *                      image built for the address it is written to (else:
 *                      names the address it was built for)
 *   bootloader-region  nothing below the application offset is written or
 *                      erased (an explicit address is not enough: only
 *                      forcing this check replaces a bootloader)
 *   mcu                Klipper's embedded data dictionary names the board's MCU
 *
 * Each check returns 0 (passed), IMAGE_CHECK_SKIPPED (not applicable:
 * unknown MCU, no dictionary, ...; *ret_message says why) or a negative
 * errno with *ret_message (malloc'd, optional) saying what is wrong and
 * what to do.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/dfuse-layout.h"
#include "codec/flash-image.h"

#define IMAGE_CHECK_SKIPPED 1

/* Upper bound for an inflated data dictionary (Klipper's are ~10-60 KiB). */
#define KLIPPER_DICT_MAX_SIZE (1024U * 1024U)

typedef enum ImageCheck {
        IMAGE_CHECK_FIT,
        IMAGE_CHECK_VECTOR_TABLE,
        IMAGE_CHECK_BOOTLOADER_REGION,
        IMAGE_CHECK_MCU,
        _IMAGE_CHECK_MAX,
        _IMAGE_CHECK_INVALID = -EINVAL,
} ImageCheck;

const char *image_check_to_string(ImageCheck c);
ImageCheck image_check_from_string(const char *s);

/* What the image is checked against. */
typedef struct ImageCheckTarget {
        const DfuseLayout *layout; /* for `fit`; NULL: flash_base/flash_size, all writeable */
        uint32_t flash_base;
        uint32_t flash_size;
        uint32_t app_offset; /* bytes of bootloader below the application */
        /* The board is not identified (known by its layout only): whether and
         * how large a bootloader it has is unknown, so the start of flash,
         * where bootloaders live, is treated as one. */
        bool app_offset_unknown;
        uint32_t ram_start;
        uint32_t ram_size; /* 0: RAM unknown, SP not checked */
        const char *mcu;   /* "stm32f446xx", or NULL when unknown */
} ImageCheckTarget;

/* Failures: -ENOSPC (fit), -ENOEXEC (vector-table), -EPERM (bootloader-region), -EMEDIUMTYPE (mcu). */
int image_check_fit(const FlashImage *img, const ImageCheckTarget *t, char **ret_message);
int image_check_vector_table(const FlashImage *img, const ImageCheckTarget *t, char **ret_message);
int image_check_bootloader_region(const FlashImage *img, const ImageCheckTarget *t, char **ret_message);
int image_check_mcu(const FlashImage *img, const ImageCheckTarget *t, char **ret_message);
int image_check_one(ImageCheck c, const FlashImage *img, const ImageCheckTarget *t, char **ret_message);

typedef struct ImageCheckResult {
        int result;    /* 0, IMAGE_CHECK_SKIPPED, or negative errno */
        bool forced;   /* failed, but named in the force mask */
        char *message; /* NULL when passed */
} ImageCheckResult;

/*
 * Run every check. `force` is a mask of (1u << ImageCheck). Returns 0 when
 * nothing failed that was not forced, else the first unforced failure's
 * errno with *ret_failed and *ret_message set. `results` (optional,
 * _IMAGE_CHECK_MAX entries) receives every outcome so the caller can report
 * forced and skipped checks; free it with image_check_results_clear().
 */
int image_check_all(const FlashImage *img, const ImageCheckTarget *t, unsigned force, ImageCheck *ret_failed,
                    char **ret_message, ImageCheckResult *results);
void image_check_results_clear(ImageCheckResult *results);

/* One check of an MCU family (a Cortex-M vector table, an RP2040 boot2, an
 * AVR boot section...): as image_check_one(). */
typedef int (*ImageCheckFunc)(ImageCheck c, const FlashImage *img, const ImageCheckTarget *t, void *userdata,
                              char **ret_message);

/* image_check_all() with the family's own checks. */
int image_check_run(const FlashImage *img, const ImageCheckTarget *t, ImageCheckFunc check, void *userdata,
                    unsigned force, ImageCheck *ret_failed, char **ret_message, ImageCheckResult *results);

/* Klipper's application offsets (src/stm32/Kconfig), e.g. 0x8000 -> "32 KiB bootloader". */
const char *klipper_offset_to_string(uint32_t offset);

/*
 * Find Klipper's zlib-compressed JSON data dictionary in a buffer (as
 * scripts/buildcommands.py embeds it and Katapult's flashtool finds it):
 * the first zlib stream that inflates to a JSON object with "app":
 * "Klipper". Returns 0 with the JSON text (malloc'd, NUL-terminated) and
 * its offset, or -ENOENT.
 */
int klipper_dictionary_extract(const uint8_t *buf, size_t len, char **ret_json, size_t *ret_offset);
/* The same over every segment of an image, returning config.MCU and version (either may be NULL). */
int klipper_dictionary_find(const FlashImage *img, char **ret_mcu, char **ret_version);
