/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdlib.h>

#include "codec/flash-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Segments must come out sorted, non-overlapping and merged. */
static void check_invariants(const FlashImage *img)
{
        size_t total = 0;

        for (size_t i = 0; i < img->n_segments; i++) {
                assert(img->segments[i].size > 0);
                total += img->segments[i].size;
                if (i > 0)
                        assert((uint64_t)img->segments[i - 1].address + img->segments[i - 1].size <
                               img->segments[i].address);
        }
        assert(total == img->size && total <= FLASH_IMAGE_MAX_SIZE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        FlashImage *img = NULL;
        char *err = NULL;
        int r;

        r = flash_image_parse_ihex(data, size, &img, &err);
        if (r >= 0) {
                check_invariants(img);
                assert(img->size > 0);
        } else
                assert(err || r == -ENOMEM);
        flash_image_free(img);
        free(err);
        return 0;
}
