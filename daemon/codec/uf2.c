/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec-util.h"
#include "codec/uf2.h"
#include "util/macros.h"

/* A few family ids of github.com/microsoft/uf2 utils/uf2families.json, so a
 * refusal can name what the image was built for. */
static const struct {
        uint32_t id;
        const char *name;
} families[] = {
        { UF2_FAMILY_RP2040, "RP2040" }, { 0xE48BFF57U, "RP2XXX absolute" },
        { 0xE48BFF58U, "RP2XXX data" },  { 0xE48BFF59U, "RP2350-ARM-S" },
        { 0xE48BFF5AU, "RP2350-RISCV" }, { 0xE48BFF5BU, "RP2350-ARM-NS" },
        { 0x68ED2B88U, "SAMD21" },       { 0x55114460U, "SAMD51" },
        { 0x1851780AU, "SAML21" },       { 0xADA52840U, "NRF52840" },
        { 0x5EE21072U, "STM32F1" },      { 0x57755A57U, "STM32F401" },
        { 0x6D0922FAU, "STM32F407" },    { 0x300F5633U, "STM32G0" },
        { 0x53B80F00U, "STM32F7" },      { 0xBFDD4EEEU, "ESP32-S2" },
};

const char *uf2_family_to_string(uint32_t family)
{
        for (size_t i = 0; i < ELEMENTSOF(families); i++)
                if (families[i].id == family)
                        return families[i].name;
        return NULL;
}

bool uf2_detect(const void *buf, size_t len)
{
        return buf && len >= 8 && codec_le32(buf) == UF2_MAGIC_START0 &&
               codec_le32((const uint8_t *)buf + 4) == UF2_MAGIC_START1;
}

int uf2_block_parse(const uint8_t *block, Uf2Block *ret)
{
        Uf2Block b;

        if (!block || !ret)
                return -EINVAL;
        if (codec_le32(block) != UF2_MAGIC_START0 || codec_le32(block + 4) != UF2_MAGIC_START1 ||
            codec_le32(block + UF2_BLOCK_SIZE - 4) != UF2_MAGIC_END)
                return -EBADMSG;
        b = (Uf2Block){
                .flags = codec_le32(block + 8),
                .target_address = codec_le32(block + 12),
                .payload_size = codec_le32(block + 16),
                .block_no = codec_le32(block + 20),
                .num_blocks = codec_le32(block + 24),
                .family_id = codec_le32(block + 28),
                .data = block + 32,
        };
        if (b.payload_size > UF2_DATA_MAX)
                return -EBADMSG;
        *ret = b;
        return 0;
}

static int family_error(char **ret_error, uint32_t got, uint32_t want)
{
        const char *g = uf2_family_to_string(got), *w = uf2_family_to_string(want);

        if (g)
                return codec_message(
                        ret_error, -EMEDIUMTYPE,
                        "the UF2 image is built for %s (family 0x%08x), not for this board's %s: "
                        "build it for the board's micro-controller",
                        g, got, w ? w : "family");
        return codec_message(
                ret_error, -EMEDIUMTYPE,
                "the UF2 image is for an unknown family 0x%08x, not %s (0x%08x): build it for the "
                "board's micro-controller",
                got, w ? w : "this board's family", want);
}

