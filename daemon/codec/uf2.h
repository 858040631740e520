/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * UF2 images (Microsoft's USB Flashing Format, github.com/microsoft/uf2
 * README "File format"): 512-byte blocks, each with two start magics,
 * flags, a target address, a payload size, its block number, the number
 * of blocks, a family id (flag 0x2000) or the file size, 476 bytes of data
 * and an end magic. Pure code: no I/O, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/flash-image.h"

#define UF2_BLOCK_SIZE   512U
#define UF2_DATA_MAX     476U
#define UF2_MAGIC_START0 0x0A324655U /* "UF2\n" */
#define UF2_MAGIC_START1 0x9E5D5157U
#define UF2_MAGIC_END    0x0AB16F30U

#define UF2_FLAG_NOT_MAIN_FLASH 0x00000001U
#define UF2_FLAG_FILE_CONTAINER 0x00001000U
#define UF2_FLAG_FAMILY_ID      0x00002000U
#define UF2_FLAG_MD5            0x00004000U
#define UF2_FLAG_EXTENSION_TAGS 0x00008000U

/* uf2 families.json */
#define UF2_FAMILY_RP2040 0xE48BFF56U

/* The RP2040 boot ROM writes 256-byte pages (RP2040 datasheet 2.8.4.2). */
#define UF2_RP2040_PAYLOAD 256U

typedef struct Uf2Block {
        uint32_t flags;
        uint32_t target_address;
        uint32_t payload_size;
        uint32_t block_no;
        uint32_t num_blocks;
        uint32_t family_id; /* or the file size, without UF2_FLAG_FAMILY_ID */
        const uint8_t *data;
} Uf2Block;

/* A known family's name ("RP2040", "RP2350-ARM-S", "SAMD21", ...), or NULL. */
const char *uf2_family_to_string(uint32_t family);

/* Whether buf starts with a UF2 block header (both start magics). */
bool uf2_detect(const void *buf, size_t len);

/* One 512-byte block: -EBADMSG when a magic is wrong or the payload does
 * not fit the block. */
int uf2_block_parse(const uint8_t *block, Uf2Block *ret);

/*
 * A whole UF2 file for `family` into an image (format "bin", its addresses
 * from the blocks). Refused: a length not a multiple of 512 or a broken
 * block (-EBADMSG), blocks of another family (-EMEDIUMTYPE, naming it),
 * blocks without a family id or with a payload size other than
 * `payload_size` (0: any) or not aligned to it (-EBADMSG), inconsistent
 * block numbering or missing blocks (-EBADMSG), overlapping blocks
 * (-EEXIST), no data (-ENODATA). Blocks flagged "not main flash" are
 * skipped as the format says.
 */
int uf2_parse(const void *buf, size_t len, uint32_t family, uint32_t payload_size, FlashImage **ret,
              char **ret_error);

/* Encode an image as UF2 with `payload_size`-byte payloads (<= 476) for
 * `family`, each block's data padded with 0xff up to a full payload. */
int uf2_encode(const FlashImage *img, uint32_t family, uint32_t payload_size, uint8_t **ret,
               size_t *ret_len);
