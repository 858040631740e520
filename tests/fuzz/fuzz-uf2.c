/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UF2 files for RP2040: whatever parses re-encodes to a file that parses to
 * the same bytes; the RP2040 image checks run on every accepted image.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "codec/rp2040-image.h"
#include "codec/uf2.h"
#include "util/macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(flash_image_freep) FlashImage *img = NULL, *back = NULL;
        _cleanup_free_ char *msg = NULL, *msg2 = NULL;
        _cleanup_free_ uint8_t *enc = NULL;
        size_t len = 0;
        ImageCheckTarget t;

        if (uf2_parse(data, size, UF2_FAMILY_RP2040, UF2_RP2040_PAYLOAD, &img, &msg) < 0)
                return 0;
        assert(img->size > 0 && img->size % UF2_RP2040_PAYLOAD == 0);
        assert(uf2_encode(img, UF2_FAMILY_RP2040, UF2_RP2040_PAYLOAD, &enc, &len) == 0);
        assert(uf2_parse(enc, len, UF2_FAMILY_RP2040, UF2_RP2040_PAYLOAD, &back, NULL) == 0);
        assert(back->size == img->size && back->n_segments == img->n_segments);
        for (size_t i = 0; i < img->n_segments; i++)
                assert(img->segments[i].address == back->segments[i].address &&
                       memcmp(img->segments[i].data, back->segments[i].data, img->segments[i].size) == 0);
        rp2040_check_target(&t, 2 * 1024 * 1024, 0, false);
        (void)rp2040_check_all(img, &t, 0, NULL, &msg2, NULL);
        return 0;
}
