/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdlib.h>

#include "codec/flash-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        FlashImage *img = NULL;
        char *err = NULL;
        int r;

        /* The way the daemon sees an uploaded file: detect, then parse. */
        r = flash_image_parse(data, size, _FLASH_IMAGE_FORMAT_INVALID, "fuzz.dfu", true, 0x08008000, &img,
                              &err);
        if (r >= 0) {
                size_t total = 0;
                for (size_t i = 0; i < img->n_segments; i++) {
                        total += img->segments[i].size;
                        if (i > 0)
                                assert((uint64_t)img->segments[i - 1].address + img->segments[i - 1].size <
                                       img->segments[i].address);
                }
                assert(total == img->size && total > 0);
                assert(flash_image_find(img, flash_image_get_address(img), img->segments[0].size));
        }
        img = flash_image_free(img);
        free(err);
        err = NULL;

        r = flash_image_parse_dfu(data, size, false, 0, &img, &err);
        assert(r < 0 || img->format == FLASH_IMAGE_FORMAT_DFUSE);
        flash_image_free(img);
        free(err);
        return 0;
}
