/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "codec/image-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        FlashImage *img = NULL;
        char *json = NULL, *mcu = NULL, *version = NULL;
        size_t offset = 0;

        if (klipper_dictionary_extract(data, size, &json, &offset) >= 0) {
                assert(offset < size && json[0] == '{');
                free(json);
        }

        /* And through an image, with the mcu check on top. */
        if (size > 0 && flash_image_parse_bin(data, size, 0x08008000, &img, NULL) >= 0) {
                ImageCheckTarget t = { .flash_base = 0x08000000,
                                       .flash_size = 0x100000,
                                       .mcu = "stm32f446xx" };
                char *msg = NULL;
                if (klipper_dictionary_find(img, &mcu, &version) >= 0) {
                        free(mcu);
                        free(version);
                }
                (void)image_check_mcu(img, &t, &msg);
                free(msg);
                flash_image_free(img);
        }
        return 0;
}