int uf2_parse(const void *buf, size_t len, uint32_t family, uint32_t payload_size, FlashImage **ret,
              char **ret_error)
{
        _cleanup_(flash_image_freep) FlashImage *img = NULL;
        const uint8_t *p = buf;
        uint32_t num_blocks = 0;
        size_t n;
        int r;

        if (!buf || !ret)
                return -EINVAL;
        if (len == 0 || len % UF2_BLOCK_SIZE != 0)
                return codec_message(ret_error, -EBADMSG,
                                     "a UF2 file is a sequence of 512-byte blocks, this one has %zu bytes",
                                     len);
        if (len > FLASH_IMAGE_MAX_INPUT)
                return codec_message(ret_error, -EFBIG, "the UF2 file is too large (%zu bytes)", len);
        n = len / UF2_BLOCK_SIZE;

        r = flash_image_new(&img, FLASH_IMAGE_FORMAT_BIN);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                Uf2Block b;

                if (uf2_block_parse(p + i * UF2_BLOCK_SIZE, &b) < 0)
                        return codec_message(ret_error, -EBADMSG,
                                             "UF2 block %zu is broken (bad magic or payload size)", i);
                if (b.flags & UF2_FLAG_NOT_MAIN_FLASH)
                        continue;
                if (b.flags & UF2_FLAG_FILE_CONTAINER)
                        return codec_message(ret_error, -EBADMSG,
                                             "UF2 block %zu is part of a file container, not a flash image",
                                             i);
                if (!(b.flags & UF2_FLAG_FAMILY_ID))
                        return codec_message(
                                ret_error, -EBADMSG,
                                "UF2 block %zu has no family id: the board's boot ROM ignores such "
                                "blocks; rebuild the image with a family id",
                                i);
                if (b.family_id != family)
                        return family_error(ret_error, b.family_id, family);
                if (payload_size != 0 &&
                    (b.payload_size != payload_size || b.target_address % payload_size != 0))
                        return codec_message(ret_error, -EBADMSG,
                                             "UF2 block %zu carries %" PRIu32 " bytes at 0x%08" PRIx32
                                             ", the boot ROM takes only %" PRIu32 "-byte aligned pages",
                                             i, b.payload_size, b.target_address, payload_size);
                if (num_blocks == 0)
                        num_blocks = b.num_blocks;
                if (b.num_blocks != num_blocks || b.block_no >= b.num_blocks)
                        return codec_message(ret_error, -EBADMSG,
                                             "UF2 block %zu is numbered %" PRIu32 " of %" PRIu32
                                             ", inconsistent with the file",
                                             i, b.block_no, b.num_blocks);
                r = flash_image_add(img, b.target_address, b.data, b.payload_size);
                if (r == -EEXIST)
                        return codec_message(ret_error, r,
                                             "UF2 block %zu writes 0x%08" PRIx32
                                             " again: the file has overlapping "
                                             "blocks",
                                             i, b.target_address);
                if (r < 0)
                        return codec_message(ret_error, r, "UF2 block %zu cannot be added to the image", i);
        }
        if (img->size == 0)
                return codec_message(ret_error, -ENODATA, "the UF2 file holds no data for the main flash");
        /* The ROM counts blocks of the family to know when the download is
         * complete; a file that says it has more than it holds was cut short. */
        if (num_blocks != n)
                return codec_message(ret_error, -EBADMSG,
                                     "the UF2 file has %zu blocks but its blocks say %" PRIu32
                                     ": it is truncated or concatenated",
                                     n, num_blocks);
        *ret = TAKE_PTR(img);
        return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
        p[0] = v & 0xff;
        p[1] = (v >> 8) & 0xff;
        p[2] = (v >> 16) & 0xff;
        p[3] = v >> 24;
}

int uf2_encode(const FlashImage *img, uint32_t family, uint32_t payload_size, uint8_t **ret, size_t *ret_len)
{
        _cleanup_free_ uint8_t *out = NULL;
        size_t n_blocks = 0, k = 0;

        if (!img || !ret || !ret_len || payload_size == 0 || payload_size > UF2_DATA_MAX)
                return -EINVAL;

        /* Count the payload-aligned chunks that hold data (two passes: size, then fill). */
        for (int pass = 0; pass < 2; pass++) {
                uint64_t last = UINT64_MAX;
                for (size_t i = 0; i < img->n_segments; i++) {
                        const FlashSegment *s = &img->segments[i];
                        for (uint64_t a = s->address - s->address % payload_size; a < s->address + s->size;
                             a += payload_size) {
                                if (a == last)
                                        continue;
                                last = a;
                                if (pass == 0) {
                                        n_blocks++;
                                        continue;
                                }
                                uint8_t *b = out + k * UF2_BLOCK_SIZE;
                                memset(b, 0, UF2_BLOCK_SIZE);
                                put_le32(b, UF2_MAGIC_START0);
                                put_le32(b + 4, UF2_MAGIC_START1);
                                put_le32(b + 8, UF2_FLAG_FAMILY_ID);
                                put_le32(b + 12, (uint32_t)a);
                                put_le32(b + 16, payload_size);
                                put_le32(b + 20, (uint32_t)k);
                                put_le32(b + 24, (uint32_t)n_blocks);
                                put_le32(b + 28, family);
                                memset(b + 32, 0xff, payload_size);
                                for (uint32_t o = 0; o < payload_size; o++) {
                                        const uint8_t *d = flash_image_find(img, (uint32_t)(a + o), 1);
                                        if (d)
                                                b[32 + o] = *d;
                                }
                                put_le32(b + UF2_BLOCK_SIZE - 4, UF2_MAGIC_END);
                                k++;
                        }
                }
                if (pass == 0) {
                        if (n_blocks == 0)
                                return -ENODATA;
                        out = malloc(n_blocks * UF2_BLOCK_SIZE);
                        if (!out)
                                return -ENOMEM;
                }
        }
        *ret_len = n_blocks * UF2_BLOCK_SIZE;
        *ret = TAKE_PTR(out);
        return 0;
}
