/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Firmware images as a list of (address, bytes) segments, sorted by address,
 * never overlapping, adjacent pieces merged. Loaders read memory buffers
 * (no I/O, no logging): raw .bin at a given address, Intel HEX, DfuSe .dfu
 * (UM0391: prefix, targets, elements) and plain DFU 1.1 files (raw data +
 * suffix). Errors are negative errno plus, optionally, a sentence for a
 * person in *ret_error (malloc'd).
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macros.h"

/* Most data an image may hold: four times the largest STM32 flash in the
 * database (2 MiB) plus room for external flash images; a 16 MiB ceiling
 * keeps a hostile client from making the daemon allocate without bound. */
#define FLASH_IMAGE_MAX_SIZE (16U * 1024U * 1024U)
/* Largest input accepted by the parsers (Intel HEX text is ~2.8x its data). */
#define FLASH_IMAGE_MAX_INPUT (4U * FLASH_IMAGE_MAX_SIZE)

#define DFU_SUFFIX_LENGTH 16

typedef enum FlashImageFormat {
        FLASH_IMAGE_FORMAT_BIN,     /* "bin": raw bytes at a given address */
        FLASH_IMAGE_FORMAT_IHEX,    /* "hex": Intel HEX */
        FLASH_IMAGE_FORMAT_DFUSE,   /* "dfu": DfuSe file with prefix, targets and suffix */
        FLASH_IMAGE_FORMAT_DFU_RAW, /* "dfu-raw": raw bytes + DFU 1.1 suffix, at a given address */
        _FLASH_IMAGE_FORMAT_MAX,
        _FLASH_IMAGE_FORMAT_INVALID = -EINVAL,
} FlashImageFormat;

typedef struct FlashSegment {
        uint32_t address;
        size_t size;
        uint8_t *data;
        size_t allocated; /* bytes reserved at data (internal) */
} FlashSegment;

/* DFU 1.1 file suffix (DFU 1.1 spec, appendix B); 0xffff = any. */
typedef struct DfuSuffix {
        uint16_t bcd_device;
        uint16_t id_product;
        uint16_t id_vendor;
        uint16_t bcd_dfu; /* 0x011a for DfuSe files, 0x0100 for plain DFU */
} DfuSuffix;

typedef struct FlashImage {
        FlashImageFormat format;
        FlashSegment *segments; /* sorted, non-overlapping, non-adjacent */
        size_t n_segments;
        size_t n_allocated;
        size_t size; /* sum of the segment sizes */
        bool has_suffix;
        DfuSuffix suffix;
        bool has_entry; /* Intel HEX start address record (05 or 03) */
        uint32_t entry;
} FlashImage;

int flash_image_new(FlashImage **ret, FlashImageFormat format);
FlashImage *flash_image_free(FlashImage *img);
DEFINE_TRIVIAL_CLEANUP_FUNC(FlashImage *, flash_image_free);

/* Add bytes at an address: -EEXIST when they overlap existing data,
 * -EFBIG beyond FLASH_IMAGE_MAX_SIZE, -ERANGE past the 32-bit address space. */
int flash_image_add(FlashImage *img, uint32_t address, const void *data, size_t size);

int flash_image_parse_bin(const void *buf, size_t len, uint32_t address, FlashImage **ret, char **ret_error);
int flash_image_parse_ihex(const void *buf, size_t len, FlashImage **ret, char **ret_error);
/* A .dfu file: DfuSe when it starts with the "DfuSe" prefix (addresses from
 * the file; only alt setting 0 targets are accepted), otherwise plain DFU
 * with its data at `address` (which then must be given: has_address). The
 * suffix and its CRC are required in both cases. */
int flash_image_parse_dfu(const void *buf, size_t len, bool has_address, uint32_t address, FlashImage **ret,
                          char **ret_error);

/* The format by content; the file name (may be NULL) decides only when the
 * content is not conclusive, so a broken foo.hex gets Intel HEX's error. */
FlashImageFormat flash_image_detect(const void *buf, size_t len, const char *name_hint);

/*
 * Parse in the given format (_FLASH_IMAGE_FORMAT_INVALID: detect). For
 * formats that carry their own addresses (hex, dfu) an explicit address must
 * equal the image's start (-EINVAL otherwise); raw formats need one
 * (-EDESTADDRREQ). An image with no data is -ENODATA.
 */
int flash_image_parse(const void *buf, size_t len, FlashImageFormat format, const char *name_hint,
                      bool has_address, uint32_t address, FlashImage **ret, char **ret_error);

FlashImageFormat flash_image_get_format(const FlashImage *img);
/* Lowest address (0 for an empty image). */
uint32_t flash_image_get_address(const FlashImage *img);
/* One past the highest address. */
uint64_t flash_image_get_end(const FlashImage *img);
/* Bytes of data (gaps not counted). */
size_t flash_image_get_size(const FlashImage *img);
/*
 * One flat buffer from `base` to the image's end, gaps filled with 0xFF
 * (the erased value), for bootloaders that take a byte stream from a start
 * address (Katapult, the AVR bootloaders). -EINVAL for an empty image,
 * -ERANGE when data lies below `base`, -EFBIG when the span from `base`
 * exceeds FLASH_IMAGE_MAX_SIZE.
 */
int flash_image_flatten(const FlashImage *img, uint32_t base, uint8_t **ret, size_t *ret_size);
/* Pointer to `size` bytes at `address` when one segment holds them all, else NULL. */
const uint8_t *flash_image_find(const FlashImage *img, uint32_t address, size_t size);
/* Whether any byte of [address, address + size) is in the image. */
bool flash_image_touches(const FlashImage *img, uint64_t address, uint64_t size);

const char *flash_image_format_to_string(FlashImageFormat f);
/* "bin", "hex" (or "ihex"), "dfu", "dfu-raw" */
FlashImageFormat flash_image_format_from_string(const char *s);

/* dwCRC of a DFU suffix over `len` bytes: CRC-32 (IEEE) with init
 * 0xffffffff and no final xor, i.e. ~crc32(0, buf, len) (as dfu-util). */
uint32_t dfu_suffix_crc(const void *buf, size_t len);
/* Check and parse the suffix at the end of buf: -ENOENT when there is none
 * (no "UFD" signature), -EBADMSG on a bad length or CRC. */
int dfu_suffix_parse(const void *buf, size_t len, DfuSuffix *ret, size_t *ret_payload_len, char **ret_error);
